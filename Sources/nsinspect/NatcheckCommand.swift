#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import JSONKit
import Netlink
import Probes
import ProcNS

struct NatcheckCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "natcheck",
        abstract: "Classify a NAT by experiment: full cone, restricted cone, port-restricted cone or symmetric.",
        discussion: """
            Sends UDP from a socket inside INSIDE to OUTSIDE, and back, the way examples/nat-types.yaml does it by hand: \
            inside → an outside address and port (the outside sees the mapping); the reply; unsolicited \
            datagrams to the mapping from the contacted address on another port and from an address the \
            inside never contacted; then inside → the same address on another port and → another outside \
            address (does the mapping change?). The answer is given in RFC 4787's terms (mapping and \
            filtering: endpoint-independent, address-dependent, address-and-port-dependent), with every \
            probe's fate and the conntrack entries of NAT that decided it.

            The second outside address (the never-contacted sender) is a /32 added for the run to OUTSIDE's \
            interface on the link towards the NAT (the highest free address of its subnet) and removed \
            afterwards, unless --second-outside names another namespace to send from. The other address the \
            inside sends to is another address of OUTSIDE the NAT routes the same way, or a second temporary \
            /32. Exit status 1 when no type can be given (the inside cannot reach the outside, replies do \
            not come back, nothing is translated).
            """
    )

    @Argument(help: "The NAT's namespace (NS reference).") var nat: String
    @Option(help: "The namespace inside the NAT to send from.") var inside: String
    @Option(help: "A namespace outside the NAT to send to and from.") var outside: String
    @Option(help: "Another outside namespace, to send the never-contacted probe from (instead of a temporary address).")
    var secondOutside: String?
    @Option(help: "Bind the inside socket to this port (for a NAT whose DNAT points at a fixed port; 1–65535).")
    var insidePort: Int?
    @OptionGroup var common: CommonOptions

    func validate() throws {
        try OptionCheck.range("--inside-port", insidePort, 1...65535)
    }

    func run() throws {
        try requireCapabilities([.sysAdmin, .netAdmin], for: "natcheck")
        var resolver = NamespaceResolver()
        func open(_ reference: String) throws -> NamedNamespace { NamedNamespace(try resolver.resolve(reference), label: reference) }
        let report = try NATCheck.run(nat: try open(nat), inside: try open(inside), outside: try open(outside),
                                      secondOutside: try secondOutside.map(open), insidePort: insidePort.map { UInt16($0) })
        if common.json {
            Output.json(report.json)
        } else {
            Output.write(report.text)
        }
        if report.classification.type == nil { throw ExitCode(1) }
    }
}

extension NATCheck.Report {
    var text: String {
        var out = ""
        let c = classification
        out += "\(nat): \(c.summary)\n"
        if c.type != nil, let problem = c.problem { out += "  note: \(problem)\n" }
        for line in evidence { out += "  \(line)\n" }
        out += "\nprobes (UDP; \(plan.inside) port \(observation.insidePort) inside):\n"
        var table = Table("RESULT", "FROM", "TO", "SEEN FROM", "PROBE")
        for p in observation.probes {
            let result = p.notSent != nil ? "not sent" : p.arrived ? "arrived" : (p.role.isOutbound ? "lost" : "kept out")
            table.add(result, p.from.description, p.to.description, p.seenFrom?.description ?? (p.notSent ?? "-"), p.role.meaning)
        }
        out += table.render().split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }
            .joined(separator: "\n")
        out += "\nconntrack entries of the probes in \(nat):\n"
        if conntrack.isEmpty { out += "  none (every probe was dropped before its entry was confirmed)\n" }
        for entry in conntrack {
            var line: [UInt8] = Array("  ".utf8)
            entry.appendText(to: &line)
            if entry.isNAT {
                line += Array("  ".utf8)
                entry.appendNAT(to: &line)
            }
            out += String(decoding: line, as: UTF8.self) + "\n"
        }
        func place(_ p: (String, IPAddress)) -> String {
            let temporary = plan.temporary.contains { $0.address == p.1 } ? ", temporary" : ""
            return "\(p.1) (\(p.0)\(temporary))"
        }
        out += "\noutside: contacted \(place(plan.contacted)), second destination \(place(plan.second)), never contacted \(place(plan.stranger))\n"
        if !plan.temporary.isEmpty {
            out += "temporary addresses (removed): \(plan.temporary.map(\.description).joined(separator: ", "))\n"
        }
        return out
    }

    var json: JSON {
        var o = JSONObjectBuilder()
        let c = classification
        o.add("netns", nat)
        o.add("type", c.type.map { JSON.string($0.rawValue) } ?? .null)
        o.add("mapping", c.mapping?.rawValue)
        o.add("filtering", c.filtering?.rawValue)
        o.add("problem", c.problem)
        o.add("mapped", c.mappedAddress?.description)
        o.add("inside", .object([JSON.Member("netns", .string(plan.inside)), JSON.Member("port", .int(Int64(observation.insidePort)))]))
        func place(_ p: (String, IPAddress)) -> JSON {
            .object([JSON.Member("netns", .string(p.0)), JSON.Member("addr", .string(p.1.description)),
                     JSON.Member("temporary", .bool(plan.temporary.contains { $0.address == p.1 }))])
        }
        o.add("outside", .object([JSON.Member("contacted", place(plan.contacted)), JSON.Member("second", place(plan.second)),
                                  JSON.Member("stranger", place(plan.stranger))]))
        o.add("evidence", strings: evidence)
        o.add("probes", .array(observation.probes.map { p in
            var x = JSONObjectBuilder()
            x.add("probe", p.role.rawValue)
            x.add("from", p.from.description)
            x.add("to", p.to.description)
            x.add("arrived", p.arrived)
            x.add("seen_from", p.seenFrom?.description)
            x.add("not_sent", p.notSent)
            return x.json
        }))
        o.add("conntrack", .array(conntrack.map { entry in
            var bytes: [UInt8] = []
            ConntrackJSON.append(entry, netns: nil, to: &bytes)
            return .raw(bytes)
        }))
        return o.json
    }
}
