import ArgumentParser
import Inspect
import JSONKit
import Netlink
import ProcNS

struct GraphCommand: NSCommand {
    enum Format: String, ExpressibleByArgument, CaseIterable { case text, dot, mermaid, json }

    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "The observed wiring between namespaces: veth pairs, bridges and their ports, macvlan/vxlan parents.",
        discussion: """
            Read from the kernel, not from any declaration: one link dump per namespace, veth pairs matched \
            by (ifindex, peer ifindex) and settled by nsid only where that is ambiguous. Given namespaces, \
            every format shows them, the namespaces wired to them, and the links among those. --format dot \
            renders with `dot -Tsvg`, mermaid is a `graph` block, json is for programs.
            """
    )

    @Argument(help: "Only these namespaces and their neighbours (NS references); all by default.") var references: [String] = []
    @Option(help: "text, dot, mermaid or json.") var format: Format = .text
    @OptionGroup var common: CommonOptions

    func run() throws {
        let census = try Census.scan()
        let open = OpenNamespaces(census)
        for (ns, error) in open.vanished { Output.warn("graph: \(ns.reference): \(error.reason)") }
        let snapshots = try open.snapshots(.links)
        var links: [[Link]] = []
        for (i, result) in snapshots.enumerated() {
            switch result {
            case .success(let s): links.append(s.state.links)
            case .failure(let error):
                links.append([])
                Output.warn("graph: \(open.labels[i]): \(error)")
            }
        }
        var focus: Set<Int>?
        if !references.isEmpty {
            focus = Set(try references.map { reference in
                let ns = try census.select(NamespaceReference.parse(reference))
                guard let i = open.index(of: ns.id.inode) else { throw OperationError("graph", reference, "namespace is gone") }
                return i
            })
        }
        let graph = TopologyGraph(wiring: open.wiringWithSwitches(links), labels: open.labels, links: links, focus: focus,
                                  inodes: open.inodes)
        switch common.json ? .json : format {
        case .text: Output.write(graph.text())
        case .dot: Output.write(graph.dot())
        case .mermaid: Output.write(graph.mermaid())
        case .json: Output.json(graph.json())
        }
    }
}

/// The wiring as a graph of namespaces and bridges, restricted to a focus set and its neighbours, and its
/// four renderings.
///
/// One rule decides what every format draws, so text, dot, mermaid and json show the same graph: the
/// nodes are the focus namespaces and their direct neighbours (one veth or stacked link away), and a
/// link is drawn when the namespaces at both of its ends are nodes (a bridge and an unresolved end: when
/// its namespace is). Before, text and json kept a veth with one end outside the nodes while dot and
/// mermaid dropped it, so `graph host1` disagreed with itself. Without a focus every namespace with a
/// link is a node and everything is drawn.
struct TopologyGraph {
    let wiring: Wiring
    let labels: [String]
    let links: [[Link]]
    let inodes: [UInt64]
    /// Namespaces to draw: the focus and everything one link away, or every namespace with a link.
    let shown: Set<Int>
    /// What is drawn, in every format: the parts of `wiring` inside `shown`.
    let vethPairs: [Wiring.VethPair]
    let bridges: [Wiring.Bridge]
    /// Switches that are not Linux bridges (Open vSwitch, unmanaged userspace ones).
    let switches: [Wiring.Switch]
    let stacked: [Wiring.Stacked]
    let unresolved: [Wiring.Unresolved]

    init(wiring: Wiring, labels: [String], links: [[Link]], focus: Set<Int>?, inodes: [UInt64]) {
        self.wiring = wiring
        self.labels = labels
        self.links = links
        self.inodes = inodes
        var shown = Set<Int>()
        let relations: [(Int, Int)] = wiring.vethPairs.map { ($0.a.namespace, $0.b.namespace) }
            + wiring.stacked.compactMap { s in s.parent.map { (s.child.namespace, $0.namespace) } }
        if let focus {
            shown = focus
            for (a, b) in relations {
                if focus.contains(a) { shown.insert(b) }
                if focus.contains(b) { shown.insert(a) }
            }
        } else {
            for (a, b) in relations { shown.insert(a); shown.insert(b) }
            for bridge in wiring.bridges { shown.insert(bridge.bridge.namespace) }
            for sw in wiring.switches { shown.insert(sw.namespace) }
            for s in wiring.stacked { shown.insert(s.child.namespace) }
            for u in wiring.unresolved { shown.insert(u.end.namespace) }
        }
        self.shown = shown
        vethPairs = wiring.vethPairs.filter { shown.contains($0.a.namespace) && shown.contains($0.b.namespace) }
        bridges = wiring.bridges.filter { shown.contains($0.bridge.namespace) }
        switches = wiring.switches.filter { shown.contains($0.namespace) }
        stacked = wiring.stacked.filter { s in shown.contains(s.child.namespace) && s.parent.map { shown.contains($0.namespace) } != false }
        unresolved = wiring.unresolved.filter { shown.contains($0.end.namespace) }
    }

    /// The other end of a veth when that veth is drawn.
    private func drawnPeer(of end: LinkEnd) -> LinkEnd? {
        for pair in vethPairs {
            if pair.a == end { return pair.b }
            if pair.b == end { return pair.a }
        }
        return nil
    }

    /// The bridge an interface is a port of, if any.
    private func bridge(of end: LinkEnd) -> LinkEnd? {
        bridges.first { $0.ports.contains(end) }?.bridge
    }

    /// The node of the bridge or switch an interface is a port of, if any.
    private func switchNode(of end: LinkEnd) -> String? {
        if let b = bridge(of: end) { return bridgeID(b) }
        return switches.first { $0.ports.contains(end) }.map(switchID)
    }

    private func switchID(_ sw: Wiring.Switch) -> String { "sw\(sw.namespace)_\(sw.ports.first?.index ?? 0)" }

    /// `s2 (Open vSwitch) in host`, `unmanaged switch in host`.
    func switchTitle(_ sw: Wiring.Switch) -> String {
        switch sw.kind {
        case .openVSwitch: "\(sw.name ?? "ovs-system") (Open vSwitch) in \(labels[sw.namespace])"
        case .unmanaged: "unmanaged switch in \(labels[sw.namespace])"
        }
    }

    static let unmanagedNote = "switch port (unmanaged): no bridge; a userspace switch such as Open vSwitch?"

    struct Edge {
        var from: String
        var to: String
        var label: String
        var kind: String
    }

    private func nodeID(_ ns: Int) -> String { "ns\(ns)" }
    private func bridgeID(_ b: LinkEnd) -> String { "br\(b.namespace)_\(b.index)" }

    /// Edges between drawn nodes: a veth end that is a bridge port attaches to the bridge node.
    var edges: [Edge] {
        var out: [Edge] = []
        for pair in vethPairs {
            let from = switchNode(of: pair.a) ?? nodeID(pair.a.namespace)
            let to = switchNode(of: pair.b) ?? nodeID(pair.b.namespace)
            out.append(Edge(from: from, to: to, label: "\(pair.a.name) — \(pair.b.name)", kind: "veth"))
        }
        for s in stacked {
            guard let parent = s.parent else { continue }
            out.append(Edge(from: nodeID(s.child.namespace), to: switchNode(of: parent) ?? nodeID(parent.namespace),
                            label: "\(s.kind) \(s.child.name) on \(parent.name)", kind: s.kind))
        }
        for b in bridges {
            out.append(Edge(from: bridgeID(b.bridge), to: nodeID(b.bridge.namespace), label: b.bridge.name, kind: "bridge"))
        }
        for sw in switches {
            out.append(Edge(from: switchID(sw), to: nodeID(sw.namespace), label: sw.name ?? "switch", kind: "bridge"))
        }
        return out
    }

    func end(_ e: LinkEnd) -> String { "\(labels[e.namespace]) \(e.name)" }

    func text() -> String {
        var out = ""
        for pair in vethPairs {
            out += "veth    \(labels[pair.a.namespace]) \(pair.a.name)  ──  \(pair.b.name) \(labels[pair.b.namespace])\n"
        }
        for b in bridges {
            let ports = b.ports.map { port -> String in
                if let peer = drawnPeer(of: port), peer.namespace != port.namespace {
                    return "\(port.name) (── \(peer.name) \(labels[peer.namespace]))"
                }
                return port.name
            }
            out += "bridge  \(b.bridge.name) in \(labels[b.bridge.namespace]): \(ports.isEmpty ? "no ports" : ports.joined(separator: ", "))\n"
        }
        for sw in switches {
            let ports = sw.ports.map { port -> String in
                if let peer = drawnPeer(of: port), peer.namespace != port.namespace {
                    return "\(port.name) (── \(peer.name) \(labels[peer.namespace]))"
                }
                return port.name
            }
            out += "switch  \(switchTitle(sw)): \(ports.joined(separator: ", "))\n"
            if sw.kind == .unmanaged { out += "        \(Self.unmanagedNote)\n" }
        }
        for s in stacked {
            out += "\(s.kind.padding(toLength: 8))\(end(s.child)) on \(s.parent.map(end) ?? "an unseen parent")\n"
        }
        for u in unresolved {
            out += "?       \(end(u.end)) (\(u.kind)): \(u.reason)\n"
        }
        return out.isEmpty ? "no links between namespaces\n" : out
    }

    private static func quoted(_ s: String) -> String {
        "\"" + s.replacingAll("\\", "\\\\").replacingAll("\"", "\\\"") + "\""
    }

    func dot() -> String {
        var out = "graph nsinspect {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n"
        for ns in shown.sorted() { out += "  \(nodeID(ns)) [label=\(Self.quoted(labels[ns]))];\n" }
        for b in bridges {
            out += "  \(bridgeID(b.bridge)) [label=\(Self.quoted("\(b.bridge.name)\nbridge in \(labels[b.bridge.namespace])")), shape=ellipse, style=solid];\n"
        }
        for sw in switches {
            out += "  \(switchID(sw)) [label=\(Self.quoted(switchTitle(sw).replacingAll(" in ", "\nin "))), shape=ellipse, style=dashed];\n"
        }
        for e in edges {
            let style = e.kind == "bridge" ? ", style=dotted" : e.kind == "veth" ? "" : ", style=dashed"
            out += "  \(e.from) -- \(e.to) [label=\(Self.quoted(e.label))\(style)];\n"
        }
        for (i, u) in unresolved.enumerated() {
            out += "  unresolved\(i) [label=\(Self.quoted("?")), shape=plaintext];\n"
            out += "  \(nodeID(u.end.namespace)) -- unresolved\(i) [label=\(Self.quoted("\(u.end.name): \(u.reason)")), style=dashed];\n"
        }
        return out + "}\n"
    }

    private static func mermaidText(_ s: String) -> String {
        "\"" + s.replacingAll("\"", "#quot;").replacingAll("\n", "<br>") + "\""
    }

    func mermaid() -> String {
        var out = "graph LR\n"
        for ns in shown.sorted() { out += "  \(nodeID(ns))[\(Self.mermaidText(labels[ns]))]\n" }
        for b in bridges {
            out += "  \(bridgeID(b.bridge))([\(Self.mermaidText("\(b.bridge.name) (bridge in \(labels[b.bridge.namespace]))"))])\n"
        }
        for sw in switches {
            out += "  \(switchID(sw))([\(Self.mermaidText(switchTitle(sw)))])\n"
        }
        for e in edges {
            let arrow = e.kind == "veth" ? "---" : "-.-"
            out += "  \(e.from) \(arrow)|\(Self.mermaidText(e.label))| \(e.to)\n"
        }
        for (i, u) in unresolved.enumerated() {
            out += "  unresolved\(i)[\"?\"]\n"
            out += "  \(nodeID(u.end.namespace)) -.-|\(Self.mermaidText("\(u.end.name): \(u.reason)"))| unresolved\(i)\n"
        }
        return out
    }

    private func endJSON(_ e: LinkEnd) -> JSON {
        var o = JSONObjectBuilder()
        o.add("netns", labels[e.namespace])
        o.add("ns", inodes[e.namespace])
        o.add("ifname", e.name)
        o.add("ifindex", e.index)
        return o.json
    }

    func json() -> JSON {
        var root = JSONObjectBuilder()
        root.add("namespaces", .array(shown.sorted().map { ns in
            var o = JSONObjectBuilder()
            o.add("netns", labels[ns])
            o.add("ns", inodes[ns])
            o.add("interfaces", strings: links[ns].map(\.name))
            return o.json
        }))
        root.add("veths", .array(vethPairs.map { pair in
            var o = JSONObjectBuilder()
            o.add("a", endJSON(pair.a)); o.add("b", endJSON(pair.b))
            return o.json
        }))
        root.add("bridges", .array(bridges.map { b in
            var o = JSONObjectBuilder()
            o.add("netns", labels[b.bridge.namespace])
            o.add("ifname", b.bridge.name)
            o.add("ifindex", b.bridge.index)
            o.add("ports", .array(b.ports.map { port in
                var p = JSONObjectBuilder()
                p.add("ifname", port.name)
                p.add("ifindex", port.index)
                if let peer = drawnPeer(of: port) { p.add("peer", endJSON(peer)) }
                return p.json
            }))
            return o.json
        }))
        root.add("switches", .array(switches.map { sw in
            var o = JSONObjectBuilder()
            o.add("kind", sw.kind.rawValue)
            o.add("name", sw.name)
            o.add("netns", labels[sw.namespace])
            o.add("ports", .array(sw.ports.map { port in
                var p = JSONObjectBuilder()
                p.add("ifname", port.name)
                p.add("ifindex", port.index)
                p.add("role", sw.kind == .unmanaged ? "switch port (unmanaged)" : "switch port")
                if let peer = drawnPeer(of: port) { p.add("peer", endJSON(peer)) }
                return p.json
            }))
            return o.json
        }))
        root.add("stacked", .array(stacked.map { s in
            var o = JSONObjectBuilder()
            o.add("kind", s.kind); o.add("child", endJSON(s.child)); o.add("parent", s.parent.map(endJSON) ?? .null)
            return o.json
        }))
        root.add("unresolved", .array(unresolved.map { u in
            var o = JSONObjectBuilder()
            o.add("end", endJSON(u.end)); o.add("kind", u.kind); o.add("reason", u.reason)
            return o.json
        }))
        return root.json
    }
}

extension String {
    /// Every occurrence of `target` replaced (Foundation's replacingOccurrences without Foundation).
    func replacingAll(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }

    /// Left-aligned in a column of `length` characters (at least one space after it).
    func padding(toLength length: Int) -> String {
        count >= length - 1 ? self + " " : self + String(repeating: " ", count: length - count)
    }
}
