import Foundation
import Testing
@testable import ProcNS

/// A fake root filesystem with the parts of /proc, /var/run/netns and /var/lib/docker the census reads.
/// Namespace links are symlinks whose target is the text the kernel shows (`net:[N]`): readlink on
/// them returns what it returns on real /proc, which is all the census reads.
final class FixtureTree {
    let root: String
    private let fm = FileManager.default

    init() throws {
        root = NSTemporaryDirectory() + "nsinspect-fixture-\(UInt32.random(in: 0..<UInt32.max))"
        try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? fm.removeItem(atPath: root) }

    func file(_ path: String, _ content: String = "") throws {
        let full = root + "/" + path
        try fm.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try content.write(toFile: full, atomically: false, encoding: .utf8)
    }

    func link(_ path: String, to target: String) throws {
        let full = root + "/" + path
        try fm.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: full, withDestinationPath: target)
    }

    func directory(_ path: String) throws {
        try fm.createDirectory(atPath: root + "/" + path, withIntermediateDirectories: true)
    }

    /// A process: its namespace links, comm, cmdline (arguments NUL-separated) and cgroup.
    func process(_ pid: Int, net: UInt64, mnt: UInt64 = 900, comm: String, cmdline: [String]? = nil,
                 cgroup: String = "0::/user.slice") throws {
        try link("proc/\(pid)/ns/net", to: "net:[\(net)]")
        try link("proc/\(pid)/ns/mnt", to: "mnt:[\(mnt)]")
        try link("proc/\(pid)/task/\(pid)/ns/net", to: "net:[\(net)]")
        try file("proc/\(pid)/comm", comm + "\n")
        try file("proc/\(pid)/cmdline", (cmdline ?? [comm]).map { $0 + "\0" }.joined())
        try file("proc/\(pid)/cgroup", cgroup + "\n")
        try directory("proc/\(pid)/fd")
    }

    /// /proc/PID/stat with the parent's PID (its fourth field; the command may hold spaces and parentheses).
    func parent(_ pid: Int, is parent: Int, comm: String = "x") throws {
        try file("proc/\(pid)/stat", "\(pid) (\(comm)) S \(parent) \(pid) \(pid) 0 -1 4194560 0 0\n")
    }
}

@Suite("census of a fixture /proc tree")
struct CensusFixtureTests {
    static let webID = String(repeating: "7e", count: 32)
    static let dbID = String(repeating: "d0", count: 32)

    static func makeTree() throws -> FixtureTree {
        let t = try FixtureTree()
        try t.process(1, net: 100, comm: "systemd", cmdline: ["/sbin/init"], cgroup: "0::/init.scope")
        try t.link("proc/1/fd/0", to: "/dev/null")
        try t.link("proc/1/fd/5", to: "net:[300]")          // a namespace held open by pid 1
        try t.link("proc/1/fd/6", to: "socket:[555]")        // sockets are only examined on a live system
        try t.file("proc/1/mountinfo", """
            22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
            300 25 0:22 /netns /run/netns rw shared:5 - tmpfs tmpfs rw
            301 300 0:4 net:[290] /run/netns/named rw shared:180 - nsfs nsfs rw
            303 25 0:4 net:[310] /run/docker/netns/abc rw shared:190 - nsfs nsfs rw
            305 22 0:4 net:[320] /srv/held rw shared:192 - nsfs nsfs rw

            """)
        try t.process(50, net: 200, comm: "sleep", cmdline: ["sleep", "600"])
        try t.process(60, net: 250, comm: "bash", cmdline: ["bash", "--norc", "-is", "mininet:h1"])
        try t.process(70, net: 260, comm: "nginx", cgroup: "0::/system.slice/docker-\(webID).scope")
        try t.process(80, net: 100, comm: "worker")
        try t.link("proc/80/task/81/ns/net", to: "net:[270]")  // one thread in another namespace
        try t.directory("proc/90")                             // exited mid-scan: no ns/ any more
        try t.process(95, net: 100, comm: "holder")
        try t.link("proc/95/fd/3", to: "net:[280]")
        try t.directory("proc/self")                           // not a pid: ignored
        // /var/run/netns: a bind-mounted name, a symlink, a dangling symlink, a placeholder, a directory.
        try t.file("var/run/netns/named")
        try t.link("var/run/netns/link", to: "/proc/50/ns/net")
        try t.link("var/run/netns/dangling", to: "/proc/99999/ns/net")
        try t.file("var/run/netns/placeholder")
        try t.directory("var/run/netns/dir")
        try t.file("var/lib/docker/containers/\(webID)/config.v2.json", #"{"ID":"\#(webID)","Name":"/web"}"#)
        try t.file("var/lib/docker/containers/\(dbID)/config.v2.json",
                   #"{"ID":"\#(dbID)","Name":"/db","NetworkSettings":{"SandboxKey":"/var/run/docker/netns/abc"}}"#)
        return t
    }

    @Test func findsEveryNamespaceHowever_itIsHeld() throws {
        let tree = try Self.makeTree()
        let census = try Census.scan(.fixture(root: tree.root))
        #expect(census.namespaces.map(\.id.inode) == [100, 200, 250, 260, 270, 280, 290, 300, 310, 320])

        let host = try #require(census.namespace(inode: 100))
        #expect(host.isHost)
        #expect(host.pids == [1, 80, 95])
        #expect(host.firstProcess == ProcessRef(pid: 1, command: "/sbin/init"))
        #expect(host.names.map(\.reference) == ["host"])

        let sleeper = try #require(census.namespace(inode: 200))
        #expect(sleeper.pids == [50])
        #expect(sleeper.names == [NamespaceName(kind: .netns, name: "link", isSymlink: true, detail: "/proc/50/ns/net")])

        #expect(census.namespace(inode: 250)?.names.map(\.reference) == ["mininet:h1"])
        #expect(census.namespace(inode: 260)?.names.map(\.reference) == ["docker:web"])
        #expect(census.namespace(inode: 270)?.threads == [ThreadHolder(pid: 80, tid: 81, command: "worker")])
        #expect(census.namespace(inode: 280)?.fdHolders == [FDHolder(pid: 95, fd: 3, command: "holder")])
        #expect(census.namespace(inode: 300)?.fdHolders == [FDHolder(pid: 1, fd: 5, command: "systemd")])

        let named = try #require(census.namespace(inode: 290))
        #expect(named.pids.isEmpty)
        #expect(named.mounts.map(\.path) == ["/run/netns/named"])
        #expect(named.names.map(\.reference) == ["named"])

        #expect(census.namespace(inode: 310)?.names.map(\.reference) == ["docker:db"])
        let held = try #require(census.namespace(inode: 320))
        #expect(held.mounts.map(\.path) == ["/srv/held"])
        #expect(held.isUnnamed)
        #expect(held.reference == "ino:320")
    }

    @Test func reportsBrokenNamesAndVanishedProcesses() throws {
        let tree = try Self.makeTree()
        let census = try Census.scan(.fixture(root: tree.root))
        let broken = Dictionary(uniqueKeysWithValues: census.brokenNames.map { ($0.name, $0.problem) })
        #expect(broken == [
            "dangling": .danglingSymlink(target: "/proc/99999/ns/net"),
            "placeholder": .placeholder,
            "dir": .notANamespace("a directory"),
        ])
        #expect(census.problems.vanishedProcesses == 1)
        #expect(census.problems.denied.isEmpty)
    }

    @Test func referencesSelectFromTheCensus() throws {
        let tree = try Self.makeTree()
        let census = try Census.scan(.fixture(root: tree.root))
        #expect(try census.select(.host).id.inode == 100)
        #expect(try census.select(.pid(50)).id.inode == 200)
        #expect(try census.select(.inode(320)).id.inode == 320)
        #expect(try census.select(.name("link")).id.inode == 200)
        #expect(try census.select(.qualified(.docker, "db")).id.inode == 310)
        #expect(try census.select(.qualified(.docker, String(Self.webID.prefix(8)))).id.inode == 260)
        #expect(try census.select(.name("h1")).id.inode == 250)
        #expect(try census.select(.path("/srv/held")).id.inode == 320)
        #expect(throws: OperationError.self) { try census.select(.name("nope")) }
        #expect(throws: OperationError.self) { try census.select(.pid(4242)) }
    }

    @Test func ambiguousReferenceNamesTheCandidates() throws {
        let tree = try Self.makeTree()
        // A second Mininet network with its own h1.
        try tree.process(61, net: 251, comm: "bash", cmdline: ["bash", "-is", "mininet:h1"])
        let census = try Census.scan(.fixture(root: tree.root))
        do {
            _ = try census.select(.qualified(.mininet, "h1"))
            Issue.record("an ambiguous reference was accepted")
        } catch {
            #expect(error.reason.contains("matches 2 namespaces"))
            #expect(error.reason.contains("ino:250") && error.reason.contains("ino:251"))
        }
    }

    /// Containers whose cgroups do not name them: the runtime process that started each one does.
    @Test func runtimesNameTheirContainersFromTheirOwnCommandLines() throws {
        let tree = try Self.makeTree()
        let podID = String(repeating: "5a", count: 32), mobyID = String(repeating: "6b", count: 32)
        // podman with cgroupfs: no .scope; conmon (the parent) carries -c ID and -n NAME.
        try tree.process(300, net: 100, comm: "conmon", cmdline: ["/usr/bin/conmon", "--api-version", "1", "-c", podID, "-n", "web", "-r", "/usr/bin/runc"])
        try tree.process(301, net: 400, comm: "sleep", cmdline: ["sleep", "3600"], cgroup: "0::/libpod_parent/libpod-\(podID)")
        try tree.parent(301, is: 300, comm: "sleep")
        // systemd-nspawn --register=no: nothing in the cgroup; the machine name is nspawn's -M.
        try tree.process(310, net: 100, comm: "systemd-nspawn", cmdline: ["systemd-nspawn", "--register=no", "--keep-unit", "-M", "box", "-D", "/srv/root"])
        try tree.process(311, net: 410, comm: "sh", cmdline: ["/bin/sh", "-c", "sleep 3600"], cgroup: "0::/payload")
        try tree.parent(311, is: 310, comm: "sh (weird) name")
        // Docker with its own cgroup parent and its data root only in dockerd's mount namespace.
        try tree.process(320, net: 100, comm: "dockerd", cmdline: ["dockerd", "--data-root", "/srv/dock"])
        try tree.file("proc/320/root/srv/dock/containers/\(mobyID)/config.v2.json", #"{"ID":"\#(mobyID)","Name":"/api"}"#)
        try tree.process(321, net: 100, comm: "containerd-shim", cmdline: ["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", mobyID])
        try tree.process(322, net: 420, comm: "python3", cgroup: "0::/custom-parent/\(mobyID)")
        try tree.parent(322, is: 321)
        // An ordinary unshare'd process under a shell is nobody's container.
        try tree.process(330, net: 100, comm: "bash")
        try tree.process(331, net: 430, comm: "sleep")
        try tree.parent(331, is: 330)
        let census = try Census.scan(.fixture(root: tree.root))
        #expect(census.namespace(inode: 400)?.names.map(\.reference) == ["podman:web"])
        #expect(census.namespace(inode: 410)?.names.map(\.reference) == ["nspawn:box"])
        #expect(census.namespace(inode: 420)?.names.map(\.reference) == ["docker:api"])
        #expect(census.namespace(inode: 430)?.isUnnamed == true)
        #expect(try census.select(.qualified(.nspawn, "box")).id.inode == 410)
    }

    @Test func missingProcRootIsAnError() {
        #expect(throws: OperationError.self) {
            try Census.scan(.fixture(root: "/nonexistent-\(UInt32.random(in: 0..<UInt32.max))"))
        }
    }
}
