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
}

/// Reads many namespaces in one process: each is entered on a worker thread only long enough to open a
/// route socket there (it stays bound to that namespace), the dumps run on that socket, and the socket is
/// closed before the next namespace. Two workers share the list, since the kernel's work dominates.
public enum Inventory {
    public static func take(_ namespaces: [NamespaceHandle], parts: InventoryParts, parallelism: Int = 2)
        throws(OperationError) -> [Result<NamespaceSnapshot, any Error>]
    {
        try NamespaceThread.runEach(in: namespaces, parallelism: parallelism) { _, ns in
            try snapshot(ns, parts: parts)
        }
    }

    /// Reads one namespace; must run on a thread that has entered it (a `NamespaceThread` body).
    public static func snapshot(_ ns: NamespaceHandle, parts: InventoryParts) throws -> NamespaceSnapshot {
        let session = NetlinkSession(socket: try NetlinkSocket.open(label: ns.origin))
        var state = NamespaceState()
        if parts.contains(.links) { state.links = try session.links(statistics: parts.contains(.statistics)) }
        if parts.contains(.addresses) { state.addresses = try session.addresses() }
        if parts.contains(.routes) { state.routes = try session.routes() }
        if parts.contains(.neighbours) { state.neighbours = try session.neighbours() }
        if parts.contains(.fdb) { state.fdb = try session.fdb() }
        if parts.contains(.rules) { state.rules = try session.rules() }
        var cookie: UInt64 = 0
        let hasCookie = nsi_socket_netns_cookie(session.socket.fileDescriptor, &cookie) == 0
        var names: [String]?
        if parts.contains(.interfaceNames) {
            names = try ProcNetDev.read().map(ProcNetDev.interfaceNames)
        }
        return NamespaceSnapshot(state: state, cookie: hasCookie ? cookie : nil, interfaceNames: names)
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
