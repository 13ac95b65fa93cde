/* Kernel side of the BPF LSM syscall backend: LSM hooks that fail the calls of one cgroup (or one process) with an errno, after N calls, with a probability, up to a maximum. */
/*
 * CO-RE on purpose (no BPF_NO_PRESERVE_ACCESS_INDEX): these programs read kernel structs
 * (file, path, socket, msghdr, sock) whose layout differs between the kernels they run on.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "sys_lsm.h"
/* a syscall backend: fl_cfg, fl_revoked, the maps and fl_sys_decide come from the shared header */
#define FL_BPF_SYS_OBJECT
#include "bpf_common.bpf.h"

/* vmlinux.h carries types, not macros. */
#define FL_AF_INET 2
#define FL_AF_INET6 10

char LICENSE[] SEC("license") = "GPL";

/* bpf_d_path's scratch: too big for the 512-byte stack. */
struct fl_pathbuf {
	char b[2 * FL_SYS_PATH_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fl_pathbuf);
} fl_sys_buf SEC(".maps");

/* Is the calling task one the fault is for? Cheapest test first: this runs for every task. */
static __always_inline bool in_scope(void)
{
	if (fl_sys_revoked())
		return false;
	if (fl_cfg.scope == FL_SYS_SCOPE_CGROUP)
		return bpf_get_current_ancestor_cgroup_id((int)fl_cfg.cg_level) == fl_cfg.cgid;
	if (fl_cfg.scope == FL_SYS_SCOPE_TGID) {
		struct bpf_pidns_info ns = {};

		/* the tgid as the controller sees it, even when it runs in a pid namespace */
		return !bpf_get_ns_current_pid_tgid(fl_cfg.pidns_dev, fl_cfg.pidns_ino, &ns, sizeof(ns)) &&
		       ns.tgid == fl_cfg.tgid;
	}
	return fl_cfg.scope == FL_SYS_SCOPE_ALL;
}

/* One matching call (fl_sys_decide): 0 lets it go on, -errno fails it. */
static __always_inline int decide(__u32 slot)
{
	return fl_sys_decide(slot) ? -(int)fl_cfg.err : 0;
}

/* ---- argument matches ----------------------------------------------------------------------- */

/* The resolved path (as d_path prints it) equals the prefix or lies below it. */
static __always_inline bool path_under_prefix(struct path *p)
{
	struct fl_pathbuf *b;
	__u32 zero = 0, n = fl_cfg.prefix_len;
	long len;
	char next;

	if (n == 0 || n >= FL_SYS_PATH_MAX)
		return n == 0;
	b = bpf_map_lookup_elem(&fl_sys_buf, &zero);
	if (!b)
		return false;
	len = bpf_d_path(p, b->b, sizeof(b->b));
	/* len counts the NUL; a path shorter than the prefix cannot be under it */
	if (len <= 0 || (__u32)len - 1 < n)
		return false;
	for (__u32 i = 0; i < FL_SYS_PATH_MAX; i++) {
		if (i >= n)
			break;
		if (b->b[i] != fl_cfg.prefix[i])
			return false;
	}
	/* by components: /data matches /data and /data/x, not /database */
	next = b->b[n & (FL_SYS_PATH_MAX - 1)];
	return next == '\0' || next == '/' || fl_cfg.prefix[(n - 1) & (FL_SYS_PATH_MAX - 1)] == '/';
}

/* addr: 4 words in network order (IPv4 in word 0), port in host order. */
static __always_inline bool dst_ok(__u16 family, const __u32 *a, __u16 port)
{
	if (family != FL_AF_INET && family != FL_AF_INET6)
		return false;
	return fl_sys_dst_ok(a, family == FL_AF_INET6, port);
}

/* A sockaddr the kernel has already copied in (connect, an addressed sendmsg). */
static __always_inline bool sockaddr_ok(const struct sockaddr *sa, int len)
{
	__u32 a[4] = {};
	__u16 family = 0, port;

	if (!sa || bpf_probe_read_kernel(&family, sizeof(family), &sa->sa_family))
		return false;
	if (family == FL_AF_INET && len >= (int)sizeof(struct sockaddr_in)) {
		struct sockaddr_in sin;

		if (bpf_probe_read_kernel(&sin, sizeof(sin), sa))
			return false;
		a[0] = sin.sin_addr.s_addr;
		port = bpf_ntohs(sin.sin_port);
	} else if (family == FL_AF_INET6 && len >= 24 /* SIN6_LEN_RFC2133: no scope id needed */) {
		struct sockaddr_in6 sin6 = {};

		if (bpf_probe_read_kernel(&sin6, 24, sa))
			return false;
		a[0] = sin6.sin6_addr.in6_u.u6_addr32[0];
		a[1] = sin6.sin6_addr.in6_u.u6_addr32[1];
		a[2] = sin6.sin6_addr.in6_u.u6_addr32[2];
		a[3] = sin6.sin6_addr.in6_u.u6_addr32[3];
		port = bpf_ntohs(sin6.sin6_port);
	} else {
		return false;
	}
	return dst_ok(family, a, port);
}

/* A send without an address goes to the connected peer. */
static __always_inline bool peer_ok(struct socket *sock)
{
	struct sock *sk = BPF_CORE_READ(sock, sk);
	__u32 a[4] = {};
	__u16 family;

	if (!sk)
		return false;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == FL_AF_INET) {
		a[0] = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	} else if (family == FL_AF_INET6) {
		a[0] = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32[0]);
		a[1] = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32[1]);
		a[2] = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32[2]);
		a[3] = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32[3]);
	}
	return dst_ok(family, a, bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)));
}

/* ---- the hooks: each first keeps an earlier LSM's refusal, then tests the scope ------------- */

SEC("lsm/file_open")
int BPF_PROG(fl_sl_open, struct file *file, int ret)
{
	if (ret || !in_scope())
		return ret;
	/* 6.x made f_path const; bpf_d_path only reads it */
	if (fl_cfg.prefix_len && !path_under_prefix((struct path *)&file->f_path))
		return 0;
	return decide(FL_SL_S_OPEN);
}

/* read*, write* (and whatever else checks MAY_READ/MAY_WRITE on an open file: getdents, splice) */
SEC("lsm/file_permission")
int BPF_PROG(fl_sl_perm, struct file *file, int mask, int ret)
{
	/* the mask test needs no helper: the hottest hook of all leaves at once for other calls */
	if (ret || !(mask & fl_cfg.perm_mask) || !in_scope())
		return ret;
	return decide(mask & FL_MAY_WRITE & fl_cfg.perm_mask ? FL_SL_S_WRITE : FL_SL_S_READ);
}

SEC("lsm/socket_connect")
int BPF_PROG(fl_sl_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret || !in_scope())
		return ret;
	if (fl_sys_dst_narrowed() && !sockaddr_ok(address, addrlen))
		return 0;
	return decide(FL_SL_S_CONNECT);
}

SEC("lsm/socket_bind")
int BPF_PROG(fl_sl_bind, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret || !in_scope())
		return ret;
	return decide(FL_SL_S_BIND);
}

SEC("lsm/socket_create")
int BPF_PROG(fl_sl_socket, int family, int type, int protocol, int kern, int ret)
{
	/* sockets the kernel makes for itself are nobody's socket() call */
	if (ret || kern || !in_scope())
		return ret;
	return decide(FL_SL_S_SOCKET);
}

/* sendto, sendmsg, sendmmsg, and write() on a socket (it is a sendmsg to the kernel) */
SEC("lsm/socket_sendmsg")
int BPF_PROG(fl_sl_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	if (ret || !in_scope())
		return ret;
	if (fl_sys_dst_narrowed()) {
		void *name = BPF_CORE_READ(msg, msg_name);

		if (name ? !sockaddr_ok(name, BPF_CORE_READ(msg, msg_namelen)) : !peer_ok(sock))
			return 0;
	}
	return decide(FL_SL_S_SENDMSG);
}

/* recvfrom, recvmsg, recvmmsg, and read() on a socket */
SEC("lsm/socket_recvmsg")
int BPF_PROG(fl_sl_recvmsg, struct socket *sock, struct msghdr *msg, int size, int flags, int ret)
{
	if (ret || !in_scope())
		return ret;
	return decide(FL_SL_S_RECVMSG);
}

SEC("lsm/socket_accept")
int BPF_PROG(fl_sl_accept, struct socket *sock, struct socket *newsock, int ret)
{
	if (ret || !in_scope())
		return ret;
	return decide(FL_SL_S_ACCEPT);
}

SEC("lsm/socket_listen")
int BPF_PROG(fl_sl_listen, struct socket *sock, int backlog, int ret)
{
	if (ret || !in_scope())
		return ret;
	return decide(FL_SL_S_LISTEN);
}

/* file-backed and anonymous mappings alike (file is NULL for the latter) */
SEC("lsm/mmap_file")
int BPF_PROG(fl_sl_mmap, struct file *file, unsigned long reqprot, unsigned long prot, unsigned long flags, int ret)
{
	if (ret || !in_scope())
		return ret;
	return decide(FL_SL_S_MMAP);
}

SEC("lsm/socket_getsockopt")
int BPF_PROG(fl_sl_getsopt, struct socket *sock, int level, int optname, int ret)
{
	if (ret || !in_scope())
		return ret;
	return decide(FL_SL_S_GETSOCKOPT);
}

SEC("lsm/socket_setsockopt")
int BPF_PROG(fl_sl_setsopt, struct socket *sock, int level, int optname, int ret)
{
	if (ret || !in_scope())
		return ret;
	return decide(FL_SL_S_SETSOCKOPT);
}
