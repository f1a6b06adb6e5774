#if canImport(Glibc)
import Glibc
#endif
import CShim
import Netlink
import ProcNS
import Synchronization

/// Facts about a census namespace that need the kernel: its nsid as the host namespace sees it
/// (RTM_GETNSID with NETNSA_FD, asked from a socket in the host namespace) and, for `list`'s IFACES and
/// ADDRS columns, its interfaces and global addresses (read from inside it).
public struct NamespaceFacts: Sendable {
    public var nsid: NSID?
    public var interfaces: Interfaces?

    public init(nsid: NSID? = nil, interfaces: Interfaces? = nil) {
        self.nsid = nsid
        self.interfaces = interfaces
    }

    public struct Interfaces: Sendable {
        public var names: [String]
        public var addresses: [String]
    }

    /// Asks namespaces on two worker threads as they are queued: each worker has its own socket in the
    /// host namespace, looks up the nsids of a chunk of namespaces in one batched exchange, then enters
    /// each to read /proc/thread-self/net/dev and an address dump. The kernel's nsid lookup walks the
    /// host's whole nsid table (idr_for_each under RCU, no lock), so the two workers walk in parallel.
    public final class Gatherer: @unchecked Sendable {
        private let workers: NamespaceWorkers<NamespaceFacts>
        private var queued: [UInt64: Int] = [:]
        /// Whether workers still read interfaces (cleared by `stopReadingInterfaces`, read per chunk).
        private let readInterfaces: Switch

        /// A flag shared with the worker threads.
        final class Switch: Sendable {
            let on: Atomic<Bool>
            init(_ on: Bool) { self.on = Atomic(on) }
        }

        /// The namespaces of the nsfs mounts in `startWith` are opened and queued at once.
        public init(interfaces: Bool, startWith mounts: [NSFSMount], parallelism: Int = 2) throws {
            _ = nsi_raise_nofile_limit()
            let mounted = NamespaceHandle.open(mounts: mounts)
            // Room for the namespaces the census adds, while still single-threaded (see the C function).
            _ = nsi_grow_descriptor_table(Int32(mounted.count + 4096))
            let hostSockets = (0..<parallelism).map { _ in try? NamespaceFacts.hostSocket() }
            // One RTM_GETNSID dump of the host's table says whether any namespace has an nsid there: when
            // none has, every lookup (each a walk of that table) would answer "unassigned".
            let noneAssigned = (try? hostSockets.first??.assignedNSIDs().isEmpty) ?? false
            let readInterfaces = Switch(interfaces)
            self.readInterfaces = readInterfaces
            workers = try NamespaceWorkers(workers: parallelism) { [readInterfaces] context, chunk in
                var facts = [NamespaceFacts](repeating: NamespaceFacts(), count: chunk.count)
                if noneAssigned {
                    for i in facts.indices { facts[i].nsid = .unassigned }
                } else if let socket = hostSockets[context.worker], let answers = try? socket.nsids(of: chunk) {
                    for (i, answer) in answers.enumerated() { facts[i].nsid = try? answer.get() }
                }
                guard readInterfaces.on.load(ordering: .relaxed) else { return facts }
                for (i, ns) in chunk.enumerated() {
                    guard (try? context.enter(ns)) != nil,
                        let snapshot = try? Inventory.snapshot(ns, parts: [.interfaceNames, .addresses])
                    else { continue }
                    let names = (snapshot.interfaceNames ?? []).filter { $0 != "lo" }
                    let addresses = snapshot.state.addresses.filter { $0.scope == 0 }.compactMap { $0.prefix?.description }
                    facts[i].interfaces = Interfaces(names: names, addresses: addresses)
                }
                return facts
            }
            add(mounted)
        }

        /// Queues namespaces (each kept open until `finish`) that were not queued already.
        public func add(_ handles: [NamespaceHandle]) {
            let fresh = handles.filter { queued[$0.id.inode] == nil }
            let first = workers.add(fresh)
            for (offset, handle) in fresh.enumerated() { queued[handle.id.inode] = first + offset }
        }

        public func isQueued(_ inode: UInt64) -> Bool { queued[inode] != nil }

        /// Workers read no more interfaces from here on (chunks already taken finish as they are).
        public func stopReadingInterfaces() { readInterfaces.on.store(false, ordering: .relaxed) }

        /// Waits for the workers; the facts by namespace inode.
        public func finish() -> [UInt64: NamespaceFacts] {
            let all = workers.finish()
            return queued.mapValues { all[$0] }
        }
    }

    /// The nsids of `namespaces` as the host numbers them, for `list` without its interface columns:
    /// nothing is entered, and a namespace a process lives in is asked about by its pid (NETNSA_PID)
    /// instead of being opened. The host's table is dumped first (RTM_GETNSID, NLM_F_DUMP): it says how
    /// many ids are assigned, and the lookups (each a walk of that table in the kernel) stop once that
    /// many are found, or are not made at all when it is empty: on a host of 500 `unshare --net`
    /// processes and no veths, none is.
    public static func nsids(of namespaces: [NetNamespace], census: Census) -> [UInt64: NamespaceFacts] {
        var facts: [UInt64: NamespaceFacts] = [:]
        guard let socket = try? hostSocket(), let assigned = try? socket.assignedNSIDs().count else { return facts }
        for ns in namespaces { facts[ns.id.inode] = NamespaceFacts(nsid: .unassigned) }
        var found = 0
        // Namespaces without processes (bind mounts: where `ip netns` names live, and nsids with them) first.
        let ordered = namespaces.filter { $0.pids.isEmpty } + namespaces.filter { !$0.pids.isEmpty }
        var start = 0
        while found < assigned && start < ordered.count {
            let chunk = ordered[start..<min(start + 64, ordered.count)]
            start += chunk.count
            var handles: [NamespaceHandle] = []
            var asked: [(UInt64, NSIDRequests.Target)] = []
            for ns in chunk {
                if let pid = ns.pids.first {
                    asked.append((ns.id.inode, .pid(pid)))
                } else if let handle = try? census.open(ns, quick: true) {
                    handles.append(handle)
                    asked.append((ns.id.inode, .fd(handle.fd)))
                }
            }
            guard let answers = try? socket.nsids(of: asked.map(\.1)) else { continue }
            for ((inode, _), answer) in zip(asked, answers) {
                let nsid = try? answer.get()
                facts[inode]?.nsid = nsid
                if case .assigned? = nsid { found += 1 }
            }
            withExtendedLifetime(handles) {}
        }
        return facts
    }

    /// A route socket in the host namespace (pid 1's), opened there if nsinspect runs elsewhere; in
    /// its own namespace when the host's cannot be opened (as the census then has no host either).
    public static func hostSocket() throws -> NetlinkSocket {
        let own = try NamespaceHandle.current()
        if let host = try? NamespaceHandle.host(), host.id != own.id { return try NetlinkSocket.open(in: host, label: "host") }
        return try NetlinkSocket.open()
    }
}
