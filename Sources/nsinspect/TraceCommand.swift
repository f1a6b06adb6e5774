#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CShim
import JSONKit
import Netlink
import Probes
import ProcNS

/// Set by SIGINT/SIGTERM: a running trace stops, prints its summary and detaches.
nonisolated(unsafe) var traceInterrupted: Int32 = 0  // also set by demo's handler

struct TraceCommand: NSCommand {
    enum ProbeProtocol: String, ExpressibleByArgument, CaseIterable { case icmp, udp, tcp }

    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Send probes from A to B and show every veth end, routed hop, TTL, rewrite and drop eBPF saw.",
        discussion: """
            Active by default: N probes (ICMP echo, or UDP / TCP SYN) from a socket inside A, with an \
            identity no other traffic shares, filtered in the kernel to the namespaces the wiring connects A \
            through. Per probe: a timeline, the hops (in → out, TTL, SNAT/DNAT, drops with the kernel's \
            reason), and a verdict that compares what happened with `nsinspect path` and with the reply's \
            TTL. --passive traces existing traffic instead (--filter "proto udp and host 10.0.0.1 and port 53").
            """
    )

    @Argument(help: "Where probes are sent from (NS reference).") var from: String
    @Argument(help: "The destination: a namespace (its first global address) or an address.") var to: String
    @Option(name: .shortAndLong, help: "Number of probes.") var count: Int = 3
    @Option(name: .customLong("proto"), help: "icmp, udp or tcp.") var proto: ProbeProtocol = .icmp
    @Option(help: "Destination port for udp/tcp probes (1–65535).") var port: Int?
    @Option(help: "TTL (hop limit) of the probes (1–255).") var ttl: Int?
    @Option(name: .customLong("to"), help: "Send to this address instead of B's first address.") var address: String?
    @Flag(name: .customShort("6"), help: "Use B's IPv6 address.") var ipv6 = false
    @Flag(help: "Trace existing traffic between A and B instead of sending probes.") var passive = false
    @Option(help: "Passive mode filter: proto icmp|icmp6|udp|tcp, host ADDR, port N, icmp-id N, joined by 'and'.") var filter: String?
    @Option(help: "Stop after this many seconds (passive mode, or to bound an active trace).") var duration: Double?
    @Option(help: "Write the packets as pcapng (one interface per namespace/interface).") var pcap: String?
    @Option(help: "Write this file once the probes are attached (removed when the trace ends).") var readyFile: String?
    @OptionGroup var common: CommonOptions

    /// The options as the probes use them (range-checked in `validate()`).
    var probeTTL: UInt8? { ttl.map { UInt8($0) } }
    var probePort: UInt16? { port.map { UInt16($0) } }

    func validate() throws {
        try OptionCheck.range("--count", count, 1...1000)
        try OptionCheck.range("--port", port, 1...65535)
        try OptionCheck.range("--ttl", ttl, 1...255)
        try OptionCheck.seconds("--duration", duration)
        if filter != nil && !passive { throw ValidationError("--filter goes with --passive") }
    }

    func run() throws {
        // A ready file left by an earlier run must not announce this one; it goes again at the end, so
        // its existence means "attached now".
        if let readyFile { unlink(readyFile) }
        defer { if let readyFile { unlink(readyFile) } }
        // Parse what can be wrong before touching anything.
        let passiveFilter: PassiveFilter?
        do {
            passiveFilter = try filter.map(FilterExpression.parse)
        } catch {
            throw OperationError("trace", "--filter", error.description)
        }
        try requireCapabilities([.bpf, .perfmon, .sysAdmin, .netRaw], for: "trace")
        let context = try PathContext(census: try Census.scan())
        let origin = try context.index(of: from, operation: "trace")
        var (destination, target) = try context.destination(to, family: ipv6 ? .v6 : nil, operation: "trace")
        if let address {
            guard let parsed = IPAddress(address) else { throw OperationError("trace", address, "not an IPv4 or IPv6 address") }
            destination = parsed
        }
        let prediction = context.predictor.predict(from: origin, to: destination)
        if case .noRoute(let n) = prediction.end, n == origin {
            throw OperationError("trace", context.open.labels[origin], "no route to \(destination); nothing sent (see `nsinspect path \(from) \(to)`)")
        }
        let interest = TraceScope.namespaces(around: [origin] + (target.map { [$0] } ?? []), context: context)
        let inodes = Set(interest.map { UInt32(truncatingIfNeeded: context.open.inodes[$0]) })
        var labels: [UInt32: String] = [:]
        for (i, label) in context.open.labels.enumerated() { labels[UInt32(truncatingIfNeeded: context.open.inodes[i])] = label }

        installStopSignals()
        if passive {
            try PassiveTrace(command: self, inodes: inodes, labels: labels, filter: passiveFilter ?? PassiveFilter(),
                             hosts: [destination]).run()
            return
        }
        let responderTTL = target.flatMap { try? Sysctl.read(destination.family == .v4 ? "net.ipv4.ip_default_ttl" : "net.ipv6.conf.default.hop_limit",
                                                              in: context.open.handles[$0]) }.flatMap { Int($0) } ?? 64
        let expected = prediction.hops.map { hop in
            ExpectedHop(namespace: UInt32(truncatingIfNeeded: context.open.inodes[hop.namespace]), label: context.open.labels[hop.namespace],
                        inInterface: hop.inInterface, outInterface: hop.outInterface, forwards: hop.forwards)
        }
        try ActiveTrace(command: self, context: context, origin: origin, destination: destination, inodes: inodes, labels: labels,
                        prediction: prediction, expected: expected, responderTTL: responderTTL).run()
    }

    func installStopSignals() {
        let handler: @convention(c) (Int32) -> Void = { _ in traceInterrupted = 1 }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }

    /// Writes the ready file (issue 5: once attached), so scripts and tests can start traffic.
    func signalReady(_ session: ProbeSession) throws {
        guard let readyFile else { return }
        let fd = open(readyFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OperationError("trace", readyFile, call: "open", errno: .current) }
        let sinceStart = (monotonicNanoseconds() - processStartNanoseconds) / 1_000_000
        let text = Array("attached \(session.attachedHooks.map(\.description).joined(separator: ",")) in \(session.startup.total / 1_000_000) ms, \(sinceStart) ms after start\n".utf8)
        _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}

/// Which namespaces a trace watches: those the wiring connects the endpoints to (through veth pairs,
/// bridges and stacked links), up to the kernel map's size.
enum TraceScope {
    static func namespaces(around start: [Int], context: PathContext, limit: Int = 4096) -> Set<Int> {
        var neighbours: [Int: Set<Int>] = [:]
        func link(_ a: Int, _ b: Int) { neighbours[a, default: []].insert(b); neighbours[b, default: []].insert(a) }
        for pair in context.wiring.vethPairs { link(pair.a.namespace, pair.b.namespace) }
        for s in context.wiring.stacked { if let p = s.parent { link(s.child.namespace, p.namespace) } }
        var seen = Set(start)
        var queue = start
        while let next = queue.popLast(), seen.count < limit {
            for n in neighbours[next] ?? [] where seen.insert(n).inserted { queue.append(n) }
        }
        return seen
    }
}

/// An active trace: a session filtered on the probe, the probes, the report.
struct ActiveTrace {
    let command: TraceCommand
    let context: PathContext
    let origin: Int
    let destination: IPAddress
    let inodes: Set<UInt32>
    let labels: [UInt32: String]
    let prediction: PathPrediction
    let expected: [ExpectedHop]
    let responderTTL: Int

    func run() throws {
        let handle = context.open.handles[origin]
        let dst = PacketAddress(bytes: destination.bytes)!
        // The probe's identity is fixed before the session starts, so the kernel filter can match it.
        var echo: EchoProber?
        var udp: UDPEndpoint?
        var syns: [SynProber] = []
        let identity: TraceAssembler.Identity
        let match: PacketMatch
        let destinationPort = command.probePort ?? (command.proto == .tcp ? 80 : 33434)
        switch command.proto {
        case .icmp:
            let prober = try EchoProber(from: handle, to: destination, ttl: command.probeTTL)
            echo = prober
            identity = .icmpEcho(id: prober.identifier)
            match = .icmpEcho(id: prober.identifier, hosts: [dst])
        case .udp:
            let endpoint = try UDPEndpoint(in: handle, family: destination.family, port: 0)
            if let ttl = command.probeTTL { endpoint.setTTL(ttl) }
            udp = endpoint
            identity = .flow(proto: PacketHeaders.udp, sourcePort: endpoint.port, destinationPort: destinationPort)
            match = .flow(FlowIdentity(proto: PacketHeaders.udp, sourcePort: endpoint.port, destination: dst, destinationPort: destinationPort))
        case .tcp:
            // One socket (one source port) per probe; the filter matches the destination port.
            for _ in 0..<command.count { syns.append(try SynProber(from: handle, to: destination, port: destinationPort, ttl: command.probeTTL)) }
            identity = .flow(proto: PacketHeaders.tcp, sourcePort: syns[0].sourcePort, destinationPort: destinationPort)
            match = .flow(FlowIdentity(proto: PacketHeaders.tcp, destination: dst, destinationPort: destinationPort))
        }
        let session = try ProbeSession(.init(filter: TraceFilter(namespaces: inodes, match: match)))
        defer { session.close() }
        for warning in session.warnings { Output.warn("trace: warning: \(warning)") }
        try command.signalReady(session)

        var events: [PacketEvent] = []
        var probes: [SentProbe] = []
        let deadline = command.duration.map { monotonicNanoseconds() + OptionCheck.nanoseconds($0) }
        for i in 0..<command.count {
            if traceInterrupted != 0 { break }
            if let deadline, monotonicNanoseconds() > deadline { break }
            let sequence = UInt16(i + 1)
            let sentAt = monotonicNanoseconds()
            var outcome = ProbeOutcome.timeout
            let answerBy = sentAt + 1_000_000_000
            do {
                switch command.proto {
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
            if i < command.count - 1 { usleep(100_000) }
        }
        // Late events (the last reply's way in, drops after a timeout) before detaching.
        let settle = monotonicNanoseconds() + 100_000_000
        while monotonicNanoseconds() < settle && traceInterrupted == 0 {
            _ = try session.poll(timeoutMilliseconds: 20) { events.append($0) }
        }
        _ = try session.drain { events.append($0) }
        let statistics = try session.statistics()
        session.close()

        if command.proto != .icmp { probes = refine(probes, events: events, identity: identity) }
        let predictedStop: (namespace: UInt32, why: String)? = { (end: PathEnd) -> (namespace: UInt32, why: String)? in
            let inode = UInt32(truncatingIfNeeded: context.open.inodes[end.namespace])
            switch end {
            case .rejected(_, let kind, let route): return (inode, "\(kind) \(route)")
            case .noRoute: return (inode, "no route")
            case .forwardingOff(_, let key): return (inode, "\(key) = 0")
            case .linkDown(_, let interface): return (inode, "\(interface) is down")
            case .nextHopNotFound(_, let nextHop, let interface): return (inode, "nobody owns \(nextHop) on \(interface)'s link")
            case .delivered, .leaves, .loop: return nil
            }
        }(prediction.end)
        let assembler = TraceAssembler(identity: identity, labels: labels, dropReasons: session.dropReasons, expected: expected,
                                       initialTTL: responderTTL, requestedTTL: command.probeTTL,
                                       predictedLoop: { if case .loop = prediction.end { true } else { false } }(),
                                       predictedStop: predictedStop, switchPorts: switchPorts())
        let reports = assembler.assemble(events: events, probes: probes)
        if let path = command.pcap { try TraceOutput.pcap(events, path: path, labels: labels) }
        var output = TraceOutput(labels: labels, dropReasons: session.dropReasons, verbose: command.common.verbose)
        var handles: [UInt32: NamespaceHandle] = [:]
        for (inode, handle) in zip(context.open.inodes, context.open.handles) where inodes.contains(UInt32(truncatingIfNeeded: inode)) {
            handles[UInt32(truncatingIfNeeded: inode)] = handle
        }
        output.nat = TraceNAT(reports: reports, handles: handles, labels: labels)
        if command.common.json {
            output.jsonLines(reports, statistics: statistics, prediction: PathRendering(prediction: prediction, labels: context.open.labels, target: nil))
        } else {
            Output.write(output.text(reports, statistics: statistics, from: context.open.labels[origin], destination: destination,
                                     prediction: PathRendering(prediction: prediction, labels: context.open.labels, target: nil)))
        }
        if reports.isEmpty || !reports.allSatisfy(\.agrees) { throw ExitCode(1) }
    }

    /// The ports of every bridge and switch in the wiring, keyed the way events name interfaces.
    func switchPorts() -> [InterfaceKey: SwitchPort] {
        var ports: [InterfaceKey: SwitchPort] = [:]
        for bridge in context.wiring.bridges {
            let inode = UInt32(truncatingIfNeeded: context.open.inodes[bridge.bridge.namespace])
            for port in bridge.ports {
                ports[InterfaceKey(netns: inode, ifindex: UInt32(bitPattern: port.index))] = SwitchPort(kind: .bridge, name: bridge.bridge.name)
            }
        }
        for sw in context.wiring.switches {
            let inode = UInt32(truncatingIfNeeded: context.open.inodes[sw.namespace])
            for port in sw.ports {
                ports[InterfaceKey(netns: inode, ifindex: UInt32(bitPattern: port.index))] =
                    SwitchPort(kind: sw.kind == .openVSwitch ? .openVSwitch : .unmanaged, name: sw.name)
            }
        }
        return ports
    }

    /// UDP and TCP sockets do not see the reply's TTL or an ICMP error: the events do.
    func refine(_ probes: [SentProbe], events: [PacketEvent], identity: TraceAssembler.Identity) -> [SentProbe] {
        let assembler = TraceAssembler(identity: identity, labels: labels, dropReasons: DropReasons(names: [:]), expected: [])
        let originInode = UInt32(truncatingIfNeeded: context.open.inodes[origin])
        var refined = probes
        for (i, probe) in probes.enumerated() {
            let next = i + 1 < probes.count ? probes[i + 1].sentAt : UInt64.max
            let mine = events.filter { $0.timestamp >= probe.sentAt && $0.timestamp < next && $0.netns == originInode && ($0.hook == .receive || $0.hook == .tcxIngress) }
            for event in mine {
                let (direction, _) = assembler.classify(event)
                if direction == .reply, case .reply(nil, let rtt) = probe.outcome, let ttl = event.packet?.ttl {
                    refined[i].outcome = .reply(ttl: ttl, rtt: rtt)
                } else if direction == .reply, probe.outcome == .reset, let ttl = event.packet?.ttl {
                    _ = ttl
                } else if direction == .error, let p = event.packet, probe.outcome == .timeout || { if case .notSent = probe.outcome { true } else { false } }() {
                    refined[i].outcome = .icmpError(type: p.icmpType, code: p.icmpCode, from: p.source.description, v6: p.version == 6)
                }
            }
        }
        return refined
    }
}

/// A passive trace: every packet between the namespaces of interest that the filter lets through, live.
struct PassiveTrace {
    let command: TraceCommand
    let inodes: Set<UInt32>
    let labels: [UInt32: String]
    let filter: PassiveFilter
    let hosts: [IPAddress]

    func run() throws {
        let session = try ProbeSession(.init(filter: TraceFilter(namespaces: inodes, match: .passive(filter))))
        defer { session.close() }
        for warning in session.warnings { Output.warn("trace: warning: \(warning)") }
        try command.signalReady(session)
        let start = monotonicNanoseconds()
        let deadline = command.duration.map { start + OptionCheck.nanoseconds($0) }
        let output = TraceOutput(labels: labels, dropReasons: session.dropReasons, verbose: command.common.verbose)
        var events: [PacketEvent] = []
        // Events per (namespace, interface, hook) and drops per (namespace, reason), for the summary;
        // keyed by numbers and the interface name, labels made once at the end.
        struct Place: Hashable { var netns: UInt32; var ifname: String; var hook: Hook }
        struct Drop: Hashable { var netns: UInt32; var reason: UInt32 }
        var counts: [Place: Int] = [:]
        var drops: [Drop: Int] = [:]
        var lastReport = start
        var reportedLost: UInt64 = 0
        // Events are written in 64 KiB pieces and after every poll, not one write(2) each: a ping flood
        // makes several hundred thousand events a second.
        var out = OutputBuffer()
        var spool = RecordSpool()
        func show(_ event: PacketEvent) {
            counts[Place(netns: event.netns, ifname: event.ifname, hook: event.hook), default: 0] += 1
            if event.hook == .drop { drops[Drop(netns: event.netns, reason: event.dropReason), default: 0] += 1 }
            let offset = Int64(bitPattern: event.timestamp &- start)
            if command.common.json {
                output.eventJSON(event, offset: offset, direction: nil).write(into: &out.bytes, pretty: false)
            } else {
                out.append(output.eventLine(event, offset: offset, direction: nil))
            }
            out.bytes.append(UInt8(ascii: "\n"))
            out.flushIfFull()
            if command.pcap != nil { events.append(event) }
        }
        while true {
            let stopping = traceInterrupted != 0 || (deadline.map { monotonicNanoseconds() >= $0 } ?? false)
            if stopping && spool.isEmpty { break }
            // Empty the ring buffer into the spool (a copy per record, nothing else), waiting only when
            // there is nothing left to print; then print a slice of the spool and empty the ring again.
            // Formatting is the slow part: done this way, a flood the printing cannot keep up with waits
            // in memory instead of overflowing the kernel's ring buffer.
            if !stopping {
                try session.pollRecords(timeoutMilliseconds: spool.isEmpty ? 100 : 0) { spool.append($0) }
            }
            spool.take(512) { session.decode($0, show) }
            if spool.isEmpty { out.flush() }
            if command.common.verbose, monotonicNanoseconds() - lastReport > 1_000_000_000 {
                lastReport = monotonicNanoseconds()
                let lost = try session.statistics().totalLost
                if lost > reportedLost { Output.warn("trace: \(lost - reportedLost) events lost (ring buffer full)"); reportedLost = lost }
                if spool.count > 0 { Output.warn("trace: \(spool.count) events waiting to be printed") }
            }
        }
        // What arrived after the last poll is shown like the rest.
        _ = try session.drain(show)
        out.flush()
        let statistics = try session.statistics()
        session.close()
        if let path = command.pcap { try TraceOutput.pcap(events, path: path, labels: labels) }
        let dropCounts = drops.map { ("\(output.label($0.key.netns)): \(session.dropReasons.name($0.key.reason))", $0.value) }
            .sorted { $0.0 < $1.0 }
        if command.common.json {
            var o = JSONObjectBuilder()
            o.add("summary", true)
            o.add("events", statistics.events); o.add("lost", statistics.totalLost)
            o.add("drops", .object(dropCounts.map { JSON.Member($0.0, .int(Int64($0.1))) }))
            Output.json(o.json, pretty: false)
        } else {
            var table = Table("NAMESPACE", "INTERFACE", "HOOK", "EVENTS")
            let rows = counts.map { ([output.label($0.key.netns), $0.key.ifname, "\($0.key.hook)"], $0.value) }
            for (key, n) in rows.sorted(by: { $0.0.lexicographicallyPrecedes($1.0) }) { table.add(key[0], key[1], key[2], String(n)) }
            Output.line("")
            Output.write(table.render())
            for (key, n) in dropCounts { Output.line("dropped in \(key) × \(n)") }
            Output.line("\(statistics.events) events, \(statistics.totalLost) lost")
        }
    }
}

/// Ring buffer records copied out as they come, printed in order later. Records are copied into
/// chunks of 4 MiB, a chunk is freed as soon as its last record is printed, and nothing already copied
/// is ever moved: a spool that holds a whole flood costs no pause to grow or to shrink.
struct RecordSpool {
    private struct Record { var chunk: Int; var start: Int; var length: Int }
    private static let chunkSize = 4 << 20
    private var chunks: [[UInt8]] = []
    /// Chunks before this one are freed (their slot kept empty, the indexes stay valid).
    private var firstChunk = 0
    private var records: [Record] = []
    private var next = 0

    var isEmpty: Bool { next == records.count }
    var count: Int { records.count - next }

    mutating func append(_ record: UnsafeRawBufferPointer) {
        if chunks.count == firstChunk || chunks[chunks.count - 1].count + record.count > Self.chunkSize {
            var chunk: [UInt8] = []
            chunk.reserveCapacity(max(Self.chunkSize, record.count))
            chunks.append(chunk)
        }
        let last = chunks.count - 1
        records.append(Record(chunk: last, start: chunks[last].count, length: record.count))
        chunks[last].append(contentsOf: record)
    }

    /// Hands up to `limit` records to `body`, oldest first.
    mutating func take(_ limit: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
        let end = min(records.count, next + limit)
        for i in next..<end {
            let r = records[i]
            chunks[r.chunk].withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[r.start..<(r.start + r.length)])) }
        }
        next = end
        // Free the chunks every remaining record is past.
        let oldest = next < records.count ? records[next].chunk : chunks.count
        while firstChunk < oldest {
            chunks[firstChunk] = []
            firstChunk += 1
        }
        if next == records.count {
            chunks.removeAll(keepingCapacity: true)
            records.removeAll(keepingCapacity: true)
            firstChunk = 0
            next = 0
        }
    }
}
