import ArgumentParser
import Dispatch
import ProcNS
import Serve

struct ServeCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "The namespaces, their wiring and live traces in a browser; a JSON API and Prometheus metrics.",
        discussion: """
            Serves one page (the graph of namespaces, veths and bridges; a namespace's links, addresses, \
            routes and neighbours; live updates from `watch`; traces along the path) and a JSON API whose \
            answers are what the commands print with --json: /api/list, /api/graph, /api/show/NS, \
            /api/path?from=&to=, POST /api/trace?from=&to=&count=, /api/events (Server-Sent Events), \
            /metrics (docs/serve.md). Loopback unless --listen says otherwise. Read-only unless \
            --allow-changes, and then changes need the token printed at start. Stops on Ctrl-C or SIGTERM.
            """
    )

    @Option(help: "HOST:PORT to listen on ([ADDRESS]:PORT for IPv6; port 0 picks a free one).")
    var listen: String = ListenAddress.loopback.description
    @Flag(help: "Allow adopt and lab up/down through the API, with a token printed at start.") var allowChanges = false
    @Option(help: "Write the server's URL to this file once it listens (removed when it stops).") var readyFile: String?

    func validate() throws {
        if case .failure(let error) = ListenAddress.parse(listen) { throw ValidationError(error.description) }
    }

    func run() throws {
        try requireCapabilities([.sysAdmin, .netAdmin], for: "serve")
        guard case .success(let address) = ListenAddress.parse(listen) else { return }
        let configuration = ServeConfiguration(listen: address, allowChanges: allowChanges, readyFile: readyFile)
        // The server runs on Swift's concurrency threads; this thread waits for it to end.
        let done = DispatchSemaphore(value: 0)
        let outcome = ServeOutcome()
        Task.detached {
            do {
                try await NSServer.run(configuration, say: { Output.warn($0) })
            } catch {
                outcome.error = error
            }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw OperationError("serve", listen, "\(error)") }
    }
}

/// The server's error, handed from its task to the waiting thread (written before the semaphore is
/// signalled, read after it is waited for).
private final class ServeOutcome: @unchecked Sendable {
    var error: (any Error)?
}
