import Foundation
import Testing
import TestSupport

/// Real switches nobody here wrote: Open vSwitch with its userspace (netdev) datapath, started by hand
/// as Mininet needs it on a kernel without the openvswitch module, and Mininet itself, driven from its
/// Python API. Both leave the host as they found it.
@Suite("Open vSwitch and Mininet (end to end)", .serialized)
struct SwitchTests {
    typealias Trace = TraceCommandTests

    static let tools = Package.root.appendingPathComponent("Tests/tools")

    /// A private Open vSwitch: every file under `directory`, stopped (bridges, daemons, taps) by `stop()`.
    struct PrivateOVS {
        let directory: String
        let script = SwitchTests.tools.appendingPathComponent("ovs.sh").path

        init(_ scratch: Scratch) throws {
            directory = "/tmp/\(scratch.prefix)-ovs"
            let start = Shell.run([script, "start", directory])
            guard start.succeeded else {
                Shell.run([script, "stop", directory])
                throw SetupFailed("Open vSwitch did not start (userspace datapath, private directory \(directory)): \(start)")
            }
        }

        @discardableResult
        func vsctl(_ arguments: String...) throws -> String { try Shell.must([script, "vsctl", directory] + arguments) }

        func stop() { Shell.run([script, "stop", directory]) }
    }

    /// What the host has of Open vSwitch and Mininet, to compare before and after.
    static func hostState() -> [String] {
        let links = Shell.run(["ip", "-o", "link", "show"]).stdout.split(separator: "\n")
            .compactMap { $0.split(separator: ":").dropFirst().first?.trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasPrefix("ovs-netdev") || $0.hasPrefix("s1") || $0.hasPrefix("s2") || $0.contains("-eth") }
        let daemons = Shell.run(["ps", "-eo", "stat=,comm="]).stdout.split(separator: "\n")
            .filter { !$0.hasPrefix("Z") && ($0.hasSuffix("ovs-vswitchd") || $0.hasSuffix("ovsdb-server") || $0.hasSuffix("mnexec")) }
            .map(String.init)
        let rundir = (try? FileManager.default.contentsOfDirectory(atPath: "/var/run/openvswitch")) ?? []
        return links.sorted() + daemons + rundir.map { "/var/run/openvswitch/\($0)" }
    }

    @Test func openVSwitchUserspaceIsNamedFromItsDatabaseAndTracedThrough() throws {
        let scratch = Scratch("ovs")
        let before = Self.hostState()
        let ovs = try PrivateOVS(scratch)
        let bridge = scratch.linkName("br")
        defer {
            ovs.stop()
            scratch.cleanup()
            #expect(scratch.leftovers().isEmpty)
            #expect(Self.hostState() == before)
        }
        // a ── [host: pa — OVS bridge (netdev, standalone: a learning switch) — pb] ── b
        let a = try scratch.addNamespace("a"), b = try scratch.addNamespace("b")
        for (ns, port, address) in [(a, scratch.linkName("pa"), "10.9.4.1/24"), (b, scratch.linkName("pb"), "10.9.4.2/24")] {
            try Shell.must("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            scratch.track(hostLink: port)
            try Shell.must("ip", "link", "set", port, "up")
            try Shell.must("ip", "-n", ns, "link", "set", "lo", "up")
            try Shell.must("ip", "-n", ns, "addr", "add", address, "dev", "eth0")
            try Shell.must("ip", "-n", ns, "link", "set", "eth0", "up")
        }
        try ovs.vsctl("add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev", "fail_mode=standalone",
                      "--", "add-port", bridge, scratch.linkName("pa"), "--", "add-port", bridge, scratch.linkName("pb"))

        let graph = nsinspect("graph")
        #expect(graph.stdout.contains("switch  \(bridge) (Open vSwitch) in host: \(scratch.linkName("pa")) (── eth0 \(a))"), "\(graph)")
        let path = nsinspect("path", a, b)
        #expect(path.status == 0 && path.stdout.contains("Open vSwitch \(bridge) in host: port \(scratch.linkName("pb"))"), "\(path)")

        let (_, summary, result) = try Trace.traceJSON([a, b, "--count", "3"])
        #expect(result.status == 0, "\(result)")
        for hops in try Layer2TraceTests.checkAgreeing(summary, routed: 0) {
            #expect(hops.count == 1)
            #expect(hops.first?["kind"] as? String == "openvswitch")
            #expect(hops.first?["name"] as? String == bridge)
        }

        // UDP: the datagram crosses the switch with the sender's unfinished checksum; b drops it.
        let udp = nsinspect("trace", a, b, "--proto", "udp", "--count", "1")
        #expect(udp.status == 1, "\(udp)")
        #expect(udp.stdout.contains("verdict: dropped in \(b) on input from eth0: UDP_CSUM"), "\(udp)")
        try Shell.must("ip", "netns", "exec", a, "ethtool", "-K", "eth0", "tx", "off")
        let fixed = nsinspect("trace", a, b, "--proto", "udp", "--count", "1")
        #expect(fixed.status == 0 && fixed.stdout.contains("port unreachable"), "\(fixed)")
    }

    /// Mininet's topology: h1, h2 on a Linux bridge s1; router r1; h3 behind an OVS userspace switch s2.
    struct MininetTopology {
        let ready: String, stop: String, log: String
        let process: Int32
        let description: [String: Any]

        init(_ scratch: Scratch) throws {
            // Locals, so that the waiting below can use them before `self` is whole.
            let ready = "/tmp/\(scratch.prefix)-mininet-ready"
            let stop = "/tmp/\(scratch.prefix)-mininet-stop"
            let log = "/tmp/\(scratch.prefix)-mininet.log"
            self.ready = ready; self.stop = stop; self.log = log
            for path in [ready, stop, log] { scratch.track(path: path) }
            guard FileManager.default.fileExists(atPath: "/usr/lib/python3/dist-packages/mininet/net.py") else {
                throw SetupFailed("Mininet is not installed for /usr/bin/python3 (apt-get install mininet)")
            }
            let script = SwitchTests.tools.appendingPathComponent("mininet-topo.py").path
            let process = try scratch.background(["sh", "-c", "exec /usr/bin/python3 \"$0\" \"$@\" >\(log) 2>&1", script,
                                                  "--ready-file", ready, "--stop-file", stop, "--ovs-dir", "/tmp/\(scratch.prefix)-mnovs"])
            self.process = process
            // Up to 15 s for the ready file, unless Mininet ends first.
            _ = Wait.until(timeout: 15, interval: 0.05) { FileManager.default.fileExists(atPath: ready) || MininetTopology.exited(process) }
            guard let data = FileManager.default.contents(atPath: ready),
                let description = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
            else {
                // The test's `defer` is not set until this returns: take Mininet down here.
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? "no log"
                Self.down(stopFile: stop, process: process)
                scratch.cleanup()
                throw SetupFailed("Mininet did not come up: \(text)")
            }
            self.description = description
        }

        func pid(of host: String) -> Int? { ((description["hosts"] as? [String: Any])?[host] as? [String: Any])?["pid"] as? Int }

        /// Asks Mininet to tear down (its own net.stop) and waits for it.
        func down() { Self.down(stopFile: stop, process: process) }

        static func down(stopFile: String, process: Int32) {
            FileManager.default.createFile(atPath: stopFile, contents: nil)
            _ = Wait.until(timeout: 10, interval: 0.05) { exited(process) }
        }

        /// Whether the process has ended: reaped here now (an exited child stays visible to `kill(pid, 0)`
        /// until it is reaped), reaped already (ECHILD: by an earlier call, or by whoever waited first), or
        /// gone. It never blocks; once the child is reaped, a later `down()` answers at once and
        /// `Scratch.cleanup()`'s waitpid gets ECHILD at once.
        static func exited(_ pid: Int32) -> Bool {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            return reaped == pid || (reaped == -1 && errno == ECHILD) || kill(pid, 0) != 0
        }
    }

    @Test func mininetTopologyIsListedAndTracedAsMininetSeesIt() throws {
        let scratch = Scratch("mn")
        let before = Self.hostState()
        let topology = try MininetTopology(scratch)
        defer {
            topology.down()
            scratch.cleanup()
            #expect(scratch.leftovers().isEmpty)
            #expect(Self.hostState() == before, "Mininet left something: \((try? String(contentsOfFile: topology.log, encoding: .utf8)) ?? "")")
        }
        let list = try CensusCommandTests.listJSON()
        for host in ["h1", "h2", "h3", "r1"] {
            let pid = try #require(topology.pid(of: host))
            let entry = CensusCommandTests.entry(list, holding: pid)
            #expect(CensusCommandTests.references(entry).contains("mininet:\(host)"), "\(host)")
        }
        #expect(nsinspect("show", "mininet:s1").stderr.contains("stays in the host namespace"))

        // Mininet's own ping, and the trace.
        let h1 = try #require(topology.pid(of: "h1"))
        let ping = try Shell.must("nsenter", "-t", String(h1), "-n", "ping", "-c", "1", "-W", "2", "10.0.2.1")
        let ttl = try #require(ping.split(separator: " ").first { $0.hasPrefix("ttl=") }.flatMap { Int($0.dropFirst(4)) })
        #expect(ttl == 63)
        let (_, summary, result) = try Trace.traceJSON(["mininet:h1", "mininet:h3", "--count", "3"])
        #expect(result.status == 0, "\(result)")
        for probe in try Trace.probes(summary) { #expect(probe["reply_ttl"] as? Int == ttl) }
        for hops in try Layer2TraceTests.checkAgreeing(summary, routed: 1) {
            #expect(hops.map { "\($0["kind"]!) \($0["name"]!)" } == ["bridge s1", "openvswitch s2"])
        }
        let path = nsinspect("path", "mininet:h1", "mininet:h3")
        #expect(path.stdout.contains("bridge s1 in host: port s1-eth3") && path.stdout.contains("Open vSwitch s2 in host: port s2-eth2"), "\(path)")
        let local = nsinspect("trace", "mininet:h1", "mininet:h2", "--count", "2")
        #expect(local.status == 0 && local.stdout.contains("host (bridge s1: s1-eth1 → s1-eth2, ttl 64)"), "\(local)")
    }
}
