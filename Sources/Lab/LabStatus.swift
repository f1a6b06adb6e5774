import Netlink
import ProcNS

/// One difference between a lab file and what is on the machine.
public struct LabDrift: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case missing, extra, changed
    }
    public var kind: Kind
    /// What: `namespace router2`, `link router1:e0`, `address 10.0.0.1/24 on router1:e0`, `route … in router1`.
    public var what: String
    /// For `changed`: what is there instead.
    public var detail: String?

    public init(_ kind: Kind, _ what: String, _ detail: String? = nil) {
        self.kind = kind
        self.what = what
        self.detail = detail
    }

    public var description: String { "\(kind.rawValue) \(what)" + (detail.map { ": \($0)" } ?? "") }
}

extension LabBuilder {
    /// What a snapshot of the machine does not hold, compared with the file: whether each namespace is
    /// there and the lab's (the mark on its `lo`), whether the lab's links in the host carry the mark, and
    /// the sysctls the file sets. Links, addresses and routes are compared by `LabDeclaration` in Inspect,
    /// as `nsinspect diff` compares two snapshots. Read over netlink and /proc/sys; nothing is changed.
    /// `presences`: the lab's namespaces as the caller already found them (`up` and `lab status` need
    /// them too), so each namespace's mark is asked once.
    public func status(presences found: Presences? = nil) throws -> [LabDrift] {
        var drift: [LabDrift] = []
        var handles: [LabPlace: NamespaceHandle] = [:]
        for entry in found ?? presences() {
            switch entry.presence {
            case .absent: drift.append(LabDrift(.missing, "namespace \(entry.name)"))
            case .foreign(let reason): drift.append(LabDrift(.changed, "namespace \(entry.name)", reason))
            case .ours: handles[.namespace(entry.name)] = entry.handle
            }
        }
        let host = try NamespaceHandle.host()
        handles[.host] = host
        let hostState = try NetlinkSession(in: host, label: "host").snapshot()
        // A host link of the lab's name without the mark is someone else's, whatever else it matches.
        for interface in spec.interfaces(in: .host) {
            if let link = hostState.link(named: interface.ref.name), link.alias != plan.mark {
                drift.append(LabDrift(.changed, "link \(interface.ref)", "not made by lab '\(spec.name)' (no mark)"))
            }
        }
        for ns in spec.allNamespaces {
            guard let handle = handles[ns.place] else { continue }
            for sysctl in ns.effectiveSysctls {
                guard let value = try? Sysctl.read(sysctl.key, in: handle) else { continue }
                if value != sysctl.value {
                    drift.append(LabDrift(.changed, "\(sysctl.key) in \(ns.place)", "\(value) (the file says \(sysctl.value))"))
                }
            }
        }
        return drift
    }
}
