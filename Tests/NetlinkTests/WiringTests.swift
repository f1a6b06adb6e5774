import Testing
@testable import Netlink

/// The wiring model is pure: links in, pairs out. These cases cover what indexes alone decide and where
/// an nsid question is needed.
@Suite("wiring")
struct WiringTests {
    static func veth(_ index: Int32, _ name: String, peer: Int32, nsid: Int32?) -> Link {
        var link = Link(index: index, name: name)
        link.kind = "veth"
        link.link = peer
        link.linkNetnsID = nsid
        return link
    }

    @Test func pairsByIndexesWithoutAskingWhenUnambiguous() {
        // host1 eth0(2) ↔ router1 e1(2); router1 e0(3) ↔ router2 e0(2).
        let links: [[Link]] = [
            [Self.veth(2, "eth0", peer: 2, nsid: 0)],
            [Self.veth(2, "e1", peer: 2, nsid: 0), Self.veth(3, "e0", peer: 2, nsid: 1)],
            [Self.veth(2, "e0", peer: 3, nsid: 0)],
        ]
        var asked = 0
        let wiring = Wiring.build(links) { _, _, _ in asked += 1; return nil }
        // host1/eth0 and router1/e1 share the key (2, 2) with each other and nobody else: no question.
        let pairs = Set(wiring.vethPairs.map { "\($0.a.namespace)/\($0.a.name)-\($0.b.namespace)/\($0.b.name)" })
        #expect(pairs == ["0/eth0-1/e1", "1/e0-2/e0"])
        #expect(wiring.unresolved.isEmpty)
        #expect(asked == 0)
    }

    @Test func settlesIdenticalLabsWithTheNSIDResolver() {
        // Two identical two-namespace labs: every end has (ifindex 2, peer 2). Namespace 0 calls its peer
        // nsid 5, which is namespace 1; namespace 2 calls its peer nsid 5 too, which is namespace 3.
        let links: [[Link]] = (0..<4).map { ns in [Self.veth(2, ns % 2 == 0 ? "a" : "b", peer: 2, nsid: 5)] }
        var questions: [(Int, Int32, [Int])] = []
        let wiring = Wiring.build(links) { from, nsid, candidates in
            questions.append((from, nsid, candidates))
            let truth = [0: 1, 1: 0, 2: 3, 3: 2][from]!
            return candidates.contains(truth) ? truth : nil
        }
        let pairs = Set(wiring.vethPairs.map { [$0.a.namespace, $0.b.namespace] })
        #expect(pairs == [[0, 1], [2, 3]])
        #expect(wiring.unresolved.isEmpty)
        #expect(!questions.isEmpty && questions.count <= 4)
        #expect(questions.allSatisfy { $0.1 == 5 })
    }

    @Test func aPeerNobodyCanSeeIsUnresolved() {
        let links: [[Link]] = [[Self.veth(7, "eth0", peer: 9, nsid: 3)], []]
        let wiring = Wiring.build(links) { _, _, _ in nil }
        #expect(wiring.vethPairs.isEmpty)
        #expect(wiring.unresolved.map(\.end.name) == ["eth0"])
        #expect(wiring.unresolved.first?.reason.contains("nsid 3") == true)
    }

    @Test func bridgesCollectTheirPortsAndSameNamespaceVethsPair() {
        var bridge = Link(index: 10, name: "br0")
        bridge.kind = "bridge"
        var p1 = Self.veth(11, "v0", peer: 12, nsid: nil)
        p1.master = 10
        let p2 = Self.veth(12, "v1", peer: 11, nsid: nil)
        var mac = Link(index: 13, name: "mv0")
        mac.kind = "macvlan"
        mac.link = 11
        let wiring = Wiring.build([[bridge, p1, p2, mac]]) { _, _, _ in nil }
        #expect(wiring.bridges.count == 1)
        #expect(wiring.bridges[0].ports.map(\.name) == ["v0"])
        #expect(wiring.vethPairs.count == 1)
        #expect(wiring.vethPairs[0].a.name == "v0" && wiring.vethPairs[0].b.name == "v1")
        #expect(wiring.stacked.first?.parent?.name == "v0")
    }
}
