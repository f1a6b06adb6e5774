#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import CShim
import ProcNS

struct ExecCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command inside any namespace, as `ip netns exec` does.",
        discussion: """
            The command gets a private mount namespace with /sys remounted, so /sys/class/net shows the \
            namespace's interfaces (and /etc/netns/NAME/* over /etc for named namespaces). nsinspect exits \
            with the command's exit status (128+N if it was killed by signal N).
            """
    )

    @Argument(help: "The namespace (NS reference).") var reference: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).") var command: [String] = []

    func run() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        guard !argv.isEmpty else {
            throw OperationError("exec", reference, "no command given: put it after the namespace, e.g. `nsinspect exec \(reference) -- ip addr`")
        }
        try requireCapabilities([.sysAdmin], for: "exec")
        var resolver = NamespaceResolver()
        let parsed = try NamespaceReference.parse(reference)
        let handle = try resolver.resolve(parsed)
        var spawner = Spawner(namespace: handle)
        spawner.privateMounts = true
        if case .name(let name) = parsed { spawner.etcName = name }
        // A command that cannot start exits 127 (not found) or 126 (not executable), as in a shell.
        let result = try spawner.runInForeground(argv)
        if let reason = result.couldNotStart { Output.warn("exec: \(argv[0]): \(reason)") }
        throw ExitCode(result.code)
    }
}
