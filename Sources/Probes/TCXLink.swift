#if canImport(Glibc)
import Glibc
#endif
import CBPF
import ProcNS

/// A tc program attached to one interface of a network namespace through a tcx link (Linux 6.6): made with
/// bpf_link_create(prog_fd, ifindex, BPF_TCX_INGRESS or BPF_TCX_EGRESS) on a thread inside the interface's
/// namespace, since an ifindex means something only there. The link is owned by its file descriptor:
/// closing it (`detach()`, `deinit`) or the process's exit, even by SIGKILL, removes it. Never a classic tc
/// filter, which would outlive the process.
public final class TCXLink {
    public enum Direction: UInt32, Sendable, CustomStringConvertible {
        case ingress = 46  // BPF_TCX_INGRESS (not in the 6.1 uapi headers libbpf 1.1 builds against)
        case egress = 47   // BPF_TCX_EGRESS

        public var description: String { self == .ingress ? "ingress" : "egress" }
    }

    public let interface: String
    public let ifindex: UInt32
    public let direction: Direction
    private var fd: Int32

    /// Attaches `program` (a loaded SEC("tc") program) to `interface` in `namespace`. Needs CAP_NET_ADMIN
    /// besides CAP_BPF.
    public init(program: BPFProgram, interface: String, direction: Direction, in namespace: NamespaceHandle)
        throws(OperationError)
    {
        let object = "\(interface) \(direction) in \(namespace.origin)"
        try Capability.require([.netAdmin, .bpf], for: "attach", object: object)
        guard program.fd >= 0 else { throw OperationError("attach", object, "\(program.name) is not loaded") }
        let result: Result<(UInt32, Int32), OperationError>
        do {
            result = try NamespaceThread.run(in: namespace) { () -> Result<(UInt32, Int32), OperationError> in
                let ifindex = if_nametoindex(interface)
                guard ifindex != 0 else {
                    return .failure(OperationError("attach", object, "no such interface", errno: .current))
                }
                let fd = bpf_link_create(program.fd, Int32(ifindex), bpf_attach_type(rawValue: direction.rawValue), nil)
                guard fd >= 0 else {
                    return .failure(OperationError("attach", object, call: "bpf_link_create", errno: Errno(-fd)))
                }
                return .success((ifindex, fd))
            }
        } catch let error as OperationError {
            throw error
        } catch {
            throw OperationError("attach", object, "\(error)")
        }
        (ifindex, fd) = try result.get()
        self.interface = interface
        self.direction = direction
    }

    deinit { detach() }

    /// Closes the link's descriptor, which detaches the program.
    public func detach() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// The kernel's id of the link, while attached.
    public var id: UInt32? { BPFLink.id(ofLink: fd) }
}
