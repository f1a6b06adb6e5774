#if canImport(Glibc)
import Glibc
#endif
import CShim
import ProcNS

/// What one nsinspect command printed, and how it ended.
public struct CommandResult: Sendable {
    public var status: ExitStatus
    public var stdout: [UInt8]
    public var stderr: String

    public init(status: ExitStatus, stdout: [UInt8], stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Runs this binary's own commands (`nsinspect list --json`, `show NS --json`, …) as child processes and
/// collects what they print.
///
/// The API answers with what the command line prints because it *is* the command line: the same
/// parsing, reference grammar, errors and JSON. A child process also keeps the server's threads out of
/// the commands' setns(2) calls (which move the calling thread into a namespace) and its address space
/// free of their BPF programs and buffers: a command that fails or is killed takes nothing with it.
/// Children get PR_SET_PDEATHSIG (`dieWithParent`), so none outlives a server that is killed.
public struct CommandRunner: Sendable {
    /// The binary to run: /proc/self/exe resolved at start, so a rebuilt binary on disk does not change
    /// a running server's answers mid-way (exec of /proc/self/exe would follow the running image, but the
    /// path is also what error messages show).
    public let executable: String

    public init(executable: String) { self.executable = executable }

    /// The running binary's path (readlink of /proc/self/exe).
    public static func ownExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "/proc/self/exe" }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs `nsinspect ARGUMENTS…` to the end. `line` is called with each line of stdout as it comes
    /// (without its newline), for commands whose output is a stream (trace's events); everything is also
    /// in the result. Blocking: call it from a thread that may block.
    public func run(_ arguments: [String], line: ((ArraySlice<UInt8>) -> Void)? = nil,
                    started: ((ChildProcess) -> Void)? = nil) throws(OperationError) -> CommandResult {
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        guard nsi_pipe2(&out, O_CLOEXEC) == 0 else { throw OperationError("serve", arguments.first ?? "", call: "pipe2", errno: .current) }
        guard nsi_pipe2(&err, O_CLOEXEC) == 0 else {
            close(out[0]); close(out[1])
            throw OperationError("serve", arguments.first ?? "", call: "pipe2", errno: .current)
        }
        var spawner = Spawner()
        spawner.operation = "serve"
        spawner.stdin = open("/dev/null", O_RDONLY | O_CLOEXEC)
        spawner.stdout = out[1]
        spawner.stderr = err[1]
        spawner.dieWithParent = true
        let child: ChildProcess
        do {
            child = try spawner.spawn([executable] + arguments, environment: Self.environment)
        } catch {
            for fd in [out[0], out[1], err[0], err[1], spawner.stdin] { close(fd) }
            throw error
        }
        close(out[1]); close(err[1]); close(spawner.stdin)
        started?(child)
        var stdout: [UInt8] = [], stderr: [UInt8] = []
        var lineStart = 0
        Self.drain(out[0], err[0]) { fd, bytes in
            if fd == out[0] {
                stdout.append(contentsOf: bytes)
                guard let line else { return }
                while let newline = stdout[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
                    line(stdout[lineStart..<newline])
                    lineStart = newline + 1
                }
            } else {
                stderr.append(contentsOf: bytes)
            }
        }
        close(out[0]); close(err[0])
        return CommandResult(status: child.wait(), stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Children print JSON compact and without colour, as to a pipe; the rest of the environment is the
    /// server's (PATH for the tools some commands run).
    static let environment: [String] = {
        var list: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if !text.hasPrefix("NO_COLOR=") { list.append(text) }
            pointer += 1
        }
        return list + ["NO_COLOR=1"]
    }()

    /// Reads both pipes until both are closed (poll(2), so a child that writes much to one while the other
    /// is full cannot stall).
    static func drain(_ a: Int32, _ b: Int32, _ take: (Int32, ArraySlice<UInt8>) -> Void) {
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var open = 2
        while open > 0 {
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
                let got = read(fds[i].fd, &buffer, buffer.count)
                if got > 0 {
                    take(fds[i].fd, buffer[0..<got])
                } else if got == 0 || (errno != EINTR && errno != EAGAIN) {
                    fds[i].fd = -1
                    open -= 1
                }
            }
        }
    }
}
