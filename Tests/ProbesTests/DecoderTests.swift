import NetAddress
import CShim
import ProcNS
import Testing

@testable import Probes

/// Records built the way the kernel writes them (a `struct nsi_event` followed by snap_len bytes).
enum Records {
    static func event(hook: Hook, _ fill: (inout nsi_event) -> Void = { _ in }) -> nsi_event {
        var event = nsi_event()
        event.hook = hook.rawValue
        fill(&event)
        return event
    }

    /// The bytes of a record: the header and `snap_len` bytes of `snap`, as bpf_ringbuf_output writes them.
    static func bytes(_ event: nsi_event) -> [UInt8] {
        withUnsafeBytes(of: event) { Array($0.prefix(PacketEvent.headerSize + Int(event.snap_len))) }
    }

    static func set<T>(_ field: inout T, _ bytes: [UInt8]) {
        withUnsafeMutableBytes(of: &field) { $0.copyBytes(from: bytes) }
    }

    /// An IPv4 packet header as the kernel parses it.
    static func ipv4(_ p: inout nsi_packet, proto: UInt8, ttl: UInt8, from source: [UInt8], to destination: [UInt8]) {
        p.ip_version = 4
        p.protocol = proto
        p.ttl = ttl
        set(&p.saddr, source)
        set(&p.daddr, destination)
    }

    static func echoRequest(_ p: inout nsi_packet, id: UInt16, sequence: UInt16) {
        p.l4_valid = 1
        p.icmp_type = 8
        p.icmp_id = id
        p.icmp_seq = sequence
    }
}

@Suite("Event decoder")
struct DecoderTests {
    @Test("an ICMP echo at transmit decodes field by field")
    func echoAtTransmit() throws {
        let raw = Records.event(hook: .transmit) { e in
            e.timestamp_ns = 123_456_789
            e.skb = 0xffff_8881_0203_0400
            e.netns = 4_026_532_178
            e.ifindex = 7
            Records.set(&e.ifname, Array("veth-a".utf8))
            e.mark = 0x42
            e.orig_len = 84
            Records.ipv4(&e.packet, proto: 1, ttl: 64, from: [10, 0, 0, 1], to: [10, 0, 0, 2])
            e.packet.tos = 0x10
            e.packet.total_length = 84
            e.packet.ip_id = 0xbeef
            Records.echoRequest(&e.packet, id: 0x1234, sequence: 3)
            e.snap_len = 4
            Records.set(&e.snap, [0x45, 0x10, 0x00, 0x54])
        }
        let event = try PacketEvent(decoding: Records.bytes(raw))
        #expect(event.hook == .transmit)
        #expect(event.timestamp == 123_456_789)
        #expect(event.skb == 0xffff_8881_0203_0400)
        #expect(event.netns == 4_026_532_178)
        #expect(!event.netnsFromSocket)
        #expect(event.ifindex == 7)
        #expect(event.ifname == "veth-a")
        #expect(event.mark == 0x42)
        #expect(event.originalLength == 84)
        #expect(event.snapshot == [0x45, 0x10, 0x00, 0x54])
        #expect(event.detail == .none)
        #expect(event.quoted == nil)
        let packet = try #require(event.packet)
        #expect(packet.version == 4)
        #expect(packet.proto == PacketHeaders.icmp)
        #expect(packet.ttl == 64)
        #expect(packet.tos == 0x10)
        #expect(packet.totalLength == 84)
        #expect(packet.ipID == 0xbeef)
        #expect(packet.source.description == "10.0.0.1")
        #expect(packet.destination.description == "10.0.0.2")
        #expect(packet.isEchoRequest && !packet.isEchoReply)
        #expect(packet.icmpID == 0x1234)
        #expect(packet.icmpSequence == 3)
    }

    @Test("a time exceeded error carries the probe it quotes")
    func quotedHeader() throws {
        let raw = Records.event(hook: .receive) { e in
            Records.ipv4(&e.packet, proto: 1, ttl: 63, from: [10, 0, 1, 1], to: [10, 0, 0, 1])
            e.packet.l4_valid = 1
            e.packet.icmp_type = 11
            Records.ipv4(&e.inner, proto: 1, ttl: 1, from: [10, 0, 0, 1], to: [10, 0, 2, 2])
            Records.echoRequest(&e.inner, id: 0x4242, sequence: 9)
        }
        let event = try PacketEvent(decoding: Records.bytes(raw))
        #expect(event.packet?.icmpType == 11)
        let quoted = try #require(event.quoted)
        #expect(quoted.isEchoRequest)
        #expect(quoted.icmpID == 0x4242 && quoted.icmpSequence == 9)
        #expect(quoted.ttl == 1)
        #expect(quoted.destination == IPAddress("10.0.2.2"))
        #expect(event.snapshot.isEmpty)
    }

    @Test("an IPv6 UDP packet keeps all 16 address bytes and the ports")
    func ipv6() throws {
        let source = try #require(IPAddress("fd00::1"))
        let destination = try #require(IPAddress("fd00:0:0:1::2"))
        let raw = Records.event(hook: .receive) { e in
            e.packet.ip_version = 6
            e.packet.protocol = 17
            e.packet.ttl = 63
            Records.set(&e.packet.saddr, source.bytes)
            Records.set(&e.packet.daddr, destination.bytes)
            e.packet.l4_valid = 1
            e.packet.sport = 40000
            e.packet.dport = 33434
        }
        let packet = try #require(try PacketEvent(decoding: Records.bytes(raw)).packet)
        #expect(packet.version == 6)
        #expect(packet.source == source && packet.destination == destination)
        #expect(packet.destination.description == "fd00:0:0:1::2")
        #expect(packet.sourcePort == 40000 && packet.destinationPort == 33434)
        #expect(!packet.isICMP)
    }

    @Test("drops carry the reason and the location")
    func drop() throws {
        let raw = Records.event(hook: .drop) { e in
            e.drop_reason = 12
            e.detail.drop.location = 0xffff_ffff_8100_0000
            e.flags = UInt8(NSI_EF_NETNS_FROM_SOCKET.rawValue)
        }
        let event = try PacketEvent(decoding: Records.bytes(raw))
        #expect(event.dropReason == 12)
        #expect(event.detail == .drop(location: 0xffff_ffff_8100_0000))
        #expect(event.netnsFromSocket)
        #expect(event.packet == nil)
    }

    @Test("route lookups carry table, result, next hop and whether they were tied to a packet")
    func routeLookup() throws {
        let raw = Records.event(hook: .routeLookup) { e in
            e.flags = UInt8(NSI_EF_FROM_RECV_STASH.rawValue)
            e.detail.fib.table = 254
            e.detail.fib.err = -101
            e.detail.fib.oif = 3
            e.detail.fib.flow_iif = 2
            e.detail.fib.gw_version = 4
            Records.set(&e.detail.fib.gateway, [192, 168, 1, 1])
        }
        let event = try PacketEvent(decoding: Records.bytes(raw))
        guard case .route(let route) = event.detail else {
            Issue.record("not a route lookup: \(event.detail)")
            return
        }
        #expect(route.table == 254 && route.error == -101 && route.outputInterface == 3)
        #expect(route.flowInputInterface == 2)
        #expect(route.gateway?.description == "192.168.1.1")
        #expect(route.tiedToPacket)
    }

    @Test("neighbour updates carry address, link-layer address and states")
    func neighbour() throws {
        let raw = Records.event(hook: .neighbour) { e in
            e.detail.neigh.ip_version = 4
            Records.set(&e.detail.neigh.addr, [10, 0, 0, 2])
            Records.set(&e.detail.neigh.lladdr, [2, 0, 0, 0, 0, 1])
            e.detail.neigh.lladdr_len = 6
            e.detail.neigh.old_state = 0x01
            e.detail.neigh.new_state = 0x02
        }
        let event = try PacketEvent(decoding: Records.bytes(raw))
        #expect(event.detail == .neighbour(NeighbourUpdate(
            address: IPAddress("10.0.0.2"), linkAddress: [2, 0, 0, 0, 0, 1], oldState: 1, newState: 2, flags: 0)))
    }

    @Test("truncated records are errors, not crashes")
    func truncated() throws {
        var raw = Records.event(hook: .transmit) { $0.snap_len = 64 }
        let full = withUnsafeBytes(of: raw) { Array($0) }
        for size in [0, 1, 8, PacketEvent.headerSize - 1] {
            #expect(throws: PacketEvent.DecodeError.truncated(size: size, needed: PacketEvent.headerSize)) {
                try PacketEvent(decoding: Array(full.prefix(size)))
            }
        }
        // The header promises 64 bytes of packet; only 10 came.
        #expect(throws: PacketEvent.DecodeError.truncated(size: PacketEvent.headerSize + 10, needed: PacketEvent.headerSize + 64)) {
            try PacketEvent(decoding: Array(full.prefix(PacketEvent.headerSize + 10)))
        }
        raw.snap_len = 200  // more than NSI_SNAP_LEN
        #expect(throws: PacketEvent.DecodeError.self) { try PacketEvent(decoding: withUnsafeBytes(of: raw) { Array($0) }) }
        raw.snap_len = 0
        raw.hook = 99
        #expect(throws: PacketEvent.DecodeError.unknownHook(99)) { try PacketEvent(decoding: Records.bytes(raw)) }
    }

    @Test("the layout matches the BPF side: header 200 bytes, record at most 328")
    func layout() {
        #expect(PacketEvent.headerSize == 200)
        #expect(MemoryLayout<nsi_event>.size == 328)
        #expect(MemoryLayout<nsi_packet>.size == 52)
        #expect(MemoryLayout<nsi_config>.size == 52)
    }

    @Test("addresses parse and print through inet_pton/inet_ntop")
    func addresses() {
        #expect(IPAddress("10.1.2.3")?.bytes == [10, 1, 2, 3])
        #expect(IPAddress("::1")?.bytes == [UInt8](repeating: 0, count: 15) + [1])
        #expect(IPAddress("2001:db8::1")?.description == "2001:db8::1")
        #expect(IPAddress("10.1.2") == nil)
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
    }
}

@Suite("Filter encoding")
struct FilterEncodingTests {
    private func bytes<T>(_ value: T, _ count: Int) -> [UInt8] { withUnsafeBytes(of: value) { Array($0.prefix(count)) } }

    @Test("an ICMP probe: id, optional hosts, namespace flag")
    func icmpEcho() throws {
        let config = try TraceFilter(namespaces: [11, 22], match: .icmpEcho(id: 0x1234, hosts: [IPAddress("10.0.0.1")!]))
            .encoded()
        #expect(config.match == UInt8(NSI_MATCH_ICMP_ECHO.rawValue))
        #expect(config.icmp_id == 0x1234)
        #expect(config.flags == NSI_CF_NETNS.rawValue | NSI_CF_ADDR_A.rawValue)
        #expect(config.addr_a_version == 4)
        #expect(bytes(config.addr_a, 4) == [10, 0, 0, 1])
        #expect(config.snap_len == 128)
    }

    @Test("every namespace: no namespace flag; snap length clamped")
    func allNamespaces() throws {
        var filter = TraceFilter(match: .all, snapLength: 1000)
        var config = try filter.encoded()
        #expect(config.flags == 0 && config.match == UInt8(NSI_MATCH_ALL.rawValue) && config.snap_len == 128)
        filter.snapLength = -5
        config = try filter.encoded()
        #expect(config.snap_len == 0)
    }

    @Test("a UDP probe: protocol, addresses and ports with their flags")
    func flow() throws {
        let flow = FlowIdentity(proto: PacketHeaders.udp, source: IPAddress("fd00::1"), sourcePort: 40000,
                                destination: IPAddress("fd00::2"), destinationPort: 33434)
        let config = try TraceFilter(match: .flow(flow)).encoded()
        #expect(config.match == UInt8(NSI_MATCH_FLOW.rawValue))
        #expect(config.protocol == 17)
        #expect(config.flags == NSI_CF_PROTOCOL.rawValue | NSI_CF_ADDR_A.rawValue | NSI_CF_ADDR_B.rawValue
            | NSI_CF_PORT_A.rawValue | NSI_CF_PORT_B.rawValue)
        #expect(config.addr_a_version == 6 && config.addr_b_version == 6)
        #expect(bytes(config.addr_b, 16) == IPAddress("fd00::2")!.bytes)
        #expect(config.port_a == 40000 && config.port_b == 33434)
        // A source port not known yet is a wildcard.
        let partial = try TraceFilter(match: .flow(FlowIdentity(proto: PacketHeaders.tcp, destinationPort: 80))).encoded()
        #expect(partial.flags == NSI_CF_PROTOCOL.rawValue | NSI_CF_PORT_B.rawValue)
    }

    @Test("passive: only the fields given")
    func passive() throws {
        let config = try TraceFilter(match: .passive(PassiveFilter(
            proto: PacketHeaders.icmp, hosts: [IPAddress("10.0.0.1")!, IPAddress("10.0.0.2")!], icmpID: 7))).encoded()
        #expect(config.match == UInt8(NSI_MATCH_PASSIVE.rawValue))
        #expect(config.flags == NSI_CF_PROTOCOL.rawValue | NSI_CF_ADDR_A.rawValue | NSI_CF_ADDR_B.rawValue | NSI_CF_ICMP_ID.rawValue)
        #expect(config.icmp_id == 7 && config.protocol == 1)
        let empty = try TraceFilter(match: .passive(PassiveFilter())).encoded()
        #expect(empty.flags == 0 && empty.match == UInt8(NSI_MATCH_PASSIVE.rawValue))
    }

    @Test("impossible filters are refused")
    func refused() {
        #expect(throws: OperationError.self) {
            try TraceFilter(match: .flow(FlowIdentity(proto: PacketHeaders.icmp))).encoded()
        }
        let three = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].compactMap(IPAddress.init)
        #expect(throws: OperationError.self) { try TraceFilter(match: .passive(PassiveFilter(hosts: three))).encoded() }
        #expect(throws: OperationError.self) { try TraceFilter(match: .icmpEcho(id: 1, hosts: three)).encoded() }
    }
}

@Suite("Support")
struct SupportTests {
    @Test("base64 round trips RFC 4648's vectors and refuses garbage")
    func base64() {
        func decode(_ text: String) -> [UInt8]? {
            Array(text.utf8).withUnsafeBufferPointer { Base64.decode($0) }
        }
        #expect(decode("") == [])
        #expect(decode("Zg==") == Array("f".utf8))
        #expect(decode("Zm8=") == Array("fo".utf8))
        #expect(decode("Zm9v") == Array("foo".utf8))
        #expect(decode("Zm9vYg==") == Array("foob".utf8))
        #expect(decode("Zm9vYmFy") == Array("foobar".utf8))
        #expect(decode("Zm9") == nil)
        #expect(decode("Zm9*") == nil)
    }

    @Test("the embedded object is a BPF ELF file")
    func embeddedObject() throws {
        let image = try EmbeddedBPF.object(EmbeddedBPF.trace)
        #expect(image.count > 1000)
        #expect(Array(image.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46])  // \x7fELF
        #expect(UInt16(image[18]) | UInt16(image[19]) << 8 == 247)  // e_machine EM_BPF
    }

    @Test("drop reasons by name, with numbers for the unknown")
    func dropReasons() {
        let reasons = DropReasons(names: [12: "NETFILTER_DROP", 2: "NO_SOCKET"])
        #expect(reasons.name(12) == "NETFILTER_DROP")
        #expect(reasons.name(1000) == "reason 1000")
        #expect(reasons.name(0x0002_0003) == "subsystem 2 reason 3")
        #expect(reasons.value(of: "SKB_DROP_REASON_NO_SOCKET") == 2)
    }

    @Test("a hook the kernel lacks: an error when required, a warning when optional")
    func hookChecks() throws {
        let all = Set(Hook.tracepointHooks)
        let (hooks, warnings) = try ProbeSession.usableHooks(all) { $0 != "neigh_update" && $0 != "icmp_send" }
        #expect(hooks == [.transmit, .receive, .drop, .routeLookup, .routeLookup6])
        #expect(warnings.count == 2)
        #expect(warnings.contains("tp_btf/neigh_update is not available in this kernel: no neigh events"))
        #expect(throws: OperationError("trace", "tp_btf/kfree_skb",
                                       "the kernel has no BTF tracepoint kfree_skb, which tracing needs")) {
            try ProbeSession.usableHooks(all) { $0 != "kfree_skb" }
        }
        // A hook nobody asked for is not checked.
        #expect(try ProbeSession.usableHooks([.transmit, .receive]) { $0 != "kfree_skb" }.hooks == [.transmit, .receive])
    }

    @Test("ring buffer sizes are powers of two of at least a page")
    func ringBufferSize() {
        #expect(ProbeSession.ringBufferBytes(1) == 4096)
        #expect(ProbeSession.ringBufferBytes(5000) == 8192)
        #expect(ProbeSession.ringBufferBytes(8 << 20) == 8 << 20)
    }

    @Test("a failed load is summarized by the verifier's last word")
    func verifierSummary() {
        let warnings = [
            "libbpf: prog 'nsi_fib6': BPF program load failed: Invalid argument",
            "libbpf: prog 'nsi_fib6': -- BEGIN PROG LOAD LOG --\n0: (bf) r6 = r1\n192: (61) r9 = *(u32 *)(r0 +0)\nsame insn cannot be used with different pointers\nprocessed 253 insns (limit 1000000)\n-- END PROG LOAD LOG --",
            "libbpf: prog 'nsi_fib6': failed to load: -22",
        ]
        #expect(BPFObject.summarize(warnings)
            == "prog 'nsi_fib6': BPF program load failed: Invalid argument; verifier: same insn cannot be used with different pointers")
    }
}
