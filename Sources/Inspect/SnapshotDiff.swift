import JSONKit

/// What `nsinspect diff` compares beyond a namespace's configuration.
public struct DiffOptions: Sendable, Equatable {
    /// Also compare what moves without anyone changing the configuration: link counters (`stats64`),
    /// ifindex and nsid numbers, namespace inodes, address lifetimes, neighbour confirmation times, and
    /// the NOARP entries the kernel makes for multicast groups it joins (ff02::1:ff… when IPv6 solicits,
    /// on MLD timers seconds after a link comes up). Off by default, or two snapshots of an idle lab
    /// taken a minute apart would never be equal.
    public var includeVolatile: Bool
    /// Also compare IPv6 link-local (fe80::/10) addresses, routes and neighbours. Off by default: the kernel
    /// makes them for every link with IPv6 on, from a MAC that is new whenever a veth is recreated.
    public var includeLinkLocal: Bool
    /// The first document is a declaration (`LabDeclaration`), not a snapshot: a member it leaves out
    /// matches anything, routes match on what it states (an unset metric or device matches any), and what
    /// it does not declare is extra only where a namespace says it declares everything (`declares_all`):
    /// links, routes the kernel did not make, and global addresses on declared links.
    public var declared: Bool

    public init(includeVolatile: Bool = false, includeLinkLocal: Bool = false, declared: Bool = false) {
        self.includeVolatile = includeVolatile
        self.includeLinkLocal = includeLinkLocal
        self.declared = declared
    }
}

/// Why a document cannot be compared: it is not an nsinspect snapshot, or of a version this build cannot
/// read. Said before anything is compared, so a wrong file never passes for "no differences".
public struct SnapshotError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Document: String, Sendable { case first, second }
    public enum Reason: Equatable, Sendable {
        case notAnObject
        /// The document's "format" member (nil when it has none) is not "nsinspect-snapshot".
        case notASnapshot(format: String?)
        /// The "version" member as written (nil when it has none).
        case unsupportedVersion(String?)
        case noNamespaces
    }
    public var document: Document
    public var reason: Reason

    public init(document: Document, reason: Reason) {
        self.document = document
        self.reason = reason
    }

    public var description: String {
        let why = switch reason {
        case .notAnObject: "not a JSON object, so not an nsinspect snapshot"
        case .notASnapshot(nil): "no \"format\" member: not an nsinspect snapshot (`nsinspect snapshot -o FILE` makes one)"
        case .notASnapshot(let format?): "format \"\(format)\" is not \"\(SnapshotDiff.format)\""
        case .unsupportedVersion(let v): "version \(v ?? "(none)") is not one this nsinspect reads (\(SnapshotDiff.version))"
        case .noNamespaces: "no \"namespaces\" object"
        }
        return "\(document.rawValue) snapshot: \(why)"
    }
}

/// The differences between two snapshots, grouped by namespace: what `nsinspect diff A B` prints.
///
/// A snapshot (`nsinspect snapshot`) is one JSON object:
/// `{"format": "nsinspect-snapshot", "version": 1, "taken": "<UTC time>", "census": [<list --json entries>],
/// "namespaces": {"<reference>": <what dump --json prints under that key>, …}}`.
/// The census is not compared (pids and holders change by the second); the names that matching needs are
/// in each namespace's own "namespace" member.
///
/// Route changes of gateway, device or next hops are reported as one *changed* route, keyed by family,
/// table, destination and metric (what the kernel keys a route by, less TOS and source prefix), so a moved
/// next hop reads as one line rather than a removal and an addition.
public struct SnapshotDiff: Sendable, Equatable {
    public static let format = "nsinspect-snapshot"
    public static let version: Int64 = 1

    public enum ObjectKind: String, Sendable { case namespace, link, address, route, neighbour }
    public enum Action: String, Sendable { case added, removed, changed }
    public enum NamespaceChange: String, Sendable { case appeared, disappeared, changed }

    /// One field of a changed object, as text; nil where the field is absent.
    public struct FieldChange: Sendable, Equatable {
        public var field: String
        public var old: String?
        public var new: String?
        public init(field: String, old: String?, new: String?) {
            self.field = field
            self.old = old
            self.new = new
        }
    }

    /// One object added, removed or changed. `identity` is the whole object for an added or removed one
    /// (`10.0.3.0/24 via 10.0.1.2 dev e0 table main`) and its key for a changed one, whose other parts
    /// are in `fields`.
    public struct Entry: Sendable, Equatable {
        public var object: ObjectKind
        public var action: Action
        public var identity: String
        public var fields: [FieldChange]
        public init(object: ObjectKind, action: Action, identity: String, fields: [FieldChange] = []) {
            self.object = object
            self.action = action
            self.identity = identity
            self.fields = fields
        }
    }

    /// A namespace's label and inode are the second snapshot's unless it disappeared.
    public struct NamespaceDiff: Sendable, Equatable {
        public var label: String
        public var inode: UInt64?
        public var change: NamespaceChange
        /// Links, then addresses, routes and neighbours; empty for a namespace that appeared or disappeared.
        public var entries: [Entry]
        public init(label: String, inode: UInt64?, change: NamespaceChange, entries: [Entry] = []) {
            self.label = label
            self.inode = inode
            self.change = change
            self.entries = entries
        }
    }

    /// Namespaces of the second snapshot in its order, then those that disappeared in the first's.
    public var namespaces: [NamespaceDiff]
    public var isEmpty: Bool { namespaces.isEmpty }

    public init(namespaces: [NamespaceDiff] = []) { self.namespaces = namespaces }

    /// Matches namespaces by a shared name first and by inode second (a namespace renamed in between is
    /// still itself; one recreated under its old name is the same to its user), then compares each pair.
    public static func compare(_ a: JSON, _ b: JSON, options: DiffOptions = DiffOptions()) throws(SnapshotError) -> SnapshotDiff {
        let old = try Side(a, .first), new = try Side(b, .second)
        let pairs = Side.match(old.spaces, new.spaces)
        var newIndex: [Int: Int] = [:]
        for (j, i) in pairs.enumerated() { if let i { newIndex[i] = j } }
        let comparer = Comparer(options: options, old: old, new: new, newIndex: newIndex)
        var result: [NamespaceDiff] = []
        for (j, space) in new.spaces.enumerated() {
            guard let i = pairs[j] else {
                result.append(NamespaceDiff(label: space.label, inode: space.inode, change: .appeared))
                continue
            }
            let entries = comparer.entries(old.spaces[i], space)
            if !entries.isEmpty { result.append(NamespaceDiff(label: space.label, inode: space.inode, change: .changed, entries: entries)) }
        }
        for (i, space) in old.spaces.enumerated() where newIndex[i] == nil {
            result.append(NamespaceDiff(label: space.label, inode: space.inode, change: .disappeared))
        }
        return SnapshotDiff(namespaces: result)
    }

    /// The text `diff` prints: a heading per changed namespace and one indented line per change; a
    /// namespace that appeared or disappeared is one line.
    public func text() -> String {
        var out = ""
        for ns in namespaces {
            let inode = ns.inode.map { " (ino \($0))" } ?? ""
            switch ns.change {
            case .appeared: out += "+ namespace \(ns.label)\(inode)\n"
            case .disappeared: out += "- namespace \(ns.label)\(inode)\n"
            case .changed:
                out += "\(ns.label)\(inode)\n"
                for entry in ns.entries { out += "  \(entry.line)\n" }
            }
        }
        return out
    }

    /// `diff --json`: one object per namespace; "fields" only on changed objects, null for an absent value.
    public func json() -> JSON {
        .array(namespaces.map { ns in
            var o = JSONObjectBuilder()
            o.add("namespace", ns.label)
            o.add("ns", ns.inode)
            o.add("change", ns.change.rawValue)
            o.add("changes", .array(ns.entries.map { entry in
                var e = JSONObjectBuilder()
                e.add("object", entry.object.rawValue)
                e.add("action", entry.action.rawValue)
                e.add("identity", entry.identity)
                if entry.action == .changed {
                    e.add("fields", .array(entry.fields.map { f in
                        var x = JSONObjectBuilder()
                        x.add("field", f.field)
                        x.add("old", f.old.map(JSON.string) ?? .null)
                        x.add("new", f.new.map(JSON.string) ?? .null)
                        return x.json
                    }))
                }
                return e.json
            }))
            return o.json
        })
    }
}

extension SnapshotDiff.Entry {
    /// `~ link e0: mtu 1500 → 9000, state UP → DOWN`; "-" stands for an absent value.
    var line: String {
        let sign = switch action {
        case .added: "+"
        case .removed: "-"
        case .changed: "~"
        }
        let changes = fields.map { "\($0.field) \($0.old ?? "-") → \($0.new ?? "-")" }.joined(separator: ", ")
        return "\(sign) \(object.rawValue) \(identity)" + (changes.isEmpty ? "" : ": " + changes)
    }
}

/// Member names of a snapshot and of `dump --json`'s per-namespace object (`NamespaceView.json` in
/// Sources/nsinspect/ShowCommand.swift), kept in one place.
private enum Key {
    static let format = "format", version = "version", namespaces = "namespaces"
    static let namespace = "namespace", links = "links", addresses = "addrs", routes = "routes", neighbours = "neigh"
}

/// Reading `ip -j`-shaped values as text.
private enum Read {
    /// A scalar as text, a list as its items joined by commas, nil for an absent, null or empty value.
    static func text(_ value: JSON?) -> String? {
        guard let value else { return nil }
        switch value {
        case .null: return nil
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bool(let b): return b ? "true" : "false"
        case .array(let items): return items.isEmpty ? nil : items.map { text($0) ?? "null" }.joined(separator: ",")
        default: return value.serialized()
        }
    }

    static func has(_ object: JSON, _ key: String) -> Bool {
        object.objectValue?.contains { $0.key == key } ?? false
    }

    /// The "peer" object of a link (IPJSON.link): the first "peer" member that is an object, because a
    /// point-to-point link also has a "peer" that is an address.
    static func peer(_ link: JSON) -> JSON? {
        link.objectValue?.first { $0.key == "peer" && $0.value.objectValue != nil }?.value
    }

    static func peerText(_ peer: JSON?) -> String? {
        guard let peer else { return nil }
        let namespace = text(peer["netns"]) ?? text(peer["ns"]).map { "ino:\($0)" } ?? "?"
        return "\(text(peer["ifname"]) ?? "?") in \(namespace)"
    }

    /// `ip -j route` leaves out "table" for main.
    static func table(_ route: JSON) -> String { text(route["table"]) ?? "main" }

    /// fe80::/10: the first group, always written with four digits for these, is fe80 to febf.
    static func isLinkLocal(_ address: String?) -> Bool {
        guard let address = address?.lowercased(), address.contains(":") else { return false }
        let group = Array(address.prefix { $0 != ":" && $0 != "/" })
        return group.count == 4 && group[0] == "f" && group[1] == "e" && "89ab".contains(group[2])
    }

    /// Every scalar under `value` by dotted path (`stats64.rx.bytes`), so counters compare one by one.
    static func leaves(_ value: JSON?, _ path: String, _ out: inout [(String, String)]) {
        if let members = value?.objectValue {
            for m in members { leaves(m.value, path + "." + m.key, &out) }
        } else if let t = text(value) {
            out.append((path, t))
        }
    }
}

/// One snapshot's namespaces in its order, with what matching and peer resolution need.
private struct Side {
    struct Space {
        let label: String
        let inode: UInt64?
        /// Names that say which namespace this is across snapshots (see `isName`).
        let names: Set<String>
        let body: JSON
    }
    let spaces: [Space]
    private var byLabel: [String: Int] = [:]
    private var byInode: [UInt64: Int] = [:]

    init(_ document: JSON, _ which: SnapshotError.Document) throws(SnapshotError) {
        guard document.objectValue != nil else { throw SnapshotError(document: which, reason: .notAnObject) }
        guard document[Key.format]?.stringValue == SnapshotDiff.format else {
            throw SnapshotError(document: which, reason: .notASnapshot(format: Read.text(document[Key.format])))
        }
        guard document[Key.version]?.intValue == SnapshotDiff.version else {
            throw SnapshotError(document: which, reason: .unsupportedVersion(Read.text(document[Key.version])))
        }
        guard let members = document[Key.namespaces]?.objectValue else {
            throw SnapshotError(document: which, reason: .noNamespaces)
        }
        var spaces: [Space] = []
        // `dump` adds "_errors" (label: reason) for namespaces it could not read.
        for member in members where member.key != "_errors" && member.value.objectValue != nil {
            let ns = member.value[Key.namespace]
            let label = ns?["reference"]?.stringValue ?? member.key
            let names = ([label] + (ns?["names"]?.arrayValue ?? []).compactMap(\.stringValue)).filter(Side.isName)
            spaces.append(Space(label: label, inode: ns?["ns"]?.intValue.flatMap { UInt64(exactly: $0) },
                                names: Set(names), body: member.value))
        }
        self.spaces = spaces
        for (i, space) in spaces.enumerated() {
            if byLabel[space.label] == nil { byLabel[space.label] = i }
            if let inode = space.inode, byInode[inode] == nil { byInode[inode] = i }
        }
    }

    /// A reference that names a namespace. `pid:N` (the label of an unnamed namespace) does not: the pid may
    /// be another namespace's process in the other snapshot. `ino:N` is left to inode matching.
    static func isName(_ reference: String) -> Bool {
        !reference.isEmpty && !reference.hasPrefix("pid:") && !reference.hasPrefix("ino:")
    }

    /// The namespace a link's peer object points into, by inode and then by label.
    func index(ofPeer peer: JSON) -> Int? {
        if let inode = peer["ns"]?.intValue.flatMap({ UInt64(exactly: $0) }), let i = byInode[inode] { return i }
        return Read.text(peer["netns"]).flatMap { byLabel[$0] }
    }

    /// For each namespace of `new`, its namespace in `old`: one sharing a name in a first pass, then one
    /// with the same inode among those left. The first candidate in `old`'s order wins, so the result
    /// does not depend on set order.
    static func match(_ old: [Space], _ new: [Space]) -> [Int?] {
        var byName: [String: [Int]] = [:], byInode: [UInt64: [Int]] = [:]
        for (i, space) in old.enumerated() {
            for name in space.names { byName[name, default: []].append(i) }
            if let inode = space.inode { byInode[inode, default: []].append(i) }
        }
        var pairs = [Int?](repeating: nil, count: new.count)
        var taken = Set<Int>()
        for (j, space) in new.enumerated() {
            let found = space.names.flatMap { byName[$0] ?? [] }.filter { !taken.contains($0) }.min()
            if let found { pairs[j] = found; taken.insert(found) }
        }
        for (j, space) in new.enumerated() where pairs[j] == nil {
            guard let inode = space.inode, let found = byInode[inode]?.first(where: { !taken.contains($0) }) else { continue }
            pairs[j] = found
            taken.insert(found)
        }
        return pairs
    }
}

/// Compares one matched pair of namespaces, object kind by object kind.
private struct Comparer {
    typealias Entry = SnapshotDiff.Entry
    typealias FieldChange = SnapshotDiff.FieldChange

    /// A compared field: its name in the report and how to read it as text.
    struct Field {
        let name: String
        let value: (JSON) -> String?
        init(_ name: String, _ value: @escaping (JSON) -> String?) {
            self.name = name
            self.value = value
        }
        init(_ key: String) { self.init(key) { Read.text($0[key]) } }
    }

    /// An address with the interface it is on (`ip -j addr` nests addresses under their link).
    struct Address {
        let dev: String
        let info: JSON
    }

    let options: DiffOptions
    let old: Side, new: Side
    /// The second snapshot's index of each matched namespace of the first.
    let newIndex: [Int: Int]

    func entries(_ x: Side.Space, _ y: Side.Space) -> [Entry] {
        var out: [Entry] = []
        func names(_ space: Side.Space) -> String? {
            let list = (space.body[Key.namespace]?["names"]?.arrayValue ?? []).compactMap(\.stringValue).sorted()
            return list.isEmpty ? nil : list.joined(separator: ",")
        }
        var fields = options.declared ? [] : Comparer.change("names", names(x), names(y)).map { [$0] } ?? []
        // A namespace recreated under its name has a new inode: volatile, as after every reboot.
        if options.includeVolatile, let c = Comparer.change("ns", x.inode.map { String($0) }, y.inode.map { String($0) }) { fields.append(c) }
        if !fields.isEmpty { out.append(Entry(object: .namespace, action: .changed, identity: y.label, fields: fields)) }
        // A section left out of either snapshot (`dump --sections`) says nothing about that section.
        func both(_ key: String) -> ([JSON], [JSON])? {
            guard let l = x.body[key]?.arrayValue, let m = y.body[key]?.arrayValue else { return nil }
            return (l, m)
        }
        if options.declared {
            let all = x.body[LabDeclaration.ownsAll]?.boolValue == true
            if case let (l, m)? = both(Key.links) { out += links(l, m, extras: all) }
            if case let (l, m)? = both(Key.addresses) { out += declaredAddresses(l, m) }
            if case let (l, m)? = both(Key.routes) { out += declaredRoutes(l, m, extras: all) }
            return out
        }
        if case let (l, m)? = both(Key.links) { out += links(l, m) }
        if case let (l, m)? = both(Key.addresses) { out += addresses(l, m) }
        if case let (l, m)? = both(Key.routes) { out += routes(l, m) }
        if case let (l, m)? = both(Key.neighbours) { out += neighbours(l, m) }
        return out
    }

    static func change(_ field: String, _ old: String?, _ new: String?) -> FieldChange? {
        old == new ? nil : FieldChange(field: field, old: old, new: new)
    }

    /// Against a declaration, only the fields it states.
    func differences(_ x: JSON, _ y: JSON, _ fields: [Field]) -> [FieldChange] {
        fields.compactMap { field in
            let old = field.value(x)
            if options.declared && old == nil { return nil }
            return Comparer.change(field.name, old, field.value(y))
        }
    }

    /// Volatile values, leaf by leaf, in the new object's order, when the options ask for them.
    func volatile(_ x: [(String, JSON?)], _ y: [(String, JSON?)]) -> [FieldChange] {
        guard options.includeVolatile else { return [] }
        var before: [(String, String)] = [], after: [(String, String)] = []
        for (path, value) in x { Read.leaves(value, path, &before) }
        for (path, value) in y { Read.leaves(value, path, &after) }
        let old = Dictionary(before, uniquingKeysWith: { first, _ in first })
        let new = Dictionary(after, uniquingKeysWith: { first, _ in first })
        let paths = after.map(\.0) + before.map(\.0).filter { new[$0] == nil }
        return paths.compactMap { Comparer.change($0, old[$0], new[$0]) }
    }

    /// Pairs objects by key (nil: not compared) and reports each difference once: added and changed in
    /// the new list's order, then removed in the old one's. A key seen twice gets "#2" so nothing is lost.
    /// `extra`: whether an object only the new list has is reported (a declaration leaves some out).
    func pair<T>(_ object: SnapshotDiff.ObjectKind, _ old: [T], _ new: [T], key: (T) -> String?,
                 whole: (T) -> String, name: (T) -> String, extra: (T) -> Bool = { _ in true },
                 fields: (T, T) -> [FieldChange]) -> [Entry] {
        func keyed(_ items: [T]) -> [(String, T)] {
            var seen: [String: Int] = [:]
            return items.compactMap { item in
                guard let k = key(item) else { return nil }
                seen[k, default: 0] += 1
                return (seen[k] == 1 ? k : "\(k)#\(seen[k] ?? 0)", item)
            }
        }
        let before = keyed(old), after = keyed(new)
        var byKey: [String: T] = [:]
        for (k, item) in before { byKey[k] = item }
        var entries: [Entry] = []
        var kept = Set<String>()
        for (k, item) in after {
            guard let previous = byKey[k] else {
                if extra(item) { entries.append(Entry(object: object, action: .added, identity: whole(item))) }
                continue
            }
            kept.insert(k)
            let changes = fields(previous, item)
            if !changes.isEmpty { entries.append(Entry(object: object, action: .changed, identity: name(item), fields: changes)) }
        }
        for (k, item) in before where !kept.contains(k) {
            entries.append(Entry(object: object, action: .removed, identity: whole(item)))
        }
        return entries
    }

    // MARK: Links

    /// What a user sets on a link. Not compared: qdisc (noop while a link is down, so it would repeat the
    /// state), txqlen, group, and the flags other than UP (LOWER_UP and NO-CARRIER follow operstate).
    static var linkFields: [Field] {
        [Field("mtu"), Field("state") { Read.text($0["operstate"]) },
         // Apart from operstate: `ip link set lo down` leaves lo's operstate UNKNOWN.
         Field("admin") { $0["flags"]?.arrayValue.map { $0.contains(.string("UP")) ? "up" : "down" } },
         Field("master"), Field("mac") { Read.text($0["address"]) },
         Field("kind") { Read.text($0["linkinfo"]?["info_kind"]) },
         // The parent (or a veth's peer) in the same namespace, by name.
         Field("link"), Field("alias") { Read.text($0["ifalias"]) }]
    }

    /// Numbers the kernel hands out again when a link or namespace is recreated, and counters.
    static func linkVolatile(_ link: JSON) -> [(String, JSON?)] {
        [("ifindex", link["ifindex"]), ("link_index", link["link_index"]), ("link_netnsid", link["link_netnsid"]),
         ("peer.ifindex", Read.peer(link)?["ifindex"]), ("stats64", link["stats64"])]
    }

    func links(_ old: [JSON], _ new: [JSON], extras: Bool = true) -> [Entry] {
        pair(.link, old, new, key: { Read.text($0["ifname"]) },
             whole: { l in (Read.text(l["ifname"]) ?? "?") + (Read.text(l["linkinfo"]?["info_kind"]).map { " (\($0))" } ?? "") },
             name: { Read.text($0["ifname"]) ?? "?" }, extra: { _ in extras },
             fields: { x, y in
                 var changes = differences(x, y, Comparer.linkFields)
                 let p = Read.peer(x), q = Read.peer(y)
                 if !(options.declared && p == nil) && !samePeer(p, q) { changes.append(FieldChange(field: "peer", old: Read.peerText(p), new: Read.peerText(q))) }
                 return changes + volatile(Comparer.linkVolatile(x), Comparer.linkVolatile(y))
             })
    }

    /// The same far end: the same ifname in namespaces the matching paired (so a renamed or renumbered
    /// namespace is not a new peer), or, where a peer's namespace is not in a snapshot, the same label or inode.
    func samePeer(_ p: JSON?, _ q: JSON?) -> Bool {
        guard let p, let q else { return Read.peerText(p) == Read.peerText(q) }
        guard Read.text(p["ifname"]) == Read.text(q["ifname"]) else { return false }
        if let i = old.index(ofPeer: p), let j = new.index(ofPeer: q) { return newIndex[i] == j }
        if let inode = Read.text(p["ns"]), inode == Read.text(q["ns"]) { return true }
        return Read.text(p["netns"]) == Read.text(q["netns"])
    }

    // MARK: Addresses

    /// `10.0.9.1/24`, or `10.0.0.1 peer 10.0.0.2/32` for a point-to-point address.
    static func prefix(_ a: JSON) -> String {
        let local = Read.text(a["local"]) ?? "?", length = Read.text(a["prefixlen"]).map { "/\($0)" } ?? ""
        if let peer = Read.text(a["address"]) { return "\(local) peer \(peer)\(length)" }
        return local + length
    }

    func addresses(_ old: [JSON], _ new: [JSON]) -> [Entry] {
        func flat(_ links: [JSON]) -> [Address] {
            links.flatMap { l in (l["addr_info"]?.arrayValue ?? []).map { Address(dev: Read.text(l["ifname"]) ?? "?", info: $0) } }
        }
        let fields = [Field("scope"), Field("broadcast"), Field("label")]
        // They count down on addresses that SLAAC or DHCP made.
        let lifetimes = ["valid_life_time", "preferred_life_time"]
        return pair(.address, flat(old), flat(new),
                    key: { a in
                        guard options.includeLinkLocal || !Read.isLinkLocal(Read.text(a.info["local"])) else { return nil }
                        return "\(a.dev) \(Read.text(a.info["family"]) ?? "") \(Comparer.prefix(a.info))"
                    },
                    whole: { "\(Comparer.prefix($0.info)) on \($0.dev)" },
                    name: { "\(Comparer.prefix($0.info)) on \($0.dev)" },
                    fields: { x, y in
                        differences(x.info, y.info, fields)
                            + volatile(lifetimes.map { ($0, x.info[$0]) }, lifetimes.map { ($0, y.info[$0]) })
                    })
    }

    /// Against a declaration: the declared addresses of each declared link, and any other global address
    /// on those links (one the kernel or a router advertisement made, with a narrower scope, is not the file's).
    func declaredAddresses(_ old: [JSON], _ new: [JSON]) -> [Entry] {
        let devices = Set(old.compactMap { Read.text($0["ifname"]) })
        let live = new.filter { Read.text($0["ifname"]).map(devices.contains) ?? false }
        func flat(_ links: [JSON]) -> [Address] {
            links.flatMap { l in (l["addr_info"]?.arrayValue ?? []).map { Address(dev: Read.text(l["ifname"]) ?? "?", info: $0) } }
        }
        return pair(.address, flat(old), flat(live),
                    key: { "\($0.dev) \(Read.text($0.info["family"]) ?? "") \(Comparer.prefix($0.info))" },
                    whole: { "\(Comparer.prefix($0.info)) on \($0.dev)" },
                    name: { "\(Comparer.prefix($0.info)) on \($0.dev)" },
                    extra: { Read.text($0.info["scope"]) == "global" },
                    fields: { _, _ in [] })
    }

    // MARK: Routes

    /// A route's family, which `ip -j route` does not print: its destination's, or for a default route its
    /// gateway's, source's or first next hop's; "" when nothing tells (a device-only default route).
    static func family(_ route: JSON) -> String {
        let witnesses = [route["dst"], route["gateway"], route["prefsrc"], route["from"], route["nexthops"]?[0]?["gateway"]]
        guard let address = witnesses.compactMap({ Read.text($0) }).first(where: { $0 != "default" }) else { return "" }
        return address.contains(":") ? "inet6" : "inet"
    }

    /// Multipath next hops as ip prints them: `nexthop via 10.0.1.2 dev e0 weight 1 nexthop via …`.
    static func hops(_ route: JSON) -> String? {
        guard let list = route["nexthops"]?.arrayValue, !list.isEmpty else { return nil }
        return list.map { hop in
            var words = ["nexthop"]
            if let gateway = Read.text(hop["gateway"]) { words += ["via", gateway] }
            if let dev = Read.text(hop["dev"]) { words += ["dev", dev] }
            if let weight = Read.text(hop["weight"]) { words += ["weight", weight] }
            return words.joined(separator: " ")
        }.joined(separator: " ")
    }

    /// `unreachable 10.0.3.0/24 via 10.0.1.2 dev e0 table main metric 100`; without `whole`, only the key's
    /// parts (destination, table, metric), the rest being in the changed fields.
    static func routeText(_ route: JSON, whole: Bool) -> String {
        var words: [String] = []
        if whole, let type = Read.text(route["type"]) { words.append(type) }
        words.append(Read.text(route["dst"]) ?? "?")
        if whole {
            if let gateway = Read.text(route["gateway"]) { words += ["via", gateway] }
            if let dev = Read.text(route["dev"]) { words += ["dev", dev] }
            if let next = hops(route) { words.append(next) }
        }
        words += ["table", Read.table(route)]
        if let metric = Read.text(route["metric"]) { words += ["metric", metric] }
        return words.joined(separator: " ")
    }

    static var routeFields: [Field] {
        [Field("type") { Read.text($0["type"]) ?? "unicast" }, Field("gateway"), Field("dev"),
         Field("nexthops") { Comparer.hops($0) }, Field("protocol"), Field("scope"), Field("prefsrc"),
         Field("from"), Field("tos"), Field("metrics"), Field("pref"),
         // linkdown and dead follow the state of the route's device, which the link reports.
         Field("flags") { route in
             let flags = (route["flags"]?.arrayValue ?? []).compactMap(\.stringValue).filter { $0 != "linkdown" && $0 != "dead" }
             return flags.isEmpty ? nil : flags.joined(separator: ",")
         }]
    }

    func routes(_ old: [JSON], _ new: [JSON]) -> [Entry] {
        pair(.route, old, new,
             key: { route in
                 let table = Read.table(route), dst = Read.text(route["dst"]) ?? "?"
                 // The kernel's own routes in the local table (local, broadcast, multicast) come and go with
                 // the addresses, which are reported themselves; `show` leaves the table out for the same reason.
                 if table == "local" && Read.text(route["protocol"]) == "kernel" { return nil }
                 if !options.includeLinkLocal && Read.isLinkLocal(dst) { return nil }
                 return [Comparer.family(route), table, dst, Read.text(route["metric"]) ?? ""].joined(separator: " ")
             },
             whole: { Comparer.routeText($0, whole: true) },
             name: { Comparer.routeText($0, whole: false) },
             fields: { x, y in differences(x, y, Comparer.routeFields) })
    }

    /// Against a declaration, each declared route is found by what it states (a route keeps the metric
    /// and device the kernel gave it when the file sets none). A declared route that only its destination
    /// finds (same family, table and destination, and metric if declared) is changed; one nothing finds is
    /// missing. Extra, where the namespace is the lab's: a route in the main table the kernel did not make.
    func declaredRoutes(_ old: [JSON], _ new: [JSON], extras: Bool) -> [Entry] {
        func sameFamily(_ a: JSON, _ b: JSON) -> Bool {
            let f = Read.text(a["family"]) ?? Comparer.family(a), g = Comparer.family(b)
            return f.isEmpty || g.isEmpty || f == g
        }
        func located(_ declared: JSON, _ route: JSON) -> Bool {
            guard Read.text(declared["dst"]) == Read.text(route["dst"]), Read.table(declared) == Read.table(route),
                  sameFamily(declared, route) else { return false }
            if let metric = Read.text(declared["metric"]), metric != Read.text(route["metric"]) { return false }
            return true
        }
        let fields = [Field("type") { Read.text($0["type"]) ?? "unicast" }, Field("dev"),
                      // A gateway that is one of several next hops is the declared one.
                      Field("gateway") { route in
                          let hops = (route["nexthops"]?.arrayValue ?? []).compactMap { Read.text($0["gateway"]) }
                          return Read.text(route["gateway"]) ?? (hops.isEmpty ? nil : hops.joined(separator: ","))
                      }]
        func differs(_ declared: JSON, _ route: JSON) -> [FieldChange] {
            differences(declared, route, fields).filter { change in
                // A multipath route has the declared gateway when any next hop does.
                !(change.field == "gateway" && change.new?.split(separator: ",").contains { $0 == change.old ?? "" } == true)
            }
        }
        var used = Set<Int>()
        var entries: [Entry] = []
        for declared in old {
            let candidates = new.indices.filter { !used.contains($0) && located(declared, new[$0]) }
            if let exact = candidates.first(where: { differs(declared, new[$0]).isEmpty }) {
                used.insert(exact)
            } else if let near = candidates.first {
                used.insert(near)
                entries.append(Entry(object: .route, action: .changed, identity: Comparer.routeText(new[near], whole: false),
                                     fields: differs(declared, new[near])))
            } else {
                entries.append(Entry(object: .route, action: .removed, identity: Comparer.routeText(declared, whole: true)))
            }
        }
        guard extras else { return entries }
        for (i, route) in new.enumerated() where !used.contains(i) {
            guard Read.table(route) == "main", Read.text(route["protocol"]) != "kernel" else { continue }
            if !options.includeLinkLocal && Read.isLinkLocal(Read.text(route["dst"])) { continue }
            entries.append(Entry(object: .route, action: .added, identity: Comparer.routeText(route, whole: true)))
        }
        return entries
    }

    // MARK: Neighbours

    /// A neighbour entry the kernel keeps for a multicast group (NOARP, ff00::/8 or 224.0.0.0/4).
    static func isMulticastNoARP(_ n: JSON) -> Bool {
        guard n["state"]?.arrayValue?.contains(.string("NOARP")) == true, let dst = Read.text(n["dst"]) else { return false }
        if dst.lowercased().hasPrefix("ff") { return true }
        guard let first = dst.split(separator: ".").first.flatMap({ Int($0) }) else { return false }
        return (224...239).contains(first)
    }

    static func neighbourName(_ n: JSON) -> String {
        "\(Read.text(n["dst"]) ?? "?") dev \(Read.text(n["dev"]) ?? "?")"
    }

    func neighbours(_ old: [JSON], _ new: [JSON]) -> [Entry] {
        // ip -j prints these flags as members whose value is null.
        let fields = [Field("lladdr"), Field("state"),
                      Field("router") { Read.has($0, "router") ? "yes" : nil },
                      Field("proxy") { Read.has($0, "proxy") ? "yes" : nil }]
        // What `ip -s -j neigh` adds; nsinspect's renderer writes none of them today.
        let times = ["used", "confirmed", "updated", "probes"]
        return pair(.neighbour, old, new,
                    key: { n in
                        let dst = Read.text(n["dst"])
                        guard options.includeLinkLocal || !Read.isLinkLocal(dst) else { return nil }
                        guard options.includeVolatile || !Comparer.isMulticastNoARP(n) else { return nil }
                        return "\(Read.text(n["dev"]) ?? "?") \(dst ?? "?")"
                    },
                    whole: { n in Comparer.neighbourName(n) + (Read.text(n["lladdr"]).map { " lladdr \($0)" } ?? "") },
                    name: { Comparer.neighbourName($0) },
                    fields: { x, y in
                        differences(x, y, fields) + volatile(times.map { ($0, x[$0]) }, times.map { ($0, y[$0]) })
                    })
    }
}
