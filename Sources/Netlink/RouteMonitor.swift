#if canImport(Glibc)
import Glibc
#endif
import CMnl
import ProcNS

/// One change a namespace announced on its rtnetlink multicast groups.
public enum RouteEvent: Sendable {
    /// RTM_NEWLINK (also a change of an existing link) or RTM_DELLINK.
    case link(Link, isNew: Bool)
    case address(InterfaceAddress, isNew: Bool)
    case route(Route, isNew: Bool)
    case neighbour(Neighbour, isNew: Bool)
    /// RTM_NEWNSID / RTM_DELNSID: the namespace's nsid table changed.
    case nsid(isNew: Bool)
    /// The socket's receive queue overflowed (ENOBUFS): events were lost.
    case overrun
}

/// An rtnetlink socket inside one namespace, subscribed (NETLINK_ADD_MEMBERSHIP) to the groups `ip
/// monitor` listens to: RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE,
/// RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE and RTNLGRP_NSID. Non-blocking: `read` drains what is queued.
/// The socket stays in the namespace it was opened in, and holds it (the kernel's socket keeps a
/// reference to its net), so a watcher closes it when the namespace is gone from the census.
public final class RouteMonitor: @unchecked Sendable {
    public enum Group: UInt32, CaseIterable, Sendable {
        case link = 1, neighbour = 3, ipv4Address = 5, ipv4Route = 7, ipv6Address = 9, ipv6Route = 11, nsid = 28
    }

    private let socket: NetlinkSocket

    /// Subscribes a socket opened in `namespace` (nil: the calling thread's namespace).
    public convenience init(in namespace: NamespaceHandle?, label: String, groups: [Group] = Group.allCases,
                            receiveBuffer: Int32? = nil) throws {
        let socket = try namespace.map { try NetlinkSocket.open(in: $0, label: label) } ?? NetlinkSocket.open(label: label)
        try self.init(socket: socket, groups: groups, receiveBuffer: receiveBuffer)
    }

    /// Subscribes `socket` (opened in the namespace to watch, e.g. by `NetlinkSocket.open(inEach:)`, which
    /// visits many namespaces from one thread). `receiveBuffer` replaces the socket's 1 MiB receive
    /// buffer (SO_RCVBUFFORCE): a small one makes overflows happen on purpose, in tests.
    public init(socket: NetlinkSocket, groups: [Group] = Group.allCases, receiveBuffer: Int32? = nil) throws {
        self.socket = socket
        let label = socket.label
        let fd = socket.fileDescriptor
        if var size = receiveBuffer {
            guard setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                throw OperationError("watch", label, call: "SO_RCVBUFFORCE", errno: .current)
            }
        }
        for group in groups {
            var number = group.rawValue
            guard setsockopt(fd, 270 /* SOL_NETLINK */, NETLINK_ADD_MEMBERSHIP, &number, socklen_t(MemoryLayout<UInt32>.size)) == 0 else {
                throw OperationError("watch", label, call: "NETLINK_ADD_MEMBERSHIP \(group)", errno: .current)
            }
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    /// For poll: readable when events (or an overflow) are waiting.
    public var fileDescriptor: Int32 { socket.fileDescriptor }

    /// A handle on the socket's namespace (ioctl SIOCGSKNS), for the moment it is needed: a watcher
    /// keeps no namespace file open, or a bind mount it was found through could not be unmounted while
    /// watched (umount: target is busy).
    public func namespaceHandle() throws(OperationError) -> NamespaceHandle {
        let fd = ioctl(socket.fileDescriptor, 0x894C /* SIOCGSKNS */)
        guard fd >= 0 else { throw OperationError("watch", socket.label, call: "SIOCGSKNS", errno: .current) }
        return try NamespaceHandle(adopting: fd, origin: socket.label)
    }

    /// A receive buffer for `read`, one for all the monitors a thread reads: a thousand namespaces with
    /// 64 KiB each was 64 MB of a watch's 83.
    public static func makeBuffer() -> [UInt8] { [UInt8](repeating: 0, count: 64 << 10) }

    /// Every event queued now, decoded; an overflow comes as `.overrun` where it happened. Messages this
    /// nsinspect cannot decode are skipped (a newer kernel's family, a bridge fdb entry).
    public func read(using buffer: inout [UInt8]) throws -> [RouteEvent] {
        var events: [RouteEvent] = []
        let fd = socket.fileDescriptor
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 {
                let e = Errno.current
                if e == .EINTR { continue }
                if e == .EAGAIN { return events }
                if e == .ENOBUFS {
                    events.append(.overrun)
                    continue
                }
                throw OperationError("watch", socket.label, call: "recv", errno: e)
            }
            if n == 0 { return events }
            guard let messages = try? NetlinkMessage.split(buffer[0..<n]) else { continue }
            for message in messages { if let event = Self.decode(message) { events.append(event) } }
        }
    }

    /// One multicast message as an event (nil for what is not watched or does not decode).
    /// A RTM_DEL… message carries the same body as its RTM_NEW…, so it is decoded as one (the decoders
    /// accept only the type a dump answers with).
    public static func decode(_ received: NetlinkMessage) -> RouteEvent? {
        let deletion: [UInt16: UInt16] = [RTM.delLink: RTM.newLink, RTM.delAddress: RTM.newAddress,
                                          RTM.delRoute: RTM.newRoute, RTM.delNeighbour: RTM.newNeighbour]
        let message = deletion[received.type].map {
            NetlinkMessage(type: $0, flags: received.flags, sequence: received.sequence, portID: received.portID,
                           payload: received.payload)
        } ?? received
        switch received.type {
        case RTM.newLink, RTM.delLink:
            return (try? Link.decode(message)).flatMap { $0 }.map { .link($0, isNew: received.type == RTM.newLink) }
        case RTM.newAddress, RTM.delAddress:
            return (try? InterfaceAddress.decode(message)).flatMap { $0 }.map { .address($0, isNew: received.type == RTM.newAddress) }
        case RTM.newRoute, RTM.delRoute:
            return (try? Route.decode(message)).flatMap { $0 }.map { .route($0, isNew: received.type == RTM.newRoute) }
        case RTM.newNeighbour, RTM.delNeighbour:
            return (try? Neighbour.decode(message)).flatMap { $0 }.map { .neighbour($0, isNew: received.type == RTM.newNeighbour) }
        case 88, 89:  // RTM_NEWNSID, RTM_DELNSID
            return .nsid(isNew: received.type == 88)
        default:
            return nil
        }
    }
}
