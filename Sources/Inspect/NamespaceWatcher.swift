#if canImport(Glibc)
import Glibc
#endif
import CShim
import Netlink
import ProcNS

/// A namespace as `watch` names it in every event.
public struct WatchedIdentity: Sendable {
    public let inode: UInt64
    public let names: [String]
    public let reference: String
}

/// What one `watch` event is about.
public enum WatchKind: String, Sendable, CaseIterable {
    case ns, link, addr, route, neigh, resync
}

/// One event `watch` reports.
public struct WatchEvent: Sendable {
    public enum Payload: Sendable {
        /// The namespace itself appeared or disappeared.
        case namespace
        /// A link, with its veth peer (or parent) in another watched namespace when there is one.
        case link(Link, peer: LinkPeer?)
        case address(InterfaceAddress)
        case route(Route)
        case neighbour(Neighbour)
        /// Events were lost (ENOBUFS); the namespace was read again: what it now holds.
        case resync(lost: Int, links: Int, addresses: Int, routes: Int, neighbours: Int)
    }

    /// CLOCK_REALTIME, nanoseconds.
    public let time: Int64
    public let namespace: WatchedIdentity
    public let isNew: Bool
    public let payload: Payload
    /// The namespace's links as known when the event happened, for naming devices by ifindex.
    public let state: NamespaceState

    public var kind: WatchKind {
        switch payload {
        case .namespace: .ns
        case .link: .link
        case .address: .addr
        case .route: .route
        case .neighbour: .neigh
        case .resync: .resync
        }
    }
}

/// `watch`'s engine: every namespace (or the given ones) watched at once from one thread, with poll(2)
/// over every socket (epoll is not in Swift's Glibc module; at a thousand namespaces a poll of a
/// thousand descriptors per wake-up is a few microseconds of a wake-up that reads events anyway).
///
/// - Inside each namespace, a `RouteMonitor` (one rtnetlink socket subscribed to the link, address,
///   route, neighbour and nsid groups), opened the moment the namespace is found and closed when it goes.
/// - Namespaces are found by the census, run again only when something may have made or ended one: a
///   name added or removed in the netns directory or a runtime's netns directory (inotify), an exec or
///   exit anywhere (the proc connector), or an nsid assigned or removed in the host (RTNLGRP_NSID). A
///   census every `fallbackInterval` seconds catches the rest (a process that unshares and does not
///   exec; a bind mount made elsewhere without either).
/// - A namespace that appears is read whole and its links, addresses, routes and neighbours reported as
///   new, so what was made with it (the veth `ip link add … netns X` puts there) is not missed.
/// - An overflowing socket (ENOBUFS) is counted and its namespace read again, reported as `resync`.
public final class NamespaceWatcher {
    public let references: [String]
    public let kinds: Set<WatchKind>
    public let options: CensusOptions
    /// Seconds between censuses when nothing triggered one.
    public var fallbackInterval: Double = 5
    /// Seconds a trigger waits for more of its kind before the census runs (a burst of `ip netns add`).
    public var settle: Double = 0.05
    /// Seconds at least between two censuses: on a host that execs all the time (a build, a CI runner)
    /// the proc connector would otherwise ask for one every `settle`, each a /proc walk.
    public var minimumGap: Double = 0.25
    /// The monitors' receive buffer in bytes (nil: NetlinkSocket's 1 MiB); tests make it small to force
    /// an overflow.
    public var receiveBuffer: Int32?

    /// One watched namespace. Only its sockets hold it: no namespace file stays open.
    private final class Watched {
        let identity: WatchedIdentity
        let monitor: RouteMonitor
        var state: NamespaceState
        /// A second socket in the namespace for questions (RTM_GETNSID, a re-read after an overflow):
        /// the monitor's own socket is reading multicast. Opened when first needed.
        private var query: NetlinkSocket?

        init(identity: WatchedIdentity, monitor: RouteMonitor, links: [Link]) {
            self.identity = identity
            self.monitor = monitor
            state = NamespaceState(links: links)
        }

        func querySocket() throws -> NetlinkSocket {
            if let query { return query }
            let made = try NetlinkSocket.open(in: try monitor.namespaceHandle(), label: identity.reference)
            query = made
            return made
        }
    }

    private var buffer = RouteMonitor.makeBuffer()
    private var watched: [UInt64: Watched] = [:]
    private var byDescriptor: [Int32: UInt64] = [:] { didSet { descriptors = nil } }
    /// The monitors' descriptors for poll, made again only when a namespace comes or goes (sorting a
    /// thousand keys on every wake-up was work done per event).
    private var descriptors: [Int32]?

    public init(references: [String], kinds: Set<WatchKind> = Set(WatchKind.allCases), options: CensusOptions = CensusOptions()) throws {
        self.references = references
        self.kinds = kinds
        self.options = options
        _ = nsi_raise_nofile_limit()
    }

    /// How many namespaces are watched now.
    public var count: Int { watched.count }

    /// Watches until a stop request, `duration` seconds, or `emit` returning false. `ready` is called once
    /// every namespace found at the start is subscribed.
    public func run(duration: Double?, ready: () -> Void, emit: (WatchEvent) -> Bool) throws {
        let directories = try DirectoryWatch([options.netnsDirectory, "/run/netns", "/run/docker/netns", "/var/run/docker/netns"])
        // The proc connector answers only in the initial network namespace (ECONNREFUSED elsewhere): a
        // watch started inside another namespace goes on with inotify, RTNLGRP_NSID and the 5 s census.
        let processes = try? ProcessEvents()
        let host = try RouteMonitor(in: nil, label: "host", groups: [.nsid])
        let triggers = [directories.fileDescriptor, processes?.fileDescriptor ?? -1, host.fileDescriptor]
        var census = try Census.scan(options)
        let selection: Set<UInt64>? = references.isEmpty ? nil
            : Set(try references.map { try census.select(NamespaceReference.parse($0)).id.inode })
        try update(census, selection: selection, announce: false, emit: { _ in true })
        ready()
        let deadline = duration.map { monotonicNanoseconds() + UInt64($0 * 1e9) }
        var censusDue: UInt64? = nil
        var lastCensus = monotonicNanoseconds()
        var nextFallback = lastCensus + UInt64(fallbackInterval * 1e9)
        /// When a trigger's census may run: after `settle`, and not sooner than `minimumGap` after the last.
        func due() -> UInt64 {
            max(monotonicNanoseconds() + UInt64(settle * 1e9), lastCensus + UInt64(minimumGap * 1e9))
        }
        while !StopRequest.isRequested {
            let now = monotonicNanoseconds()
            if let deadline, now >= deadline { return }
            var wake = min(censusDue ?? nextFallback, nextFallback)
            if let deadline { wake = min(wake, deadline) }
            let timeout = Int32(clamping: wake > now ? (wake - now) / 1_000_000 + 1 : 0)
            if descriptors == nil { descriptors = byDescriptor.keys.sorted() }
            var fds = (triggers + descriptors!).map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let n = poll(&fds, nfds_t(fds.count), timeout)
            if n < 0 && errno != EINTR { throw OperationError("watch", "namespaces", call: "poll", errno: .current) }
            var round: [(Watched, [RouteEvent])] = []
            for entry in fds where n > 0 && entry.revents != 0 {
                let fd = entry.fd
                if fd == triggers[0] || fd == triggers[1] {
                    let relevant = fd == triggers[0] ? directories.drain() : processes?.drain() ?? false
                    if relevant && censusDue == nil { censusDue = due() }
                } else if fd == triggers[2] {
                    _ = try? host.read(using: &buffer)
                    if censusDue == nil { censusDue = due() }
                } else if let inode = byDescriptor[fd], let ns = watched[inode] {
                    round.append((ns, (try? ns.monitor.read(using: &buffer)) ?? [.overrun]))
                }
            }
            // Every namespace's link changes of the round first, so a veth's two ends, announced in two
            // namespaces by one request, name each other whichever socket was read first.
            for (ns, items) in round { for case .link(let link, let isNew) in items { apply(link, isNew: isNew, to: ns) } }
            for (ns, items) in round {
                for item in items { if !report(item, in: ns, emit: emit) { return } }
            }
            let after = monotonicNanoseconds()
            if let due = censusDue, after >= due || after >= nextFallback {
                censusDue = nil
                nextFallback = after + UInt64(fallbackInterval * 1e9)
                census = try Census.scan(options)
                lastCensus = monotonicNanoseconds()
                if !(try update(census, selection: selection, announce: true, emit: emit)) { return }
            } else if censusDue == nil && after >= nextFallback {
                censusDue = after
            }
        }
    }

    /// Opens what the census has and the watcher does not, closes what it no longer has; with
    /// `announce`, reports both (and a new namespace's contents). False when `emit` had enough.
    @discardableResult
    private func update(_ census: Census, selection: Set<UInt64>?, announce: Bool, emit: (WatchEvent) -> Bool) throws -> Bool {
        let present = census.namespaces.filter { selection?.contains($0.id.inode) ?? true }
        let inodes = Set(present.map(\.id.inode))
        for (inode, ns) in watched where !inodes.contains(inode) {
            watched[inode] = nil
            byDescriptor[ns.monitor.fileDescriptor] = nil
            if announce && kinds.contains(.ns) && !emit(event(ns, isNew: false, .namespace)) { return false }
        }
        let fresh = present.filter { watched[$0.id.inode] == nil }
        var handles: [NamespaceHandle] = [], entries: [NetNamespace] = []
        for entry in fresh {
            guard let handle = try? census.open(entry, quick: true) else { continue }
            handles.append(handle)
            entries.append(entry)
        }
        // Subscribed first, then read: a change racing the read is reported after it, never lost.
        let monitors = try NetlinkSocket.open(inEach: handles, labels: entries.map(\.reference)).map { opened in
            opened.flatMap { socket in Result { try RouteMonitor(socket: socket, receiveBuffer: receiveBuffer) } }
        }
        let parts: InventoryParts = announce ? [.links, .addresses, .routes, .neighbours] : [.links]
        let snapshots = try Inventory.take(handles, parts: parts)
        var added: [(Watched, NamespaceSnapshot)] = []
        for (i, entry) in entries.enumerated() {
            guard case .success(let monitor) = monitors[i], case .success(let snapshot) = snapshots[i] else { continue }
            let identity = WatchedIdentity(inode: entry.id.inode, names: entry.names.map(\.reference), reference: entry.reference)
            let ns = Watched(identity: identity, monitor: monitor, links: snapshot.state.links)
            watched[entry.id.inode] = ns
            byDescriptor[monitor.fileDescriptor] = entry.id.inode
            added.append((ns, snapshot))
        }
        guard announce else { return true }
        for (ns, snapshot) in added {
            if kinds.contains(.ns) && !emit(event(ns, isNew: true, .namespace)) { return false }
            let s = snapshot.state
            let items: [RouteEvent] = s.links.map { .link($0, isNew: true) } + s.addresses.map { .address($0, isNew: true) }
                + s.routes.map { .route($0, isNew: true) } + s.neighbours.map { .neighbour($0, isNew: true) }
            for item in items { if !report(item, in: ns, emit: emit) { return false } }
        }
        return true
    }

    private func apply(_ link: Link, isNew: Bool, to ns: Watched) {
        var links = ns.state.links.filter { $0.index != link.index }
        if isNew { links.append(link) }
        ns.state.links = links
    }

    private func event(_ ns: Watched, isNew: Bool, _ payload: WatchEvent.Payload) -> WatchEvent {
        WatchEvent(time: WallClock.now(), namespace: ns.identity, isNew: isNew, payload: payload, state: ns.state)
    }

    /// Reports one event of `ns` (when its kind is wanted). False when `emit` had enough.
    private func report(_ item: RouteEvent, in ns: Watched, emit: (WatchEvent) -> Bool) -> Bool {
        switch item {
        case .link(let link, let isNew):
            guard kinds.contains(.link) else { return true }
            return emit(event(ns, isNew: isNew, .link(link, peer: peer(of: link, in: ns))))
        case .address(let address, let isNew):
            return !kinds.contains(.addr) || emit(event(ns, isNew: isNew, .address(address)))
        case .route(let route, let isNew):
            return !kinds.contains(.route) || emit(event(ns, isNew: isNew, .route(route)))
        case .neighbour(let neighbour, let isNew):
            return !kinds.contains(.neigh) || emit(event(ns, isNew: isNew, .neighbour(neighbour)))
        case .nsid:
            return true
        case .overrun:
            return resync(ns, emit: emit)
        }
    }

    /// After an overflow: reads the namespace again and says how much was lost and what it holds now.
    private func resync(_ ns: Watched, emit: (WatchEvent) -> Bool) -> Bool {
        guard let s = try? Inventory.read([.links, .addresses, .routes, .neighbours], from: ns.querySocket()).decoded()
        else { return true }
        ns.state = s
        guard kinds.contains(.resync) else { return true }
        return emit(event(ns, isNew: true, .resync(lost: 1, links: s.links.count, addresses: s.addresses.count,
                                                     routes: s.routes.count, neighbours: s.neighbours.count)))
    }

    /// The veth peer (or parent) of `link` in another watched namespace. Found by index first: a veth's
    /// two ends point at each other's ifindex, and among the namespaces watched usually one has such a
    /// link; only when several do is the namespace's nsid table asked (RTM_GETNSID about each
    /// candidate, on a second socket in the namespace: the monitor's own socket is reading multicast).
    private func peer(of link: Link, in ns: Watched) -> LinkPeer? {
        guard PeerNames.crosses(link), let nsid = link.linkNetnsID, let peerIndex = link.link else { return nil }
        let candidates = watched.values.filter { other in
            other !== ns && other.state.link(index: peerIndex).map { $0.link == link.index || $0.link == nil } == true
        }
        var target = candidates.count == 1 ? candidates.first : nil
        if target == nil && !candidates.isEmpty {
            let handles = candidates.compactMap { try? $0.monitor.namespaceHandle() }
            if handles.count == candidates.count, let answers = try? ns.querySocket().nsids(of: handles) {
                for (other, answer) in zip(candidates, answers) {
                    if case .success(.assigned(let id)) = answer, id == nsid { target = other }
                }
            }
        }
        guard let target, let remote = target.state.link(index: peerIndex) else { return nil }
        return LinkPeer(ifname: remote.name, ifindex: peerIndex, namespace: target.identity.reference, inode: target.identity.inode)
    }
}
