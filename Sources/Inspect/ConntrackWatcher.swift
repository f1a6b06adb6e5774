#if canImport(Glibc)
import Glibc
#endif
import Netlink
import ProcNS

/// `conntrack --watch`'s engine: the events of several namespaces at once, from one conntrack event socket
/// opened inside each, until a stop request, the duration, or the caller has seen enough. A namespace
/// whose name no longer leads to it (deleted, or the name reused) stops being watched; the others go on.
public struct ConntrackWatcher {
    /// Each labelled with the reference it was given by, which is checked again once a second (a name in
    /// the netns directory or a pid) or every five seconds (one that needs a census: a container, ino:N).
    public let namespaces: [NamedNamespace]
    public let duration: Double?
    public let options: CensusOptions

    public init(namespaces: [NamedNamespace], duration: Double?, options: CensusOptions = CensusOptions()) {
        self.namespaces = namespaces
        self.duration = duration
        self.options = options
    }

    /// One watched namespace.
    private final class Watched {
        let namespace: NamedNamespace
        var reference: String { namespace.label }
        let monitor: ConntrackMonitor
        /// Re-resolving a name found through the census (a container, ino:N) costs a /proc scan: checked
        /// less often than a name in the netns directory or a pid.
        let needsCensus: Bool

        init(_ namespace: NamedNamespace, _ monitor: ConntrackMonitor, netnsDirectory: String) {
            self.namespace = namespace
            self.monitor = monitor
            switch try? NamespaceReference.parse(namespace.label) {
            case .inode?, .qualified?: needsCensus = true
            case .name(let name)?:
                var st = stat()
                needsCensus = lstat(netnsDirectory + "/" + name, &st) != 0
            default: needsCensus = false
            }
        }
    }

    /// Watches until stopped. `started` gets the labels of the namespaces being watched; `item` each
    /// event or overrun with its namespace's label, and returns false when the caller has seen enough;
    /// `read` after each round of reads (the moment to flush what `item` buffered); `problem` what cannot
    /// be watched or stops being watched (with no label: when none is left). Returns how many namespaces
    /// were watched.
    @discardableResult
    public func run(started: ([String]) -> Void, item: (String, ConntrackMonitorItem) -> Bool, read: () -> Void,
                    problem: (_ label: String?, _ message: String) -> Void) throws -> Int {
        var watched: [Watched] = []
        for ns in namespaces {
            do {
                let monitor = try ConntrackMonitor(in: ns.handle, label: ns.label)
                watched.append(Watched(ns, monitor, netnsDirectory: options.netnsDirectory))
                if (try? Sysctl.read("net.netfilter.nf_conntrack_events", in: ns.handle)) == "0" {
                    problem(ns.label, "events are off in this namespace (net.netfilter.nf_conntrack_events=0): nothing will be seen")
                }
            } catch {
                problem(ns.label, "cannot watch: \(OperationError.explain(error))")
            }
        }
        let count = watched.count
        guard count > 0 else { return 0 }
        started(watched.map(\.namespace.label))

        let start = monotonicNanoseconds()
        let end = duration.map { monotonicDeadline(after: $0, from: start) }
        var lastCheck = start, lastCensusCheck = start
        watching: while !watched.isEmpty {
            let now = monotonicNanoseconds()
            if let end, now >= end { break }
            let wait = min(100, end.map { Int(($0 - now) / 1_000_000) + 1 } ?? 100)
            var fds = watched.map { pollfd(fd: $0.monitor.fileDescriptor, events: Int16(POLLIN), revents: 0) }
            // A stop signal interrupts the poll (EINTR) and is seen here.
            let ready = poll(&fds, nfds_t(fds.count), Int32(wait))
            if StopRequest.isRequested { break }
            if ready > 0 {
                var dropped: Set<ObjectIdentifier> = []
                for (w, fd) in zip(watched, fds) where fd.revents != 0 {
                    do {
                        for one in try w.monitor.read() where !item(w.namespace.label, one) { break watching }
                    } catch {
                        problem(w.namespace.label, "\(OperationError.explain(error)); no longer watched")
                        dropped.insert(ObjectIdentifier(w))
                    }
                }
                read()
                watched.removeAll { dropped.contains(ObjectIdentifier($0)) }
            }
            let after = monotonicNanoseconds()
            if after - lastCheck >= 1_000_000_000 {
                let census = after - lastCensusCheck >= 5_000_000_000
                // One resolver for the round: the census it may take serves every namespace checked.
                var resolver = NamespaceResolver(options: options)
                watched.removeAll { w in
                    guard !w.needsCensus || census, let gone = gone(w, resolver: &resolver) else { return false }
                    problem(w.namespace.label, "\(gone); no longer watched")
                    return true
                }
                lastCheck = after
                if census { lastCensusCheck = after }
                if watched.isEmpty { problem(nil, "no namespace left to watch") }
            }
        }
        return count
    }

    /// Whether the name the namespace was given still leads to it; why not, when it does not.
    private func gone(_ w: Watched, resolver: inout NamespaceResolver) -> String? {
        do {
            let now = try resolver.resolve(w.reference)
            return now.id == w.namespace.handle.id ? nil : "\(w.reference) now names another namespace (\(now.id))"
        } catch {
            return "the namespace is gone (\(error.reason))"
        }
    }
}
