import JSONKit
#if canImport(Glibc)
import Glibc
#endif

/// The renderings of conntrack entries every command shares (`conntrack`, `natcheck`, and `trace` for the
/// entry that rewrote a packet): the line `conntrack -L` prints, what NAT did, and one JSON object per
/// entry. They write bytes into a buffer the caller flushes, so a table of a hundred thousand entries is
/// printed without a String or an array per entry.

extension ConntrackEntry {
    /// The source key of each tuple that NAT may rewrite: the source port, or the ICMP id.
    public var sourceKeys: (UInt16?, UInt16?) {
        original.isICMP ? (original.icmpID, reply.icmpID) : (original.sourcePort, reply.destinationPort)
    }

    /// The source was rewritten (SNAT, masquerade): replies go to another address or port than the one the
    /// connection came from.
    public var isSourceRewritten: Bool {
        let (from, to) = sourceKeys
        return reply.destination != original.source || from != to
    }

    /// The destination was rewritten (DNAT, redirect): replies come from another address or port than the one
    /// the connection was sent to.
    public var isDestinationRewritten: Bool {
        reply.source != original.destination || (!original.isICMP && reply.sourcePort != original.destinationPort)
    }

    public var isNAT: Bool { isSourceRewritten || isDestinationRewritten }

    /// SNAT first, then DNAT, each when it happened.
    public var rewrites: [NATRewrite] {
        var out: [NATRewrite] = []
        if isSourceRewritten {
            let (from, to) = sourceKeys
            var a = NATEndpoint(address: original.source, port: from), b = NATEndpoint(address: reply.destination, port: to)
            a.isICMPIdentifier = original.isICMP
            b.isICMPIdentifier = original.isICMP
            out.append(NATRewrite(kind: .snat, from: a, to: b))
        }
        if isDestinationRewritten {
            let ports = original.isICMP ? (nil, nil) : (original.destinationPort, reply.sourcePort)
            out.append(NATRewrite(kind: .dnat, from: NATEndpoint(address: original.destination, port: ports.0),
                                        to: NATEndpoint(address: reply.source, port: ports.1)))
        }
        return out
    }

    /// `SNAT 10.0.2.1:12345 → 100.64.2.100:54321`, `, ` between SNAT and DNAT; nothing without NAT. The
    /// same text as `rewrites`' descriptions, written from the tuples into the buffer without building the
    /// rewrites or a String per line (too much for every line of a large table).
    public func appendNAT(to out: inout [UInt8]) {
        let snat = isSourceRewritten, dnat = isDestinationRewritten
        if snat {
            let (from, to) = sourceKeys
            out.append(contentsOf: "SNAT ".utf8)
            appendEndpoint(original, source: true, port: from, to: &out)
            out.append(contentsOf: " → ".utf8)
            appendEndpoint(reply, source: false, port: to, to: &out)
        }
        if dnat {
            if snat { out.append(contentsOf: ", ".utf8) }
            out.append(contentsOf: "DNAT ".utf8)
            appendEndpoint(original, source: false, port: original.isICMP ? nil : original.destinationPort, to: &out)
            out.append(contentsOf: " → ".utf8)
            appendEndpoint(reply, source: true, port: original.isICMP ? nil : reply.sourcePort, to: &out)
        }
    }

    /// One side of a tuple as `NATEndpoint.description` writes it: `10.0.2.1:12345`, `[2001:db8::1]:53`,
    /// `10.0.2.1 id 7`.
    private func appendEndpoint(_ tuple: ConntrackTuple, source: Bool, port: UInt16?, to out: inout [UInt8]) {
        let bracket = port != nil && !original.isICMP && tuple.family == .v6
        if bracket { out.append(UInt8(ascii: "[")) }
        if source { tuple.appendSource(to: &out) } else { tuple.appendDestination(to: &out) }
        guard let port else { return }
        if original.isICMP {
            out.append(contentsOf: " id ".utf8)
        } else {
            if bracket { out.append(UInt8(ascii: "]")) }
            out.append(UInt8(ascii: ":"))
        }
        out.appendDecimal(port)
    }

    /// The entry as conntrack-tools prints it (libnetfilter_conntrack's default output): `conntrack -L` for a
    /// dump entry, `conntrack -E` with `event`, `-o extended` with `layer3`, `-o id` with `showID`.
    ///
    ///     udp      17 28 src=10.0.2.1 dst=100.64.1.100 sport=12345 dport=54321 [UNREPLIED] src=100.64.1.100 …
    public func appendText(to out: inout [UInt8], event: ConntrackEvent.Kind? = nil, layer3: Bool = false, showID: Bool = false) {
        let start = out.count
        if let event {
            let word = "[" + event.rawValue + "]"
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: max(0, 9 - word.utf8.count)))
            out.append(contentsOf: word.utf8)
            out.append(UInt8(ascii: " "))
        }
        if layer3 {
            padded(family == .v4 ? "ipv4" : "ipv6", number: UInt64(family.rawValue), into: &out)
        }
        padded(protocolName, number: UInt64(protocolNumber), into: &out)
        if let timeout { out.appendDecimal(timeout); out.append(UInt8(ascii: " ")) }
        if let stateName, [6, 132, 33].contains(protocolNumber) { out.append(contentsOf: stateName.utf8); out.append(UInt8(ascii: " ")) }
        original.appendText(to: &out)
        if let zone = original.zone { word("zone-orig=", zone, into: &out) }
        if let c = originalCounters { counters(c, into: &out) }
        if isUnreplied { out.append(contentsOf: "[UNREPLIED] ".utf8) }
        reply.appendText(to: &out)
        if let zone = reply.zone { word("zone-reply=", zone, into: &out) }
        if let c = replyCounters { counters(c, into: &out) }
        if isAssured { out.append(contentsOf: "[ASSURED] ".utf8) }
        if let status {
            if status.contains(.hardwareOffload) {
                out.append(contentsOf: "[HW_OFFLOAD] ".utf8)
            } else if status.contains(.offload) {
                out.append(contentsOf: "[OFFLOAD] ".utf8)
            }
        }
        if let mark { word("mark=", mark, into: &out) }
        if let securityContext { out.append(contentsOf: "secctx=\(securityContext) ".utf8) }
        if let zone { word("zone=", zone, into: &out) }
        if let started {
            let stop = stopped.map { $0 / 1_000_000_000 } ?? UInt64(max(0, time(nil)))
            word("delta-time=", stop &- started / 1_000_000_000, into: &out)
        }
        if let use { word("use=", use, into: &out) }
        if showID, let id { word("id=", id, into: &out) }
        if out.count > start { out.removeLast() }
    }

    /// `appendText` as a String.
    public func text(event: ConntrackEvent.Kind? = nil, layer3: Bool = false, showID: Bool = false) -> String {
        var out: [UInt8] = []
        appendText(to: &out, event: event, layer3: layer3, showID: showID)
        return String(decoding: out, as: UTF8.self)
    }

    /// `%-8s %u `: a name padded to 8 columns, its number and a space.
    private func padded(_ name: String, number: UInt64, into out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: max(1, 9 - name.utf8.count)))
        out.appendDecimal(number)
        out.append(UInt8(ascii: " "))
    }

    private func word<T: BinaryInteger>(_ key: StaticString, _ value: T, into out: inout [UInt8]) {
        key.withUTF8Buffer { out.append(contentsOf: $0) }
        out.appendDecimal(value)
        out.append(UInt8(ascii: " "))
    }

    private func counters(_ c: ConntrackCounters, into out: inout [UInt8]) {
        word("packets=", c.packets, into: &out)
        word("bytes=", c.bytes, into: &out)
    }
}

extension ConntrackTuple {
    /// `src=… dst=… sport=… dport=… ` (or `type=… code=… id=… `, `srckey=0x… dstkey=0x… `), each word
    /// followed by a space, as libnetfilter_conntrack writes a tuple.
    func appendText(to out: inout [UInt8]) {
        out.append(contentsOf: "src=".utf8)
        appendSource(to: &out)
        out.append(contentsOf: " dst=".utf8)
        appendDestination(to: &out)
        out.append(UInt8(ascii: " "))
        if protocolNumber == 47 {
            out.append(contentsOf: "srckey=0x\(String(sourcePort ?? 0, radix: 16)) dstkey=0x\(String(destinationPort ?? 0, radix: 16)) ".utf8)
        } else if hasPorts {
            out.append(contentsOf: "sport=".utf8)
            out.appendDecimal(sourcePort ?? 0)
            out.append(contentsOf: " dport=".utf8)
            out.appendDecimal(destinationPort ?? 0)
            out.append(UInt8(ascii: " "))
        } else if isICMP {
            out.append(contentsOf: "type=".utf8)
            out.appendDecimal(icmpType ?? 0)
            out.append(contentsOf: " code=".utf8)
            out.appendDecimal(icmpCode ?? 0)
            out.append(contentsOf: " id=".utf8)
            out.appendDecimal(icmpID ?? 0)
            out.append(UInt8(ascii: " "))
        }
    }

    /// The source address as text, appended without building a String.
    public func appendSource(to out: inout [UInt8]) { source.append(to: &out) }
    public func appendDestination(to out: inout [UInt8]) { destination.append(to: &out) }

}

