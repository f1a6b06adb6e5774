import CShim
import Testing

@testable import Probes

/// Recorded event sequences, built the way the kernel writes them, for the trace assembler: bridges,
/// flooded copies, a userspace switch's copies, real losses, and the verdict on each.
enum Trace {
    static let h1: UInt32 = 4_026_532_001
    static let sw: UInt32 = 4_026_532_002
    static let h2: UInt32 = 4_026_532_003
    static let r: UInt32 = 4_026_532_004
    static let host: UInt32 = 4_026_531_840
    static let labels: [UInt32: String] = [h1: "h1", sw: "sw", h2: "h2", r: "r", host: "host"]
    static let reasons = DropReasons(names: [2: "NO_SOCKET", 5: "NETFILTER_DROP", 7: "OTHERHOST", 9: "UDP_CSUM"])
    static let id: UInt16 = 4242
    static let a: [UInt8] = [10, 0, 1, 10]
    static let b: [UInt8] = [10, 0, 1, 11]

    /// One event of an ICMP echo (request from a to b, or the reply), or of a UDP probe.
    static func event(_ hook: Hook, at t: UInt64, in ns: UInt32, _ ifname: String, index: UInt32, skb: UInt64, ttl: UInt8 = 64,
                      reply: Bool = false, udp: Bool = false, sequence: UInt16 = 1, drop: UInt32 = 0) -> PacketEvent {
        let raw = Records.event(hook: hook) { e in
            e.timestamp_ns = t
            e.skb = skb
            e.netns = ns
            e.ifindex = index
            Records.set(&e.ifname, Array(ifname.utf8))
            e.drop_reason = drop
            Records.ipv4(&e.packet, proto: udp ? 17 : 1, ttl: ttl, from: reply ? b : a, to: reply ? a : b)
            if udp {
                e.packet.l4_valid = 1
                e.packet.sport = reply ? 33434 : 40000
                e.packet.dport = reply ? 40000 : 33434
            } else {
                Records.echoRequest(&e.packet, id: id, sequence: sequence)
                if reply { e.packet.icmp_type = 0 }
            }
        }
        return try! PacketEvent(decoding: Records.bytes(raw))
    }

    static let bridgePorts: [InterfaceKey: SwitchPort] = [
        InterfaceKey(netns: sw, ifindex: 11): SwitchPort(kind: .bridge, name: "br0"),
        InterfaceKey(netns: sw, ifindex: 12): SwitchPort(kind: .bridge, name: "br0"),
        InterfaceKey(netns: sw, ifindex: 13): SwitchPort(kind: .bridge, name: "br0"),
    ]

    static func assembler(udp: Bool = false, ports: [InterfaceKey: SwitchPort] = bridgePorts,
                          expected: [ExpectedHop]? = nil) -> TraceAssembler {
        TraceAssembler(identity: udp ? .flow(proto: 17, sourcePort: 40000, destinationPort: 33434) : .icmpEcho(id: id),
                       labels: labels, dropReasons: reasons,
                       expected: expected ?? [ExpectedHop(namespace: h1, label: "h1", inInterface: nil, outInterface: "eth0", forwards: false),
                                              ExpectedHop(namespace: h2, label: "h2", inInterface: "eth0", outInterface: nil, forwards: false)],
                       switchPorts: ports)
    }

    /// h1 → bridge br0 in sw (p1 → p2) → h2, and the reply back the same way.
    static func overBridge(flood: Bool = false) -> [PacketEvent] {
        var events = [
            event(.transmit, at: 1_000, in: h1, "eth0", index: 2, skb: 0xa),
            event(.receive, at: 2_000, in: sw, "p1", index: 11, skb: 0xa),
        ]
        if flood {
            // The bridge has not learned h2's MAC: a clone goes out of p3 to r, which discards it.
            events += [
                event(.transmit, at: 2_500, in: sw, "p3", index: 13, skb: 0xc),
                event(.receive, at: 2_700, in: r, "e0", index: 2, skb: 0xc),
                event(.drop, at: 2_800, in: r, "e0", index: 2, skb: 0xc, drop: 7),
            ]
        }
        events += [
            event(.transmit, at: 3_000, in: sw, "p2", index: 12, skb: 0xa),
            event(.receive, at: 4_000, in: h2, "eth0", index: 2, skb: 0xa),
            event(.transmit, at: 5_000, in: h2, "eth0", index: 2, skb: 0xb, reply: true),
            event(.receive, at: 6_000, in: sw, "p2", index: 12, skb: 0xb, reply: true),
            event(.transmit, at: 7_000, in: sw, "p1", index: 11, skb: 0xb, reply: true),
            event(.receive, at: 8_000, in: h1, "eth0", index: 2, skb: 0xb, reply: true),
            event(.drop, at: 9_000, in: h1, "eth0", index: 2, skb: 0xb, reply: true, drop: 2),
        ]
        return events
    }

    /// A route lookup (fib_table_lookup) for the request's destination, as the tracepoint reports it.
    static func lookup(at t: UInt64, in ns: UInt32, table: UInt32, error: Int32 = 0, out: (String, UInt32)? = nil) -> PacketEvent {
        let raw = Records.event(hook: .routeLookup) { e in
            e.timestamp_ns = t
            e.netns = ns
            if let out {
                e.ifindex = out.1
                Records.set(&e.ifname, Array(out.0.utf8))
                e.detail.fib.oif = out.1
            }
            e.detail.fib.table = table
            e.detail.fib.err = error
            Records.ipv4(&e.packet, proto: 1, ttl: 64, from: a, to: b)
        }
        return try! PacketEvent(decoding: Records.bytes(raw))
    }

    static let answered = [SentProbe(sequence: 1, sentAt: 500, outcome: .reply(ttl: 64, rtt: 9_000))]
}

@Suite("Trace assembler: bridges, switches and copies")
struct TraceAssemblerTests {
    @Test("a bridge is a layer-2 hop, not a routed one, and the verdict agrees")
    func bridgeIsNotARoutedHop() throws {
        let report = try #require(Trace.assembler().assemble(events: Trace.overBridge(), probes: Trace.answered).first)
        #expect(report.requestHops.map(\.label) == ["h1", "sw", "h2"])
        let bridge = try #require(report.requestHops[1].switching)
        #expect(bridge == SwitchCrossing(kind: .bridge, name: "br0", inPort: "p1", outPort: "p2"))
        #expect(!report.requestHops[1].routed)
        #expect(report.observedRoutedHops == 0)
        #expect(report.agrees, "\(report.verdict)")
        #expect(report.verdict == .agree(HopCounts(seen: 0, predicted: 0, byReplyTTL: 0, initialTTL: 64)))
        #expect(report.replyHops[1].switching?.outPort == "p1")
    }

    @Test("a flooded copy discarded by another host is shown, summarised, and not the probe's fate")
    func floodedCopyIsNotTheProbe() throws {
        let report = try #require(Trace.assembler().assemble(events: Trace.overBridge(flood: true), probes: Trace.answered).first)
        #expect(report.agrees, "\(report.verdict)")
        #expect(report.drop == nil)
        #expect(report.requestHops.map(\.label) == ["h1", "sw", "h2"])
        #expect(report.requestHops[1].switching?.outPort == "p2")
        #expect(report.discardedCopies.map(\.label) == ["r"])
        #expect(report.discardedCopies.first?.kind == .offPath)
        #expect(report.discardedCopies.first?.reason == "OTHERHOST")
        // Every event is in the timeline; the copy's are marked.
        #expect(report.timeline.count == 12)
        #expect(report.timeline.filter(\.isCopy).map(\.namespace) == ["sw", "r", "r"])
    }

    @Test("a copy's drop is placed where the copy was: on input where it came in, at the port it went out by")
    func copyDropPlaces() throws {
        var events = Trace.overBridge(flood: true)
        // A second flooded copy goes out of p4 and dies there, in sw itself (a full queue, a filter).
        events += [
            Trace.event(.transmit, at: 2_550, in: Trace.sw, "p4", index: 14, skb: 0xd),
            Trace.event(.drop, at: 2_560, in: Trace.sw, "p4", index: 14, skb: 0xd, drop: 5),
        ]
        let report = try #require(Trace.assembler().assemble(events: events, probes: Trace.answered).first)
        #expect(report.agrees, "\(report.verdict)")
        let places = report.discardedCopies.map { "\($0.label) \($0.reason) \(String(describing: $0.place))" }
        #expect(report.discardedCopies.map(\.place) == [.at("p4"), .onInputFrom("e0")], "\(places)")
        #expect(report.discardedCopies.map(\.label) == ["sw", "r"], "\(places)")
    }

    @Test("a userspace switch's copies: the host's own stack drops its copy, the frame goes on in a new sk_buff")
    func userspaceSwitch() throws {
        // The host's stack gets the frame too and drops it (not for its MAC); the switch re-sends it.
        // The re-sent frame here even reuses the dropped sk_buff's address, as the slab allocator does.
        let events = [
            Trace.event(.transmit, at: 1_000, in: Trace.h1, "eth0", index: 2, skb: 0xa),
            Trace.event(.receive, at: 2_000, in: Trace.host, "usw-a", index: 21, skb: 0xa),
            Trace.event(.drop, at: 2_100, in: Trace.host, "usw-a", index: 21, skb: 0xa, drop: 7),
            Trace.event(.transmit, at: 3_000, in: Trace.host, "usw-b", index: 22, skb: 0xa),
            Trace.event(.receive, at: 4_000, in: Trace.h2, "eth0", index: 2, skb: 0xa),
            Trace.event(.transmit, at: 5_000, in: Trace.h2, "eth0", index: 2, skb: 0xb, reply: true),
            Trace.event(.receive, at: 6_000, in: Trace.host, "usw-b", index: 22, skb: 0xb, reply: true),
            Trace.event(.drop, at: 6_100, in: Trace.host, "usw-b", index: 22, skb: 0xb, reply: true, drop: 7),
            Trace.event(.transmit, at: 7_000, in: Trace.host, "usw-a", index: 21, skb: 0xd, reply: true),
            Trace.event(.receive, at: 8_000, in: Trace.h1, "eth0", index: 2, skb: 0xd, reply: true),
        ]
        let report = try #require(Trace.assembler(ports: [:]).assemble(events: events, probes: Trace.answered).first)
        #expect(report.agrees, "\(report.verdict)")
        #expect(report.drop == nil)
        #expect(report.requestHops.map(\.label) == ["h1", "host", "h2"])
        #expect(report.requestHops[1].switching == SwitchCrossing(kind: .unmanaged, name: nil, inPort: "usw-a", outPort: "usw-b"))
        #expect(report.requestHops[1].drop == nil)
        #expect(report.replyHops.map(\.label) == ["h2", "host", "h1"])
        #expect(report.discardedCopies.map(\.kind) == [.left, .left])
        #expect(report.discardedCopies.map(\.direction) == [.request, .reply])
    }

    @Test("a real loss wins over copies: the UDP datagram dropped for its checksum in the receiver")
    func realLossIsTheVerdict() throws {
        let events = [
            Trace.event(.transmit, at: 1_000, in: Trace.h1, "eth0", index: 2, skb: 0xa, udp: true),
            Trace.event(.receive, at: 2_000, in: Trace.host, "usw-a", index: 21, skb: 0xa, udp: true),
            Trace.event(.drop, at: 2_100, in: Trace.host, "usw-a", index: 21, skb: 0xa, udp: true, drop: 7),
            Trace.event(.transmit, at: 3_000, in: Trace.host, "usw-b", index: 22, skb: 0xe, udp: true),
            Trace.event(.receive, at: 4_000, in: Trace.h2, "eth0", index: 2, skb: 0xe, udp: true),
            Trace.event(.drop, at: 4_100, in: Trace.h2, "eth0", index: 2, skb: 0xe, udp: true, drop: 9),
        ]
        let probes = [SentProbe(sequence: 1, sentAt: 500, outcome: .timeout)]
        let report = try #require(Trace.assembler(udp: true, ports: [:]).assemble(events: events, probes: probes).first)
        #expect(!report.agrees)
        #expect(report.drop?.label == "h2")
        #expect(report.drop?.drop == "UDP_CSUM")
        #expect(report.verdict == .dropped(in: "h2", place: .onInputFrom("eth0"), reason: "UDP_CSUM", predictedStop: nil, predictedNext: nil),
                "\(report.verdict)")
        #expect(report.discardedCopies.map(\.label) == ["host"])
        #expect(report.requestHops.map(\.label) == ["h1", "host", "h2"])
    }

    @Test("a probe that got its answer is never dropped, whatever a copy met")
    func answeredIsNeverDropped() throws {
        var events = Trace.overBridge()
        // A second copy reaches h2 and a firewall rule there drops it; the probe itself was answered.
        events.append(Trace.event(.receive, at: 4_200, in: Trace.h2, "eth1", index: 3, skb: 0xf))
        events.append(Trace.event(.drop, at: 4_300, in: Trace.h2, "eth1", index: 3, skb: 0xf, drop: 5))
        let report = try #require(Trace.assembler().assemble(events: events, probes: Trace.answered).first)
        #expect(report.agrees, "\(report.verdict)")
        #expect(report.verdict == .agree(HopCounts(seen: 0, predicted: 0, byReplyTTL: 0, initialTTL: 64)))
        #expect(report.drop == nil)
        #expect(report.discardedCopies.map(\.reason) == ["NETFILTER_DROP"])
    }

    @Test("without the answer a firewall drop on the way is the verdict, and the flooded copy is not")
    func timeoutNamesTheDropNotTheCopy() throws {
        // The probe goes to h2, where a rule drops it; the flooded copy's OTHERHOST in r comes later.
        let events = [
            Trace.event(.transmit, at: 1_000, in: Trace.h1, "eth0", index: 2, skb: 0xa),
            Trace.event(.receive, at: 2_000, in: Trace.sw, "p1", index: 11, skb: 0xa),
            Trace.event(.transmit, at: 2_500, in: Trace.sw, "p2", index: 12, skb: 0xa),
            Trace.event(.transmit, at: 2_600, in: Trace.sw, "p3", index: 13, skb: 0xc),
            Trace.event(.receive, at: 3_000, in: Trace.h2, "eth0", index: 2, skb: 0xa),
            Trace.event(.drop, at: 3_100, in: Trace.h2, "eth0", index: 2, skb: 0xa, drop: 5),
            Trace.event(.receive, at: 3_200, in: Trace.r, "e0", index: 2, skb: 0xc),
            Trace.event(.drop, at: 3_300, in: Trace.r, "e0", index: 2, skb: 0xc, drop: 7),
        ]
        let probes = [SentProbe(sequence: 1, sentAt: 500, outcome: .timeout)]
        let report = try #require(Trace.assembler().assemble(events: events, probes: probes).first)
        #expect(report.drop?.label == "h2")
        #expect(report.verdict == .dropped(in: "h2", place: .onInputFrom("eth0"), reason: "NETFILTER_DROP", predictedStop: nil, predictedNext: nil),
                "\(report.verdict)")
        #expect(report.discardedCopies.map(\.label) == ["r"])
    }

    @Test("the host's own veth plugged into its bridge: the host sends, then bridges, and is one routed-level hop")
    func hostInterfaceOnItsOwnBridge() throws {
        let events = [
            Trace.event(.transmit, at: 1_000, in: Trace.host, "host-veth1", index: 5, skb: 0xa),
            Trace.event(.receive, at: 2_000, in: Trace.host, "host-veth1-br", index: 6, skb: 0xa),
            Trace.event(.transmit, at: 3_000, in: Trace.host, "h2-br", index: 7, skb: 0xa),
            Trace.event(.receive, at: 4_000, in: Trace.h2, "eth0", index: 2, skb: 0xa),
            Trace.event(.transmit, at: 5_000, in: Trace.h2, "eth0", index: 2, skb: 0xb, reply: true),
            Trace.event(.receive, at: 6_000, in: Trace.host, "h2-br", index: 7, skb: 0xb, reply: true),
            Trace.event(.transmit, at: 7_000, in: Trace.host, "host-veth1-br", index: 6, skb: 0xb, reply: true),
            Trace.event(.receive, at: 8_000, in: Trace.host, "host-veth1", index: 5, skb: 0xb, reply: true),
        ]
        let ports: [InterfaceKey: SwitchPort] = [
            InterfaceKey(netns: Trace.host, ifindex: 6): SwitchPort(kind: .bridge, name: "br0"),
            InterfaceKey(netns: Trace.host, ifindex: 7): SwitchPort(kind: .bridge, name: "br0"),
        ]
        let expected = [ExpectedHop(namespace: Trace.host, label: "host", inInterface: nil, outInterface: "host-veth1", forwards: false),
                        ExpectedHop(namespace: Trace.h2, label: "h2", inInterface: "eth0", outInterface: nil, forwards: false)]
        let report = try #require(Trace.assembler(ports: ports, expected: expected).assemble(events: events, probes: Trace.answered).first)
        #expect(report.requestHops.map(\.label) == ["host", "host", "h2"])
        #expect(report.requestHops[1].switching?.name == "br0")
        #expect(report.agrees, "\(report.verdict)")
    }

    @Test("routed from a bridge: in on a port, up to the bridge, out routed — in is the bridge, by the port")
    func routedFromABridge() throws {
        let events = [
            Trace.event(.transmit, at: 1_000, in: Trace.h1, "eth0", index: 2, skb: 0xa),
            Trace.event(.receive, at: 2_000, in: Trace.sw, "p1", index: 11, skb: 0xa),
            Trace.event(.receive, at: 2_100, in: Trace.sw, "br0", index: 10, skb: 0xa),
            Trace.event(.transmit, at: 3_000, in: Trace.sw, "up", index: 20, skb: 0xa, ttl: 63),
            Trace.event(.receive, at: 4_000, in: Trace.h2, "eth0", index: 2, skb: 0xa, ttl: 63),
        ]
        let expected = [ExpectedHop(namespace: Trace.h1, label: "h1", inInterface: nil, outInterface: "eth0", forwards: false),
                        ExpectedHop(namespace: Trace.sw, label: "sw", inInterface: "br0", outInterface: "up", forwards: true),
                        ExpectedHop(namespace: Trace.h2, label: "h2", inInterface: "eth0", outInterface: nil, forwards: false)]
        let probes = [SentProbe(sequence: 1, sentAt: 500, outcome: .reply(ttl: 63, rtt: 9_000))]
        let report = try #require(Trace.assembler(expected: expected).assemble(events: events, probes: probes).first)
        #expect(report.requestHops[1].inInterface == "br0 (port p1)")
        #expect(report.requestHops[1].routed)
        #expect(report.agrees, "\(report.verdict)")
    }

    @Test("a namespace that decrements the TTL routed the probe, even between two bridge ports")
    func ttlDecrementIsRouting() throws {
        var events = Trace.overBridge()
        events[2] = Trace.event(.transmit, at: 3_000, in: Trace.sw, "p2", index: 12, skb: 0xa, ttl: 63)
        events[3] = Trace.event(.receive, at: 4_000, in: Trace.h2, "eth0", index: 2, skb: 0xa, ttl: 63)
        let probes = [SentProbe(sequence: 1, sentAt: 500, outcome: .reply(ttl: 63, rtt: 9_000))]
        let report = try #require(Trace.assembler().assemble(events: events, probes: probes).first)
        #expect(report.requestHops[1].routed)
        #expect(report.requestHops[1].switching == nil)
        #expect(report.observedRoutedHops == 1)
        #expect(!report.agrees)  // path predicted no router between h1 and h2
        #expect(report.verdict == .diverged(HopCounts(seen: 1, predicted: 0, byReplyTTL: 1, initialTTL: 64), wentThrough: "sw", predicted: "h2"))
    }

    /// h1 → r (in e0, out e1, routed) → h2, with the lookups the kernel makes in r around the forwarding.
    static func throughRouter(_ lookups: [PacketEvent], forwarded: Bool = true) -> [PacketEvent] {
        var events = [
            Trace.event(.transmit, at: 1_000, in: Trace.h1, "eth0", index: 2, skb: 0xa),
            Trace.event(.receive, at: 2_000, in: Trace.r, "e0", index: 2, skb: 0xa),
        ] + lookups
        if forwarded {
            events += [
                Trace.event(.transmit, at: 3_000, in: Trace.r, "e1", index: 3, skb: 0xa, ttl: 63),
                Trace.event(.receive, at: 4_000, in: Trace.h2, "eth0", index: 2, skb: 0xa, ttl: 63),
            ]
        } else {
            events.append(Trace.event(.drop, at: 3_000, in: Trace.r, "e0", index: 2, skb: 0xa, drop: 5))
        }
        return events
    }

    static let viaRouter = [
        ExpectedHop(namespace: Trace.h1, label: "h1", inInterface: nil, outInterface: "eth0", forwards: false),
        ExpectedHop(namespace: Trace.r, label: "r", inInterface: "e0", outInterface: "e1", forwards: true),
        ExpectedHop(namespace: Trace.h2, label: "h2", inInterface: "eth0", outInterface: nil, forwards: false),
    ]

    @Test("the route a hop shows is the lookup that forwarded it, not NAT's later check of the local table")
    func routeIsTheForwardingLookup() throws {
        let events = Self.throughRouter([
            Trace.lookup(at: 2_100, in: Trace.r, table: 255, error: -11),                  // local: no match
            Trace.lookup(at: 2_200, in: Trace.r, table: 254, out: ("e1", 3)),              // main: out of e1
            Trace.lookup(at: 2_900, in: Trace.r, table: 255, out: ("e1", 3)),              // SNAT: is the new source ours?
        ])
        let probes = [SentProbe(sequence: 1, sentAt: 500, outcome: .timeout)]
        let report = try #require(Trace.assembler(ports: [:], expected: Self.viaRouter).assemble(events: events, probes: probes).first)
        let router = try #require(report.requestHops.first { $0.label == "r" })
        #expect(router.routed)
        #expect(router.route?.table == 254 && router.route?.error == 0, "\(String(describing: router.route))")
        #expect(router.routeInterface == "e1")
    }

    @Test("with no table matching, the hop's route is the last table tried and its error")
    func unroutedShowsTheLastTable() throws {
        let events = Self.throughRouter([
            Trace.lookup(at: 2_100, in: Trace.r, table: 255, error: -11),
            Trace.lookup(at: 2_200, in: Trace.r, table: 254, error: -101),  // ENETUNREACH
        ], forwarded: false)
        let probes = [SentProbe(sequence: 1, sentAt: 500, outcome: .timeout)]
        let report = try #require(Trace.assembler(ports: [:], expected: Self.viaRouter).assemble(events: events, probes: probes).first)
        let router = try #require(report.requestHops.first { $0.label == "r" })
        #expect(router.route?.table == 254 && router.route?.error == -101, "\(String(describing: router.route))")
        #expect(router.routeInterface == nil)
        #expect(router.dropPlace == .onInputFrom("e0"))
    }

    @Test("NAT in a hop is read from the headers on the way in and out, ports with it, IPv6 in brackets")
    func rewritesAreTyped() {
        let assembler = Trace.assembler(udp: true, ports: [:])
        func headers(_ from: [UInt8], _ sport: UInt16, _ to: [UInt8], _ dport: UInt16, v6: Bool = false) -> PacketHeaders? {
            let raw = Records.event(hook: .transmit) { e in
                if v6 {
                    e.packet.ip_version = 6
                    e.packet.protocol = 17
                    Records.set(&e.packet.saddr, from)
                    Records.set(&e.packet.daddr, to)
                } else {
                    Records.ipv4(&e.packet, proto: 17, ttl: 64, from: from, to: to)
                }
                e.packet.l4_valid = 1
                e.packet.sport = sport
                e.packet.dport = dport
            }
            return try! PacketEvent(decoding: Records.bytes(raw)).packet
        }
        let snat = assembler.rewrites(headers([10, 0, 1, 10], 40000, [10, 0, 2, 10], 33434), headers([10, 0, 2, 1], 50000, [10, 0, 2, 10], 33434))
        #expect(snat.map(\.description) == ["SNAT 10.0.1.10:40000 → 10.0.2.1:50000"])
        #expect(snat.first?.kind == .snat && snat.first?.to.port == 50000)
        let dnat = assembler.rewrites(headers([10, 0, 1, 10], 40000, [10, 0, 2, 1], 80), headers([10, 0, 1, 10], 40000, [10, 0, 2, 10], 8080))
        #expect(dnat.map(\.description) == ["DNAT 10.0.2.1:80 → 10.0.2.10:8080"])
        let a6: [UInt8] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], b6: [UInt8] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
        let c6: [UInt8] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]
        let v6 = assembler.rewrites(headers(a6, 1000, b6, 53, v6: true), headers(c6, 1000, b6, 53, v6: true))
        #expect(v6.map(\.description) == ["SNAT [fd00::1]:1000 → [fd00::3]:1000"])
        #expect(assembler.rewrites(headers([10, 0, 1, 10], 1, [10, 0, 2, 10], 2), headers([10, 0, 1, 10], 1, [10, 0, 2, 10], 2)).isEmpty)
    }
}
