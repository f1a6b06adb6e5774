/// An ARP (IPv4) or NDP (IPv6) cache entry as RTM_NEWNEIGH describes it (one entry of
/// `ip -j neigh show nud all`). Bridge forwarding entries, which share the message type, are `FDBEntry`.
public struct Neighbour: Sendable, Equatable {
    public var family: IPAddress.Family
    /// ndm_ifindex.
    public var index: Int32
    /// NDA_DST.
    public var destination: IPAddress
    /// NDA_LLADDR; nil while the entry is INCOMPLETE or FAILED.
    public var linkAddress: MACAddress?
    /// ndm_state: NUD_*.
    public var state: UInt16
    /// ndm_flags: NTF_*.
    public var flags: UInt8
    /// NDA_FLAGS_EXT: NTF_EXT_* (1 managed, 2 locked).
    public var extendedFlags: UInt32
    /// ndm_type: the route type of the destination (RTN_*).
    public var type: UInt8
    /// NDA_PROBES.
    public var probes: UInt32?
    /// NDA_PROTOCOL: who added the entry.
    public var neighbourProtocol: UInt8?

    public init(family: IPAddress.Family, index: Int32, destination: IPAddress) {
        self.family = family
        self.index = index
        self.destination = destination
        state = 0
        flags = 0
        extendedFlags = 0
        type = 0
    }

    /// The state as `ip -j neigh` prints it: ["REACHABLE"], ["STALE"], ["PERMANENT"], ["NONE"] for 0 …
    public var stateNames: [String] { RTNames.neighbourState(state) }
    /// NTF_ROUTER: the neighbour is an IPv6 router.
    public var isRouter: Bool { flags & NeighbourFlag.router != 0 }
    /// The flags as `ip -j neigh` prints them: "router", "proxy", "extern_learn", "offload", "managed".
    public var flagNames: [String] {
        namedFlags(flags, [(NeighbourFlag.router, "router"), (NeighbourFlag.proxy, "proxy"),
                           (NeighbourFlag.externLearned, "extern_learn"), (NeighbourFlag.offloaded, "offload")])
            + (extendedFlags & 1 != 0 ? ["managed"] : [])
    }

    /// Decodes RTM_NEWNEIGH of AF_INET or AF_INET6; nil for another type or family (AF_BRIDGE is `FDBEntry`).
    public static func decode(_ message: NetlinkMessage) throws(DecodeError) -> Neighbour? {
        guard message.type == RTM.newNeighbour, let first = message.payload.first,
            let family = IPAddress.Family(rawValue: first)
        else { return nil }
        let header = try NeighbourHeader(message)
        guard let destination = try header.attributes.address(NDA.dst, family: family, "NDA_DST") else {
            throw DecodeError("RTM_NEWNEIGH without NDA_DST", at: 12)
        }
        var entry = Neighbour(family: family, index: header.index, destination: destination)
        entry.linkAddress = header.attributes.linkAddress(NDA.lladdr)
        entry.state = header.state
        entry.flags = header.flags
        entry.extendedFlags = try header.attributes.u32(NDA.flagsExt) ?? 0
        entry.type = header.type
        entry.probes = try header.attributes.u32(NDA.probes)
        entry.neighbourProtocol = try header.attributes.u8(NDA.neighbourProtocol)
        return entry
    }
}

/// A bridge forwarding-database entry (RTM_NEWNEIGH of family AF_BRIDGE, as `bridge -j fdb show` lists
/// it): which port a MAC address was learned on or is pinned to.
public struct FDBEntry: Sendable, Equatable {
    /// NDA_LLADDR.
    public var linkAddress: MACAddress
    /// ndm_ifindex: the port (or, for an entry of the bridge itself, the bridge).
    public var index: Int32
    /// NDA_MASTER: the bridge the port belongs to.
    public var master: Int32?
    /// NDA_VLAN.
    public var vlan: UInt16?
    /// ndm_state: NUD_PERMANENT (a local address), NUD_NOARP (static), NUD_REACHABLE (learned) …
    public var state: UInt16
    /// ndm_flags: NTF_SELF (the device's own table), NTF_MASTER (the bridge's table) …
    public var flags: UInt8
    /// NDA_DST: a vxlan entry's remote endpoint.
    public var destination: IPAddress?
    /// NDA_VNI, NDA_PORT (network order) of a vxlan entry.
    public var vni: UInt32?
    public var port: UInt16?
    /// NDA_LINK_NETNSID.
    public var linkNetnsID: Int32?

    public init(linkAddress: MACAddress, index: Int32) {
        self.linkAddress = linkAddress
        self.index = index
        state = 0
        flags = 0
    }

    /// The state as `bridge fdb` prints it: "permanent", "static", "stale", "" for a learned entry.
    public var stateName: String {
        if state & NeighbourState.permanent != 0 { return "permanent" }
        if state & NeighbourState.noARP != 0 { return "static" }
        if state & NeighbourState.stale != 0 { return "stale" }
        if state & NeighbourState.reachable != 0 { return "" }
        return "0x" + String(state, radix: 16)
    }

    /// The flags as `bridge -j fdb` prints them, in its order.
    public var flagNames: [String] {
        namedFlags(flags, [(NeighbourFlag.selfEntry, "self"), (NeighbourFlag.router, "router"),
                           (NeighbourFlag.externLearned, "extern_learn"), (NeighbourFlag.offloaded, "offload"),
                           (NeighbourFlag.master, "master"), (NeighbourFlag.sticky, "sticky")])
    }

    /// Decodes RTM_NEWNEIGH of AF_BRIDGE; nil for another type or family.
    public static func decode(_ message: NetlinkMessage) throws(DecodeError) -> FDBEntry? {
        guard message.type == RTM.newNeighbour, message.payload.first == AF.bridge else { return nil }
        let header = try NeighbourHeader(message)
        guard let lladdr = header.attributes.linkAddress(NDA.lladdr) else {
            throw DecodeError("AF_BRIDGE RTM_NEWNEIGH without NDA_LLADDR", at: 12)
        }
        var entry = FDBEntry(linkAddress: lladdr, index: header.index)
        entry.master = try header.attributes.i32(NDA.master)
        entry.vlan = try header.attributes.u16(NDA.vlan)
        entry.state = header.state
        entry.flags = header.flags
        entry.destination = try header.attributes.anyAddress(NDA.dst, "NDA_DST")
        entry.vni = try header.attributes.u32(NDA.vni)
        entry.port = try header.attributes.netU16(NDA.port)
        entry.linkNetnsID = try header.attributes.i32(NDA.linkNetnsID)
        return entry
    }
}

/// struct ndmsg and the attributes after it, shared by both kinds of RTM_NEWNEIGH.
private struct NeighbourHeader {
    let index: Int32
    let state: UInt16
    let flags: UInt8
    let type: UInt8
    let attributes: Attributes

    init(_ message: NetlinkMessage) throws(DecodeError) {
        attributes = try FamilyHeader.attributes(after: FamilyHeader.ndmsgSize, of: message, "RTM_NEWNEIGH")
        let p = message.payload
        index = Int32(bitPattern: p.hostU32(p.startIndex + 4)!)
        state = p.hostU16(p.startIndex + 8)!
        flags = p[p.startIndex + 10]
        type = p[p.startIndex + 11]
    }
}

/// Neighbour flags (NTF_*, linux/neighbour.h).
public enum NeighbourFlag {
    public static let use: UInt8 = 0x01
    public static let selfEntry: UInt8 = 0x02
    public static let master: UInt8 = 0x04
    public static let proxy: UInt8 = 0x08
    public static let externLearned: UInt8 = 0x10
    public static let offloaded: UInt8 = 0x20
    public static let sticky: UInt8 = 0x40
    public static let router: UInt8 = 0x80
}

/// NDA_* attribute types (linux/neighbour.h).
enum NDA {
    static let dst: UInt16 = 1
    static let lladdr: UInt16 = 2
    static let probes: UInt16 = 4
    static let vlan: UInt16 = 5
    static let port: UInt16 = 6
    static let vni: UInt16 = 7
    static let master: UInt16 = 9
    static let linkNetnsID: UInt16 = 10
    static let neighbourProtocol: UInt16 = 12
    static let flagsExt: UInt16 = 15
}

/// RTM_GETNEIGH, RTM_NEWNEIGH and RTM_DELNEIGH requests.
public enum NeighbourRequests {
    /// `ip neigh show nud all` (`-4`/`-6` for one family): RTM_GETNEIGH with NLM_F_DUMP and an ndmsg of
    /// zeros but the family, as strict checking requires. AF_UNSPEC dumps the ARP and NDP caches, not the FDB.
    public static func dump(family: IPAddress.Family? = nil) -> NetlinkRequest {
        NetlinkRequest(type: RTM.getNeighbour, flags: NLMsg.dump, header: FamilyHeader.ndmsg(family: AF.of(family)))
    }

    /// `bridge fdb show [br BRIDGE]`: RTM_GETNEIGH of AF_BRIDGE with NLM_F_DUMP, optionally only the
    /// entries of one bridge (NDA_MASTER). Strict checking wants an ndmsg of zeros but the family.
    public static func fdbDump(master: Int32? = nil) -> NetlinkRequest {
        var request = NetlinkRequest(type: RTM.getNeighbour, flags: NLMsg.dump, header: FamilyHeader.ndmsg(family: AF.bridge))
        if let master { request.attribute(NDA.master, u32: UInt32(bitPattern: master)) }
        return request
    }

    /// `ip neigh add ADDR lladdr MAC dev LINK nud permanent`: RTM_NEWNEIGH with NLM_F_CREATE|NLM_F_EXCL.
    public static func addPermanent(_ address: IPAddress, linkAddress: MACAddress, index: Int32) -> NetlinkRequest {
        var request = NetlinkRequest(
            type: RTM.newNeighbour, flags: NLMsg.create | NLMsg.exclusive,
            header: FamilyHeader.ndmsg(family: address.addressFamily, index: index, state: NeighbourState.permanent),
            detail: "\(address) ifindex \(index)")
        request.attribute(NDA.dst, address: address)
        request.attribute(NDA.lladdr, linkAddress.bytes)
        return request
    }

    /// `ip neigh del ADDR dev LINK`: RTM_DELNEIGH.
    public static func delete(_ address: IPAddress, index: Int32) -> NetlinkRequest {
        var request = NetlinkRequest(type: RTM.delNeighbour,
                                     header: FamilyHeader.ndmsg(family: address.addressFamily, index: index),
                                     detail: "\(address) ifindex \(index)")
        request.attribute(NDA.dst, address: address)
        return request
    }
}
