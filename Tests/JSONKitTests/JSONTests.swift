import Testing
@testable import JSONKit
@Test func roundTrip() throws { #expect(try JSON.parse("[1]") == .array([.int(1)])) }
