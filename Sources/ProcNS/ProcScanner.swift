#if canImport(Glibc)
import Glibc
#endif
import CShim

/// Where the census reads from. Every path is a parameter so tests can point it at fixture trees
/// (DESIGN.md §5); `live` says whether the paths are the running system's, which allows the checks
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
    private let ownPID = getpid()
    let live: Bool

    init(procRoot: String, live: Bool) {
        self.procRoot = procRoot
        self.live = live
    }

    func deallocate() { buffer.deallocate() }

    /// Records a failure: a vanished process is normal, anything else is kept for `--verbose`.
    mutating func note(_ error: Errno, _ path: String) {
        if error.isVanished { problems.vanishedProcesses += 1 } else { problems.denied.append((path, error)) }
    }

    /// The PIDs under the proc root, ascending.
    mutating func pids() throws(OperationError) -> [Int32] {
        switch Sys.listDirectory(procRoot) {
        case .failure(let e): throw OperationError("", procRoot, "cannot list: \(e)", errno: e)
        case .success(let entries):
            var pids: [Int32] = []
            pids.reserveCapacity(entries.count)
            for entry in entries {
                if let pid = parseDecimal(entry.name.utf8), pid > 0, pid <= Int32.max { pids.append(Int32(pid)) }
            }
            return pids.sorted()
        }
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
        if threads { scanThreads(dirfd: dirfd, into: &record) }
        if descriptors && pid != ownPID { scanDescriptors(dirfd: dirfd, pidPath: pidPath, into: &record) }
        return record
    }

    private mutating func scanThreads(dirfd: Int32, into record: inout ProcessRecord) {
        let taskfd = Glibc.openat(dirfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard taskfd >= 0, let dir = fdopendir(taskfd) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let tid: UInt64? = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                let bytes = raw.prefix(while: { $0 != 0 })
                return parseDecimal(bytes)
            }
            guard let tid, Int32(tid) != record.pid else { continue }
            let n = "\(tid)/ns/net".withCString { Glibc.readlinkat(Glibc.dirfd(dir), $0, UnsafeMutableRawPointer(buffer).assumingMemoryBound(to: CChar.self), 4096) }
            guard n > 0, let inode = linkInode(count: n, prefix: "net:[") else { continue }
            if inode != record.netInode { record.threads.append((Int32(tid), inode)) }
        }
    }

    private mutating func scanDescriptors(dirfd: Int32, pidPath: String, into record: inout ProcessRecord) {
        let fdfd = Glibc.openat(dirfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fdfd >= 0 else {
            let e = Errno.current
            if !e.isVanished { problems.denied.append((pidPath + "/fd", e)) }
            return
        }
        guard let dir = fdopendir(fdfd) else { Glibc.close(fdfd); return }
        defer { closedir(dir) }
        let dfd = Glibc.dirfd(dir)
        while let entry = readdir(dir) {
            let isNumber = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                raw.first.map { $0 >= 48 && $0 <= 57 } ?? false
            }
            guard isNumber else { continue }
            let n = withUnsafePointer(to: &entry.pointee.d_name) { name in
                name.withMemoryRebound(to: CChar.self, capacity: 256) {
                    Glibc.readlinkat(dfd, $0, UnsafeMutableRawPointer(buffer).assumingMemoryBound(to: CChar.self), 4096)
                }
            }
            guard n > 7 else { continue }
            // Only two kinds of target matter; compare the first byte before anything else.
            let first = buffer[0]
            guard first == UInt8(ascii: "n") || first == UInt8(ascii: "s") else { continue }
            let fdNumber: UInt64? = withUnsafeBytes(of: &entry.pointee.d_name) { parseDecimal($0.prefix(while: { $0 != 0 })) }
            guard let fdNumber else { continue }
            if let inode = linkInode(count: n, prefix: "net:[") {
                record.namespaceFDs.append((Int32(fdNumber), inode))
            } else if let inode = linkInode(count: n, prefix: "socket:[") {
                record.socketFDs.append((Int32(fdNumber), inode))
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
        guard case .success(var bytes) = Sys.readFile("\(procRoot)/\(pid)/cmdline", limit: 4096), !bytes.isEmpty else {
            return command(pid: pid)
        }
        while bytes.last == 0 { bytes.removeLast() }
        for i in bytes.indices where bytes[i] == 0 { bytes[i] = UInt8(ascii: " ") }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The first line of /proc/PID/comm, or "?" when it cannot be read.
    func command(pid: Int32) -> String {
        guard case .success(var bytes) = Sys.readFile("\(procRoot)/\(pid)/comm", limit: 64) else { return "?" }
        while let last = bytes.last, last == UInt8(ascii: "\n") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
