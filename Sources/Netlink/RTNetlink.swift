/// rtnetlink message types and the fixed family headers that open their payloads (linux/rtnetlink.h,
/// linux/if_link.h, linux/if_addr.h, linux/neighbour.h, linux/fib_rules.h).
///
/// `RTM_*` import from C as plain `Int`s and the structs as tuples of unnamed padding, so the module names
/// the types here and writes and reads the headers byte by byte: what goes on the wire is visible in one
/// place and the same on every architecture (netlink headers are host-endian, this is little-endian x86).
public enum RTM {
    public static let newLink: UInt16 = 16
    public static let delLink: UInt16 = 17
    public static let getLink: UInt16 = 18
    public static let newAddress: UInt16 = 20
    public static let delAddress: UInt16 = 21
    public static let getAddress: UInt16 = 22
    public static let newRoute: UInt16 = 24
    public static let delRoute: UInt16 = 25
    public static let getRoute: UInt16 = 26
    public static let newNeighbour: UInt16 = 28
    public static let delNeighbour: UInt16 = 29
    public static let getNeighbour: UInt16 = 30
    public static let newRule: UInt16 = 32
    public static let delRule: UInt16 = 33
    public static let getRule: UInt16 = 34

    /// The name of a message type for error messages and fixture annotations.
    public static func name(_ type: UInt16) -> String {
        switch type {
        case NLMsg.noop: "NLMSG_NOOP"
        case NLMsg.error: "NLMSG_ERROR"
        case NLMsg.done: "NLMSG_DONE"
        case newLink: "RTM_NEWLINK"
        case delLink: "RTM_DELLINK"
        case getLink: "RTM_GETLINK"
        case newAddress: "RTM_NEWADDR"
        case delAddress: "RTM_DELADDR"
        case getAddress: "RTM_GETADDR"
        case newRoute: "RTM_NEWROUTE"
        case delRoute: "RTM_DELROUTE"
        case getRoute: "RTM_GETROUTE"
        case newNeighbour: "RTM_NEWNEIGH"
        case delNeighbour: "RTM_DELNEIGH"
        case getNeighbour: "RTM_GETNEIGH"
        case newRule: "RTM_NEWRULE"
        case delRule: "RTM_DELRULE"
        case getRule: "RTM_GETRULE"
        default: "type \(type)"
        }
    }
}

/// Address families as the family headers carry them (AF_*).
public enum AF {
    public static let unspec: UInt8 = 0
    public static let inet: UInt8 = 2
    public static let bridge: UInt8 = 7
    public static let inet6: UInt8 = 10

    /// AF_INET or AF_INET6 for a family, AF_UNSPEC for nil (a dump of both).
    static func of(_ family: IPAddress.Family?) -> UInt8 { family?.rawValue ?? unspec }
}

/// The family headers, written as the kernel lays them out.
enum FamilyHeader {
    /// `struct ifinfomsg` (16 bytes): family, pad, type u16, index i32, flags u32, change u32.
    static let ifinfomsgSize = 16
    /// `struct ifaddrmsg` (8 bytes): family, prefixlen, flags, scope, index u32.
    static let ifaddrmsgSize = 8
    /// `struct rtmsg` (12 bytes): family, dst_len, src_len, tos, table, protocol, scope, type, flags u32.
    /// `struct fib_rule_hdr` has the same size and the same first four bytes.
    static let rtmsgSize = 12
    /// `struct ndmsg` (12 bytes): family, pad1, pad2 u16, ifindex i32, state u16, flags u8, type u8.
    static let ndmsgSize = 12

    static func ifinfomsg(family: UInt8 = AF.unspec, type: UInt16 = 0, index: Int32 = 0, flags: UInt32 = 0,
                          change: UInt32 = 0) -> [UInt8] {
        var out: [UInt8] = [family, 0]
        out.appendHost16(type)
        out.appendHost32(UInt32(bitPattern: index))
        out.appendHost32(flags)
        out.appendHost32(change)
        return out
    }

    static func ifaddrmsg(family: UInt8, prefixLength: UInt8 = 0, flags: UInt8 = 0, scope: UInt8 = 0,
                          index: Int32 = 0) -> [UInt8] {
        var out: [UInt8] = [family, prefixLength, flags, scope]
        out.appendHost32(UInt32(bitPattern: index))
        return out
    }

    static func rtmsg(family: UInt8, dstLength: UInt8 = 0, srcLength: UInt8 = 0, tos: UInt8 = 0, table: UInt8 = 0,
                      protocol: UInt8 = 0, scope: UInt8 = 0, type: UInt8 = 0, flags: UInt32 = 0) -> [UInt8] {
        var out: [UInt8] = [family, dstLength, srcLength, tos, table, `protocol`, scope, type]
        out.appendHost32(flags)
        return out
    }

    static func ndmsg(family: UInt8, index: Int32 = 0, state: UInt16 = 0, flags: UInt8 = 0, type: UInt8 = 0) -> [UInt8] {
        var out: [UInt8] = [family, 0, 0, 0]
        out.appendHost32(UInt32(bitPattern: index))
        out.appendHost16(state)
        out.append(flags)
        out.append(type)
        return out
    }

    /// Checks that a message's payload holds its family header and returns the attributes after it.
    static func attributes(after size: Int, of message: NetlinkMessage, _ what: String) throws(DecodeError) -> Attributes {
        guard message.payload.count >= size else {
            throw DecodeError("\(what) payload of \(message.payload.count) bytes, shorter than its \(size)-byte header", at: 0)
        }
        return try Attributes.parse(message.payload.dropFirst(size))
    }
}

extension NetlinkRequest {
    /// A request made of a message type, flags, a family header and nothing else yet. Its name, which
    /// kernel errors carry, is the message type followed by `detail` (what the request is about).
    init(type: UInt16, flags: UInt16 = 0, header: [UInt8], detail: String? = nil) {
        self.init(type: type, flags: flags, name: detail.map { "\(RTM.name(type)) \($0)" } ?? RTM.name(type))
        append(raw: header)
    }

    /// An IP address attribute (network order, 4 or 16 bytes).
    mutating func attribute(_ type: UInt16, address: IPAddress) { attribute(type, address.bytes) }
}

extension Attributes {
    /// An attribute that must hold an IP address of `family` (a length that fits neither is an error).
    func address(_ type: UInt16, family: IPAddress.Family, _ what: String) throws(DecodeError) -> IPAddress? {
        guard let value = self[type] else { return nil }
        guard value.count == (family == .v4 ? 4 : 16), let address = IPAddress(bytes: value) else {
            throw DecodeError("\(what) of \(value.count) bytes for an \(family == .v4 ? "IPv4" : "IPv6") message", at: 0)
        }
        return address
    }

    /// An attribute that holds an IP address of either family, told apart by its length.
    func anyAddress(_ type: UInt16, _ what: String) throws(DecodeError) -> IPAddress? {
        guard let value = self[type] else { return nil }
        guard let address = IPAddress(bytes: value) else { throw DecodeError("\(what) of \(value.count) bytes", at: 0) }
        return address
    }

    /// A link-layer address attribute (any length: Ethernet has 6, an IP tunnel 4 or 16, a tun device 0).
    func linkAddress(_ type: UInt16) -> MACAddress? { self[type].map { MACAddress(bytes: $0) } }

    /// A u8 attribute read as a boolean, as the kernel sends its on/off settings.
    func bool(_ type: UInt16) throws(DecodeError) -> Bool? { try u8(type).map { $0 != 0 } }
}

extension IPAddress.Family {
    var bitCount: UInt8 { self == .v4 ? 32 : 128 }
}

/// Builds an IP prefix from a header's prefix length and an address attribute, or throws.
func prefix(_ address: IPAddress, length: UInt8, _ what: String) throws(DecodeError) -> IPPrefix {
    guard let prefix = IPPrefix(address: address, length: length) else {
        throw DecodeError("\(what) prefix length \(length) longer than the address", at: 1)
    }
    return prefix
}
