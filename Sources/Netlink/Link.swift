/// A network interface as RTM_NEWLINK describes it (`ip -j -d -s link show` shows the same): the
/// ifinfomsg header plus the IFLA_* attributes `show`, `graph` and the lab builder use.
public struct Link: Sendable, Equatable {
    public var index: Int32
    public var name: String
    /// ifinfomsg.ifi_family: AF_UNSPEC in an ordinary dump, AF_BRIDGE in a bridge-port dump.
    public var family: UInt8
    /// ifinfomsg.ifi_type: ARPHRD_* (1 ether, 772 loopback …).
    public var type: UInt16
    /// ifinfomsg.ifi_flags: IFF_*.
    public var flags: UInt32
    /// IFLA_OPERSTATE (IF_OPER_*), 0 (UNKNOWN) when absent.
    public var operState: UInt8
    /// IFLA_LINKMODE: 0 default, 1 dormant.
    public var linkMode: UInt8?
    public var mtu: UInt32?
    public var minMTU: UInt32?
    public var maxMTU: UInt32?
    public var qdisc: String?
    public var txQueueLength: UInt32?
    public var group: UInt32?
    public var promiscuity: UInt32?
    /// IFLA_CARRIER.
    public var carrier: Bool?
    public var address: MACAddress?
    public var broadcast: MACAddress?
    public var permanentAddress: MACAddress?
    /// IFLA_MASTER: the bridge (or bond, VRF) this link is a port of.
    public var master: Int32?
    /// IFLA_LINK: the parent (macvlan, vxlan …) or the veth peer's ifindex. The index counts in the
    /// namespace named by `linkNetnsID` when that is set, else in this link's own namespace.
    public var link: Int32?
    /// IFLA_LINK_NETNSID: the namespace of `link`, as an id this link's namespace assigned to it.
    public var linkNetnsID: Int32?
    /// IFLA_IFALIAS.
    public var alias: String?
    /// IFLA_PROP_LIST/IFLA_ALT_IFNAME.
    public var alternativeNames: [String]
    /// IFLA_LINKINFO/IFLA_INFO_KIND: veth, bridge, vxlan, macvlan, ipvlan, tun, dummy, vrf, bond …; nil
    /// for a physical device or the loopback.
    public var kind: String?
    /// IFLA_LINKINFO/IFLA_INFO_SLAVE_KIND: the kind of the master this link is a port of ("bridge" …).
    public var slaveKind: String?
    /// IFLA_STATS64 (or the 32-bit IFLA_STATS when that is all there is).
    public var statistics: LinkStatistics?
    public var vxlan: VXLANInfo?
    public var macvlan: MacvlanInfo?
    public var ipvlan: IPVlanInfo?
    public var bridge: BridgeInfo?
    /// The bridge-port view: IFLA_INFO_SLAVE_DATA of a bridge port, or IFLA_PROTINFO in an AF_BRIDGE dump.
    public var bridgePort: BridgePortInfo?
    /// IFLA_VRF_TABLE of a vrf device.
    public var vrfTable: UInt32?
    /// IFLA_BOND_MODE of a bond device.
    public var bondMode: UInt8?

    public init(index: Int32, name: String) {
        self.index = index
        self.name = name
        family = AF.unspec
        type = 0
        flags = 0
        operState = 0
        alternativeNames = []
    }

    /// IFF_UP.
    public var isUp: Bool { flags & LinkFlag.up != 0 }
    /// The flags named as `ip -j link` prints them, without M-DOWN (which needs the parent's state:
    /// `NamespaceState.flagNames(of:)` adds it).
    public var flagNames: [String] { RTNames.linkFlags(flags) }
    public var operStateName: String { RTNames.operState(operState) }
    /// ip's `link_type`: "ether", "loopback", "none" …
    public var typeName: String { RTNames.linkType(type) }
    public var groupName: String? { group.map(RTNames.linkGroup) }
    /// Whether IFLA_LINK points into another namespace (a veth whose peer was moved away).
    public var isLinkInOtherNamespace: Bool { linkNetnsID != nil }

    /// Decodes RTM_NEWLINK; nil for a message of another type.
    public static func decode(_ message: NetlinkMessage) throws(DecodeError) -> Link? {
        guard message.type == RTM.newLink else { return nil }
        let attributes = try FamilyHeader.attributes(after: FamilyHeader.ifinfomsgSize, of: message, "RTM_NEWLINK")
        let p = message.payload
        let index = Int32(bitPattern: p.hostU32(p.startIndex + 4)!)
        guard let name = attributes.string(IFLA.ifname) else { throw DecodeError("RTM_NEWLINK without IFLA_IFNAME", at: 16) }
        var link = Link(index: index, name: name)
        link.family = p[p.startIndex]
        link.type = p.hostU16(p.startIndex + 2)!
        link.flags = p.hostU32(p.startIndex + 8)!
        link.operState = try attributes.u8(IFLA.operState) ?? 0
        link.linkMode = try attributes.u8(IFLA.linkMode)
        link.mtu = try attributes.u32(IFLA.mtu)
        link.minMTU = try attributes.u32(IFLA.minMTU)
        link.maxMTU = try attributes.u32(IFLA.maxMTU)
        link.qdisc = attributes.string(IFLA.qdisc)
        link.txQueueLength = try attributes.u32(IFLA.txqlen)
        link.group = try attributes.u32(IFLA.group)
        link.promiscuity = try attributes.u32(IFLA.promiscuity)
        link.carrier = try attributes.bool(IFLA.carrier)
        link.address = attributes.linkAddress(IFLA.address)
        link.broadcast = attributes.linkAddress(IFLA.broadcast)
        link.permanentAddress = attributes.linkAddress(IFLA.permanentAddress)
        link.master = try attributes.i32(IFLA.master)
        link.link = try attributes.i32(IFLA.link)
        link.linkNetnsID = try attributes.i32(IFLA.linkNetnsID)
        link.alias = attributes.string(IFLA.ifalias)
        if let properties = try attributes.nested(IFLA.propList) {
            link.alternativeNames = properties.list.filter { $0.type == IFLA.altIfname }.map {
                String(decoding: $0.value.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        if let stats = attributes[IFLA.stats64] {
            link.statistics = LinkStatistics(stats64: stats)
        } else if let stats = attributes[IFLA.stats] {
            link.statistics = LinkStatistics(stats32: stats)
        }
        if let info = try attributes.nested(IFLA.linkInfo) {
            try link.decodeLinkInfo(info)
        }
        if link.family == AF.bridge, let protinfo = attributes[IFLA.protinfo] {
            link.bridgePort = try BridgePortInfo(try Attributes.parse(protinfo))
        }
        return link
    }

    /// IFLA_LINKINFO: the kind and its IFLA_INFO_DATA, and the port's view of its master.
    private mutating func decodeLinkInfo(_ info: Attributes) throws(DecodeError) {
        kind = info.string(IFLA.Info.kind)
        slaveKind = info.string(IFLA.Info.slaveKind)
        if let data = info[IFLA.Info.data], let kind {
            let attributes = try Attributes.parse(data)
            switch kind {
            case "vxlan": vxlan = try VXLANInfo(attributes)
            case "macvlan", "macvtap": macvlan = try MacvlanInfo(attributes)
            case "ipvlan", "ipvtap": ipvlan = try IPVlanInfo(attributes)
            case "bridge": bridge = try BridgeInfo(attributes)
            case "vrf": vrfTable = try attributes.u32(1 /* IFLA_VRF_TABLE */)
            case "bond": bondMode = try attributes.u8(1 /* IFLA_BOND_MODE */)
            default: break
            }
        }
        if slaveKind == "bridge", let data = info[IFLA.Info.slaveData] {
            bridgePort = try BridgePortInfo(try Attributes.parse(data))
        }
    }
}

/// Interface counters (struct rtnl_link_stats64, or the older 32-bit rtnl_link_stats).
public struct LinkStatistics: Sendable, Equatable {
    public var rxPackets: UInt64 = 0
    public var txPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var txBytes: UInt64 = 0
    public var rxErrors: UInt64 = 0
    public var txErrors: UInt64 = 0
    public var rxDropped: UInt64 = 0
    public var txDropped: UInt64 = 0
    public var multicast: UInt64 = 0

    public init() {}

    /// The first nine counters, in the order both structs start with; fields beyond a short value stay 0.
    private init(_ value: ArraySlice<UInt8>, width: Int) {
        func field(_ i: Int) -> UInt64 {
            let at = value.startIndex + i * width
            return width == 8 ? value.hostU64(at) ?? 0 : UInt64(value.hostU32(at) ?? 0)
        }
        rxPackets = field(0); txPackets = field(1); rxBytes = field(2); txBytes = field(3)
        rxErrors = field(4); txErrors = field(5); rxDropped = field(6); txDropped = field(7); multicast = field(8)
    }

    init(stats64 value: ArraySlice<UInt8>) { self.init(value, width: 8) }
    init(stats32 value: ArraySlice<UInt8>) { self.init(value, width: 4) }
}

/// IFLA_INFO_DATA of a vxlan device (IFLA_VXLAN_*), as `ip -d link` shows it.
public struct VXLANInfo: Sendable, Equatable {
    /// IFLA_VXLAN_ID.
    public var vni: UInt32?
    /// IFLA_VXLAN_GROUP/GROUP6: the remote endpoint, or a multicast group.
    public var groupOrRemote: IPAddress?
    /// IFLA_VXLAN_LOCAL/LOCAL6.
    public var local: IPAddress?
    /// IFLA_VXLAN_PORT (sent in network order): the UDP destination port.
    public var port: UInt16?
    /// IFLA_VXLAN_LINK: the underlying device.
    public var link: Int32?
    public var ttl: UInt8?
    public var learning: Bool?

    /// The unicast remote (`ip`'s "remote"); nil when the address is a multicast group.
    public var remote: IPAddress? { groupOrRemote.flatMap { $0.isMulticast ? nil : $0 } }
    /// The multicast group (`ip`'s "group").
    public var group: IPAddress? { groupOrRemote.flatMap { $0.isMulticast ? $0 : nil } }

    init(_ a: Attributes) throws(DecodeError) {
        vni = try a.u32(1)
        groupOrRemote = try a.address(2, family: .v4, "IFLA_VXLAN_GROUP")
        if groupOrRemote == nil { groupOrRemote = try a.address(16, family: .v6, "IFLA_VXLAN_GROUP6") }
        local = try a.address(4, family: .v4, "IFLA_VXLAN_LOCAL")
        if local == nil { local = try a.address(17, family: .v6, "IFLA_VXLAN_LOCAL6") }
        port = try a.netU16(15)
        link = try a.i32(3)
        ttl = try a.u8(5)
        learning = try a.bool(7)
    }
}

/// IFLA_INFO_DATA of a macvlan or macvtap device.
public struct MacvlanInfo: Sendable, Equatable {
    /// IFLA_MACVLAN_MODE: MACVLAN_MODE_* (1 private, 2 vepa, 4 bridge, 8 passthru, 16 source).
    public var mode: UInt32?

    public var modeName: String? { mode.map { named($0, [1: "private", 2: "vepa", 4: "bridge", 8: "passthru", 16: "source"]) } }

    init(_ a: Attributes) throws(DecodeError) { mode = try a.u32(1) }
}

/// IFLA_INFO_DATA of an ipvlan or ipvtap device.
public struct IPVlanInfo: Sendable, Equatable {
    /// IFLA_IPVLAN_MODE: 0 l2, 1 l3, 2 l3s.
    public var mode: UInt16?
    /// IFLA_IPVLAN_FLAGS: 0 bridge, 1 private, 2 vepa.
    public var flags: UInt16?

    public var modeName: String? { mode.map { named($0, [0: "l2", 1: "l3", 2: "l3s"]) } }
    public var flagsName: String? { flags.map { named($0, [0: "bridge", 1: "private", 2: "vepa"]) } }

    init(_ a: Attributes) throws(DecodeError) {
        mode = try a.u16(1)
        flags = try a.u16(2)
    }
}

/// IFLA_INFO_DATA of a bridge (IFLA_BR_*).
public struct BridgeInfo: Sendable, Equatable {
    /// IFLA_BR_STP_STATE: 0 off, 1 kernel STP, 2 user-space STP.
    public var stpState: UInt32?
    /// IFLA_BR_VLAN_FILTERING (absent on kernels built without bridge VLAN filtering).
    public var vlanFiltering: Bool?
    public var priority: UInt16?
    /// In centiseconds, as the kernel reports them.
    public var forwardDelay: UInt32?
    public var ageingTime: UInt32?

    init(_ a: Attributes) throws(DecodeError) {
        stpState = try a.u32(5)
        vlanFiltering = try a.bool(7)
        priority = try a.u16(6)
        forwardDelay = try a.u32(1)
        ageingTime = try a.u32(4)
    }
}

/// A bridge port's settings (IFLA_BRPORT_*).
public struct BridgePortInfo: Sendable, Equatable {
    /// IFLA_BRPORT_STATE: BR_STATE_* (0 disabled, 1 listening, 2 learning, 3 forwarding, 4 blocking).
    public var state: UInt8?
    public var priority: UInt16?
    public var cost: UInt32?
    /// IFLA_BRPORT_MODE: hairpin.
    public var hairpin: Bool?
    public var learning: Bool?
    public var unicastFlood: Bool?

    /// The state as `bridge link` and `ip -d link` name it.
    public var stateName: String? {
        state.map { named($0, [0: "disabled", 1: "listening", 2: "learning", 3: "forwarding", 4: "blocking"]) }
    }

    init(_ a: Attributes) throws(DecodeError) {
        state = try a.u8(1)
        priority = try a.u16(2)
        cost = try a.u32(3)
        hairpin = try a.bool(4)
        learning = try a.bool(8)
        unicastFlood = try a.bool(9)
    }
}

/// IFLA_* attribute types (linux/if_link.h).
enum IFLA {
    static let address: UInt16 = 1
    static let broadcast: UInt16 = 2
    static let ifname: UInt16 = 3
    static let mtu: UInt16 = 4
    static let link: UInt16 = 5
    static let qdisc: UInt16 = 6
    static let stats: UInt16 = 7
    static let master: UInt16 = 10
    static let protinfo: UInt16 = 12
    static let txqlen: UInt16 = 13
    static let operState: UInt16 = 16
    static let linkMode: UInt16 = 17
    static let linkInfo: UInt16 = 18
    static let ifalias: UInt16 = 20
    static let stats64: UInt16 = 23
    static let group: UInt16 = 27
    static let netNsFD: UInt16 = 28
    static let extMask: UInt16 = 29
    static let promiscuity: UInt16 = 30
    static let carrier: UInt16 = 33
    static let linkNetnsID: UInt16 = 37
    static let minMTU: UInt16 = 50
    static let maxMTU: UInt16 = 51
    static let propList: UInt16 = 52
    static let altIfname: UInt16 = 53
    static let permanentAddress: UInt16 = 54

    /// IFLA_INFO_* inside IFLA_LINKINFO.
    enum Info {
        static let kind: UInt16 = 1
        static let data: UInt16 = 2
        static let slaveKind: UInt16 = 4
        static let slaveData: UInt16 = 5
    }
}
