import ArgumentParser
import JSONKit
import Netlink
import ProcNS

struct DumpCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Links, addresses, routes, neighbours, fdb and rules of every namespace, in one process.",
        discussion: """
            Every namespace the census finds, named or not, is read over netlink (one dump per section on \
            one socket per namespace); veth peers are named from the wiring of all of them. --json prints \
            one document keyed by namespace reference. A namespace that disappears meanwhile is reported \
            on stderr and the rest is still printed.
            """
    )

    @Argument(help: "Only these namespaces (NS references); all by default.") var references: [String] = []
    @Option(help: "Comma-separated sections: links, addrs, routes, neigh, fdb, rules.")
    var sections: String = "links,addrs,routes,neigh"
    @OptionGroup var common: CommonOptions

    func run() throws {
        let census = try Census.scan()
        let selected = try references.isEmpty ? nil : references.map { try census.select(NamespaceReference.parse($0)) }
        let open = OpenNamespaces(census, selecting: selected)
        for (ns, error) in open.vanished { Output.warn("dump: \(ns.reference): \(error.reason)") }
        let wanted = try Self.parts(sections)
        // Phase 1: every namespace's links, for the wiring that names veth peers across namespaces.
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
        // Phase 2: each worker reads the other sections of its share of the namespaces and renders them,
        // so decoding and formatting run on both cores and only the rendered bytes are kept.
        let json = common.json
        var peers = open.namespaces.indices.map { Self.peers(of: $0, wiring: wiring, open: open) }
        Self.resolveOutsideSelection(&peers, links: links, open: open, census: census)
        let labels = open.labels, namespaces = open.namespaces
        let rest = wanted.parts.subtracting(.links)
        let (allLinks, failures, allPeers) = (links, failed, peers)
        let writer = DumpWriter(json: json, labels: labels, inodes: open.inodes)
        try NamespaceThread.runEachInOrder(in: open.handles, parallelism: 2, { i, ns -> [UInt8] in
            if let reason = failures[i] { throw OperationError("dump", labels[i], reason) }
            var snapshot = try Inventory.snapshot(ns, parts: rest)
            snapshot.state.links = allLinks[i]
            let view = NamespaceView(label: labels[i], namespace: namespaces[i], state: snapshot.state,
                                     cookie: snapshot.cookie, peers: allPeers[i], sections: wanted.sections)
            if json {
                var bytes: [UInt8] = []
                view.json().write(into: &bytes, pretty: Output.prettyJSON, depth: 1)
                return bytes
            }
            return Array(view.text().utf8)
        }, emit: writer.emit)
        let errors: [(String, String)] = open.vanished.map { ($0.0.reference, $0.1.reason) } + writer.errors
        if json {
            if !errors.isEmpty {
                var o = JSONObjectBuilder()
                for (label, reason) in errors { o.add(label, reason) }
                writer.document.member("_errors", o.json)
            }
            writer.document.end()
        }
        for (label, reason) in errors where !open.vanished.contains(where: { $0.0.reference == label }) {
            Output.warn("dump: \(label): \(reason)")
        }
    }

    /// The sections asked for, and the dumps they need (links are always read: the wiring needs them).
    static func parts(_ list: String) throws -> (sections: [ShowSection], parts: InventoryParts) {
        var sections: [ShowSection] = []
        var parts: InventoryParts = [.links]
        for word in list.split(separator: ",") {
            guard let section = ShowSection(rawValue: String(word)), section != .nsids else {
                throw OperationError("dump", String(word), "unknown section (links, addrs, routes, neigh, fdb, rules)")
            }
            sections.append(section)
            switch section {
            case .links, .nsids: break
            case .addrs: parts.insert(.addresses)
            case .routes: parts.insert(.routes)
            case .neigh: parts.insert(.neighbours)
            case .fdb: parts.insert(.fdb)
            case .rules: parts.insert(.rules)
            }
        }
        return (sections, parts)
    }

    /// Names the peers the wiring left unresolved because they are in namespaces outside the selection
    /// (`dump host1 router1`: router1's e0 is in router2): without this they would print as
    /// "if2 in nsid 0 (unresolved)" while `show router1` names them. As `show` does, a namespace with
    /// such links asks its own nsid table about the census namespaces outside the selection, in one
    /// batched RTM_GETNSID exchange, and the namespace found is asked for the peer's name. Only namespaces
    /// with a peer left over ask, and only about the namespaces not dumped, so a full dump asks nothing
    /// and a small selection asks about each other namespace once per namespace that needs it, rather
    /// than every namespace about every other.
    static func resolveOutsideSelection(_ peers: inout [[Int32: IPJSON.Peer]], links: [[Link]], open: OpenNamespaces,
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
    static func peers(of ns: Int, wiring: Wiring, open: OpenNamespaces) -> [Int32: IPJSON.Peer] {
        var peers: [Int32: IPJSON.Peer] = [:]
        func add(_ local: LinkEnd, _ remote: LinkEnd) {
            guard local.namespace == ns, remote.namespace != ns else { return }
            peers[local.index] = IPJSON.Peer(ifname: remote.name, ifindex: remote.index,
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

/// Writes `dump`'s namespaces as they come (called in order, under the workers' lock).
private final class DumpWriter: @unchecked Sendable {
    let json: Bool
    let labels: [String]
    let inodes: [UInt64]
    var document: Output.JSONObjectStream
    var errors: [(String, String)] = []
    private var seen = Set<String>()
    private var written = 0

    init(json: Bool, labels: [String], inodes: [UInt64]) {
        self.json = json
        self.labels = labels
        self.inodes = inodes
        document = json ? Output.JSONObjectStream() : Output.JSONObjectStream(silent: true)
    }

    func emit(_ i: Int, _ result: Result<[UInt8], any Error>) {
        switch result {
        case .success(let bytes):
            if json {
                let key = seen.insert(labels[i]).inserted ? labels[i] : "\(labels[i])#\(inodes[i])"
                document.member(key, rendered: bytes)
            } else {
                if written > 0 { Output.write("\n") }
                Output.write(bytes)
            }
            written += 1
        case .failure(let error):
            errors.append((labels[i], "\(error)"))
        }
    }
}
