import Testing
@testable import JSONKit

@Suite("JSON")
struct JSONTests {
    @Test func keepsMemberOrder() {
        var o = JSONObjectBuilder()
        o.add("ifindex", 2)
        o.add("ifname", "eth0")
        o.add("absent", nil as String?)
        o.add("flags", strings: ["UP", "LOWER_UP"])
        #expect(o.json.serialized() == #"{"ifindex":2,"ifname":"eth0","flags":["UP","LOWER_UP"]}"#)
    }

    @Test func escapesStrings() throws {
        let value = JSON.string("a\"b\\c\nd\te\u{1}f\u{7f}é")
        #expect(value.serialized() == #""a\"b\\c\nd\te\u0001f\u007fé""#)
        #expect(try JSON.parse(value.serialized()) == value)
    }

    @Test func parsesWhatItWrites() throws {
        let doc: JSON = .object([
            .init("n", .int(-42)), .init("d", .double(1.5)), .init("t", true), .init("z", .null),
            .init("a", [1, "x", [.object([])]]), .init("big", .int(Int64.max)),
        ])
        #expect(try JSON.parse(doc.serialized()) == doc)
        #expect(try JSON.parse(doc.serialized(pretty: true)) == doc)
    }

    @Test func parsesUnicodeEscapes() throws {
        #expect(try JSON.parse(#""\u00e9\ud83d\ude00\/""#) == .string("é😀/"))
        #expect(try JSON.parse("  [ 1 , 2.5e1 , -0 ] ") == .array([.int(1), .double(25), .int(0)]))
    }

    @Test func lookups() throws {
        let doc = try JSON.parse(#"{"a":{"b":[10,{"c":"x"}]}}"#)
        #expect(doc["a"]?["b"]?[1]?["c"]?.stringValue == "x")
        #expect(doc["a"]?["b"]?[0]?.intValue == 10)
        #expect(doc["missing"] == nil)
        #expect(doc["a"]?["b"]?[5] == nil)
    }

    @Test(arguments: [
        ("", 0), ("[1,", 3), ("{\"a\" 1}", 5), ("[1 2]", 3), ("\"abc", 4), ("tru", 3), ("[01x]", 3),
        ("{\"a\":1}x", 7), ("\"\\q\"", 3), ("\"\\u12\"", 3), ("-", 1), ("\"a\u{1}\"", 3),
    ])
    func rejectsMalformedInputWithItsOffset(_ text: String, _ offset: Int) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
        do { _ = try JSON.parse(text) } catch { #expect(error.offset == offset, "\(text): \(error)") }
    }

    @Test func limitsNesting() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
    }
}
