import Netlink
import ProcNS

/// One difference between a lab file and what is on the machine.
public struct LabDrift: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case missing, extra, changed
    }
    public var kind: Kind
    /// What: `namespace router2`, `link router1:e0`, `address 10.0.0.1/24 on router1:e0`, `route … in router1`.
    public var what: String
    /// For `changed`: what is there instead.
    public var detail: String?

    public init(_ kind: Kind, _ what: String, _ detail: String? = nil) {
        self.kind = kind
        self.what = what
        self.detail = detail
    }

    public var description: String { "\(kind.rawValue) \(what)" + (detail.map { ": \($0)" } ?? "") }
}

extension LabBuilder {
    /// Compares the file with the machine: namespaces, links (kind, veth peer, bridge master, up, MTU,
    /// MAC), addresses, routes and forwarding in every lab namespace, and the lab's links in the host.
    /// Read over netlink; nothing is changed.
    /// `presences`: the lab's namespaces as the caller already found them (`up` and `lab status` need
    /// them too), so each namespace's mark is asked once.
    public func status(presences found: [(name: String, presence: Presence, handle: NamespaceHandle?)]? = nil) throws -> [LabDrift] {
        var drift: [LabDrift] = []
        var states: [LabPlace: NamespaceState] = [:]
        var handles: [LabPlace: NamespaceHandle] = [:]
        for entry in found ?? presences() {
            let place = LabPlace.namespace(entry.name)
            switch entry.presence {
            case .absent: drift.append(LabDrift(.missing, "namespace \(entry.name)"))
            case .foreign(let reason): drift.append(LabDrift(.changed, "namespace \(entry.name)", reason))
            case .ours:
                guard let handle = entry.handle else { continue }
                handles[place] = handle
                states[place] = try NetlinkSession(in: handle, label: entry.name).snapshot()
            }
        }
        let host = try NamespaceHandle.host()
        let hostState = try NetlinkSession(in: host, label: "host").snapshot()
        states[.host] = hostState
        handles[.host] = host

        // Interfaces the file declares, where their namespace is there to look.
        for interface in spec.interfaces {
            guard let state = states[interface.ref.place] else { continue }
            guard let link = state.link(named: interface.ref.name) else {
                drift.append(LabDrift(.missing, "link \(interface.ref)"))
                continue
            }
            if interface.ref.place == .host && link.alias != plan.mark {
                drift.append(LabDrift(.changed, "link \(interface.ref)", "not made by lab '\(spec.name)' (no mark)"))
                continue
            }
            if interface.up && !link.isUp { drift.append(LabDrift(.changed, "link \(interface.ref)", "down (the file says up)")) }
            if let mtu = interface.mtu, link.mtu.map(Int.init) != mtu {
                drift.append(LabDrift(.changed, "link \(interface.ref)", "mtu \(link.mtu.map(String.init) ?? "?") (the file says \(mtu))"))
            }
            if let mac = interface.mac, link.address != mac {
                drift.append(LabDrift(.changed, "link \(interface.ref)", "address \(link.address?.description ?? "?") (the file says \(mac))"))
            }
            for address in interface.addresses {
                let present = state.addresses(of: link.index).contains { $0.prefix == address.prefix }
                if !present { drift.append(LabDrift(.missing, "address \(address.prefix) on \(interface.ref)")) }
            }
            let declared = Set(interface.addresses.map(\.prefix))
            for address in state.addresses(of: link.index) where address.scope == 0 {
                if let prefix = address.prefix, !declared.contains(prefix) {
                    drift.append(LabDrift(.extra, "address \(prefix) on \(interface.ref)"))
                }
            }
        }
        drift += vethDrift(states)
        drift += bridgeDrift(states)

        // Links in a lab namespace that the file does not declare (lo is always there).
        for ns in spec.namespaces {
            guard let state = states[ns.place] else { continue }
            let declared = Set(spec.interfaces(in: ns.place).map(\.ref.name) + ["lo"])
            for link in state.links where !declared.contains(link.name) {
                drift.append(LabDrift(.extra, "link \(ns.place):\(link.name)"))
            }
        }

        // Routes: every declared one present; in lab namespaces, every route someone added (not the
        // kernel's own) declared.
        for ns in spec.allNamespaces {
            guard let state = states[ns.place] else { continue }
            for route in ns.routes where !state.routes.contains(where: { matches($0, route, in: state) }) {
                drift.append(LabDrift(.missing, "route \(route) in \(ns.place)"))
            }
            if ns.place != .host {
                for route in state.routes where route.table == 254 && route.routeProtocol != 2 /* kernel */ {
                    if !ns.routes.contains(where: { matches(route, $0, in: state) }) {
                        drift.append(LabDrift(.extra, "route \(describe(route, in: state)) in \(ns.place)"))
                    }
                }
            }
            // Forwarding and the other sysctls the file sets.
            for sysctl in ns.effectiveSysctls {
                guard let handle = handles[ns.place], let value = try? Sysctl.read(sysctl.key, in: handle) else { continue }
                if value != sysctl.value {
                    drift.append(LabDrift(.changed, "\(sysctl.key) in \(ns.place)", "\(value) (the file says \(sysctl.value))"))
                }
            }
        }
        return drift
    }

    /// Each declared veth pair must still be a pair: the ends know each other's ifindex.
    private func vethDrift(_ states: [LabPlace: NamespaceState]) -> [LabDrift] {
        var drift: [LabDrift] = []
        for veth in spec.veths {
            guard let sa = states[veth.a.ref.place], let sb = states[veth.b.ref.place],
                let a = sa.link(named: veth.a.ref.name), let b = sb.link(named: veth.b.ref.name)
            else { continue }
            let crosses = veth.a.ref.place != veth.b.ref.place
            if a.kind != "veth" { drift.append(LabDrift(.changed, "link \(veth.a.ref)", "a \(a.kind ?? "plain") link, not a veth")); continue }
            if a.link != b.index || b.link != a.index || (a.linkNetnsID != nil) != crosses {
                drift.append(LabDrift(.changed, "link \(veth.a.ref)", "not paired with \(veth.b.ref)"))
            }
        }
        return drift
    }

    private func bridgeDrift(_ states: [LabPlace: NamespaceState]) -> [LabDrift] {
        var drift: [LabDrift] = []
        for bridge in spec.bridges {
            guard let state = states[bridge.interface.ref.place], let link = state.link(named: bridge.interface.ref.name) else { continue }
            if link.kind != "bridge" {
                drift.append(LabDrift(.changed, "link \(bridge.interface.ref)", "a \(link.kind ?? "plain") link, not a bridge"))
                continue
            }
            for port in bridge.ports {
                guard let p = state.link(named: port.name) else { continue }
                if p.master != link.index {
                    drift.append(LabDrift(.changed, "link \(bridge.interface.ref.place):\(port.name)",
                                          "not a port of \(bridge.interface.ref.name)"))
                }
            }
        }
        return drift
    }

    /// Whether a kernel route is the lab route: destination, gateway, device, metric and type agree (the
    /// file's unset fields match anything).
    func matches(_ route: Route, _ declared: LabRoute, in state: NamespaceState) -> Bool {
        guard route.table == 254, route.destination == declared.destination else { return false }
        if let gateway = declared.gateway, route.gateway != gateway && !route.nexthops.contains(where: { $0.gateway == gateway }) {
            return false
        }
        if let device = declared.device, route.outputIndex.flatMap(state.name(of:)) != device { return false }
        if let metric = declared.metric, route.priority != metric { return false }
        let type: UInt8
        switch declared.kind {
        case .unicast: type = RouteType.unicast
        case .blackhole: type = RouteType.blackhole
        case .unreachable: type = RouteType.unreachable
        case .prohibit: type = RouteType.prohibit
        }
        return route.type == type
    }

    private func describe(_ route: Route, in state: NamespaceState) -> String {
        var words = [route.type == RouteType.unicast ? "" : RTNames.routeType(route.type) + " ",
                     route.destination.length == 0 ? "default" : route.destination.description]
        if let gateway = route.gateway { words.append(" via \(gateway)") }
        if let dev = route.outputIndex.flatMap(state.name(of:)) { words.append(" dev \(dev)") }
        return words.joined()
    }
}
