import Foundation
import Testing
import TestSupport

/// Real container runtimes, run the way this kind of host can run them: Docker and podman each in a
/// network and mount namespace of their own (docker-in-docker style, which keeps their bridges and
/// firewall rules out of the namespace the other tests use, and is the census's hard case: the
/// containers' namespace files are mounted only inside the engine's mount namespace), systemd-nspawn
/// without machined, and runc and crun on a network namespace the CNI bridge plugin wired the way
/// containerd does. The tools in Tests/tools start and stop them; nothing is skipped.
@Suite("container runtimes (end to end)", .serialized)
struct RuntimeTests {
    typealias Trace = TraceCommandTests
    typealias Census = CensusCommandTests

    /// A runtime started by one of Tests/tools/*.sh: `up` prints KEY=VALUE lines, `down` undoes it.
    final class Runtime {
        let tool: String
        let state: String
        let arguments: [String]
        private(set) var values: [String: String] = [:]

        init(_ tool: String, state: String, _ arguments: [String]) throws {
            self.tool = Package.root.appendingPathComponent("Tests/tools/\(tool)").path
            self.state = state
            self.arguments = arguments
            let up = Shell.run([self.tool, "up", state] + arguments, timeout: 180)
            guard up.succeeded else {
                down()
                throw SetupFailed("\(tool) up: \(up)")
            }
            for line in up.stdout.split(separator: "\n") {
                guard let equals = line.firstIndex(of: "="), !line.contains(" ") else { continue }
                values[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
        }

        subscript(key: String) -> String? { values[key].flatMap { $0.isEmpty ? nil : $0 } }

        func value(_ key: String) throws -> String {
            try #require(self[key], "\(tool) printed no \(key): \(values)")
        }

        func down() {
            let result = Shell.run([tool, "down", state] + arguments, timeout: 180)
            #expect(result.succeeded, "\(tool) down: \(result)")
        }
    }

    /// Interface → its IPv4 addresses (`a.b.c.d/len`), from `ip -j addr`-shaped JSON.
    static func ipv4(_ list: [[String: Any]]) throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for link in list {
            let name = try #require(link["ifname"] as? String)
            let info = link["addr_info"] as? [[String: Any]] ?? []
            result[name] = info.filter { $0["family"] as? String == "inet" }.compactMap { info in
                (info["local"] as? String).map { "\($0)/\(info["prefixlen"] as? Int ?? 0)" }
            }.sorted()
        }
        return result
    }

    /// What `ip -j addr` says inside a process's namespace.
    static func addresses(pid: String) throws -> [String: [String]] {
        let out = try Shell.must("nsenter", "-t", pid, "-n", "ip", "-j", "addr")
        return try ipv4(try #require(try Shell.json(out) as? [[String: Any]]))
    }

    /// The same from `nsinspect show NS addrs --json`.
    static func shownAddresses(_ reference: String) throws -> [String: [String]] {
        let result = nsinspect("show", reference, "addrs", "--json")
        try #require(result.succeeded, "\(result)")
        return try ipv4(try #require(try Shell.json(result.stdout) as? [[String: Any]], "\(result.stdout)"))
    }

    @Test func dockerContainersAreNamedShownAdoptedGraphedAndTraced() throws {
        let scratch = Scratch("dk")
        let docker = try Runtime("docker.sh", state: "/tmp/\(scratch.prefix)-docker", [scratch.prefix])
        let web = "\(scratch.prefix)-web", db = "\(scratch.prefix)-db", none = "\(scratch.prefix)-none"
        defer {
            for name in ["docker-\(web)", "docker-\(db)", "docker-\(none)"] { nsinspect("forget", name) }
            docker.down()
            scratch.cleanup()
            #expect(scratch.leftovers().isEmpty)
        }
        let engine = try docker.value("NETNS")
        // Named with their PIDs, though their namespace files and data root are in dockerd's mount namespace.
        for (name, key) in [(web, "WEB_PID"), (db, "DB_PID"), (none, "NONE_PID")] {
            let pid = try docker.value(key)
            #expect(Census.references(try Census.entry(holding: Int(pid) ?? -1)).contains("docker:\(name)"), "\(name) (pid \(pid))")
        }
        // show equals what ip says inside the container.
        let webPID = try docker.value("WEB_PID")
        #expect(try Self.shownAddresses("docker:\(web)") == Self.addresses(pid: webPID))
        #expect(try Self.shownAddresses("docker:\(web)")["eth0"] == ["\(try docker.value("WEB_IP"))/16"])

        // graph: docker0 in dockerd's namespace, with the two containers' veths as ports.
        let graph = try #require(try Shell.json(nsinspect("graph", "--json").stdout) as? [String: Any])
        let bridges = try #require(graph["bridges"] as? [[String: Any]])
        let docker0 = try #require(bridges.first { $0["ifname"] as? String == "docker0" && $0["netns"] as? String == engine })
        let peers = (docker0["ports"] as? [[String: Any]] ?? []).compactMap { ($0["peer"] as? [String: Any])?["netns"] as? String }
        #expect(Set(peers).isSuperset(of: ["docker:\(web)", "docker:\(db)"]), "\(docker0)")

        // adopt --auto: ip netns exec works by the new names (which `list` and `graph` then prefer).
        let adopt = nsinspect("adopt", "--auto")
        #expect(adopt.succeeded && adopt.stdout.contains("docker-\(web)"), "\(adopt)")
        let inside = try Shell.must("ip", "netns", "exec", "docker-\(web)", "ip", "-o", "-4", "addr", "show", "eth0")
        #expect(inside.contains(try docker.value("WEB_IP")))

        // web → db across docker0: a bridge, no routed hop.
        let (_, summary, result) = try Trace.traceJSON(["docker:\(web)", "docker:\(db)", "--count", "3"])
        #expect(result.status == 0, "\(result)")
        for hops in try Layer2TraceTests.checkAgreeing(summary, routed: 0) {
            #expect(hops.map { "\($0["kind"]!) \($0["name"]!)" } == ["bridge docker0"])
        }

        // Out of Docker's network to an outside namespace: routed (and masqueraded) by dockerd's
        // namespace through Docker's own rules; a DOCKER-USER rule that drops it is named.
        let outside = try scratch.addNamespace("out")
        let uplink = scratch.linkName("up")
        try Shell.must("ip", "-n", engine, "link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", outside)
        try Shell.must("ip", "-n", engine, "addr", "add", "10.9.8.1/24", "dev", uplink)
        try Shell.must("ip", "-n", engine, "link", "set", uplink, "up")
        try Shell.must("ip", "-n", outside, "addr", "add", "10.9.8.2/24", "dev", "eth0")
        try Shell.must("ip", "-n", outside, "link", "set", "eth0", "up")
        try Shell.must("ip", "-n", outside, "link", "set", "lo", "up")
        let out = nsinspect("trace", "docker:\(web)", "10.9.8.2", "--count", "2")
        #expect(out.status == 0, "\(out)")
        // In from docker0 (by the container's veth port), routed out of the uplink.
        #expect(out.stdout.contains("\(engine) (docker0 (port veth"), "\(out)")
        #expect(out.stdout.contains(" → \(uplink), ttl 64→63)"), "\(out)")
        #expect(out.stdout.contains("SNAT \(try docker.value("WEB_IP")) → 10.9.8.1"), "\(out)")
        try Shell.must("ip", "netns", "exec", engine, "iptables", "-I", "DOCKER-USER", "-d", "10.9.8.2/32", "-j", "DROP")
        let dropped = nsinspect("trace", "docker:\(web)", "10.9.8.2", "--count", "1")
        #expect(dropped.status == 1, "\(dropped)")
        #expect(dropped.stdout.contains("verdict: dropped in \(engine)") && dropped.stdout.contains("NETFILTER_DROP"), "\(dropped)")
    }

    @Test func podmanContainersAreNamedShownAndTraced() throws {
        let scratch = Scratch("pm")
        let podman = try Runtime("podman.sh", state: "/tmp/\(scratch.prefix)-podman", [scratch.prefix])
        let web = "\(scratch.prefix)-web", db = "\(scratch.prefix)-db", none = "\(scratch.prefix)-none"
        defer {
            podman.down()
            scratch.cleanup()
            #expect(scratch.leftovers().isEmpty)
        }
        for (name, key) in [(web, "WEB_PID"), (db, "DB_PID"), (none, "NONE_PID")] {
            let pid = try podman.value(key)
            #expect(Census.references(try Census.entry(holding: Int(pid) ?? -1)).contains("podman:\(name)"), "\(name) (pid \(pid))")
        }
        #expect(try Self.shownAddresses("podman:\(db)") == Self.addresses(pid: try podman.value("DB_PID")))
        let (_, summary, result) = try Trace.traceJSON(["podman:\(web)", "podman:\(db)", "--count", "3"])
        #expect(result.status == 0, "\(result)")
        for hops in try Layer2TraceTests.checkAgreeing(summary, routed: 0) {
            #expect(hops.map { $0["name"] as? String } == [try podman.value("BRIDGE")])
        }
    }

    @Test(arguments: ["none", "scope"])
    func nspawnMachinesAreNamedWithAndWithoutMachined(cgroup: String) throws {
        let scratch = Scratch("ns")
        let machine = "\(scratch.prefix)b"
        let nspawn = try Runtime("nspawn.sh", state: "/tmp/\(scratch.prefix)-nspawn", [machine, "--cgroup", cgroup])
        defer {
            nspawn.down()
            scratch.cleanup()
            #expect(scratch.leftovers().isEmpty)
        }
        let leader = try nspawn.value("LEADER_PID")
        let entry = try Census.entry(holding: Int(leader) ?? -1)
        #expect(Census.references(entry).contains("nspawn:\(machine)"), "\(entry ?? [:])")
        let netns = try nspawn.value("NETNS")
        #expect((entry?["ns"] as? Int).map(String.init) == netns)
        let show = nsinspect("show", "nspawn:\(machine)", "links")
        #expect(show.succeeded && show.stdout.contains("host0"), "\(show)")
        let graph = nsinspect("graph", "nspawn:\(machine)")
        let veth = try nspawn.value("VETH")
        #expect(graph.stdout.contains("host0 nspawn:\(machine)") && graph.stdout.contains(veth), "\(graph)")
    }

    @Test(arguments: ["runc", "crun"])
    func ociContainersOnACNINetworkAreFound(runtime: String) throws {
        let scratch = Scratch(runtime == "runc" ? "rc" : "cr")
        let id = "\(scratch.prefix)c"
        let oci = try Runtime("oci.sh", state: "/tmp/\(scratch.prefix)-oci", [runtime, id])
        defer {
            oci.down()
            scratch.cleanup()
            #expect(scratch.leftovers().isEmpty)
        }
        let pid = try oci.value("PID"), netns = try oci.value("NETNS_NAME")
        let entry = try Census.entry(holding: Int(pid) ?? -1)
        #expect(Census.references(entry).contains(netns), "\(entry ?? [:])")
        #expect((entry?["ip_netns"] as? Bool) == true)
        #expect(try Self.shownAddresses(netns) == Self.addresses(pid: pid))
        #expect(try Self.shownAddresses(String(pid))["eth0"]?.first?.hasPrefix(try oci.value("IP")) == true)
        let graph = nsinspect("graph", netns)
        #expect(graph.stdout.contains("bridge  \(try oci.value("BRIDGE")) in host"), "\(graph)")
    }
}
