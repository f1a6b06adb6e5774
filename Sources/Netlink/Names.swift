/// The names iproute2 gives to the numbers in rtnetlink messages, spelled as `ip -j` prints them, so
/// nsinspect's output and `ip`'s can be compared word for word. Numbers without a name print as `ip`
/// prints them: in decimal (or, for link types, `[N]`). The tables follow iproute2's lib/rt_names.c and
/// lib/ll_types.c, without the local additions a host may keep in /etc/iproute2.
public enum RTNames {
    /// Route and address scopes (RT_SCOPE_*, `rtnl_rtscope_n2a`).
    public static func scope(_ scope: UInt8) -> String { named(scope, scopeNames) }
    private static let scopeNames: [UInt8: String] = [
        0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere",
    ]

    /// Route protocols (RTPROT_*, `rtnl_rtprot_n2a`): who installed a route.
    public static func routeProtocol(_ value: UInt8) -> String { named(value, routeProtocolNames) }
    private static let routeProtocolNames: [UInt8: String] = [
        0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra", 10: "mrt",
        11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp", 18: "keepalived",
        42: "babel", 186: "bgp", 187: "isis", 188: "ospf", 189: "rip", 192: "eigrp",
    ]

    /// Route types (RTN_*, `rtnl_rtntype_n2a`); rule actions share the numbers of the last three.
    public static func routeType(_ type: UInt8) -> String { named(type, routeTypeNames) }
    private static let routeTypeNames: [UInt8: String] = [
        0: "none", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast", 6: "blackhole",
        7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat", 11: "xresolve",
    ]

    /// Routing tables (RT_TABLE_*, `rtnl_rttable_n2a`).
    public static func table(_ table: UInt32) -> String { named(table, tableNames) }
    private static let tableNames: [UInt32: String] = [
        253: "default", 254: "main", 255: "local",
    ]

    /// Link types (ARPHRD_* in ifinfomsg.ifi_type, iproute2's `ll_type_n2a`).
    public static func linkType(_ type: UInt16) -> String { named(type, linkTypeNames, otherwise: "[\(type)]") }
    private static let linkTypeNames: [UInt16: String] = [
        0: "netrom", 1: "ether", 2: "eether", 3: "ax25", 4: "pronet", 5: "chaos", 6: "ieee802", 7: "arcnet",
        8: "atalk", 15: "dlci", 19: "atm", 23: "metricom", 24: "ieee1394", 27: "eui64", 32: "infiniband",
        256: "slip", 257: "cslip", 258: "slip6", 259: "cslip6", 260: "rsrvd", 264: "adapt", 270: "rose",
        271: "x25", 272: "hwx25", 280: "can", 290: "mctp", 512: "ppp", 513: "hdlc", 516: "lapb", 517: "ddcmp",
        518: "rawhdlc", 519: "rawip", 768: "ipip", 769: "tunnel6", 770: "frad", 771: "skip", 772: "loopback",
        773: "ltalk", 774: "fddi", 775: "bif", 776: "sit", 777: "ip/ddp", 778: "gre", 779: "pimreg",
        780: "hippi", 781: "ash", 782: "econet", 783: "irda", 784: "fcpp", 785: "fcal", 786: "fcpl",
        787: "fcfb0", 800: "tr", 801: "ieee802.11", 802: "ieee802.11/prism", 803: "ieee802.11/radiotap",
        804: "ieee802.15.4", 805: "ieee802.15.4/monitor", 820: "phonet", 821: "phonet_pipe", 822: "caif",
        823: "gre6", 824: "netlink", 825: "6lowpan", 826: "vsockmon", 0xfffe: "none", 0xffff: "void",
    ]

    /// Operational states (IF_OPER_*, RFC 2863), as `ip link` prints IFLA_OPERSTATE.
    public static func operState(_ state: UInt8) -> String { named(state, operStateNames, otherwise: "state \(state)") }
    private static let operStateNames: [UInt8: String] = [
        0: "UNKNOWN", 1: "NOTPRESENT", 2: "DOWN", 3: "LOWERLAYERDOWN", 4: "TESTING", 5: "DORMANT", 6: "UP",
    ]

    /// Link groups: 0 is the group every link starts in, which `ip` calls "default".
    public static func linkGroup(_ group: UInt32) -> String { group == 0 ? "default" : String(group) }

    /// The interface flags (IFF_*) in the order and spelling of iproute2's `print_link_flags`: NO-CARRIER
    /// for a link that is up without IFF_RUNNING, then the named flags, then any unnamed rest in hex, then
    /// M-DOWN when the link's parent (IFLA_LINK, same namespace) is down.
    public static func linkFlags(_ flags: UInt32, parentDown: Bool = false) -> [String] {
        var names: [String] = []
        var rest = flags
        if flags & LinkFlag.up != 0 && flags & LinkFlag.running == 0 { names.append("NO-CARRIER") }
        rest &= ~LinkFlag.running
        for (bit, name) in LinkFlag.printOrder where rest & bit != 0 {
        names.append(name)
        rest &= ~bit
        }
        if rest != 0 { names.append(String(rest, radix: 16)) }
        if parentDown { names.append("M-DOWN") }
        return names
    }

    /// Neighbour states (NUD_*) in the order of iproute2's `print_neigh_state`; 0 is "NONE".
    public static func neighbourState(_ state: UInt16) -> [String] {
        if state == 0 { return ["NONE"] }
        var names: [String] = []
        var rest = state
        for (bit, name) in NeighbourState.printOrder where rest & bit != 0 {
        names.append(name)
        rest &= ~bit
        }
        if rest != 0 { names.append("0x" + String(rest, radix: 16)) }
        return names
    }
}

/// Interface flags (linux/if.h, `ifinfomsg.ifi_flags`).
public enum LinkFlag {
    public static let up: UInt32 = 0x1
    public static let broadcast: UInt32 = 0x2
    public static let debug: UInt32 = 0x4
    public static let loopback: UInt32 = 0x8
    public static let pointToPoint: UInt32 = 0x10
    public static let noTrailers: UInt32 = 0x20
    public static let running: UInt32 = 0x40
    public static let noARP: UInt32 = 0x80
    public static let promisc: UInt32 = 0x100
    public static let allMulti: UInt32 = 0x200
    public static let master: UInt32 = 0x400
    public static let slave: UInt32 = 0x800
    public static let multicast: UInt32 = 0x1000
    public static let portSel: UInt32 = 0x2000
    public static let autoMedia: UInt32 = 0x4000
    public static let dynamic: UInt32 = 0x8000
    public static let lowerUp: UInt32 = 0x10000
    public static let dormant: UInt32 = 0x20000
    public static let echo: UInt32 = 0x40000

    static let printOrder: [(UInt32, String)] = [
        (loopback, "LOOPBACK"), (broadcast, "BROADCAST"), (pointToPoint, "POINTOPOINT"), (multicast, "MULTICAST"),
        (noARP, "NOARP"), (allMulti, "ALLMULTI"), (promisc, "PROMISC"), (master, "MASTER"), (slave, "SLAVE"),
        (debug, "DEBUG"), (dynamic, "DYNAMIC"), (autoMedia, "AUTOMEDIA"), (portSel, "PORTSEL"),
        (noTrailers, "NOTRAILERS"), (up, "UP"), (lowerUp, "LOWER_UP"), (dormant, "DORMANT"), (echo, "ECHO"),
    ]
}

/// Neighbour states (linux/neighbour.h, `ndmsg.ndm_state`).
public enum NeighbourState {
    public static let incomplete: UInt16 = 0x01
    public static let reachable: UInt16 = 0x02
    public static let stale: UInt16 = 0x04
    public static let delay: UInt16 = 0x08
    public static let probe: UInt16 = 0x10
    public static let failed: UInt16 = 0x20
    public static let noARP: UInt16 = 0x40
    public static let permanent: UInt16 = 0x80

    static let printOrder: [(UInt16, String)] = [
        (incomplete, "INCOMPLETE"), (reachable, "REACHABLE"), (stale, "STALE"), (delay, "DELAY"), (probe, "PROBE"),
        (failed, "FAILED"), (noARP, "NOARP"), (permanent, "PERMANENT"),
    ]
}

/// The name of a value in a table, else `otherwise`, else the number in decimal.
func named<T: BinaryInteger>(_ value: T, _ names: [T: String], otherwise: @autoclosure () -> String? = nil) -> String {
    names[value] ?? otherwise() ?? String(value)
}

/// Names a set of flag bits with a table of (bit, name) pairs, in the table's order.
func namedFlags<T: FixedWidthInteger>(_ flags: T, _ table: [(T, String)]) -> [String] {
    table.compactMap { flags & $0.0 != 0 ? $0.1 : nil }
}
