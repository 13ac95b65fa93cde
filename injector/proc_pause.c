/* process.pause: SIGSTOP the target (a stop-the-world GC storm, a frozen VM) and SIGCONT it on revert. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>

#include "injector.h"
#include "journal.h"
#include "procfs.h"

static const char *const pause_scopes[] = {"auto", "group", "process", NULL};

static const struct fl_param pause_params[] = {
	{.name = "scope", .kind = FL_P_ENUM, .def = "auto", .enums = pause_scopes,
	 .help = "group: the target's whole process group; process: its main pid only; auto: group "
		 "when faultline launched the target (its own group), else process"},
	{0},
};

struct pause_state {
	pid_t pid;       /* main pid, checked for stop state */
	pid_t kill_id;   /* -pgid or pid: what the signals go to */
	uint64_t start;  /* main pid's start time, so a recycled pid is never signalled */
	int64_t applied_ns, reverted_ns;
	bool stopped_seen; /* observe saw state 'T' while applied */
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool use_group(const struct fl_fault *f)
{
	const char *scope = fl_fault_value(f, "scope")->s;

	if (!strcmp(scope, "group"))
		return true;
	if (!strcmp(scope, "process"))
		return false;
	return f->target->launched && f->target->pgid > 1;
}

static int pause_probe(struct fl_err *err)
{
	/* kill(2) is always there; permission is checked per target. Say now what limits it. */
	if (!fl_have_cap(CAP_KILL))
		fl_err_set(err, 0, "no CAP_KILL: only targets running as uid %d can be paused", (int)getuid());
	return 0;
}

static int pause_target(const struct fl_fault *f, pid_t *kill_id, struct fl_err *err)
{
	const struct fl_target_info *t = f->target;
	pid_t pgid;

	if (!t || t->pid <= 0)
		return fl_err_set(err, -ESRCH, "process.pause needs the target's pid "
					       "(target.run, pid, pidfile, cgroup or systemd_unit)");
	if (!use_group(f)) {
		*kill_id = t->pid;
		return 0;
	}
	pgid = t->pgid;
	if (pgid <= 0 && fl_proc_pgid(t->pid, &pgid))
		return fl_err_set(err, -ESRCH, "cannot read the process group of pid %d", (int)t->pid);
	if (pgid <= 1)
		return fl_err_set(err, -EPERM, "process group %d is not the target's own", (int)pgid);
	*kill_id = -pgid;
	return 0;
}

static int pause_check(const struct fl_fault *f, struct fl_err *err)
{
	pid_t id;
	int rc = pause_target(f, &id, err);

	if (rc)
		return rc;
	if ((f->target->pid == 1 || id == -1) && !f->target->allow_host_wide)
		return fl_err_set(err, -EPERM, "refusing to stop pid 1 without allow_host_wide");
	if (id < 0 && getpgid(0) == -id)
		return fl_err_set(err, -EPERM,
				  "the target shares faultline's own process group %d: stopping it would "
				  "stop faultline; use scope: process",
				  (int)-id);
	if (kill(id, 0) < 0) {
		rc = -errno;
		if (rc == -EPERM)
			return fl_err_set(err, rc, "not permitted to signal %s %d (need CAP_KILL or the "
						   "same user)", id < 0 ? "process group" : "pid",
					  id < 0 ? -id : id);
		return fl_err_set(err, rc, "cannot signal %d: %s", (int)id, strerror(-rc));
	}
	return 0;
}

static void pause_describe(const struct fl_fault *f, char *buf, size_t len)
{
	const char *scope = fl_fault_value(f, "scope")->s;

	snprintf(buf, len, "SIGSTOP the target's %s, SIGCONT on revert",
		 !strcmp(scope, "group") ? "process group" :
		 !strcmp(scope, "process") ? "main process" : "process group (if launched) or main process");
}

static int pause_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	struct pause_state *st;
	int64_t seq;
	int rc;

	st = calloc(1, sizeof(*st));
	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	rc = pause_target(f, &st->kill_id, err);
	if (rc)
		goto fail;
	st->pid = f->target->pid;
	if (fl_proc_starttime(st->pid, &st->start)) {
		rc = fl_err_set(err, -ESRCH, "target pid %d is gone", (int)st->pid);
		goto fail;
	}
	seq = fl_journal_append(j, f, "pid=%d start=%llu signal_to=%d", (int)st->pid,
				(unsigned long long)st->start, (int)st->kill_id);
	if (seq < 0) {
		rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
		goto fail;
	}
	st->applied_ns = mono_ns();
	f->state = st;
	if (kill(st->kill_id, SIGSTOP) < 0) {
		rc = fl_err_set(err, -errno, "kill(%d, SIGSTOP): %s", (int)st->kill_id, strerror(errno));
		/* the journal says applied: leave state so revert sends the (harmless) SIGCONT */
		return rc;
	}
	return 0;
fail:
	free(st);
	return rc;
}

static int pause_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct pause_state *st = f->state;
	char state = '?';
	int64_t end;

	if (!st)
		return -ENOENT;
	if (!st->reverted_ns && fl_proc_state(st->pid, &state) == 0 && (state == 'T' || state == 't'))
		st->stopped_seen = true;
	end = st->reverted_ns ? st->reverted_ns : mono_ns();
	fl_obs_num(o, "pause_s", (double)(end - st->applied_ns) / 1e9, "%.3fs",
		   (double)(end - st->applied_ns) / 1e9);
	fl_obs_text(o, "stopped_seen", "%s", st->stopped_seen ? "yes" : "no");
	if (!st->reverted_ns)
		fl_obs_text(o, "state", "%c", state);
	fl_obs_text(o, "signalled", "%s %d", st->kill_id < 0 ? "pgid" : "pid",
		    st->kill_id < 0 ? -st->kill_id : st->kill_id);
	return 0;
}

static int sigcont_checked(pid_t pid, uint64_t start, pid_t kill_id, struct fl_err *err)
{
	/* a recycled pid is someone else: only signal the process we stopped */
	if (!fl_proc_same(pid, start))
		return 0;
	if (kill(kill_id, SIGCONT) < 0 && errno != ESRCH)
		return fl_err_set(err, -errno, "kill(%d, SIGCONT): %s", (int)kill_id, strerror(errno));
	return 0;
}

static int pause_revert(struct fl_fault *f, struct fl_err *err)
{
	struct pause_state *st = f->state;
	int rc;

	if (!st)
		return 0;
	if (!st->reverted_ns) {
		char state;

		if (fl_proc_state(st->pid, &state) == 0 && (state == 'T' || state == 't'))
			st->stopped_seen = true;
		rc = sigcont_checked(st->pid, st->start, st->kill_id, err);
		if (rc)
			return rc;
		st->reverted_ns = mono_ns();
	}
	return 0;
}

static int pause_revert_record(const struct fl_journal_rec *r, struct fl_err *err)
{
	int64_t pid, to;
	uint64_t start;

	if (fl_rec_get_i64(r, "pid", &pid) || fl_rec_get_u64(r, "start", &start) ||
	    fl_rec_get_i64(r, "signal_to", &to))
		return fl_err_set(err, -EINVAL, "journal record %llu lacks pid/start/signal_to",
				  (unsigned long long)r->seq);
	return sigcont_checked((pid_t)pid, start, (pid_t)to, err);
}

const struct fl_injector fl_inj_process_pause = {
	.type = "process.pause",
	.summary = "freeze the target with SIGSTOP for the fault's duration (GC pause, frozen VM)",
	.preflight = "the target has a pid; its process group is its own (not pid 1, not faultline's); "
		     "kill(target, 0) is permitted",
	.params = pause_params,
	.probe = pause_probe,
	.check = pause_check,
	.describe = pause_describe,
	.apply = pause_apply,
	.observe = pause_observe,
	.revert = pause_revert,
	.revert_record = pause_revert_record,
};
