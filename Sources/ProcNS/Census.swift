/// A process that lives in a namespace (its /proc/PID/ns/net points there).
public struct ProcessRef: Hashable, Sendable {
    public let pid: Int32
    public let command: String
    public init(pid: Int32, command: String) {
        self.pid = pid
        self.command = command
    }
}

/// A thread whose namespace differs from its process's (it called setns or unshare alone).
public struct ThreadHolder: Hashable, Sendable {
    public let pid: Int32
    public let tid: Int32
    public let command: String
}

/// An nsfs bind mount that keeps a namespace alive without any process.
public struct MountHolder: Hashable, Sendable {
    /// The mount point as seen in the mount namespace it was read from.
    public let path: String
    /// The inode of that mount namespace.
    public let mountNamespace: UInt64
    /// A process of that mount namespace (to reach the path through /proc/PID/root).
    public let viaPID: Int32
    /// Whether the mount namespace is nsinspect's own, where the path can be opened directly.
    public let inOwnMountNamespace: Bool
}

/// An open descriptor of a process that refers to a namespace file.
public struct FDHolder: Hashable, Sendable {
    public let pid: Int32
    public let fd: Int32
    public let command: String
}

/// A socket that belongs to another namespace than the process holding it (SIOCGSKNS).
public struct SocketHolder: Hashable, Sendable {
    public let pid: Int32
    public let fd: Int32
    public let socketInode: UInt64
    public let command: String
}

/// A name a user knows a namespace by.
public struct NamespaceName: Hashable, Sendable, Comparable {
    public enum Kind: String, Sendable, CaseIterable {
        /// An entry in /var/run/netns, what `ip netns` shows (a bind mount or a symlink).
        case netns
        case docker
        case podman
        case containerd
        case nspawn
        case mininet
        /// The namespace of pid 1.
        case host
    }
    public let kind: Kind
    public let name: String
    /// For `.netns`: whether the entry is a symlink (dies with the process it points into).
    public let isSymlink: Bool
    /// Extra detail: the container id, the symlink target.
    public let detail: String?

    public init(kind: Kind, name: String, isSymlink: Bool = false, detail: String? = nil) {
        self.kind = kind
        self.name = name
        self.isSymlink = isSymlink
        self.detail = detail
    }

    /// The reference that selects this namespace in every command (`web`, `docker:web`, `host`).
    public var reference: String {
        switch kind {
        case .netns: name
        case .host: "host"
        default: "\(kind.rawValue):\(name)"
        }
    }

    public static func < (a: NamespaceName, b: NamespaceName) -> Bool {
        let order = Kind.allCases
        let ia = order.firstIndex(of: a.kind)!, ib = order.firstIndex(of: b.kind)!
        return ia != ib ? ia < ib : a.name < b.name
    }
}

/// An entry in /var/run/netns that does not lead to a live network namespace.
public struct BrokenName: Hashable, Sendable {
    public enum Problem: Hashable, Sendable, CustomStringConvertible {
        /// A symlink whose target no longer exists (the process it pointed into exited).
        case danglingSymlink(target: String)
        /// An empty file where a bind mount should be (a failed or half-finished `ip netns add`).
        case placeholder
        /// Something else: a directory, a file with content, a link to a non-namespace file.
        case notANamespace(String)

        public var description: String {
            switch self {
            case .danglingSymlink(let target): "dangling symlink to \(target)"
            case .placeholder: "empty placeholder, nothing mounted"
            case .notANamespace(let what): "not a namespace: \(what)"
            }
        }
    }
    public let name: String
    public let path: String
    public let problem: Problem
}

/// One network namespace found by the census, with everything that holds it and every name it has.
public struct NetNamespace: Sendable, Identifiable {
    public let id: NamespaceID
    /// PIDs of the processes living in it, ascending.
    public var pids: [Int32] = []
    /// The first (lowest-pid) process, with its command.
    public var firstProcess: ProcessRef?
    public var threads: [ThreadHolder] = []
    public var mounts: [MountHolder] = []
    public var fdHolders: [FDHolder] = []
    public var socketHolders: [SocketHolder] = []
    public var names: [NamespaceName] = []
    public var isHost = false
    public var isOwn = false

    public init(id: NamespaceID) { self.id = id }

    public var processCount: Int { pids.count }

    /// The name to show for it: the first netns name, else the first other name, else nil.
    public var displayName: String? {
        names.first(where: { $0.kind == .netns })?.reference ?? names.sorted().first?.reference
    }

    /// Whether `ip netns` can reach it (it has an entry in /var/run/netns).
    public var hasNetnsName: Bool { names.contains { $0.kind == .netns } }

    /// Whether no tool on the host can name it: no netns name, no container or Mininet name, not the host.
    public var isUnnamed: Bool { names.isEmpty }

    /// The shortest reference that selects it: a name, else `pid:N`, else `ino:N`.
    public var reference: String {
        if let name = displayName { return name }
        if let pid = pids.first { return "pid:\(pid)" }
        return "ino:\(id.inode)"
    }
}

/// What the scan could not read: normal races and missing permission, never fatal.
public struct ScanProblems: Sendable {
    /// Processes that exited between listing and reading them.
    public var vanishedProcesses = 0
    /// Paths the scan was refused (EACCES/EPERM), with the reason; shown under `--verbose`.
    public var denied: [(path: String, errno: Errno)] = []
    public init() {}
}

/// Every network namespace on the host, however it is held (docs/design.md `list`).
public struct Census: Sendable {
    public var namespaces: [NetNamespace]
    public var brokenNames: [BrokenName]
    public var problems: ScanProblems
    public var hostID: NamespaceID?
    public var ownID: NamespaceID?
    public let options: CensusOptions

    public init(namespaces: [NetNamespace], brokenNames: [BrokenName], problems: ScanProblems,
                hostID: NamespaceID?, ownID: NamespaceID?, options: CensusOptions) {
        self.namespaces = namespaces
        self.brokenNames = brokenNames
        self.problems = problems
        self.hostID = hostID
        self.ownID = ownID
        self.options = options
    }

    public func namespace(_ id: NamespaceID) -> NetNamespace? {
        namespaces.first { $0.id == id }
    }

    public func namespace(inode: UInt64) -> NetNamespace? {
        namespaces.first { $0.id.inode == inode }
    }

    /// A short label for a namespace for tables: its name, else `pid:N`, else its inode.
    public func label(_ id: NamespaceID) -> String {
        namespace(id)?.reference ?? "ino:\(id.inode)"
    }
}
