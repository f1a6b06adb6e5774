#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport

@testable import NetAddress

/// The one IP address type, checked against glibc: every address prints exactly as inet_ntop prints it,
/// and every text inet_pton accepts parses to the same bytes (and what it refuses is refused).
@Suite("IP addresses against glibc")
struct IPAddressTests {
    typealias Random = SplitMix64

    static func ntop(_ bytes: [UInt8]) -> String {
        var text = [CChar](repeating: 0, count: 64)
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, 64) }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func pton(_ text: String) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 16)
        let v6 = text.contains(":")
        guard inet_pton(v6 ? AF_INET6 : AF_INET, text, &out) == 1 else { return nil }
        return Array(out.prefix(v6 ? 16 : 4))
    }

    /// Addresses whose text has a special form: zero runs of every length at every place, the embedded
    /// IPv4 forms (IPv4-compatible ::a.b.c.d, IPv4-mapped ::ffff:a.b.c.d) and their near misses.
    static var specials: [[UInt8]] {
        var out: [[UInt8]] = []
        for start in 0..<8 {
            for length in 0...(8 - start) {
                var groups = (0..<8).map { UInt16(0x1000 + $0) }
                for i in start..<(start + length) { groups[i] = 0 }
                out.append(groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] })
            }
        }
        let tails: [[UInt8]] = [[0, 1, 0, 0], [1, 2, 3, 4], [0, 0, 0, 1], [0, 0, 0, 0], [255, 255, 255, 255], [0, 0, 1, 0], [127, 0, 0, 1]]
        for tail in tails {
            out.append([UInt8](repeating: 0, count: 12) + tail)                                  // ::a.b.c.d
            out.append([UInt8](repeating: 0, count: 10) + [0xff, 0xff] + tail)                   // ::ffff:a.b.c.d
            out.append([UInt8](repeating: 0, count: 10) + [0xff, 0xfe] + tail)                   // not mapped
            out.append([UInt8](repeating: 0, count: 8) + [0, 0, 0xff, 0xff] + tail)              // mapped again
            out.append([0, 1] + [UInt8](repeating: 0, count: 8) + [0xff, 0xff] + tail)           // mapped, not from 0
            out.append([UInt8](repeating: 0, count: 10) + [0, 1] + tail)                         // ::1:a.b…
        }
        out.append([UInt8](repeating: 0, count: 16))
        out.append([UInt8](repeating: 0, count: 15) + [1])
        out.append([0xff, 0x02] + [UInt8](repeating: 0, count: 13) + [1])
        return out
    }

    @Test func everyAddressPrintsAsInetNtop() throws {
        var random = Random(state: 0x6e73_6e73)
        var samples = Self.specials
        for _ in 0..<20_000 {
            let a = random.next(), b = random.next(), shape = random.next()
            var bytes = (0..<16).map { UInt8(truncatingIfNeeded: ($0 < 8 ? a : b) >> UInt64(8 * ($0 % 8))) }
            // Zero some groups, so zero runs of every length come up often.
            for g in 0..<8 where (shape >> UInt64(g)) & 1 == 1 { bytes[2 * g] = 0; bytes[2 * g + 1] = 0 }
            samples.append(bytes)
            samples.append(Array(bytes.prefix(4)))
        }
        for bytes in samples {
            let address = try #require(IPAddress(bytes: bytes))
            #expect(address.description == Self.ntop(bytes), "\(bytes)")
            #expect(address.bytes == bytes)
            var appended: [UInt8] = []
            address.append(to: &appended)
            #expect(appended == Array(address.description.utf8))
            // Its own text parses back, as inet_pton parses it.
            #expect(IPAddress(address.description) == address, "\(address)")
            #expect(Self.pton(address.description) == bytes)
        }
    }

    @Test(arguments: [
        "1.2.3.4", "0.0.0.0", "255.255.255.255", "::", "::1", "1::", "fe80::1", "2001:db8::8:800:200c:417a",
        "::ffff:1.2.3.4", "::1.2.3.4", "0:0:0:0:0:ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4", "::0.1.0.0",
        "FE80::1", "1::2:3", "1:0:0:2::3",
        // refused by both
        "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.-1", "01.2.3.4", "1.2.3.04", "", ":", ":::", "1::2::3", "12345::",
        "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "::1.2.3", "1.2.3.4::", "::ffff:256.1.1.1", "g::1", " 1.2.3.4", "1.2.3.4 ",
        "1:2:3:4:5:6:7:1.2.3.4", "::1:2:3:4:5:6:7:8",
    ])
    func parsesWhatInetPtonParses(text: String) {
        let ours = IPAddress(text)
        let theirs = Self.pton(text)
        #expect(ours?.bytes == theirs, "\(text): ours \(ours?.description ?? "nil"), inet_pton \(theirs.map { Self.ntop($0) } ?? "nil")")
    }

    @Test func orderAndFamilies() throws {
        let v4 = try #require(IPAddress("10.0.0.1")), v4b = try #require(IPAddress("10.0.0.2"))
        let v6 = try #require(IPAddress("::1")), mapped = try #require(IPAddress("::ffff:10.0.0.1"))
        #expect(v4 < v4b && v4b < v6 && v6 < mapped)
        #expect(v4.family == .v4 && v4.version == 4 && mapped.family == .v6 && mapped.version == 6)
        #expect(v4 != mapped, "an IPv4 address and its IPv4-mapped form are different addresses")
        #expect(v4.v4Value == 0x0a00_0001 && v6.v4Value == nil)
        #expect(IPAddress(high: UInt64.max, low: UInt64.max, family: .v4) == IPAddress("255.255.255.255"))
    }
}
