#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import JSONKit
import Netlink
import ProcNS

/// The snapshot document (docs/snapshot.md): `dump --json`'s object for every (or every selected)
/// namespace, with the census, the selection and the time, in one versioned object.
enum SnapshotDocument {
    static let sections = "links,addrs,routes,neigh"

    /// Takes a snapshot of the namespaces `references` names (all when empty) and hands its bytes to
    /// `sink` as they are ready. `skippingGone` leaves out references that name nothing any more.
    static func take(_ references: [String], skippingGone: Bool = false,
                     to sink: @escaping @Sendable ([UInt8]) -> Void) throws {
        let wanted = try DumpCommand.parts(sections)
        let dump = try NamespaceDump(references: references, parts: wanted.parts, skippingGone: skippingGone)
        var head = JSONObjectBuilder()
        head.add("format", SnapshotDiff.format)
        head.add("version", SnapshotDiff.version)
        head.add("taken", WallClock.iso8601(WallClock.now()))
        head.add("selection", strings: references)
        head.add("census", ListRendering.json(dump.open.census, facts: [:]))
        // The head's members, then "namespaces" streamed as dump streams it, then the closing brace.
        var bytes: [UInt8] = []
        head.json.write(into: &bytes, pretty: false)
        bytes.removeLast()
        bytes.append(contentsOf: Array(",\"namespaces\":".utf8))
        sink(bytes)
        try DumpCommand.write(dump, sections: wanted.sections, json: true, pretty: false, to: sink)
        sink(Array("}\n".utf8))
    }

    /// A snapshot taken now, in memory, parsed.
    static func now(_ references: [String]) throws -> JSON {
        let buffer = ByteBuffer()
        try take(references, skippingGone: true, to: buffer.append)
        return try JSON.parse(buffer.bytes)
    }

    /// Bytes gathered from the dump's workers (`emit` calls come one at a time, under its lock).
    final class ByteBuffer: @unchecked Sendable {
        private(set) var bytes: [UInt8] = []
        func append(_ more: [UInt8]) { bytes.append(contentsOf: more) }
    }
}

struct SnapshotCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Save every namespace's links, addresses, routes and neighbours, with the census, for `diff`.",
        discussion: """
            The file is one JSON object: {"format": "nsinspect-snapshot", "version": 1, "taken", "selection", \
            "census", "namespaces": <what dump --json prints>} (docs/snapshot.md). It is written to a \
            temporary file beside FILE and renamed, so a failed snapshot leaves nothing half-made.
            """
    )

    @Argument(help: "Only these namespaces (NS references); all by default.") var references: [String] = []
    @Option(name: .shortAndLong, help: "The file to write (`-` for stdout).") var output: String

    func run() throws {
        if output == "-" {
            try SnapshotDocument.take(references, to: Output.write)
            return
        }
        let temporary = output + ".partial-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OperationError("snapshot", temporary, call: "open", errno: .current) }
        let file = SnapshotFile(fd: fd)
        do {
            try SnapshotDocument.take(references, to: file.write)
            if let failure = file.failure { throw OperationError("snapshot", output, call: "write", errno: failure) }
            close(fd)
            guard rename(temporary, output) == 0 else {
                throw OperationError("snapshot", output, call: "rename", errno: .current)
            }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
    }

    /// The snapshot's file descriptor, remembering the first failed write.
    final class SnapshotFile: @unchecked Sendable {
        let fd: Int32
        var failure: Errno?
        init(fd: Int32) { self.fd = fd }

        func write(_ bytes: [UInt8]) {
            guard failure == nil else { return }
            failure = bytes.withUnsafeBufferPointer { Output.writeAll(fd, $0) }
        }
    }
}

struct DiffCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What appeared, disappeared and changed between two snapshots (or a snapshot and now).",
        discussion: """
            Namespaces are matched by name first and inode second, interfaces by name. Counters, neighbour \
            times, ifindex renumbering and IPv6 link-local addresses are left out unless asked. Exit status: \
            0 when nothing differs, 1 when something does, 2 when a snapshot cannot be read (as diff(1)).
            """
    )

    @Argument(help: "The earlier snapshot (`-` for stdin).") var first: String
    @Argument(help: "The later snapshot (`-` for stdin); leave it out with --now.") var second: String?
    @Flag(help: "Compare with the host now (the same namespaces the first snapshot selected).") var now = false
    @Flag(help: "Also compare counters, neighbour times and ifindexes.") var includeVolatile = false
    @Flag(help: "Also compare IPv6 link-local addresses, routes and neighbours.") var includeLinkLocal = false
    @OptionGroup var common: CommonOptions

    func validate() throws {
        if now == (second != nil) { throw ValidationError("give a second snapshot or --now, not both and not neither") }
        if first == "-" && second == "-" { throw ValidationError("only one snapshot can come from stdin") }
    }

    func run() throws {
        do {
            let a = try Self.read(first)
            let b: JSON
            if let second {
                b = try Self.read(second)
            } else {
                let selection = a["selection"]?.arrayValue?.compactMap(\.stringValue) ?? []
                b = try SnapshotDocument.now(selection)
            }
            let options = DiffOptions(includeVolatile: includeVolatile, includeLinkLocal: includeLinkLocal)
            let difference = try SnapshotDiff.compare(a, b, options: options)
            if common.json {
                Output.json(difference.json())
            } else {
                Output.write(difference.text())
            }
            throw ExitCode(difference.isEmpty ? 0 : 1)
        } catch let exit as ExitCode {
            throw exit
        } catch let error as SnapshotError {
            let path = error.document == .first ? first : (second ?? "now")
            Output.warn("diff: \(path): \(error)")
            throw ExitCode(2)
        } catch let error as OperationError {
            Output.warn(error.description)
            throw ExitCode(2)
        } catch {
            Output.warn("diff: \(error)")
            throw ExitCode(2)
        }
    }

    /// A snapshot file (or stdin), parsed; errors name the file.
    static func read(_ path: String) throws -> JSON {
        let bytes = try TextFile.bytes(path, operation: "diff")
        do {
            return try JSON.parse(bytes)
        } catch {
            throw OperationError("diff", path, "not a snapshot: \(error)")
        }
    }
}
