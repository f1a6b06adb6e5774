/// One end of a link between namespaces: an interface in a namespace (namespaces are numbered by the
/// caller, in the order of the snapshots given to `Wiring.build`).
public struct LinkEnd: Hashable, Sendable, Comparable {
    public let namespace: Int
    public let index: Int32
    public let name: String

    public init(namespace: Int, index: Int32, name: String) {
        self.namespace = namespace
        self.index = index
        self.name = name
    }

    public static func < (a: LinkEnd, b: LinkEnd) -> Bool { (a.namespace, a.index) < (b.namespace, b.index) }
}

/// The wiring between namespaces as the kernel reports it (not as anyone declared it): veth pairs,
/// bridges and their ports, and links stacked on a parent (macvlan, ipvlan, vlan, vxlan).
public struct Wiring: Sendable {
    public struct VethPair: Hashable, Sendable {
        public let a: LinkEnd
        public let b: LinkEnd
    }

    public struct Bridge: Sendable {
        public let bridge: LinkEnd
        public let ports: [LinkEnd]
    }

    public struct Stacked: Sendable {
        public let kind: String
        public let child: LinkEnd
        /// nil when the parent could not be found (another namespace nsinspect cannot see).
        public let parent: LinkEnd?
    }

    public struct Unresolved: Sendable {
        public let end: LinkEnd
        public let kind: String
        public let reason: String
    }

    /// A switch that is not a Linux bridge: Open vSwitch (its database names the bridge and its ports), or
    /// an unmanaged one (ports with no master and no address whose frames something in user space moves
    /// on: an Open vSwitch netdev datapath nsinspect cannot ask, a packet-socket forwarder).
    public struct Switch: Sendable, Equatable {
        public enum Kind: String, Sendable { case openVSwitch = "openvswitch", unmanaged }
        public let kind: Kind
        /// The switch's name (an Open vSwitch bridge); nil when nobody names it.
        public let name: String?
        public let namespace: Int
        public let ports: [LinkEnd]

        public init(kind: Kind, name: String?, namespace: Int, ports: [LinkEnd]) {
            self.kind = kind
            self.name = name
            self.namespace = namespace
            self.ports = ports
        }
    }

    public var vethPairs: [VethPair] = []
    public var bridges: [Bridge] = []
    public var stacked: [Stacked] = []
    public var unresolved: [Unresolved] = []
    public var switches: [Switch] = []

    /// The bridge or switch an interface is a port of.
    public func bridge(withPort end: LinkEnd) -> Bridge? { bridges.first { $0.ports.contains(end) } }
    public func `switch`(withPort end: LinkEnd) -> Switch? { switches.first { $0.ports.contains(end) } }

    /// Namespaces that may hold an unmanaged switch: two or more veth ends without a master whose peers
    /// are in other namespaces. Whether they are switch ports depends on their addresses (a router's
    /// interfaces look the same without them), which the caller reads for these namespaces only and
    /// hands to `findSwitches`.
    public func switchCandidates(_ links: [[Link]]) -> [Int: [LinkEnd]] {
        var candidates: [Int: [LinkEnd]] = [:]
        for pair in vethPairs where pair.a.namespace != pair.b.namespace {
            for end in [pair.a, pair.b] {
                guard let link = links[end.namespace].first(where: { $0.index == end.index }), (link.master ?? 0) == 0 else { continue }
                candidates[end.namespace, default: []].append(end)
            }
        }
        return candidates.filter { $0.value.count >= 2 }
    }

    /// Open vSwitch's bridges as its database lists them: the bridge name and its ports' interface names.
    public struct OVSBridge: Sendable, Equatable {
        public let name: String
        public let ports: [String]
        public init(name: String, ports: [String]) {
            self.name = name
            self.ports = ports
        }
    }

    /// Adds the switches: ports of Open vSwitch bridges (kernel datapath ports are enslaved to the
    /// `openvswitch` link `ovs-system`; netdev datapath ports have no master), split by the database's
    /// bridges when it could be read (`ovs`: each running ovs-vswitchd's namespace and bridges); and the
    /// candidates without any IPv4 or global IPv6 address, one unmanaged switch per namespace.
    /// `addresses[i]` holds namespace i's addresses (candidates only); `candidates` are
    /// `switchCandidates(links)` when the caller has them already.
    public mutating func findSwitches(_ links: [[Link]], addresses: [Int: [InterfaceAddress]],
                                      ovs: [(namespace: Int, bridges: [OVSBridge])] = [], candidates: [Int: [LinkEnd]]? = nil) {
        var claimed = Set<LinkEnd>()
        // Bridges each database names, in the namespace its ovs-vswitchd runs in.
        for (ns, bridges) in ovs {
            for bridge in bridges {
                let ports = bridge.ports.compactMap { name in
                    links[ns].first { $0.name == name }.map { LinkEnd(namespace: ns, index: $0.index, name: $0.name) }
                }.filter { !claimed.contains($0) && $0.name != bridge.name }
                guard !ports.isEmpty else { continue }
                switches.append(Switch(kind: .openVSwitch, name: bridge.name, namespace: ns, ports: ports))
                claimed.formUnion(ports)
            }
        }
        // Kernel datapath ports the database did not name: enslaved to an openvswitch link.
        for (ns, list) in links.enumerated() {
            let datapaths = Set(list.filter { $0.kind == "openvswitch" }.map(\.index))
            guard !datapaths.isEmpty else { continue }
            let ports = list.filter { datapaths.contains($0.master ?? 0) }.map { LinkEnd(namespace: ns, index: $0.index, name: $0.name) }
                .filter { !claimed.contains($0) }
            if !ports.isEmpty { switches.append(Switch(kind: .openVSwitch, name: nil, namespace: ns, ports: ports)) }
            claimed.formUnion(ports)
        }
        for (ns, ends) in (candidates ?? switchCandidates(links)).sorted(by: { $0.key < $1.key }) {
            let known = addresses[ns] ?? []
            let ports = ends.filter { end in
                !claimed.contains(end) && !known.contains { $0.index == end.index && ($0.family == .v4 || $0.scope == 0) }
            }.sorted()
            if ports.count >= 2 { switches.append(Switch(kind: .unmanaged, name: nil, namespace: ns, ports: ports)) }
        }
    }

    /// The other end of a veth, if it was found.
    public func peer(of end: LinkEnd) -> LinkEnd? {
        for pair in vethPairs {
            if pair.a == end { return pair.b }
            if pair.b == end { return pair.a }
        }
        return nil
    }

    /// Answers "which of `candidates` does namespace `from` call nsid `nsid`?" with an RTM_GETNSID
    /// exchange in `from` (the caller knows how to reach the namespaces). Only asked when the indexes
    /// alone leave more than one candidate.
    public typealias NSIDResolver = (_ from: Int, _ nsid: Int32, _ candidates: [Int]) -> Int?

    private struct Key: Hashable {
        let index: Int32
        let peer: Int32
    }

    /// Builds the wiring from each namespace's links. Veth ends in different namespaces are paired by
    /// matching (ifindex, peer ifindex) against (peer ifindex, ifindex): one dictionary lookup per veth
    /// instead of asking every namespace about every other one. Only when the indexes match more than one
    /// namespace does `resolve` settle it with the nsid the kernel reported (IFLA_LINK_NETNSID).
    public static func build(_ links: [[Link]], resolve: NSIDResolver) -> Wiring {
        var wiring = Wiring()
        var crossing: [Key: [LinkEnd]] = [:]
        var pending: [(end: LinkEnd, peerIndex: Int32, nsid: Int32)] = []
        for (ns, list) in links.enumerated() {
            let byIndex = Dictionary(list.map { ($0.index, $0) }, uniquingKeysWith: { a, _ in a })
            for link in list {
                let end = LinkEnd(namespace: ns, index: link.index, name: link.name)
                switch link.kind {
                case "veth":
                    guard let peerIndex = link.link, peerIndex > 0 else {
                        wiring.unresolved.append(Unresolved(end: end, kind: "veth", reason: "the kernel names no peer"))
                        continue
                    }
                    if let nsid = link.linkNetnsID {
                        crossing[Key(index: link.index, peer: peerIndex), default: []].append(end)
                        pending.append((end, peerIndex, nsid))
                    } else if let peer = byIndex[peerIndex] {
                        // Both ends in one namespace: record the pair once, from its lower index.
                        if link.index < peerIndex {
                            wiring.vethPairs.append(VethPair(a: end, b: LinkEnd(namespace: ns, index: peer.index, name: peer.name)))
                        }
                    } else {
                        wiring.unresolved.append(Unresolved(end: end, kind: "veth", reason: "peer ifindex \(peerIndex) not found"))
                    }
                case "bridge":
                    let ports = list.filter { $0.master == link.index }.map { LinkEnd(namespace: ns, index: $0.index, name: $0.name) }
                    wiring.bridges.append(Bridge(bridge: end, ports: ports))
                case "macvlan", "macvtap", "ipvlan", "ipvtap", "vlan", "vxlan":
                    let parentIndex = link.kind == "vxlan" ? link.vxlan?.link : link.link
                    guard let parentIndex, parentIndex > 0 else {
                        if link.kind != "vxlan" {
                            wiring.unresolved.append(Unresolved(end: end, kind: link.kind!, reason: "the kernel names no parent"))
                        }
                        continue
                    }
                    if let nsid = link.linkNetnsID {
                        let candidates = links.indices.filter { $0 != ns && links[$0].contains { $0.index == parentIndex } }
                        if let other = resolve(ns, nsid, candidates), let parent = links[other].first(where: { $0.index == parentIndex }) {
                            wiring.stacked.append(Stacked(kind: link.kind!, child: end,
                                                          parent: LinkEnd(namespace: other, index: parent.index, name: parent.name)))
                        } else {
                            wiring.stacked.append(Stacked(kind: link.kind!, child: end, parent: nil))
                            wiring.unresolved.append(Unresolved(end: end, kind: link.kind!,
                                                                reason: "parent ifindex \(parentIndex) in nsid \(nsid) not found"))
                        }
                    } else if let parent = byIndex[parentIndex] {
                        wiring.stacked.append(Stacked(kind: link.kind!, child: end,
                                                      parent: LinkEnd(namespace: ns, index: parent.index, name: parent.name)))
                    }
                default:
                    continue
                }
            }
        }
        var paired = Set<LinkEnd>()
        for (end, peerIndex, nsid) in pending where !paired.contains(end) {
            let candidates = (crossing[Key(index: peerIndex, peer: end.index)] ?? [])
                .filter { $0 != end && $0.namespace != end.namespace && !paired.contains($0) }
            var peer: LinkEnd?
            // Unique when one end answers the key and no other end shares ours (with equal indexes the two
            // ends share one key, so the candidate itself is not a rival).
            let rivals = (crossing[Key(index: end.index, peer: peerIndex)] ?? [])
                .filter { $0 != end && !candidates.contains($0) && !paired.contains($0) }
            if candidates.count == 1, rivals.isEmpty {
                peer = candidates[0]
            } else if !candidates.isEmpty,
                let ns = resolve(end.namespace, nsid, candidates.map(\.namespace)) {
                peer = candidates.first { $0.namespace == ns }
            }
            guard let peer else {
                wiring.unresolved.append(Unresolved(end: end, kind: "veth",
                                                    reason: "peer ifindex \(peerIndex) in nsid \(nsid) not found"))
                continue
            }
            paired.insert(end)
            paired.insert(peer)
            wiring.vethPairs.append(end < peer ? VethPair(a: end, b: peer) : VethPair(a: peer, b: end))
        }
        wiring.vethPairs.sort { ($0.a, $0.b) < ($1.a, $1.b) }
        return wiring
    }
}
