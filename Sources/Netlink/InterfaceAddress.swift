/// An address on an interface as RTM_NEWADDR describes it (one entry of `ip -j addr`'s `addr_info`).
public struct InterfaceAddress: Sendable, Equatable {
    public var family: IPAddress.Family
    public var index: Int32
    public var prefixLength: UInt8
    /// ifa_scope: RT_SCOPE_* (0 global, 253 link, 254 host).
    public var scope: UInt8
    /// IFA_F_*: the 32-bit IFA_FLAGS when present (it carries the bits above 0xff), else ifa_flags.
    public var flags: UInt32
    /// IFA_ADDRESS: the address, or for a point-to-point link the peer's.
    public var address: IPAddress?
    /// IFA_LOCAL: the local address (IPv4 always sends it; IPv6 only with a peer).
    public var local: IPAddress?
    public var broadcast: IPAddress?
    public var anycast: IPAddress?
    /// IFA_LABEL (IPv4 only): the interface name, or `eth0:1` for an alias label.
    public var label: String?
    /// IFA_CACHEINFO.
    public var cacheInfo: AddressCacheInfo?
    /// IFA_PROTO: who added the address (IFAPROT_*), when the kernel records it.
    public var addressProtocol: UInt8?

    public init(family: IPAddress.Family, index: Int32, prefixLength: UInt8) {
        self.family = family
        self.index = index
        self.prefixLength = prefixLength
        scope = 0
        flags = 0
    }

    /// The interface's own address (`ip`'s "local": IFA_LOCAL, else IFA_ADDRESS) with the prefix length.
    public var prefix: IPPrefix? { (local ?? address).flatMap { IPPrefix(address: $0, length: prefixLength) } }

    /// The peer of a point-to-point address (`ip`'s "address" when it differs from "local").
    public var peer: IPAddress? {
        guard let local, let address, local != address else { return nil }
        return address
    }

    public var scopeName: String { RTNames.scope(scope) }

    /// The flags as `ip -j addr` prints them, in its order: "secondary" (IPv4) or "temporary" (IPv6),
    /// the IPv6 DAD states, "dynamic" for an address *without* IFA_F_PERMANENT (ip never prints
    /// "permanent" itself), "noprefixroute" …, then any unnamed rest as "flags XX".
    public var flagNames: [String] {
        var names: [String] = []
        var rest = flags
        for (bit, name) in AddressFlag.printOrder {
            if bit == AddressFlag.permanent {
                if flags & bit == 0 { names.append("dynamic") }
            } else if rest & bit != 0 {
                names.append(bit == AddressFlag.secondary && family == .v6 ? "temporary" : name)
            }
            rest &= ~bit
        }
        if rest != 0 { names.append("flags " + String(rest, radix: 16)) }
        return names
    }

    public var isPermanent: Bool { flags & AddressFlag.permanent != 0 }
    public var isTentative: Bool { flags & AddressFlag.tentative != 0 }

    /// Decodes RTM_NEWADDR; nil for a message of another type or of a family other than IPv4/IPv6.
    public static func decode(_ message: NetlinkMessage) throws(DecodeError) -> InterfaceAddress? {
        guard message.type == RTM.newAddress else { return nil }
        let attributes = try FamilyHeader.attributes(after: FamilyHeader.ifaddrmsgSize, of: message, "RTM_NEWADDR")
        let p = message.payload
        let s = p.startIndex
        guard let family = IPAddress.Family(rawValue: p[s]) else { return nil }
        guard p[s + 1] <= family.bitCount else { throw DecodeError("ifa_prefixlen \(p[s + 1]) too long", at: 1) }
        var entry = InterfaceAddress(family: family, index: Int32(bitPattern: p.hostU32(s + 4)!), prefixLength: p[s + 1])
        entry.flags = try attributes.u32(IFA.flags) ?? UInt32(p[s + 2])
        entry.scope = p[s + 3]
        entry.address = try attributes.address(IFA.address, family: family, "IFA_ADDRESS")
        entry.local = try attributes.address(IFA.local, family: family, "IFA_LOCAL")
        entry.broadcast = try attributes.address(IFA.broadcast, family: family, "IFA_BROADCAST")
        entry.anycast = try attributes.address(IFA.anycast, family: family, "IFA_ANYCAST")
        entry.label = attributes.string(IFA.label)
        entry.addressProtocol = try attributes.u8(IFA.proto)
        if let info = attributes[IFA.cacheInfo] {
            guard info.count >= 16 else { throw DecodeError("IFA_CACHEINFO of \(info.count) bytes", at: 0) }
            entry.cacheInfo = AddressCacheInfo(
                preferredLifetime: info.hostU32(info.startIndex)!, validLifetime: info.hostU32(info.startIndex + 4)!,
                created: info.hostU32(info.startIndex + 8)!, updated: info.hostU32(info.startIndex + 12)!)
        }
        guard entry.address != nil || entry.local != nil else {
            throw DecodeError("RTM_NEWADDR without IFA_ADDRESS or IFA_LOCAL", at: 8)
        }
        return entry
    }
}

/// struct ifa_cacheinfo: lifetimes in seconds (0xffffffff is "forever") and timestamps in hundredths
/// of a second since boot.
public struct AddressCacheInfo: Sendable, Equatable {
    public var preferredLifetime: UInt32
    public var validLifetime: UInt32
    public var created: UInt32
    public var updated: UInt32

    public static let forever: UInt32 = 0xffff_ffff
}

/// Address flags (IFA_F_*, linux/if_addr.h).
public enum AddressFlag {
    public static let secondary: UInt32 = 0x01
    public static let noDAD: UInt32 = 0x02
    public static let optimistic: UInt32 = 0x04
    public static let dadFailed: UInt32 = 0x08
    public static let homeAddress: UInt32 = 0x10
    public static let deprecated: UInt32 = 0x20
    public static let tentative: UInt32 = 0x40
    public static let permanent: UInt32 = 0x80
    public static let manageTempAddress: UInt32 = 0x100
    public static let noPrefixRoute: UInt32 = 0x200
    public static let mcAutoJoin: UInt32 = 0x400
    public static let stablePrivacy: UInt32 = 0x800

    /// iproute2's `ifa_flag_data` order and names.
    static let printOrder: [(UInt32, String)] = [
        (secondary, "secondary"), (noDAD, "nodad"), (optimistic, "optimistic"), (dadFailed, "dadfailed"),
        (homeAddress, "home"), (deprecated, "deprecated"), (tentative, "tentative"), (permanent, "permanent"),
        (manageTempAddress, "mngtmpaddr"), (noPrefixRoute, "noprefixroute"), (mcAutoJoin, "autojoin"),
        (stablePrivacy, "stable-privacy"),
    ]
}

/// IFA_* attribute types (linux/if_addr.h).
enum IFA {
    static let address: UInt16 = 1
    static let local: UInt16 = 2
    static let label: UInt16 = 3
    static let broadcast: UInt16 = 4
    static let anycast: UInt16 = 5
    static let cacheInfo: UInt16 = 6
    static let flags: UInt16 = 8
    static let proto: UInt16 = 11
}

/// How an IPv4 address gets its broadcast address (IFA_BROADCAST).
public enum BroadcastAddress: Sendable, Equatable {
    /// None, as a plain `ip addr add` sends (neither ip 6.1 nor the kernel computes one).
    case none
    /// `brd +`: the prefix with all host bits set, for prefixes up to /30 (as ip computes it).
    case computed
    /// `brd ADDR`.
    case address(IPAddress)
}

/// RTM_GETADDR, RTM_NEWADDR and RTM_DELADDR requests.
public enum AddressRequests {
    /// `ip addr show` (`ip -4`/`-6` for one family): RTM_GETADDR with NLM_F_DUMP. Under
    /// NETLINK_GET_STRICT_CHK the ifaddrmsg must be all zeros but the family; AF_UNSPEC dumps both.
    public static func dump(family: IPAddress.Family? = nil) -> NetlinkRequest {
        NetlinkRequest(type: RTM.getAddress, flags: NLMsg.dump, header: FamilyHeader.ifaddrmsg(family: AF.of(family)))
    }

    /// `ip addr add ADDR/LEN dev LINK [brd +|ADDR] [scope S] [label L] [nodad] [noprefixroute]`:
    /// RTM_NEWADDR with NLM_F_CREATE|NLM_F_EXCL, IFA_LOCAL and IFA_ADDRESS both the address (what ip sends
    /// without `peer`). Like ip, an IPv4 address in 127/8 gets scope host unless a scope is given.
    public static func add(_ prefix: IPPrefix, index: Int32, broadcast: BroadcastAddress = .none, scope: UInt8? = nil,
                           label: String? = nil, noDAD: Bool = false, noPrefixRoute: Bool = false) -> NetlinkRequest
    {
        var flags: UInt32 = 0
        if noDAD { flags |= AddressFlag.noDAD }
        if noPrefixRoute { flags |= AddressFlag.noPrefixRoute }
        let defaultScope: UInt8 = prefix.family == .v4 && prefix.address.bytes[0] == 127 ? 254 : 0
        var request = NetlinkRequest(
            type: RTM.newAddress, flags: NLMsg.create | NLMsg.exclusive,
            header: FamilyHeader.ifaddrmsg(family: prefix.family.rawValue, prefixLength: prefix.length,
                                           flags: flags <= 0xff ? UInt8(flags) : 0, scope: scope ?? defaultScope, index: index),
            detail: "\(prefix) ifindex \(index)")
        request.attribute(IFA.local, address: prefix.address)
        request.attribute(IFA.address, address: prefix.address)
        if prefix.family == .v4 {
            switch broadcast {
            case .none: break
            case .computed:
                if prefix.length <= 30, let value = prefix.address.v4Value {
                    let hostBits: UInt32 = prefix.length == 0 ? .max : (1 << (32 - UInt32(prefix.length))) - 1
                    request.attribute(IFA.broadcast, address: IPAddress(v4: value | hostBits))
                }
            case .address(let address): request.attribute(IFA.broadcast, address: address)
            }
        }
        if let label { request.attribute(IFA.label, string: label) }
        // As ip: flags that fit stay in ifa_flags, more go whole into IFA_FLAGS.
        if flags > 0xff { request.attribute(IFA.flags, u32: flags) }
        return request
    }

    /// `ip addr del ADDR/LEN dev LINK`: RTM_DELADDR with IFA_LOCAL and IFA_ADDRESS.
    public static func delete(_ prefix: IPPrefix, index: Int32) -> NetlinkRequest {
        var request = NetlinkRequest(
            type: RTM.delAddress,
            header: FamilyHeader.ifaddrmsg(family: prefix.family.rawValue, prefixLength: prefix.length, index: index),
            detail: "\(prefix) ifindex \(index)")
        request.attribute(IFA.local, address: prefix.address)
        request.attribute(IFA.address, address: prefix.address)
        return request
    }
}
