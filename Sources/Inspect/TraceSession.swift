#if canImport(Glibc)
import Glibc
#endif
import NetAddress
import Netlink
import Probes
import ProcNS

/// What a trace needs before anything is attached: the census and wiring, where it starts, where it goes,
/// what `path` predicts, which namespaces the kernel filter lets through and what the assembler calls
/// them and expects of them.
public struct TracePlan {
    public let context: PathContext
    public let origin: Int
    public let destination: IPAddress
    /// The namespace the destination names, when it was given as one.
    public let target: Int?
    public let prediction: PathPrediction
    /// The namespaces the wiring connects the endpoints through (inodes, for the BPF filter).
    public let inodes: Set<UInt32>
    public let labels: [UInt32: String]

    /// - Parameters: `from` and `to` as users give them (NS references; `to` may be an address);
    ///   `address` overrides the destination address; `ipv6` takes the destination namespace's IPv6 one.
    public init(from: String, to: String, address: String?, ipv6: Bool) throws {
        let context = try PathContext(census: try Census.scan())
        self.context = context
        origin = try context.index(of: from, operation: "trace")
        var (destination, target) = try context.destination(to, family: ipv6 ? .v6 : nil, operation: "trace")
        if let address {
            guard let parsed = IPAddress(address) else { throw OperationError("trace", address, "not an IPv4 or IPv6 address") }
            destination = parsed
        }
        self.destination = destination
        self.target = target
        let origin = self.origin
        let prediction = context.predictor.predict(from: origin, to: destination)
        self.prediction = prediction
        if case .noRoute(let n) = prediction.end, n == origin {
            throw OperationError("trace", context.open.labels[origin], "no route to \(destination); nothing sent (see `nsinspect path \(from) \(to)`)")
        }
        let interest = TraceScope.namespaces(around: [origin] + (target.map { [$0] } ?? []), context: context)
        inodes = Set(interest.map { UInt32(truncatingIfNeeded: context.open.inodes[$0]) })
        var labels: [UInt32: String] = [:]
        for (i, label) in context.open.labels.enumerated() { labels[UInt32(truncatingIfNeeded: context.open.inodes[i])] = label }
        self.labels = labels
    }

    /// The namespace's inode as events carry it.
    func inode(_ index: Int) -> UInt32 { UInt32(truncatingIfNeeded: context.open.inodes[index]) }

    /// The TTL the destination answers with (its ip_default_ttl / hop_limit), for the routed-hop count.
    var responderTTL: Int {
        let key = destination.family == .v4 ? "net.ipv4.ip_default_ttl" : "net.ipv6.conf.default.hop_limit"
        return target.flatMap { try? Sysctl.read(key, in: context.open.handles[$0]) }.flatMap { Int($0) } ?? 64
    }

    /// `path`'s hops as the assembler compares them.
    var expected: [ExpectedHop] {
        prediction.hops.map { hop in
            ExpectedHop(namespace: inode(hop.namespace), label: context.open.labels[hop.namespace],
                        inInterface: hop.inInterface, outInterface: hop.outInterface, forwards: hop.forwards)
        }
    }

    /// Where and why `path` predicted the packet to stop short of delivery.
    var predictedStop: (namespace: UInt32, why: String)? {
        let end = prediction.end
        let inode = inode(end.namespace)
        switch end {
        case .rejected(_, let kind, let route): return (inode, "\(kind) \(route)")
        case .noRoute: return (inode, "no route")
        case .forwardingOff(_, let key): return (inode, "\(key) = 0")
        case .linkDown(_, let interface): return (inode, "\(interface) is down")
        case .nextHopNotFound(_, let nextHop, let interface): return (inode, "nobody owns \(nextHop) on \(interface)'s link")
        case .delivered, .leaves, .loop: return nil
        }
    }

    /// The ports of every bridge and switch in the wiring, keyed the way events name interfaces.
    var switchPorts: [InterfaceKey: SwitchPort] {
        var ports: [InterfaceKey: SwitchPort] = [:]
        for bridge in context.wiring.bridges {
            for port in bridge.ports {
                ports[InterfaceKey(netns: inode(bridge.bridge.namespace), ifindex: UInt32(bitPattern: port.index))] =
                    SwitchPort(kind: .bridge, name: bridge.bridge.name)
            }
        }
        for sw in context.wiring.switches {
            for port in sw.ports {
                ports[InterfaceKey(netns: inode(sw.namespace), ifindex: UInt32(bitPattern: port.index))] =
                    SwitchPort(kind: sw.kind == .openVSwitch ? .openVSwitch : .unmanaged, name: sw.name)
            }
        }
        return ports
    }
}

/// How the probes of an active trace are made.
public struct ProbeOptions: Sendable {
    public enum Kind: String, Sendable, CaseIterable { case icmp, udp, tcp }
    public var kind: Kind
    public var count: Int
    public var port: UInt16?
    public var ttl: UInt8?
    /// Stop sending after this many seconds.
    public var duration: Double?

    public init(kind: Kind = .icmp, count: Int = 3, port: UInt16? = nil, ttl: UInt8? = nil, duration: Double? = nil) {
        self.kind = kind
        self.count = count
        self.port = port
        self.ttl = ttl
        self.duration = duration
    }
}

/// What an active trace learned: per probe a report, the events (for pcapng), what the ring buffer
/// could not take, and the conntrack entries behind the rewrites.
public struct ActiveTraceResult {
    public let reports: [ProbeReport]
    public let events: [PacketEvent]
    public let statistics: ProbeSession.Statistics
    public let dropReasons: DropReasons
    public let nat: TraceNAT
    public var agrees: Bool { !reports.isEmpty && reports.allSatisfy(\.agrees) }
}

/// An active trace: a session filtered on the probe's identity, the probes one at a time, the report.
public struct ActiveTrace {
    public let plan: TracePlan
    public let options: ProbeOptions

    public init(plan: TracePlan, options: ProbeOptions) {
        self.plan = plan
        self.options = options
    }

    /// Sends the probes and assembles what the kernel saw. `attached` runs once the programs are attached
    /// (the ready file, the session's warnings); a stop request ends the probes early.
    public func run(attached: (ProbeSession) throws -> Void) throws -> ActiveTraceResult {
        let handle = plan.context.open.handles[plan.origin]
        let destination = plan.destination
        // The probe's identity is fixed before the session starts, so the kernel filter can match it.
        var echo: EchoProber?
        var udp: UDPEndpoint?
        var syns: [SynProber] = []
        let identity: TraceAssembler.Identity
        let match: PacketMatch
        let destinationPort = options.port ?? (options.kind == .tcp ? 80 : 33434)
        switch options.kind {
        case .icmp:
            let prober = try EchoProber(from: handle, to: destination, ttl: options.ttl)
            echo = prober
            identity = .icmpEcho(id: prober.identifier)
            match = .icmpEcho(id: prober.identifier, hosts: [destination])
        case .udp:
            let endpoint = try UDPEndpoint(in: handle, family: destination.family, port: 0)
            if let ttl = options.ttl { endpoint.setTTL(ttl) }
            udp = endpoint
            identity = .flow(proto: PacketHeaders.udp, sourcePort: endpoint.port, destinationPort: destinationPort)
            match = .flow(FlowIdentity(proto: PacketHeaders.udp, sourcePort: endpoint.port, destination: destination, destinationPort: destinationPort))
        case .tcp:
            // One socket (one source port) per probe; the filter matches the destination port.
            for _ in 0..<options.count { syns.append(try SynProber(from: handle, to: destination, port: destinationPort, ttl: options.ttl)) }
            identity = .flow(proto: PacketHeaders.tcp, sourcePort: syns[0].sourcePort, destinationPort: destinationPort)
            match = .flow(FlowIdentity(proto: PacketHeaders.tcp, destination: destination, destinationPort: destinationPort))
        }
        let session = try ProbeSession(.init(filter: TraceFilter(namespaces: plan.inodes, match: match)))
        defer { session.close() }
        try attached(session)

        var events: [PacketEvent] = []
        var probes: [SentProbe] = []
        let deadline = options.duration.map { monotonicDeadline(after: $0) }
        for i in 0..<options.count {
            if StopRequest.isRequested { break }
            if let deadline, monotonicNanoseconds() > deadline { break }
            let sequence = UInt16(i + 1)
            let sentAt = monotonicNanoseconds()
            var outcome = ProbeOutcome.timeout
            let answerBy = sentAt + 1_000_000_000
            do {
                switch options.kind {
                case .icmp:
                    try echo!.send(sequence: sequence)
                    switch echo!.answer(to: sequence, before: answerBy) {
                    case .reply(_, let ttl, let rtt, _): outcome = .reply(ttl: ttl, rtt: rtt)
                    case .error(_, let type, let code, let from, _): outcome = .icmpError(type: type, code: code, from: "\(from)", v6: destination.family == .v6)
                    case .timeout: outcome = .timeout
                    }
                case .udp:
                    try udp!.send(Array("nsinspect probe \(sequence)".utf8), to: destination, port: destinationPort)
                    if udp!.receive(before: answerBy) != nil { outcome = .reply(ttl: nil, rtt: monotonicNanoseconds() - sentAt) }
                case .tcp:
                    switch syns[i].probe(before: answerBy) {
                    case .open: outcome = .reply(ttl: nil, rtt: monotonicNanoseconds() - sentAt)
                    case .refused: outcome = .reset
                    case .timeout: outcome = .timeout
                    case .unreachable(let e): outcome = .notSent(e.description)
                    }
                }
            } catch let error as OperationError {
                outcome = .notSent(error.reason)
            }
            probes.append(SentProbe(sequence: sequence, sentAt: sentAt, outcome: outcome))
            _ = try session.poll(timeoutMilliseconds: 0) { events.append($0) }
            if i < options.count - 1 { usleep(100_000) }
        }
        // Late events (the last reply's way in, drops after a timeout) before detaching.
        let settle = monotonicNanoseconds() + 100_000_000
        while monotonicNanoseconds() < settle && !StopRequest.isRequested {
            _ = try session.poll(timeoutMilliseconds: 20) { events.append($0) }
        }
        _ = try session.drain { events.append($0) }
        let statistics = try session.statistics()
        session.close()

        if options.kind != .icmp { probes = refine(probes, events: events, identity: identity) }
        let assembler = TraceAssembler(identity: identity, labels: plan.labels, dropReasons: session.dropReasons, expected: plan.expected,
                                       initialTTL: plan.responderTTL, requestedTTL: options.ttl,
                                       predictedLoop: { if case .loop = plan.prediction.end { true } else { false } }(),
                                       predictedStop: plan.predictedStop, switchPorts: plan.switchPorts)
        let reports = assembler.assemble(events: events, probes: probes)
        var handles: [UInt32: NamespaceHandle] = [:]
        for (i, handle) in plan.context.open.handles.enumerated() where plan.inodes.contains(plan.inode(i)) {
            handles[plan.inode(i)] = handle
        }
        return ActiveTraceResult(reports: reports, events: events, statistics: statistics, dropReasons: session.dropReasons,
                                 nat: TraceNAT(reports: reports, handles: handles, labels: plan.labels))
    }

    /// UDP and TCP sockets do not see the reply's TTL or an ICMP error: the events do.
    func refine(_ probes: [SentProbe], events: [PacketEvent], identity: TraceAssembler.Identity) -> [SentProbe] {
        let assembler = TraceAssembler(identity: identity, labels: plan.labels, dropReasons: DropReasons(names: [:]), expected: [])
        let originInode = plan.inode(plan.origin)
        var refined = probes
        for (i, probe) in probes.enumerated() {
            let next = i + 1 < probes.count ? probes[i + 1].sentAt : UInt64.max
            let mine = events.filter { $0.timestamp >= probe.sentAt && $0.timestamp < next && $0.netns == originInode && ($0.hook == .receive || $0.hook == .tcxIngress) }
            for event in mine {
                let (direction, _) = assembler.classify(event)
                if direction == .reply, case .reply(nil, let rtt) = probe.outcome, let ttl = event.packet?.ttl {
                    refined[i].outcome = .reply(ttl: ttl, rtt: rtt)
                } else if direction == .error, let p = event.packet, probe.outcome == .timeout || { if case .notSent = probe.outcome { true } else { false } }() {
                    refined[i].outcome = .icmpError(type: p.icmpType, code: p.icmpCode, from: p.source.description, v6: p.version == 6)
                }
            }
        }
        return refined
    }
}

/// A passive trace: every packet between the namespaces of interest that the filter lets through, handed
/// to the caller as it comes, counted per place and per drop.
public struct PassiveTrace {
    public let inodes: Set<UInt32>
    public let filter: PassiveFilter
    public let duration: Double?

    /// Events per (namespace, interface, hook), and drops per (namespace, reason).
    public struct Place: Hashable, Sendable { public var netns: UInt32; public var ifname: String; public var hook: Hook }
    public struct Drop: Hashable, Sendable { public var netns: UInt32; public var reason: UInt32 }

    public struct Summary {
        public var counts: [Place: Int] = [:]
        public var drops: [Drop: Int] = [:]
        public var statistics: ProbeSession.Statistics
        public var dropReasons: DropReasons
    }

    public init(inodes: Set<UInt32>, filter: PassiveFilter, duration: Double?) {
        self.inodes = inodes
        self.filter = filter
        self.duration = duration
    }

    /// Runs until a stop request or the duration. `event` gets every event with its offset from the start
    /// (ns); `idle` is called whenever everything read so far has been handed out (flush output there);
    /// `progress`, about once a second, gets the events lost so far and those waiting to be handed out.
    public func run(attached: (ProbeSession) throws -> Void, event: (PacketEvent, Int64) -> Void, idle: () -> Void,
                    progress: ((_ lost: UInt64, _ waiting: Int) -> Void)? = nil) throws -> Summary {
        let session = try ProbeSession(.init(filter: TraceFilter(namespaces: inodes, match: .passive(filter))))
        defer { session.close() }
        try attached(session)
        let start = monotonicNanoseconds()
        let deadline = duration.map { monotonicDeadline(after: $0, from: start) }
        var summary = Summary(statistics: try session.statistics(), dropReasons: session.dropReasons)
        func hand(_ e: PacketEvent) {
            summary.counts[Place(netns: e.netns, ifname: e.ifname, hook: e.hook), default: 0] += 1
            if e.hook == .drop { summary.drops[Drop(netns: e.netns, reason: e.dropReason), default: 0] += 1 }
            event(e, Int64(bitPattern: e.timestamp &- start))
        }
        var lastReport = start
        var spool = RecordSpool()
        while true {
            let stopping = StopRequest.isRequested || (deadline.map { monotonicNanoseconds() >= $0 } ?? false)
            if stopping && spool.isEmpty { break }
            // Empty the ring buffer into the spool (a copy per record, nothing else), waiting only when
            // there is nothing left to hand out; then hand out a slice of the spool and empty the ring
            // again. Formatting is the slow part: done this way, a flood the caller cannot keep up with
            // waits in memory instead of overflowing the kernel's ring buffer.
            if !stopping {
                try session.pollRecords(timeoutMilliseconds: spool.isEmpty ? 100 : 0) { spool.append($0) }
            }
            spool.take(512) { session.decode($0, hand) }
            if spool.isEmpty { idle() }
            if let progress, monotonicNanoseconds() - lastReport > 1_000_000_000 {
                lastReport = monotonicNanoseconds()
                progress(try session.statistics().totalLost, spool.count)
            }
        }
        // What arrived after the last poll is handed out like the rest.
        _ = try session.drain(hand)
        idle()
        summary.statistics = try session.statistics()
        return summary
    }
}
