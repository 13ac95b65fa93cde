/* The tc classifier behind every netem/tbf fault: packets the fault's match selects go to its class, the rest pass untouched. */
/*
 * Headers are read only from packet copies and the context, which need no relocation: without
 * CO-RE records libbpf need not parse the kernel's BTF at load (~5 ms of every apply).
 */
#define BPF_NO_PRESERVE_ACCESS_INDEX
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "net_tc.h"

char LICENSE[] SEC("license") = "GPL";

/* vmlinux.h has types, not macros */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMP 1
#define PROTO_ICMPV6 58
#define IP_OFFMASK 0x1fff

const volatile struct fl_tc_match cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fl_tc_counters);
} fl_tc_stats SEC(".maps");

static __always_inline bool addr_in(const __u8 *a, const volatile __u8 *net, const volatile __u8 *mask,
				    int n)
{
	for (int i = 0; i < n; i++)
		if ((a[i] & mask[i]) != net[i])
			return false;
	return true;
}

static __always_inline bool proto_ok(__u8 p)
{
	if (cfg.proto)
		return p == cfg.proto;
	/* ports without a protocol mean tcp or udp: nothing else has them */
	if (cfg.dport || cfg.sport)
		return p == PROTO_TCP || p == PROTO_UDP;
	return true;
}

/* Offsets are from the network header: no guess about what link header comes before it. */
static __always_inline int load_net(struct __sk_buff *skb, __u32 off, void *to, __u32 len)
{
	return bpf_skb_load_bytes_relative(skb, off, to, len, BPF_HDR_START_NET);
}

static __always_inline bool ports_ok(struct __sk_buff *skb, __u32 l4, __u8 p)
{
	__u16 ports[2];

	if (!cfg.dport && !cfg.sport)
		return true;
	if (p != PROTO_TCP && p != PROTO_UDP)
		return false;
	if (load_net(skb, l4, ports, sizeof(ports)) < 0)
		return false;
	if (cfg.sport && bpf_ntohs(ports[0]) != cfg.sport)
		return false;
	if (cfg.dport && bpf_ntohs(ports[1]) != cfg.dport)
		return false;
	return true;
}

/*
 * Classic (not direct-action) cls_bpf: the return value is the class. 0 = not ours, so the
 * next filter (or the root's direct queue) gets the packet.
 */
SEC("tc")
int fl_tc_classify(struct __sk_buff *skb)
{
	__u32 l4, key = 0;
	__u8 saddr[16] = {}, daddr[16] = {}, p;
	struct fl_tc_counters *c;

	if (skb->protocol == bpf_htons(ETH_P_IP) && cfg.family != 6) {
		struct iphdr ip;

		if (load_net(skb, 0, &ip, sizeof(ip)) < 0)
			return 0;
		p = ip.protocol;
		if (!proto_ok(p))
			return 0;
		__builtin_memcpy(saddr, &ip.saddr, 4);
		__builtin_memcpy(daddr, &ip.daddr, 4);
		if (cfg.has_dst && !addr_in(daddr, cfg.dst, cfg.dst_mask, 4))
			return 0;
		if (cfg.has_src && !addr_in(saddr, cfg.src, cfg.src_mask, 4))
			return 0;
		/* a later fragment carries no ports */
		if ((cfg.dport || cfg.sport) && (bpf_ntohs(ip.frag_off) & IP_OFFMASK))
			return 0;
		l4 = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6) && cfg.family != 4) {
		struct ipv6hdr ip6;

		if (load_net(skb, 0, &ip6, sizeof(ip6)) < 0)
			return 0;
		/* extension headers are not walked: a packet with one is not matched by port */
		p = ip6.nexthdr;
		/* protocol icmp means ICMPv6 here */
		if (cfg.proto == PROTO_ICMP ? p != PROTO_ICMPV6 : !proto_ok(p))
			return 0;
		__builtin_memcpy(saddr, &ip6.saddr, 16);
		__builtin_memcpy(daddr, &ip6.daddr, 16);
		if (cfg.has_dst && !addr_in(daddr, cfg.dst, cfg.dst_mask, 16))
			return 0;
		if (cfg.has_src && !addr_in(saddr, cfg.src, cfg.src_mask, 16))
			return 0;
		l4 = sizeof(ip6);
	} else {
		return 0;
	}
	if (!ports_ok(skb, l4, p))
		return 0;
	/* the target's cgroup or any below it (a systemd unit's, a service's own children) */
	if (cfg.cgroup_id && bpf_skb_ancestor_cgroup_id(skb, (int)cfg.cgroup_level) != cfg.cgroup_id)
		return 0;
	c = bpf_map_lookup_elem(&fl_tc_stats, &key);
	if (c) {
		c->packets++;
		c->bytes += skb->len;
	}
	return cfg.classid;
}
