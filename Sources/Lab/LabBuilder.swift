#if canImport(Glibc)
import Glibc
#endif
import Netlink
import ProcNS

/// Builds and removes a lab over netlink from one process (no `ip` process per step), following the
/// lab's plan. Every namespace it makes carries the lab's mark on its `lo` (IFLA_IFALIAS), every link it
/// makes in the host carries it too: `up` refuses to touch anything of the same name without the mark,
/// and `down` removes only what carries it.
public final class LabBuilder {
    public let spec: LabSpec
    public let plan: LabPlan
    /// Where namespace names live (`/var/run/netns`).
    public let netnsDirectory: String
    /// Called before each step of `up` and `down` (for a progress line on a terminal).
    public var progress: ((_ done: Int, _ total: Int, _ step: LabStep) -> Void)?
    /// Where the host's sysctl values before `up` are kept until `down` puts them back.
    public let stateDirectory: String

    public init(spec: LabSpec, netnsDirectory: String = "/var/run/netns", stateDirectory: String = "/run/nsinspect/labs") {
        self.spec = spec
        self.plan = LabPlan.make(spec)
        self.netnsDirectory = netnsDirectory
        self.stateDirectory = stateDirectory
    }

    // MARK: Ownership

    /// What stands under a lab namespace's name now.
    public enum Presence: Equatable {
        case absent
        /// This lab's namespace (its `lo` carries the lab's mark).
        case ours
        /// Something else, and why it is not this lab's.
        case foreign(String)
    }

    /// Whether the namespace named `name` exists and is this lab's, with its handle when it is.
    public func presence(of name: String) -> (Presence, NamespaceHandle?) {
        let found = presences(of: [name])[0]
        return (found.presence, found.handle)
    }

    /// The lab's namespaces as they are now.
    public func presences() -> [(name: String, presence: Presence, handle: NamespaceHandle?)] {
        presences(of: namespaceNames)
    }

    /// Whose each named namespace is, by the mark on its `lo` (IFLA_IFALIAS from RTM_GETLINK). The
    /// sockets are opened from one thread that moves from namespace to namespace, not one thread each.
    func presences(of names: [String]) -> [(name: String, presence: Presence, handle: NamespaceHandle?)] {
        let directory = NetnsNames(directory: netnsDirectory)
        var found: [(name: String, presence: Presence, handle: NamespaceHandle?)] = names.map { name in
            switch directory.entry(name) {
            case .absent: return (name, .absent, nil)
            case .placeholder:
                return (name, .foreign("\(netnsDirectory)/\(name) is an empty placeholder (nsinspect forget \(name) removes it)"), nil)
            case .other(let what): return (name, .foreign("\(netnsDirectory)/\(name) is \(what)"), nil)
            case .bindMount, .symlink:
                guard let handle = try? NamespaceHandle.open(path: "\(netnsDirectory)/\(name)", origin: name) else {
                    return (name, .foreign("\(netnsDirectory)/\(name) is a broken name"), nil)
                }
                return (name, .absent, handle)
            }
        }
        let opened = found.indices.filter { found[$0].handle != nil }
        let sockets = (try? NetlinkSocket.open(inEach: opened.map { found[$0].handle! }, labels: opened.map { found[$0].name }))
            ?? opened.map { _ in .failure(OperationError("lab", "", "cannot enter")) }
        for (i, socket) in zip(opened, sockets) {
            let name = found[i].name
            let alias = (try? NetlinkSession(socket: socket.get()).link(.name("lo")).alias) ?? nil
            if alias == plan.mark {
                found[i].presence = .ours
            } else if let alias, alias.hasPrefix("nsinspect-lab:") {
                found[i].presence = .foreign("namespace \(name) belongs to lab '\(alias.dropFirst("nsinspect-lab:".count))'")
            } else {
                found[i].presence = .foreign("namespace \(name) exists and was not made by lab '\(spec.name)' (its lo carries no lab mark)")
            }
        }
        return found
    }

    var namespaceNames: [String] {
        spec.namespaces.compactMap { if case .namespace(let name) = $0.place { name } else { nil } }
    }

    /// The links the lab creates in the host.
    var hostLinks: [String] { spec.interfaces(in: .host).map(\.ref.name) }

    // MARK: up

    public enum UpResult: Equatable {
        /// Built: the number of steps.
        case built(steps: Int)
        /// Every namespace was already there, this lab's, with nothing missing or changed.
        case alreadyUp
    }

    /// The lab's namespaces as `presences()` finds them.
    public typealias Presences = [(name: String, presence: Presence, handle: NamespaceHandle?)]

    /// Builds the lab. A lab that is already up is left as it is. If a step fails, everything this run
    /// made is removed again and the error names the step.
    /// `drift`: how a lab that is up is compared with the file; `status` by default, which leaves links,
    /// addresses and routes to the caller (`lab status` compares those through a snapshot diff).
    public func up(drift: ((Presences) throws -> [LabDrift])? = nil) throws -> UpResult {
        let existing = presences()
        for entry in existing {
            if case .foreign(let reason) = entry.presence { throw OperationError("lab up", spec.name, reason) }
        }
        let host = try NamespaceHandle.host()
        let hostSession = try NetlinkSession(in: host, label: "host")
        for name in hostLinks {
            if let link = try? hostSession.link(.name(name)) {
                guard link.alias == plan.mark else {
                    throw OperationError("lab up", spec.name, "host interface \(name) exists and was not made by lab '\(spec.name)'")
                }
            }
        }
        let ours = existing.filter { $0.presence == .ours }
        if !ours.isEmpty {
            let drift = try drift?(existing) ?? status(presences: existing)
            if ours.count == existing.count && drift.isEmpty { return .alreadyUp }
            let missing = existing.filter { $0.presence == .absent }.map(\.name)
            let differences = "\(drift.count) difference\(drift.count == 1 ? "" : "s") from the file (`nsinspect lab status` lists them)"
            let state = ours.count == existing.count
                ? "lab is up but differs from the file: \(differences)"
                : "lab is partly up (\(ours.count) of \(existing.count) namespaces\(missing.isEmpty ? "" : ", missing \(missing.joined(separator: ", "))")\(drift.isEmpty ? "" : "; \(differences)"))"
            throw OperationError("lab up", spec.name, state + "; run `nsinspect lab down` first")
        }
        let run = BuildRun(builder: self, host: host, hostSession: hostSession)
        do {
            for (i, step) in plan.steps.enumerated() {
                progress?(i, plan.steps.count, step)
                do {
                    try run.execute(step)
                } catch {
                    throw OperationError("lab up", spec.name, "step \(i + 1) of \(plan.steps.count) (\(step)): \(OperationError.explain(error, withObject: true))")
                }
            }
            try run.saveHostState()
        } catch {
            run.rollBack()
            if var failure = error as? OperationError {
                failure.reason += "; removed everything this run made"
                throw failure
            }
            throw error
        }
        return .built(steps: plan.steps.count)
    }

    // MARK: down

    public struct DownResult: Equatable {
        /// What was removed, one line each.
        public var removed: [String] = []
        /// What was left because it is not this lab's.
        public var leftAlone: [String] = []
        public var wasUp: Bool { !removed.isEmpty }
    }

    /// Removes everything the lab made that is still there, also after a partial `up` or after parts were
    /// deleted by hand, and nothing that does not carry the lab's mark.
    public func down() throws -> DownResult {
        var result = DownResult()
        let host = try NamespaceHandle.host()
        let hostSession = try NetlinkSession(in: host, label: "host")
        let state = loadHostState()
        // Which of the lab's host links exist before anything is removed: those that vanish with their
        // namespace are reported as removed, those never there (a partial up) are not.
        let hostLinksBefore = Set(try hostSession.links(statistics: false).map(\.name))
        var hostLinksDone = false
        // Whose each namespace is, asked of all of them before any is removed: the kernel destroys
        // removed namespaces under the RTNL lock, and an RTM_GETLINK asked meanwhile waits behind it
        // (tens of milliseconds each, seconds for a large lab). Handles are not kept: a namespace held
        // open here would outlive its name.
        var presences: [String: Presence] = [:]
        for found in self.presences() { presences[found.name] = found.presence }
        for (i, step) in plan.teardown.enumerated() {
            progress?(i, plan.teardown.count, step)
            switch step {
            case .deleteRuleset(.host, let table):
                let nft = try Spawner(namespace: host).run(["nft", "delete", "table", "inet", table])
                if nft.status.succeeded { result.removed.append("host nftables table \(table)") }
            case .deleteRoute(.host, let route):
                if let spec = try? routeSpec(route, session: hostSession), (try? hostSession.deleteRoute(spec)) != nil {
                    result.removed.append("host route \(route)")
                }
            case .deleteLink:
                // All host links at once, after the namespaces (see LabPlan.teardown).
                if !hostLinksDone {
                    hostLinksDone = true
                    try deleteHostLinks(plan.teardown, session: hostSession, existing: hostLinksBefore, into: &result)
                }
            case .deleteNamespace(let name, _):
                switch presences[name] ?? .absent {
                case .absent: continue
                case .foreign(let reason): result.leftAlone.append(reason)
                case .ours:
                    // The namespace's own links go with it; its host-side veth ends with them.
                    try NetnsNames(directory: netnsDirectory, operation: "lab down").forget(name)
                    result.removed.append("namespace \(name)")
                }
            case .restoreSysctl(.host, let key):
                if let old = state[key] {
                    try Sysctl.write(key, old, in: host)
                    result.removed.append("host \(key) back to \(old)")
                }
            default:
                continue
            }
        }
        removeHostState()
        return result
    }

    /// The host's links of the lab that are still there, by one RTM_GETLINK dump. The host ends of veths
    /// whose other end was in a namespace just removed vanish on their own once the kernel's namespace
    /// cleanup runs (asynchronously, in a workqueue): they are waited for while they keep vanishing, and
    /// only what is left then (a namespace someone still holds, a bridge, a veth with both ends in the
    /// host) is deleted with RTM_DELLINK, and only when it carries the lab's mark.
    func deleteHostLinks(_ teardown: [LabStep], session: NetlinkSession, existing: Set<String>,
                         into result: inout DownResult) throws {
        let wanted = teardown.compactMap { step -> (LabInterfaceRef, String)? in
            if case .deleteLink(let ref, let mark) = step { (ref, mark) } else { nil }
        }
        let goingWithNamespace = Set(spec.veths.compactMap { veth -> String? in
            switch (veth.a.ref.place, veth.b.ref.place) {
            case (.host, .namespace): veth.a.ref.name
            case (.namespace, .host): veth.b.ref.name
            default: nil
            }
        })
        func present() throws -> [String: Link] {
            var byName: [String: Link] = [:]
            for link in try session.links(statistics: false) { byName[link.name] = link }
            return byName
        }
        var links = try present()
        // Marked host ends still waiting to go with their namespace.
        func waitingCount() -> Int {
            wanted.filter { goingWithNamespace.contains($0.0.name) && links[$0.0.name]?.alias == $0.1 }.count
        }
        var waiting = waitingCount()
        var lastProgress = monotonicNanoseconds()
        while waiting > 0 && monotonicNanoseconds() - lastProgress < 1_000_000_000 {
            usleep(20_000)
            links = try present()
            let now = waitingCount()
            if now < waiting { lastProgress = monotonicNanoseconds() }
            waiting = now
        }
        for (ref, mark) in wanted {
            guard let link = links[ref.name] else {
                if existing.contains(ref.name) { result.removed.append("host interface \(ref.name)") }
                continue
            }
            guard link.alias == mark else {
                result.leftAlone.append("host interface \(ref.name) (not made by lab '\(spec.name)')")
                continue
            }
            do {
                try session.deleteLink(.index(link.index))
            } catch let error as NetlinkError where error.errno == ENODEV {
                // Went with its peer (a veth whose other end was deleted just before).
            }
            result.removed.append("host interface \(ref.name)")
        }
    }

    // MARK: Host state between up and down

    private var statePath: String { "\(stateDirectory)/\(spec.name).sysctl" }

    /// The host's sysctls as they were before `up` (`key=value` lines).
    func loadHostState() -> [String: String] {
        guard let file = fopen(statePath, "r") else { return [:] }
        defer { fclose(file) }
        var values: [String: String] = [:]
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, 4096, file) != nil {
            let bytes = line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            let text = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            let parts = text.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        return values
    }

    func writeHostState(_ values: [(String, String)]) throws {
        guard !values.isEmpty else { return }
        var path = ""
        for part in stateDirectory.split(separator: "/") {
            path += "/" + part
            mkdir(path, 0o755)
        }
        guard let file = fopen(statePath, "w") else {
            throw OperationError("lab up", statePath, call: "open", errno: .current)
        }
        defer { fclose(file) }
        for (key, value) in values { fputs("\(key)=\(value)\n", file) }
    }

    func removeHostState() { unlink(statePath) }

    // MARK: Translation

    /// A lab route as netlink's RouteSpec in the given namespace.
    func routeSpec(_ route: LabRoute, session: NetlinkSession) throws -> RouteSpec {
        let type: UInt8
        switch route.kind {
        case .unicast: type = RouteType.unicast
        case .blackhole: type = RouteType.blackhole
        case .unreachable: type = RouteType.unreachable
        case .prohibit: type = RouteType.prohibit
        }
        return RouteSpec(destination: route.destination, gateway: route.gateway,
                         outputIndex: try route.device.map { try session.index(of: .name($0)) },
                         metric: route.metric, type: type, onlink: route.onlink)
    }
}

/// One run of `up`: the namespaces and sessions it has, and what it made (to roll back on failure).
private final class BuildRun {
    let builder: LabBuilder
    let host: NamespaceHandle
    let hostSession: NetlinkSession
    var handles: [String: NamespaceHandle] = [:]
    var sessions: [String: NetlinkSession] = [:]
    var madeNamespaces: [String] = []
    var madeHostLinks: [String] = []
    var addedHostRoutes: [RouteSpec] = []
    var loadedHostTable: String?
    var hostSysctls: [(String, String)] = []

    init(builder: LabBuilder, host: NamespaceHandle, hostSession: NetlinkSession) {
        self.builder = builder
        self.host = host
        self.hostSession = hostSession
    }

    func handle(_ place: LabPlace) -> NamespaceHandle? {
        switch place {
        case .host: nil
        case .namespace(let name): handles[name]
        }
    }

    func session(_ place: LabPlace) throws -> NetlinkSession {
        switch place {
        case .host: return hostSession
        case .namespace(let name):
            if let s = sessions[name] { return s }
            guard let h = handles[name] else { throw OperationError("", name, "namespace not created yet") }
            let s = try NetlinkSession(in: h, label: name)
            sessions[name] = s
            return s
        }
    }

    func execute(_ step: LabStep) throws {
        switch step {
        case .createNamespace(let name):
            let ns = try NamespaceThread.createNamespace()
            try NetnsNames(directory: builder.netnsDirectory, operation: "lab up").bind(ns, as: name)
            madeNamespaces.append(name)
            handles[name] = ns
        case .setAlias(let ref, let alias):
            try session(ref.place).setAlias(.name(ref.name), alias)
        case .createBridge(let link):
            try session(link.ref.place).addBridge(link.ref.name)
            if link.ref.place == .host { madeHostLinks.append(link.ref.name) }
            try applyLinkOptions(link)
        case .createVeth(let a, let b):
            // Created from the host, each end placed straight into its namespace (IFLA_NET_NS_FD).
            try hostSession.addVeth(a.ref.name, in: handle(a.ref.place), peer: b.ref.name, peerIn: handle(b.ref.place))
            for end in [a, b] where end.ref.place == .host { madeHostLinks.append(end.ref.name) }
            try applyLinkOptions(a)
            try applyLinkOptions(b)
        case .setMaster(let ref, let bridge):
            try session(ref.place).setMaster(.name(ref.name), master: .name(bridge))
        case .setSysctl(let place, let key, let value):
            if place == .host {
                let old = try Sysctl.read(key, in: host)
                if !hostSysctls.contains(where: { $0.0 == key }) { hostSysctls.append((key, old)) }
                try Sysctl.write(key, value, in: host)
            } else {
                try Sysctl.write(key, value, in: handle(place))
            }
        case .addAddress(let ref, let prefix):
            try session(ref.place).addAddress(prefix, dev: .name(ref.name), noDAD: prefix.family == .v6)
        case .setLinkUp(let ref):
            try session(ref.place).setUp(.name(ref.name))
        case .addRoute(let place, let route):
            let s = try session(place)
            let spec = try builder.routeSpec(route, session: s)
            try s.addRoute(spec)
            if place == .host { addedHostRoutes.append(spec) }
        case .loadRuleset(let place, let table, let text):
            let spawner = Spawner(namespace: place == .host ? host : handle(place))
            let nft = try spawner.run(["nft", "-f", "-"], input: Array(text.utf8))
            guard nft.status.succeeded else {
                let first = nft.output.split(separator: "\n").first.map(String.init) ?? nft.status.description
                throw OperationError("", "nft -f in \(place)", first)
            }
            if place == .host { loadedHostTable = table }
        case .deleteRuleset, .deleteRoute, .deleteLink, .deleteNamespace, .restoreSysctl:
            break
        }
    }

    func applyLinkOptions(_ link: LabNewLink) throws {
        guard link.mac != nil || link.mtu != nil else { return }
        try session(link.ref.place).setLink(.name(link.ref.name),
                                            LinkChanges(mtu: link.mtu.map(UInt32.init), address: link.mac))
    }

    func saveHostState() throws {
        try builder.writeHostState(hostSysctls)
    }

    /// Removes what this run made, newest first; every step is tried even if one fails.
    func rollBack() {
        sessions.removeAll()
        if let table = loadedHostTable {
            _ = try? Spawner(namespace: host).run(["nft", "delete", "table", "inet", table])
        }
        for route in addedHostRoutes.reversed() { try? hostSession.deleteRoute(route) }
        for name in madeHostLinks.reversed() { try? hostSession.deleteLink(.name(name)) }
        let names = NetnsNames(directory: builder.netnsDirectory, operation: "lab up")
        for name in madeNamespaces.reversed() { _ = try? names.forget(name) }
        handles.removeAll()
        for (key, old) in hostSysctls.reversed() { try? Sysctl.write(key, old, in: host) }
    }
}
