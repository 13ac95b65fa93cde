/* What the syscall faults share: syscall names, the backend-neutral rule of one fault, and the backend contract (BPF LSM, cgroup BPF, seccomp). */
#ifndef FL_SYS_H
#define FL_SYS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "injector.h"

struct fl_journal;
struct fl_journal_rec;

/* ---- syscall names ---------------------------------------------------------------------------- */

/*
 * The syscalls faultline knows by name, with what each backend can hook for them. A name is
 * the kernel's syscall name on this architecture ("connect", "openat", "write").
 */
enum fl_sys_class {
	FL_SYS_FILE_OPEN = 1 << 0,  /* open, openat, openat2, creat */
	FL_SYS_FILE_READ = 1 << 1,  /* read, readv, pread64, preadv */
	FL_SYS_FILE_WRITE = 1 << 2, /* write, writev, pwrite64, pwritev */
	FL_SYS_CONNECT = 1 << 3,
	FL_SYS_BIND = 1 << 4,
	FL_SYS_SOCKET = 1 << 5,
	FL_SYS_SENDMSG = 1 << 6,    /* sendto, sendmsg, sendmmsg */
	FL_SYS_RECVMSG = 1 << 7,    /* recvfrom, recvmsg, recvmmsg */
	FL_SYS_ACCEPT = 1 << 8,     /* accept, accept4 */
	FL_SYS_LISTEN = 1 << 9,
	FL_SYS_SOCKOPT = 1 << 10,   /* getsockopt, setsockopt */
	FL_SYS_MMAP = 1 << 11,
	FL_SYS_FSYNC = 1 << 12,     /* fsync, fdatasync */
	FL_SYS_OTHER = 1 << 13,     /* anything else seccomp can name */
};

/* The classes the cgroup backend can hook (socket calls of a cgroup); test_sys_choice holds it to its check. */
#define FL_SYS_CGROUP_CLASSES (FL_SYS_CONNECT | FL_SYS_BIND | FL_SYS_SOCKET | FL_SYS_SENDMSG | FL_SYS_SOCKOPT)

struct fl_syscall {
	const char *name;
	int nr;                     /* this architecture's number */
	unsigned cls;               /* enum fl_sys_class bit */
};

/* The table, terminated by {0}; lookups by name and by number. NULL when unknown. */
extern const struct fl_syscall fl_syscalls[];
const struct fl_syscall *fl_syscall_by_name(const char *name);
const struct fl_syscall *fl_syscall_by_nr(int nr);

/* ---- one fault, as a backend sees it ------------------------------------------------------- */

#define FL_SYS_MAX 16

/*
 * What one syscall.error or syscall.delay fault does to the calls it matches. Of the matching
 * calls (syscall in the list, and the argument matches below if set), the first `after` pass;
 * then each is acted on with `probability`, until `max` have been acted on (0: no limit).
 */
struct fl_sys_rule {
	const struct fl_fault *f;
	int n;
	const struct fl_syscall *sys[FL_SYS_MAX];
	unsigned classes;           /* OR of sys[i]->cls */
	int err;                    /* syscall.error: the errno (positive), 0 for syscall.delay */
	int64_t delay_ns, jitter_ns;/* syscall.delay */
	double probability;         /* 0..1 */
	uint64_t after, max;
	/* argument matches (unset: any) */
	char path_prefix[256];      /* open-like calls: the path as the process passed it / resolved */
	bool has_dst;
	struct fl_cidr dst;         /* connect/sendmsg destination */
	uint16_t dst_port;          /* 0 = any */
	/* scope, from the target */
	pid_t tgid;                 /* the target's pid (its threads are its tgid) */
	bool launched;              /* faultline launched it: seccomp is possible */
	const char *cgroup_v2;      /* the target's cgroup v2 dir, "" if none */
	bool allow_host_wide;
};

/*
 * A mechanism behind syscall.error / syscall.delay. The front (sys_fault.c) builds the rule
 * from the scenario's typed values and dispatches revert_record on the record's `backend=`.
 */
struct fl_sys_backend {
	const char *name;                     /* "lsm", "cgroup", "seccomp" */
	/* Can this host run it at all? May load a program (unloaded at once) or fork a probe. */
	int (*probe)(struct fl_err *err);
	/* Can it do this rule against this target? Read-only; the precise reason when not. */
	int (*check)(const struct fl_sys_rule *r, struct fl_err *err);
	/* Journal first (record data starting with backend=NAME), then act. */
	int (*apply)(const struct fl_sys_rule *r, struct fl_journal *j, void **state, struct fl_err *err);
	/* Matched calls, acted-on calls (failed or delayed), configured vs observed. */
	int (*observe)(void *state, struct fl_observation *obs);
	int (*revert)(void *state, struct fl_err *err);   /* idempotent; keeps counters */
	void (*release)(void *state);
	int (*revert_record)(const struct fl_journal_rec *rec, struct fl_err *err);
	/*
	 * Launched targets only (seccomp): a filter must be installed by the target itself between
	 * fork and exec. prepare runs in the parent before the fork for every rule this backend will
	 * serve (it may start a supervisor, journaled); child runs in the child (async-signal-safe
	 * work only; the first call installs everything, later ones return 0); done runs in the
	 * parent after the exec (pid) or after a failed launch (pid 0).
	 */
	int (*launch_prepare)(const struct fl_sys_rule *r, struct fl_journal *j, struct fl_err *err);
	int (*launch_child)(void);
	void (*launch_done)(pid_t pid);
};

extern const struct fl_sys_backend fl_sys_backend_lsm;
extern const struct fl_sys_backend fl_sys_backend_cgroup;
extern const struct fl_sys_backend fl_sys_backend_seccomp;

/*
 * Should this call be acted on? The after/probability/max arithmetic every backend applies,
 * here for the userspace one (the BPF ones do the same with map counters): `matched` is the
 * count including this call, `acted` the calls acted on so far, `rnd` uniform in [0, 2^32).
 */
bool fl_sys_should_act(const struct fl_sys_rule *r, uint64_t matched, uint64_t acted, uint32_t rnd);

#endif
