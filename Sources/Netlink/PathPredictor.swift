/// One namespace on a predicted path.
public struct PathHop: Sendable, Equatable {
    /// The namespace (an index into the caller's list, as in `Wiring`).
    public var namespace: Int
    /// Where the packet came in (nil at the origin).
    public var inInterface: String?
    /// Where it leaves (nil where it is delivered or dropped).
    public var outInterface: String?
    /// The route the lookup chose, as `ip route` prints it, with its table.
    public var route: String?
    /// The address the packet is sent to on the out interface (the gateway, or the destination).
    public var nextHop: IPAddress?
    /// The neighbour entry for `nextHop`: "22:6f:32:0d:59:17 REACHABLE", or nil when there is none yet.
    public var neighbour: String?
    /// Whether this namespace routes the packet on (neither the origin nor where it is delivered).
    public var forwards: Bool
    /// Bridges and switches crossed after leaving this namespace, in order.
    public var switches: [SwitchHop]

    public init(namespace: Int, inInterface: String? = nil) {
        self.namespace = namespace
        self.inInterface = inInterface
        forwards = false
        switches = []
    }
}

/// A bridge or switch a predicted path crosses at layer 2 between two namespaces.
public struct SwitchHop: Sendable, Equatable {
    public enum Kind: String, Sendable { case bridge, openVSwitch = "openvswitch", unmanaged }
    public var kind: Kind
    /// The bridge's (or Open vSwitch bridge's) name; nil for an unmanaged switch.
    public var name: String?
    /// The namespace the bridge or switch lives in.
    public var namespace: Int
    /// The port the frame leaves by.
    public var outPort: String
    /// How that port was chosen: the bridge's FDB, a flood (the port that leads to the next hop's
    /// owner), or the MAC the sender's neighbour entry holds.
    public var how: String
    /// Every port of an unmanaged switch (nothing else names it).
    public var ports: [String]
}

/// How a predicted path ends.
public enum PathEnd: Sendable, Equatable {
    /// The destination is an address of this namespace: delivered there.
    case delivered(namespace: Int)
    /// No route matches (the kernel would answer ENETUNREACH, or send "net unreachable" when forwarding).
    case noRoute(namespace: Int)
    /// A blackhole, unreachable or prohibit route (or rule) ends it.
    case rejected(namespace: Int, kind: String, route: String)
    /// The namespace would have to forward, and forwarding is off there.
    case forwardingOff(namespace: Int, key: String)
    /// The out interface is down.
    case linkDown(namespace: Int, interface: String)
    /// The next hop (a gateway, or the destination of a connected route) is no address of any namespace on
    /// the out interface's link: ARP/ND for it gets no answer, so nothing is sent.
    case nextHopNotFound(namespace: Int, nextHop: IPAddress, interface: String)
    /// The packet leaves the namespaces nsinspect can see (a physical link, a tunnel, an unresolved peer).
    case leaves(namespace: Int, interface: String, why: String)
    /// The same namespace is entered through the same interface twice.
    case loop(namespace: Int)

    public var namespace: Int {
        switch self {
        case .delivered(let n), .noRoute(let n), .rejected(let n, _, _), .forwardingOff(let n, _), .linkDown(let n, _),
             .nextHopNotFound(let n, _, _), .leaves(let n, _, _), .loop(let n): n
        }
    }
}

/// The path the routing tables predict, without sending anything.
public struct PathPrediction: Sendable, Equatable {
    public var destination: IPAddress
    public var source: IPAddress?
    public var hops: [PathHop]
    public var end: PathEnd
    /// Things worth knowing that do not stop the packet (a missing neighbour entry, an ambiguous bridge).
    public var notes: [String]

    /// Namespaces that route the packet on: what the TTL of a reply counts.
    public var routedHops: Int { hops.filter(\.forwards).count }
    public var delivered: Bool { if case .delivered = end { true } else { false } }
}

/// Walks the routing tables from namespace to namespace: policy rules and longest-prefix match in each
/// namespace, the egress interface, across veth pairs and through bridges (bridge FDB, else the port
/// behind which the next hop lives) into the next namespace, checking that every namespace that routes
/// has forwarding on, until the destination is local. Pure: namespaces' state comes from closures, so it
/// is tested with made-up tables and used with live ones.
public struct PathPredictor {
    public let wiring: Wiring
    /// The state of namespace `i` (links, addresses, routes, neighbours, fdb, rules), nil if unknown.
    public let state: (Int) -> NamespaceState?
    /// Whether namespace `i` forwards packets of a family (its ip_forward / conf.all.forwarding).
    public let forwarding: (Int, IPAddress.Family) -> Bool

    public init(wiring: Wiring, state: @escaping (Int) -> NamespaceState?, forwarding: @escaping (Int, IPAddress.Family) -> Bool) {
        self.wiring = wiring
        self.state = state
        self.forwarding = forwarding
    }

    /// The route lookup's result in one namespace.
    enum Lookup {
        case route(Route, table: UInt32)
        case local
        case rejected(kind: String, what: String)
        case none
    }

    public func predict(from origin: Int, to destination: IPAddress, maxHops: Int = 64) -> PathPrediction {
        var hops: [PathHop] = []
        var notes: [String] = []
        var seen = Set<String>()
        var current = origin
        var inInterface: String? = nil
        var source: IPAddress? = nil
        func finish(_ end: PathEnd) -> PathPrediction {
            PathPrediction(destination: destination, source: source, hops: hops, end: end, notes: notes)
        }
        for _ in 0..<maxHops {
            guard seen.insert("\(current)/\(inInterface ?? "")").inserted else { return finish(.loop(namespace: current)) }
            var hop = PathHop(namespace: current, inInterface: inInterface)
            guard let ns = state(current) else {
                hops.append(hop)
                return finish(.leaves(namespace: current, interface: inInterface ?? "?", why: "its tables could not be read"))
            }
            let lookup = self.lookup(ns, destination: destination, source: source, inputInterface: inInterface)
            switch lookup {
            case .local:
                hops.append(hop)
                return finish(.delivered(namespace: current))
            case .none:
                hops.append(hop)
                return finish(.noRoute(namespace: current))
            case .rejected(let kind, let what):
                hop.route = what
                hops.append(hop)
                return finish(.rejected(namespace: current, kind: kind, route: what))
            case .route(let route, let table):
                if inInterface != nil {
                    hop.forwards = true
                    if !forwarding(current, destination.family) {
                        hop.route = describe(route, table: table, in: ns)
                        hops.append(hop)
                        return finish(.forwardingOff(namespace: current, key: destination.family == .v4 ? "net.ipv4.ip_forward" : "net.ipv6.conf.all.forwarding"))
                    }
                }
                let outIndex = route.outputIndex ?? route.nexthops.first?.index
                let gateway = route.gateway ?? route.nexthops.first?.gateway
                if route.nexthops.count > 1 { notes.append("\(describe(route, table: table, in: ns)) has \(route.nexthops.count) nexthops; the first is followed") }
                hop.route = describe(route, table: table, in: ns)
                let nextHop = gateway ?? destination
                hop.nextHop = nextHop
                guard let outIndex, let link = ns.link(index: outIndex) else {
                    hops.append(hop)
                    return finish(.noRoute(namespace: current))
                }
                hop.outInterface = link.name
                if source == nil { source = route.preferredSource ?? preferredSource(ns, link: link, family: destination.family) }
                if let entry = ns.neighbours.first(where: { $0.index == outIndex && $0.destination == nextHop }) {
                    hop.neighbour = [entry.linkAddress?.description, entry.stateNames.joined(separator: ",")].compactMap { $0 }.joined(separator: " ")
                }
                guard link.isUp else {
                    hops.append(hop)
                    return finish(.linkDown(namespace: current, interface: link.name))
                }
                // Across the link into the next namespace.
                let neighbour = ns.neighbours.first(where: { $0.index == outIndex && $0.destination == nextHop })
                switch cross(from: current, link: link, nextHop: nextHop, neighbour: neighbour) {
                case .next(let ns2, let ingress, let switches):
                    hop.switches = switches
                    hops.append(hop)
                    // The frame is only sent once ARP/ND resolves the next hop (the gateway, or for a connected
                    // route the destination itself), and only the namespace owning that address answers. A
                    // namespace that merely sits on the link is not entered: it would neither answer nor, if it
                    // got the frame, accept it. (A connected route to an address nobody has used to be followed
                    // into the peer, which was then blamed for not forwarding.) A resolved neighbour entry
                    // pointing at the peer's MAC (static, or answered by proxy ARP) does send it there.
                    if let s2 = state(ns2), !owns(s2, nextHop), !resolves(neighbour, to: ingress, in: s2) {
                        return finish(.nextHopNotFound(namespace: current, nextHop: nextHop, interface: link.name))
                    }
                    current = ns2
                    inInterface = ingress
                case .leaves(let why):
                    hops.append(hop)
                    return finish(.leaves(namespace: current, interface: link.name, why: why))
                }
            }
        }
        return finish(.loop(namespace: current))
    }

    // MARK: Lookup

    /// Policy rules in priority order, then longest prefix match in the table a rule selects.
    func lookup(_ ns: NamespaceState, destination: IPAddress, source: IPAddress?, inputInterface: String?) -> Lookup {
        let family: UInt8 = destination.family == .v4 ? 2 : 10
        var rules = ns.rules.filter { $0.family == family }.sorted { $0.priority < $1.priority }
        if rules.isEmpty {
            rules = [Rule(family: family, priority: 0, table: 255, action: 1), Rule(family: family, priority: 32766, table: 254, action: 1),
                     Rule(family: family, priority: 32767, table: 253, action: 1)]
        }
        var index = 0
        while index < rules.count {
            let rule = rules[index]
            index += 1
            guard ruleMatches(rule, destination: destination, source: source, inputInterface: inputInterface) else { continue }
            switch rule.action {
            case 1:  // to_tbl
                if let found = longestMatch(ns, table: rule.table, destination: destination) {
                    switch found.type {
                    case RouteType.local, RouteType.broadcast: return .local
                    case RouteType.blackhole, RouteType.unreachable, RouteType.prohibit:
                        return .rejected(kind: RTNames.routeType(found.type), what: describe(found, table: rule.table, in: ns))
                    case RouteType.throw: continue
                    default: return .route(found, table: rule.table)
                    }
                }
            case 2:  // goto
                if let target = rule.gotoTarget, let next = rules.firstIndex(where: { $0.priority >= target }) { index = next }
            case 3: continue  // nop
            case 6, 7, 8:
                return .rejected(kind: RTNames.routeType(rule.action), what: "rule \(rule.priority) (\(RTNames.routeType(rule.action)))")
            default: continue
            }
        }
        return owns(ns, destination) ? .local : .none
    }

    func ruleMatches(_ rule: Rule, destination: IPAddress, source: IPAddress?, inputInterface: String?) -> Bool {
        var matches = true
        if let src = rule.source, src.length > 0 { matches = matches && (source.map(src.contains) ?? false) }
        if let dst = rule.destination, dst.length > 0 { matches = matches && dst.contains(destination) }
        // Locally generated packets have input interface lo for rule matching.
        if let iif = rule.inputInterface { matches = matches && iif == (inputInterface ?? "lo") }
        if let mark = rule.fwmark, mark & (rule.fwmask ?? 0xffff_ffff) != 0 { matches = false }
        return rule.isInverted ? !matches : matches
    }

    func longestMatch(_ ns: NamespaceState, table: UInt32, destination: IPAddress) -> Route? {
        var best: Route?
        for route in ns.routes where route.table == table && route.family == destination.family && route.destination.contains(destination) {
            guard let current = best else { best = route; continue }
            if route.destination.length > current.destination.length
                || (route.destination.length == current.destination.length && (route.priority ?? 0) < (current.priority ?? 0)) {
                best = route
            }
        }
        return best
    }

    /// Whether `address` is one of the namespace's own addresses.
    func owns(_ ns: NamespaceState, _ address: IPAddress) -> Bool {
        ns.addresses.contains { ($0.local ?? $0.address) == address }
    }

    /// Whether a neighbour entry has a link-layer address that frames can be sent to (not INCOMPLETE or
    /// FAILED) and it is the MAC of interface `ingress` of the namespace behind the link.
    func resolves(_ neighbour: Neighbour?, to ingress: String, in ns: NamespaceState) -> Bool {
        guard let neighbour, let mac = neighbour.linkAddress,
            neighbour.state & (NeighbourState.incomplete | NeighbourState.failed) == 0
        else { return false }
        return ns.link(named: ingress)?.address == mac
    }

    func preferredSource(_ ns: NamespaceState, link: Link, family: IPAddress.Family) -> IPAddress? {
        ns.addresses(of: link.index).first { $0.family == family && $0.scope == 0 }?.local
    }

    func describe(_ route: Route, table: UInt32, in ns: NamespaceState) -> String {
        var words: [String] = route.type == RouteType.unicast ? [] : [RTNames.routeType(route.type)]
        words.append(route.destination.length == 0 ? "default" : route.destination.description)
        if let gateway = route.gateway ?? route.nexthops.first?.gateway { words += ["via", gateway.description] }
        if let dev = (route.outputIndex ?? route.nexthops.first?.index).flatMap(ns.name(of:)) { words += ["dev", dev] }
        if table != 254 { words += ["table", RTNames.table(table)] }
        return words.joined(separator: " ")
    }

    // MARK: Crossing links

    enum Crossing {
        case next(namespace: Int, ingress: String, switches: [SwitchHop])
        case leaves(String)
    }

    func cross(from ns: Int, link: Link, nextHop: IPAddress, neighbour: Neighbour?) -> Crossing {
        let end = LinkEnd(namespace: ns, index: link.index, name: link.name)
        let mac = neighbour?.linkAddress
        switch link.kind {
        case "veth":
            guard let peer = wiring.peer(of: end) else { return .leaves("the other end of \(link.name) is in a namespace nsinspect cannot see") }
            return arrive(at: peer, nextHop: nextHop, mac: mac, depth: 0)
        case "bridge":
            guard let bridge = wiring.bridges.first(where: { $0.bridge == end }) else { return .leaves("bridge \(link.name) has no ports") }
            return throughBridge(bridge, from: nil, nextHop: nextHop, mac: mac, depth: 0)
        default:
            let kind = link.kind ?? (link.typeName == "loopback" ? "loopback" : "a physical or unknown")
            return .leaves("\(link.name) is \(kind == "loopback" ? "the loopback" : "a \(kind)") link; nsinspect follows veths and bridges")
        }
    }

    /// A frame arrives on interface `end`: a port of a bridge or switch carries it on, anything else is
    /// the next namespace's ingress.
    func arrive(at end: LinkEnd, nextHop: IPAddress, mac: MACAddress?, depth: Int) -> Crossing {
        if let bridge = wiring.bridge(withPort: end) {
            return throughBridge(bridge, from: end, nextHop: nextHop, mac: mac, depth: depth)
        }
        if let sw = wiring.switch(withPort: end) {
            return throughSwitch(sw, from: end, nextHop: nextHop, mac: mac, depth: depth)
        }
        return .next(namespace: end.namespace, ingress: end.name, switches: [])
    }

    /// Out of a bridge or switch by `port`, on to whatever is behind it; a further bridge or switch that
    /// leads nowhere leaves the frame at the namespace of the port's peer.
    func leave(by port: LinkEnd, note: SwitchHop, nextHop: IPAddress, mac: MACAddress?, depth: Int) -> Crossing {
        guard let peer = wiring.peer(of: port) else { return .leaves("port \(port.name) leads nowhere nsinspect can see") }
        if case .next(let n, let i, let further) = arrive(at: peer, nextHop: nextHop, mac: mac, depth: depth + 1) {
            return .next(namespace: n, ingress: i, switches: [note] + further)
        }
        return .next(namespace: peer.namespace, ingress: peer.name, switches: [note])
    }

    /// Whether a frame for `nextHop` (to `mac`, when the sender's neighbour entry holds one) reaches the
    /// namespace that owns it through `port` of a bridge or switch: the port's peer has that MAC or
    /// address, or is itself a port of a bridge or switch one of whose other ports leads there.
    func leads(_ port: LinkEnd, to nextHop: IPAddress, mac: MACAddress?, visited: inout Set<LinkEnd>) -> Bool {
        guard visited.insert(port).inserted, let peer = wiring.peer(of: port) else { return false }
        if let s = state(peer.namespace) {
            if let mac { if s.link(index: peer.index)?.address == mac { return true } } else if owns(s, nextHop) { return true }
        }
        let others: [LinkEnd]
        if let bridge = wiring.bridge(withPort: peer) {
            others = bridge.ports.filter { $0 != peer }
        } else if let sw = wiring.switch(withPort: peer) {
            others = sw.ports.filter { $0 != peer }
        } else {
            return false
        }
        visited.insert(peer)
        for other in others where leads(other, to: nextHop, mac: mac, visited: &visited) { return true }
        return false
    }

    /// A frame enters `bridge` (from port `ingress`, or from the bridge's own namespace): the FDB says which
    /// port has the next hop's MAC; without an entry the bridge floods, and the port that leads to the
    /// namespace owning the next hop is the one that matters. The bridge's own address ends it there.
    func throughBridge(_ bridge: Wiring.Bridge, from ingress: LinkEnd?, nextHop: IPAddress, mac: MACAddress?, depth: Int) -> Crossing {
        let ns = bridge.bridge.namespace
        guard depth < 8 else { return .leaves("more than 8 bridges in a row") }
        if let state = state(ns), owns(state, nextHop), state.addresses.contains(where: { $0.index == bridge.bridge.index && $0.local == nextHop }) {
            return .next(namespace: ns, ingress: bridge.bridge.name, switches: [])
        }
        let ports = bridge.ports.filter { $0 != ingress }
        var chosen: LinkEnd?
        var how = "flood"
        if let mac, let state = state(ns),
            let entry = state.fdb.first(where: { $0.linkAddress == mac && $0.master == bridge.bridge.index }),
            let port = ports.first(where: { $0.index == entry.index }) {
            chosen = port
            how = "FDB"
        } else {
            var visited: Set<LinkEnd> = ingress.map { [$0] } ?? []
            chosen = ports.first { leads($0, to: nextHop, mac: nil, visited: &visited) }
        }
        guard let port = chosen else { return .leaves("no port of bridge \(bridge.bridge.name) leads to \(nextHop)") }
        let note = SwitchHop(kind: .bridge, name: bridge.bridge.name, namespace: ns, outPort: port.name, how: how, ports: [])
        return leave(by: port, note: note, nextHop: nextHop, mac: mac, depth: depth)
    }

    /// A frame enters a switch the kernel's bridge does not run (Open vSwitch, or something in user space
    /// with packet sockets): nothing here has its forwarding table, so the port is the one that leads to
    /// the MAC the sender resolved the next hop to, or else to the namespace that owns the next hop.
    func throughSwitch(_ sw: Wiring.Switch, from ingress: LinkEnd, nextHop: IPAddress, mac: MACAddress?, depth: Int) -> Crossing {
        guard depth < 8 else { return .leaves("more than 8 bridges or switches in a row") }
        let ports = sw.ports.filter { $0 != ingress }
        var chosen: LinkEnd?
        var how = "neighbour's MAC"
        if let mac {
            var visited: Set<LinkEnd> = [ingress]
            chosen = ports.first { leads($0, to: nextHop, mac: mac, visited: &visited) }
        }
        if chosen == nil {
            how = "owner of \(nextHop)"
            var visited: Set<LinkEnd> = [ingress]
            chosen = ports.first { leads($0, to: nextHop, mac: nil, visited: &visited) }
        }
        let kind: SwitchHop.Kind = sw.kind == .openVSwitch ? .openVSwitch : .unmanaged
        guard let port = chosen else {
            return .leaves("no port of \(kind == .unmanaged ? "the unknown switch at \(ingress.name)" : "Open vSwitch \(sw.name ?? "")") leads to \(nextHop)")
        }
        let note = SwitchHop(kind: kind, name: sw.name, namespace: sw.namespace, outPort: port.name, how: how, ports: sw.ports.map(\.name))
        return leave(by: port, note: note, nextHop: nextHop, mac: mac, depth: depth)
    }
}
