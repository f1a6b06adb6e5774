/// The names iproute2 gives to the numbers in rtnetlink messages, spelled as `ip -j` prints them, so
/// nsinspect's output and `ip`'s can be compared word for word. Numbers without a name print as `ip`
/// prints them: in decimal (or, for link types, `[N]`). The tables follow iproute2's lib/rt_names.c and
/// lib/ll_types.c, without the local additions a host may keep in /etc/iproute2.
public enum RTNames {
    /// Route and address scopes (RT_SCOPE_*, `rtnl_rtscope_n2a`).
    public static func scope(_ scope: UInt8) -> String {
        switch scope {
        case 0: "global"
        case 200: "site"
        case 253: "link"
        case 254: "host"
        case 255: "nowhere"
        default: String(scope)
        }
    }

    /// Route protocols (RTPROT_*, `rtnl_rtprot_n2a`): who installed a route.
    public static func routeProtocol(_ value: UInt8) -> String {
        switch value {
        case 0: "unspec"
        case 1: "redirect"
        case 2: "kernel"
        case 3: "boot"
        case 4: "static"
        case 8: "gated"
        case 9: "ra"
        case 10: "mrt"
        case 11: "zebra"
        case 12: "bird"
        case 13: "dnrouted"
        case 14: "xorp"
        case 15: "ntk"
        case 16: "dhcp"
        case 18: "keepalived"
        case 42: "babel"
        case 186: "bgp"
        case 187: "isis"
        case 188: "ospf"
        case 189: "rip"
        case 192: "eigrp"
        default: String(value)
        }
    }

    /// Route types (RTN_*, `rtnl_rtntype_n2a`); rule actions share the numbers of the last three.
    public static func routeType(_ type: UInt8) -> String {
        switch type {
        case 0: "none"
        case 1: "unicast"
        case 2: "local"
        case 3: "broadcast"
        case 4: "anycast"
        case 5: "multicast"
        case 6: "blackhole"
        case 7: "unreachable"
        case 8: "prohibit"
        case 9: "throw"
        case 10: "nat"
        case 11: "xresolve"
        default: String(type)
        }
    }

    /// Routing tables (RT_TABLE_*, `rtnl_rttable_n2a`).
    public static func table(_ table: UInt32) -> String {
        switch table {
        case 253: "default"
        case 254: "main"
        case 255: "local"
        default: String(table)
        }
    }

    /// Link types (ARPHRD_* in ifinfomsg.ifi_type, iproute2's `ll_type_n2a`).
    public static func linkType(_ type: UInt16) -> String {
        switch type {
        case 0: "netrom"
        case 1: "ether"
        case 2: "eether"
        case 3: "ax25"
        case 4: "pronet"
        case 5: "chaos"
        case 6: "ieee802"
        case 7: "arcnet"
        case 8: "atalk"
        case 15: "dlci"
        case 19: "atm"
        case 23: "metricom"
        case 24: "ieee1394"
        case 27: "eui64"
        case 32: "infiniband"
        case 256: "slip"
        case 257: "cslip"
        case 258: "slip6"
        case 259: "cslip6"
        case 260: "rsrvd"
        case 264: "adapt"
        case 270: "rose"
        case 271: "x25"
        case 272: "hwx25"
        case 280: "can"
        case 290: "mctp"
        case 512: "ppp"
        case 513: "hdlc"
        case 516: "lapb"
        case 517: "ddcmp"
        case 518: "rawhdlc"
        case 519: "rawip"
        case 768: "ipip"
        case 769: "tunnel6"
        case 770: "frad"
        case 771: "skip"
        case 772: "loopback"
        case 773: "ltalk"
        case 774: "fddi"
        case 775: "bif"
        case 776: "sit"
        case 777: "ip/ddp"
        case 778: "gre"
        case 779: "pimreg"
        case 780: "hippi"
        case 781: "ash"
        case 782: "econet"
        case 783: "irda"
        case 784: "fcpp"
        case 785: "fcal"
        case 786: "fcpl"
        case 787: "fcfb0"
        case 800: "tr"
        case 801: "ieee802.11"
        case 802: "ieee802.11/prism"
        case 803: "ieee802.11/radiotap"
        case 804: "ieee802.15.4"
        case 805: "ieee802.15.4/monitor"
        case 820: "phonet"
        case 821: "phonet_pipe"
        case 822: "caif"
        case 823: "gre6"
        case 824: "netlink"
        case 825: "6lowpan"
        case 826: "vsockmon"
        case 0xfffe: "none"
        case 0xffff: "void"
        default: "[\(type)]"
        }
    }

    /// Operational states (IF_OPER_*, RFC 2863), as `ip link` prints IFLA_OPERSTATE.
    public static func operState(_ state: UInt8) -> String {
        switch state {
        case 0: "UNKNOWN"
        case 1: "NOTPRESENT"
        case 2: "DOWN"
        case 3: "LOWERLAYERDOWN"
        case 4: "TESTING"
        case 5: "DORMANT"
        case 6: "UP"
        default: "state \(state)"
        }
    }

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

/// Names a set of flag bits with a table of (bit, name) pairs, in the table's order.
func namedFlags<T: FixedWidthInteger>(_ flags: T, _ table: [(T, String)]) -> [String] {
    table.compactMap { flags & $0.0 != 0 ? $0.1 : nil }
}
