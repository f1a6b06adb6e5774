import Testing
@testable import Lab

/// Each kind of bad input gives a message that says what is wrong and what was expected, at the right
/// line and column.
@Suite struct BadInputTests {
    // MARK: reading

    @Test func malformedYAML() throws {
        let found = problems(try Files.text("Tests/LabTests/Fixtures/malformed.yaml"))
        #expect(found.count == 1)
        #expect(found.first?.message.hasPrefix("malformed YAML: did not find expected ',' or ']'") == true)
        #expect(found.first.map { ($0.position.line, $0.position.column) } ?? (0, 0) == (5, 8))
    }

    @Test func emptyFileAndWrongRoot() {
        expectProblem("", "the file is empty; expected a lab", at: 1, 1)
        expectProblem("- a\n- b\n", "expected a lab: a mapping with 'lab:' at the top (or a pyns2 file), found a list", at: 1, 1)
        expectProblem("namespaces: [a]\n", "a lab file needs 'lab: NAME'", at: 1, 1)
    }

    @Test func unknownKeysAreNamedWithTheAllowedOnes() {
        expectProblem("""
            lab: x
            namespace:
              a:
            """, "unknown key 'namespace' in a lab file (allowed: lab, namespaces, host, links, bridges, expect)", at: 2, 1)
        expectProblem("""
            lab: x
            namespaces: [a, b]
            links:
              - a: {name: a:e0, adress: 10.0.0.1/24}
                b: b:e0
            """, "unknown key 'adress' in a link end (allowed: name, address, addresses, mac, mtu, up)", at: 4, 21)
        expectProblem("""
            lab: x
            namespaces:
              a:
                routs: [default via 10.0.0.1]
            """, "unknown key 'routs' in the settings of namespace a (allowed: loopback, forwarding, sysctls, routes, nat, filter, nftables)", at: 4, 5)
        expectProblem("""
            lab: x
            host:
              loopback: false
            """, "unknown key 'loopback' in the host's settings (allowed: forwarding, sysctls, routes, nat, filter, nftables)", at: 3, 3)
        expectProblem("""
            lab: x
            namespaces: [a]
            expect:
              - pingable: {from: a, to: a}
            """, "unknown expectation 'pingable' (allowed: reach, unreachable, ttl, hops, nat, path)", at: 4, 5)
        expectProblem("""
            lab: x
            namespaces:
              a:
                nat:
                  - dnat: {in: e0, dport: 80, to: 10.0.0.2}
            """, "unknown key 'dport' in a dnat rule (allowed: to, in, src, dst, proto, port)", at: 5, 24)
    }

    @Test func wrongShapes() {
        expectProblem("lab: x\nnamespaces: 5\n", "expected a mapping of namespace names to their settings (or a list of names), found '5'", at: 2, 13)
        expectProblem("lab: x\nnamespaces: [a]\nlinks:\n  - {a: a:e0}\n", "a link needs 'b'", at: 4, 5)
        expectProblem("lab: x\nnamespaces: [a, b]\nlinks:\n  - {a: e0, b: b:e0}\n", "expected NS:IFNAME (host:IFNAME for the host), found 'e0'", at: 4, 9)
        expectProblem("lab: x\nnamespaces:\n  a: {forwarding: maybe}\n", "expected true, false, ipv4 or ipv6 for forwarding, found 'maybe'", at: 3, 19)
        expectProblem("lab: x\nnamespaces:\n  a: {routes: [default via 10.0.0.1 metrik 5]}\n", "unexpected 'metrik' in a route (expected via, dev, metric or onlink)", at: 3, 37)
        expectProblem("lab: x\nnamespaces:\n  a: {loopback: true, loopback: false}\n", "duplicate key 'loopback' in one mapping", at: 3, 7)
    }

    // MARK: names

    @Test func labAndNamespaceNames() {
        expectProblem("lab: a/b\n", "invalid lab name 'a/b': name contains '/'", at: 1, 6)
        expectProblem("lab: x\nnamespaces:\n  host:\n", "'host' means the host namespace; give the lab's namespace another name", at: 3, 3)
        expectProblem("lab: x\nnamespaces:\n  -a:\n", "invalid namespace name '-a': name starts with '-'", at: 3, 3)
        expectProblem("lab: x\nnamespaces: [a, a]\n", "namespace 'a' is defined twice (first at 2:14)", at: 2, 17)
        expectProblem("lab: x\nnamespaces:\n  a:\n  a:\n", "duplicate key 'a' in one mapping", at: 3, 3)
    }

    @Test func interfaceNames() {
        expectProblem("""
            lab: x
            namespaces: [a, b]
            links:
              - {a: a:this-name-is-too-long, b: b:e0}
            """, "invalid interface name 'this-name-is-too-long': longer than 15 bytes", at: 4, 9)
        expectProblem("""
            lab: x
            namespaces: [a, b]
            links:
              - a: {name: "a:e 0"}
                b: b:e0
            """, "invalid interface name 'e 0': contains white space", at: 4, 8)
        expectProblem("""
            lab: x
            namespaces: [a, b]
            links:
              - {a: a:e0, b: b:lo}
            """, "'lo' is the loopback interface, which every namespace has already", at: 4, 18)
        #expect(InterfaceNames.validationProblem("..") == "'..' is not a name")
        #expect(InterfaceNames.validationProblem("a/b") == "contains '/'")
        #expect(InterfaceNames.validationProblem("eth%d") != nil)
        #expect(InterfaceNames.validationProblem("123456789012345") == nil)
    }

    @Test func interfaceInTwoLinksAndDuplicateNames() {
        expectProblem("""
            lab: x
            namespaces: [a, b, c]
            links:
              - {a: a:e0, b: b:e0}
              - {a: a:e0, b: c:e0}
            """, "a:e0 is an end of two links (first at 4:9)", at: 5, 9)
        expectProblem("""
            lab: x
            namespaces: [a, b]
            links:
              - {a: a:br0, b: b:e0}
            bridges:
              - name: a:br0
            """, "interface a:br0 is defined twice (first at 4:9)", at: 6, 5)
    }

    // MARK: references

    @Test func undefinedNamespacesAndInterfaces() {
        expectProblem("""
            lab: x
            namespaces: [a]
            links:
              - {a: a:e0, b: rtr1:e0}
            """, "namespace 'rtr1' is not a namespace of the lab (namespaces: a; host for the host)", at: 4, 18)
        expectProblem("""
            lab: x
            namespaces:
              a:
                routes: [10.9.0.0/16 dev eth9]
            links:
              - {a: a:eth0 10.0.0.1/24, b: host:v0 10.0.0.2/24}
            """, "dev 'eth9' is not an interface of a (its interfaces: lo, eth0)", at: 4, 14)
        expectProblem("""
            lab: x
            bridges:
              - name: host:br0
                ports: [p1]
            """, "port p1 of bridge br0 is not a link end of the lab in host", at: 4, 13)
        expectProblem("""
            lab: x
            namespaces: [a]
            links:
              - {a: a:p1, b: host:v0}
            bridges:
              - {name: host:br0, ports: [p1]}
            """, "port p1 of bridge br0 is in a, not in host (a bridge's ports are in its namespace)", at: 6, 30)
        expectProblem("""
            lab: x
            namespaces:
              a:
                nat:
                  - masquerade: {out: wan9}
            """, "out 'wan9' is not an interface of a (its interfaces: lo)", at: 5, 27)
        expectProblem("""
            lab: x
            namespaces:
              a:
                nat:
                  - full-cone: {inside: lan0, outside: lo, host: 10.0.0.1, port: 5}
            """, "inside 'lan0' is not an interface of a (its interfaces: lo)", at: 5, 29)
    }

    @Test func expectationsReferringToUnknownNamespaces() {
        expectProblem("""
            lab: x
            namespaces: [a]
            expect:
              - reach: {from: b, to: 10.0.0.1}
            """, "from 'b' is not a namespace of the lab (namespaces: a; host for the host)", at: 4, 5)
        expectProblem("""
            lab: x
            namespaces: [a]
            expect:
              - ttl: {from: a, to: nowhere, equals: 62}
            """, "to 'nowhere' is not a namespace of the lab", at: 4, 5)
        expectProblem("""
            lab: x
            namespaces: [a]
            expect:
              - nat: {ns: a-nat, type: full-cone}
            """, "ns 'a-nat' is not a namespace of the lab", at: 4, 5)
        expectProblem("""
            lab: x
            namespaces: [a, b]
            expect:
              - reach: {from: a, to: b}
            """, "to: b has no global address to send to", at: 4, 5)
        expectProblem("""
            lab: x
            namespaces: [a]
            expect:
              - reach: {from: a, to: 10.9.9.9, udp: 53}
            """, "no namespace of the lab has 10.9.9.9: say where the datagram should arrive with listen: NS[:PORT]", at: 4, 5)
        expectProblem("""
            lab: x
            namespaces: [a]
            expect:
              - nat: {ns: a, type: cone}
            """, "expected a NAT type (full-cone, restricted-cone, port-restricted-cone, symmetric), found 'cone'", at: 4, 24)
    }

    // MARK: addresses

    @Test func addressesWithoutPrefixLengthAndInvalidPrefixes() {
        expectProblem("""
            lab: x
            namespaces: [a, b]
            links:
              - {a: a:e0 10.0.0.1, b: b:e0}
            """, "address 10.0.0.1 has no prefix length (write 10.0.0.1/24 or the length of its network)", at: 4, 14)
        expectProblem("""
            lab: x
            namespaces: [a, b]
            links:
              - a: {name: a:e0, addresses: [10.0.0.1/24, "fd00::1"]}
                b: b:e0
            """, "address fd00::1 has no prefix length (write fd00::1/64", at: 4, 47)
        expectProblem("""
            lab: x
            namespaces: [a, b]
            links:
              - {a: a:e0 10.0.0.1/33, b: b:e0}
            """, "invalid prefix length '33' in 10.0.0.1/33 (an IPv4 prefix length is 0 to 32)", at: 4, 14)
        expectProblem("""
            lab: x
            namespaces: [a, b]
            links:
              - {a: a:e0 10.0.0/24, b: b:e0}
            """, "expected an IPv4 or IPv6 address with prefix length (10.0.1.10/24), found '10.0.0/24'", at: 4, 14)
        expectProblem("""
            lab: x
            namespaces:
              a: {routes: [10.0.1.5/24 dev e0]}
            links:
              - {a: a:e0 10.0.0.1/24, b: host:v0}
            """, "route destination 10.0.1.5/24 has host bits set (write 10.0.1.0/24)", at: 3, 16)
        expectProblem("""
            lab: x
            namespaces: [a, b]
            links:
              - {a: a:e0 10.0.0.0/24, b: b:e0 10.0.0.2/24}
            """, "10.0.0.0/24 is the network address of its subnet, not a host address", at: 4, 14)
    }

    @Test func sameAddressOnOneLinkAndOverlappingSubnets() {
        expectProblem("""
            lab: x
            namespaces: [a, b]
            links:
              - {a: a:e0 10.0.0.1/24, b: b:e0 10.0.0.1/24}
            """, "address 10.0.0.1 is already on a:e0 (at 4:14), on the same link", at: 4, 35)
        expectProblem("""
            lab: x
            namespaces: [a, b, c]
            links:
              - {a: a:e0 10.0.0.1/24, b: host:b1}
              - {a: b:e0 10.0.0.1/24, b: host:b2}
              - {a: c:e0 10.0.0.9/24, b: host:b3}
            bridges:
              - {name: host:br0, ports: [b1, b2]}
            """, "address 10.0.0.1 is already on a:e0 (at 4:14), on the same link", at: 5, 14)
        expectProblem("""
            lab: x
            namespaces: [r, a, b]
            links:
              - {a: r:e0 10.0.0.1/24, b: a:e0 10.0.0.2/24}
              - {a: r:e1 10.0.0.129/25, b: b:e0 10.0.0.130/25}
            """, "10.0.0.129/25 on r:e1 overlaps 10.0.0.1/24 on r:e0 (at 4:14), which is on another link", at: 5, 14)
        // The same subnet twice on one segment is fine (the container-bridge lab does it in the host).
        #expect(problems("""
            lab: x
            namespaces: [a]
            links:
              - {a: host:v0 10.0.0.1/24, b: host:v0-br}
              - {a: a:e0 10.0.0.3/24, b: host:a-br}
            bridges:
              - {name: host:br0, address: 10.0.0.2/24, ports: [v0-br, a-br]}
            """).isEmpty)
    }

    // MARK: routes

    @Test func routesThroughNoConnectedNetwork() {
        let link = "links:\n  - {a: a:e0 10.0.0.1/24, b: host:v0 10.0.0.2/24}\n"
        expectProblem("lab: x\nnamespaces:\n  a:\n    routes: [default via 10.0.9.1]\n" + link,
            "gateway 10.0.9.1 is on no network of a (networks: 10.0.0.0/24 on e0); add onlink: true if that is intended", at: 4, 14)
        #expect(problems("lab: x\nnamespaces:\n  a:\n    routes: [default via 10.0.9.1 dev e0 onlink]\n" + link).isEmpty)
        expectProblem("lab: x\nnamespaces:\n  a:\n    routes:\n      - {to: fd00:2::/64, via: fd00:1::1, dev: e0}\n" + link,
            "dev e0 has no IPv6 address, so gateway fd00:1::1 cannot be reached through it (add one, or onlink: true)", at: 5, 9)
        expectProblem("lab: x\nnamespaces:\n  a:\n    routes: [default via 10.0.0.1]\n" + link,
            "gateway 10.0.0.1 is an address of a itself", at: 4, 14)
        expectProblem("lab: x\nnamespaces:\n  a:\n    routes: [blackhole 10.1.0.0/16 via 10.0.0.2]\n" + link,
            "a blackhole route takes no via or dev", at: 4, 14)
        expectProblem("lab: x\nnamespaces:\n  a:\n    routes: [default via 10.0.0.2, default via 10.0.0.2 dev e0]\n" + link,
            "a route to 0.0.0.0/0 with metric 0 is already defined in a (at 4:14)", at: 4, 36)
        expectProblem("lab: x\nnamespaces:\n  a:\n    routes: [default via fe80::1]\n" + link,
            "a link-local gateway needs dev", at: 4, 14)
    }

    // MARK: rules and sysctls

    @Test func rulesAndSysctls() {
        let link = "links:\n  - {a: a:lan0 10.0.0.1/24, b: host:v0 10.0.0.2/24}\n  - {a: a:wan0 192.0.2.1/24, b: host:v1}\n"
        expectProblem("lab: x\nnamespaces:\n  a:\n    nat:\n      - full-cone: {inside: lan0, outside: wan0, host: 10.0.0.2}\n" + link,
            "a full-cone NAT needs port: the mapped port seen outside", at: 5, 9)
        expectProblem("lab: x\nnamespaces:\n  a:\n    nat:\n      - symmetric: {inside: lan0, outside: wan0, port: 5}\n" + link,
            "a symmetric NAT maps each destination to a new port: it takes no port or host-port", at: 5, 9)
        expectProblem("lab: x\nnamespaces:\n  a:\n    nat:\n      - snat: {out: wan0, to: 192.0.2.1:80}\n" + link,
            "a port in 'to: 192.0.2.1:80' needs proto: udp or tcp", at: 5, 9)
        expectProblem("lab: x\nnamespaces:\n  a:\n    nat:\n      - full-cone: {inside: lan0, outside: wan0, host: 10.0.9.2, port: 5}\n" + link,
            "host 10.0.9.2 is on no network of inside interface lan0 (10.0.0.0/24)", at: 5, 9)
        expectProblem("lab: x\nnamespaces:\n  a:\n    filter:\n      rules:\n        - accept: {chain: input, dport: 22}\n" + link,
            "a port match needs proto: udp or tcp", at: 6, 11)
        expectProblem("lab: x\nnamespaces:\n  a:\n    filter:\n      forward: reject\n" + link,
            "expected accept or drop as the forward policy, found 'reject'", at: 5, 16)
        expectProblem("lab: x\nnamespaces:\n  a:\n    sysctls: {kernel.pid_max: 5000}\n",
            "sysctl kernel.pid_max is not per namespace; only net.* sysctls are", at: 4, 15)
        expectProblem("lab: x\nnamespaces:\n  a:\n    forwarding: true\n    sysctls: {net.ipv4.ip_forward: 0}\n",
            "sysctl net.ipv4.ip_forward is set twice in a (first at 4:17)", at: 5, 15)
    }

    @Test func errorsListEveryProblemInFileOrderWithThePath() {
        do {
            _ = try LabFile.load("lab: x\nnamespaces: [a, a, host]\n", path: "lab.yaml")
            Issue.record("no error")
        } catch {
            #expect(error.description == """
                lab.yaml:2:17: namespace 'a' is defined twice (first at 2:14)
                lab.yaml:2:20: 'host' means the host namespace; give the lab's namespace another name
                """)
            #expect(error.operationErrors("lab up").first?.description == "lab up: lab.yaml:2:17: namespace 'a' is defined twice (first at 2:14)")
        }
    }
}
