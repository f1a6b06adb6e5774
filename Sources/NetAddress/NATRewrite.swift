/// The vocabulary of NAT shared by conntrack (which reads rewrites from an entry's tuples) and trace (which
/// sees them in a packet's headers): one type, one rendering.

/// An address and port (or ICMP id) a NAT rewrote: one side of `SNAT 10.0.2.1:12345 → 100.64.2.100:54321`.
public struct NATEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var address: IPAddress
    /// The port, or the ICMP identifier; nil for protocols without either.
    public var port: UInt16?
    /// `port` is an ICMP identifier.
    public var isICMPIdentifier = false

    public init(address: IPAddress, port: UInt16?) {
        self.address = address
        self.port = port
    }

    public var description: String {
        guard let port else { return address.description }
        if isICMPIdentifier { return "\(address) id \(port)" }
        return address.family == .v4 ? "\(address):\(port)" : "[\(address)]:\(port)"
    }
}

/// What NAT did to a connection or a packet: read from a conntrack entry's two tuples, or from a traced
/// packet's headers on its way into and out of a namespace.
public struct NATRewrite: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable { case snat = "SNAT", dnat = "DNAT" }
    public var kind: Kind
    /// The address and port of the original packet.
    public var from: NATEndpoint
    /// What it became on the other side of the NAT.
    public var to: NATEndpoint

    public init(kind: Kind, from: NATEndpoint, to: NATEndpoint) {
        self.kind = kind
        self.from = from
        self.to = to
    }

    public var description: String { "\(kind.rawValue) \(from) → \(to)" }
}
