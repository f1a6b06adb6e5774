#if canImport(Glibc)
import Glibc
#endif
import CShim

extension Census {
    /// Finds every network namespace reachable from the proc root, however it is held: by processes,
    /// threads, nsfs bind mounts in any mount namespace seen, open descriptors and (live only) sockets,
    /// and attaches every name it is known by. Processes that exit mid-scan are normal; refused reads are
    /// counted in `problems`, never fatal.
    public static func scan(_ options: CensusOptions = CensusOptions()) throws(OperationError) -> Census {
        var scanner = ProcScanner(procRoot: options.procRoot, live: options.live, excludeOwnHolders: options.excludeOwnHolders)
        defer { scanner.deallocate() }
        let device = options.live ? NamespaceHandle.nsfsDevice : 0
        func nsID(_ inode: UInt64) -> NamespaceID { NamespaceID(device: device, inode: inode) }

        var byInode: [UInt64: NetNamespace] = [:]
        func touch(_ inode: UInt64) {
            if byInode[inode] == nil { byInode[inode] = NetNamespace(id: nsID(inode)) }
        }

        // 1. Processes, their threads and descriptors.
        var records: [ProcessRecord] = []
        let pids = try scanner.pids()
        records.reserveCapacity(pids.count)
        for pid in pids {
            guard let record = scanner.scan(pid: pid, threads: options.scanThreads, descriptors: options.scanDescriptors)
            else { continue }
            touch(record.netInode)
            byInode[record.netInode]!.pids.append(pid)
            records.append(record)
        }

        var commands: [Int32: String] = [:]
        func command(_ pid: Int32) -> String {
            if let known = commands[pid] { return known }
            let c = scanner.command(pid: pid)
            commands[pid] = c
            return c
        }

        // The host namespace is pid 1's; where pid 1 cannot be read (a sandbox whose init holds more
        // capabilities than we do), kthreadd's, since kernel threads always live in the initial namespace.
        let hostInode = records.first(where: { $0.pid == 1 })?.netInode
            ?? records.first(where: { $0.pid == 2 && scanner.command(pid: 2) == "kthreadd" })?.netInode
        let ownInode: UInt64?
        let ownMountInode: UInt64?
        if options.live {
            ownInode = Sys.readLink("/proc/self/ns/net").success.flatMap { NamespaceID.inode(fromLink: $0) }
            ownMountInode = Sys.readLink("/proc/self/ns/mnt").success.flatMap { NamespaceID.inode(fromLink: $0, type: "mnt") }
        } else {
            ownInode = hostInode
            ownMountInode = records.first?.mountInode
        }

        // 2. nsfs bind mounts, once per distinct mount namespace.
        var mountNamespaces: [UInt64: Int32] = [:]
        for record in records {
            if let m = record.mountInode, mountNamespaces[m] == nil { mountNamespaces[m] = record.pid }
        }
        var ownMounts: [NSFSMount] = []
        var registry = ContainerRegistry(dockerRoot: options.dockerRoot, podmanRoot: options.podmanRoot, procRoot: options.procRoot)
        var dockerSandboxes: [UInt64: NamespaceName] = [:]
        for (mountInode, pid) in mountNamespaces.sorted(by: { $0.value < $1.value }) {
            let own = mountInode == ownMountInode
            let mounts: [NSFSMount]
            if own, options.live, let known = options.ownMounts {
                mounts = known
            } else {
                let path = "\(options.procRoot)/\(pid)/mountinfo"
                switch Sys.readFile(path) {
                case .success(let bytes): mounts = MountInfo.networkNamespaceMounts(bytes)
                case .failure(let e): scanner.note(e, path); continue
                }
            }
            if own { ownMounts = mounts }
            for mount in mounts {
                touch(mount.inode)
                byInode[mount.inode]!.mounts.append(MountHolder(path: mount.mountPoint, mountNamespace: mountInode,
                                                                viaPID: pid, inOwnMountNamespace: own))
                if let docker = registry.dockerName(forMount: mount.mountPoint) {
                    if docker.isSandboxOnly { dockerSandboxes[mount.inode] = docker.name } else { byInode[mount.inode]!.names.append(docker.name) }
                }
            }
        }
        if options.live && ownMountInode != nil && !mountNamespaces.keys.contains(ownMountInode!) {
            // nsinspect's own mount namespace is always read, even if no listed process shares it.
            ownMounts = options.ownMounts ?? MountInfo.ownNetworkNamespaceMounts()
        }

        // 3. Descriptors: namespace files held open, threads elsewhere, sockets of another namespace
        // (nsinspect's own were not read: see ProcScanner.scan).
        var socketCache: [UInt64: UInt64] = [:]
        for record in records {
            for held in record.namespaceFDs {
                touch(held.netInode)
                byInode[held.netInode]!.fdHolders.append(FDHolder(pid: record.pid, fd: held.fd, command: command(record.pid)))
            }
            for thread in record.threads {
                touch(thread.netInode)
                byInode[thread.netInode]!.threads.append(ThreadHolder(pid: record.pid, tid: thread.tid, command: command(record.pid)))
            }
            if options.live && !record.socketFDs.isEmpty {
                for socket in scanner.socketNamespaces(pid: record.pid, sockets: record.socketFDs, cache: &socketCache)
                where socket.netInode != record.netInode {
                    touch(socket.netInode)
                    byInode[socket.netInode]!.socketHolders.append(
                        SocketHolder(pid: record.pid, fd: socket.fd, socketInode: socket.socketInode, command: command(record.pid)))
                }
            }
        }

        // 4. Names: /var/run/netns, the host, Mininet and container runtimes.
        let directory = NetnsDirectory(options: options).read(ownMounts: ownMounts)
        for (inode, name) in directory.names {
            touch(inode)
            byInode[inode]!.names.append(name)
        }
        if let hostInode {
            byInode[hostInode]!.isHost = true
            byInode[hostInode]!.names.append(NamespaceName(kind: .host, name: "host"))
        }
        if let ownInode, byInode[ownInode] != nil { byInode[ownInode]!.isOwn = true }
        for (inode, ns) in byInode where inode != hostInode {
            // A container's or Mininet host's processes say who they are; the first that does is enough.
            for pid in ns.pids.prefix(8) {
                if let name = processName(pid: pid, scanner: scanner, registry: &registry, askParent: pid == ns.pids.first) {
                    byInode[inode]!.names.append(name)
                    break
                }
            }
        }

        // A Docker sandbox id from a bind mount's path names only a container not named otherwise.
        for (inode, sandbox) in dockerSandboxes where !byInode[inode]!.names.contains(where: { $0.kind == .docker }) {
            byInode[inode]!.names.append(sandbox)
        }

        // 5. Order: namespaces by inode, names by kind, each process's command read once.
        var namespaces = Array(byInode.values)
        for i in namespaces.indices {
            var seen = Set<NamespaceName>()
            namespaces[i].names = namespaces[i].names.sorted().filter { seen.insert($0).inserted }
            if let first = namespaces[i].pids.first {
                namespaces[i].firstProcess = ProcessRef(pid: first, command: scanner.commandLine(pid: first))
            }
        }
        namespaces.sort { $0.id < $1.id }
        return Census(namespaces: namespaces, brokenNames: directory.broken, problems: scanner.problems,
                      hostID: hostInode.map(nsID), ownID: ownInode.map(nsID), options: options)
    }

    /// A name from a process's command line (Mininet), its cgroup (containers), or the runtime process
    /// that started it (its parent: conmon, a containerd shim, systemd-nspawn), for runtimes whose
    /// cgroups say nothing (nspawn without machined, a daemon with its own cgroup parent).
    private static func processName(pid: Int32, scanner: ProcScanner, registry: inout ContainerRegistry,
                                    askParent: Bool) -> NamespaceName? {
        if let cmdline = scanner.rawCommandLine(pid: pid), let host = MininetName.parse(cmdline: cmdline) {
            return NamespaceName(kind: .mininet, name: host)
        }
        guard case .success(let cgroup) = Sys.readFile("\(scanner.procRoot)/\(pid)/cgroup", limit: 1 << 16, shortReadEnds: true)
        else { return nil }
        // A cgroup that names the container is enough: the registry already asks the runtime's processes
        // (dockerd's data root, conmon's -c/-n) for an id its files do not know.
        if ContainerRef.mayName(cgroup: cgroup), let ref = ContainerRef.parse(cgroup: String(decoding: cgroup, as: UTF8.self)) {
            return registry.name(for: ref)
        }
        guard askParent, ContainerRef.mayHaveRuntimeParent(cgroup: cgroup), let parent = scanner.parentPID(pid: pid), parent > 1
        else { return nil }
        return registry.nameFromParent(of: pid, parent: parent, parentCommand: scanner.command(pid: parent))
    }
}

extension Census {
    /// Opens a census namespace through whichever holder still exists (a process, a mount, a held fd, a
    /// thread, a socket), and checks that what was opened is the same namespace (inodes can be reused).
    ///
    /// With `quick`, files are opened with one open(2) and one fstat(2) (the census already knows they
    /// are network namespaces), for commands that open hundreds of namespaces just to ask about them.
    public func open(_ ns: NetNamespace, quick: Bool = false) throws(OperationError) -> NamespaceHandle {
        var lastError: OperationError?
        for holder in holderPaths(ns) {
            do throws(OperationError) {
                let handle: NamespaceHandle
                switch holder {
                case .process(let pid): handle = try NamespaceHandle.of(pid: pid)
                case .file(let path, let origin) where quick:
                    switch Sys.open(path, O_RDONLY) {
                    case .success(let fd): handle = try NamespaceHandle(trusting: fd, expected: ns.id, origin: origin)
                    case .failure(let e): throw OperationError("", origin, "open: \(e)", errno: e)
                    }
                case .file(let path, let origin): handle = try NamespaceHandle.open(path: path, origin: origin)
                case .socket(let socket): handle = try Census.openThroughSocket(socket)
                }
                if handle.id.inode == ns.id.inode { return handle }
                lastError = OperationError("", ns.reference, "holder now refers to another namespace (\(handle.id))")
            } catch {
                lastError = error
            }
        }
        throw OperationError("", ns.reference, "namespace is gone"
                             + (lastError.map { " (last holder: \($0.reason))" } ?? ""))
    }

    /// Ways to open a namespace, best first.
    enum HolderPath {
        case process(Int32)
        case file(path: String, origin: String)
        case socket(SocketHolder)
    }

    func holderPaths(_ ns: NetNamespace) -> [HolderPath] {
        let proc = options.procRoot
        var paths: [HolderPath] = ns.pids.prefix(3).map { .process($0) }
        for mount in ns.mounts {
            let path = mount.inOwnMountNamespace ? mount.path : "\(proc)/\(mount.viaPID)/root\(mount.path)"
            paths.append(.file(path: path, origin: mount.path))
        }
        for holder in ns.fdHolders {
            paths.append(.file(path: "\(proc)/\(holder.pid)/fd/\(holder.fd)", origin: "fd \(holder.fd) of pid \(holder.pid)"))
        }
        for thread in ns.threads {
            paths.append(.file(path: "\(proc)/\(thread.pid)/task/\(thread.tid)/ns/net", origin: "thread \(thread.tid)"))
        }
        paths += ns.socketHolders.map { .socket($0) }
        return paths
    }

    static func openThroughSocket(_ holder: SocketHolder) throws(OperationError) -> NamespaceHandle {
        let origin = "socket fd \(holder.fd) of pid \(holder.pid)"
        let pidfd = nsi_pidfd_open(holder.pid, 0)
        guard pidfd >= 0 else { throw OperationError("", origin, call: "pidfd_open", errno: .current) }
        defer { Glibc.close(pidfd) }
        let copy = nsi_pidfd_getfd(pidfd, holder.fd, 0)
        guard copy >= 0 else { throw OperationError("", origin, call: "pidfd_getfd", errno: .current) }
        defer { Glibc.close(copy) }
        let nsfd = nsi_socket_get_netns(copy)
        guard nsfd >= 0 else { throw OperationError("", origin, call: "ioctl(SIOCGSKNS)", errno: .current) }
        return try NamespaceHandle(adopting: nsfd, origin: origin)
    }
}

extension Result {
    var success: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}
