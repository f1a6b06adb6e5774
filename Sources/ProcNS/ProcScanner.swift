#if canImport(Glibc)
import Glibc
#endif
import CShim

/// Where the census reads from. Every path is a parameter so tests can point it at fixture trees
/// (docs/design.md); `live` says whether the paths are the running system's, which allows the checks
/// that need real descriptors (sockets through pidfd_getfd).
public struct CensusOptions: Sendable {
    public var procRoot: String
    public var netnsDirectory: String
    public var dockerRoot: String
    public var podmanRoot: String
    public var live: Bool
    /// Also look at every thread of every process (threads that called setns alone).
    public var scanThreads = true
    /// Also look at every open descriptor (namespaces held by an fd, or by a socket when live).
    public var scanDescriptors = true
    /// The nsfs mounts of nsinspect's own mount namespace, when the caller has read them already
    /// (`MountInfo.ownNetworkNamespaceMounts`, to open them before the census): used instead of reading
    /// the same mountinfo again. Live scans only.
    public var ownMounts: [NSFSMount]?
    /// Leave out the calling process's own threads and descriptors (live scans): nsinspect's worker
    /// threads enter namespaces and its handles hold them while it reads them, which is its work, not a
    /// holder. A program that makes holders of its own on purpose (a test) turns this off.
    public var excludeOwnHolders = true

    public init(procRoot: String = "/proc", netnsDirectory: String = "/var/run/netns",
                dockerRoot: String = "/var/lib/docker", podmanRoot: String = "/var/lib/containers/storage",
                live: Bool = true) {
        self.procRoot = procRoot
        self.netnsDirectory = netnsDirectory
        self.dockerRoot = dockerRoot
        self.podmanRoot = podmanRoot
        self.live = live
    }

    /// A fixture tree laid out like a root filesystem: ROOT/proc, ROOT/var/run/netns, ROOT/var/lib/docker.
    public static func fixture(root: String) -> CensusOptions {
        CensusOptions(procRoot: root + "/proc", netnsDirectory: root + "/var/run/netns",
                      dockerRoot: root + "/var/lib/docker", podmanRoot: root + "/var/lib/containers/storage",
                      live: false)
    }
}

/// What one process contributes to the census, read from /proc/PID.
struct ProcessRecord {
    var pid: Int32
    var netInode: UInt64
    var mountInode: UInt64?
    var threads: [(tid: Int32, netInode: UInt64)] = []
    var namespaceFDs: [(fd: Int32, netInode: UInt64)] = []
    var socketFDs: [(fd: Int32, socketInode: UInt64)] = []
}

/// Reads /proc: per process the network and mount namespace links, threads that differ, and open
/// descriptors. Links are read with readlinkat(2) relative to an O_PATH descriptor of /proc/PID into one
/// reusable buffer, and only `net:[…]` and `socket:[…]` targets become values, so a host with tens of
/// thousands of descriptors costs one system call per descriptor and no allocation.
struct ProcScanner {
    let procRoot: String
    var problems = ScanProblems()
    private let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 4096)
    static let direntBufferSize = 32 << 10
    private let direntBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: ProcScanner.direntBufferSize)
    /// nsinspect's own process, whose threads and descriptors are left out (`CensusOptions.excludeOwnHolders`);
    /// -1 when they are read like any other's.
    private let ownPID: Int32
    /// Command lines already read (a reference type so the scanner's readers stay non-mutating).
    private let cmdlines = Cache<Int32, [UInt8]>()
    let live: Bool

    init(procRoot: String, live: Bool, excludeOwnHolders: Bool = true) {
        self.procRoot = procRoot
        self.live = live
        ownPID = live && excludeOwnHolders ? getpid() : -1
    }

    func deallocate() {
        buffer.deallocate()
        direntBuffer.deallocate()
    }

    /// Records a failure: a vanished process is normal, anything else is kept for `--verbose`.
    mutating func note(_ error: Errno, _ path: String) {
        if error.isVanished { problems.vanishedProcesses += 1 } else { problems.denied.append((path, error)) }
    }

    /// The PIDs under the proc root, ascending.
    mutating func pids() throws(OperationError) -> [Int32] {
        let fd = Glibc.open(procRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = Errno.current
            throw OperationError("", procRoot, "cannot list: \(e)", errno: e)
        }
        defer { Glibc.close(fd) }
        var pids: [Int32] = []
        forEachEntry(fd) { name, _ in
            if let pid = parseDecimal(name), pid > 0, pid <= Int32.max { pids.append(Int32(pid)) }
        }
        return pids.sorted()
    }

    /// readlinkat into the shared buffer; returns the byte count.
    private func readLink(_ dirfd: Int32, _ name: UnsafePointer<CChar>) -> Result<Int, Errno> {
        let n = Glibc.readlinkat(dirfd, name, UnsafeMutableRawPointer(buffer).assumingMemoryBound(to: CChar.self), 4096)
        return n < 0 ? .failure(.current) : .success(n)
    }

    private func linkInode(count: Int, prefix: StaticString) -> UInt64? {
        let p = prefix.utf8Start
        let plen = prefix.utf8CodeUnitCount
        guard count > plen + 1, buffer[count - 1] == UInt8(ascii: "]") else { return nil }
        for i in 0..<plen where buffer[i] != p[i] { return nil }
        return parseDecimal(UnsafeBufferPointer(start: buffer + plen, count: count - plen - 1))
    }

    /// Reads one process. Returns nil when it vanished or cannot be read (noted in `problems`).
    mutating func scan(pid: Int32, threads: Bool, descriptors: Bool) -> ProcessRecord? {
        let pidPath = "\(procRoot)/\(pid)"
        let dirfd = Glibc.open(pidPath, NSI_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else { note(.current, pidPath); return nil }
        defer { Glibc.close(dirfd) }

        guard case .success(let n) = readLink(dirfd, "ns/net") else {
            note(.current, pidPath + "/ns/net")
            return nil
        }
        guard let netInode = linkInode(count: n, prefix: "net:[") else { return nil }
        var record = ProcessRecord(pid: pid, netInode: netInode)
        if case .success(let m) = readLink(dirfd, "ns/mnt") {
            record.mountInode = linkInode(count: m, prefix: "mnt:[")
        }
        // Our own threads enter namespaces and our own descriptors hold them while we read them: our work,
        // not holders.
        if threads && pid != ownPID { scanThreads(dirfd: dirfd, into: &record) }
        if descriptors && pid != ownPID { scanDescriptors(dirfd: dirfd, pidPath: pidPath, into: &record) }
        return record
    }

    private mutating func scanThreads(dirfd: Int32, into record: inout ProcessRecord) {
        // procfs gives the task directory 2 + (number of threads) links: skip single-threaded processes
        // without listing anything.
        var st = Glibc.stat()
        guard fstatat(dirfd, "task", &st, 0) == 0, st.st_nlink > 3 else { return }
        let taskfd = Glibc.openat(dirfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard taskfd >= 0 else { return }
        defer { Glibc.close(taskfd) }
        let pid = record.pid
        var differing: [(tid: Int32, netInode: UInt64)] = []
        forEachEntry(taskfd) { name, _ in
            guard let tid = parseDecimal(name), Int32(tid) != pid else { return }
            let n = "\(tid)/ns/net".withCString { path in
                Glibc.readlinkat(taskfd, path, UnsafeMutableRawPointer(buffer).assumingMemoryBound(to: CChar.self), 4096)
            }
            guard n > 0, let inode = linkInode(count: n, prefix: "net:[") else { return }
            differing.append((Int32(tid), inode))
        }
        record.threads = differing.filter { $0.netInode != record.netInode }
    }

    private mutating func scanDescriptors(dirfd: Int32, pidPath: String, into record: inout ProcessRecord) {
        let fdfd = Glibc.openat(dirfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fdfd >= 0 else {
            let e = Errno.current
            if !e.isVanished { problems.denied.append((pidPath + "/fd", e)) }
            return
        }
        defer { Glibc.close(fdfd) }
        var namespaceFDs: [(fd: Int32, netInode: UInt64)] = []
        var socketFDs: [(fd: Int32, socketInode: UInt64)] = []
        forEachEntry(fdfd) { name, _ in
            guard let first = name.first, first >= 48, first <= 57 else { return }
            let n = Glibc.readlinkat(fdfd, UnsafeRawPointer(name.baseAddress!).assumingMemoryBound(to: CChar.self),
                                     UnsafeMutableRawPointer(buffer).assumingMemoryBound(to: CChar.self), 4096)
            guard n > 7 else { return }
            // Only two kinds of target matter; compare the first byte before anything else.
            let head = buffer[0]
            guard head == UInt8(ascii: "n") || head == UInt8(ascii: "s"), let fd = parseDecimal(name) else { return }
            if let inode = linkInode(count: n, prefix: "net:[") {
                namespaceFDs.append((Int32(fd), inode))
            } else if let inode = linkInode(count: n, prefix: "socket:[") {
                socketFDs.append((Int32(fd), inode))
            }
        }
        record.namespaceFDs = namespaceFDs
        record.socketFDs = socketFDs
    }

    /// Calls `body` with each entry's name (without its NUL, but NUL-terminated in memory, so it can be
    /// passed to *at calls) and d_type, reading the directory with getdents64(2) into a reused buffer.
    func forEachEntry(_ fd: Int32, _ body: (UnsafeBufferPointer<UInt8>, UInt8) -> Void) {
        while true {
            let n = nsi_getdents64(fd, direntBuffer, UInt(ProcScanner.direntBufferSize))
            guard n > 0 else { return }
            var offset = 0
            while offset + 19 < n {
                let record = UnsafeRawPointer(direntBuffer + offset)
                let length = Int(record.loadUnaligned(fromByteOffset: 16, as: UInt16.self))
                guard length > 19, offset + length <= n else { return }
                let type = record.load(fromByteOffset: 18, as: UInt8.self)
                let name = (direntBuffer + offset + 19)
                let nameLength = strnlen(UnsafeRawPointer(name).assumingMemoryBound(to: CChar.self), length - 19)
                let view = UnsafeBufferPointer(start: name, count: nameLength)
                if !(nameLength == 1 && name[0] == 46) && !(nameLength == 2 && name[0] == 46 && name[1] == 46) {
                    body(view, type)
                }
                offset += length
            }
        }
    }

    /// The network namespace of each of a process's sockets, through a duplicate of the socket
    /// (pidfd_getfd(2)) and ioctl(SIOCGSKNS). Sockets shared by several processes are asked once
    /// (`cache`, keyed by socket inode). Only on a live system.
    mutating func socketNamespaces(pid: Int32, sockets: [(fd: Int32, socketInode: UInt64)],
                                   cache: inout [UInt64: UInt64]) -> [(fd: Int32, socketInode: UInt64, netInode: UInt64)] {
        var result: [(Int32, UInt64, UInt64)] = []
        var pidfd: Int32 = -1
        defer { if pidfd >= 0 { Glibc.close(pidfd) } }
        for socket in sockets {
            if let known = cache[socket.socketInode] {
                result.append((socket.fd, socket.socketInode, known))
                continue
            }
            if pidfd < 0 {
                pidfd = nsi_pidfd_open(pid, 0)
                if pidfd < 0 { note(.current, "pid \(pid)"); return result }
            }
            let copy = nsi_pidfd_getfd(pidfd, socket.fd, 0)
            guard copy >= 0 else {
                let e = Errno.current
                if e == Errno(EBADF) { continue } // closed since the listing
                let path = "\(procRoot)/\(pid)/fd/\(socket.fd) (pidfd_getfd)"
                note(e, path)
                if e == .EPERM || e.isVanished { return result }
                continue
            }
            let nsfd = nsi_socket_get_netns(copy)
            Glibc.close(copy)
            guard nsfd >= 0 else { continue }
            var st = Glibc.stat()
            let ok = Glibc.fstat(nsfd, &st) == 0
            Glibc.close(nsfd)
            guard ok else { continue }
            let inode = UInt64(st.st_ino)
            cache[socket.socketInode] = inode
            result.append((socket.fd, socket.socketInode, inode))
        }
        return result
    }

    /// The command line from /proc/PID/cmdline with arguments joined by spaces, as lsns and ps show it;
    /// the comm name for kernel threads, whose command line is empty.
    func commandLine(pid: Int32) -> String {
        guard var bytes = rawCommandLine(pid: pid), !bytes.isEmpty else { return command(pid: pid) }
        while bytes.last == 0 { bytes.removeLast() }
        for i in bytes.indices where bytes[i] == 0 { bytes[i] = UInt8(ascii: " ") }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// /proc/PID/cmdline as it is (arguments NUL-terminated), read once per process and remembered.
    func rawCommandLine(pid: Int32) -> [UInt8]? {
        if let known = cmdlines.values[pid] { return known }
        guard case .success(let bytes) = Sys.readFile("\(procRoot)/\(pid)/cmdline", limit: 1 << 16, shortReadEnds: true)
        else { return nil }
        cmdlines.values[pid] = bytes
        return bytes
    }

    /// The parent's PID: the fourth field of /proc/PID/stat (after the command in parentheses, which may
    /// itself hold spaces and parentheses, so the fields are counted from the last `)`).
    func parentPID(pid: Int32) -> Int32? {
        guard case .success(let bytes) = Sys.readFile("\(procRoot)/\(pid)/stat", limit: 1024, shortReadEnds: true),
            let close = bytes.lastIndex(of: UInt8(ascii: ")"))
        else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count >= 2 else { return nil }
        return Int32(String(decoding: fields[1], as: UTF8.self))
    }

    /// The first line of /proc/PID/comm, or "?" when it cannot be read.
    func command(pid: Int32) -> String { ProcDirectory.command(pid: pid, procRoot: procRoot) ?? "?" }
}

/// A dictionary behind a reference, for memoising reads inside non-mutating methods.
final class Cache<Key: Hashable, Value> {
    var values: [Key: Value] = [:]
}
