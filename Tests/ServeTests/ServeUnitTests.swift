import JSONKit
import Testing

@testable import Serve

@Suite("serve: listen address, metrics text, drop counting, percent decoding")
struct ServeUnitTests {
    @Test func listenAddressesParseAndSayWhetherTheyAreLoopback() throws {
        #expect(try ListenAddress.parse("127.0.0.1:8080").get() == ListenAddress(host: "127.0.0.1", port: 8080))
        #expect(try ListenAddress.parse(":0").get() == ListenAddress(host: "127.0.0.1", port: 0))
        #expect(try ListenAddress.parse("[::1]:9000").get() == ListenAddress(host: "::1", port: 9000))
        #expect(try ListenAddress.parse("[::1]:9000").get().isLoopback)
        #expect(try ListenAddress.parse("localhost:1").get().isLoopback)
        #expect(try !ListenAddress.parse("0.0.0.0:8080").get().isLoopback)
        #expect(try !ListenAddress.parse("192.0.2.1:8080").get().isLoopback)
        #expect(try ListenAddress.parse("[fe80::1]:80").get().description == "[fe80::1]:80")
        for bad in ["8080", "host:port", "1.2.3.4:70000", "::1:80", "[::1]80"] {
            guard case .failure(let error) = ListenAddress.parse(bad) else {
                Issue.record("\(bad) parsed")
                continue
            }
            #expect(error.description.hasPrefix("--listen \(bad): "))
        }
    }

    @Test func metricsCountHoldersNameKindsLinksAndDrops() throws {
        let list = try JSON.parse(Array("""
            {"namespaces":[
              {"ns":1,"reference":"host","host":true,"nprocs":60,"interfaces":["eth0","ifb0"],
               "names":[{"kind":"host","name":"host"}],"holders":{"mounts":[],"fds":[],"sockets":[],"threads":[]}},
              {"ns":2,"reference":"web","nprocs":1,"interfaces":["eth0"],"names":[{"kind":"docker","name":"web"}],
               "holders":{"mounts":[{"path":"/run/docker/netns/x"}],"fds":[],"sockets":[],"threads":[]}},
              {"ns":3,"reference":"pid:77","nprocs":1,"interfaces":[],"names":[],
               "holders":{"mounts":[],"fds":[],"sockets":[],"threads":[]}},
              {"ns":4,"reference":"we\\"ird","nprocs":0,"interfaces":["a","b","c"],"names":[{"kind":"netns","name":"we\\"ird"}],
               "holders":{"mounts":[{"path":"/run/netns/we\\"ird"}],"fds":[],"sockets":[],"threads":[]}}]}
            """.utf8))
        let drops = [DropKey(netns: "host1", ifname: "eth0", reason: "NO_SOCKET"): UInt64(2)]
        let text = PrometheusText.render(list: list, drops: drops)
        let lines = Set(text.split(separator: "\n").map(String.init))
        for expected in [
            "nsinspect_namespaces 4",
            #"nsinspect_namespaces_by_holder{holder="host"} 1"#,
            #"nsinspect_namespaces_by_holder{holder="process"} 2"#,
            #"nsinspect_namespaces_by_holder{holder="mount"} 2"#,
            #"nsinspect_namespaces_by_name_kind{kind="docker"} 1"#,
            #"nsinspect_namespaces_by_name_kind{kind="unnamed"} 1"#,
            #"nsinspect_links{netns="web",ns="2"} 1"#,
            #"nsinspect_links{netns="we\"ird",ns="4"} 3"#,
            #"nsinspect_drops_total{netns="host1",ifname="eth0",reason="NO_SOCKET"} 2"#,
            "# TYPE nsinspect_drops_total counter",
        ] {
            #expect(lines.contains(expected), "\(expected) not in\n\(text)")
        }
        #expect(!text.contains(#"holder="fd""#), "a holder kind no namespace has is not a series")
    }

    @Test func onlyDropEventsAreCounted() {
        let counters = DropCounters()
        let lines = [
            #"{"probe":1,"netns":"host1","ifname":"eth0","hook":"xmit","ttl":64}"#,
            #"{"probe":1,"netns":"host1","ifname":"eth0","hook":"drop","drop_reason":"NO_SOCKET"}"#,
            #"{"probe":2,"netns":"host1","ifname":"eth0","hook":"drop","drop_reason":"NO_SOCKET"}"#,
            #"{"probe":2,"ns":4026532000,"ifname":"e1","hook":"drop","drop_reason":"UDP_CSUM"}"#,
            #"{"summary":true,"note":"drop_reason is a word here"}"#,
        ]
        for line in lines { counters.count(eventLine: Array(line.utf8)[...]) }
        #expect(counters.snapshot == [
            DropKey(netns: "host1", ifname: "eth0", reason: "NO_SOCKET"): 2,
            DropKey(netns: "ino:4026532000", ifname: "e1", reason: "UDP_CSUM"): 1,
        ])
    }

    @Test func pathParametersArePercentDecodedAndNULIsRefused() {
        #expect(PercentDecoding.decode("docker%3Aweb") == "docker:web")
        #expect(PercentDecoding.decode("%2Frun%2Fnetns%2Fa") == "/run/netns/a")
        #expect(PercentDecoding.decode("plain") == "plain")
        #expect(PercentDecoding.decode("bad%2") == nil)
        #expect(PercentDecoding.decode("bad%zz") == nil)
        #expect(PercentDecoding.decode("nul%00") == nil)
    }
}
