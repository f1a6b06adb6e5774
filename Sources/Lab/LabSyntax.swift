import Netlink

/// The small grammars inside lab file scalars, shared by our schema and pyns2's: addresses with prefix
/// length, `NS:IFNAME`, `ADDRESS[:PORT]`, and routes in `ip route` syntax. Each error names the position of
/// the word that is wrong.
enum LabSyntax {
    /// A word of a scalar and where it starts.
    struct Word {
        let text: String
        let position: SourcePosition
        func problem(_ message: String) -> LabProblem { LabProblem(position, message) }
    }

    /// Splits at spaces and tabs; offsets count Unicode scalars from the start of `text`.
    static func words(_ text: String) -> [(text: String, offset: Int)] {
        var out: [(String, Int)] = []
        var current = ""
        var start = 0
        for (i, scalar) in text.unicodeScalars.enumerated() {
            if scalar == " " || scalar == "\t" {
                if !current.isEmpty { out.append((current, start)) }
                current = ""
            } else {
                if current.isEmpty { start = i }
                current.unicodeScalars.append(scalar)
            }
        }
        if !current.isEmpty { out.append((current, start)) }
        return out
    }

    /// A plain decimal number (no sign, no `0x`, no `_`).
    static func decimal(_ text: String) -> Int? {
        guard !text.isEmpty, text.count <= 10, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }

    /// An interface address: `ADDRESS/LENGTH`, the length required.
    static func interfaceAddress(_ word: Word) throws(LabProblem) -> IPPrefix {
        try prefix(word, bareAddress: false, what: "an IPv4 or IPv6 address with prefix length (10.0.1.10/24)")
    }

    /// A network or address to match: `10.0.0.0/24`, or a bare address meaning just that address.
    static func network(_ word: Word, what: String) throws(LabProblem) -> IPPrefix {
        try prefix(word, bareAddress: true, what: what)
    }

    private static func prefix(_ word: Word, bareAddress: Bool, what: String) throws(LabProblem) -> IPPrefix {
        let parts = word.text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(String(parts[0])) else {
            throw word.problem("expected \(what), found '\(word.text)'")
        }
        let maximum = address.bitWidth
        guard parts.count == 2 else {
            if bareAddress { return IPPrefix(address: address, length: UInt8(maximum))! }
            throw word.problem("address \(address) has no prefix length (write \(address)/\(address.family == .v4 ? 24 : 64) or the length of its network)")
        }
        guard let length = decimal(String(parts[1])), length <= maximum,
            let prefix = IPPrefix(address: address, length: UInt8(length))
        else {
            throw word.problem("invalid prefix length '\(parts[1])' in \(word.text) (an \(address.family == .v4 ? "IPv4" : "IPv6") prefix length is 0 to \(maximum))")
        }
        return prefix
    }

    static func address(_ word: Word, what: String) throws(LabProblem) -> IPAddress {
        guard let address = IPAddress(word.text) else {
            if IPPrefix(word.text) != nil { throw word.problem("expected \(what) without prefix length, found '\(word.text)'") }
            throw word.problem("expected \(what), found '\(word.text)'")
        }
        return address
    }

    static func port(_ word: Word, what: String) throws(LabProblem) -> UInt16 {
        guard let value = decimal(word.text), (1...65535).contains(value) else {
            throw word.problem("expected a port from 1 to 65535 for \(what), found '\(word.text)'")
        }
        return UInt16(value)
    }

    /// `NS:IFNAME` (`host:IFNAME` for the host). Interface names cannot contain ':', so the last ':' splits.
    static func interfaceRef(_ word: Word) throws(LabProblem) -> LabInterfaceRef {
        guard let colon = word.text.lastIndex(of: ":") else {
            throw word.problem("expected NS:IFNAME (host:IFNAME for the host), found '\(word.text)'")
        }
        let ns = String(word.text[..<colon])
        let name = String(word.text[word.text.index(after: colon)...])
        guard !ns.isEmpty, !name.isEmpty else {
            throw word.problem("expected NS:IFNAME (host:IFNAME for the host), found '\(word.text)'")
        }
        return LabInterfaceRef(LabPlace(ns), name)
    }

    /// `ADDRESS`, `ADDRESS:PORT` (IPv4) or `[ADDRESS]:PORT` (IPv6).
    static func natTarget(_ word: Word) throws(LabProblem) -> LabNATTarget {
        let text = word.text
        let what = "ADDRESS or ADDRESS:PORT ([ADDRESS]:PORT for IPv6)"
        if let address = IPAddress(text) { return LabNATTarget(address) }
        var addressText = Substring(text)
        var portText: Substring?
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            addressText = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw word.problem("expected \(what), found '\(text)'") }
            portText = rest.dropFirst()
        } else if let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") {
            addressText = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let portText, let address = IPAddress(String(addressText)) else {
            throw word.problem("expected \(what), found '\(text)'")
        }
        let port = try self.port(Word(text: String(portText), position: word.position.advanced(by: text.count - portText.count)), what: "the NAT target")
        return LabNATTarget(address, port: port)
    }

    /// A route in `ip route` syntax: `[blackhole|unreachable|prohibit] PREFIX|default [via ADDRESS]
    /// [dev IFNAME] [metric N] [onlink]`.
    static func route(_ words: [Word], position: SourcePosition) throws(LabProblem) -> LabRoute {
        var rest = words[...]
        var kind = LabRoute.Kind.unicast
        if let first = rest.first, let k = LabRoute.Kind(rawValue: first.text), k != .unicast {
            kind = k
            rest = rest.dropFirst()
        }
        guard let destinationWord = rest.popFirst() else {
            throw LabProblem(position, "a route needs a destination: default or a prefix (default via 10.0.1.1)")
        }
        var route = LabRoute(kind, to: IPPrefix.any(.v4), position: position)
        var destinationIsDefault = false
        if destinationWord.text == "default" {
            destinationIsDefault = true
        } else {
            route.destination = try network(destinationWord, what: "default or a destination prefix (10.0.2.0/24)")
        }
        while let keyword = rest.popFirst() {
            guard keyword.text == "onlink" || !rest.isEmpty else {
                throw keyword.problem("'\(keyword.text)' in a route needs a value after it")
            }
            switch keyword.text {
            case "via": route.gateway = try address(rest.removeFirst(), what: "a gateway address")
            case "dev": route.device = rest.removeFirst().text
            case "metric":
                let w = rest.removeFirst()
                guard let m = decimal(w.text), m <= Int(UInt32.max) else { throw w.problem("expected a number for metric, found '\(w.text)'") }
                route.metric = UInt32(m)
            case "onlink": route.onlink = true
            default:
                throw keyword.problem("unexpected '\(keyword.text)' in a route (expected via, dev, metric or onlink)")
            }
        }
        if destinationIsDefault, let gateway = route.gateway { route.destination = IPPrefix.any(gateway.family) }
        return route
    }

    /// The nftables name of a lab's table: `nsinspect-LAB`, with characters nft identifiers cannot hold
    /// replaced by `_`.
    static func tableName(lab: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
        return "nsinspect-" + String(lab.map { allowed.contains($0) ? $0 : "_" })
    }
}
