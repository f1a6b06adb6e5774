#if canImport(Glibc)
import Glibc
#endif
import ProcNS
import Synchronization

/// Every `watch --json` line, fanned out to each browser that listens (`/api/events`).
///
/// One `nsinspect watch --json` child serves every subscriber, whatever their number: the kernel sources
/// (a subscribed rtnetlink socket per namespace, inotify, the proc connector) are opened once. It starts
/// with the server, which waits for it to be subscribed everywhere before it says it listens, so a change
/// made after that is never missed; it runs until the server stops. If it ends on its own it is started
/// again a second later, and subscribers get a `resync` line so a page re-reads the graph.
public final class EventHub: Sendable {
    private struct State {
        var subscribers: [Int: AsyncStream<[UInt8]>.Continuation] = [:]
        var next = 0
        var started = false
        var stopping = false
        var pumpEnded = false
        var child: ChildProcess?
    }

    private let state = Mutex(State())
    private let runner: CommandRunner
    /// The file watch writes once every namespace's socket is subscribed.
    private let readyFile: String

    public init(runner: CommandRunner, readyFile: String) {
        self.runner = runner
        self.readyFile = readyFile
    }

    /// Starts the watch child; returns whether it was ready (subscribed everywhere) within `timeout`.
    public func start(timeout seconds: Double = 30) async -> Bool {
        let start = state.withLock { s -> Bool in
            let start = !s.started && !s.stopping
            if start { s.started = true }
            return start
        }
        if start { DetachedThread.start { self.pump() } }
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        while monotonicNanoseconds() < deadline {
            if access(readyFile, F_OK) == 0 { return true }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return false
    }

    /// A stream of event lines (each without its newline) for one listener. At most `buffer` lines wait
    /// for a slow listener; older ones are dropped for it alone.
    public func subscribe(buffer: Int = 4096) -> (id: Int, events: AsyncStream<[UInt8]>) {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingNewest(buffer))
        let id = state.withLock { s -> Int in
            s.next += 1
            s.subscribers[s.next] = continuation
            return s.next
        }
        continuation.onTermination = { [weak self] _ in self?.unsubscribe(id) }
        return (id, stream)
    }

    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    func unsubscribe(_ id: Int) {
        _ = state.withLock { $0.subscribers.removeValue(forKey: id) }
    }

    /// Ends every stream and the watch child (SIGTERM by its PID: it is ours and not yet reaped), and
    /// waits up to 5 s for the child to be gone, so its ready file is removed before the caller removes
    /// the directory.
    public func stop() {
        let (child, subscribers, started) = state.withLock { s in
            s.stopping = true
            let taken = s.subscribers
            s.subscribers = [:]
            return (s.child, taken, s.started)
        }
        child?.signal(SIGTERM)
        for continuation in subscribers.values { continuation.finish() }
        guard started else { return }
        for _ in 0..<500 where !state.withLock({ $0.pumpEnded }) { usleep(10_000) }
    }

    private func broadcast(_ line: [UInt8]) {
        let targets = state.withLock { Array($0.subscribers.values) }
        for continuation in targets { continuation.yield(line) }
    }

    /// Runs the watch child on this thread until the server stops.
    private func pump() {
        defer { state.withLock { $0.pumpEnded = true } }
        while !state.withLock({ $0.stopping }) {
            let result = try? runner.run(["watch", "--json", "--ready-file", readyFile], line: { [self] line in broadcast(Array(line)) },
                                         started: { [self] child in
                                             let stopping = state.withLock { s -> Bool in
                                                 s.child = child
                                                 return s.stopping
                                             }
                                             if stopping { child.signal(SIGTERM) }
                                         })
            state.withLock { $0.child = nil }
            if state.withLock({ $0.stopping }) { break }
            // It should not end; tell listeners that events may be missing, then start it again.
            let reason = result.map { $0.stderr.split(separator: "\n").first.map(String.init) ?? "\($0.status)" } ?? "could not start"
            broadcast(Array(#"{"event":"resync","reason":"watch ended: \#(reason.replacing("\"", with: "'"))"}"#.utf8))
            sleep(1)
        }
    }
}

/// A thread of its own (pthread_create, detached) for work that blocks for as long as the server runs,
/// so it holds no thread of Swift's cooperative pool or of NIO's.
enum DetachedThread {
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    static func start(_ body: @escaping @Sendable () -> Void) {
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, context)
        if rc == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<Box>.fromOpaque(context).release()
        }
    }
}
