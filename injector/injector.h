/* The injector contract (one const ops table per fault type) and the one registry. */
#ifndef FL_INJECTOR_H
#define FL_INJECTOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fl_err.h"

/*
 * Parameters are declared, not parsed, by injectors. The controller turns the
 * scenario's text into typed values using this table (kind, range, default)
 * before anything runs; the same table prints `faultline list` and the
 * parameter reference in docs/. An injector never sees YAML.
 */
enum fl_param_kind {
	FL_P_DURATION,  /* .i: nanoseconds */
	FL_P_SIZE,      /* .u: bytes */
	FL_P_RATE,      /* .d: events per second */
	FL_P_BYTERATE,  /* .u: bytes per second */
	FL_P_RATIO,     /* .d: 0..1 ("50%") */
	FL_P_INT,       /* .i */
	FL_P_BOOL,      /* .b */
	FL_P_STRING,    /* .s */
	FL_P_ENUM,      /* .i: index into enums[], .s: the name */
	FL_P_ERRNO,     /* .i: errno number */
	FL_P_SIGNAL,    /* .i: signal number */
	FL_P_STRLIST,   /* .list: a sequence of strings (or one string) */
	FL_P_CIDR,      /* .cidr: address or address/prefix, v4 or v6 */
	FL_P_OBJECT,    /* .obj: a mapping validated by .sub */
	FL_P_STRMAP,    /* .list: a mapping of strings, as key,value,key,value */
};

struct fl_param {
	const char *name;
	enum fl_param_kind kind;
	bool required;
	const char *def;                /* default, in scenario syntax; NULL = unset */
	const char *min, *max;          /* bounds in scenario syntax; NULL = none */
	const char *const *enums;       /* FL_P_ENUM / FL_P_STRLIST allowed words, NULL-terminated */
	const struct fl_param *sub;     /* FL_P_OBJECT members, terminated by {0} */
	const char *help;
};

struct fl_cidr {
	int family;        /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;        /* 0..32 or 0..128 */
};

struct fl_strlist {
	char **v;
	int n;
};

struct fl_value {
	bool set;          /* given in the scenario or by a default */
	bool defaulted;    /* came from the table's default */
	int line, col;     /* where it was written, 0 when defaulted */
	int64_t i;
	uint64_t u;
	double d;
	bool b;
	char *s;
	struct fl_strlist list;
	struct fl_cidr cidr;
	struct fl_value *obj;  /* FL_P_OBJECT: one per sub-param, same index */
};

/* What the controller tells an injector about the target; no YAML, no verdicts. */
struct fl_target_info {
	pid_t pid;                 /* main pid, 0 when unknown */
	pid_t pgid;                /* process group faultline started it in, 0 if not launched */
	bool launched;             /* faultline started it (seccomp-style faults allowed) */
	char cgroup_v2[4096];      /* absolute path of its cgroup v2 dir, "" if none */
	char memcg[4096];          /* absolute path of its memory cgroup (v1 or v2), "" if none */
	char netns[4096];          /* path of a netns file to enter, "" = the controller's own */
	char url[1024];            /* what the load hits (target.url): clients a fault starts aim here */
	bool allow_host_wide;      /* scenario allows host-wide scope */
};

struct fl_journal;
struct fl_journal_rec;
struct fl_injector;

/*
 * A sweep of owned objects whose journal is lost (`faultline recover`): an injector that names
 * kernel objects FL_OWNED_PREFIX + run id (iptables comments, BPF filter names, pins) finds its
 * own, asks dead() whether anyone will still revert that run, removes them if not, and reports.
 */
struct fl_sweep {
	bool (*dead)(const struct fl_sweep *sw, const char *run_id);
	/* rc 0: `what` was removed; else why it could not be */
	void (*report)(const struct fl_sweep *sw, const char *run_id, const char *what, int rc,
		       const char *msg);
	void *priv;
};

/* One fault of a scenario, with its typed parameters and the injector's run-time state. */
struct fl_fault {
	char *name;
	const struct fl_injector *inj;
	int64_t at_ns;             /* offset from the start of the fault timeline */
	int64_t duration_ns;
	int line, col;             /* where the fault begins in the scenario */
	struct fl_value *values;   /* one per inj->params entry, same index */
	const struct fl_target_info *target; /* set by the engine before check/apply */
	void *state;               /* owned by the injector between apply and revert */
};

/* What a fault really did, next to what was configured; key/value pairs for reports. */
#define FL_OBS_MAX 16
struct fl_observation {
	int n;
	struct {
		char key[48];
		char text[96];     /* human form, e.g. "2.003s" */
		double num;        /* machine form, in the unit named by key (e.g. pause_s) */
		bool is_num;
	} kv[FL_OBS_MAX];
};

struct fl_injector {
	const char *type;                 /* "process.pause" */
	const char *summary;              /* one line for `faultline list` */
	const char *preflight;            /* what check() verifies, for `plan` and the docs */
	const struct fl_param *params;    /* terminated by {0} */
	/*
	 * Cross-parameter rules that the table cannot say (e.g. ports need tcp or udp), checked
	 * when the scenario is loaded so a mistake is exit 2 at FILE:LINE:COL. *blame: the value
	 * to point at (NULL: the fault itself). NULL op: nothing to check.
	 */
	int (*validate)(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err);
	/*
	 * Can a and b be in force at the same time? Asked at load time, with FILE:LINE:COL at b, for
	 * every pair of faults whose injectors share this op and whose times overlap. NULL: no rule.
	 */
	int (*conflicts)(const struct fl_fault *a, const struct fl_fault *b, struct fl_err *err);
	/*
	 * Host-wide capability probe for `faultline list`: 0 or why not. No side effect. On 0 it
	 * may leave a note in err->msg (a missing capability that limits, without preventing, use).
	 */
	int (*probe)(struct fl_err *err);
	/* Preflight for one fault against its target. No side effect. */
	int (*check)(const struct fl_fault *f, struct fl_err *err);
	/* Describe what apply would touch, for `plan` (one line into buf). */
	void (*describe)(const struct fl_fault *f, char *buf, size_t len);
	/* Journal first (fl_journal_append + fsync), then act. */
	int (*apply)(struct fl_fault *f, struct fl_journal *j, struct fl_err *err);
	/* Report what really happened so far; may be called while active and after revert. */
	int (*observe)(struct fl_fault *f, struct fl_observation *obs);
	/* Idempotent; keeps f->state so a final observe can report the whole fault. */
	int (*revert)(struct fl_fault *f, struct fl_err *err);
	/* Free f->state after the final observe (NULL: plain free()). */
	void (*release)(struct fl_fault *f);
	/* Undo from the journal record alone, in a fresh process. */
	int (*revert_record)(const struct fl_journal_rec *rec, struct fl_err *err);
	/* Remove owned objects of runs nobody will revert (see struct fl_sweep); NULL: names none. */
	int (*sweep)(const struct fl_sweep *sw);
	/*
	 * For a target faultline launches, set-up that must happen inside it between fork and exec
	 * (a seccomp filter can only be installed by the process itself). NULL ops: none.
	 *   launch_prepare  parent, before the fork, for each such fault (may start a helper child,
	 *                   journaled); 0, or -errno: the run cannot start (exit 3)
	 *   launch_child    the target's child just before exec: async-signal-safe work only;
	 *                   a negative errno fails the launch
	 *   launch_done     parent, after the exec (pid) or a failed launch (pid 0)
	 */
	int (*launch_prepare)(struct fl_fault *f, struct fl_journal *j, struct fl_err *err);
	int (*launch_child)(struct fl_fault *f);
	void (*launch_done)(struct fl_fault *f, pid_t pid);
};

/*
 * The registry: one X-macro list. Adding an injector = one line here plus its
 * file. Only injectors that really work are listed.
 */
#define FL_INJECTORS(X) \
	X(process_pause)    \
	X(fd_exhaust)       \
	X(process_kill)     \
	X(memory_leak)      \
	X(cpu_burn)         \
	X(ports_exhaust)    \
	X(ports_occupy)     \
	X(client_slowloris) \
	X(network_delay)    \
	X(network_loss)     \
	X(network_duplicate) \
	X(network_corrupt)  \
	X(network_reorder)  \
	X(network_bandwidth) \
	X(network_partition) \
	X(network_dns)      \
	X(syscall_error)    \
	X(syscall_delay)

#define FL_DECLARE_INJECTOR(id) extern const struct fl_injector fl_inj_##id;
FL_INJECTORS(FL_DECLARE_INJECTOR)
#undef FL_DECLARE_INJECTOR

extern const struct fl_injector *const fl_injectors[];
extern const int fl_injector_count;

const struct fl_injector *fl_injector_find(const char *type);
/* Index of a parameter in inj->params, -1 when absent. */
int fl_param_index(const struct fl_param *params, const char *name);
/* Typed access for injectors; the parameter must exist in their table. */
const struct fl_value *fl_fault_value(const struct fl_fault *f, const char *name);

/*
 * Probes of the mechanisms behind a type (a netem qdisc, a BPF LSM program, ...) may fork or
 * load a program, so each runs once per process and its result and note are kept.
 */
typedef int (*fl_probe_fn)(struct fl_err *err);
int fl_probe_once(fl_probe_fn probe, struct fl_err *err);
/* Whether `probe` has run in this process (its result in *rc): plan never probes. */
bool fl_probe_done(fl_probe_fn probe, int *rc);
/*
 * A type runs when any of its mechanisms does: 0 with a note "runs here with: a, b; c
 * unavailable: why" (or -EOPNOTSUPP with every reason). probes[i] may be NULL: always there.
 */
int fl_probe_any(const char *const *names, const fl_probe_fn *probes, int n, struct fl_err *err);

/*
 * The mechanism a fault runs on: the one the scenario named (names[named], named > 0), or for
 * `auto` (named 0) the first of names[1..] that try() accepts. try(i, arg, err) returns 0 when
 * candidate i can run the fault now, a positive value to pass it over silently, else -errno with
 * its reason. Returns the index chosen, or -errno with err holding the one candidate's reason
 * (and hint) or every candidate's.
 */
int fl_choose(const char *type, const char *const *names, int named,
	      int (*try)(int i, void *arg, struct fl_err *err), void *arg, struct fl_err *err);

/* Observation helpers. */
void fl_obs_num(struct fl_observation *o, const char *key, double num, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void fl_obs_text(struct fl_observation *o, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
