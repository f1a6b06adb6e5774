/// Small readers of one process's /proc entries, for the layers above that find runtime processes
/// (ovs-vswitchd, dockerd, conmon) by name. A process that exits while it is read is simply absent.
public enum ProcDirectory {
    /// The PIDs under `procRoot`, in directory order.
    public static func pids(_ procRoot: String = "/proc") throws(OperationError) -> [Int32] {
        switch Sys.listDirectory(procRoot) {
        case .success(let entries): return entries.compactMap { Int32($0.name) }
        case .failure(let e): throw OperationError("", procRoot, "list: \(e)", errno: e)
        }
    }

    /// The processes whose comm is one of `names` (runtime daemons: ovs-vswitchd, dockerd, conmon), in
    /// directory order: one read of /proc/PID/comm per process.
    public static func processes(named names: Set<String>, procRoot: String = "/proc") -> [Int32] {
        ((try? pids(procRoot)) ?? []).filter { pid in command(pid: pid, procRoot: procRoot).map(names.contains) ?? false }
    }

    /// The first line of /proc/PID/comm (the executable's name, at most 15 bytes); nil when gone.
    public static func command(pid: Int32, procRoot: String = "/proc") -> String? {
        guard case .success(var bytes) = Sys.readFile("\(procRoot)/\(pid)/comm", limit: 64, shortReadEnds: true) else { return nil }
        while bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The arguments of /proc/PID/cmdline (empty when gone, or a kernel thread).
    public static func arguments(pid: Int32, procRoot: String = "/proc") -> [String] {
        guard case .success(let bytes) = Sys.readFile("\(procRoot)/\(pid)/cmdline", limit: 1 << 16, shortReadEnds: true) else { return [] }
        return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// /proc/PID/environ as a dictionary (root may read any process's).
    public static func environment(pid: Int32, procRoot: String = "/proc") -> [String: String] {
        guard case .success(let bytes) = Sys.readFile("\(procRoot)/\(pid)/environ", limit: 1 << 20, shortReadEnds: true) else { return [:] }
        var out: [String: String] = [:]
        for entry in bytes.split(separator: 0) {
            guard let equals = entry.firstIndex(of: UInt8(ascii: "=")) else { continue }
            out[String(decoding: entry[entry.startIndex..<equals], as: UTF8.self)] = String(decoding: entry[(equals + 1)...], as: UTF8.self)
        }
        return out
    }

    /// The inode of the process's namespace of `type` ("net", "mnt"), from its /proc/PID/ns link.
    public static func namespaceInode(pid: Int32, type: String, procRoot: String = "/proc") -> UInt64? {
        Sys.readLink("\(procRoot)/\(pid)/ns/\(type)").success.flatMap { NamespaceID.inode(fromLink: $0, type: type) }
    }
}
