import NetAddress
import ProcNS

/// An address and UDP port.
public struct UDPAddress: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Written as every address and port is (`10.0.2.1:4000`, `[fd00::1]:4000`).
    public var description: String { NATEndpoint(address: address, port: port).description }
}

/// One place outside a NAT that natcheck sends from or to: a namespace and one of its addresses.
public struct NATOutsidePoint: Sendable {
    public var namespace: NamespaceHandle
    public var address: IPAddress
    /// The namespace's name, for the report.
    public var label: String

    public init(namespace: NamespaceHandle, address: IPAddress, label: String) {
        self.namespace = namespace
        self.address = address
        self.label = label
    }
}

/// One UDP datagram natcheck sent, and what became of it.
public struct NATProbe: Sendable, Hashable {
    /// The six probes, in the order they are sent.
    public enum Role: String, Sendable, CaseIterable {
        /// Inside → the contacted outside endpoint: opens the mapping, and the outside sees it.
        case mapping
        /// The contacted endpoint answers the mapping: what every NAT lets back in.
        case reply
        /// From the contacted address, but a port the inside never sent to.
        case otherPort = "other-port"
        /// From an address the inside never sent to.
        case otherAddress = "other-address"
        /// Inside (same socket) → the contacted address on another port: is the mapping the same?
        case mappingOtherPort = "mapping-other-port"
        /// Inside (same socket) → another outside address: is the mapping the same?
        case mappingOtherAddress = "mapping-other-address"

        /// Sent from the inside (its arrival outside shows the mapping), rather than towards it.
        public var isOutbound: Bool { self == .mapping || self == .mappingOtherPort || self == .mappingOtherAddress }

        public var meaning: String {
            switch self {
            case .mapping: "from the inside to the contacted endpoint"
            case .reply: "the contacted endpoint answers"
            case .otherPort: "unsolicited, from the contacted address on another port"
            case .otherAddress: "unsolicited, from an address the inside never contacted"
            case .mappingOtherPort: "from the inside to the contacted address on another port"
            case .mappingOtherAddress: "from the inside to another outside address"
            }
        }
    }

    public var role: Role
    public var from: UDPAddress
    public var to: UDPAddress
    public var arrived: Bool
    /// Where it appeared to come from at the receiver: for an outbound probe, the mapping (the NAT's
    /// address and port); for an inbound one, the sender as the inside saw it.
    public var seenFrom: UDPAddress?
    /// Why it was not sent, when the sending kernel refused (`Network is unreachable`).
    public var notSent: String?
}

/// What natcheck measured: the six probes (fewer when an early one failed), in the order sent.
public struct NATObservation: Sendable, Hashable {
    /// The inside socket's port (the one given, or the one the kernel chose).
    public var insidePort: UInt16
    /// The addresses of the inside namespace: a mapping onto one of them means no translation at all.
    public var insideAddresses: [IPAddress]
    public var probes: [NATProbe]

    public init(insidePort: UInt16, insideAddresses: [IPAddress], probes: [NATProbe]) {
        self.insidePort = insidePort
        self.insideAddresses = insideAddresses
        self.probes = probes
    }

    public func probe(_ role: NATProbe.Role) -> NATProbe? { probes.first { $0.role == role } }
}

/// The experiment of examples/nat-types.yaml, with sockets opened inside the namespaces (RFC 4787 §4 and §5): the inside
/// sends to an outside endpoint and the outside sees the mapping; then unsolicited datagrams go to that
/// mapping from the contacted endpoint itself, from the contacted address on a port never contacted, and
/// from an address never contacted; last, the same inside socket sends to the contacted address on another
/// port and to another outside address, and the outside sees whether the mapping stayed the same.
///
/// The filtering probes go before the inside contacts anything else, and `stranger` must be an address the
/// inside never sends to (not in this run, nor in an earlier one a stateful filter may remember): natcheck's
/// own address plan (`NATProbePlan` in Netlink) keeps it apart from `second`.
public struct NATExperiment: Sendable {
    public var inside: NamespaceHandle
    /// The inside socket's port; nil lets the kernel choose. NATs whose DNAT points at a fixed port
    /// (the nat-types lab's 12345) need that port.
    public var insidePort: UInt16?
    public var insideAddresses: [IPAddress]
    /// The outside endpoint the inside contacts first.
    public var contacted: NATOutsidePoint
    /// Another outside address the inside sends to (the mapping's dependence on the address).
    public var second: NATOutsidePoint
    /// An outside address the inside never sends to: the source of the unsolicited probe.
    public var stranger: NATOutsidePoint
    /// How long a probe that should arrive may take (nanoseconds).
    public var answerTimeout: UInt64 = 1_000_000_000
    /// How long to wait before deciding that a filtering probe was dropped.
    public var silenceTimeout: UInt64 = 500_000_000

    public init(inside: NamespaceHandle, insidePort: UInt16?, insideAddresses: [IPAddress], contacted: NATOutsidePoint,
                second: NATOutsidePoint, stranger: NATOutsidePoint) {
        self.inside = inside
        self.insidePort = insidePort
        self.insideAddresses = insideAddresses
        self.contacted = contacted
        self.second = second
        self.stranger = stranger
    }

    public func run() throws -> NATObservation {
        let family = contacted.address.family
        let insideSocket = try UDPEndpoint(in: inside, family: family, port: insidePort ?? 0)
        var observation = NATObservation(insidePort: insideSocket.port, insideAddresses: insideAddresses, probes: [])
        let run = String(UInt32.random(in: 0..<UInt32.max), radix: 36)
        var ports = PortPicker()
        func payload(_ role: NATProbe.Role) -> [UInt8] { Array("nsinspect natcheck \(run) \(role.rawValue)".utf8) }

        // 1. Inside → contacted endpoint: the mapping.
        let (contactedSocket, contactedEnd) = try ports.bind(contacted)
        guard let mapped = try outbound(.mapping, from: insideSocket, to: contactedEnd, receiver: contactedSocket,
                                        payload: payload(.mapping), into: &observation)
        else { return observation }

        // 2. The contacted endpoint answers.
        let replyArrival = try inbound([(.reply, contactedSocket, contactedEnd)], to: mapped, receiver: insideSocket,
                                       wait: answerTimeout, payload: payload, into: &observation)
        guard replyArrival else { return observation }

        // 3 and 4, together: unsolicited, from another port of the contacted address and from a stranger.
        let (otherPortSocket, otherPortEnd) = try ports.bind(contacted)
        let (strangerSocket, strangerEnd) = try ports.bind(stranger)
        _ = try inbound([(.otherPort, otherPortSocket, otherPortEnd), (.otherAddress, strangerSocket, strangerEnd)],
                        to: mapped, receiver: insideSocket, wait: silenceTimeout, payload: payload, into: &observation)

        // 5 and 6: the same inside socket to the contacted address on another port, and to another address.
        let (samePortSocket, samePortEnd) = try ports.bind(contacted)
        _ = try outbound(.mappingOtherPort, from: insideSocket, to: samePortEnd, receiver: samePortSocket,
                         payload: payload(.mappingOtherPort), into: &observation)
        let (secondSocket, secondEnd) = try ports.bind(second)
        _ = try outbound(.mappingOtherAddress, from: insideSocket, to: secondEnd, receiver: secondSocket,
                         payload: payload(.mappingOtherAddress), into: &observation)
        return observation
    }

    /// Sends from the inside and waits for the datagram outside; returns where it appeared to come from.
    private func outbound(_ role: NATProbe.Role, from sender: UDPEndpoint, to target: UDPAddress, receiver: UDPEndpoint,
                          payload: [UInt8], into observation: inout NATObservation) throws -> UDPAddress? {
        let from = UDPAddress(insideAddresses.first ?? IPAddress(v4: 0), observation.insidePort)
        do {
            try sender.send(payload, to: target.address, port: target.port)
        } catch let error as OperationError {
            observation.probes.append(NATProbe(role: role, from: from, to: target, arrived: false,
                                               notSent: error.errno?.description ?? error.reason))
            return nil
        }
        let arrival = receiver.receive(payload, before: monotonicNanoseconds() + answerTimeout)
        let seen = arrival.map { UDPAddress($0.from, $0.port) }
        observation.probes.append(NATProbe(role: role, from: from, to: target, arrived: seen != nil, seenFrom: seen))
        return seen
    }

    /// Sends each probe to the mapping, then collects what reaches the inside socket until all arrived or
    /// `wait` passed. Returns whether all arrived.
    private func inbound(_ senders: [(NATProbe.Role, UDPEndpoint, UDPAddress)], to mapping: UDPAddress,
                         receiver: UDPEndpoint, wait: UInt64, payload: (NATProbe.Role) -> [UInt8],
                         into observation: inout NATObservation) throws -> Bool {
        var pending: [[UInt8]: Int] = [:]
        var results: [NATProbe] = []
        for (role, socket, end) in senders {
            var probe = NATProbe(role: role, from: end, to: mapping, arrived: false)
            do {
                try socket.send(payload(role), to: mapping.address, port: mapping.port)
                pending[payload(role)] = results.count
            } catch let error as OperationError {
                probe.notSent = error.errno?.description ?? error.reason
            }
            results.append(probe)
        }
        let deadline = monotonicNanoseconds() + wait
        while !pending.isEmpty, let datagram = receiver.receive(before: deadline) {
            guard let index = pending.removeValue(forKey: datagram.payload) else { continue }
            results[index].arrived = true
            results[index].seenFrom = UDPAddress(datagram.from, datagram.port)
        }
        observation.probes += results
        return results.allSatisfy(\.arrived)
    }
}

/// Outside ports for one run: random, distinct, below the kernel's ephemeral range; a port in use is
/// skipped.
private struct PortPicker {
    private var used: Set<UInt16> = []

    mutating func bind(_ point: NATOutsidePoint) throws -> (UDPEndpoint, UDPAddress) {
        var lastError: (any Error)?
        for _ in 0..<16 {
            let port = UInt16.random(in: 20000..<32000)
            guard used.insert(port).inserted else { continue }
            do {
                let socket = try UDPEndpoint(in: point.namespace, family: point.address.family, address: point.address, port: port)
                return (socket, UDPAddress(point.address, port))
            } catch {
                lastError = error
            }
        }
        throw lastError ?? OperationError("natcheck", point.label, "no free UDP port on \(point.address)")
    }
}
