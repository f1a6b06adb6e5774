#if canImport(Glibc)
import Glibc
#endif
import CShim

/// Names in /var/run/netns, made and removed the way iproute2's `ip netns add`/`delete` do it
/// (ip/ipnetns.c): lock the directory, make it a shared mount so unmounts propagate to other mount
/// namespaces, create an exclusive placeholder, bind last, undo every step on failure, check the result.
public struct NetnsNames: Sendable {
    public let directory: String
    public let operation: String

    public init(directory: String = "/var/run/netns", operation: String = "adopt") {
        self.directory = directory
        self.operation = operation
    }

    /// Why `name` cannot be a namespace name, or nil if it can. Rules: not empty, at most NAME_MAX bytes,
    /// no `/`, not `.` or `..`, no control characters, no leading `-` (it would read as an option).
    public static func validationProblem(_ name: String) -> String? {
        if name.isEmpty { return "empty name" }
        if name.utf8.count > Int(NAME_MAX) { return "name longer than \(NAME_MAX) bytes" }
        if name.contains("/") { return "name contains '/'" }
        if name == "." || name == ".." { return "'\(name)' is not a name" }
        if name.hasPrefix("-") { return "name starts with '-'" }
        if name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) { return "name contains a control character" }
        return nil
    }

    public func validate(_ name: String) throws(OperationError) {
        if let problem = NetnsNames.validationProblem(name) {
            throw OperationError(operation, printable(name), "invalid name: \(problem)")
        }
    }

    private func printable(_ name: String) -> String {
        name.isEmpty ? "\"\"" : String(name.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// What an entry of the directory is.
    public enum Entry: Equatable, Sendable {
        case absent
        /// A namespace file mounted there.
        case bindMount(inode: UInt64)
        /// A symlink; `inode` is the namespace it reaches now, nil if dangling.
        case symlink(target: String, inode: UInt64?)
        /// An empty regular file with nothing mounted.
        case placeholder
        /// Anything else: not a namespace name, never removed.
        case other(String)

        public var isNamespaceName: Bool {
            switch self {
            case .bindMount, .placeholder: true
            case .symlink(let target, let inode): inode != nil || Entry.looksLikeNamespaceTarget(target)
            case .absent, .other: false
            }
        }

        /// Targets users and tools point namespace symlinks at: /proc/PID/ns/net,
        /// /proc/PID/task/TID/ns/net, /proc/PID/fd/N, or a namespace bind mount directory.
        static func looksLikeNamespaceTarget(_ target: String) -> Bool {
            let parts = target.split(separator: "/")
            guard parts.first == "proc", parts.count >= 3 else {
                return target.hasPrefix("/run/docker/netns/") || target.hasPrefix("/var/run/docker/netns/")
                    || target.hasPrefix("/run/netns/") || target.hasPrefix("/var/run/netns/")
            }
            return parts.suffix(2) == ["ns", "net"] || (parts.count == 4 && parts[2] == "fd")
        }
    }

    public func entry(_ name: String) -> Entry {
        let p = path(name)
        guard case .success(let lst) = Sys.lstat(p) else { return .absent }
        switch lst.st_mode & S_IFMT {
        case S_IFLNK:
            let target = Sys.readLink(p).success ?? "?"
            if case .success(let st) = Sys.stat(p), UInt64(st.st_dev) == NamespaceHandle.nsfsDevice {
                return .symlink(target: target, inode: UInt64(st.st_ino))
            }
            return .symlink(target: target, inode: nil)
        case S_IFREG:
            if UInt64(lst.st_dev) == NamespaceHandle.nsfsDevice { return .bindMount(inode: UInt64(lst.st_ino)) }
            return lst.st_size == 0 ? .placeholder : .other("a file with \(lst.st_size) bytes")
        case S_IFDIR: return .other("a directory")
        default: return .other("a special file")
        }
    }

    /// Holds flock(LOCK_EX) on the directory, as iproute2 does around its changes, while `body` runs.
    private func locked<T>(_ body: () throws(OperationError) -> T) throws(OperationError) -> T {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw OperationError(operation, directory, call: "mkdir", errno: .current)
        }
        let lockfd: Int32
        switch Sys.open(directory, O_RDONLY | O_DIRECTORY) {
        case .success(let fd): lockfd = fd
        case .failure(let e): throw OperationError(operation, directory, call: "open", errno: e)
        }
        defer { Sys.close(lockfd) }
        guard nsi_flock_exclusive(lockfd) == 0 else {
            throw OperationError(operation, directory, call: "flock", errno: .current)
        }
        return try body()
    }

    /// Makes the directory a shared mount point (binding it onto itself first when it is not a mount
    /// point yet, which mount reports as EINVAL), so a later unmount reaches every mount namespace.
    private func makeShared() throws(OperationError) {
        var madeMountPoint = false
        while nsi_make_shared_rec(directory) != 0 {
            let e = Errno.current
            guard e == .EINVAL, !madeMountPoint else {
                throw OperationError(operation, directory, call: "mount --make-rshared", errno: e)
            }
            guard nsi_bind_mount_rec(directory, directory) == 0 else {
                throw OperationError(operation, directory, call: "mount --rbind", errno: .current)
            }
            madeMountPoint = true
        }
    }

    /// Removes an existing namespace name for `--force`; refuses anything that is not one.
    private func clear(_ name: String, force: Bool) throws(OperationError) {
        let existing = entry(name)
        if existing == .absent { return }
        guard force else { throw OperationError(operation, path(name), "name exists (use --force to replace)") }
        guard existing.isNamespaceName else {
            throw OperationError(operation, path(name), "exists and is not a namespace name (\(existing)); not replaced")
        }
        try remove(name, existing)
    }

    /// Gives `handle`'s namespace the name `name` with a bind mount of its descriptor; returns the path.
    @discardableResult
    public func bind(_ handle: NamespaceHandle, as name: String, force: Bool = false) throws(OperationError) -> String {
        try validate(name)
        let target = path(name)
        return try locked { () throws(OperationError) in
            try clear(name, force: force)
            try makeShared()
            switch Sys.open(target, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0) {
            case .success(let fd): Sys.close(fd)
            case .failure(let e):
                throw OperationError(operation, target, e == .EEXIST ? "name exists (use --force to replace)" : "create: \(e)", errno: e)
            }
            guard nsi_bind_mount("/proc/self/fd/\(handle.fd)", target) == 0 else {
                let e = Errno.current
                unlink(target)
                throw OperationError(operation, target, call: "mount", errno: e)
            }
            // The name must now reach exactly the namespace that was asked for.
            guard case .success(let st) = Sys.stat(target), UInt64(st.st_ino) == handle.id.inode,
                UInt64(st.st_dev) == handle.id.device
            else {
                _ = nsi_umount_detach(target)
                unlink(target)
                throw OperationError(operation, target, "mounted file is not \(handle.id); undone")
            }
            return target
        }
    }

    /// Names a namespace with a symlink to `target` (e.g. /proc/PID/ns/net), which dies with whatever
    /// `target` depends on. Checks that the link reaches `expected`.
    @discardableResult
    public func symlink(to linkTarget: String, as name: String, expected: NamespaceID, force: Bool = false)
        throws(OperationError) -> String
    {
        try validate(name)
        let target = path(name)
        return try locked { () throws(OperationError) in
            try clear(name, force: force)
            guard Glibc.symlink(linkTarget, target) == 0 else {
                let e = Errno.current
                throw OperationError(operation, target, e == .EEXIST ? "name exists (use --force to replace)" : "symlink: \(e)", errno: e)
            }
            guard case .success(let st) = Sys.stat(target), UInt64(st.st_ino) == expected.inode else {
                unlink(target)
                throw OperationError(operation, target, "\(linkTarget) no longer leads to \(expected); undone")
            }
            return target
        }
    }

    /// What `forget` did.
    public enum Removal: Equatable, Sendable {
        case unmounted
        case symlinkRemoved(target: String)
        case placeholderRemoved
    }

    /// Removes a namespace name: umount2(MNT_DETACH) and unlink for a bind mount, unlink for a symlink
    /// or an empty placeholder. Anything else in the directory is refused and left alone. The namespace
    /// itself lives on while something else holds it.
    @discardableResult
    public func forget(_ name: String) throws(OperationError) -> Removal {
        try validate(name)
        return try locked { () throws(OperationError) in
            let existing = entry(name)
            guard existing != .absent else { throw OperationError(operation, path(name), "no such name") }
            guard existing.isNamespaceName else {
                throw OperationError(operation, path(name), "not a namespace name (\(existing)); left alone")
            }
            return try remove(name, existing)
        }
    }

    @discardableResult
    private func remove(_ name: String, _ existing: Entry) throws(OperationError) -> Removal {
        let target = path(name)
        switch existing {
        case .bindMount:
            // A name mounted twice needs two unmounts; stop once no namespace is mounted there.
            for _ in 0..<16 {
                guard case .bindMount = entry(name) else { break }
                guard nsi_umount_detach(target) == 0 else {
                    throw OperationError(operation, target, call: "umount2", errno: .current)
                }
            }
            guard unlink(target) == 0 else { throw OperationError(operation, target, call: "unlink", errno: .current) }
            return .unmounted
        case .symlink(let linkTarget, _):
            guard unlink(target) == 0 else { throw OperationError(operation, target, call: "unlink", errno: .current) }
            return .symlinkRemoved(target: linkTarget)
        case .placeholder:
            guard unlink(target) == 0 else { throw OperationError(operation, target, call: "unlink", errno: .current) }
            return .placeholderRemoved
        case .absent, .other:
            throw OperationError(operation, target, "not a namespace name; left alone")
        }
    }
}
