import Foundation
import Testing
import TestSupport

/// `nsinspect conntrack NS [--watch]` on the nat-types lab of examples/nat-types.yaml (under the test's own names) and on
/// namespaces of the tests' own: events as c1 talks to c0 through both NATs, the table against
/// `conntrack -L` from conntrack-tools in the same namespace, and bad input.
@Suite("conntrack (end to end)", .serialized)
struct ConntrackCommandTests {
    /// One line of `--watch --json`, parsed.
    static func events(_ lines: [String]) -> [[String: Any]] {
        lines.compactMap { (try? Shell.json($0)) as? [String: Any] }
    }

    /// The event's original tuple is c1's datagram to c0-nat:54321 (10.0.2.1:12345 → 100.64.1.100:54321).
    static func isC1ToC0NAT(_ event: [String: Any]) -> Bool {
        guard let original = event["original"] as? [String: Any] else { return false }
        return original["src"] as? String == "10.0.2.1" && original["dst"] as? String == "100.64.1.100"
            && original["sport"] as? Int == 12345 && original["dport"] as? Int == 54321
    }

    /// Sends one datagram from `ns` (itself, from port 7) to a port of inet and returns: each call makes a
    /// NEW event in `ns`, the canary that tells a watcher is listening.
    static func canary(_ ns: String, to address: String, port: Int) throws {
        _ = try UDPWitness.run(UDPWitness.exchange, ["from": [ns, "0.0.0.0", 0], "to": [address, port]])
    }

    /// Starts `conntrack NS… --watch` and waits until it shows the canary's NEW event from `canaryNS`.
    static func startWatching(_ arguments: [String], canaryNS: String, json: Bool) throws -> BackgroundCommand {
        let watcher = try BackgroundCommand([Package.binary, "conntrack"] + arguments + ["--watch", "--duration", "60"] + (json ? ["--json"] : []))
        let port = Int.random(in: 20000..<30000)
        var ready = false
        for _ in 0..<40 where !ready {
            try canary(canaryNS, to: "100.64.2.254", port: port)
            ready = watcher.waitFor(timeout: 0.5) { $0.contains { $0.contains("\(port)") } }
        }
        if !ready { watcher.stop(kill: true) }
        try #require(ready, "the watcher never showed the canary: \(watcher.stdout) \(watcher.stderr)")
        return watcher
    }

    @Test func watchSeesNewUnrepliedThenUpdateWhenC0Answers() throws {
        let scratch = Scratch("ctw")
        let lab = try NATLab(scratch, example: "nat-types.yaml")
        defer { lab.finish() }
        let (c0, c1, c1nat) = (lab.ns("c0"), lab.ns("c1"), lab.ns("c1-nat"))
        let json = try Self.startWatching([c1nat], canaryNS: c1nat, json: true)
        defer { json.stop(kill: true) }
        let text = try Self.startWatching([c1nat], canaryNS: c1nat, json: false)
        defer { text.stop(kill: true) }

        // c1 (10.0.2.1:12345) → c0-nat's 100.64.1.100:54321, DNAT'ed to c0's 10.0.1.1:12345, which answers.
        let exchange = try UDPWitness.run(UDPWitness.exchange, ["from": [c1, "0.0.0.0", 12345], "to": ["100.64.1.100", 54321],
                                                                 "answerer": [c0, "0.0.0.0", 12345]])
        // c0 sees c1 as c1-nat's mapping; c1 sees the answer come from c0-nat's mapping.
        #expect(exchange["request_from"] as? String == "100.64.2.100:54321", "\(exchange)")
        #expect(exchange["answer_from"] as? String == "100.64.1.100:54321", "\(exchange)")

        let seen = json.waitFor { lines in Self.events(lines).filter(Self.isC1ToC0NAT).count >= 2 }
        let events = Self.events(json.lines).filter(Self.isC1ToC0NAT)
        #expect(seen, "events: \(json.stdout)\n\(json.stderr)")
        try #require(events.count >= 2, "\(json.stdout)")
        let new = events[0], update = events[1]
        #expect(new["netns"] as? String == c1nat)
        #expect(new["event"] as? String == "new" && new["unreplied"] as? Bool == true, "\(new)")
        #expect((new["status"] as? [String])?.contains("SEEN_REPLY") == false)
        let reply = try #require(new["reply"] as? [String: Any])
        #expect(reply["src"] as? String == "100.64.1.100" && reply["dst"] as? String == "100.64.2.100", "\(reply)")
        #expect(reply["sport"] as? Int == 54321 && reply["dport"] as? Int == 54321, "\(reply)")
        let nat = try #require((new["nat"] as? [[String: Any]])?.first)
        #expect(nat["type"] as? String == "snat")
        #expect((nat["to"] as? [String: Any])?["addr"] as? String == "100.64.2.100")
        #expect((nat["to"] as? [String: Any])?["port"] as? Int == 54321)
        #expect(new["timeout"] as? Int == 30)
        #expect(update["event"] as? String == "update" && update["unreplied"] as? Bool == false, "\(update)")
        #expect((update["status"] as? [String])?.contains("SEEN_REPLY") == true)
        #expect(update["id"] as? Int == new["id"] as? Int)

        // The text view: `conntrack -E`'s lines after the namespace's name, and the NAT column.
        let textSeen = text.waitFor { lines in lines.filter { $0.contains("src=10.0.2.1 dst=100.64.1.100 sport=12345 dport=54321") }.count >= 2 }
        #expect(textSeen, "\(text.stdout)")
        let lines = text.lines.filter { $0.contains("src=10.0.2.1 dst=100.64.1.100 sport=12345 dport=54321") }
        try #require(lines.count >= 2, "\(text.stdout)")
        #expect(lines[0].hasPrefix("\(c1nat)  ") && lines[0].contains("[NEW] udp      17 30 ")
                    && lines[0].contains("dport=54321 [UNREPLIED] src=100.64.1.100 dst=100.64.2.100 sport=54321 dport=54321"), "\(lines[0])")
        #expect(lines[0].hasSuffix("SNAT 10.0.2.1:12345 → 100.64.2.100:54321"), "\(lines[0])")
        #expect(lines[1].contains("[UPDATE] udp ") && !lines[1].contains("[UNREPLIED]"), "\(lines[1])")

        // SIGTERM ends a watch cleanly.
        #expect(json.stop() == 0, "\(json.stderr)")
        #expect(text.stop() == 0, "\(text.stderr)")
    }

    /// Several namespaces at once; one of them deleted while watched: the watcher says so and keeps
    /// showing the other's events.
    @Test func watchReportsANamespaceThatGoesAwayAndKeepsWatchingTheOthers() throws {
        let scratch = Scratch("ctg")
        let lab = try NATLab(scratch, example: "nat-types.yaml")
        defer { lab.finish() }
        let (c0nat, c1nat) = (lab.ns("c0-nat"), lab.ns("c1-nat"))
        // A name of the test's own for c0-nat, deleted below (the lab's own name stays for lab down).
        let alias = scratch.name("gone")
        try Shell.must("touch", "/var/run/netns/\(alias)")
        scratch.track(namespace: alias)
        try Shell.must("mount", "--bind", "/var/run/netns/\(c0nat)", "/var/run/netns/\(alias)")
        let watcher = try Self.startWatching([alias, c1nat], canaryNS: c1nat, json: true)
        defer { watcher.stop(kill: true) }
        try Shell.must("ip", "netns", "del", alias)
        let reported = watcher.waitFor { _ in watcher.stderr.contains("\(alias): the namespace is gone") }
        #expect(reported, "stderr: \(watcher.stderr)")
        #expect(watcher.stderr.contains("no longer watched"), "\(watcher.stderr)")
        let port = Int.random(in: 30000..<40000)
        try Self.canary(c1nat, to: "100.64.2.254", port: port)
        #expect(watcher.waitFor { $0.contains { $0.contains("\"netns\":\"\(c1nat)\"") && $0.contains("\(port)") } },
                "the other namespace is no longer watched: \(watcher.stdout)")
        #expect(watcher.stop() == 0)
    }

    /// `conntrack NS` (text and JSON) against `ip netns exec NS conntrack -L` on c1-nat and c0-nat after
    /// traffic through them, with entries of every kind `conntrack -I` adds on top.
    @Test func tableAgreesWithConntrackList() throws {
        let scratch = Scratch("ctl")
        let lab = try NATLab(scratch, example: "nat-types.yaml")
        defer { lab.finish() }
        let (c0, c1, c0nat, c1nat) = (lab.ns("c0"), lab.ns("c1"), lab.ns("c0-nat"), lab.ns("c1-nat"))
        _ = try UDPWitness.run(UDPWitness.exchange, ["from": [c1, "0.0.0.0", 12345], "to": ["100.64.1.100", 54321],
                                                      "answerer": [c0, "0.0.0.0", 12345]])
        _ = try UDPWitness.run(UDPWitness.exchange, ["from": [c0, "0.0.0.0", 0], "to": ["100.64.2.100", 54321]])
        // c1-nat's own ping: inet answers (the entry sees the reply) but c1-nat's INPUT drops it, so ping fails.
        Shell.run(["ip", "netns", "exec", c1nat, "ping", "-c", "1", "-W", "1", "100.64.2.254"])
        for entry in [
            ["-p", "tcp", "-s", "10.0.2.1", "-d", "198.51.100.7", "--sport", "40000", "--dport", "443", "--state", "ESTABLISHED",
             "-u", "SEEN_REPLY,ASSURED", "-t", "3600", "--mark", "7"],
            ["-p", "udp", "-s", "10.0.2.1", "-d", "198.51.100.8", "--sport", "5353", "--dport", "53", "-t", "3600"],
            ["-p", "icmp", "-s", "10.0.2.1", "-d", "198.51.100.9", "--icmp-type", "8", "--icmp-code", "0", "--icmp-id", "77", "-t", "3600"],
            ["-p", "udp", "-s", "2001:db8::1", "-d", "2001:db8::2", "--sport", "1000", "--dport", "2000", "-t", "3600"],
        ] {
            try Shell.must(["ip", "netns", "exec", c1nat, "conntrack", "-I"] + entry)
        }

        for ns in [c1nat, c0nat] {
            let before = try Self.conntrackList(ns)
            let text = nsinspect("conntrack", ns)
            let json = nsinspect("conntrack", ns, "--json")
            let after = try Self.conntrackList(ns)
            #expect(text.succeeded && json.succeeded, "\(text)\n\(json)")
            try #require(!before.isEmpty, "conntrack -L shows nothing in \(ns)")
            // An entry may expire (or appear) between the listings: ours must hold every line both listings
            // have, and only lines one of them has. Timeouts are left out (they tick).
            let stable = Set(before.map(Self.withoutTimeout)).intersection(after.map(Self.withoutTimeout))
            let any = Set(before.map(Self.withoutTimeout)).union(after.map(Self.withoutTimeout))
            let ours = text.stdout.split(separator: "\n").map { Self.withoutTimeout(Self.withoutNAT(String($0))) }
            #expect(Set(ours).count == ours.count, "a line twice: \(text.stdout)")
            #expect(stable.isSubset(of: Set(ours)), "missing in nsinspect:\n\(stable.subtracting(ours).sorted().joined(separator: "\n"))")
            #expect(Set(ours).isSubset(of: any), "not in conntrack -L:\n\(Set(ours).subtracting(any).sorted().joined(separator: "\n"))")
            // Every line of ours that has NAT says so in its last column, and only those.
            for line in text.stdout.split(separator: "\n").map(String.init) {
                let words = line.split(separator: " ").map(String.init)
                let orig = words.filter { $0.hasPrefix("src=") || $0.hasPrefix("dst=") }
                let natted = orig.count == 4 && (orig[0].dropFirst(4) != orig[3].dropFirst(4) || orig[1].dropFirst(4) != orig[2].dropFirst(4))
                #expect(natted == (line.contains("  SNAT ") || line.contains("  DNAT ")), "\(line)")
            }

            // JSON: the same entries, tuple for tuple, with their flags.
            let entries = try #require(try Shell.json(json.stdout) as? [[String: Any]])
            let jsonLines = Set(entries.map(Self.conntrackLine))
            #expect(stable.isSubset(of: jsonLines), "missing in --json:\n\(stable.subtracting(jsonLines).sorted().joined(separator: "\n"))")
            #expect(jsonLines.isSubset(of: any), "not in conntrack -L:\n\(jsonLines.subtracting(any).sorted().joined(separator: "\n"))")
        }
    }

    /// `ip netns exec NS conntrack -L`'s lines (its summary goes to stderr).
    static func conntrackList(_ ns: String) throws -> [String] {
        try Shell.must("ip", "netns", "exec", ns, "conntrack", "-L").split(separator: "\n").map(String.init)
    }

    /// A line with its timeout (the third word) replaced, and runs of spaces made one.
    static func withoutTimeout(_ line: String) -> String {
        var words = line.split(separator: " ").map(String.init)
        if words.count > 2 { words[2] = "T" }
        return words.joined(separator: " ")
    }

    /// Our line without the NAT column (two spaces, then `SNAT …` or `DNAT …`).
    static func withoutNAT(_ line: String) -> String {
        for marker in ["  SNAT ", "  DNAT "] {
            if let range = line.range(of: marker) { return String(line[..<range.lowerBound]) }
        }
        return line
    }

    /// A JSON entry written back as `conntrack -L` writes it (timeout left out as in `withoutTimeout`).
    static func conntrackLine(_ e: [String: Any]) -> String {
        func tuple(_ t: [String: Any]?) -> [String] {
            guard let t else { return [] }
            var words = ["src=\(t["src"] ?? "?")", "dst=\(t["dst"] ?? "?")"]
            if let type = t["type"] { words += ["type=\(type)", "code=\(t["code"] ?? "?")", "id=\(t["id"] ?? "?")"] }
            if let sport = t["sport"] { words += ["sport=\(sport)", "dport=\(t["dport"] ?? "?")"] }
            if let packets = t["packets"] { words += ["packets=\(packets)", "bytes=\(t["bytes"] ?? "?")"] }
            return words
        }
        var words = ["\(e["protocol"] ?? "?")", "\(e["protonum"] ?? "?")", "T"]
        if let state = e["state"] { words.append("\(state)") }
        words += tuple(e["original"] as? [String: Any])
        if e["unreplied"] as? Bool == true { words.append("[UNREPLIED]") }
        words += tuple(e["reply"] as? [String: Any])
        if e["assured"] as? Bool == true { words.append("[ASSURED]") }
        if let mark = e["mark"] { words.append("mark=\(mark)") }
        if let zone = e["zone"] { words.append("zone=\(zone)") }
        if let use = e["use"] { words.append("use=\(use)") }
        return words.joined(separator: " ")
    }

    // MARK: Bad input

    @Test func namespaceWithoutConntrackSaysSoAndSucceeds() throws {
        let scratch = Scratch("ctn")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let ns = try scratch.addNamespace("empty")
        let text = nsinspect("conntrack", ns)
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout == "\(ns): no conntrack table yet (no connection is tracked in this namespace)\n", "\(text)")
        let json = nsinspect("conntrack", ns, "--json")
        #expect(json.status == 0, "\(json)")
        #expect((try? Shell.json(json.stdout) as? [Any])?.isEmpty == true, "\(json)")
        #expect(json.stderr.contains("no conntrack table yet"), "\(json)")
        // --nat-only on a table without NAT says that instead.
        try Shell.must("ip", "netns", "exec", ns, "conntrack", "-I", "-p", "udp", "-s", "192.0.2.1", "-d", "192.0.2.2",
                       "--sport", "1", "--dport", "2", "-t", "60")
        let natOnly = nsinspect("conntrack", ns, "--nat-only")
        #expect(natOnly.status == 0 && natOnly.stdout == "\(ns): no NAT entries (1 entry without NAT)\n", "\(natOnly)")
    }

    @Test func helpIsPrintedAndSucceeds() {
        for arguments in [["conntrack", "--help"], ["natcheck", "--help"], ["--help"]] {
            let result = nsinspect(arguments: arguments)
            #expect(result.status == 0 && result.stdout.hasPrefix("OVERVIEW: ") && result.stderr.isEmpty, "\(result)")
        }
    }

    @Test func unknownNamespaceIsOneLineAndNonZero() throws {
        let scratch = Scratch("ctu")
        defer { scratch.cleanup() }
        let missing = scratch.name("missing")
        for arguments in [["conntrack", missing], ["conntrack", missing, "--json"], ["conntrack", missing, "--watch", "--duration", "1"]] {
            let result = nsinspect(arguments: arguments)
            #expect(result.status != 0, "\(result)")
            #expect(result.stdout.isEmpty || result.stdout == "[]\n", "\(result)")
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("conntrack: ") && lines[0].contains(missing), "\(result)")
        }
        let bad = nsinspect("conntrack", missing, "--duration", "1")
        #expect(bad.status != 0 && bad.stderr.contains("--duration and --count go with --watch"), "\(bad)")
    }
}
