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
        try Self.write(dump, sections: wanted.sections, json: common.json, pretty: Output.prettyJSON, to: Output.write)
    }

    /// Renders `dump` as text or as one JSON object keyed by namespace reference, handing the bytes to
    /// `sink` as they are ready; what could not be read is warned about on stderr (and, in JSON, listed
    /// under `_errors`). `snapshot` and `diff --now` write the same document into a file or a buffer.
    static func write(_ dump: NamespaceDump, sections: [ShowSection], json: Bool, pretty: Bool,
                      to sink: @escaping @Sendable ([UInt8]) -> Void) throws {
        for (ns, error) in dump.open.vanished { Output.warn("dump: \(ns.reference): \(error.reason)") }
        // Each worker decodes and renders its share of the namespaces, so decoding and formatting run on
        // both cores and only the rendered bytes are kept.
        let labels = dump.open.labels, namespaces = dump.open.namespaces, peers = dump.peers
        let writer = DumpWriter(json: json, pretty: pretty, labels: labels, inodes: dump.open.inodes, sink: sink)
        try dump.each(render: { i, snapshot in
            let view = NamespaceView(label: labels[i], namespace: namespaces[i], state: snapshot.state,
                                     cookie: snapshot.cookie, peers: peers[i], sections: sections)
            if json {
                var bytes: [UInt8] = []
                view.json().write(into: &bytes, pretty: pretty, depth: 1)
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

    let sink: @Sendable ([UInt8]) -> Void

    init(json: Bool, pretty: Bool, labels: [String], inodes: [UInt64], sink: @escaping @Sendable ([UInt8]) -> Void) {
        self.json = json
        self.labels = labels
        self.inodes = inodes
        self.sink = sink
        document = json ? Output.JSONObjectStream(pretty: pretty, sink: sink) : nil
    }

    func emit(_ i: Int, _ result: Result<[UInt8], any Error>) {
        switch result {
        case .success(let bytes):
            if json {
                let key = seen.insert(labels[i]).inserted ? labels[i] : "\(labels[i])#\(inodes[i])"
                document?.member(key, rendered: bytes)
            } else {
                if written > 0 { sink(Array("\n".utf8)) }
                sink(bytes)
            }
            written += 1
        case .failure(let error):
            errors.append((labels[i], "\(error)"))
        }
    }
}
