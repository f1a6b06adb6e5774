import ProcNS

/// A namespace natcheck works with, and its name for messages.
public struct NamedNamespace: Sendable {
    public var handle: NamespaceHandle
    public var label: String

    public init(_ handle: NamespaceHandle, label: String) {
        self.handle = handle
        self.label = label
    }
}

/// An address added for one natcheck run and removed afterwards.
public struct TemporaryAddress: Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var interface: String
    public var namespace: String
    let index: Int32

    public var description: String { "\(address)/32 on \(interface) in \(namespace)" }
}

/// The outside addresses natcheck sends to and from (IPv4), chosen from what the namespaces have:
///
/// - `contacted`: the outside namespace's address on the link it shares with the NAT (or its first global
///   address when the NAT is further away): the inside sends to it first.
/// - `second`: another address the inside sends to, to see whether the mapping changes with the
///   destination: another address of the outside namespace that the NAT routes out the same way, or else
///   a temporary one.
/// - `stranger`: an address the inside never sends to, the source of the unsolicited probe: the address of
///   a second outside namespace if one is given, else a temporary one.
///
/// Temporary addresses are /32s added to the interface that holds `contacted`, picked from the top of its
/// subnet downwards among addresses no namespace of the check has and no neighbour table has seen, in a
/// fixed order (the stranger first), so the stranger is never an address an earlier run sent to: a
/// stateful filter that remembers contacted addresses (a restricted cone) cannot mistake it for one.
/// `remove()` (or `deinit`) deletes them.
public final class NATProbePlan: @unchecked Sendable {
    public let inside: NamedNamespace
    /// The inside's addresses, the one it sends to `contacted` from first.
    public let insideAddresses: [IPAddress]
    public let contacted: (NamedNamespace, IPAddress)
    public private(set) var second: (NamedNamespace, IPAddress)
    public private(set) var stranger: (NamedNamespace, IPAddress)
    public private(set) var temporary: [TemporaryAddress] = []
    private let outsideSession: NetlinkSession

    private init(inside: NamedNamespace, insideAddresses: [IPAddress], contacted: (NamedNamespace, IPAddress),
                 second: (NamedNamespace, IPAddress), stranger: (NamedNamespace, IPAddress), outsideSession: NetlinkSession) {
        self.inside = inside
        self.insideAddresses = insideAddresses
        self.contacted = contacted
        self.second = second
        self.stranger = stranger
        self.outsideSession = outsideSession
    }

    deinit { remove() }

    /// Chooses the addresses and adds the temporary ones.
    public static func make(nat: NamedNamespace, inside: NamedNamespace, outside: NamedNamespace,
                            secondOutside: NamedNamespace? = nil) throws -> NATProbePlan {
        let natSession = try NetlinkSession(in: nat.handle, label: nat.label)
        let insideSession = try NetlinkSession(in: inside.handle, label: inside.label)
        let outsideSession = try NetlinkSession(in: outside.handle, label: outside.label)
        let natAddresses = try natSession.addresses(family: .v4)
        let outsideAddresses = try outsideSession.addresses(family: .v4).filter { $0.scope == 0 && $0.prefix != nil }
        var insideAddresses = try insideSession.addresses(family: .v4).filter { $0.scope == 0 }.compactMap { $0.prefix?.address }

        let natPrefixes = natAddresses.compactMap(\.prefix)
        guard let contacted = outsideAddresses.first(where: { a in natPrefixes.contains { $0.contains(a.prefix!.address) } })
            ?? outsideAddresses.first
        else { throw OperationError("natcheck", outside.label, "has no global IPv4 address to send to") }
        let contactedAddress = contacted.prefix!.address
        if let source = try? insideSession.routeGet(to: contactedAddress).preferredSource, let i = insideAddresses.firstIndex(of: source) {
            insideAddresses.insert(insideAddresses.remove(at: i), at: 0)
        }
        let natRoute = { (address: IPAddress) in try? natSession.routeGet(to: address).outputIndex }
        let outwards = natRoute(contactedAddress)

        // Addresses a temporary one must not be: every address and neighbour the namespaces know.
        var taken = Set(natAddresses.compactMap { $0.prefix?.address } + outsideAddresses.map { $0.prefix!.address } + insideAddresses)
        for session in [natSession, outsideSession] {
            taken.formUnion((try? session.neighbours(family: .v4))?.map(\.destination) ?? [])
        }
        if let secondOutside {
            taken.formUnion(((try? NetlinkSession(in: secondOutside.handle).addresses(family: .v4)) ?? []).compactMap { $0.prefix?.address })
        }
        var candidates = freeAddresses(in: contacted.prefix!, excluding: taken)

        let plan = NATProbePlan(inside: inside, insideAddresses: insideAddresses, contacted: (outside, contactedAddress),
                                second: (outside, contactedAddress), stranger: (outside, contactedAddress),
                                outsideSession: outsideSession)
        let interface = (try? outsideSession.link(.index(contacted.index)).name) ?? "if\(contacted.index)"
        func temporary() throws -> IPAddress {
            guard !candidates.isEmpty else {
                throw OperationError("natcheck", outside.label,
                                     "no free address in \(contacted.prefix!.network) for a temporary outside address (give a second outside namespace)")
            }
            let address = candidates.removeFirst()
            try outsideSession.addAddress(IPPrefix(address: address, length: 32)!, dev: .index(contacted.index))
            plan.temporary.append(TemporaryAddress(address: address, interface: interface, namespace: outside.label, index: contacted.index))
            return address
        }

        // The stranger first: it takes the top free address, the same one every run.
        if let secondOutside {
            let addresses = try NetlinkSession(in: secondOutside.handle, label: secondOutside.label).addresses(family: .v4)
                .filter { $0.scope == 0 }.compactMap { $0.prefix?.address }
            guard let address = addresses.first(where: { a in natPrefixes.contains { $0.contains(a) } }) ?? addresses.first else {
                throw OperationError("natcheck", secondOutside.label, "has no global IPv4 address to send from")
            }
            plan.stranger = (secondOutside, address)
        } else {
            plan.stranger = (outside, try temporary())
        }
        if let other = outsideAddresses.map({ $0.prefix!.address }).first(where: { $0 != contactedAddress && natRoute($0) == outwards }) {
            plan.second = (outside, other)
        } else {
            plan.second = (outside, try temporary())
        }
        return plan
    }

    /// Host addresses of `prefix` from the top down (not the network or broadcast address), at most 64.
    static func freeAddresses(in prefix: IPPrefix, excluding taken: Set<IPAddress>) -> [IPAddress] {
        guard let base = prefix.network.address.v4Value, prefix.length < 31 else { return [] }
        let size = UInt32(1) << UInt32(32 - prefix.length)
        var out: [IPAddress] = []
        var host = size - 2
        while host >= 1 && out.count < 64 {
            let address = IPAddress(v4: base + host)
            if !taken.contains(address) { out.append(address) }
            host -= 1
        }
        return out
    }

    /// Deletes the temporary addresses (again: nothing).
    public func remove() {
        for t in temporary {
            try? outsideSession.deleteAddress(IPPrefix(address: t.address, length: 32)!, dev: .index(t.index))
        }
        temporary.removeAll()
    }
}
