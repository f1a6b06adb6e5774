import Netlink
import ProcNS

/// What one ICMP echo got.
public enum LabEchoResult: Equatable, Sendable {
    case reply(ttl: UInt8, rtt: UInt64)
    /// An ICMP error came back instead (e.g. "destination unreachable from 10.0.0.1").
    case error(String)
    case timeout
}

/// What a lab test needs to send: the Probes module implements it (Lab does not depend on Probes; the
/// command line passes an implementation in).
public protocol LabProber {
    /// One ICMP echo from inside `from` to `address`, waiting up to `timeout` nanoseconds.
    func echo(from: NamespaceHandle, to address: IPAddress, timeout: UInt64) throws -> LabEchoResult
    /// A UDP datagram from `from` (bound to `sourcePort` if set) to `address:port`; whether it reached a
    /// socket bound to `listenerPort` in `listener` within `timeout` nanoseconds, and from where.
    func udp(from: NamespaceHandle, sourcePort: UInt16?, to address: IPAddress, port: UInt16,
             listener: NamespaceHandle, listenerPort: UInt16, timeout: UInt64) throws -> (arrived: Bool, from: String?)
    /// Classifies the NAT in `natNamespace` by experiment; nil when this prober cannot.
    func natType(_ expectation: LabNATExpectation, handles: [LabPlace: NamespaceHandle], spec: LabSpec) throws -> (type: String, evidence: String)?
}

/// The outcome of one `expect:` entry.
public struct LabCheck: Sendable {
    public enum Outcome: String, Sendable { case pass = "PASS", fail = "FAIL", skip = "SKIP" }
    public var outcome: Outcome
    /// The expectation in words: `ttl host1 → 10.0.2.10 equals 62`.
    public var expectation: String
    /// What was observed: `ttl 62`, `no answer in 1 s`.
    public var observed: String
    public var position: SourcePosition
}

/// Checks a lab's `expect:` block against the running lab, in file order.
public struct LabTester {
    public let spec: LabSpec
    public let handles: [LabPlace: NamespaceHandle]
    public let prober: any LabProber
    /// How long one probe waits for its answer.
    public var timeout: UInt64 = 1_000_000_000

    public init(spec: LabSpec, handles: [LabPlace: NamespaceHandle], prober: any LabProber) {
        self.spec = spec
        self.handles = handles
        self.prober = prober
    }

    public func run() -> [LabCheck] {
        spec.expectations.map(check)
    }

    func check(_ expectation: LabExpectation) -> LabCheck {
        do {
            let (outcome, words, observed) = try evaluate(expectation.kind)
            return LabCheck(outcome: outcome, expectation: words, observed: observed, position: expectation.position)
        } catch {
            return LabCheck(outcome: .fail, expectation: describe(expectation.kind), observed: "\(error)",
                            position: expectation.position)
        }
    }

    func describe(_ kind: LabExpectation.Kind) -> String {
        func probe(_ p: LabProbe) -> String {
            var text = "\(p.from) → \(p.to)"
            if case .place = p.to, let address = spec.address(of: p.to) { text += " (\(address))" }
            if let udp = p.udp { text += " udp \(udp.port)" + (udp.sourcePort.map { " from port \($0)" } ?? "") }
            return text
        }
        switch kind {
        case .reach(let p): return "reach \(probe(p))"
        case .unreachable(let p): return "unreachable \(probe(p))"
        case .ttl(let p, let value): return "ttl \(probe(p)) equals \(value)"
        case .hops(let p, let value): return "hops \(probe(p)) equals \(value)"
        case .nat(let n): return "nat \(n.namespace) is \(n.type)"
        }
    }

    private func handle(_ place: LabPlace) throws -> NamespaceHandle {
        guard let h = handles[place] else { throw OperationError("lab test", "\(place)", "namespace is not up") }
        return h
    }

    private func target(_ probe: LabProbe) throws -> IPAddress {
        guard let address = spec.address(of: probe.to) else {
            throw OperationError("lab test", "\(probe.to)", "has no global address to send to")
        }
        return address
    }

    /// Echo with a few attempts (the first may wait for ARP): the first reply wins.
    private func echo(_ probe: LabProbe, attempts: Int) throws -> LabEchoResult {
        let from = try handle(probe.from), to = try target(probe)
        var last = LabEchoResult.timeout
        for _ in 0..<attempts {
            last = try prober.echo(from: from, to: to, timeout: timeout)
            if case .reply = last { return last }
        }
        return last
    }

    private func text(_ result: LabEchoResult) -> String {
        switch result {
        case .reply(let ttl, let rtt): "reply with ttl \(ttl) in \(formatMilliseconds(rtt))"
        case .error(let what): what
        case .timeout: "no reply in \(timeout / 1_000_000_000) s"
        }
    }

    private func udp(_ probe: LabProbe, _ udp: LabUDPProbe) throws -> (arrived: Bool, from: String?) {
        let listenerPlace = udp.listener ?? { if case .place(let p) = probe.to { p } else { spec.place(owning: (try? target(probe)) ?? IPAddress(v4: 0)) ?? probe.from } }()
        return try prober.udp(from: try handle(probe.from), sourcePort: udp.sourcePort, to: try target(probe), port: udp.port,
                              listener: try handle(listenerPlace), listenerPort: udp.listenerPort ?? udp.port, timeout: timeout)
    }

    /// The TTL the responder starts its replies with (its net.ipv4.ip_default_ttl or IPv6 hop limit).
    private func initialTTL(of address: IPAddress) -> Int {
        guard let place = spec.place(owning: address), let handle = handles[place] else { return 64 }
        let key = address.family == .v4 ? "net.ipv4.ip_default_ttl" : "net.ipv6.conf.default.hop_limit"
        return (try? Sysctl.read(key, in: handle)).flatMap { Int($0) } ?? 64
    }

    private func evaluate(_ kind: LabExpectation.Kind) throws -> (LabCheck.Outcome, String, String) {
        let words = describe(kind)
        switch kind {
        case .reach(let p):
            if let u = p.udp {
                let r = try udp(p, u)
                return (r.arrived ? .pass : .fail, words, r.arrived ? "arrived from \(r.from ?? "?")" : "did not arrive")
            }
            let result = try echo(p, attempts: 3)
            if case .reply = result { return (.pass, words, text(result)) }
            return (.fail, words, text(result))
        case .unreachable(let p):
            if let u = p.udp {
                let r = try udp(p, u)
                return (r.arrived ? .fail : .pass, words, r.arrived ? "arrived from \(r.from ?? "?")" : "did not arrive")
            }
            let result = try echo(p, attempts: 1)
            if case .reply = result { return (.fail, words, text(result)) }
            return (.pass, words, text(result))
        case .ttl(let p, let expected):
            let result = try echo(p, attempts: 3)
            guard case .reply(let ttl, _) = result else { return (.fail, words, text(result)) }
            return (Int(ttl) == expected ? .pass : .fail, words, "ttl \(ttl)")
        case .hops(let p, let expected):
            let result = try echo(p, attempts: 3)
            guard case .reply(let ttl, _) = result else { return (.fail, words, text(result)) }
            let initial = initialTTL(of: try target(p))
            let hops = initial - Int(ttl)
            return (hops == expected ? .pass : .fail, words, "\(hops) hop\(hops == 1 ? "" : "s") (reply ttl \(ttl), sent with \(initial))")
        case .nat(let n):
            guard let found = try prober.natType(n, handles: handles, spec: spec) else {
                return (.skip, words, "NAT classification is not available")
            }
            return (found.type == n.type.rawValue ? .pass : .fail, words, "\(found.type): \(found.evidence)")
        }
    }
}

/// `0.31 ms`, `12 ms`.
func formatMilliseconds(_ nanoseconds: UInt64) -> String {
    let ms = Double(nanoseconds) / 1_000_000
    if ms >= 10 { return "\(Int(ms.rounded())) ms" }
    let hundredths = Int((ms * 100).rounded())
    return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100) ms"
}
