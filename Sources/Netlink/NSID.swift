import ProcNS

/// A namespace's id as seen from the namespace that asks (RTM_GETNSID): ids are local to the asker.
public enum NSID: Equatable, Hashable, Sendable, CustomStringConvertible {
    case assigned(Int32)
    /// The asker has not assigned one (NETNSA_NSID_NOT_ASSIGNED, -1): a value, not an error.
    case unassigned

    public var description: String {
        switch self {
        case .assigned(let id): String(id)
        case .unassigned: "unassigned"
        }
    }

    public var value: Int32? {
        if case .assigned(let id) = self { return id }
        return nil
    }
}

/// RTM_GETNSID and RTM_NEWNSID (linux/net_namespace.h): which id the socket's namespace uses for another.
public enum NSIDRequests {
    static let RTM_NEWNSID: UInt16 = 88
    static let RTM_GETNSID: UInt16 = 90
    static let NETNSA_NSID: UInt16 = 1
    static let NETNSA_PID: UInt16 = 2
    static let NETNSA_FD: UInt16 = 3
    static let NETNSA_TARGET_NSID: UInt16 = 4

    /// `struct rtgenmsg { unsigned char rtgen_family; }` padded to 4.
    static let rtgenmsg: [UInt8] = [0 /* AF_UNSPEC */, 0, 0, 0]

    /// Which namespace an RTM_GETNSID asks about: one open in this process, or a process's.
    public enum Target: Sendable {
        /// NETNSA_FD: a namespace descriptor of this process.
        case fd(Int32)
        /// NETNSA_PID: the namespace a process lives in (no descriptor to open for it).
        case pid(Int32)
    }

    /// The request for the id of a namespace as seen from the socket's namespace.
    public static func get(_ target: Target) -> NetlinkRequest {
        var request = NetlinkRequest(type: RTM_GETNSID, name: "RTM_GETNSID")
        request.append(raw: rtgenmsg)
        switch target {
        case .fd(let fd): request.attribute(NETNSA_FD, u32: UInt32(bitPattern: fd))
        case .pid(let pid): request.attribute(NETNSA_PID, u32: UInt32(bitPattern: pid))
        }
        return request
    }

    public static func get(fd: Int32) -> NetlinkRequest { get(.fd(fd)) }

    /// `ip netns list-id`: RTM_GETNSID with NLM_F_DUMP, one RTM_NEWNSID per id the socket's namespace has
    /// assigned. The answers carry only the ids (NETNSA_NSID), not the namespaces they designate: those are
    /// found by asking about candidate namespaces with `get(_:)`, as iproute2 does for its names.
    public static func dump() -> NetlinkRequest {
        var request = NetlinkRequest(type: RTM_GETNSID, flags: NLMsg.dump, name: "RTM_GETNSID")
        request.append(raw: rtgenmsg)
        return request
    }

    /// The request that assigns `id` (or any free id for -1) to the namespace open as `fd`, as
    /// `ip netns set NAME auto` does.
    public static func set(fd: Int32, id: Int32 = -1) -> NetlinkRequest {
        var request = NetlinkRequest(type: RTM_NEWNSID, name: "RTM_NEWNSID")
        request.append(raw: rtgenmsg)
        request.attribute(NETNSA_FD, u32: UInt32(bitPattern: fd))
        request.attribute(NETNSA_NSID, i32: id)
        return request
    }

    /// Decodes an RTM_NEWNSID answer: rtgenmsg, then NETNSA_NSID.
    public static func decode(_ message: NetlinkMessage) throws(DecodeError) -> NSID? {
        guard message.type == RTM_NEWNSID else { return nil }
        guard message.payload.count >= 4 else { throw DecodeError("RTM_NEWNSID shorter than rtgenmsg", at: 0) }
        let attributes = try Attributes.parse(message.payload.dropFirst(4))
        guard let id = try attributes.i32(NETNSA_NSID) else { throw DecodeError("RTM_NEWNSID without NETNSA_NSID", at: 4) }
        return id < 0 ? .unassigned : .assigned(id)
    }
}

extension NetlinkSocket {
    /// The id this socket's namespace uses for each namespace in `handles`, in one batched exchange.
    /// A namespace that went away yields its error; the rest are still answered.
    public func nsids(of handles: [NamespaceHandle]) throws -> [Result<NSID, any Error>] {
        try nsids(of: handles.map { .fd($0.fd) })
    }

    /// The ids of namespaces given by descriptor or by process, in one batched exchange.
    public func nsids(of targets: [NSIDRequests.Target]) throws -> [Result<NSID, any Error>] {
        let answers = try transactAll(targets.map(NSIDRequests.get)) { message in
            try NSIDRequests.decode(message)
        }
        return answers.map { result in
            result.flatMap { ids in
                ids.first.map { .success($0) } ?? .failure(DecodeError("no RTM_NEWNSID answer", at: 0))
            }
        }
    }

    /// Every nsid this socket's namespace has assigned (`ip netns list-id`), in increasing order.
    public func assignedNSIDs() throws -> [Int32] {
        try dump(NSIDRequests.dump()) { message in try NSIDRequests.decode(message)?.value }.sorted()
    }

    public func nsid(of handle: NamespaceHandle) throws -> NSID {
        try nsids(of: [handle])[0].get()
    }
}
