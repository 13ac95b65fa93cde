/* Kernel side of the cgroup-BPF syscall backend: connect, bind, socket, sendmsg and sockopt calls of one cgroup v2 directory fail with an errno, after N calls, with a probability, up to a maximum. */
/*
 * Only the context is read, which needs no relocation: without CO-RE records libbpf need not
 * parse the kernel's BTF at load.
 */
#define BPF_NO_PRESERVE_ACCESS_INDEX
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sys_cgroup.h"

#define FL_PAGE_SIZE 4096

char LICENSE[] SEC("license") = "GPL";

/* The only .rodata variable, so it sits at offset 0 (the loader asserts it). */
const volatile struct fl_sys_bpf_cfg fl_cfg = {};

/* The only .bss variable: set on revert so a link some other process still holds acts no more. */
__u32 fl_revoked = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fl_sys_bpf_state);
} fl_sys_st SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * FL_SYS_NSLOT);
	__type(key, __u32);
	__type(value, __u64);
} fl_sys_ctr SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&fl_sys_ctr, &slot);

	/* per-CPU slot: no other CPU writes it, a plain add is enough */
	if (v)
		*v += 1;
}

/*
 * One matching call: fl_sys_should_act's after/probability/max arithmetic, the counts under the
 * lock so `after` and `max` are exact across CPUs; the random draw first (no helper call may be
 * made while the lock is held). True: fail it.
 */
static __always_inline bool decide(__u32 slot)
{
	__u32 zero = 0;
	bool roll = fl_cfg.threshold >= (1ULL << 32) || (__u64)bpf_get_prandom_u32() < fl_cfg.threshold;
	struct fl_sys_bpf_state *s = bpf_map_lookup_elem(&fl_sys_st, &zero);
	bool act = false;

	if (!s || *(volatile __u32 *)&fl_revoked)
		return false;
	bpf_spin_lock(&s->lock);
	s->matched++;
	if (s->matched > fl_cfg.after && roll && (!fl_cfg.max || s->acted < fl_cfg.max)) {
		s->acted++;
		act = true;
	}
	bpf_spin_unlock(&s->lock);
	count(2 * slot);
	if (act)
		count(2 * slot + 1);
	return act;
}

/* connect() and addressed sendmsg() only: the destination the caller asked for. */
static __always_inline bool dst_ok(const struct bpf_sock_addr *ctx, bool v6)
{
	__u32 a[4];

	if (fl_cfg.dst_port && bpf_ntohs((__u16)ctx->user_port) != fl_cfg.dst_port)
		return false;
	if (!fl_cfg.dst_has_addr)
		return true;
	if (!v6)
		return !fl_cfg.dst_v6 && (ctx->user_ip4 & fl_cfg.dst_mask[0]) == fl_cfg.dst_addr[0];
	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	/* an IPv4-mapped destination (::ffff:a.b.c.d) is an IPv4 peer for a v4 CIDR */
	if (!fl_cfg.dst_v6)
		return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff) &&
		       (a[3] & fl_cfg.dst_mask[0]) == fl_cfg.dst_addr[0];
	return (a[0] & fl_cfg.dst_mask[0]) == fl_cfg.dst_addr[0] && (a[1] & fl_cfg.dst_mask[1]) == fl_cfg.dst_addr[1] &&
	       (a[2] & fl_cfg.dst_mask[2]) == fl_cfg.dst_addr[2] && (a[3] & fl_cfg.dst_mask[3]) == fl_cfg.dst_addr[3];
}

/* 1: the call goes on; 0: it fails with fl_cfg.err (without bpf_set_retval it would be EPERM). */
static __always_inline int addr_verdict(struct bpf_sock_addr *ctx, bool v6, bool narrowed, __u32 slot)
{
	if (narrowed && (fl_cfg.dst_has_addr || fl_cfg.dst_port) && !dst_ok(ctx, v6))
		return 1;
	if (!decide(slot))
		return 1;
	bpf_set_retval(-(int)fl_cfg.err);
	return 0;
}

SEC("cgroup/connect4")
int fl_sc_connect4(struct bpf_sock_addr *ctx)
{
	return addr_verdict(ctx, false, true, FL_SC_H_CONNECT4);
}

SEC("cgroup/connect6")
int fl_sc_connect6(struct bpf_sock_addr *ctx)
{
	return addr_verdict(ctx, true, true, FL_SC_H_CONNECT6);
}

/* bind() has no destination: dst_ip/dst_port do not narrow it */
SEC("cgroup/bind4")
int fl_sc_bind4(struct bpf_sock_addr *ctx)
{
	return addr_verdict(ctx, false, false, FL_SC_H_BIND4);
}

SEC("cgroup/bind6")
int fl_sc_bind6(struct bpf_sock_addr *ctx)
{
	return addr_verdict(ctx, true, false, FL_SC_H_BIND6);
}

/* Only unconnected UDP sends with an address reach these; a connected socket was judged at connect. */
SEC("cgroup/sendmsg4")
int fl_sc_sendmsg4(struct bpf_sock_addr *ctx)
{
	return addr_verdict(ctx, false, true, FL_SC_H_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int fl_sc_sendmsg6(struct bpf_sock_addr *ctx)
{
	return addr_verdict(ctx, true, true, FL_SC_H_SENDMSG6);
}

SEC("cgroup/sock_create")
int fl_sc_sock(struct bpf_sock *ctx)
{
	if (!decide(FL_SC_H_SOCK))
		return 1;
	bpf_set_retval(-(int)fl_cfg.err);
	return 0;
}

static __always_inline int sockopt_verdict(struct bpf_sockopt *ctx, __u32 slot)
{
	if (decide(slot)) {
		bpf_set_retval(-(int)fl_cfg.err);
		return 0;
	}
	/* past a page the program sees a truncated buffer: optlen 0 keeps the caller's own, untouched */
	if (ctx->optlen > FL_PAGE_SIZE)
		ctx->optlen = 0;
	return 1;
}

SEC("cgroup/getsockopt")
int fl_sc_getsopt(struct bpf_sockopt *ctx)
{
	return sockopt_verdict(ctx, FL_SC_H_GETSOCKOPT);
}

SEC("cgroup/setsockopt")
int fl_sc_setsopt(struct bpf_sockopt *ctx)
{
	return sockopt_verdict(ctx, FL_SC_H_SETSOCKOPT);
}
