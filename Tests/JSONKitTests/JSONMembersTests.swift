import Testing

@testable import JSONKit

@Suite("streamed objects and embedded JSON")
struct JSONMembersTests {
    @Test func membersWriteTheSameDocumentAsAValue() throws {
        var compact: [UInt8] = []
        var o = JSONMembers(&compact)
        o.string("ifname", "eth\"0", &compact)
        o.number("ifindex", 2, &compact)
        o.raw("up", "true", &compact)
        o.member("nested", rendered: Array(#"{"a":[1,2]}"#.utf8), &compact)
        o.end(&compact)
        let value: JSON = .object([JSON.Member("ifname", "eth\"0"), JSON.Member("ifindex", 2), JSON.Member("up", true),
                                   JSON.Member("nested", .object([JSON.Member("a", [1, 2])]))])
        #expect(String(decoding: compact, as: UTF8.self) == value.serialized())
        #expect(try JSON.parse(compact) == value)

        var pretty: [UInt8] = []
        var p = JSONMembers(&pretty, pretty: true)
        p.string("ifname", "eth0", &pretty)
        p.number("ifindex", 2, &pretty)
        p.end(&pretty)
        #expect(String(decoding: pretty, as: UTF8.self) == "{\n  \"ifname\": \"eth0\",\n  \"ifindex\": 2\n}")
    }

    @Test func rawTextIsEmbeddedAsItIs() throws {
        let entry = Array(#"{"src":"10.0.0.1","sport":53}"#.utf8)
        let document: JSON = .object([JSON.Member("conntrack", .array([.raw(entry), .raw(entry)]))])
        let text = document.serialized()
        #expect(text == #"{"conntrack":[{"src":"10.0.0.1","sport":53},{"src":"10.0.0.1","sport":53}]}"#)
        #expect(try JSON.parse(Array(text.utf8))["conntrack"]?[1]?["sport"]?.intValue == 53)
    }

    @Test(arguments: [UInt64(0), 7, 10, 99, 100, 65535, 4_294_967_296, UInt64.max])
    func decimalsWithoutStrings(value: UInt64) {
        var out: [UInt8] = []
        out.appendDecimal(value)
        #expect(String(decoding: out, as: UTF8.self) == String(value))
    }
}
