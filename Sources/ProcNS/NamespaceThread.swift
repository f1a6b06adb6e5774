#if canImport(Glibc)
import Glibc
#endif
import CShim

/// Namespace work on a dedicated thread.
///
/// setns(2) and unshare(2) change only the calling thread, and Swift concurrency may move a task to
/// another thread at any `await` (docs/design.md). So every switch happens on a new pthread that runs the
/// body synchronously and then ends: the caller's thread never leaves its namespace, and a thread that
/// entered a namespace is never reused. Typical bodies only create a socket or a BPF link, which stays
/// bound to the namespace it was created in.
public enum NamespaceThread {
    private final class Call {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Runs `body` synchronously on a new thread and waits for it.
    private static func onNewThread(_ body: () -> Void) throws(OperationError) {
        try withoutActuallyEscaping(body) { (escapable) throws(OperationError) in
            let call = Call(escapable)
            let context = Unmanaged.passRetained(call)
            defer { context.release() }
            let rc = nsi_run_on_new_thread({ raw in
                Unmanaged<Call>.fromOpaque(raw!).takeUnretainedValue().body()
            }, context.toOpaque())
            if rc != 0 { throw OperationError("", "namespace thread", call: "pthread_create", errno: Errno(rc)) }
        }
    }

    /// Runs `body` inside the network namespace `ns`, on a thread of its own.
    public static func run<T>(in ns: NamespaceHandle, _ body: () throws -> T) throws -> T {
        var result: Result<T, any Error> = .failure(OperationError("", ns.origin, "namespace thread did not run"))
        try onNewThread {
            guard nsi_setns(ns.fd, NSI_CLONE_NEWNET) == 0 else {
                result = .failure(OperationError("", ns.origin, call: "setns", errno: .current))
                return
            }
            result = Result { try body() }
        }
        return try result.get()
    }

    /// Runs `body` once inside each namespace, all on one thread that moves from namespace to namespace
    /// (one thread instead of one per namespace when a command visits hundreds of them). A namespace
    /// that cannot be entered yields its error and the others still run.
    public static func runEach<T>(in namespaces: [NamespaceHandle], _ body: (Int, NamespaceHandle) throws -> T)
        throws(OperationError) -> [Result<T, any Error>]
    {
        var results: [Result<T, any Error>] = []
        results.reserveCapacity(namespaces.count)
        try onNewThread {
            for (index, ns) in namespaces.enumerated() {
                guard nsi_setns(ns.fd, NSI_CLONE_NEWNET) == 0 else {
                    results.append(.failure(OperationError("", ns.origin, call: "setns", errno: .current)))
                    continue
                }
                results.append(Result { try body(index, ns) })
            }
        }
        return results
    }

    /// `runEach` spread over `parallelism` threads that run at the same time, each visiting a contiguous
    /// share of the namespaces; results come back in the order of `namespaces`. For commands that ask
    /// hundreds of namespaces about their interfaces, where the kernel work dominates.
    public static func runEach<T>(in namespaces: [NamespaceHandle], parallelism: Int,
                                  _ body: @Sendable (Int, NamespaceHandle) throws -> T)
        throws(OperationError) -> [Result<T, any Error>]
    {
        let workers = max(1, min(parallelism, namespaces.count, 64))
        if workers == 1 { return try runEach(in: namespaces, body) }
        return try withoutActuallyEscaping(body) { (escapable) throws(OperationError) -> [Result<T, any Error>] in
            let shared = ParallelWork(namespaces, workers, escapable)
            let context = Unmanaged<WorkerGroup>.passRetained(shared)
            defer { context.release() }
            let rc = nsi_run_on_new_threads({ raw, worker in
                Unmanaged<WorkerGroup>.fromOpaque(raw!).takeUnretainedValue().run(worker: Int(worker))
            }, context.toOpaque(), Int32(workers))
            if rc != 0 { throw OperationError("", "namespace threads", call: "pthread_create", errno: Errno(rc)) }
            return shared.collect()
        }
    }

    /// Like `runEach(in:parallelism:)`, but the workers take namespaces one at a time from a shared
    /// counter, and each result is handed to `emit` in the order of `namespaces` as soon as it and all
    /// before it are done (from whichever worker completes the run, under a lock). A command that prints
    /// one namespace after another keeps only the few results that finished out of order.
    ///
    /// With `enter` false the workers stay in the caller's namespace: for bodies that only use sockets
    /// opened in each namespace before (they stay bound to it), so no setns is repeated.
    public static func runEachInOrder<T>(in namespaces: [NamespaceHandle], parallelism: Int, enter: Bool = true,
                                         _ body: @Sendable (Int, NamespaceHandle) throws -> T,
                                         emit: @Sendable (Int, Result<T, any Error>) -> Void) throws(OperationError)
    {
        let workers = max(1, min(parallelism, namespaces.count, 64))
        try withoutActuallyEscaping(body) { (work) throws(OperationError) in
            try withoutActuallyEscaping(emit) { (emit) throws(OperationError) in
                let shared = OrderedWork(namespaces, enter, work, emit)
                let context = Unmanaged<WorkerGroup>.passRetained(shared)
                defer { context.release() }
                let rc = nsi_run_on_new_threads({ raw, worker in
                    Unmanaged<WorkerGroup>.fromOpaque(raw!).takeUnretainedValue().run(worker: Int(worker))
                }, context.toOpaque(), Int32(workers))
                if rc != 0 { throw OperationError("", "namespace threads", call: "pthread_create", errno: Errno(rc)) }
            }
        }
    }

    /// Creates a new, empty network namespace (unshare(CLONE_NEWNET) on a thread of its own) and returns a
    /// handle to it; the namespace lives as long as the handle or whatever else holds it (a bind mount).
    public static func createNamespace() throws -> NamespaceHandle {
        var result: Result<NamespaceHandle, any Error> = .failure(OperationError("", "new namespace", "not created"))
        try onNewThread {
            guard nsi_unshare(NSI_CLONE_NEWNET) == 0 else {
                result = .failure(OperationError("", "new namespace", call: "unshare", errno: .current))
                return
            }
            result = Result { () throws(OperationError) in
                try NamespaceHandle.open(path: "/proc/thread-self/ns/net", origin: "new namespace")
            }
        }
        return try result.get()
    }
}

/// The shared state of `runEach(in:parallelism:)`: each worker writes only its own slots of a buffer
/// allocated up front (no Swift array is touched from two threads), and the join in
/// nsi_run_on_new_threads orders those writes before `collect` reads them.
private class WorkerGroup: @unchecked Sendable {
    /// Overridden by the generic subclass; a C callback cannot name a generic type.
    func run(worker: Int) {}
}

private final class ParallelWork<T>: WorkerGroup, @unchecked Sendable {
    let namespaces: [NamespaceHandle]
    let workers: Int
    let body: (Int, NamespaceHandle) throws -> T
    let slots: UnsafeMutablePointer<Result<T, any Error>?>

    init(_ namespaces: [NamespaceHandle], _ workers: Int, _ body: @escaping (Int, NamespaceHandle) throws -> T) {
        self.namespaces = namespaces
        self.workers = workers
        self.body = body
        slots = .allocate(capacity: namespaces.count)
        slots.initialize(repeating: nil, count: namespaces.count)
        super.init()
    }

    deinit {
        slots.deinitialize(count: namespaces.count)
        slots.deallocate()
    }

    override func run(worker: Int) {
        let count = namespaces.count
        for index in (count * worker / workers)..<(count * (worker + 1) / workers) {
            let ns = namespaces[index]
            guard nsi_setns(ns.fd, NSI_CLONE_NEWNET) == 0 else {
                slots[index] = .failure(OperationError("", ns.origin, call: "setns", errno: .current))
                continue
            }
            slots[index] = Result { try body(index, ns) }
        }
    }

    func collect() -> [Result<T, any Error>] {
        (0..<namespaces.count).map { slots[$0] ?? .failure(OperationError("", "namespace thread", "did not run")) }
    }
}

/// The shared state of `runEachInOrder`: a counter hands out namespaces, finished results wait in
/// `pending` until every earlier one has been emitted. One mutex guards the counter, `pending` and the
/// emission, so `emit` is never called concurrently and always in index order.
private final class OrderedWork<T>: WorkerGroup, @unchecked Sendable {
    let namespaces: [NamespaceHandle]
    let enter: Bool
    let body: (Int, NamespaceHandle) throws -> T
    let emit: (Int, Result<T, any Error>) -> Void
    private var lock = pthread_mutex_t()
    private var next = 0
    private var nextToEmit = 0
    private var pending: [Int: Result<T, any Error>] = [:]

    init(_ namespaces: [NamespaceHandle], _ enter: Bool, _ body: @escaping (Int, NamespaceHandle) throws -> T,
         _ emit: @escaping (Int, Result<T, any Error>) -> Void) {
        self.namespaces = namespaces
        self.enter = enter
        self.body = body
        self.emit = emit
        super.init()
        pthread_mutex_init(&lock, nil)
    }

    deinit { pthread_mutex_destroy(&lock) }

    override func run(worker: Int) {
        while true {
            pthread_mutex_lock(&lock)
            let index = next
            next += 1
            pthread_mutex_unlock(&lock)
            guard index < namespaces.count else { return }
            let ns = namespaces[index]
            let result: Result<T, any Error>
            if !enter || nsi_setns(ns.fd, NSI_CLONE_NEWNET) == 0 {
                result = Result { try body(index, ns) }
            } else {
                result = .failure(OperationError("", ns.origin, call: "setns", errno: .current))
            }
            pthread_mutex_lock(&lock)
            pending[index] = result
            while let ready = pending.removeValue(forKey: nextToEmit) {
                emit(nextToEmit, ready)
                nextToEmit += 1
            }
            pthread_mutex_unlock(&lock)
        }
    }
}
