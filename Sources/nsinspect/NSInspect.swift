#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import CShim
import ProcNS

@main
struct NSInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nsinspect",
        abstract: "Find, name, inspect and trace every network namespace on this host.",
        discussion: """
            A namespace reference NS is, everywhere: a name in /var/run/netns, pid:1234, ino:4026532178 \
            (or net:[4026532178]), a path to a namespace file, docker:NAME, podman:NAME, containerd:ID, \
            nspawn:MACHINE, mininet:h1, or host.
            """,
        version: NSInspect.version,
        subcommands: [DemoCommand.self, ListCommand.self, ShowCommand.self, DumpCommand.self, GraphCommand.self, PathCommand.self, TraceCommand.self, LabCommand.self, SnapshotCommand.self, DiffCommand.self, WatchCommand.self, ConntrackCommand.self, NatcheckCommand.self, AdoptCommand.self, ForgetCommand.self, ExecCommand.self, ServeCommand.self]
    )

    static let version = "0.1.0"

    /// Runs the command and turns every error into one line on stderr and a non-zero exit status.
    static func main() {
        // `nsinspect --version` is what scripts and packagers run most: answered before ArgumentParser,
        // whose reflection over the command tree (conformance scans in the Swift runtime) is 2.5 of the
        // 4.2 ms it took (`Benchmarks/floor.sh`; perf record of --version).
        if CommandLine.arguments.dropFirst() == ["--version"] {
            Output.write(version + "\n")
            Glibc.exit(0)
        }
        StopRequest.unblockSignals()
        processStartNanoseconds = monotonicNanoseconds()
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            usageError(error, operation: subcommandName(CommandLine.arguments.dropFirst()))
        }
        do {
            try command.run()
        } catch var error as OperationError {
            if error.operation.isEmpty {
                error.operation = (type(of: command) as? any NSCommand.Type)?.operationName ?? "nsinspect"
            }
            Output.warn(error.description)
            Glibc.exit(1)
        } catch let error as ExitCode {
            Glibc.exit(error.rawValue)
        } catch {
            // `--help` (and a root command run without a subcommand) parse into ArgumentParser's own help
            // command, whose run() throws the help request: ArgumentParser prints it and exits 0 (and a
            // ValidationError thrown from run() gets its usage line). Only other errors are ours to print.
            let operation = (type(of: command) as? any NSCommand.Type)?.operationName ?? "nsinspect"
            if exitCode(for: error) != .failure { usageError(error, operation: operation) }
            Output.warn("\(operation): \(error)")
            Glibc.exit(1)
        }
    }
}

extension NSInspect {
    /// A command line that does not parse or validate: one line, `OPERATION: MESSAGE`, and exit status 64
    /// (EX_USAGE), the usage only on request (`--help`). Help and version requests print as usual.
    static func usageError(_ error: any Error, operation: String) -> Never {
        let code = exitCode(for: error)
        if code == .success { exit(withError: error) }
        var text = message(for: error)
        if text.hasPrefix("Error: ") { text.removeFirst(7) }
        Output.warn("\(operation): \(text.split(separator: "\n").first.map(String.init) ?? text)")
        Glibc.exit(code.rawValue)
    }

    /// The subcommand a command line names (`lab up`, `trace`), for its errors.
    static func subcommandName(_ arguments: ArraySlice<String>) -> String {
        var names: [String] = []
        var commands: [ParsableCommand.Type] = configuration.subcommands
        for argument in arguments {
            guard let next = commands.first(where: { $0.configuration.commandName == argument }) else { break }
            names.append(argument)
            commands = next.configuration.subcommands
        }
        return names.isEmpty ? "nsinspect" : names.joined(separator: " ")
    }
}

/// When main() began (CLOCK_MONOTONIC), for start-up figures that include the census and the path
/// prediction, not only loading the BPF programs. Written once, before any other thread exists.
nonisolated(unsafe) var processStartNanoseconds: UInt64 = 0
