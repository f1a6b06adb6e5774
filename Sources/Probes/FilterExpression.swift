import NetAddress

/// The small filter language of `trace --passive --filter`: clauses joined by `and` (or just spaces),
/// each one of `proto icmp|icmp6|udp|tcp` (or the bare word), `host ADDR` (at most two), `port N`
/// (source or destination), `icmp-id N` (or `icmp id N`). Every clause must hold.
public enum FilterExpression {
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let token: String
        public let position: Int
        public let expected: String
        public var description: String {
            token.isEmpty ? "unexpected end of filter at position \(position) (expected \(expected))"
                : "unexpected '\(token)' at position \(position) (expected \(expected))"
        }
    }

    /// Parses the expression into the kernel-side passive filter.
    public static func parse(_ text: String) throws(ParseError) -> PassiveFilter {
        // Tokens with the offset of their first character, for pointing at a bad one.
        var tokens: [(String, Int)] = []
        var current = "", start = 0
        for (offset, c) in text.enumerated() {
            if c == " " || c == "\t" {
                if !current.isEmpty { tokens.append((current, start)); current = "" }
            } else {
                if current.isEmpty { start = offset }
                current.append(c)
            }
        }
        if !current.isEmpty { tokens.append((current, start)) }

        var filter = PassiveFilter()
        var i = 0
        func next(_ expected: String) throws(ParseError) -> (String, Int) {
            guard i < tokens.count else { throw ParseError(token: "", position: text.count, expected: expected) }
            defer { i += 1 }
            return tokens[i]
        }
        func setProto(_ word: String, _ position: Int) throws(ParseError) {
            switch word.lowercased() {
            case "icmp": filter.proto = PacketHeaders.icmp
            case "icmp6", "icmpv6": filter.proto = PacketHeaders.icmpv6
            case "udp": filter.proto = PacketHeaders.udp
            case "tcp": filter.proto = PacketHeaders.tcp
            default: throw ParseError(token: word, position: position, expected: "icmp, icmp6, udp or tcp")
            }
        }
        func number(_ expected: String) throws(ParseError) -> UInt16 {
            let (word, position) = try next(expected)
            guard let value = UInt16(word) else { throw ParseError(token: word, position: position, expected: expected) }
            return value
        }
        let clauses = "proto, host, port, icmp-id, icmp, udp or tcp"
        while i < tokens.count {
            let (word, position) = tokens[i]
            i += 1
            switch word.lowercased() {
            case "and", "&&":
                guard i > 1, i < tokens.count else { throw ParseError(token: word, position: position, expected: clauses) }
            case "proto":
                let (p, at) = try next("icmp, icmp6, udp or tcp")
                try setProto(p, at)
            case "icmp":
                if i < tokens.count, tokens[i].0.lowercased() == "id" {
                    i += 1
                    filter.icmpID = try number("an ICMP id (0-65535)")
                } else {
                    try setProto(word, position)
                }
            case "icmp6", "icmpv6", "udp", "tcp":
                try setProto(word, position)
            case "icmp-id", "icmpid":
                filter.icmpID = try number("an ICMP id (0-65535)")
            case "port":
                filter.port = try number("a port (0-65535)")
            case "host":
                let (h, at) = try next("an IPv4 or IPv6 address")
                guard let address = IPAddress(h) else { throw ParseError(token: h, position: at, expected: "an IPv4 or IPv6 address") }
                guard filter.hosts.count < 2 else { throw ParseError(token: h, position: at, expected: "at most two hosts") }
                filter.hosts.append(address)
            default:
                throw ParseError(token: word, position: position, expected: clauses)
            }
        }
        return filter
    }
}
