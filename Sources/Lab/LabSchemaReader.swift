import Netlink

/// Reads our lab schema (docs/lab-format.md) from a composed YAML document. Structure only: a value of
/// the wrong shape or an unknown key stops reading with its position; whether the lab makes sense is
/// `LabSpec.problems()`'s job.
enum LabSchemaReader {
    static let topKeys = ["lab", "namespaces", "host", "links", "bridges", "expect"]
    static let namespaceKeys = ["loopback", "forwarding", "sysctls", "routes", "nat", "filter", "nftables"]
    static let hostKeys = namespaceKeys.filter { $0 != "loopback" }
    static let interfaceKeys = ["name", "address", "addresses", "mac", "mtu", "up"]
    static let routeKeys = ["to", "via", "dev", "metric", "type", "onlink"]
    static let natKinds = ["masquerade", "snat", "dnat"] + NATType.allCases.map(\.rawValue)
    static let expectKinds = ["reach", "unreachable", "ttl", "hops", "nat", "path"]

    static func read(_ root: YAMLMapping) throws(LabProblem) -> LabSpec {
        try root.allowOnly(topKeys, in: "a lab file")
        guard let nameNode = root["lab"] else {
            throw LabProblem(root.position, "a lab file needs 'lab: NAME' (or, in pyns2's format, one top-level key holding 'host:' and 'netns:')")
        }
        var spec = LabSpec(name: try nameNode.scalar("the lab's name"), namePosition: nameNode.position)
        if let hostNode = root["host"] {
            spec.host = try settings(hostNode, place: .host, allowed: hostKeys)
        }
        if let nsNode = root["namespaces"] { spec.namespaces = try namespaces(nsNode) }
        for link in try root["links"]?.sequence("a list of links") ?? [] {
            spec.veths.append(try veth(link))
        }
        for bridge in try root["bridges"]?.sequence("a list of bridges") ?? [] {
            spec.bridges.append(try self.bridge(bridge))
        }
        if let expect = root["expect"] { spec.expectations = try expectations(expect) }
        return spec
    }

    // MARK: namespaces

    static func namespaces(_ node: YAMLNode) throws(LabProblem) -> [LabNamespace] {
        if node.isSequence {
            var out: [LabNamespace] = []
            for item in try node.sequence("namespaces") {
                out.append(LabNamespace(place: .namespace(try item.scalar("a namespace name")), position: item.position))
            }
            return out
        }
        var out: [LabNamespace] = []
        for entry in try node.mapping("a mapping of namespace names to their settings (or a list of names)").entries {
            var ns = try settings(entry.value, place: .namespace(entry.key), allowed: namespaceKeys)
            ns.position = entry.keyPosition
            out.append(ns)
        }
        return out
    }

    /// A namespace's (or the host's) settings.
    static func settings(_ node: YAMLNode, place: LabPlace, allowed: [String]) throws(LabProblem) -> LabNamespace {
        let what = place == .host ? "the host's settings" : "the settings of namespace \(place)"
        let m = try node.mapping("a mapping for \(what) (\(allowed.joined(separator: ", ")))")
        try m.allowOnly(allowed, in: what)
        var ns = LabNamespace(place: place, position: node.position)
        if let v = m["loopback"] { ns.loopback = try v.bool("loopback") }
        if let v = m["forwarding"] { ns.forwarding = try forwarding(v) }
        if let v = m["sysctls"] {
            for entry in try v.mapping("a mapping of sysctl keys to values").entries {
                var value = try entry.value.scalar("a value for sysctl \(entry.key)")
                if let b = try? entry.value.bool("") { value = b ? "1" : "0" }
                ns.sysctls.append(LabSysctl(key: entry.key, value: value, position: entry.keyPosition))
            }
        }
        for r in try m["routes"]?.sequence("a list of routes") ?? [] { ns.routes.append(try route(r)) }
        for n in try m["nat"]?.sequence("a list of NAT rules") ?? [] { ns.nat.append(try natRule(n)) }
        if let f = m["filter"] { ns.filter = try filter(f) }
        if let t = m["nftables"] { ns.nftables = try t.scalar("nftables text (chains, sets and rules for the lab's table)") }
        return ns
    }

    static func forwarding(_ node: YAMLNode) throws(LabProblem) -> LabForwarding {
        let what = "true, false, ipv4 or ipv6 for forwarding"
        switch try node.scalar(what) {
        case "ipv4": return LabForwarding(ipv4: true, ipv6: false, position: node.position)
        case "ipv6": return LabForwarding(ipv4: false, ipv6: true, position: node.position)
        default:
            guard let on = try? node.bool(what) else { throw node.expected(what) }
            return LabForwarding(ipv4: on, ipv6: on, position: node.position)
        }
    }

    // MARK: routes

    static func route(_ node: YAMLNode) throws(LabProblem) -> LabRoute {
        if node.isScalar {
            return try LabSyntax.route(try node.words("a route"), position: node.position)
        }
        let m = try node.mapping("a route: 'default via 10.0.1.1' or a mapping (\(routeKeys.joined(separator: ", ")))")
        try m.allowOnly(routeKeys, in: "a route")
        var words: [LabSyntax.Word] = []
        if let t = m["type"] {
            let kind = try t.word("a route type")
            guard LabRoute.Kind(rawValue: kind.text) != nil else {
                throw t.expected("a route type (\(LabRoute.Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if kind.text != "unicast" { words.append(kind) }
        }
        words.append(try m.required("to", in: "a route").word("default or a destination prefix"))
        for key in ["via", "dev", "metric"] {
            if let v = m[key] { words += [LabSyntax.Word(text: key, position: v.position), try v.word(key)] }
        }
        var route = try LabSyntax.route(words, position: node.position)
        if let o = m["onlink"] { route.onlink = try o.bool("onlink") }
        return route
    }

    // MARK: links and bridges

    static func veth(_ node: YAMLNode) throws(LabProblem) -> LabVeth {
        let m = try node.mapping("a link: {a: NS:IFNAME, b: NS:IFNAME}")
        try m.allowOnly(["a", "b"], in: "a link")
        return LabVeth(
            a: try interface(try m.required("a", in: "a link"), allowed: interfaceKeys, what: "a link end", shorthand: true),
            b: try interface(try m.required("b", in: "a link"), allowed: interfaceKeys, what: "a link end", shorthand: true),
            position: node.position)
    }

    static func bridge(_ node: YAMLNode) throws(LabProblem) -> LabBridge {
        let m = try node.mapping("a bridge: a mapping with name, addresses and ports")
        var bridge = LabBridge(try interface(node, allowed: interfaceKeys + ["ports"], what: "a bridge", shorthand: false))
        for p in try m["ports"]?.scalarList("a list of port names") ?? [] {
            bridge.ports.append(LabName(try p.scalar("an interface name"), position: p.position))
        }
        return bridge
    }

    /// A link end or a bridge: `NS:IFNAME [ADDRESS…]`, or a mapping with `name: NS:IFNAME` and settings.
    static func interface(_ node: YAMLNode, allowed: [String], what: String, shorthand: Bool) throws(LabProblem) -> LabInterface {
        if node.isScalar, shorthand {
            let words = try node.words("NS:IFNAME followed by addresses")
            guard let first = words.first else { throw node.expected("NS:IFNAME followed by addresses") }
            var end = LabInterface(try LabSyntax.interfaceRef(first), position: node.position)
            for w in words.dropFirst() { end.addresses.append(LabAddress(try LabSyntax.interfaceAddress(w), position: w.position)) }
            return end
        }
        let m = try node.mapping("\(what): NS:IFNAME, or a mapping (\(allowed.joined(separator: ", ")))")
        try m.allowOnly(allowed, in: what)
        var end = LabInterface(try LabSyntax.interfaceRef(try m.required("name", in: what).word("NS:IFNAME")), position: node.position)
        for a in try m.either("address", "addresses", in: what)?.scalarList("a list of addresses") ?? [] {
            end.addresses.append(LabAddress(try LabSyntax.interfaceAddress(try a.word("an address")), position: a.position))
        }
        if let v = m["mac"] {
            guard let mac = MACAddress(try v.scalar("a MAC address")) else { throw v.expected("a MAC address (02:00:00:00:01:10)") }
            end.mac = mac
        }
        if let v = m["mtu"] { end.mtu = try v.integer("mtu", in: 68...65535) }
        if let v = m["up"] { end.up = try v.bool("up") }
        return end
    }

    // MARK: NAT and filter rules

    static let matchKeys = ["in", "out", "src", "dst", "proto", "sport", "dport"]

    static func natRule(_ node: YAMLNode) throws(LabProblem) -> LabNATRule {
        let entry = try node.singleEntry("NAT rule", kinds: natKinds)
        let what = "a \(entry.key) rule"
        let m = try entry.value.mapping("a mapping for \(what)")
        if let type = NATType(rawValue: entry.key) {
            return LabNATRule(.natType(try natBox(type, m)), position: entry.keyPosition)
        }
        let kind: LabNATRule.Kind
        switch entry.key {
        case "masquerade":
            try m.allowOnly(["src", "dst", "out", "proto", "random"], in: what)
            kind = .masquerade(random: try m["random"]?.bool("random") ?? false)
        case "snat":
            try m.allowOnly(["to", "src", "dst", "out", "proto", "sport"], in: what)
            kind = .snat(to: try LabSyntax.natTarget(try m.required("to", in: what).word("ADDRESS[:PORT]")))
        default:
            try m.allowOnly(["to", "in", "src", "dst", "proto", "port"], in: what)
            kind = .dnat(to: try LabSyntax.natTarget(try m.required("to", in: what).word("ADDRESS[:PORT]")))
        }
        return LabNATRule(kind, match: try match(m, destinationPortKey: entry.key == "dnat" ? "port" : "dport"), position: entry.keyPosition)
    }

    static func natBox(_ type: NATType, _ m: YAMLMapping) throws(LabProblem) -> LabNATBox {
        let what = "a \(type) NAT"
        try m.allowOnly(["inside", "host", "host-port", "outside", "address", "port", "proto"], in: what)
        var box = LabNATBox(
            type, inside: try name(try m.required("inside", in: what)),
            outside: try name(try m.required("outside", in: what)))
        if let v = m["host"] { box.host = try LabSyntax.address(try v.word("the inside host's address"), what: "the inside host's address") }
        if let v = m["host-port"] { box.hostPort = try v.port("host-port") }
        if let v = m["address"] { box.address = try LabSyntax.address(try v.word("the outside address"), what: "the outside address") }
        if let v = m["port"] { box.port = try v.port("the mapped port") }
        if let v = m["proto"] {
            let p = try proto(v)
            guard p.hasPorts else { throw v.expected("udp or tcp for a NAT type's proto") }
            box.proto = p
        }
        return box
    }

    static func filter(_ node: YAMLNode) throws(LabProblem) -> LabFilter {
        let chains = LabFilter.Chain.allCases.map(\.rawValue)
        let m = try node.mapping("a mapping for filter (\(chains.joined(separator: ", ")): policy; rules: list)")
        try m.allowOnly(chains + ["rules"], in: "filter")
        var filter = LabFilter()
        for chain in LabFilter.Chain.allCases {
            guard let v = m[chain.rawValue] else { continue }
            let text = try v.scalar("accept or drop as the \(chain) policy")
            guard let verdict = LabFilter.Verdict(rawValue: text), verdict != .reject else {
                throw v.expected("accept or drop as the \(chain) policy")
            }
            filter.policies[chain] = verdict
        }
        let verdicts = LabFilter.Verdict.allCases.map(\.rawValue)
        for r in try m["rules"]?.sequence("a list of filter rules") ?? [] {
            let entry = try r.singleEntry("filter rule", kinds: verdicts)
            let what = "a filter rule"
            let rm = try entry.value.mapping("a mapping for \(what) (chain: \(chains.joined(separator: "|")), and what to match)")
            try rm.allowOnly(["chain"] + matchKeys + ["ct-state", "ct-status"], in: what)
            let chainNode = try rm.required("chain", in: what)
            guard let chain = LabFilter.Chain(rawValue: try chainNode.scalar("a chain")) else {
                throw chainNode.expected("a chain (\(chains.joined(separator: ", ")))")
            }
            filter.rules.append(LabFilterRule(LabFilter.Verdict(rawValue: entry.key)!, chain: chain, match: try match(rm), position: entry.keyPosition))
        }
        return filter
    }

    /// The match fields present in `m` (the caller has already rejected keys it does not allow).
    static func match(_ m: YAMLMapping, destinationPortKey: String = "dport") throws(LabProblem) -> LabMatch {
        var match = LabMatch()
        if let v = m["in"] { match.inInterface = try name(v) }
        if let v = m["out"] { match.outInterface = try name(v) }
        if let v = m["src"] { match.source = try LabSyntax.network(try v.word("src"), what: "a source address or prefix") }
        if let v = m["dst"] { match.destination = try LabSyntax.network(try v.word("dst"), what: "a destination address or prefix") }
        if let v = m["proto"] { match.proto = try proto(v) }
        if let v = m["sport"] { match.sourcePort = try v.port("sport") }
        if let v = m[destinationPortKey] { match.destinationPort = try v.port(destinationPortKey) }
        for s in try m["ct-state"]?.scalarList("connection states") ?? [] {
            for w in try s.words("connection states") {
                for part in w.text.split(separator: ",") {
                    guard let state = LabMatch.ConnectionState(rawValue: String(part)) else {
                        throw w.problem("unknown connection state '\(part)' (allowed: \(LabMatch.ConnectionState.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    match.state.append(state)
                }
            }
        }
        for s in try m["ct-status"]?.scalarList("connection statuses") ?? [] {
            guard let status = LabMatch.ConnectionStatus(rawValue: try s.scalar("snat or dnat")) else { throw s.expected("snat or dnat for ct-status") }
            match.status.append(status)
        }
        return match
    }

    static func proto(_ node: YAMLNode) throws(LabProblem) -> LabProtocol {
        let choices = LabProtocol.allCases.map(\.rawValue).joined(separator: ", ")
        guard let p = LabProtocol(rawValue: try node.scalar("a protocol (\(choices))")) else { throw node.expected("a protocol (\(choices))") }
        return p
    }

    static func name(_ node: YAMLNode) throws(LabProblem) -> LabName {
        LabName(try node.scalar("an interface name"), position: node.position)
    }

    // MARK: expectations

    static func expectations(_ node: YAMLNode) throws(LabProblem) -> [LabExpectation] {
        var out: [LabExpectation] = []
        for item in try node.sequence("a list of expectations (- reach: {from: NS, to: NS or ADDRESS})") {
            let entry = try item.singleEntry("expectation", kinds: expectKinds)
            let what = "a \(entry.key) expectation"
            let m = try entry.value.mapping("a mapping for \(what)")
            let kind: LabExpectation.Kind
            switch entry.key {
            case "reach", "unreachable":
                try m.allowOnly(["from", "to", "udp", "sport", "listen"], in: what)
                var p = try probe(m, what: what)
                if let u = m["udp"] {
                    var udp = LabUDPProbe(port: try u.port("udp"))
                    if let s = m["sport"] { udp.sourcePort = try s.port("sport") }
                    if let l = m["listen"] { (udp.listener, udp.listenerPort) = try listener(l) }
                    p.udp = udp
                } else if let extra = m["sport"] ?? m["listen"] {
                    throw extra.problem("'sport' and 'listen' go with 'udp: PORT'")
                }
                kind = entry.key == "reach" ? .reach(p) : .unreachable(p)
            case "ttl", "hops":
                try m.allowOnly(["from", "to", "equals"], in: what)
                let equals = try m.required("equals", in: what).integer("equals", in: entry.key == "ttl" ? 1...255 : 0...255)
                kind = entry.key == "ttl" ? .ttl(try probe(m, what: what), equals: equals) : .hops(try probe(m, what: what), equals: equals)
            case "nat":
                try m.allowOnly(["ns", "type", "inside", "outside", "inside-port"], in: what)
                let typeNode = try m.required("type", in: what)
                guard let type = NATType(rawValue: try typeNode.scalar("a NAT type")) else {
                    throw typeNode.expected("a NAT type (\(NATType.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                var nat = LabNATExpectation(namespace: LabPlace(try m.required("ns", in: what).scalar("a namespace")), type: type)
                if let v = m["inside"] { nat.inside = LabPlace(try v.scalar("a namespace")) }
                if let v = m["outside"] { nat.outside = LabPlace(try v.scalar("a namespace")) }
                if let v = m["inside-port"] { nat.insidePort = try v.port("inside-port") }
                kind = .nat(nat)
            default:
                throw LabProblem(entry.keyPosition, "path expectations are not supported yet (allowed: reach, unreachable, ttl, hops, nat)")
            }
            out.append(LabExpectation(kind, position: entry.keyPosition))
        }
        return out
    }

    static func probe(_ m: YAMLMapping, what: String) throws(LabProblem) -> LabProbe {
        let from = LabPlace(try m.required("from", in: what).scalar("a namespace (or host)"))
        let to = try m.required("to", in: what).scalar("a namespace or an address")
        return LabProbe(from: from, to: IPAddress(to).map(LabTarget.address) ?? .place(LabPlace(to)))
    }

    /// `NS` or `NS:PORT`.
    static func listener(_ node: YAMLNode) throws(LabProblem) -> (LabPlace, UInt16?) {
        let text = try node.scalar("NS or NS:PORT")
        if let colon = text.lastIndex(of: ":"), let port = LabSyntax.decimal(String(text[text.index(after: colon)...])) {
            guard (1...65535).contains(port) else { throw node.expected("NS:PORT with a port from 1 to 65535") }
            return (LabPlace(String(text[..<colon])), UInt16(port))
        }
        return (LabPlace(text), nil)
    }
}
