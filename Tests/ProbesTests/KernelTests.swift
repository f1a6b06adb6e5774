#if canImport(Glibc)
import NetAddress
import Glibc
#endif
import ProcNS
import Synchronization
import Testing

@testable import Probes

/// Polls until `done` says the events so far are enough, or `seconds` pass.
func collect(_ session: ProbeSession, seconds: Double = 3, until done: ([PacketEvent]) -> Bool) throws -> [PacketEvent] {
    var events: [PacketEvent] = []
    let deadline = Stopwatch.now() + UInt64(seconds * 1e9)
    while !done(events) && Stopwatch.now() < deadline {
        try session.poll(timeoutMilliseconds: 50) { events.append($0) }
    }
    return events
}

/// A session on both namespaces of `network`, for ICMP echoes with this id.
func echoSession(_ network: TestNetwork, id: UInt16) throws -> ProbeSession {
    try ProbeSession(.init(filter: TraceFilter(namespaces: [network.inodeA, network.inodeB], match: .icmpEcho(id: id))))
}

/// A random ICMP id, so a test's probes share their identity with no other traffic.
func randomID() -> UInt16 { UInt16.random(in: 0x1000...0xfff0) }

/// Loading BPF programs needs root. As root (always in CI) nothing here is skipped: a missing BTF or
/// iproute2 is a failure that says so (`prerequisites`), and every test then fails with its own error.
@Suite("BPF in the kernel", .serialized, .enabled(if: getuid() == 0, "loading BPF programs needs root"))
struct KernelTests {
    @Test("the kernel has BTF and iproute2 is installed")
    func prerequisites() {
        #expect(access("/sys/kernel/btf/vmlinux", R_OK) == 0, "/sys/kernel/btf/vmlinux is missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF), which tp_btf programs need")
        #expect(TestNetwork.toolsAvailable, "ip (iproute2) is not installed: apt-get install iproute2")
    }

    @Test("an echo between two namespaces is seen leaving one and entering the other, both ways")
    func echoAcrossVeth() throws {
        let network = try TestNetwork()
        defer { network.remove() }
        let id = randomID()
        let session = try echoSession(network, id: id)
        defer { session.close() }
        print("ready in \(Double(session.startup.total) / 1e6) ms (check \(session.startup.check / 1_000_000), open \(session.startup.open / 1_000_000), load \(session.startup.load / 1_000_000), attach \(session.startup.attach / 1_000_000)); hooks \(session.attachedHooks); warnings \(session.warnings)")
        #expect(session.attachedHooks == Hook.tracepointHooks)

        let sender = try ProbeSocket.icmp(in: network.a)
        try sender.sendEcho(to: network.addressB, id: id, sequence: 1)
        let events = try collect(session) { events in
            events.contains { $0.hook == .receive && $0.netns == network.inodeA && $0.packet?.isEchoReply == true }
        }
        for event in events { print(describe(event, session)) }

        let request = try #require(events.first { $0.hook == .transmit && $0.packet?.isEchoRequest == true })
        #expect(request.netns == network.inodeA)
        #expect(request.ifname == network.interfaceA)
        #expect(request.packet?.ttl == 64)
        #expect(request.packet?.icmpID == id && request.packet?.icmpSequence == 1)
        #expect(request.packet?.source.description == network.addressA)
        #expect(request.packet?.destination.description == network.addressB)
        #expect(request.snapshot.count == 44 && request.snapshot.first == 0x45)  // 20 + 8 + 16 bytes
        #expect(request.originalLength == 44)

        let arrival = try #require(events.first { $0.hook == .receive && $0.packet?.isEchoRequest == true })
        #expect(arrival.netns == network.inodeB)
        #expect(arrival.ifname == network.interfaceB)
        #expect(arrival.packet?.ttl == 64)
        #expect(arrival.skb == request.skb, "the skb crosses the veth")
        #expect(arrival.timestamp >= request.timestamp)

        let reply = try #require(events.first { $0.hook == .transmit && $0.packet?.isEchoReply == true })
        #expect(reply.netns == network.inodeB && reply.ifname == network.interfaceB)
        #expect(reply.packet?.ttl == 64 && reply.packet?.icmpID == id)
        let replyArrival = try #require(events.first { $0.hook == .receive && $0.packet?.isEchoReply == true })
        #expect(replyArrival.netns == network.inodeA && replyArrival.ifname == network.interfaceA)
        #expect(replyArrival.packet?.ttl == 64)
        #expect(replyArrival.skb == reply.skb)

        // Nothing of other namespaces or other ids.
        #expect(events.allSatisfy { $0.netns == network.inodeA || $0.netns == network.inodeB || $0.netns == 0 })
        #expect(events.filter { $0.packet?.isICMP == true && $0.hook != .routeLookup }.allSatisfy { $0.packet?.icmpID == id })

        let statistics = try session.statistics()
        #expect(statistics.lost == 0)
        #expect(statistics.undecodable == 0)
        #expect(statistics.events >= UInt64(events.count))
    }

    @Test("an nft rule dropping the echo shows as a kfree_skb with reason NETFILTER_DROP")
    func netfilterDrop() throws {
        try #require(access(TestNetwork.tool("nft"), X_OK) == 0, "nft is not installed")
        let network = try TestNetwork()
        defer { network.remove() }
        try network.run(network.b, "nft", "-f", "-", input: """
            table inet nsitest {
                chain input {
                    type filter hook input priority 0; policy accept;
                    icmp type echo-request drop
                }
            }
            """)
        let id = randomID()
        let session = try echoSession(network, id: id)
        defer { session.close() }
        let sender = try ProbeSocket.icmp(in: network.a)
        try sender.sendEcho(to: network.addressB, id: id, sequence: 7)
        let events = try collect(session) { events in events.contains { $0.hook == .drop } }
        for event in events { print(describe(event, session)) }

        let drop = try #require(events.first { $0.hook == .drop })
        #expect(session.dropReasons.name(drop.dropReason) == "NETFILTER_DROP")
        #expect(drop.netns == network.inodeB)
        #expect(drop.ifname == network.interfaceB)
        #expect(drop.packet?.isEchoRequest == true && drop.packet?.icmpSequence == 7)
        let arrival = try #require(events.first { $0.hook == .receive })
        #expect(drop.skb == arrival.skb)
        #expect(!events.contains { $0.packet?.isEchoReply == true })
        #expect(try session.statistics().lost == 0)
    }

    @Test("no route in the next namespace: route lookup, ICMP error sent, drop, and the error matched by its quote")
    func unreachable() throws {
        let network = try TestNetwork()
        defer { network.remove() }
        try network.run(network.a, "ip", "route", "add", "10.78.0.0/24", "via", network.addressB)
        try network.run(network.b, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        let id = randomID()
        let session = try echoSession(network, id: id)
        defer { session.close() }
        let sender = try ProbeSocket.icmp(in: network.a)
        try sender.sendEcho(to: "10.78.0.1", id: id, sequence: 1)
        let events = try collect(session) { events in
            events.contains { $0.hook == .receive && $0.netns == network.inodeA && $0.quoted != nil }
        }
        for event in events { print(describe(event, session)) }

        let arrival = try #require(events.first { $0.hook == .receive && $0.packet?.isEchoRequest == true })
        #expect(arrival.netns == network.inodeB)
        let lookup = try #require(events.first { $0.hook == .routeLookup && $0.skb == arrival.skb })
        guard case .route(let route) = lookup.detail else { Issue.record("no route detail"); return }
        #expect(route.error != 0 && route.tiedToPacket)
        #expect(lookup.netns == network.inodeB)
        #expect(lookup.packet?.destination.description == "10.78.0.1")

        let sent = try #require(events.first { $0.hook == .icmpSend })
        #expect(sent.detail == .icmpSent(type: 3, code: 0))  // destination unreachable, network unreachable
        #expect(sent.skb == arrival.skb && sent.packet?.icmpID == id)

        let drop = try #require(events.first { $0.hook == .drop && $0.skb == arrival.skb })
        #expect(session.dropReasons.name(drop.dropReason) == "IP_INNOROUTES")

        let error = try #require(events.first { $0.hook == .receive && $0.netns == network.inodeA && $0.quoted != nil })
        #expect(error.packet?.icmpType == 3 && error.packet?.source.description == network.addressB)
        #expect(error.quoted?.icmpID == id && error.quoted?.isEchoRequest == true)
        #expect(error.quoted?.destination.description == "10.78.0.1")
        #expect(try session.statistics().lost == 0)
    }

    @Test("a UDP probe matched by its 5-tuple and by a passive filter, with the port unreachable it causes")
    func udpFlow() throws {
        let network = try TestNetwork()
        defer { network.remove() }
        let socket = try ProbeSocket.udp(in: network.a)
        let port = try socket.bind(to: network.addressA)
        let namespaces: Set<UInt32> = [network.inodeA, network.inodeB]
        let flow = try ProbeSession(.init(filter: TraceFilter(namespaces: namespaces, match: .flow(FlowIdentity(
            proto: PacketHeaders.udp, source: IPAddress(network.addressA), sourcePort: port,
            destination: IPAddress(network.addressB), destinationPort: 33434)))))
        defer { flow.close() }
        let passive = try ProbeSession(.init(filter: TraceFilter(namespaces: namespaces, match: .passive(PassiveFilter(
            proto: PacketHeaders.udp, hosts: [IPAddress(network.addressB)!], port: 33434)))))
        defer { passive.close() }
        // A flow that differs only in its source port must not show.
        let other = try ProbeSession(.init(filter: TraceFilter(namespaces: namespaces, match: .flow(FlowIdentity(
            proto: PacketHeaders.udp, sourcePort: port &+ 1, destinationPort: 33434)))))
        defer { other.close() }

        try socket.send(Array("probe".utf8), to: network.addressB, port: 33434)
        for session in [flow, passive] {
            let events = try collect(session) { events in events.contains { $0.hook == .receive && $0.quoted != nil } }
            for event in events { print(describe(event, session)) }
            let sent = try #require(events.first { $0.hook == .transmit && $0.packet?.proto == PacketHeaders.udp })
            #expect(sent.netns == network.inodeA)
            #expect(sent.packet?.sourcePort == port && sent.packet?.destinationPort == 33434)
            #expect(sent.packet?.ttl == 64)
            let icmp = try #require(events.first { $0.hook == .icmpSend })
            #expect(icmp.detail == .icmpSent(type: 3, code: 3) && icmp.netns == network.inodeB)
            let drop = try #require(events.first { $0.hook == .drop })
            #expect(session.dropReasons.name(drop.dropReason) == "NO_SOCKET")
            let error = try #require(events.first { $0.hook == .receive && $0.quoted != nil })
            #expect(error.netns == network.inodeA)
            #expect(error.packet?.icmpType == 3 && error.packet?.icmpCode == 3)
            #expect(error.quoted?.proto == PacketHeaders.udp && error.quoted?.sourcePort == port)
            #expect(error.quoted?.destinationPort == 33434)
        }
        // (Neighbour updates are filtered by namespace only.)
        let unrelated = try collect(other, seconds: 0.2) { _ in false }.filter { $0.hook != .neighbour }
        for event in unrelated { print("unrelated: " + describe(event, other)) }
        #expect(unrelated.isEmpty)
    }

    @Test("an ICMPv6 echo: hop limit, 16-byte addresses and IPv6 route lookups")
    func ipv6Echo() throws {
        let network = try TestNetwork()
        defer { network.remove() }
        let id = randomID()
        let session = try echoSession(network, id: id)
        defer { session.close() }
        let sender = try ProbeSocket.icmpv6(in: network.a)
        try sender.sendEcho(to: network.address6B, id: id, sequence: 5)
        // Neighbour discovery waits for the link-local address's DAD (about a second).
        let events = try collect(session, seconds: 5) { events in
            events.contains { $0.hook == .receive && $0.netns == network.inodeA && $0.packet?.isEchoReply == true }
        }
        for event in events { print(describe(event, session)) }
        let request = try #require(events.first { $0.hook == .transmit && $0.packet?.isEchoRequest == true })
        #expect(request.netns == network.inodeA && request.ifname == network.interfaceA)
        #expect(request.packet?.version == 6 && request.packet?.ttl == 64)
        #expect(request.packet?.source.description == network.address6A)
        #expect(request.packet?.destination.description == network.address6B)
        #expect(request.packet?.icmpID == id && request.packet?.icmpSequence == 5)
        #expect(request.snapshot.first.map { $0 >> 4 } == 6)
        let arrival = try #require(events.first { $0.hook == .receive && $0.packet?.isEchoRequest == true })
        #expect(arrival.netns == network.inodeB && arrival.skb == request.skb)
        let reply = try #require(events.first { $0.hook == .receive && $0.packet?.isEchoReply == true })
        #expect(reply.netns == network.inodeA && reply.packet?.icmpID == id)
        let lookup = try #require(events.first { $0.hook == .routeLookup6 && $0.skb == arrival.skb })
        #expect(lookup.netns == network.inodeB)
        #expect(lookup.packet?.destination.description == network.address6B)
    }

    @Test("a filter on other namespaces sees nothing of ours, until one of ours is added")
    func otherNamespaces() throws {
        let network = try TestNetwork()
        defer { network.remove() }
        let session = try ProbeSession(.init(filter: TraceFilter(namespaces: [1], match: .all)))
        defer { session.close() }
        let sender = try ProbeSocket.icmp(in: network.a)
        try sender.sendEcho(to: network.addressB, id: randomID(), sequence: 1)
        #expect(try collect(session, seconds: 0.5) { _ in false }.isEmpty)

        try session.addNamespace(network.inodeB)
        try sender.sendEcho(to: network.addressB, id: randomID(), sequence: 2)
        let events = try collect(session) { events in events.contains { $0.hook == .transmit } }
        #expect(events.contains { $0.hook == .receive && $0.packet?.icmpSequence == 2 })
        #expect(events.allSatisfy { $0.netns == network.inodeB })
    }

    @Test("libbpf's messages reach the handler only when one is set")
    func libbpfLog() throws {
        let messages = Mutex<[String]>([])
        LibBPFLog.setHandler(level: .debug) { _, message in messages.withLock { $0.append(message) } }
        do {
            let session = try ProbeSession(.init(filter: TraceFilter(match: .icmpEcho(id: randomID())),
                                                 hooks: [.transmit, .receive, .drop]))
            session.close()
        }
        LibBPFLog.setHandler(nil)
        let seen = messages.withLock { $0 }
        #expect(seen.contains { $0.contains("nsinspect_trace") })
        let session = try ProbeSession(.init(filter: TraceFilter(match: .all), hooks: [.transmit, .receive, .drop]))
        session.close()
        #expect(messages.withLock { $0.count } == seen.count)
    }

    @Test("tcx links on chosen interfaces see the packet too, in the interface's namespace")
    func tcx() throws {
        let network = try TestNetwork()
        defer { network.remove() }
        let id = randomID()
        let session = try ProbeSession(.init(
            filter: TraceFilter(namespaces: [network.inodeA, network.inodeB], match: .icmpEcho(id: id)),
            interfaces: [.init(network.interfaceA, in: network.a, .egress), .init(network.interfaceB, in: network.b, .ingress)]))
        defer { session.close() }
        let sender = try ProbeSocket.icmp(in: network.a)
        try sender.sendEcho(to: network.addressB, id: id, sequence: 2)
        let events = try collect(session) { events in events.contains { $0.hook == .receive && $0.netns == network.inodeA } }
        for event in events { print(describe(event, session)) }
        let egress = try #require(events.first { $0.hook == .tcxEgress })
        let transmit = try #require(events.first { $0.hook == .transmit && $0.packet?.isEchoRequest == true })
        #expect(egress.netns == network.inodeA && egress.ifname == network.interfaceA)
        #expect(egress.skb == transmit.skb && egress.timestamp <= transmit.timestamp)
        #expect(egress.packet?.ttl == 64 && egress.packet?.icmpID == id)
        #expect(egress.snapshot.first == 0x45)
        let ingress = try #require(events.first { $0.hook == .tcxIngress })
        #expect(ingress.netns == network.inodeB && ingress.ifname == network.interfaceB)
        #expect(ingress.skb == transmit.skb && ingress.packet?.isEchoRequest == true)
        // Only the requested directions.
        #expect(events.filter { $0.hook == .tcxEgress || $0.hook == .tcxIngress }.count == 2)
    }

    @Test("after the session is released, none of its programs, links or maps is left")
    func nothingLeftBehind() throws {
        let network = try TestNetwork()
        defer { network.remove() }
        var objects: ProbeSession.KernelObjects
        do {
            let session = try ProbeSession(.init(filter: TraceFilter(match: .icmpEcho(id: randomID())),
                                                 interfaces: [.init(network.interfaceA, in: network.a, .ingress)]))
            objects = session.kernelObjects
            #expect(objects.programs.count == Hook.tracepointHooks.count + 1)
            #expect(objects.links.count == Hook.tracepointHooks.count + 1)
            #expect(objects.maps.count >= 5)
            #expect(objects.stillPresent() == objects)
        }
        // Program and map memory is freed after an RCU grace period; the ids go at once or soon after.
        var remaining = objects.stillPresent()
        for _ in 0..<40 where !remaining.isEmpty {
            usleep(50_000)
            remaining = remaining.stillPresent()
        }
        #expect(remaining.isEmpty, "left behind: \(remaining)")
    }

    @Test("capabilities and hooks are checked before loading")
    func checks() throws {
        let btf = try KernelBTF()
        for hook in Hook.tracepointHooks { #expect(btf.hasTracepoint(hook.tracepoint!), "\(hook)") }
        #expect(btf.hasFunction("bpf_cast_to_kern_ctx"))
        #expect(btf.hasEnumValue("bpf_attach_type", "BPF_TCX_EGRESS"))
        #expect(!btf.hasTracepoint("no_such_tracepoint"))
        let reasons = DropReasons(btf: btf)
        #expect(reasons.count > 50)
        for name in ["NETFILTER_DROP", "NO_SOCKET", "IP_INHDR", "NEIGH_FAILED", "IP_INNOROUTES"] {
            #expect(reasons.value(of: name) != nil, "\(name)")
        }
        #expect(reasons.name(reasons.value(of: "NETFILTER_DROP")!) == "NETFILTER_DROP")
    }
}

/// One line per event, for the test log.
func describe(_ event: PacketEvent, _ session: ProbeSession) -> String {
    var text = "\(event.timestamp) \(event.hook) netns \(event.netns) \(event.ifname)(\(event.ifindex)) skb \(String(event.skb, radix: 16))"
    if let p = event.packet {
        text += " v\(p.version) proto \(p.proto) \(p.source) -> \(p.destination) ttl \(p.ttl)"
        if p.isICMP { text += " icmp \(p.icmpType)/\(p.icmpCode) id \(p.icmpID) seq \(p.icmpSequence)" }
    }
    if let q = event.quoted { text += " quoting [\(q.source) -> \(q.destination) icmp \(q.icmpType) id \(q.icmpID)]" }
    switch event.detail {
    case .drop: text += " reason \(session.dropReasons.name(event.dropReason))"
    case .route(let r): text += " table \(r.table) err \(r.error) oif \(r.outputInterface) tied \(r.tiedToPacket)"
    case .icmpSent(let type, let code): text += " sends icmp \(type)/\(code)"
    case .neighbour(let n): text += " neigh \(n.address?.description ?? "?") \(n.oldState)->\(n.newState)"
    case .none: break
    }
    return text
}
