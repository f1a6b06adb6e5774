import HTTPTypes
import Hummingbird
import JSONKit
import NIOCore
import NIOPosix
import ProcNS
import Synchronization

/// The routes: each API request becomes one nsinspect command line (`/api/show/web` →
/// `nsinspect show --json -- web`), run as a child; its stdout is the answer and its error line the
/// error. References given in a URL go after `--`, so none is ever read as an option.
final class API: Sendable {
    let runner: CommandRunner
    let commands: NIOThreadPool
    let traces: NIOThreadPool
    let pcaps: PcapStore
    let hub: EventHub
    let drops: DropCounters
    let token: String?
    private let tracing = Mutex(false)

    init(runner: CommandRunner, commands: NIOThreadPool, traces: NIOThreadPool, pcaps: PcapStore, hub: EventHub,
         drops: DropCounters, token: String?) {
        self.runner = runner
        self.commands = commands
        self.traces = traces
        self.pcaps = pcaps
        self.hub = hub
        self.drops = drops
        self.token = token
    }

    func routes(on router: Router<BasicRequestContext>, assets: Assets) {
        router.get("/") { _, _ in Self.asset(assets, "index.html") }
        router.get("/:file") { _, context in Self.asset(assets, context.parameters.get("file") ?? "") }
        router.get("/api/list") { _, _ in await self.run(["list", "--json"]) }
        router.get("/api/graph") { _, _ in await self.run(["graph", "--json"]) }
        router.get("/api/show/:ns") { request, context in
            guard let ns = context.parameters.get("ns").flatMap(PercentDecoding.decode) else {
                return Self.error(.badRequest, "the namespace reference in the path is not valid percent-encoding")
            }
            if let section = request.uri.queryParameters.get("section") {
                return await self.run(["show", "--json", "--", ns, section])
            }
            return await self.run(["show", "--json", "--", ns])
        }
        router.get("/api/path") { request, _ in
            let query = request.uri.queryParameters
            guard let from = query.get("from"), let to = query.get("to"), !from.isEmpty, !to.isEmpty else {
                return Self.error(.badRequest, "path needs from= and to= (namespace references; to= may be an address)")
            }
            return await self.run(["path", "--json", "--", from, to])
        }
        router.post("/api/trace") { request, _ in await self.trace(request.uri.queryParameters) }
        router.get("/api/pcap/:id") { _, context in
            guard let id = context.parameters.get("id", as: Int.self), let bytes = self.pcaps.contents(id) else {
                return Self.error(.notFound, "no pcapng of that trace (only the last 16 are kept)")
            }
            var headers = HTTPFields()
            headers[.contentType] = "application/vnd.tcpdump.pcap"
            headers[.contentDisposition] = "attachment; filename=\"nsinspect-trace-\(id).pcapng\""
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        router.get("/api/events") { _, _ in self.events() }
        router.get("/metrics") { _, _ in await self.metrics() }
        router.post("/api/adopt") { request, _ in
            let query = request.uri.queryParameters
            guard let ns = query.get("ns"), let name = query.get("name") else {
                return Self.error(.badRequest, "adopt needs ns= (a namespace reference) and name=")
            }
            return await self.change(request, ["adopt", "--", ns, name])
        }
        router.post("/api/lab/:action") { request, context in
            let action = context.parameters.get("action") ?? ""
            guard action == "up" || action == "down" else { return Self.error(.notFound, "no lab action '\(action)' (up, down)") }
            guard let file = request.uri.queryParameters.get("file"), !file.isEmpty else {
                return Self.error(.badRequest, "lab \(action) needs file= (a lab file on this host)")
            }
            return await self.change(request, ["lab", action, "--", file])
        }
    }

    // MARK: Answers

    static func asset(_ assets: Assets, _ name: String) -> Response {
        guard let file = assets.files[name] else { return error(.notFound, "no such page file '\(name)'") }
        var headers = HTTPFields()
        headers[.contentType] = file.contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: file.bytes)))
    }

    static func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, type: String = "application/json") -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// `{"error": "…"}` with a status.
    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        var o = JSONObjectBuilder()
        o.add("error", message)
        return json(line(o.json), status: status)
    }

    /// A value as one line of compact JSON.
    static func line(_ value: JSON) -> [UInt8] {
        var bytes: [UInt8] = []
        value.write(into: &bytes, pretty: false)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// A command's failure as HTTP: a usage error (exit status 64) is the request's fault (400), a
    /// reference that names nothing is 404, anything else 500; the message is the command's error line.
    static func failure(_ result: CommandResult) -> Response {
        let message = result.stderr.split(separator: "\n").first.map(String.init) ?? "failed: \(result.status)"
        let status: HTTPResponse.Status = result.status == .exited(64) ? .badRequest
            : message.contains(": no such ") ? .notFound : .internalServerError
        return error(status, message)
    }

    /// Runs one command line to the end on the command threads (blocking work stays off NIO's event loops).
    func execute(_ arguments: [String]) async throws -> CommandResult {
        let runner = self.runner
        return try await commands.runIfActive { try runner.run(arguments) }
    }

    /// A command's stdout as the answer, or its error.
    func run(_ arguments: [String], type: String = "application/json") async -> Response {
        do {
            let result = try await execute(arguments)
            return result.status.succeeded ? Self.json(result.stdout, type: type) : Self.failure(result)
        } catch {
            return Self.error(.serviceUnavailable, "serve: \(arguments.first ?? ""): \(error)")
        }
    }

    // MARK: Trace

    /// `POST /api/trace?from=A&to=B[&count=N][&proto=icmp|udp|tcp][&port=P][&passive=1&duration=S[&filter=F]]`:
    /// the NDJSON `trace --json` prints, with `X-Pcapng:` naming the capture. One trace at a time (409 while
    /// one runs): each loads BPF programs, and two would see each other's probes.
    func trace(_ query: Parameters) async -> Response {
        guard let from = query.get("from"), let to = query.get("to"), !from.isEmpty, !to.isEmpty else {
            return Self.error(.badRequest, "trace needs from= and to= (namespace references; to= may be an address)")
        }
        var arguments = ["trace", "--json"]
        let passive = query.get("passive").map { $0 == "1" || $0 == "true" } ?? false
        if passive {
            guard let duration = query.get("duration"), let seconds = Double(duration), seconds > 0, seconds <= 3600 else {
                return Self.error(.badRequest, "a passive trace needs duration= (seconds, at most 3600)")
            }
            arguments += ["--passive", "--duration", duration]
            if let filter = query.get("filter") { arguments += ["--filter", filter] }
        } else {
            let count = query.get("count") ?? "3"
            guard let n = Int(count), (1...1000).contains(n) else {
                return Self.error(.badRequest, "count=\(count) is not a number of probes from 1 to 1000")
            }
            arguments += ["--count", count]
            for option in ["proto", "port", "ttl"] {
                if let value = query.get(option) { arguments += ["--\(option)", value] }
            }
        }
        let busy = tracing.withLock { running -> Bool in
            if running { return true }
            running = true
            return false
        }
        if busy { return Self.error(.conflict, "another trace is running; try again when it ends") }
        defer { tracing.withLock { $0 = false } }
        let (id, pcap) = pcaps.reserve()
        arguments += ["--pcap", pcap, "--", from, to]
        let drops = self.drops, runner = self.runner, command = arguments
        do {
            let result = try await traces.runIfActive {
                try runner.run(command, line: { drops.count(eventLine: $0) })
            }
            guard result.status.succeeded else { return Self.failure(result) }
            var response = Self.json(result.stdout, type: "application/x-ndjson")
            response.headers[HTTPField.Name("X-Pcapng")!] = "/api/pcap/\(id)"
            return response
        } catch {
            return Self.error(.serviceUnavailable, "serve: trace: \(error)")
        }
    }

    // MARK: Events and metrics

    /// `GET /api/events`: Server-Sent Events, one `data:` line per `watch --json` line.
    func events() -> Response {
        let (_, stream) = hub.subscribe()
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: .init { writer in
            // A comment first, so the browser's EventSource opens at once.
            try await writer.write(ByteBuffer(string: ": nsinspect watch\n\n"))
            for await line in stream {
                var buffer = ByteBuffer(string: "data: ")
                buffer.writeBytes(line)
                buffer.writeString("\n\n")
                try await writer.write(buffer)
            }
            try await writer.finish(nil)
        })
    }

    /// `GET /metrics`: namespaces by holder and name kind and links per namespace from
    /// `list --json --interfaces`, drops from the traces this server ran.
    func metrics() async -> Response {
        do {
            let result = try await execute(["list", "--json", "--interfaces"])
            guard result.status.succeeded else { return Self.failure(result) }
            let list = try JSON.parse(result.stdout)
            let text = PrometheusText.render(list: list, drops: drops.snapshot)
            return Self.json(Array(text.utf8), type: "text/plain; version=0.0.4; charset=utf-8")
        } catch {
            return Self.error(.internalServerError, "serve: metrics: \(error)")
        }
    }

    // MARK: Changes

    /// Requests that change the host: refused unless the server was started with --allow-changes, and then
    /// only with its token.
    func change(_ request: Request, _ arguments: [String]) async -> Response {
        guard let token else {
            return Self.error(.forbidden, "serve is read-only; start it with --allow-changes to adopt or bring labs up and down")
        }
        guard request.headers[.authorization] == "Bearer \(token)" else {
            return Self.error(.unauthorized, "this request changes the host: send the token serve printed at start (Authorization: Bearer TOKEN)")
        }
        do {
            let result = try await execute(arguments)
            guard result.status.succeeded else { return Self.failure(result) }
            var o = JSONObjectBuilder()
            o.add("ok", true)
            o.add("output", String(decoding: result.stdout, as: UTF8.self))
            return Self.json(Self.line(o.json))
        } catch {
            return Self.error(.serviceUnavailable, "serve: \(arguments.first ?? ""): \(error)")
        }
    }
}

/// `%2F` → `/` in a path parameter (a reference may hold any byte but NUL); nil for a broken escape.
enum PercentDecoding {
    static func decode(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let b = iterator.next() {
            guard b == UInt8(ascii: "%") else { bytes.append(b); continue }
            guard let h = iterator.next().flatMap(hex), let l = iterator.next().flatMap(hex) else { return nil }
            let value = h << 4 | l
            if value == 0 { return nil }
            bytes.append(value)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
