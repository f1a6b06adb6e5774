#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import ProcNS

/// Flags every command shares.
struct CommonOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON (field names follow `ip -j` where ip has the same thing).")
    var json = false

    @Flag(name: [.short, .long], help: "Say more: what the scan could not read, kernel details.")
    var verbose = false
}

/// A subcommand whose errors are printed as `OPERATION: OBJECT: REASON` (DESIGN.md §4).
protocol NSCommand: ParsableCommand {
    static var operationName: String { get }
}

extension NSCommand {
    static var operationName: String { configuration.commandName ?? "nsinspect" }
}

/// Lowers the privileges check into one place: which capabilities a command needs, named in the error.
func requireCapabilities(_ capabilities: [Capability], for operation: String) throws(OperationError) {
    try Capability.require(capabilities, for: operation)
}
