#if canImport(Glibc)
import Glibc
#endif
import NetAddress
import Netlink
import Probes
import ProcNS

/// natcheck's steps, for the command and for `lab test`'s `nat:` expectations: the address plan (Netlink),
/// the experiment and its classification (Probes), then the NAT namespace's conntrack entries of the probes.
public enum NATCheck {
    public struct Report {
        public var nat: String
        public var plan: Plan
        public var observation: NATObservation
        public var classification: NATClassification
        public var conntrack: [ConntrackEntry]
    }

    /// What the plan was, kept after its temporary addresses are gone.
    public struct Plan {
        public var inside: String
        public var contacted: (String, IPAddress)
        public var second: (String, IPAddress)
        public var stranger: (String, IPAddress)
        public var temporary: [TemporaryAddress]
    }

    public static func run(nat: NamedNamespace, inside: NamedNamespace, outside: NamedNamespace, secondOutside: NamedNamespace?,
                    insidePort: UInt16?) throws -> Report {
        let plan = try NATProbePlan.make(nat: nat, inside: inside, outside: outside, secondOutside: secondOutside)
        defer { plan.remove() }
        func point(_ p: (NamedNamespace, IPAddress)) -> NATOutsidePoint {
            NATOutsidePoint(namespace: p.0.handle, address: p.1, label: p.0.label)
        }
        let experiment = NATExperiment(inside: inside.handle, insidePort: insidePort, insideAddresses: plan.insideAddresses,
                                       contacted: point(plan.contacted), second: point(plan.second), stranger: point(plan.stranger))
        let observation = try experiment.run()
        var classification = NATClassification.classify(observation)
        let matches = observation.probes.map { probe in
            ConntrackMatch(protocolNumber: 17, source: probe.role.isOutbound ? nil : probe.from.address, sourcePort: probe.from.port,
                           destination: probe.to.address, destinationPort: probe.to.port)
        }
        var entries: [ConntrackEntry] = []
        entries = try ConntrackTable(in: nat.handle, label: nat.label).entries(matchingAny: matches)
        if let elsewhere = forwardedElsewhere(entries, inside: Set(plan.insideAddresses), port: observation.insidePort) {
            // A DNAT rule sends outside traffic to a fixed inside port: the unsolicited probes went there,
            // not to natcheck's socket, so "kept out" would be a wrong answer.
            classification.type = nil
            classification.problem = "the NAT forwards what arrives from outside to \(elsewhere) (DNAT), not to the port natcheck sent from (\(observation.insidePort)); run again with --inside-port \(elsewhere.port ?? 0)"
        }
        return Report(nat: nat.label,
                      plan: Plan(inside: inside.label, contacted: (plan.contacted.0.label, plan.contacted.1),
                                 second: (plan.second.0.label, plan.second.1), stranger: (plan.stranger.0.label, plan.stranger.1),
                                 temporary: plan.temporary),
                      observation: observation, classification: classification, conntrack: entries)
    }
}

extension NATCheck {
    /// The inside endpoint a DNAT in the probes' conntrack entries points at, when it is an inside
    /// address on another port than `port`.
    static func forwardedElsewhere(_ entries: [ConntrackEntry], inside: Set<IPAddress>, port: UInt16) -> NATEndpoint? {
        for entry in entries {
            for rewrite in entry.rewrites where rewrite.kind == .dnat {
                if inside.contains(rewrite.to.address), let to = rewrite.to.port, to != port { return rewrite.to }
            }
        }
        return nil
    }
}

extension NATCheck.Report {
    /// What each probe shows, in one clause: `a never-contacted address got in`.
    public var evidence: [String] {
        let c = classification
        var lines: [String] = []
        if let mapped = c.mappedAddress {
            let o = observation
            let same = [o.probe(.mappingOtherPort), o.probe(.mappingOtherAddress)].compactMap { $0?.seenFrom }
            if c.mapping == .endpointIndependent {
                lines.append("port \(o.insidePort) of \(plan.inside) appears outside as \(mapped) to every destination")
            } else if !same.isEmpty {
                lines.append("port \(o.insidePort) of \(plan.inside) appears outside as \(([mapped] + same).map(\.description).joined(separator: ", ")) for different destinations")
            }
        }
        for probe in observation.probes where probe.role == .otherPort || probe.role == .otherAddress {
            let who = probe.role == .otherPort ? "the contacted address from another port" : "a never-contacted address"
            lines.append("\(who) \(probe.arrived ? "got in" : "was kept out") (\(probe.from) → \(probe.to))")
        }
        return lines
    }
}

