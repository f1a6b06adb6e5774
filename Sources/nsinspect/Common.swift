#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import ProcNS

/// Flags every command shares.
struct CommonOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON (field names follow `ip -j` where ip has the same thing).")
    var json = false

    @Flag(name: [.short, .long], help: "Say more: what the scan could not read, kernel details.")
    var verbose = false
}

/// A subcommand whose errors are printed as `OPERATION: OBJECT: REASON` (docs/design.md).
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

/// Range checks for numeric options, run where they are parsed (`validate()`), so a bad number is one
/// line (`trace: --count: must be 1–1000, got 0`, exit 64) and never reaches arithmetic that could trap.
enum OptionCheck {
    static func range<T: Comparable>(_ option: String, _ value: T?, _ range: ClosedRange<T>) throws {
        guard let value, !range.contains(value) else { return }
        throw ValidationError("\(option): must be \(range.lowerBound)–\(range.upperBound), got \(value)")
    }

    /// The longest a `--duration` may be: a week, in seconds.
    static let maximumSeconds = 7.0 * 86_400

    /// A finite, positive number of seconds up to a week.
    static func seconds(_ option: String, _ value: Double?) throws {
        guard let value else { return }
        guard value.isFinite, value > 0, value <= maximumSeconds else {
            throw ValidationError("\(option): must be a number of seconds above 0 and at most \(Int(maximumSeconds)) (a week), got \(value)")
        }
    }

}
