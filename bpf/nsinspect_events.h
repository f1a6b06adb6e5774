// The records nsinspect's BPF programs write and the configuration they read: one header for the BPF C
// (bpf/trace.bpf.c, compiled against vmlinux.h) and for Swift (imported through the CShim module as
// nsinspect_bpf_events.h). Every struct has a fixed layout with explicit padding, so both compilers agree
// on it; Swift decodes a ring-buffer record by loading `struct nsi_event` from its bytes.
//
// Byte order: addresses are network order (as on the wire); ports, ICMP id/sequence, IP id and lengths are
// host order (converted in the kernel). Times are CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns).
#ifndef NSINSPECT_EVENTS_H
#define NSINSPECT_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/// Bytes of each packet copied from its network header (pcapng LINKTYPE_RAW).
#define NSI_SNAP_LEN 128
#define NSI_IFNAMSIZ 16

/// Where an event was seen. The numbers are the index of the hook's scratch slot, so keep them dense.
enum nsi_hook {
    NSI_HOOK_NONE = 0,
    NSI_HOOK_XMIT = 1,      // tp_btf/net_dev_start_xmit: leaving an interface (headers from the network header)
    NSI_HOOK_RECV = 2,      // tp_btf/netif_receive_skb: arriving on an interface
    NSI_HOOK_DROP = 3,      // tp_btf/kfree_skb: dropped, with the kernel's drop reason
    NSI_HOOK_FIB = 4,       // tp_btf/fib_table_lookup: an IPv4 route lookup (detail.fib)
    NSI_HOOK_FIB6 = 5,      // tp_btf/fib6_table_lookup: an IPv6 route lookup (detail.fib)
    NSI_HOOK_ICMP_SEND = 6, // tp_btf/icmp_send: the kernel answers this packet with an ICMP error (detail.icmp)
    NSI_HOOK_NEIGH = 7,     // tp_btf/neigh_update: an ARP/NDP entry changes (detail.neigh; no packet)
    NSI_HOOK_TCX_INGRESS = 8, // tcx ingress of one interface (before netfilter and routing)
    NSI_HOOK_TCX_EGRESS = 9,  // tcx egress of one interface (before the queueing discipline)
    NSI_HOOK_COUNT = 10,
};

/// nsi_event.flags
enum nsi_event_flags {
    NSI_EF_NETNS_FROM_SOCKET = 1 << 0, // the skb had no device: netns is its socket's
    NSI_EF_FROM_RECV_STASH = 1 << 1,   // fib: attributed to the packet last received on this CPU (skb set)
};

/// One IP packet's headers, as parsed in the kernel. Used for the packet itself and for the header an
/// ICMP error quotes (the probe it answers).
struct nsi_packet {
    __u8 saddr[16];       // IPv4 in the first 4 bytes
    __u8 daddr[16];
    __u8 ip_version;      // 4 or 6; 0 when no IP header was parsed
    __u8 protocol;        // IPPROTO_* (IPv6: the next header after the fixed header)
    __u8 ttl;             // TTL / hop limit
    __u8 tos;             // IPv4 TOS / IPv6 traffic class
    __u16 total_length;   // IPv4 total length / IPv6 payload length + 40
    __u16 ip_id;          // IPv4 identification (0 for IPv6)
    __u16 sport;          // TCP/UDP ports
    __u16 dport;
    __u8 icmp_type;       // ICMP/ICMPv6
    __u8 icmp_code;
    __u16 icmp_id;        // echo request/reply only
    __u16 icmp_seq;
    __u8 tcp_flags;       // FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80
    __u8 l4_valid;        // 1 when the transport header was in the linear data and parsed
};

/// detail of NSI_HOOK_FIB / NSI_HOOK_FIB6. The lookup's flow (addresses, protocol, ports or ICMP type) is
/// in nsi_event.packet (ttl 0), its mark in nsi_event.mark; ifindex/ifname are the chosen output device.
struct nsi_fib {
    __u32 table;
    __s32 err;            // 0, or -errno (-EAGAIN: no match in this table; -ENETUNREACH, -EHOSTUNREACH ...)
    __u32 oif;            // chosen output ifindex, 0 when none
    __u32 flow_iif;       // the lookup's input interface (0: locally generated)
    __u32 flow_oif;       // the output interface the lookup asked for, if any
    __u8 gw_version;      // 0: no gateway (on-link), 4 or 6
    __u8 route_type;      // IPv6: RTN_* of the result; IPv4: 0 (not given by the tracepoint)
    __u8 _pad[2];
    __u8 gateway[16];
};

/// detail of NSI_HOOK_NEIGH.
struct nsi_neigh {
    __u8 addr[16];        // the neighbour's IP address
    __u8 lladdr[8];       // the new link-layer address (or the current one when none is given)
    __u8 ip_version;      // 4 (ARP) or 6 (NDP)
    __u8 old_state;       // NUD_* before the update
    __u8 new_state;       // NUD_* requested
    __u8 lladdr_len;
    __u32 update_flags;   // NEIGH_UPDATE_F_*
};

/// detail of NSI_HOOK_ICMP_SEND: the error the kernel sends about nsi_event.packet.
struct nsi_icmp_sent {
    __u8 type;
    __u8 code;
    __u8 _pad[6];
};

/// detail of NSI_HOOK_DROP.
struct nsi_drop {
    __u64 location;       // kernel address of the function that freed the skb (/proc/kallsyms)
};

union nsi_detail {
    struct nsi_fib fib;
    struct nsi_neigh neigh;
    struct nsi_icmp_sent icmp;
    struct nsi_drop drop;
    __u8 raw[40];
};

/// One ring-buffer record. Records are variable-length: the kernel writes offsetof(snap) + snap_len bytes.
struct nsi_event {
    __u64 timestamp_ns;   // bpf_ktime_get_ns (CLOCK_MONOTONIC)
    __u64 skb;            // kernel address of the sk_buff: one packet's identity, also across a veth
    __u32 netns;          // inode of the network namespace (skb->dev's, else its socket's; 0 unknown)
    __u32 ifindex;
    __u32 drop_reason;    // NSI_HOOK_DROP: enum skb_drop_reason
    __u32 mark;           // skb->mark (fib: the flow's mark)
    __u32 orig_len;       // skb->len from the network header on (the packet's full length)
    __u16 snap_len;       // bytes in snap
    __u8 hook;            // enum nsi_hook
    __u8 flags;           // enum nsi_event_flags
    char ifname[NSI_IFNAMSIZ];
    struct nsi_packet packet;
    struct nsi_packet inner;  // ICMP errors: the quoted header (inner.ip_version 0 otherwise)
    union nsi_detail detail;
    __u8 snap[NSI_SNAP_LEN]; // the packet from its network header on (not for fib/neigh)
};

/// What the packet match compares (nsi_config.match).
enum nsi_match {
    NSI_MATCH_ALL = 0,       // every packet (of the namespaces of interest)
    NSI_MATCH_ICMP_ECHO = 1, // ICMP/ICMPv6 echo request/reply with icmp_id, or an error quoting one;
                             // with NSI_CF_ADDR_A/B also one of its addresses
    NSI_MATCH_FLOW = 2,      // protocol, (addr_a, port_a) -> (addr_b, port_b) in either direction,
                             // unset fields are wildcards; or an ICMP error quoting such a packet
    NSI_MATCH_PASSIVE = 3,   // each set field must match: protocol, host addr_a, host addr_b, port_a as
                             // either port, icmp_id; or an ICMP error quoting such a packet
};

/// nsi_config.flags: which fields are set.
enum nsi_config_flags {
    NSI_CF_NETNS = 1 << 0,    // only the namespaces in the nsi_netns map (else every namespace)
    NSI_CF_PROTOCOL = 1 << 1,
    NSI_CF_ADDR_A = 1 << 2,
    NSI_CF_ADDR_B = 1 << 3,
    NSI_CF_PORT_A = 1 << 4,
    NSI_CF_PORT_B = 1 << 5,
    NSI_CF_ICMP_ID = 1 << 6,
};

/// The read-only configuration (the BPF global `nsi_cfg` in .rodata), written before the object is loaded.
struct nsi_config {
    __u32 flags;          // enum nsi_config_flags
    __u8 match;           // enum nsi_match
    __u8 protocol;        // IPPROTO_*
    __u8 addr_a_version;  // 4 or 6
    __u8 addr_b_version;
    __u8 addr_a[16];      // network order, IPv4 in the first 4 bytes
    __u8 addr_b[16];
    __u16 port_a;
    __u16 port_b;
    __u16 icmp_id;
    __u16 snap_len;       // bytes of each packet to copy into the record, 0 ... NSI_SNAP_LEN
    __u32 wakeup_bytes;   // 0: wake the reader for every record it is waiting for (the ring buffer's
                          // adaptive default); else only once this much is waiting, so a flood costs
                          // one wakeup per batch (the reader then also reads after each poll timeout)
};

/// Slots of the per-CPU counter map nsi_counters.
enum nsi_counter {
    NSI_COUNTER_EVENTS = 0, // records written to the ring buffer
    NSI_COUNTER_LOST = 1,   // records the ring buffer had no room for
    NSI_COUNTER_COUNT = 2,
};

/// Default size of the ring buffer (a power of two, a multiple of the page size).
#define NSI_RINGBUF_SIZE (8u << 20)

#endif
