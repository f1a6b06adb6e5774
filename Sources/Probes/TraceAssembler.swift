import NetAddress
/// What the trace command knows of a probe it sent.
public struct SentProbe: Sendable {
    public var sequence: UInt16
    /// When it was sent (CLOCK_MONOTONIC ns, the clock of the events).
    public var sentAt: UInt64
    public var outcome: ProbeOutcome

    public init(sequence: UInt16, sentAt: UInt64, outcome: ProbeOutcome) {
        self.sequence = sequence
        self.sentAt = sentAt
        self.outcome = outcome
    }
}

/// What came back for a probe, as the sending socket saw it.
public enum ProbeOutcome: Sendable, Equatable {
    /// An echo reply (or a UDP reply / TCP SYN-ACK) arriving with this TTL.
    case reply(ttl: UInt8?, rtt: UInt64)
    /// An ICMP error about the probe, from `from`.
    case icmpError(type: UInt8, code: UInt8, from: String, v6: Bool)
    /// A TCP RST: the port is closed, but the host answered.
    case reset
    case timeout
    /// The sending namespace's own kernel refused it (no route).
    case notSent(String)
}

/// One namespace on the path `path` predicts, as the trace compares with what it sees.
public struct ExpectedHop: Sendable, Equatable {
    public var namespace: UInt32
    public var label: String
    public var inInterface: String?
    public var outInterface: String?
    public var forwards: Bool

    public init(namespace: UInt32, label: String, inInterface: String?, outInterface: String?, forwards: Bool) {
        self.namespace = namespace
        self.label = label
        self.inInterface = inInterface
        self.outInterface = outInterface
        self.forwards = forwards
    }
}

/// Which way an event's packet goes, relative to the probe.
public enum TraceDirection: String, Sendable {
    case request, reply, error, other
}

/// One line of a probe's timeline.
public struct TimelineEntry: Sendable {
    public var event: PacketEvent
    /// Nanoseconds since the probe was sent.
    public var offset: Int64
    public var namespace: String
    public var direction: TraceDirection
    /// A copy of the packet that did not carry it on (a bridge's flooded copy, the copy a namespace's own
    /// stack got while a packet socket took the frame): shown, but not part of the hops or the verdict.
    public var isCopy: Bool = false
}

/// How a namespace passed a frame on without routing it: in on one port, out on another, TTL unchanged.
public struct SwitchCrossing: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// A Linux bridge (ports enslaved to it: IFLA_MASTER names it).
        case bridge
        /// An Open vSwitch bridge, as its database names it (kernel or userspace datapath).
        case openVSwitch = "openvswitch"
        /// Something outside the kernel's bridge moved the frame (a userspace switch reading and writing
        /// packet sockets, tc mirred, …): the ports have no master.
        case unmanaged
    }
    public var kind: Kind
    /// The bridge's or switch's name; nil for an unmanaged one.
    public var name: String?
    public var inPort: String
    public var outPort: String

    public init(kind: Kind, name: String?, inPort: String, outPort: String) {
        self.kind = kind
        self.name = name
        self.inPort = inPort
        self.outPort = outPort
    }
}

/// An interface that belongs to a switch, as the trace command found it in the wiring: keyed by the
/// namespace inode and ifindex the events carry.
public struct SwitchPort: Sendable, Equatable, Hashable {
    public var kind: SwitchCrossing.Kind
    public var name: String?

    public init(kind: SwitchCrossing.Kind, name: String?) {
        self.kind = kind
        self.name = name
    }
}

public struct InterfaceKey: Sendable, Hashable {
    public var netns: UInt32
    public var ifindex: UInt32

    public init(netns: UInt32, ifindex: UInt32) {
        self.netns = netns
        self.ifindex = ifindex
    }
}

/// A drop of a copy of the probe that was not the probe's fate: the probe, or another copy of it, went on.
public struct DiscardedCopy: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// In a namespace off the probe's way: a copy flooded by a bridge or switch that had not learned
        /// the destination's MAC, discarded by a host it was not meant for.
        case offPath = "off_path"
        /// In a namespace the probe went through: its own stack discarded its copy while the frame went on
        /// some other way (a packet socket took it: a userspace switch, a tap).
        case left
    }
    public var kind: Kind
    public var namespace: UInt32
    public var label: String
    public var direction: TraceDirection
    /// The kernel's drop reason (its BTF name).
    public var reason: String
    public var place: DropPlace?
}

/// Where in a namespace a packet was dropped.
public enum DropPlace: Sendable, Equatable {
    /// Having come in on this interface, before it left by any.
    case onInputFrom(String)
    /// At this interface (on its way out, or where the kernel last had it).
    case at(String)
}

/// An ICMP message by type and code (an error the kernel sent about the probe).
public struct ICMPMessage: Sendable, Equatable {
    public var type: UInt8
    public var code: UInt8
    public var v6: Bool
}

/// A namespace as the packet crossed it: in on one interface, out on another, the TTL on both sides,
/// what was rewritten in between, and what stopped it there.
public struct ObservedHop: Sendable, Equatable {
    public var namespace: UInt32
    public var label: String
    public var inInterface: String?
    public var outInterface: String?
    public var ttlIn: UInt8?
    public var ttlOut: UInt8?
    /// What NAT rewrote here (source, destination), from the headers on the way in and out.
    public var rewrites: [NATRewrite]
    /// The kernel's drop reason (its BTF name) when the packet died here.
    public var drop: String?
    /// Where in the namespace it was dropped.
    public var dropPlace: DropPlace?
    /// The route lookup that decided where the packet went here (fib tracepoints): the first that matched,
    /// else the last tried.
    public var route: RouteLookup?
    /// The interface that lookup chose, by name, when the kernel gave one.
    public var routeInterface: String?
    /// An ICMP error the kernel sent back from here (icmp_send).
    public var icmpSent: ICMPMessage?
    /// Packet headers before (first seen) and after (last seen) this namespace, for rewrites; `first`
    /// is also the tuple the conntrack entry behind a rewrite is found by.
    public internal(set) var first: PacketHeaders?
    public internal(set) var last: PacketHeaders?
    /// Set when the namespace passed the packet on at layer 2 (a bridge, a switch): no routed hop.
    public var switching: SwitchCrossing?
    var inIndex: UInt32 = 0
    var outIndex: UInt32 = 0

    /// In on one interface and out on another.
    public var forwards: Bool { inInterface != nil && outInterface != nil }
    /// Forwarded by routing (the TTL went down), not switched.
    public var routed: Bool { forwards && switching == nil }
}

/// Everything a trace learned about one probe.
public struct ProbeReport: Sendable {
    public var sequence: UInt16
    public var outcome: ProbeOutcome
    public var timeline: [TimelineEntry]
    public var requestHops: [ObservedHop]
    public var replyHops: [ObservedHop]
    /// The drop that ended the probe, if one was seen: the hop where it happened.
    public var drop: ObservedHop?
    /// Copies of the probe (or of its answer) that were discarded while the packet itself went on.
    public var discardedCopies: [DiscardedCopy]
    /// Routed hops the probe was seen to make (namespaces it went in and out of).
    public var observedRoutedHops: Int
    /// Routed hops by the reply's TTL: the responder's initial TTL minus the TTL on arrival.
    public var replyRoutedHops: Int?
    public var verdict: Verdict
    /// Observation, prediction and reply TTL agree.
    public var agrees: Bool
}

/// Turns the events of a trace into per-probe reports.
public struct TraceAssembler {
    public enum Identity: Sendable {
        case icmpEcho(id: UInt16)
        /// A UDP or TCP probe from `sourcePort` to `destinationPort` (the probe's direction).
        case flow(proto: UInt8, sourcePort: UInt16, destinationPort: UInt16)
    }

    public let identity: Identity
    /// Names of namespaces by inode (`router1`, `pid:1234`); unknown inodes print as `net:[N]`.
    public let labels: [UInt32: String]
    public let dropReasons: DropReasons
    /// The hops `path` predicts (empty when it could not predict).
    public let expected: [ExpectedHop]
    /// The TTL the responder sends replies with (its ip_default_ttl), for the routed-hop count.
    public let initialTTL: Int
    public let requestedTTL: UInt8?
    /// `path` predicted a routing loop.
    public let predictedLoop: Bool
    /// Where and why `path` predicted the packet to stop short of the destination (a blackhole or
    /// unreachable route, no route, forwarding off, a next hop nobody owns): a drop there is the
    /// prediction coming true, not a disagreement.
    public let predictedStop: (namespace: UInt32, why: String)?
    /// Interfaces that are ports of a bridge or switch, so a hop through them is named (bridge s1).
    public let switchPorts: [InterfaceKey: SwitchPort]

    public init(identity: Identity, labels: [UInt32: String], dropReasons: DropReasons, expected: [ExpectedHop],
                initialTTL: Int = 64, requestedTTL: UInt8? = nil, predictedLoop: Bool = false,
                predictedStop: (namespace: UInt32, why: String)? = nil, switchPorts: [InterfaceKey: SwitchPort] = [:]) {
        self.switchPorts = switchPorts
        self.predictedLoop = predictedLoop
        self.predictedStop = predictedStop
        self.identity = identity
        self.labels = labels
        self.dropReasons = dropReasons
        self.expected = expected
        self.initialTTL = initialTTL
        self.requestedTTL = requestedTTL
    }

    public func label(_ inode: UInt32) -> String { labels[inode] ?? "net:[\(inode)]" }

    // MARK: Classification

    /// The direction of an event's packet, and the probe sequence it names (ICMP only).
    public func classify(_ event: PacketEvent) -> (TraceDirection, UInt16?) {
        guard let p = event.packet else { return (.other, nil) }
        switch identity {
        case .icmpEcho(let id):
            if p.isICMP, p.hasTransport, p.icmpID == id {
                if p.isEchoRequest { return (.request, p.icmpSequence) }
                if p.isEchoReply { return (.reply, p.icmpSequence) }
            }
            if p.isICMP, let q = event.quoted, q.isEchoRequest, q.icmpID == id { return (.error, q.icmpSequence) }
            // A route lookup carries the flow only (no ICMP id): its direction from the addresses.
            return (.other, nil)
        case .flow(let proto, let sport, let dport):
            if p.proto == proto, p.hasTransport {
                if p.sourcePort == sport && p.destinationPort == dport { return (.request, nil) }
                if p.sourcePort == dport && p.destinationPort == sport { return (.reply, nil) }
            }
            if p.isICMP, let q = event.quoted, q.proto == proto, q.sourcePort == sport, q.destinationPort == dport { return (.error, nil) }
            return (.other, nil)
        }
    }

    /// Following a probe through NAT the way the BPF programs do (bpf/trace.bpf.c, nsi_skbs/nsi_flows):
    /// an event whose headers no longer carry the probe's identity belongs to it when its skb was the
    /// probe's a moment ago and one side of the flow is unchanged (SNAT keeps the destination, DNAT the
    /// source); the rewritten flow is then the probe's too, and its reverse is the reply's.
    struct NATFollower {
        struct Flow: Hashable {
            var proto: UInt8
            var source: IPAddress, destination: IPAddress
            var sourcePort: UInt16, destinationPort: UInt16

            init?(_ p: PacketHeaders) {
                guard p.hasTransport, !p.isICMP || p.isEchoRequest || p.isEchoReply else { return nil }
                proto = p.proto
                source = p.source
                destination = p.destination
                sourcePort = p.isICMP ? p.icmpID : p.sourcePort
                destinationPort = p.isICMP ? p.icmpID : p.destinationPort
            }

            var reversed: Flow {
                var r = self
                (r.source, r.destination) = (destination, source)
                (r.sourcePort, r.destinationPort) = (destinationPort, sourcePort)
                return r
            }
        }

        private var bySkb: [UInt64: (flow: Flow, direction: TraceDirection, sequence: UInt16?)] = [:]
        private var flows: [Flow: TraceDirection] = [:]

        mutating func classify(_ event: PacketEvent, _ base: (TraceDirection, UInt16?)) -> (TraceDirection, UInt16?) {
            guard let p = event.packet, let flow = Flow(p) else {
                // An ICMP error quoting a packet of a flow NAT made.
                if base.0 == .other, let q = event.quoted, let inner = Flow(q), flows[inner] == .request {
                    return (.error, q.isEchoRequest ? q.icmpSequence : nil)
                }
                return base
            }
            var result = base
            if result.0 == .other {
                let sequence: UInt16? = p.isICMP ? p.icmpSequence : nil
                if let direction = flows[flow] {
                    result = (direction, sequence)
                } else if let was = bySkb[event.skb], was.flow.proto == flow.proto,
                          (was.flow.destination == flow.destination && was.flow.destinationPort == flow.destinationPort)
                            || (was.flow.source == flow.source && was.flow.sourcePort == flow.sourcePort) {
                    result = (was.direction, was.sequence ?? sequence)
                    flows[flow] = was.direction
                    flows[flow.reversed] = was.direction == .request ? .reply : .request
                }
            }
            if (result.0 == .request || result.0 == .reply) && event.skb != 0 {
                bySkb[event.skb] = (flow, result.0, result.1)
            }
            return result
        }
    }

    /// Route lookups only carry the flow: they go with the request when they look up its destination.
    func routeDirection(_ event: PacketEvent, request: PacketHeaders?, reply: PacketHeaders?) -> TraceDirection {
        guard let p = event.packet else { return .other }
        if let r = request, p.destination == r.destination { return .request }
        if let r = reply, p.destination == r.destination { return .reply }
        return .other
    }

    // MARK: Assembly

    public func assemble(events: [PacketEvent], probes: [SentProbe]) -> [ProbeReport] {
        let sorted = events.sorted { $0.timestamp < $1.timestamp }
        var perProbe: [[(PacketEvent, TraceDirection)]] = Array(repeating: [], count: probes.count)
        let starts = probes.map(\.sentAt)
        func window(_ t: UInt64) -> Int? {
            guard let first = starts.first, t + 1_000_000 >= first else { return nil }  // 1 ms of clock slack
            return (starts.lastIndex { $0 <= t + 1_000_000 }) ?? 0
        }
        var pendingRoutes: [PacketEvent] = []
        var follower = NATFollower()
        for event in sorted {
            let (direction, sequence) = follower.classify(event, classify(event))
            let slot: Int?
            if let sequence, let i = probes.firstIndex(where: { $0.sequence == sequence }) {
                slot = i
            } else if direction != .other {
                slot = window(event.timestamp)
            } else {
                if case .route = event.detail { pendingRoutes.append(event) }
                if event.hook == .icmpSend || event.hook == .neighbour { if let i = window(event.timestamp) { perProbe[i].append((event, .other)) } }
                continue
            }
            if let slot { perProbe[slot].append((event, direction)) }
        }
        // Route lookups: with the probe whose window they fall in, in the direction whose destination they look up.
        for event in pendingRoutes {
            guard let i = window(event.timestamp) else { continue }
            let request = perProbe[i].first { $0.1 == .request }?.0.packet
            let reply = perProbe[i].first { $0.1 == .reply }?.0.packet
            let direction = routeDirection(event, request: request, reply: reply)
            if direction != .other { perProbe[i].append((event, direction)) }
        }
        return probes.enumerated().map { i, probe in
            report(probe, perProbe[i].sorted { $0.0.timestamp < $1.0.timestamp })
        }
    }

    func report(_ probe: SentProbe, _ events: [(PacketEvent, TraceDirection)]) -> ProbeReport {
        // The answer is the reply when one was seen, else the ICMP error about the probe.
        let firstReply = events.first { $0.1 == .reply && $0.0.hook.carriesPacket }?.0
        let answerDirection: TraceDirection = firstReply == nil ? .error : .reply
        let firstAnswer = firstReply ?? events.first { $0.1 == .error && $0.0.hook.carriesPacket }?.0
        let origin = events.first { $0.1 == .request && $0.0.hook.carriesPacket }?.0.netns
        let request = mainLine(events, direction: .request, end: firstAnswer.map { .before($0.timestamp, in: $0.netns) } ?? .unanswered)
        let answer = mainLine(events, direction: answerDirection, end: origin.map { .arrival(in: $0) } ?? .unanswered)
        let copies = request.copies.union(answer.copies)

        let timeline = events.enumerated().map { i, pair in
            TimelineEntry(event: pair.0, offset: Int64(bitPattern: pair.0.timestamp &- probe.sentAt), namespace: label(pair.0.netns),
                          direction: pair.1, isCopy: copies.contains(i))
        }
        let requestHops = hops(request.events, direction: .request)
        let replyHops = hops(answer.events, direction: answerDirection)
        let discarded = discardedCopies(events, copies: copies, request: requestHops, answer: replyHops)
        let drop = requestHops.first { $0.drop != nil } ?? replyHops.first { $0.drop != nil }
        let routed = requestHops.filter(\.routed).count
        var replyRouted: Int?
        if case .reply(let ttl?, _) = probe.outcome { replyRouted = initialTTL - Int(ttl) }
        let (verdict, agrees) = judge(probe, requestHops: requestHops, replyHops: replyHops, drop: drop, routed: routed,
                                      replyRouted: replyRouted, timeline: timeline)
        return ProbeReport(sequence: probe.sequence, outcome: probe.outcome, timeline: timeline, requestHops: requestHops,
                           replyHops: replyHops, drop: drop, discardedCopies: discarded, observedRoutedHops: routed,
                           replyRoutedHops: replyRouted, verdict: verdict, agrees: agrees)
    }

    // MARK: The packet and its copies

    /// The echo reply is dropped (NO_SOCKET) after the raw socket took its copy: that is how a reply ends,
    /// not a loss.
    static func endsReply(_ reason: String, direction: TraceDirection) -> Bool {
        direction == .reply && reason == "NO_SOCKET"
    }

    /// Where in a namespace a packet died: on input from the interface it came in by when it had gone out
    /// by none, else at the interface the kernel last had it on.
    static func dropPlace(cameInBy input: String?, wentOut: Bool, at interface: String) -> DropPlace? {
        if !wentOut, let input { return .onInputFrom(input) }
        return interface.isEmpty ? nil : .at(interface)
    }

    /// Drop reasons that say "this frame was not for me": a unicast probe's copy that reached a host it
    /// was not addressed to. Never the probe's own fate while another copy went on.
    static let copyReasons: Set<String> = ["OTHERHOST"]

    /// Where one direction of a probe ends.
    enum LineEnd {
        /// The answer began at this time in this namespace: the packet went there.
        case before(UInt64, in: UInt32)
        /// The answer arrives back in the sender's namespace.
        case arrival(in: UInt32)
        case unanswered
    }

    /// The packet's way in one direction and the copies it left behind. A bridge that floods, a userspace
    /// switch reading a packet socket, a tap: each makes copies of the frame, and every copy shows at the
    /// hooks. The way of the packet itself is found backwards from where it ended (answered there,
    /// arrived, or dropped): each event's predecessor is the last earlier sighting of the same sk_buff
    /// (which survives veth crossings and routing), or, for a new sk_buff (a bridge's clone, the switch's
    /// re-sent frame), the last arrival in the same namespace it was made from. Events of the direction
    /// that are not on that way, and are not route lookups or ICMP errors of a namespace on it, belong to
    /// copies.
    func mainLine(_ events: [(PacketEvent, TraceDirection)], direction: TraceDirection, end: LineEnd)
        -> (events: [PacketEvent], copies: Set<Int>)
    {
        let indices = events.indices.filter { events[$0].1 == direction }
        let packets = indices.filter { events[$0].0.hook.carriesPacket }
        guard !packets.isEmpty else { return (indices.map { events[$0].0 }, []) }
        func event(_ i: Int) -> PacketEvent { events[i].0 }
        func isCopyDrop(_ i: Int) -> Bool { event(i).hook == .drop && Self.copyReasons.contains(dropReasons.name(event(i).dropReason)) }

        // Where it ended.
        var terminal: Int?
        switch end {
        case .before(let time, let ns):
            // The answered packet was taken by the responder, not dropped: neither a drop nor a sighting
            // of an sk_buff dropped before the answer began can be where it ended.
            let before = packets.filter { event($0).timestamp <= time }
            let dropped = Set(before.filter { event($0).hook == .drop }.map { event($0).skb })
            let alive = before.filter { !dropped.contains(event($0).skb) }
            terminal = alive.last { event($0).netns == ns } ?? before.last { event($0).netns == ns } ?? alive.last ?? before.last
        case .arrival(let ns):
            terminal = packets.last { event($0).netns == ns }
        default:
            break
        }
        if terminal == nil {
            // Unanswered: the last real drop; else where it was last seen, not counting copies dropped as
            // "not for me" (and what else their sk_buff did).
            let copySkbs = Set(packets.filter(isCopyDrop).map { event($0).skb })
            terminal = packets.last { event($0).hook == .drop && !isCopyDrop($0) }
                ?? packets.last { !copySkbs.contains(event($0).skb) || event($0).skb == 0 }
                ?? packets.last
        }
        guard let terminal else { return (indices.map { events[$0].0 }, []) }

        // Backwards from the end.
        func predecessor(_ k: Int) -> Int? {
            let e = event(packets[k])
            let earlier = packets[..<k]
            if e.skb != 0, let j = earlier.lastIndex(where: { event($0).skb == e.skb }), event(packets[j]).hook != .drop {
                return j
            }
            // A new sk_buff (or the address of a freed one, reused).
            if e.hook.isArrival {
                return earlier.lastIndex { event($0).netns != e.netns && event($0).hook.isDeparture }
            }
            return earlier.lastIndex { event($0).netns == e.netns && event($0).hook.isArrival }
                ?? earlier.lastIndex { event($0).netns == e.netns && event($0).hook != .drop }
        }
        // Each predecessor is earlier in `packets`, so the walk ends.
        var line: Set<Int> = []
        var k = packets.firstIndex(of: terminal)
        while let at = k {
            line.insert(packets[at])
            k = predecessor(at)
        }
        // After the end, in the same namespace, the same sk_buff's end (the drop that follows the ICMP error
        // the kernel sent about it, or the SYN freed after the reset).
        let last = event(terminal)
        for i in packets where i > terminal && event(i).netns == last.netns && event(i).skb == last.skb && last.skb != 0 {
            line.insert(i)
        }
        let namespaces = Set(line.map { event($0).netns })
        var kept: [PacketEvent] = []
        var copies: Set<Int> = []
        for i in indices {
            let carries = event(i).hook.carriesPacket
            if line.contains(i) || (!carries && namespaces.contains(event(i).netns)) {
                kept.append(event(i))
            } else if carries {
                copies.insert(i)
            }
        }
        return (kept, copies)
    }

    /// The drops among the copies, with where they happened and whether the packet's way passed there.
    func discardedCopies(_ events: [(PacketEvent, TraceDirection)], copies: Set<Int>, request: [ObservedHop],
                         answer: [ObservedHop]) -> [DiscardedCopy] {
        var out: [DiscardedCopy] = []
        for i in copies.sorted() where events[i].0.hook == .drop {
            let (e, direction) = events[i]
            let way = direction == .request ? request : answer
            let reason = dropReasons.name(e.dropReason)
            if Self.endsReply(reason, direction: direction) { continue }
            let onWay = way.contains { $0.namespace == e.netns }
            // The copy's own sightings in this namespace before it died: in by what, out by any?
            // (Without any, as a copy dropped "not for me" on receive: on input from where it died.)
            let sightings = events[..<i].map(\.0).filter { e.skb != 0 && $0.netns == e.netns && $0.skb == e.skb }
            let input = sightings.last { $0.hook.isArrival }?.ifname ?? (e.ifname.isEmpty ? nil : e.ifname)
            let place = Self.dropPlace(cameInBy: input, wentOut: sightings.contains { $0.hook.isDeparture }, at: e.ifname)
            out.append(DiscardedCopy(kind: onWay ? .left : .offPath, namespace: e.netns, label: label(e.netns), direction: direction,
                                     reason: reason, place: place))
        }
        return out
    }

    /// Groups one direction's events by namespace, in time order.
    func hops(_ events: [PacketEvent], direction: TraceDirection) -> [ObservedHop] {
        var hops: [ObservedHop] = []
        for event in events {
            let arrives = event.hook.isArrival
            // A packet that left a namespace and arrives in it again (a veth with both ends in one
            // namespace, as a host's own interface plugged into its bridge) starts a new visit.
            if hops.last?.namespace != event.netns || event.netns == 0 || (arrives && hops.last?.outInterface != nil) {
                hops.append(ObservedHop(namespace: event.netns, label: label(event.netns), rewrites: []))
            }
            var hop = hops.removeLast()
            if let p = event.packet, event.hook.carriesPacket {
                if hop.first == nil { hop.first = p }
                hop.last = p
            }
            switch event.hook {
            case .receive, .tcxIngress:
                if hop.inInterface == nil {
                    hop.inInterface = event.ifname
                    hop.inIndex = event.ifindex
                    hop.ttlIn = event.packet?.ttl
                } else if hop.outInterface == nil, let port = hop.inInterface,
                    let bridge = switchPorts[InterfaceKey(netns: hop.namespace, ifindex: hop.inIndex)],
                    bridge.kind == .bridge, bridge.name == event.ifname {
                    // In on a bridge port and up to the bridge itself: the namespace's IP stack got it from
                    // the bridge (where `path` says it comes in), by that port.
                    hop.inInterface = "\(event.ifname) (port \(port))"
                }
            case .transmit, .tcxEgress:
                hop.outInterface = event.ifname
                hop.outIndex = event.ifindex
                hop.ttlOut = event.packet?.ttl
            case .drop:
                // The echo reply dropped after the raw socket took its copy is how a reply ends, not a drop.
                let reason = dropReasons.name(event.dropReason)
                if !Self.endsReply(reason, direction: direction) {
                    hop.drop = reason
                    hop.dropPlace = Self.dropPlace(cameInBy: hop.inInterface, wentOut: hop.outInterface != nil, at: event.ifname)
                }
            case .routeLookup, .routeLookup6:
                // The first lookup that matched made the routing decision; later ones in the same
                // namespace are checks about the packet (rp_filter's reverse lookup, NAT asking the local
                // table whether its new source is an address of ours). With no match at all, the last
                // table tried says why.
                if case .route(let r) = event.detail, hop.route.map({ $0.error != 0 }) ?? true {
                    hop.route = r
                    hop.routeInterface = event.ifname.isEmpty ? nil : event.ifname
                }
            case .icmpSend:
                if case .icmpSent(let type, let code) = event.detail {
                    hop.icmpSent = ICMPMessage(type: type, code: code, v6: event.packet?.version == 6)
                }
            case .neighbour:
                break
            }
            hops.append(hop)
        }
        // A namespace where only a route lookup was seen is not a hop of this packet.
        hops.removeAll { $0.first == nil && $0.drop == nil && $0.icmpSent == nil }
        for i in hops.indices {
            hops[i].rewrites = rewrites(hops[i].first, hops[i].last)
            hops[i].switching = switching(hops[i])
        }
        return hops
    }

    /// A hop in on one interface and out on another with the TTL unchanged was switched, not routed (a
    /// router always decrements it): named after the bridge or switch both ports belong to.
    func switching(_ hop: ObservedHop) -> SwitchCrossing? {
        guard let inPort = hop.inInterface, let outPort = hop.outInterface, let a = hop.ttlIn, let b = hop.ttlOut, a == b else { return nil }
        let first = switchPorts[InterfaceKey(netns: hop.namespace, ifindex: hop.inIndex)]
        let second = switchPorts[InterfaceKey(netns: hop.namespace, ifindex: hop.outIndex)]
        let port = first ?? second
        return SwitchCrossing(kind: port?.kind ?? .unmanaged, name: port?.name, inPort: inPort, outPort: outPort)
    }

    /// What changed in the headers between the first and the last sighting in a namespace.
    func rewrites(_ before: PacketHeaders?, _ after: PacketHeaders?) -> [NATRewrite] {
        guard let b = before, let a = after else { return [] }
        func endpoint(_ address: IPAddress, _ port: UInt16, _ p: PacketHeaders) -> NATEndpoint {
            NATEndpoint(address: address, port: p.hasTransport && !p.isICMP ? port : nil)
        }
        var out: [NATRewrite] = []
        if b.source != a.source || (b.hasTransport && a.hasTransport && !b.isICMP && b.sourcePort != a.sourcePort) {
            out.append(NATRewrite(kind: .snat, from: endpoint(b.source, b.sourcePort, b), to: endpoint(a.source, a.sourcePort, a)))
        }
        if b.destination != a.destination || (b.hasTransport && a.hasTransport && !b.isICMP && b.destinationPort != a.destinationPort) {
            out.append(NATRewrite(kind: .dnat, from: endpoint(b.destination, b.destinationPort, b), to: endpoint(a.destination, a.destinationPort, a)))
        }
        return out
    }

    // MARK: Verdict

    func judge(_ probe: SentProbe, requestHops: [ObservedHop], replyHops: [ObservedHop], drop: ObservedHop?, routed: Int,
               replyRouted: Int?, timeline: [TimelineEntry]) -> (Verdict, Bool) {
        let predicted = expected.filter(\.forwards).count
        let counts = HopCounts(seen: routed, predicted: expected.isEmpty ? nil : predicted, byReplyTTL: replyRouted, initialTTL: initialTTL)
        // Namespaces that only switched the probe are not on `path`'s list of hops (it names their bridges).
        let observedHops = requestHops.filter { $0.switching == nil }
        let observedPath = observedHops.map(\.namespace)
        // An ICMP error the probe earned explains a drop that goes with it (TTL expired, port closed).
        if case .icmpError(let type, let code, let from, let v6) = probe.outcome {
            let what = ICMPNames.describe(type: type, code: code, v6: v6)
            let sender = requestHops.last(where: { $0.icmpSent != nil })?.label ?? from
            let timeExceeded = (type == 11 && !v6) || (type == 3 && v6)
            let portUnreachable = (type == 3 && code == 3 && !v6) || (type == 1 && code == 4 && v6)
            if timeExceeded {
                let visits = Dictionary(grouping: requestHops, by: \.namespace)
                if requestedTTL == nil, visits.values.contains(where: { $0.count > 1 }) {
                    let looping = requestHops.filter { visits[$0.namespace]!.count > 1 }
                    return (.routingLoop(between: looping.prefix(2).map(\.label), passes: looping.count, expiredIn: sender,
                                         predicted: predictedLoop), predictedLoop)
                }
                guard let ttl = requestedTTL else { return (.ttlExceeded(error: what, from: sender), false) }
                let expectedAt = expected.filter(\.forwards).dropFirst(Int(ttl) - 1).first?.label
                let agrees = expectedAt == nil || expectedAt == sender
                return (.ttlAsked(error: what, from: sender, ttl: ttl, predictedThere: agrees ? nil : expectedAt), agrees)
            }
            if portUnreachable, let last = requestHops.last, last.label == sender || expected.last?.namespace == last.namespace {
                let agrees = expected.isEmpty || (routed == predicted && expected.last?.namespace == last.namespace)
                return (.closedPort(reached: last.label, counts, error: what), agrees)
            }
            return (.icmpError(error: what, from: sender), false)
        }
        // A TCP reset from the destination: the SYN arrived (and was dropped there for want of a socket).
        if probe.outcome == .reset, let last = requestHops.last {
            let agrees = expected.isEmpty || (routed == predicted && expected.last?.namespace == last.namespace)
            return (.closedPort(reached: last.label, counts, error: nil), agrees)
        }
        // A probe that got its answer was not dropped, whatever happened to copies of it.
        if case .reply = probe.outcome {} else if let drop, let reason = drop.drop {
            if let stop = predictedStop, stop.namespace == drop.namespace {
                return (.dropped(in: drop.label, place: drop.dropPlace, reason: reason, predictedStop: stop.why, predictedNext: nil), true)
            }
            var next: String?
            if let at = expected.firstIndex(where: { $0.namespace == drop.namespace }), at < expected.count - 1 { next = expected[at + 1].label }
            return (.dropped(in: drop.label, place: drop.dropPlace, reason: reason, predictedStop: nil, predictedNext: next), false)
        }
        switch probe.outcome {
        case .notSent(let why):
            return (.notSent(why), false)
        case .icmpError:
            return (.icmpError(error: "?", from: "?"), false)  // handled above
        case .timeout:
            guard let last = requestHops.last else { return (.unseen, false) }
            guard replyHops.isEmpty else { return (.answerLost(lastSeenIn: replyHops.last!.label), false) }
            if let stop = predictedStop, stop.namespace == last.namespace {
                return (.lastSeen(in: last.label, leaving: last.outInterface, arriving: last.inInterface, predictedStop: stop.why), true)
            }
            return (.lastSeen(in: last.label, leaving: last.outInterface, arriving: last.inInterface, predictedStop: nil), false)
        case .reset:
            return (.reset, routed == predicted)
        case .reply:
            let predictedPath = expected.map(\.namespace)
            if !expected.isEmpty, let diverge = Array(zip(observedPath, predictedPath)).firstIndex(where: { $0 != $1 }) {
                return (.diverged(counts, wentThrough: observedHops[diverge].label, predicted: expected[diverge].label), false)
            }
            if counts.agree { return (.agree(counts), true) }
            if let r = replyRouted, r != routed {
                return (.wayBackDiffers(counts, back: replyHops.filter(\.routed).map(\.label)), false)
            }
            return (.differ(counts), false)
        }
    }

}
