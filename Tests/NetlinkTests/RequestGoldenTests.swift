import Netlink
import Testing

/// Encoded requests against annotated hex goldens, written by hand from the kernel's struct layouts (and
/// checked against what `strace ip …` sends for the same command). Sequence number 1; requests that are
/// not dumps carry NLM_F_ACK, which the socket adds when it sends them.
@Suite("Request goldens")
struct RequestGoldenTests {
    func encoded(_ request: NetlinkRequest) -> [UInt8] {
        request.encoded(sequence: 1, extraFlags: request.isDump ? 0 : NLMsg.ack)
    }

    func expectGolden(_ request: NetlinkRequest, _ golden: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let actual = encoded(request)
        let expected = Hex.bytes(golden)
        #expect(actual == expected, "\(request.name)\n got: \(Hex.lines(actual[...]).joined(separator: "\n      "))",
                sourceLocation: sourceLocation)
    }

    @Test func linkDump() {
        // ip link show
        expectGolden(LinkRequests.dump(), """
            20 00 00 00  # nlmsg_len 32
            12 00        # RTM_GETLINK
            01 03        # NLM_F_REQUEST | NLM_F_DUMP
            01 00 00 00  # nlmsg_seq 1
            00 00 00 00  # nlmsg_pid 0 (the kernel fills it in)
            00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00  # ifinfomsg: all zero, as strict checking wants
            """)
    }

    @Test func vethWithBothEndsInOtherNamespaces() {
        // ip link add eth0 netns <fd 5> type veth peer name e1 netns <fd 7>
        expectGolden(LinkRequests.createVeth(name: "eth0", namespaceFD: 5, peerName: "e1", peerNamespaceFD: 7), """
            6c 00 00 00  # nlmsg_len 108
            10 00        # RTM_NEWLINK
            05 06        # NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE
            01 00 00 00  00 00 00 00
            00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00  # ifinfomsg
            09 00 03 00  65 74 68 30  00 00 00 00              # IFLA_IFNAME "eth0"
            08 00 1c 00  05 00 00 00                           # IFLA_NET_NS_FD 5
            38 00 12 80                                        # IFLA_LINKINFO (nested), 56 bytes
              09 00 01 00  76 65 74 68  00 00 00 00            #   IFLA_INFO_KIND "veth"
              28 00 02 80                                      #   IFLA_INFO_DATA (nested), 40 bytes
                24 00 01 80                                    #     VETH_INFO_PEER (nested), 36 bytes
                  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00  # the peer's ifinfomsg
                  07 00 03 00  65 31 00 00                     #       IFLA_IFNAME "e1"
                  08 00 1c 00  07 00 00 00                     #       IFLA_NET_NS_FD 7
            """)
    }

    @Test func routeAddViaGateway() {
        // ip route add 10.1.0.0/16 via 10.0.0.2 dev <ifindex 3> metric 100
        let spec = RouteSpec(destination: IPPrefix("10.1.0.0/16")!, gateway: IPAddress("10.0.0.2"), outputIndex: 3, metric: 100)
        expectGolden(RouteRequests.add(spec), """
            3c 00 00 00  18 00  05 06  01 00 00 00  00 00 00 00  # 60 bytes, RTM_NEWROUTE, REQUEST|ACK|EXCL|CREATE
            02 10 00 00  # rtmsg: AF_INET, dst_len 16, src_len 0, tos 0
            fe 03 00 01  #        table main, protocol boot, scope global, type unicast
            00 00 00 00  #        rtm_flags
            08 00 01 00  0a 01 00 00  # RTA_DST 10.1.0.0
            08 00 05 00  0a 00 00 02  # RTA_GATEWAY 10.0.0.2
            08 00 04 00  03 00 00 00  # RTA_OIF 3
            08 00 06 00  64 00 00 00  # RTA_PRIORITY 100
            """)
    }

    @Test func routeAddWithoutGatewayIsScopeLinkAndLargeTablesGoInRTATable() {
        // ip route add default dev <ifindex 2> table 1000
        let spec = RouteSpec(destination: .any(.v4), outputIndex: 2, table: 1000)
        expectGolden(RouteRequests.add(spec), """
            2c 00 00 00  18 00  05 06  01 00 00 00  00 00 00 00
            02 00 00 00  # AF_INET, dst_len 0 (default: no RTA_DST)
            00 03 fd 01  # table 0 (RT_TABLE_UNSPEC: see RTA_TABLE), boot, scope link, unicast
            00 00 00 00
            08 00 04 00  02 00 00 00  # RTA_OIF 2
            08 00 0f 00  e8 03 00 00  # RTA_TABLE 1000
            """)
    }

    @Test func routeAddViaOtherFamilyAndDelete() {
        // ip route add 10.2.0.0/16 via inet6 fe80::1 dev <ifindex 3>
        let spec = RouteSpec(destination: IPPrefix("10.2.0.0/16")!, gateway: IPAddress("fe80::1"), outputIndex: 3)
        expectGolden(RouteRequests.add(spec), """
            44 00 00 00  18 00  05 06  01 00 00 00  00 00 00 00
            02 10 00 00  fe 03 00 01  00 00 00 00
            08 00 01 00  0a 02 00 00                  # RTA_DST 10.2.0.0
            16 00 12 00  0a 00                        # RTA_VIA: family AF_INET6,
            fe 80 00 00  00 00 00 00  00 00 00 00  00 00 00 01  00 00  # fe80::1, padding
            08 00 04 00  03 00 00 00                  # RTA_OIF 3
            """)
        // ip route del 10.2.0.0/16 via inet6 fe80::1 dev <ifindex 3>: protocol 0, scope nowhere, type 0
        expectGolden(RouteRequests.delete(spec), """
            44 00 00 00  19 00  05 00  01 00 00 00  00 00 00 00  # RTM_DELROUTE, REQUEST|ACK
            02 10 00 00  fe 00 ff 00  00 00 00 00
            08 00 01 00  0a 02 00 00
            16 00 12 00  0a 00  fe 80 00 00  00 00 00 00  00 00 00 00  00 00 00 01  00 00
            08 00 04 00  03 00 00 00
            """)
    }

    @Test func addressAddWithComputedBroadcast() {
        // ip addr add 10.0.1.10/24 brd + dev <ifindex 2>
        expectGolden(AddressRequests.add(IPPrefix("10.0.1.10/24")!, index: 2, broadcast: .computed), """
            30 00 00 00  14 00  05 06  01 00 00 00  00 00 00 00  # 48 bytes, RTM_NEWADDR
            02 18 00 00  02 00 00 00  # ifaddrmsg: AF_INET, /24, flags 0, scope global, ifindex 2
            08 00 02 00  0a 00 01 0a  # IFA_LOCAL 10.0.1.10
            08 00 01 00  0a 00 01 0a  # IFA_ADDRESS 10.0.1.10
            08 00 04 00  0a 00 01 ff  # IFA_BROADCAST 10.0.1.255
            """)
        // ip addr add 2001:db8::1/64 dev <ifindex 2> nodad noprefixroute: the flags need IFA_FLAGS
        expectGolden(AddressRequests.add(IPPrefix("2001:db8::1/64")!, index: 2, noDAD: true, noPrefixRoute: true), """
            48 00 00 00  14 00  05 06  01 00 00 00  00 00 00 00
            0a 40 00 00  02 00 00 00
            14 00 02 00  20 01 0d b8  00 00 00 00  00 00 00 00  00 00 00 01
            14 00 01 00  20 01 0d b8  00 00 00 00  00 00 00 00  00 00 00 01
            08 00 08 00  02 02 00 00  # IFA_FLAGS nodad | noprefixroute
            """)
    }

    @Test func routeGetFdbDumpAndSetMaster() {
        // ip route get 10.0.1.20
        expectGolden(RouteRequests.get(to: IPAddress("10.0.1.20")!), """
            24 00 00 00  1a 00  05 00  01 00 00 00  00 00 00 00  # RTM_GETROUTE, REQUEST|ACK
            02 20 00 00  00 00 00 00  00 10 00 00  # AF_INET, dst_len 32, rtm_flags RTM_F_LOOKUP_TABLE
            08 00 01 00  0a 00 01 14               # RTA_DST 10.0.1.20
            """)
        // bridge fdb show
        expectGolden(NeighbourRequests.fdbDump(), """
            1c 00 00 00  1e 00  01 03  01 00 00 00  00 00 00 00  # RTM_GETNEIGH, REQUEST|DUMP
            07 00 00 00  00 00 00 00  00 00 00 00  # ndmsg: AF_BRIDGE, all else zero
            """)
        // ip link set dev <ifindex 3> master <ifindex 2>
        expectGolden(LinkRequests.setMaster(.index(3), master: 2), """
            28 00 00 00  10 00  05 00  01 00 00 00  00 00 00 00  # RTM_NEWLINK, REQUEST|ACK (no CREATE)
            00 00 00 00  03 00 00 00  00 00 00 00  00 00 00 00  # ifinfomsg: ifindex 3
            08 00 0a 00  02 00 00 00                            # IFLA_MASTER 2
            """)
        // ip link set dev e1 up (by name: IFLA_IFNAME with ifindex 0)
        expectGolden(LinkRequests.setUp("e1"), """
            28 00 00 00  10 00  05 00  01 00 00 00  00 00 00 00
            00 00 00 00  00 00 00 00  01 00 00 00  01 00 00 00  # ifinfomsg: flags IFF_UP, change IFF_UP
            07 00 03 00  65 31 00 00                            # IFLA_IFNAME "e1"
            """)
        // ip neigh add 10.0.1.99 lladdr 02:00:00:00:00:99 dev <ifindex 2> nud permanent
        expectGolden(NeighbourRequests.addPermanent(IPAddress("10.0.1.99")!, linkAddress: MACAddress("02:00:00:00:00:99")!, index: 2), """
            30 00 00 00  1c 00  05 06  01 00 00 00  00 00 00 00  # RTM_NEWNEIGH, REQUEST|ACK|EXCL|CREATE
            02 00 00 00  02 00 00 00  80 00 00 00  # ndmsg: AF_INET, ifindex 2, NUD_PERMANENT
            08 00 01 00  0a 00 01 63               # NDA_DST 10.0.1.99
            0a 00 02 00  02 00 00 00  00 99 00 00  # NDA_LLADDR
            """)
    }

    // MARK: ctnetlink

    @Test func conntrackDump() {
        // conntrack -L
        expectGolden(ConntrackRequests.dump(), """
            14 00 00 00  # nlmsg_len 20
            01 01        # IPCTNL_MSG_CT_GET (NFNL_SUBSYS_CTNETLINK << 8 | 1)
            01 03        # NLM_F_REQUEST | NLM_F_DUMP
            01 00 00 00  00 00 00 00
            00 00 00 00  # nfgenmsg: AF_UNSPEC (every family), NFNETLINK_V0, res_id 0
            """)
        // conntrack -L -f ipv6
        expectGolden(ConntrackRequests.dump(family: .v6), """
            14 00 00 00  01 01  01 03  01 00 00 00  00 00 00 00
            0a 00 00 00  # nfgenmsg: AF_INET6
            """)
    }

    @Test func conntrackGetUDP() {
        // conntrack -G -p udp -s 10.0.1.10 -d 192.0.2.10 --sport 5002 --dport 5002
        let tuple = ConntrackTuple(source: IPAddress("10.0.1.10")!, destination: IPAddress("192.0.2.10")!, protocolNumber: 17,
                                   sourcePort: 5002, destinationPort: 5002)
        expectGolden(ConntrackRequests.get(tuple), """
            48 00 00 00  # nlmsg_len 72
            01 01        # IPCTNL_MSG_CT_GET
            05 00        # NLM_F_REQUEST | NLM_F_ACK (not a dump)
            01 00 00 00  00 00 00 00
            02 00 00 00  # nfgenmsg: AF_INET
            34 00 01 80  # CTA_TUPLE_ORIG (nested), 52 bytes
              14 00 01 80                  #   CTA_TUPLE_IP (nested), 20 bytes
                08 00 01 00  0a 00 01 0a   #     CTA_IP_V4_SRC 10.0.1.10
                08 00 02 00  c0 00 02 0a   #     CTA_IP_V4_DST 192.0.2.10
              1c 00 02 80                  #   CTA_TUPLE_PROTO (nested), 28 bytes
                05 00 01 00  11 00 00 00   #     CTA_PROTO_NUM 17, padded
                06 00 02 00  13 8a 00 00   #     CTA_PROTO_SRC_PORT 5002 (big-endian), padded
                06 00 03 00  13 8a 00 00   #     CTA_PROTO_DST_PORT 5002
            """)
    }

    @Test func conntrackGetICMPInAZoneAndIPv6() {
        // conntrack -G -p icmp -s 10.0.1.10 -d 192.0.2.10 --icmp-type 8 --icmp-code 0 --icmp-id 15937 -w 7
        var ping = ConntrackTuple(source: IPAddress("10.0.1.10")!, destination: IPAddress("192.0.2.10")!, protocolNumber: 1)
        ping.icmpID = 15937
        ping.icmpType = 8
        ping.icmpCode = 0
        expectGolden(ConntrackRequests.get(ping, zone: 7), """
            58 00 00 00  01 01  05 00  01 00 00 00  00 00 00 00  # 88 bytes, IPCTNL_MSG_CT_GET, REQUEST|ACK
            02 00 00 00                  # nfgenmsg: AF_INET
            3c 00 01 80                  # CTA_TUPLE_ORIG (nested), 60 bytes
              14 00 01 80  08 00 01 00  0a 00 01 0a  08 00 02 00  c0 00 02 0a  # CTA_TUPLE_IP
              24 00 02 80                  #   CTA_TUPLE_PROTO (nested), 36 bytes
                05 00 01 00  01 00 00 00   #     CTA_PROTO_NUM 1
                06 00 04 00  3e 41 00 00   #     CTA_PROTO_ICMP_ID 15937
                05 00 05 00  08 00 00 00   #     CTA_PROTO_ICMP_TYPE 8
                05 00 06 00  00 00 00 00   #     CTA_PROTO_ICMP_CODE 0
            06 00 12 00  00 07 00 00     # CTA_ZONE 7 (big-endian)
            """)
        // conntrack -G -f ipv6 -p udp -s 2001:db8:2::1 -d 2001:db8:2::10 --sport 5000 --dport 5001
        let v6 = ConntrackTuple(source: IPAddress("2001:db8:2::1")!, destination: IPAddress("2001:db8:2::10")!, protocolNumber: 17,
                                sourcePort: 5000, destinationPort: 5001)
        expectGolden(ConntrackRequests.get(v6), """
            60 00 00 00  01 01  05 00  01 00 00 00  00 00 00 00  # 96 bytes
            0a 00 00 00                  # nfgenmsg: AF_INET6
            4c 00 01 80                  # CTA_TUPLE_ORIG (nested), 76 bytes
              2c 00 01 80                  #   CTA_TUPLE_IP (nested), 44 bytes
                14 00 03 00  20 01 0d b8  00 02 00 00  00 00 00 00  00 00 00 01  # CTA_IP_V6_SRC
                14 00 04 00  20 01 0d b8  00 02 00 00  00 00 00 00  00 00 00 10  # CTA_IP_V6_DST
              1c 00 02 80                  #   CTA_TUPLE_PROTO (nested), 28 bytes
                05 00 01 00  11 00 00 00
                06 00 02 00  13 88 00 00   #     CTA_PROTO_SRC_PORT 5000
                06 00 03 00  13 89 00 00   #     CTA_PROTO_DST_PORT 5001
            """)
    }

    @Test func nsidDump() {
        // ip netns list-id
        expectGolden(NSIDRequests.dump(), """
            14 00 00 00  5a 00  01 03  01 00 00 00  00 00 00 00  # RTM_GETNSID, REQUEST|DUMP
            00 00 00 00                                          # rtgenmsg: AF_UNSPEC, padded to 4
            """)
    }
}
