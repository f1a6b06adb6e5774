/// A base64 decoder (RFC 4648, standard alphabet, `=` padding), for what the build embeds (BPF objects,
/// `serve`'s page): Foundation stays out of the modules.
public enum Base64 {
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (index, char) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(char)] = UInt8(index)
        }
        return table
    }()

    /// The decoded bytes, or nil when `text` is not base64 (a wrong character, a wrong length or padding).
    public static func decode(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var padding = 0
        if text.count >= 1, text[text.count - 1] == UInt8(ascii: "=") { padding += 1 }
        if text.count >= 2, text[text.count - 2] == UInt8(ascii: "=") { padding += 1 }
        var out = [UInt8]()
        out.reserveCapacity(text.count / 4 * 3)
        var index = 0
        while index < text.count {
            let last = index + 4 == text.count
            var quad: UInt32 = 0
            for k in 0..<4 {
                let char = text[index + k]
                let value: UInt8
                if last && k >= 4 - padding {
                    value = 0
                } else {
                    value = values[Int(char)]
                    if value == 0xff { return nil }
                }
                quad = quad << 6 | UInt32(value)
            }
            out.append(UInt8(truncatingIfNeeded: quad >> 16))
            if !(last && padding == 2) { out.append(UInt8(truncatingIfNeeded: quad >> 8)) }
            if !(last && padding >= 1) { out.append(UInt8(truncatingIfNeeded: quad)) }
            index += 4
        }
        return out
    }
}
