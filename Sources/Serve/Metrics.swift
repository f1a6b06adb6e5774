import JSONKit
import Synchronization

/// One label set of the drop counter: where the kernel dropped a traced packet and why.
public struct DropKey: Hashable, Sendable, Comparable {
    public var netns: String
    public var ifname: String
    public var reason: String

    public init(netns: String, ifname: String, reason: String) {
        self.netns = netns
        self.ifname = ifname
        self.reason = reason
    }

    public static func < (a: DropKey, b: DropKey) -> Bool {
        (a.netns, a.ifname, a.reason) < (b.netns, b.ifname, b.reason)
    }
}

/// Drops seen by the traces this server ran (active, or passive for as long as one runs), counted by
/// namespace, interface and kernel drop reason. Counters only grow, as Prometheus counters must.
public final class DropCounters: Sendable {
    private let counts = Mutex<[DropKey: UInt64]>([:])

    public init() {}

    /// Counts the event if it is a drop: a `trace --json` event line with "drop_reason".
    public func count(eventLine line: ArraySlice<UInt8>) {
        // Most lines are not drops; look for the member before parsing.
        guard line.count > 20, Self.contains(line, Self.marker), let event = try? JSON.parse(Array(line)),
              let reason = event["drop_reason"]?.stringValue else { return }
        let key = DropKey(netns: event["netns"]?.stringValue ?? event["ns"]?.intValue.map { "ino:\($0)" } ?? "?",
                          ifname: event["ifname"]?.stringValue ?? "", reason: reason)
        counts.withLock { $0[key, default: 0] += 1 }
    }

    public var snapshot: [DropKey: UInt64] { counts.withLock { $0 } }

    private static let marker = Array("\"drop_reason\"".utf8)

    static func contains(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        var i = haystack.startIndex
        while i <= haystack.endIndex - needle.count {
            if haystack[i] == needle[0] && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}

/// `/metrics` in the Prometheus text exposition format (version 0.0.4), from `list --json --interfaces`
/// and the drop counters.
public enum PrometheusText {
    /// The holder kinds of a namespace as `list --json` shows them: a namespace held several ways counts
    /// under each.
    static func holders(_ ns: JSON) -> [String] {
        var kinds: [String] = []
        if ns["host"]?.boolValue == true { kinds.append("host") }
        if (ns["nprocs"]?.intValue ?? 0) > 0 && ns["host"]?.boolValue != true { kinds.append("process") }
        let holders = ns["holders"]
        for (member, kind) in [("mounts", "mount"), ("fds", "fd"), ("sockets", "socket"), ("threads", "thread")] {
            if let list = holders?[member]?.arrayValue, !list.isEmpty { kinds.append(kind) }
        }
        return kinds.isEmpty ? ["none"] : kinds
    }

    /// The text for one scrape. `list` is what `list --json --interfaces` printed.
    public static func render(list: JSON, drops: [DropKey: UInt64]) -> String {
        let namespaces = list["namespaces"]?.arrayValue ?? []
        var byHolder: [String: Int] = [:]
        var byNameKind: [String: Int] = [:]
        for ns in namespaces {
            for kind in holders(ns) { byHolder[kind, default: 0] += 1 }
            let kinds = Set((ns["names"]?.arrayValue ?? []).compactMap { $0["kind"]?.stringValue })
            for kind in kinds { byNameKind[kind, default: 0] += 1 }
            if kinds.isEmpty { byNameKind["unnamed", default: 0] += 1 }
        }
        var out = ""
        out += "# HELP nsinspect_namespaces Network namespaces on the host.\n"
        out += "# TYPE nsinspect_namespaces gauge\n"
        out += "nsinspect_namespaces \(namespaces.count)\n"
        out += "# HELP nsinspect_namespaces_by_holder Network namespaces by what holds them (one held several ways counts under each).\n"
        out += "# TYPE nsinspect_namespaces_by_holder gauge\n"
        for (kind, n) in byHolder.sorted(by: { $0.key < $1.key }) {
            out += "nsinspect_namespaces_by_holder{holder=\"\(escape(kind))\"} \(n)\n"
        }
        out += "# HELP nsinspect_namespaces_by_name_kind Network namespaces by the kind of name they have (netns, docker, podman, mininet, …; unnamed).\n"
        out += "# TYPE nsinspect_namespaces_by_name_kind gauge\n"
        for (kind, n) in byNameKind.sorted(by: { $0.key < $1.key }) {
            out += "nsinspect_namespaces_by_name_kind{kind=\"\(escape(kind))\"} \(n)\n"
        }
        out += "# HELP nsinspect_links Links in each network namespace, lo left out.\n"
        out += "# TYPE nsinspect_links gauge\n"
        for ns in namespaces {
            let label = ns["reference"]?.stringValue ?? "?"
            let inode = ns["ns"]?.intValue.map(String.init) ?? "?"
            let links = ns["interfaces"]?.arrayValue?.count ?? 0
            out += "nsinspect_links{netns=\"\(escape(label))\",ns=\"\(inode)\"} \(links)\n"
        }
        out += "# HELP nsinspect_drops_total Packets the kernel dropped in traces run by this server, by namespace, interface and drop reason.\n"
        out += "# TYPE nsinspect_drops_total counter\n"
        for (key, n) in drops.sorted(by: { $0.key < $1.key }) {
            out += "nsinspect_drops_total{netns=\"\(escape(key.netns))\",ifname=\"\(escape(key.ifname))\",reason=\"\(escape(key.reason))\"} \(n)\n"
        }
        return out
    }

    /// Label values escape backslash, double quote and newline.
    static func escape(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
