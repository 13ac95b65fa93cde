/* The service under test: launched by faultline (own process group and cgroups) or found (pid, pidfile, cgroup, systemd unit). */
#ifndef FL_TARGET_H
#define FL_TARGET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "injector.h"
#include "scenario.h"

struct fl_target {
	struct fl_target_info info;   /* what injectors see */
	int pidfd;                    /* pidfd of the main pid (launched: the child), -1 if none */
	bool exited;                  /* a launched target that died (or a found pid that is gone) */
	int exit_status;              /* raw wait status when launched, else 0 */
	int64_t exited_at_ns;         /* CLOCK_MONOTONIC */
	char log_path[4096];          /* stdout+stderr of a launched target, "" otherwise */
	/* cgroups faultline created for a launched target (removed by fl_target_stop), "" if none */
	char own_cgroups[4][4096];
	int n_own_cgroups;
	uint64_t start;               /* a found target's start time: a recycled pid is not it */
	uint64_t memory_limit;        /* target.memory_limit as written, 0 if none */
	char memory_limit_file[4200]; /* where it was written (memory.limit_in_bytes or memory.max) */
	char memory_swap_file[4200];  /* its swap limit (memory.memsw.limit_in_bytes or memory.swap.max), "" if none */
	char memory_note[256];        /* why the limit may not end in an OOM kill (swap unlimited), "" if none */
	bool stopped;
	/* called from the blocking waits (readiness, stop grace) so the guardian hears a heartbeat */
	void (*beat)(void *arg);
	void *beat_arg;
};

/*
 * Launch spec->run in its own process group (setpgid) and, where the host has them, a new
 * cgroup v2 dir (for BPF scoping) and new v1 memory/cpu cgroups, all named "faultline-RUNID".
 * stdout and stderr go to LOG_DIR/target.log. The child gets PR_SET_PDEATHSIG(SIGKILL) so it
 * never outlives a crashed controller. argv[0] is resolved from the current directory or PATH.
 * child_hook (may be NULL) runs in the child just before exec, async-signal-safe work only; a
 * negative return fails the launch with that errno. Returns 0, or -errno with err saying why
 * (exit 3 for the caller).
 */
int fl_target_launch(const struct fl_target_spec *spec, const char *run_id, const char *log_dir,
		     bool allow_host_wide, int (*child_hook)(void *), void *hook_arg,
		     struct fl_target **out, struct fl_err *err);
/* Find an already running target by pid, pidfile, cgroup path or systemd unit (exactly one set). */
int fl_target_attach(const struct fl_target_spec *spec, bool allow_host_wide, struct fl_target **out,
		     struct fl_err *err);
/*
 * Poll until `url` answers any HTTP response, the deadline passes (-ETIMEDOUT), or a launched
 * target exits (-ECHILD, with its status in err). `cancel_fd` (e.g. a signalfd), when >= 0 and
 * readable, aborts with -EINTR. Blocks: used before the event loop starts.
 */
int fl_target_wait_ready(struct fl_target *t, const char *url, int64_t timeout_ns, int cancel_fd,
			 struct fl_err *err);
/* Non-blocking: has the target died? Updates exited/exit_status/exited_at_ns. */
bool fl_target_check_exit(struct fl_target *t);
/* Describe how it died ("exited with status 2", "killed by SIGKILL"). */
const char *fl_target_exit_text(const struct fl_target *t, char *buf, size_t len);
/*
 * Launched targets: SIGTERM the process group, SIGKILL after `grace_ns`, reap, remove the
 * cgroups created (moving any stragglers out first). Found targets: nothing is stopped.
 */
int fl_target_stop(struct fl_target *t, int64_t grace_ns, struct fl_err *err);
/*
 * For the plan, before any launch: NULL, or why a launched target's memory cgroup could not limit
 * swap here (swap is on, the controller has no swap limit), so target.memory_limit may not OOM.
 */
const char *fl_target_swap_warning(void);
void fl_target_free(struct fl_target *t);

/* Every kernel object faultline creates is named with this prefix and the run id. */
#define FL_OWNED_PREFIX "faultline-"
/* SIGKILL whatever is in cgroup `dir` until it is empty, then rmdir it; give up after wait_ms. */
int fl_cgroup_remove(const char *dir, int wait_ms, struct fl_err *err);
/*
 * cb(dir, name-after-prefix, arg) for each FL_OWNED_PREFIX directory at the top of the cgroup2,
 * memory and cpu hierarchies (where fl_target_launch creates them). Returns the first non-zero cb.
 */
int fl_cgroup_owned_each(int (*cb)(const char *dir, const char *run_id, void *arg), void *arg);

#endif
