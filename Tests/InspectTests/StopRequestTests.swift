import Foundation
import Netlink
import ProcNS
import TestSupport
import Testing

@testable import Inspect

/// The one way long-running commands stop, and the conntrack watch loop that uses it.
@Suite("stopping on a signal", .serialized)
struct StopRequestTests {
    @Test func aSignalSetsTheFlagAndWakesABlockingPoll() throws {
        StopRequest.clear()
        defer {
            StopRequest.clear()
            // The test process must still die of a harness's SIGTERM afterwards.
            for signal in [SIGINT, SIGTERM, SIGHUP] { Glibc.signal(signal, SIG_DFL) }
        }
        StopRequest.install()
        // As nsinspect's main does first: a test harness's threads may have them blocked.
        StopRequest.unblockSignals()
        #expect(!StopRequest.isRequested)
        // A poll on a pipe nothing writes to, from another thread, woken by SIGTERM to this thread.
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let target = pthread_self()
        let sender = Thread {
            usleep(100_000)
            pthread_kill(target, SIGTERM)
        }
        sender.start()
        let started = monotonicNanoseconds()
        var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, 5_000)
        let waited = monotonicNanoseconds() - started
        #expect(ready == -1 && errno == EINTR, "poll was not interrupted (\(ready))")
        #expect(waited < 2_000_000_000, "poll waited \(waited) ns")
        #expect(StopRequest.isRequested)
        StopRequest.clear()
        #expect(!StopRequest.isRequested)
        StopRequest.request()
        #expect(StopRequest.isRequested)
    }

    /// The conntrack watch of a real namespace ends on a stop request, on its duration, and when the
    /// caller has seen enough; a namespace deleted meanwhile is said and no longer watched.
    @Test func conntrackWatchStopsOnRequestDurationAndWhenTheNamespaceGoes() throws {
        StopRequest.clear()
        defer { StopRequest.clear() }
        let scratch = Scratch("watch")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let name = try scratch.addNamespace("w")
        var resolver = NamespaceResolver()
        let handle = try resolver.resolve(name)
        let namespaces = [NamedNamespace(handle, label: name)]

        // Duration: returns after about 0.3 s.
        var started = monotonicNanoseconds()
        var watched = try ConntrackWatcher(namespaces: namespaces, duration: 0.3)
            .run(started: { #expect($0 == [name]) }, item: { _, _ in true }, read: {}, problem: { _, _ in })
        var took = monotonicNanoseconds() - started
        #expect(watched == 1)
        #expect(took >= 250_000_000 && took < 2_000_000_000, "\(took) ns")

        // A stop request from another thread: returns at once, long before the duration.
        let stopper = Thread {
            usleep(200_000)
            StopRequest.request()
        }
        stopper.start()
        started = monotonicNanoseconds()
        watched = try ConntrackWatcher(namespaces: namespaces, duration: 30)
            .run(started: { _ in }, item: { _, _ in true }, read: {}, problem: { _, _ in })
        took = monotonicNanoseconds() - started
        #expect(took < 2_000_000_000, "\(took) ns")
        StopRequest.clear()

        // The namespace's name goes: said once, and with nothing left the watch ends.
        var problems: [String] = []
        let remover = Thread {
            usleep(200_000)
            _ = Shell.run(["ip", "netns", "del", name])
        }
        remover.start()
        started = monotonicNanoseconds()
        try ConntrackWatcher(namespaces: namespaces, duration: 30)
            .run(started: { _ in }, item: { _, _ in true }, read: {}, problem: { label, message in problems.append("\(label ?? "-"): \(message)") })
        took = monotonicNanoseconds() - started
        #expect(took < 5_000_000_000, "\(took) ns")
        #expect(problems.contains { $0.hasPrefix("\(name): the namespace is gone") }, "\(problems)")
        #expect(problems.last == "-: no namespace left to watch", "\(problems)")
    }
}
