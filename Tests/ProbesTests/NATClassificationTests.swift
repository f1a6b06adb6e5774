import NetAddress
import Testing

@testable import Probes

/// `NATClassification.classify`: RFC 4787's decision table applied to which probe arrived, and the refusals
/// to guess (nothing reached the outside, no translation, replies dropped, probes that contradict).
@Suite("NAT classification")
struct NATClassificationTests {
    static let inside = UDPAddress(IPAddress("10.0.1.1")!, 12345)
    static let contacted = UDPAddress(IPAddress("100.64.1.254")!, 20001)
    static let mapped = UDPAddress(IPAddress("100.64.1.100")!, 54321)

    /// An observation: the mapping seen for each outbound probe (nil: lost), and whether each inbound one got in.
    static func observation(mapping: UDPAddress? = mapped, reply: Bool = true, otherPort: Bool, otherAddress: Bool,
                            samePortMapping: UDPAddress? = mapped, otherAddressMapping: UDPAddress? = mapped) -> NATObservation {
        let stranger = UDPAddress(IPAddress("100.64.1.253")!, 20003)
        var probes = [NATProbe(role: .mapping, from: inside, to: contacted, arrived: mapping != nil, seenFrom: mapping)]
        guard let mapping else { return NATObservation(insidePort: 12345, insideAddresses: [inside.address], probes: probes) }
        probes.append(NATProbe(role: .reply, from: contacted, to: mapping, arrived: reply, seenFrom: reply ? contacted : nil))
        if reply {
            probes.append(NATProbe(role: .otherPort, from: UDPAddress(contacted.address, 20002), to: mapping, arrived: otherPort))
            probes.append(NATProbe(role: .otherAddress, from: stranger, to: mapping, arrived: otherAddress))
            probes.append(NATProbe(role: .mappingOtherPort, from: inside, to: UDPAddress(contacted.address, 20004),
                                   arrived: samePortMapping != nil, seenFrom: samePortMapping))
            probes.append(NATProbe(role: .mappingOtherAddress, from: inside, to: UDPAddress(IPAddress("100.64.2.254")!, 20005),
                                   arrived: otherAddressMapping != nil, seenFrom: otherAddressMapping))
        }
        return NATObservation(insidePort: 12345, insideAddresses: [inside.address], probes: probes)
    }

    @Test func theFourTypes() {
        let full = NATClassification.classify(Self.observation(otherPort: true, otherAddress: true))
        #expect(full.type == .fullCone && full.mapping == .endpointIndependent && full.filtering == .endpointIndependent)
        #expect(full.summary == "full cone (mapping endpoint-independent, filtering endpoint-independent)")
        #expect(full.mappedAddress == Self.mapped && full.problem == nil)

        let restricted = NATClassification.classify(Self.observation(otherPort: true, otherAddress: false))
        #expect(restricted.type == .restrictedCone && restricted.filtering == .addressDependent)

        let portRestricted = NATClassification.classify(Self.observation(otherPort: false, otherAddress: false))
        #expect(portRestricted.type == .portRestrictedCone && portRestricted.filtering == .addressAndPortDependent)

        // A new port for another destination port: address-and-port-dependent mapping.
        let other = UDPAddress(Self.mapped.address, 40000)
        let symmetric = NATClassification.classify(Self.observation(otherPort: false, otherAddress: false,
                                                                    samePortMapping: other, otherAddressMapping: UDPAddress(Self.mapped.address, 40001)))
        #expect(symmetric.type == .symmetric && symmetric.mapping == .addressAndPortDependent)
        // The same port for the same address, another for another address: address-dependent, still symmetric.
        let byAddress = NATClassification.classify(Self.observation(otherPort: true, otherAddress: false, otherAddressMapping: other))
        #expect(byAddress.type == .symmetric && byAddress.mapping == .addressDependent)
    }

    @Test func noTypeIsGuessedWithoutEvidence() {
        let unreachable = NATClassification.classify(Self.observation(mapping: nil, otherPort: false, otherAddress: false))
        #expect(unreachable.type == nil && unreachable.mapping == nil && unreachable.filtering == nil)
        #expect(unreachable.problem?.contains("the inside cannot reach the outside") == true)
        #expect(unreachable.summary.hasPrefix("unclassified: the inside cannot reach the outside"))

        // The outside sees the inside's own address: routing, not NAT.
        let routed = NATClassification.classify(Self.observation(mapping: Self.inside, otherPort: true, otherAddress: true))
        #expect(routed.type == nil && routed.problem?.contains("no translation") == true)

        let noReply = NATClassification.classify(Self.observation(reply: false, otherPort: false, otherAddress: false))
        #expect(noReply.type == nil && noReply.problem?.contains("reply") == true)

        // A stranger got in but the contacted address from another port did not: no filtering behaviour does that.
        let contradictory = NATClassification.classify(Self.observation(otherPort: false, otherAddress: true))
        #expect(contradictory.filtering == nil && contradictory.type == nil)
        #expect(contradictory.problem?.contains("the probes disagree") == true)

        // The mapping probes were lost: filtering is known, the type is not.
        let lost = NATClassification.classify(Self.observation(otherPort: true, otherAddress: true, samePortMapping: nil, otherAddressMapping: nil))
        #expect(lost.type == nil && lost.filtering == .endpointIndependent)
        #expect(lost.problem?.contains("the mapping could not be measured") == true)
        #expect(NATClassification.classify(NATObservation(insidePort: 1, insideAddresses: [], probes: [])).type == nil)
    }
}
