#if canImport(Glibc)
import Glibc
#endif
import ProcNS
import Synchronization

/// The pcapng files of the traces this server ran, for download: in a directory of its own (mkdtemp under
/// /tmp, mode 0700), the last `keep` traces only, all removed when the server stops.
public final class PcapStore: Sendable {
    public let directory: String
    private let keep: Int
    private let ids = Mutex<(next: Int, kept: [Int])>((0, []))

    public init(keep: Int = 16) throws(OperationError) {
        var template = Array("/tmp/nsinspect-serve-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else {
            throw OperationError("serve", "/tmp/nsinspect-serve-XXXXXX", call: "mkdtemp", errno: .current)
        }
        directory = String(cString: template)
        self.keep = keep
    }

    /// A new trace's id and the path its pcapng goes to; the oldest file goes when more than `keep` are kept.
    public func reserve() -> (id: Int, path: String) {
        let (id, dropped) = ids.withLock { s -> (Int, Int?) in
            s.next += 1
            s.kept.append(s.next)
            return (s.next, s.kept.count > keep ? s.kept.removeFirst() : nil)
        }
        if let dropped { unlink(path(dropped)) }
        return (id, path(id))
    }

    public func path(_ id: Int) -> String { "\(directory)/\(id).pcapng" }

    /// The file of trace `id`, if it is still kept and was written.
    public func contents(_ id: Int) -> [UInt8]? {
        guard ids.withLock({ $0.kept.contains(id) }) else { return nil }
        return try? TextFile.bytes(path(id), operation: "serve")
    }

    /// Removes every file in the directory (the captures, and the ready file of a watch child that was
    /// killed rather than ended) and the directory.
    public func removeAll() {
        ids.withLock { $0.kept = [] }
        if let dir = opendir(directory) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { unlink(directory + "/" + name) }
            }
            closedir(dir)
        }
        rmdir(directory)
    }
}
