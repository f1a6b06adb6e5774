/// One nsfs bind mount read from /proc/PID/mountinfo: a namespace held by a file somewhere in the tree.
public struct NSFSMount: Hashable, Sendable {
    /// The namespace inode from the mount's root field (`net:[4026532178]`).
    public let inode: UInt64
    /// Where it is mounted, relative to the root of the mount namespace it was read from.
    public let mountPoint: String
}

/// Parser for /proc/PID/mountinfo (proc(5)). Pure: bytes in, values out.
public enum MountInfo {
    /// The nsfs mounts of network namespaces in a mountinfo text:
    /// `543 29 0:4 net:[4026532278] /run/netns/lab rw,shared:285 - nsfs nsfs rw`.
    /// Lines that are malformed or of other filesystems are skipped. A path mounted more than once keeps
    /// only its last (topmost) mount, which is the one a lookup of that path reaches.
    public static func networkNamespaceMounts(_ text: [UInt8]) -> [NSFSMount] {
        var result: [NSFSMount] = []
        var indexByPoint: [String: Int] = [:]
        var lineStart = 0
        let count = text.count
        while lineStart < count {
            var lineEnd = lineStart
            while lineEnd < count, text[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            if let mount = parseLine(text[lineStart..<lineEnd]) {
                if let i = indexByPoint[mount.mountPoint] {
                    result[i] = mount
                } else {
                    indexByPoint[mount.mountPoint] = result.count
                    result.append(mount)
                }
            }
            lineStart = lineEnd + 1
        }
        return result
    }

    /// The nsfs mounts of network namespaces in the caller's own mount namespace (/proc/self/mountinfo);
    /// empty if it cannot be read.
    public static func ownNetworkNamespaceMounts() -> [NSFSMount] {
        guard case .success(let text) = Sys.readFile("/proc/self/mountinfo") else { return [] }
        return networkNamespaceMounts(text)
    }

    /// Walks a line's space-separated fields (without collecting them: mountinfo can have thousands of
    /// lines) and returns the mount if it is an nsfs mount of a network namespace.
    static func parseLine(_ line: ArraySlice<UInt8>) -> NSFSMount? {
        // Fields: id parent major:minor root mountpoint options [optional...] - fstype source superopts
        var index = 0
        var root: Range<Int>?
        var mountPoint: Range<Int>?
        var afterSeparator = false
        var start = line.startIndex
        var i = line.startIndex
        while i <= line.endIndex {
            if i == line.endIndex || line[i] == UInt8(ascii: " ") {
                if i > start {
                    let field = start..<i
                    if afterSeparator {
                        guard line[field].elementsEqual("nsfs".utf8), let root, let mountPoint,
                            let inode = NamespaceID.inode(fromLink: line[root])
                        else { return nil }
                        return NSFSMount(inode: inode, mountPoint: unescape(line[mountPoint]))
                    }
                    switch index {
                    case 3: root = field
                    case 4: mountPoint = field
                    case 6...: afterSeparator = field.count == 1 && line[field.lowerBound] == UInt8(ascii: "-")
                    default: break
                    }
                    index += 1
                }
                start = i + 1
            }
            i += 1
        }
        return nil
    }

    /// Undoes the octal escapes mountinfo uses for space, tab, newline and backslash (`\040`).
    static func unescape(_ field: ArraySlice<UInt8>) -> String {
        guard field.contains(UInt8(ascii: "\\")) else { return String(decoding: field, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(field.count)
        var i = field.startIndex
        while i < field.endIndex {
            if field[i] == UInt8(ascii: "\\"), i + 3 < field.endIndex,
                let value = octal(field[(i + 1)...(i + 3)])
            {
                out.append(value)
                i += 4
            } else {
                out.append(field[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func octal(_ digits: ArraySlice<UInt8>) -> UInt8? {
        var value: UInt16 = 0
        for d in digits {
            guard d >= UInt8(ascii: "0"), d <= UInt8(ascii: "7") else { return nil }
            value = value * 8 + UInt16(d - UInt8(ascii: "0"))
        }
        return value <= 255 ? UInt8(value) : nil
    }
}
