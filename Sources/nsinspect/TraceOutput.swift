#if canImport(Glibc)
import Glibc
#endif
import Inspect
import JSONKit
import NetAddress
import Netlink
import Probes
import ProcNS

/// How a trace is printed: per probe a timeline, the hops there and back, and the verdict; or one JSON
/// object per event followed by a summary; and pcapng for Wireshark.
struct TraceOutput {
    let labels: [UInt32: String]
    let dropReasons: DropReasons
    let verbose: Bool
    /// Conntrack entries behind the rewrites, read after the probes.
    var nat = TraceNAT()
    /// The timeline's namespace column, wide enough for the names it can print (8–24) and two spaces;
    /// worked out once, not per event line.
    let labelWidth: Int

    init(labels: [UInt32: String], dropReasons: DropReasons, verbose: Bool) {
        self.labels = labels
        self.dropReasons = dropReasons
        self.verbose = verbose
        labelWidth = min(24, max(8, labels.values.map(\.count).max() ?? 8)) + 2
    }

    func label(_ inode: UInt32) -> String { inode == 0 ? "?" : labels[inode] ?? "net:[\(inode)]" }

    static func milliseconds(_ ns: Int64) -> String {
        let sign = ns < 0 ? "-" : "+"
        let us = abs(ns) / 1000
        return "\(sign)\(us / 1000).\(String(repeating: "0", count: 3 - String(us % 1000).count))\(us % 1000) ms"
    }

    /// The packet in a few words: `10.0.1.10 → 10.0.2.10 icmp echo id 4242 seq 1`.
    static func packetText(_ p: PacketHeaders) -> String {
        var text = "\(p.source) → \(p.destination)"
        if p.isICMP && p.hasTransport {
            if p.isEchoRequest || p.isEchoReply {
                text += " icmp echo \(p.isEchoRequest ? "request" : "reply") id \(p.icmpID) seq \(p.icmpSequence)"
            } else {
                text += " " + ICMPNames.describe(type: p.icmpType, code: p.icmpCode, v6: p.version == 6)
            }
        } else if p.hasTransport && (p.proto == PacketHeaders.udp || p.proto == PacketHeaders.tcp) {
            text = "\(p.source):\(p.sourcePort) → \(p.destination):\(p.destinationPort) \(p.proto == PacketHeaders.udp ? "udp" : "tcp")"
            if p.proto == PacketHeaders.tcp { text += " " + tcpFlags(p.tcpFlags) }
        } else {
            text += " proto \(p.proto)"
        }
        return text
    }

    static func tcpFlags(_ flags: UInt8) -> String {
        let names: [(UInt8, String)] = [(0x02, "SYN"), (0x10, "ACK"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH")]
        let set = names.filter { flags & $0.0 != 0 }.map(\.1)
        return set.isEmpty ? "[.]" : "[\(set.joined(separator: ","))]"
    }

    /// What the event says beyond the packet: the drop reason, the route chosen, the ICMP error sent.
    func detailText(_ event: PacketEvent) -> String {
        switch event.detail {
        case .drop:
            let reason = dropReasons.name(event.dropReason)
            return "DROP " + reason + (reason == "NO_SOCKET" && event.packet?.isEchoReply == true ? " (a raw socket read the reply; no ping socket wanted it)" : "")
        case .route(let r):
            let flow = event.packet.map { "\($0.source) → \($0.destination): " } ?? ""
            let out = event.ifname.isEmpty ? "if\(r.outputInterface)" : event.ifname
            return r.error == 0 ? "route lookup \(flow)table \(RTNames.table(r.table)) → \(out)" + (r.gateway.map { " via \($0)" } ?? "")
                : "route lookup \(flow)table \(RTNames.table(r.table)): no match (\(Errno(-r.error)))"
        case .icmpSent(let type, let code): return "kernel sends " + ICMPNames.describe(type: type, code: code, v6: event.packet?.version == 6)
        case .neighbour(let n):
            let old = RTNames.neighbourState(UInt16(truncatingIfNeeded: n.oldState)).joined(separator: ",")
            let new = RTNames.neighbourState(UInt16(truncatingIfNeeded: n.newState)).joined(separator: ",")
            return "neighbour \(n.address?.description ?? "?") \(old) → \(new)"
        case .none: return ""
        }
    }

    func eventLine(_ event: PacketEvent, offset: Int64, direction: TraceDirection?, isCopy: Bool = false) -> String {
        // Interface names are up to 15 bytes (IFNAMSIZ − 1): the column fits them.
        var parts = [Self.milliseconds(offset).padding(toLength: 12), label(event.netns).padding(toLength: labelWidth),
                     (event.ifname.isEmpty ? "-" : event.ifname).padding(toLength: 16), event.hook.description.padding(toLength: 10)]
        if let direction { parts.append((isCopy ? "copy" : direction.rawValue).padding(toLength: 8)) }
        if let p = event.packet, event.hook != .routeLookup && event.hook != .routeLookup6 {
            parts.append("ttl \(p.ttl)".padding(toLength: 8))
            parts.append(Self.packetText(p))
        }
        let detail = detailText(event)
        if !detail.isEmpty { parts.append(" " + detail) }
        return parts.joined()
    }

    /// One event as JSON; `isCopy` marks a copy of the probe that did not go on (`"copy": true`).
    func eventJSON(_ event: PacketEvent, offset: Int64, direction: TraceDirection?, sequence: UInt16? = nil, isCopy: Bool = false) -> JSON {
        var o = JSONObjectBuilder()
        o.add("offset_ns", offset)
        o.add("probe", sequence)
        o.add("netns", label(event.netns))
        o.add("ns", event.netns)
        o.add("ifname", event.ifname.isEmpty ? nil : event.ifname)
        o.add("ifindex", event.ifindex)
        o.add("hook", event.hook.description)
        o.add("direction", direction?.rawValue)
        o.add("skb", "0x" + String(event.skb, radix: 16))
        if let p = event.packet {
            o.add("ttl", p.ttl)
            o.add("src", p.source.description)
            o.add("dst", p.destination.description)
            o.add("proto", p.proto)
            if p.hasTransport {
                if p.isICMP {
                    o.add("icmp_type", p.icmpType); o.add("icmp_code", p.icmpCode)
                    o.add("icmp_id", p.icmpID); o.add("icmp_seq", p.icmpSequence)
                } else {
                    o.add("sport", p.sourcePort); o.add("dport", p.destinationPort)
                }
            }
        }
        if event.hook == .drop { o.add("drop_reason", dropReasons.name(event.dropReason)) }
        let detail = detailText(event)
        if !detail.isEmpty && event.hook != .drop { o.add("detail", detail) }
        if isCopy { o.add("copy", true) }
        return o.json
    }

    /// Events left out of the text timeline unless --verbose: neighbour updates and lookups in the local
    /// table (the kernel asks it first for every packet).
    static func isNoise(_ event: PacketEvent) -> Bool {
        if event.hook == .neighbour { return true }
        if case .route(let r) = event.detail, r.table == 255 { return true }
        return false
    }

    func hopsText(_ hops: [ObservedHop]) -> String {
        let shown = hops.count > 10 ? Array(hops.prefix(8)) : hops
        return shown.map { hop in
            var io = ""
            switch (hop.inInterface, hop.outInterface) {
            case (let i?, let o?): io = "\(i) → \(o)"
            case (nil, let o?): io = "→ \(o)"
            case (let i?, nil): io = "\(i) →"
            default: io = ""
            }
            var ttl = ""
            switch (hop.ttlIn, hop.ttlOut) {
            case (let a?, let b?) where a != b: ttl = "ttl \(a)→\(b)"
            case (let a?, _): ttl = "ttl \(a)"
            case (nil, let b?): ttl = "ttl \(b)"
            default: ttl = ""
            }
            var parts = [io, ttl]
            if let crossing = hop.switching {
                // A layer-2 hop: the bridge or switch that moved the frame, ports in → out.
                let ports = "\(crossing.inPort) → \(crossing.outPort)"
                switch crossing.kind {
                case .bridge: parts[0] = "bridge \(crossing.name ?? "?"): \(ports)"
                case .openVSwitch: parts[0] = "Open vSwitch \(crossing.name ?? "?"): \(ports)"
                case .unmanaged: parts[0] = "\(ports), switched outside the kernel bridge"
                }
            }
            var text = "\(hop.label) (\(parts.filter { !$0.isEmpty }.joined(separator: ", ")))"
            for r in hop.rewrites { text += " [\(r.description)]" }
            if let drop = hop.drop { text += " [DROP \(drop)\(Self.placeText(hop.dropPlace))]" }
            if let icmp = hop.icmpSent { text += " [sends \(ICMPNames.describe(type: icmp.type, code: icmp.code, v6: icmp.v6))]" }
            return text
        }.joined(separator: " · ") + (hops.count > shown.count ? " · … \(hops.count - shown.count) more · " + hopsText([hops.last!]) : "")
    }

    /// `  conntrack in router2: udp 17 29 src=… [UNREPLIED] …  SNAT …`, once per entry, for the hops
    /// that rewrote the packet.
    func conntrackText(_ hops: [ObservedHop]) -> String {
        var out = "", seen: Set<[UInt8]> = []
        for hop in hops where !hop.rewrites.isEmpty {
            if let problem = nat.problems[hop.namespace] {
                out += "  conntrack in \(hop.label): cannot be read (\(problem))\n"
                continue
            }
            for entry in nat.entries(for: hop) {
                var line: [UInt8] = []
                entry.appendText(to: &line)
                guard seen.insert(Array("\(hop.namespace) ".utf8) + line).inserted else { continue }
                if entry.isNAT {
                    line += Array("  ".utf8)
                    entry.appendNAT(to: &line)
                }
                out += "  conntrack in \(hop.label): " + String(decoding: line, as: UTF8.self) + "\n"
            }
        }
        return out
    }

    /// `2 flooded copies discarded (l2t-r: OTHERHOST on input from e0; …)`, apart from the verdict:
    /// copies are not the probe.
    func copiesText(_ copies: [DiscardedCopy]) -> String? {
        guard !copies.isEmpty else { return nil }
        func places(_ these: [DiscardedCopy], withLabel: Bool) -> String {
            var out: [String] = []
            for copy in these {
                let place = (withLabel ? "\(copy.label): " : "") + copy.reason + Self.placeText(copy.place)
                if !out.contains(place) { out.append(place) }
            }
            return out.joined(separator: "; ")
        }
        var parts: [String] = []
        let flooded = copies.filter { $0.kind == .offPath }
        if !flooded.isEmpty {
            parts.append("\(flooded.count) flooded cop\(flooded.count == 1 ? "y" : "ies") discarded off the probe's way (\(places(flooded, withLabel: true)))")
        }
        var seen: [UInt32] = []
        for copy in copies where copy.kind == .left && !seen.contains(copy.namespace) {
            seen.append(copy.namespace)
            let here = copies.filter { $0.kind == .left && $0.namespace == copy.namespace }
            parts.append("\(copy.label)'s own stack discarded its copy \(here.count == 1 ? "once" : "\(here.count)×") (\(places(here, withLabel: false))) "
                         + "while a packet socket took the frame on")
        }
        return parts.joined(separator: "; ") + "; not the probe's fate"
    }

    /// ` on input from e1`, ` at e0`, or nothing.
    static func placeText(_ place: DropPlace?) -> String {
        switch place {
        case .onInputFrom(let interface)?: " on input from \(interface)"
        case .at(let interface)?: " at \(interface)"
        case nil: ""
        }
    }

    /// The JSON form of a place: `on input from e1`, `at e0`, or null.
    static func placeJSON(_ place: DropPlace?) -> String? {
        place.map { String(placeText($0).dropFirst()) }
    }

    /// A verdict in words.
    static func verdictText(_ verdict: Verdict) -> String {
        func hops(_ n: Int) -> String { "\(n) routed hop\(n == 1 ? "" : "s")" }
        func facts(_ c: HopCounts) -> [String] {
            ["\(hops(c.seen)) seen"] + (c.predicted.map { ["\($0) predicted by path"] } ?? [])
                + (c.byReplyTTL.map { ["\($0) by the reply's ttl (\(c.initialTTL) − \(c.initialTTL - $0))"] } ?? [])
        }
        switch verdict {
        case .agree(let c):
            return facts(c).joined(separator: " = ") + ": they agree"
        case .diverged(let c, let went, let predicted):
            return "\(facts(c).joined(separator: ", ")); the probe went through \(went) where path predicted \(predicted)"
        case .wayBackDiffers(let c, let back):
            return facts(c).joined(separator: ", ") + ": the way back differs from the way there (\(back.joined(separator: ", ")))"
        case .differ(let c):
            return facts(c).joined(separator: ", ") + ": they differ"
        case .closedPort(let reached, let c, let error):
            let answer = error.map { "it answers \($0): nothing listens there" } ?? "it answers with a TCP reset: nothing listens on that port"
            return "reached \(reached) over \(hops(c.seen))" + (c.predicted.map { " (\($0) predicted by path)" } ?? "") + "; " + answer
        case .reset:
            return "the destination answered with a TCP reset (port closed)"
        case .routingLoop(let between, let passes, let expiredIn, let predicted):
            return "routing loop between \(between.joined(separator: " and ")): the probe passed \(passes) times through them until its ttl ran out in \(expiredIn)"
                + (predicted ? ", as path predicted" : "; path did not predict it")
        case .ttlAsked(let error, let from, let ttl, let there):
            return "\(error) from \(from) after \(ttl) hop\(ttl == 1 ? "" : "s"), as --ttl \(ttl) asks" + (there.map { "; path predicted \($0) there" } ?? "")
        case .ttlExceeded(let error, let from):
            return "\(error) from \(from): fewer hops than the path has"
        case .icmpError(let error, let from):
            return "\(error) from \(from)"
        case .dropped(let ns, let place, let reason, let stop, let next):
            let why = DropReasons.explanation(reason).map { " (\($0))" } ?? ""
            var text = "dropped in \(ns)" + Self.placeText(place) + ": \(reason)" + why
            if let stop { text += ", as path predicted (\(stop))" }
            if let next { text += "; path predicted it to go on to \(next)" }
            return text
        case .notSent(let why):
            return "not sent: \(why)"
        case .lastSeen(let ns, let leaving, let arriving, let stop):
            let via = leaving.map { " leaving via \($0)" } ?? arriving.map { " arriving on \($0)" } ?? ""
            return "no reply: the probe was last seen in \(ns)\(via)" + (stop.map { ", where path predicted it to stop (\($0))" } ?? ", and no drop was seen")
        case .answerLost(let ns):
            return "no reply reached the sender: the reply was last seen in \(ns)"
        case .unseen:
            return "no reply, and the probe was not seen in any traced namespace"
        }
    }

    /// The verdict's kind, for JSON: `agree`, `dropped`, `routing_loop`, …
    static func verdictKind(_ verdict: Verdict) -> String {
        switch verdict {
        case .agree: "agree"
        case .diverged: "diverged"
        case .wayBackDiffers: "way_back_differs"
        case .differ: "differ"
        case .closedPort: "closed_port"
        case .reset: "reset"
        case .routingLoop: "routing_loop"
        case .ttlAsked: "ttl_asked"
        case .ttlExceeded: "ttl_exceeded"
        case .icmpError: "icmp_error"
        case .dropped: "dropped"
        case .notSent: "not_sent"
        case .lastSeen: "last_seen"
        case .answerLost: "answer_lost"
        case .unseen: "unseen"
        }
    }

    func outcomeText(_ outcome: ProbeOutcome) -> String {
        switch outcome {
        case .reply(let ttl, let rtt): return "reply" + (ttl.map { " with ttl \($0)" } ?? "") + " in \(Self.milliseconds(Int64(rtt)).dropFirst())"
        case .icmpError(let type, let code, let from, let v6): return ICMPNames.describe(type: type, code: code, v6: v6) + " from \(from)"
        case .reset: return "TCP reset (port closed)"
        case .timeout: return "no answer in 1 s"
        case .notSent(let why): return "not sent: \(why)"
        }
    }

    func text(_ reports: [ProbeReport], statistics: ProbeSession.Statistics, from: String, destination: IPAddress,
              prediction: PathRendering) -> String {
        var out = "trace \(from) → \(destination)\n"
        let predicted: [String] = prediction.prediction.hops.map { prediction.labels[$0.namespace] }
        out += "path predicts: " + predicted.joined(separator: " → ")
        if let problem = prediction.problem { out += " (\(problem))" }
        out += "\n"
        for report in reports {
            out += "\n" + Output.styled("probe \(report.sequence): \(outcomeText(report.outcome))", .bold) + "\n"
            for entry in report.timeline where verbose || !Self.isNoise(entry.event) {
                out += "  " + eventLine(entry.event, offset: entry.offset, direction: entry.direction, isCopy: entry.isCopy) + "\n"
            }
            if report.timeline.isEmpty { out += "  (no event seen in the traced namespaces)\n" }
            if !report.requestHops.isEmpty { out += "  there: " + hopsText(report.requestHops) + "\n" }
            if !report.replyHops.isEmpty { out += "  back:  " + hopsText(report.replyHops) + "\n" }
            out += conntrackText(report.requestHops + report.replyHops)
            if let copies = copiesText(report.discardedCopies) { out += "  copies: " + copies + "\n" }
            out += "  " + Output.styled("verdict: " + Self.verdictText(report.verdict), report.agrees ? .green : .red) + "\n"
        }
        let agreeing = reports.filter(\.agrees).count
        out += "\n\(agreeing) of \(reports.count) probe\(reports.count == 1 ? "" : "s") as predicted; \(statistics.events) events"
        out += statistics.totalLost > 0 ? Output.styled(", \(statistics.totalLost) LOST (ring buffer full or missed runs)", .red) : ", none lost"
        return out + "\n"
    }

    func jsonLines(_ reports: [ProbeReport], statistics: ProbeSession.Statistics, prediction: PathRendering) {
        for report in reports {
            for entry in report.timeline {
                Output.json(eventJSON(entry.event, offset: entry.offset, direction: entry.direction, sequence: report.sequence,
                                      isCopy: entry.isCopy), pretty: false)
            }
        }
        var summary = JSONObjectBuilder()
        summary.add("summary", true)
        summary.add("path", prediction.json())
        summary.add("probes", .array(reports.map { r in
            var o = JSONObjectBuilder()
            o.add("seq", r.sequence)
            o.add("outcome", outcomeText(r.outcome))
            if case .reply(let ttl, _) = r.outcome { o.add("reply_ttl", ttl) }
            o.add("observed_routed_hops", r.observedRoutedHops)
            o.add("reply_routed_hops", r.replyRoutedHops)
            o.add("there", .array(r.requestHops.map(hopJSON)))
            o.add("back", .array(r.replyHops.map(hopJSON)))
            o.add("discarded_copies", .array(r.discardedCopies.map { copy in
                var c = JSONObjectBuilder()
                c.add("netns", copy.label); c.add("ns", copy.namespace)
                c.add("direction", copy.direction.rawValue)
                c.add("kind", copy.kind.rawValue)
                c.add("drop", copy.reason); c.add("drop_place", Self.placeJSON(copy.place))
                return c.json
            }))
            o.add("verdict", Self.verdictText(r.verdict))
            o.add("verdict_kind", Self.verdictKind(r.verdict))
            o.add("agrees", r.agrees)
            return o.json
        }))
        summary.add("events", statistics.events)
        summary.add("lost", statistics.totalLost)
        Output.json(summary.json, pretty: false)
    }

    func hopJSON(_ hop: ObservedHop) -> JSON {
        var o = JSONObjectBuilder()
        o.add("netns", hop.label); o.add("ns", hop.namespace)
        o.add("in", hop.inInterface); o.add("out", hop.outInterface)
        o.add("ttl_in", hop.ttlIn); o.add("ttl_out", hop.ttlOut)
        o.add("routed", hop.routed)
        if let crossing = hop.switching {
            var l2 = JSONObjectBuilder()
            l2.add("kind", crossing.kind.rawValue)
            l2.add("name", crossing.name)
            l2.add("in", crossing.inPort); l2.add("out", crossing.outPort)
            o.add("layer2", l2.json)
        }
        if let r = hop.route {
            var route = JSONObjectBuilder()
            route.add("table", RTNames.table(r.table))
            if r.error == 0 {
                route.add("out", hop.routeInterface ?? "if\(r.outputInterface)")
                route.add("via", r.gateway?.description)
            } else {
                route.add("error", "\(Errno(-r.error))")
            }
            o.add("route", route.json)
        }
        o.add("rewrites", strings: hop.rewrites.map(\.description))
        if !hop.rewrites.isEmpty {
            o.add("conntrack", .array(nat.entries(for: hop).map { entry in
                var bytes: [UInt8] = []
                ConntrackJSON.append(entry, netns: nil, to: &bytes)
                return .raw(bytes)
            }))
        }
        o.add("drop", hop.drop); o.add("drop_place", Self.placeJSON(hop.dropPlace))
        o.add("icmp_sent", hop.icmpSent.map { ICMPNames.describe(type: $0.type, code: $0.code, v6: $0.v6) })
        return o.json
    }

    /// pcapng with one interface per namespace/interface; monotonic timestamps moved to wall-clock time.
    static func pcap(_ events: [PacketEvent], path: String, labels: [UInt32: String]) throws {
        var real = timespec(), mono = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        clock_gettime(CLOCK_MONOTONIC, &mono)
        let offset = (Int64(real.tv_sec) - Int64(mono.tv_sec)) * 1_000_000_000 + Int64(real.tv_nsec) - Int64(mono.tv_nsec)
        let writer = try PcapngWriter(path: path)
        for event in events where !event.snapshot.isEmpty && event.hook != .routeLookup && event.hook != .routeLookup6 {
            let namespace = labels[event.netns] ?? "net:[\(event.netns)]"
            let id = try writer.interface(namespace: namespace, ifname: event.ifname.isEmpty ? "-" : event.ifname, inode: event.netns)
            let comment = "netns=\(namespace) hook=\(event.hook) skb=0x\(String(event.skb, radix: 16))"
                + (event.hook == .drop ? " drop_reason=\(event.dropReason)" : "")
            try writer.packet(interface: id, timestamp: UInt64(Int64(event.timestamp) + offset), data: event.snapshot,
                              originalLength: event.originalLength, comment: comment)
        }
    }
}
