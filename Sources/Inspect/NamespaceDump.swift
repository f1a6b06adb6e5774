import Netlink
import ProcNS

/// `dump`'s engine: the census (or a selection of it) opened; every namespace read by one thread, which
/// decodes only the links, for the wiring that names veth peers across namespaces; then the other
/// sections of each namespace decoded on two worker threads that also render it (the caller's closure),
/// handed over in order.
///
/// One thread talks to the kernel, with one setns and one socket per namespace, as the floor program
/// does (Benchmarks/dumpfloor.c): two threads dumping at once spin on the same kernel mutexes (57 %
/// more kernel time in the floor program for 19 % less wall time), and taking turns between them cost
/// a futex wake-up and a context switch per namespace (15 % of dump's kernel time). The answers wait
/// undecoded (about 5 KB per namespace) until a worker renders them.
public struct NamespaceDump {
    public let open: OpenNamespaces
    /// Each namespace's links (empty, with the reason in `failed`, when its dump failed).
    private let links: [[Link]]
    /// Each namespace's other answers, undecoded (let go of as each namespace is rendered).
    private let answers: AnswerSlots
    private let cookies: [UInt64?]
    private let failed: [Int: String]
    /// Each namespace's veth peers and parents in other namespaces, by local ifindex.
    public let peers: [[Int32: LinkPeer]]

    /// Reads `parts` of the namespaces `references` name (all by default); links are always read. With
    /// `skippingGone`, a reference that names nothing any more is left out instead of being an error
    /// (`diff --now` against an earlier snapshot's selection: what is gone shows as gone).
    public init(references: [String], parts: InventoryParts, skippingGone: Bool = false) throws {
        let census = try Census.scan()
        let selected = try references.isEmpty ? nil : references.compactMap { reference -> NetNamespace? in
            do {
                return try census.select(NamespaceReference.parse(reference))
            } catch where skippingGone {
                return nil
            }
        }
        let open = OpenNamespaces(census, selecting: selected)
        let wanted = parts.union(.links).subtracting(.interfaceNames)
        let read = try NamespaceThread.runEach(in: open.handles) { _, ns in
            let socket = try NetlinkSocket.open(label: ns.origin, dumpsOnly: true)
            var answers = try Inventory.read(wanted, from: socket)
            let links = try Inventory.Answers(links: answers.links).decoded().links
            answers.links = nil
            return (links, answers, socket.netnsCookie)
        }
        var links: [[Link]] = [], answers: [Inventory.Answers] = [], cookies: [UInt64?] = []
        var failed: [Int: String] = [:]
        for (i, result) in read.enumerated() {
            switch result {
            case .success(let (found, rest, cookie)):
                links.append(found)
                answers.append(rest)
                cookies.append(cookie)
            case .failure(let error):
                links.append([])
                answers.append(Inventory.Answers())
                cookies.append(nil)
                failed[i] = "\(error)"
            }
        }
        let wiring = open.wiring(links)
        var peers = Self.peers(wiring: wiring, open: open)
        Self.resolveOutsideSelection(&peers, links: links, open: open, census: census)
        self.open = open
        self.links = links
        self.answers = AnswerSlots(answers)
        self.cookies = cookies
        self.failed = failed
        self.peers = peers
    }

    /// Decodes every namespace's answers on two workers; `render` runs on the worker with the
    /// namespace's index and snapshot, `emit` gets the results in order.
    public func each(render: @escaping @Sendable (Int, NamespaceSnapshot) throws -> [UInt8],
                     emit: @escaping @Sendable (Int, Result<[UInt8], any Error>) -> Void) throws {
        let (allLinks, answers, cookies, failures, labels) = (links, answers, cookies, failed, open.labels)
        try NamespaceThread.runEachInOrder(in: open.handles, parallelism: 2, enter: false, { i, _ -> [UInt8] in
            if let reason = failures[i] { throw OperationError("dump", labels[i], reason) }
            var state = try answers.take(i).decoded()
            state.links = allLinks[i]
            return try render(i, NamespaceSnapshot(state: state, cookie: cookies[i]))
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

    /// Every namespace's veth peers (and stacked-link parents) in other namespaces, from the wiring, in
    /// one pass over it: asking the wiring once per namespace made a thousand-namespace dump walk a
    /// thousand pairs a thousand times.
    static func peers(wiring: Wiring, open: OpenNamespaces) -> [[Int32: LinkPeer]] {
        var peers = [[Int32: LinkPeer]](repeating: [:], count: open.namespaces.count)
        func add(_ local: LinkEnd, _ remote: LinkEnd) {
            guard local.namespace != remote.namespace, peers.indices.contains(local.namespace) else { return }
            peers[local.namespace][local.index] = LinkPeer(ifname: remote.name, ifindex: remote.index,
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

/// The undecoded answers of every namespace, each taken once by the worker that renders it, so what was
/// rendered is freed as the dump goes on. Workers take distinct indexes (`runEachInOrder` hands each
/// out once), so no slot is touched by two threads.
private final class AnswerSlots: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<Inventory.Answers>
    private let count: Int

    init(_ answers: [Inventory.Answers]) {
        count = answers.count
        slots = .allocate(capacity: count)
        _ = UnsafeMutableBufferPointer(start: slots, count: count).initialize(from: answers)
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    func take(_ i: Int) -> Inventory.Answers {
        defer { slots[i] = Inventory.Answers() }
        return slots[i]
    }
}
