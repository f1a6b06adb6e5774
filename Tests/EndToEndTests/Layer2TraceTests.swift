import Foundation
import Testing
import TestSupport

/// `path`, `trace` and `graph` on layer-2 topologies: a bridge in the host, a bridge inside a namespace,
/// bridge + router + second bridge, and a userspace switch (a packet-socket forwarder, as Open vSwitch's
/// netdev datapath moves frames). Bridges are made to flood (ageing time 0: nothing learned), so every
/// probe leaves flooded copies behind.
@Suite("trace on bridges and switches (end to end)", .serialized)
struct Layer2TraceTests {
    typealias Trace = TraceCommandTests

    /// Makes a bridge forget and never learn MACs, so every frame is flooded to all its ports.
    static func flood(bridge: String, in ns: String? = nil) throws {
        try Shell.must(["ip"] + (ns.map { ["-n", $0] } ?? []) + ["link", "set", bridge, "type", "bridge", "ageing_time", "0"])
    }

    /// The probe's layer-2 hops (`there`), and checks common to every probe of an agreeing trace.
    static func checkAgreeing(_ summary: [String: Any], routed: Int, count: Int = 3) throws -> [[[String: Any]]] {
        let probes = try Trace.probes(summary)
        #expect(probes.count == count)
        var layer2: [[[String: Any]]] = []
        for probe in probes {
            #expect(probe["agrees"] as? Bool == true, "\(probe["verdict"] ?? "")")
            #expect(probe["observed_routed_hops"] as? Int == routed)
            #expect(probe["reply_routed_hops"] as? Int == routed)
            let there = try #require(probe["there"] as? [[String: Any]])
            #expect(there.filter { $0["routed"] as? Bool == true }.count == routed)
            layer2.append(there.compactMap { $0["layer2"] as? [String: Any] })
        }
        return layer2
    }

    @Test func aBridgeInTheHostIsALayer2HopAndFloodedCopiesAreNotTheProbe() throws {
        let scratch = Scratch("l2h")
        let lab = try PrefixedLab(scratch, namespaces: ["h1", "h2", "h3"], hostLinks: ["br", "p1", "p2", "p3"]) { ns, link in
            """
            namespaces:
              \(ns("h1")): {}
              \(ns("h2")): {}
              \(ns("h3")): {}
            links:
              - {a: \(ns("h1")):eth0 10.9.1.10/24, b: host:\(link("p1"))}
              - {a: \(ns("h2")):eth0 10.9.1.11/24, b: host:\(link("p2"))}
              - {a: \(ns("h3")):eth0 10.9.1.12/24, b: host:\(link("p3"))}
            bridges:
              - {name: host:\(link("br")), ports: [\(link("p1")), \(link("p2")), \(link("p3"))]}
            """
        }
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        try Self.flood(bridge: lab.link("br"))
        let (_, summary, result) = try Trace.traceJSON([lab.ns("h1"), lab.ns("h2"), "--count", "3"])
        #expect(result.status == 0, "\(result)")
        let layer2 = try Self.checkAgreeing(summary, routed: 0)
        for hops in layer2 {
            #expect(hops.count == 1)
            #expect(hops.first?["kind"] as? String == "bridge")
            #expect(hops.first?["name"] as? String == lab.link("br"))
            #expect(hops.first?["in"] as? String == lab.link("p1"))
            #expect(hops.first?["out"] as? String == lab.link("p2"))
        }
        // Every probe was flooded (nothing learned): h3 discarded its copy, which is not the verdict.
        for probe in try Trace.probes(summary) {
            let copies = try #require(probe["discarded_copies"] as? [[String: Any]])
            #expect(copies.contains { $0["netns"] as? String == lab.ns("h3") && $0["drop"] as? String == "OTHERHOST" && $0["kind"] as? String == "off_path" },
                    "\(copies)")
        }
        let text = nsinspect("trace", lab.ns("h1"), lab.ns("h2"), "--count", "3")
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("host (bridge \(lab.link("br")): \(lab.link("p1")) → \(lab.link("p2")), ttl 64)"), "\(text)")
        // The request and the reply are both flooded; h3 discards each.
        #expect(text.stdout.contains("2 flooded copies discarded off the probe's way (\(lab.ns("h3")): OTHERHOST"), "\(text)")
        #expect(text.stdout.contains("3 of 3 probes as predicted"), "\(text)")
        let path = nsinspect("path", lab.ns("h1"), lab.ns("h2"))
        #expect(path.stdout.contains("bridge \(lab.link("br")) in host: port \(lab.link("p2"))"), "\(path)")
    }

    @Test func bridgeRouterBridgeAgreesAndNamesTheBridgesWhereTheyLive() throws {
        let scratch = Scratch("l2r")
        let lab = try PrefixedLab(scratch, namespaces: ["h1", "h2", "sw", "r", "h3"], hostLinks: ["br", "rp", "hp"]) { ns, link in
            """
            namespaces:
              \(ns("h1")): {routes: [default via 10.9.1.1]}
              \(ns("h2")): {routes: [default via 10.9.1.1]}
              \(ns("sw")): {}
              \(ns("r")): {forwarding: true}
              \(ns("h3")): {routes: [default via 10.9.2.1]}
            links:
              - {a: \(ns("h1")):eth0 10.9.1.10/24, b: \(ns("sw")):p1}
              - {a: \(ns("h2")):eth0 10.9.1.11/24, b: \(ns("sw")):p2}
              - {a: \(ns("r")):e0 10.9.1.1/24, b: \(ns("sw")):p3}
              - {a: \(ns("r")):e1 10.9.2.1/24, b: host:\(link("rp"))}
              - {a: \(ns("h3")):eth0 10.9.2.10/24, b: host:\(link("hp"))}
            bridges:
              - {name: \(ns("sw")):br0, ports: [p1, p2, p3]}
              - {name: host:\(link("br")), ports: [\(link("rp")), \(link("hp"))]}
            """
        }
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        try Self.flood(bridge: "br0", in: lab.ns("sw"))

        // Two hosts on the bridge inside a namespace.
        let (_, local, localResult) = try Trace.traceJSON([lab.ns("h1"), lab.ns("h2"), "--count", "3"])
        #expect(localResult.status == 0, "\(localResult)")
        for hops in try Self.checkAgreeing(local, routed: 0) {
            #expect(hops.map { $0["name"] as? String } == ["br0"])
        }

        // Bridge, router, second bridge.
        let (_, far, farResult) = try Trace.traceJSON([lab.ns("h1"), lab.ns("h3"), "--count", "3"])
        #expect(farResult.status == 0, "\(farResult)")
        for hops in try Self.checkAgreeing(far, routed: 1) {
            #expect(hops.map { $0["name"] as? String } == ["br0", lab.link("br")])
            #expect(hops.map { $0["kind"] as? String } == ["bridge", "bridge"])
        }
        let path = nsinspect("path", lab.ns("h1"), lab.ns("h3"))
        #expect(path.status == 0, "\(path)")
        #expect(path.stdout.contains("bridge br0 in \(lab.ns("sw")): port p3"), "\(path)")
        #expect(path.stdout.contains("bridge \(lab.link("br")) in host: port \(lab.link("hp"))"), "\(path)")
        let text = nsinspect("trace", lab.ns("h1"), lab.ns("h3"), "--count", "2")
        #expect(text.stdout.contains("\(lab.ns("sw")) (bridge br0: p1 → p3, ttl 64)"), "\(text)")
        #expect(text.stdout.contains("1 routed hop seen = 1 predicted by path = 1 by the reply's ttl (64 − 63): they agree"), "\(text)")
    }

    /// h1 — r — [host: a — forwarder — b] — h3: the host ports have no master and no address; a packet
    /// socket program moves the frames.
    struct ForwarderLab {
        let lab: PrefixedLab
        let forwarder: Int32

        init(_ scratch: Scratch) throws {
            lab = try PrefixedLab(scratch, namespaces: ["h1", "r", "h3"], hostLinks: ["a", "b"]) { ns, link in
                """
                namespaces:
                  \(ns("h1")): {routes: [default via 10.9.6.1]}
                  \(ns("r")): {forwarding: true}
                  \(ns("h3")): {routes: [default via 10.9.7.1]}
                links:
                  - {a: \(ns("h1")):eth0 10.9.6.10/24, b: \(ns("r")):e0 10.9.6.1/24}
                  - {a: \(ns("r")):e1 10.9.7.1/24, b: host:\(link("a"))}
                  - {a: \(ns("h3")):eth0 10.9.7.10/24, b: host:\(link("b"))}
                """
            }
            let readyFile = NSTemporaryDirectory() + "\(scratch.prefix)-forwarder"
            scratch.track(path: readyFile)
            let script = Package.root.appendingPathComponent("Tests/tools/packet-forwarder.py").path
            // The test's `defer` is not set until this returns: whatever fails here undoes the lab itself.
            // The forwarder on the second CPU, the tracer on the first: the frames it re-sends arrive on
            // another CPU than the one the sender's probes start on (as with ovs-vswitchd's threads).
            do {
                forwarder = try scratch.background(["taskset", "-c", Self.otherCPU, "python3", script, readyFile, lab.link("a"), lab.link("b")])
            } catch {
                lab.down()
                scratch.cleanup()
                throw error
            }
            let forwarding = Wait.until(timeout: 2) { FileManager.default.fileExists(atPath: readyFile) }
            guard forwarding else {
                kill(forwarder, SIGKILL)
                lab.down()
                scratch.cleanup()
                throw SetupFailed("\(script): the packet forwarder did not write \(readyFile) within 2 s")
            }
        }

        /// The CPU for the forwarder: the second one (the first when there is only one).
        static var otherCPU: String { sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1 ? "1" : "0" }
    }

    @Test func aUserspaceSwitchIsSwitchedOutsideTheBridgeAndItsCopiesAreNotTheProbe() throws {
        let scratch = Scratch("usw")
        let setup = try ForwarderLab(scratch)
        let lab = setup.lab
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }

        let graph = nsinspect("graph", "--json")
        let switches = try #require((try Shell.json(graph.stdout) as? [String: Any])?["switches"] as? [[String: Any]], "\(graph)")
        let ours = try #require(switches.first { ($0["ports"] as? [[String: Any]])?.contains { $0["ifname"] as? String == lab.link("a") } == true })
        #expect(ours["kind"] as? String == "unmanaged")
        let ports = try #require(ours["ports"] as? [[String: Any]])
        #expect(Set(ports.compactMap { $0["ifname"] as? String }).isSuperset(of: [lab.link("a"), lab.link("b")]))
        #expect(ports.allSatisfy { $0["role"] as? String == "switch port (unmanaged)" })
        #expect(nsinspect("graph").stdout.contains("switch port (unmanaged)"))

        let path = nsinspect("path", lab.ns("h1"), lab.ns("h3"))
        #expect(path.status == 0, "\(path)")
        #expect(path.stdout.contains("an unknown switch in host: port \(lab.link("b"))"), "\(path)")

        // ICMP: six probes, each the same hops, events in the same namespaces, the verdict agrees.
        let (events, summary, result) = try Trace.traceJSON([lab.ns("h1"), lab.ns("h3"), "--count", "6"], pinned: true)
        #expect(result.status == 0, "\(result)")
        for hops in try Self.checkAgreeing(summary, routed: 1, count: 6) {
            #expect(hops.count == 1)
            #expect(hops.first?["kind"] as? String == "unmanaged")
            #expect(hops.first?["in"] as? String == lab.link("a"))
            #expect(hops.first?["out"] as? String == lab.link("b"))
        }
        // Every event belongs to the namespace it happened in: probes 2…6 see the same places in the same
        // order, and the first (which also waits for ARP, and looks its route up again) the same places.
        func places(_ probe: Int) -> [String] {
            events.filter { event in
                event["probe"] as? Int == probe && event["copy"] == nil && ["xmit", "recv", "drop", "fib"].contains(event["hook"] as? String ?? "")
            }.map { "\($0["netns"]!) \($0["ifname"] ?? "-") \($0["hook"]!) \($0["direction"] ?? "")" }
        }
        let second = places(2)
        #expect(second.count > 10)
        for probe in 3...6 { #expect(places(probe) == second, "probe \(probe)") }
        #expect(Set(places(1)) == Set(second))
        #expect(!events.contains { $0["hook"] as? String == "fib" && $0["netns"] as? String == "host" },
                "a route lookup of the probe attributed to the host")
        let text = Shell.run(["taskset", "-c", "0", Package.binary, "trace", lab.ns("h1"), lab.ns("h3"), "--count", "2"])
        #expect(text.stdout.contains("host (\(lab.link("a")) → \(lab.link("b")), switched outside the kernel bridge, ttl 63)"), "\(text)")
        #expect(text.stdout.contains("host's own stack discarded its copy"), "\(text)")
        #expect(!text.stdout.contains("verdict: dropped"), "\(text)")

        // UDP: the forwarder passes on the sender's unfinished checksum, the receiver drops the datagram.
        func csumErrors() throws -> Int {
            let out = try Shell.must("ip", "netns", "exec", lab.ns("h3"), "nstat", "-az", "UdpInCsumErrors")
            return Int(out.split(separator: "\n").last?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
        }
        let before = try csumErrors()
        let udp = nsinspect("trace", lab.ns("h1"), lab.ns("h3"), "--proto", "udp", "--count", "1")
        #expect(udp.status == 1, "\(udp)")
        #expect(udp.stdout.contains("verdict: dropped in \(lab.ns("h3")) on input from eth0: UDP_CSUM (bad checksum"), "\(udp)")
        #expect(try csumErrors() > before)
        // With checksums filled in by the sender's stack (no offload on r's side of the switch), it agrees.
        try Shell.must("ip", "netns", "exec", lab.ns("r"), "ethtool", "-K", "e1", "tx", "off")
        let fixed = nsinspect("trace", lab.ns("h1"), lab.ns("h3"), "--proto", "udp", "--count", "1")
        #expect(fixed.status == 0, "\(fixed)")
        #expect(fixed.stdout.contains("port unreachable"), "\(fixed)")
    }
}
