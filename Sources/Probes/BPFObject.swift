#if canImport(Glibc)
import Glibc
#endif
import CBPF
import ProcNS

/// A BPF ELF object opened by libbpf (bpf_object__open_mem) and, after `load()`, its programs and maps in
/// the kernel. Owns them all: `deinit` closes the object (bpf_object__close), which releases every program
/// and map fd. Links made from its programs are separate owners (`BPFLink`) and must go first.
///
/// The lifecycle is libbpf-bootstrap's: open → configure (read-only globals, map sizes, which programs to
/// load) → load (verifier) → attach.
public final class BPFObject {
    let pointer: OpaquePointer
    /// The ELF image; libbpf reads it while opening, kept for the object's lifetime all the same.
    private let image: [UInt8]
    public let name: String
    public private(set) var isLoaded = false

    /// Opens an ELF object held in memory (bpf_object__open_mem).
    public init(image: [UInt8], name: String) throws(OperationError) {
        LibBPFLog.install()
        self.image = image
        self.name = name
        var options = bpf_object_open_opts()
        options.sz = MemoryLayout<bpf_object_open_opts>.stride
        let opened: OpaquePointer? = name.withCString { cName in
            options.object_name = cName
            return image.withUnsafeBytes { bpf_object__open_mem($0.baseAddress, $0.count, &options) }
        }
        guard let opened else {
            throw OperationError("load", name, call: "bpf_object__open_mem", errno: .current)
        }
        pointer = opened
    }

    deinit { bpf_object__close(pointer) }

    /// The programs, in the object's order (bpf_object__next_program).
    public var programs: [BPFProgram] {
        var result: [BPFProgram] = []
        var current = bpf_object__next_program(pointer, nil)
        while let program = current {
            result.append(BPFProgram(pointer: program, owner: self))
            current = bpf_object__next_program(pointer, program)
        }
        return result
    }

    public func program(named name: String) -> BPFProgram? {
        bpf_object__find_program_by_name(pointer, name).map { BPFProgram(pointer: $0, owner: self) }
    }

    public func map(named name: String) -> BPFMap? {
        bpf_object__find_map_by_name(pointer, name).map { BPFMap(pointer: $0, owner: self) }
    }

    /// Sets a `const volatile` global of the BPF C (in .rodata) before load. `value` must have the C type's
    /// exact layout (a struct imported from the shared header); its size is checked against the BTF.
    public func setReadOnlyGlobal<T: BitwiseCopyable>(_ variable: String, to value: T) throws(OperationError) {
        guard !isLoaded else { throw OperationError("configure", name, "\(variable): the object is already loaded") }
        guard let rodata = map(named: ".rodata") else {
            throw OperationError("configure", name, "no .rodata section (no const volatile globals)")
        }
        guard let (offset, size) = globalPlacement(variable, section: ".rodata") else {
            throw OperationError("configure", name, "no global \(variable) in .rodata")
        }
        guard size == MemoryLayout<T>.size else {
            throw OperationError("configure", name,
                                 "\(variable) is \(size) bytes in the BPF object, \(MemoryLayout<T>.size) in Swift")
        }
        var sectionSize = 0
        guard let initial = bpf_map__initial_value(rodata.pointer, &sectionSize), offset + size <= sectionSize else {
            throw OperationError("configure", name, ".rodata has no initial value")
        }
        var contents = [UInt8](UnsafeRawBufferPointer(start: initial, count: sectionSize))
        withUnsafeBytes(of: value) { bytes in
            contents.replaceSubrange(offset..<(offset + size), with: bytes)
        }
        let rc = contents.withUnsafeBytes { bpf_map__set_initial_value(rodata.pointer, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw OperationError("configure", name, call: "bpf_map__set_initial_value", errno: Errno(-rc)) }
    }

    /// Where a global lives in its data section, from the object's BTF (DATASEC entries).
    func globalPlacement(_ variable: String, section: String) -> (offset: Int, size: Int)? {
        guard let btf = bpf_object__btf(pointer) else { return nil }
        let id = btf__find_by_name_kind(btf, section, UInt32(BTF_KIND_DATASEC as Int))
        guard id > 0, let datasec = btf__type_by_id(btf, UInt32(id)), let entries = btf_var_secinfos(datasec) else {
            return nil
        }
        for i in 0..<Int(btf_vlen(datasec)) {
            guard let varType = btf__type_by_id(btf, entries[i].type),
                String(cString: btf__name_by_offset(btf, varType.pointee.name_off)) == variable
            else { continue }
            return (Int(entries[i].offset), Int(entries[i].size))
        }
        return nil
    }

    /// Loads every program marked for loading and creates the maps (bpf_object__load). A program the
    /// verifier refuses fails the whole load, with the end of the verifier's log in the reason.
    public func load() throws(OperationError) {
        _ = LibBPFLog.takeWarnings()
        let rc = bpf_object__load(pointer)
        guard rc == 0 else {
            let e = Errno(-rc)
            let detail = BPFObject.summarize(LibBPFLog.takeWarnings())
            var reason = "bpf_object__load: \(e)"
            if e == .EPERM || e == .EACCES { reason += " (needs CAP_BPF and CAP_PERFMON)" }
            if !detail.isEmpty { reason += ": " + detail }
            throw OperationError("load", name, reason, errno: e)
        }
        isLoaded = true
    }

    /// The useful part of libbpf's warnings after a failed load: the last lines of the verifier log and the
    /// program that failed.
    static func summarize(_ warnings: [String]) -> String {
        var parts: [String] = []
        for warning in warnings {
            if let begin = warning.firstRange(of: "-- BEGIN PROG LOAD LOG --") {
                let log = warning[begin.upperBound...].split(separator: "\n").filter {
                    !$0.hasPrefix("-- END") && !$0.hasPrefix("processed ") && !$0.isEmpty
                }
                if let last = log.last { parts.append("verifier: " + last.trimmingSpaces) }
            } else if warning.contains("load failed") || warning.contains("failed to"),
                !warning.contains("failed to load")  // "failed to load: -22", "failed to load object": said already
            {
                parts.append(warning.replacingPrefix("libbpf: ").trimmingSpaces)
            }
        }
        return parts.suffix(3).joined(separator: "; ")
    }
}

/// A program of a `BPFObject` (not an owner: the object holds it).
public struct BPFProgram {
    let pointer: OpaquePointer
    let owner: BPFObject

    public var name: String { String(cString: bpf_program__name(pointer)) }
    /// The ELF section, e.g. `tp_btf/kfree_skb`.
    public var section: String { String(cString: bpf_program__section_name(pointer)) }
    /// The program's fd once loaded, else -1.
    public var fd: Int32 { bpf_program__fd(pointer) }

    /// Whether `load()` loads it (bpf_program__set_autoload); a hook the kernel lacks is switched off.
    public func setAutoload(_ autoload: Bool) {
        _ = bpf_program__set_autoload(pointer, autoload)
    }

    public var autoload: Bool { bpf_program__autoload(pointer) }

    /// Attaches by the section name (bpf_program__attach): tp_btf programs get a raw tracepoint link, owned
    /// by the returned value and by no pin.
    public func attach() throws(OperationError) -> BPFLink {
        errno = 0
        guard let link = bpf_program__attach(pointer) else {
            throw OperationError("attach", "\(name) (\(section))", call: "bpf_program__attach", errno: .current)
        }
        return BPFLink(pointer: link, name: name)
    }

    /// The kernel's id of the loaded program (bpf_obj_get_info_by_fd).
    public var info: bpf_prog_info? {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard fd >= 0, bpf_obj_get_info_by_fd(fd, &info, &length) == 0 else { return nil }
        return info
    }
}

/// A map of a `BPFObject` (not an owner).
public struct BPFMap {
    let pointer: OpaquePointer
    let owner: BPFObject

    public var name: String { String(cString: bpf_map__name(pointer)) }
    public var fd: Int32 { bpf_map__fd(pointer) }

    /// Sets the size before load (bpf_map__set_max_entries); for a ring buffer, bytes.
    public func setMaxEntries(_ count: UInt32) throws(OperationError) {
        let rc = bpf_map__set_max_entries(pointer, count)
        guard rc == 0 else { throw OperationError("configure", name, call: "bpf_map__set_max_entries", errno: Errno(-rc)) }
    }

    /// bpf_map_update_elem on the loaded map.
    public func update<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ key: Key, _ value: Value) throws(OperationError) {
        var key = key
        var value = value
        guard bpf_map_update_elem(fd, &key, &value, UInt64(BPF_ANY)) == 0 else {
            throw OperationError("configure", name, call: "bpf_map_update_elem", errno: .current)
        }
    }

    /// The per-CPU values of one key of a per-CPU array or hash, summed (bpf_map_lookup_elem fills one
    /// 8-byte-aligned slot per possible CPU).
    public func perCPUSum(_ key: UInt32) throws(OperationError) -> UInt64 {
        let cpus = Int(libbpf_num_possible_cpus())
        guard cpus > 0 else { throw OperationError("read", name, call: "libbpf_num_possible_cpus", errno: Errno(-Int32(cpus))) }
        var key = key
        var values = [UInt64](repeating: 0, count: cpus)
        guard bpf_map_lookup_elem(fd, &key, &values) == 0 else {
            throw OperationError("read", name, call: "bpf_map_lookup_elem", errno: .current)
        }
        return values.reduce(0, &+)
    }

    /// The kernel's id of the map.
    public var id: UInt32? {
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        guard fd >= 0, bpf_obj_get_info_by_fd(fd, &info, &length) == 0 else { return nil }
        return info.id
    }
}

/// An attachment owned by its file descriptor (bpf_link). Destroying it (`deinit`, or `detach()`) detaches
/// the program; so does the process's exit, even by SIGKILL, because nothing is pinned.
public final class BPFLink {
    private var pointer: OpaquePointer?
    public let name: String

    init(pointer: OpaquePointer, name: String) {
        self.pointer = pointer
        self.name = name
    }

    deinit { detach() }

    /// bpf_link__destroy: detaches and closes the link's fd.
    public func detach() {
        if let pointer { bpf_link__destroy(pointer) }
        pointer = nil
    }

    public var fd: Int32 { pointer.map { bpf_link__fd($0) } ?? -1 }

    /// The kernel's id of the link, while attached.
    public var id: UInt32? { BPFLink.id(ofLink: fd) }

    /// The id of a link descriptor (bpf_obj_get_info_by_fd).
    static func id(ofLink fd: Int32) -> UInt32? {
        var info = bpf_link_info()
        var length = UInt32(MemoryLayout<bpf_link_info>.size)
        guard fd >= 0, bpf_obj_get_info_by_fd(fd, &info, &length) == 0 else { return nil }
        return info.id
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }

    func replacingPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : String(self)
    }
}
