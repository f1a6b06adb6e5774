import Foundation

/// Namespaces, links and files a test makes, named with a prefix unique to the test run, removed when
/// the test ends (also when it fails: call `cleanup()` in a `defer`), and checked afterwards: anything
/// of ours still there is a test failure (`leftovers()`).
public final class Scratch: @unchecked Sendable {
    public let prefix: String
    private var namespaces: [String] = []
    private var hostLinks: [String] = []
    private var pids: [Int32] = []
    private var paths: [String] = []
    private var mounts: [String] = []

    /// - Parameter tag: a few letters saying which test this is (shows up in leftover names).
    public init(_ tag: String) {
        let random = String(UInt32.random(in: 0..<UInt32.max), radix: 36)
        prefix = "nt\(tag.prefix(4))\(random.prefix(5))"
    }

    /// A namespace name with the test's prefix (`ip netns` names are not limited to 15 bytes).
    public func name(_ suffix: String) -> String { "\(prefix)-\(suffix)" }

    /// `ip netns add`, remembered for cleanup.
    @discardableResult
    public func addNamespace(_ suffix: String) throws -> String {
        let name = name(suffix)
        try Shell.must("ip", "netns", "add", name)
        namespaces.append(name)
        return name
    }

    /// Remembers a namespace name made some other way (by nsinspect itself).
    public func track(namespace name: String) { namespaces.append(name) }
    public func track(hostLink name: String) { hostLinks.append(name) }
    public func track(pid: Int32) { pids.append(pid) }
    public func track(path: String) { paths.append(path) }
    public func track(mount: String) { mounts.append(mount) }

    /// A host interface name (at most 15 bytes) unique to this test.
    public func linkName(_ suffix: String) -> String { String("\(prefix.suffix(6))\(suffix)".prefix(15)) }

    /// Starts `arguments` in the background (e.g. `unshare --net sleep 600`) and remembers its pid.
    /// Foundation starts it as the leader of a process group of its own, so `cleanup()` ends it and every
    /// process it started (`sh -c 'sleep 600; true'` would leave its sleep behind otherwise).
    public func background(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        pids.append(process.processIdentifier)
        return process.processIdentifier
    }

    public func cleanup() {
        for pid in pids {
            kill(-pid, SIGKILL)  // its process group
            kill(pid, SIGKILL)
        }
        for pid in pids { var status: Int32 = 0; waitpid(pid, &status, 0) }
        pids.removeAll()
        for mount in mounts.reversed() { Shell.run(["umount", "-l", mount]) }
        mounts.removeAll()
        for link in hostLinks { Shell.run(["ip", "link", "del", link]) }
        hostLinks.removeAll()
        for ns in namespaces {
            Shell.run(["ip", "netns", "del", ns])
            // A symlink or a placeholder is not something `ip netns del` removes.
            unlink("/var/run/netns/\(ns)")
        }
        namespaces.removeAll()
        for path in paths.reversed() { try? FileManager.default.removeItem(atPath: path) }
        paths.removeAll()
    }

    /// Everything with this test's prefix still on the machine: netns names, host links, mounts.
    public func leftovers() -> [String] {
        var found: [String] = []
        if let names = try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns") {
            found += names.filter { $0.hasPrefix(prefix) }.map { "/var/run/netns/\($0)" }
        }
        let links = Shell.run(["ip", "-o", "link", "show"]).stdout
        let short = String(prefix.suffix(6))
        for line in links.split(separator: "\n") where line.contains(": \(short)") || line.contains(": \(prefix)") {
            found.append("link " + String(line.prefix(60)))
        }
        if let mountinfo = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) {
            found += mountinfo.split(separator: "\n").filter { $0.contains(prefix) }.map { "mount " + String($0) }
        }
        found += Scratch.bpfProgramsLeft()
        return found
    }

    /// nsinspect's BPF programs (named nsi_*) still loaded, waiting up to 2 s for the kernel's deferred
    /// release of programs whose last descriptor was closed. Tests run one at a time, so any is a leak of
    /// the test that just ended. A bpftool that cannot answer is reported, not taken for "none".
    public static func bpfProgramsLeft() -> [String] {
        do {
            return try bpfProgramsAfterRelease().map { "bpf program \($0.name) (id \($0.id))" }
        } catch {
            return ["\(error)"]
        }
    }

    /// A BPF program the kernel has loaded.
    public struct LoadedBPFProgram: Sendable, Equatable {
        public let id: Int
        public let name: String
    }

    /// nsinspect's BPF programs (named nsi_*) the kernel has loaded now. Throws, with what bpftool
    /// printed, when bpftool cannot list them: that is never taken for "none".
    public static func bpfPrograms() throws -> [LoadedBPFProgram] {
        let result = Shell.run(["bpftool", "-j", "prog", "show"])
        guard result.succeeded, let list = (try? Shell.json(result.stdout)) as? [[String: Any]] else {
            throw SetupFailed("bpftool cannot list BPF programs: \(result)")
        }
        return list.compactMap { program in
            guard let name = program["name"] as? String, name.hasPrefix("nsi_"), let id = program["id"] as? Int else { return nil }
            return LoadedBPFProgram(id: id, name: name)
        }
    }

    /// nsinspect's BPF programs once the kernel has freed those whose last descriptor was closed: it
    /// defers their release, so this waits up to 2 s for there to be none before answering.
    public static func bpfProgramsAfterRelease() throws -> [LoadedBPFProgram] {
        var programs: [LoadedBPFProgram] = []
        _ = try Wait.until(timeout: 2, interval: 0.05) {
            programs = try bpfPrograms()
            return programs.isEmpty
        }
        return programs
    }
}

extension Scratch {
    /// Starts `unshare --net -- ARGS` and waits until the process has its own namespace.
    public func unsharedProcess(_ arguments: [String] = ["sleep", "600"]) throws -> Int32 {
        let pid = try background(["unshare", "--net", "--"] + arguments)
        let own = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        for _ in 0..<200 {
            if let theirs = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net"), theirs != own {
                return pid
            }
            usleep(10_000)
        }
        throw CommandFailed(result: CommandResult(arguments: ["unshare"] + arguments, status: -1, stdout: "",
                                                  stderr: "process \(pid) never left the host namespace"))
    }

    /// The inode of a process's network namespace.
    public static func namespaceInode(pid: Int32) -> UInt64? {
        guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net") else { return nil }
        return UInt64(link.dropFirst(5).dropLast())
    }

    /// The inode of the namespace a /var/run/netns name reaches, as `stat -L -c %i` says it.
    public static func namespaceInode(named name: String) throws -> UInt64 {
        let out = try Shell.must("stat", "-L", "-c", "%i", "/var/run/netns/\(name)")
        guard let inode = UInt64(out.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw SetupFailed("stat -L -c %i /var/run/netns/\(name) printed no inode: \(out)")
        }
        return inode
    }

    /// Entries of /var/run/netns with this test's prefix.
    public func netnsEntries() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns")) ?? []).filter { $0.hasPrefix(prefix) }
    }
}
