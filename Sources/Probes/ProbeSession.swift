#if canImport(Glibc)
import Glibc
#endif
import CBPF
import CShim
import ProcNS

/// A running trace: bpf/trace.bpf.c loaded, configured with a `TraceFilter`, attached to its tracepoints,
/// and its ring buffer mapped. The lifecycle is fixed (libbpf-bootstrap's): open → configure → load →
/// attach → poll → detach in reverse; `init` does the first four, `poll` the fifth, `close()` or `deinit`
/// the last. Every attachment is owned by a file descriptor (no pins, no tc filters), so a tracer killed
/// with SIGKILL leaves nothing behind.
///
/// Not thread-safe: one thread uses a session (a stop request is the caller's to check between polls).
public final class ProbeSession {
    public struct Options: Sendable {
        public var filter: TraceFilter
        /// Tracepoint hooks to attach; the required ones (xmit, recv, drop) fail the session when the
        /// kernel lacks them, the others only warn.
        public var hooks: Set<Hook>
        /// Interfaces to watch with tcx programs as well (events `tcxIngress`/`tcxEgress`).
        public var interfaces: [InterfaceHook]
        /// Ring buffer bytes, rounded up to a power of two (at least one page).
        public var ringBufferSize: Int
        /// The reader is woken once this many bytes wait (one wakeup per batch under load, instead of
        /// one per record); fewer are read at the end of each poll's timeout. 0: wake for every record.
        /// Default: 1/32 of the ring buffer.
        public var wakeupBytes: Int?

        public init(filter: TraceFilter, hooks: Set<Hook> = Set(Hook.tracepointHooks), interfaces: [InterfaceHook] = [],
                    ringBufferSize: Int = Int(NSI_RINGBUF_SIZE), wakeupBytes: Int? = nil) {
            self.filter = filter
            self.hooks = hooks
            self.interfaces = interfaces
            self.ringBufferSize = ringBufferSize
            self.wakeupBytes = wakeupBytes
        }
    }

    /// An interface to watch with a tcx program, in its namespace.
    public struct InterfaceHook: Sendable {
        public var namespace: NamespaceHandle
        public var interface: String
        public var direction: TCXLink.Direction

        public init(_ interface: String, in namespace: NamespaceHandle, _ direction: TCXLink.Direction) {
            self.namespace = namespace
            self.interface = interface
            self.direction = direction
        }

        var hook: Hook { direction == .ingress ? .tcxIngress : .tcxEgress }
    }

    /// How long each step of the start took, in nanoseconds (the trace's "ready" time is `total`).
    public struct Startup: Sendable {
        public var check: UInt64 = 0
        public var open: UInt64 = 0
        public var load: UInt64 = 0
        public var attach: UInt64 = 0
        public var total: UInt64 { check + open + load + attach }
    }

    /// Counters of the kernel side and the reader.
    public struct Statistics: Equatable, Sendable {
        /// Records written to the ring buffer.
        public var events: UInt64
        /// Matching events the ring buffer had no room for (nsi_counters, NSI_COUNTER_LOST).
        public var lost: UInt64
        /// Program runs the kernel skipped because another BPF program was running on that CPU
        /// (bpf_prog_info.recursion_misses): events that may have been missed.
        public var missedRuns: UInt64
        /// Records that did not decode (a layout mismatch: a bug).
        public var undecodable: UInt64

        /// Everything that may be missing from the output.
        public var totalLost: UInt64 { lost + missedRuns + undecodable }
    }

    /// The kernel ids of what the session holds, to check that nothing stays behind.
    public struct KernelObjects: Equatable, Sendable {
        public var programs: [UInt32]
        public var links: [UInt32]
        public var maps: [UInt32]

        public var isEmpty: Bool { programs.isEmpty && links.isEmpty && maps.isEmpty }

        /// The ids that still exist in the kernel (bpf_{prog,link,map}_get_fd_by_id fail with ENOENT once
        /// an object is gone). An id that cannot be checked (no privilege) counts as present.
        public func stillPresent() -> KernelObjects {
            func present(_ ids: [UInt32], _ open: (UInt32) -> Int32) -> [UInt32] {
                ids.filter { id in
                    let fd = open(id)
                    if fd >= 0 { Glibc.close(fd) }
                    return fd >= 0 || errno != ENOENT
                }
            }
            return KernelObjects(programs: present(programs, bpf_prog_get_fd_by_id),
                                 links: present(links, bpf_link_get_fd_by_id),
                                 maps: present(maps, bpf_map_get_fd_by_id))
        }
    }

    public let filter: TraceFilter
    public let dropReasons: DropReasons
    /// Tracepoint hooks attached, in attach order.
    public private(set) var attachedHooks: [Hook] = []
    /// Programs loaded (tracepoints and tcx), for the statistics.
    private var loadedHooks: [Hook] = []
    /// Optional hooks that could not be used, one sentence each.
    public private(set) var warnings: [String] = []
    public private(set) var startup = Startup()

    private var object: BPFObject?
    private var reader: RingBufferReader?
    private var links: [BPFLink] = []
    private var interfaceLinks: [TCXLink] = []
    private var undecodable: UInt64 = 0

    /// Checks privileges and hooks, opens, configures, loads and attaches. On failure everything created so
    /// far is released before the error is thrown.
    public init(_ options: Options) throws(OperationError) {
        filter = options.filter
        var clock = Stopwatch()

        // Check: privileges and hooks first, so the error names what is missing (retis's can_run).
        try Capability.require(options.interfaces.isEmpty ? [.bpf, .perfmon] : [.bpf, .perfmon, .netAdmin], for: "trace")
        let btf = try KernelBTF()
        dropReasons = DropReasons(btf: btf)
        let hooks: [Hook]
        (hooks, warnings) = try ProbeSession.usableHooks(options.hooks, kernelHas: btf.hasTracepoint)
        if !options.interfaces.isEmpty {
            guard btf.hasEnumValue("bpf_attach_type", "BPF_TCX_INGRESS"), btf.hasFunction("bpf_cast_to_kern_ctx") else {
                throw OperationError("trace", "tcx", "watching an interface needs tcx links (Linux 6.6)")
            }
        }
        let interfaceHooks = Set(options.interfaces.map(\.hook))
        loadedHooks = hooks + Hook.allCases.filter(interfaceHooks.contains)
        var config = try options.filter.encoded()
        let ringBufferBytes = ProbeSession.ringBufferBytes(options.ringBufferSize)
        config.wakeup_bytes = UInt32(clamping: options.wakeupBytes ?? Int(ringBufferBytes / 32))
        startup.check = clock.lap()

        // Open and configure.
        let object = try BPFObject(image: try EmbeddedBPF.object(EmbeddedBPF.trace), name: "nsinspect_trace")
        self.object = object
        try object.setReadOnlyGlobal("nsi_cfg", to: config)
        try object.map(named: "nsi_events")?.setMaxEntries(ringBufferBytes)
        if options.filter.namespaces.count > 4096 {
            try object.map(named: "nsi_netns")?.setMaxEntries(UInt32(options.filter.namespaces.count))
        }
        for hook in Hook.allCases {
            try program(object, hook).setAutoload(loadedHooks.contains(hook))
        }
        startup.open = clock.lap()

        // Load, then the namespace set and the reader, so everything is in place before the first event.
        try object.load()
        if let netns = object.map(named: "nsi_netns") {
            for inode in options.filter.namespaces { try netns.update(inode, UInt8(1)) }
        }
        guard let events = object.map(named: "nsi_events") else {
            throw OperationError("load", object.name, "no ring buffer map nsi_events")
        }
        reader = try RingBufferReader(mapFD: events.fd, name: "nsi_events")
        startup.load = clock.lap()

        // Attach.
        for hook in hooks {
            do {
                links.append(try program(object, hook).attach())
                attachedHooks.append(hook)
            } catch where !hook.isRequired {
                warnings.append("tp_btf/\(hook.tracepoint ?? "") did not attach (\(error.reason)): no \(hook) events")
            }
        }
        for request in options.interfaces {
            interfaceLinks.append(try TCXLink(program: try program(object, request.hook), interface: request.interface,
                                              direction: request.direction, in: request.namespace))
        }
        startup.attach = clock.lap()
    }

    deinit { close() }

    /// The requested tracepoint hooks the kernel has (retis's can_run): a missing required hook is an
    /// error naming it, a missing optional one a warning.
    static func usableHooks(_ requested: Set<Hook>, kernelHas: (String) -> Bool)
        throws(OperationError) -> (hooks: [Hook], warnings: [String])
    {
        var hooks: [Hook] = []
        var warnings: [String] = []
        for hook in Hook.tracepointHooks where requested.contains(hook) {
            let tracepoint = hook.tracepoint ?? ""
            if kernelHas(tracepoint) {
                hooks.append(hook)
            } else if hook.isRequired {
                throw OperationError("trace", "tp_btf/\(tracepoint)",
                                     "the kernel has no BTF tracepoint \(tracepoint), which tracing needs")
            } else {
                warnings.append("tp_btf/\(tracepoint) is not available in this kernel: no \(hook) events")
            }
        }
        return (hooks, warnings)
    }

    /// Detaches in reverse order: the tcx links, the tracepoint links (last attached first), the reader,
    /// then the object with its programs and maps. Idempotent.
    public func close() {
        while let link = interfaceLinks.popLast() { link.detach() }
        while let link = links.popLast() { link.detach() }
        attachedHooks.removeAll()
        loadedHooks.removeAll()
        reader = nil
        object = nil
    }

    public var isClosed: Bool { object == nil }

    /// Waits up to `timeoutMilliseconds` for events and decodes each for `body`. Returns the number of
    /// records read; 0 on timeout or EINTR (check `stop`). A record that does not decode is counted in
    /// `statistics().undecodable` and skipped.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32 = 100, _ body: (PacketEvent) -> Void) throws(OperationError) -> Int {
        try pollRecords(timeoutMilliseconds: timeoutMilliseconds) { self.decode($0, body) }
    }

    /// `poll` with the raw records (valid only during the call), for writers that copy bytes straight out.
    @discardableResult
    public func pollRecords(timeoutMilliseconds: Int32 = 100, _ body: (UnsafeRawBufferPointer) -> Void)
        throws(OperationError) -> Int
    {
        guard let reader else { return 0 }
        return try reader.poll(timeoutMilliseconds: timeoutMilliseconds, body)
    }

    /// Reads what is already in the ring buffer without waiting: the final drain after stopping.
    @discardableResult
    public func drain(_ body: (PacketEvent) -> Void) throws(OperationError) -> Int {
        guard let reader else { return 0 }
        return try reader.drain { self.decode($0, body) }
    }

    /// Decodes a record taken with `pollRecords` (now or copied out earlier) for `body`; one that does
    /// not decode is counted in `statistics().undecodable`, never dropped silently.
    public func decode(_ record: UnsafeRawBufferPointer, _ body: (PacketEvent) -> Void) {
        if let event = try? PacketEvent(decoding: record) { body(event) } else { undecodable += 1 }
    }

    /// Adds a namespace of interest while tracing (bpf_map_update_elem on nsi_netns). Only for a filter
    /// that names namespaces: one that traces every namespace already sees it.
    public func addNamespace(_ inode: UInt32) throws(OperationError) {
        guard !filter.namespaces.isEmpty else { return }
        guard let map = object?.map(named: "nsi_netns") else { throw OperationError("trace", "namespaces", "the session is closed") }
        try map.update(inode, UInt8(1))
    }

    /// The kernel's counters: events written, events lost, program runs skipped.
    public func statistics() throws(OperationError) -> Statistics {
        guard let object, let counters = object.map(named: "nsi_counters") else {
            throw OperationError("trace", "statistics", "the session is closed")
        }
        var missed: UInt64 = 0
        for hook in loadedHooks {
            missed &+= try program(object, hook).info?.recursion_misses ?? 0
        }
        return Statistics(events: try counters.perCPUSum(UInt32(NSI_COUNTER_EVENTS.rawValue)),
                          lost: try counters.perCPUSum(UInt32(NSI_COUNTER_LOST.rawValue)),
                          missedRuns: missed, undecodable: undecodable)
    }

    /// Ids of the programs, links and maps the session holds (empty once closed).
    public var kernelObjects: KernelObjects {
        guard let object else { return KernelObjects(programs: [], links: [], maps: []) }
        let programs = object.programs.filter { $0.fd >= 0 }.compactMap { $0.info?.id }
        let maps = ["nsi_events", "nsi_netns", "nsi_scratch", "nsi_counters", "nsi_stash", ".rodata"]
            .compactMap { object.map(named: $0)?.id }
        return KernelObjects(programs: programs, links: links.compactMap(\.id) + interfaceLinks.compactMap(\.id), maps: maps)
    }

    private func program(_ object: BPFObject, _ hook: Hook) throws(OperationError) -> BPFProgram {
        guard let program = object.program(named: hook.programName) else {
            throw OperationError("load", object.name, "no program \(hook.programName)")
        }
        return program
    }

    /// A power of two of at least one page, as BPF_MAP_TYPE_RINGBUF requires.
    static func ringBufferBytes(_ requested: Int) -> UInt32 {
        let page = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)
        var size = page
        while size < requested && size < 1 << 30 { size <<= 1 }
        return UInt32(size)
    }
}

/// Monotonic lap times for the start-up report.
struct Stopwatch {
    private var last = Stopwatch.now()

    static func now() -> UInt64 { monotonicNanoseconds() }

    /// Nanoseconds since the previous lap (or the start).
    mutating func lap() -> UInt64 {
        let now = Stopwatch.now()
        defer { last = now }
        return now - last
    }
}
