import Foundation
import Testing
import TestSupport

/// `nsinspect lab up|down|status|exec|test` run as a user runs them: on every example
/// as it is, and on lab files of the tests' own (names with a unique prefix) for failures, hand-made
/// damage, bad input and namespaces the lab does not own. Every test removes what it made, also when it
/// fails, and checks that nothing of its own is left.
@Suite("lab up, down, status, exec, test (end to end)", .serialized)
struct LabCommandTests {
    // MARK: Examples

    static let examples: [String] = {
        let directory = Package.root.appendingPathComponent("examples").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
    }()

    @Test(arguments: examples)
    func exampleGoesUpPassesStatusAndTestAndLeavesNothing(_ name: String) throws {
        let example = try ExampleLab(name)
        defer { example.finish() }
        try example.up()
        for ns in example.footprint.namespaces { #expect(example.footprint.isOurs(namespace: ns), "namespace \(ns) lacks the mark") }
        let test = nsinspect("lab", "test", example.file)
        #expect(test.succeeded, "\(test)")
        #expect(!test.stdout.contains("FAIL"), "\(test)")
        let status = nsinspect("lab", "status", example.file)
        #expect(status.succeeded && status.stdout.contains("is up and matches"), "\(status)")
        try example.down()
    }

    /// The pyns2 file and its twin in our schema make the same namespaces, links, addresses, routes,
    /// host links and rules: only what differs by nature (MACs, ifindexes in the host, cookies, inodes,
    /// lifetimes, the lab's name in its mark and table) is left out of the comparison.
    @Test func pyns2FileAndItsTwinBuildIdenticalLabs() throws {
        // One prefix for both: the twins get the same names, as they have the same names as written.
        let prefix = Scratch("twin").prefix
        let pyns2 = try Self.observe("container-bridge-pyns2.yaml", prefix: prefix)
        let ours = try Self.observe("container-bridge.yaml", prefix: prefix)
        for (part, a) in pyns2.sorted(by: { $0.key < $1.key }) {
            let b = ours[part] ?? "(missing)"
            #expect(a == b, "\(part) differs:\n\(Self.lineDiff(a, b))")
        }
        #expect(Set(pyns2.keys) == Set(ours.keys))
    }

    /// Brings an example up, reads its namespaces (`dump --json`), its host links (`show host --json`),
    /// the host's lab table and forwarding, brings it down; every part normalised and rendered as
    /// canonical JSON.
    static func observe(_ name: String, prefix: String) throws -> [String: String] {
        let example = try ExampleLab(name, prefix: prefix)
        defer { example.finish() }
        try example.up()
        let lab = example.footprint
        var parts: [String: String] = [:]
        let dump = nsinspect(arguments: ["dump", "--sections", "links,addrs,routes", "--json"] + lab.namespaces)
        try #require(dump.succeeded, "\(dump)")
        let namespaces = try #require(try Shell.json(dump.stdout) as? [String: Any])
        for (ns, state) in namespaces { parts["namespace \(ns)"] = canonical(normalised(state, lab)) }

        let show = nsinspect("show", "host", "--json")
        try #require(show.succeeded, "\(show)")
        let host = try #require(try Shell.json(show.stdout) as? [String: Any])
        let names = Set(lab.hostLinks)
        let links = (host["links"] as? [[String: Any]] ?? []).filter { names.contains($0["ifname"] as? String ?? "") }
        let addrs = (host["addrs"] as? [[String: Any]] ?? []).filter { names.contains($0["ifname"] as? String ?? "") }
        let routes = (host["routes"] as? [[String: Any]] ?? []).filter { names.contains($0["dev"] as? String ?? "") }
        #expect(links.count == names.count, "host links: \(links.compactMap { $0["ifname"] }) of \(names.sorted())")
        parts["host links"] = canonical(normalised(links, lab))
        parts["host addrs"] = canonical(normalised(addrs, lab))
        parts["host routes"] = canonical(normalised(routes, lab))
        let table = Shell.run(["nft", "list", "table", "inet", lab.table])
        parts["host nftables"] = table.succeeded ? table.stdout.replacingOccurrences(of: lab.table, with: "TABLE") : "(none)"
        parts["host ip_forward"] = HostSnapshot.take().ipForward
        try example.down()
        return parts
    }

    /// Leaves out what differs between two builds of the same lab by nature, and puts array elements
    /// in a canonical order (the kernel lists host links by ifindex, which follows creation order).
    static func normalised(_ value: Any, _ lab: LabFootprint) -> Any {
        let byNature: Set = ["address", "perm_address", "ifindex", "link_index", "ns", "cookie", "pids",
                             "valid_life_time", "preferred_life_time", "tentative", "operstate"]
        switch value {
        case let object as [String: Any]:
            return object.filter { !byNature.contains($0.key) }.mapValues { normalised($0, lab) }
        case let array as [Any]:
            // Carrier comes a moment after a link is set up (linkwatch): NO-CARRIER on a link and
            // linkdown on its routes depend on when they were read, not on how the lab was built.
            // Likewise IPv6 on a link starts only once it has carrier (a bridge: once a port is up): its
            // link-local address, the fe80:: routes and the ff00::/8 multicast route are timing too.
            let transient: Set = ["NO-CARRIER", "linkdown"]
            func linkLocal(_ element: Any) -> Bool {
                guard let object = element as? [String: Any] else { return false }
                let dst = object["dst"] as? String ?? ""
                return (object["local"] as? String)?.hasPrefix("fe80::") == true || dst.hasPrefix("fe80::") || dst == "ff00::/8"
            }
            return array.filter { !transient.contains($0 as? String ?? "") && !linkLocal($0) }.map { normalised($0, lab) }
                .sorted { canonical($0) < canonical($1) }
        case let text as String:
            if text == lab.mark { return "MARK" }
            return text
        default:
            return value
        }
    }

    static func canonical(_ value: Any) -> String {
        guard JSONSerialization.isValidJSONObject([value]),
            let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .prettyPrinted, .fragmentsAllowed])
        else { return "\(value)" }
        return String(decoding: data, as: UTF8.self)
    }

    static func lineDiff(_ a: String, _ b: String) -> String {
        let la = a.split(separator: "\n").map(String.init), lb = b.split(separator: "\n").map(String.init)
        let onlyA = la.filter { !lb.contains($0) }.map { "- \($0)" }
        let onlyB = lb.filter { !la.contains($0) }.map { "+ \($0)" }
        return (onlyA + onlyB).joined(separator: "\n")
    }

    // MARK: Failures and damage

    /// Faults that only the kernel or nft sees, late in `up`: a sysctl the kernel does not have (after
    /// the namespaces, links and the host's forwarding are in place) and raw nftables text using a set
    /// that does not exist (the last step, after the host's own table is loaded).
    enum LateFault: String, CaseIterable, CustomTestStringConvertible {
        case unknownSysctl, undefinedNftSet
        var testDescription: String { rawValue }
    }

    @Test(arguments: LateFault.allCases)
    func upThatFailsMidwayLeavesNothingAndNamesTheStep(_ fault: LateFault) throws {
        let scratch = Scratch("lfail")
        let lab = try TestLab(scratch) { names in
            let faulty: String
            switch fault {
            case .unknownSysctl:
                faulty = "    sysctls: {net.ipv4.conf.all.nsinspect_no_such_sysctl: 1}"
            case .undefinedNftSet:
                faulty = """
                        nftables: |
                          chain in {
                            type filter hook input priority 0; policy accept;
                            ip saddr @no_such_set drop
                          }
                    """
            }
            return """
                lab: \(names.lab)
                host:
                  forwarding: ipv4
                  nat:
                    - masquerade: {src: \(names.net(0)).0/24, out: \(names.hostLink)}
                namespaces:
                  \(names.ns("a")):
                    routes: [default via \(names.net(0)).1]
                  \(names.ns("b")):
                    routes: [default via \(names.net(1)).1]
                \(faulty)
                links:
                  - {a: host:\(names.hostLink) \(names.net(0)).1/24, b: \(names.ns("a")):eth0 \(names.net(0)).10/24}
                  - {a: \(names.ns("a")):e1 \(names.net(1)).1/24, b: \(names.ns("b")):eth0 \(names.net(1)).10/24}
                """
        }
        defer { lab.finish() }
        let up = nsinspect("lab", "up", lab.file)
        #expect(up.status != 0, "\(up)")
        let lines = up.stderr.split(separator: "\n")
        #expect(lines.count == 1, "not one line: \(up.stderr)")
        let message = String(lines.first ?? "")
        #expect(message.hasPrefix("lab up: \(lab.names.lab): step "), "\(message)")
        #expect(message.hasSuffix("removed everything this run made"), "\(message)")
        switch fault {
        case .unknownSysctl:
            #expect(message.contains("(ip netns exec \(lab.names.ns("b")) sysctl -w net.ipv4.conf.all.nsinspect_no_such_sysctl=1)"), "\(message)")
            #expect(message.contains("no such sysctl"), "\(message)")
            // Midway: addresses, routes and rules were still to come.
            let step = try #require(Self.stepNumbers(message))
            #expect(step.done < step.total, "\(message)")
        case .undefinedNftSet:
            #expect(message.contains("(ip netns exec \(lab.names.ns("b")) nft -f - (table inet \(lab.footprint.table)))"), "\(message)")
            #expect(message.contains("no_such_set") || message.contains("No such file or directory"), "\(message)")
        }
        #expect(lab.footprint.leftovers(since: lab.before).isEmpty, "\(lab.footprint.leftovers(since: lab.before))")
        let down = nsinspect("lab", "down", lab.file)
        #expect(down.succeeded && down.stdout.contains("is not up"), "\(down)")
    }

    /// `step N of M` in an error.
    static func stepNumbers(_ message: String) -> (done: Int, total: Int)? {
        guard let range = message.range(of: "step ") else { return nil }
        let words = message[range.upperBound...].split(separator: " ")
        guard words.count > 2, let done = Int(words[0]), words[1] == "of", let total = Int(words[2]) else { return nil }
        return (done, total)
    }

    @Test func namespaceDeletedByHandIsReportedAndDownRemovesTheRest() throws {
        let scratch = Scratch("ldel")
        let lab = try TestLab(scratch, yaml: TestLab.chain)
        defer { lab.finish() }
        let up = nsinspect("lab", "up", lab.file)
        try #require(up.succeeded, "\(up)")
        let (a, b, c) = (lab.names.ns("a"), lab.names.ns("b"), lab.names.ns("c"))
        try Shell.must("ip", "netns", "del", b)

        let status = nsinspect("lab", "status", lab.file)
        #expect(status.status != 0, "\(status)")
        #expect(status.stdout.contains("missing") && status.stdout.contains("namespace \(b)"), "\(status)")
        let json = nsinspect("lab", "status", lab.file, "--json")
        let drift = (try? Shell.json(json.stdout) as? [String: Any])?["drift"] as? [[String: Any]] ?? []
        #expect(drift.contains { $0["kind"] as? String == "missing" && $0["what"] as? String == "namespace \(b)" }, "\(json)")
        #expect(!drift.contains { ($0["what"] as? String)?.hasPrefix("namespace \(a)") == true }, "\(json)")

        let down = nsinspect("lab", "down", lab.file)
        #expect(down.succeeded, "\(down)")
        for removed in ["namespace \(a)", "namespace \(c)", "host interface \(lab.names.hostLink)"] {
            #expect(down.stdout.contains(removed), "\(down)")
        }
        #expect(!down.stdout.contains("namespace \(b)"), "\(down)")
        #expect(lab.footprint.leftovers(since: lab.before).isEmpty, "\(lab.footprint.leftovers(since: lab.before))")
    }

    /// Drift is the diff of the file, written as a snapshot, against a snapshot of the lab: each change
    /// made by hand with `ip` is one drift entry of its kind, and nothing else is reported.
    @Test func eachChangeByHandIsOneDriftEntry() throws {
        let scratch = Scratch("ldrift")
        let lab = try TestLab(scratch, yaml: TestLab.chain)
        defer { lab.finish() }
        let up = nsinspect("lab", "up", lab.file)
        try #require(up.succeeded, "\(up)")
        let (a, b, c) = (lab.names.ns("a"), lab.names.ns("b"), lab.names.ns("c"))
        let net = { (i: Int) in lab.names.net(i) }
        let clean = nsinspect("lab", "status", lab.file, "--json")
        #expect(clean.succeeded && clean.stdout.contains("\"matches\":true"), "\(clean)")

        // Each change leaves the others' routes alone: a link set down or an address removed takes the
        // routes through it away, so those are on links no declared route uses.
        try Shell.must("ip", "-n", a, "route", "append", "\(net(2)).0/24", "via", "\(net(1)).20", "dev", "e1", "metric", "7")
        try Shell.must("ip", "-n", a, "addr", "del", "\(net(0)).10/24", "dev", "eth0")
        try Shell.must("ip", "-n", b, "link", "set", "e1", "down")
        try Shell.must("ip", "-n", b, "link", "add", "stray0", "type", "veth", "peer", "name", "stray1")
        try Shell.must("ip", "netns", "exec", b, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        try Shell.must("ip", "-n", c, "addr", "add", "\(net(2)).99/24", "dev", "eth0")
        try Shell.must("ip", "-n", c, "route", "del", "default")
        try Shell.must("ip", "-n", c, "route", "add", "10.254.0.0/16", "via", "\(net(2)).1")

        let status = nsinspect("lab", "status", lab.file, "--json")
        #expect(status.status == 1, "\(status)")
        let drift = (try? Shell.json(status.stdout) as? [String: Any])?["drift"] as? [[String: Any]] ?? []
        let lines = drift.map { "\($0["kind"] as? String ?? "?") \($0["what"] as? String ?? "?")" }.sorted()
        let expected = [
            "extra route \(net(2)).0/24 via \(net(1)).20 dev e1 table main metric 7 in \(a)",
            "missing address \(net(0)).10/24 on eth0 in \(a)",
            "changed link \(b):e1",
            "extra link \(b):stray0 (veth)",
            "extra link \(b):stray1 (veth)",
            "changed net.ipv4.ip_forward in \(b)",
            "extra address \(net(2)).99/24 on eth0 in \(c)",
            "missing route default via \(net(2)).1 table main in \(c)",
            "extra route 10.254.0.0/16 via \(net(2)).1 dev eth0 table main in \(c)",
        ].sorted()
        #expect(lines == expected, "\(status)")
        let link = drift.first { $0["what"] as? String == "link \(b):e1" }
        #expect(link?["detail"] as? String == "admin down (the file says up)", "\(status)")
        // `up` on a lab that is up compares it the same way before refusing.
        let again = nsinspect("lab", "up", lab.file)
        #expect(again.status != 0 && again.stderr.contains("lab is up but differs from the file: \(expected.count) differences"), "\(again)")

        let down = nsinspect("lab", "down", lab.file)
        #expect(down.succeeded, "\(down)")
        #expect(lab.footprint.leftovers(since: lab.before).isEmpty, "\(lab.footprint.leftovers(since: lab.before))")
    }

    // MARK: Repeated commands and exec

    @Test func upTwiceChangesNothingDownTwiceSaysSoAndExecRunsInside() throws {
        let scratch = Scratch("lrep")
        let lab = try TestLab(scratch, yaml: TestLab.chain)
        defer { lab.finish() }
        let up = nsinspect("lab", "up", lab.file)
        try #require(up.succeeded && up.stdout.contains("lab \(lab.names.lab) is up:"), "\(up)")
        let before = try lab.observed()
        let again = nsinspect("lab", "up", lab.file)
        #expect(again.succeeded && again.stdout == "lab \(lab.names.lab) is already up; nothing changed\n", "\(again)")
        #expect(try lab.observed() == before, "a second up changed the lab")

        let a = lab.names.ns("a")
        let addr = nsinspect("lab", "exec", lab.file, a, "--", "ip", "-o", "addr")
        #expect(addr.succeeded && addr.stdout.contains("inet \(lab.names.net(1)).10/24"), "\(addr)")
        let netns = nsinspect("lab", "exec", lab.file, a, "--", "stat", "-L", "-c", "%i", "/proc/self/ns/net")
        #expect(netns.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == NetnsDirectory.inode(a).map(String.init), "\(netns)")
        #expect(nsinspect("lab", "exec", lab.file, a, "--", "sh", "-c", "exit 7").status == 7)
        #expect(nsinspect("lab", "exec", lab.file, a, "--", "true").status == 0)
        let stranger = scratch.name("z")
        let wrong = nsinspect("lab", "exec", lab.file, stranger, "--", "true")
        #expect(wrong.status != 0 && wrong.stderr.contains("lab exec: \(stranger): not a namespace of lab \(lab.names.lab)"), "\(wrong)")
        #expect(!NetnsDirectory.exists(stranger))

        let down = nsinspect("lab", "down", lab.file)
        #expect(down.succeeded && down.stdout.hasPrefix("lab \(lab.names.lab) is down: removed "), "\(down)")
        let downAgain = nsinspect("lab", "down", lab.file)
        #expect(downAgain.succeeded && downAgain.stdout == "lab \(lab.names.lab) is not up; nothing to remove\n", "\(downAgain)")
        let exec = nsinspect("lab", "exec", lab.file, a, "--", "true")
        #expect(exec.status != 0 && exec.stderr.contains("is not up"), "\(exec)")
        #expect(lab.footprint.leftovers(since: lab.before).isEmpty, "\(lab.footprint.leftovers(since: lab.before))")
    }

    // MARK: Bad input

    /// One bad file each, and the problems `lab up` (and `down`, `status`) must report for it, one line
    /// each, at LINE:COLUMN.
    struct BadFile: CustomTestStringConvertible, Sendable {
        typealias Problem = (line: Int, column: Int, message: String)
        var label: String
        var yaml: @Sendable (TestLab.Names) -> String
        var problems: @Sendable (TestLab.Names) -> [Problem]
        var testDescription: String { label }
    }

    static let badFiles: [BadFile] = [
        BadFile(label: "malformed YAML",
                yaml: { n in "lab: \(n.lab)\nnamespaces: [\(n.ns("a")), \(n.ns("b"))\n" },
                problems: { _ in [(3, 1, "malformed YAML: did not find expected ',' or ']'")] }),
        BadFile(label: "unknown key",
                yaml: { n in "lab: \(n.lab)\nnamespaces:\n  \(n.ns("a")):\n    routs: [default via 10.0.0.1]\n" },
                problems: { n in [(4, 5, "unknown key 'routs' in the settings of namespace \(n.ns("a"))")] }),
        BadFile(label: "invalid lab and namespace names",
                yaml: { n in "lab: \(n.lab)/x\nnamespaces:\n  -\(n.ns("a")):\n  \(n.ns("b")):\n  \"..\":\n" },
                problems: { n in [(1, 6, "invalid lab name '\(n.lab)/x': name contains '/'"),
                                  (3, 3, "invalid namespace name '-\(n.ns("a"))': name starts with '-'"),
                                  (5, 3, "invalid namespace name '..': '..' is not a name")] }),
        BadFile(label: "address without prefix length",
                yaml: { n in "lab: \(n.lab)\nnamespaces: [\(n.ns("a")), \(n.ns("b"))]\nlinks:\n  - {a: \(n.ns("a")):e0 10.9.0.1, b: \(n.ns("b")):e0 10.9.0.2/24}\n" },
                // The address follows `  - {a: NS:e0 `.
                problems: { n in [(4, "  - {a: \(n.ns("a")):e0 ".count + 1, "address 10.9.0.1 has no prefix length")] }),
        BadFile(label: "route via an address on no connected network",
                yaml: { n in "lab: \(n.lab)\nnamespaces:\n  \(n.ns("a")):\n    routes: [default via 10.9.9.9]\n  \(n.ns("b")):\nlinks:\n  - {a: \(n.ns("a")):e0 10.9.0.1/24, b: \(n.ns("b")):e0 10.9.0.2/24}\n" },
                problems: { n in [(4, 14, "gateway 10.9.9.9 is on no network of \(n.ns("a"))")] }),
    ]

    @Test(arguments: badFiles)
    func badInputIsOneLinePerProblemWithPositionAndCreatesNothing(_ bad: BadFile) throws {
        let scratch = Scratch("lbad")
        let lab = try TestLab(scratch, footprint: false, yaml: bad.yaml)
        defer { lab.finish() }
        for command in ["up", "down", "status"] {
            let result = nsinspect("lab", command, lab.file)
            #expect(result.status != 0, "\(command): \(result)")
            let lines = result.stderr.split(separator: "\n").map(String.init)
            let problems = bad.problems(lab.names)
            #expect(lines.count == problems.count, "\(command): expected \(problems.count) lines: \(result.stderr)")
            for problem in problems {
                let position = "lab \(command): \(lab.file):\(problem.line):\(problem.column): "
                #expect(lines.contains { $0.hasPrefix(position) && $0.contains(problem.message) },
                        "\(command): no line at \(position) with \"\(problem.message)\": \(result.stderr)")
            }
        }
        #expect(scratch.leftovers().isEmpty, "\(scratch.leftovers())")
        #expect(HostSnapshot.take() == lab.before)
    }

    @Test func withoutCapabilitiesTheCapabilityIsNamedAndNothingIsMade() throws {
        let scratch = Scratch("lcap")
        let lab = try TestLab(scratch, yaml: TestLab.chain)
        defer { lab.finish() }
        let setpriv = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", Package.binary, "lab"]
        for command in ["up", "down", "status", "test"] {
            let result = Shell.run(setpriv + [command, lab.file])
            #expect(result.status != 0, "\(command): \(result)")
            #expect(result.stderr.hasPrefix("lab \(command): needs CAP_") && result.stderr.contains("CAP_SYS_ADMIN"), "\(command): \(result)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(command): \(result)")
        }
        let exec = Shell.run(setpriv + ["exec", lab.file, lab.names.ns("a"), "--", "true"])
        #expect(exec.status != 0 && exec.stderr.contains("CAP_SYS_ADMIN"), "\(exec)")
        #expect(lab.footprint.leftovers(since: lab.before).isEmpty, "\(lab.footprint.leftovers(since: lab.before))")
        #expect(scratch.leftovers().isEmpty, "\(scratch.leftovers())")
    }

    // MARK: Ownership

    @Test func namespaceOrHostLinkWithTheLabsNameButNotItsMarkIsNeverTouched() throws {
        let scratch = Scratch("lown")
        let lab = try TestLab(scratch, yaml: TestLab.chain)
        defer { lab.finish() }
        let (a, b) = (lab.names.ns("a"), lab.names.ns("b"))

        // A namespace of the lab's name, made by someone else.
        try Shell.must("ip", "netns", "add", a)
        let inode = try #require(NetnsDirectory.inode(a))
        let up = nsinspect("lab", "up", lab.file)
        #expect(up.status != 0 && up.stderr.contains("namespace \(a) exists and was not made by lab '\(lab.names.lab)'"), "\(up)")
        #expect(!NetnsDirectory.exists(b) && !HostLinks.names().contains(lab.names.hostLink), "up made something")
        let down = nsinspect("lab", "down", lab.file)
        #expect(down.succeeded && down.stderr.contains("left alone") && down.stderr.contains(a), "\(down)")
        #expect(NetnsDirectory.inode(a) == inode, "\(a) was replaced or removed")
        let lo = try Shell.json(try Shell.must("ip", "-n", a, "-j", "link", "show", "lo")) as? [[String: Any]]
        #expect(lo?.first?["ifalias"] == nil, "lab marked a namespace it does not own")
        let status = nsinspect("lab", "status", lab.file)
        #expect(status.status != 0 && status.stdout.contains(a), "\(status)")
        try Shell.must("ip", "netns", "del", a)

        // A host link of the lab's name, made by someone else (no dummy driver here: a veth pair).
        let peer = scratch.linkName("p")
        try Shell.must("ip", "link", "add", lab.names.hostLink, "type", "veth", "peer", "name", peer)
        let upAgain = nsinspect("lab", "up", lab.file)
        #expect(upAgain.status != 0 && upAgain.stderr.contains("host interface \(lab.names.hostLink) exists and was not made by lab"), "\(upAgain)")
        #expect(lab.footprint.namespaces.allSatisfy { !NetnsDirectory.exists($0) }, "up made a namespace")
        let downAgain = nsinspect("lab", "down", lab.file)
        #expect(downAgain.succeeded && downAgain.stderr.contains("left alone: host interface \(lab.names.hostLink)"), "\(downAgain)")
        #expect(HostLinks.names().contains(lab.names.hostLink) && HostLinks.names().contains(peer))
        try Shell.must("ip", "link", "del", lab.names.hostLink)
        #expect(lab.footprint.leftovers(since: lab.before).isEmpty, "\(lab.footprint.leftovers(since: lab.before))")
    }
}

// MARK: - Labs of the tests

/// An example lab (examples/NAME) brought up by a test under names of its own (`PrefixedExample`), and in
/// `finish()` (a `defer`) brought down if this test built it, then checked that nothing of it is left.
final class ExampleLab {
    let file: String
    let footprint: LabFootprint
    let before: HostSnapshot
    private var built = false

    /// - Parameter prefix: the names' prefix; twin examples compared with each other share one.
    init(_ name: String, prefix: String = Scratch("ex").prefix) throws {
        file = try PrefixedExample.write(name, prefix: prefix)
        footprint = try LabFootprint(file: file)
        before = HostSnapshot.take()
    }

    func up() throws {
        let up = nsinspect("lab", "up", file)
        // Built by this run (not found already up: another run could hold the same example).
        built = up.succeeded && up.stdout.hasPrefix("lab \(footprint.lab) is up:")
        try #require(built, "\(up)")
    }

    func down() throws {
        let down = nsinspect("lab", "down", file)
        #expect(down.succeeded && down.stdout.hasPrefix("lab \(footprint.lab) is down: removed "), "\(down)")
        built = false
        let left = footprint.leftovers(since: before)
        #expect(left.isEmpty, "\(footprint.lab) left \(left)")
    }

    func finish() {
        if built { nsinspect("lab", "down", file) }
        built = false
        let left = footprint.leftovers(since: before)
        #expect(left.isEmpty, "\(footprint.lab) left \(left)")
        try? FileManager.default.removeItem(atPath: file)
    }
}

/// A lab file of a test's own in a temporary directory, its lab, namespace and host link names carrying
/// the Scratch prefix. `finish()` (a `defer`) runs `lab down`, removes whatever is still there and puts
/// the host's forwarding back, then checks that nothing is left.
final class TestLab {
    /// Names and networks for a lab file of a test.
    struct Names: Sendable {
        let prefix: String
        let hostLink: String
        /// Where this run's /24 networks start (in 10.112.0.0/12, which no example or other test uses).
        let block: Int
        var lab: String { prefix }
        func ns(_ suffix: String) -> String { "\(prefix)-\(suffix)" }
        /// `10.A.B` (the first three bytes of a /24) for the network number `index` of this run.
        func net(_ index: Int) -> String { "10.\(112 + (block + index) / 256 % 16).\((block + index) % 256)" }
    }

    let scratch: Scratch
    let names: Names
    let file: String
    let before: HostSnapshot
    private(set) var footprint: LabFootprint!

    /// Three namespaces in a row, the first with a veth to the host, routes through the middle one.
    static let chain: @Sendable (Names) -> String = { n in
        """
        lab: \(n.lab)
        namespaces:
          \(n.ns("a")):
            forwarding: true
            routes: [\(n.net(2)).0/24 via \(n.net(1)).20]
          \(n.ns("b")):
            forwarding: true
            routes: [default via \(n.net(1)).10]
          \(n.ns("c")):
            routes: [default via \(n.net(2)).1]
        links:
          - {a: host:\(n.hostLink) \(n.net(0)).1/24, b: \(n.ns("a")):eth0 \(n.net(0)).10/24}
          - {a: \(n.ns("a")):e1 \(n.net(1)).10/24, b: \(n.ns("b")):e0 \(n.net(1)).20/24}
          - {a: \(n.ns("b")):e1 \(n.net(2)).1/24, b: \(n.ns("c")):eth0 \(n.net(2)).10/24}
        expect:
          - reach: {from: \(n.ns("a")), to: \(n.ns("c"))}
          - hops: {from: \(n.ns("c")), to: \(n.net(1)).10, equals: 1}
        """
    }

    init(_ scratch: Scratch, footprint: Bool = true, yaml: (Names) -> String) throws {
        self.scratch = scratch
        names = Names(prefix: scratch.prefix, hostLink: scratch.linkName("h"),
                      block: Int(UInt32.random(in: 0..<UInt32.max) % 4000))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nsinspect-\(scratch.prefix)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        scratch.track(path: directory.path)
        file = directory.appendingPathComponent("lab.yaml").path
        try yaml(names).write(toFile: file, atomically: true, encoding: .utf8)
        before = HostSnapshot.take()
        if footprint { self.footprint = try LabFootprint(file: file) }
        // Removed by Scratch too, should `lab down` fail.
        for ns in self.footprint?.namespaces ?? [] { scratch.track(namespace: ns) }
        scratch.track(hostLink: names.hostLink)
    }

    /// The lab's namespaces as they are: inode and `ip -j addr` of each.
    func observed() throws -> [String: String] {
        var state: [String: String] = [:]
        for ns in footprint.namespaces {
            state[ns] = "\(NetnsDirectory.inode(ns) ?? 0) " + (try Shell.must("ip", "-n", ns, "-j", "addr", "show"))
        }
        state["host"] = try Shell.must("ip", "-j", "addr", "show", "dev", names.hostLink)
        return state
    }

    func finish() {
        if footprint != nil { nsinspect("lab", "down", file) }
        let tables = HostSnapshot.take().tables
        if tables.contains("nsinspect-\(names.lab)") { Shell.run(["nft", "delete", "table", "inet", "nsinspect-\(names.lab)"]) }
        Shell.run(["sysctl", "-qw", "net.ipv4.ip_forward=\(before.ipForward)"])
        scratch.cleanup()
        #expect(scratch.leftovers().isEmpty, "\(scratch.leftovers())")
        if let footprint { #expect(footprint.leftovers(since: before).isEmpty, "\(footprint.leftovers(since: before))") }
    }
}
