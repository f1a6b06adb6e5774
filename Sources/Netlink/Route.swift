/// A route as RTM_NEWROUTE describes it (one entry of `ip -j route show table all`, or the answer of
/// `ip route get`).
public struct Route: Sendable, Equatable {
    public var family: IPAddress.Family
    /// RTA_TABLE when present (tables above 255 only fit there), else rtm_table.
    public var table: UInt32
    /// RTA_DST with rtm_dst_len; 0.0.0.0/0 or ::/0 (the default route) when there is no RTA_DST.
    public var destination: IPPrefix
    /// RTA_SRC with rtm_src_len (IPv6 source routing), nil when not set.
    public var source: IPPrefix?
    public var tos: UInt8
    /// RTA_GATEWAY, or the address of RTA_VIA (a gateway of the other family: an IPv4 route via an
    /// IPv6 next hop).
    public var gateway: IPAddress?
    /// RTA_OIF.
    public var outputIndex: Int32?
    /// RTA_IIF (answers of `ip route get … iif DEV`, and multicast routes).
    public var inputIndex: Int32?
    /// RTA_PRIORITY: the metric.
    public var priority: UInt32?
    /// RTA_PREFSRC.
    public var preferredSource: IPAddress?
    /// rtm_protocol: RTPROT_* (2 kernel, 3 boot, 4 static …).
    public var routeProtocol: UInt8
    /// rtm_scope: RT_SCOPE_*.
    public var scope: UInt8
    /// rtm_type: RTN_* (1 unicast, 2 local, 6 blackhole …).
    public var type: UInt8
    /// rtm_flags: RTNH_F_* in the low byte, RTM_F_* above.
    public var flags: UInt32
    /// RTA_MULTIPATH: the next hops of an ECMP route; empty for a route with one next hop.
    public var nexthops: [Nexthop]
    /// RTA_METRICS/RTAX_MTU.
    public var mtu: UInt32?
    /// RTA_NH_ID: a route that uses a nexthop object.
    public var nexthopID: UInt32?
    /// RTA_MARK (answers of `ip route get … mark M`).
    public var mark: UInt32?
    /// RTA_PREF: an IPv6 route's router preference (0 medium, 1 high, 3 low).
    public var preference: UInt8?

    public init(family: IPAddress.Family, destination: IPPrefix) {
        self.family = family
        self.destination = destination
        table = 0
        tos = 0
        routeProtocol = 0
        scope = 0
        type = 0
        flags = 0
        nexthops = []
    }

    public var isDefault: Bool { destination.length == 0 }
    public var tableName: String { RTNames.table(table) }
    public var protocolName: String { RTNames.routeProtocol(routeProtocol) }
    public var scopeName: String { RTNames.scope(scope) }
    public var typeName: String { RTNames.routeType(type) }
    /// The flags as `ip -j route` prints them ("onlink", "linkdown" …).
    public var flagNames: [String] { namedFlags(flags, RouteFlag.printOrder) }
    /// As `ip -6 route` prints RTA_PREF.
    public var preferenceName: String? { preference.map { named($0, [0: "medium", 1: "high", 3: "low"]) } }

    /// Decodes RTM_NEWROUTE; nil for a message of another type, or a route of a family other than IPv4 and
    /// IPv6 (the multicast routing families 128 and 129 an AF_UNSPEC dump also returns).
    public static func decode(_ message: NetlinkMessage) throws(DecodeError) -> Route? {
        guard message.type == RTM.newRoute else { return nil }
        let attributes = try FamilyHeader.attributes(after: FamilyHeader.rtmsgSize, of: message, "RTM_NEWROUTE")
        let p = message.payload
        let s = p.startIndex
        guard let family = IPAddress.Family(rawValue: p[s]) else { return nil }
        let dstLength = p[s + 1], srcLength = p[s + 2]
        let destination: IPPrefix
        if let dst = try attributes.address(RTA.dst, family: family, "RTA_DST") {
            destination = try prefix(dst, length: dstLength, "RTA_DST")
        } else {
            destination = try prefix(IPPrefix.any(family).address, length: dstLength, "rtm_dst_len")
        }
        var route = Route(family: family, destination: destination)
        if let src = try attributes.address(RTA.src, family: family, "RTA_SRC") {
            route.source = try prefix(src, length: srcLength, "RTA_SRC")
        }
        route.tos = p[s + 3]
        route.table = try attributes.u32(RTA.table) ?? UInt32(p[s + 4])
        route.routeProtocol = p[s + 5]
        route.scope = p[s + 6]
        route.type = p[s + 7]
        route.flags = p.hostU32(s + 8)!
        route.gateway = try gateway(attributes, family: family)
        route.outputIndex = try attributes.i32(RTA.oif)
        route.inputIndex = try attributes.i32(RTA.iif)
        route.priority = try attributes.u32(RTA.priority)
        route.preferredSource = try attributes.address(RTA.prefsrc, family: family, "RTA_PREFSRC")
        route.nexthopID = try attributes.u32(RTA.nhID)
        route.mark = try attributes.u32(RTA.mark)
        route.preference = try attributes.u8(RTA.pref)
        if let metrics = try attributes.nested(RTA.metrics) { route.mtu = try metrics.u32(2 /* RTAX_MTU */) }
        if let multipath = attributes[RTA.multipath] { route.nexthops = try Nexthop.decodeAll(multipath, family: family) }
        return route
    }

    /// RTA_GATEWAY of the route's family, or RTA_VIA (struct rtvia: a u16 family, then the address).
    static func gateway(_ attributes: Attributes, family: IPAddress.Family) throws(DecodeError) -> IPAddress? {
        if let gateway = try attributes.address(RTA.gateway, family: family, "RTA_GATEWAY") { return gateway }
        guard let via = attributes[RTA.via] else { return nil }
        guard via.count >= 2, let viaFamily = IPAddress.Family(rawValue: UInt8(truncatingIfNeeded: via.hostU16(via.startIndex)!)),
            via.count - 2 == Int(viaFamily.bitCount / 8), let address = IPAddress(bytes: via.dropFirst(2))
        else { throw DecodeError("RTA_VIA of \(via.count) bytes with an unknown family", at: 0) }
        return address
    }
}

/// One next hop of a multipath route (struct rtnexthop and its attributes).
public struct Nexthop: Sendable, Equatable {
    public var gateway: IPAddress?
    /// rtnh_ifindex.
    public var index: Int32
    /// rtnh_hops + 1, as `ip route` prints "weight".
    public var weight: Int
    /// rtnh_flags: RTNH_F_*.
    public var flags: UInt8

    public init(gateway: IPAddress?, index: Int32, weight: Int = 1, flags: UInt8 = 0) {
        self.gateway = gateway
        self.index = index
        self.weight = weight
        self.flags = flags
    }

    public var flagNames: [String] { namedFlags(UInt32(flags), RouteFlag.printOrder) }

    /// The rtnexthop records of RTA_MULTIPATH: each an 8-byte header (len u16, flags u8, hops u8,
    /// ifindex i32) and its own attributes, `len` bytes in all. A length below 8 or past the end is an
    /// error (a zero length would otherwise loop forever).
    static func decodeAll(_ value: ArraySlice<UInt8>, family: IPAddress.Family) throws(DecodeError) -> [Nexthop] {
        var hops: [Nexthop] = []
        var at = value.startIndex
        while value.endIndex - at >= 8 {
            let length = Int(value.hostU16(at)!)
            guard length >= 8, length <= value.endIndex - at else {
                throw DecodeError("rtnexthop length \(length) outside the \(value.endIndex - at) bytes left", at: at - value.startIndex)
            }
            let attributes = try Attributes.parse(value[(at + 8)..<(at + length)])
            hops.append(Nexthop(gateway: try Route.gateway(attributes, family: family),
                                index: Int32(bitPattern: value.hostU32(at + 4)!),
                                weight: Int(value[at + 3]) + 1, flags: value[at + 2]))
            at += align4(length)
        }
        return hops
    }
}

/// Route types (RTN_*), for requests.
public enum RouteType {
    public static let unspec: UInt8 = 0
    public static let unicast: UInt8 = 1
    public static let local: UInt8 = 2
    public static let broadcast: UInt8 = 3
    public static let anycast: UInt8 = 4
    public static let multicast: UInt8 = 5
    public static let blackhole: UInt8 = 6
    public static let unreachable: UInt8 = 7
    public static let prohibit: UInt8 = 8
    public static let `throw`: UInt8 = 9
    public static let nat: UInt8 = 10
}

/// Route flags (RTNH_F_* and RTM_F_*).
public enum RouteFlag {
    public static let dead: UInt32 = 0x1
    public static let pervasive: UInt32 = 0x2
    public static let onlink: UInt32 = 0x4
    public static let offload: UInt32 = 0x8
    public static let linkDown: UInt32 = 0x10
    public static let unresolved: UInt32 = 0x20
    public static let trap: UInt32 = 0x40
    public static let notify: UInt32 = 0x100
    public static let cloned: UInt32 = 0x200
    public static let lookupTable: UInt32 = 0x1000
    public static let fibMatch: UInt32 = 0x2000
    public static let routeOffload: UInt32 = 0x4000
    public static let routeTrap: UInt32 = 0x8000
    public static let routeOffloadFailed: UInt32 = 0x2000_0000

    /// iproute2's `print_rt_flags` order and names.
    static let printOrder: [(UInt32, String)] = [
        (dead, "dead"), (onlink, "onlink"), (pervasive, "pervasive"), (offload, "offload"), (trap, "trap"),
        (notify, "notify"), (linkDown, "linkdown"), (unresolved, "unresolved"), (routeOffload, "rt_offload"),
        (routeTrap, "rt_trap"), (routeOffloadFailed, "rt_offload_failed"),
    ]
}

/// RTA_* attribute types (linux/rtnetlink.h).
enum RTA {
    static let dst: UInt16 = 1
    static let src: UInt16 = 2
    static let iif: UInt16 = 3
    static let oif: UInt16 = 4
    static let gateway: UInt16 = 5
    static let priority: UInt16 = 6
    static let prefsrc: UInt16 = 7
    static let metrics: UInt16 = 8
    static let multipath: UInt16 = 9
    static let table: UInt16 = 15
    static let mark: UInt16 = 16
    static let via: UInt16 = 18
    static let pref: UInt16 = 20
    static let nhID: UInt16 = 30
}

/// What `ip route add`/`del` says about a route.
public struct RouteSpec: Sendable, Equatable {
    /// The destination; a prefix of length 0 is `default` (sent without RTA_DST, as ip does).
    public var destination: IPPrefix
    /// `via ADDR`: RTA_GATEWAY, or RTA_VIA when the gateway's family differs from the destination's.
    public var gateway: IPAddress?
    /// `dev LINK`: RTA_OIF.
    public var outputIndex: Int32?
    /// `metric N`: RTA_PRIORITY.
    public var metric: UInt32?
    /// `table N`: rtm_table for tables below 256, RTA_TABLE (with rtm_table RT_TABLE_UNSPEC) above.
    public var table: UInt32
    /// `blackhole`, `unreachable`, `prohibit` …: RTN_*.
    public var type: UInt8
    /// `scope S`; nil picks ip's default (link for a unicast IPv4 route without gateway, host for local
    /// and nat, link for broadcast, multicast and anycast, global otherwise).
    public var scope: UInt8?
    /// `proto P`; boot (3) is what ip sends when none is given.
    public var routeProtocol: UInt8
    /// `src ADDR`: RTA_PREFSRC.
    public var preferredSource: IPAddress?
    /// `onlink`: RTNH_F_ONLINK.
    public var onlink: Bool
    /// `mtu N`: RTA_METRICS/RTAX_MTU.
    public var mtu: UInt32?

    public init(destination: IPPrefix, gateway: IPAddress? = nil, outputIndex: Int32? = nil, metric: UInt32? = nil,
                table: UInt32 = 254, type: UInt8 = RouteType.unicast, scope: UInt8? = nil, routeProtocol: UInt8 = 3,
                preferredSource: IPAddress? = nil, onlink: Bool = false, mtu: UInt32? = nil) {
        self.destination = destination
        self.gateway = gateway
        self.outputIndex = outputIndex
        self.metric = metric
        self.table = table
        self.type = type
        self.scope = scope
        self.routeProtocol = routeProtocol
        self.preferredSource = preferredSource
        self.onlink = onlink
        self.mtu = mtu
    }
}

/// RTM_GETROUTE, RTM_NEWROUTE and RTM_DELROUTE requests.
public enum RouteRequests {
    /// `ip route show table all` (`-4`/`-6` for one family): RTM_GETROUTE with NLM_F_DUMP. Strict checking
    /// wants an rtmsg of zeros but the family; without RTA_TABLE the kernel dumps every table.
    public static func dump(family: IPAddress.Family? = nil) -> NetlinkRequest {
        NetlinkRequest(type: RTM.getRoute, flags: NLMsg.dump, header: FamilyHeader.rtmsg(family: AF.of(family)))
    }

    /// `ip route get ADDR [from SRC] [iif DEV] [oif DEV] [mark M]`: the kernel's own lookup, answered with
    /// one RTM_NEWROUTE (RTM_F_CLONED set). The prefix lengths are the full address lengths, the only
    /// other value strict checking allows. For IPv4, RTM_F_LOOKUP_TABLE, as ip sets it, makes the answer
    /// name the table the lookup ended in (without it the kernel says "main"); IPv6 refuses that flag
    /// (EINVAL, "Invalid flags for get route request") and always names the table.
    public static func get(to destination: IPAddress, from source: IPAddress? = nil, inputIndex: Int32? = nil,
                           outputIndex: Int32? = nil, mark: UInt32? = nil) -> NetlinkRequest {
        let bits = destination.family.bitCount
        var request = NetlinkRequest(
            type: RTM.getRoute,
            header: FamilyHeader.rtmsg(family: destination.family.rawValue, dstLength: bits, srcLength: source == nil ? 0 : bits,
                                       flags: destination.family == .v4 ? RouteFlag.lookupTable : 0),
            detail: "to \(destination)")
        request.attribute(RTA.dst, address: destination)
        if let source { request.attribute(RTA.src, address: source) }
        if let inputIndex { request.attribute(RTA.iif, i32: inputIndex) }
        if let outputIndex { request.attribute(RTA.oif, i32: outputIndex) }
        if let mark { request.attribute(RTA.mark, u32: mark) }
        return request
    }

    /// `ip route add PREFIX|default [via GW] [dev LINK] [metric N] [table T] [scope S] [src A] [onlink]`,
    /// or `ip route add blackhole|unreachable|prohibit PREFIX`: RTM_NEWROUTE with NLM_F_CREATE|NLM_F_EXCL.
    public static func add(_ spec: RouteSpec) -> NetlinkRequest {
        var scope: UInt8 = 0
        if let chosen = spec.scope {
            scope = chosen
        } else if spec.destination.family == .v4 {
            switch spec.type {
            case RouteType.local, RouteType.nat: scope = 254
            case RouteType.broadcast, RouteType.multicast, RouteType.anycast: scope = 253
            case RouteType.unicast, RouteType.unspec: scope = spec.gateway == nil ? 253 : 0
            default: scope = 0
            }
        }
        return modify(RTM.newRoute, flags: NLMsg.create | NLMsg.exclusive, spec, routeProtocol: spec.routeProtocol,
                      scope: scope, type: spec.type)
    }

    /// `ip route del …`: as ip sends it, protocol 0 and type 0 unless a special type is named, scope
    /// "nowhere" for IPv4 (it matches any scope) and global for IPv6.
    public static func delete(_ spec: RouteSpec) -> NetlinkRequest {
        let type = spec.type == RouteType.unicast ? RouteType.unspec : spec.type
        let scope: UInt8 = spec.scope ?? (spec.destination.family == .v4 && type == RouteType.unspec ? 255 : 0)
        return modify(RTM.delRoute, flags: 0, spec, routeProtocol: 0, scope: scope, type: type)
    }

    private static func modify(_ type: UInt16, flags: UInt16, _ spec: RouteSpec, routeProtocol: UInt8, scope: UInt8,
                               type routeType: UInt8) -> NetlinkRequest {
        let family = spec.destination.family
        var request = NetlinkRequest(
            type: type, flags: flags,
            header: FamilyHeader.rtmsg(family: family.rawValue, dstLength: spec.destination.length,
                                       table: spec.table < 256 ? UInt8(spec.table) : 0, protocol: routeProtocol,
                                       scope: scope, type: routeType, flags: spec.onlink ? RouteFlag.onlink : 0),
            detail: spec.destination.length == 0 ? "default" : spec.destination.description)
        if spec.destination.length > 0 { request.attribute(RTA.dst, address: spec.destination.address) }
        if let gateway = spec.gateway {
            if gateway.family == family {
                request.attribute(RTA.gateway, address: gateway)
            } else {
                var via: [UInt8] = []
                via.appendHost16(UInt16(gateway.addressFamily))
                request.attribute(RTA.via, via + gateway.bytes)
            }
        }
        if let index = spec.outputIndex { request.attribute(RTA.oif, i32: index) }
        if let metric = spec.metric { request.attribute(RTA.priority, u32: metric) }
        if let source = spec.preferredSource { request.attribute(RTA.prefsrc, address: source) }
        if spec.table >= 256 { request.attribute(RTA.table, u32: spec.table) }
        if let mtu = spec.mtu {
            request.beginNested(RTA.metrics)
            request.attribute(2 /* RTAX_MTU */, u32: mtu)
            request.endNested()
        }
        return request
    }
}
