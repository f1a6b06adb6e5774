#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ProcNS
import Testing

@testable import Probes

/// Records exactly as the BPF programs wrote them into the ring buffer — an ICMP echo request and its
/// reply between two namespaces, each seen by the transmit and the receive hook — decoded by the Swift
/// decoder. The other decoder tests build `struct nsi_event` through the same C header the decoder
/// reads, so a layout the BPF side writes differently could not show there; these bytes come from the
/// kernel.
///
/// Captured with `NSINSPECT_CAPTURE_FIXTURES=1 swift test --filter RingBufferFixtureTests` (root): the
/// capture writes Fixtures/events-echo.hex, one record per line, and `# ` comment lines with what the
/// record is known to hold (the capture's namespaces are called a and b there, by inode).
@Suite("ring buffer records from the kernel")
struct RingBufferFixtureTests {
    static let file = "events-echo.hex"

    static var fixturePath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(file)").path
    }

    /// What each captured record is: hook, namespace (a or b), interface, ICMP type, TTL.
    struct Expectation: Equatable {
        var hook: String, netns: String, ifname: String, icmpType: Int, ttl: Int
    }

    static func load() throws -> (records: [[UInt8]], expected: [Expectation], header: [String: String]) {
        let text = try String(contentsOfFile: fixturePath, encoding: .utf8)
        var records: [[UInt8]] = [], expected: [Expectation] = [], header: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if line.hasPrefix("## ") {
                let parts = line.dropFirst(3).split(separator: "=", maxSplits: 1)
                if parts.count == 2 { header[String(parts[0])] = String(parts[1]) }
            } else if line.hasPrefix("# ") {
                let f = line.dropFirst(2).split(separator: " ").map(String.init)
                expected.append(Expectation(hook: f[0], netns: f[1], ifname: f[2], icmpType: Int(f[3])!, ttl: Int(f[4])!))
            } else {
                var bytes: [UInt8] = []
                var i = line.startIndex
                while i < line.endIndex {
                    let j = line.index(i, offsetBy: 2)
                    bytes.append(UInt8(line[i..<j], radix: 16)!)
                    i = j
                }
                records.append(bytes)
            }
        }
        return (records, expected, header)
    }

    @Test func kernelWrittenRecordsDecodeToWhatTheyHeld() throws {
        let (records, expected, header) = try Self.load()
        #expect(records.count == expected.count && records.count >= 4)
        let inodes = ["a": UInt32(header["a"]!)!, "b": UInt32(header["b"]!)!]
        let id = UInt16(header["id"]!)!
        for (bytes, want) in zip(records, expected) {
            let event = try PacketEvent(decoding: bytes)
            #expect("\(event.hook)" == want.hook)
            #expect(event.netns == inodes[want.netns], "\(want)")
            #expect(event.ifname == want.ifname)
            let p = try #require(event.packet, "\(want)")
            #expect(Int(p.icmpType) == want.icmpType)
            #expect(Int(p.ttl) == want.ttl)
            #expect(p.icmpID == id && p.icmpSequence == 1)
            let ends = [p.source.description, p.destination.description]
            #expect(ends == (want.icmpType == 8 ? [header["addrA"]!, header["addrB"]!] : [header["addrB"]!, header["addrA"]!]))
            // The packet bytes the record carries are that packet: IPv4, ICMP, the same id.
            #expect(event.snapshot.first == 0x45 && event.snapshot.count >= 28)
            #expect(UInt16(event.snapshot[24]) << 8 | UInt16(event.snapshot[25]) == id)
        }
        // Every record is exactly a header and its snap length, as bpf_ringbuf_output wrote it.
        for bytes in records { #expect(bytes.count == PacketEvent.headerSize + (try PacketEvent(decoding: bytes)).snapshot.count) }
    }

    @Test(.enabled(if: getenv("NSINSPECT_CAPTURE_FIXTURES").map { String(cString: $0) } == "1", "set NSINSPECT_CAPTURE_FIXTURES=1 (as root) to capture again"))
    func capture() throws {
        let network = try TestNetwork()
        defer { network.remove() }
        let id = randomID()
        let session = try ProbeSession(.init(filter: TraceFilter(namespaces: [network.inodeA, network.inodeB], match: .icmpEcho(id: id)),
                                             hooks: [.transmit, .receive]))
        defer { session.close() }
        try ProbeSocket.icmp(in: network.a).sendEcho(to: network.addressB, id: id, sequence: 1)
        var lines: [String] = ["## a=\(network.inodeA)", "## b=\(network.inodeB)", "## id=\(id)",
                               "## addrA=\(network.addressA)", "## addrB=\(network.addressB)"]
        let deadline = Stopwatch.now() + 3_000_000_000
        var seen = 0
        while seen < 4 && Stopwatch.now() < deadline {
            _ = try session.pollRecords(timeoutMilliseconds: 50) { record in
                guard let event = try? PacketEvent(decoding: record), let p = event.packet else { return }
                let netns = event.netns == network.inodeA ? "a" : "b"
                lines.append("# \(event.hook) \(netns) \(event.ifname) \(p.icmpType) \(p.ttl)")
                lines.append(record.map { String(format: "%02x", $0) }.joined())
                seen += 1
            }
        }
        try #require(seen >= 4, "captured \(seen) records")
        try (lines.joined(separator: "\n") + "\n").write(toFile: Self.fixturePath, atomically: true, encoding: .utf8)
    }
}
