#if canImport(Glibc)
import Glibc
#endif
import CShim
import Netlink
import ProcNS

/// The census namespaces opened, labelled and (on demand) snapshotted: what `list`, `dump` and
/// `graph` share. Namespaces that vanished between the census and opening them are kept aside with the
/// reason, so the rest is still printed.
public struct OpenNamespaces {
    public let census: Census
    /// Census namespaces that could be opened, with their handles (same order).
    public private(set) var namespaces: [NetNamespace] = []
    public private(set) var handles: [NamespaceHandle] = []
    /// Namespaces that could not be opened, and why.
    public private(set) var vanished: [(NetNamespace, OperationError)] = []

    public init(_ census: Census, selecting selected: [NetNamespace]? = nil) {
        _ = nsi_raise_nofile_limit()
        self.census = census
        for ns in selected ?? census.namespaces {
            do {
                handles.append(try census.open(ns, quick: true))
                namespaces.append(ns)
            } catch {
                vanished.append((ns, error))
            }
        }
        labels = namespaces.map(\.reference)
        inodes = namespaces.map(\.id.inode)
    }

    /// Labels, in the order of `namespaces`: the namespace's reference (`router1`, `docker:web`,
    /// `pid:1234`, `ino:…`).
    public private(set) var labels: [String] = []
    /// Inodes, in the order of `namespaces`.
    public private(set) var inodes: [UInt64] = []

    public func index(of inode: UInt64) -> Int? { namespaces.firstIndex { $0.id.inode == inode } }

    /// Reads `parts` from every namespace; a namespace that fails is reported in the result.
    public func snapshots(_ parts: InventoryParts) throws -> [Result<NamespaceSnapshot, any Error>] {
        try Inventory.take(handles, parts: parts)
    }

    /// The namespaces `socket`'s namespace knows by nsid, found by asking it about every open namespace
    /// in one batched RTM_GETNSID exchange (cheap from inside a namespace: its nsid table is small).
    public func nsidMap(from socket: NetlinkSocket, among candidates: [Int]? = nil) -> [Int32: Int] {
        let indexes = candidates ?? Array(namespaces.indices)
        guard let answers = try? socket.nsids(of: indexes.map { handles[$0] }) else { return [:] }
        var map: [Int32: Int] = [:]
        for (i, answer) in zip(indexes, answers) {
            if case .success(.assigned(let id)) = answer { map[id] = i }
        }
        return map
    }

    /// The wiring with the switches that are not Linux bridges: Open vSwitch bridges, and unmanaged ones
    /// (masterless veth ends without addresses; their addresses are read only in the namespaces that have
    /// two or more such ends).
    public func wiringWithSwitches(_ links: [[Link]]) -> Wiring {
        var wiring = self.wiring(links)
        let candidates = wiring.switchCandidates(links)
        var addresses: [Int: [InterfaceAddress]] = [:]
        for ns in candidates.keys {
            addresses[ns] = (try? NetlinkSession(in: handles[ns], label: labels[ns]).addresses()) ?? []
        }
        // Open vSwitch's databases are asked only where a switch may be: masterless ports, or a kernel
        // datapath (an `openvswitch` link).
        var ovs: [(namespace: Int, bridges: [Wiring.OVSBridge])] = []
        if !candidates.isEmpty || links.contains(where: { $0.contains { $0.kind == "openvswitch" } }) {
            for instance in OVSDatabase.instances() {
                guard let inode = instance.netnsInode, let ns = index(of: inode),
                    let bridges = try? OVSDatabase.bridges(socket: instance.socket) else { continue }
                ovs.append((ns, bridges))
            }
        }
        wiring.findSwitches(links, addresses: addresses, ovs: ovs, candidates: candidates)
        return wiring
    }

    /// Builds the wiring from link snapshots, asking a namespace for nsids only where indexes are ambiguous.
    public func wiring(_ links: [[Link]]) -> Wiring {
        var sockets: [Int: NetlinkSocket] = [:]
        return Wiring.build(links) { from, nsid, candidates in
            if sockets[from] == nil { sockets[from] = try? NetlinkSocket.open(in: handles[from]) }
            guard let socket = sockets[from] else { return nil }
            return nsidMap(from: socket, among: candidates)[nsid]
        }
    }
}
