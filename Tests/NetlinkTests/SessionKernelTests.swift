#if canImport(Glibc)
import Glibc
#endif
import JSONKit
import Netlink
import ProcNS
import Testing

/// Two throwaway namespaces built over `NetlinkSession` and read back, then compared with what
/// `ip -n NS -j …` prints for the same namespace. Names carry a random prefix; the namespaces' names are
/// forgotten in a `defer`, so everything goes when the test ends, failed or not, and the test checks
/// that nothing with its prefix is left in /var/run/netns or in its own namespace.
@Suite("Session on the kernel", .serialized)
struct SessionKernelTests {
    /// A: a bridge `P-br` with port `P-a0`, addresses, routes, a permanent neighbour and a rule.
    /// B: `P-b0` (the peer of `P-a0`) and `P-a2` (moved over from A), with a default route via A.
    final class Lab {
        let prefix: String
        let a: TestNamespace
        let b: TestNamespace
        let sa: NetlinkSession
        let sb: NetlinkSession

        var br: String { prefix + "-br" }
        var a0: String { prefix + "-a0" }
        var a1: String { prefix + "-a1" }
        var a2: String { prefix + "-a2" }
        var b0: String { prefix + "-b0" }

        init(prefix: String) throws {
            self.prefix = prefix
            a = try TestNamespace(prefix + "-a")
            do {
                b = try TestNamespace(prefix + "-b")
            } catch {
                a.remove()
                throw error
            }
            do {
                sa = try a.session()
                sb = try b.session()
            } catch {
                a.remove()
                b.remove()
                throw error
            }
        }

        func remove() {
            a.remove()
            b.remove()
        }

        func build() throws {
            // No IPv6 duplicate address detection: link-local addresses would otherwise turn from
            // tentative to valid about a second in, maybe between our read and ip's.
            for ns in [a, b] {
                try run(["sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"],
                        in: ns.handle)
            }
            try sa.addBridge(br, stp: false)
            // From a socket in this test's own namespace, both ends placed elsewhere by fd.
            try NetlinkSession(label: "self").addVeth(a0, in: a.handle, peer: b0, peerIn: b.handle)
            try sa.addVeth(a1, peer: a2)
            try sa.moveLink(.name(a2), to: b.handle)
            try sa.setMaster(.name(a0), master: .name(br))
            try sa.setAlias(.name(a0), "uplink to b")
            try sa.setMTU(.name(a1), 1400)
            try sa.setAddress(.name(a1), MACAddress("02:00:00:00:0a:01")!)
            for link in ["lo", br, a0, a1] { try sa.setUp(.name(link)) }
            for link in ["lo", b0, a2] { try sb.setUp(.name(link)) }

            try sa.addAddress(IPPrefix("10.50.0.1/24")!, dev: .name(br), broadcast: .computed)
            try sa.addAddress(IPPrefix("10.50.1.1/24")!, dev: .name(br), label: br + ":1")
            try sa.addAddress(IPPrefix("2001:db8:50::1/64")!, dev: .name(br), noDAD: true)
            try sa.addAddress(IPPrefix("2001:db8:51::1/64")!, dev: .name(br), noDAD: true, noPrefixRoute: true)
            try sb.addAddress(IPPrefix("10.50.0.2/24")!, dev: .name(b0))
            try sb.addAddress(IPPrefix("2001:db8:50::2/64")!, dev: .name(b0), noDAD: true)

            try sb.addRoute(.any(.v4), via: IPAddress("10.50.0.1"))
            try sb.addRoute(.any(.v6), via: IPAddress("2001:db8:50::1"))
            try sa.addRoute(IPPrefix("10.60.0.0/16")!, via: IPAddress("10.50.0.2"), metric: 10)
            try sa.addRoute(IPPrefix("10.61.0.0/16")!, dev: .name(br))
            try sa.addRoute(IPPrefix("10.62.0.0/16")!, type: RouteType.blackhole)
            try sa.addRoute(IPPrefix("10.63.0.0/16")!, type: RouteType.unreachable)
            try sa.addRoute(IPPrefix("10.64.0.0/16")!, type: RouteType.prohibit)
            try sa.addRoute(IPPrefix("2001:db8:60::/48")!, via: IPAddress("2001:db8:50::2"))
            try sa.addRoute(.any(.v4), via: IPAddress("10.50.0.2"), table: 200)
            try sa.addRoute(.any(.v4), via: IPAddress("10.50.0.2"), table: 1000)
            try sa.addRoute(RouteSpec(destination: IPPrefix("10.65.0.0/16")!, outputIndex: try sa.index(of: .name(br)), mtu: 1300))
            try sa.addNeighbour(IPAddress("10.50.0.99")!, lladdr: MACAddress("02:00:00:00:00:99")!, dev: .name(br))
            try run(["ip", "-n", a.name, "rule", "add", "from", "10.50.0.0/24", "fwmark", "0x10/0xff", "lookup", "200",
                     "priority", "100"])
            try run(["ping", "-c", "1", "-W", "2", "10.50.0.1"], in: b.handle)
            try run(["ping", "-6", "-c", "1", "-W", "2", "2001:db8:50::1"], in: b.handle)
        }
    }

    /// Runs `body` with a built lab and removes it afterwards, then checks nothing is left.
    func withLab(_ body: (Lab) throws -> Void) throws {
        try requireRoot()
        let prefix = "nl" + String(UInt32.random(in: 0x10_0000...0xff_ffff), radix: 16)
        defer {
            #expect(TestNamespace.leftovers(prefix).isEmpty, "namespace names with prefix \(prefix) left behind")
            #expect((try? hostLinks(prefix)) == [], "links with prefix \(prefix) left in the test's namespace")
        }
        let lab = try Lab(prefix: prefix)
        defer { lab.remove() }
        try lab.build()
        try body(lab)
    }

    // MARK: Comparisons with ip -j

    @Test func linksMatchIP() throws {
        try withLab { lab in
            for (session, ns) in [(lab.sa, lab.a), (lab.sb, lab.b)] {
                let state = try session.snapshot()
                let ip = try ipJSON(["-n", ns.name, "-d", "link", "show"])
                #expect(ip.count == state.links.count)
                for entry in ip {
                    let index = try #require(entry["ifindex"]?.intValue)
                    let link = try #require(state.link(index: Int32(index)), "ifindex \(index) of \(ns.name)")
                    let what = "\(ns.name) \(link.name)"
                    #expect(entry["ifname"]?.stringValue == link.name, "\(what)")
                    #expect(entry["flags"] == .array(state.flagNames(of: link).map { .string($0) }), "\(what)")
                    #expect(entry["mtu"]?.intValue == link.mtu.map(Int64.init), "\(what)")
                    #expect(entry["qdisc"]?.stringValue == link.qdisc, "\(what)")
                    #expect(entry["operstate"]?.stringValue == link.operStateName, "\(what)")
                    #expect(entry["group"]?.stringValue == link.groupName, "\(what)")
                    #expect(entry["txqlen"]?.intValue == link.txQueueLength.map(Int64.init), "\(what)")
                    #expect(entry["link_type"]?.stringValue == link.typeName, "\(what)")
                    #expect(entry["address"]?.stringValue == link.address?.description, "\(what)")
                    #expect(entry["broadcast"]?.stringValue == link.broadcast?.description, "\(what)")
                    #expect(entry["master"]?.stringValue == link.master.flatMap { state.link(index: $0)?.name }, "\(what)")
                    #expect(entry["ifalias"]?.stringValue == link.alias, "\(what)")
                    #expect(entry["link_netnsid"]?.intValue == link.linkNetnsID.map(Int64.init), "\(what)")
                    #expect(entry["promiscuity"]?.intValue == link.promiscuity.map(Int64.init), "\(what)")
                    #expect(entry["min_mtu"]?.intValue == link.minMTU.map(Int64.init), "\(what)")
                    #expect(entry["max_mtu"]?.intValue == link.maxMTU.map(Int64.init), "\(what)")
                    if link.linkNetnsID != nil {
                        #expect(entry["link_index"]?.intValue == link.link.map(Int64.init), "\(what)")
                    } else if let parent = link.link {
                        #expect(entry["link"]?.stringValue == state.link(index: parent)?.name, "\(what)")
                    }
                    let info = entry["linkinfo"]
                    #expect(info?["info_kind"]?.stringValue == link.kind, "\(what)")
                    #expect(info?["info_slave_kind"]?.stringValue == link.slaveKind, "\(what)")
                    #expect(info?["info_slave_data"]?["state"]?.stringValue == link.bridgePort?.stateName, "\(what)")
                    if link.kind == "bridge" {
                        #expect(info?["info_data"]?["stp_state"]?.intValue == link.bridge?.stpState.map(Int64.init), "\(what)")
                    }
                }
            }
            let links = try lab.sa.links()
            #expect(links.first { $0.name == lab.a0 }?.alias == "uplink to b")
            #expect(links.first { $0.name == lab.a1 }?.mtu == 1400)
            #expect(links.first { $0.name == lab.a1 }?.address == MACAddress("02:00:00:00:0a:01"))
            #expect(!links.contains { $0.name == lab.a2 })
            let moved = try #require(try lab.sb.links().first { $0.name == lab.a2 })
            #expect(moved.kind == "veth" && moved.linkNetnsID != nil)
        }
    }

    @Test func addressesMatchIP() throws {
        try withLab { lab in
            for (session, ns) in [(lab.sa, lab.a), (lab.sb, lab.b)] {
                let links = try session.links()
                let addresses = try session.addresses()
                var count = 0
                for link in try ipJSON(["-n", ns.name, "addr", "show"]) {
                    let index = try #require(link["ifindex"]?.intValue)
                    for info in link["addr_info"]?.arrayValue ?? [] {
                        count += 1
                        let local = try #require(info["local"]?.stringValue)
                        let entry = try #require(addresses.first { $0.index == index && $0.prefix?.address.description == local },
                                                 "\(local) of \(ns.name)")
                        let what = "\(ns.name) \(local)"
                        #expect(info["family"]?.stringValue == (entry.family == .v4 ? "inet" : "inet6"), "\(what)")
                        #expect(info["prefixlen"]?.intValue == Int64(entry.prefixLength), "\(what)")
                        #expect(info["scope"]?.stringValue == entry.scopeName, "\(what)")
                        #expect(info["broadcast"]?.stringValue == entry.broadcast?.description, "\(what)")
                        #expect(info["label"]?.stringValue == entry.label, "\(what)")
                        #expect(info["valid_life_time"]?.intValue == entry.cacheInfo.map { Int64($0.validLifetime) }, "\(what)")
                        let ipFlags = Set((info.objectValue ?? []).filter { $0.value == .bool(true) }.map(\.key))
                        #expect(ipFlags == Set(entry.flagNames), "\(what)")
                    }
                }
                #expect(count == addresses.count, "\(ns.name)")
                #expect(links.count > 0)
            }
            let a = try lab.sa.addresses(family: .v4)
            #expect(a.allSatisfy { $0.family == .v4 })
            let labelled = try #require(a.first { $0.prefix == IPPrefix("10.50.1.1/24") })
            #expect(labelled.label == lab.br + ":1")
            #expect(a.first { $0.prefix == IPPrefix("10.50.0.1/24") }?.broadcast == IPAddress("10.50.0.255"))
            let v6 = try lab.sa.addresses(family: .v6)
            #expect(v6.first { $0.prefix == IPPrefix("2001:db8:51::1/64") }?.flagNames == ["nodad", "noprefixroute"])
        }
    }

    /// ip's JSON view of a route, for the keys both sides have.
    static func ipView(_ route: Route, names: [Int32: String]) -> String {
        var fields: [String] = []
        if route.type != RouteType.unicast { fields.append("type=\(route.typeName)") }
        let full = route.destination.length == route.family.bits
        fields.append("dst=" + (route.isDefault ? "default" : full ? route.destination.address.description : route.destination.description))
        if let gateway = route.gateway { fields.append("gateway=\(gateway)") }
        if let oif = route.outputIndex { fields.append("dev=\(names[oif] ?? "?")") }
        if route.table != 254 { fields.append("table=\(route.tableName)") }
        if route.routeProtocol != 3 { fields.append("protocol=\(route.protocolName)") }
        if route.scope != 0 { fields.append("scope=\(route.scopeName)") }
        if let metric = route.priority { fields.append("metric=\(metric)") }
        if let source = route.preferredSource { fields.append("prefsrc=\(source)") }
        fields.append("flags=\(route.flagNames)")
        if let preference = route.preferenceName { fields.append("pref=\(preference)") }
        for hop in route.nexthops {
            fields.append("nexthop=\(hop.gateway.map(String.init(describing:)) ?? "-")/\(names[hop.index] ?? "?")/\(hop.weight)")
        }
        return fields.joined(separator: " ")
    }

    static func ipView(_ json: JSON) -> String {
        var fields: [String] = []
        for key in ["type", "dst", "gateway", "dev", "table", "protocol", "scope", "metric", "prefsrc"] {
            if let value = json[key] { fields.append("\(key)=\(value.stringValue ?? value.intValue.map(String.init) ?? "?")") }
        }
        fields.append("flags=\((json["flags"]?.arrayValue ?? []).compactMap(\.stringValue))")
        if let preference = json["pref"]?.stringValue { fields.append("pref=\(preference)") }
        for hop in json["nexthops"]?.arrayValue ?? [] {
            fields.append("nexthop=\(hop["gateway"]?.stringValue ?? "-")/\(hop["dev"]?.stringValue ?? "?")/\(hop["weight"]?.intValue ?? 1)")
        }
        return fields.joined(separator: " ")
    }

    @Test func routesMatchIP() throws {
        try withLab { lab in
            for (session, ns) in [(lab.sa, lab.a), (lab.sb, lab.b)] {
                let names = Dictionary(uniqueKeysWithValues: try session.links().map { ($0.index, $0.name) })
                let routes = try session.routes()
                for (family, flag) in [(IPAddress.Family.v4, "-4"), (.v6, "-6")] {
                    let ours = routes.filter { $0.family == family }.map { SessionKernelTests.ipView($0, names: names) }.sorted()
                    let theirs = try ipJSON(["-n", ns.name, flag, "route", "show", "table", "all"]).map(SessionKernelTests.ipView).sorted()
                    #expect(ours == theirs, "\(ns.name) \(flag)")
                }
            }
            let routes = try lab.sa.routes(family: .v4)
            #expect(routes.contains { $0.destination == IPPrefix("10.61.0.0/16") && $0.scopeName == "link" && $0.gateway == nil })
            #expect(routes.contains { $0.table == 1000 && $0.isDefault })
            #expect(routes.first { $0.destination == IPPrefix("10.65.0.0/16") }?.mtu == 1300)
            #expect(Set(routes.filter { $0.destination.address.bytes[1] >= 62 && $0.destination.address.bytes[1] <= 64 }
                .map(\.typeName)) == ["blackhole", "unreachable", "prohibit"])
        }
    }

    @Test func neighboursFdbAndRulesMatchIP() throws {
        try withLab { lab in
            for (session, ns) in [(lab.sa, lab.a), (lab.sb, lab.b)] {
                let names = Dictionary(uniqueKeysWithValues: try session.links().map { ($0.index, $0.name) })
                let neighbours = try session.neighbours()
                let ip = try ipJSON(["-n", ns.name, "neigh", "show", "nud", "all"])
                // Multicast entries come and go with MLD reports sent on timers: those are compared
                // when both reads have them; unicast entries must match both ways.
                let unicast = neighbours.filter { !$0.destination.isMulticast }
                #expect(ip.filter { !(IPAddress($0["dst"]?.stringValue ?? "")?.isMulticast ?? false) }.count == unicast.count,
                        "\(ns.name)")
                for entry in ip {
                    let dst = try #require(entry["dst"]?.stringValue)
                    let dev = entry["dev"]?.stringValue
                    let found = neighbours.first { $0.destination.description == dst && names[$0.index] == dev }
                    if found == nil, IPAddress(dst)?.isMulticast == true { continue }
                    let ours = try #require(found, "\(dst) dev \(dev ?? "-") in \(ns.name)")
                    #expect(entry["lladdr"]?.stringValue == ours.linkAddress?.description, "\(dst)")
                    // Learned entries move between states on timers; permanent and NOARP ones do not.
                    if ours.state & (NeighbourState.permanent | NeighbourState.noARP) != 0 {
                        #expect(entry["state"] == .array(ours.stateNames.map { .string($0) }), "\(dst)")
                    }
                    #expect((entry["router"] != nil) == ours.isRouter, "\(dst)")
                }
            }
            let neighbours = try lab.sa.neighbours(family: .v4)
            #expect(neighbours.contains { $0.destination == IPAddress("10.50.0.99") && $0.stateNames == ["PERMANENT"] })
            #expect(neighbours.contains { $0.destination == IPAddress("10.50.0.2") && $0.linkAddress != nil })
            #expect(try lab.sa.neighbours(family: .v6).contains { $0.destination == IPAddress("2001:db8:50::2") })

            // bridge -j fdb show
            let names = Dictionary(uniqueKeysWithValues: try lab.sa.links().map { ($0.index, $0.name) })
            let fdb = try lab.sa.fdb()
            let view = fdb.map { e in
                "\(e.linkAddress) \(names[e.index] ?? "?") \(e.flagNames) \(e.master.flatMap { names[$0] } ?? "-") \(e.stateName)"
            }.sorted()
            let bridgeJSON = try Spawner().run(["bridge", "-n", lab.a.name, "-j", "fdb", "show"], mergeError: false).output
            let theirs = try (JSON.parse(bridgeJSON).arrayValue ?? []).map { e in
                "\(e["mac"]?.stringValue ?? "?") \(e["ifname"]?.stringValue ?? "?") \((e["flags"]?.arrayValue ?? []).compactMap(\.stringValue)) \(e["master"]?.stringValue ?? "-") \(e["state"]?.stringValue ?? "?")"
            }.sorted()
            #expect(view == theirs)
            // bridge -j fdb show br BRIDGE: the bridge's entries and its ports' own
            let brIndex = try lab.sa.index(of: .name(lab.br))
            let bridgeOnly = try lab.sa.fdb(bridge: .name(lab.br))
            let ports = Set(try lab.sa.links().filter { $0.master == brIndex }.map(\.index) + [brIndex])
            #expect(!bridgeOnly.isEmpty && bridgeOnly.allSatisfy { ports.contains($0.index) })
            let brJSON = try Spawner().run(["bridge", "-n", lab.a.name, "-j", "fdb", "show", "br", lab.br], mergeError: false).output
            #expect(bridgeOnly.count == (try JSON.parse(brJSON).arrayValue?.count))

            // ip -j rule show
            let rules = try lab.sa.rules(family: .v4)
            let ipRules = try ipJSON(["-n", lab.a.name, "rule", "show"])
            #expect(rules.map(\.priority) == ipRules.compactMap { $0["priority"]?.intValue.map(UInt32.init) })
            #expect(rules.map(\.tableName) == ipRules.map { $0["table"]?.stringValue ?? "?" })
            let marked = try #require(rules.first { $0.priority == 100 })
            #expect(marked.source == IPPrefix("10.50.0.0/24") && marked.fwmark == 0x10 && marked.fwmask == 0xff && marked.table == 200)
        }
    }

    @Test func routeGetMatchesIP() throws {
        try withLab { lab in
            let names = Dictionary(uniqueKeysWithValues: try lab.sa.links().map { ($0.index, $0.name) })
            let viaGateway = try lab.sa.routeGet(to: IPAddress("10.60.1.1")!)
            let ip = try #require(try ipJSON(["-n", lab.a.name, "route", "get", "10.60.1.1"]).first)
            #expect(viaGateway.destination == IPPrefix("10.60.1.1/32"))
            #expect(ip["dst"]?.stringValue == "10.60.1.1")
            #expect(ip["gateway"]?.stringValue == viaGateway.gateway?.description)
            #expect(ip["dev"]?.stringValue == viaGateway.outputIndex.flatMap { names[$0] })
            #expect(ip["prefsrc"]?.stringValue == viaGateway.preferredSource?.description)
            #expect(viaGateway.gateway == IPAddress("10.50.0.2"))

            let v6 = try lab.sa.routeGet(to: IPAddress("2001:db8:60::5")!)
            #expect(v6.gateway == IPAddress("2001:db8:50::2") && v6.family == .v6)

            // As a packet from B would arrive on the bridge: a local delivery.
            let input = try lab.sa.routeGet(to: IPAddress("10.50.0.1")!, from: IPAddress("10.50.0.2"), inputInterface: .name(lab.br))
            let ipInput = try #require(try ipJSON(["-n", lab.a.name, "route", "get", "10.50.0.1", "from", "10.50.0.2", "iif", lab.br]).first)
            #expect(input.typeName == "local" && ipInput["type"]?.stringValue == "local")
            #expect(ipInput["table"]?.stringValue == input.tableName)
            #expect(input.inputIndex == names.first { $0.value == lab.br }?.key)

            #expect(throws: NetlinkError.self) { try lab.sa.routeGet(to: IPAddress("10.64.0.1")!) }
        }
    }

    // MARK: Writes and errors

    @Test func changesAndDeletionsTakeEffect() throws {
        try withLab { lab in
            let sa = lab.sa
            try sa.deleteAddress(IPPrefix("10.50.1.1/24")!, dev: .name(lab.br))
            #expect(try !sa.addresses().contains { $0.prefix == IPPrefix("10.50.1.1/24") })

            try sa.deleteRoute(IPPrefix("10.60.0.0/16")!, via: IPAddress("10.50.0.2"), metric: 10)
            try sa.deleteRoute(IPPrefix("10.62.0.0/16")!, type: RouteType.blackhole)
            try sa.deleteRoute(.any(.v4), table: 1000)
            let routes = try sa.routes()
            #expect(!routes.contains { $0.destination == IPPrefix("10.60.0.0/16") || $0.destination == IPPrefix("10.62.0.0/16") })
            #expect(!routes.contains { $0.table == 1000 })

            try sa.deleteNeighbour(IPAddress("10.50.0.99")!, dev: .name(lab.br))
            #expect(try !sa.neighbours().contains { $0.destination == IPAddress("10.50.0.99") })

            try sa.setNoMaster(.name(lab.a0))
            #expect(try sa.link(.name(lab.a0)).master == nil)
            try sa.setDown(.name(lab.a1))
            #expect(try !sa.link(.name(lab.a1)).isUp)
            try sa.setAlias(.name(lab.a0), "")
            #expect(try sa.link(.name(lab.a0)).alias == nil)
            try sa.rename(.name(lab.a1), to: lab.prefix + "-x1")
            let renamed = try sa.link(.name(lab.prefix + "-x1"))
            try sa.deleteLink(.index(renamed.index))
            try sa.deleteLink(.name(lab.a0))
            let names = try sa.links().map(\.name)
            #expect(!names.contains(lab.a0) && !names.contains(lab.prefix + "-x1"))
            // Deleting one end of a veth deletes its peer in the other namespace too.
            #expect(try !lab.sb.links().contains { $0.name == lab.b0 })

            // (vlan_filtering is refused by kernels built without bridge VLAN filtering, like this one.)
            try sa.addBridge(lab.prefix + "-b2", stp: false)
            #expect(try sa.link(.name(lab.prefix + "-b2")).kind == "bridge")
        }
    }

    @Test func kernelErrorsComeOutAsNetlinkError() throws {
        try withLab { lab in
            func expectError(_ errno: Int32, message: String? = nil, _ body: () throws -> Void,
                             sourceLocation: SourceLocation = #_sourceLocation) {
                do {
                    try body()
                    Issue.record("no error, expected errno \(errno)", sourceLocation: sourceLocation)
                } catch let error as NetlinkError {
                    #expect(error.errno == errno, "\(error)", sourceLocation: sourceLocation)
                    if let message { #expect(error.message == message, "\(error)", sourceLocation: sourceLocation) }
                } catch {
                    Issue.record("not a NetlinkError: \(error)", sourceLocation: sourceLocation)
                }
            }
            expectError(EEXIST) { try lab.sa.addBridge(lab.br) }
            expectError(EEXIST) { try lab.sa.addAddress(IPPrefix("10.50.0.1/24")!, dev: .name(lab.br)) }
            expectError(ENODEV) { try lab.sa.deleteLink(.name(lab.prefix + "-none")) }
            expectError(ENODEV) { _ = try lab.sa.link(.name(lab.prefix + "-none")) }
            expectError(ENETUNREACH, message: "Nexthop has invalid gateway") {
                try lab.sa.addRoute(IPPrefix("10.70.0.0/16")!, via: IPAddress("192.168.77.1"))
            }
            expectError(ESRCH) { try lab.sa.deleteRoute(IPPrefix("10.71.0.0/16")!) }
            // This kernel has no dummy driver; where one exists, the link must really be made.
            do {
                try lab.sa.addDummy(lab.prefix + "-d0")
                #expect(try lab.sa.link(.name(lab.prefix + "-d0")).kind == "dummy")
            } catch let error as NetlinkError {
                #expect(error.errno == EOPNOTSUPP, "\(error)")
                #expect(error.message?.contains("Unknown device type") == true, "\(error)")
            }
        }
    }

    @Test func snapshotHoldsEverything() throws {
        try withLab { lab in
            let state = try lab.sa.snapshot()
            let br = try #require(state.link(named: lab.br))
            #expect(state.ports(of: br.index).map(\.name) == [lab.a0])
            #expect(state.addresses(of: br.index).count >= 4)
            #expect(state.routes.contains { $0.family == .v4 } && state.routes.contains { $0.family == .v6 })
            #expect(Set(state.routes.map(\.tableName)).isSuperset(of: ["main", "local", "200", "1000"]))
            #expect(state.neighbours.contains { $0.family == .v4 } && state.neighbours.contains { $0.family == .v6 })
            #expect(state.fdb.contains { $0.master == br.index })
            #expect(state.rules.contains { $0.priority == 100 })
            let a0 = try #require(state.link(named: lab.a0))
            #expect(a0.bridgePort?.stateName == "forwarding")
            #expect(a0.linkNetnsID != nil)
        }
    }
}

extension IPAddress.Family {
    var bits: UInt8 { self == .v4 ? 32 : 128 }
}
