import Netlink

/// Reads pyns2's lab format (examples/container-bridge-pyns2.yaml) as it is written in the wild, into the same `LabSpec` our schema
/// gives:
///
/// ```yaml
/// LABNAME:
///   host:  {ifaces: {IF: {type: bridge|veth, address: A/L, ifaces: [PORTS] | peer: IF}}, routes: […], nat: {src, out_iface}}
///   netns: {NS: {ifaces: {…}, routes: [{route: {gateway: A, dest: default|PREFIX}}], nat: {…}}}
/// ```
///
/// pyns2's semantics, kept: the top-level key is the lab's name; `host:` is the host namespace; a veth's
/// `peer` is the declared veth of that name (which names this one back) or, when undeclared, an interface
/// left in the host — or in the namespace of a bridge that lists it as a port, since pyns2 moves a bridge's
/// ports there; `nat:` is a masquerade of `src` out of `out_iface` and turns on IPv4 forwarding there.
/// Also accepted: `dst` for `dest`, `out` for `out_iface`, and (our extension) an `expect:` list next to the
/// lab's key.
enum Pyns2Reader {
    /// The lab's entry when `root` is a pyns2 file: no `lab:` key, one top-level key (besides `expect`)
    /// whose value is a mapping with `host` or `netns`.
    static func labEntry(_ root: YAMLMapping) -> YAMLMapping.Entry? {
        let entries = root.entries.filter { $0.key != "expect" }
        guard root["lab"] == nil, entries.count == 1, let entry = entries.first,
            let body = try? entry.value.mapping(""), body["netns"] != nil || body["host"] != nil
        else { return nil }
        return entry
    }

    private struct Declared {
        var place: LabPlace
        var name: LabName
        var isBridge: Bool
        var address: LabAddress?
        var peer: LabName?
        var ports: [LabName]
        var position: SourcePosition

        var interface: LabInterface {
            LabInterface(LabInterfaceRef(place, name.name), addresses: address.map { [$0] } ?? [], position: position)
        }
    }

    static func read(_ root: YAMLMapping, lab: YAMLMapping.Entry) throws(LabProblem) -> LabSpec {
        let body = try lab.value.mapping("a pyns2 lab: host and netns")
        try body.allowOnly(["host", "netns"], in: "a pyns2 lab")
        var spec = LabSpec(name: lab.key, namePosition: lab.keyPosition)
        var declared: [Declared] = []
        if let host = body["host"] {
            spec.host = try section(host, place: .host, declared: &declared)
        }
        for entry in try body["netns"]?.mapping("a mapping of namespace names to their ifaces and routes").entries ?? [] {
            var ns = try section(entry.value, place: .namespace(entry.key), declared: &declared)
            ns.position = entry.keyPosition
            spec.namespaces.append(ns)
        }
        spec.bridges = declared.filter(\.isBridge).map { LabBridge($0.interface, ports: $0.ports) }
        spec.veths = try veths(declared)
        if let expect = root["expect"] { spec.expectations = try LabSchemaReader.expectations(expect) }
        return spec
    }

    private static func section(_ node: YAMLNode, place: LabPlace, declared: inout [Declared]) throws(LabProblem) -> LabNamespace {
        let what = place == .host ? "pyns2's host section" : "pyns2 namespace \(place)"
        let m = try node.mapping("a mapping for \(what) (ifaces, routes, nat)")
        try m.allowOnly(["ifaces", "routes", "nat"], in: what)
        var ns = LabNamespace(place: place, position: node.position)
        for entry in try m["ifaces"]?.mapping("a mapping of interface names to their settings").entries ?? [] {
            declared.append(try iface(entry, place: place))
        }
        for item in try m["routes"]?.sequence("a list of routes (- route: {gateway, dest})") ?? [] {
            let r = try item.mapping("- route: {gateway: ADDRESS, dest: default or PREFIX}")
            try r.allowOnly(["route"], in: "a pyns2 route entry")
            let rm = try r.required("route", in: "a pyns2 route entry").mapping("a mapping with gateway and dest")
            try rm.allowOnly(["gateway", "dest", "dst"], in: "a pyns2 route")
            let gateway = try rm.required("gateway", in: "a pyns2 route").word("a gateway address")
            var words = [LabSyntax.Word(text: "via", position: gateway.position), gateway]
            if let dest = try rm.either("dest", "dst", in: "a pyns2 route") {
                words.insert(try dest.word("default or a prefix"), at: 0)
            } else {
                words.insert(LabSyntax.Word(text: "default", position: item.position), at: 0)
            }
            ns.routes.append(try LabSyntax.route(words, position: item.position))
        }
        if let nat = m["nat"] {
            let nm = try nat.mapping("a mapping with src and out_iface")
            try nm.allowOnly(["src", "out_iface", "out"], in: "pyns2's nat")
            var match = LabMatch()
            if let src = nm["src"] { match.source = try LabSyntax.network(try src.word("src"), what: "a source prefix") }
            if let out = try nm.either("out_iface", "out", in: "pyns2's nat") { match.outInterface = try LabSchemaReader.name(out) }
            ns.nat.append(LabNATRule(.masquerade(random: false), match: match, position: nat.position))
            ns.forwarding = LabForwarding(ipv4: true, ipv6: false, position: nat.position)
        }
        return ns
    }

    private static func iface(_ entry: YAMLMapping.Entry, place: LabPlace) throws(LabProblem) -> Declared {
        let m = try entry.value.mapping("a mapping for interface \(entry.key) (type, address, peer or ifaces)")
        let typeNode = try m.required("type", in: "pyns2 interface \(entry.key)")
        let type = try typeNode.scalar("an interface type")
        var d = Declared(
            place: place, name: LabName(entry.key, position: entry.keyPosition), isBridge: type == "bridge",
            ports: [], position: entry.keyPosition)
        switch type {
        case "veth":
            try m.allowOnly(["type", "address", "peer"], in: "pyns2 veth \(entry.key)")
            if let p = m["peer"] { d.peer = try LabSchemaReader.name(p) }
        case "bridge":
            try m.allowOnly(["type", "address", "ifaces"], in: "pyns2 bridge \(entry.key)")
            for p in try m["ifaces"]?.scalarList("a list of port names") ?? [] { d.ports.append(try LabSchemaReader.name(p)) }
        default:
            throw typeNode.problem("unsupported pyns2 interface type '\(type)' (supported: veth, bridge)")
        }
        if let a = m["address"] {
            d.address = LabAddress(try LabSyntax.interfaceAddress(try a.word("an address")), position: a.position)
        }
        return d
    }

    /// Pairs declared veths with their peers, in declaration order.
    private static func veths(_ declared: [Declared]) throws(LabProblem) -> [LabVeth] {
        var out: [LabVeth] = []
        var paired = Set<Int>()
        for (i, end) in declared.enumerated() where !end.isBridge && !paired.contains(i) {
            guard let peer = end.peer else {
                throw LabProblem(end.position, "pyns2 veth \(end.name) needs 'peer: NAME' (nsinspect does not invent peer names)")
            }
            if let j = declared.indices.first(where: { j in
                j != i && !declared[j].isBridge && declared[j].name.name == peer.name && !paired.contains(j)
            }) {
                let other = declared[j]
                guard other.peer == nil || other.peer?.name == end.name.name else {
                    throw LabProblem(peer.position, "veth \(end.name)'s peer \(peer) names \(other.peer!) as its peer, not \(end.name)")
                }
                paired.insert(j)
                out.append(LabVeth(a: end.interface, b: other.interface, position: end.position))
            } else {
                // Undeclared: left in the host, or moved into the namespace of a bridge that lists it.
                let place = declared.first { $0.isBridge && $0.ports.contains { $0.name == peer.name } }?.place ?? .host
                out.append(LabVeth(a: end.interface, b: LabInterface(LabInterfaceRef(place, peer.name), position: peer.position), position: end.position))
            }
            paired.insert(i)
        }
        return out
    }
}
