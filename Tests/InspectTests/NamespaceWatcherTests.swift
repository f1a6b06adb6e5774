import Foundation
import Netlink
import ProcNS
import TestSupport
import Testing

@testable import Inspect

/// The watcher's loss path on a real namespace: a monitor whose receive queue overflows must say so
/// (a `resync` with the namespace read again), never go on silently short.
@Suite("namespace watcher", .serialized)
struct NamespaceWatcherTests {
    @Test func anOverflowingMonitorIsReportedAsAResyncWithTheStateReadAgain() throws {
        let scratch = Scratch("nwr")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let name = try scratch.addNamespace("burst")
        let inode = try Scratch.namespaceInode(named: name)
        StopRequest.clear()
        let watcher = try NamespaceWatcher(references: [name])
        // The smallest queue the kernel grants (SOCK_MIN_RCVBUF is about 2 KiB): a few hundred address
        // events cannot fit while nothing reads.
        watcher.receiveBuffer = 2048
        let count = 300
        var events: [WatchEvent] = []
        try watcher.run(duration: 20, ready: {
            // Made while the watcher is not reading yet (ready runs before its loop), so the queue overflows.
            let batch = (0..<count).map { "address add 10.66.\($0 / 250).\($0 % 250 + 1)/32 dev lo" }.joined(separator: "\n")
            let result = Shell.run(["ip", "-n", name, "-batch", "-"], input: batch + "\n")
            #expect(result.succeeded, "\(result)")
        }, emit: { event in
            events.append(event)
            if case .resync = event.payload { return false }
            return true
        })
        let resync = try #require(events.last, "no event at all")
        guard case .resync(let lost, _, let addresses, _, _) = resync.payload else {
            Issue.record("no resync after an overflow; \(events.count) events, the last \(resync.kind)")
            return
        }
        #expect(resync.namespace.inode == inode)
        #expect(lost >= 1)
        // lo's 127.0.0.1 and ::1 besides the ones the batch added: the namespace was read again whole.
        #expect(addresses >= count)
        // Fewer address events than additions arrived before the resync: events were really lost.
        #expect(events.filter { $0.kind == .addr }.count < count)
    }
}
