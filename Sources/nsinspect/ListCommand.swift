#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import CShim
import JSONKit
import Netlink
import ProcNS
import Synchronization

struct ListCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Every network namespace on the host, however it is held, with its names and holders.",
        discussion: """
            Finds namespaces held by processes, threads, bind mounts in any mount namespace, open file \
            descriptors and sockets. Namespaces marked * have no name that ip netns, a container runtime \
            or Mininet knows; `nsinspect adopt` gives them one.
            """
    )

    @Argument(help: "Only these namespaces (NS references); all by default.") var references: [String] = []

    @Flag(help: "Add the IFACES and ADDRS columns whatever the number of namespaces.")
    var interfaces = false

    @Flag(help: "Leave out the IFACES and ADDRS columns: no per-namespace queries, just the census (what lsns does).")
    var noInterfaces = false

    @OptionGroup var common: CommonOptions

    /// Above this many namespaces the table leaves out IFACES and ADDRS unless `--interfaces` is given:
    /// they cost a netlink dump and a /proc read inside every namespace, which on a host with a thousand
    /// namespaces would make `list` twice as slow as `lsns` for two columns of a table nobody reads
    /// whole. JSON keeps them (scripts get every field) unless `--no-interfaces`.
    static let interfaceColumnsLimit = 256

    func validate() throws {
        if interfaces && noInterfaces { throw ValidationError("--interfaces and --no-interfaces contradict each other") }
    }

    func run() throws {
        let ownMounts = MountInfo.ownNetworkNamespaceMounts()
        let startWith = references.isEmpty ? ownMounts : []
        let always = interfaces || (common.json && !noInterfaces) || !references.isEmpty
        var withInterfaces = !noInterfaces && (always || Set(startWith.map(\.inode)).count <= Self.interfaceColumnsLimit)
        // The per-namespace questions (nsid, interfaces) start on worker threads with the namespaces
        // mounted in our mount namespace while the census reads /proc; the rest follow when it is done.
        let facts = try NamespaceFacts.Gatherer(interfaces: withInterfaces, startWith: startWith)
        var census: Census
        do {
            var options = CensusOptions()
            options.ownMounts = ownMounts
            census = try Census.scan(options)
            if !references.isEmpty {
                let selected = try references.map { try census.select(NamespaceReference.parse($0)).id }
                census.namespaces = census.namespaces.filter { selected.contains($0.id) }
            }
        } catch {
            _ = facts.finish()
            throw error
        }
        if withInterfaces && !always && census.namespaces.count > Self.interfaceColumnsLimit {
            withInterfaces = false
            facts.stopReadingInterfaces()
        }
        let found: [UInt64: NamespaceFacts]
        if withInterfaces {
            facts.add(census.namespaces.filter { !facts.isQueued($0.id.inode) }.compactMap { try? census.open($0, quick: true) })
            found = facts.finish()
        } else {
            // Only nsids are left to ask: by pid where a process lives in the namespace, without
            // opening it, and only until every assigned id is found.
            let early = facts.finish()
            let rest = census.namespaces.filter { early[$0.id.inode]?.nsid == nil }
            found = early.merging(NamespaceFacts.nsids(of: rest, census: census)) { first, _ in first }
        }
        if common.json {
            Output.json(ListRendering.json(census, facts: found))
        } else {
            var out = ListRendering.table(census, facts: found, interfaces: withInterfaces, verbose: common.verbose)
            if !withInterfaces && !noInterfaces {
                out += "IFACES and ADDRS are left out above \(Self.interfaceColumnsLimit) namespaces (a netlink dump in each); `--interfaces` adds them.\n"
            }
            Output.write(out)
        }
    }
}

enum ListRendering {
    static func holders(_ ns: NetNamespace, census: Census) -> [String] {
        let namePaths = Set(ns.names.filter { $0.kind == .netns }.flatMap { name in
            [census.options.netnsDirectory + "/" + name.name, "/run/netns/" + name.name]
        })
        var parts: [String] = []
        var seenPaths = Set<String>()
        for mount in ns.mounts where !namePaths.contains(mount.path) && seenPaths.insert(mount.path).inserted {
            parts.append("mount:" + mount.path)
        }
        parts += ns.fdHolders.map { "fd:\($0.pid)/\($0.fd)(\($0.command))" }
        parts += ns.socketHolders.map { "socket:\($0.pid)/\($0.fd)(\($0.command))" }
        parts += ns.threads.map { "thread:\($0.pid)/\($0.tid)(\($0.command))" }
        return parts
    }

    /// The first process's command in at most 32 characters; when cut, its last word (`mininet:h1`, the
    /// name a runtime passed) stays: `bash --norc … mininet:h1`.
    static func commandColumn(_ command: String, limit: Int = 32) -> String {
        guard command.count > limit else { return command }
        let words = command.split(separator: " ")
        if words.count > 1, let last = words.last, last.count + 3 + 4 <= limit {
            let budget = limit - last.count - 3
            var head = ""
            for word in words.dropLast() {
                guard head.count + word.count + (head.isEmpty ? 0 : 1) <= budget else { break }
                head += (head.isEmpty ? "" : " ") + word
            }
            if !head.isEmpty { return head + " … " + last }
        }
        return String(command.prefix(limit - 1)) + "…"
    }

    static func names(_ ns: NetNamespace) -> String {
        guard !ns.names.isEmpty else { return "*" }
        return ns.names.map { $0.reference + ($0.isSymlink ? "(symlink)" : "") }.joined(separator: ",")
    }

    /// At most `limit` items joined by commas, with "+N" for the rest.
    static func abbreviated(_ items: [String], _ limit: Int) -> String {
        if items.isEmpty { return "-" }
        if items.count <= limit { return items.joined(separator: ",") }
        return items.prefix(limit).joined(separator: ",") + ",+\(items.count - limit)"
    }

    static func table(_ census: Census, facts: [UInt64: NamespaceFacts], interfaces withInterfaces: Bool,
                      verbose: Bool) -> String {
        var table = withInterfaces
            ? Table("NS", "NSID", "NPROCS", "PID", "COMMAND", "NAMES", "IFACES", "ADDRS", "HOLDERS")
            : Table("NS", "NSID", "NPROCS", "PID", "COMMAND", "NAMES", "HOLDERS")
        for ns in census.namespaces {
            let command = ns.firstProcess.map { commandColumn($0.command) } ?? "-"
            let found = facts[ns.id.inode]
            var row = [String(ns.id.inode), found?.nsid?.description ?? "?", String(ns.processCount),
                       ns.firstProcess.map { String($0.pid) } ?? "-", command, names(ns)]
            if withInterfaces {
                let details = found?.interfaces
                row += [details.map { abbreviated($0.names, 3) } ?? "?", details.map { abbreviated($0.addresses, 2) } ?? "?"]
            }
            row.append(holders(ns, census: census).joined(separator: " "))
            table.add(row)
        }
        var out = table.render()
        if !census.brokenNames.isEmpty {
            out += "\nBroken names in \(census.options.netnsDirectory) (`nsinspect forget NAME` removes them):\n"
            var broken = Table("NAME", "PROBLEM")
            for name in census.brokenNames { broken.add(name.name, name.problem.description) }
            out += broken.render()
        }
        // The notes under the table, one block after one blank line.
        var notes: [String] = []
        let unnamed = census.namespaces.filter(\.isUnnamed)
        if !unnamed.isEmpty {
            let example = unnamed.first!.reference
            notes.append("* \(unnamed.count) namespace\(unnamed.count == 1 ? " has" : "s have") no name that ip netns, a container runtime or Mininet knows. "
                + "Name one with `nsinspect adopt \(example) NAME`.")
        }
        let hidden = census.namespaces.filter { !$0.isUnnamed && !$0.isHost && !$0.hasNetnsName }
        if !hidden.isEmpty {
            let refs = hidden.prefix(4).map(\.reference).joined(separator: ", ")
            notes.append("\(hidden.count) named namespace\(hidden.count == 1 ? " is" : "s are") invisible to `ip netns` (\(refs)\(hidden.count > 4 ? ", …" : "")): "
                + "`nsinspect adopt --auto` names them in \(census.options.netnsDirectory).")
        }
        notes += scanNotes(census, verbose: verbose)
        if !notes.isEmpty { out += "\n" + notes.joined(separator: "\n") + "\n" }
        return out
    }

    /// What the scan could not read. A refused read of pid 1's namespace, where the host namespace was
    /// found through kthreadd (a sandbox's or a VM's init that holds more privileges than root here),
    /// changes nothing in the table: it is said only with --verbose. Other refused reads may hide a
    /// namespace: they are said once, with why, and --verbose lists them.
    static func scanNotes(_ census: Census, verbose: Bool) -> [String] {
        let denied = census.problems.denied
        let initOnly = denied.filter { $0.path.hasPrefix(census.options.procRoot + "/1/") }
        let mattering = denied.count - initOnly.count
        var notes: [String] = []
        if verbose {
            notes.append("\nScan: \(census.problems.vanishedProcesses) process(es) exited mid-scan, \(denied.count) read(s) refused.")
            for d in denied.prefix(50) { notes.append("  \(d.path): \(d.errno)") }
            if !initOnly.isEmpty, census.hostID != nil {
                notes.append("  (pid 1 is not readable even as root: an init with more privileges than nsinspect, as in a sandbox or VM; "
                             + "the host namespace is kthreadd's, and nothing else is missing for it)")
            }
        } else if mattering > 0 {
            notes.append("\(mattering) read\(mattering == 1 ? " was" : "s were") refused (EACCES: processes or mounts that run with more "
                         + "privileges than nsinspect); namespaces only they hold may be missing. `--verbose` lists them.")
        }
        return notes
    }

    static func json(_ census: Census, facts: [UInt64: NamespaceFacts]) -> JSON {
        var list: [JSON] = []
        list.reserveCapacity(census.namespaces.count)
        for ns in census.namespaces {
            var o = JSONObjectBuilder()
            o.add("ns", .int(Int64(ns.id.inode)))
            o.add("type", "net")
            o.add("nprocs", ns.processCount)
            o.add("pid", ns.firstProcess.map { .int(Int64($0.pid)) } ?? .null)
            o.add("command", ns.firstProcess.map { .string($0.command) } ?? .null)
            let found = facts[ns.id.inode]
            switch found?.nsid {
            case .assigned(let id): o.add("netnsid", .int(Int64(id)))
            case .unassigned: o.add("netnsid", "unassigned")
            case nil: o.add("netnsid", .null)
            }
            o.add("reference", ns.reference)
            if let details = found?.interfaces {
                o.add("interfaces", strings: details.names)
                o.add("addresses", strings: details.addresses)
            }
            o.add("names", .array(ns.names.map { name in
                var n = JSONObjectBuilder()
                n.add("kind", name.kind.rawValue)
                n.add("name", name.name)
                n.add("reference", name.reference)
                if name.isSymlink { n.add("symlink", true) }
                n.add("detail", name.detail)
                return n.json
            }))
            o.add("unnamed", ns.isUnnamed)
            o.add("ip_netns", ns.hasNetnsName)
            o.add("host", ns.isHost)
            o.add("pids", .array(ns.pids.map { .int(Int64($0)) }))
            var h = JSONObjectBuilder()
            h.add("mounts", .array(ns.mounts.map { m in
                var x = JSONObjectBuilder()
                x.add("path", m.path)
                x.add("mntns", m.mountNamespace)
                x.add("pid", m.viaPID)
                x.add("own_mntns", m.inOwnMountNamespace)
                return x.json
            }))
            h.add("fds", .array(ns.fdHolders.map { f in
                var x = JSONObjectBuilder()
                x.add("pid", f.pid); x.add("fd", f.fd); x.add("command", f.command)
                return x.json
            }))
            h.add("sockets", .array(ns.socketHolders.map { s in
                var x = JSONObjectBuilder()
                x.add("pid", s.pid); x.add("fd", s.fd); x.add("socket", s.socketInode); x.add("command", s.command)
                return x.json
            }))
            h.add("threads", .array(ns.threads.map { t in
                var x = JSONObjectBuilder()
                x.add("pid", t.pid); x.add("tid", t.tid); x.add("command", t.command)
                return x.json
            }))
            o.add("holders", h.json)
            list.append(o.json)
        }
        var root = JSONObjectBuilder()
        root.add("namespaces", .array(list))
        root.add("broken_names", .array(census.brokenNames.map { b in
            var x = JSONObjectBuilder()
            x.add("name", b.name); x.add("path", b.path); x.add("problem", b.problem.description)
            return x.json
        }))
        var scan = JSONObjectBuilder()
        scan.add("vanished_processes", census.problems.vanishedProcesses)
        scan.add("denied", .array(census.problems.denied.map { d in
            var x = JSONObjectBuilder()
            x.add("path", d.path); x.add("error", d.errno.description)
            return x.json
        }))
        root.add("scan", scan.json)
        return root.json
    }
}
