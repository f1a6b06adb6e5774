#if canImport(Glibc)
import Glibc
#endif
import CShim

/// An open network-namespace file descriptor, with the identity and cookie read from it. It owns the
/// descriptor (closed in `deinit`) and with it a reference that keeps the namespace alive.
public final class NamespaceHandle: @unchecked Sendable, CustomStringConvertible {
    /// The nsfs descriptor; valid for the handle's lifetime. Pass it to setns(2), RTM_GETNSID's
    /// NETNSA_FD, or bind-mount `/proc/self/fd/N`.
    public let fd: Int32
    public let id: NamespaceID
    /// The netns cookie (ioctl NS_GET_ID, Linux 6.18), nil where the kernel does not give it.
    public let cookie: UInt64?
    /// How the handle was obtained (`pid:1234`, a path), for messages.
    public let origin: String

    /// Takes ownership of `fd` and checks that it is a network namespace (ioctl NS_GET_NSTYPE).
    /// The descriptor is closed if the check fails.
    public init(adopting fd: Int32, origin: String) throws(OperationError) {
        let type = nsi_ns_get_nstype(fd)
        if type < 0 {
            let e = Errno.current
            Glibc.close(fd)
            throw OperationError("", origin, e == Errno(ENOTTY) ? "not a namespace file" : "NS_GET_NSTYPE: \(e)", errno: e)
        }
        guard type == NSI_CLONE_NEWNET else {
            Glibc.close(fd)
            throw OperationError("", origin, "not a network namespace (a \(NamespaceHandle.typeName(type)) namespace)")
        }
        guard case .success(let st) = Sys.fstat(fd) else {
            let e = Errno.current
            Glibc.close(fd)
            throw OperationError("", origin, call: "fstat", errno: e)
        }
        var cookie: UInt64 = 0
        self.fd = fd
        self.id = NamespaceID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        self.cookie = nsi_ns_get_id(fd, &cookie) == 0 ? cookie : nil
        self.origin = origin
    }

    /// Takes ownership of a descriptor the caller has already identified (the census read its inode from
    /// a `net:[…]` link, so the type is known): one fstat(2) checks the inode, nothing else is asked.
    init(trusting fd: Int32, expected: NamespaceID, origin: String) throws(OperationError) {
        guard case .success(let st) = Sys.fstat(fd), UInt64(st.st_ino) == expected.inode else {
            Glibc.close(fd)
            throw OperationError("", origin, "no longer refers to \(expected)")
        }
        self.fd = fd
        self.id = NamespaceID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        self.cookie = nil
        self.origin = origin
    }

    deinit { Glibc.close(fd) }

    public var description: String { "\(id) (\(origin))" }

    /// Opens a namespace file: /var/run/netns/NAME, /proc/PID/ns/net, a bind mount anywhere.
    public static func open(path: String, origin: String? = nil) throws(OperationError) -> NamespaceHandle {
        switch Sys.open(path, O_RDONLY) {
        case .success(let fd): return try NamespaceHandle(adopting: fd, origin: origin ?? path)
        case .failure(let e):
            throw OperationError("", origin ?? path, e == .ENOENT ? "no such namespace file" : "open: \(e)", errno: e)
        }
    }

    /// The namespace of a running process, pinned: the process is held by a pidfd while its namespace is
    /// taken (ioctl PIDFD_GET_NET_NAMESPACE, or /proc/PID/ns/net checked against the pidfd afterwards),
    /// so a PID reused in between cannot yield another process's namespace.
    public static func of(pid: Int32) throws(OperationError) -> NamespaceHandle {
        let origin = "pid:\(pid)"
        guard pid > 0 else { throw OperationError("", origin, "not a process id") }
        let pidfd = nsi_pidfd_open(pid, 0)
        guard pidfd >= 0 else {
            let e = Errno.current
            throw OperationError("", origin, e == .ESRCH ? "no such process" : "pidfd_open: \(e)", errno: e)
        }
        defer { Glibc.close(pidfd) }
        let nsfd = nsi_pidfd_get_netns(pidfd)
        if nsfd >= 0 { return try NamespaceHandle(adopting: nsfd, origin: origin) }
        let ioctlError = Errno.current
        if ioctlError == .ESRCH { throw OperationError("", origin, "process exited", errno: ioctlError) }
        // Kernels before 6.11: open through /proc, then make sure the pinned process is still the one.
        let handle = try open(path: "/proc/\(pid)/ns/net", origin: origin)
        guard nsi_pidfd_send_signal(pidfd, 0) == 0 else {
            throw OperationError("", origin, "process exited while its namespace was opened", errno: .current)
        }
        return handle
    }

    /// The namespace this process was started in (`/proc/self/ns/net`).
    public static func current() throws(OperationError) -> NamespaceHandle {
        try open(path: "/proc/self/ns/net", origin: "self")
    }

    /// The host namespace: pid 1's, or where pid 1 cannot be read, kthreadd's (kernel threads always
    /// live in the initial network namespace).
    public static func host() throws(OperationError) -> NamespaceHandle {
        do {
            return try of(pid: 1)
        } catch {
            guard case .success(let comm) = Sys.readFile("/proc/2/comm", limit: 64),
                String(decoding: comm, as: UTF8.self).hasPrefix("kthreadd")
            else { throw error }
            return try of(pid: 2)
        }
    }

    /// Opens the namespaces of nsfs mounts (each namespace once, through its first openable mount),
    /// typically the caller's own (`MountInfo.ownNetworkNamespaceMounts`): what a census will find held
    /// by mounts, known before it has read /proc, so work on them can start early. Mounts that cannot
    /// be opened, or no longer lead to the namespace mountinfo named (something mounted over them), are
    /// left out.
    public static func open(mounts: [NSFSMount]) -> [NamespaceHandle] {
        var seen = Set<UInt64>()
        var handles: [NamespaceHandle] = []
        for mount in mounts where !seen.contains(mount.inode) {
            guard case .success(let fd) = Sys.open(mount.mountPoint, O_RDONLY) else { continue }
            let expected = NamespaceID(device: nsfsDevice, inode: mount.inode)
            if let handle = try? NamespaceHandle(trusting: fd, expected: expected, origin: mount.mountPoint) {
                handles.append(handle)
                seen.insert(mount.inode)
            }
        }
        return handles
    }

    /// A second descriptor for the same namespace (for code that must own its own copy).
    public func duplicate() throws(OperationError) -> NamespaceHandle {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw OperationError("", origin, call: "dup", errno: .current) }
        return try NamespaceHandle(adopting: copy, origin: origin)
    }

    /// The device number nsfs files carry (every namespace shares it): stat of /proc/self/ns/net.
    public static let nsfsDevice: UInt64 = {
        if case .success(let st) = Sys.stat("/proc/self/ns/net") { return UInt64(st.st_dev) }
        return 0
    }()

    static func typeName(_ type: Int32) -> String {
        switch type {
        case NSI_CLONE_NEWNS: "mount"
        case NSI_CLONE_NEWUSER: "user"
        case 0x0200_0000: "cgroup"
        case 0x0400_0000: "uts"
        case 0x0800_0000: "ipc"
        case 0x2000_0000: "pid"
        case 0x0000_0080: "time"
        default: "type \(type)"
        }
    }
}
