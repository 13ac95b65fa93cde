/* What the BPF-backed injectors (net_cgroup, sys_cgroup, sys_lsm) share: the syscall backends' knobs and counters, which their BPF objects read too, and one loader toolkit for tagged, unpinned links that a journal record can find, revoke and detach again. */
#ifndef FL_BPF_COMMON_H
#define FL_BPF_COMMON_H

/* The BPF side gets its types from vmlinux.h; user space from the uapi headers. */
#ifndef __VMLINUX_H__
#include <linux/bpf.h>
#include <linux/types.h>
#endif

/* ---- the syscall backends' objects (sys_lsm.bpf.c, sys_cgroup.bpf.c) and their loaders ---------- */

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
 * (struct fl_bpf_mark) so revert_record can tell, from a program id alone, whether it belongs to
 * a journal record.
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

/* ---- the loader (user space only) ------------------------------------------------------------ */
#ifndef __VMLINUX_H__
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_err.h"

struct bpf_link;
struct bpf_map;
struct bpf_object;
struct bpf_program;
struct fl_cidr;
struct fl_journal_rec;
struct fl_observation;
struct fl_sys_rule;
struct stat;

/*
 * Every object's .rodata is one config struct that opens with these two words (each loader
 * asserts it): a program found by id is ours when its prefix, magic and tag agree.
 */
struct fl_bpf_mark {
	__u64 magic;        /* one per object kind ("flcgcfg1", "flsyslm1", ...) */
	__u64 tag;          /* one per fault, also in its journal record */
};

/* One program of an object: what users read, what the kernel names it, where it attaches. */
struct fl_bpf_hook {
	const char *name;           /* "connect4", "file_open": journal records, plans, observations */
	const char *prog;           /* the program's name ("fl_cg_connect4"; the kernel keeps 15 characters) */
	enum bpf_attach_type type;  /* what BPF_PROG_QUERY and BPF_PROG_DETACH take (BPF_LSM_MAC for LSM) */
};

#define FL_BPF_MAX_HOOKS 16
/* The largest .rodata fl_bpf_prog_is_ours reads back (loaders assert their config fits). */
#define FL_BPF_RODATA_MAX 1024

/* One kind of BPF object: how its programs are named and marked, and how they attach. */
struct fl_bpf_kind {
	const char *prefix;               /* every program name of the object starts with it */
	uint64_t magic;                   /* fl_bpf_mark.magic of its .rodata */
	size_t rodata_size;               /* the size of its config struct, all of .rodata */
	const struct fl_bpf_hook *hooks;  /* bit i of a hook mask names hooks[i] */
	int nhooks;                       /* at most FL_BPF_MAX_HOOKS */
	bool lsm;                         /* LSM programs (tracing links, no BPF_LINK_DETACH), else cgroup */
};

/* "connect4,sendmsg4" (progs: "fl_cg_connect4,fl_cg_sendmsg4") for the hooks in mask `hooks`. */
void fl_bpf_hooks_join(const struct fl_bpf_kind *k, unsigned hooks, bool progs, char *buf, size_t len);
/* The "hooks" observation: prefix ("lsm/", "cgroup/") and the hooks, " (detached)" once reverted. */
void fl_bpf_obs_hooks(struct fl_observation *o, const struct fl_bpf_kind *k, const char *prefix, unsigned hooks,
		      bool reverted);

/* ---- load and attach: unpinned links, so they die with the controller's last fd ---- */

/* The programs of one object a fault uses, and their links once attached. */
struct fl_bpf_links {
	const struct fl_bpf_kind *kind;
	unsigned hooks;                            /* bit i: kind->hooks[i] is loaded (and attached) */
	struct bpf_program *prog[FL_BPF_MAX_HOOKS];
	struct bpf_link *link[FL_BPF_MAX_HOOKS];
};

/* Between open and load: find each program of k in obj, and load only those in hooks. */
int fl_bpf_links_init(struct fl_bpf_links *l, const struct fl_bpf_kind *k, struct bpf_object *obj, unsigned hooks,
		      struct fl_err *err);
/* After load: attach every loaded program, to cgroup (a cgroup kind) or its LSM hook. All or nothing. */
int fl_bpf_links_attach(struct fl_bpf_links *l, const char *cgroup, struct fl_err *err);
/*
 * Drop every link. A cgroup link is detached first (BPF_LINK_DETACH): closing our fd is not
 * enough when a forked child inherited it. A tracing link cannot be detached: revoke first.
 */
void fl_bpf_links_drop(struct fl_bpf_links *l);

/* n slots of a per-CPU array map, each summed over the CPUs, into out (zeroed first). 0 or -errno. */
int fl_bpf_percpu_sum(const struct bpf_map *map, uint32_t n, uint64_t *out);
/* Why an object's load failed (bpf_object__load's rc), in words a user can act on; returns rc. */
int fl_bpf_load_error(const char *object, int rc, struct fl_err *err);

/* A fresh random tag for a fault (never 0). */
uint64_t fl_bpf_new_tag(void);
/* The fault's address or CIDR as 4 words in network order (IPv4 in word 0), masked, and its mask. */
void fl_bpf_cidr_words(const struct fl_cidr *c, __u32 addr[4], __u32 mask[4]);

/* ---- finding our programs again, from a journal record in any process ---- */

/*
 * Is prog_fd one of k's: named k->prefix*, .rodata magic k->magic and tag equal (any tag when
 * tag is 0)? With bss_fd, the fd of its .bss map (the revoke flag) is returned there (-1 when
 * none); the caller closes it.
 */
bool fl_bpf_prog_is_ours(const struct fl_bpf_kind *k, int prog_fd, uint64_t tag, int *bss_fd);
/* Set the revoke flag in a program's .bss (bss_fd from prog_is_ours): it stops acting at once. */
int fl_bpf_revoke(int bss_fd);

/*
 * A walk over the kernel's links to k's programs carrying tag (0: any): on cgroup id cgid for a
 * cgroup kind, every LSM link for an LSM kind. The fds are the current link's, closed by the
 * next step; stop early with fl_bpf_walk_stop.
 */
struct fl_bpf_walk {
	const struct fl_bpf_kind *kind;
	uint64_t cgid, tag;
	__u32 id;           /* the current link's id */
	int link_fd, prog_fd;
	int bss_fd;         /* its program's .bss (the revoke flag), -1 when it has none */
};
void fl_bpf_walk_start(struct fl_bpf_walk *w, const struct fl_bpf_kind *k, uint64_t cgid, uint64_t tag);
/* On to the next link of ours: false when there is none left (everything closed then). */
bool fl_bpf_walk_next(struct fl_bpf_walk *w);
void fl_bpf_walk_stop(struct fl_bpf_walk *w);

/*
 * Programs of k with tag still attached to the cgroup open as cgfd, over every hook of k; with
 * detach, those attached without a link (by bpftool, an older faultline) are detached too. The
 * count left, or -errno.
 */
int fl_bpf_cgroup_query(const struct fl_bpf_kind *k, int cgfd, uint64_t tag, bool detach, struct fl_err *err);
/* How many programs of k carrying tag (0: any) are attached to cgroup, or -errno. */
int fl_bpf_cgroup_count_attached(const struct fl_bpf_kind *k, const char *cgroup, uint64_t tag, struct fl_err *err);
/*
 * From a record's cgroup, cgid and tag alone: revoke and detach every link of k with the tag on
 * that cgroup id (a removed but busy cgroup still holds links; a new one at the same path is
 * another cgroup), then check with BPF_PROG_QUERY that none is left. Idempotent: a cgroup that
 * is gone took its programs along. *detached (may be NULL) counts the links detached.
 */
int fl_bpf_cgroup_revert_record(const struct fl_bpf_kind *k, const struct fl_journal_rec *rec, int *detached,
				struct fl_err *err);

/* ---- journal record values ---- */

/* Record values hold no blank, '#', '%' or '=' unescaped: "%XX" for those. 0 or -ENAMETOOLONG. */
int fl_bpf_escape(const char *in, char *out, size_t len);
/* The inverse; -EINVAL for a '%' without two hex digits, -ENAMETOOLONG when out is too small. */
int fl_bpf_unescape(const char *in, char *out, size_t len);
/* The record's "tag=" as a number (never 0): 0 or -EINVAL. */
int fl_bpf_rec_tag(const struct fl_journal_rec *rec, uint64_t *tag);

/* ---- the cgroup scope ---- */

/* A cgroup v2 mount exists (the cgroup hooks attach to its directories): 0 or -ENOENT with a hint. */
int fl_bpf_need_cgroup2(struct fl_err *err);
/* cgroup is a cgroup v2 directory: 0 with its stat in *st, else -errno. */
int fl_bpf_cgroup_dir(const char *cgroup, struct stat *st, struct fl_err *err);
/* dir (stat st) is the root of the cgroup2 hierarchy mounted at mount (NULL: look the mount up). */
bool fl_bpf_cgroup_is_root(const char *dir, const struct stat *st, const char *mount);
/*
 * Preflight for cgroup hooks: cgroup is a cgroup v2 directory we can attach to, not the root
 * unless allow_host_wide, and we hold the capabilities. Read-only. With cgid, its cgroup id.
 */
int fl_bpf_cgroup_scope(const char *cgroup, bool allow_host_wide, uint64_t *cgid, struct fl_err *err);

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

/* One applied fault of either syscall backend: its links, the object's maps, its knobs and counters. */
struct fl_sysbpf_run {
	struct fl_bpf_links links;
	struct bpf_map *state_map, *ctr_map;   /* the object's fl_sys_st and fl_sys_ctr; NULL once unloaded */
	__u32 *revoked;                        /* the object's .bss flag; NULL once unloaded */
	struct fl_sys_bpf_cfg cfg;
	double probability;                    /* as configured */
	struct fl_sysbpf_counts snap;          /* the counters when unloaded */
	bool reverted;
};

/*
 * The run's observation: matched / failed / ratio, probability, errno, after, max, then
 * failed_per_call by slot (slot_names[0..nslot); NULL: slot i is hook i of the run's kind) and
 * the hooks under hooks_prefix. Live counters while loaded, the snapshot after.
 */
int fl_sysbpf_observe(const struct fl_sysbpf_run *r, struct fl_observation *o, const char *const *slot_names,
		      int nslot, const char *hooks_prefix);
/* Revert: revoke, drop the links, snapshot the counters; the caller then destroys its object. */
int fl_sysbpf_unload(struct fl_sysbpf_run *r, struct fl_err *err);
/* For a run about to be freed without a revert (a failed apply, release): revoke and drop the links. */
void fl_sysbpf_drop(struct fl_sysbpf_run *r);

#endif /* !__VMLINUX_H__ */

#endif
