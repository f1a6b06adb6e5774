/// Names of ICMP and ICMPv6 types and codes as traceroute and tcpdump print them.
public enum ICMPNames {
    public static func describe(type: UInt8, code: UInt8, v6: Bool) -> String {
        v6 ? describeV6(type: type, code: code) : describeV4(type: type, code: code)
    }

    static func describeV4(type: UInt8, code: UInt8) -> String {
        switch type {
        case 0: return "echo reply"
        case 8: return "echo request"
        case 3:
            let reasons = ["net unreachable", "host unreachable", "protocol unreachable", "port unreachable",
                           "fragmentation needed", "source route failed", "net unknown", "host unknown", "source host isolated",
                           "net prohibited", "host prohibited", "net unreachable for TOS", "host unreachable for TOS",
                           "communication administratively prohibited", "host precedence violation", "precedence cutoff"]
            return "destination unreachable (\(Int(code) < reasons.count ? reasons[Int(code)] : "code \(code)"))"
        case 5: return "redirect"
        case 11: return code == 0 ? "time exceeded (ttl exceeded in transit)" : "time exceeded (fragment reassembly)"
        case 12: return "parameter problem"
        default: return "ICMP type \(type) code \(code)"
        }
    }

    static func describeV6(type: UInt8, code: UInt8) -> String {
        switch type {
        case 128: return "echo request"
        case 129: return "echo reply"
        case 1:
            let reasons = ["no route to destination", "administratively prohibited", "beyond scope of source address",
                           "address unreachable", "port unreachable", "source address failed policy", "reject route"]
            return "destination unreachable (\(Int(code) < reasons.count ? reasons[Int(code)] : "code \(code)"))"
        case 2: return "packet too big"
        case 3: return code == 0 ? "time exceeded (hop limit exceeded in transit)" : "time exceeded (fragment reassembly)"
        case 4: return "parameter problem"
        default: return "ICMPv6 type \(type) code \(code)"
        }
    }
}
