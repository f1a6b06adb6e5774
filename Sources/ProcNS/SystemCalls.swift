#if canImport(Glibc)
import Glibc
#endif
import CShim

/// Thin wrappers over the system calls the census and naming code make, returning `Result<_, Errno>`
/// so callers decide which errors are normal (a process that exits mid-scan) and which are reported.
/// EINTR is retried here and nowhere else.
enum Sys {
    /// open(2) with O_CLOEXEC always added.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) -> Result<Int32, Errno> {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return .success(fd) }
            if errno != EINTR { return .failure(.current) }
        }
    }

    /// openat(2) relative to a directory descriptor, O_CLOEXEC always added.
    static func openAt(_ dirfd: Int32, _ path: String, _ flags: Int32, mode: mode_t = 0) -> Result<Int32, Errno> {
        while true {
            let fd = Glibc.openat(dirfd, path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return .success(fd) }
            if errno != EINTR { return .failure(.current) }
        }
    }

    /// readlink(2) of a path, e.g. `/proc/1/ns/net` → `net:[4026531840]`.
    static func readLink(_ path: String) -> Result<String, Errno> {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 4096) { buffer in
            let n = Glibc.readlink(path, buffer.baseAddress!, 4096)
            guard n >= 0 else { return .failure(.current) }
            return .success(String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress!, count: n), as: UTF8.self))
        }
    }

    /// readlinkat(2) relative to a directory descriptor.
    static func readLinkAt(_ dirfd: Int32, _ name: String) -> Result<String, Errno> {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 4096) { buffer in
            let n = Glibc.readlinkat(dirfd, name, buffer.baseAddress!, 4096)
            guard n >= 0 else { return .failure(.current) }
            return .success(String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress!, count: n), as: UTF8.self))
        }
    }

    /// Reads a whole small file (procfs files report size 0, so read until EOF).
    /// - Parameter shortReadEnds: stop after a read that returns less than asked, saving the read that
    ///   would return 0. Right for one-shot procfs files (comm, cmdline, cgroup), which hand over
    ///   everything they have at once.
    static func readFile(_ path: String, limit: Int = 16 << 20, shortReadEnds: Bool = false) -> Result<[UInt8], Errno> {
        let fd: Int32
        switch open(path, O_RDONLY) {
        case .success(let f): fd = f
        case .failure(let e): return .failure(e)
        }
        defer { Glibc.close(fd) }
        return readAll(fd, limit: limit, shortReadEnds: shortReadEnds)
    }

    static func readAll(_ fd: Int32, limit: Int = 16 << 20, shortReadEnds: Bool = false) -> Result<[UInt8], Errno> {
        // Read into a malloc'd buffer that doubles as needed, then copy once into the array: a census
        // reads thousands of procfs files, and growing an array by appended zeros was a visible cost.
        var capacity = min(4096, max(limit, 1))
        guard var buffer = malloc(capacity) else { return .failure(Errno(Glibc.ENOMEM)) }
        defer { free(buffer) }
        var size = 0
        while size < limit {
            if size == capacity {
                capacity = min(capacity * 2, limit)
                guard let grown = realloc(buffer, capacity) else { return .failure(Errno(Glibc.ENOMEM)) }
                buffer = grown
            }
            let want = capacity - size
            let n = Glibc.read(fd, buffer + size, want)
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.current)
            }
            size += n
            if n == 0 || (shortReadEnds && n < want) { break }
        }
        let filled = size
        let source = UnsafeRawPointer(buffer)
        return .success([UInt8](unsafeUninitializedCapacity: filled) { destination, count in
            if filled > 0 { destination.baseAddress!.update(from: source.assumingMemoryBound(to: UInt8.self), count: filled) }
            count = filled
        })
    }

    /// One entry of a directory listing: the name and the d_type getdents reported.
    struct DirectoryEntry {
        var name: String
        var type: UInt8
        static let symlink = UInt8(DT_LNK)
        static let regular = UInt8(DT_REG)
        static let directory = UInt8(DT_DIR)
    }

    /// Lists a directory with readdir(3), skipping `.` and `..`.
    static func listDirectory(_ path: String) -> Result<[DirectoryEntry], Errno> {
        guard let dir = opendir(path) else { return .failure(.current) }
        defer { closedir(dir) }
        var entries: [DirectoryEntry] = []
        while let entry = readdir(dir) {
            let type = entry.pointee.d_type
            let name = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            entries.append(DirectoryEntry(name: name, type: type))
        }
        return .success(entries)
    }

    /// stat(2), following symlinks.
    static func stat(_ path: String) -> Result<Glibc.stat, Errno> {
        var st = Glibc.stat()
        guard nsi_stat(path, &st) == 0 else { return .failure(.current) }
        return .success(st)
    }

    /// lstat(2): the symlink itself.
    static func lstat(_ path: String) -> Result<Glibc.stat, Errno> {
        var st = Glibc.stat()
        guard nsi_lstat(path, &st) == 0 else { return .failure(.current) }
        return .success(st)
    }

    static func fstat(_ fd: Int32) -> Result<Glibc.stat, Errno> {
        var st = Glibc.stat()
        guard Glibc.fstat(fd, &st) == 0 else { return .failure(.current) }
        return .success(st)
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }
}

/// Parses the decimal number in `text[start..<end]` without allocating; nil unless every byte is a digit.
@inline(__always)
func parseDecimal<C: Collection>(_ bytes: C) -> UInt64? where C.Element == UInt8 {
    guard !bytes.isEmpty else { return nil }
    var value: UInt64 = 0
    for byte in bytes {
        guard byte >= 48, byte <= 57 else { return nil }
        let (m, o1) = value.multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(UInt64(byte - 48))
        guard !o1, !o2 else { return nil }
        value = a
    }
    return value
}

/// Reading a user's file (a lab file) with the errors every command prints the same way.
public enum TextFile {
    public static func read(_ path: String, operation: String = "") throws(OperationError) -> String {
        switch Sys.readFile(path, limit: 16 << 20) {
        case .success(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .failure(let e):
            throw OperationError(operation, path, e == .ENOENT ? "no such file" : "cannot read: \(e)", errno: e)
        }
    }

    /// The bytes of a user's file, or of stdin for `-` (a snapshot `diff` reads), with the same errors.
    public static func bytes(_ path: String, operation: String = "", limit: Int = 1 << 30) throws(OperationError) -> [UInt8] {
        switch path == "-" ? Sys.readAll(0, limit: limit) : Sys.readFile(path, limit: limit) {
        case .success(let bytes): return bytes
        case .failure(let e):
            throw OperationError(operation, path, e == .ENOENT ? "no such file" : "cannot read: \(e)", errno: e)
        }
    }
}

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC: the clock bpf_ktime_get_ns uses, so probe send times
/// and BPF event times compare directly; also what timeouts and waits are measured in).
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The monotonic time `seconds` after `start` (a --duration, already checked finite and bounded).
public func monotonicDeadline(after seconds: Double, from start: UInt64 = monotonicNanoseconds()) -> UInt64 {
    start + UInt64((seconds * 1e9).rounded())
}
