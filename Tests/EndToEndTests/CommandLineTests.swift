import Foundation
import Testing
import TestSupport

/// The command line as people type it: bare PIDs, references that match nothing, commands that cannot
/// start, bad numbers, and the small things a first run shows.
@Suite("the command line as users type it (end to end)", .serialized)
struct CommandLineTests {
    @Test func aBarePIDMeansTheProcessUnlessANamespaceHasThatName() throws {
        let scratch = Scratch("pid")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let pid = try scratch.unsharedProcess()
        let inode = try #require(Scratch.namespaceInode(pid: pid))
        let name = scratch.name("adopted")
        scratch.track(namespace: name)
        let adopt = nsinspect("adopt", String(pid), name)
        #expect(adopt.succeeded, "\(adopt)")
        #expect(adopt.stdout.contains("adopted pid:\(pid) (ino:\(inode)) as \(name)"), "\(adopt)")
        #expect(try Scratch.namespaceInode(named: name) == inode)
        // Every command takes it.
        let exec = nsinspect("exec", String(pid), "--", "readlink", "/proc/self/ns/net")
        #expect(exec.stdout.contains("net:[\(inode)]"), "\(exec)")
        let show = nsinspect("show", String(pid), "links")
        #expect(show.succeeded, "\(show)")

        // Adopting it again under the name it has is done already.
        let again = nsinspect("adopt", "ino:\(inode)", name)
        #expect(again.status == 0, "\(again)")
        #expect(again.stdout.contains("\(name) already names ino:\(inode)"), "\(again)")
        #expect(!again.stdout.contains("(ino:\(inode)) (ino:"), "\(again)")
        #expect(nsinspect("forget", name).succeeded)

        // A name made of the same digits wins over the process.
        let digits = String(pid)
        try Shell.must("ip", "netns", "add", digits)
        scratch.track(namespace: digits)
        let named = try Scratch.namespaceInode(named: digits)
        let byName = nsinspect("exec", digits, "--", "readlink", "/proc/self/ns/net")
        #expect(byName.stdout.contains("net:[\(named)]") && named != inode, "\(byName)")
        let pidForm = nsinspect("exec", "pid:\(digits)", "--", "readlink", "/proc/self/ns/net")
        #expect(pidForm.stdout.contains("net:[\(inode)]"), "\(pidForm)")

        // A number that is neither says both.
        let none = nsinspect("show", "2147483000")
        #expect(none.status == 1)
        #expect(none.stderr.contains("no process 2147483000") || none.stderr.contains("and process 2147483000"), "\(none)")
    }

    @Test func unknownReferencesListWhatIsThere() throws {
        let scratch = Scratch("cand")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let host = "\(scratch.prefix)h1"
        _ = try scratch.unsharedProcess(["sh", "-c", "sleep 600; true", "mininet:\(host)"])
        let missing = nsinspect("show", "mininet:\(scratch.prefix)h99")
        #expect(missing.status == 1)
        #expect(missing.stderr.hasPrefix("show: mininet:\(scratch.prefix)h99: no such namespace; Mininet hosts here: "), "\(missing)")
        #expect(missing.stderr.contains(host), "\(missing)")
        #expect(missing.stderr.split(separator: "\n").count == 1, "\(missing)")
        // A Mininet switch's shell stays in the host namespace.
        let switchName = "\(scratch.prefix)s1"
        let shell = try scratch.background(["sh", "-c", "sleep 600; true", "mininet:\(switchName)"])
        // Until its command line (what nsinspect reads) names the switch.
        let named = Wait.until(timeout: 5) {
            guard let handle = FileHandle(forReadingAtPath: "/proc/\(shell)/cmdline") else { return false }
            defer { try? handle.close() }
            return handle.readDataToEndOfFile().split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == "mininet:\(switchName)" }
        }
        try #require(named, "pid \(shell)'s command line never named mininet:\(switchName)")
        let sw = nsinspect("show", "mininet:\(switchName)")
        #expect(sw.status == 1)
        #expect(sw.stderr.contains("stays in the host namespace"), "\(sw)")
        let docker = nsinspect("show", "docker:\(scratch.prefix)nothing")
        #expect(docker.stderr.contains("no such namespace; "), "\(docker)")
    }

    @Test func execExitsLikeAShellWhenTheCommandCannotStart() throws {
        let scratch = Scratch("e127")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let ns = try scratch.addNamespace("x")
        let missing = nsinspect("exec", ns, "--", "/nonexistent")
        #expect(missing.status == 127, "\(missing)")
        #expect(missing.stderr.contains("/nonexistent"), "\(missing)")
        #expect(nsinspect("exec", ns, "--", "no-such-command-\(scratch.prefix)").status == 127)
        let file = NSTemporaryDirectory() + "\(scratch.prefix)-not-executable"
        try "echo hi\n".write(toFile: file, atomically: true, encoding: .utf8)
        scratch.track(path: file)
        #expect(nsinspect("exec", ns, "--", file).status == 126)
        #expect(nsinspect("exec", ns, "--", "/tmp").status == 126)
        let nothing = nsinspect("exec", ns)
        #expect(nothing.status != 0)
        #expect(nothing.stderr.contains("nsinspect exec \(ns) -- "), "\(nothing)")
        // As nsenter does (ip netns exec returns 1 here).
        #expect(Shell.run(["nsenter", "--net=/var/run/netns/\(ns)", "/nonexistent"]).status == missing.status)
    }

    @Test(arguments: [
        (["trace", "a", "b", "--count", "0"], "trace: --count: must be 1–1000, got 0"),
        (["trace", "a", "b", "--duration", "inf"], "trace: --duration: must be a number of seconds above 0 and at most 604800 (a week), got inf"),
        (["trace", "a", "b", "--duration", "1e30"], "trace: --duration: must be a number of seconds above 0 and at most 604800 (a week), got 1e+30"),
        (["trace", "a", "b", "--ttl", "256"], "trace: --ttl: must be 1–255, got 256"),
        (["trace", "a", "b", "--port", "0"], "trace: --port: must be 1–65535, got 0"),
        (["conntrack", "x", "--watch", "--duration", "nan"], "conntrack: --duration: must be a number of seconds above 0 and at most 604800 (a week), got nan"),
        (["conntrack", "x", "--watch", "--count", "0"], "conntrack: --count: must be 1–2147483647, got 0"),
        (["natcheck", "n", "--inside", "a", "--outside", "b", "--inside-port", "70000"], "natcheck: --inside-port: must be 1–65535, got 70000"),
        (["trace", "a"], "trace: Missing expected argument '<to>'"),
        (["lab", "up"], "lab up: Missing expected argument '<file>'"),
    ])
    func argumentErrorsAreOneLineAndExit64(arguments: [String], line: String) throws {
        let result = nsinspect(arguments: arguments)
        #expect(result.status == 64, "\(result)")
        #expect(result.stderr == line + "\n", "\(result)")
        #expect(result.stdout.isEmpty)
    }

    @Test func listNeverShowsItsOwnThreadsOrDescriptors() throws {
        let scratch = Scratch("self")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        // Enough namespaces that list's worker threads are inside them while /proc is read.
        for i in 0..<40 { try scratch.addNamespace("n\(i)") }
        for _ in 0..<3 {
            let result = nsinspect("list", "--json")
            #expect(result.succeeded)
            #expect(!result.stdout.contains("\"command\":\"nsinspect"), "list saw itself as a holder")
            let text = nsinspect("list")
            #expect(!text.stdout.contains("(nsinspect)"), "\(text)")
        }
    }

    @Test func theListFooterAndTheCommandColumn() throws {
        let scratch = Scratch("foot")
        defer { scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let host = "\(scratch.prefix)h1"
        // Mininet's host shell, whose host name is the last word of a long command line.
        _ = try scratch.unsharedProcess(["bash", "--norc", "--noediting", "-c", "sleep 600; true", "mininet:\(host)"])
        let list = nsinspect("list")
        let row = try #require(list.stdout.split(separator: "\n").first { $0.contains("mininet:\(host)") && $0.contains("bash") })
        #expect(row.contains("… mininet:\(host)"), "\(row)")
        // The notes come after one blank line, whichever of them there are.
        let lines = list.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let note = try #require(lines.firstIndex { $0.contains("invisible to `ip netns`") || $0.hasPrefix("* ") })
        #expect(lines[note - 1].isEmpty, "\(list.stdout)")
        #expect(!list.stdout.contains("read(s) refused"), "pid 1's refused read is only said with --verbose")
    }

    @Test func traceColumnsHoldFifteenByteInterfaceNames() throws {
        let scratch = Scratch("ifn")
        let lab = try PrefixedLab(scratch, namespaces: ["a", "b"]) { ns, _ in
            """
            namespaces:
              \(ns("a")): {}
              \(ns("b")): {}
            links:
              - {a: \(ns("a")):abcdefghijklmno 10.9.9.1/24, b: \(ns("b")):pqrstuvwxyz0123 10.9.9.2/24}
            """
        }
        defer { lab.down(); scratch.cleanup(); #expect(scratch.leftovers().isEmpty) }
        let trace = nsinspect("trace", lab.ns("a"), lab.ns("b"), "--count", "1")
        #expect(trace.succeeded, "\(trace)")
        let xmit = try #require(trace.stdout.split(separator: "\n").first { $0.contains("abcdefghijklmno") && $0.contains("xmit") })
        #expect(xmit.contains("abcdefghijklmno xmit"), "\(xmit)")
    }
}
