/// The members of one JSON object, written one by one into a byte buffer: the opening brace when made,
/// commas between members, the closing brace at `end`.
public struct JSONMembers {
    private var first = true
    /// One member per line, indented by two spaces, as `JSON.write(pretty:)` writes a document's top level.
    private let pretty: Bool

    public init(_ out: inout [UInt8], pretty: Bool = false) {
        self.pretty = pretty
        out.append(UInt8(ascii: "{"))
    }

    /// In one append: appending a String's UTF-8 view here (and then byte by byte) was the largest single
    /// cost of a large table.
    public mutating func key(_ name: StaticString, _ out: inout [UInt8]) {
        if pretty {
            key(String(describing: name), &out)
            return
        }
        // `,"name":` made on the stack and appended once.
        let comma = first ? 0 : 1
        first = false
        name.withUTF8Buffer { name in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: name.count + 4) { text in
                text[0] = UInt8(ascii: ",")
                text[comma] = UInt8(ascii: "\"")
                for (i, byte) in name.enumerated() { text[comma + 1 + i] = byte }
                text[comma + 1 + name.count] = UInt8(ascii: "\"")
                text[comma + 2 + name.count] = UInt8(ascii: ":")
                out.append(contentsOf: UnsafeBufferPointer(rebasing: text[0..<(comma + 3 + name.count)]))
            }
        }
    }

    /// A key made at run time (a namespace's name in `dump`), escaped as a JSON string.
    public mutating func key(_ name: String, _ out: inout [UInt8]) {
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        if pretty { out.append(contentsOf: "\n  ".utf8) }
        JSON.writeString(name, into: &out)
        out.append(contentsOf: (pretty ? ": " : ":").utf8)
    }

    /// A member whose value is JSON text written already.
    public mutating func member(_ name: String, rendered value: [UInt8], _ out: inout [UInt8]) {
        key(name, &out)
        out.append(contentsOf: value)
    }

    public mutating func string(_ name: StaticString, _ value: String, _ out: inout [UInt8]) {
        key(name, &out)
        JSON.writeString(value, into: &out)
    }

    public mutating func number<T: BinaryInteger>(_ name: StaticString, _ value: T, _ out: inout [UInt8]) {
        key(name, &out)
        out.appendDecimal(value)
    }

    /// `text` as it is (`true`, a number), or in quotes when `quoted` (it must need no escaping).
    public mutating func raw(_ name: StaticString, _ text: StaticString, quoted: Bool = false, _ out: inout [UInt8]) {
        key(name, &out)
        if quoted { out.append(UInt8(ascii: "\"")) }
        text.withUTF8Buffer { out.append(contentsOf: $0) }
        if quoted { out.append(UInt8(ascii: "\"")) }
    }

    public func end(_ out: inout [UInt8]) {
        if pretty && !first { out.append(UInt8(ascii: "\n")) }
        out.append(UInt8(ascii: "}"))
    }
}

extension Array where Element == UInt8 {
    /// Appends a non-negative integer in decimal, without a String. The digits are made in a buffer on the
    /// stack and appended in one piece: a table of a hundred thousand entries has a million numbers, and
    /// growing the array digit by digit (or through a repeated placeholder) was a tenth of `conntrack --json`.
    public mutating func appendDecimal<T: BinaryInteger>(_ value: T) {
        var v = UInt64(truncatingIfNeeded: value)
        if v < 10 {
            append(UInt8(ascii: "0") + UInt8(v))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var i = 20
            repeat {
                i -= 1
                digits[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            } while v > 0
            append(contentsOf: UnsafeBufferPointer(rebasing: digits[i..<20]))
        }
    }
}
