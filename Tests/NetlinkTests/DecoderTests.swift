import Netlink
import Testing

/// The decoders against the committed fixtures (captured from the kernel; see FixtureCapture.swift for
/// the setup they came from). The expected values are the ones that setup made.
@Suite("Decoders")
struct DecoderTests {
    func decode<T>(_ fixture: String, _ decoder: (NetlinkMessage) throws(DecodeError) -> T?) throws -> [T] {
        try Fixture.load(fixture).messages().compactMap { message in try decoder(message) }
    }

    func ip(_ text: String) -> IPAddress { IPAddress(text)! }
    func prefix(_ text: String) -> IPPrefix { IPPrefix(text)! }

    @Test func everyFixtureSplitsAndEndsWithItsAnswer() throws {
        for name in Fixture.all {
            let messages = try Fixture.load(name).messages()
            #expect(messages.count >= 1, "\(name)")
            let last = try #require(messages.last)
            #expect(last.type == NLMsg.done || last.type == NLMsg.error, "\(name) ends with \(RTM.name(last.type))")
        }
    }

    @Test func vethInHost1PointsAtItsPeerInAnotherNamespace() throws {
        let links = try decode("link-dump-host1", Link.decode)
        #expect(links.map(\.name) == ["lo", "eth0"])
        let lo = links[0]
        #expect(lo.index == 1)
        #expect(lo.typeName == "loopback")
        #expect(lo.flagNames == ["LOOPBACK", "UP", "LOWER_UP"])
        #expect(lo.operStateName == "UNKNOWN")
        #expect(lo.mtu == 65536)
        #expect(lo.kind == nil)

        let eth0 = links[1]
        #expect(eth0.index == 2)
        #expect(eth0.kind == "veth")
        #expect(eth0.link == 3)
        #expect(eth0.linkNetnsID == 0)
        #expect(eth0.isLinkInOtherNamespace)
        #expect(eth0.address == MACAddress("02:00:00:00:01:10"))
        #expect(eth0.broadcast == MACAddress("ff:ff:ff:ff:ff:ff"))
        #expect(eth0.flagNames == ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"])
        #expect(eth0.operStateName == "UP")
        #expect(eth0.typeName == "ether")
        #expect(eth0.mtu == 1500)
        #expect(eth0.qdisc == "noqueue")
        #expect(eth0.groupName == "default")
        #expect(eth0.master == nil)
        let stats = try #require(eth0.statistics)
        #expect(stats.txPackets > 0 && stats.rxPackets > 0 && stats.rxBytes > stats.rxPackets)
    }

    @Test func routerLinksBridgePortsMacvlanAndVxlan() throws {
        let links = try decode("link-dump-router", Link.decode)
        #expect(links.map(\.name) == ["lo", "br0", "p1", "p2", "mv0", "vx0"])
        let state = NamespaceState(links: links)

        let br0 = try #require(state.link(named: "br0"))
        #expect(br0.index == 2)
        #expect(br0.kind == "bridge")
        #expect(br0.bridge?.stpState == 0)
        #expect(br0.address == MACAddress("02:00:00:00:00:01"))
        #expect(br0.flagNames == ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"])
        #expect(state.ports(of: br0.index).map(\.name) == ["p1", "p2"])

        let p1 = try #require(state.link(named: "p1"))
        #expect(p1.index == 3)
        #expect(p1.kind == "veth")
        #expect(p1.slaveKind == "bridge")
        #expect(p1.master == 2)
        #expect(p1.alias == "to-host1")
        #expect(p1.bridgePort?.stateName == "forwarding")
        #expect(p1.link == 2 && p1.linkNetnsID == 0)
        let p2 = try #require(state.link(named: "p2"))
        #expect(p2.mtu == 1400)
        #expect(p2.link == 2 && p2.linkNetnsID == 1)

        let mv0 = try #require(state.link(named: "mv0"))
        #expect(mv0.kind == "macvlan")
        #expect(mv0.macvlan?.modeName == "bridge")
        #expect(mv0.link == 2 && mv0.linkNetnsID == nil)
        #expect(state.flagNames(of: mv0) == ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"])

        let vx0 = try #require(state.link(named: "vx0"))
        #expect(vx0.kind == "vxlan")
        let vxlan = try #require(vx0.vxlan)
        #expect(vxlan.vni == 42)
        #expect(vxlan.remote == ip("10.0.1.99"))
        #expect(vxlan.group == nil)
        #expect(vxlan.local == ip("10.0.1.1"))
        #expect(vxlan.port == 4789)
        #expect(vxlan.link == 2)
        #expect(vx0.flagNames == ["BROADCAST", "MULTICAST"])
        #expect(vx0.operStateName == "DOWN")
    }

    @Test func mDownWhenTheParentIsDown() {
        var parent = Link(index: 2, name: "br0")
        parent.flags = LinkFlag.broadcast | LinkFlag.multicast
        var child = Link(index: 5, name: "mv0")
        child.flags = LinkFlag.broadcast | LinkFlag.multicast | LinkFlag.up
        child.link = 2
        let state = NamespaceState(links: [parent, child])
        #expect(state.flagNames(of: child) == ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP", "M-DOWN"])
        child.linkNetnsID = 0
        #expect(state.flagNames(of: child) == ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"])
    }

    @Test func routerAddresses() throws {
        let addresses = try decode("addr-dump-router", InterfaceAddress.decode)
        #expect(addresses.count == 9)
        let v4 = try #require(addresses.first { $0.prefix == prefix("10.0.1.1/24") })
        #expect(v4.family == .v4)
        #expect(v4.index == 2)
        #expect(v4.local == ip("10.0.1.1") && v4.address == ip("10.0.1.1"))
        #expect(v4.peer == nil)
        #expect(v4.broadcast == ip("10.0.1.255"))
        #expect(v4.label == "br0")
        #expect(v4.scopeName == "global")
        #expect(v4.isPermanent)
        #expect(v4.flagNames == [])
        #expect(v4.cacheInfo?.validLifetime == AddressCacheInfo.forever)

        let mv = try #require(addresses.first { $0.prefix == prefix("192.0.2.1/24") })
        #expect(mv.index == 5 && mv.broadcast == nil)

        let v6 = try #require(addresses.first { $0.prefix == prefix("2001:db8:1::1/64") })
        #expect(v6.family == .v6)
        #expect(v6.flagNames == ["nodad"])
        #expect(v6.label == nil)
        let linkLocal = addresses.filter { $0.scopeName == "link" }
        #expect(linkLocal.count == 4)
        #expect(linkLocal.allSatisfy { $0.family == .v6 && $0.prefixLength == 64 && $0.address!.isLinkLocal })
        #expect(addresses.first { $0.prefix == prefix("127.0.0.1/8") }?.scopeName == "host")
    }

    @Test func routerRoutesInEveryTable() throws {
        let routes = try decode("route-dump-router", Route.decode)
        #expect(routes.count == 26)

        let table100 = try #require(routes.first { $0.table == 100 })
        #expect(table100.isDefault && table100.family == .v4)
        #expect(table100.gateway == ip("10.0.1.10"))
        #expect(table100.outputIndex == 2)
        #expect(table100.priority == 50)
        #expect(table100.protocolName == "boot")
        #expect(table100.typeName == "unicast")
        #expect(table100.scopeName == "global")

        let connected = try #require(routes.first { $0.destination == prefix("10.0.1.0/24") })
        #expect(connected.protocolName == "kernel")
        #expect(connected.scopeName == "link")
        #expect(connected.preferredSource == ip("10.0.1.1"))
        #expect(connected.tableName == "main")

        let ecmp = try #require(routes.first { $0.destination == prefix("198.51.100.0/24") })
        #expect(ecmp.gateway == nil && ecmp.outputIndex == nil)
        #expect(ecmp.nexthops == [Nexthop(gateway: ip("10.0.1.10"), index: 2, weight: 1),
                                  Nexthop(gateway: ip("10.0.1.20"), index: 2, weight: 2)])

        let ecmp6 = try #require(routes.first { $0.destination == prefix("2001:db8:2::/64") })
        #expect(ecmp6.nexthops.map(\.gateway) == [ip("2001:db8:1::10"), ip("2001:db8:1::20")])
        #expect(ecmp6.preferenceName == "medium")

        let blackhole = try #require(routes.first { $0.destination == prefix("203.0.113.0/24") })
        #expect(blackhole.typeName == "blackhole")
        #expect(blackhole.outputIndex == nil)

        let unreachable = try #require(routes.first { $0.destination == prefix("2001:db8:dead::/48") })
        #expect(unreachable.typeName == "unreachable")

        let mtu = try #require(routes.first { $0.destination == prefix("10.0.9.0/24") })
        #expect(mtu.mtu == 1300)
        #expect(mtu.scopeName == "link")

        let local = routes.filter { $0.tableName == "local" }
        #expect(local.contains { $0.typeName == "local" && $0.destination == prefix("10.0.1.1/32") })
        #expect(local.contains { $0.typeName == "broadcast" && $0.destination == prefix("10.0.1.255/32") })
        #expect(local.contains { $0.typeName == "multicast" && $0.destination == prefix("ff00::/8") })
    }

    @Test func host1DefaultRoutesOfBothFamilies() throws {
        let routes = try decode("route-dump-host1", Route.decode)
        let defaults = routes.filter(\.isDefault)
        #expect(defaults.map(\.gateway) == [ip("10.0.1.1"), ip("2001:db8:1::1")])
        #expect(defaults.allSatisfy { $0.outputIndex == 2 && $0.tableName == "main" })
    }

    @Test func routeGetAnswer() throws {
        let routes = try decode("route-get-host1", Route.decode)
        let route = try #require(routes.first)
        #expect(routes.count == 1)
        #expect(route.destination == prefix("10.0.1.20/32"))
        #expect(route.outputIndex == 2)
        #expect(route.preferredSource == ip("10.0.1.10"))
        #expect(route.flags & RouteFlag.cloned != 0)
        #expect(route.tableName == "main")
        #expect(route.gateway == nil)
    }

    @Test func host1NeighboursFromThePings() throws {
        let neighbours = try decode("neigh-dump-host1", Neighbour.decode)
        let h2 = try #require(neighbours.first { $0.destination == ip("10.0.1.20") })
        #expect(h2.linkAddress == MACAddress("02:00:00:00:02:20"))
        #expect(h2.index == 2)
        #expect(h2.stateNames == ["REACHABLE"])
        #expect(h2.family == .v4)

        let permanent = try #require(neighbours.first { $0.destination == ip("10.0.1.99") })
        #expect(permanent.stateNames == ["PERMANENT"])
        #expect(permanent.linkAddress == MACAddress("02:00:00:00:00:99"))

        let router6 = try #require(neighbours.first { $0.destination == ip("2001:db8:1::1") })
        #expect(router6.family == .v6)
        #expect(router6.linkAddress == MACAddress("02:00:00:00:00:01"))
        #expect(neighbours.contains { $0.destination == ip("ff02::16") && $0.stateNames == ["NOARP"] })
        // The AF_UNSPEC dump holds no bridge entries, and the FDB decoder skips ARP/NDP ones.
        #expect(try decode("neigh-dump-host1", FDBEntry.decode).isEmpty)
    }

    @Test func routerNeighbourStates() throws {
        let neighbours = try decode("neigh-dump-router", Neighbour.decode)
        #expect(neighbours.count == 11)
        #expect(neighbours.contains { $0.destination == ip("10.0.1.10") && $0.index == 2 && $0.stateNames == ["DELAY"] })
        #expect(neighbours.contains { $0.destination == ip("10.0.1.10") && $0.index == 5 && $0.stateNames == ["STALE"] })
    }

    @Test func bridgeForwardingDatabase() throws {
        let entries = try decode("fdb-dump-router", FDBEntry.decode)
        #expect(entries.count == 23)
        let learned = try #require(entries.first { $0.linkAddress == MACAddress("02:00:00:00:01:10") })
        #expect(learned.index == 3)
        #expect(learned.master == 2)
        #expect(learned.stateName == "")
        #expect(learned.flagNames == [])

        let pinned = try #require(entries.first { $0.linkAddress == MACAddress("02:00:00:00:00:aa") })
        #expect(pinned.index == 3 && pinned.master == 2)
        #expect(pinned.stateName == "static")

        let own = try #require(entries.first { $0.linkAddress == MACAddress("02:00:00:00:00:11") })
        #expect(own.stateName == "permanent")

        let selfEntries = entries.filter { $0.flagNames == ["self"] }
        #expect(selfEntries.contains { $0.linkAddress == MACAddress("33:33:00:00:00:01") && $0.index == 3 })

        let vxlanDefault = try #require(entries.first { $0.index == 6 })
        #expect(vxlanDefault.linkAddress.isZero)
        #expect(vxlanDefault.destination == ip("10.0.1.99"))
        #expect(vxlanDefault.flagNames == ["self"])
        #expect(try decode("fdb-dump-router", Neighbour.decode).isEmpty)
    }

    @Test func policyRules() throws {
        let rules = try decode("rule-dump-router", Rule.decode)
        #expect(rules.count == 10)
        let marked = try #require(rules.first { $0.priority == 1000 })
        #expect(marked.family == 2)
        #expect(marked.source == prefix("10.0.1.0/24"))
        #expect(marked.destination == nil)
        #expect(marked.inputInterface == "br0")
        #expect(marked.fwmark == 0x10 && marked.fwmask == 0xff)
        #expect(marked.table == 100)
        #expect(marked.actionName == "to_tbl")

        let prohibit = try #require(rules.first { $0.priority == 1001 })
        #expect(prohibit.destination == prefix("203.0.113.0/24"))
        #expect(prohibit.actionName == "prohibit")

        let v6 = try #require(rules.first { $0.priority == 1002 })
        #expect(v6.family == 10 && v6.source == prefix("2001:db8:1::/64") && v6.table == 100)

        #expect(rules.filter { $0.family == 2 }.map(\.tableName) == ["local", "100", "0", "main", "default"])
    }

    @Test func kernelDefaultRulesAreTold() throws {
        func rule(_ family: UInt8, _ priority: UInt32, _ table: UInt32) -> Rule { Rule(family: family, priority: priority, table: table, action: 1) }
        let v4 = [rule(2, 0, 255), rule(2, 32766, 254), rule(2, 32767, 253)]
        let v6 = [rule(10, 0, 255), rule(10, 32766, 254)]
        #expect(Rule.areKernelDefaults(v4 + v6))
        #expect(Rule.areKernelDefaults(v4))  // IPv6 off
        #expect(!Rule.areKernelDefaults(v4 + v6 + [rule(2, 100, 100)]))
        #expect(!Rule.areKernelDefaults(Array(v4.dropLast()) + v6))
        var marked = rule(2, 32766, 254)
        marked.fwmark = 1
        #expect(!Rule.areKernelDefaults([v4[0], marked, v4[2]] + v6))
        // The multicast routing families' defaults (ipmr 128, ip6mr 129) are not unicast defaults.
        #expect(!Rule.areKernelDefaults(v4 + v6 + [rule(128, 32767, 254)]))
        // The router fixture's rules are not the defaults.
        #expect(!Rule.areKernelDefaults(try decode("rule-dump-router", Rule.decode)))
    }

    @Test func kernelErrorWithExtendedAck() throws {
        let messages = try Fixture.load("error-route-add").messages()
        let error = try #require(try NetlinkError.decode(messages[0], request: "RTM_NEWROUTE"))
        #expect(error.errno == 101)  // ENETUNREACH
        #expect(error.message == "Nexthop has invalid gateway")
        #expect(error.description == "RTM_NEWROUTE: Network is unreachable (Nexthop has invalid gateway)")
    }

    /// A message built with the request encoder, for attributes the fixtures' kernel does not send.
    func message(_ type: UInt16, header: [UInt8], _ attributes: (inout NetlinkRequest) -> Void) throws -> NetlinkMessage {
        var request = NetlinkRequest(type: type, name: "synthetic")
        request.append(raw: header)
        attributes(&request)
        return try #require(try NetlinkMessage.split(request.encoded(sequence: 1)[...]).first)
    }

    @Test func bridgePortFromProtinfoOfAnAFBridgeDump() throws {
        // RTM_NEWLINK of family AF_BRIDGE (`bridge link`), IFLA_PROTINFO { IFLA_BRPORT_STATE 3, COST 100 }
        let m = try message(RTM.newLink, header: [7, 0, 1, 0, 3, 0, 0, 0] + [UInt8](repeating: 0, count: 8)) {
            $0.attribute(3, string: "p1")
            $0.attribute(10, u32: 2)
            $0.beginNested(12)
            $0.attribute(1, u8: 3)
            $0.attribute(3, u32: 100)
            $0.endNested()
        }
        let link = try #require(try Link.decode(m))
        #expect(link.family == AF.bridge && link.index == 3 && link.master == 2)
        #expect(link.bridgePort?.stateName == "forwarding")
        #expect(link.bridgePort?.cost == 100)
    }

    @Test func routeViaAGatewayOfTheOtherFamily() throws {
        // 10.2.0.0/16 via inet6 fe80::1 (RTA_VIA), as RouteRequests.add encodes it
        let spec = RouteSpec(destination: prefix("10.2.0.0/16"), gateway: ip("fe80::1"), outputIndex: 3)
        let bytes = RouteRequests.add(spec).encoded(sequence: 1)
        var reply = try #require(try NetlinkMessage.split(bytes[...]).first)
        reply = NetlinkMessage(type: RTM.newRoute, flags: 0, sequence: 1, portID: 0, payload: reply.payload)
        let route = try #require(try Route.decode(reply))
        #expect(route.destination == prefix("10.2.0.0/16"))
        #expect(route.gateway == ip("fe80::1"))
        #expect(route.outputIndex == 3)
        #expect(route.scopeName == "global" && route.protocolName == "boot")
    }

    @Test func namesFollowIP() {
        #expect(RTNames.linkType(65534) == "none" && RTNames.linkType(9999) == "[9999]")
        #expect(RTNames.linkFlags(LinkFlag.up | LinkFlag.running | LinkFlag.loopback | 0x8000_0000) == ["LOOPBACK", "UP", "80000000"])
        #expect(RTNames.neighbourState(NeighbourState.stale | NeighbourState.noARP) == ["STALE", "NOARP"])
        #expect(RTNames.neighbourState(0) == ["NONE"])
        #expect(RTNames.routeProtocol(99) == "99" && RTNames.scope(200) == "site" && RTNames.table(1000) == "1000")
        var temporary = InterfaceAddress(family: .v6, index: 2, prefixLength: 64)
        temporary.flags = AddressFlag.secondary | AddressFlag.tentative
        #expect(temporary.flagNames == ["temporary", "tentative", "dynamic"])
        var secondary = InterfaceAddress(family: .v4, index: 2, prefixLength: 24)
        secondary.flags = AddressFlag.secondary | AddressFlag.permanent
        #expect(secondary.flagNames == ["secondary"])
    }
}
