import NetAddress

/// RFC 4787's words for how a NAT maps (§4.1) and filters (§5): on what the outside endpoint it depends.
public enum NATBehaviour: String, Sendable, Hashable {
    case endpointIndependent = "endpoint-independent"
    case addressDependent = "address-dependent"
    case addressAndPortDependent = "address-and-port-dependent"
}

/// The four classic NAT types (RFC 3489's names), by their RFC 4787 behaviour.
public enum NATClass: String, Sendable, Hashable, CaseIterable {
    /// Endpoint-independent mapping and filtering.
    case fullCone = "full-cone"
    /// Endpoint-independent mapping, address-dependent filtering.
    case restrictedCone = "restricted-cone"
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    case portRestrictedCone = "port-restricted-cone"
    /// A mapping that depends on the destination.
    case symmetric

    public var words: String { rawValue.replacingDashes }
}

/// What the probes say: the type, the two behaviours, and why there is no type when there is none.
public struct NATClassification: Sendable, Hashable {
    public var type: NATClass?
    public var mapping: NATBehaviour?
    public var filtering: NATBehaviour?
    /// Why no type could be given: the outside was not reached, replies do not come back, nothing is
    /// translated, or the probes contradict each other.
    public var problem: String?
    /// The mapping as the outside saw it (the NAT's address and port for the inside socket).
    public var mappedAddress: UDPAddress?

    /// Classifies an observation. Pure: the decision table of RFC 4787 applied to which probe arrived.
    public static func classify(_ o: NATObservation) -> NATClassification {
        var result = NATClassification()
        guard let first = o.probe(.mapping) else { return result.failing("no probe was sent") }
        guard first.arrived, let mapped = first.seenFrom else {
            let why = first.notSent.map { "the inside could not send (\($0))" } ?? "nothing arrived within the time allowed"
            return result.failing("the inside cannot reach the outside: \(first.from.port == 0 ? "" : "from port \(first.from.port) ")to \(first.to): \(why); no NAT type can be measured")
        }
        result.mappedAddress = mapped
        if o.insideAddresses.contains(mapped.address) {
            return result.failing("no translation: the outside sees the inside's own address \(mapped); this is routing, not NAT")
        }
        guard let reply = o.probe(.reply), reply.arrived else {
            return result.failing("the contacted endpoint's reply to \(mapped) did not come back in: the NAT (or a filter next to it) drops even replies, which none of the four types does")
        }

        let samePort = o.probe(.mappingOtherPort), otherAddress = o.probe(.mappingOtherAddress)
        if let a = samePort?.seenFrom, let b = otherAddress?.seenFrom {
            if a != mapped {
                result.mapping = .addressAndPortDependent
            } else {
                result.mapping = b == mapped ? .endpointIndependent : .addressDependent
            }
        } else if let a = samePort?.seenFrom, a != mapped {
            result.mapping = .addressAndPortDependent
        }

        let byPort = o.probe(.otherPort)?.arrived, byAddress = o.probe(.otherAddress)?.arrived
        switch (byPort, byAddress) {
        case (true?, true?): result.filtering = .endpointIndependent
        case (true?, false?): result.filtering = .addressDependent
        case (false?, false?): result.filtering = .addressAndPortDependent
        case (false?, true?):
            result.problem = "the probes disagree: a never-contacted address got in, but the contacted address from another port did not"
        default:
            break
        }

        switch result.mapping {
        case .endpointIndependent?:
            switch result.filtering {
            case .endpointIndependent?: result.type = .fullCone
            case .addressDependent?: result.type = .restrictedCone
            case .addressAndPortDependent?: result.type = .portRestrictedCone
            case nil: break
            }
        case .addressDependent?, .addressAndPortDependent?:
            result.type = .symmetric
        case nil:
            let missing = [samePort, otherAddress].compactMap { $0 }.filter { !$0.arrived }.map { "\($0.to)" }
            result.problem = result.problem ?? "the mapping could not be measured: \(missing.isEmpty ? "probes missing" : "nothing arrived at " + missing.joined(separator: ", "))"
        }
        return result
    }

    private func failing(_ why: String) -> NATClassification {
        var copy = self
        copy.problem = why
        return copy
    }

    /// One line: `full cone (mapping endpoint-independent, filtering endpoint-independent)`.
    public var summary: String {
        var parts: [String] = []
        if let mapping { parts.append("mapping \(mapping.rawValue)") }
        if let filtering { parts.append("filtering \(filtering.rawValue)") }
        let behaviour = parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")"
        if let type { return type.words + behaviour }
        return "unclassified" + behaviour + (problem.map { ": " + $0 } ?? "")
    }
}

extension String {
    fileprivate var replacingDashes: String { String(map { $0 == "-" ? " " : $0 }) }
}
