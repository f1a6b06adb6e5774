/// Why bytes from the kernel could not be decoded: what was being read and where. Decoders throw this
/// for truncated or malformed input instead of crashing or looping.
public struct DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    public let what: String
    public let offset: Int
    public init(_ what: String, at offset: Int) {
        self.what = what
        self.offset = offset
    }
    public var description: String { "malformed netlink data at byte \(offset): \(what)" }
}

/// Bounds-checked little helpers over byte slices. Netlink uses host byte order for its own headers and
/// attributes, network byte order for addresses and ports.
extension ArraySlice where Element == UInt8 {
    @inline(__always)
    func hostU16(_ at: Int) -> UInt16? {
        guard at >= startIndex, at + 2 <= endIndex else { return nil }
        return UInt16(self[at]) | UInt16(self[at + 1]) << 8
    }

    @inline(__always)
    func hostU32(_ at: Int) -> UInt32? {
        guard at >= startIndex, at + 4 <= endIndex else { return nil }
        return UInt32(self[at]) | UInt32(self[at + 1]) << 8 | UInt32(self[at + 2]) << 16 | UInt32(self[at + 3]) << 24
    }

    @inline(__always)
    func hostU64(_ at: Int) -> UInt64? {
        guard let lo = hostU32(at), let hi = hostU32(at + 4) else { return nil }
        return UInt64(lo) | UInt64(hi) << 32
    }

    @inline(__always)
    func netU16(_ at: Int) -> UInt16? {
        guard at >= startIndex, at + 2 <= endIndex else { return nil }
        return UInt16(self[at]) << 8 | UInt16(self[at + 1])
    }

    @inline(__always)
    func netU32(_ at: Int) -> UInt32? {
        guard at >= startIndex, at + 4 <= endIndex else { return nil }
        return UInt32(self[at]) << 24 | UInt32(self[at + 1]) << 16 | UInt32(self[at + 2]) << 8 | UInt32(self[at + 3])
    }
}

extension Array where Element == UInt8 {
    mutating func appendHost16(_ v: UInt16) { append(UInt8(v & 0xff)); append(UInt8(v >> 8)) }
    mutating func appendHost32(_ v: UInt32) {
        append(UInt8(v & 0xff)); append(UInt8((v >> 8) & 0xff)); append(UInt8((v >> 16) & 0xff)); append(UInt8(v >> 24))
    }
    mutating func appendNet16(_ v: UInt16) { append(UInt8(v >> 8)); append(UInt8(v & 0xff)) }
    mutating func appendNet32(_ v: UInt32) {
        append(UInt8(v >> 24)); append(UInt8((v >> 16) & 0xff)); append(UInt8((v >> 8) & 0xff)); append(UInt8(v & 0xff))
    }
    mutating func patchHost32(_ v: UInt32, at offset: Int) {
        self[offset] = UInt8(v & 0xff); self[offset + 1] = UInt8((v >> 8) & 0xff)
        self[offset + 2] = UInt8((v >> 16) & 0xff); self[offset + 3] = UInt8(v >> 24)
    }
    mutating func patchHost16(_ v: UInt16, at offset: Int) {
        self[offset] = UInt8(v & 0xff); self[offset + 1] = UInt8(v >> 8)
    }
    /// Pads with zeros to the next multiple of 4 (NLMSG_ALIGN / NLA_ALIGN).
    mutating func alignTo4() { while count % 4 != 0 { append(0) } }
}

@inline(__always) func align4(_ n: Int) -> Int { (n + 3) & ~3 }
