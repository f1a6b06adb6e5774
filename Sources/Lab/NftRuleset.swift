import Netlink

/// The nftables ruleset of one namespace of a lab: everything in one `inet` table named after the lab
/// (`LabSyntax.tableName`), so teardown drops exactly that table. The text starts by declaring and deleting
/// the table, so loading it again replaces the rules atomically instead of adding to them.
///
/// The one-word NAT types behave as named when measured (RFC 4787):
/// - all types: INPUT and FORWARD drop, `ct state established,related` accepted, the inside accepted;
/// - cones: the inside host's `host-port` is SNATed to `address:port` whatever the destination
///   (endpoint-independent mapping) and `address:port` is DNATed back to `host:host-port`;
///   - full cone: DNATed packets are accepted from anyone (endpoint-independent filtering);
///   - restricted cone: only from an address the host has sent to (`@contacted`, filled on the way out:
///     address-dependent filtering);
///   - port-restricted cone: only from an address and port it has sent to (address-and-port-dependent);
/// - symmetric: `masquerade random` (or `snat … random`), a new port per destination (address-and-port-
///   dependent mapping), and nothing unsolicited gets in.
enum NftRuleset {
    /// The rules, chain by chain.
    struct Chains {
        var sets: [String] = []
        var prerouting: [String] = []
        var postrouting: [String] = []
        var filter: [LabFilter.Chain: [String]] = [:]
    }

    /// The ruleset text for `ns`, or nil when it has no rules.
    static func text(for ns: LabNamespace, in spec: LabSpec, table: String) -> String? {
        guard ns.hasRules else { return nil }
        var chains = Chains()
        let box = ns.natBox
        if let box { natBox(box, in: ns.place, spec: spec, into: &chains) }
        for rule in ns.nat {
            let match = render(rule.match)
            switch rule.kind {
            case .masquerade(let random):
                chains.postrouting.append(line(match + ["masquerade"] + (random ? ["random"] : [])))
            case .snat(let to):
                chains.postrouting.append(line(match + ["snat", family(to.address), "to", to.description]))
            case .dnat(let to):
                chains.prerouting.append(line(match + ["dnat", family(to.address), "to", to.description]))
            case .natType:
                break
            }
        }
        for rule in ns.filter.rules {
            chains.filter[rule.chain, default: []].append(line(render(rule.match) + [rule.verdict.rawValue]))
        }

        var out = "table inet \(table)\ndelete table inet \(table)\ntable inet \(table) {\n"
        for set in chains.sets { out += set }
        out += chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;", chains.prerouting)
        out += chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;", chains.postrouting)
        for c in LabFilter.Chain.allCases {
            let policy = ns.filter.policies[c] ?? (box != nil && c != .output ? .drop : .accept)
            let rules = chains.filter[c] ?? []
            guard !rules.isEmpty || ns.filter.policies[c] != nil || policy != .accept else { continue }
            out += chain(c.rawValue, "type filter hook \(c.rawValue) priority filter; policy \(policy.rawValue);", rules)
        }
        if let raw = ns.nftables {
            out += raw.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "\t" + $0 }
                .joined(separator: "\n")
            if !raw.hasSuffix("\n") { out += "\n" }
        }
        return out + "}\n"
    }

    private static func chain(_ name: String, _ header: String, _ rules: [String]) -> String {
        guard !rules.isEmpty || header.contains("filter") else { return "" }
        return "\tchain \(name) {\n\t\t\(header)\n" + rules.map { "\t\t\($0)\n" }.joined() + "\t}\n"
    }

    private static func line(_ words: [String]) -> String { words.joined(separator: " ") }

    private static func family(_ address: IPAddress) -> String { address.family == .v4 ? "ip" : "ip6" }

    private static func quoted(_ name: String) -> String { "\"\(name)\"" }

    /// A prefix as nft writes it: the bare address for a full-length prefix, the network otherwise.
    private static func network(_ prefix: IPPrefix) -> String {
        Int(prefix.length) == prefix.address.bitWidth ? prefix.address.description : prefix.network.description
    }

    static func render(_ m: LabMatch) -> [String] {
        var w: [String] = []
        if let i = m.inInterface { w.append("iifname \(quoted(i.name))") }
        if let o = m.outInterface { w.append("oifname \(quoted(o.name))") }
        if let s = m.source { w.append("\(family(s.address)) saddr \(network(s))") }
        if let d = m.destination { w.append("\(family(d.address)) daddr \(network(d))") }
        if let p = m.proto {
            if p.hasPorts && (m.sourcePort != nil || m.destinationPort != nil) {
                if let port = m.sourcePort { w.append("\(p.rawValue) sport \(port)") }
                if let port = m.destinationPort { w.append("\(p.rawValue) dport \(port)") }
            } else {
                w.append("meta l4proto \(p == .icmpv6 ? "ipv6-icmp" : p.rawValue)")
            }
        }
        if !m.state.isEmpty { w.append("ct state " + m.state.map(\.rawValue).joined(separator: ",")) }
        if !m.status.isEmpty { w.append("ct status " + m.status.map(\.rawValue).joined(separator: ",")) }
        return w
    }

    /// The rules of a one-word NAT type.
    static func natBox(_ box: LabNATBox, in place: LabPlace, spec: LabSpec, into c: inout Chains) {
        let inside = quoted(box.inside.name), outside = quoted(box.outside.name)
        let proto = box.proto.rawValue
        let insideNets = spec.interface(LabInterfaceRef(place, box.inside.name))?.addresses
            .map(\.prefix).filter { $0.family == .v4 }.map { $0.network.description } ?? []
        let insideSources = insideNets.isEmpty ? box.host.map { $0.description } ?? "0.0.0.0/0"
            : insideNets.count == 1 ? insideNets[0] : "{ " + insideNets.joined(separator: ", ") + " }"
        let address = box.address ?? spec.interface(LabInterfaceRef(place, box.outside.name))?.addresses
            .first { $0.prefix.family == .v4 }?.prefix.address

        c.filter[.input, default: []] += [
            "ct state established,related accept",
            "iifname \"lo\" accept",
            "iifname \(inside) accept",
            "meta l4proto { icmp, ipv6-icmp } accept",
        ]
        c.filter[.forward, default: []].append("ct state established,related accept")

        guard box.type != .symmetric else {
            let source = box.host.map { $0.description } ?? insideSources
            if let address = box.address {
                c.postrouting.append("oifname \(outside) ip saddr \(source) snat ip to \(address) random")
            } else {
                c.postrouting.append("oifname \(outside) ip saddr \(source) masquerade random")
            }
            c.filter[.forward, default: []].append("iifname \(inside) accept")
            return
        }
        guard let host = box.host, let port = box.port, let address else { return }
        let hostPort = box.hostPort ?? port
        let mappedFlow = "iifname \(inside) ip saddr \(host) \(proto) sport \(hostPort)"
        c.prerouting.append("iifname \(outside) ip daddr \(address) \(proto) dport \(port) dnat ip to \(host):\(hostPort)")
        c.postrouting += [
            "oifname \(outside) ip saddr \(host) \(proto) sport \(hostPort) snat ip to \(address):\(port)",
            "oifname \(outside) ip saddr \(insideSources) masquerade",
        ]
        let toHost = "iifname \(outside) ip daddr \(host) \(proto) dport \(hostPort) ct status dnat"
        switch box.type {
        case .fullCone:
            c.filter[.forward, default: []] += ["iifname \(inside) accept", "\(toHost) accept"]
        case .restrictedCone, .portRestrictedCone:
            // The endpoints the mapped flow has sent to: addresses, or address . port pairs.
            let (type, sentTo, from) = box.type == .restrictedCone
                ? ("ipv4_addr", "ip daddr", "ip saddr")
                : ("ipv4_addr . inet_service", "ip daddr . \(proto) dport", "ip saddr . \(proto) sport")
            c.sets.append(contactedSet(type))
            c.filter[.forward, default: []] += [
                "\(mappedFlow) update @contacted { \(sentTo) }",
                "iifname \(inside) accept",
                "\(toHost) \(from) @contacted accept",
            ]
        case .symmetric:
            break
        }
    }

    /// The endpoints the inside host has sent to, each remembered for 120 s after its last packet (as long as
    /// an assured UDP conntrack entry lives).
    private static func contactedSet(_ type: String) -> String {
        "\tset contacted {\n\t\ttype \(type)\n\t\tflags dynamic,timeout\n\t\ttimeout 120s\n\t}\n"
    }
}
