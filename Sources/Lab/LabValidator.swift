import Netlink
import ProcNS

extension LabSpec {
    /// Everything that would make the lab fail to build, or build something other than what is written,
    /// found before anything is created; in file order, each at its position. Empty when the lab is sound.
    ///
    /// Interfaces of the host that the lab does not create (an uplink `eth0` in a NAT rule or a host route)
    /// cannot be checked here and are taken as written.
    public func problems() -> [LabProblem] {
        var validator = LabValidator(self)
        validator.run()
        return validator.problems.sorted { $0.position.precedes($1.position) }
    }
}

/// Linux's rules for interface names (`dev_valid_name` in net/core/dev.c).
public enum InterfaceNames {
    /// Why `name` cannot name a network interface, or nil if it can: 1 to 15 bytes, no '/', ':' or white
    /// space, not '.' or '..'; and no '%', which makes the kernel choose the name from a template.
    public static func validationProblem(_ name: String) -> String? {
        if name.isEmpty { return "empty name" }
        if name.utf8.count > 15 { return "longer than 15 bytes" }
        if name == "." || name == ".." { return "'\(name)' is not a name" }
        if name.contains("/") { return "contains '/'" }
        if name.contains(":") { return "contains ':'" }
        if name.utf8.contains(where: { $0 == 0x20 || (0x09...0x0d).contains($0) }) { return "contains white space" }
        if name.contains("%") { return "contains '%' (the kernel would read it as a name template)" }
        return nil
    }
}

struct LabValidator {
    let spec: LabSpec
    var problems: [LabProblem] = []
    /// The lab's namespaces by name (the first definition of each).
    let namespaceNames: Set<String>
    /// Each interface's L2 segment: the link and bridge it shares frames with, as a representative ref.
    let segments: [LabInterfaceRef: LabInterfaceRef]

    init(_ spec: LabSpec) {
        self.spec = spec
        namespaceNames = Set(spec.namespaces.compactMap { if case .namespace(let n) = $0.place { n } else { nil } })
        segments = LabValidator.segments(spec)
    }

    mutating func report(_ position: SourcePosition, _ message: String) {
        problems.append(LabProblem(position, message))
    }

    mutating func run() {
        checkNames()
        checkInterfaces()
        checkBridges()
        checkAddresses()
        for ns in spec.allNamespaces {
            checkSysctls(ns)
            checkRoutes(ns)
            checkNAT(ns)
            checkFilter(ns)
        }
        checkExpectations()
    }

    // MARK: names

    var namespaceList: String {
        spec.namespaces.isEmpty ? "none" : spec.namespaces.map(\.place.description).joined(separator: ", ")
    }

    func isDefined(_ place: LabPlace) -> Bool {
        switch place {
        case .host: true
        case .namespace(let name): namespaceNames.contains(name)
        }
    }

    mutating func requireDefined(_ place: LabPlace, at position: SourcePosition, as what: String) {
        if !isDefined(place) {
            report(position, "\(what) '\(place)' is not a namespace of the lab (namespaces: \(namespaceList); host for the host)")
        }
    }

    mutating func checkNames() {
        if let problem = NetnsNames.validationProblem(spec.name) {
            report(spec.namePosition, "invalid lab name '\(spec.name)': \(problem)")
        } else if spec.ownerMark.utf8.count > 255 {
            report(spec.namePosition, "lab name is too long for its ownership mark (at most \(255 - 14) bytes)")
        }
        var seen: [String: SourcePosition] = [:]
        for ns in spec.namespaces {
            guard case .namespace(let name) = ns.place else { continue }
            if let problem = NetnsNames.validationProblem(name) {
                report(ns.position, "invalid namespace name '\(name)': \(problem)")
            } else if name == "host" {
                report(ns.position, "'host' means the host namespace; give the lab's namespace another name")
            }
            if let first = seen[name] {
                report(ns.position, "namespace '\(name)' is defined twice (first at \(first))")
            } else {
                seen[name] = ns.position
            }
        }
    }

    // MARK: interfaces

    /// Whether `name` is an interface of `place`: true or false for a lab namespace, nil for a host
    /// interface the lab does not create (it may exist already).
    func interfaceExists(_ name: String, in place: LabPlace) -> Bool? {
        if spec.interface(LabInterfaceRef(place, name)) != nil { return true }
        if place == .host { return nil }
        return name == "lo"
    }

    func interfaceList(_ place: LabPlace) -> String {
        (["lo"] + spec.interfaces(in: place).map(\.ref.name)).joined(separator: ", ")
    }

    /// Reports a rule's or route's interface that is not in its namespace.
    mutating func requireInterface(_ name: LabName?, in place: LabPlace, as what: String) {
        guard let name, interfaceExists(name.name, in: place) == false else { return }
        report(name.position, "\(what) '\(name)' is not an interface of \(place) (its interfaces: \(interfaceList(place)))")
    }

    mutating func checkInterfaces() {
        var seen: [LabInterfaceRef: (position: SourcePosition, linkEnd: Bool)] = [:]
        let ends = spec.veths.flatMap { [$0.a, $0.b] }.map { ($0, true) }
        for (interface, isLinkEnd) in ends + spec.bridges.map({ ($0.interface, false) }) {
            let ref = interface.ref
            requireDefined(ref.place, at: interface.position, as: "namespace")
            if let problem = InterfaceNames.validationProblem(ref.name) {
                report(interface.position, "invalid interface name '\(ref.name)': \(problem)")
            } else if ref.name == "lo" {
                report(interface.position, "'lo' is the loopback interface, which every namespace has already")
            }
            if let first = seen[ref] {
                report(interface.position, first.linkEnd && isLinkEnd
                    ? "\(ref) is an end of two links (first at \(first.position))"
                    : "interface \(ref) is defined twice (first at \(first.position))")
            } else {
                seen[ref] = (interface.position, isLinkEnd)
            }
            if let mac = interface.mac {
                if mac.bytes.count != 6 {
                    report(interface.position, "MAC address \(mac) is not 6 bytes long")
                } else if mac.bytes[0] & 1 == 1 {
                    report(interface.position, "MAC address \(mac) is a multicast address; use a unicast one (first byte even, e.g. 02:…)")
                } else if mac.isZero {
                    report(interface.position, "MAC address \(mac) is all zeros")
                }
            }
            if let mtu = interface.mtu, mtu < 1280, interface.addresses.contains(where: { $0.prefix.family == .v6 }) {
                report(interface.position, "mtu \(mtu) of \(ref) is below 1280, the minimum for IPv6")
            }
        }
    }

    mutating func checkBridges() {
        var portOf: [LabInterfaceRef: (bridge: String, position: SourcePosition)] = [:]
        for bridge in spec.bridges {
            let place = bridge.interface.ref.place
            let bridgeName = bridge.interface.ref.name
            for port in bridge.ports {
                let ref = LabInterfaceRef(place, port.name)
                if port.name == bridgeName {
                    report(port.position, "bridge \(bridgeName) cannot be its own port")
                    continue
                }
                guard let interface = spec.interface(ref) else {
                    if let elsewhere = spec.interfaces.first(where: { $0.ref.name == port.name }) {
                        report(port.position, "port \(port) of bridge \(bridgeName) is in \(elsewhere.ref.place), not in \(place) (a bridge's ports are in its namespace)")
                    } else {
                        report(port.position, "port \(port) of bridge \(bridgeName) is not a link end of the lab in \(place)")
                    }
                    continue
                }
                if spec.bridges.contains(where: { $0.interface.ref == ref }) {
                    report(port.position, "bridge \(port) cannot be a port of bridge \(bridgeName)")
                } else if let first = portOf[ref] {
                    report(port.position, "\(port) is already a port of bridge \(first.bridge) (at \(first.position))")
                } else {
                    portOf[ref] = (bridgeName, port.position)
                    if let address = interface.addresses.first {
                        report(address.position, "\(ref) is a port of bridge \(bridgeName): put its address on \(bridgeName) (a bridge port's own addresses receive nothing)")
                    }
                }
            }
        }
    }

    // MARK: addresses

    /// Union-find over veth pairs and bridge ports.
    static func segments(_ spec: LabSpec) -> [LabInterfaceRef: LabInterfaceRef] {
        var parent: [LabInterfaceRef: LabInterfaceRef] = [:]
        func root(_ r: LabInterfaceRef) -> LabInterfaceRef {
            var r = r
            while let p = parent[r], p != r { r = p }
            return r
        }
        func join(_ a: LabInterfaceRef, _ b: LabInterfaceRef) {
            let (ra, rb) = (root(a), root(b))
            if ra != rb { parent[rb] = ra }
        }
        for interface in spec.interfaces { parent[interface.ref] = parent[interface.ref] ?? interface.ref }
        for veth in spec.veths { join(veth.a.ref, veth.b.ref) }
        for bridge in spec.bridges {
            for port in bridge.ports {
                let ref = LabInterfaceRef(bridge.interface.ref.place, port.name)
                if parent[ref] != nil { join(bridge.interface.ref, ref) }
            }
        }
        return Dictionary(uniqueKeysWithValues: parent.keys.map { ($0, root($0)) })
    }

    mutating func checkAddresses() {
        var onSegment: [LabInterfaceRef: [IPAddress: (ref: LabInterfaceRef, position: SourcePosition)]] = [:]
        var inPlace: [LabPlace: [(address: LabAddress, ref: LabInterfaceRef)]] = [:]
        for interface in spec.interfaces {
            let segment = segments[interface.ref] ?? interface.ref
            for address in interface.addresses {
                let ip = address.prefix.address
                if let first = onSegment[segment]?[ip] {
                    report(address.position, "address \(ip) is already on \(first.ref) (at \(first.position)), on the same link")
                    continue
                }
                onSegment[segment, default: [:]][ip] = (interface.ref, address.position)
                let p = address.prefix
                if p.family == .v4, p.length <= 30, let value = ip.v4Value {
                    let host = value & ~(p.length == 0 ? 0 : UInt32.max << (32 - UInt32(p.length)))
                    if host == 0 || host == ~(p.length == 0 ? 0 : UInt32.max << (32 - UInt32(p.length))) {
                        report(address.position, "\(p) is the \(host == 0 ? "network" : "broadcast") address of its subnet, not a host address")
                    }
                }
                // Different links of one namespace in overlapping subnets: routing between them is ambiguous.
                let full = UInt8(ip.bitWidth)
                if p.length < full && !ip.isLinkLocal {
                    for other in inPlace[interface.ref.place] ?? []
                    where (segments[other.ref] ?? other.ref) != segment && other.address.prefix.length < full
                        && other.address.prefix.overlaps(p)
                    {
                        report(address.position, "\(p) on \(interface.ref) overlaps \(other.address.prefix) on \(other.ref) (at \(other.address.position)), which is on another link")
                        break
                    }
                }
                inPlace[interface.ref.place, default: []].append((address, interface.ref))
            }
        }
    }

    // MARK: sysctls and routes

    mutating func checkSysctls(_ ns: LabNamespace) {
        var seen: [String: SourcePosition] = [:]
        for sysctl in ns.effectiveSysctls {
            let parts = sysctl.key.split(separator: ".", omittingEmptySubsequences: false)
            if parts.contains(where: \.isEmpty) || sysctl.key.contains("/") || sysctl.key.contains(" ") {
                report(sysctl.position, "invalid sysctl key '\(sysctl.key)' (dotted, like net.ipv4.conf.all.rp_filter)")
            } else if parts.first != "net" {
                report(sysctl.position, "sysctl \(sysctl.key) is not per namespace; only net.* sysctls are")
            }
            if sysctl.value.isEmpty || sysctl.value.contains("\n") {
                report(sysctl.position, "sysctl \(sysctl.key) needs a one-line value")
            }
            if let first = seen[sysctl.key] {
                report(sysctl.position, "sysctl \(sysctl.key) is set twice in \(ns.place) (first at \(first))")
            } else {
                seen[sysctl.key] = sysctl.position
            }
        }
    }

    /// The networks of `place`, or of one interface there, with the interface each is on.
    func networks(of place: LabPlace, device: String? = nil) -> [(prefix: IPPrefix, device: String)] {
        spec.interfaces(in: place).filter { device == nil || $0.ref.name == device }
            .flatMap { i in i.addresses.map { ($0.prefix, i.ref.name) } }
    }

    mutating func checkRoutes(_ ns: LabNamespace) {
        let place = ns.place
        var seen: [String: SourcePosition] = [:]
        for route in ns.routes {
            let at = route.position
            let key = "\(route.destination.network) metric \(route.metric ?? 0)"
            if let first = seen[key] {
                report(at, "a route to \(route.destination.network) with metric \(route.metric ?? 0) is already defined in \(place) (at \(first))")
            } else {
                seen[key] = at
            }
            if route.destination != route.destination.network {
                report(at, "route destination \(route.destination) has host bits set (write \(route.destination.network))")
            }
            if route.kind != .unicast {
                if route.gateway != nil || route.device != nil {
                    report(at, "a \(route.kind.rawValue) route takes no via or dev")
                }
                continue
            }
            if route.gateway == nil && route.device == nil {
                report(at, "a route needs via or dev (or a type: blackhole, unreachable, prohibit)")
                continue
            }
            if let device = route.device {
                requireInterface(LabName(device, position: at), in: place, as: "dev")
            }
            if route.onlink && route.device == nil { report(at, "onlink needs dev") }
            guard let gateway = route.gateway else { continue }
            if gateway.family != route.destination.family {
                report(at, "gateway \(gateway) is \(gateway.family == .v4 ? "IPv4" : "IPv6") but the destination \(route.destination) is not")
                continue
            }
            if gateway.isLinkLocal {
                if gateway.family == .v6 && route.device == nil { report(at, "a link-local gateway needs dev") }
                continue
            }
            if route.onlink { continue }
            // In the host, only routes through links the lab makes can be checked.
            if place == .host && (route.device.map { interfaceExists($0, in: .host) != true } ?? true) { continue }
            if networks(of: place).contains(where: { $0.prefix.address == gateway }) {
                report(at, "gateway \(gateway) is an address of \(place) itself")
                continue
            }
            let candidates = networks(of: place, device: route.device).filter { $0.prefix.family == gateway.family }
            let version = gateway.family == .v4 ? "IPv4" : "IPv6"
            if candidates.isEmpty {
                if let device = route.device {
                    if interfaceExists(device, in: place) == true {
                        report(at, "dev \(device) has no \(version) address, so gateway \(gateway) cannot be reached through it (add one, or onlink: true)")
                    }
                } else {
                    report(at, "gateway \(gateway) is on no network of \(place), which has no \(version) address; add onlink: true with dev if that is intended")
                }
            } else if !candidates.contains(where: { $0.prefix.contains(gateway) }) {
                let list = candidates.map { "\($0.prefix.network) on \($0.device)" }.joined(separator: ", ")
                report(at, "gateway \(gateway) is on no network of \(route.device.map { "dev \($0) in \(place)" } ?? "\(place)") (networks: \(list)); add onlink: true if that is intended")
            }
        }
    }

    // MARK: rules

    mutating func checkMatch(_ match: LabMatch, in place: LabPlace, at position: SourcePosition) {
        requireInterface(match.inInterface, in: place, as: "in")
        requireInterface(match.outInterface, in: place, as: "out")
        if match.sourcePort != nil || match.destinationPort != nil, match.proto?.hasPorts != true {
            report(position, "a port match needs proto: udp or tcp")
        }
        if let s = match.source, let d = match.destination, s.family != d.family {
            report(position, "src \(s) and dst \(d) are of different IP versions")
        }
        if match.proto == .icmp && [match.source, match.destination].contains(where: { $0?.family == .v6 })
            || match.proto == .icmpv6 && [match.source, match.destination].contains(where: { $0?.family == .v4 })
        {
            report(position, "proto \(match.proto!.rawValue) does not go with the addresses matched")
        }
    }

    mutating func checkNAT(_ ns: LabNamespace) {
        var firstBox: SourcePosition?
        for rule in ns.nat {
            checkMatch(rule.match, in: ns.place, at: rule.position)
            switch rule.kind {
            case .masquerade:
                break
            case .snat(let to), .dnat(let to):
                if to.port != nil && rule.match.proto?.hasPorts != true {
                    report(rule.position, "a port in 'to: \(to)' needs proto: udp or tcp")
                }
                if let family = (rule.match.source ?? rule.match.destination)?.family, family != to.address.family {
                    report(rule.position, "'to: \(to)' and the addresses matched are of different IP versions")
                }
            case .natType(let box):
                if let first = firstBox {
                    report(rule.position, "only one NAT type per namespace (first at \(first))")
                    continue
                }
                firstBox = rule.position
                checkNATBox(box, in: ns.place, at: rule.position)
            }
        }
    }

    mutating func checkNATBox(_ box: LabNATBox, in place: LabPlace, at position: SourcePosition) {
        let what = "a \(box.type) NAT"
        requireInterface(box.inside, in: place, as: "inside")
        requireInterface(box.outside, in: place, as: "outside")
        if box.inside.name == box.outside.name { report(box.outside.position, "inside and outside of \(what) are the same interface") }
        for address in [box.host, box.address].compactMap({ $0 }) where address.family != .v4 {
            report(position, "\(what) is IPv4: \(address) is not an IPv4 address")
        }
        if box.type == .symmetric {
            if box.port != nil || box.hostPort != nil {
                report(position, "\(what) maps each destination to a new port: it takes no port or host-port")
            }
        } else {
            if box.host == nil { report(position, "\(what) needs host: the inside host's address") }
            if box.port == nil { report(position, "\(what) needs port: the mapped port seen outside") }
        }
        let insideNets = networks(of: place, device: box.inside.name).filter { $0.prefix.family == .v4 }
        if let host = box.host, !insideNets.isEmpty, !insideNets.contains(where: { $0.prefix.contains(host) }) {
            report(position, "host \(host) is on no network of inside interface \(box.inside) (\(insideNets.map { $0.prefix.network.description }.joined(separator: ", ")))")
        }
        if box.host == nil && insideNets.isEmpty && interfaceExists(box.inside.name, in: place) == true {
            report(position, "inside interface \(box.inside) has no IPv4 address; give host:")
        }
        if box.address == nil && networks(of: place, device: box.outside.name).allSatisfy({ $0.prefix.family != .v4 })
            && interfaceExists(box.outside.name, in: place) != false
        {
            report(position, "outside interface \(box.outside) has no IPv4 address in the lab; give address:")
        }
    }

    mutating func checkFilter(_ ns: LabNamespace) {
        for rule in ns.filter.rules {
            checkMatch(rule.match, in: ns.place, at: rule.position)
            if rule.chain == .input, let out = rule.match.outInterface {
                report(out.position, "the input chain sees no output interface (out: \(out))")
            }
            if rule.chain == .output, let i = rule.match.inInterface {
                report(i.position, "the output chain sees no input interface (in: \(i))")
            }
        }
    }

    // MARK: expectations

    mutating func checkExpectations() {
        for expectation in spec.expectations {
            let at = expectation.position
            if let probe = expectation.probe {
                requireDefined(probe.from, at: at, as: "from")
                switch probe.to {
                case .place(let place):
                    requireDefined(place, at: at, as: "to")
                    if isDefined(place) && spec.firstGlobalAddress(of: place) == nil {
                        report(at, "to: \(place) has no global address to send to")
                    }
                case .address(let address):
                    if probe.udp != nil && probe.udp?.listener == nil && spec.place(owning: address) == nil {
                        report(at, "no namespace of the lab has \(address): say where the datagram should arrive with listen: NS[:PORT]")
                    }
                }
                if let listener = probe.udp?.listener { requireDefined(listener, at: at, as: "listen") }
            }
            if case .nat(let nat) = expectation.kind {
                requireDefined(nat.namespace, at: at, as: "ns")
                for place in [nat.inside, nat.outside].compactMap({ $0 }) { requireDefined(place, at: at, as: "namespace") }
            }
        }
    }
}
