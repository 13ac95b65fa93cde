/* Kernel side of the cgroup-scoped network faults: connect/sendmsg refusals and skb drops for the sockets of one cgroup v2 directory. */
/*
 * Headers are read only from packet copies and the context, which need no relocation: without
 * CO-RE records libbpf need not parse the kernel's BTF at load (~5 ms of every apply).
 */
#define BPF_NO_PRESERVE_ACCESS_INDEX
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "net_cgroup.h"
#include "bpf_common.bpf.h"

/* vmlinux.h carries types, not macros. */
#define FL_SOCK_STREAM 1
#define FL_ETH_P_IP 0x0800
#define FL_ETH_P_IPV6 0x86DD
#define FL_IPPROTO_ICMP 1
#define FL_IPPROTO_TCP 6
#define FL_IPPROTO_UDP 17
#define FL_IPPROTO_UDPLITE 136
#define FL_IPPROTO_ICMPV6 58
#define FL_IP_OFFSET 0x1fff

char LICENSE[] SEC("license") = "GPL";

/* The only .rodata variable, so it sits at offset 0 (the loader asserts it). */
const volatile struct fl_cg_cfg fl_cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FL_CG_NCOUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} fl_cg_counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
	fl_bpf_count(&fl_cg_counters, slot);
}

/* The probability roll: one random draw per matched event. */
static __always_inline bool roll(void)
{
	return fl_bpf_roll(fl_cfg.threshold);
}

static __always_inline bool proto_ok(__u32 proto_bit)
{
	return fl_cfg.protos & proto_bit;
}

static __always_inline bool port_ok(__u32 want, __u32 port)
{
	return !want || want == port;
}

/* addr: words in network byte order; v6 selects 4 words, else word 0 is the IPv4 address. */
static __always_inline bool end_addr_ok(const volatile struct fl_cg_end *e, const __u32 *addr, bool v6)
{
	return !e->has_addr || fl_bpf_cidr_has(e->addr, e->mask, e->family != FL_CG_F_V4, addr, v6);
}

/* ---- connect() and sendmsg(): refuse with the configured errno ------------------------------ */

/* By protocol, not only type: a ping socket is SOCK_DGRAM too. MPTCP is TCP to the user. */
static __always_inline __u32 sock_proto_bit(const struct bpf_sock_addr *ctx)
{
	if (ctx->type == FL_SOCK_STREAM)
		return FL_CG_P_TCP;
	if (ctx->protocol == FL_IPPROTO_UDP || ctx->protocol == FL_IPPROTO_UDPLITE)
		return FL_CG_P_UDP;
	if (ctx->protocol == FL_IPPROTO_ICMP || ctx->protocol == FL_IPPROTO_ICMPV6)
		return FL_CG_P_ICMP;
	return FL_CG_P_OTHER;
}

/* 1: let the call go on; 0: refuse it with fl_cfg.err. */
static __always_inline int sock_addr_verdict(struct bpf_sock_addr *ctx, bool v6, __u32 slot_matched)
{
	__u32 addr[4];

	if (!proto_ok(sock_proto_bit(ctx)))
		return 1;
	if (!port_ok(fl_cfg.peer.port, bpf_ntohs((__u16)ctx->user_port)))
		return 1;
	if (v6) {
		addr[0] = ctx->user_ip6[0];
		addr[1] = ctx->user_ip6[1];
		addr[2] = ctx->user_ip6[2];
		addr[3] = ctx->user_ip6[3];
	} else {
		addr[0] = ctx->user_ip4;
		addr[1] = addr[2] = addr[3] = 0;
	}
	if (!end_addr_ok(&fl_cfg.peer, addr, v6))
		return 1;
	count(slot_matched);
	if (!roll()) {
		count(slot_matched + 2);
		return 1;
	}
	count(slot_matched + 1);
	/* without it a refused connect surfaces as EPERM */
	bpf_set_retval(-(int)fl_cfg.err);
	return 0;
}

SEC("cgroup/connect4")
int fl_cg_connect4(struct bpf_sock_addr *ctx)
{
	return sock_addr_verdict(ctx, false, FL_CG_CONN_MATCHED);
}

SEC("cgroup/connect6")
int fl_cg_connect6(struct bpf_sock_addr *ctx)
{
	return sock_addr_verdict(ctx, true, FL_CG_CONN_MATCHED);
}

/* Only unconnected UDP sends reach these (a connected socket was judged at connect). */
SEC("cgroup/sendmsg4")
int fl_cg_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_addr_verdict(ctx, false, FL_CG_SEND_MATCHED);
}

SEC("cgroup/sendmsg6")
int fl_cg_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock_addr_verdict(ctx, true, FL_CG_SEND_MATCHED);
}

/* ---- packets: drop what matches ------------------------------------------------------------- */

struct pkt {
	__u32 src[4], dst[4];
	__u32 sport, dport;  /* host order, 0 when the protocol has none (or a later fragment) */
	__u32 proto_bit;
	bool v6;
};

static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	__u8 l4proto;
	__u32 l4off;
	__u16 ports[2];

	if (skb->protocol == bpf_htons(FL_ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return -1;
		p->v6 = false;
		p->src[0] = ip.saddr;
		p->dst[0] = ip.daddr;
		p->src[1] = p->src[2] = p->src[3] = 0;
		p->dst[1] = p->dst[2] = p->dst[3] = 0;
		l4proto = ip.protocol;
		l4off = (__u32)ip.ihl * 4;
		/* a later fragment has no ports: it matches only rules without ports */
		if (ip.frag_off & bpf_htons(FL_IP_OFFSET))
			l4off = 0;
	} else if (skb->protocol == bpf_htons(FL_ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return -1;
		p->v6 = true;
		__builtin_memcpy(p->src, &ip6.saddr, 16);
		__builtin_memcpy(p->dst, &ip6.daddr, 16);
		/* extension headers are not walked: such packets count as "other" */
		l4proto = ip6.nexthdr;
		l4off = sizeof(ip6);
	} else {
		return -1;
	}
	p->sport = p->dport = 0;
	if (l4proto == FL_IPPROTO_TCP || l4proto == FL_IPPROTO_UDP) {
		p->proto_bit = l4proto == FL_IPPROTO_TCP ? FL_CG_P_TCP : FL_CG_P_UDP;
		if (l4off && !bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports))) {
			p->sport = bpf_ntohs(ports[0]);
			p->dport = bpf_ntohs(ports[1]);
		}
	} else if (l4proto == FL_IPPROTO_ICMP || l4proto == FL_IPPROTO_ICMPV6) {
		p->proto_bit = FL_CG_P_ICMP;
	} else {
		p->proto_bit = FL_CG_P_OTHER;
	}
	return 0;
}

/* Does the packet match, with peer/local being its src/dst as the direction says? */
static __always_inline bool pkt_match(struct __sk_buff *skb, const struct pkt *p, bool ingress)
{
	const __u32 *peer = ingress ? p->src : p->dst, *local = ingress ? p->dst : p->src;
	__u32 peer_port = ingress ? p->sport : p->dport, local_port = ingress ? p->dport : p->sport;

	if (!(fl_cfg.families & (p->v6 ? FL_CG_F_V6 : FL_CG_F_V4)) || !proto_ok(p->proto_bit))
		return false;
	if (fl_cfg.ifindex && skb->ifindex != fl_cfg.ifindex)
		return false;
	/* a port rule never matches a packet without ports */
	if ((fl_cfg.peer.port && fl_cfg.peer.port != peer_port) ||
	    (fl_cfg.local.port && fl_cfg.local.port != local_port))
		return false;
	/* on the wire an IPv4 packet is IPv4 even from a v6 socket: no mapped form to undo here */
	if (fl_cfg.peer.has_addr && (fl_cfg.peer.family == FL_CG_F_V6) != p->v6)
		return false;
	if (fl_cfg.local.has_addr && (fl_cfg.local.family == FL_CG_F_V6) != p->v6)
		return false;
	return end_addr_ok(&fl_cfg.peer, peer, p->v6) && end_addr_ok(&fl_cfg.local, local, p->v6);
}

/* murmur3's mixing steps: cheap, and good enough to split flows by a threshold */
static __always_inline __u32 mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = (k << 15) | (k >> 17);
	k *= 0x1b873593;
	h ^= k;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64;
}

/*
 * Per-flow roll: peer and local ends are hashed in that order whatever the direction, so the
 * packets of one connection both ways (and its SYN retransmits) all get the same verdict.
 */
static __always_inline bool roll_flow(const struct pkt *p, bool ingress)
{
	const __u32 *peer = ingress ? p->src : p->dst, *local = ingress ? p->dst : p->src;
	__u32 peer_port = ingress ? p->sport : p->dport, local_port = ingress ? p->dport : p->sport;
	__u32 h = (__u32)fl_cfg.tag;

	if (fl_cfg.threshold >= (1ULL << 32))
		return true;
	for (int i = 0; i < 4; i++) {
		h = mix(h, peer[i]);
		h = mix(h, local[i]);
	}
	h = mix(h, (peer_port << 16) | local_port);
	h = mix(h, p->proto_bit);
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return (__u64)h < fl_cfg.threshold;
}

static __always_inline int skb_verdict(struct __sk_buff *skb, bool ingress, __u32 slot_matched)
{
	struct pkt p;

	if (parse(skb, &p) || !pkt_match(skb, &p, ingress))
		return 1;
	/*
	 * ICMP and other protocols are cut on the way back only: a dropped ping on egress is an
	 * error (ENOBUFS/EPERM) to its sender, which no real blackhole produces.
	 */
	if (!ingress && p.proto_bit != FL_CG_P_TCP && p.proto_bit != FL_CG_P_UDP)
		return 1;
	count(slot_matched);
	if (!(fl_cfg.per_flow ? roll_flow(&p, ingress) : roll())) {
		count(slot_matched + 2);
		return 1;
	}
	count(slot_matched + 1);
	/*
	 * Ingress: any drop is silent. Egress TCP: a plain drop is a local error that TCP retries
	 * with its normal backoff (a SYN is retransmitted, so connect() hangs). Egress UDP: drop +
	 * congestion makes sendmsg() report success unless the socket asked for IP_RECVERR.
	 */
	if (ingress || p.proto_bit == FL_CG_P_TCP)
		return FL_CG_SKB_DROP;
	return fl_cfg.skb_verdict;
}

SEC("cgroup_skb/egress")
int fl_cg_egress(struct __sk_buff *skb)
{
	return skb_verdict(skb, false, FL_CG_EGRESS_MATCHED);
}

SEC("cgroup_skb/ingress")
int fl_cg_ingress(struct __sk_buff *skb)
{
	return skb_verdict(skb, true, FL_CG_INGRESS_MATCHED);
}
