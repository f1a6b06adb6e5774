#if canImport(Glibc)
import Glibc
#endif
import CBPF
import ProcNS

/// The running kernel's type information (/sys/kernel/btf/vmlinux), loaded with btf__load_vmlinux_btf and
/// freed in `deinit`. It answers which tracepoints can take a tp_btf program and what the values of an
/// enum (skb_drop_reason) are called.
public final class KernelBTF: @unchecked Sendable {
    // Safe to share: the btf object is only read after init.
    let pointer: OpaquePointer

    /// Loads the kernel's BTF; fails with a message naming the missing kernel feature.
    public init() throws(OperationError) {
        errno = 0
        guard let btf = btf__load_vmlinux_btf() else {
            let e = Errno.current
            if access("/sys/kernel/btf/vmlinux", R_OK) != 0 {
                throw OperationError("trace", "/sys/kernel/btf/vmlinux",
                                     "the kernel has no BTF (needs CONFIG_DEBUG_INFO_BTF)", errno: e)
            }
            throw OperationError("trace", "/sys/kernel/btf/vmlinux", call: "btf__load_vmlinux_btf", errno: e)
        }
        pointer = btf
    }

    deinit { btf__free(pointer) }

    /// Whether the kernel has the tracepoint with BTF, i.e. `tp_btf/<name>` can attach (the typedef
    /// `btf_trace_<name>` exists).
    public func hasTracepoint(_ name: String) -> Bool {
        btf__find_by_name_kind(pointer, "btf_trace_" + name, UInt32(BTF_KIND_TYPEDEF as Int)) > 0
    }

    /// Whether the kernel has a function (kfuncs such as bpf_cast_to_kern_ctx are BTF functions).
    public func hasFunction(_ name: String) -> Bool {
        btf__find_by_name_kind(pointer, name, UInt32(BTF_KIND_FUNC as Int)) > 0
    }

    /// Whether an enum has a value of this name (BPF_TCX_INGRESS in bpf_attach_type: tcx links, 6.6).
    public func hasEnumValue(_ enumName: String, _ valueName: String) -> Bool {
        enumValues(enumName)?.contains { $0.name == valueName } ?? false
    }

    /// The names and values of an enum type (32- or 64-bit), or nil when the kernel has no such enum.
    public func enumValues(_ name: String) -> [(name: String, value: UInt64)]? {
        var id = btf__find_by_name_kind(pointer, name, UInt32(BTF_KIND_ENUM as Int))
        if id <= 0 { id = btf__find_by_name_kind(pointer, name, UInt32(BTF_KIND_ENUM64 as Int)) }
        guard id > 0, let type = btf__type_by_id(pointer, UInt32(id)) else { return nil }
        let count = Int(btf_vlen(type))
        var values: [(name: String, value: UInt64)] = []
        values.reserveCapacity(count)
        if btf_kind(type) == UInt16(BTF_KIND_ENUM as Int) {
            let entries = btf_enum(type)!
            for i in 0..<count {
                let name = String(cString: btf__name_by_offset(pointer, entries[i].name_off))
                values.append((name, UInt64(UInt32(bitPattern: entries[i].val))))
            }
        } else {
            let entries = btf_enum64(type)!
            for i in 0..<count {
                let name = String(cString: btf__name_by_offset(pointer, entries[i].name_off))
                values.append((name, UInt64(entries[i].val_hi32) << 32 | UInt64(entries[i].val_lo32)))
            }
        }
        return values
    }
}

/// Names of the kernel's drop reasons (`enum skb_drop_reason` in its BTF), without the
/// `SKB_DROP_REASON_` prefix: NETFILTER_DROP, NO_SOCKET, IP_INHDR …
public struct DropReasons: Sendable {
    private var names: [UInt32: String] = [:]

    /// Reads the enum from the kernel's BTF. A kernel without it yields numbers only.
    public init(btf: KernelBTF) {
        let prefix = "SKB_DROP_REASON_"
        for (name, value) in btf.enumValues("skb_drop_reason") ?? [] {
            guard name.hasPrefix(prefix), value <= UInt32.max else { continue }
            let short = String(name.dropFirst(prefix.count))
            if short == "MAX" || short == "SUBSYS_MASK" { continue }
            names[UInt32(value)] = short
        }
    }

    /// From a table (tests, or a cache).
    public init(names: [UInt32: String]) { self.names = names }

    public var count: Int { names.count }

    /// The reason's name; a reason the table lacks is shown by number, with its subsystem when the high
    /// bits carry one (SKB_DROP_REASON_SUBSYS_MASK): `reason 70`, `subsystem 2 reason 3`.
    public func name(_ reason: UInt32) -> String {
        if let name = names[reason] { return name }
        let subsystem = reason >> 16
        return subsystem == 0 ? "reason \(reason)" : "subsystem \(subsystem) reason \(reason & 0xffff)"
    }

    /// The value of a name (with or without the prefix), for tests and filters.
    public func value(of name: String) -> UInt32? {
        let short = name.hasPrefix("SKB_DROP_REASON_") ? String(name.dropFirst(16)) : name
        return names.first { $0.value == short }?.key
    }
}
