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

    /// Parses a run of attributes. A length below the header size or beyond the buffer is an error;
    /// fewer than four trailing bytes are alignment padding.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(DecodeError) -> Attributes {
        var list: [Attribute] = []
        list.reserveCapacity(16)
        var at = bytes.startIndex
        while bytes.endIndex - at >= 4 {
            let length = Int(bytes.hostU16(at)!)
            let rawType = bytes.hostU16(at + 2)!
            guard length >= 4 else { throw DecodeError("attribute length \(length) below 4", at: at - bytes.startIndex) }
            guard length <= bytes.endIndex - at else {
                throw DecodeError("attribute \(rawType & 0x3fff) length \(length) beyond the \(bytes.endIndex - at) bytes left",
                                  at: at - bytes.startIndex)
            }
            list.append(Attribute(type: rawType & ~(nestedFlag | byteOrderFlag), isNested: rawType & nestedFlag != 0,
                                  value: bytes[(at + 4)..<(at + length)]))
            at += align4(length)
        }
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

    public func u8(_ type: UInt16) -> UInt8? { self[type].flatMap { $0.first } }
    public func u16(_ type: UInt16) -> UInt16? { self[type].flatMap { $0.count >= 2 ? $0.hostU16($0.startIndex) : nil } }
    public func u32(_ type: UInt16) -> UInt32? { self[type].flatMap { $0.count >= 4 ? $0.hostU32($0.startIndex) : nil } }
    public func i32(_ type: UInt16) -> Int32? { u32(type).map { Int32(bitPattern: $0) } }
    public func u64(_ type: UInt16) -> UInt64? { self[type].flatMap { $0.count >= 8 ? $0.hostU64($0.startIndex) : nil } }
    public func netU16(_ type: UInt16) -> UInt16? { self[type].flatMap { $0.count >= 2 ? $0.netU16($0.startIndex) : nil } }
    public func netU32(_ type: UInt16) -> UInt32? { self[type].flatMap { $0.count >= 4 ? $0.netU32($0.startIndex) : nil } }

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
