import Netlink

/// Which namespaces a trace watches: those the wiring connects the endpoints to (through veth pairs,
/// bridges and stacked links), up to the kernel map's size.
public enum TraceScope {
    public static func namespaces(around start: [Int], context: PathContext, limit: Int = 4096) -> Set<Int> {
        var neighbours: [Int: Set<Int>] = [:]
        func link(_ a: Int, _ b: Int) { neighbours[a, default: []].insert(b); neighbours[b, default: []].insert(a) }
        for pair in context.wiring.vethPairs { link(pair.a.namespace, pair.b.namespace) }
        for s in context.wiring.stacked { if let p = s.parent { link(s.child.namespace, p.namespace) } }
        var seen = Set(start)
        var queue = start
        while let next = queue.popLast(), seen.count < limit {
            for n in neighbours[next] ?? [] where seen.insert(n).inserted { queue.append(n) }
        }
        return seen
    }
}
