#if canImport(Glibc)
import Glibc
#endif
import CShim

/// What a `NamespaceWorkers` body may do on its worker thread: know which worker it is, and enter a
/// namespace (setns(2) with CLONE_NEWNET on that thread only).
public struct NamespaceWorkerContext: Sendable {
    /// The worker's index, 0..<workers: for resources the caller made one of per worker (a socket).
    public let worker: Int

    /// Moves this worker thread into `ns`; sockets created afterwards belong to it.
    public func enter(_ ns: NamespaceHandle) throws(OperationError) {
        guard nsi_setns(ns.fd, NSI_CLONE_NEWNET) == 0 else {
            throw OperationError("", ns.origin, call: "setns", errno: .current)
        }
    }
}

/// Threads that work through namespaces handed to them while they run, for a command that can start on
/// the namespaces it already knows (the nsfs mounts of its own mount namespace) while the census still
/// reads /proc, and queue the rest when the census is done.
///
/// Namespaces are taken in chunks (so a body can batch what it asks from outside them, like nsid
/// lookups), results come back in the order namespaces were added. Each worker is a thread of its own
/// that ends at `finish()`: a thread that entered a namespace is never reused for anything else, and the
/// caller's thread never leaves its namespace (docs/design.md). `finish()` must be called: the running
/// threads keep the pool alive until then.
public final class NamespaceWorkers<T: Sendable>: @unchecked Sendable {
    public typealias Body = @Sendable (NamespaceWorkerContext, [NamespaceHandle]) -> [T]

    private let body: Body
    private let chunkSize: Int
    private var lock = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var jobs: [NamespaceHandle] = []
    private var results: [T?] = []
    private var next = 0
    private var closed = false
    private var group: UnsafeMutableRawPointer?
    private var context: Unmanaged<WorkerRunner>?

    /// Starts `workers` threads (pthread_create) that wait for namespaces; `body` gets up to `chunkSize`
    /// of them at a time and returns one result for each, in order.
    public init(workers: Int, chunkSize: Int = 32, body: @escaping Body) throws(OperationError) {
        self.body = body
        self.chunkSize = max(1, chunkSize)
        pthread_mutex_init(&lock, nil)
        pthread_cond_init(&wake, nil)
        let runner = Unmanaged.passRetained(WorkerRunner { [self] worker in self.work(worker) })
        var error: Int32 = 0
        guard let started = runner.takeUnretainedValue().start(count: workers, context: runner.toOpaque(), error: &error) else {
            runner.release()
            throw OperationError("", "namespace workers", call: "pthread_create", errno: Errno(error))
        }
        group = started
        context = runner
    }

    deinit {
        pthread_cond_destroy(&wake)
        pthread_mutex_destroy(&lock)
    }

    /// Queues namespaces for the workers; returns the index of the first one in `finish()`'s results.
    @discardableResult
    public func add(_ handles: [NamespaceHandle]) -> Int {
        pthread_mutex_lock(&lock)
        let first = jobs.count
        jobs += handles
        results += repeatElement(nil, count: handles.count)
        pthread_cond_broadcast(&wake)
        pthread_mutex_unlock(&lock)
        return first
    }

    /// Says no more namespaces are coming, waits for the workers to end (pthread_join) and returns one
    /// result per namespace added, in the order they were added.
    public func finish() -> [T] {
        pthread_mutex_lock(&lock)
        closed = true
        pthread_cond_broadcast(&wake)
        pthread_mutex_unlock(&lock)
        if let group { nsi_threads_join(group) }
        group = nil
        context?.release()
        context = nil
        // Every slot is filled once the workers have drained the queue.
        return results.map { $0! }
    }

    private func work(_ worker: Int) {
        let context = NamespaceWorkerContext(worker: worker)
        while true {
            pthread_mutex_lock(&lock)
            while next >= jobs.count && !closed { pthread_cond_wait(&wake, &lock) }
            if next >= jobs.count {
                pthread_mutex_unlock(&lock)
                return
            }
            let range = next..<min(jobs.count, next + chunkSize)
            next = range.upperBound
            let chunk = Array(jobs[range])
            pthread_mutex_unlock(&lock)

            let out = body(context, chunk)
            precondition(out.count == chunk.count, "NamespaceWorkers body returned \(out.count) results for \(chunk.count) namespaces")
            pthread_mutex_lock(&lock)
            for (offset, value) in out.enumerated() { results[range.lowerBound + offset] = value }
            pthread_mutex_unlock(&lock)
        }
    }
}

/// A non-generic trampoline for `NamespaceWorkers`: a C thread entry cannot capture a generic type.
private final class WorkerRunner: @unchecked Sendable {
    let run: (Int) -> Void
    init(_ run: @escaping (Int) -> Void) { self.run = run }

    /// Starts the threads (nsi_threads_start); `context` is this object, retained by the caller.
    func start(count: Int, context: UnsafeMutableRawPointer, error: inout Int32) -> UnsafeMutableRawPointer? {
        nsi_threads_start({ raw, worker in
            Unmanaged<WorkerRunner>.fromOpaque(raw!).takeUnretainedValue().run(Int(worker))
        }, context, Int32(max(1, count)), &error)
    }
}
