#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import CShim
import JSONKit
import Lab
import Netlink
import Probes
import ProcNS

struct LabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Namespace labs from YAML: build, check, enter and remove them.",
        discussion: "The lab format is described in the README and docs/lab-format.md; pyns2 files are read as they are.",
        subcommands: [LabUp.self, LabDown.self, LabStatus.self, LabExec.self, LabTest.self]
    )
}

/// The lab file of every `lab` subcommand, read and validated before anything is touched.
struct LabFileArgument: ParsableArguments {
    @Argument(help: "The lab file (our YAML schema or pyns2's).") var file: String

    /// Reads and validates the file; every problem is printed as `OPERATION: FILE:LINE:COL: message`.
    func load(_ operation: String) throws -> LabSpec {
        let text = try TextFile.read(file, operation: operation)
        do {
            return try LabFile.load(text, path: file).spec
        } catch {
            for problem in error.operationErrors(operation) { Output.warn(problem.description) }
            throw ExitCode(1)
        }
    }
}

/// A progress line on stderr, for labs that take longer than a moment, and only on a terminal.
final class ProgressLine {
    private let start = monotonicNanoseconds()
    private let operation: String
    private var shown = false
    private let enabled = isatty(2) == 1

    init(_ operation: String) { self.operation = operation }

    func update(_ done: Int, _ total: Int, _ what: String) {
        guard enabled, shown || monotonicNanoseconds() - start > 500_000_000 else { return }
        shown = true
        let text = "\(operation): [\(done + 1)/\(total)] \(what)"
        Output.warnRaw("\r\u{1B}[K" + String(text.prefix(120)))
    }

    func finish() { if shown { Output.warnRaw("\r\u{1B}[K") } }
}

struct LabUp: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Build the lab over netlink (namespaces named in /var/run/netns, links, addresses, routes, sysctls, nftables rules).",
        discussion: """
            Nothing is created if the file has a problem. A lab that is already up is left as it is. If a \
            step fails, everything this run made is removed and the step is named. A namespace or host \
            interface of the same name that the lab did not make is never touched. --dry-run prints the \
            steps as the equivalent ip/sysctl/nft commands.
            """
    )
    static var operationName: String { "lab up" }

    @OptionGroup var lab: LabFileArgument
    @Flag(help: "Print the steps, change nothing.") var dryRun = false

    func run() throws {
        let spec = try lab.load("lab up")
        if dryRun {
            for step in LabPlan.make(spec).steps { Output.line(step.description) }
            return
        }
        try requireCapabilities([.sysAdmin, .netAdmin], for: "lab up")
        let builder = LabBuilder(spec: spec)
        let progress = ProgressLine("lab up")
        builder.progress = { done, total, step in progress.update(done, total, step.description) }
        let started = monotonicNanoseconds()
        defer { progress.finish() }
        switch try builder.up(drift: { try LabStatus.drift(builder, $0) }) {
        case .alreadyUp:
            progress.finish()
            Output.line("lab \(spec.name) is already up; nothing changed")
        case .built(let steps):
            progress.finish()
            let ms = (monotonicNanoseconds() - started) / 1_000_000
            Output.line("lab \(spec.name) is up: \(spec.namespaces.count) namespace\(spec.namespaces.count == 1 ? "" : "s"), \(spec.veths.count) veth pair\(spec.veths.count == 1 ? "" : "s"), \(steps) steps in \(ms) ms")
        }
    }
}

struct LabDown: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Remove everything the lab made, and nothing else.",
        discussion: "Works after a partial `up` and after parts were removed by hand. A lab that is not up is reported, with exit status 0."
    )
    static var operationName: String { "lab down" }

    @OptionGroup var lab: LabFileArgument

    func run() throws {
        let spec = try lab.load("lab down")
        try requireCapabilities([.sysAdmin, .netAdmin], for: "lab down")
        let builder = LabBuilder(spec: spec)
        let progress = ProgressLine("lab down")
        builder.progress = { done, total, step in progress.update(done, total, step.description) }
        let result = try builder.down()
        progress.finish()
        for item in result.leftAlone { Output.warn("lab down: left alone: \(item)") }
        if result.wasUp {
            Output.line("lab \(spec.name) is down: removed \(result.removed.joined(separator: ", "))")
        } else {
            Output.line("lab \(spec.name) is not up; nothing to remove")
        }
    }
}

struct LabStatus: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Compare the lab file with what is on the machine (drift); exit status 1 if they differ.",
        discussion: "Missing, extra or changed namespaces, links, addresses, routes and sysctls, read over netlink."
    )
    static var operationName: String { "lab status" }

    @OptionGroup var lab: LabFileArgument
    @OptionGroup var common: CommonOptions

    func run() throws {
        let spec = try lab.load("lab status")
        // Reading inside the lab's namespaces means entering them, which needs CAP_SYS_ADMIN.
        try requireCapabilities([.sysAdmin], for: "lab status")
        let builder = LabBuilder(spec: spec)
        let presences = builder.presences()
        let drift = try Self.drift(builder, presences)
        if common.json {
            var o = JSONObjectBuilder()
            o.add("lab", spec.name)
            // "up": every namespace of the lab is there and is the lab's; "matches": nothing differs.
            o.add("up", presences.allSatisfy { $0.presence == .ours })
            o.add("matches", drift.isEmpty)
            o.add("drift", .array(drift.map { d in
                var x = JSONObjectBuilder()
                x.add("kind", d.kind.rawValue); x.add("what", d.what); x.add("detail", d.detail)
                return x.json
            }))
            Output.json(o.json)
        } else if drift.isEmpty {
            Output.line("lab \(spec.name) is up and matches \(lab.file)")
        } else {
            let missingAll = drift.filter { $0.kind == .missing && $0.what.hasPrefix("namespace ") }.count == spec.namespaces.count
            Output.line(missingAll ? "lab \(spec.name) is not up" : "lab \(spec.name) differs from \(lab.file):")
            if !missingAll {
                var table = Table("DRIFT", "WHAT", "DETAIL")
                for d in drift { table.add(d.kind.rawValue, d.what, d.detail ?? "") }
                Output.write(table.render())
            }
        }
        if !drift.isEmpty { throw ExitCode(1) }
    }
}

extension LabStatus {
    /// Everything that differs between the file and the machine: what `LabBuilder.status` checks
    /// (presence, host marks, sysctls), then links, addresses and routes from a snapshot of the lab's
    /// namespaces that are there and of the host, diffed against the file written as a snapshot.
    static func drift(_ builder: LabBuilder, _ presences: LabBuilder.Presences) throws -> [LabDrift] {
        let drift = try builder.status(presences: presences)
        let present = presences.filter { $0.presence == .ours }.map(\.name)
        let live = try SnapshotDocument.now(LabDeclaration.references(present: present))
        let difference = try SnapshotDiff.compare(LabDeclaration.document(builder.spec), live, options: DiffOptions(declared: true))
        return drift + LabDeclaration.drift(difference)
    }
}

struct LabExec: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command in one of the lab's namespaces (exec with the lab's names).",
        discussion: "nsinspect exits with the command's exit status."
    )
    static var operationName: String { "lab exec" }

    @OptionGroup var lab: LabFileArgument
    @Argument(help: "A namespace of the lab.") var namespace: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).") var command: [String] = []

    func run() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        guard !argv.isEmpty else { throw OperationError("lab exec", namespace, "no command given (nsinspect lab exec FILE NS -- CMD …)") }
        let spec = try lab.load("lab exec")
        let names = spec.namespaces.compactMap { if case .namespace(let n) = $0.place { n } else { nil } }
        guard names.contains(namespace) || namespace == "host" else {
            throw OperationError("lab exec", namespace, "not a namespace of lab \(spec.name) (its namespaces: \(names.joined(separator: ", ")))")
        }
        try requireCapabilities([.sysAdmin], for: "lab exec")
        let handle: NamespaceHandle
        if namespace == "host" {
            handle = try NamespaceHandle.host()
        } else {
            let (presence, found) = LabBuilder(spec: spec).presence(of: namespace)
            switch presence {
            case .absent: throw OperationError("lab exec", namespace, "lab \(spec.name) is not up (nsinspect lab up \(lab.file))")
            case .foreign(let reason): throw OperationError("lab exec", namespace, reason)
            case .ours: handle = found!
            }
        }
        var spawner = Spawner(namespace: handle)
        spawner.privateMounts = true
        spawner.etcName = namespace == "host" ? nil : namespace
        let result = try spawner.runInForeground(argv)
        if let reason = result.couldNotStart { Output.warn("lab exec: \(argv[0]): \(reason)") }
        throw ExitCode(result.code)
    }
}

struct LabTest: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Check the lab's expect: block against the running lab; exit status 1 on any failure.",
        discussion: "reach/unreachable (ICMP echo, or UDP to a listener), ttl (of the echo reply), hops (from the reply TTL), nat (classified by measurement)."
    )
    static var operationName: String { "lab test" }

    @OptionGroup var lab: LabFileArgument
    @OptionGroup var common: CommonOptions

    func run() throws {
        let spec = try lab.load("lab test")
        try requireCapabilities([.sysAdmin, .netRaw], for: "lab test")
        let builder = LabBuilder(spec: spec)
        var handles: [LabPlace: NamespaceHandle] = [.host: try NamespaceHandle.host()]
        for entry in builder.presences() {
            switch entry.presence {
            case .ours: handles[.namespace(entry.name)] = entry.handle
            case .absent: throw OperationError("lab test", spec.name, "lab is not up: namespace \(entry.name) is missing (nsinspect lab up \(lab.file))")
            case .foreign(let reason): throw OperationError("lab test", spec.name, reason)
            }
        }
        let checks = LabTester(spec: spec, handles: handles, prober: SocketProber()).run()
        if common.json {
            Output.json(.array(checks.map { c in
                var o = JSONObjectBuilder()
                o.add("result", c.outcome.rawValue.lowercased()); o.add("expect", c.expectation); o.add("observed", c.observed)
                o.add("line", c.position.line)
                return o.json
            }))
        } else {
            for c in checks {
                let label = c.outcome == .pass ? Output.styled("PASS", .green) : c.outcome == .fail ? Output.styled("FAIL", .red) : Output.styled("SKIP", .yellow)
                Output.line("\(label)  \(c.expectation): \(c.observed)")
            }
            let failed = checks.filter { $0.outcome == .fail }.count
            if checks.isEmpty {
                Output.line("\(lab.file) has no expect: block; nothing to check")
            } else {
                Output.line("\(checks.count - failed) of \(checks.count) expectations hold" + (failed > 0 ? "; \(failed) failed" : ""))
            }
        }
        if checks.contains(where: { $0.outcome == .fail }) { throw ExitCode(1) }
    }
}
