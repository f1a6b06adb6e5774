#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CShim
import JSONKit
import Netlink
import ProcNS

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

    @OptionGroup var common: CommonOptions

    func run() throws {
        _ = nsi_raise_nofile_limit()
        let census = try Census.scan()
        let nsids = NamespaceDetails.nsids(census)
        if common.json {
            Output.json(ListRendering.json(census, nsids: nsids))
        } else {
            Output.write(ListRendering.table(census, nsids: nsids, verbose: common.verbose))
        }
    }
}

/// Facts about census namespaces that need the kernel: nsids (RTM_GETNSID from the host namespace).
enum NamespaceDetails {
    /// The nsid the host namespace uses for each census namespace, by inode; absent when the namespace
    /// could not be opened (it vanished) or the host could not be asked.
    static func nsids(_ census: Census) -> [UInt64: NSID] {
        guard let socket = try? hostSocket(census) else { return [:] }
        // Namespaces with a process are asked about by pid (NETNSA_PID): nothing to open. The others
        // through a descriptor of whatever holds them (NETNSA_FD).
        var targets: [NSIDRequests.Target] = []
        var inodes: [UInt64] = []
        var handles: [NamespaceHandle] = []
        for ns in census.namespaces {
            if let pid = ns.pids.first {
                targets.append(.pid(pid))
            } else if let handle = try? census.open(ns, quick: true) {
                handles.append(handle)
                targets.append(.fd(handle.fd))
            } else {
                continue
            }
            inodes.append(ns.id.inode)
        }
        guard let answers = try? socket.nsids(of: targets) else { return [:] }
        var result: [UInt64: NSID] = [:]
        var retry: [NetNamespace] = []
        for (i, answer) in answers.enumerated() {
            switch answer {
            case .success(let id): result[inodes[i]] = id
            case .failure:
                // A process that exited since the scan: ask again through any other holder.
                if case .pid = targets[i], let ns = census.namespace(inode: inodes[i]) { retry.append(ns) }
            }
        }
        for ns in retry {
            if let handle = try? census.open(ns), let id = try? socket.nsid(of: handle) { result[ns.id.inode] = id }
        }
        return result
    }

    /// A route socket in the host namespace (pid 1's), opened there if nsinspect runs elsewhere.
    static func hostSocket(_ census: Census) throws -> NetlinkSocket {
        if census.hostID == nil || census.hostID == census.ownID { return try NetlinkSocket.open() }
        return try NetlinkSocket.open(in: NamespaceHandle.host(), label: "host")
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

    static func names(_ ns: NetNamespace) -> String {
        guard !ns.names.isEmpty else { return "*" }
        return ns.names.map { $0.reference + ($0.isSymlink ? "(symlink)" : "") }.joined(separator: ",")
    }

    static func table(_ census: Census, nsids: [UInt64: NSID], verbose: Bool) -> String {
        var table = Table("NS", "NSID", "NPROCS", "PID", "COMMAND", "NAMES", "HOLDERS")
        for ns in census.namespaces {
            let command = ns.firstProcess.map { String($0.command.prefix(32)) } ?? "-"
            table.add(String(ns.id.inode), nsids[ns.id.inode]?.description ?? "?", String(ns.processCount),
                      ns.firstProcess.map { String($0.pid) } ?? "-", command, names(ns),
                      holders(ns, census: census).joined(separator: " "))
        }
        var out = table.render()
        if !census.brokenNames.isEmpty {
            out += "\nBroken names in \(census.options.netnsDirectory) (`nsinspect forget NAME` removes them):\n"
            var broken = Table("NAME", "PROBLEM")
            for name in census.brokenNames { broken.add(name.name, name.problem.description) }
            out += broken.render()
        }
        let unnamed = census.namespaces.filter(\.isUnnamed)
        if !unnamed.isEmpty {
            let example = unnamed.first!.reference
            out += "\n* \(unnamed.count) namespace\(unnamed.count == 1 ? " has" : "s have") no name that ip netns, a container runtime or Mininet knows. "
                + "Name one with `nsinspect adopt \(example) NAME`.\n"
        }
        let hidden = census.namespaces.filter { !$0.isUnnamed && !$0.isHost && !$0.hasNetnsName }
        if !hidden.isEmpty {
            let refs = hidden.prefix(4).map(\.reference).joined(separator: ", ")
            out += "\(hidden.count) named namespace\(hidden.count == 1 ? " is" : "s are") invisible to `ip netns` (\(refs)\(hidden.count > 4 ? ", …" : "")): "
                + "`nsinspect adopt --auto` names them in \(census.options.netnsDirectory).\n"
        }
        if verbose {
            out += "\nScan: \(census.problems.vanishedProcesses) process(es) exited mid-scan, \(census.problems.denied.count) read(s) refused.\n"
            for denied in census.problems.denied.prefix(50) { out += "  \(denied.path): \(denied.errno)\n" }
        } else if !census.problems.denied.isEmpty {
            out += "\n\(census.problems.denied.count) read(s) refused (EACCES); `--verbose` lists them.\n"
        }
        return out
    }

    static func json(_ census: Census, nsids: [UInt64: NSID]) -> JSON {
        var list: [JSON] = []
        list.reserveCapacity(census.namespaces.count)
        for ns in census.namespaces {
            var o = JSONObjectBuilder()
            o.add("ns", .int(Int64(ns.id.inode)))
            o.add("type", "net")
            o.add("nprocs", ns.processCount)
            o.add("pid", ns.firstProcess.map { .int(Int64($0.pid)) } ?? .null)
            o.add("command", ns.firstProcess.map { .string($0.command) } ?? .null)
            switch nsids[ns.id.inode] {
            case .assigned(let id): o.add("netnsid", .int(Int64(id)))
            case .unassigned: o.add("netnsid", "unassigned")
            case nil: o.add("netnsid", .null)
            }
            o.add("reference", ns.reference)
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
