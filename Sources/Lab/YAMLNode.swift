import Yams

/// A node of a composed YAML document, read with errors that carry its position and say what was expected
/// there. Scalars are read from their source text (`Node.Scalar.string`), never through YAML 1.1's implicit
/// types, so `02:00:00:00:00:01`, `no` or `0777` mean what they say.
struct YAMLNode {
    let node: Node

    init(_ node: Node) { self.node = node }

    var position: SourcePosition {
        node.mark.map { SourcePosition(line: $0.line, column: $0.column) } ?? .unknown
    }

    /// An empty value, `~` or `null` (unquoted).
    var isNull: Bool {
        guard case .scalar(let s) = node, s.style == .plain || s.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(s.string)
    }

    var isScalar: Bool { if case .scalar = node { true } else { false } }
    var isSequence: Bool { if case .sequence = node { true } else { false } }

    /// What the node is, for messages: "a mapping", "a list", "'text'".
    var found: String {
        switch node {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar(let s): isNull ? "nothing" : "'\(s.string)'"
        case .alias: "an alias"
        }
    }

    func problem(_ message: String) -> LabProblem { LabProblem(position, message) }

    func expected(_ what: String) -> LabProblem { problem("expected \(what), found \(found)") }

    func scalar(_ what: String) throws(LabProblem) -> String {
        guard case .scalar(let s) = node, !isNull else { throw expected(what) }
        return s.string
    }

    func mapping(_ what: String) throws(LabProblem) -> YAMLMapping {
        if isNull { return YAMLMapping(entries: [], position: position) }
        guard case .mapping(let m) = node else { throw expected(what) }
        var entries: [YAMLMapping.Entry] = []
        for (key, value) in m {
            let k = YAMLNode(key)
            entries.append(YAMLMapping.Entry(key: try k.scalar("a name as key"), keyPosition: k.position, value: YAMLNode(value)))
        }
        return YAMLMapping(entries: entries, position: position)
    }

    func sequence(_ what: String) throws(LabProblem) -> [YAMLNode] {
        if isNull { return [] }
        guard case .sequence(let s) = node else { throw expected(what) }
        return s.map(YAMLNode.init)
    }

    /// A list, or one scalar standing for a list of one.
    func scalarList(_ what: String) throws(LabProblem) -> [YAMLNode] {
        if isScalar, !isNull { return [self] }
        return try sequence(what)
    }

    func bool(_ what: String) throws(LabProblem) -> Bool {
        switch try scalar("true or false for \(what)") {
        case "true", "True", "TRUE", "yes", "Yes", "on": return true
        case "false", "False", "FALSE", "no", "No", "off": return false
        default: throw expected("true or false for \(what)")
        }
    }

    func integer(_ what: String, in range: ClosedRange<Int>) throws(LabProblem) -> Int {
        let text = try scalar("a number for \(what)")
        guard let value = LabSyntax.decimal(text), range.contains(value) else {
            throw expected("a number from \(range.lowerBound) to \(range.upperBound) for \(what)")
        }
        return value
    }

    func port(_ what: String) throws(LabProblem) -> UInt16 {
        UInt16(try integer(what, in: 1...65535))
    }

    /// Where the character `offset` Unicode scalars into this scalar's text is, for a scalar on one line
    /// (plain or quoted); the scalar's own position otherwise.
    func position(at offset: Int) -> SourcePosition {
        guard case .scalar(let s) = node, !s.string.contains("\n") else { return position }
        switch s.style {
        case .plain, .any: return position.advanced(by: offset)
        case .singleQuoted, .doubleQuoted: return position.advanced(by: offset + 1)
        default: return position
        }
    }

    /// The scalar split at spaces, each word with its position.
    func words(_ what: String) throws(LabProblem) -> [LabSyntax.Word] {
        let text = try scalar(what)
        return LabSyntax.words(text).map { LabSyntax.Word(text: $0.text, position: position(at: $0.offset)) }
    }

    /// The scalar as one word with its position.
    func word(_ what: String) throws(LabProblem) -> LabSyntax.Word {
        LabSyntax.Word(text: try scalar(what), position: position(at: 0))
    }

    /// A mapping with exactly one key, the key one of `kinds`: `- masquerade: {…}`, `- reach: {…}`.
    func singleEntry(_ what: String, kinds: [String]) throws(LabProblem) -> YAMLMapping.Entry {
        let choice = kinds.joined(separator: ", ")
        guard case .mapping = node else { throw expected("\(what) (one of \(choice), as a key)") }
        let m = try mapping(what)
        guard m.entries.count == 1, let entry = m.entries.first else {
            throw problem("\(what) has exactly one key (one of \(choice)), found \(m.entries.count)")
        }
        guard kinds.contains(entry.key) else {
            throw LabProblem(entry.keyPosition, "unknown \(what) '\(entry.key)' (allowed: \(choice))")
        }
        return entry
    }
}

/// A YAML mapping with string keys, in file order.
struct YAMLMapping {
    struct Entry {
        let key: String
        let keyPosition: SourcePosition
        let value: YAMLNode
    }

    let entries: [Entry]
    let position: SourcePosition

    subscript(key: String) -> YAMLNode? { entries.first { $0.key == key }?.value }

    /// Rejects a key that is not in `allowed`, naming it and listing the allowed ones.
    func allowOnly(_ allowed: [String], in what: String) throws(LabProblem) {
        for entry in entries where !allowed.contains(entry.key) {
            throw LabProblem(entry.keyPosition, "unknown key '\(entry.key)' in \(what) (allowed: \(allowed.joined(separator: ", ")))")
        }
    }

    func required(_ key: String, in what: String) throws(LabProblem) -> YAMLNode {
        guard let value = self[key] else { throw LabProblem(position, "\(what) needs '\(key)'") }
        return value
    }

    /// The value of whichever of two spellings is present (`address` / `addresses`); both is an error.
    func either(_ first: String, _ second: String, in what: String) throws(LabProblem) -> YAMLNode? {
        if let a = self[first], self[second] != nil {
            throw a.problem("\(what) has both '\(first)' and '\(second)'; use one")
        }
        return self[first] ?? self[second]
    }
}
