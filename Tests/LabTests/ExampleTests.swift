import Foundation
import Netlink
import Testing
@testable import Lab

@Suite struct ExampleTests {
    @Test func everyLabOfLabsMdHasAnExample() {
        let expected = [
            "two-routers", "veth-nat", "container-bridge", "container-bridge-pyns2", "nat-types",
            "nat-types-cone", "nat-types-port-restricted", "nat-types-symmetric",
        ]
        #expect(Set(Files.examples) == Set(expected.map { "examples/\($0).yaml" }))
    }

    @Test(arguments: Files.examples)
    func exampleReadsAndValidates(path: String) throws {
        let lab = try Files.lab(path)
        #expect(lab.format == (path.contains("pyns2") ? .pyns2 : .nsinspect))
        if lab.format == .nsinspect {
            #expect(path == "examples/\(lab.spec.name).yaml")
            #expect(!lab.spec.expectations.isEmpty)
        }
        let plan = LabPlan.make(lab.spec)
        #expect(!plan.steps.isEmpty)
        #expect(plan.teardown.contains { if case .deleteNamespace = $0 { true } else { false } })
    }

    @Test func pyns2FileAndItsTwinAreTheSameLab() throws {
        let pyns2 = try Files.lab("examples/container-bridge-pyns2.yaml")
        let ours = try Files.lab("examples/container-bridge.yaml")
        #expect(pyns2.format == .pyns2)
        #expect(pyns2.spec.name == "example-network-container")
        var a = pyns2.spec
        var b = ours.spec
        // Up to naming: the lab's name, and the expectations only our schema's file carries.
        a.name = b.name
        b.expectations = []
        #expect(a == b)
        #expect(LabPlan.make(a).steps == LabPlan.make(b).steps)
    }

    @Test func twoRoutersReadsAsWritten() throws {
        let spec = try Files.lab("examples/two-routers.yaml").spec
        #expect(spec.namespaces.map(\.place.description) == ["host1", "router1", "router2", "host2"])
        #expect(spec.veths.map { "\($0.a.ref)-\($0.b.ref)" } == ["host1:eth0-router1:e1", "router1:e0-router2:e0", "router2:e1-host2:eth0"])
        let router1 = try #require(spec.namespace(.namespace("router1")))
        #expect(router1.forwarding.ipv4 && router1.forwarding.ipv6)
        #expect(router1.routes == [LabRoute(to: IPPrefix.any(.v4), via: IPAddress("10.0.0.2"))])
        #expect(spec.interface(LabInterfaceRef(.namespace("router1"), "e1"))?.addresses.map(\.description) == ["10.0.1.1/24"])
        #expect(spec.firstGlobalAddress(of: .namespace("host2")) == IPAddress("10.0.2.10"))
        let ttl = spec.expectations.first { if case .ttl = $0.kind { true } else { false } }
        #expect(ttl?.kind == .ttl(LabProbe(from: .namespace("host1"), to: .address(IPAddress("10.0.2.10")!)), equals: 62))
        #expect(spec.expectations.contains { $0.kind == .hops(LabProbe(from: .namespace("host1"), to: .place(.namespace("host2"))), equals: 2) })
    }

    @Test func natTypesSaysWhatAMeasurementWouldSay() throws {
        let spec = try Files.lab("examples/nat-types.yaml").spec
        let nat = spec.expectations.compactMap { if case .nat(let n) = $0.kind { n } else { nil } }
        #expect(nat.map { "\($0.namespace)=\($0.type)" } == ["ns-c0-nat=full-cone", "ns-c1-nat=port-restricted-cone"])
        let udp = try #require(spec.expectations.first?.probe?.udp)
        #expect(udp == LabUDPProbe(port: 54321, sourcePort: 12345, listener: .namespace("ns-c1"), listenerPort: 12345))
        let c0nat = try #require(spec.namespace(.namespace("ns-c0-nat")))
        #expect(c0nat.filter.policies == [.input: .drop, .forward: .drop])
        #expect(c0nat.nat.first?.kind == .snat(to: LabNATTarget(IPAddress("100.64.1.100")!, port: 54321)))
    }

    @Test func natTypeVariantsUseEachType() throws {
        var types: Set<NATType> = []
        for name in ["nat-types-cone", "nat-types-port-restricted", "nat-types-symmetric"] {
            let spec = try Files.lab("examples/\(name).yaml").spec
            for ns in spec.namespaces { if let box = ns.natBox { types.insert(box.type) } }
            // Each variant's expectations name the types its NAT namespaces are configured as.
            for case .nat(let n) in spec.expectations.map(\.kind) {
                #expect(spec.namespace(n.namespace)?.natBox?.type == n.type)
            }
        }
        #expect(types == Set(NATType.allCases))
    }
}

@Suite struct DocumentationTests {
    /// The full example of docs/lab-format.md: its first YAML block.
    static func fullExample() throws -> String {
        let doc = try Files.text("docs/lab-format.md")
        let start = try #require(doc.range(of: "```yaml\n"))
        let end = try #require(doc.range(of: "```\n", range: start.upperBound..<doc.endIndex))
        return String(doc[start.upperBound..<end.lowerBound])
    }

    @Test func fullExampleReadsAndValidates() throws {
        let spec = try LabFile.load(try Self.fullExample(), path: "docs/lab-format.md").spec
        #expect(spec.name == "demo")
        #expect(spec.bridges.first?.interface.ref == LabInterfaceRef(.namespace("sw"), "br0"))
        #expect(spec.namespace(.namespace("sw"))?.loopback == false)
        #expect(spec.namespace(.namespace("nat-box"))?.natBox?.type == .fullCone)
        #expect(spec.expectations.count == 7)
        try checkOrder(LabPlan.make(spec))
    }

    @Test(.enabled(if: isRoot, "nft -c needs CAP_NET_ADMIN"))
    func fullExampleRulesetsPassNftCheck() throws {
        let plan = LabPlan.make(try LabFile.load(try Self.fullExample()).spec)
        #expect(plan.rulesets.map(\.place) == [.host, .namespace("router"), .namespace("nat-box")])
        for (place, text) in plan.rulesets {
            let result = try nftCheck(text)
            #expect(result.status == 0, "\(place):\n\(result.errors)\n\(text)")
        }
    }
}
