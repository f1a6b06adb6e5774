#if canImport(Glibc)
import Glibc
#endif
import Netlink
import ProcNS
import Testing

/// `ConntrackTable` and `ConntrackMonitor` on the kernel: a throwaway namespace whose entries are made with
/// `conntrack -I` (conntrack-tools), read back by dump, by `-G`-style lookup, by match; and a monitor whose
/// receive buffer is made too small on purpose, so the kernel drops events (ENOBUFS): the monitor must say
/// how many were lost and recover every change from a dump, never drop one silently.
@Suite("Conntrack on the kernel", .serialized)
struct ConntrackKernelTests {
    /// One UDP entry 192.0.2.1:PORT → 192.0.2.2:53 per port (ten minutes), from one shell.
    static func insert(_ ns: TestNamespace, ports: ClosedRange<Int>) throws {
        try run(["sh", "-c", "for p in $(seq \(ports.lowerBound) \(ports.upperBound)); do "
                    + "conntrack -I -p udp -s 192.0.2.1 -d 192.0.2.2 --sport $p --dport 53 -t 600 2>/dev/null || exit 1; done"],
                in: ns.handle)
    }

    static func tuple(port: UInt16) -> ConntrackTuple {
        ConntrackTuple(source: IPAddress("192.0.2.1")!, destination: IPAddress("192.0.2.2")!, protocolNumber: 17,
                       sourcePort: port, destinationPort: 53)
    }

    @Test func dumpLookupAndMatch() throws {
        try requireRoot()
        let prefix = uniquePrefix("ctk")
        defer { #expect(TestNamespace.leftovers(prefix).isEmpty, "namespace names left behind") }
        let ns = try TestNamespace(prefix + "-a")
        defer { ns.remove() }
        let table = try ConntrackTable(in: ns.handle, label: ns.name)
        #expect(try table.entries().isEmpty, "a new namespace has no entries")

        try Self.insert(ns, ports: 1000...1019)
        let entries = try table.entries()
        #expect(entries.count == 20)
        #expect(Set(entries.compactMap(\.original.sourcePort)) == Set((1000...1019).map(UInt16.init)))
        #expect(entries.allSatisfy { $0.isUnreplied && !$0.isNAT && ($0.timeout ?? 0) > 590 && ($0.timeout ?? 0) <= 600 })
        var streamed = 0
        try table.forEach { _ in streamed += 1 }
        #expect(streamed == 20)
        #expect(try table.entries(family: .v6).isEmpty)
        #expect(try table.entries(family: .v4).count == 20)

        // conntrack -G: by the original tuple, and by the reply tuple.
        let found = try #require(try table.entry(Self.tuple(port: 1005)))
        #expect(found.original == Self.tuple(port: 1005))
        #expect(try table.entry(Self.tuple(port: 1005).reversed)?.id == found.id)
        #expect(try table.entry(Self.tuple(port: 999)) == nil, "a tuple without an entry is nil, not an error")

        #expect(try table.entries(matching: ConntrackMatch(protocolNumber: 17, sourcePort: 1007)).count == 1)
        #expect(try table.entries(matching: ConntrackMatch(destination: IPAddress("192.0.2.1"), destinationPort: 1008)).count == 1)
        #expect(try table.entries(matching: ConntrackMatch(protocolNumber: 6)).isEmpty)
    }

    @Test func monitorCountsLostEventsAndResynchronisesFromADump() throws {
        try requireRoot()
        let prefix = uniquePrefix("ctm")
        defer { #expect(TestNamespace.leftovers(prefix).isEmpty, "namespace names left behind") }
        let ns = try TestNamespace(prefix + "-a")
        defer { ns.remove() }
        try Self.insert(ns, ports: 1000...1004)

        // The smallest receive buffer the kernel allows holds a couple of events.
        let monitor = try ConntrackMonitor(in: ns.handle, label: ns.name, receiveBuffer: 1)
        #expect(monitor.entryCount == 5, "the monitor starts from a dump")
        #expect(try monitor.read().isEmpty, "nothing happened yet")

        try Self.insert(ns, ports: 2000...2199)
        try run(["conntrack", "-D", "-p", "udp", "--orig-port-src", "1000"], in: ns.handle)

        let items = try monitor.read()
        var announced: Set<UInt16> = [], destroyed: Set<UInt16> = []
        var overruns = 0
        for item in items {
            switch item {
            case .event(let event):
                if event.kind == .new { announced.insert(event.entry.original.sourcePort ?? 0) }
                if event.kind == .destroy { destroyed.insert(event.entry.original.sourcePort ?? 0) }
            case .overrun(let missed, let changes, let entries):
                overruns += 1
                #expect((missed ?? 0) > 0, "the kernel's drop count says how many events were lost")
                #expect(entries == 204)
                for change in changes {
                    if change.kind == .new { announced.insert(change.entry.original.sourcePort ?? 0) }
                    if change.kind == .destroy { destroyed.insert(change.entry.original.sourcePort ?? 0) }
                }
            }
        }
        #expect(overruns == 1, "the overflow is reported once, after the events still queued")
        if case .overrun? = items.last {} else { Issue.record("the overrun is not the last item: \(items.count) items") }
        // Every change is known, from an event or from the resynchronisation.
        #expect(Set((2000...2199).map(UInt16.init)).subtracting(announced).isEmpty,
                "entries never announced: \(Set((2000...2199).map(UInt16.init)).subtracting(announced).sorted())")
        #expect(destroyed == [1000])
        #expect(monitor.entryCount == 204)

        // Back to normal: the next change arrives as an event.
        try Self.insert(ns, ports: 3000...3000)
        let next = try monitor.read()
        guard case .event(let event)? = next.first else { Issue.record("no event after the resync: \(next)"); return }
        #expect(event.kind == .new && event.entry.original.sourcePort == 3000)
        #expect(monitor.entryCount == 205)
    }
}
