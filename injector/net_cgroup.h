/* What net_cgroup.bpf.c and its loader share: the configuration knob, the counter slots, and the loader's interface for the cgroup-BPF network faults. */
#ifndef FL_NET_CGROUP_H
#define FL_NET_CGROUP_H

/* The BPF side gets its types from vmlinux.h; user space from the uapi headers. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* "flcgcfg1": marks a .rodata map as ours when revert_record reads one back by id. */
#define FL_CG_MAGIC 0x31676663676c66ULL

/* Which transport protocols a fault matches (bit mask). */
#define FL_CG_P_TCP 1u
#define FL_CG_P_UDP 2u
#define FL_CG_P_ICMP 4u
#define FL_CG_P_OTHER 8u /* IP packets of any other protocol (skb hooks only) */

/* Address families a match covers (bit mask); both when no address is given. */
#define FL_CG_F_V4 1u
#define FL_CG_F_V6 2u

/* What the egress program returns for a matched packet (ingress drops are always silent). */
#define FL_CG_SKB_DROP 0u      /* verdict 0: TCP retries it with backoff, a UDP sender sees EPERM */
#define FL_CG_SKB_DROP_CN 2u   /* verdict 2 (drop + congestion): a UDP sender sees success (ENOBUFS with IP_RECVERR) */

/*
 * One side of a connection (the remote peer or the local end): address and prefix as 32-bit
 * words in network byte order (IPv4 in word 0), port in host order, 0 = any.
 */
struct fl_cg_end {
	__u32 addr[4];
	__u32 mask[4];
	__u32 has_addr;
	__u32 family;    /* FL_CG_F_V4 or FL_CG_F_V6 when has_addr */
	__u32 port;
};

/*
 * The one knob, in .rodata: set between open and load, frozen by the load. magic and tag come
 * first so revert_record can tell, from a program id alone, whether it belongs to a journal
 * record (net_cgroup.c checks that the skeleton puts this struct at offset 0).
 */
struct fl_cg_cfg {
	__u64 magic;       /* FL_CG_MAGIC */
	__u64 tag;         /* a random nonce per fault, also in its journal record */
	__u64 threshold;   /* act when bpf_get_prandom_u32() < threshold; >= 2^32: always */
	__u32 err;         /* positive errno the sock_addr hooks return */
	__u32 protos;      /* FL_CG_P_* */
	__u32 families;    /* FL_CG_F_* */
	__u32 skb_verdict; /* FL_CG_SKB_* for egress UDP; egress TCP always gets FL_CG_SKB_DROP */
	__u32 ifindex;     /* skb hooks: the packet's interface, 0 = any */
	__u32 per_flow;    /* skb hooks: roll once per flow (hash of addresses, ports, protocol), not per packet */
	struct fl_cg_end peer;   /* connect/sendmsg: the destination; egress: dst; ingress: src */
	struct fl_cg_end local;  /* egress: src; ingress: dst (sock_addr hooks ignore it) */
};

/* Slots of the per-CPU counters map; "passed" = matched but spared by the probability. */
enum fl_cg_counter {
	FL_CG_CONN_MATCHED,
	FL_CG_CONN_REFUSED,
	FL_CG_CONN_PASSED,
	FL_CG_SEND_MATCHED,
	FL_CG_SEND_REFUSED,
	FL_CG_SEND_PASSED,
	FL_CG_EGRESS_MATCHED,
	FL_CG_EGRESS_DROPPED,
	FL_CG_EGRESS_PASSED,
	FL_CG_INGRESS_MATCHED,
	FL_CG_INGRESS_DROPPED,
	FL_CG_INGRESS_PASSED,
	FL_CG_NCOUNTERS,
};

/* ---- the loader (user space only) ------------------------------------------------------------ */
#ifndef __VMLINUX_H__
#include <stdbool.h>
#include <stdint.h>

#include "fl_err.h"

struct fl_journal_rec;

/* Which hooks to attach (bit mask); each names one program of net_cgroup.bpf.c. */
enum fl_cg_hook {
	FL_CG_H_CONNECT4 = 1 << 0,
	FL_CG_H_CONNECT6 = 1 << 1,
	FL_CG_H_SENDMSG4 = 1 << 2,
	FL_CG_H_SENDMSG6 = 1 << 3,
	FL_CG_H_EGRESS = 1 << 4,
	FL_CG_H_INGRESS = 1 << 5,
};
#define FL_CG_H_NHOOKS 6
#define FL_CG_H_SOCK_ADDR (FL_CG_H_CONNECT4 | FL_CG_H_CONNECT6 | FL_CG_H_SENDMSG4 | FL_CG_H_SENDMSG6)

/* A loaded and (once attached) active set of programs on one cgroup. */
struct fl_cg_prog;

/* "connect4,ingress" for journals and plans. */
void fl_cg_hooks_format(unsigned hooks, char *buf, size_t len);
/* Program names of hooks, comma separated ("fl_cg_connect4,fl_cg_ingress"). */
void fl_cg_progs_format(unsigned hooks, char *buf, size_t len);

/*
 * Host-wide: a cgroup v2 mount exists and libbpf can load every program of the object (loaded,
 * then freed: no side effect). The reason on failure names the capability or limit. A scope's
 * preflight is fl_bpf_cgroup_scope (bpf_common.h).
 */
int fl_cg_probe(struct fl_err *err);

/* Open -> configure -> load (nothing attached yet). cfg->magic is filled in. */
int fl_cg_load(const struct fl_cg_cfg *cfg, unsigned hooks, struct fl_cg_prog **out, struct fl_err *err);
/* Attach every loaded program to cgroup as a libbpf link (unpinned: it dies with its last fd). */
int fl_cg_attach(struct fl_cg_prog *p, const char *cgroup, struct fl_err *err);
/* Counters summed over CPUs (live while loaded, the last snapshot after fl_cg_unload). */
int fl_cg_counters(struct fl_cg_prog *p, uint64_t out[FL_CG_NCOUNTERS]);
/*
 * Detach every link (BPF_LINK_DETACH, so a forked child that inherited a link fd cannot keep it
 * attached), snapshot the counters, unload. Idempotent; p stays valid for fl_cg_counters.
 */
int fl_cg_unload(struct fl_cg_prog *p, struct fl_err *err);
/* Accepts NULL; unloads first if needed. */
void fl_cg_destroy(struct fl_cg_prog *p);

/*
 * Journal-record fragment "cgroup=PATH cgid=N tag=HEX hooks=... progs=...", the path escaped
 * (fl_bpf_escape) so it holds no blank, '#', '%' or '='. 0 or -ENAMETOOLONG.
 */
int fl_cg_record_format(const char *cgroup, uint64_t cgid, uint64_t tag, unsigned hooks, char *buf,
			size_t len);
/*
 * Detach, from a record alone, every link of ours (program named fl_cg_*, .rodata tag equal to
 * the record's) on the record's cgroup; then verify with BPF_PROG_QUERY that none is left.
 * Idempotent: a cgroup that is gone (or is another one now) took its programs with it.
 * *detached (may be NULL) counts the links detached.
 */
int fl_cg_revert_record(const struct fl_journal_rec *rec, int *detached, struct fl_err *err);
/* How many programs carrying `tag` are attached to cgroup (all of ours when tag is 0), or -errno. */
int fl_cg_count_attached(const char *cgroup, uint64_t tag, struct fl_err *err);

#endif /* !__VMLINUX_H__ */

#endif
