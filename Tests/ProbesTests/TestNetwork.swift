#if canImport(Glibc)
import Glibc
#endif
import ProcNS
import Testing

/// Two throwaway network namespaces joined by a veth pair: `a` (10.77.0.1/24 and fd77::1/64 on nsia) and
/// `b` (10.77.0.2/24 and fd77::2/64 on nsib). The namespaces are anonymous (unshare on a thread of their
/// own, held only by their handles), so nothing is named in /var/run/netns and a crashed test leaves
/// nothing behind; `remove()` (call it in a defer) deletes the veth, and releasing the handles destroys
/// both namespaces.
final class TestNetwork {
    let a: NamespaceHandle
    let b: NamespaceHandle
    let addressA = "10.77.0.1"
    let addressB = "10.77.0.2"
    let address6A = "fd77::1"
    let address6B = "fd77::2"
    let interfaceA = "nsia"
    let interfaceB = "nsib"
    private var removed = false

    var inodeA: UInt32 { UInt32(truncatingIfNeeded: a.id.inode) }
    var inodeB: UInt32 { UInt32(truncatingIfNeeded: b.id.inode) }

    init() throws {
        a = try NamespaceThread.createNamespace()
        b = try NamespaceThread.createNamespace()
        // `ip link add … netns PATH` opens the path: our descriptor of b, seen through /proc.
        try run(a, "ip", "link", "add", interfaceA, "type", "veth", "peer", "name", interfaceB,
                "netns", "/proc/\(getpid())/fd/\(b.fd)")
        for (ns, name, address, address6) in [(a, interfaceA, addressA, address6A), (b, interfaceB, addressB, address6B)] {
            try run(ns, "ip", "link", "set", "lo", "up")
            try run(ns, "ip", "addr", "add", "\(address)/24", "dev", name)
            try run(ns, "ip", "-6", "addr", "add", "\(address6)/64", "dev", name, "nodad")
            try run(ns, "ip", "link", "set", name, "up")
        }
    }

    deinit { remove() }

    /// Deletes the veth pair (both ends) and lets the namespaces go with the handles.
    func remove() {
        guard !removed else { return }
        removed = true
        _ = try? Spawner(namespace: a).run([TestNetwork.tool("ip"), "link", "del", interfaceA])
    }

    /// Runs a command inside a namespace and fails the test with its output when it fails.
    @discardableResult
    func run(_ ns: NamespaceHandle, _ arguments: String..., input: String? = nil) throws -> String {
        var argv = arguments
        argv[0] = TestNetwork.tool(argv[0])
        let (status, output) = try Spawner(namespace: ns).run(argv, input: input.map { Array($0.utf8) })
        guard status.succeeded else {
            throw OperationError("test", arguments.joined(separator: " "), "\(status): \(output)")
        }
        return output
    }

    /// iproute2 and nft live in /usr/sbin, which a test runner's PATH may lack.
    static func tool(_ name: String) -> String {
        Spawner.resolveExecutable(name) ?? "/usr/sbin/\(name)"
    }

    static var toolsAvailable: Bool { access(tool("ip"), X_OK) == 0 }
}

/// A socket opened inside a namespace (it stays there when the thread switches back) that sends probes:
/// ICMP or ICMPv6 echo requests built here (raw sockets), or UDP datagrams.
final class ProbeSocket {
    let fd: Int32
    let family: Int32

    private init(in ns: NamespaceHandle, family: Int32, type: Int32, proto: Int32) throws {
        self.family = family
        fd = try NamespaceThread.run(in: ns) { () throws -> Int32 in
            let fd = socket(family, type | Int32(SOCK_CLOEXEC.rawValue), proto)
            guard fd >= 0 else { throw OperationError("test", "probe socket", call: "socket", errno: .current) }
            return fd
        }
    }

    deinit { close(fd) }

    static func icmp(in ns: NamespaceHandle) throws -> ProbeSocket {
        try ProbeSocket(in: ns, family: AF_INET, type: Int32(SOCK_RAW.rawValue), proto: Int32(IPPROTO_ICMP))
    }

    /// ICMPv6 raw socket: the kernel fills in the checksum.
    static func icmpv6(in ns: NamespaceHandle) throws -> ProbeSocket {
        try ProbeSocket(in: ns, family: AF_INET6, type: Int32(SOCK_RAW.rawValue), proto: Int32(IPPROTO_ICMPV6))
    }

    static func udp(in ns: NamespaceHandle) throws -> ProbeSocket {
        try ProbeSocket(in: ns, family: AF_INET, type: Int32(SOCK_DGRAM.rawValue), proto: Int32(IPPROTO_UDP))
    }

    /// Sends one echo request (id, sequence, 16 bytes of payload).
    func sendEcho(to address: String, id: UInt16, sequence: UInt16) throws {
        var packet: [UInt8] = [family == AF_INET ? 8 : 128, 0, 0, 0, UInt8(id >> 8), UInt8(id & 0xff),
                               UInt8(sequence >> 8), UInt8(sequence & 0xff)]
        packet += Array("nsinspect probe!".utf8)
        if family == AF_INET {
            let checksum = ProbeSocket.checksum(packet)
            packet[2] = UInt8(checksum >> 8)
            packet[3] = UInt8(checksum & 0xff)
        }
        try send(packet, to: address, port: 0)
    }

    /// Sends a datagram (UDP sockets) or a raw message to `address` (numeric, of the socket's family).
    func send(_ bytes: [UInt8], to address: String, port: UInt16) throws {
        var hints = addrinfo()
        hints.ai_family = family
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address, String(port), &hints, &result) == 0, let info = result else {
            throw OperationError("test", address, "not a numeric address of this socket's family")
        }
        defer { freeaddrinfo(result) }
        guard sendto(fd, bytes, bytes.count, 0, info.pointee.ai_addr, info.pointee.ai_addrlen) == bytes.count else {
            throw OperationError("test", "probe to \(address)", call: "sendto", errno: .current)
        }
    }

    /// Binds an IPv4 socket to `address` and an ephemeral port, which it returns.
    func bind(to address: String) throws -> UInt16 {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        _ = inet_pton(AF_INET, address, &sin.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &sin) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw OperationError("test", "bind \(address)", call: "bind", errno: .current) }
        return UInt16(bigEndian: sin.sin_port)
    }

    /// The Internet checksum (RFC 1071).
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < bytes.count {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.count { sum += UInt32(bytes[index]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}
