#if canImport(Glibc)
import Glibc
#endif
import CBPF
import ProcNS

/// Reads a BPF ring buffer map (ring_buffer__new, ring_buffer__poll). Owns the libbpf ring_buffer (its
/// epoll fd and the mapping), freed in `deinit`. Records are handed to a closure as raw bytes that are valid
/// only during the call: decode or copy them there.
public final class RingBufferReader {
    private var pointer: OpaquePointer?
    /// The closure of the poll in progress; the C callback reaches it through the context pointer.
    private var handler: ((UnsafeRawBufferPointer) -> Void)?

    /// Maps the ring buffer whose fd is `mapFD` (it must stay open as long as the reader).
    public init(mapFD: Int32, name: String = "ring buffer") throws(OperationError) {
        errno = 0
        let callback: ring_buffer_sample_fn = { context, data, size in
            let reader = Unmanaged<RingBufferReader>.fromOpaque(context!).takeUnretainedValue()
            if let data { reader.handler?(UnsafeRawBufferPointer(start: data, count: size)) }
            return 0
        }
        // Unretained: libbpf only calls back from poll/consume, which run while `self` is alive.
        let context = Unmanaged.passUnretained(self).toOpaque()
        pointer = nil
        guard let rb = ring_buffer__new(mapFD, callback, context, nil) else {
            throw OperationError("attach", name, call: "ring_buffer__new", errno: .current)
        }
        pointer = rb
    }

    deinit {
        if let pointer { ring_buffer__free(pointer) }
    }

    /// Waits up to `timeoutMilliseconds` for records and hands each to `body`. Returns how many were read;
    /// 0 on timeout and when a signal interrupted the wait (EINTR: the caller checks its stop flag).
    /// Records the producer wrote without waking the reader (BPF_RB_NO_WAKEUP) are read after the wait.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32, _ body: (UnsafeRawBufferPointer) -> Void) throws(OperationError) -> Int {
        let woken = try run(body) { ring_buffer__poll($0, timeoutMilliseconds) }
        return woken + (try run(body) { ring_buffer__consume($0) })
    }

    /// Reads what is already there without waiting (ring_buffer__consume): the last drain before stopping.
    @discardableResult
    public func drain(_ body: (UnsafeRawBufferPointer) -> Void) throws(OperationError) -> Int {
        try run(body) { ring_buffer__consume($0) }
    }

    private func run(_ body: (UnsafeRawBufferPointer) -> Void, _ call: (OpaquePointer) -> Int32)
        throws(OperationError) -> Int
    {
        guard let pointer else { return 0 }
        precondition(handler == nil, "RingBufferReader: poll called from its own handler")
        let rc = withoutActuallyEscaping(body) { escapable in
            handler = escapable
            defer { handler = nil }
            return call(pointer)
        }
        if rc >= 0 { return Int(rc) }
        if rc == -EINTR { return 0 }
        throw OperationError("poll", "ring buffer", call: "ring_buffer__poll", errno: Errno(-rc))
    }

    /// The epoll descriptor that becomes readable when records arrive (ring_buffer__epoll_fd), to wait on
    /// it together with other descriptors.
    public var epollFD: Int32 { pointer.map { ring_buffer__epoll_fd($0) } ?? -1 }
}
