#if canImport(Glibc)
import Glibc
#endif
import JSONKit
import ProcNS

/// Where command output goes: stdout for results, stderr for warnings and errors (docs/design.md).
enum Output {
    /// Colour only on a terminal, and never when NO_COLOR is set.
    static let colorEnabled: Bool = isatty(1) == 1 && getenv("NO_COLOR") == nil

    static func write(_ text: String) {
        var text = text
        text.withUTF8 { buffer in writeAll(1, buffer) }
    }

    static func line(_ text: String = "") { write(text + "\n") }

    static func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { writeAll(1, $0) }
    }

    static func warn(_ text: String) {
        var line = text + "\n"
        line.withUTF8 { buffer in writeAll(2, buffer) }
    }

    /// JSON is indented for a person at a terminal and compact for a program reading a pipe, as `ip -j`
    /// is compact unless asked (`-p`).
    static let prettyJSON: Bool = isatty(1) == 1

    /// Text on stderr without a newline (progress lines).
    static func warnRaw(_ text: String) {
        var text = text
        text.withUTF8 { buffer in writeAll(2, buffer) }
    }

    static func json(_ value: JSON, pretty: Bool = Output.prettyJSON) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(1 << 16)
        value.write(into: &bytes, pretty: pretty)
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeBufferPointer { writeAll(1, UnsafeBufferPointer(start: $0.baseAddress, count: $0.count)) }
    }

    /// Writes a JSON object member by member, so a large document (`dump` of a thousand namespaces) is
    /// never held in memory whole.
    ///
    /// Members are gathered into 64 KiB writes: a write(2) per namespace was two thousand system calls
    /// for a thousand namespaces.
    struct JSONObjectStream {
        private var members: JSONMembers
        private let pretty: Bool
        private var pending: [UInt8] = []
        /// Where the bytes go: stdout, or a snapshot's file or buffer.
        private let sink: ([UInt8]) -> Void

        init(pretty: Bool = Output.prettyJSON, sink: @escaping ([UInt8]) -> Void = { Output.write($0) }) {
            pending.reserveCapacity(Self.chunk)
            members = JSONMembers(&pending, pretty: pretty)
            self.pretty = pretty
            self.sink = sink
        }

        private static let chunk = 64 << 10

        mutating func member(_ key: String, _ value: JSON) {
            members.key(key, &pending)
            value.write(into: &pending, pretty: pretty, depth: 1)
            flushIfFull()
        }

        /// A member whose value was already serialised (at depth 1): the key, then the value as it is.
        mutating func member(_ key: String, rendered value: [UInt8]) {
            members.key(key, &pending)
            pending.append(contentsOf: value)
            flushIfFull()
        }

        private mutating func flushIfFull() {
            guard pending.count >= Self.chunk else { return }
            sink(pending)
            pending.removeAll(keepingCapacity: true)
        }

        mutating func end() {
            members.end(&pending)
            pending.append(UInt8(ascii: "\n"))
            sink(pending)
            pending.removeAll()
        }
    }

    /// Writes all of `buffer`; the error that stopped it, if any. Output to stdout ignores it (EPIPE:
    /// the reader left early, e.g. `| head`, and there is nothing left to do); a snapshot file does not.
    @discardableResult
    static func writeAll(_ fd: Int32, _ buffer: UnsafeBufferPointer<UInt8>) -> Errno? {
        var offset = 0
        while offset < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return .current
            }
            offset += n
        }
        return nil
    }

    enum Style: String {
        case bold = "1"
        case dim = "2"
        case red = "31"
        case green = "32"
        case yellow = "33"
        case cyan = "36"
    }

    static func styled(_ text: String, _ style: Style) -> String {
        colorEnabled ? "\u{1B}[\(style.rawValue)m\(text)\u{1B}[0m" : text
    }
}

/// A table for people: a header row and left-aligned columns separated by two spaces; the last column
/// is not padded. Width counts Unicode scalars, which is right for the names and addresses shown here.
struct Table {
    var headers: [String]
    var rows: [[String]] = []

    init(_ headers: String...) { self.headers = headers }
    init(headers: [String]) { self.headers = headers }

    mutating func add(_ cells: [String]) { rows.append(cells) }
    mutating func add(_ cells: String...) { rows.append(cells) }

    /// Display width: bytes for ASCII (the common case, counted without decoding), scalars otherwise.
    private static func width(_ s: String) -> Int {
        let utf8 = s.utf8
        let ascii = utf8.withContiguousStorageIfAvailable { $0.allSatisfy { $0 < 0x80 } } ?? utf8.allSatisfy { $0 < 0x80 }
        return ascii ? utf8.count : s.unicodeScalars.count
    }

    func render() -> String {
        var widths = headers.map(Table.width)
        var cellWidths: [[Int]] = []
        cellWidths.reserveCapacity(rows.count)
        for row in rows {
            let w = row.map(Table.width)
            for (i, cell) in w.enumerated() where i < widths.count { widths[i] = max(widths[i], cell) }
            cellWidths.append(w)
        }
        var out: [UInt8] = []
        out.reserveCapacity((widths.reduce(0, +) + 2 * widths.count + 1) * (rows.count + 1))
        // Padding is copied from one run of spaces (appending a repeated element goes byte by byte).
        let spaces = [UInt8](repeating: UInt8(ascii: " "), count: (widths.max() ?? 0) + 2)
        func emit(_ cells: [String], _ cellWidth: [Int]) {
            var lineEnd = out.count
            for (i, cell) in cells.enumerated() {
                out.append(contentsOf: cell.utf8)
                if !cell.isEmpty { lineEnd = out.count }
                if i < cells.count - 1 {
                    out.append(contentsOf: spaces[0..<(max(0, widths[i] - cellWidth[i]) + 2)])
                }
            }
            out.removeSubrange(lineEnd...)
            out.append(UInt8(ascii: "\n"))
        }
        if Output.colorEnabled {
            out.append(contentsOf: "\u{1B}[1m".utf8)
            emit(headers, headers.map(Table.width))
            out.removeLast()
            out.append(contentsOf: "\u{1B}[0m\n".utf8)
        } else {
            emit(headers, headers.map(Table.width))
        }
        for (row, w) in zip(rows, cellWidths) { emit(row, w) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Output written in large pieces: a conntrack table of a hundred thousand entries, or a passive trace
/// of a ping flood, is one write(2) per 64 KiB instead of one per line.
struct OutputBuffer {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(80 << 10) }

    mutating func append(_ text: String) { bytes.append(contentsOf: text.utf8) }

    mutating func flushIfFull() { if bytes.count >= 64 << 10 { flush() } }

    mutating func flush() {
        guard !bytes.isEmpty else { return }
        Output.write(bytes)
        bytes.removeAll(keepingCapacity: true)
    }
}
