#if canImport(Glibc)
import Glibc
#endif
import Netlink
import ProcNS
import Testing

/// Rewrites Fixtures/conntrack-*.hex from this kernel, only when NSINSPECT_CAPTURE_FIXTURES=1 is set:
///
///     NSINSPECT_CAPTURE_FIXTURES=1 swift test --filter ConntrackFixtureCapture
///
/// Three throwaway namespaces: a client C behind a NAT router N, and a server S outside. N SNATs the
/// client's UDP into a port range and masquerades the rest, DNATs port 8080 of its outside address to the
/// client, marks ICMP echo with `ct mark` 42 (in an inet table, so IPv6 is tracked too) and counts packets (nf_conntrack_acct). Then real traffic makes one
/// entry of each kind in N's table (UDP unreplied with and without NAT, UDP replied, TCP, ICMP, IPv6, a
/// DNAT), and the dump is saved together with what `conntrack -L` printed in the same second, before and
/// after it (the capture is retried until both agree, so the timeouts in the annotation are the ones in the
/// bytes). The events fixture is what a socket subscribed to NEW, UPDATE and DESTROY received while one
/// more UDP flow was answered and then deleted with `conntrack -D`, annotated with `conntrack -E`'s lines.
/// Everything is done with ip(8), nft(8), python3 and conntrack(8) so the header says what produced it.
@Suite("ConntrackFixtureCapture", .serialized)
struct ConntrackFixtureCapture {
    /// The setup, with {C}, {N} and {S} standing for the namespaces' names; each line runs under `sh -c`.
    static let setup: [String] = [
        "ip link add eth0 netns {C} type veth peer name lan0 netns {N}",
        "ip link add wan0 netns {N} type veth peer name eth0 netns {S}",
        "ip -n {C} link set lo up && ip -n {C} link set eth0 up",
        "ip -n {N} link set lo up && ip -n {N} link set lan0 up && ip -n {N} link set wan0 up",
        "ip -n {S} link set lo up && ip -n {S} link set eth0 up",
        "ip -n {C} addr add 10.0.1.10/24 dev eth0",
        "ip -n {N} addr add 10.0.1.1/24 dev lan0",
        "ip -n {N} addr add 192.0.2.1/24 dev wan0",
        "ip -n {N} addr add 2001:db8:2::1/64 dev wan0 nodad",
        "ip -n {S} addr add 192.0.2.10/24 dev eth0",
        "ip -n {S} addr add 2001:db8:2::10/64 dev eth0 nodad",
        "ip -n {C} route add default via 10.0.1.1",
        "ip netns exec {N} sysctl -qw net.ipv4.ip_forward=1 net.netfilter.nf_conntrack_acct=1",
        "ip netns exec {N} nft 'table ip t { chain post { type nat hook postrouting priority srcnat; oifname \"wan0\" ip saddr 10.0.1.0/24 meta l4proto udp snat to 192.0.2.1:40000-40099; oifname \"wan0\" ip saddr 10.0.1.0/24 masquerade; }; chain pre { type nat hook prerouting priority dstnat; iifname \"wan0\" udp dport 8080 dnat to 10.0.1.10:80; }; }'",
        // An inet table (so IPv6 is tracked too) that marks the ping's entry.
        "ip netns exec {N} nft 'table inet m { chain marks { type filter hook forward priority filter; icmp type echo-request ct mark set 42; }; }'",
        "ip netns exec {S} nft 'table inet t { chain in { type filter hook input priority filter; udp dport 5001 drop; }; }'",
        // UDP from N itself, dropped by S: unreplied, no NAT (IPv4 and IPv6).
        "ip netns exec {N} python3 -c 'import socket; s=socket.socket(2,2); s.bind((\"\",5000)); s.sendto(b\"x\",(\"192.0.2.10\",5001))'",
        "ip netns exec {N} python3 -c 'import socket; s=socket.socket(10,2); s.bind((\"\",5000)); s.sendto(b\"x\",(\"2001:db8:2::10\",5001))'",
        // UDP from C, answered once by S: SNAT into 40000-40099, seen reply.
        "ip netns exec {S} timeout 5 python3 -c 'import socket; s=socket.socket(2,2); s.bind((\"\",5002)); d,a=s.recvfrom(99); s.sendto(d,a)' & sleep 0.5; ip netns exec {C} python3 -c 'import socket; s=socket.socket(2,2); s.bind((\"\",5002)); s.settimeout(3); s.sendto(b\"hello\",(\"192.0.2.10\",5002)); s.recv(99)'; wait",
        // UDP from C that S drops: SNAT, unreplied.
        "ip netns exec {C} python3 -c 'import socket; s=socket.socket(2,2); s.bind((\"\",5003)); s.sendto(b\"x\",(\"192.0.2.10\",5001))'",
        // TCP from C to S:80, a whole connection: masquerade, TIME_WAIT, assured.
        "ip netns exec {S} timeout 5 python3 -c 'import socket; s=socket.socket(); s.setsockopt(1,2,1); s.bind((\"\",80)); s.listen(); c,a=s.accept(); c.recv(99); c.sendall(b\"ok\"); c.close()' & sleep 0.5; ip netns exec {C} python3 -c 'import socket; c=socket.create_connection((\"192.0.2.10\",80),3); c.sendall(b\"GET\"); c.recv(99); c.recv(99); c.close()'; wait",
        // ICMP echo from C: masquerade, mark 42, replied.
        "ip netns exec {C} ping -c 1 -W 2 192.0.2.10",
        // UDP from S to N's 192.0.2.1:8080: DNAT to 10.0.1.10:80 (nothing listens there), unreplied.
        "ip netns exec {S} python3 -c 'import socket; s=socket.socket(2,2); s.bind((\"\",6000)); s.sendto(b\"x\",(\"192.0.2.1\",8080))'",
    ]

    /// The events fixture's traffic, run while a socket in N listens: a new flow, its answer, its deletion.
    static let eventTraffic: [String] = [
        "ip netns exec {S} timeout 5 python3 -c 'import socket; s=socket.socket(2,2); s.bind((\"\",5002)); d,a=s.recvfrom(99); s.sendto(d,a)' & sleep 0.5; ip netns exec {C} python3 -c 'import socket; s=socket.socket(2,2); s.bind((\"\",5004)); s.settimeout(3); s.sendto(b\"hello\",(\"192.0.2.10\",5002)); s.recv(99)'; wait",
        "ip netns exec {N} conntrack -D -p udp --orig-port-src 5004",
    ]

    @Test(.enabled(if: FixtureCapture.enabled, "set NSINSPECT_CAPTURE_FIXTURES=1 to rewrite the fixtures"))
    func capture() throws {
        try requireRoot()
        let prefix = uniquePrefix("ctfx")
        defer { #expect(TestNamespace.leftovers(prefix).isEmpty, "namespace names left behind") }
        let c = try TestNamespace(prefix + "-c")
        defer { c.remove() }
        let n = try TestNamespace(prefix + "-n")
        defer { n.remove() }
        let s = try TestNamespace(prefix + "-s")
        defer { s.remove() }
        func shell(_ command: String, in namespace: NamespaceHandle? = nil) throws -> String {
            let text = command.replacing("{C}", with: c.name).replacing("{N}", with: n.name).replacing("{S}", with: s.name)
            return try run(["sh", "-c", text], in: namespace)
        }
        for command in Self.setup { try shell(command) }

        var uts = utsname()
        uname(&uts)
        let kernel = withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let namespaces = "C, N, S are throwaway namespaces; each line runs under sh -c"

        // The dump, between two `conntrack -L` that print the same lines as the dump decodes to.
        var attempt = 0
        while true {
            attempt += 1
            try #require(attempt <= 10, "conntrack -L and the dump never agreed")
            // Start early in a second, so that both listings and the dump see the same timeouts.
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            usleep(UInt32(max(0, 1_050_000_000 - now.tv_nsec) / 1000))
            let before = try listing(in: n)
            let socket = try NetlinkSocket.open(in: n.handle, protocol: CTNetlink.netlinkProtocol, label: n.name)
            var datagrams: [[UInt8]] = []
            socket.receiveTap = { datagrams.append(Array($0)) }
            let entries = try socket.dump(ConntrackRequests.dump(), decode: ConntrackEntry.decode)
            socket.receiveTap = nil
            let after = try listing(in: n)
            let decoded = entries.map { $0.text() }
            guard before == after, Set(decoded) == Set(before), decoded.count == before.count else {
                print("attempt \(attempt): conntrack -L and the dump differ:\n\(before.joined(separator: "\n"))\n--\n\(decoded.joined(separator: "\n"))")
                continue
            }
            try SourceFiles.write(Fixture.path("conntrack-dump-nat"), Fixture.render(
                title: "conntrack table of N (UDP, TCP, ICMP, IPv6, SNAT, DNAT, mark, counters)", setup: Self.setup,
                request: "IPCTNL_MSG_CT_GET NLM_F_DUMP, nfgenmsg AF_UNSPEC (ConntrackRequests.dump()), in N",
                datagrams: datagrams, kernel: kernel, namespaces: namespaces, capturedBy: "ConntrackFixtureCapture.swift",
                notes: ["`ip netns exec N conntrack -L` printed, in the same second (before and after the dump):"]
                    + before.map { "conntrack -L | " + $0 }))
            break
        }

        // Events: NEW, UPDATE, DESTROY of one more flow, with `conntrack -E` listening at the same time.
        let socket = try NetlinkSocket.open(in: n.handle, protocol: CTNetlink.netlinkProtocol, label: n.name)
        for group in CTNetlink.Group.allCases {
            var number = group.rawValue
            try #require(setsockopt(socket.fileDescriptor, 270 /* SOL_NETLINK */, 1 /* NETLINK_ADD_MEMBERSHIP */, &number,
                                    socklen_t(MemoryLayout<UInt32>.size)) == 0)
        }
        let eventsFile = "/tmp/\(prefix)-events.txt"
        defer { unlink(eventsFile) }
        let fd = open(eventsFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        var spawner = Spawner(namespace: n.handle)
        spawner.stdout = fd
        let listener = try spawner.spawn(["timeout", "4", "conntrack", "-E"])
        close(fd)
        usleep(500_000)
        for command in Self.eventTraffic { try shell(command) }
        var datagrams: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            var p = pollfd(fd: socket.fileDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 1000) > 0 else { break }
            let count = buffer.withUnsafeMutableBytes { recv(socket.fileDescriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            datagrams.append(Array(buffer[0..<count]))
        }
        listener.wait()
        let conntrackE = try SourceFiles.read(eventsFile).split(separator: "\n").map(String.init)
        try SourceFiles.write(Fixture.path("conntrack-events-nat"), Fixture.render(
            title: "conntrack events of N: a UDP flow from C answered by S, then deleted (NEW, UPDATE, DESTROY)",
            setup: Self.setup + Self.eventTraffic,
            request: "none: a netfilter socket in N joined NFNLGRP_CONNTRACK_NEW, _UPDATE and _DESTROY before the last two lines",
            datagrams: datagrams, kernel: kernel, namespaces: namespaces, capturedBy: "ConntrackFixtureCapture.swift",
            notes: ["`ip netns exec N conntrack -E`, listening at the same time, printed:"] + conntrackE.map { "conntrack -E | " + $0 }))
    }

    /// `conntrack -L` in a namespace: its lines (the summary goes to stderr, which is left out).
    func listing(in ns: TestNamespace) throws -> [String] {
        let result = try Spawner(namespace: ns.handle).run(["conntrack", "-L"], mergeError: false)
        guard result.status.succeeded else { throw TestFailure("conntrack -L: \(result.status): \(result.output)") }
        return result.output.split(separator: "\n").map(String.init)
    }
}
