import NetAddress
import Netlink
import Probes
import ProcNS

/// The conntrack entries behind the rewrites a trace saw: for every hop that changed an address or a
/// port, the entry of that namespace's table the packet belongs to. Found by the headers the packet had
/// when it entered the namespace (before NAT), matched against both tuples of each entry of an
/// IPCTNL_MSG_CT_GET dump on a netfilter socket opened inside the namespace. Read once the probes are
/// done, well within the entries' timeouts (30 s for unreplied UDP and ICMP).
public struct TraceNAT {
    public struct Key: Hashable {
        let namespace: UInt32
        let match: ConntrackMatch
    }

    public private(set) var entries: [Key: [ConntrackEntry]] = [:]
    /// Namespaces whose table could not be read, and why (said once in the output, not fatal).
    public private(set) var problems: [UInt32: String] = [:]

    public init() {}

    /// Reads the tables of the namespaces where `reports` saw a rewrite; one dump per namespace.
    public init(reports: [ProbeReport], handles: [UInt32: NamespaceHandle], labels: [UInt32: String]) {
        var wanted: [UInt32: Set<ConntrackMatch>] = [:]
        for report in reports {
            for hop in report.requestHops + report.replyHops {
                if let key = Self.key(hop) { wanted[key.namespace, default: []].insert(key.match) }
            }
        }
        for (namespace, matches) in wanted {
            guard let handle = handles[namespace] else { continue }
            let list = Array(matches)
            do {
                let table = try ConntrackTable(in: handle, label: labels[namespace])
                let found = try table.entries(matchingAny: list)
                for match in list { entries[Key(namespace: namespace, match: match)] = found.filter(match.matches) }
            } catch {
                problems[namespace] = OperationError.explain(error)
            }
        }
    }

    /// The entries behind `hop`'s rewrites (empty when it rewrote nothing or none was found).
    public func entries(for hop: ObservedHop) -> [ConntrackEntry] {
        Self.key(hop).flatMap { entries[$0] } ?? []
    }

    /// The packet as it entered the hop, as a conntrack match: protocol, addresses, ports or echo id.
    static func key(_ hop: ObservedHop) -> Key? {
        guard !hop.rewrites.isEmpty, let p = hop.first else { return nil }
        let source = p.source, destination = p.destination
        let echo = p.isEchoRequest || p.isEchoReply
        let ports = p.hasTransport && !p.isICMP
        let match = ConntrackMatch(protocolNumber: p.proto, source: source,
                                   sourcePort: ports ? p.sourcePort : (echo ? p.icmpID : nil),
                                   destination: destination, destinationPort: ports ? p.destinationPort : nil)
        return Key(namespace: hop.namespace, match: match)
    }
}
