import Netlink

/// A link to create, with what is set on it at creation.
public struct LabNewLink: Hashable, Sendable, CustomStringConvertible {
    public var ref: LabInterfaceRef
    public var mac: MACAddress?
    public var mtu: Int?

    public init(_ ref: LabInterfaceRef, mac: MACAddress? = nil, mtu: Int? = nil) {
        self.ref = ref
        self.mac = mac
        self.mtu = mtu
    }

    init(_ interface: LabInterface) { self.init(interface.ref, mac: interface.mac, mtu: interface.mtu) }

    /// `NAME [address MAC] [mtu N] [netns NS]`, as `ip link add` takes it.
    public var description: String {
        guard case .namespace(let ns) = ref.place else { return ref.name + options }
        return ref.name + options + " netns " + ns
    }

    /// ` address MAC mtu N`, the settings given at creation.
    var options: String {
        (mac.map { " address \($0)" } ?? "") + (mtu.map { " mtu \($0)" } ?? "")
    }
}

/// One thing the builder does. Each prints as the `ip`, `sysctl` or `nft` command that does the same.
public enum LabStep: Hashable, Sendable, CustomStringConvertible {
    /// A named namespace in /var/run/netns, as `ip netns add` makes it.
    case createNamespace(String)
    /// A veth pair whose ends are created directly in their namespaces.
    case createVeth(LabNewLink, peer: LabNewLink)
    case createBridge(LabNewLink)
    /// The ownership mark: IFLA_IFALIAS of the link.
    case setAlias(LabInterfaceRef, String)
    case setMaster(LabInterfaceRef, bridge: String)
    case setSysctl(LabPlace, key: String, value: String)
    /// IPv6 addresses go in with IFA_F_NODAD, so routes through them work at once.
    case addAddress(LabInterfaceRef, IPPrefix)
    case setLinkUp(LabInterfaceRef)
    case addRoute(LabPlace, LabRoute)
    /// `text` (NftRuleset) loaded with `nft -f -` inside the namespace.
    case loadRuleset(LabPlace, table: String, text: String)

    // Teardown
    case deleteRuleset(LabPlace, table: String)
    case deleteRoute(LabPlace, LabRoute)
    /// Deletes the link only if it carries the mark; gone already is fine.
    case deleteLink(LabInterfaceRef, mark: String)
    /// Deletes the namespace's name only if its `lo` carries the mark; gone already is fine.
    case deleteNamespace(String, mark: String)
    /// Puts back the value the sysctl had before `up` (which the builder records).
    case restoreSysctl(LabPlace, key: String)

    /// Where the step acts.
    public var place: LabPlace {
        switch self {
        case .createNamespace(let ns), .deleteNamespace(let ns, _): .namespace(ns)
        case .createVeth(let a, _): a.ref.place
        case .createBridge(let link): link.ref.place
        case .setAlias(let ref, _), .setMaster(let ref, _), .addAddress(let ref, _), .setLinkUp(let ref),
            .deleteLink(let ref, _):
            ref.place
        case .setSysctl(let p, _, _), .addRoute(let p, _), .loadRuleset(let p, _, _), .deleteRuleset(let p, _),
            .deleteRoute(let p, _), .restoreSysctl(let p, _):
            p
        }
    }

    public var description: String {
        switch self {
        case .createNamespace(let ns): "ip netns add \(ns)"
        case .createVeth(let a, let b): "ip link add \(a) type veth peer name \(b)"
        case .createBridge(let link): ip(link.ref.place, "link add \(link.ref.name)\(link.options) type bridge")
        case .setAlias(let ref, let alias): ip(ref.place, "link set dev \(ref.name) alias \(alias)")
        case .setMaster(let ref, let bridge): ip(ref.place, "link set dev \(ref.name) master \(bridge)")
        case .setSysctl(let p, let key, let value): exec(p, "sysctl -w \(key)=\(value)")
        case .addAddress(let ref, let prefix): ip(ref.place, "addr add \(prefix) dev \(ref.name)\(prefix.family == .v6 ? " nodad" : "")")
        case .setLinkUp(let ref): ip(ref.place, "link set dev \(ref.name) up")
        case .addRoute(let p, let route): ip(p, "\(route.destination.family == .v6 ? "-6 " : "")route add \(route)")
        case .loadRuleset(let p, let table, _): exec(p, "nft -f - (table inet \(table))")
        case .deleteRuleset(let p, let table): exec(p, "nft delete table inet \(table)")
        case .deleteRoute(let p, let route): ip(p, "\(route.destination.family == .v6 ? "-6 " : "")route del \(route)")
        case .deleteLink(let ref, let mark): ip(ref.place, "link del dev \(ref.name) (if its alias is \(mark))")
        case .deleteNamespace(let ns, let mark): "ip netns del \(ns) (if its lo's alias is \(mark))"
        case .restoreSysctl(let p, let key): exec(p, "sysctl -w \(key)=(its value before up)")
        }
    }

    private func ip(_ place: LabPlace, _ command: String) -> String {
        switch place {
        case .host: "ip \(command)"
        case .namespace(let ns): "ip -n \(ns) \(command)"
        }
    }

    private func exec(_ place: LabPlace, _ command: String) -> String {
        switch place {
        case .host: command
        case .namespace(let ns): "ip netns exec \(ns) \(command)"
        }
    }
}

/// What building a lab takes, in order, and what removing it takes — computed from the spec alone, for
/// the builder to execute over netlink (and for `lab up --dry-run` to print).
///
/// Order of `steps`: namespaces (each marked on its `lo` as soon as it exists), bridges, veth pairs
/// (host-side links marked as soon as they exist), bridge ports, sysctls, addresses, links up, routes,
/// nftables rulesets. `teardown` removes only what carries the lab's mark: the host's table and routes,
/// the namespaces (which takes everything inside them along, and the host ends of their veths), the
/// host-side links still there, then puts the host's sysctls back. Namespaces go before host links
/// because the kernel destroys namespaces in batches (one RCU grace period for many), while each
/// RTM_DELLINK of a veth waits for its own: a thousand host ends deleted one by one take seconds.
public struct LabPlan: Sendable {
    public let lab: String
    /// IFLA_IFALIAS of every namespace's `lo` and of every link the lab creates in the host.
    public let mark: String
    /// The nftables table (family inet) that holds the lab's rules in each namespace.
    public let table: String
    public let steps: [LabStep]
    public let teardown: [LabStep]

    /// The plan for a lab; `spec` should be free of `problems()`.
    public static func make(_ spec: LabSpec) -> LabPlan {
        let mark = spec.ownerMark
        let table = LabSyntax.tableName(lab: spec.name)
        var steps: [LabStep] = []
        let namespaces = spec.namespaces.compactMap { ns -> String? in
            if case .namespace(let name) = ns.place { name } else { nil }
        }
        for name in namespaces {
            steps += [.createNamespace(name), .setAlias(LabInterfaceRef(.namespace(name), "lo"), mark)]
        }
        let hostLinks = spec.interfaces(in: .host).map(\.ref)
        for bridge in spec.bridges {
            steps.append(.createBridge(LabNewLink(bridge.interface)))
            if bridge.interface.ref.place == .host { steps.append(.setAlias(bridge.interface.ref, mark)) }
        }
        for veth in spec.veths {
            steps.append(.createVeth(LabNewLink(veth.a), peer: LabNewLink(veth.b)))
            for end in [veth.a.ref, veth.b.ref] where end.place == .host { steps.append(.setAlias(end, mark)) }
        }
        for bridge in spec.bridges {
            for port in bridge.ports {
                steps.append(.setMaster(LabInterfaceRef(bridge.interface.ref.place, port.name), bridge: bridge.interface.ref.name))
            }
        }
        for ns in spec.allNamespaces {
            for sysctl in ns.effectiveSysctls { steps.append(.setSysctl(ns.place, key: sysctl.key, value: sysctl.value)) }
        }
        for interface in spec.interfaces {
            for address in interface.addresses { steps.append(.addAddress(interface.ref, address.prefix)) }
        }
        for ns in spec.namespaces where ns.loopback { steps.append(.setLinkUp(LabInterfaceRef(ns.place, "lo"))) }
        for interface in spec.interfaces where interface.up { steps.append(.setLinkUp(interface.ref)) }
        for ns in spec.allNamespaces {
            for route in ns.routes { steps.append(.addRoute(ns.place, route)) }
        }
        for ns in spec.allNamespaces {
            if let text = NftRuleset.text(for: ns, in: spec, table: table) {
                steps.append(.loadRuleset(ns.place, table: table, text: text))
            }
        }

        var teardown: [LabStep] = []
        if spec.host.hasRules { teardown.append(.deleteRuleset(.host, table: table)) }
        teardown += spec.host.routes.reversed().map { .deleteRoute(.host, $0) }
        teardown += namespaces.reversed().map { .deleteNamespace($0, mark: mark) }
        teardown += hostLinks.reversed().map { .deleteLink($0, mark: mark) }
        teardown += spec.host.effectiveSysctls.reversed().map { .restoreSysctl(.host, key: $0.key) }
        return LabPlan(lab: spec.name, mark: mark, table: table, steps: steps, teardown: teardown)
    }

    /// The nftables text loaded into each namespace, in plan order.
    public var rulesets: [(place: LabPlace, text: String)] {
        steps.compactMap { if case .loadRuleset(let p, _, let text) = $0 { (p, text) } else { nil } }
    }
}
