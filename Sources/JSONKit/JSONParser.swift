/// Why a JSON text could not be read, with the byte offset where reading stopped.
public struct JSONParseError: Error, Equatable, CustomStringConvertible, Sendable {
    public let offset: Int
    public let reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

extension JSON {
    /// Parses one JSON document (RFC 8259). Nesting is limited so hostile input cannot exhaust the stack.
    public static func parse(_ text: String) throws(JSONParseError) -> JSON {
        try parse(Array(text.utf8))
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSON {
        var parser = Parser(bytes: bytes)
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.at == bytes.count else { throw parser.fail("trailing characters") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var at = 0
        static let maxDepth = 512

        func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: at, reason: reason) }

        mutating func skipSpace() {
            while at < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[at]) { at += 1 }
        }

        mutating func expect(_ literal: String, _ value: JSON) throws(JSONParseError) -> JSON {
            for byte in literal.utf8 {
                guard at < bytes.count, bytes[at] == byte else { throw fail("expected \(literal)") }
                at += 1
            }
            return value
        }

        mutating func value(depth: Int) throws(JSONParseError) -> JSON {
            guard depth < Parser.maxDepth else { throw fail("nested too deeply") }
            guard at < bytes.count else { throw fail("unexpected end") }
            switch bytes[at] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw fail("unexpected character")
            }
        }

        mutating func object(depth: Int) throws(JSONParseError) -> JSON {
            at += 1
            var members: [JSON.Member] = []
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "}") { at += 1; return .object(members) }
            while true {
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                let key = try string()
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                at += 1
                skipSpace()
                members.append(JSON.Member(key, try value(depth: depth + 1)))
                skipSpace()
                guard at < bytes.count else { throw fail("unexpected end in object") }
                if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                if bytes[at] == UInt8(ascii: "}") { at += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) throws(JSONParseError) -> JSON {
            at += 1
            var elements: [JSON] = []
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "]") { at += 1; return .array(elements) }
            while true {
                skipSpace()
                elements.append(try value(depth: depth + 1))
                skipSpace()
                guard at < bytes.count else { throw fail("unexpected end in array") }
                if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                if bytes[at] == UInt8(ascii: "]") { at += 1; return .array(elements) }
                throw fail("expected ',' or ']'")
            }
        }

        mutating func hex4() throws(JSONParseError) -> UInt32 {
            guard at + 4 <= bytes.count else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[at]
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw fail("bad hex digit in \\u escape")
                }
                v = v << 4 | d
                at += 1
            }
            return v
        }

        mutating func string() throws(JSONParseError) -> String {
            at += 1
            var out: [UInt8] = []
            while true {
                guard at < bytes.count else { throw fail("unterminated string") }
                let c = bytes[at]
                at += 1
                switch c {
                case UInt8(ascii: "\""):
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard at < bytes.count else { throw fail("unterminated escape") }
                    let e = bytes[at]
                    at += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0c)
                    case UInt8(ascii: "n"): out.append(0x0a)
                    case UInt8(ascii: "r"): out.append(0x0d)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800...0xDBFF).contains(scalar), at + 6 <= bytes.count,
                            bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u")
                        {
                            at += 2
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw fail("bad surrogate pair") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        let unicode = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                        out.append(contentsOf: String(Character(unicode)).utf8)
                    default: throw fail("bad escape")
                    }
                case 0..<0x20:
                    throw fail("control character in string")
                default:
                    out.append(c)
                }
            }
        }

        mutating func number() throws(JSONParseError) -> JSON {
            let start = at
            var isInteger = true
            if bytes[at] == UInt8(ascii: "-") { at += 1 }
            guard at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) else {
                throw fail("bad number")
            }
            while at < bytes.count {
                let c = bytes[at]
                if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) {
                    at += 1
                } else if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
                    || ((c == UInt8(ascii: "+") || c == UInt8(ascii: "-")) && !isInteger)
                {
                    isInteger = false
                    at += 1
                } else {
                    break
                }
            }
            let text = String(decoding: bytes[start..<at], as: UTF8.self)
            if isInteger, let i = Int64(text) { return .int(i) }
            guard let d = Double(text) else { throw JSONParseError(offset: start, reason: "bad number") }
            return .double(d)
        }
    }
}
