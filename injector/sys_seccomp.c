/* The seccomp syscall backend: for targets faultline launches, one classic-BPF filter installed just before exec sends the rules' syscalls to a supervisor child (user notification) that fails, delays (timer heap) or continues each call while its rule is applied. */
#include "sys.h"

#include <arpa/inet.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>

#include "journal.h"
#include "net.h"
#include "procfs.h"

/*
 * The architecture the syscall numbers in fl_syscalls[] belong to, as seccomp_data.arch names
 * it, and the ELF identity of a binary whose calls use them.
 */
#if defined(__x86_64__)
#define SC_AUDIT_ARCH AUDIT_ARCH_X86_64
#define SC_ELF_MACHINE EM_X86_64
#define SC_ARCH_NAME "x86_64"
#elif defined(__aarch64__)
#define SC_AUDIT_ARCH AUDIT_ARCH_AARCH64
#define SC_ELF_MACHINE EM_AARCH64
#define SC_ARCH_NAME "aarch64"
#elif defined(__riscv) && __riscv_xlen == 64
#define SC_AUDIT_ARCH AUDIT_ARCH_RISCV64
#define SC_ELF_MACHINE EM_RISCV
#define SC_ARCH_NAME "riscv64"
#else
#define SC_AUDIT_ARCH 0u
#define SC_ELF_MACHINE 0
#define SC_ARCH_NAME "this architecture"
#endif

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef SECCOMP_USER_NOTIF_FLAG_CONTINUE
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE (1UL << 0)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

#define SC_SLOTS 32                 /* seccomp faults one launched target can have */
#define SC_MAX_NR 64                /* distinct syscalls in the filter */
#define SC_FILTER_MAX (SC_MAX_NR + 8)
#define SC_DELAY_MAX_NS (60LL * 1000000000LL)
#define SC_HELD_MAX 65536           /* calls held at once; each is a blocked thread of the target */
#define SC_RECV_BATCH 64            /* notifications read per wake-up before timers are looked at */
#define SC_STOP_DRAIN 4096          /* queued calls continued at a stop; a busy target may add more */
#define SC_PEEK 512                 /* bytes of a path read from the target: more than any prefix */
#define SC_READY_MS 5000
#define SC_HANDOFF_MS 5000
#define SC_STOP_MS 2000
#define SC_SUP_NICE (-10)
#define SC_SLOT_SIGNAL (SIGRTMIN + 1) /* queued (real-time), so back-to-back slot reverts all arrive */

enum sc_handoff { HANDOFF_IDLE, HANDOFF_OFFERED, HANDOFF_TAKEN, HANDOFF_REFUSED };
enum sc_sup_state { SUP_STARTING, SUP_SERVING, SUP_LINGERING, SUP_EXITED };

/* ---- the table the controller, the supervisor and (before exec) the target's child share ----- */

struct sc_slot {
	/* configuration: written by the controller only while the slot is inactive */
	uint32_t active;            /* atomic; the supervisor acts only while it is 1 */
	int nsys;
	int nr[FL_SYS_MAX];
	int err;                    /* errno to fail with, 0 for a delay */
	int64_t delay_ns, jitter_ns;
	struct fl_sys_rule gate;    /* after, max, probability for fl_sys_should_act; no pointers */
	char path_prefix[256];
	bool has_dst;
	struct fl_cidr dst;
	uint16_t dst_port;
	/* counters: written by the supervisor only */
	uint64_t matched;           /* calls of its syscalls whose arguments matched */
	uint64_t rolled;            /* of those, past `after` and under `max`: the probability was drawn */
	uint64_t acted;             /* failed or held */
	uint64_t released;          /* held calls answered when due (or at a revert) */
	uint64_t cut_short;         /* of those, released before due by a revert or a stop */
	uint64_t hold_sum_ns, hold_max_ns;
	uint64_t held_now, held_max;
	uint64_t at_cap;            /* would have been held, continued at once: SC_HELD_MAX reached */
	uint64_t abandoned;         /* held calls whose thread died (or a signal took) before release */
};

struct sc_table {
	/* the listener's hand-off from the target's child to the supervisor (see sc_launch_child) */
	uint32_t handoff;           /* enum sc_handoff, a futex word */
	int32_t handoff_fd;
	int32_t handoff_pid;
	int32_t handoff_err;
	int32_t child_errno;        /* seccomp(2) failure in the target's child */
	uint32_t killable;          /* the filter waits killably once a call is received (Linux 5.19) */
	int32_t target;             /* the tgid the supervisor serves */
	uint32_t sup_state;         /* enum sc_sup_state */
	uint64_t notified;          /* every notification received */
	uint64_t continued;         /* answered with CONTINUE at once */
	uint64_t foreign_abi;       /* another ABI's call (i386 int 0x80, x32): continued, never faulted */
	uint64_t other_proc;        /* from a process other than the target's thread group */
	uint64_t arg_errors;        /* an argument could not be read: the call counted as not matching */
	uint64_t send_errors;
	int64_t last_errno;
	struct sc_slot slot[SC_SLOTS];
};

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CTR_GET(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define CTR_SET(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define CTR_ADD(p, v) CTR_SET((p), CTR_GET(p) + (v))

static long futex(uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	/* shared (not _PRIVATE) ops: the word lives in a MAP_SHARED page of several processes */
	return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig, siginfo_t *info)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, info, 0);
}

/* ---- the filter ------------------------------------------------------------------------------ */

/*
 * Layout (classic BPF, one linear pass):
 *
 *   ld  arch
 *   jne NATIVE           -> notify          another ABI: its numbers mean other syscalls
 *   ld  nr
 *   jge X32 bit          -> notify          (x86_64 only) the x32 ABI shares the arch value
 *   jeq nr_1             -> notify
 *   ...
 *   jeq nr_n             -> notify
 *   ret ALLOW                               every other call never leaves the kernel
 *   notify: ret USER_NOTIF
 *
 * A foreign ABI's calls are neither killed (a drill must not kill the service for a reason of
 * its own) nor allowed unseen (the fault would silently miss them, and i386 connect is 362, not
 * 42, so comparing numbers across ABIs would fault the wrong calls): they go to the supervisor,
 * which continues them and counts them (observe: foreign_abi_calls), so a rule that misses
 * them says so. A target whose own binary is of another ABI is refused at apply.
 * A linear chain is enough: at most SC_MAX_NR compares, a few ns, beside ~2 us per notification.
 */
static int filter_build(const int *nrs, int n, struct sock_filter *out, unsigned short *len)
{
	int k = 0, notify;

	if (n > SC_MAX_NR)
		return -E2BIG;
#ifdef __x86_64__
	notify = 5 + n;
#else
	notify = 4 + n;
#endif
	out[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	out[k] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SC_AUDIT_ARCH, 0, 0);
	out[k].jf = (unsigned char)(notify - (k + 1));
	k++;
	out[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	out[k] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* __X32_SYSCALL_BIT */, 0, 0);
	out[k].jt = (unsigned char)(notify - (k + 1));
	k++;
#endif
	for (int i = 0; i < n; i++, k++) {
		out[k] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nrs[i], 0, 0);
		out[k].jt = (unsigned char)(notify - (k + 1));
	}
	out[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	out[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
	*len = (unsigned short)k;
	return 0;
}

/* ---- the supervisor ------------------------------------------------------------------------ */

/* How a syscall's arguments are read for the argument matches. */
enum arg_kind { ARG_NONE, ARG_PATH, ARG_CONNECT, ARG_SENDTO, ARG_SENDMSG, ARG_SENDMMSG };

struct arg_spec {
	enum arg_kind kind;
	int ptr;                    /* index of the path / sockaddr / msghdr pointer */
	int dirfd;                  /* ARG_PATH: index of the dirfd, -1 for the cwd */
};

static struct arg_spec arg_spec_of(int nr)
{
	struct arg_spec a = {ARG_NONE, 0, -1};

	switch (nr) {
#ifdef SYS_open
	case SYS_open:
#endif
#ifdef SYS_creat
	case SYS_creat:
#endif
#if defined(SYS_open) || defined(SYS_creat)
		a.kind = ARG_PATH;
		a.ptr = 0;
		break;
#endif
	case SYS_openat:
#ifdef SYS_openat2
	case SYS_openat2:
#endif
		a.kind = ARG_PATH;
		a.ptr = 1;
		a.dirfd = 0;
		break;
	case SYS_connect:
		a.kind = ARG_CONNECT;
		a.ptr = 1;
		break;
	case SYS_sendto:
		a.kind = ARG_SENDTO;
		a.ptr = 4;
		break;
	case SYS_sendmsg:
		a.kind = ARG_SENDMSG;
		a.ptr = 1;
		break;
	case SYS_sendmmsg:
		a.kind = ARG_SENDMMSG;
		a.ptr = 1;
		break;
	default:
		break;
	}
	return a;
}

struct held {
	int64_t due, arrived;
	uint64_t id;
	int slot;
};

struct sup {
	struct sc_table *tab;
	int ep, listener, tfd, sfd, ctl;
	int taskdir;                /* /proc/TGID/task: which tids are the target's threads */
	int tpidfd;                 /* the target, for pidfd_getfd of a socket (sendto's peer) */
	pid_t tgid;
	long page;
	struct held *heap;          /* binary min-heap on due */
	uint32_t n, cap;
	int64_t armed;
	uint64_t rng;
	struct seccomp_notif *req;
	struct seccomp_notif_resp *resp;
	size_t req_sz, resp_sz;
	bool stop, gone, lingering;
	bool boosted;               /* running at SC_SUP_NICE (calls are held) */
};

/* What one call's arguments turned out to be, read once however many rules look at them. */
struct call_args {
	int path_state;             /* 0 unread, 1 read, -1 unreadable */
	char path[PATH_MAX + SC_PEEK + 2];
	int dst_state;
	struct sockaddr_storage dst;
};

static void sup_error(struct sup *s, int e)
{
	CTR_ADD(&s->tab->send_errors, 1);
	CTR_SET(&s->tab->last_errno, e);
}

static uint32_t rnd32(struct sup *s)
{
	/* splitmix64: fast and plenty for a coin per call */
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* Answer a notification: CONTINUE (err 0) or fail with err. -ENOENT: the call is gone. */
static int answer(struct sup *s, uint64_t id, int err)
{
	int rc;

	memset(s->resp, 0, s->resp_sz);
	s->resp->id = id;
	if (err)
		s->resp->error = -err;
	else
		s->resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	do
		rc = ioctl(s->listener, SECCOMP_IOCTL_NOTIF_SEND, s->resp);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return 0;
	/* ENOENT: the thread died or a signal interrupted the call; it is not ours to answer now */
	if (errno != ENOENT)
		sup_error(s, errno);
	return -errno;
}

static void cont_now(struct sup *s, uint64_t id)
{
	CTR_ADD(&s->tab->continued, 1);
	answer(s, id, 0);
}

/* Is tid one of the target's threads? Exact at this moment: the thread is blocked in its call. */
static bool from_target(struct sup *s, pid_t tid)
{
	char name[16];
	struct stat st;

	if (tid == s->tgid)
		return true;
	if (s->taskdir < 0)
		return false;
	snprintf(name, sizeof(name), "%d", (int)tid);
	return fstatat(s->taskdir, name, &st, 0) == 0;
}

/* Read len bytes of pid's memory at addr; the range is split at a page end so a short read works. */
static ssize_t peek(struct sup *s, pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {.iov_base = buf, .iov_len = len}, remote[2];
	size_t first = (size_t)(s->page - (long)(addr % (uint64_t)s->page));
	unsigned long nr = 1;

	if (!addr)
		return -EFAULT;
	remote[0] = (struct iovec){.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
	if (first < len) {
		remote[0].iov_len = first;
		remote[1] = (struct iovec){.iov_base = (void *)(uintptr_t)(addr + first), .iov_len = len - first};
		nr = 2;
	}
	{
		ssize_t n = process_vm_readv(pid, &local, 1, remote, nr, 0);

		return n < 0 ? -errno : n;
	}
}

/* The notification is still pending: what was read belongs to the call (pid not recycled). */
static bool still_valid(struct sup *s, uint64_t id)
{
	return ioctl(s->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* "." and ".." components and repeated slashes resolved lexically, in place ("/a/./b/../c" -> "/a/c"). */
static void path_normalize(char *p)
{
	const char *r = p;
	char *w = p;

	while (*r) {
		const char *c;
		size_t len;

		while (*r == '/')
			r++;
		c = r;
		while (*r && *r != '/')
			r++;
		len = (size_t)(r - c);
		if (!len || (len == 1 && c[0] == '.'))
			continue;
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			while (w > p && *--w != '/')
				;
			continue;
		}
		*w++ = '/';
		memmove(w, c, len);
		w += len;
	}
	if (w == p)
		*w++ = '/';
	*w = '\0';
}

/*
 * The path of an open-like call as an absolute path: as passed, or relative joined to the cwd
 * or the dirfd's path; "." and ".." resolved lexically (symlinks and mounts are not followed).
 */
static int read_path(struct sup *s, const struct seccomp_notif *req, struct arg_spec a, struct call_args *ca)
{
	char raw[SC_PEEK + 1], link[64];
	ssize_t n = peek(s, req->pid, req->data.args[a.ptr], raw, SC_PEEK);

	if (n <= 0)
		return n < 0 ? (int)n : -EFAULT;
	raw[n] = '\0'; /* a longer path is cut past SC_PEEK: more than any prefix needs */
	if (raw[0] == '/') {
		snprintf(ca->path, sizeof(ca->path), "%s", raw);
		path_normalize(ca->path);
		return 0;
	}
	if (a.dirfd < 0 || (int)req->data.args[a.dirfd] == AT_FDCWD)
		snprintf(link, sizeof(link), "/proc/%d/cwd", (int)req->pid);
	else
		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)req->pid, (int)req->data.args[a.dirfd]);
	n = readlink(link, ca->path, PATH_MAX);
	if (n <= 0)
		return -errno;
	ca->path[n] = '\0';
	snprintf(ca->path + n, sizeof(ca->path) - (size_t)n, "/%s", raw);
	path_normalize(ca->path);
	return 0;
}

/* The peer of the target's socket fd (sendto/sendmsg without an address: a connected socket). */
static int peer_of(struct sup *s, int fd, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);
	int dup = s->tpidfd >= 0 ? (int)syscall(SYS_pidfd_getfd, s->tpidfd, fd, 0) : -1, rc = 0;

	if (dup < 0)
		return -errno;
	if (getpeername(dup, (struct sockaddr *)ss, &len) < 0)
		rc = -errno;
	close(dup);
	return rc;
}

static int read_dst(struct sup *s, const struct seccomp_notif *req, struct arg_spec a, struct call_args *ca)
{
	uint64_t addr = req->data.args[a.ptr], len = 0;
	ssize_t n;

	memset(&ca->dst, 0, sizeof(ca->dst));
	if (a.kind == ARG_CONNECT) {
		len = req->data.args[2];
	} else if (a.kind == ARG_SENDTO) {
		len = req->data.args[5];
	} else {
		/* sendmsg's msghdr, or the first of sendmmsg's vector (same leading layout) */
		struct msghdr mh;

		n = peek(s, req->pid, addr, &mh, sizeof(mh));
		if (n != (ssize_t)sizeof(mh))
			return n < 0 ? (int)n : -EFAULT;
		addr = (uint64_t)(uintptr_t)mh.msg_name;
		len = mh.msg_namelen;
	}
	if (!addr)
		return peer_of(s, (int)req->data.args[0], &ca->dst);
	if (len > sizeof(ca->dst))
		len = sizeof(ca->dst);
	if (len < sizeof(sa_family_t))
		return -EINVAL;
	n = peek(s, req->pid, addr, &ca->dst, (size_t)len);
	return n == (ssize_t)len ? 0 : n < 0 ? (int)n : -EFAULT;
}

static bool path_under(const char *path, const char *prefix)
{
	size_t l = strlen(prefix);

	if (strncmp(path, prefix, l))
		return false;
	/* "/data/x" covers /data/x and /data/x/..., not /data/xy; "/data/x/" is a plain prefix */
	return prefix[l - 1] == '/' || path[l] == '\0' || path[l] == '/';
}

static bool cidr_has(const struct fl_cidr *c, const unsigned char *addr)
{
	int full = c->prefix / 8, rest = c->prefix % 8;

	if (memcmp(c->addr, addr, (size_t)full))
		return false;
	return !rest || ((c->addr[full] ^ addr[full]) & (0xff << (8 - rest))) == 0;
}

static bool dst_matches(const struct sc_slot *sl, const struct sockaddr_storage *ss)
{
	const unsigned char *a;
	uint16_t port;
	int fam;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		port = ntohs(s4->sin_port);
		a = (const unsigned char *)&s4->sin_addr;
		fam = AF_INET;
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		port = ntohs(s6->sin6_port);
		a = s6->sin6_addr.s6_addr;
		fam = AF_INET6;
		/* a v4-mapped destination (a dual-stack socket) is the v4 address the rule may name */
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && sl->has_dst && sl->dst.family == AF_INET) {
			a += 12;
			fam = AF_INET;
		}
	} else {
		return false; /* AF_UNIX and the rest have no IP destination to match */
	}
	if (sl->dst_port && port != sl->dst_port)
		return false;
	return !sl->has_dst || (fam == sl->dst.family && cidr_has(&sl->dst, a));
}

/*
 * Do the slot's argument matches accept this call? 1 yes, 0 no, -1 the call is gone (its memory
 * was read, but the notification died meanwhile: the pid may be another process's by now).
 * A match names arguments only some of its syscalls have: the others are not narrowed by it.
 */
static int args_match(struct sup *s, const struct sc_slot *sl, const struct seccomp_notif *req, struct call_args *ca)
{
	struct arg_spec a = arg_spec_of(req->data.nr);

	if (a.kind == ARG_PATH && sl->path_prefix[0]) {
		if (!ca->path_state) {
			ca->path_state = read_path(s, req, a, ca) ? -1 : 1;
			if (!still_valid(s, req->id))
				return -1;
			if (ca->path_state < 0)
				CTR_ADD(&s->tab->arg_errors, 1);
		}
		return ca->path_state > 0 && path_under(ca->path, sl->path_prefix);
	}
	if (a.kind >= ARG_CONNECT && (sl->has_dst || sl->dst_port)) {
		if (!ca->dst_state) {
			ca->dst_state = read_dst(s, req, a, ca) ? -1 : 1;
			if (!still_valid(s, req->id))
				return -1;
			if (ca->dst_state < 0)
				CTR_ADD(&s->tab->arg_errors, 1);
		}
		return ca->dst_state > 0 && dst_matches(sl, &ca->dst);
	}
	return 1;
}

static bool slot_has_nr(const struct sc_slot *sl, int nr)
{
	for (int i = 0; i < sl->nsys; i++)
		if (sl->nr[i] == nr)
			return true;
	return false;
}

/* ---- held calls: the timer heap ------------------------------------------------------------ */

static void heap_push(struct sup *s, struct held h)
{
	uint32_t i = s->n++;

	while (i) {
		uint32_t p = (i - 1) / 2;

		if (s->heap[p].due <= h.due)
			break;
		s->heap[i] = s->heap[p];
		i = p;
	}
	s->heap[i] = h;
}

static void heap_sift_down(struct sup *s, uint32_t i)
{
	struct held h = s->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= s->n)
			break;
		if (c + 1 < s->n && s->heap[c + 1].due < s->heap[c].due)
			c++;
		if (h.due <= s->heap[c].due)
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	s->heap[i] = h;
}

static struct held heap_pop(struct sup *s)
{
	struct held top = s->heap[0];

	s->heap[0] = s->heap[--s->n];
	if (s->n)
		heap_sift_down(s, 0);
	return top;
}

/* Let a held call run now; its hold is what the target really waited on us. */
static void release(struct sup *s, struct held h, int64_t now)
{
	struct sc_slot *sl = &s->tab->slot[h.slot];

	/* saturating: an apply right after a revert may zero the counters before the flush lands */
	if (CTR_GET(&sl->held_now))
		CTR_SET(&sl->held_now, CTR_GET(&sl->held_now) - 1);
	if (answer(s, h.id, 0) == 0) {
		uint64_t hold = (uint64_t)(now - h.arrived);

		CTR_ADD(&sl->released, 1);
		if (now < h.due)
			CTR_ADD(&sl->cut_short, 1);
		CTR_ADD(&sl->hold_sum_ns, hold);
		if (hold > CTR_GET(&sl->hold_max_ns))
			CTR_SET(&sl->hold_max_ns, hold);
	} else {
		CTR_ADD(&sl->abandoned, 1);
	}
}

static void hold(struct sup *s, int slot, uint64_t id, int64_t now)
{
	struct sc_slot *sl = &s->tab->slot[slot];
	int64_t d = sl->delay_ns;

	if (s->n == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 64;
		struct held *h = cap <= SC_HELD_MAX ? realloc(s->heap, cap * sizeof(*h)) : NULL;

		if (!h) {
			/* at the cap: the call runs undelayed and says so, rather than failing */
			CTR_ADD(&sl->at_cap, 1);
			cont_now(s, id);
			return;
		}
		s->heap = h;
		s->cap = cap;
	}
	if (sl->jitter_ns > 0) {
		double u = (double)rnd32(s) / 4294967296.0;

		d += (int64_t)((double)sl->jitter_ns * (2.0 * u - 1.0));
	}
	heap_push(s, (struct held){.due = now + d, .arrived = now, .id = id, .slot = slot});
	CTR_ADD(&sl->held_now, 1);
	if (CTR_GET(&sl->held_now) > CTR_GET(&sl->held_max))
		CTR_SET(&sl->held_max, CTR_GET(&sl->held_now));
}

/* Release every held call of slot (-1: all) now: a revert takes effect at once, not after the delay. */
static void flush(struct sup *s, int slot)
{
	int64_t now = fl_mono_ns();
	uint32_t keep = 0;

	for (uint32_t i = 0; i < s->n; i++) {
		if (slot < 0 || s->heap[i].slot == slot)
			release(s, s->heap[i], now);
		else
			s->heap[keep++] = s->heap[i];
	}
	s->n = keep;
	for (uint32_t i = s->n / 2; i-- > 0;)
		heap_sift_down(s, i);
}

static void release_due(struct sup *s)
{
	int64_t now = fl_mono_ns();

	while (s->n && s->heap[0].due <= now)
		release(s, heap_pop(s), now);
}

static void arm(struct sup *s)
{
	struct itimerspec its = {0};
	int64_t due = s->n ? s->heap[0].due : 0;

	if (due == s->armed)
		return;
	its.it_value.tv_sec = due / 1000000000;
	its.it_value.tv_nsec = due % 1000000000;
	/* all-zero disarms; a due time already past fires at once */
	timerfd_settime(s->tfd, TFD_TIMER_ABSTIME, &its, NULL);
	s->armed = due;
}

/*
 * While calls are held, each is due at an exact time: run ahead of the host's ordinary load then
 * (nice, not a real-time class, so a flood of calls can never starve the host). Not otherwise:
 * with a weight unlike the target's, the round trip of every continued call measured 10x slower
 * here (about 20 us instead of 2 us). Best effort; without the boost delays stretch under load.
 */
static void boost(struct sup *s)
{
	bool want = s->n > 0;

	if (want != s->boosted && !setpriority(PRIO_PROCESS, 0, want ? SC_SUP_NICE : 0))
		s->boosted = want;
}

/* ---- one notification ---------------------------------------------------------------------- */

static void on_notification(struct sup *s)
{
	struct sc_table *t = s->tab;
	struct seccomp_notif *req = s->req;
	static struct call_args ca; /* big (a path); one call at a time */
	int nr;

	memset(req, 0, s->req_sz); /* the kernel wants a zeroed buffer */
	if (ioctl(s->listener, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
		/* ENOENT: the caller was interrupted between the wake-up and now */
		if (errno != ENOENT && errno != EINTR)
			sup_error(s, errno);
		return;
	}
	CTR_ADD(&t->notified, 1);
	nr = req->data.nr;
	if (req->data.arch != SC_AUDIT_ARCH
#ifdef __x86_64__
	    || (nr & 0x40000000)
#endif
	) {
		CTR_ADD(&t->foreign_abi, 1);
		cont_now(s, req->id);
		return;
	}
	if (s->lingering || s->stop) {
		cont_now(s, req->id);
		return;
	}
	if (!from_target(s, (pid_t)req->pid)) {
		/* its children inherit the filter; the rule's scope is the target's thread group */
		CTR_ADD(&t->other_proc, 1);
		cont_now(s, req->id);
		return;
	}
	ca.path_state = ca.dst_state = 0;
	for (int i = 0; i < SC_SLOTS; i++) {
		struct sc_slot *sl = &t->slot[i];
		uint64_t matched, acted;
		int m;

		if (!LOAD(&sl->active) || !slot_has_nr(sl, nr))
			continue;
		m = args_match(s, sl, req, &ca);
		if (m < 0)
			return;
		if (!m)
			continue;
		/* a call acted on by one rule is not seen by the next: each rule's ratio stays its own */
		matched = CTR_GET(&sl->matched) + 1;
		acted = CTR_GET(&sl->acted);
		CTR_SET(&sl->matched, matched);
		if (matched > sl->gate.after && (!sl->gate.max || acted < sl->gate.max))
			CTR_ADD(&sl->rolled, 1);
		if (!fl_sys_should_act(&sl->gate, matched, acted, rnd32(s)))
			continue;
		CTR_SET(&sl->acted, acted + 1);
		if (sl->err)
			answer(s, req->id, sl->err);
		else
			hold(s, i, req->id, fl_mono_ns());
		return;
	}
	cont_now(s, req->id);
}

/*
 * Read what is queued, up to a budget, without blocking: RECV blocks when nothing is pending, so
 * each one after the first (which epoll reported) is looked for with a zero-timeout poll.
 */
static void drain(struct sup *s, int budget, bool reported)
{
	for (int i = 0; i < budget; i++) {
		struct pollfd pf = {.fd = s->listener, .events = POLLIN};

		if ((i || !reported) && (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLIN)))
			return;
		on_notification(s);
	}
}

/* ---- the hand-off of the listener fd ------------------------------------------------------- */

/*
 * The target's child installed the filter and left the listener's fd number in the table; take
 * a copy of that fd out of its table (pidfd_getfd). No syscall of the child's is needed for it:
 * passing it with sendmsg(SCM_RIGHTS) would block forever whenever a rule names sendmsg, since
 * the filter is already in force and nobody could answer yet.
 */
static void take_listener(struct sup *s, pid_t from)
{
	struct sc_table *t = s->tab;
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
	char link[64], what[64] = "";
	int rc = 0, pfd = -1, fd = -1;
	ssize_t n;

	if (LOAD(&t->handoff) != HANDOFF_OFFERED || from != t->handoff_pid)
		return; /* not the child we prepared for */
	if (s->listener >= 0) {
		rc = -EBUSY;
		goto out;
	}
	pfd = pidfd_open(from);
	if (pfd < 0 || (fd = (int)syscall(SYS_pidfd_getfd, pfd, t->handoff_fd, 0)) < 0) {
		rc = -errno;
		goto out;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, what, sizeof(what) - 1);
	if (n > 0)
		what[n] = '\0';
	if (n <= 0 || strcmp(what, "anon_inode:seccomp notify")) {
		rc = -EBADF;
		goto out;
	}
	{
		char task[64];

		snprintf(task, sizeof(task), "/proc/%d/task", (int)from);
		s->taskdir = open(task, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	/*
	 * Linux 6.6+: each wake-up of a round trip moves the woken side to the waker's CPU. Without
	 * it a notified call measured 3..45 us here (a wake-up of another, often idle, vCPU each
	 * way), with it 1.9 us. Best effort: older kernels refuse the ioctl and keep working.
	 */
	{
		uint64_t fl = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;

		ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, fl);
	}
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		rc = -errno;
		goto out;
	}
	s->listener = fd;
	s->tpidfd = pfd;
	s->tgid = from;
	fd = pfd = -1;
	STORE(&t->target, (int32_t)from);
	STORE(&t->sup_state, SUP_SERVING);
out:
	if (fd >= 0)
		close(fd);
	if (pfd >= 0)
		close(pfd);
	t->handoff_err = rc;
	STORE(&t->handoff, rc ? HANDOFF_REFUSED : HANDOFF_TAKEN);
	futex(&t->handoff, FUTEX_WAKE, INT_MAX, NULL);
}

/* ---- the loop ------------------------------------------------------------------------------ */

enum { EV_LISTENER, EV_TIMER, EV_SIGNAL, EV_CTL };

struct sc_ctl_msg {
	uint32_t op;                /* CTL_FLUSH */
	int32_t slot;
};
#define CTL_FLUSH 1

static void deactivate(struct sup *s, int slot)
{
	for (int i = 0; i < SC_SLOTS; i++)
		if (slot < 0 || i == slot)
			STORE(&s->tab->slot[i].active, 0);
	flush(s, slot);
}

static void on_signals(struct sup *s)
{
	struct signalfd_siginfo si;

	while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if ((int)si.ssi_signo == SIGTERM || (int)si.ssi_signo == SIGINT)
			s->stop = true;
		else if ((int)si.ssi_signo == SIGUSR2)
			take_listener(s, (pid_t)si.ssi_pid);
		else if ((int)si.ssi_signo == SC_SLOT_SIGNAL && si.ssi_int >= 0 && si.ssi_int < SC_SLOTS)
			deactivate(s, si.ssi_int); /* revert_record of a slot, from another process */
	}
}

static void on_ctl(struct sup *s)
{
	struct sc_ctl_msg m;
	ssize_t n;

	while ((n = recv(s->ctl, &m, sizeof(m), MSG_DONTWAIT)) == (ssize_t)sizeof(m))
		if (m.op == CTL_FLUSH && m.slot >= 0 && m.slot < SC_SLOTS)
			flush(s, m.slot);
	if (n == 0 && !s->lingering) {
		/*
		 * The controller let go while the target runs: every rule is off, and the filter's calls
		 * are continued until the target is gone. Exiting now would fail them all (ENOSYS).
		 */
		s->lingering = true;
		STORE(&s->tab->sup_state, SUP_LINGERING);
		deactivate(s, -1);
		epoll_ctl(s->ep, EPOLL_CTL_DEL, s->ctl, NULL);
		if (s->listener < 0)
			s->stop = true;
	}
}

static void sup_loop(struct sup *s)
{
	struct epoll_event evs[8];

	while (!s->stop && !s->gone) {
		int n = epoll_wait(s->ep, evs, 8, -1);

		if (n < 0 && errno != EINTR) {
			sup_error(s, errno);
			break;
		}
		for (int i = 0; i < n; i++) {
			uint32_t e = evs[i].events;

			switch (evs[i].data.u32) {
			case EV_LISTENER:
				if (e & EPOLLIN)
					drain(s, SC_RECV_BATCH, true);
				/* no task uses the filter any more: the target and its children are gone */
				if ((e & (EPOLLHUP | EPOLLERR)) && !(e & EPOLLIN))
					s->gone = true;
				break;
			case EV_TIMER: {
				uint64_t ticks;

				if (read(s->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					sup_error(s, errno);
				break;
			}
			case EV_SIGNAL:
				on_signals(s);
				break;
			case EV_CTL:
				on_ctl(s);
				break;
			}
		}
		release_due(s);
		arm(s);
		boost(s);
	}
	/* stopping: nothing held stays held, and what is queued runs rather than failing ENOSYS */
	flush(s, -1);
	if (s->listener >= 0 && !s->gone)
		drain(s, SC_STOP_DRAIN, false);
}

struct sup_cfg {
	struct sc_table *tab;
	int ctl;                    /* our end of the control socketpair */
	int report;                 /* write end: the set-up result as a struct fl_err */
};

static void __attribute__((noreturn)) sup_main(const struct sup_cfg *c)
{
	struct sup s = {.tab = c->tab, .ep = -1, .listener = -1, .tfd = -1, .sfd = -1, .ctl = c->ctl,
			.taskdir = -1, .tpidfd = -1};
	struct seccomp_notif_sizes sz = {0};
	struct epoll_event ev = {.events = EPOLLIN};
	struct fl_err e = {0};
	sigset_t mask;
	int rc = 0;

	prctl(PR_SET_NAME, "fl-seccomp-sup");
	/* held calls are released by a timerfd: a 50 us default slack would show in every delay */
	prctl(PR_SET_TIMERSLACK, 1UL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SC_SLOT_SIGNAL);
	/* exactly these are blocked (the controller's mask is inherited) and read from a signalfd */
	sigprocmask(SIG_SETMASK, &mask, NULL);
	s.page = sysconf(_SC_PAGESIZE);
	if (getrandom(&s.rng, sizeof(s.rng), 0) != (ssize_t)sizeof(s.rng))
		s.rng = (uint64_t)fl_mono_ns() ^ ((uint64_t)getpid() << 32);
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz) < 0) {
		rc = fl_err_set(&e, -errno, "seccomp(SECCOMP_GET_NOTIF_SIZES): %s", strerror(errno));
		goto report;
	}
	/* the kernel may know bigger structs than our headers: buffers of the larger size */
	s.req_sz = sz.seccomp_notif > sizeof(*s.req) ? sz.seccomp_notif : sizeof(*s.req);
	s.resp_sz = sz.seccomp_notif_resp > sizeof(*s.resp) ? sz.seccomp_notif_resp : sizeof(*s.resp);
	s.req = calloc(1, s.req_sz);
	s.resp = calloc(1, s.resp_sz);
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	s.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	s.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!s.req || !s.resp || s.ep < 0 || s.sfd < 0 || s.tfd < 0) {
		rc = fl_err_set(&e, errno ? -errno : -ENOMEM, "seccomp supervisor set-up: %s",
				strerror(errno ? errno : ENOMEM));
		goto report;
	}
	ev.data.u32 = EV_TIMER;
	epoll_ctl(s.ep, EPOLL_CTL_ADD, s.tfd, &ev);
	ev.data.u32 = EV_SIGNAL;
	epoll_ctl(s.ep, EPOLL_CTL_ADD, s.sfd, &ev);
	ev.data.u32 = EV_CTL;
	if (epoll_ctl(s.ep, EPOLL_CTL_ADD, s.ctl, &ev) < 0)
		rc = fl_err_set(&e, -errno, "epoll_ctl: %s", strerror(errno));
report:
	if (write(c->report, &e, sizeof(e)) != (ssize_t)sizeof(e) && !rc)
		rc = -EPIPE;
	close(c->report);
	if (!rc)
		sup_loop(&s);
	STORE(&s.tab->sup_state, SUP_EXITED);
	/* the listener closes with us; nothing else to undo */
	_exit(rc ? 1 : 0);
}

/* ---- the controller's side: one session per launched target ------------------------------- */

/* Reaps the supervisor whenever it exits, so it never lingers as a zombie (see sess_end). */
struct sc_reaper {
	pid_t pid;
	int refs;                   /* atomic: the session's and the thread's */
	int done;                   /* atomic */
	pthread_t th;
};

struct sc_session {
	struct sc_table *tab;
	pid_t sup;
	uint64_t sup_start;
	int sup_pidfd;
	int ctl;                    /* our end of the control socketpair */
	struct sc_reaper *reaper;
	int nslots;
	const struct fl_fault *owner[SC_SLOTS];
	bool applied[SC_SLOTS];     /* applied at least once (and so released once) */
	int nrs[SC_MAX_NR];
	int nnr;
	struct sock_filter filter[SC_FILTER_MAX];
	unsigned short nfilter;
	bool launched;              /* launch_done(pid > 0) */
	pid_t target;
	uint64_t target_start;
	int live;                   /* applied states not yet released */
	int elf_rc;                 /* 1 unchecked, 0 native, else why not */
	char elf_why[200];
};

struct sc_state {
	struct sc_session *s;
	int slot;
	bool reverted;
};

/* The session being prepared, or the last one launched; older ones live on in their states. */
static struct sc_session *g_cur;
/* In the target's child: the filter is in (later launch_child calls return 0). */
static bool g_child_done;

static void reaper_put(struct sc_reaper *r)
{
	if (r && __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(r);
}

static void *reaper_main(void *arg)
{
	struct sc_reaper *r = arg;
	int st = 0;

	while (waitpid(r->pid, &st, 0) < 0 && errno == EINTR)
		;
	STORE(&r->done, 1);
	reaper_put(r);
	return NULL;
}

static int reaper_start(struct sc_session *s, struct fl_err *err)
{
	struct sc_reaper *r = calloc(1, sizeof(*r));
	sigset_t all, old;
	int rc;

	if (!r)
		return fl_err_set(err, -ENOMEM, "out of memory");
	r->pid = s->sup;
	r->refs = 2;
	/* the thread takes no signal: the controller reads its own from a signalfd */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&r->th, NULL, reaper_main, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		free(r);
		return fl_err_set(err, -rc, "pthread_create: %s", strerror(rc));
	}
	s->reaper = r;
	return 0;
}

static bool sup_exited(const struct sc_session *s)
{
	return !s->reaper || LOAD(&s->reaper->done);
}

/* SIGTERM (the supervisor continues what it holds and exits 0), SIGKILL after SC_STOP_MS; reaped. */
static void sup_stop(struct sc_session *s)
{
	struct sc_reaper *r = s->reaper;
	struct timespec ts;

	if (!r)
		return;
	if (!LOAD(&r->done))
		pidfd_signal(s->sup_pidfd, SIGTERM, NULL);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += SC_STOP_MS / 1000;
	if (pthread_timedjoin_np(r->th, NULL, &ts)) {
		pidfd_signal(s->sup_pidfd, SIGKILL, NULL);
		pthread_join(r->th, NULL);
	}
	reaper_put(r);
	s->reaper = NULL;
}

static bool target_running(const struct sc_session *s)
{
	char st = 0;

	/* a zombie makes no call: stopping the supervisor under it harms nothing */
	return s->launched && s->target > 0 && fl_proc_same(s->target, s->target_start) &&
	       !fl_proc_state(s->target, &st) && st != 'Z' && st != 'X';
}

/*
 * The end of a session. With the target gone the supervisor is stopped and reaped here. With
 * the target still running (the engine releases faults before it stops the target) stopping it
 * would make every filtered call of the target fail with ENOSYS from then on, so it is let go
 * instead: our end of the control socket closes, it turns every rule off and continues all
 * calls, and exits when the target does; its reaper thread reaps it then.
 */
static void sess_end(struct sc_session *s)
{
	if (!s)
		return;
	if (g_cur == s)
		g_cur = NULL;
	if (s->reaper && !sup_exited(s) && target_running(s) && LOAD(&s->tab->handoff) == HANDOFF_TAKEN) {
		pthread_detach(s->reaper->th);
		reaper_put(s->reaper);
		s->reaper = NULL;
	} else {
		sup_stop(s);
	}
	if (s->ctl >= 0)
		close(s->ctl);
	if (s->sup_pidfd >= 0)
		close(s->sup_pidfd);
	if (s->tab)
		munmap(s->tab, sizeof(*s->tab));
	free(s);
}

/* Every prepared slot was applied and released, or the launch failed: nothing can use it now. */
static void sess_maybe_end(struct sc_session *s)
{
	if (s->live)
		return;
	for (int i = 0; i < s->nslots; i++)
		if (!s->applied[i] && s == g_cur)
			return;
	sess_end(s);
}

static int sess_new(const struct fl_sys_rule *r, struct fl_journal *j, struct sc_session **out, struct fl_err *err)
{
	struct sc_session *s = calloc(1, sizeof(*s));
	int sv[2] = {-1, -1}, rep[2] = {-1, -1}, rc = 0;
	struct fl_err child = {0};
	sigset_t block, old;
	ssize_t n = 0;
	int64_t seq;
	pid_t pid;

	*out = NULL;
	if (!s)
		return fl_err_set(err, -ENOMEM, "out of memory");
	s->ctl = s->sup_pidfd = -1;
	s->elf_rc = 1;
	s->tab = mmap(NULL, sizeof(*s->tab), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s->tab == MAP_FAILED) {
		s->tab = NULL;
		rc = fl_err_set(err, -errno, "mmap: %s", strerror(errno));
		goto fail;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
		rc = fl_err_set(err, -errno, "socketpair/pipe: %s", strerror(errno));
		goto fail;
	}
	/* blocked from the fork on: a hand-off signal arriving early waits for the signalfd */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SC_SLOT_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	{
		int keep[2] = {sv[1], rep[1]};

		pid = fl_spawn_child(keep, 2, err);
	}
	if (pid == 0) {
		struct sup_cfg cfg = {.tab = s->tab, .ctl = sv[1], .report = rep[1]};

		sup_main(&cfg);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	close(rep[1]);
	sv[1] = rep[1] = -1;
	if (pid < 0) {
		rc = (int)pid;
		goto fail;
	}
	s->sup = pid;
	s->ctl = sv[0];
	sv[0] = -1;
	s->sup_pidfd = pidfd_open(pid);
	if (s->sup_pidfd < 0) {
		rc = fl_err_set(err, -errno, "pidfd_open(%d): %s", (int)pid, strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto fail;
	}
	if (fl_proc_starttime(pid, &s->sup_start))
		s->sup_start = 0;
	rc = reaper_start(s, err);
	if (rc) {
		pidfd_signal(s->sup_pidfd, SIGKILL, NULL);
		waitpid(pid, NULL, 0);
		goto fail;
	}
	seq = fl_journal_append(j, r->f, "backend=seccomp child=%d start=%llu", (int)pid,
				(unsigned long long)s->sup_start);
	if (seq < 0) {
		rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
		goto fail;
	}
	{
		struct pollfd pf = {.fd = rep[0], .events = POLLIN};

		if (poll(&pf, 1, SC_READY_MS) > 0)
			n = read(rep[0], &child, sizeof(child));
	}
	if (n != (ssize_t)sizeof(child)) {
		rc = fl_err_set(err, n == 0 ? -EIO : -ETIMEDOUT, "the seccomp supervisor (pid %d) %s", (int)pid,
				n == 0 ? "exited during its set-up" : "did not start in time");
		goto fail;
	}
	if (child.code) {
		rc = child.code;
		if (err)
			*err = child;
		goto fail;
	}
	close(rep[0]);
	*out = s;
	return 0;
fail:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (rep[0] >= 0)
		close(rep[0]);
	if (rep[1] >= 0)
		close(rep[1]);
	sess_end(s);
	return rc;
}

/* ---- check --------------------------------------------------------------------------------- */

static bool known_syscall(const struct fl_syscall *sc)
{
	const struct fl_syscall *k = sc && sc->name ? fl_syscall_by_name(sc->name) : NULL;

	return k && k->nr == sc->nr;
}

static int sc_check(const struct fl_sys_rule *r, struct fl_err *err)
{
	if (!SC_AUDIT_ARCH)
		return fl_err_set(err, -EOPNOTSUPP, "the seccomp backend does not know the audit arch of %s", SC_ARCH_NAME);
	if (!r->launched) {
		fl_err_set(err, -EOPNOTSUPP, "seccomp needs a target faultline launches (target.run); for a running "
					     "process use backend lsm or cgroup");
		fl_err_hint(err, "a seccomp filter can only be installed by the process itself, before its exec");
		return -EOPNOTSUPP;
	}
	if (r->n <= 0 || r->n > FL_SYS_MAX)
		return fl_err_set(err, -EINVAL, "a seccomp rule needs 1 to %d syscalls (has %d)", FL_SYS_MAX, r->n);
	for (int i = 0; i < r->n; i++)
		if (!known_syscall(r->sys[i]))
			return fl_err_set(err, -EINVAL, "syscall %s is not one faultline knows on %s",
					  r->sys[i] && r->sys[i]->name ? r->sys[i]->name : "(null)", SC_ARCH_NAME);
	if (r->err) {
		if (r->err < 1 || r->err > 4095)
			return fl_err_set(err, -EINVAL, "errno %d is out of range (1..4095)", r->err);
		if (r->delay_ns)
			return fl_err_set(err, -EINVAL, "a rule either fails calls or delays them, not both");
	} else {
		if (r->delay_ns <= 0 || r->delay_ns > SC_DELAY_MAX_NS) {
			fl_err_set(err, -ERANGE, "delay %.3f ms is out of the seccomp backend's range (0, 60 s]",
				   (double)r->delay_ns / 1e6);
			fl_err_hint(err, "every held call is a blocked thread of the target; hours are not a drill");
			return -ERANGE;
		}
		if (r->jitter_ns < 0 || r->jitter_ns > r->delay_ns)
			return fl_err_set(err, -EINVAL, "jitter %.3f ms must be within 0..delay (%.3f ms)",
					  (double)r->jitter_ns / 1e6, (double)r->delay_ns / 1e6);
	}
	if (!(r->probability >= 0.0 && r->probability <= 1.0))
		return fl_err_set(err, -EINVAL, "probability %g is not within 0..1", r->probability);
	if (r->path_prefix[0] && !(r->classes & FL_SYS_FILE_OPEN))
		return fl_err_set(err, -EINVAL, "path_prefix narrows open-like calls, and the rule lists none");
	if ((r->has_dst || r->dst_port) && !(r->classes & (FL_SYS_CONNECT | FL_SYS_SENDMSG)))
		return fl_err_set(err, -EINVAL, "dst_ip/dst_port narrow connect and send calls, and the rule lists none");
	if (r->has_dst && !((r->dst.family == AF_INET && r->dst.prefix >= 0 && r->dst.prefix <= 32) ||
			    (r->dst.family == AF_INET6 && r->dst.prefix >= 0 && r->dst.prefix <= 128)))
		return fl_err_set(err, -EINVAL, "dst_ip has a bad family or prefix length");
	if (fl_have_cap(CAP_SYS_ADMIN) <= 0) {
		fl_err_set(err, -EPERM, "installing a seccomp filter in the target needs CAP_SYS_ADMIN");
		fl_err_hint(err, "run faultline as root; it does not set no_new_privs on targets, which would "
				 "stop their setuid and file-capability helpers");
		return -EPERM;
	}
	return 0;
}

/* ---- launch hooks -------------------------------------------------------------------------- */

static int find_slot(const struct sc_session *s, const struct fl_fault *f)
{
	for (int i = 0; s && i < s->nslots; i++)
		if (s->owner[i] == f)
			return i;
	return -1;
}

static void slot_configure(struct sc_slot *sl, const struct fl_sys_rule *r)
{
	sl->nsys = r->n;
	for (int i = 0; i < r->n; i++)
		sl->nr[i] = r->sys[i]->nr;
	sl->err = r->err;
	sl->delay_ns = r->delay_ns;
	sl->jitter_ns = r->jitter_ns;
	memset(&sl->gate, 0, sizeof(sl->gate));
	sl->gate.probability = r->probability;
	sl->gate.after = r->after;
	sl->gate.max = r->max;
	snprintf(sl->path_prefix, sizeof(sl->path_prefix), "%s", r->path_prefix);
	sl->has_dst = r->has_dst;
	sl->dst = r->dst;
	sl->dst_port = r->dst_port;
}

static bool in_union(const struct sc_session *s, int nr)
{
	for (int i = 0; i < s->nnr; i++)
		if (s->nrs[i] == nr)
			return true;
	return false;
}

static int sc_launch_prepare(const struct fl_sys_rule *r, struct fl_journal *j, struct fl_err *err)
{
	struct sc_session *s;
	int nrs[SC_MAX_NR], nnr, slot, rc;
	struct fl_sys_rule launched = *r;

	launched.launched = true; /* prepare is only called for a target about to be launched */
	rc = sc_check(&launched, err);
	if (rc)
		return rc;
	/* a new launch: the previous one's session is finished with (its states keep it if applied) */
	if (g_cur && g_cur->launched) {
		struct sc_session *old = g_cur;

		g_cur = NULL;
		if (!old->live)
			sess_end(old);
	}
	if (!g_cur) {
		rc = sess_new(r, j, &g_cur, err);
		if (rc)
			return rc;
	}
	s = g_cur;
	if (find_slot(s, r->f) >= 0)
		return 0;
	if (s->nslots == SC_SLOTS)
		return fl_err_set(err, -ENOSPC, "at most %d seccomp faults per launched target", SC_SLOTS);
	nnr = s->nnr;
	memcpy(nrs, s->nrs, sizeof(nrs));
	for (int i = 0; i < r->n; i++) {
		bool have = false;

		for (int k = 0; k < nnr && !have; k++)
			have = nrs[k] == r->sys[i]->nr;
		if (have)
			continue;
		if (nnr == SC_MAX_NR)
			return fl_err_set(err, -E2BIG, "more than %d distinct syscalls in one seccomp filter", SC_MAX_NR);
		nrs[nnr++] = r->sys[i]->nr;
	}
	rc = filter_build(nrs, nnr, s->filter, &s->nfilter);
	if (rc)
		return fl_err_set(err, rc, "seccomp filter for %d syscalls: %s", nnr, strerror(-rc));
	memcpy(s->nrs, nrs, sizeof(nrs));
	s->nnr = nnr;
	slot = s->nslots++;
	s->owner[slot] = r->f;
	slot_configure(&s->tab->slot[slot], r);
	return 0;
}

/*
 * In the target's child between fork and exec: async-signal-safe calls only (no malloc, no
 * stdio), and none that the filter could send to the supervisor before it has the listener,
 * since nobody could answer it: memory writes, getpid, kill and futex are never in the filter
 * (fl_syscalls does not name them).
 */
static int sc_launch_child(void)
{
	struct sc_session *s = g_cur;
	struct sc_table *t;
	struct sock_fprog prog;
	int fd, rc = 0;

	if (!s || g_child_done)
		return 0;
	g_child_done = true;
	t = s->tab;
	prog.len = s->nfilter;
	prog.filter = s->filter;
	/* killable once received: a signal then cannot cut a held call short (EINTR, or a second hold) */
	fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			  SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
	if (fd >= 0)
		t->killable = 1;
	else if (errno == EINVAL)
		fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (fd < 0) {
		t->child_errno = errno;
		return -errno; /* EACCES: neither CAP_SYS_ADMIN nor no_new_privs */
	}
	t->handoff_fd = fd;
	t->handoff_pid = (int32_t)getpid();
	STORE(&t->handoff, HANDOFF_OFFERED);
	if (kill(s->sup, SIGUSR2) < 0) {
		rc = -errno;
		goto out;
	}
	for (int waited = 0;; waited += 50) {
		struct timespec ts = {0, 50 * 1000000L};
		uint32_t h = LOAD(&t->handoff);

		if (h == HANDOFF_TAKEN)
			break;
		if (h == HANDOFF_REFUSED) {
			rc = t->handoff_err ? t->handoff_err : -EIO;
			break;
		}
		if (waited >= SC_HANDOFF_MS || kill(s->sup, 0) < 0) {
			rc = -ETIMEDOUT;
			break;
		}
		futex(&t->handoff, FUTEX_WAIT, HANDOFF_OFFERED, &ts);
	}
out:
	/* the supervisor holds its own copy now; on failure the filter's calls fail ENOSYS, not hang */
	close(fd);
	return rc;
}

static void sc_launch_done(pid_t pid)
{
	struct sc_session *s = g_cur;

	if (!s)
		return;
	if (pid <= 0) {
		/* the launch failed: no target will ever use this supervisor */
		g_cur = NULL;
		if (!s->live)
			sess_end(s);
		return;
	}
	s->launched = true;
	s->target = pid;
	if (fl_proc_starttime(pid, &s->target_start))
		s->target_start = 0;
}

/* ---- probe --------------------------------------------------------------------------------- */

static const char probe_text[] = "faultline seccomp probe";

struct probe_shm {
	uint32_t handoff;
	int32_t fd, pid, err;
	uint32_t killable;
};

static void __attribute__((noreturn)) probe_child(struct probe_shm *p)
{
	struct sock_filter f[SC_FILTER_MAX];
	struct sock_fprog prog;
	int nr = SYS_getppid, fd;
	pid_t real = getppid();

	filter_build(&nr, 1, f, &prog.len);
	prog.filter = f;
	fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			  SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
	if (fd >= 0)
		p->killable = 1;
	else if (errno == EINVAL)
		fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (fd < 0) {
		p->err = -errno;
		STORE(&p->handoff, HANDOFF_REFUSED);
		futex(&p->handoff, FUTEX_WAKE, INT_MAX, NULL);
		_exit(2);
	}
	p->fd = fd;
	p->pid = (int32_t)getpid();
	STORE(&p->handoff, HANDOFF_OFFERED);
	futex(&p->handoff, FUTEX_WAKE, INT_MAX, NULL);
	for (int i = 0; i < 100 && LOAD(&p->handoff) == HANDOFF_OFFERED; i++) {
		struct timespec ts = {0, 20 * 1000000L};

		futex(&p->handoff, FUTEX_WAIT, HANDOFF_OFFERED, &ts);
	}
	if (LOAD(&p->handoff) != HANDOFF_TAKEN)
		_exit(3);
	close(fd);
	/* first answered with a made-up value, the second continued to the real call */
	if (getppid() != 4242)
		_exit(4);
	if (getppid() != real)
		_exit(5);
	_exit(0);
}

/* Wait for one notification of the probe child and check it is the call we expect. */
static int probe_recv(int fd, pid_t child, struct seccomp_notif *req, size_t sz, struct fl_err *err)
{
	struct pollfd pf = {.fd = fd, .events = POLLIN};

	if (poll(&pf, 1, 2000) != 1)
		return fl_err_set(err, -ETIMEDOUT, "no seccomp notification arrived within 2 s");
	memset(req, 0, sz);
	if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0)
		return fl_err_set(err, -errno, "ioctl(SECCOMP_IOCTL_NOTIF_RECV): %s", strerror(errno));
	if (req->data.nr != SYS_getppid || req->data.arch != SC_AUDIT_ARCH || (pid_t)req->pid != child)
		return fl_err_set(err, -EPROTO, "seccomp notification for nr %d arch %#x pid %u, expected getppid of %d",
				  req->data.nr, req->data.arch, req->pid, (int)child);
	return 0;
}

static int probe_send(int fd, struct seccomp_notif_resp *resp, size_t sz, uint64_t id, bool cont, struct fl_err *err)
{
	memset(resp, 0, sz);
	resp->id = id;
	if (cont)
		resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	else
		resp->val = 4242;
	if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp) == 0)
		return 0;
	if (cont && errno == EINVAL) {
		fl_err_set(err, -EOPNOTSUPP, "this kernel cannot continue a notified call "
					     "(SECCOMP_USER_NOTIF_FLAG_CONTINUE, Linux 5.5)");
		return -EOPNOTSUPP;
	}
	return fl_err_set(err, -errno, "ioctl(SECCOMP_IOCTL_NOTIF_SEND): %s", strerror(errno));
}

static int sc_probe(struct fl_err *err)
{
	struct seccomp_notif_sizes sz = {0};
	struct seccomp_notif *req = NULL;
	struct seccomp_notif_resp *resp = NULL;
	struct probe_shm *p = NULL;
	size_t req_sz, resp_sz;
	int rc = 0, pfd = -1, fd = -1, status = 0;
	pid_t child = -1;

	if (!SC_AUDIT_ARCH)
		return fl_err_set(err, -EOPNOTSUPP, "the seccomp backend does not know the audit arch of %s", SC_ARCH_NAME);
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz) < 0) {
		rc = fl_err_set(err, errno == EINVAL ? -EOPNOTSUPP : -errno,
				"this kernel has no seccomp user notification (SECCOMP_GET_NOTIF_SIZES: %s; Linux 5.0 "
				"with CONFIG_SECCOMP_FILTER)", strerror(errno));
		return rc;
	}
	req_sz = sz.seccomp_notif > sizeof(*req) ? sz.seccomp_notif : sizeof(*req);
	resp_sz = sz.seccomp_notif_resp > sizeof(*resp) ? sz.seccomp_notif_resp : sizeof(*resp);
	req = calloc(1, req_sz);
	resp = calloc(1, resp_sz);
	p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!req || !resp || p == MAP_FAILED) {
		if (p == MAP_FAILED)
			p = NULL;
		rc = fl_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	child = fl_spawn_child(NULL, 0, err);
	if (child == 0)
		probe_child(p);
	if (child < 0) {
		rc = (int)child;
		goto out;
	}
	for (int i = 0; i < 100 && LOAD(&p->handoff) == HANDOFF_IDLE; i++) {
		struct timespec ts = {0, 20 * 1000000L};

		futex(&p->handoff, FUTEX_WAIT, HANDOFF_IDLE, &ts);
	}
	if (LOAD(&p->handoff) == HANDOFF_REFUSED) {
		rc = p->err;
		if (rc == -EACCES) {
			fl_err_set(err, -EPERM, "seccomp(SECCOMP_SET_MODE_FILTER) refused (EACCES): installing a filter "
						"without no_new_privs needs CAP_SYS_ADMIN");
			fl_err_hint(err, "run faultline as root");
			rc = -EPERM;
		} else if (rc == -EINVAL) {
			rc = fl_err_set(err, -EOPNOTSUPP, "this kernel refuses SECCOMP_FILTER_FLAG_NEW_LISTENER "
							  "(seccomp user notification, Linux 5.0)");
		} else {
			fl_err_set(err, rc, "seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER): %s", strerror(-rc));
		}
		goto out;
	}
	if (LOAD(&p->handoff) != HANDOFF_OFFERED) {
		rc = fl_err_set(err, -ETIMEDOUT, "the seccomp probe child did not install its filter within 2 s");
		goto out;
	}
	pfd = pidfd_open(child);
	if (pfd < 0) {
		rc = fl_err_set(err, -errno, "pidfd_open: %s (the seccomp backend needs Linux 5.6)", strerror(errno));
		goto out;
	}
	fd = (int)syscall(SYS_pidfd_getfd, pfd, p->fd, 0);
	if (fd < 0) {
		rc = fl_err_set(err, errno == ENOSYS ? -EOPNOTSUPP : -errno,
				"pidfd_getfd of the probe's listener: %s", strerror(errno));
		if (errno == EPERM)
			fl_err_hint(err, "taking the filter's fd and reading the target's arguments need ptrace access "
					 "(CAP_SYS_PTRACE; Yama ptrace_scope below 3)");
		else if (errno == ENOSYS)
			fl_err_hint(err, "pidfd_getfd needs Linux 5.6");
		goto out;
	}
	STORE(&p->handoff, HANDOFF_TAKEN);
	futex(&p->handoff, FUTEX_WAKE, INT_MAX, NULL);
	rc = probe_recv(fd, child, req, req_sz, err);
	if (!rc) {
		/* the arguments of a call are read from the target's memory the same way */
		char buf[sizeof(probe_text)];
		struct iovec l = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct iovec r = {.iov_base = (void *)probe_text, .iov_len = sizeof(probe_text)};

		if (process_vm_readv(child, &l, 1, &r, 1, 0) != (ssize_t)sizeof(buf) || memcmp(buf, probe_text, sizeof(buf))) {
			rc = fl_err_set(err, -errno ? -errno : -EIO, "process_vm_readv of the probe child: %s",
					strerror(errno ? errno : EIO));
			fl_err_hint(err, "reading a call's path or address needs ptrace access (CAP_SYS_PTRACE)");
		} else if (ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
			rc = fl_err_set(err, -errno, "ioctl(SECCOMP_IOCTL_NOTIF_ID_VALID): %s", strerror(errno));
		}
	}
	if (!rc)
		rc = probe_send(fd, resp, resp_sz, req->id, false, err);
	if (!rc)
		rc = probe_recv(fd, child, req, req_sz, err);
	if (!rc)
		rc = probe_send(fd, resp, resp_sz, req->id, true, err);
out:
	if (child > 0) {
		struct pollfd pf = {.fd = pfd, .events = POLLIN};

		if (rc || pfd < 0 || poll(&pf, 1, 2000) != 1)
			kill(child, SIGKILL);
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
		if (!rc && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			rc = fl_err_set(err, -EIO, "the seccomp probe child saw wrong results (status %#x)", status);
	}
	if (!rc && p && !p->killable)
		fl_err_set(err, 0, "signals can interrupt a held call (no SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, "
				   "Linux 5.19): it then restarts and may be held again");
	if (fd >= 0)
		close(fd);
	if (pfd >= 0)
		close(pfd);
	if (p)
		munmap(p, sizeof(*p));
	free(req);
	free(resp);
	return rc;
}

/* ---- apply, observe, revert, release ------------------------------------------------------- */

/* Is the target's own binary of the ABI whose numbers the filter compares? 0, else why not. */
static int elf_check(struct sc_session *s, struct fl_err *err)
{
	char path[64];
	unsigned char id[EI_NIDENT + 4];
	int fd;
	ssize_t n;

	if (s->elf_rc == 1) {
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)s->target);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? read(fd, id, sizeof(id)) : -1;
		if (fd >= 0)
			close(fd);
		s->elf_rc = 0;
		if (n == (ssize_t)sizeof(id) && !memcmp(id, ELFMAG, SELFMAG)) {
			uint16_t machine;

			memcpy(&machine, id + EI_NIDENT + 2, sizeof(machine)); /* e_machine, host byte order */
			if (id[EI_CLASS] != ELFCLASS64 || machine != SC_ELF_MACHINE) {
				s->elf_rc = -EOPNOTSUPP;
				snprintf(s->elf_why, sizeof(s->elf_why),
					 "the target's binary is not a 64-bit %s ELF (class %d, machine %u): its syscalls "
					 "have other numbers than the filter's", SC_ARCH_NAME, id[EI_CLASS], machine);
			}
		}
		/* unreadable or a script interpreter's: the running image is what /proc/PID/exe shows */
	}
	if (s->elf_rc)
		return fl_err_set(err, s->elf_rc, "%s", s->elf_why);
	return 0;
}

static int sc_apply(const struct fl_sys_rule *r, struct fl_journal *j, void **state, struct fl_err *err)
{
	struct sc_session *s = g_cur;
	struct sc_state *st;
	struct sc_table *t;
	int slot, rc;
	int64_t seq;

	*state = NULL;
	rc = sc_check(r, err);
	if (rc)
		return rc;
	slot = find_slot(s, r->f);
	if (slot < 0) {
		fl_err_set(err, -EINVAL, "fault %s was not prepared before the target was launched",
			   r->f && r->f->name ? r->f->name : "?");
		fl_err_hint(err, "a seccomp filter is installed at the target's exec, for the faults known then");
		return -EINVAL;
	}
	t = s->tab;
	if (!s->launched)
		return fl_err_set(err, -ESRCH, "the target of fault %s was not launched", r->f->name);
	if (LOAD(&t->handoff) != HANDOFF_TAKEN)
		return fl_err_set(err, -EIO, "the target's seccomp filter never reached the supervisor (%s)",
				  t->child_errno ? strerror(t->child_errno)
				  : t->handoff_err ? strerror(-t->handoff_err) : "no hand-off");
	if (sup_exited(s) || LOAD(&t->sup_state) == SUP_EXITED)
		return fl_err_set(err, -ESRCH, "the seccomp supervisor (pid %d) has exited%s", (int)s->sup,
				  target_running(s) ? ": the target's filtered calls now fail with ENOSYS" : " with the target");
	if (LOAD(&t->target) != s->target)
		return fl_err_set(err, -EIO, "the filter's listener came from pid %d, but the launched target is pid %d",
				  (int)LOAD(&t->target), (int)s->target);
	if (r->tgid && r->tgid != s->target)
		return fl_err_set(err, -EINVAL, "fault %s is for pid %d, the filter is in pid %d", r->f->name,
				  (int)r->tgid, (int)s->target);
	for (int i = 0; i < r->n; i++)
		if (!in_union(s, r->sys[i]->nr))
			return fl_err_set(err, -EINVAL, "syscall %s was not in the filter installed at launch",
					  r->sys[i]->name);
	rc = elf_check(s, err);
	if (rc)
		return rc;
	st = calloc(1, sizeof(*st));
	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	seq = fl_journal_append(j, r->f, "backend=seccomp slot=%d child=%d start=%llu", slot, (int)s->sup,
				(unsigned long long)s->sup_start);
	if (seq < 0) {
		free(st);
		return fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
	}
	st->s = s;
	st->slot = slot;
	/*
	 * The same rule as prepared, written again while inactive (the supervisor reads it once
	 * active), with fresh counters: an apply after a revert is a new fault for observe.
	 */
	slot_configure(&t->slot[slot], r);
	memset(&t->slot[slot].matched, 0, sizeof(struct sc_slot) - offsetof(struct sc_slot, matched));
	STORE(&t->slot[slot].active, 1);
	s->applied[slot] = true;
	s->live++;
	*state = st;
	return 0;
}

static int sc_observe(void *state, struct fl_observation *o)
{
	struct sc_state *st = state;
	const struct sc_table *t;
	const struct sc_slot *sl;
	uint64_t matched, acted, rolled;

	if (!st)
		return -ENOENT;
	t = st->s->tab;
	sl = &t->slot[st->slot];
	matched = CTR_GET(&sl->matched);
	acted = CTR_GET(&sl->acted);
	rolled = CTR_GET(&sl->rolled);
	/* the same keys as the BPF backends: a dashboard reads one name whatever the backend */
	fl_obs_num(o, "calls_matched", (double)matched, "%llu", (unsigned long long)matched);
	if (sl->err)
		fl_obs_num(o, "calls_failed", (double)acted, "%llu with %s", (unsigned long long)acted,
			   strerrorname_np(sl->err) ? strerrorname_np(sl->err) : "?");
	else
		fl_obs_num(o, "calls_delayed", (double)acted, "%llu", (unsigned long long)acted);
	/* acted on among the calls that drew the coin (past `after`, under `max`): next to probability */
	fl_obs_num(o, sl->err ? "failed_observed" : "delayed_observed", rolled ? (double)acted / (double)rolled : 0, "%.2f%% of %llu (configured %g%%)",
		   rolled ? 100.0 * (double)acted / (double)rolled : 0, (unsigned long long)rolled,
		   sl->gate.probability * 100);
	fl_obs_num(o, "probability", sl->gate.probability, "%g%%", sl->gate.probability * 100);
	fl_obs_num(o, "after", (double)sl->gate.after, "%llu", (unsigned long long)sl->gate.after);
	fl_obs_num(o, "max", (double)sl->gate.max, sl->gate.max ? "%llu" : "%llu (no limit)",
		   (unsigned long long)sl->gate.max);
	if (!sl->err) {
		uint64_t rel = CTR_GET(&sl->released);
		double mean = rel ? (double)CTR_GET(&sl->hold_sum_ns) / (double)rel / 1e6 : 0;
		double max = (double)CTR_GET(&sl->hold_max_ns) / 1e6;

		fl_obs_num(o, "delay_ms_mean", mean, "%.3f ms (%llu released, %llu of them early by the revert)", mean,
			   (unsigned long long)rel, (unsigned long long)CTR_GET(&sl->cut_short));
		fl_obs_num(o, "delay_ms_max", max, "%.3f ms", max);
		fl_obs_num(o, "held_now", (double)CTR_GET(&sl->held_now), "%llu (max %llu at once)%s",
			   (unsigned long long)CTR_GET(&sl->held_now), (unsigned long long)CTR_GET(&sl->held_max),
			   t->killable ? "" : "; a signal cuts a held call short (no WAIT_KILLABLE_RECV before 5.19)");
		if (CTR_GET(&sl->at_cap) || CTR_GET(&sl->abandoned))
			fl_obs_text(o, "held_lost", "%llu continued undelayed at the cap of %d, %llu interrupted",
				    (unsigned long long)CTR_GET(&sl->at_cap), SC_HELD_MAX,
				    (unsigned long long)CTR_GET(&sl->abandoned));
	}
	fl_obs_num(o, "notified_calls", (double)CTR_GET(&t->notified), "%llu (every rule, applied or not; %llu "
		   "continued at once)", (unsigned long long)CTR_GET(&t->notified),
		   (unsigned long long)CTR_GET(&t->continued));
	if (CTR_GET(&t->foreign_abi))
		fl_obs_num(o, "foreign_abi_calls", (double)CTR_GET(&t->foreign_abi),
			   "%llu of another ABI than %s: continued, never faulted",
			   (unsigned long long)CTR_GET(&t->foreign_abi), SC_ARCH_NAME);
	if (CTR_GET(&t->other_proc))
		fl_obs_num(o, "other_process_calls", (double)CTR_GET(&t->other_proc),
			   "%llu from the target's children: continued (the scope is its threads)",
			   (unsigned long long)CTR_GET(&t->other_proc));
	if (CTR_GET(&t->arg_errors))
		fl_obs_num(o, "arg_read_failures", (double)CTR_GET(&t->arg_errors),
			   "%llu calls whose path or address could not be read: not matched",
			   (unsigned long long)CTR_GET(&t->arg_errors));
	if ((LOAD(&t->sup_state) == SUP_EXITED && !st->reverted) || CTR_GET(&t->send_errors)) {
		int64_t e = CTR_GET(&t->last_errno);

		fl_obs_text(o, "supervisor", "%s%s; %llu failed answers (last: %s)",
			    LOAD(&t->sup_state) == SUP_EXITED ? "exited" : "running",
			    LOAD(&t->sup_state) != SUP_EXITED ? ""
			    : target_running(st->s) ? ": the target's filtered calls fail with ENOSYS" : " with the target",
			    (unsigned long long)CTR_GET(&t->send_errors), e ? strerror((int)e) : "none");
	}
	return 0;
}

static int sc_revert(void *state, struct fl_err *err)
{
	struct sc_state *st = state;
	struct sc_ctl_msg m = {.op = CTL_FLUSH};

	(void)err;
	if (!st || st->reverted)
		return 0;
	STORE(&st->s->tab->slot[st->slot].active, 0);
	/* what this rule holds runs now; a supervisor already gone holds nothing */
	m.slot = st->slot;
	if (st->s->ctl >= 0)
		send(st->s->ctl, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);
	st->reverted = true;
	return 0;
}

static void sc_release(void *state)
{
	struct sc_state *st = state;
	struct sc_session *s;

	if (!st)
		return;
	sc_revert(st, NULL);
	s = st->s;
	free(st);
	s->live--;
	if (s != g_cur || s->launched)
		sess_maybe_end(s);
}

/* ---- from the journal alone ---------------------------------------------------------------- */

/* A supervisor that is still the one journaled, as a pidfd (the pid cannot be recycled under it). */
static int recorded_pidfd(pid_t pid, uint64_t start)
{
	int pfd;

	if (pid <= 0 || !fl_proc_same(pid, start))
		return -1;
	pfd = pidfd_open(pid);
	if (pfd >= 0 && !fl_proc_same(pid, start)) {
		close(pfd);
		pfd = -1;
	}
	return pfd;
}

/* Signal pending (queued, not yet read by the supervisor's signalfd) per /proc/PID/status? */
static bool sig_pending(pid_t pid, int sig)
{
	char path[64], line[256];
	unsigned long long mask = 0;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "re")))
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "ShdPnd: %llx", &mask) == 1;
	fclose(f);
	return found && (mask >> (sig - 1) & 1);
}

static int sc_revert_record(const struct fl_journal_rec *rec, struct fl_err *err)
{
	int64_t pid, slot;
	uint64_t start;
	int pfd;

	if (fl_rec_get_i64(rec, "child", &pid) || fl_rec_get_u64(rec, "start", &start))
		return fl_err_set(err, -EINVAL, "journal record %llu lacks child= or start=", (unsigned long long)rec->seq);
	/* a dead controller's supervisor died with it (PDEATHSIG), and its target too: nothing left */
	pfd = recorded_pidfd((pid_t)pid, start);
	if (pfd < 0)
		return 0;
	if (!fl_rec_get_i64(rec, "slot", &slot)) {
		/* one fault: turn its rule off in the supervisor, which keeps serving the target */
		siginfo_t si;

		if (slot < 0 || slot >= SC_SLOTS) {
			close(pfd);
			return fl_err_set(err, -EINVAL, "journal record %llu: slot %lld out of range",
					  (unsigned long long)rec->seq, (long long)slot);
		}
		memset(&si, 0, sizeof(si));
		si.si_signo = SC_SLOT_SIGNAL;
		si.si_code = SI_QUEUE;
		si.si_pid = getpid();
		si.si_uid = getuid();
		si.si_value.sival_int = (int)slot;
		if (pidfd_signal(pfd, SC_SLOT_SIGNAL, &si) < 0 && errno != ESRCH) {
			int e = errno;

			close(pfd);
			return fl_err_set(err, -e, "pidfd_send_signal to the seccomp supervisor %lld: %s", (long long)pid,
					  strerror(e));
		}
		/* done once the supervisor has read it (it acts in the same pass) */
		for (int ms = 0; ms < SC_STOP_MS && sig_pending((pid_t)pid, SC_SLOT_SIGNAL); ms++)
			usleep(1000);
		close(pfd);
		return 0;
	}
	/* the supervisor itself: SIGTERM (it continues what it holds), SIGKILL if it does not go */
	{
		struct pollfd pf = {.fd = pfd, .events = POLLIN};

		pidfd_signal(pfd, SIGTERM, NULL);
		if (poll(&pf, 1, SC_STOP_MS) <= 0) {
			pidfd_signal(pfd, SIGKILL, NULL);
			poll(&pf, 1, 1000);
		}
	}
	close(pfd);
	return 0;
}

const struct fl_sys_backend fl_sys_backend_seccomp = {
	.name = "seccomp",
	.probe = sc_probe,
	.check = sc_check,
	.apply = sc_apply,
	.observe = sc_observe,
	.revert = sc_revert,
	.release = sc_release,
	.revert_record = sc_revert_record,
	.launch_prepare = sc_launch_prepare,
	.launch_child = sc_launch_child,
	.launch_done = sc_launch_done,
};
