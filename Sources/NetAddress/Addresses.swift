#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address, held inline (two words and the family: no heap), so that a table of a
/// hundred thousand conntrack entries or a million trace events allocates nothing per address. Printed
/// exactly as glibc's inet_ntop prints it.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public enum Family: UInt8, Sendable { case v4 = 2, v6 = 10 }  // AF_INET, AF_INET6

    /// The address's 16 bytes in network order as two words, most significant first; an IPv4 address is
    /// the top 32 bits of `high`, the rest zero.
    public let high: UInt64
    public let low: UInt64
    public let family: Family

    /// AF_INET or AF_INET6.
    public var addressFamily: UInt8 { family.rawValue }
    /// 4 or 6.
    public var version: UInt8 { family == .v4 ? 4 : 6 }

    /// From the two words (bits an IPv4 address does not have are cleared).
    public init(high: UInt64, low: UInt64, family: Family) {
        self.family = family
        self.high = family == .v4 ? high & 0xffff_ffff_0000_0000 : high
        self.low = family == .v4 ? 0 : low
    }

    /// From network-order bytes: 4 for IPv4, 16 for IPv6; nil otherwise.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        var high: UInt64 = 0, low: UInt64 = 0
        for (i, byte) in bytes.enumerated() {
            if i < 8 { high |= UInt64(byte) << UInt64(56 - 8 * i) } else { low |= UInt64(byte) << UInt64(120 - 8 * i) }
        }
        self.init(high: high, low: low, family: bytes.count == 4 ? .v4 : .v6)
    }

    /// From a slice of network-order bytes (a netlink attribute's value), loaded a word at a time: every
    /// decoder reads its addresses here, a conntrack table four per entry (inlinable: a call across the
    /// module per address was 4 % of `conntrack` on a table of 100 000).
    @inlinable
    public init?(bytes: ArraySlice<UInt8>) {
        let count = bytes.count
        guard count == 4 || count == 16 else { return nil }
        let (high, low) = bytes.withUnsafeBytes { raw -> (UInt64, UInt64) in
            if count == 4 { return (UInt64(UInt32(bigEndian: raw.loadUnaligned(as: UInt32.self))) << 32, 0) }
            return (UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)), UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        self.init(high: high, low: low, family: count == 4 ? .v4 : .v6)
    }

    @inlinable
    public init?(bytes: [UInt8]) { self.init(bytes: bytes[...]) }

    public init(v4 value: UInt32) {
        self.init(high: UInt64(value) << 32, low: 0, family: .v4)
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` and an embedded IPv4 tail).
    public init?(_ text: String) {
        if text.contains(":") {
            guard let b = IPAddress.parseV6(text) else { return nil }
            self.init(bytes: b)
        } else {
            guard let b = IPAddress.parseV4(Substring(text)) else { return nil }
            self.init(bytes: b)
        }
    }

    /// The network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        (0..<(family == .v4 ? 4 : 16)).map { byte($0) }
    }

    /// 32 or 128: the longest prefix of the family.
    public var bitWidth: Int { family == .v4 ? 32 : 128 }

    /// Byte `i` in network order.
    @inline(__always) public func byte(_ i: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: (i < 8 ? high : low) >> UInt64(56 - 8 * (i % 8)))
    }

    /// 16-bit group `i` (0…7) of an IPv6 address.
    @inline(__always) func group(_ i: Int) -> UInt16 {
        UInt16(truncatingIfNeeded: (i < 4 ? high : low) >> UInt64(48 - 16 * (i % 4)))
    }

    public var v4Value: UInt32? { family == .v4 ? UInt32(truncatingIfNeeded: high >> 32) : nil }

    public var isUnspecified: Bool { high == 0 && low == 0 }
    public var isLoopback: Bool { family == .v4 ? byte(0) == 127 : high == 0 && low == 1 }
    public var isLinkLocal: Bool { family == .v4 ? byte(0) == 169 && byte(1) == 254 : byte(0) == 0xfe && byte(1) & 0xc0 == 0x80 }
    public var isMulticast: Bool { family == .v4 ? byte(0) & 0xf0 == 0xe0 : byte(0) == 0xff }

    /// IPv4 before IPv6, then by value.
    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        (a.family == .v4 ? 0 : 1, a.high, a.low) < (b.family == .v4 ? 0 : 1, b.high, b.low)
    }

    public var description: String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 46) { buffer in
            let n = format(into: buffer)
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[0..<n]), as: UTF8.self)
        }
    }

    /// Appends the text to a byte buffer without making a String (a conntrack table writes four
    /// addresses per entry: IPv4 goes straight from the word to the buffer).
    public func append(to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 46) { buffer in
            let n = format(into: buffer)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    /// Writes `a.b.c.d` at `start`; returns the end.
    @inline(__always)
    static func dottedQuad(_ value: UInt32, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        var n = start
        for i in 0..<4 {
            if i > 0 {
                buffer[n] = UInt8(ascii: ".")
                n += 1
            }
            let octet = UInt8(truncatingIfNeeded: value >> UInt32(24 - 8 * i))
            if octet >= 100 {
                buffer[n] = 48 + octet / 100
                n += 1
            }
            if octet >= 10 {
                buffer[n] = 48 + (octet / 10) % 10
                n += 1
            }
            buffer[n] = 48 + octet % 10
            n += 1
        }
        return n
    }

    /// Writes the text (at most 45 bytes) the way glibc's inet_ntop does: IPv4 as a dotted quad; IPv6 in
    /// lower-case hex groups without leading zeros, the first longest run of two or more zero groups as
    /// `::`, and the last 32 bits as a dotted quad when that run is the first six groups (IPv4-compatible,
    /// `::1.2.3.4`) or the first five followed by ffff (IPv4-mapped, `::ffff:1.2.3.4`).
    func format(into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        if family == .v4 { return Self.dottedQuad(UInt32(truncatingIfNeeded: high >> 32), into: buffer, at: 0) }
        var n = 0
        func put(_ c: UInt8) { buffer[n] = c; n += 1 }
        var bestStart = -1, bestLength = 0, i = 0
        while i < 8 {
            guard group(i) == 0 else { i += 1; continue }
            var j = i
            while j < 8 && group(j) == 0 { j += 1 }
            if j - i > bestLength { bestStart = i; bestLength = j - i }
            i = j
        }
        if bestLength < 2 { bestStart = -1 }
        i = 0
        while i < 8 {
            if i == bestStart {
                put(UInt8(ascii: ":"))
                if i == 0 { put(UInt8(ascii: ":")) }
                i += bestLength
                if i == 8 { break }
                continue
            }
            if i == 6 && bestStart == 0 && (bestLength == 6 || (bestLength == 5 && group(5) == 0xffff)) {
                return Self.dottedQuad(UInt32(truncatingIfNeeded: low), into: buffer, at: n)
            }
            let g = group(i)
            var started = false
            for shift in stride(from: 12, through: 0, by: -4) {
                let digit = UInt8(truncatingIfNeeded: g >> UInt16(shift)) & 0xf
                if digit != 0 || started || shift == 0 { put(digit < 10 ? 48 + digit : 87 + digit); started = true }
            }
            if i < 7 { put(UInt8(ascii: ":")) }
            i += 1
        }
        return n
    }

    static func parseV4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let v = UInt8(part),
                !(part.count > 1 && part.first == "0")
            else { return nil }
            out.append(v)
        }
        return out
    }

    static func parseV6(_ text: String) -> [UInt8]? {
        var groups: [UInt16] = []
        var tail: [UInt8] = []
        var gap: Int?
        let halves = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }
        func parseGroups(_ s: String, allowV4Tail: Bool) -> [UInt16]? {
            if s.isEmpty { return [] }
            var result: [UInt16] = []
            let items = s.split(separator: ":", omittingEmptySubsequences: false)
            for (i, item) in items.enumerated() {
                if allowV4Tail && i == items.count - 1 && item.contains(".") {
                    guard let v4 = parseV4(item) else { return nil }
                    tail = v4
                    continue
                }
                guard !item.isEmpty, item.count <= 4, let v = UInt16(item, radix: 16) else { return nil }
                result.append(v)
            }
            return result
        }
        if halves.count == 2 {
            guard let head = parseGroups(halves[0], allowV4Tail: false),
                let rest = parseGroups(halves[1], allowV4Tail: true)
            else { return nil }
            groups = head
            gap = head.count
            groups += rest
        } else {
            guard let all = parseGroups(halves[0], allowV4Tail: true) else { return nil }
            groups = all
        }
        let total = groups.count * 2 + tail.count
        if let gap {
            guard total <= 14 else { return nil }
            let zeros = [UInt16](repeating: 0, count: (16 - total) / 2)
            groups.insert(contentsOf: zeros, at: gap)
        } else {
            guard total == 16 else { return nil }
        }
        var out: [UInt8] = []
        for g in groups { out.append(UInt8(g >> 8)); out.append(UInt8(g & 0xff)) }
        return out + tail
    }
}

/// An address with a prefix length: `10.0.1.10/24` (an interface address) or `10.0.1.0/24` (a network).
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: UInt8

    public init?(address: IPAddress, length: UInt8) {
        guard Int(length) <= address.bitWidth else { return nil }
        self.address = address
        self.length = length
    }

    /// Parses `ADDR/LEN`; with `requireLength: false`, a bare address gets the full length.
    public init?(_ text: String, requireLength: Bool = true) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(String(parts[0])) else { return nil }
        if parts.count == 2 {
            guard parts[1].allSatisfy(\.isASCII), let length = UInt8(parts[1]) else { return nil }
            self.init(address: address, length: length)
        } else {
            guard !requireLength else { return nil }
            self.init(address: address, length: UInt8(address.bitWidth))
        }
    }

    /// The default route's prefix for a family (0.0.0.0/0 or ::/0).
    public static func any(_ family: IPAddress.Family) -> IPPrefix {
        IPPrefix(address: IPAddress(bytes: [UInt8](repeating: 0, count: family == .v4 ? 4 : 16))!, length: 0)!
    }

    public var family: IPAddress.Family { address.family }

    /// The network: the address with the host bits cleared.
    public var network: IPPrefix {
        IPPrefix(address: masked(address), length: length)!
    }

    /// `a` with every bit after the first `length` cleared, on the two words (an IPv4 address is the top
    /// of `high`): no array per call, as route lookups test every route's prefix.
    private func masked(_ a: IPAddress) -> IPAddress {
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? .max : ~(UInt64.max >> UInt64(bits)) }
        return IPAddress(high: a.high & mask(Int(length)), low: a.low & mask(Int(length) - 64), family: a.family)
    }

    /// Whether `other` lies inside this prefix.
    public func contains(_ other: IPAddress) -> Bool {
        guard other.family == family else { return false }
        return masked(other) == masked(address)
    }

    /// Whether the two prefixes share any address.
    public func overlaps(_ other: IPPrefix) -> Bool {
        guard other.family == family else { return false }
        return length <= other.length ? contains(other.address) : other.contains(address)
    }

    public var description: String { "\(address)/\(length)" }
}

/// A link-layer address (usually 6 bytes of Ethernet), printed as ip prints it: `aa:bb:cc:dd:ee:ff`.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init<C: Collection>(bytes: C) where C.Element == UInt8 { self.bytes = Array(bytes) }

    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        guard !parts.isEmpty else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard p.count <= 2, let v = UInt8(p, radix: 16) else { return nil }
            out.append(v)
        }
        bytes = out
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    public var description: String {
        guard !bytes.isEmpty else { return "" }
        return String(unsafeUninitializedCapacity: bytes.count * 3 - 1) { buffer in
            var i = 0
            for (n, byte) in bytes.enumerated() {
                if n > 0 { buffer[i] = UInt8(ascii: ":"); i += 1 }
                buffer[i] = MACAddress.hex[Int(byte >> 4)]
                buffer[i + 1] = MACAddress.hex[Int(byte & 0xf)]
                i += 2
            }
            return i
        }
    }

    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }
}
