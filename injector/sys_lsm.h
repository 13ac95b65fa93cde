/* What sys_lsm.bpf.c and its loader share (the rule's knobs, the counters, the hooks), plus the pieces of the BPF syscall backends that sys_cgroup reuses. */
#ifndef FL_SYS_LSM_H
#define FL_SYS_LSM_H

/* The BPF side gets its types from vmlinux.h; user space from the uapi headers. */
#ifndef __VMLINUX_H__
#include <linux/bpf.h>
#include <linux/types.h>
#endif

/* "flsyslm1": marks a .rodata map as ours when revert_record reads one back by id. */
#define FL_SL_MAGIC 0x316d6c7379736c66ULL

/* Who a program acts for (LSM hooks run for every task; cgroup programs only where attached). */
#define FL_SYS_SCOPE_CGROUP 1 /* tasks in cgid or below: ancestor at cg_level is cgid */
#define FL_SYS_SCOPE_TGID 2   /* the threads of one process, tgid as seen in pid namespace pidns_* */
#define FL_SYS_SCOPE_ALL 3    /* every task (allow_host_wide) */

#define FL_SYS_PATH_MAX 256
/* Counter slots per backend; each has two entries in the counters map: matched, acted. */
#define FL_SYS_NSLOT 16

/* file_permission's mask bits (include/linux/fs.h, not in vmlinux.h). */
#define FL_MAY_WRITE 0x2
#define FL_MAY_READ 0x4

/*
 * The knobs, in .rodata: set between open and load, frozen by the load. magic and tag come first
 * so revert_record can tell, from a program id alone, whether it belongs to a journal record.
 */
struct fl_sys_bpf_cfg {
	__u64 magic;        /* FL_SL_MAGIC or FL_SC_MAGIC */
	__u64 tag;          /* a random nonce per fault, also in its journal record */
	__u64 threshold;    /* act when bpf_get_prandom_u32() < threshold; >= 2^32: always */
	__u64 after;        /* the first `after` matching calls pass */
	__u64 max;          /* at most `max` calls acted on; 0: no limit */
	__u32 err;          /* positive errno the calls fail with */
	__u32 perm_mask;    /* file_permission: FL_MAY_READ and/or FL_MAY_WRITE */
	/* destination of connect() and sendmsg() (other calls are not narrowed by it) */
	__u32 dst_has_addr;
	__u32 dst_v6;       /* the CIDR is IPv6 (else IPv4) */
	__u32 dst_port;     /* host order, 0 = any */
	__u32 dst_addr[4];  /* network order, IPv4 in word 0, already masked */
	__u32 dst_mask[4];
	/* scope (LSM only) */
	__u32 scope;        /* FL_SYS_SCOPE_* */
	__u32 cg_level;     /* depth of the target's cgroup below the root (root = 0) */
	__u64 cgid;         /* the target's cgroup id (its directory's inode number) */
	__u64 pidns_dev, pidns_ino; /* the controller's pid namespace, where tgid is meant */
	__u32 tgid;
	/* open-like calls: only resolved paths equal to the prefix or below it ("" = any) */
	__u32 prefix_len;
	char prefix[FL_SYS_PATH_MAX];
};

/*
 * The one entry of the fl_sys_st map: the after/max arithmetic needs one count for the whole
 * fault, taken under a lock (a per-CPU count would let `max` overshoot by a call per CPU).
 */
struct fl_sys_bpf_state {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 matched;      /* calls that matched (syscall, scope, arguments) */
	__u64 acted;        /* of those, the ones failed */
};

/* Counter slots of the LSM backend (the hooks, with file_permission split by direction). */
enum fl_sl_slot {
	FL_SL_S_OPEN,
	FL_SL_S_READ,
	FL_SL_S_WRITE,
	FL_SL_S_CONNECT,
	FL_SL_S_BIND,
	FL_SL_S_SOCKET,
	FL_SL_S_SENDMSG,
	FL_SL_S_RECVMSG,
	FL_SL_S_ACCEPT,
	FL_SL_S_LISTEN,
	FL_SL_S_MMAP,
	FL_SL_S_GETSOCKOPT,
	FL_SL_S_SETSOCKOPT,
	FL_SL_NSLOT,
};

/* ---- the loader (user space only) ------------------------------------------------------------ */
#ifndef __VMLINUX_H__
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_err.h"
#include "sys.h"

struct bpf_map;
struct fl_observation;

/* One program per LSM hook; bit i of a hook mask names program i. */
enum fl_sl_hook {
	FL_SL_H_OPEN,       /* lsm/file_open: open, openat, openat2, creat */
	FL_SL_H_PERM,       /* lsm/file_permission: read*, write* (MAY_READ / MAY_WRITE) */
	FL_SL_H_CONNECT,
	FL_SL_H_BIND,
	FL_SL_H_SOCKET,     /* lsm/socket_create, user sockets only */
	FL_SL_H_SENDMSG,
	FL_SL_H_RECVMSG,
	FL_SL_H_ACCEPT,
	FL_SL_H_LISTEN,
	FL_SL_H_MMAP,       /* lsm/mmap_file */
	FL_SL_H_GETSOCKOPT,
	FL_SL_H_SETSOCKOPT,
	FL_SL_NHOOKS,
};

/* The program name of each LSM hook ("fl_sl_open", ...: 15 characters at most, the kernel's limit). */
const char *fl_sl_prog_name(int hook);
/* Which hooks a rule needs, 0 when some syscall of it has none (then *why says which). */
unsigned fl_sl_hooks_for(const struct fl_sys_rule *r, const char **why);
/* One line for plan: the hooks, the scope, the errno; what each hook also catches. */
void fl_sl_describe(const struct fl_sys_rule *r, char *buf, size_t len);

/* ---- shared by the BPF syscall backends (sys_lsm.c, sys_cgroup.c) ------------------------------ */

/* The rule's errno, probability, after/max, destination and path prefix into cfg (magic, tag, scope untouched). */
int fl_sysbpf_cfg_from_rule(const struct fl_sys_rule *r, struct fl_sys_bpf_cfg *cfg, struct fl_err *err);
/* What a BPF backend cannot do whatever the syscalls: delays. 0 or -EOPNOTSUPP with why. */
int fl_sysbpf_check_errno_only(const struct fl_sys_rule *r, const char *backend, struct fl_err *err);

/* Totals under the lock plus per-slot counters summed over CPUs. */
struct fl_sysbpf_counts {
	uint64_t matched, acted;
	uint64_t slot[FL_SYS_NSLOT][2];
};
int fl_sysbpf_read_counts(const struct bpf_map *state, const struct bpf_map *ctr, struct fl_sysbpf_counts *out);

/*
 * Is prog_fd one of ours: named prefix*, .rodata magic and tag equal (any tag when tag is 0)?
 * With bss_fd, the fd of its .bss map (the revoke flag) is returned there (-1 when none); the
 * caller closes it.
 */
bool fl_sysbpf_prog_is_ours(int prog_fd, const char *prefix, uint64_t magic, uint64_t tag, int *bss_fd);
/* Set the revoke flag in a program's .bss (bss_fd from prog_is_ours): it stops acting at once. */
int fl_sysbpf_revoke(int bss_fd);

/* Record values hold no blank, '#', '%' or '=' unescaped: "%XX" for those. 0 or -ENAMETOOLONG. */
int fl_sysbpf_escape(const char *in, char *out, size_t len);
int fl_sysbpf_unescape(const char *in, char *out, size_t len);
/* The record's "tag=" as a number (never 0): 0 or -EINVAL. */
int fl_sysbpf_rec_tag(const struct fl_journal_rec *rec, uint64_t *tag);

/* matched / failed / ratio, configured probability, after, max and errno into obs. */
void fl_sysbpf_observe_common(struct fl_observation *obs, const struct fl_sysbpf_counts *c,
			      const struct fl_sys_bpf_cfg *cfg, double probability);

#endif /* !__VMLINUX_H__ */

#endif
