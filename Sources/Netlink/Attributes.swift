/// One netlink attribute (struct nlattr): a type and a value, the value a slice of the message.
public struct Attribute: Sendable {
    public let type: UInt16
    public let isNested: Bool
    public let value: ArraySlice<UInt8>
}

/// The attributes of a message or of a nested attribute, parsed with every length checked.
public struct Attributes: Sendable {
    public private(set) var list: [Attribute]

    public init(_ list: [Attribute] = []) { self.list = list }

    static let nestedFlag: UInt16 = 0x8000
    static let byteOrderFlag: UInt16 = 0x4000

    /// Parses a run of attributes with the one attribute walker (`AttributeCursor`): a length below the
    /// header size or beyond the buffer is an error; fewer than four trailing bytes are alignment padding.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(DecodeError) -> Attributes {
        var list: [Attribute] = []
        list.reserveCapacity(16)
        var cursor = AttributeCursor(bytes)
        while let attribute = try cursor.next() { list.append(attribute) }
        return Attributes(list)
    }

    public subscript(type: UInt16) -> ArraySlice<UInt8>? {
        for attribute in list where attribute.type == type { return attribute.value }
        return nil
    }

    public func all(_ type: UInt16) -> [ArraySlice<UInt8>] {
        list.filter { $0.type == type }.map(\.value)
    }

    public func has(_ type: UInt16) -> Bool { self[type] != nil }

    // Fixed-size values: nil when the attribute is absent; a value shorter than its type is malformed,
    // which is an error, never "absent".
    public func u8(_ type: UInt16) throws(DecodeError) -> UInt8? { try fixed(type, 1) { $0.first! } }
    public func u16(_ type: UInt16) throws(DecodeError) -> UInt16? { try fixed(type, 2) { $0.hostU16($0.startIndex)! } }
    public func u32(_ type: UInt16) throws(DecodeError) -> UInt32? { try fixed(type, 4) { $0.hostU32($0.startIndex)! } }
    public func i32(_ type: UInt16) throws(DecodeError) -> Int32? { try u32(type).map { Int32(bitPattern: $0) } }
    public func u64(_ type: UInt16) throws(DecodeError) -> UInt64? { try fixed(type, 8) { $0.hostU64($0.startIndex)! } }
    public func netU16(_ type: UInt16) throws(DecodeError) -> UInt16? { try fixed(type, 2) { $0.netU16($0.startIndex)! } }
    public func netU32(_ type: UInt16) throws(DecodeError) -> UInt32? { try fixed(type, 4) { $0.netU32($0.startIndex)! } }

    private func fixed<T>(_ type: UInt16, _ size: Int, _ read: (ArraySlice<UInt8>) -> T) throws(DecodeError) -> T? {
        guard let value = self[type] else { return nil }
        guard value.count >= size else { throw DecodeError("attribute \(type) of \(value.count) bytes where \(size) are needed", at: 0) }
        return read(value)
    }

    /// A NUL-terminated string attribute (a missing terminator is tolerated).
    public func string(_ type: UInt16) -> String? {
        guard let value = self[type] else { return nil }
        let end = value.firstIndex(of: 0) ?? value.endIndex
        return String(decoding: value[value.startIndex..<end], as: UTF8.self)
    }

    public func nested(_ type: UInt16) throws(DecodeError) -> Attributes? {
        guard let value = self[type] else { return nil }
        return try Attributes.parse(value)
    }
}

/// Reads a run of netlink attributes one at a time instead of collecting them (`Attributes.parse`): a
/// conntrack dump of a hundred thousand entries has millions of attributes, nested three deep. Lengths
/// are checked the same way, so bad input is a `DecodeError`, never a crash or a loop.
struct AttributeCursor {
    private let bytes: ArraySlice<UInt8>
    private var at: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        at = bytes.startIndex
    }

    mutating func next() throws(DecodeError) -> Attribute? {
        guard bytes.endIndex - at >= 4 else { return nil }
        let length = Int(bytes.hostU16(at)!), rawType = bytes.hostU16(at + 2)!
        guard length >= 4 && length <= bytes.endIndex - at else {
            throw DecodeError("attribute \(rawType & 0x3fff) of length \(length) with \(bytes.endIndex - at) bytes left",
                              at: at - bytes.startIndex)
        }
        let value = bytes[(at + 4)..<(at + length)]
        at += align4(length)
        return Attribute(type: rawType & 0x3fff, isNested: rawType & Attributes.nestedFlag != 0, value: value)
    }
}
