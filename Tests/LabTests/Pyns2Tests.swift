import Netlink
import Testing
@testable import Lab

@Suite struct Pyns2Tests {
    @Test func peersDeclaredOnBothSidesAndOtherSpellings() throws {
        let lab = try Files.lab("Tests/LabTests/Fixtures/pyns2-routers.yaml")
        #expect(lab.format == .pyns2)
        let spec = lab.spec
        #expect(spec.name == "routers-pyns2")
        #expect(spec.namespaces.map(\.place.description) == ["rt0", "rt1", "h1"])
        #expect(spec.veths.map { "\($0.a.ref)-\($0.b.ref)" } == ["host:veth0-rt0:rt0-veth0", "rt0:rt0-veth1-rt1:rt1-veth0", "rt1:rt1-veth1-h1:h1-veth0"])
        #expect(spec.veths[0].b.addresses.map(\.description) == ["192.168.2.1/24"])
        #expect(spec.host.routes == [LabRoute(to: IPPrefix("192.168.0.0/16")!, via: IPAddress("192.168.2.1"))])
        #expect(spec.host.forwarding == LabForwarding(ipv4: true, ipv6: false))
        #expect(spec.host.nat == [LabNATRule(.masquerade(random: false), match: LabMatch(out: LabName("eth0"), source: IPPrefix("192.168.0.0/16")))])
        #expect(spec.namespace(.namespace("rt0"))?.routes.map(\.description) == ["default via 192.168.2.254", "192.168.0.0/24 via 192.168.1.1"])
        #expect(spec.namespace(.namespace("h1"))?.routes.map(\.description) == ["default via 192.168.0.254"])
        #expect(spec.expectations.count == 1)
    }

    @Test func undeclaredPeerOfABridgeInANamespaceIsInThatNamespace() throws {
        let spec = try LabFile.load("""
            sw-lab:
              netns:
                sw:
                  ifaces:
                    br0: {type: bridge, ifaces: [p1]}
                h1:
                  ifaces:
                    e0: {type: veth, address: 10.0.0.1/24, peer: p1}
            """).spec
        #expect(spec.veths.map { "\($0.a.ref)-\($0.b.ref)" } == ["h1:e0-sw:p1"])
        #expect(spec.bridges.map { "\($0.interface.ref) \($0.ports)" } == ["sw:br0 [p1]"])
    }

    @Test func pyns2Problems() {
        expectProblem("""
            x:
              netns:
                a:
                  ifaces: {v1: {type: vlan, address: 10.0.0.1/24}}
            """, "unsupported pyns2 interface type 'vlan' (supported: veth, bridge)", at: 4, 27)
        expectProblem("""
            x:
              netns:
                a:
                  ifaces: {v1: {type: veth, adress: 10.0.0.1/24, peer: v2}}
            """, "unknown key 'adress' in pyns2 veth v1 (allowed: type, address, peer)", at: 4, 33)
        expectProblem("""
            x:
              host:
                nat: {src: 10.0.0.0/24, out_iface: eth0, out: eth1}
              netns: {}
            """, "pyns2's nat has both 'out_iface' and 'out'", at: 3, 40)
        expectProblem("""
            x:
              netns:
                a:
                  ifaces: {v1: {type: veth, peer: v2}}
                b:
                  ifaces: {v2: {type: veth, peer: v3}}
            """, "veth v1's peer v2 names v3 as its peer, not v1", at: 4, 39)
        expectProblem("""
            x:
              netns:
                a:
                  ifaces: {v1: {type: veth, address: 10.0.0.1, peer: v2}}
            """, "address 10.0.0.1 has no prefix length", at: 4, 42)
    }
}
