#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Inspect
import JSONKit
import Netlink
import ProcNS

struct WatchCommand: NSCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Every namespace, link, address, route and neighbour as it changes, in all namespaces at once.",
        discussion: """
            Like `ip monitor`, but in every namespace at once, each line with the namespace's name and veth \
            peers named. Namespaces appearing and disappearing are reported however they are held; one \
            that appears is reported with what it holds. Sources: inotify on the netns directories, the \
            proc connector (exec and exit), RTNLGRP_NSID in the host, a census every 5 s otherwise; \
            rtnetlink groups inside each namespace (docs/watch.md). Lost events (ENOBUFS) are reported as \
            `resync`, never dropped silently.
            """
    )

    @Argument(help: "Only these namespaces (NS references); all, including ones that appear later, by default.")
    var references: [String] = []
    @Option(help: "Comma-separated kinds: ns, link, addr, route, neigh (resync is always reported).")
    var events: String = "ns,link,addr,route,neigh"
    @Option(help: "Stop after this many seconds.") var duration: Double?
    @Option(help: "Stop after this many events.") var count: Int?
    @Option(help: "Write this file once every namespace is subscribed (removed when watch ends).") var readyFile: String?
    @OptionGroup var common: CommonOptions

    func validate() throws {
        _ = try Self.kinds(events)
        if let duration, !(duration > 0) { throw ValidationError("--duration must be a positive number of seconds") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    static func kinds(_ list: String) throws -> Set<WatchKind> {
        var kinds: Set<WatchKind> = [.resync]
        for word in list.split(separator: ",") {
            guard let kind = WatchKind(rawValue: String(word)), kind != .resync else {
                throw ValidationError("unknown event kind '\(word)' (ns, link, addr, route, neigh)")
            }
            kinds.insert(kind)
        }
        return kinds
    }

    func run() throws {
        StopRequest.install()
        let watcher = try NamespaceWatcher(references: references, kinds: try Self.kinds(events))
        if let readyFile { unlink(readyFile) }
        defer { if let readyFile { unlink(readyFile) } }
        var seen = 0
        let json = common.json
        try watcher.run(duration: duration, ready: {
            if let readyFile {
                let fd = open(readyFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                if fd >= 0 { close(fd) }
            }
        }, emit: { event in
            if json { Output.write(WatchRendering.json(event)) } else { Output.write(WatchRendering.text(event)) }
            seen += 1
            return count.map { seen < $0 } ?? true
        })
    }
}

/// `watch` lines: text as `ip monitor` prints, with the namespace first; JSON one object per line with
/// `ip -j`'s field names.
enum WatchRendering {
    static func text(_ e: WatchEvent) -> String {
        let sign = e.isNew ? "+" : "-"
        let state = e.state
        func dev(_ index: Int32?) -> String { index.map { state.name(of: $0) ?? "if\($0)" } ?? "-" }
        let body: String
        switch e.payload {
        case .namespace:
            body = "\(sign) ns \(e.namespace.reference) (ino \(e.namespace.inode))"
        case .link(let link, let peer):
            var words = "\(sign) link \(link.name)"
            if e.isNew {
                words += " \(link.operStateName)"
                if let mtu = link.mtu { words += " mtu \(mtu)" }
                if let master = link.master { words += " master \(dev(master))" }
                if let peer { words += " (\(link.kind ?? "link") ── \(peer.ifname) in \(peer.namespace))" }
            }
            body = words
        case .address(let a):
            body = "\(sign) addr \(a.prefix?.description ?? "?") dev \(dev(a.index))"
        case .route(let r):
            var words = "\(sign) route \(IPJSON.destination(r))"
            if let gateway = r.gateway { words += " via \(gateway)" }
            if r.outputIndex != nil { words += " dev \(dev(r.outputIndex))" }
            if r.table != 254 { words += " table \(r.tableName)" }
            body = words
        case .neighbour(let n):
            var words = "\(sign) neigh \(n.destination) dev \(dev(n.index))"
            if let mac = n.linkAddress { words += " lladdr \(mac)" }
            words += " " + n.stateNames.joined(separator: ",")
            body = words
        case .resync(let lost, let links, let addresses, let routes, let neighbours):
            body = "! resync: events lost (ENOBUFS ×\(lost)); read again: \(links) links, \(addresses) addresses, \(routes) routes, \(neighbours) neighbours"
        }
        let label = e.kind == .ns ? "" : e.namespace.reference + " "
        return "\(WallClock.iso8601(e.time, timeOnly: true)) \(label)\(body)\n"
    }

    static func json(_ e: WatchEvent) -> [UInt8] {
        var o = JSONObjectBuilder()
        o.add("time", WallClock.iso8601(e.time))
        var ns = JSONObjectBuilder()
        ns.add("inode", e.namespace.inode)
        ns.add("names", strings: e.namespace.names)
        ns.add("reference", e.namespace.reference)
        o.add("ns", ns.json)
        o.add("event", e.kind.rawValue)
        o.add("action", e.isNew ? "new" : "del")
        let fields: JSON?
        switch e.payload {
        case .namespace: fields = nil
        case .link(let link, let peer): fields = IPJSON.link(link, in: e.state, peer: peer)
        case .address(let a):
            var f = JSONObjectBuilder()
            f.add("ifindex", a.index)
            f.add("ifname", e.state.name(of: a.index))
            if case .object(let members) = IPJSON.address(a) { for m in members { f.add(m.key, m.value) } }
            fields = f.json
        case .route(let r): fields = IPJSON.route(r, in: e.state)
        case .neighbour(let n): fields = IPJSON.neighbour(n, in: e.state)
        case .resync(let lost, let links, let addresses, let routes, let neighbours):
            var f = JSONObjectBuilder()
            f.add("lost", lost); f.add("links", links); f.add("addresses", addresses)
            f.add("routes", routes); f.add("neighbours", neighbours)
            fields = f.json
        }
        if case .object(let members)? = fields { for m in members { o.add(m.key, m.value) } }
        var bytes: [UInt8] = []
        o.json.write(into: &bytes, pretty: false)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }
}
