import ProcNS

/// Netlink message types and flags used across the module (linux/netlink.h, linux/rtnetlink.h).
/// `RTM_*` import from C as plain integers; naming them here keeps the decoders readable.
public enum NLMsg {
    public static let noop: UInt16 = 1
    public static let error: UInt16 = 2
    public static let done: UInt16 = 3
    public static let overrun: UInt16 = 4

    public static let request: UInt16 = 0x1
    public static let multi: UInt16 = 0x2
    public static let ack: UInt16 = 0x4
    public static let dumpInterrupted: UInt16 = 0x10
    public static let dump: UInt16 = 0x300
    public static let capped: UInt16 = 0x100
    public static let ackTLVs: UInt16 = 0x200
    // NLM_F_* for new requests.
    public static let replace: UInt16 = 0x100
    public static let exclusive: UInt16 = 0x200
    public static let create: UInt16 = 0x400
    public static let append: UInt16 = 0x800

    public static let headerSize = 16
}

/// One netlink message: its header and the payload that follows it (a slice of the receive buffer).
public struct NetlinkMessage: Sendable {
    public let type: UInt16
    public let flags: UInt16
    public let sequence: UInt32
    public let portID: UInt32
    public let payload: ArraySlice<UInt8>

    public init(type: UInt16, flags: UInt16, sequence: UInt32, portID: UInt32, payload: ArraySlice<UInt8>) {
        self.type = type
        self.flags = flags
        self.sequence = sequence
        self.portID = portID
        self.payload = payload
    }

    /// Splits a datagram into messages. Every length is checked against what is left, so a truncated or
    /// corrupted buffer is an error, never an out-of-bounds read or an endless loop.
    public static func split(_ bytes: ArraySlice<UInt8>) throws(DecodeError) -> [NetlinkMessage] {
        var messages: [NetlinkMessage] = []
        var at = bytes.startIndex
        while at < bytes.endIndex {
            guard bytes.endIndex - at >= NLMsg.headerSize, let length = bytes.hostU32(at) else {
                throw DecodeError("truncated message header", at: at - bytes.startIndex)
            }
            guard length >= UInt32(NLMsg.headerSize), Int(length) <= bytes.endIndex - at else {
                throw DecodeError("message length \(length) outside the \(bytes.endIndex - at) bytes left", at: at - bytes.startIndex)
            }
            let message = NetlinkMessage(
                type: bytes.hostU16(at + 4)!, flags: bytes.hostU16(at + 6)!,
                sequence: bytes.hostU32(at + 8)!, portID: bytes.hostU32(at + 12)!,
                payload: bytes[(at + NLMsg.headerSize)..<(at + Int(length))])
            messages.append(message)
            at += align4(Int(length))
        }
        return messages
    }
}

/// A kernel error answer (NLMSG_ERROR with a negative code, or a failed dump's NLMSG_DONE), with the
/// extended-ack text the kernel attached (NETLINK_EXT_ACK).
public struct NetlinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The request that failed, e.g. `RTM_NEWROUTE`.
    public let request: String
    public let errno: Int32
    /// NLMSGERR_ATTR_MSG, e.g. "Nexthop has invalid gateway".
    public let message: String?
    /// NLMSGERR_ATTR_OFFS: the offset of the offending attribute in the request.
    public let attributeOffset: UInt32?

    public init(request: String, errno: Int32, message: String? = nil, attributeOffset: UInt32? = nil) {
        self.request = request
        self.errno = errno
        self.message = message
        self.attributeOffset = attributeOffset
    }

    public var errnoDescription: String { Errno(errno).description }

    public var description: String {
        var text = "\(request): \(errnoDescription)"
        if let message, !message.isEmpty { text += " (\(message))" }
        return text
    }

    /// Decodes the payload of NLMSG_ERROR: int error, the original header (and payload unless
    /// NLM_F_CAPPED), then extended-ack attributes when NLM_F_ACK_TLVS is set. Returns nil for an ACK.
    public static func decode(_ message: NetlinkMessage, request: String) throws(DecodeError) -> NetlinkError? {
        let p = message.payload
        guard let raw = p.hostU32(p.startIndex) else { throw DecodeError("truncated error message", at: 0) }
        let code = Int32(bitPattern: raw)
        if code == 0 { return nil }
        // Wrapping negation: a corrupted code of Int32.min must not trap.
        let errno = 0 &- code
        var tlvStart = p.startIndex + 4
        if message.type == NLMsg.error {
            guard let originalLength = p.hostU32(p.startIndex + 4) else {
                return NetlinkError(request: request, errno: errno)
            }
            let copied = message.flags & NLMsg.capped != 0 ? NLMsg.headerSize : Int(originalLength)
            tlvStart = p.startIndex + 4 + align4(copied)
        }
        var text: String?
        var offset: UInt32?
        if message.flags & NLMsg.ackTLVs != 0, tlvStart < p.endIndex {
            let attributes = try Attributes.parse(p[tlvStart...])
            text = attributes.string(1)
            offset = try attributes.u32(2)
        }
        return NetlinkError(request: request, errno: errno, message: text, attributeOffset: offset)
    }
}
