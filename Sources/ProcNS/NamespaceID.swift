/// The identity of a namespace: the nsfs `(st_dev, st_ino)` of its file (docs/design.md). Inodes can be
/// reused after a namespace dies; the cookie (`NamespaceHandle.cookie`) never is.
public struct NamespaceID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let device: UInt64
    public let inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    public static func < (a: NamespaceID, b: NamespaceID) -> Bool {
        (a.device, a.inode) < (b.device, b.inode)
    }

    /// `net:[4026532178]`, the form readlink(2) of /proc/PID/ns/net and lsns use.
    public var description: String { "net:[\(inode)]" }

    /// The inode in a namespace link text such as `net:[4026532178]` (readlink of /proc/PID/ns/net, of an
    /// fd, or the root field of an nsfs line in mountinfo); nil for other text or another namespace type.
    public static func inode(fromLink text: String, type: String = "net") -> UInt64? {
        inode(fromLink: Array(text.utf8)[...], type: type)
    }

    static func inode(fromLink bytes: ArraySlice<UInt8>, type: String = "net") -> UInt64? {
        let prefix = Array(type.utf8) + [UInt8(ascii: ":"), UInt8(ascii: "[")]
        guard bytes.count > prefix.count + 1, bytes.starts(with: prefix), bytes.last == UInt8(ascii: "]") else {
            return nil
        }
        return parseDecimal(bytes[(bytes.startIndex + prefix.count)..<(bytes.endIndex - 1)])
    }
}
