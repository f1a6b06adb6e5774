import Netlink
import Testing
@testable import Lab

@Suite struct PlanTests {
    @Test func twoRoutersPlan() throws {
        let plan = LabPlan.make(try Files.lab("examples/two-routers.yaml").spec)
        let mark = "nsinspect-lab:two-routers"
        #expect(plan.mark == mark)
        #expect(plan.table == "nsinspect-two-routers")
        let names = ["host1", "router1", "router2", "host2"]
        var expected = names.flatMap { ["ip netns add \($0)", "ip -n \($0) link set dev lo alias \(mark)"] }
        expected += [
            "ip link add eth0 netns host1 type veth peer name e1 netns router1",
            "ip link add e0 netns router1 type veth peer name e0 netns router2",
            "ip link add e1 netns router2 type veth peer name eth0 netns host2",
            "ip netns exec router1 sysctl -w net.ipv4.ip_forward=1",
            "ip netns exec router1 sysctl -w net.ipv6.conf.all.forwarding=1",
            "ip netns exec router2 sysctl -w net.ipv4.ip_forward=1",
            "ip netns exec router2 sysctl -w net.ipv6.conf.all.forwarding=1",
            "ip -n host1 addr add 10.0.1.10/24 dev eth0",
            "ip -n router1 addr add 10.0.1.1/24 dev e1",
            "ip -n router1 addr add 10.0.0.1/24 dev e0",
            "ip -n router2 addr add 10.0.0.2/24 dev e0",
            "ip -n router2 addr add 10.0.2.1/24 dev e1",
            "ip -n host2 addr add 10.0.2.10/24 dev eth0",
        ]
        expected += names.map { "ip -n \($0) link set dev lo up" }
        expected += [
            "ip -n host1 link set dev eth0 up",
            "ip -n router1 link set dev e1 up",
            "ip -n router1 link set dev e0 up",
            "ip -n router2 link set dev e0 up",
            "ip -n router2 link set dev e1 up",
            "ip -n host2 link set dev eth0 up",
            "ip -n host1 route add default via 10.0.1.1",
            "ip -n router1 route add default via 10.0.0.2",
            "ip -n router2 route add default via 10.0.0.1",
            "ip -n host2 route add default via 10.0.2.1",
        ]
        #expect(plan.steps.map(\.description) == expected)
        #expect(plan.teardown.map(\.description) == names.reversed().map { "ip netns del \($0) (if its lo's alias is \(mark))" })
        #expect(plan.rulesets.isEmpty)
        try checkOrder(plan)
    }

    @Test func hostSideLinksAreMarkedAndRemovedAndHostStateRestored() throws {
        let plan = LabPlan.make(try Files.lab("examples/container-bridge.yaml").spec)
        let mark = "nsinspect-lab:container-bridge"
        let steps = plan.steps.map(\.description)
        for link in ["br0", "host-veth1", "host-veth1-br", "host1-veth1-br", "host2-veth1-br"] {
            #expect(steps.contains("ip link set dev \(link) alias \(mark)"))
        }
        #expect(steps.contains("ip link add host1-veth1 netns host1 type veth peer name host1-veth1-br"))
        #expect(steps.contains("ip link set dev host1-veth1-br master br0"))
        #expect(steps.contains("sysctl -w net.ipv4.ip_forward=1"))
        #expect(!steps.contains { $0.contains("net.ipv6.conf.all.forwarding") })
        #expect(plan.teardown.map(\.description) == [
            "nft delete table inet nsinspect-container-bridge",
            "ip netns del host2 (if its lo's alias is \(mark))",
            "ip netns del host1 (if its lo's alias is \(mark))",
            "ip link del dev br0 (if its alias is \(mark))",
            "ip link del dev host2-veth1-br (if its alias is \(mark))",
            "ip link del dev host1-veth1-br (if its alias is \(mark))",
            "ip link del dev host-veth1-br (if its alias is \(mark))",
            "ip link del dev host-veth1 (if its alias is \(mark))",
            "sysctl -w net.ipv4.ip_forward=(its value before up)",
        ])
        try checkOrder(plan)
    }

    @Test(arguments: Files.examples)
    func everyExamplePlanIsInAValidOrder(path: String) throws {
        try checkOrder(LabPlan.make(try Files.lab(path).spec))
    }

    @Test func optionsAndRouteForms() throws {
        let spec = try LabFile.load("""
            lab: opts
            namespaces:
              a:
                loopback: false
                routes:
                  - {to: fd00:9::/64, via: fd00::2, metric: 100}
                  - unreachable 10.9.0.0/16
                  - {type: blackhole, to: default}
            links:
              - a: {name: a:e0, addresses: [10.0.0.1/24, fd00::1/64], mac: 02:00:00:00:00:01, mtu: 1400, up: false}
                b: host:v0 10.0.0.2/24 fd00::2/64
            """).spec
        let steps = LabPlan.make(spec).steps.map(\.description)
        #expect(steps.contains("ip link add e0 address 02:00:00:00:00:01 mtu 1400 netns a type veth peer name v0"))
        #expect(steps.contains("ip -n a addr add fd00::1/64 dev e0 nodad"))
        #expect(!steps.contains("ip -n a link set dev e0 up"))
        #expect(!steps.contains("ip -n a link set dev lo up"))
        #expect(steps.contains("ip -n a -6 route add fd00:9::/64 via fd00::2 metric 100"))
        #expect(steps.contains("ip -n a route add unreachable 10.9.0.0/16"))
        #expect(steps.contains("ip -n a route add blackhole default"))
    }
}

/// Checks that every step's prerequisites come before it: the namespace before anything in it, a link
/// before its address, mark, master or state, addresses and links up before routes through them, and
/// rules last.
func checkOrder(_ plan: LabPlan, sourceLocation: SourceLocation = #_sourceLocation) throws {
    var namespaces: Set<String> = []
    var links: Set<LabInterfaceRef> = []
    var up: Set<LabInterfaceRef> = []
    var networks: [LabPlace: [(IPPrefix, LabInterfaceRef)]] = [:]
    var sawRules = false
    func exists(_ place: LabPlace) -> Bool {
        if case .namespace(let n) = place { return namespaces.contains(n) }
        return true
    }
    func hasLink(_ ref: LabInterfaceRef) -> Bool {
        links.contains(ref) || (ref.name == "lo" && exists(ref.place))
    }
    for step in plan.steps {
        if case .createNamespace = step {} else {
            #expect(exists(step.place), "\(step): namespace not made yet", sourceLocation: sourceLocation)
        }
        if case .loadRuleset = step { sawRules = true } else {
            #expect(!sawRules, "\(step) after the rulesets", sourceLocation: sourceLocation)
        }
        switch step {
        case .createNamespace(let n):
            #expect(!namespaces.contains(n), sourceLocation: sourceLocation)
            namespaces.insert(n)
        case .createVeth(let a, let b):
            #expect(exists(b.ref.place), "\(step): peer namespace not made yet", sourceLocation: sourceLocation)
            links.formUnion([a.ref, b.ref])
        case .createBridge(let link):
            links.insert(link.ref)
        case .setAlias(let ref, _), .addAddress(let ref, _), .setLinkUp(let ref):
            #expect(hasLink(ref), "\(step): no such link yet", sourceLocation: sourceLocation)
            if case .addAddress(_, let p) = step { networks[ref.place, default: []].append((p, ref)) }
            if case .setLinkUp = step { up.insert(ref) }
        case .setMaster(let ref, let bridge):
            #expect(hasLink(ref) && hasLink(LabInterfaceRef(ref.place, bridge)), "\(step): no such link yet", sourceLocation: sourceLocation)
        case .addRoute(let place, let route):
            if let dev = route.device {
                #expect(up.contains(LabInterfaceRef(place, dev)) || dev == "lo" || place == .host, "\(step): dev not up", sourceLocation: sourceLocation)
            }
            if let gateway = route.gateway, !route.onlink {
                let via = networks[place, default: []].first { $0.0.contains(gateway) }
                #expect(via.map { up.contains($0.1) } == true, "\(step): gateway not on a network that is up", sourceLocation: sourceLocation)
            }
        default:
            break
        }
    }
    for step in plan.teardown {
        switch step {
        case .deleteNamespace(let n, let mark):
            #expect(namespaces.contains(n) && mark == plan.mark, sourceLocation: sourceLocation)
        case .deleteLink(let ref, let mark):
            #expect(ref.place == .host && links.contains(ref) && mark == plan.mark, sourceLocation: sourceLocation)
        default:
            break
        }
    }
    // Every namespace made is removed, and every link made in the host.
    let removed = Set(plan.teardown.compactMap { if case .deleteNamespace(let n, _) = $0 { n } else { nil } })
    #expect(removed == namespaces, sourceLocation: sourceLocation)
    let removedLinks = Set(plan.teardown.compactMap { if case .deleteLink(let r, _) = $0 { r } else { nil } })
    #expect(removedLinks == links.filter { $0.place == .host }, sourceLocation: sourceLocation)
}
