import Foundation
import Testing
import TestSupport

/// One of the nat-types example labs (examples/nat-types.yaml) brought up under a test's own names: the example file is
/// copied with every `ns-` namespace name and the lab's name replaced by the Scratch prefix, so the test
/// never touches (nor waits for) the example's own namespaces, which other runs may hold. Addresses stay as
/// they are: they live inside the lab's namespaces. `finish()` (a `defer`) brings it down and checks that
/// nothing is left.
final class NATLab {
    let scratch: Scratch
    let file: String
    let footprint: LabFootprint
    private var up = false

    init(_ scratch: Scratch, example: String) throws {
        self.scratch = scratch
        let text = try String(contentsOfFile: Package.example(example), encoding: .utf8)
        var lines = text.replacingOccurrences(of: "ns-", with: "\(scratch.prefix)-").split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
        let labLine = try #require(lines.firstIndex { $0.hasPrefix("lab: ") })
        lines[labLine] = "lab: \(scratch.prefix)"
        file = NSTemporaryDirectory() + "\(scratch.prefix)-\(example)"
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        scratch.track(path: file)
        footprint = try LabFootprint(file: file)
        for ns in footprint.namespaces { scratch.track(namespace: ns) }
        let result = nsinspect("lab", "up", file)
        try #require(result.succeeded, "\(result)")
        up = true
    }

    /// The lab's namespace for the example's `ns-NAME`.
    func ns(_ name: String) -> String { "\(scratch.prefix)-\(name)" }

    func finish() {
        if up { nsinspect("lab", "down", file) }
        up = false
        scratch.cleanup()
        #expect(scratch.leftovers().isEmpty, "\(scratch.leftovers())")
    }
}

/// The global IPv4 and IPv6 addresses of a namespace, `ADDR/LEN dev IFNAME` each, sorted (what a
/// temporary address left behind would change).
func addressList(_ ns: String) throws -> [String] {
    let links = try #require(try Shell.json(try Shell.must("ip", "-n", ns, "-j", "addr", "show")) as? [[String: Any]])
    return links.flatMap { link in
        (link["addr_info"] as? [[String: Any]] ?? []).map { "\($0["local"] ?? "?")/\($0["prefixlen"] ?? "?") dev \(link["ifname"] ?? "?")" }
    }.sorted()
}

/// Small UDP senders and receivers, in Python: each socket is opened inside a namespace (setns on the one
/// thread of the interpreter, then back) and stays there, so one script can play every side of an exchange
/// without nsinspect. These are the tests' independent witnesses of what the kernel lets through.
enum UDPWitness {
    static let prelude = #"""
        import ctypes, json, os, random, select, socket, sys, time
        libc = ctypes.CDLL(None, use_errno=True)
        home = os.open('/proc/self/ns/net', os.O_RDONLY)

        def udp(ns, addr, port, family=socket.AF_INET):
            fd = os.open('/var/run/netns/' + ns, os.O_RDONLY)
            if libc.setns(fd, 0x40000000) != 0:
                raise OSError(ctypes.get_errno(), 'setns ' + ns)
            os.close(fd)
            try:
                s = socket.socket(family, socket.SOCK_DGRAM)
                s.bind((addr, port))
            finally:
                if libc.setns(home, 0x40000000) != 0:
                    raise OSError(ctypes.get_errno(), 'setns back')
            return s

        def arrival(s, payload, timeout):
            """Where `payload` came from ('ADDR:PORT'), or None if it did not arrive within `timeout` s."""
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([s], [], [], left)[0]:
                    return None
                data, source = s.recvfrom(2048)
                if data == payload:
                    return '%s:%d' % source[:2]

        """#

    /// The experiment of examples/nat-types.yaml with plain sockets: the inside sends to `contacted`; the contacted
    /// endpoint answers; unsolicited datagrams go to the mapping from the contacted address on another port
    /// and from `stranger`; then the same inside socket sends to `contacted` on another port and to `second`.
    /// Prints what each receiver saw as JSON.
    static let natExperiment = prelude + #"""
        config = json.loads(sys.argv[1])
        outside = config['outside']
        contacted, second, stranger = config['addresses']
        ports = random.sample(range(40000, 50000), 5)
        tag = '%08x ' % random.getrandbits(32)
        inside = udp(config['inside'], '0.0.0.0', config['port'])
        result = {'inside_port': inside.getsockname()[1]}

        def outbound(name, address, port):
            receiver = udp(outside, address, port)
            payload = (tag + name).encode()
            inside.sendto(payload, (address, port))
            result[name] = arrival(receiver, payload, 1.5)
            return receiver

        def inbound(name, sender, mapping):
            payload = (tag + name).encode()
            host, port = mapping.rsplit(':', 1)
            sender.sendto(payload, (host, int(port)))
            result[name] = arrival(inside, payload, 1.5) is not None

        first = outbound('mapping', contacted, ports[0])
        if result['mapping']:
            inbound('reply', first, result['mapping'])
            inbound('other_port', udp(outside, contacted, ports[1]), result['mapping'])
            inbound('other_address', udp(outside, stranger, ports[2]), result['mapping'])
            outbound('mapping_other_port', contacted, ports[3])
            outbound('mapping_other_address', second, ports[4])
        print(json.dumps(result))
        """#

    /// One datagram from `from` (namespace, address, port) to `to` (address, port), answered once by
    /// `answerer` (namespace, address, port) when given. Prints where the datagram and the answer arrived
    /// from, as JSON.
    static let exchange = prelude + #"""
        c = json.loads(sys.argv[1])
        sender = udp(*c['from'])
        receiver = udp(*c['answerer']) if c.get('answerer') else None
        tag = ('%08x' % random.getrandbits(32)).encode()
        sender.sendto(tag, tuple(c['to']))
        result = {}
        if receiver:
            result['request_from'] = arrival(receiver, tag, 2)
            if result['request_from']:
                host, port = result['request_from'].rsplit(':', 1)
                receiver.sendto(tag + b' answer', (host, int(port)))
                result['answer_from'] = arrival(sender, tag + b' answer', 2)
        print(json.dumps(result))
        """#

    static func run(_ script: String, _ config: [String: Any]) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: config)
        let result = Shell.run(["python3", "-c", script, String(decoding: data, as: UTF8.self)], timeout: 60)
        try #require(result.succeeded, "\(result)")
        return try #require(try Shell.json(result.stdout) as? [String: Any], "\(result)")
    }
}

/// What the UDP witnesses saw of one NAT, and the NAT type it implies (RFC 4787 §4.1 and §5, computed
/// here from the observations alone, independently of natcheck).
struct NATGroundTruth: CustomStringConvertible {
    var mapping: String?
    var reply: Bool
    var otherPort: Bool
    var otherAddress: Bool
    var mappingOtherPort: String?
    var mappingOtherAddress: String?
    var insidePort: Int

    init(_ json: [String: Any]) {
        mapping = json["mapping"] as? String
        reply = json["reply"] as? Bool ?? false
        otherPort = json["other_port"] as? Bool ?? false
        otherAddress = json["other_address"] as? Bool ?? false
        mappingOtherPort = json["mapping_other_port"] as? String
        mappingOtherAddress = json["mapping_other_address"] as? String
        insidePort = json["inside_port"] as? Int ?? 0
    }

    /// Does the mapping change with the destination's port, or only with its address, or never?
    var mappingBehaviour: String? {
        guard let mapping, let samePort = mappingOtherPort, let otherAddress = mappingOtherAddress else { return nil }
        if samePort != mapping { return "address-and-port-dependent" }
        return otherAddress == mapping ? "endpoint-independent" : "address-dependent"
    }

    /// Which unsolicited datagrams got in: from anyone, from the contacted address only, or from the
    /// contacted address and port only. Nil when the two probes contradict each other.
    var filteringBehaviour: String? {
        switch (otherPort, otherAddress) {
        case (true, true): "endpoint-independent"
        case (true, false): "address-dependent"
        case (false, false): "address-and-port-dependent"
        case (false, true): nil
        }
    }

    var type: String? {
        guard let mappingBehaviour else { return nil }
        guard mappingBehaviour == "endpoint-independent" else { return "symmetric" }
        switch filteringBehaviour {
        case "endpoint-independent": return "full-cone"
        case "address-dependent": return "restricted-cone"
        case "address-and-port-dependent": return "port-restricted-cone"
        default: return nil
        }
    }

    var description: String {
        "mapping \(mapping ?? "-") (other port \(mappingOtherPort ?? "-"), other address \(mappingOtherAddress ?? "-")), reply \(reply), "
            + "unsolicited from the contacted address's other port \(otherPort ? "got in" : "kept out"), "
            + "from a never-contacted address \(otherAddress ? "got in" : "kept out") → \(type ?? "no type")"
    }
}

/// A command left running in the background (`conntrack --watch`), its output collected as it comes.
final class BackgroundCommand: @unchecked Sendable {
    let arguments: [String]
    private let process = Process()
    private let lock = NSLock()
    private var out = Data(), err = Data()

    init(_ arguments: [String]) throws {
        self.arguments = arguments
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        outPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.withLock { self.out.append(data) }
        }
        errPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.withLock { self.err.append(data) }
        }
        try process.run()
    }

    var stdout: String { lock.withLock { String(decoding: out, as: UTF8.self) } }
    var stderr: String { lock.withLock { String(decoding: err, as: UTF8.self) } }
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }

    /// Polls until `condition` holds on the lines printed so far, or `timeout` passes; returns whether it held.
    @discardableResult
    func waitFor(timeout: TimeInterval = 10, _ condition: ([String]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition(lines) { return true }
            if !process.isRunning { return condition(lines) }
            usleep(50_000)
        }
        return condition(lines)
    }

    /// SIGTERM (or SIGKILL when `kill`), then waits; returns the exit status (-1 if it had to be killed).
    @discardableResult
    func stop(kill: Bool = false) -> Int32 {
        if process.isRunning {
            if kill { Foundation.kill(process.processIdentifier, SIGKILL) } else { process.terminate() }
        }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return -1
        }
        process.waitUntilExit()
        usleep(100_000)  // the last output still in the pipes
        return process.terminationStatus
    }

    deinit { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }
}
