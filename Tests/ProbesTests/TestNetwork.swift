#if canImport(Glibc)
import Glibc
#endif
import ProcNS
import Testing

/// Two throwaway network namespaces joined by a veth pair: `a` (10.77.0.1/24 on nsia) and `b`
/// (10.77.0.2/24 on nsib). The namespaces are anonymous (unshare on a thread of their own, held only by
/// their handles), so nothing is named in /var/run/netns and a crashed test leaves nothing behind; `remove()`
/// (call it in a defer) deletes the veth and releases the handles, which destroys both namespaces.
final class TestNetwork {
    let a: NamespaceHandle
    let b: NamespaceHandle
    let addressA = "10.77.0.1"
    let addressB = "10.77.0.2"
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
        for (ns, name, address) in [(a, interfaceA, addressA), (b, interfaceB, addressB)] {
            try run(ns, "ip", "link", "set", "lo", "up")
            try run(ns, "ip", "addr", "add", "\(address)/24", "dev", name)
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

/// A raw ICMP socket opened inside a namespace (it stays there when the thread switches back), sending echo
/// requests built here.
final class EchoSender {
    let fd: Int32

    init(in ns: NamespaceHandle) throws {
        fd = try NamespaceThread.run(in: ns) { () throws -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_ICMP))
            guard fd >= 0 else { throw OperationError("test", "raw ICMP socket", call: "socket", errno: .current) }
            return fd
        }
    }

    deinit { close(fd) }

    /// Sends one echo request (id, sequence, 16 bytes of payload) to an IPv4 address.
    func send(to address: String, id: UInt16, sequence: UInt16) throws {
        var packet: [UInt8] = [8, 0, 0, 0, UInt8(id >> 8), UInt8(id & 0xff), UInt8(sequence >> 8), UInt8(sequence & 0xff)]
        packet += Array("nsinspect probe!".utf8)
        let checksum = EchoSender.checksum(packet)
        packet[2] = UInt8(checksum >> 8)
        packet[3] = UInt8(checksum & 0xff)
        var destination = sockaddr_in()
        destination.sin_family = sa_family_t(AF_INET)
        guard inet_pton(AF_INET, address, &destination.sin_addr) == 1 else {
            throw OperationError("test", address, "not an IPv4 address")
        }
        let sent = withUnsafePointer(to: &destination) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, packet, packet.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard sent == packet.count else { throw OperationError("test", "echo to \(address)", call: "sendto", errno: .current) }
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
