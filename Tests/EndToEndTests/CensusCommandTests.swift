import Foundation
import Testing
import TestSupport

/// `nsinspect list`, `adopt`, `forget`, `exec` run as a user runs them, compared with what iproute2 and
/// util-linux say of the same namespaces.
@Suite("list, adopt, forget, exec (end to end)", .serialized)
struct CensusCommandTests {
    static func listJSON() throws -> [[String: Any]] {
        let result = nsinspect("list", "--json")
        try #require(result.succeeded, "\(result)")
        let doc = try #require(try Shell.json(result.stdout) as? [String: Any])
        return try #require(doc["namespaces"] as? [[String: Any]])
    }

    static func entry(_ list: [[String: Any]], inode: UInt64) -> [String: Any]? {
        list.first { ($0["ns"] as? NSNumber)?.uint64Value == inode }
    }

    /// The entry holding a process.
    static func entry(_ list: [[String: Any]], holding pid: Int) -> [String: Any]? {
        list.first { ($0["pids"] as? [Int])?.contains(pid) == true }
    }

    /// The entry holding a process, in a fresh `list --json`.
    static func entry(holding pid: Int) throws -> [String: Any]? {
        entry(try listJSON(), holding: pid)
    }

    /// The references an entry is named by (`docker:NAME`, `mininet:NAME`, …).
    static func references(_ entry: [String: Any]?) -> [String] {
        (entry?["names"] as? [[String: Any]])?.compactMap { $0["reference"] as? String } ?? []
    }

    /// `--help` on the tool and on every command prints usage on stdout and exits 0 (not an error line).
    @Test(arguments: [[], ["list"], ["show"], ["dump"], ["graph"], ["path"], ["trace"], ["lab"], ["lab", "up"],
                      ["conntrack"], ["natcheck"], ["adopt"], ["forget"], ["exec"], ["demo"]])
    func helpPrintsUsageAndExitsZero(command: [String]) throws {
        let result = nsinspect(arguments: command + ["--help"])
        #expect(result.status == 0 && result.stdout.contains("USAGE: nsinspect"), "\(result)")
        #expect(!result.stderr.contains("CommandError"), "\(result)")
    }

    @Test func listShowsAnUnsharedProcessAndMarksItUnnamed() throws {
        let scratch = Scratch("lst")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let pid = try scratch.unsharedProcess()
        let inode = try #require(Scratch.namespaceInode(pid: pid))
        let entry = try #require(Self.entry(try Self.listJSON(), inode: inode))
        #expect((entry["pid"] as? Int) == Int(pid))
        #expect((entry["nprocs"] as? Int) == 1)
        #expect((entry["unnamed"] as? Bool) == true)
        #expect((entry["command"] as? String) == "sleep 600")
        let table = nsinspect("list")
        let row = try #require(table.stdout.split(separator: "\n").first { $0.hasPrefix(String(inode)) })
        #expect(row.contains(" \(pid) ") && row.contains("*"))
        #expect(table.stdout.contains("nsinspect adopt"))
    }

    /// IFACES and ADDRS are in the table on a host of ordinary size; above the limit the table leaves them
    /// out and says how to get them, `--interfaces` and a selection bring them back, JSON keeps them.
    @Test func interfaceColumnsAboveAndBelowTheLimit() throws {
        let scratch = Scratch("ifc")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let probe = try scratch.addNamespace("probe")
        try Shell.must("ip", "-n", probe, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
        try Shell.must("ip", "-n", probe, "address", "add", "198.51.100.7/24", "dev", "d0")
        let header = { (result: CommandResult) in result.stdout.split(separator: "\n").first.map(String.init) ?? "" }
        let row = { (result: CommandResult) in result.stdout.split(separator: "\n").first { $0.split(separator: " ").contains { $0 == probe } }.map(String.init) ?? "" }

        let small = nsinspect("list")
        #expect(small.succeeded && header(small).contains("IFACES"), "\(small)")
        #expect(row(small).contains("d0") && row(small).contains("198.51.100.7/24"), "\(small)")

        // More namespaces than the limit (256), made in one batch and removed by the scratch.
        let batch = (0..<257).map { "netns add \(scratch.name("m\($0)"))" }.joined(separator: "\n") + "\n"
        for i in 0..<257 { scratch.track(namespace: scratch.name("m\(i)")) }
        let made = Shell.run(["ip", "-batch", "-"], input: batch)
        try #require(made.succeeded, "\(made)")

        let large = nsinspect("list")
        #expect(large.succeeded && !header(large).contains("IFACES"), "\(large.stderr)")
        #expect(large.stdout.contains("`--interfaces` adds them"))
        #expect(!row(large).isEmpty && !row(large).contains("198.51.100.7"))
        let forced = nsinspect("list", "--interfaces")
        #expect(forced.succeeded && header(forced).contains("IFACES") && row(forced).contains("198.51.100.7/24"))
        let selected = nsinspect("list", probe)
        #expect(selected.succeeded && header(selected).contains("IFACES") && row(selected).contains("d0"))
        let json = try #require(try Shell.json(nsinspect("list", "--json").stdout) as? [String: Any])
        let entries = try #require(json["namespaces"] as? [[String: Any]])
        let mine = try #require(entries.first { (($0["names"] as? [[String: Any]]) ?? []).contains { ($0["name"] as? String) == probe } })
        #expect(Set((mine["interfaces"] as? [String]) ?? []) == ["d0", "d1"])
        #expect((mine["addresses"] as? [String]) == ["198.51.100.7/24"])
        let bare = try #require(try Shell.json(nsinspect("list", "--json", "--no-interfaces").stdout) as? [String: Any])
        #expect(((bare["namespaces"] as? [[String: Any]]) ?? []).allSatisfy { $0["interfaces"] == nil })
        let both = nsinspect("list", "--interfaces", "--no-interfaces")
        #expect(!both.succeeded && both.stderr.contains("contradict"))
    }

    @Test func adoptThenIPNetnsExecThenForget() throws {
        let scratch = Scratch("adp")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let pid = try scratch.unsharedProcess()
        let name = scratch.name("web")
        scratch.track(namespace: name)
        let adopt = nsinspect("adopt", "pid:\(pid)", name)
        #expect(adopt.succeeded, "\(adopt)")
        #expect(adopt.stdout.contains("as \(name)"))
        #expect(Shell.run(["ip", "netns", "exec", name, "true"]).succeeded)
        #expect(Shell.run(["ip", "netns", "list"]).stdout.contains(name))
        // The name reaches the process's namespace: the same inode through either path.
        #expect(try Scratch.namespaceInode(named: name) == Scratch.namespaceInode(pid: pid)!)
        let listed = try #require(Self.entry(try Self.listJSON(), inode: Scratch.namespaceInode(pid: pid)!))
        #expect((listed["ip_netns"] as? Bool) == true)

        let forget = nsinspect("forget", name)
        #expect(forget.succeeded, "\(forget)")
        #expect(!FileManager.default.fileExists(atPath: "/var/run/netns/\(name)"))
        // The namespace lives on: its process still holds it.
        #expect(Self.entry(try Self.listJSON(), inode: Scratch.namespaceInode(pid: pid)!) != nil)
    }

    @Test func symlinkModeWarnsThatItDiesWithTheProcess() throws {
        let scratch = Scratch("sym")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let pid = try scratch.unsharedProcess()
        let name = scratch.name("s")
        scratch.track(namespace: name)
        let adopt = nsinspect("adopt", "pid:\(pid)", name, "--symlink")
        #expect(adopt.succeeded, "\(adopt)")
        #expect(adopt.stderr.contains("dies with process \(pid)"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/var/run/netns/\(name)") == "/proc/\(pid)/ns/net")
        #expect(Shell.run(["ip", "netns", "exec", name, "true"]).succeeded)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let list = nsinspect("list")
        #expect(list.stdout.contains(name) && list.stdout.contains("dangling symlink"))
        #expect(nsinspect("forget", name).succeeded)
    }

    @Test func adoptAutoNamesMininetHosts() throws {
        let scratch = Scratch("auto")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let host = "\(scratch.prefix)h1"
        // What Mininet runs for a host: a shell whose command line carries `mininet:NAME`.
        let pid = try scratch.unsharedProcess(["sh", "-c", "sleep 600; true", "mininet:\(host)"])
        let expected = "mininet-\(host)"
        scratch.track(namespace: expected)
        let list = nsinspect("list")
        #expect(list.stdout.contains("mininet:\(host)"))
        #expect(list.stdout.contains("adopt --auto"))
        let auto = nsinspect("adopt", "--auto")
        #expect(auto.succeeded, "\(auto)")
        #expect(auto.stdout.contains(expected))
        #expect(try Scratch.namespaceInode(named: expected) == Scratch.namespaceInode(pid: pid)!)
        // The reference grammar reaches it by its Mininet name too.
        let exec = nsinspect("exec", "mininet:\(host)", "--", "ip", "-o", "link")
        #expect(exec.succeeded && exec.stdout.contains("lo:") && !exec.stdout.contains("eth"), "\(exec)")
        #expect(nsinspect("forget", expected).succeeded)
    }

    @Test func execRunsInsideAndReturnsTheExitStatus() throws {
        let scratch = Scratch("exe")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let name = try scratch.addNamespace("x")
        // This kernel has no dummy driver; a veth pair inside the namespace serves.
        try Shell.must("ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        let links = nsinspect("exec", name, "--", "ls", "/sys/class/net")
        #expect(links.succeeded, "\(links)")
        #expect(Set(links.stdout.split(separator: "\n")) == ["lo", "v0", "v1"])
        #expect(nsinspect("exec", name, "--", "sh", "-c", "exit 7").status == 7)
        #expect(nsinspect("exec", name, "sh", "-c", "kill -KILL $$").status == 128 + 9)
        let missing = nsinspect("exec", name, "--", "no-such-program")
        #expect(missing.status != 0 && missing.stderr.contains("exec: no-such-program: command not found"))
    }

    @Test func badInputGetsOneLineErrorsAndChangesNothing() throws {
        let scratch = Scratch("bad")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let pid = try scratch.unsharedProcess()
        let taken = try scratch.addNamespace("taken")
        let cases: [([String], String)] = [
            (["adopt", "nosuch-\(scratch.prefix)", scratch.name("x")], "adopt: nosuch-\(scratch.prefix): no such namespace"),
            (["adopt", "pid:99999999999", scratch.name("x")], "pid:99999999999: expected pid:N"),
            (["adopt", "pid:4194303", scratch.name("x")], "adopt: pid:4194303: no such process"),
            (["adopt", "pid:\(pid)", ""], "adopt: \"\": invalid name: empty name"),
            (["adopt", "pid:\(pid)", "a/b"], "invalid name: name contains '/'"),
            (["adopt", "pid:\(pid)", "."], "invalid name: '.' is not a name"),
            (["adopt", "pid:\(pid)", ".."], "invalid name: '..' is not a name"),
            (["adopt", "pid:\(pid)", "--", "-lead"], "invalid name: name starts with '-'"),
            (["adopt", "pid:\(pid)", "bell\u{7}"], "invalid name: name contains a control character"),
            (["adopt", "pid:\(pid)", String(repeating: "n", count: 256)], "invalid name: name longer than 255 bytes"),
            (["adopt", "pid:\(pid)", taken], "adopt: /var/run/netns/\(taken): name exists (use --force to replace)"),
            (["adopt", "ino:1", scratch.name("x")], "adopt: ino:1: no such namespace"),
            (["forget", scratch.name("never")], "forget: /var/run/netns/\(scratch.name("never")): no such name"),
            (["exec", "nosuch-\(scratch.prefix)", "--", "true"], "exec: nosuch-\(scratch.prefix): no such namespace"),
        ]
        for (arguments, message) in cases {
            let result = nsinspect(arguments: arguments)
            #expect(result.status != 0, "\(arguments) succeeded")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): not one line: \(result.stderr)")
        }
        // Only the namespace the test made is there: no placeholder, no half-made name.
        #expect(scratch.netnsEntries() == [taken])
    }

    @Test func forgetRefusesAFileThatIsNotANamespaceName() throws {
        let scratch = Scratch("fgt")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let path = "/var/run/netns/\(scratch.name("notes"))"
        try "hello".write(toFile: path, atomically: false, encoding: .utf8)
        scratch.track(path: path)
        let result = nsinspect("forget", scratch.name("notes"))
        #expect(result.status != 0)
        #expect(result.stderr.contains("not a namespace name"))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "hello")
    }

    @Test func withoutCapSysAdminTheCapabilityIsNamedAndNothingIsMade() throws {
        let scratch = Scratch("cap")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let pid = try scratch.unsharedProcess()
        let name = scratch.name("x")
        scratch.track(namespace: name)
        let setpriv = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]
        let adopt = Shell.run(setpriv + [Package.binary, "adopt", "pid:\(pid)", name])
        #expect(adopt.status != 0)
        #expect(adopt.stderr.contains("CAP_SYS_ADMIN"), "\(adopt)")
        #expect(scratch.netnsEntries().isEmpty)
        let exec = Shell.run(setpriv + [Package.binary, "exec", "pid:\(pid)", "--", "true"])
        #expect(exec.status != 0 && exec.stderr.contains("CAP_SYS_ADMIN"), "\(exec)")
        // Listing still works without privileges, reporting what it could not read.
        let list = Shell.run(setpriv + [Package.binary, "list"])
        #expect(list.succeeded, "\(list)")
    }

    @Test func agreesWithLsnsAndIPOnNetnsids() throws {
        let scratch = Scratch("ids")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let a = try scratch.addNamespace("a")
        _ = try scratch.addNamespace("b")
        try Shell.must("ip", "netns", "set", a, "auto")
        let pid = try scratch.unsharedProcess()
        _ = pid
        let ours = try Self.listJSON()
        let lsns = try #require(try Shell.json(try Shell.must("lsns", "-t", "net", "-J")) as? [String: Any])
        let theirs = try #require(lsns["namespaces"] as? [[String: Any]])
        #expect(!theirs.isEmpty)
        for ns in theirs {
            let inode = try #require((ns["ns"] as? NSNumber)?.uint64Value)
            let mine = try #require(Self.entry(ours, inode: inode), "lsns lists \(inode), nsinspect does not")
            #expect("\(mine["netnsid"] ?? "nil")" == "\(ns["netnsid"] ?? "nil")", "netnsid of \(inode)")
        }
        let ids = try #require(try Shell.json(try Shell.must("ip", "-j", "netns", "list-id")) as? [[String: Any]])
        let named = ids.filter { $0["name"] != nil }
        #expect(named.contains { ($0["name"] as? String) == a })
        for id in named {
            let name = try #require(id["name"] as? String)
            let mine = try #require(ours.first { entry in
                ((entry["names"] as? [[String: Any]]) ?? []).contains { ($0["reference"] as? String) == name }
            }, "ip knows \(name), nsinspect does not")
            #expect((mine["netnsid"] as? Int) == (id["nsid"] as? Int), "nsid of \(name)")
        }
    }
}
