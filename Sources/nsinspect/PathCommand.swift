import ArgumentParser
import Inspect
import JSONKit
import Netlink
import ProcNS

struct PathCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "path",
        abstract: "The path the routing tables predict from A to B, without sending anything.",
        discussion: """
            Policy rules and longest-prefix match in each namespace, the egress interface, across veth peers \
            and through bridges (FDB) into the next namespace, checking forwarding is on wherever the packet \
            is routed on, until the address is local. Reports loops, blackholes, missing routes, forwarding \
            off, links down and next hops nobody owns. NAT and filter rules are not evaluated (trace shows them).
            """
    )

    @Argument(help: "Where the packet starts (NS reference).") var from: String
    @Argument(help: "A namespace (its first global address) or an address.") var to: String
    @Flag(name: .customShort("6"), help: "Use B's IPv6 address.") var ipv6 = false
    @OptionGroup var common: CommonOptions

    func run() throws {
        let context = try PathContext(census: try Census.scan())
        let origin = try context.index(of: from, operation: "path")
        let (destination, target) = try context.destination(to, family: ipv6 ? .v6 : nil, operation: "path")
        let prediction = context.predictor.predict(from: origin, to: destination)
        let rendering = PathRendering(prediction: prediction, labels: context.open.labels, target: target)
        if common.json {
            Output.json(rendering.json())
        } else {
            Output.write(rendering.text(from: context.open.labels[origin], to: to))
        }
        if !prediction.delivered { throw ExitCode(1) }
    }
}

/// A path prediction as text and JSON.
struct PathRendering {
    let prediction: PathPrediction
    let labels: [String]
    let target: Int?

    func endText(_ end: PathEnd) -> String {
        switch end {
        case .delivered(let n): "\(prediction.destination) is local in \(labels[n]): delivered"
        case .noRoute(let n): "no route to \(prediction.destination) in \(labels[n]) (the kernel answers: network unreachable)"
        case .rejected(let n, let kind, let route): "\(kind) in \(labels[n]): \(route)"
        case .forwardingOff(let n, let key): "forwarding is off in \(labels[n]) (\(key) = 0): dropped there"
        case .linkDown(let n, let i): "\(i) in \(labels[n]) is down"
        case .nextHopNotFound(let n, let hop, let i):
            "no namespace on the link of \(i) in \(labels[n]) has \(hop == prediction.destination ? "" : "the gateway ")\(hop): "
                + "\(hop.family == .v4 ? "ARP" : "neighbour discovery") for it gets no answer (neighbour INCOMPLETE, then FAILED)"
        case .leaves(let n, let i, let why): "leaves \(labels[n]) via \(i): \(why)"
        case .loop(let n): "routing loop: \(labels[n]) is entered twice the same way"
        }
    }

    var problem: String? { prediction.delivered ? nil : endText(prediction.end) }

    func text(from: String, to: String) -> String {
        var out = "path \(from) → \(prediction.destination)" + (target.map { " (\(labels[$0]))" } ?? "")
            + (prediction.source.map { " from \($0)" } ?? "") + "\n"
        var table = Table("NAMESPACE", "IN → OUT", "ROUTE", "NEXT HOP", "NEIGHBOUR")
        for hop in prediction.hops {
            let io: String
            switch (hop.inInterface, hop.outInterface) {
            case (nil, let o?): io = "→ \(o)"
            case (let i?, let o?): io = "\(i) → \(o)"
            case (let i?, nil): io = "\(i) →"
            default: io = "-"
            }
            var route = hop.route ?? (hop.namespace == prediction.end.namespace && prediction.delivered ? "local" : "-")
            if hop.forwards { route += "  (forwards)" }
            table.add(labels[hop.namespace], io, route, hop.nextHop?.description ?? "-", hop.neighbour ?? (hop.outInterface == nil ? "" : "none yet"))
            for crossing in hop.switches { table.add("", "  via", describe(crossing), "", "") }
        }
        out += table.render()
        out += Output.styled(endText(prediction.end), prediction.delivered ? .green : .red) + "\n"
        if prediction.delivered {
            let n = prediction.routedHops
            out += "\(n) routed hop\(n == 1 ? "" : "s"): a reply sent with ttl 64 arrives with ttl \(64 - n) if the way back is symmetric\n"
        }
        for note in prediction.notes { out += "note: \(note)\n" }
        var described: [[String]] = []
        for crossing in prediction.hops.flatMap(\.switches) where crossing.kind == .unmanaged && !described.contains(crossing.ports) {
            described.append(crossing.ports)
            out += "note: the unknown switch in \(labels[crossing.namespace]) has ports \(crossing.ports.joined(separator: ", ")): "
                + "no bridge (no master, no address); a userspace switch such as Open vSwitch?\n"
        }
        return out
    }

    /// `bridge br0 in sw: port p3 (FDB)`: the bridge or switch, the namespace it lives in, the port out.
    func describe(_ crossing: SwitchHop) -> String {
        let place = labels[crossing.namespace]
        let what: String
        switch crossing.kind {
        case .bridge: what = "bridge \(crossing.name ?? "?") in \(place)"
        case .openVSwitch: what = "Open vSwitch \(crossing.name.map { $0 + " " } ?? "")in \(place)"
        case .unmanaged: what = "an unknown switch in \(place)"
        }
        return "\(what): port \(crossing.outPort) (\(crossing.how))"
    }

    func json() -> JSON {
        var o = JSONObjectBuilder()
        o.add("destination", prediction.destination.description)
        o.add("source", prediction.source?.description)
        o.add("hops", .array(prediction.hops.map { hop in
            var h = JSONObjectBuilder()
            h.add("netns", labels[hop.namespace])
            h.add("in", hop.inInterface)
            h.add("out", hop.outInterface)
            h.add("route", hop.route)
            h.add("next_hop", hop.nextHop?.description)
            h.add("neighbour", hop.neighbour)
            h.add("forwards", hop.forwards)
            h.add("switches", .array(hop.switches.map { crossing in
                var c = JSONObjectBuilder()
                c.add("kind", crossing.kind.rawValue)
                c.add("name", crossing.name)
                c.add("netns", labels[crossing.namespace])
                c.add("out", crossing.outPort)
                c.add("how", crossing.how)
                if crossing.kind == .unmanaged { c.add("ports", strings: crossing.ports) }
                return c.json
            }))
            return h.json
        }))
        o.add("delivered", prediction.delivered)
        o.add("end", endText(prediction.end))
        o.add("end_netns", labels[prediction.end.namespace])
        o.add("routed_hops", prediction.routedHops)
        o.add("notes", strings: prediction.notes)
        return o.json
    }
}
