#if canImport(Glibc)
import Glibc
#endif
import Lab
import NetAddress
import Netlink
import Probes
import ProcNS

/// The lab tester's probes, over the Probes module's sockets opened inside the lab's namespaces.
public struct SocketProber: LabProber {
    public init() {}

    public func echo(from: NamespaceHandle, to address: IPAddress, timeout: UInt64) throws -> LabEchoResult {
        let prober = try EchoProber(from: from, to: address)
        do {
            try prober.send(sequence: 1)
        } catch let error as OperationError where [ENETUNREACH, EHOSTUNREACH, EACCES, EPERM].map(Errno.init).contains(error.errno) {
            // The sender's own kernel refused: no route (or a local rule). That is an answer, not a failure.
            return .error("not sent: \(error.errno!) in the sending namespace")
        }
        switch prober.answer(to: 1, before: monotonicNanoseconds() + timeout) {
        case .reply(_, let ttl, let rtt, _): return .reply(ttl: ttl, rtt: rtt)
        case .error(_, let type, let code, let sender, _): return .error(ICMPNames.describe(type: type, code: code, v6: address.family == .v6) + " from \(sender)")
        case .timeout: return .timeout
        }
    }

    public func udp(from: NamespaceHandle, sourcePort: UInt16?, to address: IPAddress, port: UInt16, listener: NamespaceHandle,
             listenerPort: UInt16, timeout: UInt64) throws -> (arrived: Bool, from: String?) {
        let receiver = try UDPEndpoint(in: listener, family: address.family, port: listenerPort)
        let sender = try UDPEndpoint(in: from, family: address.family, port: sourcePort ?? 0)
        let nonce = Array("nsinspect-lab-\(UInt64.random(in: 0..<UInt64.max))".utf8)
        try sender.send(nonce, to: address, port: port)
        guard let arrival = receiver.receive(nonce, before: monotonicNanoseconds() + timeout) else { return (false, nil) }
        return (true, "\(arrival.from):\(arrival.port)")
    }

    /// natcheck (NATCheck.run) between the namespaces the expectation names; where it names none, the
    /// peers across the NAT type's inside and outside interfaces, or for hand-written rules the NAT's two
    /// veth peers, the one routed through the NAT being inside.
    public func natType(_ expectation: LabNATExpectation, handles: [LabPlace: NamespaceHandle], spec: LabSpec) throws -> (type: String, evidence: String)? {
        let nat = expectation.namespace
        let box = spec.namespace(nat)?.natBox
        func peer(across interface: String) -> LabPlace? {
            spec.veths.first { $0.a.ref == LabInterfaceRef(nat, interface) }?.b.ref.place
                ?? spec.veths.first { $0.b.ref == LabInterfaceRef(nat, interface) }?.a.ref.place
        }
        let peers = spec.veths.compactMap { v in v.a.ref.place == nat ? v.b.ref.place : v.b.ref.place == nat ? v.a.ref.place : nil }
        let natAddresses = Set(spec.interfaces(in: nat).flatMap(\.addresses).map(\.prefix.address))
        let routedThrough = peers.filter { p in spec.namespace(p)?.routes.contains { $0.gateway.map(natAddresses.contains) ?? false } ?? false }
        let inside = expectation.inside ?? box.flatMap { peer(across: $0.inside.name) } ?? (peers.count == 2 && routedThrough.count == 1 ? routedThrough[0] : nil)
        let outside = expectation.outside ?? box.flatMap { peer(across: $0.outside.name) } ?? (peers.count == 2 ? peers.first { $0 != inside } : nil)
        guard let inside, let outside else {
            throw OperationError("lab test", "nat \(nat)", "cannot tell which side is inside and which outside: give inside: and outside:")
        }
        func named(_ place: LabPlace) throws -> NamedNamespace {
            guard let handle = handles[place] else { throw OperationError("lab test", "\(place)", "namespace is not up") }
            return NamedNamespace(handle, label: place.description)
        }
        let port = expectation.insidePort ?? (box?.type == .symmetric ? nil : box?.hostPort ?? box?.port)
        let report = try NATCheck.run(nat: try named(nat), inside: try named(inside), outside: try named(outside),
                                      secondOutside: nil, insidePort: port)
        let c = report.classification
        return (c.type?.rawValue ?? "unclassified", ([c.summary] + report.evidence).joined(separator: "; "))
    }
}
