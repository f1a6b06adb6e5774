import Foundation
import Testing
import TestSupport

/// `path` and `trace` on the two-routers lab, with real BPF programs on this kernel.
@Suite("path and trace (end to end)", .serialized)
struct TraceCommandTests {
    /// Runs `trace … --json` and returns its events and its summary line.
    /// `pinned`: run it on the first CPU only (`taskset -c 0`).
    static func traceJSON(_ arguments: [String], pinned: Bool = false) throws -> (events: [[String: Any]], summary: [String: Any], result: CommandResult) {
        let command = [Package.binary, "trace"] + arguments + ["--json"]
        let result = Shell.run(pinned ? ["taskset", "-c", "0"] + command : command)
        var events: [[String: Any]] = []
        var summary: [String: Any] = [:]
        for line in result.stdout.split(separator: "\n") {
            let object = try #require(try Shell.json(String(line)) as? [String: Any], "not JSON: \(line)\n\(result)")
            if object["summary"] as? Bool == true { summary = object } else { events.append(object) }
        }
        try #require(!summary.isEmpty, "no summary line: \(result)")
        return (events, summary, result)
    }

    static func probes(_ summary: [String: Any]) throws -> [[String: Any]] {
        try #require(summary["probes"] as? [[String: Any]])
    }

    @Test func everyVethEndTTLAndHopsAgreeWithPathAndReply() throws {
        let scratch = Scratch("trc")
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let (events, summary, result) = try Self.traceJSON([lab.host1, lab.host2, "--count", "3"])
        #expect(result.status == 0, "\(result)")
        let probes = try Self.probes(summary)
        #expect(probes.count == 3)
        for probe in probes {
            let seq = try #require(probe["seq"] as? Int)
            #expect(probe["reply_ttl"] as? Int == 62)
            #expect(probe["observed_routed_hops"] as? Int == 2)
            #expect(probe["reply_routed_hops"] as? Int == 2)
            #expect(probe["agrees"] as? Bool == true, "\(probe["verdict"] ?? "")")
            let mine = events.filter { $0["probe"] as? Int == seq }
            func ends(_ direction: String) -> [String] {
                mine.filter { $0["direction"] as? String == direction && ["xmit", "recv"].contains($0["hook"] as? String ?? "") }
                    .map { "\($0["hook"]!) \($0["netns"]!) \($0["ifname"]!) ttl \($0["ttl"]!)" }
            }
            #expect(ends("request") == [
                "xmit \(lab.host1) eth0 ttl 64", "recv \(lab.router1) e1 ttl 64", "xmit \(lab.router1) e0 ttl 63",
                "recv \(lab.router2) e0 ttl 63", "xmit \(lab.router2) e1 ttl 62", "recv \(lab.host2) eth0 ttl 62",
            ])
            #expect(ends("reply") == [
                "xmit \(lab.host2) eth0 ttl 64", "recv \(lab.router2) e1 ttl 64", "xmit \(lab.router2) e0 ttl 63",
                "recv \(lab.router1) e0 ttl 63", "xmit \(lab.router1) e1 ttl 62", "recv \(lab.host1) eth0 ttl 62",
            ])
        }
        let path = try #require(summary["path"] as? [String: Any])
        #expect(path["routed_hops"] as? Int == 2 && path["delivered"] as? Bool == true)
        #expect(summary["lost"] as? Int == 0)
        // The text view says the same in words.
        let text = nsinspect("trace", lab.host1, lab.host2, "--count", "1")
        #expect(text.stdout.contains("2 routed hops seen = 2 predicted by path = 2 by the reply's ttl (64 − 62): they agree"), "\(text)")
    }

    @Test func aFirewallDropIsReportedInRouter1WithItsReason() throws {
        let scratch = Scratch("drp")
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let nft = Shell.run(["ip", "netns", "exec", lab.router1, "nft", "-f", "-"], input: """
            table inet t {
              chain f { type filter hook forward priority 0; policy accept; ip daddr 10.0.2.10 drop; }
            }
            """)
        try #require(nft.succeeded, "\(nft)")
        let (_, summary, result) = try Self.traceJSON([lab.host1, lab.host2, "--count", "1"])
        #expect(result.status == 1)
        let probe = try #require(try Self.probes(summary).first)
        let verdict = try #require(probe["verdict"] as? String)
        #expect(verdict.hasPrefix("dropped in \(lab.router1) on input from e1: NETFILTER_DROP"), "\(verdict)")
        #expect(verdict.contains("path predicted it to go on to \(lab.router2)"))
        #expect(probe["agrees"] as? Bool == false)
        let there = try #require(probe["there"] as? [[String: Any]])
        #expect(there.last?["netns"] as? String == lab.router1 && there.last?["drop"] as? String == "NETFILTER_DROP")
    }

    @Test func ttlOneEarnsTimeExceededFromRouter1MatchedToItsProbe() throws {
        let scratch = Scratch("ttl")
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let (events, summary, result) = try Self.traceJSON([lab.host1, lab.host2, "--count", "2", "--ttl", "1"])
        #expect(result.status == 0, "\(result)")
        for probe in try Self.probes(summary) {
            let seq = try #require(probe["seq"] as? Int)
            #expect((probe["verdict"] as? String)?.contains("time exceeded (ttl exceeded in transit) from \(lab.router1) after 1 hop, as --ttl 1 asks") == true,
                    "\(probe["verdict"] ?? "")")
            // The error is matched to its probe through the header it quotes.
            let errors = events.filter { $0["probe"] as? Int == seq && $0["direction"] as? String == "error" }
            #expect(errors.contains { $0["netns"] as? String == lab.host1 && $0["hook"] as? String == "recv" && $0["icmp_type"] as? Int == 11 })
            #expect(errors.allSatisfy { $0["src"] as? String == "10.0.1.1" })
        }
    }

    @Test func pathReportsBlackholesMissingRoutesAndForwardingOff() throws {
        let scratch = Scratch("pth")
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let good = try #require(try Shell.json(nsinspect("path", lab.host1, lab.host2, "--json").stdout) as? [String: Any])
        #expect(good["delivered"] as? Bool == true && good["routed_hops"] as? Int == 2)
        #expect((good["hops"] as? [[String: Any]])?.map { $0["netns"] as? String ?? "" } == [lab.host1, lab.router1, lab.router2, lab.host2])

        try Shell.must("ip", "-n", lab.router2, "route", "add", "blackhole", "10.0.2.10/32")
        let blackhole = nsinspect("path", lab.host1, lab.host2)
        #expect(blackhole.status == 1)
        #expect(blackhole.stdout.contains("blackhole in \(lab.router2): blackhole 10.0.2.10/32"), "\(blackhole)")
        // trace sees the probe die in router2, where path said it would: they agree.
        let dropped = nsinspect("trace", lab.host1, lab.host2, "--count", "1")
        #expect(dropped.status == 0 && dropped.stdout.contains("dropped in \(lab.router2)")
                && dropped.stdout.contains("as path predicted (blackhole"), "\(dropped)")
        try Shell.must("ip", "-n", lab.router2, "route", "del", "blackhole", "10.0.2.10/32")

        try Shell.must("ip", "-n", lab.router2, "route", "del", "default")
        let missing = nsinspect("path", lab.host2, lab.host1)
        #expect(missing.status == 1)
        #expect(missing.stdout.contains("no route to 10.0.1.10 in \(lab.router2)"), "\(missing)")
        // trace says so before sending anything when the very first namespace has no route.
        try Shell.must("ip", "-n", lab.host2, "route", "del", "default")
        let unrouted = nsinspect("trace", lab.host2, lab.host1)
        #expect(unrouted.status != 0 && unrouted.stderr.contains("no route to 10.0.1.10; nothing sent"), "\(unrouted)")

        try Shell.must("ip", "netns", "exec", lab.router1, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        let off = nsinspect("path", lab.host1, lab.host2)
        #expect(off.stdout.contains("forwarding is off in \(lab.router1)"), "\(off)")
    }

    @Test func snatInRouter2IsShownAtRouter2() throws {
        let scratch = Scratch("nat")
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let nft = Shell.run(["ip", "netns", "exec", lab.router2, "nft", "-f", "-"], input: """
            table ip n {
              chain post { type nat hook postrouting priority 100; policy accept; oifname "e1" ip saddr 10.0.1.10 snat to 10.0.2.1; }
            }
            """)
        try #require(nft.succeeded, "\(nft)")
        let (_, summary, result) = try Self.traceJSON([lab.host1, lab.host2, "--count", "1"])
        #expect(result.status == 0, "\(result)")
        let probe = try #require(try Self.probes(summary).first)
        let there = try #require(probe["there"] as? [[String: Any]])
        let atRouter2 = try #require(there.first { $0["netns"] as? String == lab.router2 })
        #expect(atRouter2["rewrites"] as? [String] == ["SNAT 10.0.1.10 → 10.0.2.1"])
        #expect(there.filter { !(($0["rewrites"] as? [String]) ?? []).isEmpty }.count == 1)
        // The route lookup the kernel made in router2 for the forwarded probe: the main table, out of e1.
        let route = atRouter2["route"] as? [String: Any]
        #expect(route?["table"] as? String == "main" && route?["out"] as? String == "e1" && route?["error"] == nil, "\(atRouter2)")
        let back = try #require(probe["back"] as? [[String: Any]])
        #expect(back.first { $0["netns"] as? String == lab.router2 }?["rewrites"] as? [String] == ["DNAT 10.0.2.1 → 10.0.1.10"])
        // The conntrack entry that did it, read from router2: original host1 → host2, reply to router2's address.
        let entries = try #require(atRouter2["conntrack"] as? [[String: Any]])
        #expect(entries.count == 1, "\(entries)")
        let original = entries.first?["original"] as? [String: Any], reply = entries.first?["reply"] as? [String: Any]
        #expect(original?["src"] as? String == "10.0.1.10" && original?["dst"] as? String == "10.0.2.10", "\(entries)")
        #expect(reply?["src"] as? String == "10.0.2.10" && reply?["dst"] as? String == "10.0.2.1", "\(entries)")
        // And in the text: one conntrack line for router2, with the NAT column.
        let text = nsinspect("trace", lab.host1, lab.host2, "--count", "1")
        let lines = text.stdout.split(separator: "\n").filter { $0.contains("conntrack in \(lab.router2):") }
        #expect(lines.count == 1 && lines[0].contains("icmp") && lines[0].contains("SNAT"), "\(text)")
    }

    /// SNAT that changes the source port too (as the nat-types lab's fixed mappings do): the probe's
    /// identity no longer matches after router2, and the kernel side follows it by its skb and then by the
    /// rewritten flow, so host2 and the way back are still seen.
    @Test func probesAreFollowedThroughPortChangingSNAT() throws {
        let scratch = Scratch("nap")
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let nft = Shell.run(["ip", "netns", "exec", lab.router2, "nft", "-f", "-"], input: """
            table ip n {
              chain post {
                type nat hook postrouting priority 100; policy accept;
                oifname "e1" ip saddr 10.0.1.10 meta l4proto udp snat to 10.0.2.1:40000
              }
            }
            """)
        try #require(nft.succeeded, "\(nft)")
        let (_, summary, result) = try Self.traceJSON([lab.host1, lab.host2, "--proto", "udp", "--port", "7777", "--count", "1"])
        #expect(result.status == 0, "\(result)")
        let probe = try #require(try Self.probes(summary).first)
        let there = try #require(probe["there"] as? [[String: Any]])
        #expect(there.map { $0["netns"] as? String } == [lab.host1, lab.router1, lab.router2, lab.host2], "\(there)")
        let rewrite = (there.first { $0["netns"] as? String == lab.router2 }?["rewrites"] as? [String])?.first ?? ""
        #expect(rewrite.hasPrefix("SNAT 10.0.1.10:") && rewrite.hasSuffix(" → 10.0.2.1:40000"), "\(there)")
        let back = try #require(probe["back"] as? [[String: Any]])
        #expect(back.first?["netns"] as? String == lab.host2 && back.last?["netns"] as? String == lab.host1, "\(back)")
        #expect(probe["agrees"] as? Bool == true, "\(probe)")
    }

    @Test func udpAndTCPProbesReachTheDestination() throws {
        let scratch = Scratch("l4")
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let udp = nsinspect("trace", lab.host1, lab.host2, "--proto", "udp", "--port", "9999", "--count", "1")
        #expect(udp.status == 0 && udp.stdout.contains("reached \(lab.host2) over 2 routed hops"), "\(udp)")
        let tcp = nsinspect("trace", lab.host1, lab.host2, "--proto", "tcp", "--port", "81", "--count", "1")
        #expect(tcp.status == 0 && tcp.stdout.contains("it answers with a TCP reset"), "\(tcp)")
    }

    @Test func pcapngReadsBackInTshark() throws {
        let scratch = Scratch("pcp")
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let file = NSTemporaryDirectory() + "\(scratch.prefix).pcapng"
        scratch.track(path: file)
        #expect(nsinspect("trace", lab.host1, lab.host2, "--count", "2", "--pcap", file).succeeded)
        let read = Shell.run(["tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "icmp.type", "-e", "frame.comment"])
        #expect(read.succeeded, "\(read)")
        let lines = read.stdout.split(separator: "\n")
        // 2 probes × 6 veth ends each way, echo requests (8) and replies (0), each with its namespace and hook.
        #expect(lines.filter { $0.contains("\t8\t") }.count >= 12)
        #expect(lines.filter { $0.contains("\t0\t") }.count >= 12)
        #expect(lines.contains { $0.hasPrefix("\(lab.router1)/e0\t8\t") && $0.contains("netns=\(lab.router1) hook=xmit") })
    }

    @Test func killNineLeavesNoProgramOrLinkBehind() throws {
        let scratch = Scratch("k9")
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        #expect(try Scratch.bpfPrograms().isEmpty, "nsi_* programs loaded before the test")
        let ready = NSTemporaryDirectory() + "\(scratch.prefix).ready"
        scratch.track(path: ready)
        let pid = try scratch.background([Package.binary, "trace", lab.host1, lab.host2, "--passive", "--duration", "60", "--ready-file", ready])
        let became = Wait.until(timeout: 5, interval: 0.05) { FileManager.default.fileExists(atPath: ready) }
        try #require(became, "the tracer never became ready")
        #expect(try !Scratch.bpfPrograms().isEmpty)
        // The leftover check every test ends with sees a tracer's programs while it runs.
        #expect(Scratch.bpfProgramsLeft().contains { $0.hasPrefix("bpf program nsi_") })
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let left = try Scratch.bpfProgramsAfterRelease()
        #expect(left.isEmpty, "programs left after kill -9: \(left)")
        let links = Shell.run(["bpftool", "-j", "link", "show"]).stdout
        #expect(!links.contains("nsi_"), "\(links)")
    }

    @Test func passiveTraceStopsOnSigtermAndSummarises() throws {
        let scratch = Scratch("pas")
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let ready = NSTemporaryDirectory() + "\(scratch.prefix).ready"
        scratch.track(path: ready)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Package.binary)
        process.arguments = ["trace", lab.host1, lab.host2, "--passive", "--filter", "proto icmp and host 10.0.2.10", "--ready-file", ready]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let became = Wait.until(timeout: 5, interval: 0.05) { FileManager.default.fileExists(atPath: ready) }
        try #require(became)
        try Shell.must("ip", "netns", "exec", lab.host1, "ping", "-c", "2", "-i", "0.2", "-q", "10.0.2.10")
        process.terminate()
        process.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0)
        #expect(text.contains("icmp echo request"), "\(text)")
        // The summary: a row per namespace, interface and hook, in columns.
        let rows = text.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(rows.contains { $0.count == 4 && $0[0] == lab.router1 && $0[1] == "e0" && $0[2] == "xmit" && Int($0[3]) ?? 0 >= 2 }, "\(text)")
        #expect(text.contains("events, 0 lost"), "\(text)")
        // The ready file means "attached now": it is gone once the trace has ended.
        #expect(!FileManager.default.fileExists(atPath: ready))
        #expect(try Scratch.bpfProgramsAfterRelease().isEmpty)
    }

    @Test func badInputIsRefusedBeforeAnythingIsLoaded() throws {
        let scratch = Scratch("tbad")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let empty = try scratch.addNamespace("empty")
        let missing = "nosuch-\(scratch.prefix)"
        let cases: [([String], String)] = [
            (["trace", missing, "host"], "trace: \(missing): no such namespace"),
            (["trace", "host", empty], "trace: \(empty): has no global address to send to"),
            (["trace", empty, "10.9.9.9"], "trace: \(empty): no route to 10.9.9.9; nothing sent"),
            (["trace", "host", "host", "--passive", "--filter", "proto udp and prot 5"], "trace: --filter: unexpected 'prot' at position 14"),
            (["path", missing, "host"], "path: \(missing): no such namespace"),
        ]
        for (arguments, message) in cases {
            let result = nsinspect(arguments: arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        let setpriv = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", Package.binary, "trace", "host", "10.9.9.9"]
        let unprivileged = Shell.run(setpriv)
        #expect(unprivileged.status != 0 && unprivileged.stderr.contains("CAP_BPF"), "\(unprivileged)")
        #expect(try Scratch.bpfProgramsAfterRelease().isEmpty)
    }

    @Test func demoRunsAndLeavesNothing() throws {
        let demo = nsinspect("demo")
        #expect(demo.status == 0, "\(demo)")
        #expect(demo.stdout.contains("reply with ttl 62") && demo.stdout.contains("they agree"))
        #expect(demo.stdout.contains("lab down"))
        let left = Shell.run(["ip", "netns", "list"]).stdout
        #expect(!left.contains("demo-host1") && !left.contains("demo-router1"))
        #expect(try Scratch.bpfProgramsAfterRelease().isEmpty)
    }
}
