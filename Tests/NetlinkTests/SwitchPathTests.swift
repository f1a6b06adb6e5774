import NetAddress
import Testing

@testable import Netlink

/// Switches that are not Linux bridges, in the wiring and in `path`: made-up tables, no kernel.
///
///     r  e1 10.0.2.1 ──── host usw-a ┐ (no master, no address:
///                                    │  something in user space moves the frames)
///     h3 eth0 10.0.2.10 ── host usw-b ┘
///     x  eth0 (no address) ── host usw-c   (a third masterless port)
@Suite("switches outside the kernel bridge")
struct SwitchPathTests {
    static let host = 0, r = 1, h3 = 2, x = 3

    static func veth(_ index: Int32, _ name: String, peer: Int32, nsid: Int32, mac: String? = nil, master: Int32? = nil) -> Link {
        var link = Link(index: index, name: name)
        link.kind = "veth"
        link.link = peer
        link.linkNetnsID = nsid
        link.flags = LinkFlag.up
        link.master = master
        link.address = mac.flatMap(MACAddress.init)
        return link
    }

    static func address(_ text: String, on index: Int32) -> InterfaceAddress {
        let prefix = IPPrefix(text)!
        var a = InterfaceAddress(family: prefix.address.family, index: index, prefixLength: prefix.length)
        a.local = prefix.address
        a.address = prefix.address
        return a
    }

    static func route(_ destination: String, via gateway: String? = nil, dev index: Int32) -> Route {
        var route = Route(family: .v4, destination: IPPrefix(destination)!)
        route.table = 254
        route.type = RouteType.unicast
        route.gateway = gateway.flatMap(IPAddress.init)
        route.outputIndex = index
        return route
    }

    static let links: [[Link]] = [
        [veth(5, "usw-a", peer: 3, nsid: 1), veth(6, "usw-b", peer: 2, nsid: 2), veth(7, "usw-c", peer: 2, nsid: 3)],
        [veth(3, "e1", peer: 5, nsid: 0, mac: "02:00:00:00:00:01")],
        [veth(2, "eth0", peer: 6, nsid: 0, mac: "02:00:00:00:00:33")],
        [veth(2, "eth0", peer: 7, nsid: 0, mac: "02:00:00:00:00:44")],
    ]

    static func wiring(ovs: [Wiring.OVSBridge]? = nil) -> Wiring {
        let nsids: [Int: [Int32: Int]] = [0: [1: 1, 2: 2, 3: 3], 1: [0: 0], 2: [0: 0], 3: [0: 0]]
        var wiring = Wiring.build(links) { from, nsid, candidates in
            nsids[from]?[nsid].flatMap { candidates.contains($0) ? $0 : nil }
        }
        wiring.findSwitches(links, addresses: [host: []], ovs: ovs.map { [(host, $0)] } ?? [])
        return wiring
    }

    static func states(neighbourMAC: String?) -> [Int: NamespaceState] {
        var rState = NamespaceState(links: links[r], addresses: [address("10.0.2.1/24", on: 3)],
                                    routes: [route("10.0.2.0/24", dev: 3)])
        if let neighbourMAC {
            var entry = Neighbour(family: .v4, index: 3, destination: IPAddress("10.0.2.10")!)
            entry.linkAddress = MACAddress(neighbourMAC)
            entry.state = NeighbourState.reachable
            rState.neighbours = [entry]
        }
        return [
            host: NamespaceState(links: links[host]),
            r: rState,
            h3: NamespaceState(links: links[h3], addresses: [address("10.0.2.10/24", on: 2)]),
            x: NamespaceState(links: links[x]),
        ]
    }

    @Test func masterlessPortsWithoutAddressesAreOneUnmanagedSwitch() {
        let wiring = Self.wiring()
        #expect(wiring.switches.count == 1)
        #expect(wiring.switches.first?.kind == .unmanaged)
        #expect(wiring.switches.first?.namespace == Self.host)
        #expect(wiring.switches.first?.ports.map(\.name) == ["usw-a", "usw-b", "usw-c"])
    }

    @Test func portsWithAnAddressAreARoutersNotASwitchs() {
        // The same host ends, but the host routes between them: each has an address.
        var wiring = Wiring.build(Self.links) { _, _, candidates in candidates.first }
        wiring.findSwitches(Self.links, addresses: [Self.host: [Self.address("10.0.2.254/24", on: 5), Self.address("10.0.3.254/24", on: 6),
                                                                Self.address("10.0.4.254/24", on: 7)]],
                            ovs: [])
        #expect(wiring.switches.isEmpty)
    }

    @Test func openVSwitchsDatabaseNamesTheSwitchAndItsPorts() {
        let wiring = Self.wiring(ovs: [Wiring.OVSBridge(name: "s2", ports: ["s2", "usw-a", "usw-b"])])
        let ovs = wiring.switches.first { $0.kind == .openVSwitch }
        #expect(ovs?.name == "s2")
        #expect(ovs?.ports.map(\.name) == ["usw-a", "usw-b"])
        // usw-c is left alone: one port is no switch.
        #expect(!wiring.switches.contains { $0.kind == .unmanaged })
    }

    @Test func kernelDatapathPortsAreEnslavedToOVSSystem() {
        var datapath = Link(index: 9, name: "ovs-system")
        datapath.kind = "openvswitch"
        var links = Self.links
        links[Self.host] = [datapath, Self.veth(5, "usw-a", peer: 3, nsid: 1, master: 9), Self.veth(6, "usw-b", peer: 2, nsid: 2, master: 9)]
        var wiring = Wiring.build(links) { _, _, candidates in candidates.first }
        wiring.findSwitches(links, addresses: [:])
        #expect(wiring.switches.map(\.kind) == [.openVSwitch])
        #expect(wiring.switches.first?.ports.map(\.name) == ["usw-a", "usw-b"])
    }

    func predict(neighbourMAC: String?, wiring: Wiring = SwitchPathTests.wiring()) -> PathPrediction {
        let states = Self.states(neighbourMAC: neighbourMAC)
        return PathPredictor(wiring: wiring, state: { states[$0] }, forwarding: { _, _ in true })
            .predict(from: Self.r, to: IPAddress("10.0.2.10")!)
    }

    @Test func pathFollowsTheNeighboursMACThroughTheUnknownSwitch() {
        let prediction = predict(neighbourMAC: "02:00:00:00:00:33")
        #expect(prediction.end == .delivered(namespace: Self.h3))
        #expect(prediction.hops.map(\.namespace) == [Self.r, Self.h3])
        let crossing = prediction.hops.first?.switches.first
        #expect(crossing?.kind == .unmanaged)
        #expect(crossing?.namespace == Self.host)
        #expect(crossing?.outPort == "usw-b")
        #expect(crossing?.how == "neighbour's MAC")
        #expect(crossing?.ports == ["usw-a", "usw-b", "usw-c"])
    }

    @Test func withoutANeighbourEntryThePortLeadsToTheOwnerOfTheAddress() {
        let prediction = predict(neighbourMAC: nil)
        #expect(prediction.end == .delivered(namespace: Self.h3))
        #expect(prediction.hops.first?.switches.first?.outPort == "usw-b")
        #expect(prediction.hops.first?.switches.first?.how == "owner of 10.0.2.10")
    }

    @Test func aNeighbourMACNobodyOwnsFallsBackToTheOwner() {
        let prediction = predict(neighbourMAC: "02:00:00:00:00:99")
        // The frame goes to a MAC nobody here has: the owner's port is still the best guess, and path says
        // that ARP for it would not have given that MAC (the entry does not resolve to h3's interface).
        #expect(prediction.hops.first?.switches.first?.outPort == "usw-b")
        #expect(prediction.end == .delivered(namespace: Self.h3))
    }

    @Test func withoutTheSwitchThePathStopsAtTheHost() {
        // The same tables without switch detection: the far end is the host, which does not own the address.
        let plain = Wiring.build(Self.links) { from, nsid, candidates in
            [0: [1: 1, 2: 2, 3: 3], 1: [0: 0], 2: [0: 0], 3: [0: 0]][from]?[nsid].flatMap { candidates.contains($0) ? $0 : nil }
        }
        let prediction = predict(neighbourMAC: "02:00:00:00:00:33", wiring: plain)
        guard case .nextHopNotFound(let ns, _, _) = prediction.end else {
            Issue.record("expected next hop not found, got \(prediction.end)")
            return
        }
        #expect(ns == Self.r)
    }
}
