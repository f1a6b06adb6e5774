#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import CShim
import JSONKit
import Netlink
import Probes
import ProcNS

struct TraceCommand: NSCommand {

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
    @Option(name: .customLong("proto"), help: "icmp, udp or tcp.") var proto: ProbeOptions.Kind = .icmp
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
        let plan = try TracePlan(from: from, to: to, address: address, ipv6: ipv6)
        StopRequest.install()
        if passive {
            try runPassive(plan, filter: passiveFilter ?? PassiveFilter())
            return
        }
        let trace = ActiveTrace(plan: plan, options: ProbeOptions(kind: proto, count: count, port: probePort, ttl: probeTTL, duration: duration))
        let result = try trace.run(attached: attached)
        if let path = pcap { try TraceOutput.pcap(result.events, path: path, labels: plan.labels) }
        var rendered = TraceOutput(labels: plan.labels, dropReasons: result.dropReasons, verbose: common.verbose)
        rendered.nat = result.nat
        let prediction = PathRendering(prediction: plan.prediction, labels: plan.context.open.labels, target: nil)
        if common.json {
            rendered.jsonLines(result.reports, statistics: result.statistics, prediction: prediction)
        } else {
            Output.write(rendered.text(result.reports, statistics: result.statistics, from: plan.context.open.labels[plan.origin],
                                       destination: plan.destination, prediction: prediction))
        }
        if !result.agrees { throw ExitCode(1) }
    }

    /// Once the programs are attached: the session's warnings, and the ready file for scripts and tests
    /// that start traffic then.
    func attached(_ session: ProbeSession) throws {
        for warning in session.warnings { Output.warn("trace: warning: \(warning)") }
        guard let readyFile else { return }
        let fd = open(readyFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OperationError("trace", readyFile, call: "open", errno: .current) }
        let sinceStart = (monotonicNanoseconds() - processStartNanoseconds) / 1_000_000
        let text = Array("attached \(session.attachedHooks.map(\.description).joined(separator: ",")) in \(session.startup.total / 1_000_000) ms, \(sinceStart) ms after start\n".utf8)
        _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// Every matching event as a line (or a JSON object), then counts per place and the drops.
    func runPassive(_ plan: TracePlan, filter: PassiveFilter) throws {
        var output = TraceOutput(labels: plan.labels, dropReasons: DropReasons(names: [:]), verbose: common.verbose)
        var events: [PacketEvent] = []
        // Events are written in 64 KiB pieces and whenever the trace is idle, not one write(2) each: a
        // ping flood makes several hundred thousand events a second.
        var out = OutputBuffer()
        var reportedLost: UInt64 = 0
        let trace = PassiveTrace(inodes: plan.inodes, filter: filter, duration: duration)
        let summary = try trace.run(attached: { session in
            try attached(session)
            output = TraceOutput(labels: plan.labels, dropReasons: session.dropReasons, verbose: common.verbose)
        }, event: { event, offset in
            if common.json {
                output.eventJSON(event, offset: offset, direction: nil).write(into: &out.bytes, pretty: false)
            } else {
                out.append(output.eventLine(event, offset: offset, direction: nil))
            }
            out.bytes.append(UInt8(ascii: "\n"))
            out.flushIfFull()
            if pcap != nil { events.append(event) }
        }, idle: { out.flush() }, progress: common.verbose ? { lost, waiting in
            if lost > reportedLost { Output.warn("trace: \(lost - reportedLost) events lost (ring buffer full)"); reportedLost = lost }
            if waiting > 0 { Output.warn("trace: \(waiting) events waiting to be printed") }
        } : nil)
        out.flush()
        if let path = pcap { try TraceOutput.pcap(events, path: path, labels: plan.labels) }
        let dropCounts = summary.drops.map { ("\(output.label($0.key.netns)): \(summary.dropReasons.name($0.key.reason))", $0.value) }
            .sorted { $0.0 < $1.0 }
        if common.json {
            var o = JSONObjectBuilder()
            o.add("summary", true)
            o.add("events", summary.statistics.events); o.add("lost", summary.statistics.totalLost)
            o.add("drops", .object(dropCounts.map { JSON.Member($0.0, .int(Int64($0.1))) }))
            Output.json(o.json, pretty: false)
        } else {
            var table = Table("NAMESPACE", "INTERFACE", "HOOK", "EVENTS")
            let rows = summary.counts.map { ([output.label($0.key.netns), $0.key.ifname, "\($0.key.hook)"], $0.value) }
            for (key, n) in rows.sorted(by: { $0.0.lexicographicallyPrecedes($1.0) }) { table.add(key[0], key[1], key[2], String(n)) }
            Output.line("")
            Output.write(table.render())
            for (key, n) in dropCounts { Output.line("dropped in \(key) × \(n)") }
            Output.line("\(summary.statistics.events) events, \(summary.statistics.totalLost) lost")
        }
    }
}

extension ProbeOptions.Kind: ExpressibleByArgument {}
