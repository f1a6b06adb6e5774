import Foundation

/// The two-routers lab of examples/two-routers.yaml, built with `ip` commands the way users build it by hand:
/// host1 — router1 — router2 — host2 over 10.0.1.0/24, 10.0.0.0/24, 10.0.2.0/24.
public struct TwoRoutersLab {
    public let host1: String, router1: String, router2: String, host2: String

    public init(_ scratch: Scratch) throws {
        host1 = try scratch.addNamespace("host1")
        router1 = try scratch.addNamespace("router1")
        router2 = try scratch.addNamespace("router2")
        host2 = try scratch.addNamespace("host2")
        for ns in [host1, router1, router2, host2] { try Shell.must("ip", "-n", ns, "link", "set", "lo", "up") }
        try Shell.must("ip", "link", "add", "eth0", "netns", host1, "type", "veth", "peer", "name", "e1", "netns", router1)
        try Shell.must("ip", "link", "add", "e0", "netns", router1, "type", "veth", "peer", "name", "e0", "netns", router2)
        try Shell.must("ip", "link", "add", "e1", "netns", router2, "type", "veth", "peer", "name", "eth0", "netns", host2)
        for (ns, dev, address) in [(host1, "eth0", "10.0.1.10/24"), (router1, "e1", "10.0.1.1/24"), (router1, "e0", "10.0.0.1/24"),
                                   (router2, "e0", "10.0.0.2/24"), (router2, "e1", "10.0.2.1/24"), (host2, "eth0", "10.0.2.10/24")] {
            try Shell.must("ip", "-n", ns, "addr", "add", address, "dev", dev)
            try Shell.must("ip", "-n", ns, "link", "set", dev, "up")
        }
        for ns in [router1, router2] { try Shell.must("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1") }
        try Shell.must("ip", "-n", host1, "route", "add", "default", "via", "10.0.1.1")
        try Shell.must("ip", "-n", host2, "route", "add", "default", "via", "10.0.2.1")
        try Shell.must("ip", "-n", router1, "route", "add", "default", "via", "10.0.0.2")
        try Shell.must("ip", "-n", router2, "route", "add", "default", "via", "10.0.0.1")
    }

    /// One ping from host1 to host2; returns ping's output (which carries `ttl=`).
    @discardableResult
    public func ping() throws -> String {
        try Shell.must("ip", "netns", "exec", host1, "ping", "-c", "1", "-W", "2", "10.0.2.10")
    }
}

/// The two-routers lab built by `nsinspect lab up` from a lab file whose namespace names carry a test's
/// prefix (so tests never collide with the examples or with each other). `down()` removes it.
public struct PrefixedTwoRouters {
    private let lab: PrefixedLab
    public var file: String { lab.file }
    public let host1: String, router1: String, router2: String, host2: String

    public init(_ scratch: Scratch) throws {
        let p = scratch.prefix
        let host1 = "\(p)h1", router1 = "\(p)r1", router2 = "\(p)r2", host2 = "\(p)h2"
        let yaml = """
            lab: \(p)
            namespaces:
              \(host1): {routes: [default via 10.0.1.1]}
              \(router1): {forwarding: true, routes: [default via 10.0.0.2]}
              \(router2): {forwarding: true, routes: [default via 10.0.0.1]}
              \(host2): {routes: [default via 10.0.2.1]}
            links:
              - {a: \(host1):eth0 10.0.1.10/24, b: \(router1):e1 10.0.1.1/24}
              - {a: \(router1):e0 10.0.0.1/24, b: \(router2):e0 10.0.0.2/24}
              - {a: \(router2):e1 10.0.2.1/24, b: \(host2):eth0 10.0.2.10/24}
            """
        lab = try PrefixedLab(scratch, namespaceNames: [host1, router1, router2, host2], hostLinkNames: [], text: yaml)
        self.host1 = host1; self.router1 = router1; self.router2 = router2; self.host2 = host2
    }

    public func down() { lab.down() }
}

/// Any lab built by `nsinspect lab up` from YAML a test writes, with the test's prefix in every name.
/// `ns("h1")` is the prefixed namespace name, `link("br")` a prefixed host interface name (at most 15
/// bytes); the YAML is written with both already applied. `down()` removes it. When `lab up` fails, the
/// init takes down what it made and cleans the scratch before throwing (the caller's `defer` is not set yet).
public struct PrefixedLab {
    public let file: String
    public let scratch: Scratch

    /// - Parameter yaml: the lab's text, given the functions that name namespaces and host links.
    public init(_ scratch: Scratch, namespaces: [String], hostLinks: [String] = [],
                yaml: (_ ns: (String) -> String, _ link: (String) -> String) -> String) throws {
        try self.init(scratch, namespaceNames: namespaces.map(scratch.name), hostLinkNames: hostLinks.map(scratch.linkName),
                      text: "lab: \(scratch.prefix)\n" + yaml(scratch.name, scratch.linkName))
    }

    /// A lab whose whole text (`lab:` line included) and full names the caller made.
    init(_ scratch: Scratch, namespaceNames: [String], hostLinkNames: [String], text: String) throws {
        self.scratch = scratch
        file = NSTemporaryDirectory() + "\(scratch.prefix)-lab.yaml"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        scratch.track(path: file)
        for ns in namespaceNames { scratch.track(namespace: ns) }
        for link in hostLinkNames { scratch.track(hostLink: link) }
        let up = nsinspect("lab", "up", file)
        guard up.succeeded else {
            down()
            scratch.cleanup()
            throw CommandFailed(result: up)
        }
    }

    public func ns(_ suffix: String) -> String { scratch.name(suffix) }
    public func link(_ suffix: String) -> String { scratch.linkName(suffix) }
    public func down() { nsinspect("lab", "down", file) }
}
