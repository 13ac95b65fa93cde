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
/* a syscall backend: fl_cfg, fl_revoked, the maps and fl_sys_decide come from the shared header */
#define FL_BPF_SYS_OBJECT
#include "bpf_common.bpf.h"

#define FL_PAGE_SIZE 4096

char LICENSE[] SEC("license") = "GPL";

/* connect() and addressed sendmsg() only: the destination the caller asked for. */
static __always_inline bool dst_ok(const struct bpf_sock_addr *ctx, bool v6)
{
	__u32 a[4] = {};

	if (v6) {
		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
	} else {
		a[0] = ctx->user_ip4;
	}
	return fl_sys_dst_ok(a, v6, bpf_ntohs((__u16)ctx->user_port));
}

/* 1: the call goes on; 0: it fails with fl_cfg.err (without bpf_set_retval it would be EPERM). */
static __always_inline int addr_verdict(struct bpf_sock_addr *ctx, bool v6, bool narrowed, __u32 slot)
{
	if (narrowed && fl_sys_dst_narrowed() && !dst_ok(ctx, v6))
		return 1;
	if (!fl_sys_decide(slot))
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
	if (!fl_sys_decide(FL_SC_H_SOCK))
		return 1;
	bpf_set_retval(-(int)fl_cfg.err);
	return 0;
}

static __always_inline int sockopt_verdict(struct bpf_sockopt *ctx, __u32 slot)
{
	if (fl_sys_decide(slot)) {
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
