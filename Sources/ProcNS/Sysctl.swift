#if canImport(Glibc)
import Glibc
#endif

/// Per-namespace sysctls (`net.ipv4.ip_forward`, `net.ipv4.conf.all.rp_filter` …) read and written
/// through /proc/sys. The files under /proc/sys/net belong to the network namespace of the thread that
/// opens them, so each access opens the file on a thread that entered the namespace.
public enum Sysctl {
    /// /proc/sys/net/ipv4/ip_forward for `net.ipv4.ip_forward`.
    public static func path(_ key: String) -> String {
        "/proc/sys/" + key.split(separator: ".").joined(separator: "/")
    }

    /// The value (trimmed), read inside `namespace` (nil: here).
    public static func read(_ key: String, in namespace: NamespaceHandle?) throws -> String {
        let body = { () throws(OperationError) -> String in
            switch Sys.readFile(path(key), limit: 4096) {
            case .success(let bytes):
                var text = String(decoding: bytes, as: UTF8.self)
                while text.last == "\n" || text.last == " " { text.removeLast() }
                return text
            case .failure(let e):
                throw OperationError("", key, e == .ENOENT ? "no such sysctl" : "read: \(e)", errno: e)
            }
        }
        return try namespace.map { try NamespaceThread.run(in: $0, body) } ?? body()
    }

    /// Writes `value`, inside `namespace` (nil: here).
    public static func write(_ key: String, _ value: String, in namespace: NamespaceHandle?) throws {
        let body = { () throws(OperationError) in
            let fd: Int32
            switch Sys.open(path(key), O_WRONLY) {
            case .success(let f): fd = f
            case .failure(let e): throw OperationError("", key, e == .ENOENT ? "no such sysctl" : "open: \(e)", errno: e)
            }
            defer { Sys.close(fd) }
            let text = Array((value + "\n").utf8)
            let n = text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n == text.count else { throw OperationError("", "\(key)=\(value)", call: "write", errno: .current) }
        }
        if let namespace { try NamespaceThread.run(in: namespace, body) } else { try body() }
    }
}
