#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import JSONKit
import ProcNS

struct AdoptCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "adopt",
        abstract: "Give a namespace a name in /var/run/netns so `ip netns exec NAME` works.",
        discussion: """
            By default the name is a bind mount of the namespace file, made the way `ip netns add` makes \
            one; it keeps the namespace alive until `nsinspect forget NAME`. --symlink makes a symlink \
            into /proc instead, which dies with the process. --auto names every container and Mininet \
            namespace that has no name yet (docker-web, mininet-h1, …).
            """
    )

    @Argument(help: "The namespace (NS reference).") var reference: String?
    @Argument(help: "The name to give it.") var name: String?
    @Flag(help: "Make a symlink to /proc/PID/ns/net instead of a bind mount (dies with the process).") var symlink = false
    @Flag(help: "Replace an existing namespace name.") var force = false
    @Flag(help: "Name every container and Mininet namespace that has no name in /var/run/netns.") var auto = false
    @OptionGroup var common: CommonOptions

    func validate() throws {
        if auto {
            guard reference == nil, name == nil else { throw ValidationError("--auto takes no REF or NAME") }
        } else {
            guard reference != nil, name != nil else { throw ValidationError("give REF and NAME, or --auto") }
        }
    }

    func run() throws {
        if auto { return try runAuto() }
        let names = NetnsNames(operation: "adopt")
        try names.validate(name!)
        if !symlink { try requireCapabilities([.sysAdmin], for: "adopt") }
        var resolver = NamespaceResolver()
        let handle = try resolver.resolve(reference!)
        // Adopting again under the name it already has is done already, not a clash.
        switch names.entry(name!) {
        case .bindMount(let inode) where inode == handle.id.inode && !symlink,
             .symlink(_, let inode?) where inode == handle.id.inode && symlink:
            if common.json {
                report([(name!, names.directory + "/" + name!, handle.id, described(reference!, handle))])
            } else {
                Output.line("\(name!) already names \(described(reference!, handle)) (ino:\(handle.id.inode)): nothing to do")
            }
            return
        default:
            break
        }
        let path: String
        if symlink {
            let target = try symlinkTarget(reference: reference!, handle: handle, resolver: &resolver)
            path = try names.symlink(to: target.path, as: name!, expected: handle.id, force: force)
            Output.warn("adopt: warning: \(path) is a symlink to \(target.path); it dies with \(target.holder) (a bind mount, the default, does not)")
        } else {
            path = try names.bind(handle, as: name!, force: force)
        }
        report([(name!, path, handle.id, described(reference!, handle))])
    }

    /// The reference as it was taken: a bare number is the process unless a namespace has that name.
    private func described(_ reference: String, _ handle: NamespaceHandle) -> String {
        guard let pid = NamespaceReference.bareProcessID(reference) else { return reference }
        return handle.origin == reference ? "the namespace named \(reference)" : "pid:\(pid)"
    }

    /// Where a symlink should point: the namespace link of a process when there is one, else the path of
    /// whatever holds it (a bind mount elsewhere, an open fd).
    private func symlinkTarget(reference: String, handle: NamespaceHandle, resolver: inout NamespaceResolver)
        throws(OperationError) -> (path: String, holder: String)
    {
        if case .pid(let pid) = try NamespaceReference.parse(reference) {
            return ("/proc/\(pid)/ns/net", "process \(pid)")
        }
        let census = try resolver.census()
        guard let ns = census.namespace(inode: handle.id.inode) else {
            throw OperationError("adopt", reference, "no process or file holds this namespace to link to")
        }
        if let pid = ns.pids.first { return ("/proc/\(pid)/ns/net", "process \(pid)") }
        if let mount = ns.mounts.first(where: \.inOwnMountNamespace) { return (mount.path, "the mount at \(mount.path)") }
        if let fd = ns.fdHolders.first { return ("/proc/\(fd.pid)/fd/\(fd.fd)", "fd \(fd.fd) of process \(fd.pid)") }
        throw OperationError("adopt", reference, "no process, mount or fd to link to; use a bind mount (drop --symlink)")
    }

    private func runAuto() throws {
        if !symlink { try requireCapabilities([.sysAdmin], for: "adopt") }
        let census = try Census.scan()
        let names = NetnsNames(operation: "adopt")
        var made: [(String, String, NamespaceID, String)] = []
        var skipped: [String] = []
        for ns in census.namespaces where !ns.hasNetnsName && !ns.isHost {
            guard let name = ns.names.first(where: { $0.kind != .netns && $0.kind != .host }) else { continue }
            let wanted = AdoptCommand.autoName(name)
            if names.entry(wanted) != .absent {
                skipped.append("\(wanted) exists (\(name.reference) left unnamed)")
                continue
            }
            do {
                let handle = try census.open(ns)
                let path: String
                if symlink, let pid = ns.pids.first {
                    path = try names.symlink(to: "/proc/\(pid)/ns/net", as: wanted, expected: handle.id)
                } else {
                    path = try names.bind(handle, as: wanted)
                }
                made.append((wanted, path, ns.id, name.reference))
            } catch {
                skipped.append("\(wanted): \(error)")
            }
        }
        for reason in skipped { Output.warn("adopt: skipped \(reason)") }
        if made.isEmpty && !common.json {
            Output.line("nothing to adopt: every container and Mininet namespace already has a name in /var/run/netns")
            return
        }
        report(made)
    }

    /// `docker-web`, `mininet-h1`: the kind and the name, with anything a netns name cannot hold replaced.
    static func autoName(_ name: NamespaceName) -> String {
        let raw = "\(name.kind.rawValue)-\(name.name)"
        let cleaned = String(raw.unicodeScalars.map { s -> Character in
            (s == "/" || s.value < 0x20 || s.value == 0x7f) ? "-" : Character(s)
        })
        return String(cleaned.utf8.prefix(Int(NAME_MAX))) ?? cleaned
    }

    private func report(_ made: [(name: String, path: String, id: NamespaceID, from: String)]) {
        if common.json {
            Output.json(.array(made.map { m in
                var o = JSONObjectBuilder()
                o.add("name", m.name); o.add("path", m.path); o.add("ns", m.id.inode); o.add("reference", m.from)
                return o.json
            }))
            return
        }
        for m in made {
            let inode = "ino:\(m.id.inode)"
            Output.line("adopted \(m.from)\(m.from == inode ? "" : " (\(inode))") as \(m.name): `ip netns exec \(m.name) …` works now")
        }
    }
}

struct ForgetCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Remove a namespace name from /var/run/netns (unmount and unlink, or remove the symlink).",
        discussion: "Refuses anything there that is not a namespace name. The namespace lives on while something else holds it."
    )

    @Argument(help: "The name in /var/run/netns.") var name: String
    @OptionGroup var common: CommonOptions

    func run() throws {
        let names = NetnsNames(operation: "forget")
        try names.validate(name)
        if case .bindMount = names.entry(name) { try requireCapabilities([.sysAdmin], for: "forget") }
        let removal = try names.forget(name)
        let what: String
        switch removal {
        case .unmounted: what = "unmounted and removed"
        case .symlinkRemoved(let target): what = "removed the symlink to \(target)"
        case .placeholderRemoved: what = "removed the empty placeholder"
        }
        if common.json {
            var o = JSONObjectBuilder()
            o.add("name", name); o.add("removed", what)
            Output.json(o.json)
        } else {
            Output.line("forgot \(name): \(what)")
        }
    }
}
