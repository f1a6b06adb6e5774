/// A netlink request under construction: header, family header, attributes. Lengths, sequence number
/// and port id are filled in when the socket sends it. Pure, so encodings are tested against goldens.
public struct NetlinkRequest: Sendable {
    public private(set) var bytes: [UInt8]
    public let name: String
    public let isDump: Bool
    private var nests: [Int] = []

    /// - Parameters:
    ///   - type: the message type (`RTM_GETLINK` …).
    ///   - flags: NLM_F_* besides NLM_F_REQUEST (and NLM_F_ACK, which the socket adds for non-dumps).
    ///   - name: the request's name for error messages.
    public init(type: UInt16, flags: UInt16 = 0, name: String) {
        self.name = name
        self.isDump = flags & NLMsg.dump == NLMsg.dump
        bytes = []
        bytes.reserveCapacity(64)
        bytes.appendHost32(0)               // nlmsg_len, patched
        bytes.appendHost16(type)
        bytes.appendHost16(NLMsg.request | flags)
        bytes.appendHost32(0)               // nlmsg_seq, patched
        bytes.appendHost32(0)               // nlmsg_pid: 0, the kernel fills in ours
    }

    public var type: UInt16 { UInt16(bytes[4]) | UInt16(bytes[5]) << 8 }
    public var flags: UInt16 { UInt16(bytes[6]) | UInt16(bytes[7]) << 8 }

    /// Appends raw bytes (a family header such as struct ifinfomsg), padded to 4.
    public mutating func append(raw: [UInt8]) {
        bytes.append(contentsOf: raw)
        bytes.alignTo4()
    }

    public mutating func attribute(_ type: UInt16, _ value: [UInt8]) {
        bytes.appendHost16(UInt16(4 + value.count))
        bytes.appendHost16(type)
        bytes.append(contentsOf: value)
        bytes.alignTo4()
    }

    public mutating func attribute(_ type: UInt16, u8 value: UInt8) { attribute(type, [value]) }
    public mutating func attribute(_ type: UInt16, u16 value: UInt16) {
        var v: [UInt8] = []
        v.appendHost16(value)
        attribute(type, v)
    }
    public mutating func attribute(_ type: UInt16, u32 value: UInt32) {
        var v: [UInt8] = []
        v.appendHost32(value)
        attribute(type, v)
    }
    public mutating func attribute(_ type: UInt16, i32 value: Int32) { attribute(type, u32: UInt32(bitPattern: value)) }
    public mutating func attribute(_ type: UInt16, string value: String) {
        attribute(type, Array(value.utf8) + [0])
    }
    public mutating func flag(_ type: UInt16) { attribute(type, []) }

    /// Opens a nested attribute (NLA_F_NESTED set); close it with `endNested()`.
    public mutating func beginNested(_ type: UInt16) {
        nests.append(bytes.count)
        bytes.appendHost16(0)
        bytes.appendHost16(type | Attributes.nestedFlag)
    }

    public mutating func endNested() {
        guard let start = nests.popLast() else { return }
        bytes.patchHost16(UInt16(bytes.count - start), at: start)
    }

    /// The request with its length, sequence number and port id set.
    public func encoded(sequence: UInt32, extraFlags: UInt16 = 0) -> [UInt8] {
        var out = bytes
        out.patchHost32(UInt32(out.count), at: 0)
        out.patchHost32(sequence, at: 8)
        if extraFlags != 0 { out.patchHost16(flags | extraFlags, at: 6) }
        return out
    }
}
