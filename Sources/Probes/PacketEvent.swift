#if canImport(Glibc)
import Glibc
#endif
import CShim
import NetAddress
import ProcNS

/// Where in the kernel an event was seen (enum nsi_hook), with the tracepoint behind it.
public enum Hook: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case transmit = 1      // NSI_HOOK_XMIT
    case receive = 2       // NSI_HOOK_RECV
    case drop = 3          // NSI_HOOK_DROP
    case routeLookup = 4   // NSI_HOOK_FIB
    case routeLookup6 = 5  // NSI_HOOK_FIB6
    case icmpSend = 6      // NSI_HOOK_ICMP_SEND
    case neighbour = 7     // NSI_HOOK_NEIGH
    case tcxIngress = 8    // NSI_HOOK_TCX_INGRESS: one interface, chosen with ProbeSession.Options.interfaces
    case tcxEgress = 9     // NSI_HOOK_TCX_EGRESS

    /// The hooks on tracepoints (every interface of every namespace, filtered in the kernel).
    public static let tracepointHooks: [Hook] = allCases.filter { $0.tracepoint != nil }

    /// The hook sees the packet itself (as opposed to a route lookup, an ICMP error or a neighbour
    /// update made about it).
    public var carriesPacket: Bool {
        switch self {
        case .transmit, .receive, .drop, .tcxIngress, .tcxEgress: true
        case .routeLookup, .routeLookup6, .icmpSend, .neighbour: false
        }
    }

    /// The packet arrives on an interface (netif_receive_skb, tcx ingress).
    public var isArrival: Bool { self == .receive || self == .tcxIngress }
    /// The packet leaves by an interface (net_dev_start_xmit, tcx egress).
    public var isDeparture: Bool { self == .transmit || self == .tcxEgress }

    /// The tracepoint (tp_btf/<name>); nil for the per-interface tcx hooks.
    public var tracepoint: String? {
        switch self {
        case .transmit: "net_dev_start_xmit"
        case .receive: "netif_receive_skb"
        case .drop: "kfree_skb"
        case .routeLookup: "fib_table_lookup"
        case .routeLookup6: "fib6_table_lookup"
        case .icmpSend: "icmp_send"
        case .neighbour: "neigh_update"
        case .tcxIngress, .tcxEgress: nil
        }
    }

    /// The BPF program in bpf/trace.bpf.c.
    public var programName: String {
        switch self {
        case .transmit: "nsi_xmit"
        case .receive: "nsi_recv"
        case .drop: "nsi_drop"
        case .routeLookup: "nsi_fib"
        case .routeLookup6: "nsi_fib6"
        case .icmpSend: "nsi_icmp_send"
        case .neighbour: "nsi_neigh"
        case .tcxIngress: "nsi_tcx_ingress"
        case .tcxEgress: "nsi_tcx_egress"
        }
    }

    /// Hooks a trace cannot do without; the others degrade with a warning when the kernel lacks them.
    public var isRequired: Bool { self == .transmit || self == .receive || self == .drop }

    /// Short names for output: xmit, recv, drop, fib, fib6, icmp_send, neigh, tcx_ingress, tcx_egress.
    public var description: String {
        switch self {
        case .transmit: "xmit"
        case .receive: "recv"
        case .drop: "drop"
        case .routeLookup: "fib"
        case .routeLookup6: "fib6"
        case .icmpSend: "icmp_send"
        case .neighbour: "neigh"
        case .tcxIngress: "tcx_ingress"
        case .tcxEgress: "tcx_egress"
        }
    }
}

extension IPAddress {
    /// From a 16-byte address field of an event (struct nsi_packet): the first 4 bytes for IPv4.
    init?<T>(field: T, version: UInt8) {
        guard version == 4 || version == 6, MemoryLayout<T>.size == 16 else { return nil }
        let words = withUnsafeBytes(of: field) { $0.loadUnaligned(as: (UInt64, UInt64).self) }
        self.init(high: UInt64(bigEndian: words.0), low: UInt64(bigEndian: words.1), family: version == 4 ? .v4 : .v6)
    }
}

/// The headers of one IP packet, parsed in the kernel (struct nsi_packet).
public struct PacketHeaders: Equatable, Sendable {
    public var version: UInt8
    public var proto: UInt8
    /// TTL or hop limit.
    public var ttl: UInt8
    public var tos: UInt8
    public var totalLength: UInt16
    public var ipID: UInt16
    public var source: IPAddress
    public var destination: IPAddress
    /// Whether the transport header was parsed (ports, ICMP, TCP flags below are meaningful).
    public var hasTransport: Bool
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var icmpType: UInt8
    public var icmpCode: UInt8
    /// Echo request/reply only.
    public var icmpID: UInt16
    public var icmpSequence: UInt16
    public var tcpFlags: UInt8

    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let icmpv6: UInt8 = 58

    public var isICMP: Bool { (version == 4 && proto == Self.icmp) || (version == 6 && proto == Self.icmpv6) }
    public var isEchoRequest: Bool { isICMP && hasTransport && icmpType == (version == 4 ? 8 : 128) }
    public var isEchoReply: Bool { isICMP && hasTransport && icmpType == (version == 4 ? 0 : 129) }

    init?(_ p: nsi_packet) {
        guard p.ip_version == 4 || p.ip_version == 6,
            let source = IPAddress(field: p.saddr, version: p.ip_version),
            let destination = IPAddress(field: p.daddr, version: p.ip_version)
        else { return nil }
        version = p.ip_version
        proto = p.protocol
        ttl = p.ttl
        tos = p.tos
        totalLength = p.total_length
        ipID = p.ip_id
        self.source = source
        self.destination = destination
        hasTransport = p.l4_valid != 0
        sourcePort = p.sport
        destinationPort = p.dport
        icmpType = p.icmp_type
        icmpCode = p.icmp_code
        icmpID = p.icmp_id
        icmpSequence = p.icmp_seq
        tcpFlags = p.tcp_flags
    }
}

/// A route lookup (fib_table_lookup / fib6_table_lookup): the table, the result and the chosen next hop.
public struct RouteLookup: Equatable, Sendable {
    public var table: UInt32
    /// 0, or a negative errno (-EAGAIN: no match in this table, try the next rule).
    public var error: Int32
    public var outputInterface: UInt32
    public var gateway: IPAddress?
    public var flowInputInterface: UInt32
    public var flowOutputInterface: UInt32
    /// IPv6 only: the route's RTN_* type.
    public var routeType: UInt8
    /// The lookup was tied to the packet last received on its CPU (`PacketEvent.skb` is that packet).
    public var tiedToPacket: Bool
}

/// A neighbour (ARP/NDP) entry change.
public struct NeighbourUpdate: Equatable, Sendable {
    public var address: IPAddress?
    public var linkAddress: [UInt8]
    public var oldState: UInt8
    public var newState: UInt8
    public var flags: UInt32
}

/// What only some hooks carry.
public enum EventDetail: Equatable, Sendable {
    case none
    /// kfree_skb: the kernel function that dropped it (an address for /proc/kallsyms).
    case drop(location: UInt64)
    case route(RouteLookup)
    /// icmp_send: the error the kernel sends back about this packet.
    case icmpSent(type: UInt8, code: UInt8)
    case neighbour(NeighbourUpdate)
}

/// One record of the ring buffer (struct nsi_event), decoded.
public struct PacketEvent: Equatable, Sendable {
    public var hook: Hook
    /// CLOCK_MONOTONIC nanoseconds.
    public var timestamp: UInt64
    /// The kernel address of the sk_buff: one packet, followed across veth crossings (0 when none).
    public var skb: UInt64
    /// The namespace inode (0 when unknown).
    public var netns: UInt32
    /// The namespace came from the packet's socket, not its device.
    public var netnsFromSocket: Bool
    public var ifindex: UInt32
    public var ifname: String
    /// kfree_skb's enum skb_drop_reason (name it with `DropReasons`).
    public var dropReason: UInt32
    public var mark: UInt32
    /// The packet's headers (nil for neighbour events and non-IP packets). For route lookups: the flow
    /// looked up (TTL 0).
    public var packet: PacketHeaders?
    /// ICMP errors: the header they quote, i.e. the packet they answer.
    public var quoted: PacketHeaders?
    public var detail: EventDetail
    /// The packet from its network header on (LINKTYPE_RAW), up to the configured snap length.
    public var snapshot: [UInt8]
    /// The packet's full length from the network header on.
    public var originalLength: UInt32

    /// Size of a record without packet bytes; a record is this plus its snap_len.
    public static let headerSize = MemoryLayout<nsi_event>.offset(of: \nsi_event.snap)!

    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case truncated(size: Int, needed: Int)
        case unknownHook(UInt8)

        public var description: String {
            switch self {
            case .truncated(let size, let needed): "event record truncated: \(size) bytes, needs \(needed)"
            case .unknownHook(let hook): "event record with unknown hook \(hook)"
            }
        }
    }

    /// Decodes one ring-buffer record. Short or inconsistent input is an error, never a crash.
    public init(decoding record: UnsafeRawBufferPointer) throws(DecodeError) {
        guard record.count >= Self.headerSize else { throw .truncated(size: record.count, needed: Self.headerSize) }
        var raw = nsi_event()
        withUnsafeMutableBytes(of: &raw) { destination in
            destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: record.prefix(destination.count)))
        }
        let snapLength = Int(raw.snap_len)
        guard snapLength <= Int(NSI_SNAP_LEN), record.count >= Self.headerSize + snapLength else {
            throw .truncated(size: record.count, needed: Self.headerSize + snapLength)
        }
        guard let hook = Hook(rawValue: raw.hook) else { throw .unknownHook(raw.hook) }
        self.hook = hook
        timestamp = raw.timestamp_ns
        skb = raw.skb
        netns = raw.netns
        netnsFromSocket = raw.flags & UInt8(NSI_EF_NETNS_FROM_SOCKET.rawValue) != 0
        ifindex = raw.ifindex
        ifname = withUnsafeBytes(of: raw.ifname) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        dropReason = raw.drop_reason
        mark = raw.mark
        packet = PacketHeaders(raw.packet)
        quoted = PacketHeaders(raw.inner)
        originalLength = raw.orig_len
        snapshot = Array(record[Self.headerSize..<(Self.headerSize + snapLength)])
        switch hook {
        case .drop:
            detail = .drop(location: raw.detail.drop.location)
        case .icmpSend:
            detail = .icmpSent(type: raw.detail.icmp.type, code: raw.detail.icmp.code)
        case .routeLookup, .routeLookup6:
            let fib = raw.detail.fib
            detail = .route(RouteLookup(
                table: fib.table, error: fib.err, outputInterface: fib.oif,
                gateway: IPAddress(field: fib.gateway, version: fib.gw_version),
                flowInputInterface: fib.flow_iif, flowOutputInterface: fib.flow_oif, routeType: fib.route_type,
                tiedToPacket: raw.flags & UInt8(NSI_EF_FROM_RECV_STASH.rawValue) != 0))
        case .neighbour:
            let n = raw.detail.neigh
            let length = min(Int(n.lladdr_len), 8)
            detail = .neighbour(NeighbourUpdate(
                address: IPAddress(field: n.addr, version: n.ip_version),
                linkAddress: withUnsafeBytes(of: n.lladdr) { Array($0.prefix(length)) },
                oldState: n.old_state, newState: n.new_state, flags: n.update_flags))
        case .transmit, .receive, .tcxIngress, .tcxEgress:
            detail = .none
        }
    }

    /// Decodes a record held in an array (tests, replay).
    public init(decoding bytes: [UInt8]) throws(DecodeError) {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(DecodeError) in try PacketEvent(decoding: raw) } }
        self = try result.get()
    }
}
