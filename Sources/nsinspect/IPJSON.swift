import Inspect
import JSONKit
import Netlink

/// Renders netlink objects as `ip -j` prints them: the same field names, in iproute2's order
/// (ip/ipaddress.c print_linkinfo and print_addrinfo, ip/iproute.c print_route, ip/ipneigh.c), so a
/// script written against `ip -j` reads nsinspect's output unchanged. What ip cannot know (the
/// namespace at the other end of a veth) is added under names ip does not use (`peer`, `kind`).
enum IPJSON {
    /// A resolved veth peer or parent in another namespace.
    typealias Peer = LinkPeer

    static func linkModeName(_ mode: UInt8?) -> String? {
        guard let mode else { return nil }
        return mode == 0 ? "DEFAULT" : mode == 1 ? "DORMANT" : "mode \(mode)"
    }

    static func link(_ link: Link, in state: NamespaceState, peer: Peer? = nil, details: Bool = true,
                     statistics: Bool = false) -> JSON {
        var o = JSONObjectBuilder()
        linkFields(link, in: state, into: &o)
        if details, let kind = link.kind {
            var info = JSONObjectBuilder()
            info.add("info_kind", kind)
            info.add("info_slave_kind", link.slaveKind)
            o.add("linkinfo", info.json)
        }
        if let alias = link.alias { o.add("ifalias", alias) }
        if !link.alternativeNames.isEmpty { o.add("altnames", strings: link.alternativeNames) }
        if statistics, let s = link.statistics {
            var rx = JSONObjectBuilder(), tx = JSONObjectBuilder()
            rx.add("bytes", s.rxBytes); rx.add("packets", s.rxPackets); rx.add("errors", s.rxErrors)
            rx.add("dropped", s.rxDropped); rx.add("multicast", s.multicast)
            tx.add("bytes", s.txBytes); tx.add("packets", s.txPackets); tx.add("errors", s.txErrors)
            tx.add("dropped", s.txDropped)
            var stats = JSONObjectBuilder()
            stats.add("rx", rx.json); stats.add("tx", tx.json)
            o.add("stats64", stats.json)
        }
        if let peer {
            var p = JSONObjectBuilder()
            p.add("ifname", peer.ifname)
            p.add("ifindex", peer.ifindex)
            p.add("netns", peer.namespace)
            p.add("ns", peer.inode)
            o.add("peer", p.json)
        }
        return o.json
    }

    /// The fields `ip link` and `ip addr` share, in print_linkinfo's order.
    private static func linkFields(_ link: Link, in state: NamespaceState, into o: inout JSONObjectBuilder) {
        o.add("ifindex", link.index)
        if let parent = link.link, parent != 0 {
            if link.linkNetnsID != nil {
                o.add("link_index", parent)
            } else {
                o.add("link", state.name(of: parent) ?? "if\(parent)")
            }
        }
        o.add("ifname", link.name)
        o.add("flags", strings: state.flagNames(of: link))
        o.add("mtu", link.mtu)
        o.add("qdisc", link.qdisc)
        if let master = link.master { o.add("master", state.name(of: master) ?? "if\(master)") }
        o.add("operstate", link.operStateName)
        o.add("linkmode", linkModeName(link.linkMode))
        o.add("group", link.groupName)
        o.add("txqlen", link.txQueueLength)
        o.add("link_type", link.typeName)
        o.add("address", link.address?.description)
        if link.flags & 0x10 != 0 {  // IFF_POINTOPOINT: ip calls the other address "peer"
            o.add("peer", link.broadcast?.description)
        } else {
            o.add("broadcast", link.broadcast?.description)
        }
        if let nsid = link.linkNetnsID { o.add("link_netnsid", .int(Int64(nsid))) }
    }

    /// `ip -j addr show`: one object per link, its addresses under `addr_info`.
    static func addresses(_ state: NamespaceState, peers: (Link) -> Peer? = { _ in nil }) -> JSON {
        .array(state.links.map { link in
            var o = JSONObjectBuilder()
            linkFields(link, in: state, into: &o)
            o.add("addr_info", .array(state.addresses(of: link.index).map(address)))
            if let peer = peers(link) {
                var p = JSONObjectBuilder()
                p.add("ifname", peer.ifname); p.add("netns", peer.namespace)
                o.add("peer", p.json)
            }
            return o.json
        })
    }

    static func address(_ a: InterfaceAddress) -> JSON {
        var o = JSONObjectBuilder()
        o.add("family", a.family == .v4 ? "inet" : "inet6")
        o.add("local", (a.local ?? a.address)?.description)
        if let peer = a.peer { o.add("address", peer.description) }
        o.add("prefixlen", a.prefixLength)
        o.add("broadcast", a.broadcast?.description)
        o.add("anycast", a.anycast?.description)
        o.add("scope", a.scopeName)
        for flag in a.flagNames { o.add(flag, true) }
        o.add("label", a.label)
        if let cache = a.cacheInfo {
            o.add("valid_life_time", cache.validLifetime)
            o.add("preferred_life_time", cache.preferredLifetime)
        }
        return o.json
    }

    /// The destination as ip prints it: `default`, a prefix, or a bare address for a host route.
    static func destination(_ route: Route) -> String {
        if route.destination.length == 0 && route.type == RouteType.unicast { return "default" }
        if route.destination.length == 0 { return "default" }
        return Int(route.destination.length) == route.destination.address.bitWidth
            ? route.destination.address.description : route.destination.description
    }

    static func route(_ route: Route, in state: NamespaceState) -> JSON {
        func dev(_ index: Int32?) -> String? { index.map { state.name(of: $0) ?? "if\($0)" } }
        var o = JSONObjectBuilder()
        if route.type != RouteType.unicast { o.add("type", route.typeName) }
        o.add("dst", destination(route))
        if let source = route.source { o.add("from", source.description) }
        if route.tos != 0 { o.add("tos", route.tos) }
        o.add("gateway", route.gateway?.description)
        o.add("dev", dev(route.outputIndex))
        if route.table != 254 { o.add("table", route.tableName) }
        if route.flags & RouteFlag.cloned == 0 && route.routeProtocol != 3 { o.add("protocol", route.protocolName) }
        if route.scope != 0 { o.add("scope", route.scopeName) }
        o.add("metric", route.priority)
        o.add("prefsrc", route.preferredSource?.description)
        o.add("flags", strings: route.flagNames)
        if let mtu = route.mtu {
            var m = JSONObjectBuilder()
            m.add("mtu", mtu)
            o.add("metrics", .array([m.json]))
        }
        o.add("pref", route.preferenceName)
        if !route.nexthops.isEmpty {
            o.add("nexthops", .array(route.nexthops.map { hop in
                var h = JSONObjectBuilder()
                h.add("gateway", hop.gateway?.description)
                h.add("dev", dev(hop.index))
                h.add("weight", hop.weight)
                h.add("flags", strings: hop.flagNames)
                return h.json
            }))
        }
        return o.json
    }

    static func neighbour(_ n: Neighbour, in state: NamespaceState) -> JSON {
        var o = JSONObjectBuilder()
        o.add("dst", n.destination.description)
        o.add("dev", state.name(of: n.index) ?? "if\(n.index)")
        o.add("lladdr", n.linkAddress?.description)
        if n.isRouter { o.add("router", .null) }
        if n.flags & NeighbourFlag.proxy != 0 { o.add("proxy", .null) }
        o.add("state", strings: n.stateNames)
        return o.json
    }

    /// `bridge -j fdb show`.
    static func fdb(_ e: FDBEntry, in state: NamespaceState) -> JSON {
        var o = JSONObjectBuilder()
        o.add("mac", e.linkAddress.description)
        o.add("ifname", state.name(of: e.index) ?? "if\(e.index)")
        o.add("vlan", e.vlan)
        if let master = e.master { o.add("master", state.name(of: master) ?? "if\(master)") }
        o.add("dst", e.destination?.description)
        o.add("flags", strings: e.flagNames)
        o.add("state", e.stateName)
        return o.json
    }

    /// An address family as `ip -j` names it in addr_info ("inet", "inet6").
    static func familyName(_ family: UInt8) -> String {
        switch family {
        case 2: "inet"
        case 10: "inet6"
        default: "family \(family)"
        }
    }

    /// One rule as `ip -j rule` prints it, plus "family" (ip lists one family at a time; `show` both).
    static func rule(_ r: Rule) -> JSON {
        var o = JSONObjectBuilder()
        o.add("family", familyName(r.family))
        o.add("priority", r.priority)
        if r.isInverted { o.add("not", .null) }
        // As iprule.c prints them: the address, and its length apart ("srclen", "dstlen") unless it is a host.
        if let src = r.source {
            o.add("src", src.address.description)
            if Int(src.length) != src.address.bitWidth { o.add("srclen", src.length) }
        } else {
            o.add("src", "all")
        }
        if let dst = r.destination {
            o.add("dst", dst.address.description)
            if Int(dst.length) != dst.address.bitWidth { o.add("dstlen", dst.length) }
        }
        o.add("iif", r.inputInterface)
        o.add("oif", r.outputInterface)
        if let mark = r.fwmark { o.add("fwmark", "0x" + String(mark, radix: 16)) }
        if r.action == 1 {
            o.add("table", r.tableName)
        } else {
            o.add("action", r.actionName)
        }
        // ip prints the protocol unless it is "kernel" (the default rules'), as iprule.c does without -d.
        if let proto = r.ruleProtocol, proto != 0, proto != 2 { o.add("protocol", r.protocolName) }
        return o.json
    }
}
