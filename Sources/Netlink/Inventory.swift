#if canImport(Glibc)
import Glibc
#endif
import CShim
import ProcNS

/// What to read from each namespace.
public struct InventoryParts: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let links = InventoryParts(rawValue: 1)
    public static let addresses = InventoryParts(rawValue: 2)
    public static let routes = InventoryParts(rawValue: 4)
    public static let neighbours = InventoryParts(rawValue: 8)
    public static let fdb = InventoryParts(rawValue: 16)
    public static let rules = InventoryParts(rawValue: 32)
    /// Link counters (IFLA_STATS64); left out unless asked, since computing them dominates a link dump.
    public static let statistics = InventoryParts(rawValue: 64)
    /// Only the interface names, read from /proc/thread-self/net/dev instead of a link dump: the kernel
    /// prints that file under RCU, while a link dump takes the rtnl mutex, which serialises workers.
    public static let interfaceNames = InventoryParts(rawValue: 128)
    public static let all: InventoryParts = [.links, .addresses, .routes, .neighbours, .fdb, .rules]
}

/// One namespace's state as read over rtnetlink, with the cookie of the namespace the socket was in.
public struct NamespaceSnapshot: Sendable {
    public var state: NamespaceState
    /// SO_NETNS_COOKIE of the socket: the namespace's never-reused identity.
    public var cookie: UInt64?
    /// Interface names from /proc/thread-self/net/dev, when `.interfaceNames` was asked for.
    public var interfaceNames: [String]?

    public init(state: NamespaceState, cookie: UInt64?, interfaceNames: [String]? = nil) {
        self.state = state
        self.cookie = cookie
        self.interfaceNames = interfaceNames
    }
}

/// Reads many namespaces in one process: each is entered on a worker thread only long enough to open a
/// route socket there (it stays bound to that namespace), the dumps run on that socket, and the socket is
/// closed before the next namespace.
///
/// Two workers share the list, but only one of them talks to the kernel at a time (`KernelTurn`): two
/// threads dumping at once spin on the same kernel mutexes (mutex_spin_on_owner under
/// __netlink_dump_start), which cost a thousand-namespace dump 57 % more kernel time for 19 % less wall
/// time in the C floor program (Benchmarks/dumpfloor.c). So a worker copies a namespace's answers out
/// undecoded while it holds the turn, and decodes them after passing it on, while the other worker asks.
public enum Inventory {
    public static func take(_ namespaces: [NamespaceHandle], parts: InventoryParts, parallelism: Int = 2)
        throws(OperationError) -> [Result<NamespaceSnapshot, any Error>]
    {
        let turn = KernelTurn()
        return try NamespaceThread.runEach(in: namespaces, parallelism: parallelism) { _, ns in
            try snapshot(ns, parts: parts, turn: turn)
        }
    }

    /// Reads one namespace; must run on a thread that has entered it (a `NamespaceThread` body).
    public static func snapshot(_ ns: NamespaceHandle, parts: InventoryParts, turn: KernelTurn? = nil) throws -> NamespaceSnapshot {
        let socket = try NetlinkSocket.open(label: ns.origin, dumpsOnly: true)
        let answers = try turn.hold { try read(parts, from: socket) }
        var names: [String]?
        if parts.contains(.interfaceNames) {
            names = try ProcNetDev.read().map(ProcNetDev.interfaceNames)
        }
        return NamespaceSnapshot(state: try answers.decoded(), cookie: socket.netnsCookie, interfaceNames: names)
    }

    /// Sends the dumps `parts` needs on `socket` and keeps their answers undecoded (`.interfaceNames` and
    /// `.statistics` are not dumps of their own).
    public static func read(_ parts: InventoryParts, from socket: NetlinkSocket) throws -> Answers {
        var answers = Answers()
        if parts.contains(.links) {
            answers.links = try socket.dumpUndecoded(LinkRequests.dump(statistics: parts.contains(.statistics)))
        }
        if parts.contains(.addresses) { answers.addresses = try socket.dumpUndecoded(AddressRequests.dump()) }
        if parts.contains(.routes) { answers.routes = try socket.dumpUndecoded(RouteRequests.dump()) }
        if parts.contains(.neighbours) { answers.neighbours = try socket.dumpUndecoded(NeighbourRequests.dump()) }
        if parts.contains(.fdb) { answers.fdb = try socket.dumpUndecoded(NeighbourRequests.fdbDump()) }
        if parts.contains(.rules) { answers.rules = try socket.dumpUndecoded(RuleRequests.dump()) }
        return answers
    }

    /// A namespace's dump answers as the kernel sent them (nil: not asked), decoded by `decoded()`.
    public struct Answers: Sendable {
        public var links, addresses, routes, neighbours, fdb, rules: [UInt8]?
        public init(links: [UInt8]? = nil) { self.links = links }

        /// The state the answers describe, decoded as `NetlinkSession`'s readers decode it.
        public func decoded() throws -> NamespaceState {
            func each<T>(_ bytes: [UInt8]?, _ decode: (NetlinkMessage) throws(DecodeError) -> T?) throws -> [T] {
                guard let bytes else { return [] }
                return try NetlinkMessage.split(bytes[...]).compactMap { message throws(DecodeError) in try decode(message) }
            }
            return NamespaceState(
                links: try each(links, Link.decode), addresses: try each(addresses, InterfaceAddress.decode),
                routes: try each(routes, Route.decode), neighbours: try each(neighbours, Neighbour.decode),
                fdb: try each(fdb, FDBEntry.decode),
                rules: try each(rules, Rule.decode).filter { $0.addressFamily != nil })
        }
    }
}

/// The right to talk to the kernel, taken by one `Inventory` worker at a time (see `Inventory`).
///
/// A plain pthread mutex: the waiter sleeps in FUTEX_WAIT. Swift's `Mutex` waits with FUTEX_LOCK_PI,
/// whose priority-inheritance path spins in the kernel (rt_mutex_slowlock_block), 4 % of a
/// thousand-namespace dump's kernel time.
public final class KernelTurn: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func hold<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

extension Optional where Wrapped == KernelTurn {
    /// Runs `body` holding the turn when there is one.
    func hold<T>(_ body: () throws -> T) throws -> T {
        switch self {
        case .some(let turn): try turn.hold(body)
        case .none: try body()
        }
    }
}

/// /proc/thread-self/net/dev: one line per interface of the calling thread's namespace,
/// `  eth0: 1234 56 …` after two header lines.
public enum ProcNetDev {
    /// Reads the file for the calling thread's namespace (nil if procfs does not have it).
    static func read() throws -> [UInt8]? {
        let fd = open("/proc/thread-self/net/dev", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    /// The interface names in the file's text, in the kernel's order.
    public static func interfaceNames(_ text: [UInt8]) -> [String] {
        var names: [String] = []
        for (i, line) in text.split(separator: UInt8(ascii: "\n")).enumerated() where i >= 2 {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = line[line.startIndex..<colon].drop { $0 == UInt8(ascii: " ") }
            if !name.isEmpty { names.append(String(decoding: name, as: UTF8.self)) }
        }
        return names
    }
}
