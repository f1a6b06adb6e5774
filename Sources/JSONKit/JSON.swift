/// A JSON value whose objects keep their keys in insertion order, so output can follow `ip -j`'s field
/// order and stay stable between runs.
///
/// nsinspect writes and reads JSON without Foundation: the census and `dump` must stay small in memory
/// (a thousand namespaces in under 30 MB), and in a statically linked program Foundation's
/// JSONSerialization alone adds 7.3 MB of peak RSS and 58 MB of binary (12.2 against 4.9 MB, 67 against
/// 8.5 MB: `Benchmarks/foundation.sh`). The parser half reads what runtimes and Open vSwitch keep as
/// JSON (config.v2.json, containers.json, OVSDB replies).
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([Member])
    /// JSON text written already (compact), embedded as it is: a conntrack entry streamed by its own
    /// writer goes into a document without being parsed back and written again.
    case raw([UInt8])

    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: JSON
        public init(_ key: String, _ value: JSON) {
            self.key = key
            self.value = value
        }
    }

    /// The value of `key` in an object (the first member with that key), nil otherwise.
    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.key == key })?.value
    }

    /// The element at `index` of an array, nil otherwise.
    public subscript(index: Int) -> JSON? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var intValue: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9.2e18: return Int64(d)
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: [Member]? {
        if case .object(let o) = self { return o }
        return nil
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }
}

/// Builds an object member by member, skipping optional values that are absent (as `ip -j` omits them).
public struct JSONObjectBuilder: Sendable {
    public private(set) var members: [JSON.Member] = []

    public init() {}

    public mutating func add(_ key: String, _ value: JSON) {
        members.append(JSON.Member(key, value))
    }
    public mutating func add(_ key: String, _ value: String?) {
        if let value { members.append(JSON.Member(key, .string(value))) }
    }
    public mutating func add<I: BinaryInteger>(_ key: String, _ value: I?) {
        if let value { members.append(JSON.Member(key, .int(Int64(value)))) }
    }
    public mutating func add(_ key: String, _ value: Bool?) {
        if let value { members.append(JSON.Member(key, .bool(value))) }
    }
    public mutating func add(_ key: String, strings: [String]) {
        members.append(JSON.Member(key, .array(strings.map(JSON.string))))
    }

    public var json: JSON { .object(members) }
}
