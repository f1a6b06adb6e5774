#if canImport(Glibc)
import Glibc
#endif
import NetAddress
import ProcNS

/// A socket address for an IP address and port (sockaddr_in or sockaddr_in6).
struct SocketAddress {
    var storage = sockaddr_storage()
    var length: socklen_t

    init(_ address: IPAddress, port: UInt16 = 0) {
        if address.family == .v4 {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: address.bytes) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: withUnsafeBytes(of: sin) { Array($0) }) }
        } else {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: address.bytes) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: withUnsafeBytes(of: sin6) { Array($0) }) }
        }
    }

    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    var address: IPAddress? {
        withUnsafeBytes(of: storage) { raw in
            switch Int32(storage.ss_family) {
            case AF_INET: IPAddress(bytes: raw[4..<8])
            case AF_INET6: IPAddress(bytes: raw[8..<24])
            default: nil
            }
        }
    }

    var port: UInt16 {
        withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) }
    }

    func withPointer<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
    }
}

/// A socket owned by a probe: created inside a namespace (on a thread that entered it; the socket stays
/// bound there), closed in `deinit`.
public final class ProbeSocket: @unchecked Sendable {
    public let fd: Int32
    public let family: IPAddress.Family

    init(fd: Int32, family: IPAddress.Family) {
        self.fd = fd
        self.family = family
    }

    deinit { close(fd) }

    /// socket(2) inside `namespace` (nil: here).
    static func open(in namespace: NamespaceHandle?, family: IPAddress.Family, type: Int32, protocol proto: Int32,
                     what: String) throws -> ProbeSocket {
        let domain = family == .v4 ? AF_INET : AF_INET6
        let make = { () throws(OperationError) -> Int32 in
            let fd = socket(domain, type | Int32(SOCK_CLOEXEC.rawValue), proto)
            guard fd >= 0 else { throw OperationError("", what, call: "socket", errno: .current) }
            return fd
        }
        let fd = try namespace.map { try NamespaceThread.run(in: $0, make) } ?? make()
        return ProbeSocket(fd: fd, family: family)
    }

    func setOption<T>(_ level: Int32, _ name: Int32, _ value: T) {
        var v = value
        _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<T>.size))
    }

    /// Sets the TTL (IPv4) or unicast hop limit (IPv6) of what the socket sends.
    func setTTL(_ ttl: UInt8) {
        if family == .v4 {
            setOption(Int32(IPPROTO_IP), Int32(IP_TTL), Int32(ttl))
        } else {
            setOption(Int32(IPPROTO_IPV6), Int32(IPV6_UNICAST_HOPS), Int32(ttl))
        }
    }

    /// Waits until the socket is readable (or writable) or `deadline` (monotonic ns) passes.
    func wait(until deadline: UInt64, events: Int16 = Int16(POLLIN)) -> Bool {
        while true {
            let now = monotonicNanoseconds()
            guard now < deadline else { return false }
            var pfd = pollfd(fd: fd, events: events, revents: 0)
            let ms = Int32(min(UInt64(Int32.max), (deadline - now + 999_999) / 1_000_000))
            let n = poll(&pfd, 1, ms)
            if n > 0 { return true }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { return false }
            return false
        }
    }

    /// The local address and port the kernel chose (getsockname).
    var localEndpoint: (address: IPAddress?, port: UInt16) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let address = SocketAddress(storage: storage, length: length)
        return (address.address, address.port)
    }
}

/// What came back for an ICMP echo: the reply, an ICMP error about it, or nothing in time.
public enum EchoOutcome: Equatable, Sendable {
    /// The echo reply: its TTL (hop limit) on arrival, the round-trip time in nanoseconds, the responder.
    case reply(sequence: UInt16, ttl: UInt8, rtt: UInt64, from: IPAddress)
    /// An ICMP error quoting the probe (time exceeded, destination unreachable…), from the router or host
    /// that sent it, with the error's own TTL on arrival.
    case error(sequence: UInt16, type: UInt8, code: UInt8, from: IPAddress, ttl: UInt8)
    case timeout(sequence: UInt16)

    public var sequence: UInt16 {
        switch self {
        case .reply(let s, _, _, _), .error(let s, _, _, _, _), .timeout(let s): s
        }
    }
}

/// ICMP echo from inside a namespace, over a raw socket, so the probe's identifier is ours (a ping
/// socket would let the kernel pick it) and every reply or error can be matched to its probe.
public final class EchoProber: @unchecked Sendable {
    public let identifier: UInt16
    public let destination: IPAddress
    private let socket: ProbeSocket
    private var sentAt: [UInt16: UInt64] = [:]
    /// Answers that arrived for probes not yet asked about.
    private var early: [UInt16: EchoOutcome] = [:]

    /// - Parameters:
    ///   - namespace: where the probes are sent from (nil: this namespace).
    ///   - identifier: the ICMP echo id; random by default.
    ///   - ttl: the TTL (hop limit) of the probes; the system default when nil.
    public init(from namespace: NamespaceHandle?, to destination: IPAddress, identifier: UInt16 = .random(in: 1...UInt16.max),
                ttl: UInt8? = nil) throws {
        self.identifier = identifier
        self.destination = destination
        let v4 = destination.family == .v4
        socket = try ProbeSocket.open(in: namespace, family: destination.family, type: Int32(SOCK_RAW.rawValue),
                                      protocol: v4 ? Int32(IPPROTO_ICMP) : Int32(IPPROTO_ICMPV6), what: "ICMP socket")
        if let ttl { socket.setTTL(ttl) }
        if v4 {
            // ICMP_FILTER: let through only echo replies (0) and the errors (3 unreachable, 11 time exceeded,
            // 12 parameter problem): a bit set in the mask drops that type.
            let pass: [UInt32] = [0, 3, 11, 12]
            let mask = ~pass.reduce(UInt32(0)) { $0 | (1 << $1) }
            socket.setOption(Int32(SOL_RAW), 1 /* ICMP_FILTER */, mask)
        } else {
            socket.setOption(Int32(IPPROTO_IPV6), IPV6_RECVHOPLIMIT, Int32(1))
        }
    }

    /// Sends echo request `sequence` with a payload that carries its send time.
    public func send(sequence: UInt16, payloadSize: Int = 56) throws {
        var packet: [UInt8] = [destination.family == .v4 ? 8 : 128, 0, 0, 0]
        packet.append(UInt8(identifier >> 8)); packet.append(UInt8(identifier & 0xff))
        packet.append(UInt8(sequence >> 8)); packet.append(UInt8(sequence & 0xff))
        var stamp = monotonicNanoseconds()
        packet += withUnsafeBytes(of: &stamp) { Array($0) }
        while packet.count < 8 + payloadSize { packet.append(UInt8(truncatingIfNeeded: packet.count)) }
        if destination.family == .v4 {
            let sum = EchoProber.checksum(packet)
            packet[2] = UInt8(sum >> 8); packet[3] = UInt8(sum & 0xff)
        }   // ICMPv6: the kernel computes the checksum (IPV6_CHECKSUM is on for raw ICMPv6 sockets)
        let target = SocketAddress(destination)
        let n = target.withPointer { address, length in
            packet.withUnsafeBytes { sendto(socket.fd, $0.baseAddress, $0.count, 0, address, length) }
        }
        guard n == packet.count else { throw OperationError("", "echo to \(destination)", call: "sendto", errno: .current) }
        sentAt[sequence] = stamp
    }

    /// Waits for the answer to `sequence` until `deadline` (monotonic ns).
    public func answer(to sequence: UInt16, before deadline: UInt64) -> EchoOutcome {
        if let known = early.removeValue(forKey: sequence) { return known }
        var buffer = [UInt8](repeating: 0, count: 2048)
        var control = [UInt8](repeating: 0, count: 128)
        while socket.wait(until: deadline) {
            var from = sockaddr_storage()
            var received = 0
            var hopLimit: UInt8?
            buffer.withUnsafeMutableBytes { data in
                control.withUnsafeMutableBytes { cmsg in
                    withUnsafeMutablePointer(to: &from) { name in
                        var iov = iovec(iov_base: data.baseAddress, iov_len: data.count)
                        withUnsafeMutablePointer(to: &iov) { iovp in
                            var msg = msghdr(msg_name: name, msg_namelen: socklen_t(MemoryLayout<sockaddr_storage>.size),
                                             msg_iov: iovp, msg_iovlen: 1, msg_control: cmsg.baseAddress,
                                             msg_controllen: cmsg.count, msg_flags: 0)
                            received = recvmsg(socket.fd, &msg, Int32(MSG_DONTWAIT))
                            if received > 0 && destination.family == .v6 { hopLimit = EchoProber.hopLimit(&msg) }
                        }
                    }
                }
            }
            guard received > 0 else { continue }
            let sender = SocketAddress(storage: from, length: 0).address ?? destination
            guard let outcome = parse(Array(buffer[0..<received]), from: sender, hopLimit: hopLimit) else { continue }
            if outcome.sequence == sequence { return outcome }
            early[outcome.sequence] = outcome
        }
        return .timeout(sequence: sequence)
    }

    /// Sends `count` probes, one every `interval`, and collects their outcomes (each waits up to `timeout`).
    public func ping(count: Int, interval: UInt64 = 200_000_000, timeout: UInt64 = 1_000_000_000) throws -> [EchoOutcome] {
        var outcomes: [EchoOutcome] = []
        for i in 0..<count {
            let sequence = UInt16(truncatingIfNeeded: i + 1)
            try send(sequence: sequence)
            let outcome = answer(to: sequence, before: monotonicNanoseconds() + timeout)
            outcomes.append(outcome)
            if i < count - 1, case .reply = outcome { usleep(UInt32(interval / 1000)) }
        }
        return outcomes
    }

    /// Matches a received ICMP message to our probes: an echo reply with our id, or an error whose quoted
    /// header is one of our echo requests.
    private func parse(_ bytes: [UInt8], from sender: IPAddress, hopLimit: UInt8?) -> EchoOutcome? {
        var icmp = bytes[...]
        var ttl = hopLimit ?? 0
        if destination.family == .v4 {
            guard let first = bytes.first, first >> 4 == 4 else { return nil }
            let headerLength = Int(first & 0xf) * 4
            guard bytes.count >= headerLength + 8 else { return nil }
            ttl = bytes[8]
            icmp = bytes[headerLength...]
        }
        guard icmp.count >= 8 else { return nil }
        let s = icmp.startIndex
        let type = icmp[s], code = icmp[s + 1]
        let echoReply: UInt8 = destination.family == .v4 ? 0 : 129
        if type == echoReply {
            guard UInt16(icmp[s + 4]) << 8 | UInt16(icmp[s + 5]) == identifier else { return nil }
            let sequence = UInt16(icmp[s + 6]) << 8 | UInt16(icmp[s + 7])
            let rtt = sentAt[sequence].map { monotonicNanoseconds() - $0 } ?? 0
            return .reply(sequence: sequence, ttl: ttl, rtt: rtt, from: sender)
        }
        // An error: after 8 bytes of ICMP header comes the offending packet's IP header, then its first
        // 8 bytes: our echo request's type, code, checksum, id, sequence.
        let inner = icmp[(s + 8)...]
        var innerICMP: ArraySlice<UInt8>
        if destination.family == .v4 {
            guard let first = inner.first, first >> 4 == 4 else { return nil }
            let length = Int(first & 0xf) * 4
            guard inner.count >= length + 8, inner[inner.startIndex + 9] == UInt8(IPPROTO_ICMP) else { return nil }
            innerICMP = inner[(inner.startIndex + length)...]
        } else {
            guard inner.count >= 48, inner[inner.startIndex + 6] == 58 else { return nil }  // next header ICMPv6
            innerICMP = inner[(inner.startIndex + 40)...]
        }
        let i = innerICMP.startIndex
        guard innerICMP[i] == (destination.family == .v4 ? 8 : 128),
            UInt16(innerICMP[i + 4]) << 8 | UInt16(innerICMP[i + 5]) == identifier
        else { return nil }
        let sequence = UInt16(innerICMP[i + 6]) << 8 | UInt16(innerICMP[i + 7])
        return .error(sequence: sequence, type: type, code: code, from: sender, ttl: ttl)
    }

    /// The IPV6_HOPLIMIT control message of a received datagram.
    private static func hopLimit(_ msg: inout msghdr) -> UInt8? {
        guard let control = msg.msg_control, msg.msg_controllen >= MemoryLayout<cmsghdr>.size else { return nil }
        var offset = 0
        while offset + MemoryLayout<cmsghdr>.size <= msg.msg_controllen {
            let header = control.load(fromByteOffset: offset, as: cmsghdr.self)
            guard header.cmsg_len >= MemoryLayout<cmsghdr>.size else { return nil }
            if header.cmsg_level == IPPROTO_IPV6 && header.cmsg_type == IPV6_HOPLIMIT {
                return UInt8(truncatingIfNeeded: control.loadUnaligned(fromByteOffset: offset + MemoryLayout<cmsghdr>.size, as: Int32.self))
            }
            offset += (Int(header.cmsg_len) + 7) & ~7
        }
        return nil
    }

    /// The Internet checksum (RFC 1071).
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}

/// UDP datagrams sent from, or received in, a namespace: the probes of `lab test` and `natcheck`.
public final class UDPEndpoint: @unchecked Sendable {
    private let socket: ProbeSocket

    /// A UDP socket in `namespace`, bound to `port` (0: any) on `address` (nil: every address; natcheck
    /// sends from one address of several).
    public init(in namespace: NamespaceHandle?, family: IPAddress.Family = .v4, address: IPAddress? = nil, port: UInt16 = 0) throws {
        socket = try ProbeSocket.open(in: namespace, family: family, type: Int32(SOCK_DGRAM.rawValue), protocol: 0,
                                      what: "UDP socket")
        socket.setOption(SOL_SOCKET, SO_REUSEADDR, Int32(1))
        let any = IPAddress(bytes: [UInt8](repeating: 0, count: family == .v4 ? 4 : 16))!
        let local = SocketAddress(address ?? any, port: port)
        let rc = local.withPointer { bind(socket.fd, $0, $1) }
        guard rc == 0 else { throw OperationError("", "UDP \(address.map { "\($0) " } ?? "")port \(port)", call: "bind", errno: .current) }
    }

    /// The port the socket is bound to.
    public var port: UInt16 { socket.localEndpoint.port }

    /// The TTL (hop limit) of what it sends.
    public func setTTL(_ ttl: UInt8) { socket.setTTL(ttl) }

    public func send(_ payload: [UInt8], to address: IPAddress, port: UInt16) throws {
        let target = SocketAddress(address, port: port)
        let n = target.withPointer { a, l in payload.withUnsafeBytes { sendto(socket.fd, $0.baseAddress, $0.count, 0, a, l) } }
        guard n == payload.count else { throw OperationError("", "UDP to \(address):\(port)", call: "sendto", errno: .current) }
    }

    /// The next datagram before `deadline` (monotonic ns): its payload and sender.
    public func receive(before deadline: UInt64) -> (payload: [UInt8], from: IPAddress, port: UInt16)? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while socket.wait(until: deadline) {
            var from = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = buffer.withUnsafeMutableBytes { data in
                withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(socket.fd, data.baseAddress, data.count, Int32(MSG_DONTWAIT), $0, &length)
                    }
                }
            }
            guard n >= 0 else { continue }
            let sender = SocketAddress(storage: from, length: length)
            return (Array(buffer[0..<n]), sender.address ?? IPAddress(v4: 0), sender.port)
        }
        return nil
    }

    /// Waits for a datagram whose payload is `expected` (others are skipped) until `deadline`.
    public func receive(_ expected: [UInt8], before deadline: UInt64) -> (from: IPAddress, port: UInt16)? {
        while let datagram = receive(before: deadline) {
            if datagram.payload == expected { return (datagram.from, datagram.port) }
        }
        return nil
    }
}

/// What a TCP SYN probe found: a SYN-ACK (the port answered), a RST, an ICMP error, or nothing.
public enum SynOutcome: Equatable, Sendable {
    case open
    case refused
    case unreachable(Errno)
    case timeout
}

/// A TCP SYN sent by the kernel from a socket in a namespace: connect(2) on a non-blocking socket bound
/// to a port chosen first, so the probe's 5-tuple is known before anything is sent.
public final class SynProber: @unchecked Sendable {
    private let socket: ProbeSocket
    public let sourcePort: UInt16
    public let destination: IPAddress
    public let port: UInt16

    public init(from namespace: NamespaceHandle?, to destination: IPAddress, port: UInt16, ttl: UInt8? = nil) throws {
        self.destination = destination
        self.port = port
        let socket = try ProbeSocket.open(in: namespace, family: destination.family,
                                          type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), protocol: 0,
                                          what: "TCP socket")
        if let ttl { socket.setTTL(ttl) }
        let any = IPAddress(bytes: [UInt8](repeating: 0, count: destination.family == .v4 ? 4 : 16))!
        let local = SocketAddress(any, port: 0)
        guard local.withPointer({ bind(socket.fd, $0, $1) }) == 0 else {
            throw OperationError("", "TCP probe", call: "bind", errno: .current)
        }
        self.socket = socket
        sourcePort = socket.localEndpoint.port
    }

    /// Sends the SYN and waits for the outcome until `deadline`.
    public func probe(before deadline: UInt64) -> SynOutcome {
        let target = SocketAddress(destination, port: port)
        let rc = target.withPointer { connect(socket.fd, $0, $1) }
        if rc == 0 { return .open }
        guard errno == EINPROGRESS else { return errno == ECONNREFUSED ? .refused : .unreachable(.current) }
        guard socket.wait(until: deadline, events: Int16(POLLOUT)) else { return .timeout }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(socket.fd, SOL_SOCKET, SO_ERROR, &error, &length)
        switch error {
        case 0: return .open
        case ECONNREFUSED: return .refused
        default: return .unreachable(Errno(error))
        }
    }
}
