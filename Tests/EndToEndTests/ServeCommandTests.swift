import Foundation
import Testing
import TestSupport

/// `nsinspect serve …` running for a test, on a free loopback port (`--listen 127.0.0.1:0`), its output
/// in files. The scratch tracks the process and the files, so a failing test leaves no server running.
final class ServeProcess {
    let process: Process
    let url: String
    private let err: String

    init(_ scratch: Scratch, _ tag: String, _ arguments: [String] = [], wrapper: [String] = []) throws {
        let base = NSTemporaryDirectory() + "\(scratch.prefix)-\(tag)"
        let ready = base + ".ready", out = base + ".out", err = base + ".err", process = Process()
        self.err = err
        self.process = process
        for path in [ready, out, err] { scratch.track(path: path) }
        guard FileManager.default.createFile(atPath: out, contents: nil), FileManager.default.createFile(atPath: err, contents: nil) else {
            throw SetupFailed("cannot create \(out) or \(err)")
        }
        let command = wrapper + [Package.binary, "serve"] + (arguments.contains("--listen") ? [] : ["--listen", "127.0.0.1:0"])
            + arguments + ["--ready-file", ready]
        process.executableURL = URL(fileURLWithPath: Spawn.resolve(command[0]))
        process.arguments = Array(command.dropFirst())
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try process.run()
        scratch.track(pid: process.processIdentifier)
        _ = Wait.until(timeout: 30, interval: 0.05) { FileManager.default.fileExists(atPath: ready) || !process.isRunning }
        guard let text = try? String(contentsOfFile: ready, encoding: .utf8) else {
            throw SetupFailed("`nsinspect serve` wrote no ready file within 30 s (running: \(process.isRunning)); stderr: \((try? String(contentsOfFile: err, encoding: .utf8)) ?? "")")
        }
        url = text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    var stderr: String { (try? String(contentsOfFile: err, encoding: .utf8)) ?? "" }

    /// SIGTERM by PID (ours), then waits: serve stops its watch child and removes its files.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let stopped = Wait.until(timeout: 10) { !process.isRunning }
        #expect(stopped && process.terminationReason == .exit && process.terminationStatus == 0,
                "serve did not stop cleanly on SIGTERM (\(process.terminationReason.rawValue), \(stopped ? process.terminationStatus : -1)): \(stderr)")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("nsinspect-serve-") }
        #expect(left.isEmpty, "serve left \(left) in /tmp")
    }

    /// One request with curl: status, headers (lower-cased names) and body.
    func request(_ path: String, method: String = "GET", headers: [String] = [], output: String? = nil) throws
        -> (status: Int, headers: [String: String], body: String)
    {
        let headerFile = NSTemporaryDirectory() + "serve-headers-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: headerFile) }
        var arguments = ["curl", "-s", "-S", "-X", method, "-D", headerFile, "--max-time", "60", "-w", "\n%{http_code}"]
        for h in headers { arguments += ["-H", h] }
        if let output { arguments += ["-o", output] }
        arguments.append(url.hasSuffix("/") && path.hasPrefix("/") ? String(url.dropLast()) + path : url + path)
        let result = Shell.run(arguments)
        guard result.succeeded, let newline = result.stdout.lastIndex(of: "\n"),
              let status = Int(result.stdout[result.stdout.index(after: newline)...]) else {
            throw SetupFailed("curl \(path): \(result)")
        }
        var fields: [String: String] = [:]
        for line in ((try? String(contentsOfFile: headerFile, encoding: .utf8)) ?? "").split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, fields, String(result.stdout[..<newline]))
    }
}

enum Spawn {
    /// A program name as `Process` needs it: a path.
    static func resolve(_ name: String) -> String {
        if name.contains("/") { return name }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return name
    }
}

/// Equal as JSON values (member order aside), as Foundation parses them.
private func sameJSON(_ a: String, _ b: String) -> Bool {
    func canonical(_ text: String) -> Data? {
        guard let value = try? Shell.json(text) else { return nil }
        return try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
    }
    guard let x = canonical(a), let y = canonical(b) else { return false }
    return x == y
}

@Suite("serve: the JSON API, events, metrics, changes and the page (end to end)", .serialized)
struct ServeCommandTests {
    @Test func apiAnswersAreWhatTheCommandsPrintAndErrorsAreTheirs() throws {
        let scratch = Scratch("srv")
        defer { scratch.cleanup() }
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down() }
        let server = try ServeProcess(scratch, "api")
        defer { server.stop() }

        for (path, command) in [
            ("/api/graph", ["graph", "--json"]),
            ("/api/show/\(lab.router1)", ["show", lab.router1, "--json"]),
            ("/api/show/\(lab.router1)?section=routes", ["show", lab.router1, "routes", "--json"]),
            ("/api/path?from=\(lab.host1)&to=\(lab.host2)", ["path", lab.host1, lab.host2, "--json"]),
        ] {
            // Compared while the state stands still: the command printed the same just before and just
            // after the request (a new lab's IPv6 addresses and multicast entries change for a second or two).
            var compared = false
            for _ in 0..<40 where !compared {
                let before = nsinspect(arguments: command)
                let answer = try server.request(path)
                let after = nsinspect(arguments: command)
                #expect(answer.status == 200 && before.succeeded, "\(path): \(answer.status) \(answer.body.prefix(300)); \(before)")
                #expect(answer.headers["content-type"] == "application/json", "\(path): \(answer.headers)")
                guard sameJSON(before.stdout, after.stdout) else {
                    Thread.sleep(forTimeInterval: 0.25)
                    continue
                }
                compared = true
                #expect(sameJSON(answer.body, before.stdout), "\(path) differs from `nsinspect \(command.joined(separator: " "))`:\n\(answer.body.prefix(600))\n\(before.stdout.prefix(600))")
            }
            #expect(compared, "\(path): the command's output never stood still for a comparison")
        }
        // list: the host's own entry lists pids, which change with every process (curl's, this test's);
        // the lab's namespaces, held by mounts only, must be the same entries.
        let list = try server.request("/api/list"), cli = nsinspect("list", "--json")
        func labEntries(_ text: String) -> [String: NSObject] {
            let all = ((try? Shell.json(text)) as? [String: Any])?["namespaces"] as? [[String: Any]] ?? []
            var out: [String: NSObject] = [:]
            for entry in all {
                if let reference = entry["reference"] as? String, [lab.host1, lab.router1, lab.router2, lab.host2].contains(reference) {
                    out[reference] = entry as NSDictionary
                }
            }
            return out
        }
        #expect(list.status == 200 && labEntries(list.body).count == 4, "\(list.status) \(list.body.prefix(300))")
        #expect(labEntries(list.body) == labEntries(cli.stdout), "list entries of the lab differ")

        // Errors: the command's own line, with a status that says whose fault it is.
        let missing = try server.request("/api/show/\(scratch.name("nope"))")
        let cliMissing = nsinspect("show", scratch.name("nope"), "--json")
        #expect(missing.status == 404, "\(missing)")
        #expect((try? Shell.json(missing.body) as? [String: String])?["error"] == cliMissing.stderr.trimmingCharacters(in: .newlines), "\(missing.body) vs \(cliMissing.stderr)")
        // A reference that looks like an option is still a reference.
        let option = try server.request("/api/show/--version")
        #expect(option.status == 404 && option.body.contains("--version: no such namespace"), "\(option)")
        let encoded = try server.request("/api/show/pid%3A\(getpid())")
        #expect(encoded.status == 200 && encoded.body.contains("\"namespace\""), "\(encoded.status) \(encoded.body.prefix(200))")
        let noTo = try server.request("/api/path?from=\(lab.host1)")
        #expect(noTo.status == 400 && noTo.body.contains("path needs from= and to="), "\(noTo)")
        let badCount = try server.request("/api/trace?from=\(lab.host1)&to=\(lab.host2)&count=0", method: "POST")
        #expect(badCount.status == 400 && badCount.body.contains("count=0"), "\(badCount)")
        let badProto = try server.request("/api/trace?from=\(lab.host1)&to=\(lab.host2)&proto=sctp", method: "POST")
        #expect(badProto.status == 400 && badProto.body.contains("sctp"), "\(badProto)")
        let readOnly = try server.request("/api/adopt?ns=pid:1&name=\(scratch.name("x"))", method: "POST")
        #expect(readOnly.status == 403 && readOnly.body.contains("read-only"), "\(readOnly)")
        #expect(!NetnsDirectory.exists(scratch.name("x")), "a read-only server adopted")
        let page = try server.request("/")
        #expect(page.status == 200 && page.headers["content-type"]?.hasPrefix("text/html") == true && page.body.contains("d3.min.js"), "\(page.status) \(page.headers)")
        let d3 = try server.request("/d3.min.js")
        #expect(d3.status == 200 && d3.body.contains("d3={version:\"3."), "\(d3.status) \(d3.body.prefix(100))")
        let nothing = try server.request("/no-such-file.js")
        #expect(nothing.status == 404, "\(nothing)")
    }

    @Test func aTraceThroughTheAPIAgreesItsPcapngReadsAndItsDropsAreCounted() throws {
        let scratch = Scratch("srvt")
        defer { scratch.cleanup() }
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down() }
        let server = try ServeProcess(scratch, "trace")
        defer { server.stop() }

        let trace = try server.request("/api/trace?from=\(lab.host1)&to=\(lab.host2)&count=2", method: "POST")
        #expect(trace.status == 200 && trace.headers["content-type"] == "application/x-ndjson", "\(trace.status) \(trace.body.prefix(400))")
        let lines = trace.body.split(separator: "\n").compactMap { (try? Shell.json(String($0))) as? [String: Any] }
        let summary = try #require(lines.last { $0["summary"] as? Bool == true }, "no summary line: \(trace.body.suffix(400))")
        let probes = summary["probes"] as? [[String: Any]] ?? []
        #expect(probes.count == 2 && probes.allSatisfy { $0["agrees"] as? Bool == true && ($0["reply_ttl"] as? NSNumber)?.intValue == 62 },
                "\(probes.map { $0["verdict"] ?? "?" })")

        // The capture: pcapng that tshark reads, with the probes in it.
        let pcapPath = try #require(trace.headers["x-pcapng"], "no X-Pcapng header: \(trace.headers)")
        let file = NSTemporaryDirectory() + "\(scratch.prefix).pcapng"
        scratch.track(path: file)
        let download = try server.request(pcapPath, output: file)
        #expect(download.status == 200 && download.headers["content-disposition"]?.contains(".pcapng") == true, "\(download)")
        let packets = Shell.run(["tshark", "-r", file, "-Y", "icmp.type == 8", "-T", "fields", "-e", "ip.ttl"])
        #expect(packets.succeeded && packets.stdout.split(separator: "\n").contains("64") && packets.stdout.split(separator: "\n").contains("63"),
                "tshark: \(packets)")

        // Every drop event of the trace is one count in /metrics, by namespace, interface and reason.
        var expected: [String: Int] = [:]
        for event in lines where event["drop_reason"] != nil {
            let key = "nsinspect_drops_total{netns=\"\(event["netns"] as? String ?? "?")\",ifname=\"\(event["ifname"] as? String ?? "")\",reason=\"\(event["drop_reason"] as? String ?? "")\"}"
            expected[key, default: 0] += 1
        }
        let metrics = try server.request("/metrics")
        let series = metrics.body.split(separator: "\n").filter { $0.hasPrefix("nsinspect_drops_total{") }
        var counted: [String: Int] = [:]
        for line in series {
            guard let space = line.lastIndex(of: " "), let n = Int(line[line.index(after: space)...]) else { continue }
            counted[String(line[..<space])] = n
        }
        #expect(counted == expected, "metrics \(counted) vs the trace's drop events \(expected)")
    }

    @Test func eventsStreamANamespaceThatIPNetnsAddMakesAndMetricsCountTheLab() throws {
        let scratch = Scratch("srve")
        defer { scratch.cleanup() }
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down() }
        let server = try ServeProcess(scratch, "events")
        defer { server.stop() }

        // curl keeps the SSE stream open and writes each event to a file as it comes.
        let file = NSTemporaryDirectory() + "\(scratch.prefix).sse"
        scratch.track(path: file)
        FileManager.default.createFile(atPath: file, contents: nil)
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: Spawn.resolve("curl"))
        curl.arguments = ["-s", "-N", "--max-time", "60", server.url + "api/events"]
        curl.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
        try curl.run()
        scratch.track(pid: curl.processIdentifier)
        defer { if curl.isRunning { kill(curl.processIdentifier, SIGTERM) } }
        func received() -> String { (try? String(contentsOfFile: file, encoding: .utf8)) ?? "" }
        #expect(Wait.until(timeout: 10) { received().hasPrefix(": nsinspect watch") }, "no SSE preamble: \(received())")
        // watch is ready once it has subscribed every namespace; wait for its first census to settle.
        Thread.sleep(forTimeInterval: 1.5)
        let added = try scratch.addNamespace("sse")
        let seen = Wait.until(timeout: 15) {
            received().split(separator: "\n").contains { line in
                guard line.hasPrefix("data: "), let event = (try? Shell.json(String(line.dropFirst(6)))) as? [String: Any] else { return false }
                return event["event"] as? String == "ns" && event["action"] as? String == "new"
                    && ((event["ns"] as? [String: Any])?["names"] as? [String])?.contains(added) == true
            }
        }
        #expect(seen, "no ns event for \(added):\n\(received().suffix(1500))")

        let metrics = try server.request("/metrics")
        #expect(metrics.status == 200 && metrics.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true, "\(metrics.headers)")
        let lines = Set(metrics.body.split(separator: "\n").map(String.init))
        let r1 = try Scratch.namespaceInode(named: lab.router1)
        #expect(lines.contains("nsinspect_links{netns=\"\(lab.router1)\",ns=\"\(r1)\"} 2"), "\(metrics.body.prefix(1500))")
        let mounts = lines.first { $0.hasPrefix("nsinspect_namespaces_by_holder{holder=\"mount\"} ") }
        #expect(mounts.flatMap { Int($0.split(separator: " ").last ?? "") }.map { $0 >= 5 } == true, "\(mounts ?? "no mount series")")
    }

    @Test func changesNeedAllowChangesAndTheToken() throws {
        let scratch = Scratch("srvc")
        defer { scratch.cleanup() }
        let server = try ServeProcess(scratch, "changes", ["--allow-changes"])
        defer { server.stop() }
        let words = server.stderr.split(separator: "\n").first { $0.contains("token for adopt") }?.split(separator: " ") ?? []
        let token = try #require(words.first { $0.count == 32 && $0.allSatisfy(\.isHexDigit) }.map(String.init),
                                 "no token line: \(server.stderr)")
        let name = scratch.name("adopted")
        let pid = try scratch.unsharedProcess()
        let without = try server.request("/api/adopt?ns=pid:\(pid)&name=\(name)", method: "POST")
        #expect(without.status == 401 && without.body.contains("token"), "\(without)")
        let wrong = try server.request("/api/adopt?ns=pid:\(pid)&name=\(name)", method: "POST", headers: ["Authorization: Bearer 00"])
        #expect(wrong.status == 401, "\(wrong)")
        #expect(!NetnsDirectory.exists(name))
        scratch.track(namespace: name)
        let with = try server.request("/api/adopt?ns=pid:\(pid)&name=\(name)", method: "POST", headers: ["Authorization: Bearer \(token)"])
        #expect(with.status == 200, "\(with) token \(token) stderr \(server.stderr)")
        #expect(NetnsDirectory.inode(name) == Scratch.namespaceInode(pid: pid), "adopt through the API named another namespace")

        // A lab brought up and down through the API, with the token.
        // A scratch of its own: TestLab.finish() cleans its scratch, which would kill the server first.
        let lab = try TestLab(Scratch("srvcl"), yaml: TestLab.chain)
        defer { lab.finish() }
        let refused = try server.request("/api/lab/up?file=\(lab.file)", method: "POST")
        #expect(refused.status == 401 && lab.footprint.present().isEmpty, "\(refused)")
        let up = try server.request("/api/lab/up?file=\(lab.file)", method: "POST", headers: ["Authorization: Bearer \(token)"])
        #expect(up.status == 200 && up.body.contains("is up"), "\(up)")
        #expect(lab.footprint.namespaces.allSatisfy(NetnsDirectory.exists), "\(lab.footprint.present())")
        let status = nsinspect("lab", "status", lab.file)
        #expect(status.succeeded, "\(status)")
        let down = try server.request("/api/lab/down?file=\(lab.file)", method: "POST", headers: ["Authorization: Bearer \(token)"])
        #expect(down.status == 200 && down.body.contains("is down"), "\(down)")
        #expect(lab.footprint.leftovers(since: lab.before).isEmpty, "\(lab.footprint.leftovers(since: lab.before))")
    }

    @Test func badListenAddressesAreRefusedAndANonLoopbackOneIsServedWithAWarning() throws {
        for bad in ["8080", "[::1]8080", "127.0.0.1:99999"] {
            let result = nsinspect("serve", "--listen", bad)
            #expect(result.status == 64 && result.stderr.hasPrefix("serve: --listen \(bad): "), "\(result)")
        }
        // In a network namespace of its own (only lo, down): listening on every address reaches nobody.
        let scratch = Scratch("srvl")
        defer { scratch.cleanup() }
        let server = try ServeProcess(scratch, "any", ["--listen", "0.0.0.0:0"], wrapper: ["unshare", "--net", "--"])
        defer { server.stop() }
        #expect(server.stderr.contains("0.0.0.0 is not loopback") && server.stderr.contains("root-level insight into the host"), "\(server.stderr)")
    }

    @Test func thePageDrawsTheLabTracesAndShowsANewNamespaceWithoutReload() throws {
        let scratch = Scratch("srvp")
        defer { scratch.cleanup() }
        let lab = try PrefixedTwoRouters(scratch)
        defer { lab.down() }
        let server = try ServeProcess(scratch, "page")
        defer { server.stop() }
        let added = scratch.name("page-new")
        scratch.track(namespace: added)
        let screenshots = Package.root.appendingPathComponent("docs/screenshots").path
        let test = Shell.run([
            "python3", Package.root.appendingPathComponent("Tests/Browser/page_test.py").path, "--url", server.url,
            "--namespaces", [lab.host1, lab.router1, lab.router2, lab.host2].joined(separator: ","), "--veths", "3",
            "--from", lab.host1, "--to", lab.host2, "--ttl", "62",
            "--new-namespace", added, "--new-namespace-command", "ip netns add \(added)",
            "--screenshots", screenshots,
        ])
        #expect(test.succeeded && test.stdout.contains("page test passed"), "\(test)")
        for shot in ["graph.png", "trace.png", "live.png"] {
            #expect(FileManager.default.fileExists(atPath: screenshots + "/" + shot), "no \(shot)")
        }
    }
}
