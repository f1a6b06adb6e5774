/// A link named by ifindex or by name. The kernel looks a name up itself (IFLA_IFNAME with ifi_index 0)
/// in RTM_NEWLINK, RTM_DELLINK and RTM_GETLINK; requests whose header needs an index (addresses,
/// routes, neighbours) need `.index`, which `NetlinkSession` resolves with one RTM_GETLINK, as `ip` does.
public enum LinkReference: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    case index(Int32)
    case name(String)

    public init(stringLiteral value: String) { self = .name(value) }

    public var description: String {
        switch self {
        case .index(let i): "ifindex \(i)"
        case .name(let n): n
        }
    }
}

/// What `ip link set` changes; every field left nil stays as it is. One RTM_NEWLINK carries them all.
public struct LinkChanges: Sendable, Equatable {
    /// IFF_UP in ifi_flags, with IFF_UP in ifi_change so no other flag moves.
    public var up: Bool?
    /// IFLA_MASTER: the master's ifindex, 0 to leave it (`nomaster`).
    public var master: Int32?
    /// IFLA_NET_NS_FD: move the link into the namespace open as this descriptor.
    public var namespaceFD: Int32?
    /// IFLA_IFALIAS; the empty string removes the alias.
    public var alias: String?
    public var mtu: UInt32?
    /// IFLA_ADDRESS.
    public var address: MACAddress?
    /// A new name (IFLA_IFNAME). Needs the link given by `.index`: with `.name`, IFLA_IFNAME is the key.
    public var name: String?

    public init(up: Bool? = nil, master: Int32? = nil, namespaceFD: Int32? = nil, alias: String? = nil,
                mtu: UInt32? = nil, address: MACAddress? = nil, name: String? = nil) {
        self.up = up
        self.master = master
        self.namespaceFD = namespaceFD
        self.alias = alias
        self.mtu = mtu
        self.address = address
        self.name = name
    }
}

/// RTM_GETLINK, RTM_NEWLINK and RTM_DELLINK requests, each the exact equivalent of the `ip` command in
/// its comment. Creations carry NLM_F_CREATE|NLM_F_EXCL, so an existing link is an error (EEXIST), never
/// silently reused.
public enum LinkRequests {
    /// `ip link show`: RTM_GETLINK with NLM_F_DUMP and an all-zero ifinfomsg, which is what
    /// NETLINK_GET_STRICT_CHK requires of a link dump (no index filter, no flags).
    ///
    /// Without `statistics`, IFLA_EXT_MASK carries RTEXT_FILTER_SKIP_STATS: the kernel then leaves out
    /// IFLA_STATS/IFLA_STATS64, which it would otherwise compute for every link by summing per-CPU
    /// counters (most of the cost of a link dump). `ip -s link` is the only view that prints them.
    public static func dump(statistics: Bool = true) -> NetlinkRequest {
        var request = NetlinkRequest(type: RTM.getLink, flags: NLMsg.dump, header: FamilyHeader.ifinfomsg())
        if !statistics { request.attribute(IFLA.extMask, u32: 1 << 3 /* RTEXT_FILTER_SKIP_STATS */) }
        return request
    }

    /// `ip link show dev NAME`: RTM_GETLINK for one link, answered with one RTM_NEWLINK.
    public static func get(_ link: LinkReference) -> NetlinkRequest {
        addressing(RTM.getLink, link)
    }

    /// `ip link add NAME [netns NS] type veth peer name PEER [netns PEERNS]`.
    ///
    /// RTM_NEWLINK with IFLA_LINKINFO { IFLA_INFO_KIND "veth", IFLA_INFO_DATA { VETH_INFO_PEER: a nested
    /// ifinfomsg, then the peer's IFLA_IFNAME and IFLA_NET_NS_FD } }. Either end may be placed in any
    /// namespace open as a descriptor in this process; an end without one is created in the namespace of
    /// the socket that sends the request.
    public static func createVeth(name: String, namespaceFD: Int32? = nil, peerName: String, peerNamespaceFD: Int32? = nil)
        -> NetlinkRequest
    {
        create(name: name, kind: "veth", namespaceFD: namespaceFD) { request in
            request.beginNested(1 /* VETH_INFO_PEER */)
            request.append(raw: FamilyHeader.ifinfomsg())
            request.attribute(IFLA.ifname, string: peerName)
            if let peerNamespaceFD { request.attribute(IFLA.netNsFD, u32: UInt32(bitPattern: peerNamespaceFD)) }
            request.endNested()
        }
    }

    /// `ip link add NAME [netns NS] type bridge [stp_state 0|1] [vlan_filtering 0|1]`.
    public static func createBridge(name: String, namespaceFD: Int32? = nil, stp: Bool? = nil, vlanFiltering: Bool? = nil)
        -> NetlinkRequest
    {
        let data: ((inout NetlinkRequest) -> Void)? =
            stp == nil && vlanFiltering == nil
            ? nil
            : { request in
                if let stp { request.attribute(5 /* IFLA_BR_STP_STATE */, u32: stp ? 1 : 0) }
                if let vlanFiltering { request.attribute(7 /* IFLA_BR_VLAN_FILTERING */, u8: vlanFiltering ? 1 : 0) }
            }
        return create(name: name, kind: "bridge", namespaceFD: namespaceFD, data: data)
    }

    /// `ip link add NAME [netns NS] type dummy`.
    public static func createDummy(name: String, namespaceFD: Int32? = nil) -> NetlinkRequest {
        create(name: name, kind: "dummy", namespaceFD: namespaceFD)
    }

    /// `ip link set dev LINK [up|down] [master M|nomaster] [netns NS] [alias A] [mtu N] [address MAC] [name N]`:
    /// RTM_NEWLINK without NLM_F_CREATE, which changes an existing link.
    public static func set(_ link: LinkReference, _ changes: LinkChanges) -> NetlinkRequest {
        var flags: UInt32 = 0
        var change: UInt32 = 0
        if let up = changes.up {
            flags = up ? LinkFlag.up : 0
            change = LinkFlag.up
        }
        var request = addressing(RTM.newLink, link, flags: flags, change: change)
        if let name = changes.name, case .index = link { request.attribute(IFLA.ifname, string: name) }
        if let mtu = changes.mtu { request.attribute(IFLA.mtu, u32: mtu) }
        if let address = changes.address { request.attribute(IFLA.address, address.bytes) }
        if let master = changes.master { request.attribute(IFLA.master, u32: UInt32(bitPattern: master)) }
        if let alias = changes.alias {
            // An empty IFLA_IFALIAS (no terminator) is how `ip link set dev X alias ""` removes it.
            if alias.isEmpty { request.attribute(IFLA.ifalias, []) } else { request.attribute(IFLA.ifalias, string: alias) }
        }
        if let fd = changes.namespaceFD { request.attribute(IFLA.netNsFD, u32: UInt32(bitPattern: fd)) }
        return request
    }

    /// `ip link set dev LINK up` / `down`.
    public static func setUp(_ link: LinkReference, _ up: Bool = true) -> NetlinkRequest { set(link, LinkChanges(up: up)) }

    /// `ip link set dev LINK master MASTER` (a master index of 0 is `nomaster`).
    public static func setMaster(_ link: LinkReference, master: Int32) -> NetlinkRequest {
        set(link, LinkChanges(master: master))
    }

    /// `ip link set dev LINK netns NS`, with NS open as `namespaceFD`.
    public static func move(_ link: LinkReference, toNamespaceFD namespaceFD: Int32) -> NetlinkRequest {
        set(link, LinkChanges(namespaceFD: namespaceFD))
    }

    /// `ip link delete dev LINK`: RTM_DELLINK by index or name (deleting one end of a veth deletes both).
    public static func delete(_ link: LinkReference) -> NetlinkRequest {
        addressing(RTM.delLink, link)
    }

    /// A request whose ifinfomsg names `link` by index, or by IFLA_IFNAME with index 0.
    private static func addressing(_ type: UInt16, _ link: LinkReference, flags: UInt32 = 0, change: UInt32 = 0)
        -> NetlinkRequest
    {
        switch link {
        case .index(let index):
            return NetlinkRequest(type: type, header: FamilyHeader.ifinfomsg(index: index, flags: flags, change: change),
                                  detail: link.description)
        case .name(let name):
            var request = NetlinkRequest(type: type, header: FamilyHeader.ifinfomsg(flags: flags, change: change), detail: name)
            request.attribute(IFLA.ifname, string: name)
            return request
        }
    }

    /// RTM_NEWLINK with NLM_F_CREATE|NLM_F_EXCL: IFLA_IFNAME, IFLA_NET_NS_FD, then IFLA_LINKINFO with the
    /// kind and, when `data` writes any, IFLA_INFO_DATA.
    private static func create(name: String, kind: String, namespaceFD: Int32?,
                               data: ((inout NetlinkRequest) -> Void)? = nil) -> NetlinkRequest {
        var request = NetlinkRequest(type: RTM.newLink, flags: NLMsg.create | NLMsg.exclusive, header: FamilyHeader.ifinfomsg(),
                                     detail: "\(name) type \(kind)")
        request.attribute(IFLA.ifname, string: name)
        if let namespaceFD { request.attribute(IFLA.netNsFD, u32: UInt32(bitPattern: namespaceFD)) }
        request.beginNested(IFLA.linkInfo)
        request.attribute(IFLA.Info.kind, string: kind)
        if let data {
            request.beginNested(IFLA.Info.data)
            data(&request)
            request.endNested()
        }
        request.endNested()
        return request
    }
}
