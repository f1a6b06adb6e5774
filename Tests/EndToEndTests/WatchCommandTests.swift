import Foundation
import Testing
import TestSupport

/// One line of `watch --json`: `{"time":…,"ns":{"inode":N,"names":[…],"reference":…},"event":…,"action":…, …}`
/// plus the object's members as `ip -j` prints them. `index` is the line's place in the output, so a test
/// can tell that a deletion came after the creation.
struct WatchEvent {
    let index: Int
    let object: [String: Any]

    var ns: [String: Any] { object["ns"] as? [String: Any] ?? [:] }
    var inode: UInt64? { (ns["inode"] as? NSNumber)?.uint64Value }
    var names: [String] { ns["names"] as? [String] ?? [] }
    var reference: String? { ns["reference"] as? String }
    var event: String { object["event"] as? String ?? "" }
    var action: String { object["action"] as? String ?? "" }
    func string(_ key: String) -> String? { object[key] as? String }
    func int(_ key: String) -> Int? { (object[key] as? NSNumber)?.intValue }
}

extension Array where Element == WatchEvent {
    /// The events of one namespace, kind and action that also pass `test`.
    func of(_ inode: UInt64, _ event: String, _ action: String, _ test: (WatchEvent) -> Bool = { _ in true }) -> [WatchEvent] {
        filter { $0.inode == inode && $0.event == event && $0.action == action && test($0) }
    }
}

/// Whether `text` matches the whole of `pattern`.
private func wholly(_ text: String, _ pattern: String) -> Bool {
    guard let regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else { return false }
    return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
}

/// `nsinspect watch …` running while a test changes things. Its stdout and stderr go to files, not pipes:
/// a pipe nobody reads until the end holds 64 KiB, which the burst test's output outgrows, and a watcher
/// blocked on a full pipe would read no netlink and lose events for a reason of the test's making. The
/// file is polled to know when to stop (watch prints a line per event as it happens) and read whole once
/// the process has ended.
final class WatchProcess {
    let process: Process
    let ready: String
    private let out: String, err: String

    /// Starts `nsinspect watch ARGUMENTS --ready-file …` and returns once the ready file exists, that is once
    /// every watched namespace's socket is subscribed: any change made after this is one watch must report.
    /// The scratch tracks the process and the files, so a failing test leaves no watcher running.
    init(_ scratch: Scratch, _ tag: String, _ arguments: [String]) throws {
        let base = NSTemporaryDirectory() + "\(scratch.prefix)-\(tag)"
        let ready = base + ".ready", out = base + ".out", err = base + ".err", process = Process()
        self.ready = ready
        self.out = out
        self.err = err
        self.process = process
        for path in [ready, out, err] { scratch.track(path: path) }
        guard FileManager.default.createFile(atPath: out, contents: nil), FileManager.default.createFile(atPath: err, contents: nil) else {
            throw SetupFailed("cannot create \(out) or \(err)")
        }
        process.executableURL = URL(fileURLWithPath: Package.binary)
        process.arguments = ["watch"] + arguments + ["--ready-file", ready]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try process.run()
        scratch.track(pid: process.processIdentifier)
        _ = Wait.until(timeout: 15, interval: 0.05) { FileManager.default.fileExists(atPath: ready) || !process.isRunning }
        guard FileManager.default.fileExists(atPath: ready) else {
            throw SetupFailed("`nsinspect watch \(arguments.joined(separator: " "))` wrote no ready file within 15 s "
                              + "(running: \(process.isRunning)); stderr: \(stderr)")
        }
    }

    var stdout: String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: err, encoding: .utf8)) ?? "" }

    /// The complete lines printed so far that parse (the last one may be half written).
    func printed() -> [WatchEvent] {
        stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().enumerated().compactMap { index, line in
            ((try? Shell.json(String(line))) as? [String: Any]).map { WatchEvent(index: index, object: $0) }
        }
    }

    /// Polls what is printed until `condition` holds, the process ends, or `timeout` passes; says whether it held.
    @discardableResult
    func waitFor(timeout: TimeInterval, _ condition: ([WatchEvent]) -> Bool) -> Bool {
        let process = self.process
        _ = Wait.until(timeout: timeout, interval: 0.1) { !process.isRunning || condition(printed()) }
        return condition(printed())
    }

    /// Waits up to `timeout` for the process to end by itself (`--count`, `--duration`), killing it after
    /// that. The exit status; 128+N when signal N ended it, -1 when it had to be killed.
    func finish(timeout: TimeInterval) -> Int32 {
        let process = self.process
        guard Wait.until(timeout: timeout, interval: 0.05, { !process.isRunning }) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return -1
        }
        process.waitUntilExit()
        return process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
    }

    /// Sends `signal` (how a user stops a watch) and waits for the process to end.
    func stop(_ signal: Int32 = SIGTERM) -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        return finish(timeout: 10)
    }

    /// Every line of the finished output, each of which must be a JSON object with "time" (UTC, in
    /// milliseconds), "ns" (an object with the inode), "event" and "action": the `--json` contract, checked
    /// on every line of every JSON test.
    func events() -> [WatchEvent] {
        let text = stdout
        #expect(text.isEmpty || text.hasSuffix("\n"), "watch's last line is cut short: \(text.suffix(200))")
        var events: [WatchEvent] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().enumerated() {
            guard let object = (try? Shell.json(String(line))) as? [String: Any] else {
                Issue.record("line \(index) is not a JSON object: \(line)")
                continue
            }
            let event = WatchEvent(index: index, object: object)
            #expect(wholly(event.string("time") ?? "", #"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"#), "time: \(line)")
            #expect(event.inode != nil, "no ns.inode: \(line)")
            #expect(["ns", "link", "addr", "route", "neigh", "resync"].contains(event.event), "event: \(line)")
            #expect(event.object["action"] is String, "action: \(line)")
            if event.event != "resync" { #expect(["new", "del"].contains(event.action), "action: \(line)") }
            events.append(event)
        }
        return events
    }
}

/// `nsinspect watch`, `snapshot` and `diff` on namespaces the tests make, held every way the census knows.
@Suite("watch, snapshot, diff (end to end)", .serialized)
struct WatchCommandTests {
    /// Namespaces held by a name, by a process and by a bind mount at an arbitrary path each appear and
    /// disappear in the watch. All three live at once, so their inodes differ (the kernel hands out the
    /// lowest free inode again, so one made after another's end would often share its number). Each
    /// appearance is awaited before the removals, which also checks that lines are printed as events happen.
    @Test func namespacesAppearAndDisappearHoweverTheyAreHeld() throws {
        let scratch = Scratch("wns")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let watch = try WatchProcess(scratch, "ns", ["--json", "--duration", "120"])

        let named = try scratch.addNamespace("named")
        let namedInode = try Scratch.namespaceInode(named: named)
        let pid = try scratch.unsharedProcess(["sleep", "60"])
        let pidInode = try #require(Scratch.namespaceInode(pid: pid))
        let directory = NSTemporaryDirectory() + "\(scratch.prefix)-bind"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        scratch.track(path: directory)
        let file = directory + "/nsfile"
        try #require(FileManager.default.createFile(atPath: file, contents: nil))
        scratch.track(mount: file)
        try Shell.must("unshare", "--net=\(file)", "true")
        let boundInode = try #require(UInt64(try Shell.must("stat", "-L", "-c", "%i", file).trimmingCharacters(in: .whitespacesAndNewlines)))
        let inodes = [namedInode, pidInode, boundInode]

        let appeared = watch.waitFor(timeout: 10) { events in inodes.allSatisfy { !events.of($0, "ns", "new").isEmpty } }
        #expect(appeared, "not all three appeared within 10 s (or lines are not printed as they happen): \(watch.stdout)")

        try Shell.must("ip", "netns", "del", named)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        try Shell.must("umount", file)
        try FileManager.default.removeItem(atPath: file)
        watch.waitFor(timeout: 10) { events in inodes.allSatisfy { !events.of($0, "ns", "del").isEmpty } }

        #expect(watch.stop(SIGINT) == 0, "\(watch.stderr)")
        // The ready file says "subscribed now": it is gone once watch has ended.
        #expect(!FileManager.default.fileExists(atPath: watch.ready))
        let events = watch.events()
        #expect(!events.of(namedInode, "ns", "new") { $0.names.contains(named) }.isEmpty, "\(named): \(watch.stdout)")
        #expect(!events.of(pidInode, "ns", "new") { $0.reference == "pid:\(pid)" }.isEmpty, "pid:\(pid): \(watch.stdout)")
        for (what, inode) in [("ip netns", namedInode), ("process", pidInode), ("bind mount", boundInode)] {
            let new = events.of(inode, "ns", "new").first, del = events.of(inode, "ns", "del").last
            #expect(new != nil && del != nil, "\(what) ino \(inode): new \(new != nil), del \(del != nil): \(watch.stdout)")
            if let new, let del { #expect(new.index < del.index, "\(what) ino \(inode) went before it came") }
        }
    }

    /// Watching two namespaces joined by a veth: the link, an address, a route and a permanent neighbour
    /// each arrive with the fields `ip -j` gives them, and so does each one's removal. A second watcher
    /// with `--events addr` sees the addresses and nothing else.
    @Test func eachObjectAndItsRemovalArriveWithTheirFields() throws {
        let scratch = Scratch("wobj")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let a = try scratch.addNamespace("a"), b = try scratch.addNamespace("b")
        let inodeA = try Scratch.namespaceInode(named: a), inodeB = try Scratch.namespaceInode(named: b)
        let watch = try WatchProcess(scratch, "both", [a, b, "--json", "--duration", "120"])
        let addresses = try WatchProcess(scratch, "addr", [a, "--json", "--events", "addr", "--duration", "120"])
        func ifname(_ name: String) -> (WatchEvent) -> Bool { { $0.string("ifname") == name } }
        func peer(_ event: WatchEvent) -> [String: Any] { event.object["peer"] as? [String: Any] ?? [:] }

        try Shell.must("ip", "link", "add", "vA", "netns", a, "type", "veth", "peer", "name", "vB", "netns", b)
        try Shell.must("ip", "-n", a, "link", "set", "vA", "up")
        try Shell.must("ip", "-n", b, "link", "set", "vB", "up")
        // The peer is named from B's side of the pair; give watch the time a user would before removing it.
        watch.waitFor(timeout: 10) { !$0.of(inodeA, "link", "new") { peer($0)["ifname"] as? String == "vB" }.isEmpty }
        try Shell.must("ip", "-n", a, "addr", "add", "10.77.0.1/24", "dev", "vA")
        try Shell.must("ip", "-n", a, "route", "add", "10.77.9.0/24", "via", "10.77.0.2")
        try Shell.must("ip", "-n", a, "neigh", "add", "10.77.0.2", "lladdr", "02:00:00:00:77:02", "dev", "vA", "nud", "permanent")
        // Removed one by one, in the order that gives each its own notification (an address removed first
        // would take the route through it along without one).
        try Shell.must("ip", "-n", a, "neigh", "del", "10.77.0.2", "dev", "vA")
        try Shell.must("ip", "-n", a, "route", "del", "10.77.9.0/24")
        try Shell.must("ip", "-n", a, "addr", "del", "10.77.0.1/24", "dev", "vA")
        try Shell.must("ip", "-n", a, "link", "del", "vA")

        watch.waitFor(timeout: 10) { !$0.of(inodeA, "link", "del", ifname("vA")).isEmpty && !$0.of(inodeB, "link", "del", ifname("vB")).isEmpty }
        addresses.waitFor(timeout: 10) { !$0.of(inodeA, "addr", "del") { $0.string("local") == "10.77.0.1" }.isEmpty }
        #expect(watch.stop() == 0, "\(watch.stderr)")
        #expect(addresses.stop() == 0, "\(addresses.stderr)")
        let events = watch.events()
        let out = watch.stdout

        #expect(events.allSatisfy { $0.inode == inodeA || $0.inode == inodeB }, "events of unwatched namespaces: \(out)")
        #expect(!events.of(inodeB, "link", "new", ifname("vB")).isEmpty, "vB in \(b): \(out)")
        let paired = events.of(inodeA, "link", "new", ifname("vA")).filter { peer($0)["ifname"] as? String == "vB" }
        #expect(paired.contains { peer($0)["netns"] as? String == b }, "vA's peer is not vB in \(b): \(out)")

        /// The first creation and the last removal of one object, the removal after the creation.
        func createdThenRemoved(_ kind: String, _ test: (WatchEvent) -> Bool, new extra: (WatchEvent) -> Bool = { _ in true }) {
            let new = events.of(inodeA, kind, "new") { test($0) && extra($0) }.first, del = events.of(inodeA, kind, "del", test).last
            #expect(new != nil, "no \(kind) new: \(out)")
            #expect(del != nil, "no \(kind) del: \(out)")
            if let new, let del { #expect(new.index < del.index, "\(kind) removed before it was made: \(out)") }
        }
        createdThenRemoved("addr", { $0.string("local") == "10.77.0.1" && $0.int("prefixlen") == 24 && $0.string("ifname") == "vA" },
                           new: { $0.string("family") == "inet" })
        createdThenRemoved("route", { $0.string("dst") == "10.77.9.0/24" && $0.string("gateway") == "10.77.0.2" && $0.string("dev") == "vA" })
        // Removing a permanent entry makes the kernel announce it FAILED, then gone: the state is checked on its arrival.
        createdThenRemoved("neigh", { $0.string("dst") == "10.77.0.2" && $0.string("dev") == "vA" },
                           new: { $0.string("lladdr") == "02:00:00:00:77:02" && ($0.object["state"] as? [String])?.contains("PERMANENT") == true })
        let removed = events.of(inodeA, "link", "del", ifname("vA"))
        #expect(removed.count == 1 && (removed.first?.index ?? -1) > (paired.first?.index ?? .max), "vA removed: \(out)")

        let onlyAddresses = addresses.events()
        #expect(onlyAddresses.allSatisfy { $0.event == "addr" && $0.inode == inodeA }, "--events addr: \(addresses.stdout)")
        #expect(!onlyAddresses.of(inodeA, "addr", "new") { $0.string("local") == "10.77.0.1" }.isEmpty, "\(addresses.stdout)")
    }

    /// 200 namespaces made (with lo up, so each brings link, address and route events too) and removed
    /// at batch speed while watch follows every namespace. The contract: each one is reported, or watch
    /// says it resynchronised; never silently short. Namespaces are matched by inode: watch may meet one
    /// through the `ip` process that makes it before its name is mounted.
    @Test func aBurstOfNamespacesIsReportedWholeOrWithAResync() throws {
        let scratch = Scratch("wbst")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let names = (0..<200).map { scratch.name("b\($0)") }
        for name in names { scratch.track(namespace: name) }
        let watch = try WatchProcess(scratch, "burst", ["--json", "--duration", "300"])

        let made = Shell.run(["ip", "-batch", "-"], input: names.map { "netns add \($0)\nnetns exec \($0) ip link set lo up\n" }.joined())
        try #require(made.succeeded, "\(made)")
        let inodes = try names.map { try #require(NetnsDirectory.inode($0), "\($0) has no inode") }
        func missing(_ action: String, _ events: [WatchEvent]) -> [String] {
            let seen = Set(events.filter { $0.event == "ns" && $0.action == action }.compactMap(\.inode))
            return zip(names, inodes).filter { !seen.contains($0.1) }.map { $0.0 }
        }
        func resynced(_ events: [WatchEvent]) -> Bool { events.contains { $0.event == "resync" } }
        watch.waitFor(timeout: 30) { resynced($0) || missing("new", $0).isEmpty }
        let removed = Shell.run(["ip", "-batch", "-"], input: names.map { "netns del \($0)\n" }.joined())
        try #require(removed.succeeded, "\(removed)")
        watch.waitFor(timeout: 30) { resynced($0) || missing("del", $0).isEmpty }

        #expect(watch.stop() == 0, "\(watch.stderr)")
        let events = watch.events()
        if !resynced(events) {
            let notNew = missing("new", events), notDel = missing("del", events)
            #expect(notNew.isEmpty, "no ns new and no resync for \(notNew.count) namespaces, e.g. \(notNew.prefix(3))")
            #expect(notDel.isEmpty, "no ns del and no resync for \(notDel.count) namespaces, e.g. \(notDel.prefix(3))")
        }
    }

    /// The text form, once: a line of time, namespace, `+ link` and the interface. `--count 1` ends the watch
    /// after that one event, with status 0. A veth made inside one namespace announces both ends, so either
    /// name may come first.
    @Test func textLineNamesTheLinkAndCountEndsTheWatch() throws {
        let scratch = Scratch("wtxt")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let ns = try scratch.addNamespace("t")
        let watch = try WatchProcess(scratch, "text", [ns, "--count", "1"])
        try Shell.must("ip", "-n", ns, "link", "add", "t0", "type", "veth", "peer", "name", "t1")
        #expect(watch.finish(timeout: 20) == 0, "\(watch.stderr)")
        let lines = watch.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 1, "\(lines)")
        let line = lines.first ?? ""
        #expect(line.contains("+ link t0") || line.contains("+ link t1"), "\(line)")
        #expect(line.contains(ns) && wholly(String(line.prefix(13)), #"\d\d:\d\d:\d\d\.\d{3} "#), "\(line)")
    }

    // MARK: snapshot and diff

    static func operstate(_ ns: String, _ dev: String) -> String? {
        ((try? Shell.json(Shell.run(["ip", "-n", ns, "-j", "link", "show", dev]).stdout)) as? [[String: Any]])?.first?["operstate"] as? String
    }

    /// `snapshot NAMESPACES -o FILE`, and the document it wrote.
    static func snapshot(_ namespaces: [String], to file: String) throws -> [String: Any] {
        let result = nsinspect(arguments: ["snapshot"] + namespaces + ["-o", file])
        try #require(result.succeeded, "\(result)")
        return try #require(try Shell.json(String(contentsOfFile: file, encoding: .utf8)) as? [String: Any])
    }

    /// A lab with one change of each kind between two snapshots; `diff` reports each exactly once and
    /// nothing else. Snapshots name the lab's namespaces, so nothing else on the host takes part. IPv6 is
    /// off in the lab: its multicast neighbour entries (ff02::…, which `dump` lists) come with MLD and
    /// router solicitation timers seconds after a link comes up, which would be changes nobody made.
    @Test func diffReportsEachChangeOnceAndNothingElse() throws {
        let scratch = Scratch("sdif")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let a = try scratch.addNamespace("a"), b = try scratch.addNamespace("b")
        for ns in [a, b] {
            try Shell.must("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        }
        try Shell.must("ip", "link", "add", "vA", "netns", a, "type", "veth", "peer", "name", "vB", "netns", b)
        // x0's peer x1 stays down: x0 is up without a carrier (LOWERLAYERDOWN), and taking it down changes nothing else.
        try Shell.must("ip", "-n", a, "link", "add", "x0", "type", "veth", "peer", "name", "x1")
        try Shell.must("ip", "-n", a, "addr", "add", "10.78.0.1/24", "dev", "vA")
        try Shell.must("ip", "-n", b, "addr", "add", "10.78.0.2/24", "dev", "vB")
        for (ns, dev) in [(a, "vA"), (b, "vB"), (a, "x0")] { try Shell.must("ip", "-n", ns, "link", "set", dev, "up") }
        try Shell.must("ip", "-n", a, "route", "add", "10.78.9.0/24", "via", "10.78.0.2")
        try Shell.must("ip", "-n", a, "neigh", "add", "10.78.0.2", "lladdr", "02:00:00:00:78:02", "dev", "vA", "nud", "permanent")
        // Operational state follows carrier a moment later (linkwatch): settled before the first snapshot.
        let settled = Wait.until(timeout: 5) {
            Self.operstate(a, "vA") == "UP" && Self.operstate(b, "vB") == "UP" && Self.operstate(a, "x0") == "LOWERLAYERDOWN"
        }
        try #require(settled, "links never settled: vA \(Self.operstate(a, "vA") ?? "?"), x0 \(Self.operstate(a, "x0") ?? "?")")
        let inodeA = try Scratch.namespaceInode(named: a)

        let first = NSTemporaryDirectory() + "\(scratch.prefix)-first.json", second = NSTemporaryDirectory() + "\(scratch.prefix)-second.json"
        scratch.track(path: first)
        scratch.track(path: second)
        let document = try Self.snapshot([a, b], to: first)
        #expect(document["format"] as? String == "nsinspect-snapshot" && document["version"] as? Int == 1, "\(document.keys)")
        #expect(document["taken"] is String && document["census"] != nil)
        #expect(Set((document["namespaces"] as? [String: Any])?.keys.map { $0 } ?? []) == [a, b])
        let toStdout = nsinspect("snapshot", b, "-o", "-")
        let streamed = (try? Shell.json(toStdout.stdout)) as? [String: Any]
        #expect(toStdout.succeeded && Set((streamed?["namespaces"] as? [String: Any])?.keys.map { $0 } ?? []) == [b], "\(toStdout)")
        let same = nsinspect("diff", first, first)
        #expect(same.status == 0 && same.stdout.isEmpty, "\(same)")

        try Shell.must("ip", "-n", a, "addr", "add", "10.78.5.1/24", "dev", "vA")
        try Shell.must("ip", "-n", a, "route", "del", "10.78.9.0/24")
        try Shell.must("ip", "-n", a, "neigh", "replace", "10.78.0.2", "lladdr", "02:00:00:00:78:03", "dev", "vA", "nud", "permanent")
        try Shell.must("ip", "-n", a, "link", "set", "vA", "mtu", "9000")
        try Shell.must("ip", "-n", a, "link", "set", "x0", "down")
        let c = try scratch.addNamespace("c")
        let inodeC = try Scratch.namespaceInode(named: c)
        try #require(Wait.until(timeout: 5) { Self.operstate(a, "x0") == "DOWN" })
        // c did not exist at the first snapshot; it is named in the second, where it appears.
        _ = try Self.snapshot([a, b, c], to: second)

        let result = nsinspect("diff", first, second, "--json")
        #expect(result.status == 1, "\(result)")
        let namespaces = try #require(try Shell.json(result.stdout) as? [[String: Any]], "\(result)")
        func inode(_ entry: [String: Any]) -> UInt64? { (entry["ns"] as? NSNumber)?.uint64Value }
        // b changed nothing: only a (changed) and c (appeared) are there.
        #expect(Set(namespaces.compactMap(inode)) == [inodeA, inodeC] && namespaces.count == 2, "\(result.stdout)")
        let appeared = namespaces.first { inode($0) == inodeC }
        #expect(appeared?["change"] as? String == "appeared" && appeared?["namespace"] as? String == c, "\(result.stdout)")
        let changed = namespaces.first { inode($0) == inodeA }
        #expect(changed?["change"] as? String == "changed" && changed?["namespace"] as? String == a, "\(result.stdout)")

        let changes = changed?["changes"] as? [[String: Any]] ?? []
        func text(_ value: Any?) -> String { value as? String ?? "-" }
        func fields(_ change: [String: Any]) -> [String] {
            (change["fields"] as? [[String: Any]] ?? []).map { "\(text($0["field"])) \(text($0["old"])) → \(text($0["new"]))" }
        }
        /// (object, action, identity): links by their exact name, the rest by a part of their identity.
        let expected = [("link", "changed", "vA"), ("link", "changed", "x0"), ("address", "added", "10.78.5.1/24 on vA"),
                        ("route", "removed", "10.78.9.0/24 via 10.78.0.2"), ("neighbour", "changed", "10.78.0.2 dev vA")]
        // The new address brings its subnet route (10.78.5.0/24 dev vA proto kernel) into the main table: a
        // real change of the routing table, so it may be reported too, at most once.
        let subnetRoute = ("route", "added", "10.78.5.0/24")
        func matches(_ change: [String: Any], _ e: (String, String, String)) -> Bool {
            let identity = text(change["identity"])
            return text(change["object"]) == e.0 && text(change["action"]) == e.1 && (e.0 == "link" ? identity == e.2 : identity.contains(e.2))
        }
        for e in expected { #expect(changes.filter { matches($0, e) }.count == 1, "\(e): \(result.stdout)") }
        #expect(changes.filter { matches($0, subnetRoute) }.count <= 1, "\(result.stdout)")
        let unexpected = changes.filter { change in !(expected + [subnetRoute]).contains { matches(change, $0) } }
        #expect(unexpected.isEmpty, "unexpected changes: \(unexpected)")
        #expect(changes.first { matches($0, expected[0]) }.map(fields) == ["mtu 1500 → 9000"], "\(result.stdout)")
        let x0 = changes.first { matches($0, expected[1]) }.map(fields) ?? []
        #expect(x0.contains("admin up → down") && x0.allSatisfy { $0.hasPrefix("admin ") || $0.hasPrefix("state ") }, "\(x0)")
        #expect(changes.first { matches($0, expected[4]) }.map(fields) == ["lladdr 02:00:00:00:78:02 → 02:00:00:00:78:03"], "\(result.stdout)")

        let plain = nsinspect("diff", first, second)
        #expect(plain.status == 1, "\(plain)")
        let lines = plain.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("  ~ link vA: mtu 1500 → 9000") && lines.contains("+ namespace \(c) (ino \(inodeC))"), "\(plain.stdout)")
        let now = nsinspect("diff", first, "--now")
        #expect(now.status == 1 && now.stdout.contains("+ address 10.78.5.1/24 on vA"), "\(now)")
    }

    /// A file that is not a snapshot ends diff with status 2 and one line on stderr that names it, never
    /// with "no differences" (0) or "differences" (1).
    @Test func diffRefusesWhatIsNotASnapshotWithStatus2() throws {
        let scratch = Scratch("sbad")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let ns = try scratch.addNamespace("x")
        let base = NSTemporaryDirectory() + scratch.prefix
        let good = base + "-good.json"
        scratch.track(path: good)
        _ = try Self.snapshot([ns], to: good)
        let bad: [(String, String?)] = [
            ("missing", nil), ("text", "this is not JSON\n"), ("other", #"{"hello":1}"#),
            ("version", #"{"format":"nsinspect-snapshot","version":99,"taken":"2026-12-06T05:00:00Z","census":[],"namespaces":{}}"#),
        ]
        for (tag, contents) in bad {
            let file = "\(base)-\(tag).json"
            scratch.track(path: file)
            if let contents { try contents.write(toFile: file, atomically: true, encoding: .utf8) }
            for arguments in [["diff", good, file], ["diff", file, good], ["diff", file, "--now"]] {
                let result = nsinspect(arguments: arguments)
                let lines = result.stderr.split(separator: "\n")
                #expect(result.status == 2 && result.stdout.isEmpty, "\(tag): \(result)")
                #expect(lines.count == 1 && lines.first?.contains(file) == true, "\(tag): \(result)")
            }
        }
    }
}
