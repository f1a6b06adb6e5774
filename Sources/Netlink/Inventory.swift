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
    public static let all: InventoryParts = [.links, .addresses, .routes, .neighbours, .fdb, .rules]
}

/// One namespace's state as read over rtnetlink, with the cookie of the namespace the socket was in.
public struct NamespaceSnapshot: Sendable {
    public var state: NamespaceState
    /// SO_NETNS_COOKIE of the socket: the namespace's never-reused identity.
    public var cookie: UInt64?
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

    /// Reads one namespace; must run on a thread that has entered it.
    static func snapshot(_ ns: NamespaceHandle, parts: InventoryParts) throws -> NamespaceSnapshot {
        let session = NetlinkSession(socket: try NetlinkSocket.open(label: ns.origin))
        var state = NamespaceState()
        if parts.contains(.links) { state.links = try session.links() }
        if parts.contains(.addresses) { state.addresses = try session.addresses() }
        if parts.contains(.routes) { state.routes = try session.routes() }
        if parts.contains(.neighbours) { state.neighbours = try session.neighbours() }
        if parts.contains(.fdb) { state.fdb = try session.fdb() }
        if parts.contains(.rules) { state.rules = try session.rules() }
        var cookie: UInt64 = 0
        let hasCookie = nsi_socket_netns_cookie(session.socket.fileDescriptor, &cookie) == 0
        return NamespaceSnapshot(state: state, cookie: hasCookie ? cookie : nil)
    }
}
