import CShim

/// How every long-running command stops on Ctrl-C, SIGTERM or SIGHUP: one process-wide flag, set by a
/// sigaction handler (nsi_install_stop_handler) and read by every loop — a trace's probes and polls,
/// `conntrack --watch`, the demo between its steps. The handler has no SA_RESTART, so a loop blocked in
/// poll(2) or epoll_wait(2) wakes with EINTR and sees the flag at once; the command then finishes what
/// it holds (drains the ring buffer, detaches, prints its summary) instead of dying half-way.
public enum StopRequest {
    /// Unblocks SIGINT, SIGTERM and SIGHUP in the calling thread, before any other thread exists (they
    /// inherit the mask): a launcher may have blocked them, and a tracer that cannot be stopped by
    /// SIGTERM would never detach.
    public static func unblockSignals() {
        nsi_unblock_stop_signals()
    }

    /// Installs the handler for SIGINT, SIGTERM and SIGHUP (idempotent).
    public static func install() {
        _ = nsi_install_stop_handler()
    }

    /// A stop was asked for since the start (or since `clear()`).
    public static var isRequested: Bool { nsi_stop_requested() != 0 }

    /// Asks for a stop as a signal would.
    public static func request() { nsi_request_stop() }

    /// Forgets a request (a test that asked for one).
    public static func clear() { nsi_clear_stop() }
}
