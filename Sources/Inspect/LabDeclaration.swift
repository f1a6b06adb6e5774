import JSONKit
import Lab
import NetAddress

/// What a lab file declares, written as a snapshot document (the shape `nsinspect snapshot` writes) so
/// that `lab status` finds a lab's drift with the same comparison `nsinspect diff` makes between two
/// snapshots: `SnapshotDiff.compare(declared, live, options: DiffOptions(declared: true))`.
///
/// A declaration states less than a snapshot holds, and the comparison knows it (`DiffOptions.declared`):
/// a member the file leaves unset (an MTU, a MAC, a route's metric) matches anything, neighbours are not
/// declared at all, and what the file does not declare counts as extra only where the lab owns the place:
/// links and routes (other than the kernel's own) in the lab's namespaces, and global addresses on the
/// lab's interfaces. In the host only what the file declares is compared.
public enum LabDeclaration {
    /// The member of a declared namespace that says the file declares all its links and routes.
    static let ownsAll = "declares_all"

    /// The references the live snapshot must hold: every lab namespace that is there, and the host.
    public static func references(present names: [String]) -> [String] { names + ["host"] }

    /// The lab's host part and namespaces, each under the name `dump` labels it with.
    public static func document(_ spec: LabSpec) -> JSON {
        var spaces = JSONObjectBuilder()
        for ns in spec.allNamespaces {
            let label = ns.place.description
            var identity = JSONObjectBuilder()
            identity.add("reference", label)
            identity.add("names", strings: [label])
            var o = JSONObjectBuilder()
            o.add("namespace", identity.json)
            o.add(ownsAll, ns.place != .host)
            let declared = links(of: ns.place, in: spec)
            o.add("links", .array(declared))
            o.add("addrs", .array(spec.interfaces(in: ns.place).map(addresses)))
            o.add("routes", .array(ns.routes.map(route)))
            spaces.add(label, o.json)
        }
        var document = JSONObjectBuilder()
        document.add("format", SnapshotDiff.format)
        document.add("version", SnapshotDiff.version)
        document.add("namespaces", spaces.json)
        return document.json
    }

    /// The declared links of one place, in the file's order: veth ends with their peers, bridges, and the
    /// master of each bridge port. A lab namespace also has `lo`, with nothing declared about it.
    static func links(of place: LabPlace, in spec: LabSpec) -> [JSON] {
        var masters: [String: String] = [:]
        for bridge in spec.bridges where bridge.interface.ref.place == place {
            for port in bridge.ports { masters[port.name] = bridge.interface.ref.name }
        }
        var out: [JSON] = []
        var named = Set<String>()
        if place != .host {
            var lo = JSONObjectBuilder()
            lo.add("ifname", "lo")
            out.append(lo.json)
            named.insert("lo")
        }
        func add(_ interface: LabInterface, kind: String, peer: LabInterface?) {
            var o = JSONObjectBuilder()
            o.add("ifname", interface.ref.name)
            if interface.up { o.add("flags", strings: ["UP"]) }
            o.add("mtu", interface.mtu)
            o.add("master", masters[interface.ref.name])
            o.add("address", interface.mac?.description)
            var info = JSONObjectBuilder()
            info.add("info_kind", kind)
            o.add("linkinfo", info.json)
            if let peer {
                if peer.ref.place == place {
                    // ip names a veth's peer in its own namespace as the link's parent.
                    o.add("link", peer.ref.name)
                } else {
                    var p = JSONObjectBuilder()
                    p.add("ifname", peer.ref.name)
                    p.add("netns", peer.ref.place.description)
                    o.add("peer", p.json)
                }
            }
            out.append(o.json)
            named.insert(interface.ref.name)
        }
        for veth in spec.veths {
            if veth.a.ref.place == place { add(veth.a, kind: "veth", peer: veth.b) }
            if veth.b.ref.place == place { add(veth.b, kind: "veth", peer: veth.a) }
        }
        for bridge in spec.bridges where bridge.interface.ref.place == place {
            add(bridge.interface, kind: "bridge", peer: nil)
        }
        // A port the file names without declaring the link itself (it is declared elsewhere or not at all).
        for (port, master) in masters.sorted(by: { $0.key < $1.key }) where !named.contains(port) {
            var o = JSONObjectBuilder()
            o.add("ifname", port)
            o.add("master", master)
            out.append(o.json)
        }
        return out
    }

    /// `ip -j addr`'s shape: the link's name with its declared addresses under "addr_info".
    static func addresses(_ interface: LabInterface) -> JSON {
        var o = JSONObjectBuilder()
        o.add("ifname", interface.ref.name)
        o.add("addr_info", .array(interface.addresses.map { address in
            var a = JSONObjectBuilder()
            a.add("family", address.prefix.family == .v4 ? "inet" : "inet6")
            a.add("local", address.prefix.address.description)
            a.add("prefixlen", Int(address.prefix.length))
            return a.json
        }))
        return o.json
    }

    /// `ip -j route`'s shape; "type" only when not unicast, as ip prints it.
    static func route(_ route: LabRoute) -> JSON {
        var o = JSONObjectBuilder()
        if route.kind != .unicast { o.add("type", route.kind.rawValue) }
        let destination = route.destination
        o.add("dst", destination.length == 0 ? "default"
              : Int(destination.length) == destination.address.bitWidth ? destination.address.description : destination.description)
        o.add("family", destination.family == .v4 ? "inet" : "inet6")
        o.add("gateway", route.gateway?.description)
        o.add("dev", route.device)
        o.add("metric", route.metric.map { Int64($0) })
        return o.json
    }

    /// The differences as drift: what the file declares and the machine lacks is missing, what the machine
    /// has beyond it extra, and a changed field says what is there and what the file says. Namespaces that
    /// are not there are left to the caller, which knows whether each is absent or someone else's.
    public static func drift(_ difference: SnapshotDiff) -> [LabDrift] {
        var drift: [LabDrift] = []
        for ns in difference.namespaces where ns.change == .changed {
            for entry in ns.entries {
                let what = entry.object == .link
                    ? "link \(ns.label):\(entry.identity)"
                    : "\(entry.object.rawValue) \(entry.identity) in \(ns.label)"
                switch entry.action {
                case .removed: drift.append(LabDrift(.missing, what))
                case .added: drift.append(LabDrift(.extra, what))
                case .changed:
                    let detail = entry.fields.map { "\($0.field) \($0.new ?? "unset") (the file says \($0.old ?? "unset"))" }
                    drift.append(LabDrift(.changed, what, detail.joined(separator: "; ")))
                }
            }
        }
        return drift
    }
}
