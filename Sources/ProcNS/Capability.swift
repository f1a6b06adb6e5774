import CShim

/// Linux capabilities nsinspect needs, read with capget(2) so a missing one is named before anything is
/// changed.
public enum Capability: Int, Sendable, CaseIterable, CustomStringConvertible {
    case dacReadSearch = 2
    case killProcess = 5
    case netAdmin = 12
    case netRaw = 13
    case sysPtrace = 19
    case sysAdmin = 21
    case perfmon = 38
    case bpf = 39

    public var description: String {
        switch self {
        case .dacReadSearch: "CAP_DAC_READ_SEARCH"
        case .killProcess: "CAP_KILL"
        case .netAdmin: "CAP_NET_ADMIN"
        case .netRaw: "CAP_NET_RAW"
        case .sysPtrace: "CAP_SYS_PTRACE"
        case .sysAdmin: "CAP_SYS_ADMIN"
        case .perfmon: "CAP_PERFMON"
        case .bpf: "CAP_BPF"
        }
    }

    /// The effective capability set of this process.
    public static func effective() -> Set<Capability> {
        var bits: UInt64 = 0
        guard nsi_effective_caps(&bits) == 0 else { return [] }
        return Set(allCases.filter { bits & (1 << UInt64($0.rawValue)) != 0 })
    }

    /// Throws an error naming every capability in `needed` that this process lacks.
    public static func require(_ needed: [Capability], for operation: String, object: String = "")
        throws(OperationError)
    {
        let have = effective()
        let missing = needed.filter { !have.contains($0) }
        guard missing.isEmpty else {
            let names = missing.map(\.description).joined(separator: ", ")
            throw OperationError(operation, object, "needs \(names) (run as root)")
        }
    }

    /// A hint appended to EPERM/EACCES from a call whose privilege is known.
    static func missingHint(for call: String) -> String {
        switch call {
        case "setns", "unshare", "mount", "umount2": " (needs CAP_SYS_ADMIN)"
        case "pidfd_getfd": " (needs CAP_SYS_PTRACE)"
        case "bpf": " (needs CAP_BPF and CAP_PERFMON)"
        default: ""
        }
    }
}
