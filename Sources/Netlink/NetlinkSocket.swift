#if canImport(Glibc)
import Glibc
#endif
import CMnl
import CShim
import ProcNS

/// A netlink socket (libmnl's mnl_socket), owned: closed in `deinit`.
///
/// The rules of docs/design.md live here and nowhere else: bound with port id 0 (the kernel picks one),
/// the sequence number and port id of every reply checked, NETLINK_EXT_ACK and NETLINK_GET_STRICT_CHK
/// on, a dump restarted when the kernel flags it NLM_F_DUMP_INTR, NLM_F_ACK on every request that is
/// not a dump (or the receive loop would wait forever), and a receive timeout so nothing hangs.
public final class NetlinkSocket: @unchecked Sendable {
    private let socket: OpaquePointer
    public let portID: UInt32
    /// The namespace the socket was opened in, for messages.
    public let label: String
    private var nextSequence: UInt32
    /// Allocated at the first receive, uninitialised: the kernel writes what is read, and a census opens
    /// a socket in each of thousands of namespaces, where zeroing 64 KiB each was a measurable share of
    /// the time.
    private var buffer: [UInt8] = []
    /// Receive buffers for batched answers (recvmmsg), allocated for one transactAll and released after
    /// it: a lab of a thousand namespaces keeps a thousand sockets open, and 512 KiB each would stay
    /// resident. Allocated uninitialised (malloc → mmap), so only the pages the kernel writes are touched.
    private var batchBuffer: [UInt8] = []
    private static let batchSlots = 32
    private static let batchSlotSize = 16 << 10
    public let netlinkProtocol: Int32
    /// Called with every datagram the socket receives, before it is split into messages (the slice is
    /// only valid during the call). For capturing test fixtures and for debugging; nil normally.
    public var receiveTap: ((ArraySlice<UInt8>) -> Void)?

    /// How often a dump is retried after NLM_F_DUMP_INTR before giving up.
    public static let dumpRetries = 8

    private init(socket: OpaquePointer, label: String, netlinkProtocol: Int32, dumpsOnly: Bool = false)
        throws(OperationError)
    {
        self.socket = socket
        self.label = label
        self.netlinkProtocol = netlinkProtocol
        guard mnl_socket_bind(socket, 0, 0) == 0 else {
            let e = Errno.current
            mnl_socket_close(socket)
            throw OperationError("", label, call: "netlink bind", errno: e)
        }
        portID = mnl_socket_get_portid(socket)
        var on: Int32 = 1
        _ = mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        _ = mnl_socket_setsockopt(socket, NETLINK_GET_STRICT_CHK, &on, socklen_t(MemoryLayout<Int32>.size))
        // A socket that only sends dumps needs neither a large receive buffer nor a timeout: the kernel
        // writes the first part of a dump's answer before sendmsg returns and each further part inside
        // the recvmsg that makes room for it (netlink_dump), so a receive never waits for anything.
        // `dump` opens one in each of a thousand namespaces, where two setsockopt calls each are
        // kernel work the floor program does not do.
        if !dumpsOnly {
            let fd = mnl_socket_get_fd(socket)
            var size: Int32 = 1 << 20
            if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        // Sequence numbers start from the clock, as iproute2 does, so replies to an earlier socket with
        // the same port id cannot be mistaken for ours.
        nextSequence = UInt32(truncatingIfNeeded: time(nil))
    }

    /// Lets go of the receive buffers until the next receive, for a socket kept open while idle (`dump`
    /// keeps one per namespace between reading links and reading the rest).
    public func releaseBuffers() {
        buffer = []
        batchBuffer = []
    }

    deinit { mnl_socket_close(socket) }

    /// The socket's file descriptor (for poll(2) in monitors).
    public var fileDescriptor: Int32 { mnl_socket_get_fd(socket) }

    /// SO_NETNS_COOKIE: the never-reused identity of the namespace the socket belongs to (nil before
    /// Linux 5.14).
    public var netnsCookie: UInt64? {
        var cookie: UInt64 = 0
        return nsi_socket_netns_cookie(fileDescriptor, &cookie) == 0 ? cookie : nil
    }

    /// Opens a socket in this thread's namespace; `dumpsOnly` leaves out the receive buffer size and
    /// timeout, which only requests other than dumps and subscriptions need.
    public static func open(protocol: Int32 = NETLINK_ROUTE, label: String = "host", dumpsOnly: Bool = false)
        throws(OperationError) -> NetlinkSocket
    {
        guard let nl = mnl_socket_open2(`protocol`, Int32(SOCK_CLOEXEC.rawValue)) else {
            throw OperationError("", label, call: "netlink socket", errno: .current)
        }
        return try NetlinkSocket(socket: nl, label: label, netlinkProtocol: `protocol`, dumpsOnly: dumpsOnly)
    }

    /// Opens a socket inside `ns` (created on a thread that entered it; the socket stays there).
    public static func open(in ns: NamespaceHandle, protocol: Int32 = NETLINK_ROUTE, label: String? = nil) throws -> NetlinkSocket {
        let name = label ?? ns.origin
        let raw: OpaquePointer = try NamespaceThread.run(in: ns) { () throws(OperationError) -> OpaquePointer in
            guard let nl = mnl_socket_open2(`protocol`, Int32(SOCK_CLOEXEC.rawValue)) else {
                throw OperationError("", name, call: "netlink socket", errno: .current)
            }
            return nl
        }
        return try NetlinkSocket(socket: raw, label: name, netlinkProtocol: `protocol`)
    }

    /// Opens one socket inside each namespace, all from one thread; a namespace that cannot be entered
    /// yields its error and the others still get their socket.
    public static func open(inEach namespaces: [NamespaceHandle], protocol: Int32 = NETLINK_ROUTE, labels: [String]? = nil)
        throws(OperationError) -> [Result<NetlinkSocket, any Error>]
    {
        let raws = try NamespaceThread.runEach(in: namespaces) { (_, ns) throws(OperationError) -> OpaquePointer in
            guard let nl = mnl_socket_open2(`protocol`, Int32(SOCK_CLOEXEC.rawValue)) else {
                throw OperationError("", ns.origin, call: "netlink socket", errno: .current)
            }
            return nl
        }
        return raws.enumerated().map { (i, result) in
            result.flatMap { raw in
                Result { () throws(OperationError) in
                    try NetlinkSocket(socket: raw, label: labels?[i] ?? namespaces[i].origin, netlinkProtocol: `protocol`)
                }.mapError { $0 as any Error }
            }
        }
    }

    private func takeSequence() -> UInt32 {
        nextSequence &+= 1
        return nextSequence
    }

    private func send(_ bytes: [UInt8], request: String) throws(OperationError) {
        let sent = bytes.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        guard sent >= 0 else { throw OperationError("", label, call: "\(request) send", errno: .current) }
    }

    /// Receives one datagram into the buffer and returns the valid part. ENOBUFS, a timeout and other
    /// errors become typed errors.
    private func receive(request: String) throws -> ArraySlice<UInt8> {
        if buffer.isEmpty { buffer = [UInt8](unsafeUninitializedCapacity: 64 << 10) { _, count in count = 64 << 10 } }
        while true {
            let n = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, $0.count) }
            if n >= 0 {
                receiveTap?(buffer[0..<n])
                return buffer[0..<n]
            }
            let e = Errno.current
            if e == .EINTR { continue }
            if e == .EAGAIN { throw OperationError("", label, "\(request): no answer from the kernel within 10 s", errno: e) }
            throw OperationError("", label, call: "\(request) receive", errno: e)
        }
    }

    /// Receives every datagram already queued (at least one, waiting for it) with a single recvmmsg(2):
    /// a batch of requests is answered by as many datagrams, so this saves a system call per answer.
    private func receiveMany(request: String) throws -> [ArraySlice<UInt8>] {
        let slots = NetlinkSocket.batchSlots, size = NetlinkSocket.batchSlotSize
        if batchBuffer.isEmpty {
            batchBuffer = [UInt8](unsafeUninitializedCapacity: slots * size) { _, count in count = slots * size }
        }
        var lengths = [UInt32](repeating: 0, count: slots)
        let fd = fileDescriptor
        let count = batchBuffer.withUnsafeMutableBytes { raw in
            nsi_recv_datagrams(fd, raw.baseAddress, UInt32(size), UInt32(slots), &lengths)
        }
        guard count >= 0 else {
            let e = Errno.current
            if e == .EAGAIN { throw OperationError("", label, "\(request): no answer from the kernel within 10 s", errno: e) }
            throw OperationError("", label, call: "\(request) receive", errno: e)
        }
        var datagrams: [ArraySlice<UInt8>] = []
        for i in 0..<Int(count) where lengths[i] > 0 {
            guard lengths[i] != UInt32.max else {
                throw OperationError("", label, "\(request): answer larger than \(size) bytes was cut short")
            }
            datagrams.append(batchBuffer[(i * size)..<(i * size + Int(lengths[i]))])
        }
        return datagrams
    }

    /// Sends a dump request and decodes every answer with `decode` (which must copy what it keeps: the
    /// payload slices point into a buffer that is reused). If the kernel flags the dump as interrupted
    /// (NLM_F_DUMP_INTR: the table changed while it was read), everything decoded so far is dropped and
    /// the dump starts again.
    public func dump<T>(_ request: NetlinkRequest, decode: (NetlinkMessage) throws -> T?) throws -> [T] {
        var results: [T] = []
        try receiveDump(request, restart: { results.removeAll(keepingCapacity: true) }) { message, _ in
            if let value = try decode(message) { results.append(value) }
        }
        return results
    }

    /// Sends a dump request and returns its answer undecoded: the data messages, header and all, one
    /// after another as the kernel sent them, for `NetlinkMessage.split` to decode elsewhere. A reader
    /// that must hold the kernel briefly (one thread asks while another decodes and renders) copies the
    /// answer out with this and decodes after letting go.
    public func dumpUndecoded(_ request: NetlinkRequest) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try receiveDump(request, restart: { bytes.removeAll(keepingCapacity: true) }) { _, raw in
            bytes.append(contentsOf: raw)
        }
        return bytes
    }

    /// The receive loop of a dump: every data message of the answer goes to `each` with its bytes
    /// (header included, padded to NLMSG_ALIGNTO); `restart` is called before a dump the kernel
    /// interrupted is sent again.
    private func receiveDump(_ request: NetlinkRequest, restart: () -> Void,
                             each: (NetlinkMessage, ArraySlice<UInt8>) throws -> Void) throws {
        precondition(request.isDump, "dump() needs a request with NLM_F_DUMP")
        for attempt in 0...NetlinkSocket.dumpRetries {
            if attempt > 0 { restart() }
            let sequence = takeSequence()
            try send(request.encoded(sequence: sequence), request: request.name)
            var interrupted = false
            receiving: while true {
                let datagram = try receive(request: request.name)
                var offset = datagram.startIndex
                for message in try NetlinkMessage.split(datagram) {
                    let start = offset
                    offset = min(datagram.endIndex, start + align4(message.payload.endIndex - start))
                    guard message.sequence == sequence, message.portID == portID else { continue }
                    if message.flags & NLMsg.dumpInterrupted != 0 { interrupted = true }
                    switch message.type {
                    case NLMsg.done:
                        if let error = try NetlinkError.decode(message, request: request.name) { throw error }
                        break receiving
                    case NLMsg.error:
                        if let error = try NetlinkError.decode(message, request: request.name) { throw error }
                    case NLMsg.noop, NLMsg.overrun:
                        continue
                    default:
                        try each(message, datagram[start..<offset])
                    }
                }
            }
            if !interrupted { return }
        }
        throw OperationError("", label, "\(request.name): dump interrupted \(NetlinkSocket.dumpRetries + 1) times in a row (the table keeps changing)")
    }

    /// Sends a request that is not a dump, with NLM_F_ACK, and returns what `decode` makes of the
    /// replies before the acknowledgement. A kernel error is thrown as `NetlinkError`.
    @discardableResult
    public func transact<T>(_ request: NetlinkRequest, decode: (NetlinkMessage) throws -> T?) throws -> [T] {
        try transactAll([request], decode: decode)[0].get()
    }

    /// Executes a request that only needs an acknowledgement (RTM_NEWLINK, RTM_NEWADDR …).
    public func execute(_ request: NetlinkRequest) throws {
        let _: [Int] = try transact(request) { _ in nil }
    }

    /// Sends many requests that are not dumps, several per datagram (the kernel handles each in turn),
    /// and matches the replies to them by sequence number. Each request gets its own result: one
    /// failure does not hide the others' answers.
    public func transactAll<T>(_ requests: [NetlinkRequest], batchSize: Int = 64,
                               decode: (NetlinkMessage) throws -> T?) throws -> [Result<[T], any Error>] {
        var results = [Result<[T], any Error>](repeating: .success([]), count: requests.count)
        defer { batchBuffer = [] }
        var start = 0
        while start < requests.count {
            let end = min(start + batchSize, requests.count)
            var datagram: [UInt8] = []
            var sequences: [UInt32: Int] = [:]
            for i in start..<end {
                precondition(!requests[i].isDump, "transact() cannot send a dump")
                let sequence = takeSequence()
                sequences[sequence] = i
                datagram.append(contentsOf: requests[i].encoded(sequence: sequence, extraFlags: NLMsg.ack))
            }
            try send(datagram, request: requests[start].name)
            var pending = Set(sequences.keys)
            while !pending.isEmpty {
                for received in try receiveMany(request: requests[start].name)
                    { for message in try NetlinkMessage.split(received) {
                    guard message.portID == portID, let index = sequences[message.sequence],
                        pending.contains(message.sequence)
                    else { continue }
                    switch message.type {
                    case NLMsg.error:
                        if let error = try NetlinkError.decode(message, request: requests[index].name) {
                            results[index] = .failure(error)
                        }
                        pending.remove(message.sequence)
                    case NLMsg.noop, NLMsg.done:
                        continue
                    default:
                        if case .success(var values) = results[index] {
                            do {
                                if let value = try decode(message) { values.append(value) }
                                results[index] = .success(values)
                            } catch {
                                results[index] = .failure(error)
                            }
                        }
                    }
                } }
            }
            start = end
        }
        return results
    }
}
