#if canImport(Glibc)
import Glibc
#endif
import CShim
import JSONKit
import ProcNS

/// Open vSwitch's bridges and their ports, asked of its database: what the kernel cannot say about a
/// userspace (netdev) datapath, whose ports are plain interfaces without a master.
///
/// Every running `ovs-vswitchd` names its database socket as its first non-option argument
/// (`unix:/var/run/openvswitch/db.sock`, or a private instance's); the socket is reached through the
/// daemon's own root (`/proc/PID/root`), so an instance in another mount namespace is found too. The
/// question is one OVSDB `transact` (RFC 7047, JSON-RPC over the unix socket) selecting the Bridge
/// table's names and ports and the Port table's names.
public enum OVSDatabase {
    /// A running ovs-vswitchd: its PID, its network namespace's inode, and its database socket as a path
    /// this process can connect to.
    public struct Instance: Sendable, Equatable {
        public let pid: Int32
        public let netnsInode: UInt64?
        public let socket: String
    }

    /// The running ovs-vswitchd processes (from /proc/*/comm).
    public static func instances(procRoot: String = "/proc") -> [Instance] {
        let ownMounts = ProcDirectory.namespaceInode(pid: getpid(), type: "mnt", procRoot: procRoot)
        var found: [Instance] = []
        for pid in ProcDirectory.processes(named: ["ovs-vswitchd"], procRoot: procRoot) {
            let args = ProcDirectory.arguments(pid: pid, procRoot: procRoot)
            var database = args.dropFirst().first { !$0.hasPrefix("-") }
            if database == nil {
                // No argument: OVS_RUNDIR's db.sock, as the daemon computes it.
                let rundir = ProcDirectory.environment(pid: pid, procRoot: procRoot)["OVS_RUNDIR"] ?? "/var/run/openvswitch"
                database = "unix:\(rundir)/db.sock"
            }
            guard let database, database.hasPrefix("unix:") else { continue }
            let path = String(database.dropFirst(5))
            let inode = ProcDirectory.namespaceInode(pid: pid, type: "net", procRoot: procRoot)
            let sameRoot = ProcDirectory.namespaceInode(pid: pid, type: "mnt", procRoot: procRoot) == ownMounts
            found.append(Instance(pid: pid, netnsInode: inode, socket: sameRoot ? path : "\(procRoot)/\(pid)/root\(path)"))
        }
        return found
    }

    /// The `transact` request: bridges with their ports (a set of Port uuids), ports with their names.
    static let request: [UInt8] = Array("""
        {"method":"transact","id":1,"params":["Open_vSwitch",\
        {"op":"select","table":"Bridge","where":[],"columns":["name","ports"]},\
        {"op":"select","table":"Port","where":[],"columns":["_uuid","name"]}]}
        """.utf8)

    /// The bridges of the database at `socket`, each with its ports' names.
    public static func bridges(socket path: String, timeoutMilliseconds: Int32 = 1000) throws(OperationError) -> [Wiring.OVSBridge] {
        let fd = nsi_unix_connect(path)
        guard fd >= 0 else { throw OperationError("ovsdb", path, call: "connect", errno: .current) }
        defer { close(fd) }
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw OperationError("ovsdb", path, call: "send", errno: .current) }
            sent += n
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, timeoutMilliseconds)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { throw OperationError("ovsdb", path, "no answer within \(timeoutMilliseconds) ms") }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw OperationError("ovsdb", path, n == 0 ? "closed before answering" : "recv: \(Errno.current)") }
            reply += buffer[0..<n]
            // One JSON-RPC reply: complete once it parses, which it can only when it ends an object.
            if reply.last(where: { $0 > 0x20 }) == UInt8(ascii: "}"), let json = try? JSON.parse(reply) { return try decode(json, path: path) }
            guard reply.count < 16 << 20 else { throw OperationError("ovsdb", path, "answer larger than 16 MiB") }
        }
    }

    /// Pure: the bridges in a `transact` reply.
    static func decode(_ reply: JSON, path: String) throws(OperationError) -> [Wiring.OVSBridge] {
        if let error = reply["error"], error != .null { throw OperationError("ovsdb", path, "the database refused: \(error)") }
        guard let results = reply["result"]?.arrayValue, results.count >= 2,
            let bridgeRows = results[0]["rows"]?.arrayValue, let portRows = results[1]["rows"]?.arrayValue
        else { throw OperationError("ovsdb", path, "an answer without the Bridge and Port rows") }
        var portNames: [String: String] = [:]
        for row in portRows {
            if let uuid = uuid(row["_uuid"]), let name = row["name"]?.stringValue { portNames[uuid] = name }
        }
        return bridgeRows.compactMap { row in
            guard let name = row["name"]?.stringValue else { return nil }
            return Wiring.OVSBridge(name: name, ports: uuids(row["ports"]).compactMap { portNames[$0] }.sorted())
        }
    }

    /// `["uuid", "…"]`.
    static func uuid(_ value: JSON?) -> String? {
        guard let pair = value?.arrayValue, pair.count == 2, pair[0].stringValue == "uuid" else { return nil }
        return pair[1].stringValue
    }

    /// A set column: one `["uuid", …]`, or `["set", [["uuid", …], …]]`.
    static func uuids(_ value: JSON?) -> [String] {
        if let one = uuid(value) { return [one] }
        guard let pair = value?.arrayValue, pair.count == 2, pair[0].stringValue == "set", let members = pair[1].arrayValue else { return [] }
        return members.compactMap(uuid)
    }
}
