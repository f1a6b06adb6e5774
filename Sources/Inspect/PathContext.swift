import NetAddress
import Netlink
import ProcNS

/// Everything a path prediction needs: the census, the wiring of every namespace (one link dump each),
/// and the full tables and forwarding sysctls of the namespaces a walk visits, read when first needed.
public final class PathContext {
    public let open: OpenNamespaces
    public let wiring: Wiring
    private var states: [Int: NamespaceState] = [:]
    private var forwardingCache: [String: Bool] = [:]

    public init(census: Census) throws {
        open = OpenNamespaces(census)
        var links: [[Link]] = []
        for result in try open.snapshots(.links) {
            links.append((try? result.get().state.links) ?? [])
        }
        wiring = open.wiringWithSwitches(links)
    }

    public func state(_ i: Int) -> NamespaceState? {
        if let known = states[i] { return known }
        guard let state = try? NetlinkSession(in: open.handles[i], label: open.labels[i]).snapshot() else { return nil }
        states[i] = state
        return state
    }

    public func forwarding(_ i: Int, _ family: IPAddress.Family) -> Bool {
        let key = family == .v4 ? "net.ipv4.ip_forward" : "net.ipv6.conf.all.forwarding"
        if let known = forwardingCache["\(i)/\(key)"] { return known }
        let value = (try? Sysctl.read(key, in: open.handles[i])) == "1"
        forwardingCache["\(i)/\(key)"] = value
        return value
    }

    public var predictor: PathPredictor {
        PathPredictor(wiring: wiring, state: { [unowned self] in self.state($0) }, forwarding: { [unowned self] in self.forwarding($0, $1) })
    }

    /// The index of the namespace a reference names.
    public func index(of reference: String, operation: String) throws -> Int {
        let ns = try open.census.select(NamespaceReference.parse(reference))
        guard let i = open.index(of: ns.id.inode) else { throw OperationError(operation, reference, "namespace is gone") }
        return i
    }

    /// A destination: an address as given, or a namespace's first global address (IPv4 first, unless
    /// `family` asks for IPv6). Returns the namespace too when the target names one.
    public func destination(_ target: String, family: IPAddress.Family?, operation: String) throws -> (IPAddress, Int?) {
        if let address = IPAddress(target) { return (address, nil) }
        let i = try index(of: target, operation: operation)
        guard let state = state(i) else { throw OperationError(operation, target, "cannot read its addresses") }
        let global = state.addresses.filter { $0.scope == 0 }.compactMap { $0.local ?? $0.address }
        let ordered = family == .v6 ? global.filter { $0.family == .v6 } : (family == .v4 ? global.filter { $0.family == .v4 }
            : global.filter { $0.family == .v4 } + global.filter { $0.family == .v6 })
        guard let first = ordered.first else {
            throw OperationError(operation, target, "has no global \(family == .v6 ? "IPv6 " : family == .v4 ? "IPv4 " : "")address to send to")
        }
        return (first, i)
    }
}
