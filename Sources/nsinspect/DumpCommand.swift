import ArgumentParser
import Inspect
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
        let wanted = try Self.parts(sections)
        let dump = try NamespaceDump(references: references, parts: wanted.parts)
        for (ns, error) in dump.open.vanished { Output.warn("dump: \(ns.reference): \(error.reason)") }
        // Each worker reads and renders its share of the namespaces, so decoding and formatting run on
        // both cores and only the rendered bytes are kept.
        let json = common.json
        let labels = dump.open.labels, namespaces = dump.open.namespaces, peers = dump.peers
        let writer = DumpWriter(json: json, labels: labels, inodes: dump.open.inodes)
        try dump.each(render: { i, snapshot in
            let view = NamespaceView(label: labels[i], namespace: namespaces[i], state: snapshot.state,
                                     cookie: snapshot.cookie, peers: peers[i], sections: wanted.sections)
            if json {
                var bytes: [UInt8] = []
                view.json().write(into: &bytes, pretty: Output.prettyJSON, depth: 1)
                return bytes
            }
            return Array(view.text().utf8)
        }, emit: writer.emit)
        let errors: [(String, String)] = dump.open.vanished.map { ($0.0.reference, $0.1.reason) } + writer.errors
        if json {
            if !errors.isEmpty {
                var o = JSONObjectBuilder()
                for (label, reason) in errors { o.add(label, reason) }
                writer.document?.member("_errors", o.json)
            }
            writer.document?.end()
        }
        for (label, reason) in errors where !dump.open.vanished.contains(where: { $0.0.reference == label }) {
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
}

/// Writes `dump`'s namespaces as they come (called in order, under the workers' lock).
private final class DumpWriter: @unchecked Sendable {
    let json: Bool
    let labels: [String]
    let inodes: [UInt64]
    /// The document `--json` writes member by member; nil for text.
    var document: Output.JSONObjectStream?
    var errors: [(String, String)] = []
    private var seen = Set<String>()
    private var written = 0

    init(json: Bool, labels: [String], inodes: [UInt64]) {
        self.json = json
        self.labels = labels
        self.inodes = inodes
        document = json ? Output.JSONObjectStream() : nil
    }

    func emit(_ i: Int, _ result: Result<[UInt8], any Error>) {
        switch result {
        case .success(let bytes):
            if json {
                let key = seen.insert(labels[i]).inserted ? labels[i] : "\(labels[i])#\(inodes[i])"
                document?.member(key, rendered: bytes)
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
