/// An IPv4 or IPv6 address, stored as its network-order bytes (4 or 16).
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public enum Family: UInt8, Sendable { case v4 = 2, v6 = 10 }  // AF_INET, AF_INET6

    public let bytes: [UInt8]

    public var family: Family { bytes.count == 4 ? .v4 : .v6 }
    /// AF_INET or AF_INET6.
    public var addressFamily: UInt8 { family.rawValue }

    /// From network-order bytes: 4 for IPv4, 16 for IPv6; nil otherwise.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = Array(bytes)
    }

    public init(v4 value: UInt32) {
        bytes = [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` and an embedded IPv4 tail).
    public init?(_ text: String) {
        if text.contains(":") {
            guard let b = IPAddress.parseV6(text) else { return nil }
            bytes = b
        } else {
            guard let b = IPAddress.parseV4(Substring(text)) else { return nil }
            bytes = b
        }
    }

    public var v4Value: UInt32? {
        guard bytes.count == 4 else { return nil }
        return UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])
    }

    public var isUnspecified: Bool { bytes.allSatisfy { $0 == 0 } }
    public var isLoopback: Bool { family == .v4 ? bytes[0] == 127 : bytes == [UInt8](repeating: 0, count: 15) + [1] }
    public var isLinkLocal: Bool { family == .v4 ? bytes[0] == 169 && bytes[1] == 254 : bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 }
    public var isMulticast: Bool { family == .v4 ? bytes[0] & 0xf0 == 0xe0 : bytes[0] == 0xff }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        a.bytes.count != b.bytes.count ? a.bytes.count < b.bytes.count : a.bytes.lexicographicallyPrecedes(b.bytes)
    }

    public var description: String {
        guard family == .v4 else { return IPAddress.formatV6(bytes) }
        return String(unsafeUninitializedCapacity: 15) { buffer in
            var i = 0
            for (n, byte) in bytes.enumerated() {
                if n > 0 { buffer[i] = UInt8(ascii: "."); i += 1 }
                if byte >= 100 { buffer[i] = 48 + byte / 100; i += 1 }
                if byte >= 10 { buffer[i] = 48 + (byte / 10) % 10; i += 1 }
                buffer[i] = 48 + byte % 10
                i += 1
            }
            return i
        }
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

    /// RFC 5952: lower case, leading zeros dropped, the longest run of two or more zero groups as `::`.
    static func formatV6(_ b: [UInt8]) -> String {
        let groups = (0..<8).map { UInt16(b[2 * $0]) << 8 | UInt16(b[2 * $0 + 1]) }
        if groups[0..<5].allSatisfy({ $0 == 0 }) && groups[5] == 0xffff {
            return "::ffff:" + b[12...].map(String.init).joined(separator: ".")
        }
        var bestStart = -1, bestLength = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLength && j - i >= 2 { bestStart = i; bestLength = j - i }
                i = j
            } else {
                i += 1
            }
        }
        func hex(_ range: Range<Int>) -> String { groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }
}

/// An address with a prefix length: `10.0.1.10/24` (an interface address) or `10.0.1.0/24` (a network).
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: UInt8

    public init?(address: IPAddress, length: UInt8) {
        guard Int(length) <= address.bytes.count * 8 else { return nil }
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
            self.init(address: address, length: UInt8(address.bytes.count * 8))
        }
    }

    /// The default route's prefix for a family (0.0.0.0/0 or ::/0).
    public static func any(_ family: IPAddress.Family) -> IPPrefix {
        IPPrefix(address: IPAddress(bytes: [UInt8](repeating: 0, count: family == .v4 ? 4 : 16))!, length: 0)!
    }

    public var family: IPAddress.Family { address.family }

    /// The network: the address with the host bits cleared.
    public var network: IPPrefix {
        IPPrefix(address: IPAddress(bytes: masked(address.bytes))!, length: length)!
    }

    private func masked(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        for i in out.indices {
            let bitsBefore = i * 8
            if bitsBefore >= Int(length) {
                out[i] = 0
            } else if bitsBefore + 8 > Int(length) {
                out[i] &= UInt8(0xff) << UInt8(8 - (Int(length) - bitsBefore))
            }
        }
        return out
    }

    /// Whether `other` lies inside this prefix.
    public func contains(_ other: IPAddress) -> Bool {
        guard other.family == family else { return false }
        return masked(other.bytes) == masked(address.bytes)
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
