#if canImport(Glibc)
import Glibc
#endif
import CMnl
import CShim
import ProcNS

/// What a `ConntrackMonitor` read.
public enum ConntrackMonitorItem: Sendable {
    /// An event as the kernel sent it.
    case event(ConntrackEvent)
    /// The socket's receive buffer overflowed and the kernel dropped events (ENOBUFS). `missed` is how many
    /// (the socket's drop counter, SO_MEMINFO), nil if the kernel did not say. The table was then dumped:
    /// `changes` are the differences between what the events had said and the dump (NEW for entries the
    /// events never announced, UPDATE for changed status or state, DESTROY for entries gone), and
    /// `entries` is the size of the table now.
    case overrun(missed: Int?, changes: [ConntrackEvent], entries: Int)
}

/// Conntrack events of one namespace, as `conntrack -E` shows them: a netfilter netlink socket opened inside
/// the namespace that joined the NEW, UPDATE and DESTROY groups (NETLINK_ADD_MEMBERSHIP).
///
/// Events are never dropped silently. The monitor keeps the table as the events describe it (from a dump
/// taken when it starts); when the kernel reports ENOBUFS it counts the events lost, dumps the table again
/// over a second socket and reports what changed in the meantime (`ConntrackMonitorItem.overrun`).
public final class ConntrackMonitor: @unchecked Sendable {
    public let label: String
    private let events: NetlinkSocket
    private let table: ConntrackTable
    /// The table as the events describe it, by original tuple (which includes the zone of the tuple).
    private var known: [Key: ConntrackEntry] = [:]
    private var drops: UInt32 = 0
    private var buffer: [UInt8] = []
    private static let slots = 64
    private static let slotSize = 8 << 10

    struct Key: Hashable {
        var tuple: ConntrackTuple
        var zone: UInt16?
    }

    /// - Parameters:
    ///   - groups: the events to receive (all three by default).
    ///   - receiveBuffer: SO_RCVBUFFORCE of the event socket, in bytes.
    public init(in namespace: NamespaceHandle, label: String? = nil, groups: [CTNetlink.Group] = CTNetlink.Group.allCases,
                receiveBuffer: Int32 = 8 << 20) throws {
        self.label = label ?? namespace.origin
        events = try ConntrackTable.socket(in: namespace, label: self.label)
        table = try ConntrackTable(in: namespace, label: self.label)
        let fd = events.fileDescriptor
        for group in groups {
            var number = group.rawValue
            guard setsockopt(fd, 270 /* SOL_NETLINK */, NETLINK_ADD_MEMBERSHIP, &number, socklen_t(MemoryLayout<UInt32>.size)) == 0 else {
                throw OperationError("", self.label, call: "NETLINK_ADD_MEMBERSHIP \(group)", errno: .current)
            }
        }
        var size = receiveBuffer
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        drops = Self.dropCount(fd) ?? 0
        // Subscribed first, then dumped: an event racing the dump is applied after it, never lost.
        try table.forEach { known[Key($0)] = $0 }
    }

    /// The event socket's descriptor, for poll(2): readable when events (or an ENOBUFS) are waiting.
    public var fileDescriptor: Int32 { events.fileDescriptor }

    /// How many entries the table has, as the events describe it.
    public var entryCount: Int { known.count }

    /// Reads every event already queued, without waiting. After an overflow the events still queued are
    /// read first (they happened before the loss), then the table is dumped and `.overrun` comes last.
    public func read() throws -> [ConntrackMonitorItem] {
        if buffer.isEmpty { buffer = [UInt8](repeating: 0, count: Self.slots * Self.slotSize) }
        var items: [ConntrackMonitorItem] = []
        var lengths = [UInt32](repeating: 0, count: Self.slots)
        let fd = fileDescriptor
        var overflowed = false
        var truncated = 0
        // Under a steady flood the queue never empties: after an overflow, resynchronise after this many
        // batches at the latest.
        var batchesLeft = 64
        while batchesLeft > 0 {
            let count = buffer.withUnsafeMutableBytes { raw in
                nsi_recv_datagrams(fd, raw.baseAddress, UInt32(Self.slotSize), UInt32(Self.slots), &lengths)
            }
            if count < 0 {
                let e = Errno.current
                if e == .EAGAIN { break }
                if e == .ENOBUFS {
                    overflowed = true
                    continue
                }
                throw OperationError("", label, call: "conntrack events receive", errno: e)
            }
            for i in 0..<Int(count) where lengths[i] > 0 {
                guard lengths[i] != UInt32.max else {
                    // Cannot happen with events (each fits in a page); if it did, it is reported as a loss.
                    overflowed = true
                    truncated += 1
                    continue
                }
                let datagram = buffer[(i * Self.slotSize)..<(i * Self.slotSize + Int(lengths[i]))]
                for message in try NetlinkMessage.split(datagram) {
                    guard let event = try ConntrackEvent.decode(message) else { continue }
                    apply(event)
                    items.append(.event(event))
                }
            }
            if overflowed { batchesLeft -= 1 }
            if count < Int32(Self.slots) { break }
        }
        if overflowed { items.append(try resynchronise(extraLost: truncated)) }
        return items
    }

    private func apply(_ event: ConntrackEvent) {
        let key = Key(event.entry)
        switch event.kind {
        case .new, .update:
            // Events leave out what did not change (use, and mark when 0): keep the fuller picture.
            var entry = event.entry
            if let old = known[key] {
                entry.mark = entry.mark ?? old.mark
                entry.use = entry.use ?? old.use
                entry.status = entry.status ?? old.status
                entry.protocolState = entry.protocolState ?? old.protocolState
            }
            known[key] = entry
        case .destroy:
            known.removeValue(forKey: key)
        }
    }

    /// After ENOBUFS: how many events the kernel dropped, and what changed, from a fresh dump.
    private func resynchronise(extraLost: Int = 0) throws -> ConntrackMonitorItem {
        var missed: Int?
        if let now = Self.dropCount(fileDescriptor) {
            missed = Int(now &- drops) + extraLost
            drops = now
        }
        var current: [Key: ConntrackEntry] = [:]
        current.reserveCapacity(known.count)
        try table.forEach { current[Key($0)] = $0 }
        var changes: [ConntrackEvent] = []
        for (key, entry) in current {
            guard let old = known[key] else {
                changes.append(ConntrackEvent(.new, entry))
                continue
            }
            if old.status != entry.status || old.protocolState != entry.protocolState || (entry.mark != nil && old.mark != entry.mark) {
                changes.append(ConntrackEvent(.update, entry))
            }
        }
        for (key, entry) in known where current[key] == nil {
            var gone = entry
            gone.timeout = nil
            changes.append(ConntrackEvent(.destroy, gone))
        }
        known = current
        return .overrun(missed: missed, changes: changes, entries: current.count)
    }

    /// SK_MEMINFO_DROPS of getsockopt(SO_MEMINFO): the messages the kernel could not queue on the socket.
    static func dropCount(_ fd: Int32) -> UInt32? {
        var info = [UInt32](repeating: 0, count: 16)
        var length = socklen_t(info.count * 4)
        guard getsockopt(fd, SOL_SOCKET, SO_MEMINFO, &info, &length) == 0, length >= 9 * 4 else { return nil }
        return info[8]
    }
}

extension ConntrackMonitor.Key {
    init(_ entry: ConntrackEntry) {
        tuple = entry.original
        zone = entry.zone
    }
}
