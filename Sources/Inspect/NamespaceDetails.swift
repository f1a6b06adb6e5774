import Netlink
import ProcNS

/// The far end of a link in another namespace: a veth's peer, a stacked link's parent.
public struct LinkPeer: Sendable, Equatable {
    public var ifname: String
    public var ifindex: Int32
    /// The namespace's label (its reference: `router1`, `docker:web`).
    public var namespace: String
    public var inode: UInt64?

    public init(ifname: String, ifindex: Int32, namespace: String, inode: UInt64?) {
        self.ifname = ifname
        self.ifindex = ifindex
        self.namespace = namespace
        self.inode = inode
    }
}

/// One entry of a namespace's nsid table (`ip netns list-id`): the id, and the census namespace it
/// designates (nil when the census did not find that namespace, e.g. one held only by the kernel).
public struct NSIDEntry: Sendable {
    public var nsid: Int32
    public var namespace: NetNamespace?
}

/// Names of the far ends of a namespace's veths (and parents of stacked links) in other namespaces:
/// the namespace's nsid table, mapped onto `open`'s namespaces by the caller (`OpenNamespaces.nsidMap`),
/// says which namespace each nsid is, and that namespace is asked for the name of the peer's ifindex
/// (one link dump per namespace, kept for the next link that points there).
public struct PeerNames {
    public let open: OpenNamespaces
    private var remoteLinks: [Int: [Link]] = [:]

    public init(_ open: OpenNamespaces) { self.open = open }

    /// Whether a link points at an interface in another namespace (IFLA_LINK with IFLA_LINK_NETNSID).
    public static func crosses(_ link: Link) -> Bool { link.linkNetnsID != nil && (link.link ?? 0) > 0 }

    /// The peers of those of `links` that cross into a namespace of `open`, by local ifindex.
    /// - Parameter nsids: nsid (as the links' namespace numbers it) → index into `open.namespaces`.
    public mutating func peers(of links: [Link], nsids: [Int32: Int]) -> [Int32: LinkPeer] {
        var peers: [Int32: LinkPeer] = [:]
        for link in links where Self.crosses(link) {
            guard let nsid = link.linkNetnsID, let target = nsids[nsid], let peerIndex = link.link else { continue }
            if remoteLinks[target] == nil {
                remoteLinks[target] = (try? NetlinkSession(in: open.handles[target]).links(statistics: false)) ?? []
            }
            let name = remoteLinks[target]?.first { $0.index == peerIndex }?.name ?? "if\(peerIndex)"
            peers[link.index] = LinkPeer(ifname: name, ifindex: peerIndex, namespace: open.namespaces[target].reference,
                                            inode: open.namespaces[target].id.inode)
        }
        return peers
    }
}

/// One namespace as `show` reads it: its state over netlink, the census entry, its veth peers and
/// parents named, and its nsid table.
public struct NamespaceDetails {
    public let label: String
    public let handle: NamespaceHandle
    public let namespace: NetNamespace?
    public let state: NamespaceState
    public let peers: [Int32: LinkPeer]
    public let nsids: [NSIDEntry]

    /// Reads the namespace a reference names. Its nsid table (RTM_GETNSID dump, as `ip netns list-id`)
    /// says which other namespaces it refers to: veth peers, stacked links' parents, the `nsids`
    /// section. Only when there are ids are the census namespaces opened and asked about, in one batched
    /// exchange, and each id named after the namespace that answers it.
    public static func read(_ reference: String) throws -> NamespaceDetails {
        let census = try Census.scan()
        var resolver = NamespaceResolver(census: census)
        let handle = try resolver.resolve(reference)
        let entry = census.namespace(inode: handle.id.inode)
        let label = entry?.reference ?? reference
        let session = try NetlinkSession(in: handle, label: label)
        let state = try session.snapshot()
        let assigned = try session.socket.assignedNSIDs()
        var peers: [Int32: LinkPeer] = [:]
        var nsids: [NSIDEntry] = []
        if !assigned.isEmpty {
            var names = PeerNames(OpenNamespaces(census))
            let map = names.open.nsidMap(from: session.socket)
            peers = names.peers(of: state.links, nsids: map)
            nsids = assigned.map { NSIDEntry(nsid: $0, namespace: map[$0].map { names.open.namespaces[$0] }) }
        }
        return NamespaceDetails(label: label, handle: handle, namespace: entry, state: state, peers: peers, nsids: nsids)
    }
}
