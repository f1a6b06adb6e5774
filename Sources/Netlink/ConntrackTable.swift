#if canImport(Glibc)
import Glibc
#endif
import ProcNS

/// ctnetlink requests (IPCTNL_MSG_CT_GET), pure so they are tested against goldens.
public enum ConntrackRequests {
    /// struct nfgenmsg: the family (AF_UNSPEC for every family), NFNETLINK_V0, res_id 0 (big-endian).
    static func nfgenmsg(_ family: IPAddress.Family?) -> [UInt8] { [family?.rawValue ?? 0, 0, 0, 0] }

    /// `conntrack -L [-f ipv4|ipv6]`: a dump of the table; the kernel filters by family when one is given.
    public static func dump(family: IPAddress.Family? = nil) -> NetlinkRequest {
        var request = NetlinkRequest(type: CTNetlink.getMessage, flags: NLMsg.dump, name: "IPCTNL_MSG_CT_GET")
        request.append(raw: nfgenmsg(family))
        return request
    }

    /// `conntrack -G -s SRC -d DST -p PROTO --sport S --dport D [-w ZONE]`: the entry one tuple belongs to.
    /// The kernel finds it by its original or its reply tuple. TCP, UDP and the other port protocols need
    /// both ports; ICMP needs the id, type and code.
    public static func get(_ tuple: ConntrackTuple, zone: UInt16? = nil) -> NetlinkRequest {
        var request = NetlinkRequest(type: CTNetlink.getMessage, name: "IPCTNL_MSG_CT_GET")
        request.append(raw: nfgenmsg(tuple.family))
        request.beginNested(CTA.tupleOriginal)
        request.beginNested(CTA.tupleIP)
        let v6 = tuple.family == .v6
        request.attribute(v6 ? CTA.ipV6Source : CTA.ipV4Source, tuple.source.bytes)
        request.attribute(v6 ? CTA.ipV6Destination : CTA.ipV4Destination, tuple.destination.bytes)
        request.endNested()
        request.beginNested(CTA.tupleProto)
        request.attribute(CTA.protoNumber, u8: tuple.protocolNumber)
        if tuple.isICMP {
            request.attribute(v6 ? CTA.protoICMPv6ID : CTA.protoICMPID, big16(tuple.icmpID ?? 0))
            request.attribute(v6 ? CTA.protoICMPv6Type : CTA.protoICMPType, u8: tuple.icmpType ?? 8)
            request.attribute(v6 ? CTA.protoICMPv6Code : CTA.protoICMPCode, u8: tuple.icmpCode ?? 0)
        } else {
            request.attribute(CTA.protoSourcePort, big16(tuple.sourcePort ?? 0))
            request.attribute(CTA.protoDestinationPort, big16(tuple.destinationPort ?? 0))
        }
        request.endNested()
        request.endNested()
        if let zone { request.attribute(CTA.zone, big16(zone)) }
        return request
    }

    private static func big16(_ value: UInt16) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendNet16(value)
        return bytes
    }
}

/// Which entries a packet belongs to: a tuple whose fields may be left out (nil matches anything).
///
/// A packet is compared with both tuples of an entry, each as the kernel keys it (the packet before NAT)
/// and reversed-and-other-tuple (the packet after NAT): a packet seen on the outside of a NAT, with its
/// rewritten source, still finds the entry that rewrote it. This is the query `trace` asks of a namespace
/// whose hop rewrote a packet.
public struct ConntrackMatch: Sendable, Hashable {
    public var protocolNumber: UInt8?
    public var source: IPAddress?
    public var sourcePort: UInt16?
    public var destination: IPAddress?
    public var destinationPort: UInt16?

    public init(protocolNumber: UInt8? = nil, source: IPAddress? = nil, sourcePort: UInt16? = nil,
                destination: IPAddress? = nil, destinationPort: UInt16? = nil) {
        self.protocolNumber = protocolNumber
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
    }

    /// Matches exactly this tuple's addresses and ports (or ICMP id), in either direction, before or after NAT.
    public init(_ tuple: ConntrackTuple) {
        self.init(protocolNumber: tuple.protocolNumber, source: tuple.source,
                  sourcePort: tuple.isICMP ? tuple.icmpID : tuple.sourcePort, destination: tuple.destination,
                  destinationPort: tuple.isICMP ? nil : tuple.destinationPort)
    }

    public func matches(_ entry: ConntrackEntry) -> Bool {
        if let protocolNumber, protocolNumber != entry.protocolNumber { return false }
        return matches(entry.original) || matches(entry.reply) || matches(entry.original.reversed) || matches(entry.reply.reversed)
    }

    private func matches(_ tuple: ConntrackTuple) -> Bool {
        if let source, source != tuple.source { return false }
        if let destination, destination != tuple.destination { return false }
        // ICMP keeps its identifier on the source side of both tuples, so reversing never moves it.
        let ports = tuple.isICMP ? (tuple.icmpID, tuple.icmpID) : (tuple.sourcePort, tuple.destinationPort)
        if let sourcePort, sourcePort != ports.0 { return false }
        if let destinationPort, !tuple.isICMP, destinationPort != ports.1 { return false }
        return true
    }
}

/// The conntrack table of one namespace, over a netfilter netlink socket opened inside it. Reading only:
/// `conntrack -L`, `-G` and the query `trace` needs. Not for use from two threads at once.
public final class ConntrackTable: @unchecked Sendable {
    public let socket: NetlinkSocket

    public init(socket: NetlinkSocket) { self.socket = socket }

    /// A socket inside `namespace` (it stays bound there).
    public convenience init(in namespace: NamespaceHandle, label: String? = nil) throws {
        self.init(socket: try Self.socket(in: namespace, label: label))
    }

    /// A netfilter netlink socket inside `namespace`; a kernel without NETLINK_NETFILTER is said in words.
    static func socket(in namespace: NamespaceHandle, label: String?) throws -> NetlinkSocket {
        do {
            return try NetlinkSocket.open(in: namespace, protocol: CTNetlink.netlinkProtocol, label: label)
        } catch let error as OperationError where error.errno == Errno(EPROTONOSUPPORT) {
            throw OperationError("conntrack", label ?? namespace.origin, "this kernel has no netfilter netlink (NETLINK_NETFILTER)")
        }
    }

    /// A request to a kernel without nf_conntrack_netlink fails EOPNOTSUPP: said in words.
    private func explained<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as NetlinkError where error.errno == EOPNOTSUPP {
            throw OperationError("conntrack", label, "this kernel has no conntrack netlink interface (nf_conntrack_netlink)")
        }
    }

    public var label: String { socket.label }

    /// `conntrack -L`, streamed: `body` sees each entry as soon as its datagram is decoded, and nothing is
    /// kept, so a table of any size is read in the memory of one datagram. ctnetlink does not flag its dumps
    /// NLM_F_DUMP_INTR; if a kernel ever did, this throws rather than hand `body` entries twice.
    public func forEach(family: IPAddress.Family? = nil, _ body: (ConntrackEntry) throws -> Void) throws {
        let request = ConntrackRequests.dump(family: family)
        let _: [Never] = try explained { try socket.dump(request) { message in
            if message.flags & NLMsg.dumpInterrupted != 0 {
                throw OperationError("", socket.label, "\(request.name): the kernel interrupted the dump (NLM_F_DUMP_INTR); run it again")
            }
            if let entry = try ConntrackEntry.decode(message) { try body(entry) }
            return nil
        } }
    }

    /// Every entry (`conntrack -L [-f FAMILY]`).
    public func entries(family: IPAddress.Family? = nil) throws -> [ConntrackEntry] {
        try explained { try socket.dump(ConntrackRequests.dump(family: family), decode: ConntrackEntry.decode) }
    }

    /// The entries a packet with these fields belongs to, in either direction, before or after NAT.
    public func entries(matching match: ConntrackMatch) throws -> [ConntrackEntry] {
        try entries(matchingAny: [match])
    }

    /// The entries that match any of `matches`, from one dump.
    public func entries(matchingAny matches: [ConntrackMatch]) throws -> [ConntrackEntry] {
        var found: [ConntrackEntry] = []
        try forEach { entry in
            if matches.contains(where: { $0.matches(entry) }) { found.append(entry) }
        }
        return found
    }

    /// `conntrack -G`: the entry whose original or reply tuple is `tuple` (exactly, in the kernel's hash
    /// table), nil when there is none.
    public func entry(_ tuple: ConntrackTuple, zone: UInt16? = nil) throws -> ConntrackEntry? {
        do {
            return try explained { try socket.transact(ConntrackRequests.get(tuple, zone: zone), decode: ConntrackEntry.decode).first }
        } catch let error as NetlinkError where error.errno == Errno.ENOENT.code {
            return nil
        }
    }
}
