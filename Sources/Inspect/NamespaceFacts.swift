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
            let readInterfaces = Switch(interfaces)
            self.readInterfaces = readInterfaces
            workers = try NamespaceWorkers(workers: parallelism) { [readInterfaces] context, chunk in
                var facts = [NamespaceFacts](repeating: NamespaceFacts(), count: chunk.count)
                if let socket = hostSockets[context.worker], let answers = try? socket.nsids(of: chunk) {
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

    /// A route socket in the host namespace (pid 1's), opened there if nsinspect runs elsewhere; in
    /// its own namespace when the host's cannot be opened (as the census then has no host either).
    public static func hostSocket() throws -> NetlinkSocket {
        let own = try NamespaceHandle.current()
        if let host = try? NamespaceHandle.host(), host.id != own.id { return try NetlinkSocket.open(in: host, label: "host") }
        return try NetlinkSocket.open()
    }
}
