/* What the tc classifier (net_tc.bpf.c) and its loader (net_tc.c) share: one fault's match and its counters. */
#ifndef FL_NET_TC_H
#define FL_NET_TC_H

/*
 * Included after vmlinux.h on the BPF side and after <linux/types.h> on the user side. Every
 * field is filled by the loader between open and load (rodata): the verifier then sees
 * constants and drops the branches a fault does not need.
 */
struct fl_tc_match {
	__u32 classid;     /* what a matched packet is classified into (major:minor) */
	__u8 family;       /* 4, 6, or 0 for both */
	__u8 proto;        /* IPPROTO_TCP/UDP/ICMP(V6); 0 = any (with ports: tcp or udp) */
	__u8 has_dst, has_src;
	__u8 pad[4];
	__u8 dst[16], dst_mask[16];
	__u8 src[16], src_mask[16];
	__u16 dport, sport; /* host order, 0 = any */
	__u32 cgroup_level; /* depth of cgroup_id below the cgroup2 root */
	__u64 cgroup_id;   /* only packets of sockets in this cgroup v2 or below it (egress), 0 = any */
};

struct fl_tc_counters {
	__u64 packets;     /* matched, classified into the fault's class */
	__u64 bytes;
};

#endif
