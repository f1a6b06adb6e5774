#if canImport(Glibc)
import Glibc
#endif
import CBPF
import Synchronization

/// Where libbpf's messages go (libbpf_set_print). Silent unless a handler is set (`--verbose`); warnings are
/// also kept, so a failed load can say what libbpf and the verifier said.
public enum LibBPFLog {
    public enum Level: Int, Sendable, Comparable {
        case warning = 0, info = 1, debug = 2

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    public typealias Handler = @Sendable (Level, String) -> Void

    private struct State {
        var handler: Handler?
        var maximumLevel: Level = .info
        var installed = false
        /// The latest warnings, for error messages (bounded).
        var warnings: [String] = []
    }

    private static let state = Mutex(State())
    private static let keptWarnings = 64

    /// Sends libbpf's messages up to `level` to `handler` (nil: silent).
    public static func setHandler(level: Level = .info, _ handler: Handler?) {
        install()
        state.withLock {
            $0.handler = handler
            $0.maximumLevel = level
        }
    }

    /// Routes libbpf's output through this type (idempotent).
    static func install() {
        let first = state.withLock { state -> Bool in
            defer { state.installed = true }
            return !state.installed
        }
        if first { _ = libbpf_set_print(printCallback) }
    }

    /// The warnings libbpf printed since the last call, oldest first.
    static func takeWarnings() -> [String] {
        state.withLock { state in
            defer { state.warnings.removeAll() }
            return state.warnings
        }
    }

    static func deliver(_ level: Level, _ message: String) {
        let handler = state.withLock { state -> Handler? in
            if level == .warning {
                state.warnings.append(message)
                if state.warnings.count > keptWarnings { state.warnings.removeFirst() }
            }
            return level <= state.maximumLevel ? state.handler : nil
        }
        handler?(level, message)
    }

    static func wants(_ level: Level) -> Bool {
        level == .warning || state.withLock { $0.handler != nil && level <= $0.maximumLevel }
    }

    /// Formats with vfprintf into a memory stream, so a long message (a verifier log) is kept whole: Swift
    /// cannot va_copy to size a buffer first.
    static func format(_ format: UnsafePointer<CChar>, _ arguments: CVaListPointer) -> String {
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard let stream = open_memstream(&buffer, &size) else { return String(cString: format) }
        vfprintf(stream, format, arguments)
        fclose(stream)
        defer { free(buffer) }
        guard let buffer else { return "" }
        var text = String(cString: buffer)
        while text.last == "\n" { text.removeLast() }
        return text
    }
}

/// libbpf's print callback: a C function pointer, so it reaches the handler through LibBPFLog's statics.
private let printCallback: libbpf_print_fn_t = { level, format, arguments in
    let mapped: LibBPFLog.Level =
        switch level {
        case LIBBPF_WARN: .warning
        case LIBBPF_INFO: .info
        default: .debug
        }
    guard let format, let arguments, LibBPFLog.wants(mapped) else { return 0 }
    LibBPFLog.deliver(mapped, LibBPFLog.format(format, arguments))
    return 0
}
