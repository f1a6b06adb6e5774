import Foundation
import Testing
@testable import Lab

/// Runs `nft -c -f -` (check only: the kernel validates the transaction without committing it) in a
/// throwaway network namespace, so nothing of the host is touched. Needs root, as CI has.
func nftCheck(_ text: String) throws -> (status: Int32, errors: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
    process.arguments = ["--net", "nft", "-c", "-f", "-"]
    let input = Pipe(), errors = Pipe()
    process.standardInput = input
    process.standardError = errors
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    input.fileHandleForWriting.write(Data(text.utf8))
    try input.fileHandleForWriting.close()
    let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, message)
}

let isRoot = getuid() == 0

@Suite struct NftTests {
    @Test(.enabled(if: isRoot, "nft -c needs CAP_NET_ADMIN"), arguments: Files.examples)
    func exampleRulesetsPassNftCheck(path: String) throws {
        let plan = LabPlan.make(try Files.lab(path).spec)
        for (place, text) in plan.rulesets {
            let result = try nftCheck(text)
            #expect(result.status == 0, "\(path), \(place):\n\(result.errors)\n\(text)")
        }
    }

    @Test(.enabled(if: isRoot, "nft -c needs CAP_NET_ADMIN"))
    func everyRuleKindPassesNftCheck() throws {
        let spec = try LabFile.load("""
            lab: every-rule
            namespaces:
              r:
                nat:
                  - masquerade: {src: 10.0.0.0/24, out: wan0, random: true}
                  - masquerade: {}
                  - snat: {src: "fd00::/64", out: wan0, proto: tcp, sport: 80, to: "[fd00:1::1]:8080"}
                  - snat: {dst: 192.0.2.0/24, to: 192.0.2.1}
                  - dnat: {in: wan0, proto: tcp, port: 443, dst: 192.0.2.1, to: 10.0.0.2:8443}
                  - dnat: {in: wan0, proto: udp, to: 10.0.0.2}
                filter:
                  output: drop
                  rules:
                    - accept: {chain: output, out: lan0, proto: icmp}
                    - accept: {chain: output, proto: icmpv6}
                    - reject: {chain: input, in: wan0, proto: tcp, dport: 22}
                    - drop: {chain: forward, ct-state: "invalid,untracked", ct-status: [snat, dnat]}
                    - accept: {chain: forward, src: 10.0.0.2, dst: 192.0.2.9, proto: udp, sport: 1, dport: 2}
                nftables: |
                  chain extra {
                    type filter hook prerouting priority raw; policy accept;
                    udp dport 9 notrack
                  }
            links:
              - {a: r:lan0 10.0.0.1/24 fd00::1/64, b: host:v0 10.0.0.2/24}
              - {a: r:wan0 192.0.2.1/24 fd00:1::1/64, b: host:v1 192.0.2.9/24}
            """).spec
        let (_, text) = try #require(LabPlan.make(spec).rulesets.first)
        let result = try nftCheck(text)
        #expect(result.status == 0, "\(result.errors)\n\(text)")
    }

    @Test(.enabled(if: isRoot, "nft -c needs CAP_NET_ADMIN"))
    func aBrokenRulesetIsRefused() throws {
        #expect(try nftCheck("table inet x { chain y { nonsense } }").status != 0)
    }

    /// The restricted cone, spelled out: the set of contacted addresses is filled by the mapped flow on its
    /// way out, and only those addresses get in through the DNAT.
    @Test func restrictedConeRuleset() throws {
        let spec = try Files.lab("examples/nat-types-cone.yaml").spec
        let text = try #require(LabPlan.make(spec).rulesets.first { $0.place == .namespace("ns-c1-nat") }?.text)
        #expect(text == """
            table inet nsinspect-nat-types-cone
            delete table inet nsinspect-nat-types-cone
            table inet nsinspect-nat-types-cone {
            \tset contacted {
            \t\ttype ipv4_addr
            \t\tflags dynamic,timeout
            \t\ttimeout 120s
            \t}
            \tchain prerouting {
            \t\ttype nat hook prerouting priority dstnat; policy accept;
            \t\tiifname "wan0" ip daddr 100.64.2.100 udp dport 54321 dnat ip to 10.0.2.1:12345
            \t}
            \tchain postrouting {
            \t\ttype nat hook postrouting priority srcnat; policy accept;
            \t\toifname "wan0" ip saddr 10.0.2.1 udp sport 12345 snat ip to 100.64.2.100:54321
            \t\toifname "wan0" ip saddr 10.0.2.0/24 masquerade
            \t}
            \tchain input {
            \t\ttype filter hook input priority filter; policy drop;
            \t\tct state established,related accept
            \t\tiifname "lo" accept
            \t\tiifname "lan0" accept
            \t\tmeta l4proto { icmp, ipv6-icmp } accept
            \t}
            \tchain forward {
            \t\ttype filter hook forward priority filter; policy drop;
            \t\tct state established,related accept
            \t\tiifname "lan0" ip saddr 10.0.2.1 udp sport 12345 update @contacted { ip daddr }
            \t\tiifname "lan0" accept
            \t\tiifname "wan0" ip daddr 10.0.2.1 udp dport 12345 ct status dnat ip saddr @contacted accept
            \t}
            }

            """)
    }

    @Test func eachNATTypeFiltersAsNamed() throws {
        func forward(_ type: String) throws -> String {
            let yaml = """
                lab: t
                namespaces:
                  n:
                    nat:
                      - \(type): {inside: lan0, outside: wan0\(type == "symmetric" ? "" : ", host: 10.0.0.2, port: 5000")}
                links:
                  - {a: n:lan0 10.0.0.1/24, b: host:v0}
                  - {a: n:wan0 192.0.2.1/24, b: host:v1}
                """
            return try #require(LabPlan.make(try LabFile.load(yaml).spec).rulesets.first?.text)
        }
        #expect(try forward("full-cone").contains("iifname \"wan0\" ip daddr 10.0.0.2 udp dport 5000 ct status dnat accept"))
        #expect(try forward("port-restricted-cone").contains("type ipv4_addr . inet_service"))
        #expect(try forward("port-restricted-cone").contains("ct status dnat ip saddr . udp sport @contacted accept"))
        #expect(try forward("port-restricted-cone").contains("update @contacted { ip daddr . udp dport }"))
        let symmetric = try forward("symmetric")
        #expect(symmetric.contains("oifname \"wan0\" ip saddr 10.0.0.0/24 masquerade random"))
        #expect(!symmetric.contains("dnat"))
    }
}
