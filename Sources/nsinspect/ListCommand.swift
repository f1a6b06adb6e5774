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

    @Argument(help: "Only these namespaces (NS references); all by default.") var references: [String] = []

    @Flag(help: "Leave out the IFACES and ADDRS columns: no per-namespace queries, just the census (what lsns does).")
    var noInterfaces = false

    @OptionGroup var common: CommonOptions

    func run() throws {
        var census = try Census.scan()
        if !references.isEmpty {
            let selected = try references.map { try census.select(NamespaceReference.parse($0)).id }
            census.namespaces = census.namespaces.filter { selected.contains($0.id) }
        }
        let open = OpenNamespaces(census)
        let nsids = NamespaceDetails.nsids(open)
        let interfaces = noInterfaces ? [:] : NamespaceDetails.interfaces(open)
        if common.json {
            Output.json(ListRendering.json(census, nsids: nsids, interfaces: interfaces))
        } else {
            Output.write(ListRendering.table(census, nsids: nsids, interfaces: interfaces, verbose: common.verbose))
        }
    }
}

/// Facts about census namespaces that need the kernel: nsids (RTM_GETNSID from the host namespace) and
/// each namespace's interfaces and global addresses (a link and an address dump in each).
enum NamespaceDetails {
    /// The nsid the host namespace uses for each open namespace, by inode, asked with the descriptors
    /// already open (NETNSA_FD) in one batched exchange.
    static func nsids(_ open: OpenNamespaces) -> [UInt64: NSID] {
        guard let socket = try? hostSocket(open.census),
            let answers = try? socket.nsids(of: open.handles)
        else { return [:] }
        var result: [UInt64: NSID] = [:]
        for (ns, answer) in zip(open.namespaces, answers) {
            if case .success(let id) = answer { result[ns.id.inode] = id }
        }
        return result
    }

    struct Interfaces {
        var names: [String]
        var addresses: [String]
    }

    /// Interface names (without lo) and global addresses of every open namespace, by inode.
    static func interfaces(_ open: OpenNamespaces) -> [UInt64: Interfaces] {
        guard let snapshots = try? open.snapshots([.interfaceNames, .addresses]) else { return [:] }
        var result: [UInt64: Interfaces] = [:]
        for (ns, snapshot) in zip(open.namespaces, snapshots) {
            guard case .success(let s) = snapshot else { continue }
            let names = (s.interfaceNames ?? []).filter { $0 != "lo" }
            let addresses = s.state.addresses.filter { $0.scope == 0 }.compactMap { $0.prefix?.description }
            result[ns.id.inode] = Interfaces(names: names, addresses: addresses)
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

    /// At most `limit` items joined by commas, with "+N" for the rest.
    static func abbreviated(_ items: [String], _ limit: Int) -> String {
        if items.isEmpty { return "-" }
        if items.count <= limit { return items.joined(separator: ",") }
        return items.prefix(limit).joined(separator: ",") + ",+\(items.count - limit)"
    }

    static func table(_ census: Census, nsids: [UInt64: NSID], interfaces: [UInt64: NamespaceDetails.Interfaces],
                      verbose: Bool) -> String {
        let withInterfaces = !interfaces.isEmpty
        var table = withInterfaces
            ? Table("NS", "NSID", "NPROCS", "PID", "COMMAND", "NAMES", "IFACES", "ADDRS", "HOLDERS")
            : Table("NS", "NSID", "NPROCS", "PID", "COMMAND", "NAMES", "HOLDERS")
        for ns in census.namespaces {
            let command = ns.firstProcess.map { String($0.command.prefix(32)) } ?? "-"
            var row = [String(ns.id.inode), nsids[ns.id.inode]?.description ?? "?", String(ns.processCount),
                       ns.firstProcess.map { String($0.pid) } ?? "-", command, names(ns)]
            if withInterfaces {
                let details = interfaces[ns.id.inode]
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

    static func json(_ census: Census, nsids: [UInt64: NSID], interfaces: [UInt64: NamespaceDetails.Interfaces]) -> JSON {
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
            if let details = interfaces[ns.id.inode] {
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
