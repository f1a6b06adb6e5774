import CMnl
/// ctnetlink: the conntrack subsystem of nfnetlink (linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h,
/// nf_conntrack_common.h). Like `RTM`, the numbers are named here so the decoders read as the headers do.
public enum CTNetlink {
    /// NETLINK_NETFILTER: the netlink protocol of every nfnetlink socket.
    public static let netlinkProtocol: Int32 = NETLINK_NETFILTER
    /// NFNL_SUBSYS_CTNETLINK, the high byte of every conntrack message type.
    static let subsystem: UInt16 = 1
    /// IPCTNL_MSG_CT_NEW: an entry of a dump, the answer to a get, and the NEW and UPDATE events.
    public static let newMessage: UInt16 = subsystem << 8 | 0
    /// IPCTNL_MSG_CT_GET: a dump (with NLM_F_DUMP) or the lookup of one tuple.
    public static let getMessage: UInt16 = subsystem << 8 | 1
    /// IPCTNL_MSG_CT_DELETE: the DESTROY event.
    public static let deleteMessage: UInt16 = subsystem << 8 | 2
    /// The size of struct nfgenmsg (family, version, res_id), which starts every nfnetlink payload.
    static let headerSize = 4

    /// The multicast groups of conntrack events (enum nfnetlink_groups).
    public enum Group: UInt32, Sendable, CaseIterable {
        case new = 1       // NFNLGRP_CONNTRACK_NEW
        case update = 2    // NFNLGRP_CONNTRACK_UPDATE
        case destroy = 3   // NFNLGRP_CONNTRACK_DESTROY
    }

    /// The name of a message type for fixture annotations and errors.
    public static func name(_ type: UInt16) -> String {
        switch type {
        case newMessage: "IPCTNL_MSG_CT_NEW"
        case getMessage: "IPCTNL_MSG_CT_GET"
        case deleteMessage: "IPCTNL_MSG_CT_DELETE"
        default: RTM.name(type)
        }
    }
}

/// CTA_* attribute types (enum ctattr_type and the nested enums after it).
enum CTA {
    static let tupleOriginal: UInt16 = 1
    static let tupleReply: UInt16 = 2
    static let status: UInt16 = 3
    static let protoinfo: UInt16 = 4
    static let help: UInt16 = 5
    static let timeout: UInt16 = 7
    static let mark: UInt16 = 8
    static let countersOriginal: UInt16 = 9
    static let countersReply: UInt16 = 10
    static let use: UInt16 = 11
    static let id: UInt16 = 12
    static let tupleMaster: UInt16 = 14
    static let zone: UInt16 = 18
    static let secctx: UInt16 = 19
    static let timestamp: UInt16 = 20
    static let labels: UInt16 = 22

    /// enum ctattr_tuple
    static let tupleIP: UInt16 = 1
    static let tupleProto: UInt16 = 2
    static let tupleZone: UInt16 = 3
    /// enum ctattr_ip
    static let ipV4Source: UInt16 = 1
    static let ipV4Destination: UInt16 = 2
    static let ipV6Source: UInt16 = 3
    static let ipV6Destination: UInt16 = 4
    /// enum ctattr_l4proto
    static let protoNumber: UInt16 = 1
    static let protoSourcePort: UInt16 = 2
    static let protoDestinationPort: UInt16 = 3
    static let protoICMPID: UInt16 = 4
    static let protoICMPType: UInt16 = 5
    static let protoICMPCode: UInt16 = 6
    static let protoICMPv6ID: UInt16 = 7
    static let protoICMPv6Type: UInt16 = 8
    static let protoICMPv6Code: UInt16 = 9
    /// enum ctattr_protoinfo: one nest per protocol, each with its state first (CTA_PROTOINFO_*_STATE = 1).
    static let protoinfoTCP: UInt16 = 1
    static let protoinfoDCCP: UInt16 = 2
    static let protoinfoSCTP: UInt16 = 3
    static let protoinfoState: UInt16 = 1
    /// enum ctattr_counters
    static let counterPackets: UInt16 = 1
    static let counterBytes: UInt16 = 2
    static let counterPackets32: UInt16 = 3
    static let counterBytes32: UInt16 = 4
    /// enum ctattr_tstamp, ctattr_help (CTA_HELP_NAME), ctattr_secctx (CTA_SECCTX_NAME)
    static let timestampStart: UInt16 = 1
    static let timestampStop: UInt16 = 2
    static let nestedName: UInt16 = 1
}

/// The status bits of a conntrack entry (enum ip_conntrack_status).
public struct ConntrackStatus: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let expected = ConntrackStatus(rawValue: 1 << 0)
    /// A packet was seen in the reply direction; conntrack -L prints `[UNREPLIED]` while it is not set.
    public static let seenReply = ConntrackStatus(rawValue: 1 << 1)
    /// `[ASSURED]`: traffic both ways (UDP: a second reply), so the entry is not evicted early.
    public static let assured = ConntrackStatus(rawValue: 1 << 2)
    /// In the table (a packet that is dropped before confirmation leaves no entry).
    public static let confirmed = ConntrackStatus(rawValue: 1 << 3)
    public static let sourceNAT = ConntrackStatus(rawValue: 1 << 4)
    public static let destinationNAT = ConntrackStatus(rawValue: 1 << 5)
    public static let sequenceAdjust = ConntrackStatus(rawValue: 1 << 6)
    public static let sourceNATDone = ConntrackStatus(rawValue: 1 << 7)
    public static let destinationNATDone = ConntrackStatus(rawValue: 1 << 8)
    public static let dying = ConntrackStatus(rawValue: 1 << 9)
    public static let fixedTimeout = ConntrackStatus(rawValue: 1 << 10)
    public static let template = ConntrackStatus(rawValue: 1 << 11)
    /// IPS_NAT_CLASH (the bit was IPS_UNTRACKED before 5.5).
    public static let natClash = ConntrackStatus(rawValue: 1 << 12)
    public static let helper = ConntrackStatus(rawValue: 1 << 13)
    public static let offload = ConntrackStatus(rawValue: 1 << 14)
    public static let hardwareOffload = ConntrackStatus(rawValue: 1 << 15)

    /// The kernel's names (IPS_*_BIT without the prefix), lowest bit first.
    static let names: [(UInt32, String)] = [
        "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT", "SEQ_ADJUST", "SRC_NAT_DONE",
        "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT", "TEMPLATE", "NAT_CLASH", "HELPER", "OFFLOAD", "HW_OFFLOAD",
    ].enumerated().map { (UInt32(1) << UInt32($0.offset), $0.element) }

    /// The bits that are set, by name; unknown bits as `BIT_N`.
    public var names: [String] {
        var out = namedFlags(rawValue, ConntrackStatus.names)
        for bit in 16..<32 where rawValue & (1 << UInt32(bit)) != 0 { out.append("BIT_\(bit)") }
        return out
    }
}

extension IPAddress {
    /// 0.0.0.0, before a tuple's addresses are decoded.
    static let unset = IPAddress(high: 0, low: 0, family: .v4)
}

/// One direction of a connection as conntrack keys it: addresses, the layer-4 protocol and what identifies
/// a flow of it (ports; ICMP id, type and code; GRE keys), and the tuple's zone.
public struct ConntrackTuple: Sendable, Hashable, CustomStringConvertible {
    /// The addresses, held inline (no allocation per entry of a large table).
    public var source: IPAddress
    public var destination: IPAddress
    public var family: IPAddress.Family { source.family }
    /// IPPROTO_*: 6 tcp, 17 udp, 1 icmp, 58 icmpv6 …
    public var protocolNumber: UInt8
    /// Ports of TCP, UDP, UDP-Lite, SCTP and DCCP; the keys of GRE. Nil for other protocols.
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    /// ICMP and ICMPv6: the echo identifier, and the type and code of the request.
    public var icmpID: UInt16?
    public var icmpType: UInt8?
    public var icmpCode: UInt8?
    /// CTA_TUPLE_ZONE: a zone that applies to this direction only.
    public var zone: UInt16?

    public init(source: IPAddress, destination: IPAddress, protocolNumber: UInt8, sourcePort: UInt16? = nil,
                destinationPort: UInt16? = nil) {
        self.source = source
        self.destination = destination
        self.protocolNumber = protocolNumber
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    /// The tuple of the opposite direction with nothing rewritten: what the reply tuple is without NAT.
    public var reversed: ConntrackTuple {
        var r = self
        swap(&r.source, &r.destination)
        swap(&r.sourcePort, &r.destinationPort)
        return r
    }

    /// Whether the protocol carries ports (or GRE keys) in the tuple.
    public var hasPorts: Bool { ConntrackNames.portProtocols.contains(protocolNumber) || protocolNumber == 47 }
    public var isICMP: Bool { protocolNumber == 1 || protocolNumber == 58 }

    public var description: String {
        var out: [UInt8] = []
        appendText(to: &out)
        if !out.isEmpty { out.removeLast() }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes CTA_TUPLE_ORIG/REPLY/MASTER: CTA_TUPLE_IP and CTA_TUPLE_PROTO are required.
    static func decode(_ bytes: ArraySlice<UInt8>, _ what: String) throws(DecodeError) -> ConntrackTuple {
        var source: IPAddress?, destination: IPAddress?
        var number: UInt8?
        var tuple = ConntrackTuple(source: .unset, destination: .unset, protocolNumber: 0)
        var cursor = AttributeCursor(bytes)
        while let a = try cursor.next() {
            switch a.type {
            case CTA.tupleIP:
                var ip = AttributeCursor(a.value)
                while let b = try ip.next() {
                    let v6 = b.type == CTA.ipV6Source || b.type == CTA.ipV6Destination
                    guard b.type >= CTA.ipV4Source && b.type <= CTA.ipV6Destination else { continue }
                    guard b.value.count == (v6 ? 16 : 4), let address = IPAddress(bytes: b.value) else {
                        throw DecodeError("\(what) address of \(b.value.count) bytes", at: 0)
                    }
                    if b.type == CTA.ipV4Source || b.type == CTA.ipV6Source { source = address } else { destination = address }
                }
            case CTA.tupleProto:
                var proto = AttributeCursor(a.value)
                while let b = try proto.next() {
                    switch b.type {
                    case CTA.protoNumber: number = try b.u8(what)
                    case CTA.protoSourcePort: tuple.sourcePort = try b.be16(what)
                    case CTA.protoDestinationPort: tuple.destinationPort = try b.be16(what)
                    case CTA.protoICMPID, CTA.protoICMPv6ID: tuple.icmpID = try b.be16(what)
                    case CTA.protoICMPType, CTA.protoICMPv6Type: tuple.icmpType = try b.u8(what)
                    case CTA.protoICMPCode, CTA.protoICMPv6Code: tuple.icmpCode = try b.u8(what)
                    default: continue
                    }
                }
            case CTA.tupleZone:
                tuple.zone = try a.be16(what)
            default:
                continue
            }
        }
        guard let source, let destination, source.family == destination.family else {
            throw DecodeError("\(what) without both addresses of one family", at: 0)
        }
        guard let number else { throw DecodeError("\(what) without CTA_PROTO_NUM", at: 0) }
        tuple.source = source
        tuple.destination = destination
        tuple.protocolNumber = number
        return tuple
    }
}

/// Packet and byte counters of one direction (CTA_COUNTERS_ORIG/REPLY; only with net.netfilter.nf_conntrack_acct=1).
public struct ConntrackCounters: Sendable, Hashable {
    public var packets: UInt64
    public var bytes: UInt64

    public init(packets: UInt64, bytes: UInt64) {
        self.packets = packets
        self.bytes = bytes
    }

    static func decode(_ bytes: ArraySlice<UInt8>, _ what: String) throws(DecodeError) -> ConntrackCounters {
        var counters = ConntrackCounters(packets: 0, bytes: 0)
        var cursor = AttributeCursor(bytes)
        while let a = try cursor.next() {
            switch a.type {
            case CTA.counterPackets: counters.packets = try a.be64(what)
            case CTA.counterBytes: counters.bytes = try a.be64(what)
            case CTA.counterPackets32: counters.packets = UInt64(try a.be32(what))
            case CTA.counterBytes32: counters.bytes = UInt64(try a.be32(what))
            default: continue
            }
        }
        return counters
    }
}

/// One entry of a conntrack table, as a dump or an event carries it.
public struct ConntrackEntry: Sendable, Hashable {
    /// The tuple of the first packet (before any NAT).
    public var original: ConntrackTuple
    /// The tuple replies must have; it differs from `original.reversed` where NAT rewrote something.
    public var reply: ConntrackTuple
    /// CTA_STATUS (absent in some events).
    public var status: ConntrackStatus?
    /// Seconds left (CTA_TIMEOUT); absent in DESTROY events.
    public var timeout: UInt32?
    public var mark: UInt32?
    /// References held on the entry (CTA_USE; dumps only).
    public var use: UInt32?
    /// CTA_ID: the kernel's id of the entry.
    public var id: UInt32?
    /// CTA_ZONE (only sent when not the default zone 0).
    public var zone: UInt16?
    /// The protocol's state: TCP (`ESTABLISHED` …), SCTP or DCCP, from CTA_PROTOINFO.
    public var protocolState: UInt8?
    public var originalCounters: ConntrackCounters?
    public var replyCounters: ConntrackCounters?
    /// CTA_TIMESTAMP (ns since the epoch; with net.netfilter.nf_conntrack_timestamp=1).
    public var started: UInt64?
    public var stopped: UInt64?
    /// The connection tracking helper (`ftp`, `sip` …).
    public var helper: String?
    public var securityContext: String?
    /// CTA_LABELS: the connlabel bitmap.
    public var labels: [UInt8]?
    /// CTA_TUPLE_MASTER: the connection an expected connection belongs to.
    public var master: ConntrackTuple?

    public init(original: ConntrackTuple, reply: ConntrackTuple) {
        self.original = original
        self.reply = reply
    }

    public var family: IPAddress.Family { original.family }
    public var protocolNumber: UInt8 { original.protocolNumber }
    public var protocolName: String { ConntrackNames.protocolName(original.protocolNumber) }
    /// The state name conntrack -L prints (TCP, SCTP and DCCP only).
    public var stateName: String? { protocolState.map { ConntrackNames.stateName($0, protocolNumber: protocolNumber) } }
    /// No packet was seen in the reply direction (`[UNREPLIED]`).
    public var isUnreplied: Bool { status.map { !$0.contains(.seenReply) } ?? false }
    public var isAssured: Bool { status?.contains(.assured) ?? false }

    /// Decodes IPCTNL_MSG_CT_NEW or IPCTNL_MSG_CT_DELETE (nfgenmsg, then CTA_* attributes); nil for other
    /// message types. Numbers are in network byte order, as ctnetlink sends them.
    public static func decode(_ message: NetlinkMessage) throws(DecodeError) -> ConntrackEntry? {
        guard message.type == CTNetlink.newMessage || message.type == CTNetlink.deleteMessage else { return nil }
        let p = message.payload
        guard p.count >= CTNetlink.headerSize else { throw DecodeError("conntrack message shorter than nfgenmsg", at: 0) }
        return try decode(attributes: p.dropFirst(CTNetlink.headerSize))
    }

    static func decode(attributes: ArraySlice<UInt8>) throws(DecodeError) -> ConntrackEntry {
        var original: ConntrackTuple?, reply: ConntrackTuple?
        var entry = ConntrackEntry(original: ConntrackTuple(source: .unset, destination: .unset, protocolNumber: 0),
                                   reply: ConntrackTuple(source: .unset, destination: .unset, protocolNumber: 0))
        var cursor = AttributeCursor(attributes)
        while let a = try cursor.next() {
            switch a.type {
            case CTA.tupleOriginal: original = try ConntrackTuple.decode(a.value, "CTA_TUPLE_ORIG")
            case CTA.tupleReply: reply = try ConntrackTuple.decode(a.value, "CTA_TUPLE_REPLY")
            case CTA.tupleMaster: entry.master = try ConntrackTuple.decode(a.value, "CTA_TUPLE_MASTER")
            case CTA.status: entry.status = ConntrackStatus(rawValue: try a.be32("CTA_STATUS"))
            case CTA.timeout: entry.timeout = try a.be32("CTA_TIMEOUT")
            case CTA.mark: entry.mark = try a.be32("CTA_MARK")
            case CTA.use: entry.use = try a.be32("CTA_USE")
            case CTA.id: entry.id = try a.be32("CTA_ID")
            case CTA.zone: entry.zone = try a.be16("CTA_ZONE")
            case CTA.protoinfo:
                var info = AttributeCursor(a.value)
                while let proto = try info.next() {
                    guard [CTA.protoinfoTCP, CTA.protoinfoDCCP, CTA.protoinfoSCTP].contains(proto.type) else { continue }
                    var fields = AttributeCursor(proto.value)
                    while let field = try fields.next() {
                        if field.type == CTA.protoinfoState { entry.protocolState = try field.u8("CTA_PROTOINFO state") }
                    }
                }
            case CTA.countersOriginal: entry.originalCounters = try ConntrackCounters.decode(a.value, "CTA_COUNTERS_ORIG")
            case CTA.countersReply: entry.replyCounters = try ConntrackCounters.decode(a.value, "CTA_COUNTERS_REPLY")
            case CTA.timestamp:
                var stamps = AttributeCursor(a.value)
                while let stamp = try stamps.next() {
                    if stamp.type == CTA.timestampStart { entry.started = try stamp.be64("CTA_TIMESTAMP_START") }
                    if stamp.type == CTA.timestampStop { entry.stopped = try stamp.be64("CTA_TIMESTAMP_STOP") }
                }
            case CTA.help: entry.helper = try a.nestedName()
            case CTA.secctx: entry.securityContext = try a.nestedName()
            case CTA.labels: entry.labels = Array(a.value)
            default: continue
            }
        }
        guard let original, let reply else { throw DecodeError("conntrack entry without CTA_TUPLE_ORIG and CTA_TUPLE_REPLY", at: 0) }
        entry.original = original
        entry.reply = reply
        return entry
    }
}

/// A conntrack event: what `conntrack -E` prints as `[NEW]`, `[UPDATE]` or `[DESTROY]`.
public struct ConntrackEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable {
        case new = "NEW", update = "UPDATE", destroy = "DESTROY"
    }

    public var kind: Kind
    public var entry: ConntrackEntry

    public init(_ kind: Kind, _ entry: ConntrackEntry) {
        self.kind = kind
        self.entry = entry
    }

    /// Decodes an event message: IPCTNL_MSG_CT_DELETE is a DESTROY; IPCTNL_MSG_CT_NEW is a NEW when it
    /// carries NLM_F_CREATE or NLM_F_EXCL, an UPDATE otherwise (as libnetfilter_conntrack tells them apart).
    public static func decode(_ message: NetlinkMessage) throws(DecodeError) -> ConntrackEvent? {
        guard let entry = try ConntrackEntry.decode(message) else { return nil }
        if message.type == CTNetlink.deleteMessage { return ConntrackEvent(.destroy, entry) }
        return ConntrackEvent(message.flags & (NLMsg.create | NLMsg.exclusive) != 0 ? .new : .update, entry)
    }
}

/// Names conntrack-tools prints.
public enum ConntrackNames {
    /// Protocols whose tuples carry ports.
    static let portProtocols: Set<UInt8> = [6, 17, 33, 132, 136]

    /// libnetfilter_conntrack's protocol names; `unknown` for the rest, as conntrack -L prints them.
    public static func protocolName(_ number: UInt8) -> String {
        switch number {
        case 6: "tcp"
        case 17: "udp"
        case 136: "udplite"
        case 1: "icmp"
        case 58: "icmpv6"
        case 132: "sctp"
        case 47: "gre"
        case 33: "dccp"
        default: "unknown"
        }
    }

    static let tcpStates = ["NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
                            "TIME_WAIT", "CLOSE", "SYN_SENT2"]
    static let sctpStates = ["NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_SENT",
                             "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT"]
    static let dccpStates = ["NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ", "CLOSING", "TIMEWAIT",
                             "IGNORE", "INVALID"]

    /// The state of a TCP, SCTP or DCCP entry by name (`ESTABLISHED`); out-of-range values print as the
    /// first state, as libnetfilter_conntrack does.
    public static func stateName(_ state: UInt8, protocolNumber: UInt8) -> String {
        let table = protocolNumber == 132 ? sctpStates : protocolNumber == 33 ? dccpStates : tcpStates
        return Int(state) < table.count ? table[Int(state)] : table[0]
    }
}

/// Fixed-size values of ctnetlink attributes (big-endian); a value of the wrong size is a `DecodeError`.
extension Attribute {
    func u8(_ what: String) throws(DecodeError) -> UInt8 {
        guard let byte = value.first else { throw DecodeError("\(what): empty attribute \(type)", at: 0) }
        return byte
    }

    func be16(_ what: String) throws(DecodeError) -> UInt16 {
        guard value.count >= 2 else { throw DecodeError("\(what): attribute \(type) of \(value.count) bytes", at: 0) }
        return value.netU16(value.startIndex)!
    }

    func be32(_ what: String) throws(DecodeError) -> UInt32 {
        guard value.count >= 4 else { throw DecodeError("\(what): attribute \(type) of \(value.count) bytes", at: 0) }
        return value.netU32(value.startIndex)!
    }

    func be64(_ what: String) throws(DecodeError) -> UInt64 {
        guard value.count >= 8 else { throw DecodeError("\(what): attribute \(type) of \(value.count) bytes", at: 0) }
        return UInt64(value.netU32(value.startIndex)!) << 32 | UInt64(value.netU32(value.startIndex + 4)!)
    }

    /// The NUL-terminated name inside a nest (CTA_HELP_NAME, CTA_SECCTX_NAME).
    func nestedName() throws(DecodeError) -> String? {
        var cursor = AttributeCursor(value)
        while let a = try cursor.next() {
            guard a.type == CTA.nestedName else { continue }
            let end = a.value.firstIndex(of: 0) ?? a.value.endIndex
            return String(decoding: a.value[a.value.startIndex..<end], as: UTF8.self)
        }
        return nil
    }
}
