import Foundation
import Testing
import CShim
import TestSupport
@testable import ProcNS

/// Real namespaces on the running kernel (CI is root). Each test removes what it made, also on failure,
/// and checks that nothing with its prefix is left.
@Suite("census and naming on the live system", .serialized)
struct KernelTests {
    /// A child process of the test holding whatever descriptors it was given, killed at the end.
    static func holder(stdin: Int32 = -1) throws -> ChildProcess {
        var spawner = Spawner()
        spawner.stdin = stdin
        return try spawner.spawn(["sleep", "600"])
    }

    @Test func unsharedProcessIsListedWithItsPID() throws {
        let scratch = Scratch("uns")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let pid = try scratch.background(["unshare", "--net", "--", "sleep", "600"])
        // unshare execs sleep: wait until the process has switched namespace.
        var census = try Census.scan()
        for _ in 0..<50 where census.matches(.pid(pid)).first?.isHost ?? true {
            usleep(20_000)
            census = try Census.scan()
        }
        let ns = try census.select(.pid(pid))
        #expect(!ns.isHost)
        #expect(ns.pids == [pid])
        #expect(ns.isUnnamed)
        #expect(ns.firstProcess?.command == "sleep 600")
        // The census can reopen it, and the handle is the same namespace.
        #expect(try census.open(ns).id == ns.id)
    }

    @Test func namespaceHeldOnlyByABindMountOutsideNetnsDirectory() throws {
        let scratch = Scratch("mnt")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let dir = NSTemporaryDirectory() + scratch.prefix
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        scratch.track(path: dir)
        let holderPath = dir + "/held"
        FileManager.default.createFile(atPath: holderPath, contents: nil)
        let inode: UInt64
        do {
            let ns = try NamespaceThread.createNamespace()
            inode = ns.id.inode
            #expect(nsi_bind_mount("/proc/self/fd/\(ns.fd)", holderPath) == 0)
            scratch.track(mount: holderPath)
        }   // the handle is closed here: only the mount holds the namespace
        let census = try Census.scan()
        let ns = try #require(census.namespace(inode: inode))
        #expect(ns.pids.isEmpty)
        #expect(ns.mounts.map(\.path).contains(holderPath))
        #expect(ns.isUnnamed)
        #expect(try census.select(.path(holderPath)).id.inode == inode)
    }

    @Test func ownMountsGivenToTheCensusGiveTheSameHoldersAndOpenToTheSameNamespaces() throws {
        let scratch = Scratch("own")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let a = try scratch.addNamespace("a")
        let b = try scratch.addNamespace("b")
        let ownMounts = MountInfo.ownNetworkNamespaceMounts()
        var options = CensusOptions()
        options.ownMounts = ownMounts
        let given = try Census.scan(options)
        let read = try Census.scan()
        for name in [a, b] {
            let fromGiven = try given.select(.name(name)), fromRead = try read.select(.name(name))
            #expect(fromGiven.id == fromRead.id)
            #expect(fromGiven.mounts.map(\.path) == fromRead.mounts.map(\.path))
            #expect(fromGiven.mounts.contains { $0.path == "/run/netns/\(name)" && $0.inOwnMountNamespace })
        }
        // Opening the mounts reaches each namespace once, and the same ones the census names.
        let handles = NamespaceHandle.open(mounts: ownMounts)
        #expect(Set(handles.map(\.id.inode)).count == handles.count)
        for name in [a, b] {
            let inode = try read.select(.name(name)).id.inode
            #expect(handles.filter { $0.id.inode == inode }.count == 1, "\(name) opened once")
        }
    }

    @Test func namespaceWorkersEnterEveryNamespaceAndKeepTheOrderItWasAddedIn() throws {
        let scratch = Scratch("wrk")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let names = try (0..<7).map { try scratch.addNamespace("n\($0)") }
        let handles = try names.map { try NamespaceHandle.open(path: "/var/run/netns/\($0)") }
        let before = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net")
        let workers = try NamespaceWorkers<UInt64>(workers: 2, chunkSize: 2) { context, chunk in
            chunk.map { ns in
                // Where this worker thread is after entering: what /proc/thread-self/ns/net says.
                guard (try? context.enter(ns)) != nil,
                    let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net"),
                    let inode = UInt64(link.dropFirst(5).dropLast())
                else { return 0 }
                return inode
            }
        }
        #expect(workers.add(Array(handles[0..<3])) == 0)
        usleep(20_000)   // the first ones are being worked on while more arrive
        #expect(workers.add(Array(handles[3...])) == 3)
        let inodes = workers.finish()
        #expect(inodes == handles.map(\.id.inode))
        // The calling thread never moved.
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net") == before)
        // A pool given nothing ends cleanly with nothing.
        let idle = try NamespaceWorkers<Int>(workers: 2) { _, chunk in chunk.map { _ in 1 } }
        #expect(idle.finish().isEmpty)
    }

    @Test func namespaceHeldOnlyByAnotherProcessesDescriptor() throws {
        var inode: UInt64 = 0
        let child: ChildProcess
        do {
            let ns = try NamespaceThread.createNamespace()
            inode = ns.id.inode
            child = try Self.holder(stdin: ns.fd)
        }
        defer { child.signal(SIGKILL); child.wait() }
        let census = try Census.scan()
        let ns = try #require(census.namespace(inode: inode))
        #expect(ns.pids.isEmpty)
        #expect(ns.fdHolders.contains { $0.pid == child.pid && $0.fd == 0 })
        #expect(try census.open(ns).id.inode == inode)
    }

    @Test func namespaceHeldOnlyByASocket() throws {
        var inode: UInt64 = 0
        let child: ChildProcess
        do {
            let ns = try NamespaceThread.createNamespace()
            inode = ns.id.inode
            let socketFD: Int32 = try NamespaceThread.run(in: ns) { socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0) }
            #expect(socketFD >= 0)
            defer { close(socketFD) }
            child = try Self.holder(stdin: socketFD)
        }
        defer { child.signal(SIGKILL); child.wait() }
        let census = try Census.scan()
        let ns = try #require(census.namespace(inode: inode))
        #expect(ns.pids.isEmpty && ns.fdHolders.isEmpty && ns.mounts.isEmpty)
        #expect(ns.socketHolders.contains { $0.pid == child.pid && $0.fd == 0 })
        #expect(try census.open(ns).id.inode == inode)
    }

    @Test func threadInAnotherNamespaceIsAHolder() throws {
        let ns = try NamespaceThread.createNamespace()
        let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let tid = LockedBox<Int32>(0)
        let fd = ns.fd
        let thread = Thread {
            tid.value = nsi_gettid()
            _ = nsi_setns(fd, NSI_CLONE_NEWNET)
            entered.signal()
            release.wait()
        }
        thread.start()
        entered.wait()
        defer { release.signal() }
        var options = CensusOptions()
        options.excludeOwnHolders = false  // the test's own thread is the holder here
        let census = try Census.scan(options)
        let found = try #require(census.namespace(inode: ns.id.inode))
        #expect(found.threads.contains { $0.pid == getpid() && $0.tid == tid.value })
        // By default a program's own threads are its work, not holders (nsinspect's workers).
        #expect(try Census.scan().namespace(inode: ns.id.inode)?.threads.contains { $0.pid == getpid() } != true)
    }

    @Test func handleOfAMissingProcessIsAnError() throws {
        let child = try Self.holder()
        let pid = child.pid
        child.signal(SIGKILL)
        child.wait()
        do {
            _ = try NamespaceHandle.of(pid: pid)
            Issue.record("a dead process's namespace was opened")
        } catch {
            #expect(error.reason == "no such process")
        }
    }

    @Test func bindNameWorksWithIPNetnsAndForgetKeepsTheNamespace() throws {
        let scratch = Scratch("bind")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let name = scratch.name("a")
        scratch.track(namespace: name)
        let ns = try NamespaceThread.createNamespace()
        let names = NetnsNames()
        try names.bind(ns, as: name)
        #expect(names.entry(name) == .bindMount(inode: ns.id.inode))
        #expect(Shell.run(["ip", "netns", "exec", name, "true"]).succeeded)
        #expect(Shell.run(["ip", "netns", "list"]).stdout.contains(name))
        // Without --force an existing name is refused and left as it was.
        #expect(throws: OperationError.self) { try names.bind(ns, as: name) }
        #expect(names.entry(name) == .bindMount(inode: ns.id.inode))
        #expect(try names.forget(name) == .unmounted)
        #expect(names.entry(name) == .absent)
        // The namespace lives on: the handle still holds it.
        #expect(try NamespaceHandle.open(path: "/proc/self/fd/\(ns.fd)").id == ns.id)
    }

    @Test func symlinkNameFollowsTheProcessAndDiesWithIt() throws {
        let scratch = Scratch("sym")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let name = scratch.name("s")
        scratch.track(namespace: name)
        let pid = try scratch.background(["unshare", "--net", "--", "sleep", "600"])
        var handle = try NamespaceHandle.of(pid: pid)
        for _ in 0..<50 where handle.id.inode == (try NamespaceHandle.current()).id.inode {
            usleep(20_000)
            handle = try NamespaceHandle.of(pid: pid)
        }
        let names = NetnsNames()
        try names.symlink(to: "/proc/\(pid)/ns/net", as: name, expected: handle.id)
        #expect(names.entry(name) == .symlink(target: "/proc/\(pid)/ns/net", inode: handle.id.inode))
        #expect(Shell.run(["ip", "netns", "exec", name, "true"]).succeeded)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(names.entry(name) == .symlink(target: "/proc/\(pid)/ns/net", inode: nil))
        let census = try Census.scan()
        #expect(census.brokenNames.contains { $0.name == name && $0.problem == .danglingSymlink(target: "/proc/\(pid)/ns/net") })
        #expect(try names.forget(name) == .symlinkRemoved(target: "/proc/\(pid)/ns/net"))
        #expect(names.entry(name) == .absent)
    }

    @Test func forgetRefusesWhatIsNotANamespaceName() throws {
        let scratch = Scratch("fgt")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let name = scratch.name("file")
        let path = "/var/run/netns/\(name)"
        try "not a namespace".write(toFile: path, atomically: false, encoding: .utf8)
        scratch.track(path: path)
        #expect(throws: OperationError.self) { try NetnsNames(operation: "forget").forget(name) }
        #expect(FileManager.default.fileExists(atPath: path))
        // An empty placeholder (a failed `ip netns add`) is a broken name and may be removed.
        let placeholder = scratch.name("empty")
        FileManager.default.createFile(atPath: "/var/run/netns/\(placeholder)", contents: nil)
        scratch.track(path: "/var/run/netns/\(placeholder)")
        #expect(try NetnsNames(operation: "forget").forget(placeholder) == .placeholderRemoved)
    }

    @Test func spawnedProgramRunsInsideTheNamespaceWithItsOwnSys() throws {
        let ns = try NamespaceThread.createNamespace()
        var spawner = Spawner(namespace: ns)
        spawner.privateMounts = true
        let listing = try spawner.run(["ls", "/sys/class/net"])
        #expect(listing.status == .exited(0))
        #expect(listing.output.split(separator: "\n") == ["lo"])
        #expect(try spawner.run(["sh", "-c", "exit 3"]).status == .exited(3))
        #expect(try spawner.run(["sh", "-c", "kill -TERM $$"]).status == .signaled(SIGTERM))
        #expect(throws: OperationError.self) { try spawner.run(["no-such-program-\(getpid())"]) }
        // Mounts made inside stay inside: the host's /sys is untouched.
        #expect(try FileManager.default.contentsOfDirectory(atPath: "/sys/class/net").count > 1)
    }
}

/// A value shared with another thread, guarded by a lock.
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}
