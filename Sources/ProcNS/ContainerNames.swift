#if canImport(Glibc)
import Glibc
#endif
import JSONKit

/// A container runtime's reference to a container, read from a process's cgroup path.
enum ContainerRef: Hashable {
    case docker(id: String)
    case podman(id: String)
    case containerd(id: String)
    case nspawn(machine: String)

    /// A quick byte test before parsing: most processes' cgroups name no container runtime at all.
    static func mayName(cgroup bytes: [UInt8]) -> Bool {
        let markers: [[UInt8]] = ["docker", "libpod", "containerd", "kubepods", "machine-"].map { Array($0.utf8) }
        guard bytes.count >= 6 else { return false }
        for i in 0..<(bytes.count - 5) {
            let b = bytes[i]
            guard b == UInt8(ascii: "d") || b == UInt8(ascii: "l") || b == UInt8(ascii: "c") || b == UInt8(ascii: "k")
                || b == UInt8(ascii: "m")
            else { continue }
            for marker in markers where bytes[i...].starts(with: marker) { return true }
        }
        return false
    }

    /// Whether a process in this cgroup may have been started by a container runtime whose cgroups do
    /// not name the container: nspawn's `…/payload` (without machined), or a 64-hex-digit container id
    /// under a parent nobody recognises (`--cgroup-parent`). Only then is its parent process asked, so
    /// the census does not read two more files for every process in a namespace of its own.
    static func mayHaveRuntimeParent(cgroup bytes: [UInt8]) -> Bool {
        if mayName(cgroup: bytes) { return true }
        let payload = Array("payload".utf8)
        var hexRun = 0
        for (i, b) in bytes.enumerated() {
            let isHex = (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))
            hexRun = isHex ? hexRun + 1 : 0
            if hexRun == 64 { return true }
            if b == UInt8(ascii: "p"), bytes[i...].starts(with: payload) { return true }
        }
        return false
    }

    /// Parses /proc/PID/cgroup (cgroup v2 `0::/path`, or v1 lines `N:controllers:/path`).
    /// Recognised forms: `docker-ID.scope` and `/docker/ID` (Docker's systemd and cgroupfs drivers),
    /// `libpod-ID.scope` and `/libpod_parent/libpod-ID` (podman with systemd, or cgroupfs where PID 1 is not
    /// systemd), `cri-containerd-ID.scope` and `/kubepods…/ID` (containerd),
    /// `machine.slice/machine-NAME.scope` and `machine.slice/systemd-nspawn@NAME.service` (systemd-nspawn
    /// registered with machined, or started by `machinectl start`).
    static func parse(cgroup text: String) -> ContainerRef? {
        for line in text.split(separator: "\n") {
            guard let pathStart = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).last
            else { continue }
            let components = pathStart.split(separator: "/")
            for (i, component) in components.enumerated().reversed() {
                if let id = hexID(component, prefix: "docker-", suffix: ".scope") { return .docker(id: id) }
                if let id = hexID(component, prefix: "libpod-", suffix: ".scope") ?? hexID(component, prefix: "libpod-", suffix: "") {
                    return .podman(id: id)  // systemd's scope, or cgroupfs's /libpod_parent/libpod-ID
                }
                if let id = hexID(component, prefix: "cri-containerd-", suffix: ".scope") { return .containerd(id: id) }
                if i > 0, let id = hexID(component, prefix: "", suffix: "") {
                    if components[i - 1] == "docker" { return .docker(id: id) }
                    if components[..<i].contains(where: { $0.hasPrefix("kubepods") }) { return .containerd(id: id) }
                }
                if component.hasPrefix("machine-"), component.hasSuffix(".scope"), i > 0,
                    components[i - 1] == "machine.slice"
                {
                    let escaped = component.dropFirst("machine-".count).dropLast(".scope".count)
                    return .nspawn(machine: unescapeSystemdUnit(String(escaped)))
                }
                // `machinectl start NAME` runs systemd-nspawn@NAME.service in machine.slice.
                if component.hasPrefix("systemd-nspawn@"), component.hasSuffix(".service"), i > 0,
                    components[i - 1] == "machine.slice"
                {
                    let instance = component.dropFirst("systemd-nspawn@".count).dropLast(".service".count)
                    if !instance.isEmpty { return .nspawn(machine: unescapeSystemdUnit(String(instance))) }
                }
            }
        }
        return nil
    }

    /// A 64-hex-digit container id between a prefix and a suffix.
    private static func hexID(_ s: Substring, prefix: String, suffix: String) -> String? {
        guard s.hasPrefix(prefix), s.hasSuffix(suffix), s.count == prefix.count + 64 + suffix.count else { return nil }
        let id = s.dropFirst(prefix.count).dropLast(suffix.count)
        guard id.allSatisfy({ $0.isHexDigit }) else { return nil }
        return String(id)
    }

    /// systemd escapes `-` and other bytes in unit names as `\xNN`.
    static func unescapeSystemdUnit(_ s: String) -> String {
        var out: [UInt8] = []
        let bytes = Array(s.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count, bytes[i + 1] == UInt8(ascii: "x"),
                let v = UInt8(String(decoding: bytes[(i + 2)...(i + 3)], as: UTF8.self), radix: 16)
            {
                out.append(v)
                i += 4
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Mininet runs each host as `bash --norc -is mininet:h1` (through mnexec); the argument names the host.
enum MininetName {
    static func parse(cmdline: [UInt8]) -> String? {
        for argument in cmdline.split(separator: 0) where argument.starts(with: "mininet:".utf8) {
            let name = String(decoding: argument.dropFirst("mininet:".count), as: UTF8.self)
            if !name.isEmpty { return name }
        }
        return nil
    }

    /// The process whose command line names Mininet node `name`, wherever it runs (a switch's or a
    /// controller's shell stays in the host namespace, so the census gives the host no Mininet name).
    /// Reads every process's command line: only for the error of a reference that matched nothing.
    static func process(named name: String, procRoot: String) -> Int32? {
        let own = getpid()  // whose own command line names it (`nsinspect show mininet:s1`)
        for pid in (try? ProcDirectory.pids(procRoot)) ?? [] {
            guard pid != own,
                case .success(let cmdline) = Sys.readFile("\(procRoot)/\(pid)/cmdline", limit: 4096, shortReadEnds: true),
                parse(cmdline: cmdline) == name
            else { continue }
            return pid
        }
        return nil
    }
}

/// Container names from the runtimes' own state, read only when a container was seen: their files on
/// disk (also through a daemon's own mount namespace, `/proc/PID/root`, for a dockerd whose data root the
/// host cannot see), and the command lines of the processes they leave next to each container (podman's
/// conmon `-c ID -n NAME`, the containerd shim `-namespace moby -id ID`, `systemd-nspawn -M NAME`).
struct ContainerRegistry {
    struct DockerContainer {
        var id: String
        var name: String
        var sandboxKey: String?
    }

    let dockerRoot: String
    let podmanRoot: String
    let procRoot: String
    /// What the files said so far; the runtime processes are asked (once) only for an id they do not name.
    private var docker: [DockerContainer]?
    private var dockerDaemonsRead = false
    private var podman: [String: String]?
    private var conmonsRead = false

    init(dockerRoot: String, podmanRoot: String, procRoot: String = "/proc") {
        self.dockerRoot = dockerRoot
        self.podmanRoot = podmanRoot
        self.procRoot = procRoot
    }

    /// The runtime's daemons (only asked when a container's files did not name it).
    private func runtimeProcesses(named names: Set<String>) -> [Int32] {
        ProcDirectory.processes(named: names, procRoot: procRoot)
    }

    func arguments(pid: Int32) -> [String] { ProcDirectory.arguments(pid: pid, procRoot: procRoot) }

    /// The value of an option in an argument list: `-x V`, `--long V` or `--long=V`.
    static func option(_ arguments: [String], _ names: [String]) -> String? {
        for (i, argument) in arguments.enumerated() {
            for name in names {
                if argument == name, i + 1 < arguments.count { return arguments[i + 1] }
                if name.hasPrefix("--"), argument.hasPrefix(name + "=") { return String(argument.dropFirst(name.count + 1)) }
            }
        }
        return nil
    }

    /// Docker: DOCKER_ROOT/containers/ID/config.v2.json holds `Name` ("/web") and
    /// `NetworkSettings.SandboxKey` (the bind mount in /run/docker/netns). Read from the default data root;
    /// for a container not found there, also from every running dockerd's own (`--data-root`, seen
    /// through /proc/PID/root: a daemon in its own mount namespace, as in docker-in-docker, keeps it out
    /// of the host's view).
    mutating func dockerContainer(where match: (DockerContainer) -> Bool) -> DockerContainer? {
        if docker == nil { docker = Self.dockerContainers(in: [dockerRoot], skipping: []) }
        if let found = docker!.first(where: match) { return found }
        guard !dockerDaemonsRead else { return nil }
        dockerDaemonsRead = true
        let roots = runtimeProcesses(named: ["dockerd"]).map { pid in
            "\(procRoot)/\(pid)/root" + (Self.option(arguments(pid: pid), ["--data-root", "-g", "--graph"]) ?? "/var/lib/docker")
        }
        docker! += Self.dockerContainers(in: roots, skipping: Set(docker!.map(\.id)))
        return docker!.first(where: match)
    }

    private static func dockerContainers(in roots: [String], skipping known: Set<String>) -> [DockerContainer] {
        var found: [DockerContainer] = []
        var seen = known
        for root in roots {
            guard case .success(let entries) = Sys.listDirectory(root + "/containers") else { continue }
            for entry in entries where !seen.contains(entry.name) {
                guard case .success(let bytes) = Sys.readFile("\(root)/containers/\(entry.name)/config.v2.json"),
                    let json = try? JSON.parse(bytes)
                else { continue }
                let id = json["ID"]?.stringValue ?? entry.name
                seen.insert(id)
                var name = json["Name"]?.stringValue ?? String(id.prefix(12))
                if name.hasPrefix("/") { name.removeFirst() }
                found.append(DockerContainer(id: id, name: name,
                                             sandboxKey: json["NetworkSettings"]?["SandboxKey"]?.stringValue))
            }
        }
        return found
    }

    /// Podman: the store's GRAPHROOT/DRIVER-containers/containers.json (`{"id": …, "names": ["web"]}`);
    /// for an id not found there (another storage root), each conmon process's `-c ID -n NAME`.
    mutating func podmanName(id: String) -> String? {
        if podman == nil { podman = Self.podmanStore(podmanRoot) }
        if let name = podman![id] { return name }
        guard !conmonsRead else { return nil }
        conmonsRead = true
        for pid in runtimeProcesses(named: ["conmon"]) {
            let args = arguments(pid: pid)
            if let id = Self.option(args, ["-c", "--cid"]), let name = Self.option(args, ["-n", "--name"]) { podman![id] = name }
        }
        return podman![id]
    }

    private static func podmanStore(_ root: String) -> [String: String] {
        var names: [String: String] = [:]
        guard case .success(let entries) = Sys.listDirectory(root) else { return names }
        for entry in entries where entry.name.hasSuffix("-containers") {
            guard case .success(let bytes) = Sys.readFile("\(root)/\(entry.name)/containers.json"),
                let json = try? JSON.parse(bytes), let list = json.arrayValue
            else { continue }
            for container in list {
                if let id = container["id"]?.stringValue, let name = container["names"]?[0]?.stringValue { names[id] = name }
            }
        }
        return names
    }

    /// The name for a container reference; unknown ids fall back to their first 12 digits.
    mutating func name(for ref: ContainerRef) -> NamespaceName {
        switch ref {
        case .docker(let id):
            let name = dockerContainer(where: { $0.id == id })?.name ?? String(id.prefix(12))
            return NamespaceName(kind: .docker, name: name, detail: String(id.prefix(12)))
        case .podman(let id):
            return NamespaceName(kind: .podman, name: podmanName(id: id) ?? String(id.prefix(12)), detail: String(id.prefix(12)))
        case .containerd(let id):
            return NamespaceName(kind: .containerd, name: String(id.prefix(12)), detail: id)
        case .nspawn(let machine):
            return NamespaceName(kind: .nspawn, name: machine)
        }
    }

    /// A container's name from the runtime process that started it (the parent of its first process):
    /// podman's conmon, the containerd shim (Docker's containers are in containerd namespace `moby`), or
    /// systemd-nspawn, which names its machine with -M/--machine or after its directory (-D) or image
    /// (-i), as nspawn itself does when it registers with machined.
    mutating func nameFromParent(of pid: Int32, parent: Int32, parentCommand: String) -> NamespaceName? {
        switch parentCommand {
        case "conmon":
            let args = arguments(pid: parent)
            guard let id = Self.option(args, ["-c", "--cid"]) else { return nil }
            let name = Self.option(args, ["-n", "--name"]) ?? podmanName(id: id) ?? String(id.prefix(12))
            return NamespaceName(kind: .podman, name: name, detail: String(id.prefix(12)))
        case "systemd-nspawn":
            return NspawnName.machine(arguments: arguments(pid: parent)).map { NamespaceName(kind: .nspawn, name: $0) }
        default:
            guard parentCommand.hasPrefix("containerd-shim") else { return nil }
            let args = arguments(pid: parent)
            guard let id = Self.option(args, ["-id"]) else { return nil }
            if Self.option(args, ["-namespace"]) == "moby" { return name(for: .docker(id: id)) }
            return name(for: .containerd(id: id))
        }
    }

    /// Docker keeps each container's namespace as a bind mount /run/docker/netns/SANDBOX: the container
    /// whose SandboxKey it is, or else (`isSandboxOnly`) the sandbox id, a name only for a namespace that
    /// nothing else names.
    mutating func dockerName(forMount path: String) -> (name: NamespaceName, isSandboxOnly: Bool)? {
        let (parent, base) = splitPath(path)
        guard parent == "/run/docker/netns" || parent == "/var/run/docker/netns" else { return nil }
        if let container = dockerContainer(where: { ($0.sandboxKey.map { splitPath($0).base }) == base }) {
            return (NamespaceName(kind: .docker, name: container.name, detail: String(container.id.prefix(12))), false)
        }
        return (NamespaceName(kind: .docker, name: base, detail: "sandbox \(base)"), true)
    }
}

/// systemd-nspawn's machine name, from its own command line: `-M NAME`/`--machine=NAME`, else the last
/// component of `-D DIR`/`--directory=DIR` or of `-i IMAGE` without its suffix, as nspawn derives it.
enum NspawnName {
    static func machine(arguments: [String]) -> String? {
        if let name = ContainerRegistry.option(arguments, ["-M", "--machine"]), !name.isEmpty { return name }
        if let directory = ContainerRegistry.option(arguments, ["-D", "--directory"]) {
            let base = directory.split(separator: "/").last.map(String.init) ?? ""
            return base.isEmpty ? nil : base
        }
        if let image = ContainerRegistry.option(arguments, ["-i", "--image"]) {
            var base = image.split(separator: "/").last.map(String.init) ?? ""
            for suffix in [".raw", ".img"] where base.hasSuffix(suffix) { base.removeLast(suffix.count) }
            return base.isEmpty ? nil : base
        }
        return nil
    }
}
