#if canImport(Glibc)
import Glibc
#endif
import JSONKit
import Netlink
import ProcNS
import Testing

/// A test failure with a message (for `throw` where `#require` does not fit).
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Kernel tests need root (CAP_NET_ADMIN to build links, CAP_SYS_ADMIN to create and name namespaces).
/// Without it they fail with this message: a missing privilege must never look like a pass.
func requireRoot() throws {
    try #require(geteuid() == 0, "kernel tests need root (CAP_NET_ADMIN and CAP_SYS_ADMIN): run `swift test` as root")
}

/// A short random prefix for one test's namespaces and links, e.g. `nl-3fa9c1` (interface names must
/// stay within 15 bytes, so a link is named prefix + 2–5 more characters).
func uniquePrefix(_ base: String = "nl") -> String {
    base + "-" + String(UInt32.random(in: 0x10_0000...0xff_ffff), radix: 16)
}

// MARK: Files

/// Reading and writing files next to this source file (the fixtures live in the source tree, so the
/// capture test rewrites the committed files and the decoder tests read them without Foundation).
enum SourceFiles {
    static let fixtures: String = {
        let path = #filePath
        return String(path[..<path.lastIndex(of: "/")!]) + "/Fixtures"
    }()

    static func read(_ path: String) throws -> String {
        guard let file = fopen(path, "rb") else { throw TestFailure("cannot open \(path): \(Errno.current)") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func write(_ path: String, _ text: String) throws {
        guard let file = fopen(path, "wb") else { throw TestFailure("cannot create \(path): \(Errno.current)") }
        defer { fclose(file) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ fwrite($0.baseAddress, 1, $0.count, file) }) == bytes.count else {
            throw TestFailure("cannot write \(path)")
        }
    }
}

// MARK: Hex

enum Hex {
    /// Bytes from hex text: pairs of hex digits; spaces, line breaks and `#` comments to the end of a line
    /// are ignored.
    static func bytes(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            var high: UInt8?
            for c in code.utf8 {
                let v: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
                default: continue
                }
                if let h = high {
                    out.append(h << 4 | v)
                    high = nil
                } else {
                    high = v
                }
            }
        }
        return out
    }

    /// Hex lines of 16 bytes, grouped in 4-byte words (netlink aligns everything to 4).
    static func lines(_ bytes: ArraySlice<UInt8>) -> [String] {
        let digits = Array("0123456789abcdef")
        var lines: [String] = []
        var at = bytes.startIndex
        while at < bytes.endIndex {
            let row = bytes[at..<min(at + 16, bytes.endIndex)]
            var line = ""
            for (i, b) in row.enumerated() {
                if i > 0 { line += i % 4 == 0 ? "  " : " " }
                line.append(digits[Int(b >> 4)])
                line.append(digits[Int(b & 0xf)])
            }
            lines.append(line)
            at += 16
        }
        return lines
    }
}

// MARK: Fixtures

/// A fixture file: the datagrams the kernel sent in answer to one request, as hex, with `#` comments.
/// A line `datagram N (… bytes)` starts each datagram; `#` lines say what the setup and the request were
/// and what each message is.
struct Fixture {
    let name: String
    let datagrams: [[UInt8]]

    static let all = ["link-dump-router", "link-dump-host1", "addr-dump-router", "addr-dump-host1", "route-dump-router",
                      "route-dump-host1", "neigh-dump-host1", "neigh-dump-router", "fdb-dump-router", "rule-dump-router",
                      "route-get-host1", "error-route-add", "conntrack-dump-nat"]
    /// Fixtures that are not answers to a request (no NLMSG_DONE or NLMSG_ERROR at the end): events.
    static let events = ["conntrack-events-nat"]

    static func path(_ name: String) -> String { SourceFiles.fixtures + "/" + name + ".hex" }

    static func load(_ name: String) throws -> Fixture {
        Fixture(name: name, datagrams: parse(try SourceFiles.read(path(name))))
    }

    static func parse(_ text: String) -> [[UInt8]] {
        var datagrams: [[UInt8]] = []
        var current: String?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("#") { continue }
            if line.hasPrefix("datagram") {
                if let current { datagrams.append(Hex.bytes(current)) }
                current = ""
            } else {
                current = (current ?? "") + line + "\n"
            }
        }
        if let current { datagrams.append(Hex.bytes(current)) }
        return datagrams
    }

    /// Every message of every datagram (a fixture that does not split is a broken fixture).
    func messages() throws -> [NetlinkMessage] {
        try datagrams.flatMap { try NetlinkMessage.split($0[...]) }
    }

    /// - Parameters:
    ///   - namespaces: what the placeholders in `setup` stand for.
    ///   - notes: more `#` lines after the request (what another tool printed of the same state).
    static func render(title: String, setup: [String], request: String, datagrams: [[UInt8]], kernel: String,
                       namespaces: String = "H1, H2, R are throwaway namespaces", capturedBy: String = "FixtureCapture.swift",
                       notes: [String] = []) -> String {
        var out = ["# nsinspect netlink fixture: \(title)",
                   "# kernel: \(kernel) (captured by \(capturedBy) with NSINSPECT_CAPTURE_FIXTURES=1)",
                   "# setup (\(namespaces)):"]
        out += setup.map { "#   " + $0 }
        out.append("# request: \(request)")
        out += notes.map { "# " + $0 }
        out.append("# below: each datagram as recvmsg(2) returned it, each message preceded by what it is")
        for (n, datagram) in datagrams.enumerated() {
            out.append("datagram \(n + 1) (\(datagram.count) bytes)")
            let messages = (try? NetlinkMessage.split(datagram[...])) ?? []
            var at = 0
            for message in messages {
                let length = NLMsg.headerSize + message.payload.count
                out.append("# " + describe(message))
                out += Hex.lines(datagram[at..<at + length])
                at += (length + 3) & ~3
                if at > datagram.count { break }
            }
            if at < datagram.count { out += Hex.lines(datagram[at...]) }
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// One line about a message, for the fixture's reader.
    static func describe(_ message: NetlinkMessage) -> String {
        let head = "\(CTNetlink.name(message.type)) len \(NLMsg.headerSize + message.payload.count) flags 0x\(String(message.flags, radix: 16))"
        do {
            if let event = try ConntrackEvent.decode(message) {
                // A dump entry is an IPCTNL_MSG_CT_NEW without NLM_F_CREATE: shown without an event word.
                let isDump = message.flags & NLMsg.multi != 0
                return "\(head): \(event.entry.text(event: isDump ? nil : event.kind))"
            }
            if let link = try Link.decode(message) {
                var text = "\(head): ifindex \(link.index) \(link.name)"
                if let kind = link.kind { text += " kind \(kind)" }
                if let master = link.master { text += " master \(master)" }
                if let peer = link.link { text += " link \(peer)" }
                if let nsid = link.linkNetnsID { text += " link-netnsid \(nsid)" }
                return text
            }
            if let address = try InterfaceAddress.decode(message) {
                return "\(head): \(address.prefix.map(String.init(describing:)) ?? "?") ifindex \(address.index) scope \(address.scopeName)"
            }
            if let route = try Route.decode(message) {
                var text = "\(head): \(route.typeName) \(route.destination) table \(route.tableName)"
                if let gateway = route.gateway { text += " via \(gateway)" }
                if let oif = route.outputIndex { text += " oif \(oif)" }
                if !route.nexthops.isEmpty { text += " nexthops \(route.nexthops.count)" }
                return text
            }
            if let neighbour = try Neighbour.decode(message) {
                return "\(head): \(neighbour.destination) lladdr \(neighbour.linkAddress.map(String.init(describing:)) ?? "-") ifindex \(neighbour.index) \(neighbour.stateNames.joined(separator: ","))"
            }
            if let entry = try FDBEntry.decode(message) {
                return "\(head): \(entry.linkAddress) ifindex \(entry.index) \(entry.flagNames.joined(separator: ",")) \(entry.stateName)"
            }
            if let rule = try Rule.decode(message) {
                return "\(head): family \(rule.family) priority \(rule.priority) table \(rule.tableName) action \(rule.actionName)"
            }
            if message.type == NLMsg.error || message.type == NLMsg.done {
                if let error = try NetlinkError.decode(message, request: "request") { return "\(head): \(error)" }
                return "\(head): \(message.type == NLMsg.done ? "end of dump" : "acknowledgement")"
            }
        } catch {
            return "\(head): undecodable: \(error)"
        }
        return "\(head): other family"
    }
}

// MARK: Namespaces and commands

/// A throwaway namespace with a name in /var/run/netns (so `ip -n NAME` reaches it). `remove()` forgets
/// the name; the namespace itself goes when the handle is released.
final class TestNamespace {
    let handle: NamespaceHandle
    let name: String
    private static let names = NetnsNames(directory: "/var/run/netns", operation: "test")

    init(_ name: String) throws {
        handle = try NamespaceThread.createNamespace()
        self.name = name
        try TestNamespace.names.bind(handle, as: name)
    }

    func session() throws -> NetlinkSession { try NetlinkSession(in: handle, label: name) }

    func remove() { _ = try? TestNamespace.names.forget(name) }

    /// Names in /var/run/netns that start with `prefix` (what a test must not leave behind).
    static func leftovers(_ prefix: String) -> [String] {
        guard let dir = opendir("/var/run/netns") else { return [] }
        defer { closedir(dir) }
        var found: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix(prefix) { found.append(name) }
        }
        return found
    }
}

/// Runs a command (ip, bridge, ping) and returns its standard output; a failure throws with its output.
@discardableResult
func run(_ arguments: [String], in namespace: NamespaceHandle? = nil) throws -> String {
    let result = try Spawner(namespace: namespace).run(arguments, mergeError: true)
    guard result.status.succeeded else {
        throw TestFailure("\(arguments.joined(separator: " ")): \(result.status): \(result.output)")
    }
    return result.output
}

/// `ip -j ARGS` parsed.
func ipJSON(_ arguments: [String]) throws -> [JSON] {
    let result = try Spawner().run(["ip", "-j"] + arguments, mergeError: false)
    guard result.status.succeeded else { throw TestFailure("ip -j \(arguments.joined(separator: " ")): \(result.status)") }
    guard let array = try JSON.parse(result.output).arrayValue else { throw TestFailure("ip -j output is not an array") }
    return array
}

/// Links in the test process's own namespace whose names start with `prefix` (tests must leave none).
func hostLinks(_ prefix: String) throws -> [String] {
    try NetlinkSession(label: "self").links().map(\.name).filter { $0.hasPrefix(prefix) }
}
