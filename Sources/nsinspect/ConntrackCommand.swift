#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import JSONKit
import Netlink
import Probes
import ProcNS

struct ConntrackCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "conntrack",
        abstract: "A namespace's conntrack table as `conntrack -L` prints it, with what NAT rewrote; or its events (--watch).",
        discussion: """
            Read over a netfilter netlink socket opened inside each namespace, so no `ip netns exec` is needed \
            and several namespaces are shown at once. Each line is the line conntrack-tools prints, followed by \
            the NAT column (`SNAT 10.0.2.1:12345 → 100.64.2.100:54321`, `DNAT …`). With several namespaces, \
            or with --watch, each line starts with the namespace's name. --watch prints [NEW], [UPDATE] and \
            [DESTROY] events until Ctrl-C or SIGTERM (or --duration, --count); if the kernel drops events \
            (the receive buffer overflows), it says how many and shows what changed, from a fresh dump. A \
            namespace that goes away while watched is reported and the others are still watched. --json \
            prints an array of entries, or with --watch one JSON object per line.
            """
    )

    @Argument(help: "The namespaces (NS references).") var references: [String]
    @Flag(help: "Print events as they happen instead of the table.") var watch = false
    @Flag(help: "Only entries (or events) whose addresses or ports NAT rewrote.") var natOnly = false
    @Option(help: "With --watch: stop after this many seconds.") var duration: Double?
    @Option(help: "With --watch: stop after this many events.") var count: Int?
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard !references.isEmpty else { throw ValidationError("name at least one namespace") }
        if !watch && (duration != nil || count != nil) { throw ValidationError("--duration and --count go with --watch") }
        try OptionCheck.seconds("--duration", duration)
        try OptionCheck.range("--count", count, 1...Int(Int32.max))
    }

    func run() throws {
        try requireCapabilities([.netAdmin], for: "conntrack")
        var resolver = NamespaceResolver()
        let namespaces = try references.map { reference in NamedNamespace(try resolver.resolve(reference), label: reference) }
        if watch {
            try runWatch(namespaces)
        } else {
            try printTables(namespaces)
        }
    }

    /// Events until Ctrl-C, SIGTERM, --duration or --count; namespaces that cannot be watched, or go
    /// away, are said on stderr and the rest watched on.
    private func runWatch(_ namespaces: [NamedNamespace]) throws {
        StopRequest.install()
        let watcher = ConntrackWatcher(namespaces: namespaces, duration: duration)
        let output = ConntrackWatchOutput(natOnly: natOnly, json: common.json, width: namespaces.map(\.label.utf8.count).max() ?? 0)
        var out = OutputBuffer()
        var printed = 0
        let watched = try watcher.run(started: { labels in
            if isatty(2) == 1 { Output.warn("watching \(labels.joined(separator: ", ")) (Ctrl-C to stop)") }
        }, item: { label, item in
            printed += output.emit(item, from: label, into: &out)
            out.flushIfFull()
            return count.map { printed < $0 } ?? true
        }, read: {
            out.flush()
        }, problem: { label, message in
            out.flush()
            Output.warn("conntrack: " + (label.map { "\($0): " } ?? "") + message)
        })
        out.flush()
        if watched == 0 { throw ExitCode(1) }
    }

    /// `conntrack -L` for each namespace, streamed: each datagram's entries are written out before the
    /// next is read.
    private func printTables(_ namespaces: [NamedNamespace]) throws {
        let width = namespaces.count > 1 ? namespaces.map(\.label.utf8.count).max()! : 0
        var out = OutputBuffer()
        var first = true
        if common.json { out.append(Output.prettyJSON ? "[\n" : "[") }
        for ns in namespaces {
            var shown = 0, total = 0
            let quotedNetns = ConntrackJSON.quoted(ns.label)
            try ConntrackTable(in: ns.handle, label: ns.label).forEach { entry in
                total += 1
                guard !natOnly || entry.isNAT else { return }
                shown += 1
                if common.json {
                    if !first { out.append(Output.prettyJSON ? ",\n" : ",") }
                    if Output.prettyJSON { out.append("  ") }
                    ConntrackJSON.append(entry, quotedNetns: quotedNetns, to: &out.bytes)
                } else {
                    if width > 0 { out.append(padded(ns.label, width)) }
                    entry.appendText(to: &out.bytes)
                    if entry.isNAT {
                        out.bytes.append(UInt8(ascii: " "))
                        out.bytes.append(UInt8(ascii: " "))
                        entry.appendNAT(to: &out.bytes)
                    }
                    out.bytes.append(UInt8(ascii: "\n"))
                }
                first = false
                out.flushIfFull()
            }
            if shown == 0 {
                let note = total == 0
                    ? "\(ns.label): no conntrack table yet (no connection is tracked in this namespace)"
                    : "\(ns.label): no NAT entries (\(total) entr\(total == 1 ? "y" : "ies") without NAT)"
                if common.json { Output.warn(note) } else { out.append(note + "\n") }
            }
        }
        if common.json { out.append(Output.prettyJSON && !first ? "\n]\n" : "]\n") }
        out.flush()
    }
}

/// A namespace name padded for the prefix of a line: `ns-c1-nat  `.
func padded(_ label: String, _ width: Int) -> String {
    label + String(repeating: " ", count: max(0, width - label.utf8.count) + 2)
}

/// Conntrack entries and events as JSON objects, written straight into the output (no JSON value tree per
/// entry). Field names follow conntrack-tools' words: `src`, `dst`, `sport`, `dport`, `mark`, `use`, `zone`.
enum ConntrackJSON {
    /// A namespace's name as a JSON string, made once for every entry of a table.
    static func quoted(_ label: String) -> [UInt8] {
        var bytes: [UInt8] = []
        JSON.string(label).write(into: &bytes, pretty: false)
        return bytes
    }

    /// The JSON strings of the protocol names and of the status bits, made once: building and escaping
    /// them for every entry was a fifth of `conntrack --json` on a large table.
    private static let protocolNames: [[UInt8]] = (0...255).map { quoted(ConntrackNames.protocolName(UInt8($0))) }
    private static let statusNames: [[UInt8]] = (0..<32).map { bit in
        quoted(ConntrackStatus(rawValue: 1 << UInt32(bit)).names.first ?? "BIT_\(bit)")
    }

    static func append(_ entry: ConntrackEntry, netns: String?, event: String? = nil, resync: Bool = false,
                       to out: inout [UInt8]) {
        append(entry, quotedNetns: netns.map(quoted), event: event, resync: resync, to: &out)
    }

    /// - Parameter quotedNetns: the namespace's name already as a JSON string (`quoted(_:)`).
    static func append(_ entry: ConntrackEntry, quotedNetns: [UInt8]?, event: String? = nil, resync: Bool = false,
                       to out: inout [UInt8]) {
        var o = JSONMembers(&out)
        if let quotedNetns {
            o.key("netns", &out)
            out.append(contentsOf: quotedNetns)
        }
        if let event { o.string("event", event, &out) }
        if resync { o.raw("resync", "true", &out) }
        o.raw("family", entry.family == .v4 ? "\"ipv4\"" : "\"ipv6\"", &out)
        o.key("protocol", &out)
        out.append(contentsOf: protocolNames[Int(entry.protocolNumber)])
        o.number("protonum", entry.protocolNumber, &out)
        if let timeout = entry.timeout { o.number("timeout", timeout, &out) }
        if let state = entry.stateName { o.string("state", state, &out) }
        o.key("original", &out)
        tuple(entry.original, counters: entry.originalCounters, to: &out)
        o.key("reply", &out)
        tuple(entry.reply, counters: entry.replyCounters, to: &out)
        if let status = entry.status {
            o.key("status", &out)
            out.append(UInt8(ascii: "["))
            var first = true
            for bit in 0..<32 where status.rawValue & (1 << UInt32(bit)) != 0 {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                out.append(contentsOf: statusNames[bit])
            }
            out.append(UInt8(ascii: "]"))
            o.raw("unreplied", entry.isUnreplied ? "true" : "false", &out)
            o.raw("assured", entry.isAssured ? "true" : "false", &out)
        }
        if let mark = entry.mark { o.number("mark", mark, &out) }
        if let use = entry.use { o.number("use", use, &out) }
        if let id = entry.id { o.number("id", id, &out) }
        if let zone = entry.zone { o.number("zone", zone, &out) }
        if let helper = entry.helper { o.string("helper", helper, &out) }
        if let context = entry.securityContext { o.string("secctx", context, &out) }
        if let started = entry.started { o.number("start_ns", started, &out) }
        if let stopped = entry.stopped { o.number("stop_ns", stopped, &out) }
        // What `entry.rewrites` says, written from the tuples (no IPAddress or String per entry).
        let snat = entry.isSourceRewritten, dnat = entry.isDestinationRewritten
        if snat || dnat {
            o.key("nat", &out)
            out.append(UInt8(ascii: "["))
            let icmp = entry.original.isICMP
            if snat {
                let (from, to) = entry.sourceKeys
                rewrite("snat", entry.original, source: true, from, entry.reply, source: false, to, icmp: icmp, to: &out)
            }
            if dnat {
                if snat { out.append(UInt8(ascii: ",")) }
                rewrite("dnat", entry.original, source: false, icmp ? nil : entry.original.destinationPort,
                        entry.reply, source: true, icmp ? nil : entry.reply.sourcePort, icmp: icmp, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        o.end(&out)
    }

    /// `{"type":"snat","from":{"addr":…,"port":…},"to":{…}}`: each side is the source or the destination of
    /// a tuple, and its port (or ICMP id).
    private static func rewrite(_ type: StaticString, _ a: ConntrackTuple, source aSource: Bool, _ aPort: UInt16?,
                                _ b: ConntrackTuple, source bSource: Bool, _ bPort: UInt16?, icmp: Bool,
                                to out: inout [UInt8]) {
        var r = JSONMembers(&out)
        r.raw("type", type, quoted: true, &out)
        r.key("from", &out)
        endpoint(a, source: aSource, aPort, icmp: icmp, to: &out)
        r.key("to", &out)
        endpoint(b, source: bSource, bPort, icmp: icmp, to: &out)
        r.end(&out)
    }

    private static func endpoint(_ tuple: ConntrackTuple, source: Bool, _ port: UInt16?, icmp: Bool, to out: inout [UInt8]) {
        var e = JSONMembers(&out)
        e.key("addr", &out)
        out.append(UInt8(ascii: "\""))
        if source { tuple.appendSource(to: &out) } else { tuple.appendDestination(to: &out) }
        out.append(UInt8(ascii: "\""))
        if let port {
            if icmp { e.number("id", port, &out) } else { e.number("port", port, &out) }
        }
        e.end(&out)
    }

    private static func tuple(_ t: ConntrackTuple, counters: ConntrackCounters?, to out: inout [UInt8]) {
        var o = JSONMembers(&out)
        o.key("src", &out)
        out.append(UInt8(ascii: "\""))
        t.appendSource(to: &out)
        out.append(UInt8(ascii: "\""))
        o.key("dst", &out)
        out.append(UInt8(ascii: "\""))
        t.appendDestination(to: &out)
        out.append(UInt8(ascii: "\""))
        if t.isICMP {
            if let type = t.icmpType { o.number("type", type, &out) }
            if let code = t.icmpCode { o.number("code", code, &out) }
            if let id = t.icmpID { o.number("id", id, &out) }
        } else {
            if let port = t.sourcePort { o.number("sport", port, &out) }
            if let port = t.destinationPort { o.number("dport", port, &out) }
        }
        if let zone = t.zone { o.number("zone", zone, &out) }
        if let counters {
            o.number("packets", counters.packets, &out)
            o.number("bytes", counters.bytes, &out)
        }
        o.end(&out)
    }

}

/// `conntrack --watch` as lines or JSON objects: what `ConntrackWatcher` hands over, written out.
struct ConntrackWatchOutput {
    let natOnly: Bool
    let json: Bool
    let width: Int

    /// Writes one item; returns how many events it printed.
    func emit(_ item: ConntrackMonitorItem, from label: String, into out: inout OutputBuffer) -> Int {
        switch item {
        case .event(let event):
            return line(event, from: label, resync: false, into: &out)
        case .overrun(let missed, let changes, let entries):
            let lost = missed.map { "\($0) event\($0 == 1 ? "" : "s")" } ?? "some events"
            let note = "the kernel dropped \(lost) (receive buffer full); resynchronised from a dump of \(entries) entr\(entries == 1 ? "y" : "ies"): \(changes.count) change\(changes.count == 1 ? "" : "s") since the last event seen"
            if json {
                var o = JSONMembers(&out.bytes)
                o.string("netns", label, &out.bytes)
                o.raw("event", "\"overrun\"", &out.bytes)
                if let missed { o.number("missed", missed, &out.bytes) }
                o.number("entries", entries, &out.bytes)
                o.number("changes", changes.count, &out.bytes)
                o.end(&out.bytes)
                out.append("\n")
            } else {
                out.append(padded(label, width) + "[OVERRUN] " + note + "\n")
            }
            return changes.reduce(0) { $0 + line($1, from: label, resync: true, into: &out) }
        }
    }

    private func line(_ event: ConntrackEvent, from label: String, resync: Bool, into out: inout OutputBuffer) -> Int {
        guard !natOnly || event.entry.isNAT else { return 0 }
        if json {
            ConntrackJSON.append(event.entry, netns: label, event: event.kind.rawValue.lowercased(), resync: resync, to: &out.bytes)
        } else {
            out.append(padded(label, width))
            event.entry.appendText(to: &out.bytes, event: event.kind)
            if event.entry.isNAT {
                out.append("  ")
                event.entry.appendNAT(to: &out.bytes)
            }
            if resync { out.append("  (resync)") }
        }
        out.append("\n")
        return 1
    }
}
