#if canImport(Glibc)
import Glibc
#endif

/// Reads the names in /var/run/netns, the directory `ip netns` lists: bind mounts of namespace files
/// (found in mountinfo), symlinks into /proc (what users make with `ln -s /proc/PID/ns/net`), and what
/// is broken there (dangling symlinks, empty placeholders left by a failed `ip netns add`).
struct NetnsDirectory {
    let options: CensusOptions

    struct Result {
        var names: [(inode: UInt64, name: NamespaceName)] = []
        var broken: [BrokenName] = []
    }

    /// The directory as mount points in mountinfo spell it (/var/run is usually a symlink to /run).
    var mountPointDirectories: [String] {
        if options.live {
            var dirs = [options.netnsDirectory]
            if let real = realpath(options.netnsDirectory, nil) {
                dirs.append(String(cString: real))
                free(real)
            }
            return dirs
        }
        return ["/run/netns", "/var/run/netns"]
    }

    /// - Parameter ownMounts: nsfs mounts of network namespaces in nsinspect's own mount namespace.
    func read(ownMounts: [NSFSMount]) -> Result {
        var result = Result()
        let dirs = Set(mountPointDirectories)
        var mountedName: [String: UInt64] = [:]
        for mount in ownMounts {
            let (parent, base) = splitPath(mount.mountPoint)
            if dirs.contains(parent) { mountedName[base] = mount.inode }
        }
        guard case .success(let entries) = Sys.listDirectory(options.netnsDirectory) else { return result }
        for entry in entries.sorted(by: { $0.name < $1.name }) {
            let path = options.netnsDirectory + "/" + entry.name
            var type = entry.type
            if type == UInt8(DT_UNKNOWN), case .success(let st) = Sys.lstat(path) {
                type = (st.st_mode & S_IFMT) == S_IFLNK ? Sys.DirectoryEntry.symlink
                    : (st.st_mode & S_IFMT) == S_IFDIR ? Sys.DirectoryEntry.directory : Sys.DirectoryEntry.regular
            }
            if let inode = mountedName[entry.name] {
                result.names.append((inode, NamespaceName(kind: .netns, name: entry.name)))
            } else if type == Sys.DirectoryEntry.symlink {
                readSymlink(name: entry.name, path: path, ownMounts: ownMounts, into: &result)
            } else if type == Sys.DirectoryEntry.regular {
                result.broken.append(placeholderOrFile(name: entry.name, path: path))
            } else {
                let what = type == Sys.DirectoryEntry.directory ? "a directory" : "a special file"
                result.broken.append(BrokenName(name: entry.name, path: path, problem: .notANamespace(what)))
            }
        }
        return result
    }

    private func placeholderOrFile(name: String, path: String) -> BrokenName {
        if case .success(let st) = Sys.stat(path), st.st_size > 0 {
            return BrokenName(name: name, path: path, problem: .notANamespace("a file with \(st.st_size) bytes"))
        }
        return BrokenName(name: name, path: path, problem: .placeholder)
    }

    /// A symlink names a namespace if its target is a namespace link (`/proc/PID/ns/net`, an fd, a task)
    /// or a namespace bind mount; a target that no longer exists is a dangling name.
    private func readSymlink(name: String, path: String, ownMounts: [NSFSMount], into result: inout Result) {
        guard case .success(let target) = Sys.readLink(path) else { return }
        let detail = target
        let mapped = mapIntoProc(target)
        switch Sys.readLink(mapped) {
        case .success(let text):
            if let inode = NamespaceID.inode(fromLink: text) {
                result.names.append((inode, NamespaceName(kind: .netns, name: name, isSymlink: true, detail: detail)))
            } else {
                result.broken.append(BrokenName(name: name, path: path, problem: .notANamespace("a symlink to \(target)")))
            }
            return
        case .failure(let e) where e == .ENOENT || e == .ESRCH:
            result.broken.append(BrokenName(name: name, path: path, problem: .danglingSymlink(target: target)))
            return
        case .failure:
            break
        }
        // Not a magic link: maybe a bind-mounted namespace file elsewhere (/run/docker/netns/ID).
        if let mount = ownMounts.last(where: { $0.mountPoint == target }) {
            result.names.append((mount.inode, NamespaceName(kind: .netns, name: name, isSymlink: true, detail: detail)))
        } else if case .failure(let e) = Sys.stat(path), e == .ENOENT {
            result.broken.append(BrokenName(name: name, path: path, problem: .danglingSymlink(target: target)))
        } else {
            result.broken.append(BrokenName(name: name, path: path, problem: .notANamespace("a symlink to \(target)")))
        }
    }

    /// A target under /proc refers to the proc root the census reads (a fixture tree in tests).
    private func mapIntoProc(_ target: String) -> String {
        guard target.hasPrefix("/proc/") else { return target }
        return options.procRoot + target.dropFirst("/proc".count)
    }
}

/// Splits `/a/b/c` into (`/a/b`, `c`).
func splitPath(_ path: String) -> (parent: String, base: String) {
    guard let slash = path.lastIndex(of: "/") else { return ("", path) }
    let parent = slash == path.startIndex ? "/" : String(path[..<slash])
    return (parent, String(path[path.index(after: slash)...]))
}
