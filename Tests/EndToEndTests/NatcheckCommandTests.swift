import Foundation
import Testing
import TestSupport

/// `nsinspect natcheck` on the nat-types labs of examples/nat-types.yaml (the author's hand-written rules and the three
/// variants made of one-word NAT types), each NAT checked against what plain UDP sockets observe through it
/// (`UDPWitness`): the type the test expects is computed from those observations, never taken from the lab
/// author's labels. Then bad input: an inside that cannot reach the outside, unknown
/// namespaces; and natcheck must never leave a temporary address behind.
@Suite("natcheck (end to end)", .serialized)
struct NatcheckCommandTests {
    /// The examples, and the port the inside socket is bound to in each: the cones' (and the hand-written
    /// rules') DNAT points at the node's port 12345, so that is the port whose mapping is measured; the
    /// symmetric NAT maps any port (0: the kernel chooses).
    static let labs: [(example: String, insidePort: Int)] = [
        ("nat-types.yaml", 12345), ("nat-types-cone.yaml", 12345), ("nat-types-port-restricted.yaml", 12345),
        ("nat-types-symmetric.yaml", 0),
    ]

    /// Addresses for the witnesses' outside sockets: /32s on inet's `lo` (reached through the NATs' default
    /// route), fresh for every NAT so that no filter can remember them from an earlier probe.
    static func witnessAddresses(_ index: Int) -> [String] {
        (1...3).map { "198.18.\(index).\($0)" }
    }

    @Test(arguments: labs.map(\.example))
    func natcheckAgreesWithWhatUDPWitnessesSee(_ example: String) throws {
        let insidePort = try #require(Self.labs.first { $0.example == example }).insidePort
        let scratch = Scratch("natc")
        let lab = try NATLab(scratch, example: example)
        defer { lab.finish() }
        let inet = lab.ns("inet")

        for (index, node) in ["c0", "c1"].enumerated() {
            let nat = lab.ns("\(node)-nat"), inside = lab.ns(node)

            // Ground truth first, with addresses natcheck never uses (removed again before it runs).
            let addresses = Self.witnessAddresses(index + 1)
            for address in addresses { try Shell.must("ip", "-n", inet, "addr", "add", "\(address)/32", "dev", "lo") }
            let observed = try UDPWitness.run(UDPWitness.natExperiment,
                                              ["inside": inside, "port": insidePort, "outside": inet, "addresses": addresses])
            for address in addresses { try Shell.must("ip", "-n", inet, "addr", "del", "\(address)/32", "dev", "lo") }
            let truth = NATGroundTruth(observed)
            try #require(truth.mapping != nil && truth.reply, "\(nat): the witnesses got nothing through: \(truth)")
            let expected = try #require(truth.type, "\(nat): the witnesses' observations contradict each other: \(truth)")

            let before = try addressList(inet)
            var arguments = ["natcheck", nat, "--inside", inside, "--outside", inet, "--json"]
            if insidePort != 0 { arguments += ["--inside-port", String(insidePort)] }
            let result = nsinspect(arguments: arguments)
            #expect(result.status == 0, "\(result)")
            let report = try #require(try Shell.json(result.stdout) as? [String: Any], "\(result)")
            #expect(report["type"] as? String == expected, "\(nat): natcheck says \(report["type"] ?? "nil"); the witnesses saw \(truth)\n\(result.stdout)")
            #expect(report["mapping"] as? String == truth.mappingBehaviour, "\(nat): \(truth)")
            #expect(report["filtering"] as? String == truth.filteringBehaviour, "\(nat): \(truth)")
            #expect(report["problem"] == nil || report["problem"] is NSNull, "\(nat): \(report["problem"] ?? "")")

            // natcheck's own probes saw what the witnesses saw.
            let probes = try #require(report["probes"] as? [[String: Any]])
            func arrived(_ name: String) -> Bool? { probes.first { $0["probe"] as? String == name }?["arrived"] as? Bool }
            #expect(arrived("mapping") == true && arrived("reply") == true, "\(nat): \(probes)")
            #expect(arrived("other-port") == truth.otherPort, "\(nat): \(truth)")
            #expect(arrived("other-address") == truth.otherAddress, "\(nat): \(truth)")
            // The mapping is on the NAT's outside address; with the cones' fixed SNAT it is the very same
            // address and port the witnesses saw.
            let mapped = try #require(report["mapped"] as? String)
            let witnessMapped = try #require(truth.mapping)
            #expect(mapped.split(separator: ":").first == witnessMapped.split(separator: ":").first, "\(mapped) vs \(witnessMapped)")
            if truth.mappingBehaviour == "endpoint-independent" { #expect(mapped == witnessMapped) }
            // The conntrack entries natcheck shows are the NAT's entries of its probes.
            let entries = try #require(report["conntrack"] as? [[String: Any]])
            #expect(!entries.isEmpty, "\(nat): no conntrack entries in the report")
            #expect(entries.allSatisfy { $0["protocol"] as? String == "udp" })

            // Every temporary address is gone, and the text report says what it used.
            #expect(try addressList(inet) == before, "natcheck left addresses behind in \(inet)")
            let outside = try #require(report["outside"] as? [String: [String: Any]])
            let temporary = outside.values.filter { $0["temporary"] as? Bool == true }.compactMap { $0["addr"] as? String }
            for address in temporary { #expect(!before.contains { $0.hasPrefix(address + "/") }) }
        }
    }

    /// The same run in text: the type in words, each probe's fate, and the temporary addresses it removed.
    @Test func textReportNamesTypeProbesAndRemovedAddresses() throws {
        let scratch = Scratch("natt")
        let lab = try NATLab(scratch, example: "nat-types.yaml")
        defer { lab.finish() }
        let (nat, inside, inet) = (lab.ns("c0-nat"), lab.ns("c0"), lab.ns("inet"))
        let before = try addressList(inet)
        let result = nsinspect("natcheck", nat, "--inside", inside, "--outside", inet, "--inside-port", "12345")
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "\(nat): full cone (mapping endpoint-independent, filtering endpoint-independent)", "\(result)")
        #expect(result.stdout.contains("port 12345 of \(inside) appears outside as 100.64.1.100:54321 to every destination"), "\(result)")
        for probe in ["from the inside to the contacted endpoint", "unsolicited, from an address the inside never contacted"] {
            #expect(lines.contains { $0.contains(probe) && $0.contains("arrived") }, "\(probe): \(result)")
        }
        #expect(result.stdout.contains("temporary addresses (removed): "), "\(result)")
        #expect(lines.contains { $0.contains("DNAT 100.64.1.100:54321 → 10.0.1.1:12345") }, "\(result)")
        #expect(try addressList(inet) == before)
    }

    // MARK: Bad input

    /// inside — nat — outside over veths, but the NAT namespace does not forward (or the inside has no route
    /// at all): natcheck says the inside cannot reach the outside, gives no type, exits 1, and removes its
    /// temporary addresses.
    @Test(arguments: ["no forwarding", "no route"])
    func insideThatCannotReachTheOutsideGetsNoType(_ damage: String) throws {
        let scratch = Scratch("natu")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty, "\(scratch.leftovers())") }
        let inside = try scratch.addNamespace("in"), nat = try scratch.addNamespace("nat"), outside = try scratch.addNamespace("out")
        try Shell.must("ip", "link", "add", "eth0", "netns", inside, "type", "veth", "peer", "name", "lan0", "netns", nat)
        try Shell.must("ip", "link", "add", "wan0", "netns", nat, "type", "veth", "peer", "name", "eth0", "netns", outside)
        for (ns, dev, address) in [(inside, "eth0", "10.9.1.1/24"), (nat, "lan0", "10.9.1.100/24"), (nat, "wan0", "100.64.9.100/24"),
                                   (outside, "eth0", "100.64.9.254/24")] {
            try Shell.must("ip", "-n", ns, "addr", "add", address, "dev", dev)
            try Shell.must("ip", "-n", ns, "link", "set", dev, "up")
        }
        try Shell.must("ip", "netns", "exec", nat, "nft",
                       "table ip t { chain post { type nat hook postrouting priority srcnat; oifname \"wan0\" masquerade; }; }")
        if damage == "no forwarding" {
            try Shell.must("ip", "-n", inside, "route", "add", "default", "via", "10.9.1.100")
        }
        let before = try addressList(outside)
        let result = nsinspect("natcheck", nat, "--inside", inside, "--outside", outside, "--json")
        #expect(result.status == 1, "\(result)")
        let report = try #require(try Shell.json(result.stdout) as? [String: Any], "\(result)")
        #expect(report["type"] is NSNull, "\(result)")
        #expect(report["mapping"] == nil || report["mapping"] is NSNull)
        let problem = report["problem"] as? String ?? ""
        #expect(problem.contains("the inside cannot reach the outside") && problem.contains("no NAT type can be measured"), "\(problem)")
        if damage == "no route" { #expect(problem.contains("could not send"), "\(problem)") }
        let probes = try #require(report["probes"] as? [[String: Any]])
        #expect(probes.count == 1 && probes.first?["arrived"] as? Bool == false, "only the first probe is sent: \(probes)")
        #expect(try addressList(outside) == before, "natcheck left addresses behind")

        let text = nsinspect("natcheck", nat, "--inside", inside, "--outside", outside)
        #expect(text.status == 1)
        #expect(text.stdout.hasPrefix("\(nat): unclassified: the inside cannot reach the outside"), "\(text)")
        #expect(try addressList(outside) == before, "natcheck left addresses behind")
    }

    @Test func unknownNamespacesAreNamedInOneLine() throws {
        let scratch = Scratch("natn")
        defer { scratch.cleanup() }
        let missing = scratch.name("missing")
        let nat = try scratch.addNamespace("nat")
        for arguments in [["natcheck", missing, "--inside", nat, "--outside", nat],
                          ["natcheck", nat, "--inside", missing, "--outside", nat],
                          ["natcheck", nat, "--inside", nat, "--outside", missing]] {
            let result = nsinspect(arguments: arguments)
            #expect(result.status != 0, "\(result)")
            #expect(result.stdout.isEmpty, "\(result)")
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("natcheck: ") && lines[0].contains(missing), "\(result)")
        }
        #expect(scratch.leftovers().allSatisfy { !$0.contains(missing) })
    }
}
