import Netlink
import Testing

/// The ctnetlink decoders against the conntrack fixtures (captured from this kernel: see
/// ConntrackFixtureCapture.swift). The expected values are what `conntrack -L` and `conntrack -E` printed
/// at capture time, kept in each fixture's annotation (`# conntrack -L | …`). A new capture changes the
/// ports NAT chose, the ICMP id and the timeouts: copy them from the new annotations into the tests below.
@Suite("Conntrack decoders", .timeLimit(.minutes(2)))
struct ConntrackDecoderTests {
    func ip(_ text: String) -> IPAddress { IPAddress(text)! }

    /// The lines another tool printed, from a fixture's `# TOOL | line` annotations.
    static func annotated(_ fixture: String, _ tool: String) throws -> [String] {
        let marker = "# \(tool) | "
        return try SourceFiles.read(Fixture.path(fixture)).split(separator: "\n")
            .filter { $0.hasPrefix(marker) }.map { String($0.dropFirst(marker.count)) }
    }

    static func dump() throws -> [ConntrackEntry] {
        try Fixture.load("conntrack-dump-nat").messages().compactMap { message in try ConntrackEntry.decode(message) }
    }

    /// The one entry whose original tuple has this protocol and source port (or ICMP id).
    static func entry(_ entries: [ConntrackEntry], _ protocolNumber: UInt8, sourcePort: UInt16,
                      sourceLocation: SourceLocation = #_sourceLocation) throws -> ConntrackEntry {
        let found = entries.filter {
            $0.protocolNumber == protocolNumber && ($0.original.isICMP ? $0.original.icmpID : $0.original.sourcePort) == sourcePort
        }
        try #require(found.count == 1, "\(found.count) entries of protocol \(protocolNumber) from port \(sourcePort)",
                     sourceLocation: sourceLocation)
        return found[0]
    }

    @Test func everyDumpEntryPrintsAsConntrackListPrintedIt() throws {
        let entries = try Self.dump()
        let listed = try Self.annotated("conntrack-dump-nat", "conntrack -L")
        #expect(listed.count == 7)
        #expect(entries.count == listed.count)
        // Same lines, timeouts and counters included (conntrack -L lists in hash order, as the dump does).
        #expect(entries.map { $0.text() } == listed)
        // Every entry has the kernel's id, and use=1.
        #expect(entries.allSatisfy { $0.id != nil && $0.use == 1 })
    }

    @Test func udpWithoutNATNeverAnswered() throws {
        let entries = try Self.dump()
        // udp 17 24 src=192.0.2.1 dst=192.0.2.10 sport=5000 dport=5001 packets=1 bytes=29 [UNREPLIED] src=192.0.2.10
        // dst=192.0.2.1 sport=5001 dport=5000 packets=0 bytes=0 mark=0 use=1
        let v4 = try #require(entries.first { $0.family == .v4 && $0.original.sourcePort == 5000 })
        #expect(v4.protocolNumber == 17 && v4.protocolName == "udp")
        #expect(v4.original.source == ip("192.0.2.1") && v4.original.destination == ip("192.0.2.10"))
        #expect(v4.original.destinationPort == 5001)
        #expect(v4.reply == v4.original.reversed)
        #expect(v4.timeout == 24)
        #expect(v4.isUnreplied && !v4.isAssured && !v4.isNAT && v4.rewrites.isEmpty)
        // The NAT hooks ran (the namespace has NAT rules) but changed nothing: both NAT_DONE bits, no SRC_NAT or DST_NAT.
        #expect(v4.status == [.confirmed, .sourceNATDone, .destinationNATDone])
        #expect(v4.originalCounters == ConntrackCounters(packets: 1, bytes: 29))
        #expect(v4.replyCounters == ConntrackCounters(packets: 0, bytes: 0))
        #expect(v4.mark == 0 && v4.zone == nil && v4.protocolState == nil && v4.stateName == nil)

        // The same from IPv6: udp 17 25 src=2001:db8:2::1 dst=2001:db8:2::10 sport=5000 dport=5001 packets=1 bytes=49 [UNREPLIED] …
        let v6 = try #require(entries.first { $0.family == .v6 })
        #expect(v6.original.source == ip("2001:db8:2::1") && v6.original.destination == ip("2001:db8:2::10"))
        #expect(v6.original.sourcePort == 5000 && v6.original.destinationPort == 5001)
        #expect(v6.reply.source == ip("2001:db8:2::10") && v6.reply.destination == ip("2001:db8:2::1"))
        #expect(v6.timeout == 25 && v6.isUnreplied && !v6.isNAT)
        #expect(v6.originalCounters == ConntrackCounters(packets: 1, bytes: 49))
    }

    @Test func udpSourceNATReplied() throws {
        let entries = try Self.dump()
        // udp 17 26 src=10.0.1.10 dst=192.0.2.10 sport=5002 dport=5002 packets=1 bytes=33 src=192.0.2.10 dst=192.0.2.1
        // sport=5002 dport=40084 packets=1 bytes=33 mark=0 use=1
        let e = try Self.entry(entries, 17, sourcePort: 5002)
        #expect(e.original.source == ip("10.0.1.10") && e.original.destination == ip("192.0.2.10"))
        #expect(e.original.destinationPort == 5002)
        #expect(e.reply.source == ip("192.0.2.10") && e.reply.destination == ip("192.0.2.1"))
        #expect(e.reply.sourcePort == 5002 && e.reply.destinationPort == 40084)
        #expect(e.timeout == 26)
        // A reply was seen (no [UNREPLIED]), but only within the first two seconds: not [ASSURED].
        #expect(!e.isUnreplied && !e.isAssured)
        #expect(e.status == [.seenReply, .confirmed, .sourceNAT, .sourceNATDone, .destinationNATDone])
        #expect(e.status?.names == ["SEEN_REPLY", "CONFIRMED", "SRC_NAT", "SRC_NAT_DONE", "DST_NAT_DONE"])
        #expect(e.isSourceRewritten && !e.isDestinationRewritten)
        #expect(e.rewrites.map(\.description) == ["SNAT 10.0.1.10:5002 → 192.0.2.1:40084"])
        #expect(e.originalCounters == ConntrackCounters(packets: 1, bytes: 33))
        #expect(e.replyCounters == ConntrackCounters(packets: 1, bytes: 33))

        // udp 17 26 src=10.0.1.10 dst=192.0.2.10 sport=5003 dport=5001 … [UNREPLIED] src=192.0.2.10 dst=192.0.2.1
        // sport=5001 dport=40042 …
        let unreplied = try Self.entry(entries, 17, sourcePort: 5003)
        #expect(unreplied.isUnreplied && unreplied.timeout == 26)
        #expect(unreplied.rewrites.map(\.description) == ["SNAT 10.0.1.10:5003 → 192.0.2.1:40042"])
    }

    @Test func tcpTimeWaitAssured() throws {
        let entries = try Self.dump()
        // tcp 6 117 TIME_WAIT src=10.0.1.10 dst=192.0.2.10 sport=53114 dport=80 packets=5 bytes=271 src=192.0.2.10
        // dst=192.0.2.1 sport=80 dport=53114 packets=5 bytes=270 [ASSURED] mark=0 use=1
        let e = try #require(entries.first { $0.protocolNumber == 6 })
        #expect(e.protocolName == "tcp")
        #expect(e.timeout == 117)
        #expect(e.protocolState == 7 && e.stateName == "TIME_WAIT")
        #expect(e.original.sourcePort == 53114 && e.original.destinationPort == 80)
        #expect(e.reply.source == ip("192.0.2.10") && e.reply.destination == ip("192.0.2.1"))
        #expect(e.reply.sourcePort == 80 && e.reply.destinationPort == 53114)
        #expect(e.isAssured && !e.isUnreplied)
        // Masquerade kept the port: only the address was rewritten.
        #expect(e.rewrites.map(\.description) == ["SNAT 10.0.1.10:53114 → 192.0.2.1:53114"])
        #expect(e.originalCounters == ConntrackCounters(packets: 5, bytes: 271))
        #expect(e.replyCounters == ConntrackCounters(packets: 5, bytes: 270))
    }

    @Test func icmpEchoMarkedAndMasqueraded() throws {
        let entries = try Self.dump()
        // icmp 1 27 src=10.0.1.10 dst=192.0.2.10 type=8 code=0 id=15937 packets=1 bytes=84 src=192.0.2.10 dst=192.0.2.1
        // type=0 code=0 id=15937 packets=1 bytes=84 mark=42 use=1
        let e = try Self.entry(entries, 1, sourcePort: 15937)
        #expect(e.protocolName == "icmp" && e.original.isICMP && !e.original.hasPorts)
        #expect(e.original.icmpType == 8 && e.original.icmpCode == 0 && e.original.sourcePort == nil)
        #expect(e.reply.icmpType == 0 && e.reply.icmpCode == 0 && e.reply.icmpID == 15937)
        #expect(e.timeout == 27)
        #expect(e.mark == 42)
        #expect(!e.isUnreplied)
        #expect(e.isSourceRewritten && !e.isDestinationRewritten)
        #expect(e.rewrites.map(\.description) == ["SNAT 10.0.1.10 id 15937 → 192.0.2.1 id 15937"])
        #expect(e.originalCounters == ConntrackCounters(packets: 1, bytes: 84))
    }

    @Test func udpDestinationNAT() throws {
        let entries = try Self.dump()
        // udp 17 28 src=192.0.2.10 dst=192.0.2.1 sport=6000 dport=8080 packets=1 bytes=29 [UNREPLIED] src=10.0.1.10
        // dst=192.0.2.10 sport=80 dport=6000 packets=0 bytes=0 mark=0 use=1
        let e = try Self.entry(entries, 17, sourcePort: 6000)
        #expect(e.original.source == ip("192.0.2.10") && e.original.destination == ip("192.0.2.1"))
        #expect(e.original.destinationPort == 8080)
        #expect(e.reply.source == ip("10.0.1.10") && e.reply.destination == ip("192.0.2.10"))
        #expect(e.reply.sourcePort == 80 && e.reply.destinationPort == 6000)
        #expect(e.timeout == 28 && e.isUnreplied)
        #expect(e.status?.contains(.destinationNAT) == true && e.status?.contains(.sourceNAT) == false)
        #expect(!e.isSourceRewritten && e.isDestinationRewritten)
        #expect(e.rewrites.map(\.description) == ["DNAT 192.0.2.1:8080 → 10.0.1.10:80"])
        var nat: [UInt8] = []
        e.appendNAT(to: &nat)
        #expect(String(decoding: nat, as: UTF8.self) == "DNAT 192.0.2.1:8080 → 10.0.1.10:80")
    }

    /// `appendNAT` writes from the tuples what `rewrites` describes: the same text, for every entry of the
    /// fixtures and for the cases they lack (IPv6 ports in brackets, SNAT and DNAT at once, an ICMP id).
    @Test func natColumnSaysWhatRewritesSay() throws {
        func column(_ entry: ConntrackEntry) -> String {
            var out: [UInt8] = []
            entry.appendNAT(to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        var entries = try Self.dump()
        entries += try Fixture.load("conntrack-events-nat").messages().compactMap { message in try ConntrackEntry.decode(message) }
        // Both rewritten: 10.0.0.1:1000 → 192.0.2.9:80 became 203.0.113.1:2000 → 10.1.1.1:8080.
        entries.append(ConntrackEntry(
            original: ConntrackTuple(source: ip("10.0.0.1"), destination: ip("192.0.2.9"), protocolNumber: 6, sourcePort: 1000, destinationPort: 80),
            reply: ConntrackTuple(source: ip("10.1.1.1"), destination: ip("203.0.113.1"), protocolNumber: 6, sourcePort: 8080, destinationPort: 2000)))
        entries.append(ConntrackEntry(
            original: ConntrackTuple(source: ip("fd00::1"), destination: ip("2001:db8::9"), protocolNumber: 17, sourcePort: 53, destinationPort: 53),
            reply: ConntrackTuple(source: ip("2001:db8::9"), destination: ip("2001:db8::100"), protocolNumber: 17, sourcePort: 53, destinationPort: 1053)))
        var ping = ConntrackTuple(source: ip("10.0.0.1"), destination: ip("192.0.2.9"), protocolNumber: 1)
        ping.icmpID = 7
        var pong = ConntrackTuple(source: ip("192.0.2.9"), destination: ip("203.0.113.1"), protocolNumber: 1)
        pong.icmpID = 9
        entries.append(ConntrackEntry(original: ping, reply: pong))
        for entry in entries {
            #expect(column(entry) == entry.rewrites.map(\.description).joined(separator: ", "), "\(entry.text())")
        }
        let n = entries.count
        #expect(column(entries[n - 3]) == "SNAT 10.0.0.1:1000 → 203.0.113.1:2000, DNAT 192.0.2.9:80 → 10.1.1.1:8080")
        #expect(column(entries[n - 2]) == "SNAT [fd00::1]:53 → [2001:db8::100]:1053")
        #expect(column(entries[n - 1]) == "SNAT 10.0.0.1 id 7 → 203.0.113.1 id 9")
    }

    @Test func matchFindsEntriesBeforeAndAfterNAT() throws {
        let entries = try Self.dump()
        // The replied SNAT flow, as seen inside (before NAT) and outside (after NAT, in either direction).
        let inside = ConntrackMatch(protocolNumber: 17, source: ip("10.0.1.10"), sourcePort: 5002)
        let outside = ConntrackMatch(protocolNumber: 17, source: ip("192.0.2.1"), sourcePort: 40084,
                                     destination: ip("192.0.2.10"), destinationPort: 5002)
        let answer = ConntrackMatch(protocolNumber: 17, source: ip("192.0.2.10"), sourcePort: 5002,
                                    destination: ip("192.0.2.1"), destinationPort: 40084)
        for match in [inside, outside, answer] {
            #expect(entries.filter(match.matches).map { $0.original.sourcePort } == [5002])
        }
        #expect(entries.filter(ConntrackMatch(protocolNumber: 6).matches).count == 1)
        #expect(entries.filter(ConntrackMatch(protocolNumber: 17, sourcePort: 40085).matches).isEmpty)
        // ICMP by its identifier.
        let ping = ConntrackMatch(protocolNumber: 1, source: ip("192.0.2.1"), sourcePort: 15937)
        #expect(entries.filter(ping.matches).count == 1)
    }

    // MARK: Events

    @Test func newUpdateDestroyAsConntrackEventsPrintedThem() throws {
        let messages = try Fixture.load("conntrack-events-nat").messages()
        let events = try messages.compactMap { message in try ConntrackEvent.decode(message) }
        #expect(events.map(\.kind) == [.new, .update, .destroy])
        let printed = try Self.annotated("conntrack-events-nat", "conntrack -E")
        try #require(printed.count == 3)
        for ((event, message), line) in zip(zip(events, messages), printed) {
            // conntrack -E ends a change made by a netlink socket (here `conntrack -D`) with the socket's port
            // id; nsinspect's line is the rest.
            let mine = event.entry.text(event: event.kind)
            #expect(line == mine || line == mine + " [USERSPACE] portid=\(message.portID)", "\(line)\n\(mine)")
        }

        // [NEW] udp 17 30 src=10.0.1.10 dst=192.0.2.10 sport=5004 dport=5002 [UNREPLIED] src=192.0.2.10 dst=192.0.2.1
        // sport=5002 dport=40025
        let new = events[0].entry
        #expect(messages[0].flags & (NLMsg.create | NLMsg.exclusive) == NLMsg.create | NLMsg.exclusive)
        #expect(new.timeout == 30 && new.isUnreplied)
        #expect(new.original.source == ip("10.0.1.10") && new.original.sourcePort == 5004)
        #expect(new.reply.destination == ip("192.0.2.1") && new.reply.destinationPort == 40025)
        #expect(new.rewrites.map(\.description) == ["SNAT 10.0.1.10:5004 → 192.0.2.1:40025"])
        #expect(new.originalCounters == nil && new.use == nil)

        // [UPDATE]: the same entry, no longer [UNREPLIED].
        let update = events[1].entry
        #expect(messages[1].flags == 0)
        #expect(update.original == new.original && update.reply == new.reply && update.id == new.id)
        #expect(!update.isUnreplied && update.status?.contains(.seenReply) == true && update.timeout == 30)

        // [DESTROY] udp 17 29 … packets=1 bytes=33 … packets=1 bytes=33 (deleted by conntrack -D: its portid).
        let destroy = events[2].entry
        #expect(messages[2].type == CTNetlink.deleteMessage && messages[2].portID != 0)
        #expect(destroy.original == new.original && destroy.id == new.id)
        #expect(destroy.timeout == 29)
        #expect(destroy.originalCounters == ConntrackCounters(packets: 1, bytes: 33))
        #expect(destroy.replyCounters == ConntrackCounters(packets: 1, bytes: 33))
    }

    @Test func otherMessagesAreNotEntries() throws {
        // NLMSG_DONE at the end of the dump, and a route message, are nil, not errors.
        let done = try #require(try Fixture.load("conntrack-dump-nat").messages().last)
        #expect(done.type == NLMsg.done)
        #expect(try ConntrackEntry.decode(done) == nil)
        #expect(try ConntrackEvent.decode(done) == nil)
        let route = try #require(try Fixture.load("route-get-host1").messages().first)
        #expect(try ConntrackEntry.decode(route) == nil)
    }

    // MARK: Bad input

    @Test func entryWithoutTuplesOrShorterThanNfgenmsgIsAnError() throws {
        func message(_ payload: [UInt8]) -> NetlinkMessage {
            NetlinkMessage(type: CTNetlink.newMessage, flags: 0, sequence: 0, portID: 0, payload: payload[...])
        }
        #expect(throws: DecodeError.self) { try ConntrackEntry.decode(message([2, 0])) }
        // nfgenmsg and CTA_STATUS only.
        #expect(throws: DecodeError.self) { try ConntrackEntry.decode(message([2, 0, 0, 0, 8, 0, 3, 0, 0, 0, 0, 8])) }
        // A tuple with an IPv4 source of 3 bytes.
        let badTuple: [UInt8] = [2, 0, 0, 0, 20, 0, 1, 0x80, 16, 0, 1, 0x80, 7, 0, 1, 0, 10, 0, 1, 0, 0, 0, 0, 0]
        #expect(throws: DecodeError.self) { try ConntrackEntry.decode(message(badTuple)) }
        // An attribute whose length runs past the end, and one of length 0 (which could loop).
        #expect(throws: DecodeError.self) { try ConntrackEntry.decode(message([2, 0, 0, 0, 40, 0, 1, 0x80, 0, 0, 0, 0])) }
        #expect(throws: DecodeError.self) { try ConntrackEntry.decode(message([2, 0, 0, 0, 0, 0, 1, 0x80, 0, 0, 0, 0])) }
        // CTA_TIMEOUT of two bytes.
        let fixture = try #require(try Fixture.load("conntrack-dump-nat").messages().first)
        var payload = Array(fixture.payload) + [6, 0, 7, 0, 0, 1, 0, 0]
        #expect(throws: DecodeError.self) { try ConntrackEntry.decode(message(payload)) }
        // The same attribute at its right size decodes (the later CTA_TIMEOUT wins).
        payload = Array(fixture.payload) + [8, 0, 7, 0, 0, 0, 1, 0]
        #expect(try ConntrackEntry.decode(message(payload))?.timeout == 256)
    }

    /// Each message of the conntrack fixtures cut short: with its header as the kernel sent it (nlmsg_len
    /// now larger than the bytes), splitting fails at every length; with the header made to fit, decoding
    /// fails unless the cut falls between two top-level attributes after both tuples (or within the
    /// 3 bytes after such a point, too short for an attribute header, which netlink ignores as the kernel's
    /// nla_parse does). Never a crash or a loop (the suite's time limit catches a hang).
    @Test(arguments: ["conntrack-dump-nat", "conntrack-events-nat"])
    func everyTruncatedMessageIsAnError(_ name: String) throws {
        var checked = 0
        for datagram in try Fixture.load(name).datagrams {
            var at = 0
            while at + 16 <= datagram.count {
                let length = Int(datagram[at]) | Int(datagram[at + 1]) << 8 | Int(datagram[at + 2]) << 16 | Int(datagram[at + 3]) << 24
                let bytes = datagram[at..<(at + length)]
                at += (length + 3) & ~3
                for cut in 1..<bytes.count {
                    #expect(throws: DecodeError.self, "\(name): message cut to \(cut) of \(bytes.count) bytes") {
                        try NetlinkMessage.split(bytes.prefix(cut))
                    }
                }
                let message = try #require(try NetlinkMessage.split(bytes).first)
                guard message.type != NLMsg.done else { continue }
                let payload = message.payload
                // Where the top-level attributes start, after nfgenmsg.
                var boundaries: [Int] = []
                var offset = 4
                while offset + 4 <= payload.count {
                    boundaries.append(offset)
                    let start = payload.startIndex + offset
                    offset += ((Int(payload[start]) | Int(payload[start + 1]) << 8) + 3) & ~3
                }
                let tolerated = Set(boundaries.flatMap { [$0, $0 + 1, $0 + 2, $0 + 3] })
                for cut in 0..<payload.count {
                    let short = NetlinkMessage(type: message.type, flags: message.flags, sequence: message.sequence,
                                               portID: message.portID, payload: payload.prefix(cut))
                    let decoded: ConntrackEntry?
                    do {
                        decoded = try ConntrackEntry.decode(short)
                    } catch {
                        checked += 1
                        continue
                    }
                    #expect(decoded != nil && tolerated.contains(cut), "\(name): payload cut to \(cut) of \(payload.count) decoded")
                }
            }
        }
        #expect(checked > 300, "\(checked) truncated payloads were errors")
    }
}
