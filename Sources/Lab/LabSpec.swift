import Synchronization
import Netlink

/// A lab as a lab file describes it (docs/lab-format.md): namespaces, the links and bridges between them,
/// what is configured inside each, and what `lab test` checks. Read from our schema or from pyns2's
/// (`LabFile`), checked by `problems()`, turned into build steps by `LabPlan.make`.
///
/// Every element keeps the position it was written at, for error messages; equality ignores positions.
public struct LabSpec: Hashable, Sendable {
    public var name: String
    public var namePosition: SourcePosition
    /// What the lab configures in the host namespace (forwarding, routes, NAT); the host itself is not made.
    public var host: LabNamespace
    /// The namespaces the lab makes, in file order.
    public var namespaces: [LabNamespace] { didSet { index = LabSpecIndex() } }
    public var veths: [LabVeth] { didSet { index = LabSpecIndex() } }
    public var bridges: [LabBridge] { didSet { index = LabSpecIndex() } }
    public var expectations: [LabExpectation]
    /// Lookups by place and by interface, built on first use and dropped by any change to what they index:
    /// the validator and the planner ask them once per namespace and per interface, which for a lab of a
    /// thousand namespaces would otherwise be a million array copies.
    private var index = LabSpecIndex()

    public init(
        name: String, namePosition: SourcePosition = .unknown, host: LabNamespace = LabNamespace(place: .host),
        namespaces: [LabNamespace] = [], veths: [LabVeth] = [], bridges: [LabBridge] = [],
        expectations: [LabExpectation] = []
    ) {
        self.name = name
        self.namePosition = namePosition
        self.host = host
        self.namespaces = namespaces
        self.veths = veths
        self.bridges = bridges
        self.expectations = expectations
    }

    /// The mark the lab leaves on what it creates (IFLA_IFALIAS of each namespace's `lo` and of each link
    /// it creates in the host), so `down` removes only what this lab made.
    public var ownerMark: String { "nsinspect-lab:" + name }

    /// The host and the lab's namespaces, in that order.
    public var allNamespaces: [LabNamespace] { [host] + namespaces }

    public func namespace(_ place: LabPlace) -> LabNamespace? {
        place == .host ? host : index.tables(self).namespaces[place].map { namespaces[$0] }
    }

    /// Every interface the lab creates: veth ends (each link's `a` then `b`, in file order), then bridges.
    public var interfaces: [LabInterface] { index.tables(self).interfaces }

    public func interfaces(in place: LabPlace) -> [LabInterface] {
        let tables = index.tables(self)
        return (tables.byPlace[place] ?? []).map { tables.interfaces[$0] }
    }

    public func interface(_ ref: LabInterfaceRef) -> LabInterface? {
        let tables = index.tables(self)
        return tables.byRef[ref].map { tables.interfaces[$0] }
    }

    /// What an expectation's `to: NAMESPACE` means: the first address (in the order of `interfaces`) of
    /// that namespace that is neither loopback, link-local nor multicast.
    public func firstGlobalAddress(of place: LabPlace) -> IPAddress? {
        interfaces(in: place).lazy.flatMap(\.addresses).map(\.prefix.address)
            .first { !$0.isLoopback && !$0.isLinkLocal && !$0.isMulticast }
    }

    /// The namespace (or host) that has `address` on one of the lab's interfaces.
    public func place(owning address: IPAddress) -> LabPlace? {
        interfaces.first { $0.addresses.contains { $0.prefix.address == address } }?.ref.place
    }

    /// The address an expectation sends to.
    public func address(of target: LabTarget) -> IPAddress? {
        switch target {
        case .address(let address): address
        case .place(let place): firstGlobalAddress(of: place)
        }
    }
}

/// Where something is: the host namespace or one of the lab's namespaces (by name).
public enum LabPlace: Hashable, Sendable, CustomStringConvertible {
    case host
    case namespace(String)

    /// `host` is the host; anything else names a namespace.
    public init(_ name: String) { self = name == "host" ? .host : .namespace(name) }

    public var description: String {
        switch self {
        case .host: "host"
        case .namespace(let name): name
        }
    }
}

/// An interface by namespace and name, written `NS:IFNAME` (`host:br0`, `router1:e1`).
public struct LabInterfaceRef: Hashable, Sendable, CustomStringConvertible {
    public var place: LabPlace
    public var name: String

    public init(_ place: LabPlace, _ name: String) {
        self.place = place
        self.name = name
    }

    public var description: String { "\(place):\(name)" }
}

/// An interface address with its prefix length (`10.0.1.10/24`).
public struct LabAddress: Hashable, Sendable, CustomStringConvertible {
    public var prefix: IPPrefix
    public var position: SourcePosition

    public init(_ prefix: IPPrefix, position: SourcePosition = .unknown) {
        self.prefix = prefix
        self.position = position
    }

    public var description: String { prefix.description }
}

/// An interface the lab creates (a veth end or a bridge) and what is set on it.
public struct LabInterface: Hashable, Sendable {
    public var ref: LabInterfaceRef
    public var addresses: [LabAddress]
    public var mac: MACAddress?
    public var mtu: Int?
    /// Set the link up (default); `up: false` leaves it down.
    public var up: Bool
    public var position: SourcePosition

    public init(
        _ ref: LabInterfaceRef, addresses: [LabAddress] = [], mac: MACAddress? = nil, mtu: Int? = nil,
        up: Bool = true, position: SourcePosition = .unknown
    ) {
        self.ref = ref
        self.addresses = addresses
        self.mac = mac
        self.mtu = mtu
        self.up = up
        self.position = position
    }
}

/// A veth pair; each end is in a lab namespace or in the host.
public struct LabVeth: Hashable, Sendable {
    public var a: LabInterface
    public var b: LabInterface
    public var position: SourcePosition

    public init(a: LabInterface, b: LabInterface, position: SourcePosition = .unknown) {
        self.a = a
        self.b = b
        self.position = position
    }
}

/// A bridge and the interfaces of its namespace that are its ports.
public struct LabBridge: Hashable, Sendable {
    public var interface: LabInterface
    public var ports: [LabName]

    public init(_ interface: LabInterface, ports: [LabName] = []) {
        self.interface = interface
        self.ports = ports
    }
}

/// A name with the position it was written at (a bridge port, an interface in a rule).
public struct LabName: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var position: SourcePosition

    public init(_ name: String, position: SourcePosition = .unknown) {
        self.name = name
        self.position = position
    }

    public var description: String { name }
}

/// What a lab configures inside one namespace (or in the host).
public struct LabNamespace: Hashable, Sendable {
    public var place: LabPlace
    /// Set `lo` up (default); ignored for the host.
    public var loopback: Bool
    public var forwarding: LabForwarding
    public var sysctls: [LabSysctl]
    public var routes: [LabRoute]
    public var nat: [LabNATRule]
    public var filter: LabFilter
    /// nftables text placed inside the lab's table in this namespace (chains, sets, rules).
    public var nftables: String?
    public var position: SourcePosition

    public init(
        place: LabPlace, loopback: Bool = true, forwarding: LabForwarding = .off, sysctls: [LabSysctl] = [],
        routes: [LabRoute] = [], nat: [LabNATRule] = [], filter: LabFilter = LabFilter(), nftables: String? = nil,
        position: SourcePosition = .unknown
    ) {
        self.place = place
        self.loopback = loopback
        self.forwarding = forwarding
        self.sysctls = sysctls
        self.routes = routes
        self.nat = nat
        self.filter = filter
        self.nftables = nftables
        self.position = position
    }

    /// Whether the namespace needs an nftables table.
    public var hasRules: Bool { !nat.isEmpty || !filter.isEmpty || nftables != nil }

    /// The one-word NAT type configured here, if any.
    public var natBox: LabNATBox? {
        for rule in nat { if case .natType(let box) = rule.kind { return box } }
        return nil
    }

    /// The sysctls to set, in order: forwarding first, then the `sysctls:` entries.
    public var effectiveSysctls: [LabSysctl] {
        var out: [LabSysctl] = []
        if forwarding.ipv4 { out.append(LabSysctl(key: LabForwarding.ipv4Key, value: "1", position: forwarding.position)) }
        if forwarding.ipv6 { out.append(LabSysctl(key: LabForwarding.ipv6Key, value: "1", position: forwarding.position)) }
        return out + sysctls
    }
}

/// `forwarding: true | ipv4 | ipv6 | false`.
public struct LabForwarding: Hashable, Sendable {
    public var ipv4: Bool
    public var ipv6: Bool
    public var position: SourcePosition

    public init(ipv4: Bool, ipv6: Bool, position: SourcePosition = .unknown) {
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.position = position
    }

    public static let off = LabForwarding(ipv4: false, ipv6: false)
    static let ipv4Key = "net.ipv4.ip_forward"
    static let ipv6Key = "net.ipv6.conf.all.forwarding"
}

public struct LabSysctl: Hashable, Sendable {
    /// Dotted, as `sysctl` writes it: `net.ipv4.conf.all.rp_filter`.
    public var key: String
    public var value: String
    public var position: SourcePosition

    public init(key: String, value: String, position: SourcePosition = .unknown) {
        self.key = key
        self.value = value
        self.position = position
    }
}

/// A route, as `ip route add` takes it.
public struct LabRoute: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        case unicast, blackhole, unreachable, prohibit
    }

    public var kind: Kind
    /// 0.0.0.0/0 or ::/0 for `default`.
    public var destination: IPPrefix
    public var gateway: IPAddress?
    public var device: String?
    public var metric: UInt32?
    public var onlink: Bool
    public var position: SourcePosition

    public init(
        _ kind: Kind = .unicast, to destination: IPPrefix, via gateway: IPAddress? = nil, dev device: String? = nil,
        metric: UInt32? = nil, onlink: Bool = false, position: SourcePosition = .unknown
    ) {
        self.kind = kind
        self.destination = destination
        self.gateway = gateway
        self.device = device
        self.metric = metric
        self.onlink = onlink
        self.position = position
    }

    /// In `ip route` syntax, which the lab file also accepts: `default via 10.0.1.1 dev eth0 metric 10`.
    public var description: String {
        var words: [String] = kind == .unicast ? [] : [kind.rawValue]
        words.append(destination.length == 0 && (gateway != nil || destination.family == .v4) ? "default" : destination.description)
        if let gateway { words += ["via", gateway.description] }
        if let device { words += ["dev", device] }
        if let metric { words += ["metric", String(metric)] }
        if onlink { words.append("onlink") }
        return words.joined(separator: " ")
    }
}

/// The transport protocols rules can match.
public enum LabProtocol: String, Hashable, Sendable, CaseIterable {
    case tcp, udp, icmp, icmpv6

    public var hasPorts: Bool { self == .tcp || self == .udp }
}

/// What a NAT or filter rule matches; nil fields match anything.
public struct LabMatch: Hashable, Sendable {
    public enum ConnectionState: String, Hashable, Sendable, CaseIterable {
        case new, established, related, invalid, untracked
    }
    public enum ConnectionStatus: String, Hashable, Sendable, CaseIterable {
        case snat, dnat
    }

    public var inInterface: LabName?
    public var outInterface: LabName?
    public var source: IPPrefix?
    public var destination: IPPrefix?
    public var proto: LabProtocol?
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    public var state: [ConnectionState]
    public var status: [ConnectionStatus]

    public init(
        in inInterface: LabName? = nil, out outInterface: LabName? = nil, source: IPPrefix? = nil,
        destination: IPPrefix? = nil, proto: LabProtocol? = nil, sourcePort: UInt16? = nil,
        destinationPort: UInt16? = nil, state: [ConnectionState] = [], status: [ConnectionStatus] = []
    ) {
        self.inInterface = inInterface
        self.outInterface = outInterface
        self.source = source
        self.destination = destination
        self.proto = proto
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.state = state
        self.status = status
    }
}

/// Where SNAT or DNAT sends a packet: an address and, optionally, a port (`10.0.1.1:12345`, `[fd00::1]:80`).
public struct LabNATTarget: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16?

    public init(_ address: IPAddress, port: UInt16? = nil) {
        self.address = address
        self.port = port
    }

    public var description: String {
        guard let port else { return address.description }
        return address.family == .v4 ? "\(address):\(port)" : "[\(address)]:\(port)"
    }
}

/// The four classic NAT types, in RFC 4787 terms.
public enum NATType: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Endpoint-independent mapping and filtering.
    case fullCone = "full-cone"
    /// Endpoint-independent mapping, address-dependent filtering.
    case restrictedCone = "restricted-cone"
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    case portRestrictedCone = "port-restricted-cone"
    /// Address-and-port-dependent mapping (and filtering).
    case symmetric

    public var description: String { rawValue }
}

/// A NAT namespace set up as one of the four NAT types: the inside host's `host-port` appears outside as
/// `address:port` (the cones), or as a new port per destination (symmetric).
public struct LabNATBox: Hashable, Sendable {
    public var type: NATType
    /// The interface towards the inside host.
    public var inside: LabName
    /// The inside host; for symmetric, nil means every network of `inside`.
    public var host: IPAddress?
    /// The inside host's port the mapped port leads to (cones; defaults to `port`).
    public var hostPort: UInt16?
    /// The interface towards the outside.
    public var outside: LabName
    /// The outside address; nil means the first IPv4 address of `outside`.
    public var address: IPAddress?
    /// The mapped port (cones).
    public var port: UInt16?
    public var proto: LabProtocol

    public init(
        _ type: NATType, inside: LabName, host: IPAddress? = nil, hostPort: UInt16? = nil, outside: LabName,
        address: IPAddress? = nil, port: UInt16? = nil, proto: LabProtocol = .udp
    ) {
        self.type = type
        self.inside = inside
        self.host = host
        self.hostPort = hostPort
        self.outside = outside
        self.address = address
        self.port = port
        self.proto = proto
    }
}

/// One entry of a namespace's `nat:` list.
public struct LabNATRule: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case masquerade(random: Bool)
        case snat(to: LabNATTarget)
        case dnat(to: LabNATTarget)
        /// A one-word NAT type; its rules come from `LabNATBox`, `match` is unused.
        case natType(LabNATBox)
    }

    public var kind: Kind
    public var match: LabMatch
    public var position: SourcePosition

    public init(_ kind: Kind, match: LabMatch = LabMatch(), position: SourcePosition = .unknown) {
        self.kind = kind
        self.match = match
        self.position = position
    }
}

/// A namespace's `filter:`: chain policies and accept/drop/reject rules.
public struct LabFilter: Hashable, Sendable {
    public enum Chain: String, Hashable, Sendable, CaseIterable { case input, forward, output }
    public enum Verdict: String, Hashable, Sendable, CaseIterable { case accept, drop, reject }

    /// Policies set in the file; a chain without one accepts, unless a NAT type makes it drop.
    public var policies: [Chain: Verdict]
    public var rules: [LabFilterRule]

    public init(policies: [Chain: Verdict] = [:], rules: [LabFilterRule] = []) {
        self.policies = policies
        self.rules = rules
    }

    public var isEmpty: Bool { policies.isEmpty && rules.isEmpty }
}

public struct LabFilterRule: Hashable, Sendable {
    public var chain: LabFilter.Chain
    public var verdict: LabFilter.Verdict
    public var match: LabMatch
    public var position: SourcePosition

    public init(_ verdict: LabFilter.Verdict, chain: LabFilter.Chain, match: LabMatch = LabMatch(), position: SourcePosition = .unknown) {
        self.chain = chain
        self.verdict = verdict
        self.match = match
        self.position = position
    }
}

/// Where an expectation sends to: an address, or a namespace (its first global address).
public enum LabTarget: Hashable, Sendable, CustomStringConvertible {
    case address(IPAddress)
    case place(LabPlace)

    public var description: String {
        switch self {
        case .address(let address): address.description
        case .place(let place): place.description
        }
    }
}

/// A probe: from a namespace to a target; ICMP echo unless `udp` is set.
public struct LabProbe: Hashable, Sendable {
    public var from: LabPlace
    public var to: LabTarget
    public var udp: LabUDPProbe?

    public init(from: LabPlace, to: LabTarget, udp: LabUDPProbe? = nil) {
        self.from = from
        self.to = to
        self.udp = udp
    }
}

/// A UDP datagram to `port`, which must (or must not) arrive at a socket in `listener` bound to
/// `listenerPort` (defaults: the namespace `to` names, and `port`).
public struct LabUDPProbe: Hashable, Sendable {
    public var port: UInt16
    public var sourcePort: UInt16?
    public var listener: LabPlace?
    public var listenerPort: UInt16?

    public init(port: UInt16, sourcePort: UInt16? = nil, listener: LabPlace? = nil, listenerPort: UInt16? = nil) {
        self.port = port
        self.sourcePort = sourcePort
        self.listener = listener
        self.listenerPort = listenerPort
    }
}

/// `nat: {ns, type}`: what a measurement (natcheck) must classify the NAT in `namespace` as.
public struct LabNATExpectation: Hashable, Sendable {
    public var namespace: LabPlace
    public var type: NATType
    /// The namespaces to probe from; nil lets the tester choose.
    public var inside: LabPlace?
    public var outside: LabPlace?
    public var insidePort: UInt16?

    public init(namespace: LabPlace, type: NATType, inside: LabPlace? = nil, outside: LabPlace? = nil, insidePort: UInt16? = nil) {
        self.namespace = namespace
        self.type = type
        self.inside = inside
        self.outside = outside
        self.insidePort = insidePort
    }
}

/// One entry of `expect:`, checked by `lab test` in file order.
public struct LabExpectation: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case reach(LabProbe)
        case unreachable(LabProbe)
        /// The TTL (hop limit) of the echo reply equals `equals`.
        case ttl(LabProbe, equals: Int)
        /// Routed hops, from the echo reply's TTL, equal `equals`.
        case hops(LabProbe, equals: Int)
        case nat(LabNATExpectation)
    }

    public var kind: Kind
    public var position: SourcePosition

    public init(_ kind: Kind, position: SourcePosition = .unknown) {
        self.kind = kind
        self.position = position
    }

    public var probe: LabProbe? {
        switch kind {
        case .reach(let p), .unreachable(let p), .ttl(let p, _), .hops(let p, _): p
        case .nat: nil
        }
    }
}

/// LabSpec's lookup tables, built once per version of the spec. A reference type so a non-mutating
/// accessor can fill it; a changed spec gets a new, empty one. Equal to every other index, so it takes
/// no part in comparing or hashing specs.
final class LabSpecIndex: Hashable, Sendable {
    struct Tables: Sendable {
        var interfaces: [LabInterface] = []
        /// Positions in `interfaces`, in order.
        var byPlace: [LabPlace: [Int]] = [:]
        /// The first interface with each reference (duplicates are the validator's business).
        var byRef: [LabInterfaceRef: Int] = [:]
        /// Position of each namespace in `namespaces` (the first, if a name repeats).
        var namespaces: [LabPlace: Int] = [:]
    }

    private let tables = Mutex<Tables?>(nil)

    func tables(_ spec: LabSpec) -> Tables {
        tables.withLock { cached in
            if let cached { return cached }
            var t = Tables()
            t.interfaces = spec.veths.flatMap { [$0.a, $0.b] } + spec.bridges.map(\.interface)
            for (i, interface) in t.interfaces.enumerated() {
                t.byPlace[interface.ref.place, default: []].append(i)
                if t.byRef[interface.ref] == nil { t.byRef[interface.ref] = i }
            }
            for (i, ns) in spec.namespaces.enumerated() where t.namespaces[ns.place] == nil { t.namespaces[ns.place] = i }
            cached = t
            return t
        }
    }

    static func == (a: LabSpecIndex, b: LabSpecIndex) -> Bool { true }
    func hash(into hasher: inout Hasher) {}
}
