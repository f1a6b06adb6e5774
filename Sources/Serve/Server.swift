#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import Logging
import ServiceLifecycle
import NIOCore
import NIOPosix
import ProcNS
import Synchronization

/// What `nsinspect serve` was asked for.
public struct ServeConfiguration: Sendable {
    public var listen: ListenAddress
    /// Allow the requests that change the host (adopt, lab up/down), with the token printed at start.
    public var allowChanges: Bool
    /// Written with the server's URL once it listens (tests and scripts start it on port 0).
    public var readyFile: String?
    /// Commands run at once for API requests; more wait their turn (2 cores here: 4 keeps both busy
    /// while one child waits on the kernel).
    public var concurrency: Int

    public init(listen: ListenAddress = .loopback, allowChanges: Bool = false, readyFile: String? = nil, concurrency: Int = 4) {
        self.listen = listen
        self.allowChanges = allowChanges
        self.readyFile = readyFile
        self.concurrency = concurrency
    }
}

/// `nsinspect serve`: the page, the JSON API (each answer is what the matching command prints with
/// --json, docs/serve.md), Server-Sent Events from `watch`, Prometheus metrics.
///
/// Hummingbird 2 on SwiftNIO: an event-loop HTTP/1.1 server that streams response bodies (SSE) and
/// keeps hundreds of connections on two threads; it is maintained under the Swift Server Workgroup and
/// is lighter than Vapor (no ORM, no Foundation beyond FoundationEssentials with its traits off).
public enum NSServer {
    /// Runs until SIGINT or SIGTERM, then stops the watch child and removes the pcapng files.
    /// `say` gets the lines a person starting the server should see (address, token, warnings).
    public static func run(_ configuration: ServeConfiguration, say: @escaping @Sendable (String) -> Void) async throws {
        let (assets, corrupt) = Assets.embedded()
        guard corrupt.isEmpty, assets.files["index.html"] != nil else {
            throw OperationError("serve", "embedded page", "corrupt or missing: \(corrupt.joined(separator: ", ")) (rebuild the package)")
        }
        let runner = CommandRunner(executable: CommandRunner.ownExecutable())
        let pcaps = try PcapStore()
        let hub = EventHub(runner: runner, readyFile: pcaps.directory + "/watch.ready")
        let commands = NIOThreadPool(numberOfThreads: max(1, configuration.concurrency))
        let traces = NIOThreadPool(numberOfThreads: 1)
        commands.start()
        traces.start()
        let token = configuration.allowChanges ? try Token.random() : nil
        let api = API(runner: runner, commands: commands, traces: traces, pcaps: pcaps, hub: hub, drops: DropCounters(),
                      token: token)
        let router = Router()
        api.routes(on: router, assets: assets)

        let listen = configuration.listen
        let readyFile = configuration.readyFile
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "nsinspect"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? listen.port
                let url = "http://\(ListenAddress(host: listen.host, port: port))/"
                say("serve: listening on \(url) (\(token == nil ? "read-only" : "changes allowed with the token"))")
                if let token { say("serve: token for adopt and lab up/down: \(token) (header `Authorization: Bearer TOKEN`)") }
                if !listen.isLoopback {
                    say("serve: warning: \(listen.host) is not loopback: whoever reaches this port sees every namespace, link, address and route of this host and can run traces as root (root-level insight into the host)")
                }
                if let readyFile { Self.writeReady(readyFile, url) }
            },
            logger: Self.quietLogger
        )
        defer {
            hub.stop()
            pcaps.removeAll()
            if let readyFile { unlink(readyFile) }
        }
        if !(await hub.start()) {
            say("serve: warning: watch was not ready within 30 s; /api/events may miss the first changes")
        }
        // On SIGINT/SIGTERM the group shuts its services down last first: the hub ends every event stream,
        // then the server, which waits for open responses (an SSE stream would never end by itself).
        let group = ServiceGroup(configuration: .init(
            services: [app, HubService(hub: hub)], gracefulShutdownSignals: [.sigterm, .sigint], logger: Self.quietLogger))
        do {
            try await group.run()
        } catch {
            try? await commands.shutdownGracefully()
            try? await traces.shutdownGracefully()
            throw error
        }
        try? await commands.shutdownGracefully()
        try? await traces.shutdownGracefully()
    }

    /// Hummingbird logs at info level to stdout; serve says what it has to say itself.
    static let quietLogger: Logger = {
        var logger = Logger(label: "nsinspect-serve")
        logger.logLevel = .warning
        return logger
    }()

    static func writeReady(_ path: String, _ url: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        var text = url + "\n"
        text.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}

/// Stops the event hub when the server is asked to stop.
struct HubService: Service {
    let hub: EventHub
    func run() async throws {
        try? await gracefulShutdown()
        hub.stop()
    }
}

/// The token that allows changes: 128 bits from the kernel's random source, as hex.
enum Token {
    static func random() throws(OperationError) -> String {
        let bytes = try TextFile.bytes("/dev/urandom", operation: "serve", limit: 16)
        guard bytes.count == 16 else { throw OperationError("serve", "/dev/urandom", "short read (\(bytes.count) bytes)") }
        return bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
