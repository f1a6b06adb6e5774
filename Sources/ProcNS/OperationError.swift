#if canImport(Glibc)
import Glibc
#endif

/// An errno value with the C library's message for it.
public struct Errno: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public let code: Int32
    public init(_ code: Int32) { self.code = code }
    /// The calling thread's errno, read right after a failed call.
    public static var current: Errno { Errno(errno) }
    public var description: String { String(cString: strerror(code)) }

    public static let ENOENT = Errno(Glibc.ENOENT)
    public static let ESRCH = Errno(Glibc.ESRCH)
    public static let EACCES = Errno(Glibc.EACCES)
    public static let EPERM = Errno(Glibc.EPERM)
    public static let EEXIST = Errno(Glibc.EEXIST)
    public static let EINVAL = Errno(Glibc.EINVAL)
    public static let EINTR = Errno(Glibc.EINTR)
    public static let EBUSY = Errno(Glibc.EBUSY)
    public static let ENOTDIR = Errno(Glibc.ENOTDIR)
    public static let ENOBUFS = Errno(Glibc.ENOBUFS)
    public static let EAGAIN = Errno(Glibc.EAGAIN)

    /// A process or file that went away between listing and reading it: normal during a /proc scan.
    public var isVanished: Bool { self == .ENOENT || self == .ESRCH }
}

/// The error every nsinspect operation reports: it names the operation, the object and the reason, so the
/// CLI can print it as one line (`adopt: /var/run/netns/web: name exists (use --force to replace)`).
public struct OperationError: Error, CustomStringConvertible, Sendable, Equatable {
    public var operation: String
    public var object: String
    public var reason: String
    /// The errno underneath, when a system call failed.
    public var errno: Errno?
    /// For a failed spawn, which step of the child failed (NSI_STEP_*): an exec that failed is the
    /// program's fault (127/126), a setns the namespace's.
    public var step: UInt32?

    public init(_ operation: String, _ object: String, _ reason: String, errno: Errno? = nil) {
        self.operation = operation
        self.object = object
        self.reason = reason
        self.errno = errno
    }

    /// A failed system call: the reason is the call's name and the errno's message, with a hint for the
    /// errors that mean a missing privilege.
    public init(_ operation: String, _ object: String, call: String, errno: Errno) {
        var reason = "\(call): \(errno)"
        if errno == .EPERM || errno == .EACCES {
            reason += Capability.missingHint(for: call)
        }
        self.init(operation, object, reason, errno: errno)
    }

    /// What went wrong, for a message that already names the operation: an OperationError's reason
    /// (after its object, with `withObject`), any other error as it describes itself.
    public static func explain(_ error: any Error, withObject: Bool = false) -> String {
        guard let e = error as? OperationError else { return "\(error)" }
        return withObject && !e.object.isEmpty ? "\(e.object): \(e.reason)" : e.reason
    }

    public var description: String {
        object.isEmpty ? "\(operation): \(reason)" : "\(operation): \(object): \(reason)"
    }
}
