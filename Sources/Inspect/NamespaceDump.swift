import Netlink
import ProcNS

/// `dump`'s engine: the census (or a selection of it) opened; every namespace's links first, for the
/// wiring that names veth peers across namespaces; then the other sections of each namespace, read on
/// two worker threads that also render it (the caller's closure), handed over in order.
public struct NamespaceDump {
    public let open: OpenNamespaces
    /// Each namespace's links (empty, with the reason in `failed`, when its dump failed).
    private let links: [[Link]]
    private let failed: [Int: String]
    /// Each namespace's veth peers and parents in other namespaces, by local ifindex.
    public let peers: [[Int32: LinkPeer]]

    public init(references: [String]) throws {
        let census = try Census.scan()
        let selected = try references.isEmpty ? nil : references.map { try census.select(NamespaceReference.parse($0)) }
        let open = OpenNamespaces(census, selecting: selected)
        var links: [[Link]] = []
        var failed: [Int: String] = [:]
        for (i, result) in try open.snapshots(.links).enumerated() {
            switch result {
            case .success(let snapshot): links.append(snapshot.state.links)
            case .failure(let error):
                links.append([])
                failed[i] = "\(error)"
            }
        }
        let wiring = open.wiring(links)
        var peers = open.namespaces.indices.map { Self.peers(of: $0, wiring: wiring, open: open) }
        Self.resolveOutsideSelection(&peers, links: links, open: open, census: census)
        self.open = open
        self.links = links
        self.failed = failed
        self.peers = peers
    }

    /// Reads `parts` (links come from the first phase) of every namespace on two workers; `render` runs on
    /// the worker with the namespace's index and snapshot, `emit` gets the results in order.
    public func each(_ parts: InventoryParts, render: @escaping @Sendable (Int, NamespaceSnapshot) throws -> [UInt8],
                     emit: @escaping @Sendable (Int, Result<[UInt8], any Error>) -> Void) throws {
        let rest = parts.subtracting(.links)
        let (allLinks, failures, labels) = (links, failed, open.labels)
        try NamespaceThread.runEachInOrder(in: open.handles, parallelism: 2, { i, ns -> [UInt8] in
            if let reason = failures[i] { throw OperationError("dump", labels[i], reason) }
            var snapshot = try Inventory.snapshot(ns, parts: rest)
            snapshot.state.links = allLinks[i]
            return try render(i, snapshot)
        }, emit: emit)
    }

    /// Names the peers the wiring left unresolved because they are in namespaces outside the selection
    /// (`dump host1 router1`: router1's e0 is in router2): without this they would print as
    /// "if2 in nsid 0 (unresolved)" while `show router1` names them. As `show` does, a namespace with
    /// such links asks its own nsid table about the census namespaces outside the selection, in one
    /// batched RTM_GETNSID exchange, and the namespace found is asked for the peer's name. Only namespaces
    /// with a peer left over ask, and only about the namespaces not dumped, so a full dump asks nothing
    /// and a small selection asks about each other namespace once per namespace that needs it, rather
    /// than every namespace about every other.
    static func resolveOutsideSelection(_ peers: inout [[Int32: LinkPeer]], links: [[Link]], open: OpenNamespaces,
                                        census: Census) {
        let pending = open.namespaces.indices.filter { i in
            links[i].contains { PeerNames.crosses($0) && peers[i][$0.index] == nil }
        }
        guard !pending.isEmpty else { return }
        let dumped = Set(open.namespaces.map(\.id))
        let outside = census.namespaces.filter { !dumped.contains($0.id) }
        guard !outside.isEmpty else { return }
        var names = PeerNames(OpenNamespaces(census, selecting: outside))
        for i in pending {
            guard let socket = try? NetlinkSocket.open(in: open.handles[i], label: open.labels[i]) else { continue }
            let left = links[i].filter { PeerNames.crosses($0) && peers[i][$0.index] == nil }
            let found = names.peers(of: left, nsids: names.open.nsidMap(from: socket))
            peers[i].merge(found) { known, _ in known }
        }
    }

    /// Veth peers (and stacked-link parents) of namespace `ns` in other namespaces, from the wiring.
    static func peers(of ns: Int, wiring: Wiring, open: OpenNamespaces) -> [Int32: LinkPeer] {
        var peers: [Int32: LinkPeer] = [:]
        func add(_ local: LinkEnd, _ remote: LinkEnd) {
            guard local.namespace == ns, remote.namespace != ns else { return }
            peers[local.index] = LinkPeer(ifname: remote.name, ifindex: remote.index,
                                             namespace: open.labels[remote.namespace],
                                             inode: open.inodes[remote.namespace])
        }
        for pair in wiring.vethPairs {
            add(pair.a, pair.b)
            add(pair.b, pair.a)
        }
        for s in wiring.stacked { if let parent = s.parent { add(s.child, parent) } }
        return peers
    }
}
