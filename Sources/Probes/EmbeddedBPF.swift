import ProcNS

/// The BPF objects compiled from bpf/*.bpf.c at build time. BPFPlugin generates one extension per program
/// (`EmbeddedBPF.trace` from bpf/trace.bpf.c) holding the stripped ELF object as base64.
enum EmbeddedBPF {
    /// The ELF bytes of an embedded object.
    static func object(_ literal: StaticString) throws(OperationError) -> [UInt8] {
        guard let bytes = literal.withUTF8Buffer({ Base64.decode($0) }) else {
            throw OperationError("load", "embedded BPF object", "corrupt base64 (rebuild the package)")
        }
        return bytes
    }
}
