import Foundation
import Testing
@testable import ProcNS

@Suite("mountinfo")
struct MountInfoTests {
    static let text: [UInt8] = {
        let url = Bundle.module.url(forResource: "Fixtures/mountinfo-host", withExtension: "txt")!
        return Array(try! String(contentsOf: url, encoding: .utf8).utf8)
    }()

    @Test func findsNetworkNamespaceMountsOnly() {
        let mounts = MountInfo.networkNamespaceMounts(Self.text)
        // mnt:[…] is another namespace type, the malformed inode and the garbage line are skipped.
        #expect(mounts.map(\.mountPoint) == ["/run/netns/web", "/run/netns/with space", "/run/docker/netns/6f1a2b3c4d5e", "/tmp/held\\odd"])
    }

    @Test func optionalFieldsMayBeAbsentOrMany() {
        let text = Array("""
            401 22 0:4 net:[4026532700] /run/a rw - nsfs nsfs rw
            402 22 0:4 net:[4026532701] /run/b rw shared:5 master:3 propagate_from:2 unbindable - nsfs nsfs rw
            403 22 0:4 net:[4026532702] /run/c rw shared:6 - tmpfs nsfs rw
            404 22 0:4 net:[4026532703] /run/d rw shared:7 -
            405 22 0:4 net:[4026532704] - rw shared:8 - nsfs nsfs rw

            """.utf8)
        // /run/c is tmpfs whose source happens to be called nsfs; /run/d has no fstype at all.
        let mounts = MountInfo.networkNamespaceMounts(text)
        #expect(mounts.map(\.mountPoint) == ["/run/a", "/run/b", "-"])
        #expect(mounts.map(\.inode) == [4026532700, 4026532701, 4026532704])
    }

    @Test func laterMountOnSamePathWins() {
        let web = MountInfo.networkNamespaceMounts(Self.text).first { $0.mountPoint == "/run/netns/web" }
        // Line 306 mounts 4026532301 over line 301's 4026532300: a lookup of the path reaches the top one.
        #expect(web?.inode == 4026532301)
    }

    @Test func unescapesOctal() {
        #expect(MountInfo.unescape(Array("a\\040b\\011c\\012d\\134e".utf8)[...]) == "a b\tc\nd\\e")
        #expect(MountInfo.unescape(Array("trailing\\04".utf8)[...]) == "trailing\\04")
    }

    @Test func truncatedLinesDoNotCrash() {
        let text = Self.text
        for end in stride(from: 0, through: text.count, by: 7) {
            _ = MountInfo.networkNamespaceMounts(Array(text[0..<end]))
        }
    }
}

@Suite("namespace links")
struct NamespaceLinkTests {
    @Test func parsesInodes() {
        #expect(NamespaceID.inode(fromLink: "net:[4026531840]") == 4026531840)
        #expect(NamespaceID.inode(fromLink: "mnt:[4026531841]", type: "mnt") == 4026531841)
        #expect(NamespaceID.inode(fromLink: "mnt:[4026531841]") == nil)
        #expect(NamespaceID.inode(fromLink: "net:[]") == nil)
        #expect(NamespaceID.inode(fromLink: "net:[12a]") == nil)
        #expect(NamespaceID.inode(fromLink: "net:[99999999999999999999999]") == nil)
        #expect(NamespaceID.inode(fromLink: "socket:[123]") == nil)
    }
}

@Suite("namespace names")
struct NameValidationTests {
    @Test(arguments: ["web", "lab-1", "a.b", "x y", "ns_2", String(repeating: "n", count: 255)])
    func acceptsValidNames(_ name: String) {
        #expect(NetnsNames.validationProblem(name) == nil)
    }

    @Test(arguments: [
        ("", "empty name"), (".", "'.' is not a name"), ("..", "'..' is not a name"),
        ("a/b", "name contains '/'"), ("-x", "name starts with '-'"), ("a\u{7}b", "name contains a control character"),
        ("tab\tname", "name contains a control character"), (String(repeating: "n", count: 256), "name longer than 255 bytes"),
    ])
    func rejectsInvalidNames(_ name: String, _ problem: String) {
        #expect(NetnsNames.validationProblem(name) == problem)
    }
}

@Suite("namespace references")
struct ReferenceTests {
    @Test func parsesEveryForm() throws {
        #expect(try NamespaceReference.parse("host") == .host)
        #expect(try NamespaceReference.parse("pid:1234") == .pid(1234))
        #expect(try NamespaceReference.parse("ino:4026532178") == .inode(4026532178))
        #expect(try NamespaceReference.parse("net:[4026532178]") == .inode(4026532178))
        #expect(try NamespaceReference.parse("/run/docker/netns/abc") == .path("/run/docker/netns/abc"))
        #expect(try NamespaceReference.parse("./ns") == .path("./ns"))
        #expect(try NamespaceReference.parse("docker:web") == .qualified(.docker, "web"))
        #expect(try NamespaceReference.parse("mininet:h1") == .qualified(.mininet, "h1"))
        #expect(try NamespaceReference.parse("podman:db") == .qualified(.podman, "db"))
        #expect(try NamespaceReference.parse("nspawn:box") == .qualified(.nspawn, "box"))
        #expect(try NamespaceReference.parse("containerd:0123abcd") == .qualified(.containerd, "0123abcd"))
        #expect(try NamespaceReference.parse("router1") == .name("router1"))
        #expect(try NamespaceReference.parse("odd:name") == .name("odd:name"))
    }

    @Test(arguments: ["", "pid:", "pid:0", "pid:-3", "pid:abc", "ino:", "ino:x", "net:[x]", "docker:", "mininet:"])
    func rejectsMalformed(_ text: String) {
        #expect(throws: OperationError.self) { try NamespaceReference.parse(text) }
    }
}

@Suite("container names")
struct ContainerNameTests {
    static let id = String(repeating: "ab12", count: 16)

    @Test func recognisesRuntimesInCgroupPaths() {
        #expect(ContainerRef.parse(cgroup: "0::/system.slice/docker-\(Self.id).scope") == .docker(id: Self.id))
        #expect(ContainerRef.parse(cgroup: "12:pids:/docker/\(Self.id)\n0::/docker/\(Self.id)") == .docker(id: Self.id))
        #expect(ContainerRef.parse(cgroup: "0::/machine.slice/libpod-\(Self.id).scope/container") == .podman(id: Self.id))
        #expect(ContainerRef.parse(cgroup: "0::/system.slice/cri-containerd-\(Self.id).scope") == .containerd(id: Self.id))
        #expect(ContainerRef.parse(cgroup: "0::/kubepods/besteffort/pod1234/\(Self.id)") == .containerd(id: Self.id))
        #expect(ContainerRef.parse(cgroup: "0::/machine.slice/machine-my\\x2dbox.scope/payload") == .nspawn(machine: "my-box"))
        #expect(ContainerRef.parse(cgroup: "0::/machine.slice/systemd-nspawn@box2.service/payload") == .nspawn(machine: "box2"))
        // podman with the cgroupfs manager (PID 1 is not systemd): no .scope; its conmon is not a container.
        #expect(ContainerRef.parse(cgroup: "9:name=systemd:/libpod_parent/libpod-\(Self.id)\n0::/libpod_parent/libpod-\(Self.id)") == .podman(id: Self.id))
        #expect(ContainerRef.parse(cgroup: "0::/libpod_parent/conmon") == nil)
        #expect(ContainerRef.parse(cgroup: "0::/user.slice/user-0.slice/session-1.scope") == nil)
        #expect(ContainerRef.parse(cgroup: "0::/system.slice/docker-short.scope") == nil)
    }

    @Test func onlyCgroupsThatMayHideARuntimeAskTheParent() {
        #expect(ContainerRef.mayHaveRuntimeParent(cgroup: Array("0::/box/payload\n".utf8)))
        #expect(ContainerRef.mayHaveRuntimeParent(cgroup: Array("0::/custom/\(Self.id)\n".utf8)))
        #expect(ContainerRef.mayHaveRuntimeParent(cgroup: Array("0::/libpod_parent/libpod-\(Self.id)\n".utf8)))
        #expect(!ContainerRef.mayHaveRuntimeParent(cgroup: Array("0::/user.slice/user-0.slice/session-4.scope\n".utf8)))
        #expect(!ContainerRef.mayHaveRuntimeParent(cgroup: Array("0::/\n".utf8)))
        #expect(!ContainerRef.mayHaveRuntimeParent(cgroup: Array("0::/x/\(Self.id.prefix(63))\n".utf8)))
    }

    @Test func nspawnMachineFromItsCommandLine() {
        #expect(NspawnName.machine(arguments: ["systemd-nspawn", "--register=no", "-M", "box", "-D", "/srv/other"]) == "box")
        #expect(NspawnName.machine(arguments: ["systemd-nspawn", "--machine=web1", "-D", "/srv/x"]) == "web1")
        #expect(NspawnName.machine(arguments: ["systemd-nspawn", "-D", "/var/lib/machines/debian/"]) == "debian")
        #expect(NspawnName.machine(arguments: ["systemd-nspawn", "--directory=/srv/alpine"]) == "alpine")
        #expect(NspawnName.machine(arguments: ["systemd-nspawn", "-i", "/images/fedora.raw"]) == "fedora")
        #expect(NspawnName.machine(arguments: ["systemd-nspawn", "-b"]) == nil)
    }

    @Test func runtimeOptionsInEveryForm() {
        let conmon = ["/usr/bin/conmon", "--api-version", "1", "-c", Self.id, "-u", Self.id, "-n", "web", "-r", "/usr/bin/runc"]
        #expect(ContainerRegistry.option(conmon, ["-c", "--cid"]) == Self.id)
        #expect(ContainerRegistry.option(conmon, ["-n", "--name"]) == "web")
        #expect(ContainerRegistry.option(["dockerd", "--data-root=/srv/docker"], ["--data-root", "-g"]) == "/srv/docker")
        #expect(ContainerRegistry.option(["dockerd", "-g", "/srv/d"], ["--data-root", "-g"]) == "/srv/d")
        #expect(ContainerRegistry.option(["dockerd", "-g"], ["--data-root", "-g"]) == nil)
        let shim = ["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", Self.id, "-address", "/run/containerd.sock"]
        #expect(ContainerRegistry.option(shim, ["-namespace"]) == "moby" && ContainerRegistry.option(shim, ["-id"]) == Self.id)
    }

    @Test func mininetHostFromCommandLine() {
        let cmdline = Array("bash\0--norc\0--noediting\0-is\0mininet:h1\0".utf8)
        #expect(MininetName.parse(cmdline: cmdline) == "h1")
        #expect(MininetName.parse(cmdline: Array("bash\0-c\0echo mininet:h1\0".utf8)) == nil)
        #expect(MininetName.parse(cmdline: Array("mininet:\0".utf8)) == nil)
    }
}

@Suite("reading procfs and other files")
struct ReadFileTests {
    static func withTemporaryFile(_ bytes: [UInt8], _ body: (String) throws -> Void) throws {
        let path = NSTemporaryDirectory() + "nsinspect-readfile-\(UInt32.random(in: 0..<UInt32.max))"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        try body(path)
    }

    @Test(arguments: [0, 1, 4095, 4096, 4097, 100_000])
    func readsWholeFilesOfAnySize(size: Int) throws {
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try Self.withTemporaryFile(bytes) { path in
            let whole: [UInt8] = try Sys.readFile(path).get()
            let oneShot: [UInt8] = try Sys.readFile(path, shortReadEnds: true).get()
            #expect(whole == bytes)
            #expect(oneShot == bytes)
        }
    }

    @Test func stopsAtTheLimit() throws {
        let bytes = (0..<20_000).map { UInt8(truncatingIfNeeded: $0) }
        try Self.withTemporaryFile(bytes) { path in
            let limited: [UInt8] = try Sys.readFile(path, limit: 5000).get()
            let one: [UInt8] = try Sys.readFile(path, limit: 1).get()
            #expect(limited == Array(bytes[0..<5000]))
            #expect(one == [0])
        }
    }

    @Test func readsAProcfsFileThatReportsSizeZero() throws {
        // /proc/self/mountinfo has st_size 0 and is longer than one page on any real system with a
        // few mounts; it must come back whole (the last line ends with a newline).
        let text: [UInt8] = try Sys.readFile("/proc/self/mountinfo").get()
        #expect(!text.isEmpty && text.last == UInt8(ascii: "\n"))
        guard case .failure(let error) = Sys.readFile("/nonexistent/nsinspect") else {
            Issue.record("reading a missing file succeeded")
            return
        }
        #expect(error == .ENOENT)
    }
}
