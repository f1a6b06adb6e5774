#if canImport(Glibc)
import Glibc
#endif
import ProcNS

/// Writes pcapng (draft-ietf-opsawg-pcapng): one section, one interface block per namespace/interface
/// pair (named `NAMESPACE/IFNAME`, link type RAW: packets start at the IP header, as the probes capture
/// them), and an enhanced packet block per captured packet with a comment saying where it was seen.
/// Timestamps are in nanoseconds (if_tsresol 9).
public final class PcapngWriter {
    private let fd: Int32
    private var interfaces: [String: UInt32] = [:]
    public let path: String

    /// Creates (or truncates) the file and writes the section header.
    public init(path: String) throws(OperationError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OperationError("trace", path, call: "open", errno: .current) }
        var body: [UInt8] = []
        body.le32(0x1A2B_3C4D)
        body.le16(1); body.le16(0)
        body.le64(UInt64.max)  // section length unknown
        body.option(4, Array("nsinspect".utf8))  // shb_userappl
        body.endOptions()
        try write(block: 0x0A0D_0D0A, body)
    }

    deinit { close(fd) }

    /// The interface id for a namespace/interface pair, writing its block the first time.
    public func interface(namespace: String, ifname: String, inode: UInt32) throws(OperationError) -> UInt32 {
        let key = "\(namespace)/\(ifname)"
        if let id = interfaces[key] { return id }
        var body: [UInt8] = []
        body.le16(101)  // LINKTYPE_RAW
        body.le16(0)
        body.le32(0)    // no snap length limit
        body.option(2, Array(key.utf8))  // if_name
        body.option(3, Array("interface \(ifname) in network namespace \(namespace) (net:[\(inode)])".utf8))  // if_description
        body.option(9, [9])  // if_tsresol: 10^-9
        body.endOptions()
        try write(block: 1, body)
        let id = UInt32(interfaces.count)
        interfaces[key] = id
        return id
    }

    /// One packet: `data` from the IP header, `originalLength` its length on the wire, a comment.
    public func packet(interface: UInt32, timestamp: UInt64, data: [UInt8], originalLength: UInt32, comment: String) throws(OperationError) {
        var body: [UInt8] = []
        body.le32(interface)
        body.le32(UInt32(truncatingIfNeeded: timestamp >> 32))
        body.le32(UInt32(truncatingIfNeeded: timestamp))
        body.le32(UInt32(data.count))
        body.le32(max(originalLength, UInt32(data.count)))
        body += data
        body.pad4()
        body.option(1, Array(comment.utf8))  // opt_comment
        body.endOptions()
        try write(block: 6, body)
    }

    private func write(block type: UInt32, _ body: [UInt8]) throws(OperationError) {
        var block: [UInt8] = []
        let total = UInt32(12 + body.count)
        block.le32(type); block.le32(total)
        block += body
        block.le32(total)
        let written = block.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == block.count else { throw OperationError("trace", path, call: "write", errno: .current) }
    }
}

extension Array where Element == UInt8 {
    fileprivate mutating func le16(_ v: UInt16) { append(UInt8(v & 0xff)); append(UInt8(v >> 8)) }
    fileprivate mutating func le32(_ v: UInt32) { for s in stride(from: 0, to: 32, by: 8) { append(UInt8((v >> UInt32(s)) & 0xff)) } }
    fileprivate mutating func le64(_ v: UInt64) { for s in stride(from: 0, to: 64, by: 8) { append(UInt8((v >> UInt64(s)) & 0xff)) } }
    fileprivate mutating func pad4() { while count % 4 != 0 { append(0) } }
    fileprivate mutating func option(_ code: UInt16, _ value: [UInt8]) {
        le16(code); le16(UInt16(value.count))
        self += value
        pad4()
    }
    fileprivate mutating func endOptions() { le16(0); le16(0) }
}
