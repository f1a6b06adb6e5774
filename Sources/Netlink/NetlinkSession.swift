import ProcNS

/// Everything `show` and `graph` read from one namespace, taken over one socket with one dump per
/// object type: links, addresses and routes (both families, every table), ARP/NDP neighbours, the bridge
/// forwarding database and the policy rules.
public struct NamespaceState: Sendable, Equatable {
    public var links: [Link] { didSet { reindex() } }
    /// Position of each ifindex in `links`: renderers look interfaces up by index for every route,
    /// address and neighbour, so a scan (and a copy of the large Link value) per lookup adds up.
    private var positions: [Int32: Int] = [:]
    public var addresses: [InterfaceAddress]
    public var routes: [Route]
    public var neighbours: [Neighbour]
    public var fdb: [FDBEntry]
    public var rules: [Rule]

    public init(links: [Link] = [], addresses: [InterfaceAddress] = [], routes: [Route] = [],
                neighbours: [Neighbour] = [], fdb: [FDBEntry] = [], rules: [Rule] = []) {
        self.links = links
        self.addresses = addresses
        self.routes = routes
        self.neighbours = neighbours
        self.fdb = fdb
        self.rules = rules
        reindex()
    }

    private mutating func reindex() {
        positions = Dictionary(links.enumerated().map { ($1.index, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public func link(index: Int32) -> Link? { positions[index].map { links[$0] } }
    /// The name of interface `index`, without copying its Link.
    public func name(of index: Int32) -> String? { positions[index].map { links[$0].name } }
    public func link(named name: String) -> Link? { links.first { $0.name == name } }
    public func addresses(of index: Int32) -> [InterfaceAddress] { addresses.filter { $0.index == index } }
    /// The links whose master is `index` (a bridge's ports).
    public func ports(of index: Int32) -> [Link] { links.filter { $0.master == index } }

    /// The link's flags as `ip link` prints them, with M-DOWN when its parent (IFLA_LINK in this same
    /// namespace) is down.
    public func flagNames(of link: Link) -> [String] {
        var parentDown = false
        if link.linkNetnsID == nil, let parent = link.link, parent != 0 {
            parentDown = !(positions[parent].map { links[$0].isUp } ?? false)
        }
        return RTNames.linkFlags(link.flags, parentDown: parentDown)
    }
}

/// rtnetlink over one `NetlinkSocket`, one method per `ip` verb (the pattern of apple/containerization's
/// ContainerizationNetlink), each named after the command it equals. Reads decode into `Link`, `Route` …;
/// writes wait for the kernel's acknowledgement, and a refusal is thrown as `NetlinkError` (errno and the
/// kernel's extended-ack text). Not for use from two threads at once (the socket's sequence numbers).
public final class NetlinkSession: @unchecked Sendable {
    public let socket: NetlinkSocket

    public init(socket: NetlinkSocket) { self.socket = socket }

    /// A session on a new socket in the calling thread's namespace.
    public convenience init(label: String = "host") throws {
        self.init(socket: try NetlinkSocket.open(label: label))
    }

    /// A session on a new socket inside `namespace` (the socket stays bound to it).
    public convenience init(in namespace: NamespaceHandle, label: String? = nil) throws {
        self.init(socket: try NetlinkSocket.open(in: namespace, label: label))
    }

    // MARK: Reading

    /// `ip link show`.
    public func links(statistics: Bool = true) throws -> [Link] {
        try socket.dump(LinkRequests.dump(statistics: statistics), decode: Link.decode)
    }

    /// `ip link show dev LINK`; a missing link is a `NetlinkError` with ENODEV.
    public func link(_ link: LinkReference) throws -> Link {
        guard let found = try socket.transact(LinkRequests.get(link), decode: Link.decode).first else {
            throw OperationError("", socket.label, "RTM_GETLINK \(link): no RTM_NEWLINK in the answer")
        }
        return found
    }

    /// The ifindex of a link (one RTM_GETLINK for a name, as `ip` resolves `dev NAME`).
    public func index(of link: LinkReference) throws -> Int32 {
        switch link {
        case .index(let index): return index
        case .name: return try self.link(link).index
        }
    }

    /// `ip addr show` (`ip -4`/`-6 addr show` for one family).
    public func addresses(family: IPAddress.Family? = nil) throws -> [InterfaceAddress] {
        try socket.dump(AddressRequests.dump(family: family), decode: InterfaceAddress.decode)
    }

    /// `ip route show table all` (`-4`/`-6`).
    public func routes(family: IPAddress.Family? = nil) throws -> [Route] {
        try socket.dump(RouteRequests.dump(family: family), decode: Route.decode)
    }

    /// `ip neigh show nud all` (`-4`/`-6`).
    public func neighbours(family: IPAddress.Family? = nil) throws -> [Neighbour] {
        try socket.dump(NeighbourRequests.dump(family: family), decode: Neighbour.decode)
    }

    /// `bridge fdb show [br BRIDGE]`.
    public func fdb(bridge: LinkReference? = nil) throws -> [FDBEntry] {
        let master = try bridge.map { try index(of: $0) }
        return try socket.dump(NeighbourRequests.fdbDump(master: master), decode: FDBEntry.decode)
    }

    /// `ip rule show` and `ip -6 rule show` (or one of them): the unicast policy rules, IPv4 then IPv6.
    /// An AF_UNSPEC dump also answers with the multicast routing rules (RTNL_FAMILY_IPMR 128 and
    /// RTNL_FAMILY_IP6MR 129, `ip mrule`), whose default entries read as a second "32767 default" and
    /// "32767 main" among the unicast ones; those are left out, as `ip rule` never shows them.
    public func rules(family: IPAddress.Family? = nil) throws -> [Rule] {
        try socket.dump(RuleRequests.dump(family: family), decode: Rule.decode).filter { $0.addressFamily != nil }
    }

    /// `ip route get ADDR [from SRC] [iif DEV] [oif DEV] [mark M]`: the route the kernel itself picks.
    public func routeGet(to destination: IPAddress, from source: IPAddress? = nil, inputInterface: LinkReference? = nil,
                         outputInterface: LinkReference? = nil, mark: UInt32? = nil) throws -> Route {
        let request = RouteRequests.get(to: destination, from: source, inputIndex: try inputInterface.map { try index(of: $0) },
                                        outputIndex: try outputInterface.map { try index(of: $0) }, mark: mark)
        guard let route = try socket.transact(request, decode: Route.decode).first else {
            throw OperationError("", socket.label, "\(request.name): no RTM_NEWROUTE in the answer")
        }
        return route
    }

    /// Everything at once (see `NamespaceState`): six dumps over this one socket, AF_UNSPEC where the
    /// kernel answers for both families in one dump.
    /// Link counters are left out unless `statistics` (see `LinkRequests.dump(statistics:)`).
    public func snapshot(statistics: Bool = false) throws -> NamespaceState {
        NamespaceState(links: try links(statistics: statistics), addresses: try addresses(), routes: try routes(),
                       neighbours: try neighbours(), fdb: try fdb(), rules: try rules())
    }

    // MARK: Links

    /// `ip link add NAME [netns NS] type veth peer name PEER [netns PEERNS]`. An end without a namespace is
    /// created in this session's namespace.
    public func addVeth(_ name: String, in namespace: NamespaceHandle? = nil, peer: String,
                        peerIn peerNamespace: NamespaceHandle? = nil) throws {
        try socket.execute(LinkRequests.createVeth(name: name, namespaceFD: namespace?.fd, peerName: peer,
                                                   peerNamespaceFD: peerNamespace?.fd))
    }

    /// `ip link add NAME [netns NS] type bridge [stp_state 0|1] [vlan_filtering 0|1]`.
    public func addBridge(_ name: String, in namespace: NamespaceHandle? = nil, stp: Bool? = nil, vlanFiltering: Bool? = nil) throws {
        try socket.execute(LinkRequests.createBridge(name: name, namespaceFD: namespace?.fd, stp: stp, vlanFiltering: vlanFiltering))
    }

    /// `ip link add NAME [netns NS] type dummy` (EOPNOTSUPP, "Unknown device type", on a kernel without it).
    public func addDummy(_ name: String, in namespace: NamespaceHandle? = nil) throws {
        try socket.execute(LinkRequests.createDummy(name: name, namespaceFD: namespace?.fd))
    }

    /// `ip link set dev LINK …` with several changes in one request. A new name needs the link's index,
    /// which is looked up first when the link is given by name.
    public func setLink(_ link: LinkReference, _ changes: LinkChanges) throws {
        let target: LinkReference = changes.name != nil ? .index(try index(of: link)) : link
        try socket.execute(LinkRequests.set(target, changes))
    }

    /// `ip link set dev LINK up`.
    public func setUp(_ link: LinkReference) throws { try setLink(link, LinkChanges(up: true)) }

    /// `ip link set dev LINK down`.
    public func setDown(_ link: LinkReference) throws { try setLink(link, LinkChanges(up: false)) }

    /// `ip link set dev LINK master MASTER`.
    public func setMaster(_ link: LinkReference, master: LinkReference) throws {
        try setLink(link, LinkChanges(master: try index(of: master)))
    }

    /// `ip link set dev LINK nomaster`.
    public func setNoMaster(_ link: LinkReference) throws { try setLink(link, LinkChanges(master: 0)) }

    /// `ip link set dev LINK netns NS`.
    public func moveLink(_ link: LinkReference, to namespace: NamespaceHandle) throws {
        try setLink(link, LinkChanges(namespaceFD: namespace.fd))
    }

    /// `ip link set dev LINK alias TEXT` (an empty text removes the alias).
    public func setAlias(_ link: LinkReference, _ alias: String) throws { try setLink(link, LinkChanges(alias: alias)) }

    /// `ip link set dev LINK mtu N`.
    public func setMTU(_ link: LinkReference, _ mtu: UInt32) throws { try setLink(link, LinkChanges(mtu: mtu)) }

    /// `ip link set dev LINK address MAC`.
    public func setAddress(_ link: LinkReference, _ address: MACAddress) throws {
        try setLink(link, LinkChanges(address: address))
    }

    /// `ip link set dev LINK name NEW`.
    public func rename(_ link: LinkReference, to name: String) throws { try setLink(link, LinkChanges(name: name)) }

    /// `ip link delete dev LINK`.
    public func deleteLink(_ link: LinkReference) throws { try socket.execute(LinkRequests.delete(link)) }

    // MARK: Addresses

    /// `ip addr add ADDR/LEN dev LINK [brd +|ADDR] [scope S] [label L] [nodad] [noprefixroute]`.
    public func addAddress(_ prefix: IPPrefix, dev link: LinkReference, broadcast: BroadcastAddress = .none,
                           scope: UInt8? = nil, label: String? = nil, noDAD: Bool = false, noPrefixRoute: Bool = false) throws {
        try socket.execute(AddressRequests.add(prefix, index: try index(of: link), broadcast: broadcast, scope: scope,
                                               label: label, noDAD: noDAD, noPrefixRoute: noPrefixRoute))
    }

    /// `ip addr del ADDR/LEN dev LINK`.
    public func deleteAddress(_ prefix: IPPrefix, dev link: LinkReference) throws {
        try socket.execute(AddressRequests.delete(prefix, index: try index(of: link)))
    }

    // MARK: Routes

    /// `ip route add …` as `spec` says.
    public func addRoute(_ spec: RouteSpec) throws { try socket.execute(RouteRequests.add(spec)) }

    /// `ip route del …` as `spec` says.
    public func deleteRoute(_ spec: RouteSpec) throws { try socket.execute(RouteRequests.delete(spec)) }

    /// `ip route add PREFIX|default [via GW] [dev LINK] [metric N] [table T]` (scope link when there is no
    /// gateway), or with `type` `ip route add blackhole|unreachable|prohibit PREFIX`.
    public func addRoute(_ destination: IPPrefix, via gateway: IPAddress? = nil, dev link: LinkReference? = nil,
                         metric: UInt32? = nil, table: UInt32 = 254, type: UInt8 = RouteType.unicast) throws {
        try addRoute(RouteSpec(destination: destination, gateway: gateway, outputIndex: try link.map { try index(of: $0) },
                               metric: metric, table: table, type: type))
    }

    /// `ip route del PREFIX|default [via GW] [dev LINK] [metric N] [table T]`.
    public func deleteRoute(_ destination: IPPrefix, via gateway: IPAddress? = nil, dev link: LinkReference? = nil,
                            metric: UInt32? = nil, table: UInt32 = 254, type: UInt8 = RouteType.unicast) throws {
        try deleteRoute(RouteSpec(destination: destination, gateway: gateway, outputIndex: try link.map { try index(of: $0) },
                                  metric: metric, table: table, type: type))
    }

    // MARK: Neighbours

    /// `ip neigh add ADDR lladdr MAC dev LINK nud permanent`.
    public func addNeighbour(_ address: IPAddress, lladdr: MACAddress, dev link: LinkReference) throws {
        try socket.execute(NeighbourRequests.addPermanent(address, linkAddress: lladdr, index: try index(of: link)))
    }

    /// `ip neigh del ADDR dev LINK`.
    public func deleteNeighbour(_ address: IPAddress, dev link: LinkReference) throws {
        try socket.execute(NeighbourRequests.delete(address, index: try index(of: link)))
    }
}
