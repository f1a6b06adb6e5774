#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import Lab
import ProcNS

struct DemoCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Build the two-routers lab, run list, graph, path and trace on it, explain, and remove it.",
        discussion: """
            host1 — router1 — router2 — host2 (examples/two-routers.yaml), under the names demo-host1 … so it never touches \
            a lab of yours. The lab is removed at the end, also on Ctrl-C.
            """
    )

    /// The lab, as a lab file.
    static let lab = """
        lab: nsinspect-demo
        namespaces:
          demo-host1: {routes: [default via 10.0.1.1]}
          demo-router1: {forwarding: true, routes: [default via 10.0.0.2]}
          demo-router2: {forwarding: true, routes: [default via 10.0.0.1]}
          demo-host2: {routes: [default via 10.0.2.1]}
        links:
          - {a: demo-host1:eth0 10.0.1.10/24, b: demo-router1:e1 10.0.1.1/24}
          - {a: demo-router1:e0 10.0.0.1/24, b: demo-router2:e0 10.0.0.2/24}
          - {a: demo-router2:e1 10.0.2.1/24, b: demo-host2:eth0 10.0.2.10/24}
        """

    func heading(_ step: Int, _ title: String, _ explanation: String) {
        Output.line("")
        Output.line(Output.styled("\(step). \(title)", .bold))
        for line in explanation.split(separator: "\n") { Output.line(Output.styled("   " + line, .dim)) }
        Output.line("")
    }

    func run() throws {
        try requireCapabilities([.sysAdmin, .netAdmin, .bpf, .perfmon, .netRaw], for: "demo")
        let spec = try LabFile.load(Self.lab, path: "demo").spec
        let builder = LabBuilder(spec: spec)
        StopRequest.install()
        // A demo left behind by a killed run is ours (it carries the mark): start clean.
        _ = try builder.down()
        defer {
            if let removed = try? builder.down(), removed.wasUp {
                Output.line("")
                Output.line(Output.styled("6. lab down", .bold))
                Output.line("   removed \(removed.removed.joined(separator: ", "))")
            }
        }
        func checkInterrupt() throws { if StopRequest.isRequested { throw ExitCode(130) } }

        heading(1, "lab up", "Four namespaces and three veth pairs, built over netlink from a lab file:\nhost1 eth0 ── e1 router1 e0 ── e0 router2 e1 ── eth0 host2; forwarding on in both routers.")
        _ = try builder.up(drift: { try LabStatus.drift(builder, $0) })
        Output.line("built \(spec.namespaces.count) namespaces and \(spec.veths.count) veth pairs")
        try checkInterrupt()

        heading(2, "nsinspect list demo-host1 demo-router1 demo-router2 demo-host2",
                "The census: every namespace however it is held (here by bind mounts in /var/run/netns),\nits nsid as the host sees it, its interfaces and addresses.")
        let list = try ListCommand.parse(["demo-host1", "demo-router1", "demo-router2", "demo-host2"])
        try list.run()
        try checkInterrupt()

        heading(3, "nsinspect graph demo-router1",
                "The wiring as the kernel reports it: veth pairs matched across namespaces by ifindex,\nnot by anything a lab file declared.")
        let graph = try GraphCommand.parse(["demo-router1"])
        try graph.run()
        try checkInterrupt()

        heading(4, "nsinspect path demo-host1 demo-host2",
                "What the routing tables predict, without sending anything: the route in each namespace,\nacross each veth into the next, forwarding checked in every router.")
        let path = try PathCommand.parse(["demo-host1", "demo-host2"])
        try path.run()
        try checkInterrupt()

        heading(5, "nsinspect trace demo-host1 demo-host2 --count 3",
                "Three ICMP echoes from inside host1, followed in the kernel with eBPF at every veth end.\nThe TTL drops by one in each router: 64 → 63 → 62. The reply arrives with ttl 62, and\n64 − 62 = 2 routed hops, which is what path predicted and what the trace saw.")
        let trace = try TraceCommand.parse(["demo-host1", "demo-host2", "--count", "3"])
        var traceFailed = false
        do { try trace.run() } catch let exit as ExitCode where exit.rawValue == 1 { traceFailed = true }
        try checkInterrupt()
        if traceFailed { throw ExitCode(1) }
    }
}
