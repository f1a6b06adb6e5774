// SPDX-License-Identifier: GPL-2.0
// nsinspect's packet tracer: where a packet leaves and enters interfaces (net_dev_start_xmit,
// netif_receive_skb), where the kernel drops it and why (kfree_skb), which route it chose
// (fib_table_lookup, fib6_table_lookup), which ICMP errors it caused (icmp_send), and ARP/NDP changes
// (neigh_update). All hooks are tp_btf: no kprobes, no tracefs; optional tcx programs watch chosen
// interfaces (attached by user space inside their namespace). Filtering happens here, before anything is
// copied: a set of namespace inodes (map nsi_netns) and a packet match (read-only config nsi_cfg).
// Records go to the ring buffer nsi_events; what it cannot take is counted in nsi_counters.
//
// Built by Plugins/BPFPlugin: clang -target bpf -g -O2 -D__TARGET_ARCH_x86 -I bpf, CO-RE against the
// committed vmlinux.h.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "nsinspect_events.h"

char LICENSE[] SEC("license") = "GPL";

#define NSI_ETH_P_IP 0x0800
#define NSI_ETH_P_IPV6 0x86DD
#define NSI_IPPROTO_ICMPV6 58
#define NSI_AF_INET 2
#define NSI_AF_INET6 10
#define NSI_NO_HEADER 0xffff  // an unset skb header offset

/// The configuration, written by user space before load; the verifier sees it as constants.
const volatile struct nsi_config nsi_cfg = {};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, NSI_RINGBUF_SIZE);
} nsi_events SEC(".maps");

/// Namespaces of interest (inode → 1), used when nsi_cfg.flags has NSI_CF_NETNS.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, __u8);
} nsi_netns SEC(".maps");

/// One event under construction per hook and CPU (a record is too large for the 512-byte stack). A slot per
/// hook, because a program on one hook can interrupt a program on another on the same CPU.
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, NSI_HOOK_COUNT);
    __type(key, __u32);
    __type(value, struct nsi_event);
} nsi_scratch SEC(".maps");

/// enum nsi_counter, per CPU.
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, NSI_COUNTER_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} nsi_counters SEC(".maps");

/// The packet netif_receive_skb last let through on this CPU. The input route lookup of that packet runs
/// right after it on the same CPU (softirq), so fib events can be tied to its skb and namespace.
struct nsi_stash {
    __u64 skb;
    __u32 netns;
    __u32 ifindex;
    __u8 daddr[16];
    __u8 ip_version;
    __u8 _pad[7];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct nsi_stash);
} nsi_stash SEC(".maps");

/// A packet's flow as one direction of it: addresses, ports (the echo id on both sides for ICMP echo),
/// protocol. The key of nsi_flows and the value of nsi_skbs.
struct nsi_flow_key {
    __u8 saddr[16];
    __u8 daddr[16];
    __u16 sport;
    __u16 dport;
    __u8 protocol;
    __u8 ip_version;
    __u8 _pad[2];
};

/// Following a matched packet through NAT. A packet keeps its sk_buff from hook to hook and across
/// veth crossings, while SNAT/DNAT rewrite its headers in place, after which the configured identity no
/// longer matches them. Each skb that matched is remembered with its flow; when the same skb shows up
/// with different headers that keep one side of that flow (SNAT keeps the destination, DNAT the
/// source), the rewritten flow joins nsi_flows, so the rest of its way and the replies (the reverse
/// direction) match too. A recycled skb of unrelated traffic keeps neither side and is not followed.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64);
    __type(value, struct nsi_flow_key);
} nsi_skbs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 1024);
    __type(key, struct nsi_flow_key);
    __type(value, __u8);
} nsi_flows SEC(".maps");

/// The kernel's sk_buff behind a tc program's context (kfunc, Linux 6.3).
extern void *bpf_cast_to_kern_ctx(void *ctx) __ksym;

/// Kernels before 6.13 kept the flow's TOS byte instead of its DSCP.
struct flowi_common___tos {
    __u8 flowic_tos;
} __attribute__((preserve_access_index));

// ---- counters and output --------------------------------------------------------------------------

static __always_inline void count(__u32 slot)
{
    __u64 *value = bpf_map_lookup_elem(&nsi_counters, &slot);
    if (value)
        __sync_fetch_and_add(value, 1);
}

/// Writes the record (header and snap_len bytes of the packet); a full ring buffer is counted, not silent.
static __always_inline void emit(struct nsi_event *ev)
{
    __u32 n = ev->snap_len;
    if (n > NSI_SNAP_LEN)
        n = NSI_SNAP_LEN;
    __u64 size = offsetof(struct nsi_event, snap) + n;
    __u64 flags = 0;
    if (nsi_cfg.wakeup_bytes)
        flags = bpf_ringbuf_query(&nsi_events, BPF_RB_AVAIL_DATA) >= nsi_cfg.wakeup_bytes ? BPF_RB_FORCE_WAKEUP
                                                                                          : BPF_RB_NO_WAKEUP;
    if (bpf_ringbuf_output(&nsi_events, ev, size, flags) == 0)
        count(NSI_COUNTER_EVENTS);
    else
        count(NSI_COUNTER_LOST);
}

static __always_inline struct nsi_event *scratch(__u32 hook)
{
    struct nsi_event *ev = bpf_map_lookup_elem(&nsi_scratch, &hook);
    if (!ev)
        return 0;
    __builtin_memset(ev, 0, offsetof(struct nsi_event, snap));
    ev->hook = hook;
    ev->timestamp_ns = bpf_ktime_get_ns();
    return ev;
}

// ---- namespace filter -----------------------------------------------------------------------------

enum netns_verdict { NETNS_NO = 0, NETNS_YES = 1, NETNS_UNKNOWN = 2 };

/// Whether events of this namespace are wanted. An unknown namespace (an skb without device or socket)
/// is decided by the packet match alone, and only when there is one.
static __always_inline enum netns_verdict netns_wanted(__u32 netns)
{
    if (!(nsi_cfg.flags & NSI_CF_NETNS))
        return NETNS_YES;
    if (netns == 0)
        return nsi_cfg.match == NSI_MATCH_ALL ? NETNS_NO : NETNS_UNKNOWN;
    return bpf_map_lookup_elem(&nsi_netns, &netns) ? NETNS_YES : NETNS_NO;
}

static __always_inline __u32 netns_of_dev(struct net_device *dev)
{
    return dev ? dev->nd_net.net->ns.inum : 0;
}

static __always_inline void read_ifname(struct nsi_event *ev, struct net_device *dev)
{
    if (!dev)
        return;
    ev->ifindex = dev->ifindex;
    bpf_probe_read_kernel_str(ev->ifname, sizeof(ev->ifname), dev->name);
}

// ---- packet parsing (from kernel memory, bounded by the linear data) ------------------------------

static __always_inline __u16 be16_at(const __u8 *b)
{
    return ((__u16)b[0] << 8) | b[1];
}

/// Parses an IPv4 or IPv6 header at `base` (`avail` readable bytes). Returns the transport header's offset,
/// or 0 when there is none to parse (too short, not IP, a later fragment).
static __always_inline __u32 parse_ip(const unsigned char *base, __u32 avail, struct nsi_packet *p)
{
    __u8 b[40];
    if (avail < 20)
        return 0;
    __u32 n = avail < 40 ? 20 : 40;
    if (bpf_probe_read_kernel(b, n, base))
        return 0;
    __u8 version = b[0] >> 4;
    if (version == 4) {
        __u32 ihl = (b[0] & 0x0f) * 4;
        if (ihl < 20)
            return 0;
        p->ip_version = 4;
        p->tos = b[1];
        p->total_length = be16_at(&b[2]);
        p->ip_id = be16_at(&b[4]);
        p->ttl = b[8];
        p->protocol = b[9];
        __builtin_memcpy(p->saddr, &b[12], 4);
        __builtin_memcpy(p->daddr, &b[16], 4);
        if (be16_at(&b[6]) & 0x1fff)  // not the first fragment: no transport header
            return 0;
        return ihl;
    }
    if (version == 6 && n == 40) {
        p->ip_version = 6;
        p->tos = (b[0] << 4) | (b[1] >> 4);
        p->total_length = be16_at(&b[4]) + 40;
        p->protocol = b[6];
        p->ttl = b[7];
        __builtin_memcpy(p->saddr, &b[8], 16);
        __builtin_memcpy(p->daddr, &b[24], 16);
        return 40;
    }
    return 0;
}

static __always_inline int is_icmp(const struct nsi_packet *p)
{
    return (p->ip_version == 4 && p->protocol == IPPROTO_ICMP) ||
           (p->ip_version == 6 && p->protocol == NSI_IPPROTO_ICMPV6);
}

static __always_inline int is_echo(const struct nsi_packet *p)
{
    if (!is_icmp(p) || !p->l4_valid)
        return 0;
    if (p->ip_version == 4)
        return p->icmp_type == 8 || p->icmp_type == 0;
    return p->icmp_type == 128 || p->icmp_type == 129;
}

/// ICMP messages that quote the header of the packet they are about.
static __always_inline int is_icmp_error(const struct nsi_packet *p)
{
    if (!is_icmp(p) || !p->l4_valid)
        return 0;
    if (p->ip_version == 4)  // unreachable, source quench, redirect, time exceeded, parameter problem
        return p->icmp_type == 3 || p->icmp_type == 4 || p->icmp_type == 5 || p->icmp_type == 11 ||
               p->icmp_type == 12;
    return p->icmp_type >= 1 && p->icmp_type <= 4;  // unreachable, too big, time exceeded, parameter problem
}

/// Parses the transport header at `base + off`.
static __always_inline void parse_l4(const unsigned char *base, __u32 avail, __u32 off, struct nsi_packet *p)
{
    __u8 b[16];
    if (off >= avail || avail - off < 8)
        return;
    __u32 n = avail - off;
    if (n > 16)
        n = 16;
    if (bpf_probe_read_kernel(b, n, base + off))
        return;
    if (p->protocol == IPPROTO_TCP || p->protocol == IPPROTO_UDP) {
        p->sport = be16_at(&b[0]);
        p->dport = be16_at(&b[2]);
        if (p->protocol == IPPROTO_TCP && n >= 14)
            p->tcp_flags = b[13];
        p->l4_valid = 1;
    } else if (is_icmp(p)) {
        p->icmp_type = b[0];
        p->icmp_code = b[1];
        p->l4_valid = 1;
        if (is_echo(p)) {
            p->icmp_id = be16_at(&b[4]);
            p->icmp_seq = be16_at(&b[6]);
        }
    }
}

/// Parses the packet and, for an ICMP error, the header it quotes.
static __always_inline void parse_packet(const unsigned char *nh, __u32 avail, struct nsi_event *ev)
{
    __u32 off = parse_ip(nh, avail, &ev->packet);
    if (!off)
        return;
    parse_l4(nh, avail, off, &ev->packet);
    if (!is_icmp_error(&ev->packet))
        return;
    __u32 start = off + 8;
    if (start >= avail)
        return;
    __u32 inner = parse_ip(nh + start, avail - start, &ev->inner);
    if (inner)
        parse_l4(nh + start, avail - start, inner, &ev->inner);
}

// ---- packet match ---------------------------------------------------------------------------------

/// Compares a packet address with a configured one. With `zero_is_any`, an all-zero address (a route
/// lookup's source before one is chosen) matches anything.
static __always_inline int addr_is(const __u8 *addr, __u8 version, const volatile __u8 *want, __u8 want_version,
                                   int zero_is_any)
{
    const __u32 *a = (const __u32 *)addr;
    const volatile __u32 *w = (const volatile __u32 *)want;
    if (zero_is_any && a[0] == 0 && (version == 4 || (a[1] == 0 && a[2] == 0 && a[3] == 0)))
        return 1;
    if (version != want_version || a[0] != w[0])
        return 0;
    return version == 4 || (a[1] == w[1] && a[2] == w[2] && a[3] == w[3]);
}

static __always_inline int has_host(const struct nsi_packet *p, const volatile __u8 *want, __u8 want_version,
                                    int partial)
{
    return addr_is(p->saddr, p->ip_version, want, want_version, partial) ||
           addr_is(p->daddr, p->ip_version, want, want_version, 0);
}

/// FLOW: src → dst against a → b (forward) or b → a (reverse); unset fields match anything.
static __always_inline int flow_direction(const struct nsi_packet *p, int reverse, int partial)
{
    __u32 f = nsi_cfg.flags;
    const __u8 *src = reverse ? p->daddr : p->saddr;
    const __u8 *dst = reverse ? p->saddr : p->daddr;
    __u16 sport = reverse ? p->dport : p->sport;
    __u16 dport = reverse ? p->sport : p->dport;
    if ((f & NSI_CF_ADDR_A) && !addr_is(src, p->ip_version, nsi_cfg.addr_a, nsi_cfg.addr_a_version, partial && !reverse))
        return 0;
    if ((f & NSI_CF_ADDR_B) && !addr_is(dst, p->ip_version, nsi_cfg.addr_b, nsi_cfg.addr_b_version, partial && reverse))
        return 0;
    if ((f & NSI_CF_PORT_A) && sport != nsi_cfg.port_a)
        return 0;
    if ((f & NSI_CF_PORT_B) && dport != nsi_cfg.port_b)
        return 0;
    return 1;
}

/// Whether one parsed header matches the configured identity or filter. `partial`: a route lookup's flow,
/// which has no ICMP id and maybe no source address yet; those fields are not compared.
static __always_inline int header_matches(const struct nsi_packet *p, int partial)
{
    __u32 f = nsi_cfg.flags;
    if (p->ip_version == 0)
        return 0;
    switch (nsi_cfg.match) {
    case NSI_MATCH_ICMP_ECHO:
        if (!is_echo(p) || (!partial && p->icmp_id != nsi_cfg.icmp_id))
            return 0;
        if ((f & NSI_CF_ADDR_A) && !has_host(p, nsi_cfg.addr_a, nsi_cfg.addr_a_version, partial))
            return 0;
        if ((f & NSI_CF_ADDR_B) && !has_host(p, nsi_cfg.addr_b, nsi_cfg.addr_b_version, partial))
            return 0;
        return 1;
    case NSI_MATCH_FLOW:
        if (p->protocol != nsi_cfg.protocol || !p->l4_valid)
            return 0;
        return flow_direction(p, 0, partial) || flow_direction(p, 1, partial);
    case NSI_MATCH_PASSIVE:
        if ((f & NSI_CF_PROTOCOL) && p->protocol != nsi_cfg.protocol)
            return 0;
        if ((f & NSI_CF_ADDR_A) && !has_host(p, nsi_cfg.addr_a, nsi_cfg.addr_a_version, partial))
            return 0;
        if ((f & NSI_CF_ADDR_B) && !has_host(p, nsi_cfg.addr_b, nsi_cfg.addr_b_version, partial))
            return 0;
        if ((f & NSI_CF_PORT_A) && (!p->l4_valid || (p->sport != nsi_cfg.port_a && p->dport != nsi_cfg.port_a)))
            return 0;
        if ((f & NSI_CF_ICMP_ID) && (!is_echo(p) || (!partial && p->icmp_id != nsi_cfg.icmp_id)))
            return 0;
        return 1;
    default:
        return 1;
    }
}

/// The packet matches, or it is an ICMP error quoting a packet that matches.
static __always_inline int packet_matches(const struct nsi_event *ev)
{
    if (nsi_cfg.match == NSI_MATCH_ALL)
        return 1;
    return header_matches(&ev->packet, 0) || header_matches(&ev->inner, 0);
}

// ---- following through NAT --------------------------------------------------------------------------

static __always_inline int flow_key(const struct nsi_packet *p, struct nsi_flow_key *k, int reverse)
{
    if (p->ip_version == 0 || !p->l4_valid)
        return 0;
    __builtin_memset(k, 0, sizeof(*k));
    __builtin_memcpy(k->saddr, reverse ? p->daddr : p->saddr, 16);
    __builtin_memcpy(k->daddr, reverse ? p->saddr : p->daddr, 16);
    if (is_echo(p)) {
        k->sport = p->icmp_id;
        k->dport = p->icmp_id;
    } else if (is_icmp(p)) {
        return 0;
    } else {
        k->sport = reverse ? p->dport : p->sport;
        k->dport = reverse ? p->sport : p->dport;
    }
    k->protocol = p->protocol;
    k->ip_version = p->ip_version;
    return 1;
}

static __always_inline int same_addr(const __u8 *a, const __u8 *b)
{
    const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/// A packet that matched: remember its skb and flow.
static __always_inline void remember(__u64 skb, const struct nsi_packet *p)
{
    struct nsi_flow_key k;
    if (flow_key(p, &k, 0))
        bpf_map_update_elem(&nsi_skbs, &skb, &k, BPF_ANY);
}

/// A packet that did not match: is it a matched packet after NAT, or a packet of a flow NAT made?
static __always_inline int followed(__u64 skb, const struct nsi_packet *p)
{
    struct nsi_flow_key now;
    if (!flow_key(p, &now, 0))
        return 0;
    if (bpf_map_lookup_elem(&nsi_flows, &now))
        return 1;
    struct nsi_flow_key *was = bpf_map_lookup_elem(&nsi_skbs, &skb);
    if (!was || was->protocol != now.protocol || was->ip_version != now.ip_version)
        return 0;
    int kept_destination = same_addr(was->daddr, now.daddr) && was->dport == now.dport;
    int kept_source = same_addr(was->saddr, now.saddr) && was->sport == now.sport;
    if (!kept_destination && !kept_source)
        return 0;
    __u8 one = 1;
    bpf_map_update_elem(&nsi_flows, &now, &one, BPF_ANY);
    struct nsi_flow_key back;
    if (flow_key(p, &back, 1))
        bpf_map_update_elem(&nsi_flows, &back, &one, BPF_ANY);
    bpf_map_update_elem(&nsi_skbs, &skb, &now, BPF_ANY);
    return 1;
}

/// An ICMP error quoting a packet of a flow NAT made (the port unreachable for a probe after SNAT).
static __always_inline int quotes_followed(const struct nsi_packet *inner)
{
    struct nsi_flow_key k;
    return flow_key(inner, &k, 0) && bpf_map_lookup_elem(&nsi_flows, &k) != 0;
}

// ---- skb hooks ------------------------------------------------------------------------------------

/// The common path of every hook that has an skb: namespace filter, parse, packet match, then the
/// device, the copy of the packet and the record. Returns the event when it matched (written or lost).
static __always_inline struct nsi_event *handle_skb(struct sk_buff *skb, __u32 hook)
{
    struct net_device *dev = skb->dev;
    __u32 netns = netns_of_dev(dev);
    __u8 flags = 0;
    if (!netns) {
        struct sock *sk = skb->sk;
        if (sk) {
            netns = sk->__sk_common.skc_net.net->ns.inum;
            flags = NSI_EF_NETNS_FROM_SOCKET;
        }
    }
    if (netns_wanted(netns) == NETNS_NO)
        return 0;
    struct nsi_event *ev = scratch(hook);
    if (!ev)
        return 0;

    // Where the IP header is: at receive skb->data (the network header offset is not reset yet on every
    // device), elsewhere the network header (skb->data is the MAC header at transmit).
    unsigned char *head = skb->head;
    unsigned char *data = skb->data;
    __u32 len = skb->len;
    __u32 linear = len - skb->data_len;
    unsigned char *nh = data;
    __u32 avail = linear;
    __u16 off = skb->network_header;
    if (hook != NSI_HOOK_RECV && off != NSI_NO_HEADER) {
        nh = head + off;
        __u32 tail = skb->tail;  // an offset from head on 64-bit kernels
        avail = tail > off ? tail - off : 0;
    }
    __s64 skipped = nh - data;
    ev->orig_len = skipped >= 0 && skipped < len ? len - (__u32)skipped : len;

    __u16 proto = bpf_ntohs(skb->protocol);
    if (proto == NSI_ETH_P_IP || proto == NSI_ETH_P_IPV6)
        parse_packet(nh, avail, ev);
    if (nsi_cfg.match != NSI_MATCH_ALL) {
        if (packet_matches(ev))
            remember((__u64)skb, &ev->packet);
        else if (!followed((__u64)skb, &ev->packet) && !quotes_followed(&ev->inner))
            return 0;
    }

    ev->skb = (__u64)skb;
    ev->netns = netns;
    ev->flags = flags;
    ev->mark = skb->mark;
    read_ifname(ev, dev);

    __u32 n = nsi_cfg.snap_len;
    if (n > avail)
        n = avail;
    if (n > NSI_SNAP_LEN)
        n = NSI_SNAP_LEN;
    if (n && bpf_probe_read_kernel(ev->snap, n, nh))
        n = 0;
    ev->snap_len = n;
    return ev;
}

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(nsi_xmit, const struct sk_buff *skb, const struct net_device *dev)
{
    struct nsi_event *ev = handle_skb((struct sk_buff *)skb, NSI_HOOK_XMIT);
    if (ev)
        emit(ev);
    return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(nsi_recv, struct sk_buff *skb)
{
    __u32 zero = 0;
    struct nsi_stash *stash = bpf_map_lookup_elem(&nsi_stash, &zero);
    if (stash)
        stash->skb = 0;
    struct nsi_event *ev = handle_skb(skb, NSI_HOOK_RECV);
    if (!ev)
        return 0;
    if (stash) {
        stash->netns = ev->netns;
        stash->ifindex = ev->ifindex;
        stash->ip_version = ev->packet.ip_version;
        __builtin_memcpy(stash->daddr, ev->packet.daddr, 16);
        stash->skb = ev->skb;
    }
    emit(ev);
    return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(nsi_drop, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
    struct nsi_event *ev = handle_skb(skb, NSI_HOOK_DROP);
    if (!ev)
        return 0;
    ev->drop_reason = reason;
    ev->detail.drop.location = (__u64)location;
    emit(ev);
    return 0;
}

SEC("tp_btf/icmp_send")
int BPF_PROG(nsi_icmp_send, const struct sk_buff *skb, int type, int code)
{
    struct nsi_event *ev = handle_skb((struct sk_buff *)skb, NSI_HOOK_ICMP_SEND);
    if (!ev)
        return 0;
    ev->detail.icmp.type = type;
    ev->detail.icmp.code = code;
    emit(ev);
    return 0;
}

// ---- tcx: per-interface hooks, loaded only when an interface is asked for ------------------------

/// Returns TCX_NEXT: the tracer never changes what happens to a packet.
static __always_inline int tcx(struct __sk_buff *ctx, __u32 hook)
{
    struct nsi_event *ev = handle_skb(bpf_cast_to_kern_ctx(ctx), hook);
    if (ev)
        emit(ev);
    return TCX_NEXT;
}

SEC("tc")
int nsi_tcx_ingress(struct __sk_buff *ctx) { return tcx(ctx, NSI_HOOK_TCX_INGRESS); }

SEC("tc")
int nsi_tcx_egress(struct __sk_buff *ctx) { return tcx(ctx, NSI_HOOK_TCX_EGRESS); }

// ---- route lookups --------------------------------------------------------------------------------

/// The packet last received on this CPU, when this lookup is about it: its input route lookup (input
/// interface = where it arrived), or one the kernel makes while answering it (no input interface, or
/// loopback's: ICMP errors, source checks). `netns` is the lookup's own namespace when the hook knows it
/// (the chosen next hop's device, or the fib6 tracepoint's `net`; 0 when unknown): the stash is a
/// per-CPU leftover that outlives its softirq, so a later output lookup in another namespace for the
/// same destination (the sender's next probe) must not take the stash's namespace.
static __always_inline struct nsi_stash *stash_for(__u8 version, const __u8 *daddr, __u32 iif, __u32 netns)
{
    __u32 zero = 0;
    struct nsi_stash *stash = bpf_map_lookup_elem(&nsi_stash, &zero);
    if (!stash || !stash->skb || stash->ip_version != version || (iif > 1 && stash->ifindex != iif))
        return 0;
    if (netns && stash->netns != netns)
        return 0;
    // An output lookup (iif is loopback's) whose namespace nothing tells: only the packet being answered
    // could make it, and nothing ties it to this stash either.
    if (!netns && iif <= 1)
        return 0;
    const __u32 *a = (const __u32 *)daddr;
    const __u32 *s = (const __u32 *)stash->daddr;
    if (a[0] != s[0])
        return 0;
    if (version == 6 && (a[1] != s[1] || a[2] != s[2] || a[3] != s[3]))
        return 0;
    return stash;
}

/// Ports or ICMP type/code of a route lookup's flow, into the event's packet.
static __always_inline void flow_l4(struct nsi_packet *p, const union flowi_uli *uli)
{
    if (p->protocol == IPPROTO_TCP || p->protocol == IPPROTO_UDP) {
        p->sport = bpf_ntohs(uli->ports.sport);
        p->dport = bpf_ntohs(uli->ports.dport);
        p->l4_valid = 1;
    } else if (is_icmp(p)) {
        p->icmp_type = uli->icmpt.type;
        p->icmp_code = uli->icmpt.code;
        p->l4_valid = 1;
    }
}

/// The chosen next hop: output device and gateway.
static __always_inline void fib_nexthop(struct nsi_event *ev, const struct fib_nh_common *nhc)
{
    if (!nhc)
        return;
    struct net_device *dev = nhc->nhc_dev;
    read_ifname(ev, dev);
    ev->detail.fib.oif = ev->ifindex;
    __u8 gw = nhc->nhc_gw_family;
    if (gw == NSI_AF_INET) {
        ev->detail.fib.gw_version = 4;
        bpf_probe_read_kernel(ev->detail.fib.gateway, 4, &nhc->nhc_gw.ipv4);
    } else if (gw == NSI_AF_INET6) {
        ev->detail.fib.gw_version = 6;
        bpf_probe_read_kernel(ev->detail.fib.gateway, 16, &nhc->nhc_gw.ipv6);
    }
}

/// Namespace filter and packet match of a route lookup; fills skb and netns. 0: not wanted.
static __always_inline int fib_wanted(struct nsi_event *ev, struct nsi_stash *stash, __u32 netns)
{
    if (stash) {
        ev->skb = stash->skb;
        ev->flags |= NSI_EF_FROM_RECV_STASH;
        netns = stash->netns;
    }
    enum netns_verdict verdict = netns_wanted(netns);
    if (verdict == NETNS_NO)
        return 0;
    if (!stash && nsi_cfg.match != NSI_MATCH_ALL && !header_matches(&ev->packet, 1))
        return 0;
    ev->netns = netns;
    return 1;
}

static __always_inline __u8 flow_tos(const struct flowi_common *common)
{
    if (bpf_core_field_exists(common->flowic_dscp))
        return common->flowic_dscp << 2;
    return ((const struct flowi_common___tos *)common)->flowic_tos;
}

/// What IPv4 and IPv6 flows share: protocol, TOS, interfaces, mark; ports or ICMP type from `uli`.
static __always_inline struct nsi_event *fib_event(__u32 hook, __u8 version, const struct flowi_common *common,
                                                   const union flowi_uli *uli)
{
    struct nsi_event *ev = scratch(hook);
    if (!ev)
        return 0;
    struct nsi_packet *p = &ev->packet;
    p->ip_version = version;
    p->protocol = common->flowic_proto;
    p->tos = flow_tos(common);
    flow_l4(p, uli);
    ev->detail.fib.flow_iif = common->flowic_iif;
    ev->detail.fib.flow_oif = common->flowic_oif;
    ev->mark = common->flowic_mark;
    return ev;
}

SEC("tp_btf/fib_table_lookup")
int BPF_PROG(nsi_fib, u32 table, const struct flowi4 *flp, const struct fib_nh_common *nhc, int err)
{
    struct nsi_event *ev = fib_event(NSI_HOOK_FIB, 4, &flp->__fl_common, &flp->uli);
    if (!ev)
        return 0;
    __u32 saddr = flp->saddr, daddr = flp->daddr;
    __builtin_memcpy(ev->packet.saddr, &saddr, 4);
    __builtin_memcpy(ev->packet.daddr, &daddr, 4);
    ev->detail.fib.table = table;
    ev->detail.fib.err = err;
    fib_nexthop(ev, nhc);

    __u32 netns = nhc ? netns_of_dev(nhc->nhc_dev) : 0;
    barrier_var(netns);
    if (!fib_wanted(ev, stash_for(4, ev->packet.daddr, ev->detail.fib.flow_iif, netns), netns))
        return 0;
    emit(ev);
    return 0;
}

/// ip6_rt_type_to_error: what a route of this type makes of the packet.
static __always_inline int rt6_type_error(__u8 type)
{
    switch (type) {
    case 6: return -22;   // RTN_BLACKHOLE: -EINVAL
    case 7: return -113;  // RTN_UNREACHABLE: -EHOSTUNREACH
    case 8: return -13;   // RTN_PROHIBIT: -EACCES
    case 9: return -11;   // RTN_THROW: -EAGAIN
    default: return 0;
    }
}

SEC("tp_btf/fib6_table_lookup")
int BPF_PROG(nsi_fib6, const struct net *net, const struct fib6_result *res, struct fib6_table *table,
             const struct flowi6 *flp)
{
    struct nsi_event *ev = fib_event(NSI_HOOK_FIB6, 6, &flp->__fl_common, &flp->uli);
    if (!ev)
        return 0;
    bpf_probe_read_kernel(ev->packet.saddr, 16, &flp->saddr);
    bpf_probe_read_kernel(ev->packet.daddr, 16, &flp->daddr);
    ev->detail.fib.table = table ? table->tb6_id : 0;
    __u8 type = res->fib6_type;
    ev->detail.fib.route_type = type;
    ev->detail.fib.err = rt6_type_error(type);
    struct fib6_nh *nh = res->nh;
    if (nh)
        fib_nexthop(ev, &nh->nh_common);

    __u32 netns = net->ns.inum;
    barrier_var(netns);  // keep this load apart from the stash's: one load insn for two pointer kinds is refused
    if (!fib_wanted(ev, stash_for(6, ev->packet.daddr, ev->detail.fib.flow_iif, netns), netns))
        return 0;
    emit(ev);
    return 0;
}

// ---- neighbours -----------------------------------------------------------------------------------

SEC("tp_btf/neigh_update")
int BPF_PROG(nsi_neigh, struct neighbour *n, const u8 *lladdr, u8 new_state, u32 flags, u32 nlmsg_pid)
{
    struct net_device *dev = n->dev;
    __u32 netns = netns_of_dev(dev);
    if (netns_wanted(netns) != NETNS_YES)
        return 0;
    struct nsi_event *ev = scratch(NSI_HOOK_NEIGH);
    if (!ev)
        return 0;
    ev->netns = netns;
    read_ifname(ev, dev);
    struct nsi_neigh *d = &ev->detail.neigh;
    struct neigh_table *tbl = n->tbl;
    int family = tbl ? tbl->family : 0;
    if (family == NSI_AF_INET) {
        d->ip_version = 4;
        bpf_probe_read_kernel(d->addr, 4, &n->primary_key);
    } else if (family == NSI_AF_INET6) {
        d->ip_version = 6;
        bpf_probe_read_kernel(d->addr, 16, &n->primary_key);
    }
    __u8 addr_len = dev ? dev->addr_len : 0;
    if (addr_len > sizeof(d->lladdr))
        addr_len = sizeof(d->lladdr);
    if (addr_len) {
        if (lladdr)
            bpf_probe_read_kernel(d->lladdr, addr_len, lladdr);
        else
            bpf_probe_read_kernel(d->lladdr, addr_len, &n->ha);
    }
    d->lladdr_len = addr_len;
    d->old_state = n->nud_state;
    d->new_state = new_state;
    d->update_flags = flags;
    emit(ev);
    return 0;
}
