/// The one grammar every command uses for a namespace (docs/design.md): a name in /var/run/netns,
/// `pid:1234`, `ino:4026532178` or `net:[4026532178]`, a path to a namespace file, `docker:NAME`,
/// `podman:NAME`, `containerd:ID`, `nspawn:MACHINE`, `mininet:h1`, or `host` (pid 1's namespace).
public enum NamespaceReference: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// A bare word: a /var/run/netns name first, else any other name that matches exactly one namespace.
    case name(String)
    case pid(Int32)
    case inode(UInt64)
    case path(String)
    case qualified(NamespaceName.Kind, String)
    case host

    /// The kinds that may prefix a name, as users type them.
    public static let prefixes: [NamespaceName.Kind] = [.docker, .podman, .containerd, .nspawn, .mininet]

    /// Parses a reference; throws for text that cannot be a reference at all.
    public static func parse(_ text: String) throws(OperationError) -> NamespaceReference {
        guard !text.isEmpty else { throw OperationError("", "\"\"", "empty namespace reference") }
        if text == "host" { return .host }
        if text.contains("/") { return .path(text) }
        if text.hasPrefix("pid:") {
            guard let pid = Int32(text.dropFirst(4)), pid > 0 else {
                throw OperationError("", text, "expected pid:N with N a process id")
            }
            return .pid(pid)
        }
        if text.hasPrefix("ino:") {
            guard let inode = UInt64(text.dropFirst(4)), inode > 0 else {
                throw OperationError("", text, "expected ino:N with N a namespace inode")
            }
            return .inode(inode)
        }
        if text.hasPrefix("net:[") {
            guard let inode = NamespaceID.inode(fromLink: text) else {
                throw OperationError("", text, "expected net:[N] with N a namespace inode")
            }
            return .inode(inode)
        }
        for kind in prefixes where text.hasPrefix(kind.rawValue + ":") {
            let name = String(text.dropFirst(kind.rawValue.count + 1))
            guard !name.isEmpty else { throw OperationError("", text, "expected \(kind.rawValue):NAME") }
            return .qualified(kind, name)
        }
        return .name(text)
    }

    /// A bare word of digits that fits a PID: `adopt 5701 NAME` means the process when no namespace is
    /// called 5701.
    public static func bareProcessID(_ word: String) -> Int32? {
        guard !word.isEmpty, word.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let pid = Int32(word), pid > 0 else { return nil }
        return pid
    }

    public var description: String {
        switch self {
        case .name(let n): n
        case .pid(let p): "pid:\(p)"
        case .inode(let i): "ino:\(i)"
        case .path(let p): p
        case .qualified(let kind, let n): "\(kind.rawValue):\(n)"
        case .host: "host"
        }
    }
}

extension Census {
    /// The census namespaces a reference selects (pure: no system call). Paths and PIDs are matched
    /// through their holders; `resolve` opens them directly instead.
    public func matches(_ reference: NamespaceReference) -> [NetNamespace] {
        switch reference {
        case .host:
            return namespaces.filter(\.isHost)
        case .pid(let pid):
            return namespaces.filter { $0.pids.contains(pid) }
        case .inode(let inode):
            return namespaces.filter { $0.id.inode == inode }
        case .path(let path):
            return namespaces.filter { ns in ns.mounts.contains { $0.path == path } }
        case .qualified(let kind, let name):
            let exact = namespaces.filter { ns in ns.names.contains { $0.kind == kind && $0.name == name } }
            if !exact.isEmpty { return exact }
            // Container ids may be given by a unique prefix, as with `docker inspect`.
            return namespaces.filter { ns in
                ns.names.contains { $0.kind == kind && ($0.detail?.hasPrefix(name) ?? false) && name.count >= 4 }
            }
        case .name(let name):
            let netns = namespaces.filter { ns in ns.names.contains { $0.kind == .netns && $0.name == name } }
            if !netns.isEmpty { return netns }
            let named = namespaces.filter { ns in ns.names.contains { $0.name == name } }
            if !named.isEmpty { return named }
            // A bare number that names nothing is a process id (`nsinspect adopt 5701 scratch`).
            if let pid = NamespaceReference.bareProcessID(name) { return matches(.pid(pid)) }
            return []
        }
    }

    /// What a reference's kind could have been, for the error when it matches nothing: the names of that
    /// kind here (`Mininet hosts here: h1 h2`), at most `limit` of them.
    func candidates(for reference: NamespaceReference, limit: Int = 20) -> String? {
        func list(_ names: [String], _ what: String) -> String? {
            guard !names.isEmpty else { return nil }
            let sorted = Array(Set(names)).sorted()
            let shown = sorted.prefix(limit).joined(separator: " ")
            return "\(what) here: \(shown)" + (sorted.count > limit ? " … (\(sorted.count) in all)" : "")
        }
        switch reference {
        case .qualified(let kind, _):
            let names = namespaces.flatMap { ns in ns.names.filter { $0.kind == kind }.map(\.name) }
            let what: String
            switch kind {
            case .docker: what = "Docker containers"
            case .podman: what = "podman containers"
            case .containerd: what = "containerd containers"
            case .nspawn: what = "systemd-nspawn machines"
            case .mininet: what = "Mininet hosts"
            case .netns, .host: what = "names"
            }
            return list(names, what) ?? "no \(what) here"
        case .name:
            return list(namespaces.flatMap { ns in ns.names.filter { $0.kind != .host }.map(\.reference) }, "names")
        default:
            return nil
        }
    }

    /// Selects exactly one namespace, or says why not: nothing matched (with what would have), or several
    /// did (listing them).
    public func select(_ reference: NamespaceReference) throws(OperationError) -> NetNamespace {
        let found = matches(reference)
        if found.count == 1 { return found[0] }
        if found.isEmpty {
            var reason = "no such namespace"
            switch reference {
            case .name(let name):
                reason += " (not in \(options.netnsDirectory), and no container, Mininet host or lab of that name"
                    + (NamespaceReference.bareProcessID(name).map { ", and no process \($0)" } ?? "") + ")"
            case .qualified(.mininet, let name):
                if let pid = MininetName.process(named: name, procRoot: options.procRoot),
                    let host = hostID, ProcDirectory.namespaceInode(pid: pid, type: "net", procRoot: options.procRoot) == host.inode {
                    throw OperationError("", reference.description, "a Mininet switch or controller (pid \(pid)): it stays in the host namespace; use `host`")
                }
            case .pid(let pid):
                reason = "no process \(pid)"
            default:
                break
            }
            if let candidates = candidates(for: reference) { reason += "; " + candidates }
            throw OperationError("", reference.description, reason)
        }
        let candidates = found.map { ns in
            ns.names.map(\.reference).joined(separator: "/") + " (ino:\(ns.id.inode))"
        }
        throw OperationError("", reference.description,
                             "matches \(found.count) namespaces: \(candidates.joined(separator: ", ")); use ino:N to pick one")
    }
}

/// Turns references into open namespace handles. Names in /var/run/netns, PIDs, paths and `host` are
/// opened directly; the other forms need the census, which is taken once, on first need.
public struct NamespaceResolver {
    public let options: CensusOptions
    private var cachedCensus: Census?

    public init(options: CensusOptions = CensusOptions(), census: Census? = nil) {
        self.options = options
        self.cachedCensus = census
    }

    public mutating func census() throws(OperationError) -> Census {
        if let cachedCensus { return cachedCensus }
        let census = try Census.scan(options)
        cachedCensus = census
        return census
    }

    /// Opens the namespace `text` refers to.
    public mutating func resolve(_ text: String) throws(OperationError) -> NamespaceHandle {
        try resolve(NamespaceReference.parse(text))
    }

    public mutating func resolve(_ reference: NamespaceReference) throws(OperationError) -> NamespaceHandle {
        switch reference {
        case .host:
            return try NamespaceHandle.host()
        case .pid(let pid):
            return try NamespaceHandle.of(pid: pid)
        case .path(let path):
            return try NamespaceHandle.open(path: path)
        case .name(let name):
            let path = options.netnsDirectory + "/" + name
            if NetnsNames.validationProblem(name) == nil, case .success = Sys.lstat(path) {
                do {
                    return try NamespaceHandle.open(path: path, origin: name)
                } catch {
                    throw OperationError("", name, "\(path) is a broken name: \(error.reason)")
                }
            }
            let census = try census()
            do {
                // A bare number that names nothing is the process (`Census.matches`)…
                return try census.open(census.select(reference))
            } catch {
                // …also one the census missed (started after it): opened through its pidfd, like pid:N.
                guard let pid = NamespaceReference.bareProcessID(name), census.matches(reference).isEmpty,
                      let handle = try? NamespaceHandle.of(pid: pid) else { throw error }
                return handle
            }
        case .inode, .qualified:
            let census = try census()
            return try census.open(census.select(reference))
        }
    }
}
