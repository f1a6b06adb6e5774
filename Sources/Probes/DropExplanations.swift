extension DropReasons {
    /// One line on what a kernel drop reason means to someone debugging a lab, for the verdict; nil for
    /// reasons that say nothing more than their name. The meanings follow the comments of
    /// `enum skb_drop_reason` (include/net/dropreason-core.h).
    public static func explanation(_ name: String) -> String? {
        explanations[name]
    }

    private static let explanations: [String: String] = [
        "NO_SOCKET": "no socket wanted it: nothing listens there",
        "PKT_TOO_SMALL": "shorter than its headers say",
        "TCP_CSUM": "bad TCP checksum — typically checksum offload through a userspace switch or tap",
        "UDP_CSUM": "bad checksum — typically checksum offload through a userspace switch or tap; `ethtool -K IF tx off` on the sender avoids it",
        "ICMP_CSUM": "bad ICMP checksum",
        "IP_CSUM": "bad IP header checksum",
        "NETFILTER_DROP": "a netfilter rule (nftables or iptables) dropped it",
        "OTHERHOST": "the frame was addressed to another host's MAC",
        "IP_INHDR": "invalid IP header, or its TTL ran out",
        "IP_RPFILTER": "reverse-path filter: the source is not reachable back through the interface it came in on",
        "IP_INADDRERRORS": "a source or destination address the kernel refuses (martian)",
        "IP_INNOROUTES": "no route for it on input",
        "IP_OUTNOROUTES": "no route for it on output",
        "IP_NOPROTO": "no handler for its IP protocol",
        "PKT_TOO_BIG": "larger than the MTU and not to be fragmented",
        "NEIGH_FAILED": "ARP or neighbour discovery for the next hop got no answer",
        "NEIGH_QUEUEFULL": "too many packets waiting for ARP or neighbour discovery",
        "NEIGH_DEAD": "the neighbour entry went away while the packet waited",
        "SOCKET_RCVBUFF": "the receiving socket's buffer was full",
        "PROTO_MEM": "the protocol's memory limit was reached",
        "QDISC_DROP": "the interface's queue discipline dropped it (queue full)",
        "TC_INGRESS": "a tc filter on input dropped it",
        "TC_EGRESS": "a tc filter on output dropped it",
        "DEV_READY": "the interface is down or not ready",
        "IPV6DISABLED": "IPv6 is disabled on the interface",
        "UNICAST_IN_L2_MULTICAST": "an IP unicast packet in a layer-2 multicast or broadcast frame",
    ]
}
