import Netlink
import Testing
import TestSupport

/// Bad input: every fixture truncated at every length and mutated a few hundred times with deterministic
/// byte flips. Decoding must return values or throw `DecodeError`: a crash or an endless loop fails the
/// whole run (the time limit catches a hang).
@Suite("Bad input", .timeLimit(.minutes(2)))
struct BadInputTests {
    typealias Random = SplitMix64

    /// Runs every decoder of the module on a message; only `DecodeError` may come out.
    static func decodeAll(_ message: NetlinkMessage) {
        func attempt<T>(_ body: () throws(DecodeError) -> T) {
            _ = try? body()
        }
        attempt { () throws(DecodeError) in try Link.decode(message) }
        attempt { () throws(DecodeError) in try InterfaceAddress.decode(message) }
        attempt { () throws(DecodeError) in try Route.decode(message) }
        attempt { () throws(DecodeError) in try Neighbour.decode(message) }
        attempt { () throws(DecodeError) in try FDBEntry.decode(message) }
        attempt { () throws(DecodeError) in try Rule.decode(message) }
        attempt { () throws(DecodeError) in try NetlinkError.decode(message, request: "fuzz") }
        attempt { () throws(DecodeError) in try NSIDRequests.decode(message) }
        attempt { () throws(DecodeError) in try ConntrackEntry.decode(message) }
        attempt { () throws(DecodeError) in try ConntrackEvent.decode(message) }
    }

    /// The message as each decoder's type, so every decoder also sees every other object's bytes.
    static let types: [UInt16] = [RTM.newLink, RTM.newAddress, RTM.newRoute, RTM.newNeighbour, RTM.newRule, NLMsg.error,
                                  NLMsg.done, 88 /* RTM_NEWNSID */,
                                  CTNetlink.newMessage, CTNetlink.deleteMessage]

    static func decodeAsEveryType(_ message: NetlinkMessage) {
        for type in types {
            decodeAll(NetlinkMessage(type: type, flags: message.flags | NLMsg.ackTLVs, sequence: message.sequence,
                                     portID: message.portID, payload: message.payload))
        }
    }

    /// Splits a datagram and decodes what splits: the messages, or the DecodeError the splitter threw
    /// (its only error type, so nothing else can be swallowed here).
    static func splitAndDecode(_ bytes: ArraySlice<UInt8>) -> Result<[NetlinkMessage], DecodeError> {
        do throws(DecodeError) {
            let messages = try NetlinkMessage.split(bytes)
            for message in messages { decodeAsEveryType(message) }
            return .success(messages)
        } catch {
            return .failure(error)
        }
    }

    @Test(arguments: Fixture.all + Fixture.events)
    func truncatedAtEveryLength(_ name: String) throws {
        let fixture = try Fixture.load(name)
        for datagram in fixture.datagrams {
            guard case .success(let whole) = BadInputTests.splitAndDecode(datagram[...]) else {
                Issue.record("\(name): a captured datagram does not split")
                continue
            }
            // Cut anywhere, a datagram is an error, unless the cut falls between two messages: then it
            // is the messages before the cut, and nothing else.
            var boundaries: [Int: Int] = [0: 0]
            var end = 0
            for (i, message) in whole.enumerated() {
                end += (16 + message.payload.count + 3) & ~3
                boundaries[end] = i + 1
            }
            for length in 0..<datagram.count {
                switch BadInputTests.splitAndDecode(datagram[0..<length]) {
                case .failure:
                    #expect(boundaries[length] == nil || length == 0, "\(name): a cut at a message boundary (\(length)) was refused")
                case .success(let messages):
                    #expect(boundaries[length] == messages.count, "\(name): cut at \(length) of \(datagram.count) gave \(messages.count) messages")
                }
            }
        }
        // Each message's payload cut short at every length, the header kept intact.
        for message in try fixture.messages() {
            for length in 0..<message.payload.count {
                let cut = message.payload.prefix(length)
                BadInputTests.decodeAsEveryType(NetlinkMessage(type: message.type, flags: message.flags,
                                                               sequence: message.sequence, portID: message.portID,
                                                               payload: cut))
            }
        }
    }

    @Test(arguments: Fixture.all + Fixture.events)
    func mutated(_ name: String) throws {
        let fixture = try Fixture.load(name)
        var random = Random(state: UInt64(truncatingIfNeeded: name.utf8.reduce(5381) { $0 &* 33 &+ Int($1) }))
        for datagram in fixture.datagrams where !datagram.isEmpty {
            for _ in 0..<300 {
                var bytes = datagram
                for _ in 0...random.below(4) {
                    let at = random.below(bytes.count)
                    switch random.below(4) {
                    case 0: bytes[at] ^= UInt8(1 << random.below(8))
                    case 1: bytes[at] = UInt8(truncatingIfNeeded: random.next())
                    case 2: bytes[at] = 0
                    default: bytes[at] = 0xff
                    }
                }
                _ = BadInputTests.splitAndDecode(bytes[...])
            }
        }
        // Payload-only mutations keep the message headers valid, so the decoders (not the splitter)
        // see the damage.
        for message in try fixture.messages() where !message.payload.isEmpty {
            for _ in 0..<100 {
                var payload = Array(message.payload)
                for _ in 0...random.below(3) {
                    payload[random.below(payload.count)] = UInt8(truncatingIfNeeded: random.next())
                }
                BadInputTests.decodeAsEveryType(NetlinkMessage(type: message.type, flags: message.flags,
                                                               sequence: message.sequence, portID: message.portID,
                                                               payload: payload[...]))
            }
        }
    }

    @Test func attributeAndNexthopLengthsThatCouldLoop() throws {
        // A zero-length attribute and a zero-length rtnexthop: both must be errors, never a loop.
        var route: [UInt8] = [2, 24, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0]
        route += [12, 0, 9, 0, 0, 0, 0, 0, 2, 0, 0, 0]  // RTA_MULTIPATH holding an rtnexthop with rtnh_len 0
        let message = NetlinkMessage(type: RTM.newRoute, flags: 0, sequence: 0, portID: 0, payload: route[...])
        #expect(throws: DecodeError.self) { try Route.decode(message) }
        let zeroAttribute: [UInt8] = [0, 0, 0, 0] + [UInt8](repeating: 0, count: 12)
        #expect(throws: DecodeError.self) {
            try Link.decode(NetlinkMessage(type: RTM.newLink, flags: 0, sequence: 0, portID: 0,
                                           payload: ([UInt8](repeating: 0, count: 16) + zeroAttribute)[...]))
        }
        // A fixed-size attribute shorter than its type is malformed, an error, never "absent": an
        // IFLA_MTU (4) of two bytes.
        let name: [UInt8] = [6, 0, 3, 0, 0x78, 0, 0, 0]  // IFLA_IFNAME "x"
        let shortMTU: [UInt8] = [UInt8](repeating: 0, count: 16) + name + [6, 0, 4, 0, 0xdc, 0x05, 0, 0]
        #expect(throws: DecodeError.self) {
            try Link.decode(NetlinkMessage(type: RTM.newLink, flags: 0, sequence: 0, portID: 0, payload: shortMTU[...]))
        }
        let fullMTU: [UInt8] = [UInt8](repeating: 0, count: 16) + name + [8, 0, 4, 0, 0xdc, 0x05, 0, 0]
        #expect(try Link.decode(NetlinkMessage(type: RTM.newLink, flags: 0, sequence: 0, portID: 0, payload: fullMTU[...]))?.mtu == 1500)
        // An error code of Int32.min must not trap when negated.
        let error = NetlinkMessage(type: NLMsg.error, flags: 0, sequence: 0, portID: 0, payload: [0, 0, 0, 0x80][...])
        #expect((try? NetlinkError.decode(error, request: "x"))??.errno == Int32.min)
    }
}
