#if canImport(Glibc)
import Glibc
#endif
import CShim

/// How a child process ended.
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// The status a shell would report: the exit code, or 128 + the signal number.
    public var code: Int32 {
        switch self {
        case .exited(let c): c
        case .signaled(let s): 128 + s
        }
    }

    public var succeeded: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let c): "exit status \(c)"
        case .signaled(let s): "killed by signal \(s)"
        }
    }

    init(raw: Int32) {
        self = nsi_wifsignaled(raw) != 0 ? .signaled(nsi_wtermsig(raw)) : .exited(nsi_wexitstatus(raw))
    }
}

/// A child process started by `Spawner`. Wait for it, or it is killed and reaped in `deinit` so no
/// process of ours outlives the object that started it.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private var status: ExitStatus?

    init(pid: pid_t) { self.pid = pid }

    /// Blocks until the child ends (waitpid, EINTR retried).
    @discardableResult
    public func wait() -> ExitStatus {
        if let status { return status }
        var raw: Int32 = 0
        let result = nsi_wait(pid, &raw, 0) == pid ? ExitStatus(raw: raw) : .exited(255)
        status = result
        return result
    }

    /// Non-blocking check; nil while it runs.
    public func poll() -> ExitStatus? {
        if let status { return status }
        var raw: Int32 = 0
        guard nsi_wait(pid, &raw, 1) == pid else { return nil }
        status = ExitStatus(raw: raw)
        return status
    }

    /// Sends a signal (by PID: the child is ours and not yet reaped, so the PID cannot have been reused).
    public func signal(_ sig: Int32) {
        if status == nil { kill(pid, sig) }
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            _ = nsi_wait(pid, &raw, 0)
        }
    }
}

/// Runs programs inside a network namespace. The fork+setns+exec path is C (`nsi_spawn`): between
/// fork and exec a multithreaded process may only make async-signal-safe calls, so everything that
/// allocates (PATH search, the argument and environment arrays, /etc/netns listing) is done here first.
public struct Spawner {
    public var namespace: NamespaceHandle?
    /// A private mount namespace with /sys remounted, as `ip netns exec` does, so /sys/class/net shows
    /// the namespace's interfaces. Also binds /etc/netns/NAME/* over /etc when `etcName` is set.
    public var privateMounts = false
    public var etcName: String?
    public var stdin: Int32 = -1
    public var stdout: Int32 = -1
    public var stderr: Int32 = -1
    public var newProcessGroup = false
    public var dieWithParent = false
    public var operation = "exec"

    public init(namespace: NamespaceHandle? = nil) { self.namespace = namespace }

    /// Finds an executable the way execvp does: names with `/` are used as they are, others are looked
    /// up in $PATH.
    public static func resolveExecutable(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            var st = Glibc.stat()
            if access(candidate, X_OK) == 0, nsi_stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG {
                return candidate
            }
        }
        return nil
    }

    /// Why `program` could not be started, with the exit status shells, `nsenter` and `ip netns exec` give
    /// for it: 127 when there is no such file or command, 126 when it is there but cannot be executed.
    /// Asked after the exec failed, to say which.
    public static func launchProblem(_ program: String) -> (status: Int32, reason: String)? {
        guard program.contains("/") else {
            return resolveExecutable(program) == nil ? (127, "command not found") : nil
        }
        var st = Glibc.stat()
        guard nsi_stat(program, &st) == 0 else {
            let e = Errno.current
            return (e == .ENOENT || e == .ENOTDIR ? 127 : 126, "\(e)")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { return (126, "is a directory") }
        if access(program, X_OK) != 0 { return (126, "\(Errno.current)") }
        return nil
    }

    /// Pairs of /etc/netns/NAME/FILE and /etc/FILE to bind-mount, as iproute2's bind_etc does.
    static func etcBinds(for name: String) -> [String] {
        guard case .success(let entries) = Sys.listDirectory("/etc/netns/" + name) else { return [] }
        return entries.flatMap { ["/etc/netns/\(name)/\($0.name)", "/etc/\($0.name)"] }
    }

    /// How a foreground command ended: its exit code (128+N when killed by signal N), or why it could
    /// not start, with the code shells give for that (127 not found, 126 not executable).
    public struct ForegroundResult: Sendable, Equatable {
        public var code: Int32
        public var couldNotStart: String?
    }

    /// Runs a command in the foreground and waits for it, as system(3) and a shell do: while it runs the
    /// terminal's SIGINT and SIGQUIT are for the child, not for nsinspect, which reports its status.
    public func runInForeground(_ arguments: [String]) throws(OperationError) -> ForegroundResult {
        guard let program = arguments.first else { throw OperationError(operation, "", "no command given") }
        nsi_ignore_interactive_signals(1)
        defer { nsi_ignore_interactive_signals(0) }
        let child: ChildProcess
        do {
            child = try spawn(arguments)
        } catch let error where error.step == NSI_STEP_EXEC.rawValue {
            if let problem = Spawner.launchProblem(program) { return ForegroundResult(code: problem.status, couldNotStart: problem.reason) }
            let e = error.errno ?? .ENOENT
            return ForegroundResult(code: e == .ENOENT ? 127 : 126, couldNotStart: "\(e)")
        }
        return ForegroundResult(code: child.wait().code, couldNotStart: nil)
    }

    /// Starts `arguments[0]` with the given arguments.
    public func spawn(_ arguments: [String], environment: [String]? = nil) throws(OperationError) -> ChildProcess {
        guard let program = arguments.first else { throw OperationError(operation, "", "no command given") }
        guard let path = Spawner.resolveExecutable(program) else {
            // Found nowhere: as an exec that failed (ENOENT), so callers tell it from a failed setns.
            var error = OperationError(operation, program, "command not found", errno: .ENOENT)
            error.step = NSI_STEP_EXEC.rawValue
            throw error
        }
        var binds = privateMounts ? etcName.map(Spawner.etcBinds) ?? [] : []
        let argv = CStringArray(arguments)
        let envp = environment.map(CStringArray.init)
        let bindArray = CStringArray(binds)
        binds.removeAll()
        var failedStep: Int32 = 0
        let pid: pid_t = bindArray.withPointers { bindPointers in
            var options = nsi_spawn_options(
                netns_fd: namespace?.fd ?? -1, private_mounts: privateMounts ? 1 : 0,
                etc_binds: bindPointers.isEmpty ? nil : UnsafePointer(bindPointers.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: bindPointers.count) { $0 }),
                stdin_fd: stdin, stdout_fd: stdout, stderr_fd: stderr,
                new_process_group: newProcessGroup ? 1 : 0, die_with_parent: dieWithParent ? 1 : 0)
            return argv.withPointers { argvPointers in
                if let envp {
                    return envp.withPointers { envPointers in
                        nsi_spawn(path, argvPointers.baseAddress, envPointers.baseAddress, &options, &failedStep)
                    }
                }
                return nsi_spawn(path, argvPointers.baseAddress, nsi_environ(), &options, &failedStep)
            }
        }
        guard pid > 0 else {
            let e = Errno.current
            let object = namespace.map { "\(program) in \($0.origin)" } ?? program
            var error = OperationError(operation, object, call: Spawner.stepName(failedStep), errno: e)
            error.step = UInt32(failedStep)
            throw error
        }
        return ChildProcess(pid: pid)
    }

    static func stepName(_ step: Int32) -> String {
        switch UInt32(step) {
        case NSI_STEP_PIPE.rawValue: "pipe"
        case NSI_STEP_FORK.rawValue: "fork"
        case NSI_STEP_SETNS.rawValue: "setns"
        case NSI_STEP_UNSHARE_MOUNTS.rawValue: "unshare"
        case NSI_STEP_MAKE_SLAVE.rawValue: "mount"
        case NSI_STEP_MOUNT_SYS.rawValue: "mount"
        case NSI_STEP_DUP2.rawValue: "dup2"
        case NSI_STEP_EXEC.rawValue: "execve"
        case NSI_STEP_SETPGID.rawValue: "setpgid"
        default: "spawn"
        }
    }

    /// Runs a command to completion and returns its status and everything it wrote to stdout (and stderr
    /// when `mergeError`), for lab steps such as `nft -f` or `ping`.
    public func run(_ arguments: [String], input: [UInt8]? = nil, mergeError: Bool = true)
        throws(OperationError) -> (status: ExitStatus, output: String)
    {
        var outPipe: [Int32] = [-1, -1]
        var inPipe: [Int32] = [-1, -1]
        guard nsi_pipe2(&outPipe, O_CLOEXEC) == 0 else { throw OperationError(operation, arguments[0], call: "pipe", errno: .current) }
        if input != nil, nsi_pipe2(&inPipe, O_CLOEXEC) != 0 {
            Sys.close(outPipe[0]); Sys.close(outPipe[1])
            throw OperationError(operation, arguments[0], call: "pipe", errno: .current)
        }
        var spawner = self
        spawner.stdout = outPipe[1]
        if mergeError { spawner.stderr = outPipe[1] }
        if input != nil { spawner.stdin = inPipe[0] } else if spawner.stdin < 0 { spawner.stdin = Spawner.devNull }
        let child: ChildProcess
        do {
            child = try spawner.spawn(arguments)
        } catch {
            Sys.close(outPipe[0]); Sys.close(outPipe[1])
            if input != nil { Sys.close(inPipe[0]); Sys.close(inPipe[1]) }
            throw error
        }
        Sys.close(outPipe[1])
        if let input {
            Sys.close(inPipe[0])
            input.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = write(inPipe[1], raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    offset += n
                }
            }
            Sys.close(inPipe[1])
        }
        let output = Sys.readAll(outPipe[0]).success ?? []
        Sys.close(outPipe[0])
        return (child.wait(), String(decoding: output, as: UTF8.self))
    }

    /// /dev/null opened once, for children that must not read the terminal.
    static let devNull: Int32 = Glibc.open("/dev/null", O_RDWR | O_CLOEXEC)
}

/// A NULL-terminated array of C strings that lives as long as the value.
final class CStringArray {
    private var storage: [UnsafeMutablePointer<CChar>?]

    init(_ strings: [String]) {
        storage = strings.map { strdup($0) }
        storage.append(nil)
    }

    deinit { for pointer in storage { free(pointer) } }

    var isEmpty: Bool { storage.count <= 1 }

    func withPointers<T>(_ body: (UnsafeMutableBufferPointer<UnsafeMutablePointer<CChar>?>) -> T) -> T {
        if isEmpty { return body(UnsafeMutableBufferPointer(start: nil, count: 0)) }
        return storage.withUnsafeMutableBufferPointer { body($0) }
    }
}
