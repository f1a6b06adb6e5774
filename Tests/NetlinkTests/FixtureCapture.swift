#if canImport(Glibc)
import Glibc
#endif
import Netlink
import ProcNS
import Testing

/// Rewrites Fixtures/*.hex from this kernel, only when NSINSPECT_CAPTURE_FIXTURES=1 is set:
///
///     NSINSPECT_CAPTURE_FIXTURES=1 swift test --filter FixtureCapture
///
/// It builds the small lab below in three throwaway namespaces (host1 and host2 on a bridge in a
/// router, a macvlan and a vxlan on the bridge, routes with a multipath, a blackhole, an unreachable and
/// a second table, policy rules, a permanent neighbour and a static FDB entry, then pings so ARP, NDP and
/// the bridge learn), sends each request over a real socket and saves the raw reply datagrams.
/// The setup is done with ip(8) so each fixture's header says exactly what produced it.
@Suite("FixtureCapture", .serialized)
struct FixtureCapture {
    static let enabled = getenv("NSINSPECT_CAPTURE_FIXTURES").map { String(cString: $0) == "1" } ?? false

    /// The setup, with H1, H2 and R standing for the namespaces' names.
    static let setup: [String] = [
        "ip -n R link add br0 type bridge",
        "ip -n R link set br0 address 02:00:00:00:00:01",
        "ip link add eth0 netns H1 type veth peer name p1 netns R",
        "ip link add eth0 netns H2 type veth peer name p2 netns R",
        "ip -n H1 link set eth0 address 02:00:00:00:01:10",
        "ip -n H2 link set eth0 address 02:00:00:00:02:20",
        "ip -n R link set p1 address 02:00:00:00:00:11",
        "ip -n R link set p2 address 02:00:00:00:00:12",
        "ip -n R link set p1 master br0",
        "ip -n R link set p2 master br0",
        "ip -n R link set p1 alias to-host1",
        "ip -n R link set p2 mtu 1400",
        "ip -n R link add mv0 link br0 type macvlan mode bridge",
        "ip -n R link set mv0 address 02:00:00:00:00:21",
        "ip -n R link add vx0 type vxlan id 42 local 10.0.1.1 remote 10.0.1.99 dstport 4789 dev br0",
        "ip -n R link set vx0 address 02:00:00:00:00:31",
        "ip -n R link set lo up", "ip -n R link set p1 up", "ip -n R link set p2 up", "ip -n R link set br0 up",
        "ip -n R link set mv0 up",
        "ip -n H1 link set lo up", "ip -n H1 link set eth0 up", "ip -n H2 link set lo up", "ip -n H2 link set eth0 up",
        "ip -n R addr add 10.0.1.1/24 brd + dev br0",
        "ip -n R addr add 2001:db8:1::1/64 dev br0 nodad",
        "ip -n R addr add 192.0.2.1/24 dev mv0",
        "ip -n H1 addr add 10.0.1.10/24 brd + dev eth0",
        "ip -n H1 addr add 2001:db8:1::10/64 dev eth0 nodad",
        "ip -n H2 addr add 10.0.1.20/24 brd + dev eth0",
        "ip -n H2 addr add 2001:db8:1::20/64 dev eth0 nodad",
        "ip -n H1 route add default via 10.0.1.1",
        "ip -n H1 -6 route add default via 2001:db8:1::1",
        "ip -n R route add 198.51.100.0/24 nexthop via 10.0.1.10 weight 1 nexthop via 10.0.1.20 weight 2",
        "ip -n R -6 route add 2001:db8:2::/64 nexthop via 2001:db8:1::10 nexthop via 2001:db8:1::20",
        "ip -n R route add blackhole 203.0.113.0/24",
        "ip -n R -6 route add unreachable 2001:db8:dead::/48",
        "ip -n R route add default via 10.0.1.10 table 100 metric 50",
        "ip -n R route add 10.0.9.0/24 dev br0 mtu 1300",
        "ip -n R rule add from 10.0.1.0/24 fwmark 0x10/0xff iif br0 lookup 100 priority 1000",
        "ip -n R rule add to 203.0.113.0/24 prohibit priority 1001",
        "ip -n R -6 rule add from 2001:db8:1::/64 lookup 100 priority 1002",
        "ip -n H1 neigh add 10.0.1.99 lladdr 02:00:00:00:00:99 dev eth0 nud permanent",
        "bridge -n R fdb add 02:00:00:00:00:aa dev p1 master static",
        "ip netns exec H1 ping -c 1 -W 2 10.0.1.20",
        "ip netns exec H1 ping -c 1 -W 2 10.0.1.1",
        "ip netns exec H1 ping -6 -c 1 -W 2 2001:db8:1::1",
        "ip netns exec H1 ping -6 -c 1 -W 2 2001:db8:1::20",
    ]

    @Test(.enabled(if: FixtureCapture.enabled, "set NSINSPECT_CAPTURE_FIXTURES=1 to rewrite the fixtures"))
    func capture() throws {
        try requireRoot()
        let prefix = uniquePrefix("nlfx")
        defer { #expect(TestNamespace.leftovers(prefix).isEmpty, "namespace names left behind") }
        let h1 = try TestNamespace(prefix + "-h1")
        defer { h1.remove() }
        let h2 = try TestNamespace(prefix + "-h2")
        defer { h2.remove() }
        let r = try TestNamespace(prefix + "-r")
        defer { r.remove() }

        for command in FixtureCapture.setup {
            let words = command.split(separator: " ").map {
                switch $0 {
                case "H1": h1.name
                case "H2": h2.name
                case "R": r.name
                default: String($0)
                }
            }
            try run(words)
        }

        var uts = utsname()
        uname(&uts)
        let kernel = withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }

        func capture(_ name: String, _ title: String, in ns: TestNamespace, request: String,
                     _ body: (NetlinkSocket) throws -> Void) throws {
            let socket = try NetlinkSocket.open(in: ns.handle, label: ns.name)
            var datagrams: [[UInt8]] = []
            socket.receiveTap = { datagrams.append(Array($0)) }
            try body(socket)
            socket.receiveTap = nil
            try SourceFiles.write(Fixture.path(name), Fixture.render(title: title, setup: FixtureCapture.setup,
                                                                      request: request, datagrams: datagrams, kernel: kernel))
        }

        try capture("link-dump-router", "links of R (bridge, two veth ports, macvlan, vxlan)", in: r,
                    request: "RTM_GETLINK NLM_F_DUMP, ifinfomsg all zero (LinkRequests.dump()), in R") {
            _ = try $0.dump(LinkRequests.dump(), decode: Link.decode)
        }
        try capture("link-dump-host1", "links of H1 (a veth whose peer is in R)", in: h1,
                    request: "RTM_GETLINK NLM_F_DUMP, ifinfomsg all zero (LinkRequests.dump()), in H1") {
            _ = try $0.dump(LinkRequests.dump(), decode: Link.decode)
        }
        try capture("addr-dump-router", "addresses of R, both families", in: r,
                    request: "RTM_GETADDR NLM_F_DUMP, ifaddrmsg family AF_UNSPEC (AddressRequests.dump()), in R") {
            _ = try $0.dump(AddressRequests.dump(), decode: InterfaceAddress.decode)
        }
        try capture("addr-dump-host1", "addresses of H1, both families", in: h1,
                    request: "RTM_GETADDR NLM_F_DUMP, ifaddrmsg family AF_UNSPEC (AddressRequests.dump()), in H1") {
            _ = try $0.dump(AddressRequests.dump(), decode: InterfaceAddress.decode)
        }
        try capture("route-dump-router", "routes of R, every table, both families", in: r,
                    request: "RTM_GETROUTE NLM_F_DUMP, rtmsg family AF_UNSPEC (RouteRequests.dump()), in R") {
            _ = try $0.dump(RouteRequests.dump(), decode: Route.decode)
        }
        try capture("route-dump-host1", "routes of H1, every table, both families", in: h1,
                    request: "RTM_GETROUTE NLM_F_DUMP, rtmsg family AF_UNSPEC (RouteRequests.dump()), in H1") {
            _ = try $0.dump(RouteRequests.dump(), decode: Route.decode)
        }
        try capture("neigh-dump-host1", "ARP and NDP cache of H1 after the pings", in: h1,
                    request: "RTM_GETNEIGH NLM_F_DUMP, ndmsg family AF_UNSPEC (NeighbourRequests.dump()), in H1") {
            _ = try $0.dump(NeighbourRequests.dump(), decode: Neighbour.decode)
        }
        try capture("neigh-dump-router", "ARP and NDP cache of R after the pings", in: r,
                    request: "RTM_GETNEIGH NLM_F_DUMP, ndmsg family AF_UNSPEC (NeighbourRequests.dump()), in R") {
            _ = try $0.dump(NeighbourRequests.dump(), decode: Neighbour.decode)
        }
        try capture("fdb-dump-router", "bridge forwarding database of R", in: r,
                    request: "RTM_GETNEIGH NLM_F_DUMP, ndmsg family AF_BRIDGE (NeighbourRequests.fdbDump()), in R") {
            _ = try $0.dump(NeighbourRequests.fdbDump(), decode: FDBEntry.decode)
        }
        try capture("rule-dump-router", "policy rules of R, every family", in: r,
                    request: "RTM_GETRULE NLM_F_DUMP, fib_rule_hdr family AF_UNSPEC (RuleRequests.dump()), in R") {
            _ = try $0.dump(RuleRequests.dump(), decode: Rule.decode)
        }
        try capture("route-get-host1", "ip route get 10.0.1.20 from H1", in: h1,
                    request: "RTM_GETROUTE NLM_F_ACK, RTA_DST 10.0.1.20 (RouteRequests.get(to:)), in H1") {
            _ = try $0.transact(RouteRequests.get(to: IPAddress("10.0.1.20")!), decode: Route.decode)
        }
        try capture("error-route-add", "a refused route: gateway not on any link", in: r,
                    request: "RTM_NEWROUTE NLM_F_CREATE|NLM_F_EXCL|NLM_F_ACK 10.9.0.0/16 via 192.168.77.1, in R") {
            let answer = try $0.transactAll(
                [RouteRequests.add(RouteSpec(destination: IPPrefix("10.9.0.0/16")!, gateway: IPAddress("192.168.77.1")))]
            ) { _ in nil as Int? }
            guard case .failure = answer[0] else { throw TestFailure("the route was accepted") }
        }
    }
}
