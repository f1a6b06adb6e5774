import Foundation
import Testing
import TestSupport

/// `show`, `dump` and `graph` on labs built with `ip`, compared with what `ip -j` says of the same thing.
@Suite("show, dump, graph (end to end)", .serialized)
struct InspectionCommandTests {
    static func json(_ arguments: String...) throws -> Any {
        let result = nsinspect(arguments: arguments)
        try #require(result.succeeded, "\(result)")
        return try Shell.json(result.stdout)
    }

    static func ipJSON(_ ns: String, _ object: String...) throws -> [[String: Any]] {
        try #require(try Shell.json(try Shell.must(["ip", "-n", ns, "-j"] + object)) as? [[String: Any]])
    }

    /// Every key both objects have must hold the same value (numbers compared as numbers).
    static func expectAgree(_ ours: [String: Any], _ theirs: [String: Any], _ what: String,
                            skipping: Set<String> = []) {
        let shared = Set(ours.keys).intersection(theirs.keys).subtracting(skipping)
        #expect(!shared.isEmpty, "\(what): no field in common")
        for key in shared.sorted() {
            let a = ours[key]!, b = theirs[key]!
            #expect(NSDictionary(dictionary: ["v": a]).isEqual(to: ["v": b]), "\(what).\(key): nsinspect \(a), ip \(b)")
        }
    }

    @Test func showAgreesWithIPOnEveryFieldBothHave() throws {
        let scratch = Scratch("show")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let lab = try TwoRoutersLab(scratch)
        let ping = try lab.ping()
        #expect(ping.contains("ttl=62"))
        let shown = try #require(try Self.json("show", lab.router1, "--json") as? [String: Any])

        let links = try #require(shown["links"] as? [[String: Any]])
        let ipLinks = try Self.ipJSON(lab.router1, "link", "show")
        #expect(links.count == ipLinks.count)
        for theirs in ipLinks {
            let mine = try #require(links.first { $0["ifindex"] as? Int == theirs["ifindex"] as? Int })
            // Operational state may move between the two reads right after a ping (carrier settling).
            Self.expectAgree(mine, theirs, "link \(theirs["ifname"] ?? "?")", skipping: ["operstate"])
        }

        // IPv6 link-local addresses appear a moment after a link comes up, so ours are read after ip's:
        // every address ip saw is there by then.
        let ipAddrs = try Self.ipJSON(lab.router1, "addr", "show")
        let shownAfter = try #require(try Self.json("show", lab.router1, "--json") as? [String: Any])
        let addrs = try #require(shownAfter["addrs"] as? [[String: Any]])
        for theirs in ipAddrs {
            let mine = try #require(addrs.first { $0["ifindex"] as? Int == theirs["ifindex"] as? Int })
            let ourInfo = try #require(mine["addr_info"] as? [[String: Any]])
            let theirInfo = try #require(theirs["addr_info"] as? [[String: Any]])
            for info in theirInfo {
                let match = try #require(ourInfo.first { $0["local"] as? String == info["local"] as? String },
                                         "address \(info["local"] ?? "?") missing")
                Self.expectAgree(match, info, "addr \(info["local"] ?? "?")",
                                 skipping: ["valid_life_time", "preferred_life_time", "tentative"])
            }
        }

        let routes = try #require(shown["routes"] as? [[String: Any]])
        let mainRoutes = routes.filter { $0["table"] == nil }
        for theirs in try Self.ipJSON(lab.router1, "route", "show") {
            let mine = try #require(mainRoutes.first { $0["dst"] as? String == theirs["dst"] as? String },
                                    "route \(theirs["dst"] ?? "?") missing")
            Self.expectAgree(mine, theirs, "route \(theirs["dst"] ?? "?")")
        }
        for theirs in try Self.ipJSON(lab.router1, "-6", "route", "show") {
            #expect(mainRoutes.contains { $0["dst"] as? String == theirs["dst"] as? String }, "IPv6 route \(theirs["dst"] ?? "?")")
        }
    }

    @Test func arpEntryCarriesTheRoutersMACAndPeersAreNamed() throws {
        let scratch = Scratch("arp")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let lab = try TwoRoutersLab(scratch)
        try lab.ping()
        let neighbours = try #require(try Self.json("show", lab.host1, "neigh", "--json") as? [[String: Any]])
        let entry = try #require(neighbours.first { $0["dst"] as? String == "10.0.1.1" })
        let routerLinks = try #require(try Self.json("show", lab.router1, "links", "--json") as? [[String: Any]])
        let e1 = try #require(routerLinks.first { $0["ifname"] as? String == "e1" })
        #expect(entry["lladdr"] as? String == e1["address"] as? String)
        #expect((entry["state"] as? [String])?.isEmpty == false)
        // The peer is named, where ip says only "link-netnsid N".
        let peer = try #require(e1["peer"] as? [String: Any])
        #expect(peer["ifname"] as? String == "eth0" && peer["netns"] as? String == lab.host1)
        let text = nsinspect("show", lab.router1, "links").stdout
        #expect(text.contains("eth0 in \(lab.host1)") && text.contains("e0 in \(lab.router2)"))
    }

    @Test func graphHasExactlyTheThreeVethEdgesAndRenders() throws {
        let scratch = Scratch("grph")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let lab = try TwoRoutersLab(scratch)
        let names = Set([lab.host1, lab.router1, lab.router2, lab.host2])
        let graph = try #require(try Self.json("graph", "--format", "json") as? [String: Any])
        let veths = try #require(graph["veths"] as? [[String: Any]])
        func end(_ e: Any?) -> String {
            let d = e as? [String: Any] ?? [:]
            return "\(d["netns"] as? String ?? "?")/\(d["ifname"] as? String ?? "?")"
        }
        let ours = veths.filter { names.contains(($0["a"] as? [String: Any])?["netns"] as? String ?? "") }
        let edges = Set(ours.map { [end($0["a"]), end($0["b"])].sorted().joined(separator: " — ") })
        #expect(edges == [
            ["\(lab.host1)/eth0", "\(lab.router1)/e1"].sorted().joined(separator: " — "),
            ["\(lab.router1)/e0", "\(lab.router2)/e0"].sorted().joined(separator: " — "),
            ["\(lab.router2)/e1", "\(lab.host2)/eth0"].sorted().joined(separator: " — "),
        ])
        #expect(ours.count == 3)

        let dot = nsinspect("graph", lab.router1, "--format", "dot")
        #expect(dot.succeeded)
        let svg = Shell.run(["dot", "-Tsvg"], input: dot.stdout)
        #expect(svg.succeeded && svg.stdout.contains("<svg"), "\(svg)")
        // SVG text escapes '-' as &#45;.
        func svgText(_ s: String) -> String { s.replacingOccurrences(of: "-", with: "&#45;") }
        #expect(svg.stdout.contains(svgText(lab.router1)) && svg.stdout.contains(svgText(lab.host1)))
        let mermaid = nsinspect("graph", lab.host1, lab.host2, "--format", "mermaid").stdout
        let lines = mermaid.split(separator: "\n")
        #expect(lines.first == "graph LR")
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix("  ") })
        // Both hosts and their neighbours (the two routers): all three veth edges are among them.
        #expect(lines.filter { $0.contains("---|") }.count == 3)
        let text = nsinspect("graph", lab.router1).stdout
        // An edge is written from the namespace with the lower inode; inode numbers are reused, so either
        // end may come first.
        #expect(text.contains("\(lab.host1) eth0  ──  e1 \(lab.router1)") || text.contains("\(lab.router1) e1  ──  eth0 \(lab.host1)"),
                "\(text)")
    }

    @Test func bridgeLabShowsTheBridgeAndItsPorts() throws {
        let scratch = Scratch("brdg")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let sw = try scratch.addNamespace("sw")
        try Shell.must("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        try Shell.must("ip", "-n", sw, "link", "set", "br0", "up")
        var hosts: [String] = []
        for i in 1...3 {
            let host = try scratch.addNamespace("h\(i)")
            hosts.append(host)
            try Shell.must("ip", "link", "add", "eth0", "netns", host, "type", "veth", "peer", "name", "p\(i)", "netns", sw)
            try Shell.must("ip", "-n", sw, "link", "set", "p\(i)", "master", "br0", "up")
            try Shell.must("ip", "-n", host, "addr", "add", "192.168.77.\(10 + i)/24", "dev", "eth0")
            try Shell.must("ip", "-n", host, "link", "set", "eth0", "up")
        }
        let graph = try #require(try Self.json("graph", sw, "--format", "json") as? [String: Any])
        let bridges = try #require(graph["bridges"] as? [[String: Any]])
        let bridge = try #require(bridges.first { $0["netns"] as? String == sw && $0["ifname"] as? String == "br0" })
        let ports = try #require(bridge["ports"] as? [[String: Any]])
        #expect(Set(ports.compactMap { $0["ifname"] as? String }) == ["p1", "p2", "p3"])
        let peers = Set(ports.compactMap { ($0["peer"] as? [String: Any]).map { "\($0["netns"] ?? "")/\($0["ifname"] ?? "")" } })
        #expect(peers == Set(hosts.map { "\($0)/eth0" }))
        let text = nsinspect("graph", sw).stdout
        #expect(text.contains("bridge  br0 in \(sw):"))
        let dot = nsinspect("graph", sw, "--format", "dot").stdout
        #expect(Shell.run(["dot", "-Tsvg"], input: dot).succeeded)
        #expect(dot.contains("bridge in \(sw)"))
    }

    @Test func dumpCoversEveryNamespaceAndAgreesWithShow() throws {
        let scratch = Scratch("dump")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let lab = try TwoRoutersLab(scratch)
        let pid = try scratch.unsharedProcess()
        let dump = try #require(try Self.json("dump", "--json") as? [String: Any])
        for ns in [lab.host1, lab.router1, lab.router2, lab.host2, "pid:\(pid)"] {
            #expect(dump[ns] != nil, "dump lacks \(ns)")
        }
        let router1 = try #require(dump[lab.router1] as? [String: Any])
        let shown = try #require(try Self.json("show", lab.router1, "--json") as? [String: Any])
        let dumpedLinks = try #require(router1["links"] as? [[String: Any]])
        let shownLinks = try #require(shown["links"] as? [[String: Any]])
        #expect(dumpedLinks.map { $0["ifname"] as? String } == shownLinks.map { $0["ifname"] as? String })
        let dumpedE0 = try #require(dumpedLinks.first { $0["ifname"] as? String == "e0" })
        #expect((dumpedE0["peer"] as? [String: Any])?["netns"] as? String == lab.router2)
        let only = try #require(try Self.json("dump", lab.host2, "--json") as? [String: Any])
        #expect(Set(only.keys) == [lab.host2])
    }

    @Test func nsidsListWhatIPListsWithTheNamespacesNamed() throws {
        let scratch = Scratch("nsid")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let lab = try TwoRoutersLab(scratch)
        // A link dump assigns the ids of the peers' namespaces; do it before either side reads the table.
        try Shell.must("ip", "-n", lab.router1, "link", "show")
        let ours = try #require(try Self.json("show", lab.router1, "nsids", "--json") as? [[String: Any]])
        let theirs = try Self.ipJSON(lab.router1, "netns", "list-id")
        #expect(theirs.count >= 2, "ip lists \(theirs)")
        #expect(ours.compactMap { $0["nsid"] as? Int } == theirs.compactMap { $0["nsid"] as? Int })
        for entry in theirs {
            let mine = try #require(ours.first { $0["nsid"] as? Int == entry["nsid"] as? Int })
            if let name = entry["name"] as? String { #expect(mine["name"] as? String == name, "nsid \(entry["nsid"] ?? "?")") }
        }
        #expect(Set(ours.compactMap { $0["name"] as? String }).isSuperset(of: [lab.host1, lab.router2]))
        // The full view has the section too, in text and in JSON.
        let text = nsinspect("show", lab.router1).stdout
        #expect(text.contains("Namespace ids") && text.contains(lab.host1) && text.contains(lab.router2), "\(text)")
        let shown = try #require(try Self.json("show", lab.router1, "--json") as? [String: Any])
        #expect((shown["nsids"] as? [[String: Any]])?.count == theirs.count)
    }

    @Test func rulesOfAFreshNamespaceAreIPsAndTheDefaultsAreNotPrinted() throws {
        let scratch = Scratch("rule")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let ns = try scratch.addNamespace("fresh")
        func expectSameAsIP(_ what: String) throws {
            let ours = try #require(try Self.json("show", ns, "rules", "--json") as? [[String: Any]])
            var total = 0
            for (family, flag) in [("inet", "-4"), ("inet6", "-6")] {
                let theirs = try Self.ipJSON(ns, flag, "rule", "show")
                total += theirs.count
                let mine = ours.filter { $0["family"] as? String == family }.map { $0.filter { $0.key != "family" } }
                #expect(mine.count == theirs.count, "\(what) \(family): nsinspect \(mine), ip \(theirs)")
                for (a, b) in zip(mine, theirs) {
                    #expect(NSDictionary(dictionary: a).isEqual(to: b), "\(what) \(family): nsinspect \(a), ip \(b)")
                }
            }
            // Nothing but the unicast families (ipmr/ip6mr rules are not `ip rule`'s).
            #expect(ours.count == total, "\(what): nsinspect \(ours)")
            #expect(ours.allSatisfy { ["inet", "inet6"].contains($0["family"] as? String ?? "") }, "\(ours)")
        }
        try expectSameAsIP("fresh")
        #expect(!nsinspect("show", ns).stdout.contains("Policy rules"))
        try Shell.must("ip", "-n", ns, "rule", "add", "from", "10.9.0.0/24", "to", "10.8.0.1", "table", "100", "pref", "100")
        try Shell.must("ip", "-n", ns, "-6", "rule", "add", "from", "2001:db8::/64", "table", "100", "pref", "100")
        try expectSameAsIP("with rules")
        let text = nsinspect("show", ns).stdout
        #expect(text.contains("Policy rules"), "\(text)")
        #expect(text.split(separator: "\n").contains { $0.hasPrefix("inet ") && $0.contains("from 10.9.0.0/24") && $0.contains("lookup 100") },
                "\(text)")
    }

    @Test func dumpOfSomeNamespacesNamesPeersOutsideThem() throws {
        let scratch = Scratch("dsub")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let lab = try TwoRoutersLab(scratch)
        let dump = try #require(try Self.json("dump", lab.host1, lab.router1, "--json") as? [String: Any])
        #expect(Set(dump.keys) == [lab.host1, lab.router1])
        let links = try #require((dump[lab.router1] as? [String: Any])?["links"] as? [[String: Any]])
        func peer(_ name: String) -> String? {
            (links.first { $0["ifname"] as? String == name }?["peer"] as? [String: Any]).map { "\($0["netns"] ?? "?")/\($0["ifname"] ?? "?")" }
        }
        #expect(peer("e0") == "\(lab.router2)/e0")   // outside the selection
        #expect(peer("e1") == "\(lab.host1)/eth0")   // inside it
        let text = nsinspect("dump", lab.host1, lab.router1).stdout
        #expect(text.contains("e0 in \(lab.router2)") && !text.contains("unresolved"), "\(text)")
    }

    /// The edges a `graph` rendering draws, as "netns/ifname — netns/ifname" (ends sorted), from any format.
    static func graphEdges(_ arguments: [String], format: String) throws -> Set<String> {
        let result = nsinspect(arguments: ["graph"] + arguments + ["--format", format])
        try #require(result.succeeded, "\(result)")
        func edge(_ a: String, _ b: String) -> String { [a, b].sorted().joined(separator: " — ") }
        var nodes: [String: String] = [:]
        var edges = Set<String>()
        let lines = result.stdout.split(separator: "\n").map(String.init)
        func captures(_ line: String, _ pattern: String) -> [String]? {
            let regex = try! NSRegularExpression(pattern: pattern)
            guard let m = regex.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) else { return nil }
            return (1..<m.numberOfRanges).map { String(line[Range(m.range(at: $0), in: line)!]) }
        }
        switch format {
        case "text":
            for line in lines where line.hasPrefix("veth ") {
                let words = line.split(separator: " ").map(String.init)   // veth A a ── b B
                edges.insert(edge("\(words[1])/\(words[2])", "\(words[5])/\(words[4])"))
            }
        case "json":
            let graph = try #require(try Shell.json(result.stdout) as? [String: Any])
            for veth in try #require(graph["veths"] as? [[String: Any]]) {
                let a = veth["a"] as? [String: Any] ?? [:], b = veth["b"] as? [String: Any] ?? [:]
                edges.insert(edge("\(a["netns"] ?? "?")/\(a["ifname"] ?? "?")", "\(b["netns"] ?? "?")/\(b["ifname"] ?? "?")"))
            }
        case "dot":
            for line in lines {
                if let c = captures(line, #"^  (ns\d+) \[label="([^"]*)"\];$"#) { nodes[c[0]] = c[1] }
            }
            for line in lines {
                if let c = captures(line, #"^  (ns\d+) -- (ns\d+) \[label="(\S+) — (\S+)"\];$"#) {
                    edges.insert(edge("\(nodes[c[0]] ?? c[0])/\(c[2])", "\(nodes[c[1]] ?? c[1])/\(c[3])"))
                }
            }
        default:  // mermaid
            for line in lines {
                if let c = captures(line, #"^  (ns\d+)\["([^"]*)"\]$"#) { nodes[c[0]] = c[1] }
            }
            for line in lines {
                if let c = captures(line, #"^  (ns\d+) ---\|"(\S+) — (\S+)"\| (ns\d+)$"#) {
                    edges.insert(edge("\(nodes[c[0]] ?? c[0])/\(c[1])", "\(nodes[c[3]] ?? c[3])/\(c[2])"))
                }
            }
        }
        return edges
    }

    @Test func graphOfSomeNamespacesDrawsTheSameEdgesInEveryFormat() throws {
        let scratch = Scratch("gsub")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let lab = try TwoRoutersLab(scratch)
        func edge(_ a: String, _ b: String) -> String { [a, b].sorted().joined(separator: " — ") }
        let hostToRouter = edge("\(lab.host1)/eth0", "\(lab.router1)/e1")
        let routers = edge("\(lab.router1)/e0", "\(lab.router2)/e0")
        let routerToHost = edge("\(lab.router2)/e1", "\(lab.host2)/eth0")
        // host1 and its neighbour router1; router1's link to router2 has an end outside them.
        for format in ["text", "json", "dot", "mermaid"] {
            #expect(try Self.graphEdges([lab.host1], format: format) == [hostToRouter], "graph host1 --format \(format)")
            #expect(try Self.graphEdges([lab.router1], format: format) == [hostToRouter, routers], "graph router1 --format \(format)")
            #expect(try Self.graphEdges([lab.host1, lab.host2], format: format) == [hostToRouter, routers, routerToHost],
                    "graph host1 host2 --format \(format)")
        }
        let graph = try #require(try Self.json("graph", lab.router1, "--format", "json") as? [String: Any])
        let namespaces = try #require(graph["namespaces"] as? [[String: Any]]).compactMap { $0["netns"] as? String }
        #expect(Set(namespaces) == [lab.host1, lab.router1, lab.router2])
    }

    @Test func pathToAnAddressNobodyOwnsEndsWhereARPGetsNoAnswer() throws {
        let scratch = Scratch("parp")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let lab = try TwoRoutersLab(scratch)
        func path(_ to: String) throws -> (status: Int32, json: [String: Any]) {
            let result = nsinspect("path", lab.host1, to, "--json")
            return (result.status, try #require(try Shell.json(result.stdout) as? [String: Any], "\(result)"))
        }
        func netns(_ p: [String: Any]) -> [String] { (p["hops"] as? [[String: Any]] ?? []).map { $0["netns"] as? String ?? "?" } }
        let owned = try path("10.0.2.10")
        #expect(owned.status == 0 && owned.json["delivered"] as? Bool == true)
        #expect(netns(owned.json) == [lab.host1, lab.router1, lab.router2, lab.host2])

        // 10.0.2.99 is on router2–host2's subnet, but nobody has it: router2's connected route sends to it
        // directly, ARP gets no answer, and host2 is never entered.
        let unowned = try path("10.0.2.99")
        #expect(unowned.status == 1 && unowned.json["delivered"] as? Bool == false)
        #expect(netns(unowned.json) == [lab.host1, lab.router1, lab.router2], "\(unowned.json)")
        #expect(unowned.json["end_netns"] as? String == lab.router2)
        let last = try #require((unowned.json["hops"] as? [[String: Any]])?.last)
        #expect(last["out"] as? String == "e1" && last["next_hop"] as? String == "10.0.2.99")
        let end = try #require(unowned.json["end"] as? String)
        #expect(end.contains("10.0.2.99") && end.contains("ARP") && !end.contains("forwarding"), "\(end)")

        // A static neighbour entry with host2's MAC does send it there, where forwarding is off.
        let host2Links = try Self.ipJSON(lab.host2, "link", "show", "eth0")
        let mac = try #require(host2Links.first?["address"] as? String)
        try Shell.must("ip", "-n", lab.router2, "neigh", "add", "10.0.2.99", "lladdr", mac, "dev", "e1", "nud", "permanent")
        let pinned = try path("10.0.2.99")
        #expect(netns(pinned.json) == [lab.host1, lab.router1, lab.router2, lab.host2], "\(pinned.json)")
        #expect((pinned.json["end"] as? String)?.contains("forwarding is off in \(lab.host2)") == true, "\(pinned.json)")
    }

    @Test func badReferencesAndSectionsAreErrors() throws {
        let missing = "nosuch-\(UInt32.random(in: 0..<UInt32.max))"
        for arguments in [["show", missing], ["graph", missing], ["dump", missing]] {
            let result = nsinspect(arguments: arguments)
            #expect(result.status != 0)
            #expect(result.stderr.contains("\(missing): no such namespace"), "\(arguments): \(result.stderr)")
        }
        #expect(nsinspect("show", "host", "nonsense").status != 0)
        let sections = nsinspect("dump", "--sections", "links,bogus")
        #expect(sections.status != 0 && sections.stderr.contains("bogus: unknown section"))
    }
}
