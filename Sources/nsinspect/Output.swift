#if canImport(Glibc)
import Glibc
#endif
import JSONKit

/// Where command output goes: stdout for results, stderr for warnings and errors (DESIGN.md §4).
enum Output {
    /// Colour only on a terminal, and never when NO_COLOR is set.
    static let colorEnabled: Bool = isatty(1) == 1 && getenv("NO_COLOR") == nil

    static func write(_ text: String) {
        var text = text
        text.withUTF8 { buffer in writeAll(1, buffer) }
    }

    static func line(_ text: String = "") { write(text + "\n") }

    static func warn(_ text: String) {
        var line = text + "\n"
        line.withUTF8 { buffer in writeAll(2, buffer) }
    }

    static func json(_ value: JSON, pretty: Bool = true) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(1 << 16)
        value.write(into: &bytes, pretty: pretty)
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeBufferPointer { writeAll(1, UnsafeBufferPointer(start: $0.baseAddress, count: $0.count)) }
    }

    private static func writeAll(_ fd: Int32, _ buffer: UnsafeBufferPointer<UInt8>) {
        var offset = 0
        while offset < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return // EPIPE (output closed early, e.g. `| head`): nothing left to do
            }
            offset += n
        }
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

    func render() -> String {
        var widths = headers.map { $0.unicodeScalars.count }
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count {
                widths[i] = max(widths[i], cell.unicodeScalars.count)
            }
        }
        var out = ""
        func emit(_ cells: [String], header: Bool) {
            var line = ""
            for (i, cell) in cells.enumerated() {
                let last = i == cells.count - 1
                let padded = last ? cell : cell + String(repeating: " ", count: max(0, widths[i] - cell.unicodeScalars.count) + 2)
                line += padded
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += (header ? Output.styled(line, .bold) : line) + "\n"
        }
        emit(headers, header: true)
        for row in rows { emit(row, header: false) }
        return out
    }
}
