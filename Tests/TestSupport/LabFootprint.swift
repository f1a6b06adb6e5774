import Foundation

/// What a lab file makes on the machine, read from what `nsinspect lab up --dry-run FILE` prints: its
/// namespaces, the links it makes in the host, its ownership mark and its nftables table. Tests use it
/// to name an example's things uniquely (`PrefixedExample`) and to check that nothing of the lab is
/// left afterwards.
public struct LabFootprint: Sendable {
    public let file: String
    /// The lab's name, from its mark.
    public let lab: String
    /// `nsinspect-lab:NAME`: the alias of every namespace's `lo` and of every link the lab makes in the host.
    public let mark: String
    /// The lab's nftables table (family inet).
    public let table: String
    public let namespaces: [String]
    public let hostLinks: [String]

    public init(file: String) throws {
        let plan = nsinspect("lab", "up", "--dry-run", file)
        guard plan.succeeded else { throw CommandFailed(result: plan) }
        var namespaces: [String] = [], hostLinks: [String] = [], marks: Set<String> = []
        for line in plan.stdout.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            if words.starts(with: ["ip", "netns", "add"]), words.count == 4 { namespaces.append(words[3]) }
            // `ip link set dev NAME alias MARK` (host) or `ip -n NS link set dev lo alias MARK`.
            if let alias = words.firstIndex(of: "alias"), alias + 1 < words.count {
                marks.insert(words[alias + 1])
                if words.starts(with: ["ip", "link", "set", "dev"]) { hostLinks.append(words[4]) }
            }
        }
        guard marks.count == 1, let mark = marks.first else {
            throw CommandFailed(result: CommandResult(arguments: plan.arguments, status: -1, stdout: plan.stdout,
                                                      stderr: "expected one ownership mark, found \(marks.sorted())"))
        }
        self.file = file
        self.mark = mark
        lab = String(mark.dropFirst("nsinspect-lab:".count))
        table = "nsinspect-" + lab
        self.namespaces = namespaces
        self.hostLinks = hostLinks
    }

    /// The lab's namespaces and host links that exist now (whoever made them).
    public func present() -> [String] {
        let hostNames = Set(HostLinks.names())
        return namespaces.filter(NetnsDirectory.exists).map { "namespace \($0)" }
            + hostLinks.filter(hostNames.contains).map { "host link \($0)" }
    }

    /// Whether the namespace `name` is there and carries this lab's mark on its `lo`.
    public func isOurs(namespace name: String) -> Bool {
        guard NetnsDirectory.exists(name),
            let links = try? Shell.json(Shell.run(["ip", "-n", name, "-j", "link", "show", "lo"]).stdout) as? [[String: Any]]
        else { return false }
        return links.first?["ifalias"] as? String == mark
    }

    /// Everything of the lab still on the machine, and every way the host differs from `before`: a
    /// namespace name in /var/run/netns or mounted anywhere (mountinfo), a host link with the lab's
    /// name or mark, the lab's nftables table (or any new `nsinspect-*` table), net.ipv4.ip_forward
    /// changed, a state file in /run/nsinspect/labs.
    public func leftovers(since before: HostSnapshot) -> [String] {
        var found: [String] = []
        for ns in namespaces where NetnsDirectory.exists(ns) { found.append("/var/run/netns/\(ns)") }
        let mounted = Set(namespaces.map { "/run/netns/\($0)" })
        found += Mountinfo.mountPoints().filter(mounted.contains).map { "mount \($0)" }
        for link in HostLinks.all() {
            let name = link["ifname"] as? String ?? "?"
            if hostLinks.contains(name) || link["ifalias"] as? String == mark { found.append("host link \(name)") }
        }
        let now = HostSnapshot.take()
        if now.tables.contains(table) { found.append("nft table inet \(table)") }
        found += now.tables.subtracting(before.tables).subtracting([table]).sorted().map { "new nft table \($0)" }
        if now.ipForward != before.ipForward { found.append("net.ipv4.ip_forward is \(now.ipForward), was \(before.ipForward)") }
        found += now.stateFiles.filter { $0.hasPrefix(lab + ".") }.map { "\(HostSnapshot.stateDirectory)/\($0)" }
        return found
    }
}

/// What a lab may change in the host besides its links: nftables tables, forwarding, state files.
public struct HostSnapshot: Equatable, Sendable {
    public static let stateDirectory = "/run/nsinspect/labs"
    /// Tables in the host whose name starts with `nsinspect-` (`nft list tables`).
    public var tables: Set<String>
    public var ipForward: String
    /// Files in /run/nsinspect/labs.
    public var stateFiles: Set<String>

    public static func take() -> HostSnapshot {
        let tables = Shell.run(["nft", "list", "tables"]).stdout.split(separator: "\n").compactMap { line -> String? in
            let words = line.split(separator: " ")
            return words.count == 3 && words[2].hasPrefix("nsinspect-") ? String(words[2]) : nil
        }
        let forward = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8)) ?? "?"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory)) ?? []
        return HostSnapshot(tables: Set(tables), ipForward: forward.trimmingCharacters(in: .whitespacesAndNewlines),
                            stateFiles: Set(files))
    }
}

/// /var/run/netns, without following what is in it.
public enum NetnsDirectory {
    public static func exists(_ name: String) -> Bool {
        var st = stat()
        return lstat("/var/run/netns/\(name)", &st) == 0
    }

    /// The nsfs inode a name reaches, nil if none.
    public static func inode(_ name: String) -> UInt64? {
        var st = stat()
        return stat("/var/run/netns/\(name)", &st) == 0 ? UInt64(st.st_ino) : nil
    }
}

/// Mount points in this process's mount namespace.
public enum Mountinfo {
    public static func mountPoints() -> [String] {
        let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 ? String(fields[4]) : nil
        }
    }
}

/// The host's links as `ip -j link show` has them.
public enum HostLinks {
    public static func all() -> [[String: Any]] {
        (try? Shell.json(Shell.run(["ip", "-j", "link", "show"]).stdout) as? [[String: Any]]) ?? []
    }

    public static func names() -> [String] { all().compactMap { $0["ifname"] as? String } }
}

/// An example lab file (examples/NAME, as users have it) written again with its lab, namespace and host
/// link names made unique to a test run, so a test never waits for, collides with or removes a lab of
/// someone else's. Namespaces become `PREFIX-NAME`; host links `PREFIXn` (at most 15 bytes); the lab
/// `PREFIX`. A name is replaced wherever it stands alone (not inside a longer name, and not as a YAML
/// key such as `outside:`). Two examples written with one prefix get the same names (twin labs).
public enum PrefixedExample {
    public static func write(_ name: String, prefix: String) throws -> String {
        let original = Package.example(name)
        let footprint = try LabFootprint(file: original)
        var text = try String(contentsOfFile: original, encoding: .utf8)
        var renames: [(String, String)] = [(footprint.lab, prefix)]
        renames += footprint.namespaces.map { ($0, "\(prefix)-\($0)") }
        // Host links in the order the lab makes them, so twin files agree.
        renames += footprint.hostLinks.enumerated().map { ($0.element, String("\(prefix.suffix(10))h\($0.offset)".prefix(15))) }
        let name = "[A-Za-z0-9_.-]"
        // A namespace may be named like a key of the format (`outside`): as `outside: …` it stays a key.
        let keys: Set = ["inside", "outside", "host", "lab", "nat", "filter", "routes", "links", "bridges", "expect", "netns", "ifaces"]
        for (from, to) in renames.sorted(by: { $0.0.count > $1.0.count }) {
            let escaped = NSRegularExpression.escapedPattern(for: from)
            let notKey = keys.contains(from) ? "|:\\s|:$" : ""
            let pattern = try NSRegularExpression(pattern: "(?<!\(name))\(escaped)(?!\(name)\(notKey))", options: [.anchorsMatchLines])
            text = pattern.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text),
                                                    withTemplate: NSRegularExpression.escapedTemplate(for: to))
        }
        // A namespace named like a key is still a key where it is one: among the children of `namespaces:`.
        var inNamespaces = false
        text = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            if !line.hasPrefix(" "), !line.isEmpty, !line.hasPrefix("#") { inNamespaces = line.hasPrefix("namespaces:") }
            guard inNamespaces, line.hasPrefix("  "), !line.hasPrefix("   ") else { return String(line) }
            for (from, to) in renames where keys.contains(from) && line.dropFirst(2).hasPrefix(from + ":") {
                return "  " + to + line.dropFirst(2 + from.count)
            }
            return String(line)
        }.joined(separator: "\n")
        let path = NSTemporaryDirectory() + "\(prefix)-\(original.split(separator: "/").last!)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
