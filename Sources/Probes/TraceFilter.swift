import NetAddress
import CShim
import ProcNS

/// Which packets the kernel side reports: the namespaces of interest and a packet match. It becomes the
/// read-only `nsi_cfg` of bpf/trace.bpf.c (`encoded()`) and the contents of its `nsi_netns` map, both set
/// before the programs attach, so nothing else is ever copied out of the kernel.
public struct TraceFilter: Equatable, Sendable {
    /// Namespace inodes of interest; empty: every namespace.
    public var namespaces: Set<UInt32>
    public var match: PacketMatch
    /// Bytes of each packet to copy into the event for pcapng (0 … 128, from the network header).
    public var snapLength: Int

    public init(namespaces: Set<UInt32> = [], match: PacketMatch = .all, snapLength: Int = Int(NSI_SNAP_LEN)) {
        self.namespaces = namespaces
        self.match = match
        self.snapLength = snapLength
    }

    /// From namespace identities (the BPF side knows only the 32-bit inode, `ns.inum`).
    public init(namespaces: [NamespaceID], match: PacketMatch = .all, snapLength: Int = Int(NSI_SNAP_LEN)) {
        self.init(namespaces: Set(namespaces.map { UInt32(truncatingIfNeeded: $0.inode) }), match: match,
                  snapLength: snapLength)
    }

    /// The `struct nsi_config` the BPF programs read.
    public func encoded() throws(OperationError) -> nsi_config {
        var config = nsi_config()
        if !namespaces.isEmpty { config.flags |= NSI_CF_NETNS.rawValue }
        config.snap_len = UInt16(max(0, min(snapLength, Int(NSI_SNAP_LEN))))
        try match.encode(into: &config)
        return config
    }
}

/// The packet match (enum nsi_match). Every form also lets through the ICMP errors that quote a matching
/// packet, so a "time exceeded" or "unreachable" is seen with the probe it answers.
public enum PacketMatch: Equatable, Sendable {
    /// Every packet of the namespaces of interest.
    case all
    /// An active ICMP probe: echo requests and replies with this id (ICMP or ICMPv6), and errors quoting
    /// them; with `hosts`, one (or two) of the echo's addresses must be among them.
    case icmpEcho(id: UInt16, hosts: [IPAddress] = [])
    /// An active UDP or TCP probe: this 5-tuple in either direction; nil fields match anything (a source
    /// address or port not known yet).
    case flow(FlowIdentity)
    /// Passive tracing with an optional filter on each field.
    case passive(PassiveFilter)

    func encode(into config: inout nsi_config) throws(OperationError) {
        switch self {
        case .all:
            config.match = UInt8(NSI_MATCH_ALL.rawValue)
        case .icmpEcho(let id, let hosts):
            guard hosts.count <= 2 else { throw OperationError("trace", "filter", "at most two hosts") }
            config.match = UInt8(NSI_MATCH_ICMP_ECHO.rawValue)
            config.icmp_id = id
            config.setAddresses(hosts.first, hosts.dropFirst().first)
        case .flow(let flow):
            guard flow.proto == PacketHeaders.udp || flow.proto == PacketHeaders.tcp else {
                throw OperationError("trace", "filter", "a flow probe is UDP or TCP (protocol \(flow.proto))")
            }
            config.match = UInt8(NSI_MATCH_FLOW.rawValue)
            config.set(\.protocol, flow.proto, NSI_CF_PROTOCOL)
            config.setAddresses(flow.source, flow.destination)
            config.set(\.port_a, flow.sourcePort, NSI_CF_PORT_A)
            config.set(\.port_b, flow.destinationPort, NSI_CF_PORT_B)
        case .passive(let filter):
            guard filter.hosts.count <= 2 else { throw OperationError("trace", "filter", "at most two hosts") }
            config.match = UInt8(NSI_MATCH_PASSIVE.rawValue)
            config.set(\.protocol, filter.proto, NSI_CF_PROTOCOL)
            config.setAddresses(filter.hosts.first, filter.hosts.dropFirst().first)
            config.set(\.port_a, filter.port, NSI_CF_PORT_A)
            config.set(\.icmp_id, filter.icmpID, NSI_CF_ICMP_ID)
        }
    }
}

/// A UDP or TCP probe's identity; `source` → `destination` is the probe's direction, replies match too.
public struct FlowIdentity: Equatable, Sendable {
    public var proto: UInt8
    public var source: IPAddress?
    public var sourcePort: UInt16?
    public var destination: IPAddress?
    public var destinationPort: UInt16?

    public init(proto: UInt8, source: IPAddress? = nil, sourcePort: UInt16? = nil,
                destination: IPAddress? = nil, destinationPort: UInt16? = nil) {
        self.proto = proto
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
    }
}

/// `--passive --filter`: each field optional; a packet must match every field given.
public struct PassiveFilter: Equatable, Sendable {
    public var proto: UInt8?
    /// Up to two hosts; each must be the packet's source or destination.
    public var hosts: [IPAddress]
    /// Either port.
    public var port: UInt16?
    /// An ICMP echo id.
    public var icmpID: UInt16?

    public init(proto: UInt8? = nil, hosts: [IPAddress] = [], port: UInt16? = nil, icmpID: UInt16? = nil) {
        self.proto = proto
        self.hosts = hosts
        self.port = port
        self.icmpID = icmpID
    }
}

extension nsi_config {
    /// Sets a field and the flag that says it is set; nil leaves both alone (a wildcard).
    fileprivate mutating func set<T>(_ field: WritableKeyPath<nsi_config, T>, _ value: T?, _ flag: nsi_config_flags) {
        guard let value else { return }
        self[keyPath: field] = value
        flags |= flag.rawValue
    }

    /// Sets addr_a / addr_b with their versions and flags.
    fileprivate mutating func setAddresses(_ a: IPAddress?, _ b: IPAddress?) {
        if let a {
            withUnsafeMutableBytes(of: &addr_a) { $0.copyBytes(from: a.bytes) }
            addr_a_version = a.version
            flags |= NSI_CF_ADDR_A.rawValue
        }
        if let b {
            withUnsafeMutableBytes(of: &addr_b) { $0.copyBytes(from: b.bytes) }
            addr_b_version = b.version
            flags |= NSI_CF_ADDR_B.rawValue
        }
    }
}
