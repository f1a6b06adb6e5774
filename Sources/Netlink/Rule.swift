/// A policy-routing rule as RTM_NEWRULE describes it (one entry of `ip -j rule show`): which packets
/// (source, destination, input/output interface, fwmark …) are looked up in which table, in priority order.
public struct Rule: Sendable, Equatable {
    /// fib_rule_hdr.family: AF_INET, AF_INET6, or 128/129 for the multicast routing rules.
    public var family: UInt8
    /// FRA_PRIORITY (0 when absent: the rule the kernel puts first).
    public var priority: UInt32
    /// FRA_TABLE when present (tables above 255), else the header's table.
    public var table: UInt32
    /// FRA_SRC/FRA_DST with the header's prefix lengths; nil is "all".
    public var source: IPPrefix?
    public var destination: IPPrefix?
    /// FRA_IIFNAME/FRA_OIFNAME: names, not indexes (a rule may name an interface that does not exist yet).
    public var inputInterface: String?
    public var outputInterface: String?
    public var fwmark: UInt32?
    public var fwmask: UInt32?
    /// fib_rule_hdr.action: FR_ACT_* (1 to_tbl, 2 goto, 3 nop, 6 blackhole, 7 unreachable, 8 prohibit).
    public var action: UInt8
    /// FRA_GOTO: the priority a `goto` rule jumps to.
    public var gotoTarget: UInt32?
    /// FRA_PROTOCOL: who installed the rule.
    public var ruleProtocol: UInt8?
    /// fib_rule_hdr.flags: FIB_RULE_* (2 is `not`, the inverted match).
    public var flags: UInt32
    public var tos: UInt8
    /// FRA_SUPPRESS_PREFIXLEN (-1, or absent, when not set).
    public var suppressPrefixLength: Int32?
    /// FRA_L3MDEV: the rule looks up the table of the packet's VRF.
    public var l3mdev: Bool

    public init(family: UInt8, priority: UInt32, table: UInt32, action: UInt8) {
        self.family = family
        self.priority = priority
        self.table = table
        self.action = action
        flags = 0
        tos = 0
        l3mdev = false
    }

    public var tableName: String { RTNames.table(table) }
    /// AF_INET or AF_INET6 (nil for the multicast routing families).
    public var addressFamily: IPAddress.Family? { IPAddress.Family(rawValue: family) }

    public var isInverted: Bool { flags & 2 != 0 }
    public var protocolName: String? { ruleProtocol.map(RTNames.routeProtocol) }

    /// The action as `ip rule` names it.
    public var actionName: String { named(action, [1: "to_tbl", 2: "goto", 3: "nop"], otherwise: RTNames.routeType(action)) }

    /// Whether `rules` are exactly what the kernel puts in a new namespace: `0 local`, `32766 main`,
    /// `32767 default` for IPv4 and `0 local`, `32766 main` for IPv6 (absent when IPv6 is off), each a
    /// plain lookup with no selector. Views leave such a list out: it says nothing about the namespace.
    public static func areKernelDefaults(_ rules: [Rule]) -> Bool {
        func plain(_ r: Rule) -> Bool {
            r.action == 1 && r.source == nil && r.destination == nil && r.inputInterface == nil && r.outputInterface == nil
                && r.fwmark == nil && r.flags == 0 && r.tos == 0 && !r.l3mdev && r.suppressPrefixLength.map { $0 < 0 } != false
        }
        guard rules.allSatisfy(plain) else { return false }
        func entries(_ family: UInt8) -> [String] {
            rules.filter { $0.family == family }.map { "\($0.priority)/\($0.table)" }.sorted()
        }
        let v6 = entries(10)
        return rules.allSatisfy { $0.family == 2 || $0.family == 10 }
            && entries(2) == ["0/255", "32766/254", "32767/253"]
            && (v6.isEmpty || v6 == ["0/255", "32766/254"])
    }

    /// Decodes RTM_NEWRULE; nil for a message of another type.
    public static func decode(_ message: NetlinkMessage) throws(DecodeError) -> Rule? {
        guard message.type == RTM.newRule else { return nil }
        let attributes = try FamilyHeader.attributes(after: FamilyHeader.rtmsgSize, of: message, "RTM_NEWRULE")
        let p = message.payload
        let s = p.startIndex
        var rule = Rule(family: p[s], priority: try attributes.u32(FRA.priority) ?? 0,
                        table: try attributes.u32(FRA.table) ?? UInt32(p[s + 4]), action: p[s + 7])
        rule.tos = p[s + 3]
        rule.flags = p.hostU32(s + 8)!
        if let src = try attributes.anyAddress(FRA.src, "FRA_SRC") { rule.source = try prefix(src, length: p[s + 2], "FRA_SRC") }
        if let dst = try attributes.anyAddress(FRA.dst, "FRA_DST") {
            rule.destination = try prefix(dst, length: p[s + 1], "FRA_DST")
        }
        rule.inputInterface = attributes.string(FRA.iifname)
        rule.outputInterface = attributes.string(FRA.oifname)
        rule.fwmark = try attributes.u32(FRA.fwmark)
        rule.fwmask = try attributes.u32(FRA.fwmask)
        rule.gotoTarget = try attributes.u32(FRA.goto)
        rule.ruleProtocol = try attributes.u8(FRA.ruleProtocol)
        rule.suppressPrefixLength = try attributes.i32(FRA.suppressPrefixLength)
        rule.l3mdev = try attributes.u8(FRA.l3mdev).map { $0 != 0 } ?? false
        return rule
    }
}

/// FRA_* attribute types (linux/fib_rules.h).
enum FRA {
    static let dst: UInt16 = 1
    static let src: UInt16 = 2
    static let iifname: UInt16 = 3
    static let goto: UInt16 = 4
    static let priority: UInt16 = 6
    static let fwmark: UInt16 = 10
    static let suppressPrefixLength: UInt16 = 14
    static let table: UInt16 = 15
    static let fwmask: UInt16 = 16
    static let oifname: UInt16 = 17
    static let l3mdev: UInt16 = 19
    static let ruleProtocol: UInt16 = 21
}

/// RTM_GETRULE requests.
public enum RuleRequests {
    /// `ip rule show` (`-4`/`-6`): RTM_GETRULE with NLM_F_DUMP. Strict checking wants a fib_rule_hdr of
    /// zeros but the family and no attributes; AF_UNSPEC dumps the rules of every family.
    public static func dump(family: IPAddress.Family? = nil) -> NetlinkRequest {
        // struct fib_rule_hdr has rtmsg's size, and all but the family is zero here.
        NetlinkRequest(type: RTM.getRule, flags: NLMsg.dump, header: FamilyHeader.rtmsg(family: AF.of(family)))
    }
}
