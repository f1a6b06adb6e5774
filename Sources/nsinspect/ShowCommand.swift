#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import JSONKit
import Netlink
import ProcNS

/// The parts of a namespace `show` can print.
enum ShowSection: String, CaseIterable, ExpressibleByArgument {
    case links, addrs, routes, neigh, fdb, rules, nsids
}

struct ShowCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "One namespace's links, addresses, routes and neighbours, with veth peers named.",
        discussion: """
            What `ip -n NS link/addr/route/neigh` prints, read over netlink, with each veth's peer shown as \
            "IFNAME in NAMESPACE" instead of a bare nsid. Sections: links, addrs, routes (all tables but \
            local), neigh, fdb (bridge forwarding database), rules, nsids (which namespace each nsid names). \
            --json prints what `ip -j` prints for the section (field names as ip's).
            """
    )

    @Argument(help: "The namespace (NS reference).") var reference: String
    @Argument(help: "Only this part: links, addrs, routes, neigh, fdb, rules, nsids.") var section: ShowSection?
    @OptionGroup var common: CommonOptions

    func run() throws {
        let details = try NamespaceDetails.read(reference)
        let label = details.label, entry = details.namespace, state = details.state, handle = details.handle
        let peers = details.peers, nsids = details.nsids
        let view = NamespaceView(label: label, namespace: entry, state: state, cookie: handle.cookie, peers: peers,
                                 nsids: nsids)
        if common.json {
            Output.json(section.map { view.json(section: $0) } ?? view.json())
        } else {
            Output.write(section.map { view.table(section: $0) } ?? view.text())
        }
    }
}

/// One namespace's state as tables and `ip -j` JSON: what `show` prints for one namespace and `dump`
/// prints for each.
struct NamespaceView {
    var label: String
    var namespace: NetNamespace?
    var state: NamespaceState
    var cookie: UInt64?
    /// Veth peers and parents in other namespaces, by local ifindex.
    var peers: [Int32: LinkPeer]
    /// The namespace's nsid table, for the `nsids` section (`show` fills it; `dump` has no such section).
    var nsids: [NSIDEntry] = []
    /// The sections to print (all by default; `dump --sections` chooses).
    var sections: [ShowSection] = ShowSection.allCases

    func peerText(_ link: Link) -> String {
        if let peer = peers[link.index] { return "\(peer.ifname) in \(peer.namespace)" }
        if let parent = link.link, parent != 0 {
            if link.linkNetnsID != nil { return "if\(parent) in nsid \(link.linkNetnsID!) (unresolved)" }
            let name = state.name(of: parent) ?? "if\(parent)"
            return link.kind == "veth" ? name : "parent \(name)"
        }
        return ""
    }

    /// The operational state, and "admin down" when the link is not set up but the kernel says otherwise.
    func stateText(_ link: Link) -> String {
        let oper = link.operStateName
        return link.isUp || oper == "DOWN" ? oper : "\(oper) (admin down)"
    }

    func table(section: ShowSection) -> String {
        switch section {
        case .links:
            var t = Table("INDEX", "NAME", "KIND", "STATE", "MTU", "MAC", "MASTER", "PEER")
            for link in state.links {
                t.add(String(link.index), link.name, link.kind ?? (link.typeName == "loopback" ? "loopback" : "-"),
                      stateText(link),
                      link.mtu.map(String.init) ?? "-", link.address?.description ?? "-",
                      link.master.flatMap { state.name(of: $0) } ?? "-", peerText(link))
            }
            return t.render()
        case .addrs:
            var t = Table("IFACE", "ADDRESS", "SCOPE", "FLAGS")
            for a in state.addresses {
                let flags = a.flagNames.filter { $0 != "dynamic" || a.family == .v6 }
                t.add(state.name(of: a.index) ?? "if\(a.index)", a.prefix?.description ?? "?", a.scopeName,
                      flags.joined(separator: ","))
            }
            return t.render()
        case .routes:
            var t = Table("TABLE", "DESTINATION", "GATEWAY", "DEV", "PROTO", "SCOPE", "METRIC", "TYPE")
            for r in state.routes where r.table != 255 {
                let dev = r.outputIndex.flatMap { state.name(of: $0) } ?? "-"
                t.add(r.tableName, IPJSON.destination(r), r.gateway?.description ?? "-", dev, r.protocolName,
                      r.scopeName, r.priority.map(String.init) ?? "-", r.typeName)
                for hop in r.nexthops {
                    t.add("", "  nexthop", hop.gateway?.description ?? "-",
                          state.name(of: hop.index) ?? "if\(hop.index)", "", "", "weight \(hop.weight)", "")
                }
            }
            return t.render()
        case .neigh:
            var t = Table("IFACE", "ADDRESS", "LLADDR", "STATE")
            for n in state.neighbours {
                t.add(state.name(of: n.index) ?? "if\(n.index)", n.destination.description,
                      n.linkAddress?.description ?? "-", (n.stateNames + (n.isRouter ? ["router"] : [])).joined(separator: ","))
            }
            return t.render()
        case .fdb:
            var t = Table("BRIDGE", "PORT", "MAC", "VLAN", "STATE", "FLAGS")
            for e in state.fdb {
                t.add(e.master.flatMap { state.name(of: $0) } ?? "-", state.name(of: e.index) ?? "if\(e.index)",
                      e.linkAddress.description, e.vlan.map(String.init) ?? "-", e.stateName, e.flagNames.joined(separator: ","))
            }
            return t.render()
        case .rules:
            // IPv4 and IPv6 rules share priorities (both have 0 local, 32766 main): the family tells them apart.
            var t = Table("FAMILY", "PRIORITY", "SELECTOR", "ACTION")
            for r in state.rules {
                var selector = [r.source.map { "from \($0)" } ?? "from all"]
                if let d = r.destination { selector.append("to \(d)") }
                if let i = r.inputInterface { selector.append("iif \(i)") }
                if let o = r.outputInterface { selector.append("oif \(o)") }
                if let m = r.fwmark { selector.append("fwmark 0x\(String(m, radix: 16))") }
                t.add(IPJSON.familyName(r.family), String(r.priority), selector.joined(separator: " "),
                      r.action == 1 ? "lookup \(r.tableName)" : r.actionName)
            }
            return t.render()
        case .nsids:
            var t = Table("NSID", "NAMESPACE")
            for entry in nsids { t.add(String(entry.nsid), entry.namespace?.reference ?? "? (not found by the census)") }
            return t.render()
        }
    }

    var heading: String {
        var parts = ["\(label)"]
        if let ns = namespace {
            parts.append("ino:\(ns.id.inode)")
            if ns.processCount > 0 { parts.append("\(ns.processCount) process\(ns.processCount == 1 ? "" : "es")") }
        }
        if let cookie { parts.append("cookie \(cookie)") }
        return parts.joined(separator: "  ")
    }

    func text() -> String {
        var out = Output.styled(heading, .bold) + "\n"
        let titles: [(ShowSection, String)] = [(.links, "Links"), (.addrs, "Addresses"), (.routes, "Routes"), (.neigh, "Neighbours"),
                                               (.fdb, "Bridge forwarding database"), (.rules, "Policy rules"), (.nsids, "Namespace ids")]
        for (section, title) in titles where sections.contains(section) {
            // Sections that only repeat the kernel's defaults are left out of the text view.
            if section == .fdb && !state.fdb.contains(where: { $0.flags & NeighbourFlag.master != 0 || $0.stateName != "permanent" }) { continue }
            // (Rules: not a count, which the multicast families' rules and IPv6's used to defeat.)
            if section == .rules && Rule.areKernelDefaults(state.rules) { continue }
            if section == .nsids && nsids.isEmpty { continue }
            out += "\n" + Output.styled(title, .cyan) + "\n" + table(section: section)
        }
        return out
    }

    func json(section: ShowSection) -> JSON {
        switch section {
        case .links: .array(state.links.map { IPJSON.link($0, in: state, peer: peers[$0.index]) })
        case .addrs: IPJSON.addresses(state, peers: { peers[$0.index] })
        case .routes: .array(state.routes.map { IPJSON.route($0, in: state) })
        case .neigh: .array(state.neighbours.map { IPJSON.neighbour($0, in: state) })
        case .fdb: .array(state.fdb.map { IPJSON.fdb($0, in: state) })
        case .rules: .array(state.rules.map(IPJSON.rule))
        case .nsids: .array(nsids.map { entry in
            // As `ip -j netns list-id`: "name" only where the namespace is known, plus its inode.
            var o = JSONObjectBuilder()
            o.add("nsid", entry.nsid)
            o.add("name", entry.namespace?.reference)
            o.add("ns", entry.namespace?.id.inode)
            return o.json
        })
        }
    }

    func json() -> JSON {
        var o = JSONObjectBuilder()
        var n = JSONObjectBuilder()
        n.add("reference", label)
        n.add("ns", namespace?.id.inode)
        n.add("cookie", cookie)
        n.add("names", strings: namespace?.names.map(\.reference) ?? [])
        n.add("pids", .array((namespace?.pids ?? []).map { .int(Int64($0)) }))
        o.add("namespace", n.json)
        for section in sections where section != .nsids || !nsids.isEmpty {
            o.add(section.rawValue, json(section: section))
        }
        return o.json
    }
}
