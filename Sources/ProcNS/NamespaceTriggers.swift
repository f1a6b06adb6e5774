#if canImport(Glibc)
import Glibc
#endif

/// Names added to and removed from directories where namespaces are bind-mounted by name (/run/netns,
/// /run/docker/netns …), by inotify (IN_CREATE, IN_DELETE, IN_MOVED_FROM/TO): how `ip netns add/del`
/// and the runtimes' names are noticed without polling. A directory that does not exist yet is not
/// watched (the census fallback catches what is made there later).
public final class DirectoryWatch: @unchecked Sendable {
    public let fileDescriptor: Int32
    /// The directories watched.
    public private(set) var paths: [String] = []

    public init(_ directories: [String]) throws(OperationError) {
        fileDescriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fileDescriptor >= 0 else { throw OperationError("watch", "inotify", call: "inotify_init1", errno: .current) }
        let mask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)
        for directory in Set(directories).sorted() where inotify_add_watch(fileDescriptor, directory, mask) >= 0 {
            paths.append(directory)
        }
    }

    deinit { close(fileDescriptor) }

    /// Reads what is queued; true when anything changed.
    public func drain() -> Bool { DrainableFD.drain(fileDescriptor) }
}

/// The proc connector (NETLINK_CONNECTOR, CN_IDX_PROC, PROC_CN_MCAST_LISTEN): the kernel's notice of every
/// exec and exit on the host. `unshare --net CMD`, a container's init and `ip netns exec` all exec in
/// their new namespace, and a namespace held only by processes goes when the last one exits, so these two
/// events are when a census can find something new; forks are ignored (a child shares its parent's
/// namespace until it unshares, and then it usually execs).
public final class ProcessEvents: @unchecked Sendable {
    public let fileDescriptor: Int32
    /// Kept between drains: on a busy host they come with every exec.
    private var buffer = [UInt8](repeating: 0, count: 8192)

    public init() throws(OperationError) {
        fileDescriptor = socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                                11 /* NETLINK_CONNECTOR */)
        guard fileDescriptor >= 0 else { throw OperationError("watch", "proc connector", call: "socket", errno: .current) }
        // struct sockaddr_nl { nl_family AF_NETLINK, nl_pad, nl_pid 0 (the kernel picks), nl_groups
        // CN_IDX_PROC }, written out: Glibc's module does not carry linux/netlink.h.
        var address = [UInt8](repeating: 0, count: 12)
        address[0] = UInt8(AF_NETLINK)
        address[8] = 1
        let bound = address.withUnsafeBytes {
            bind(fileDescriptor, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(12))
        }
        guard bound == 0 else {
            let e = Errno.current
            close(fileDescriptor)
            throw OperationError("watch", "proc connector", call: "bind", errno: e)
        }
        // nlmsghdr (16) + cn_msg { cb_id { idx CN_IDX_PROC, val CN_VAL_PROC }, seq, ack, len 4, flags } (20)
        // + PROC_CN_MCAST_LISTEN (1).
        var request = [UInt8](repeating: 0, count: 40)
        func put32(_ value: UInt32, at offset: Int) { withUnsafeBytes(of: value.littleEndian) { request.replaceSubrange(offset..<offset + 4, with: $0) } }
        put32(40, at: 0)
        request[4] = 3  // NLMSG_DONE, as the connector expects
        put32(1, at: 16)
        put32(1, at: 20)
        request[32] = 4
        put32(1, at: 36)
        let sent = request.withUnsafeBytes { send(fileDescriptor, $0.baseAddress, $0.count, 0) }
        guard sent == 40 else {
            let e = Errno.current
            close(fileDescriptor)
            throw OperationError("watch", "proc connector", call: "send PROC_CN_MCAST_LISTEN", errno: e)
        }
    }

    deinit { close(fileDescriptor) }

    /// Reads what is queued; true when an exec or exit (or an overflow, which may have hidden one) was
    /// among it.
    public func drain() -> Bool {
        var relevant = false
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ENOBUFS { relevant = true; continue }
                return relevant
            }
            if n == 0 { return relevant }
            // proc_event.what after nlmsghdr and cn_msg: PROC_EVENT_EXEC 2, PROC_EVENT_EXIT 0x80000000.
            var at = 0
            while at + 40 <= n {
                let length = Int(buffer[at..<at + 4].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) })
                let what = buffer[at + 36..<at + 40].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
                if what == 2 || what == 0x8000_0000 { relevant = true }
                guard length >= 40 else { break }
                at += (length + 3) & ~3
            }
        }
    }
}

enum DrainableFD {
    /// Reads a non-blocking descriptor empty; true when anything was read.
    static func drain(_ fd: Int32) -> Bool {
        var any = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return any }
            any = true
        }
    }
}
