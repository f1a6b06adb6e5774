import Foundation

/// What a command printed and how it ended.
public struct CommandResult: Sendable, CustomStringConvertible {
    public let arguments: [String]
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public var succeeded: Bool { status == 0 }

    public var description: String {
        "`\(arguments.joined(separator: " "))` exited \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)"
    }
}

/// Failure of a setup command in a test: the command and everything it printed.
public struct CommandFailed: Error, CustomStringConvertible {
    public let result: CommandResult
    public var description: String { result.description }
}

/// A test's setup that could not be made, and why: a missing tool or a daemon that would not start is a
/// failure that says so, never a silent skip.
public struct SetupFailed: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs programs for tests: `ip`, `lsns`, the built `nsinspect`. Tests may use Foundation; the
/// library targets do not.
public enum Shell {
    /// Runs a program (looked up in PATH) and waits for it, capturing stdout and stderr.
    @discardableResult
    public static func run(_ arguments: [String], input: String? = nil, environment: [String: String]? = nil,
                           timeout: TimeInterval = 120) -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let inPipe = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        do {
            try process.run()
        } catch {
            return CommandResult(arguments: arguments, status: 127, stdout: "", stderr: "cannot start: \(error)")
        }
        if let input {
            inPipe.fileHandleForWriting.write(Data(input.utf8))
            try? inPipe.fileHandleForWriting.close()
        }
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        let group = DispatchGroup()
        nonisolated(unsafe) var outData = Data(), errData = Data()
        group.enter()
        DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let deadline = DispatchTime.now() + timeout
        if group.wait(timeout: deadline) == .timedOut {
            process.terminate()
            group.wait()
        }
        process.waitUntilExit()
        return CommandResult(arguments: arguments, status: process.terminationStatus,
                             stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Runs a setup command and throws with its output if it fails.
    @discardableResult
    public static func must(_ arguments: String...) throws -> String {
        try must(arguments)
    }

    @discardableResult
    public static func must(_ arguments: [String]) throws -> String {
        let result = run(arguments)
        guard result.succeeded else { throw CommandFailed(result: result) }
        return result.stdout
    }

    /// Parses a JSON document printed by a tool (`ip -j`, `lsns -J`, `nsinspect --json`).
    public static func json(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }
}

/// Where the package is, and the binary `swift build` made.
public enum Package {
    public static let root: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    /// The nsinspect binary under test: $NSINSPECT_BIN, or the debug build.
    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["NSINSPECT_BIN"] { return path }
        return root.appendingPathComponent(".build/debug/nsinspect").path
    }

    public static func example(_ name: String) -> String {
        root.appendingPathComponent("examples/\(name)").path
    }
}

/// Runs the built nsinspect.
@discardableResult
public func nsinspect(_ arguments: String..., input: String? = nil) -> CommandResult {
    Shell.run([Package.binary] + arguments, input: input)
}

@discardableResult
public func nsinspect(arguments: [String]) -> CommandResult {
    Shell.run([Package.binary] + arguments)
}
