/* process.pause: SIGSTOP the target, or processes named `comm` in its tree (a frozen database), and SIGCONT them on revert, timing the freeze from /proc. */
#include <dirent.h>
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
#include "proctree.h"

#define MAX_FROZEN 32        /* processes one child-scope pause may hold (the rest are reported, not frozen) */
#define MAX_MATCH 256        /* matches counted, to say how many MAX_FROZEN left running */
/* how long apply/revert may watch /proc for the stop or resume to land: the event loop must not stall */
#define INLINE_WAIT_NS (20 * 1000000LL)
/* the last switch into the stop is counted just after the state shows: let it land before the baseline */
#define CSW_LAND_NS (2 * 1000000LL)

static const char *const pause_scopes[] = {"auto", "group", "process", "child", NULL};

static const struct fl_param pause_params[] = {
	{.name = "scope", .kind = FL_P_ENUM, .def = "auto", .enums = pause_scopes,
	 .help = "group: the target's whole process group; process: its main pid only; auto: group "
		 "when faultline launched the target (its own group), else process; child: every process "
		 "named `comm` that descends from the target's main process or lives in its own cgroup "
		 "(a database or downstream the service depends on), never one outside them"},
	{.name = "comm", .kind = FL_P_STRING,
	 .help = "with scope: child, the command name to freeze, as /proc/PID/comm and ps -o comm show "
		 "it (at most 15 characters)"},
	{0},
};

/* One stopped process, with what /proc said about it. */
struct frozen {
	pid_t pid;
	uint64_t start;
	char comm[16];
	bool signalled;
	int threads;              /* tasks seen stopped */
	/*
	 * /proc is polled (in apply and revert for at most INLINE_WAIT_NS, then on the engine's tick):
	 * the stop landed in (stop_lo_ns, stopped_ns], the resume in (resume_lo_ns, resumed_ns].
	 */
	int64_t stop_lo_ns;       /* SIGSTOP sent, or last seen not yet all-stopped */
	int64_t stopped_ns;       /* first seen with every thread stopped ('T'); 0: not seen */
	int64_t resume_lo_ns;     /* SIGCONT sent, or last seen still stopped */
	int64_t resumed_ns;       /* first seen with no thread stopped after SIGCONT; 0: not seen */
	bool have_csw;            /* csw_stopped taken (CSW_LAND_NS after the stop was seen) */
	uint64_t csw_stopped;     /* context switches of all its threads once stopped */
	int64_t csw_delta;        /* ... and how many more just before SIGCONT: 0 = frozen throughout */
	bool gone;                /* it died while stopped (SIGKILL from elsewhere) */
};

struct pause_state {
	pid_t pid;       /* main pid */
	pid_t kill_id;   /* -pgid or pid: what the signals go to (group/process scope) */
	uint64_t start;  /* main pid's start time, so a recycled pid is never signalled */
	bool child_mode;
	char name[16];
	int64_t applied_ns, reverted_ns;
	bool stopped_seen; /* observe saw state 'T' while applied */
	int n;
	int matched;     /* child scope: processes named `comm` found at apply (n of them were taken) */
	struct frozen fz[MAX_FROZEN]; /* child scope: the first MAX_FROZEN matches; else the main pid, for its /proc timing */
	char error[96];
};

static bool child_scope(const struct fl_fault *f)
{
	return !strcmp(fl_fault_value(f, "scope")->s, "child");
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

/*
 * Every thread of pid, from /proc/PID/task: how many are stopped ('T' or 't') of how many, and
 * the sum of their context switches (a stopped thread makes none). -errno when pid is gone.
 */
static int tasks_of(pid_t pid, int *stopped, int *total, uint64_t *csw)
{
	char path[64];
	struct dirent *e;
	DIR *d;

	*stopped = *total = 0;
	*csw = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (!(d = opendir(path)))
		return -errno;
	while ((e = readdir(d))) {
		char p[96], line[128], s = 0;
		unsigned long long v;
		FILE *f;
		long tid = strtol(e->d_name, NULL, 10);

		if (tid <= 0 || fl_proc_state((pid_t)tid, &s))
			continue;
		(*total)++;
		*stopped += s == 'T' || s == 't';
		snprintf(p, sizeof(p), "/proc/%d/task/%ld/status", (int)pid, tid);
		if (!(f = fopen(p, "re")))
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1 ||
			    sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
				*csw += v;
		fclose(f);
	}
	closedir(d);
	return *total ? 0 : -ESRCH;
}

/*
 * One look at /proc for every signalled process: before revert, whether its stop has landed (and,
 * CSW_LAND_NS later, its context-switch baseline); after, whether its resume has. How many are
 * still pending. Never sleeps: observe calls it on the engine's tick.
 */
static int look(struct pause_state *st)
{
	int pending = 0;

	for (int i = 0; i < st->n; i++) {
		struct frozen *z = &st->fz[i];
		int stopped, total;
		int64_t t0, t1;
		uint64_t csw;

		if (!z->signalled || z->gone || (st->reverted_ns && (!z->stopped_ns || z->resumed_ns)))
			continue;
		if (!st->reverted_ns && z->have_csw)
			continue;
		/* the state changed after t0 if it is new at t1: the bracket is the read itself */
		t0 = fl_mono_ns();
		if (!fl_proc_same(z->pid, z->start) || tasks_of(z->pid, &stopped, &total, &csw)) {
			z->gone = true;
			continue;
		}
		t1 = fl_mono_ns();
		if (st->reverted_ns) {
			if (stopped == 0)
				z->resumed_ns = t1;
			else
				z->resume_lo_ns = t0;
		} else if (!z->stopped_ns) {
			if (stopped == total) {
				z->stopped_ns = t1;
				z->threads = total;
			} else {
				z->stop_lo_ns = t0;
			}
		} else if (t0 - z->stopped_ns >= CSW_LAND_NS) {
			z->csw_stopped = csw;
			z->have_csw = true;
		}
		pending += st->reverted_ns ? !z->resumed_ns : !z->have_csw;
	}
	return pending;
}

/* In apply and revert: look until nothing is pending, for at most INLINE_WAIT_NS; observe does the rest. */
static void watch(struct pause_state *st)
{
	int64_t until = fl_mono_ns() + INLINE_WAIT_NS;

	while (look(st) && fl_mono_ns() < until)
		usleep(1000);
}

static int pause_probe(struct fl_err *err)
{
	/* kill(2) is always there; permission is checked per target. Say now what limits it. */
	if (!fl_have_cap(CAP_KILL))
		fl_err_set(err, 0, "no CAP_KILL: only targets running as uid %d can be paused", (int)getuid());
	return 0;
}

static int pause_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err)
{
	const struct fl_value *name = fl_fault_value(f, "comm");
	bool child = child_scope(f);

	if (child && !name->set) {
		*blame = NULL;
		fl_err_set(err, -EINVAL, "scope: child needs `comm`, the command name of the processes to freeze");
		fl_err_hint(err, "add comm: NAME (as ps -o comm shows it), e.g. the database the service calls");
		return -EINVAL;
	}
	if (!child && name->set) {
		*blame = name;
		fl_err_set(err, -EINVAL, "`comm` selects processes in the target's tree, but scope is %s",
			   fl_fault_value(f, "scope")->s);
		fl_err_hint(err, "add scope: child, or remove comm");
		return -EINVAL;
	}
	if (name->set && fl_proc_comm_check(name->s, err)) {
		*blame = name;
		return -EINVAL;
	}
	return 0;
}

static int pause_target(const struct fl_fault *f, pid_t *kill_id, struct fl_err *err)
{
	const struct fl_target_info *t = f->target;
	pid_t pgid;

	if (!t || t->pid <= 0)
		return fl_err_set(err, -ESRCH, "process.pause needs the target's pid "
					       "(target.run, pid, pidfile, cgroup or systemd_unit)");
	if (child_scope(f) || !use_group(f)) {
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

/* Child scope: the processes to freeze now, or why there are none. */
static int find_named(const struct fl_fault *f, struct fl_proc_tree *tree, pid_t *out, int max, struct fl_err *err)
{
	const char *name = fl_fault_value(f, "comm")->s;
	int n;

	if (fl_proc_tree_init(tree, f->target))
		return fl_err_set(err, -ESRCH, "target pid %d is gone", (int)f->target->pid);
	n = fl_proc_tree_find(tree, name, out, max);
	if (n < 0)
		return fl_err_set(err, n, "scanning /proc: %s", strerror(-n));
	if (!n) {
		fl_err_set(err, -ESRCH, "no process named '%s' below pid %d%s%s", name, (int)tree->root,
			   fl_proc_tree_cgroup(tree)[0] ? " or in its cgroup " : "", fl_proc_tree_cgroup(tree));
		fl_err_hint(err, "start it from the target (target.run: [sh, -c, 'db & exec \"$0\" \"$@\"', "
				 "service, ...]) or in its cgroup; processes elsewhere are never matched");
		return -ESRCH;
	}
	return n;
}

static int pause_check(const struct fl_fault *f, struct fl_err *err)
{
	pid_t id;
	int rc = pause_target(f, &id, err);

	if (rc)
		return rc;
	if ((f->target->pid == 1 || id == -1) && !f->target->allow_host_wide)
		return fl_err_set(err, -EPERM, "refusing to stop pid 1 without allow_host_wide");
	if (child_scope(f)) {
		struct fl_proc_tree tree;
		pid_t v[MAX_FROZEN];

		if (f->target->pid == 1)
			return fl_err_set(err, -EPERM, "refusing to match names below pid 1");
		if (fl_proc_protected(f->target->pid, f->target->pid))
			return fl_err_set(err, -EPERM, "pid %d is faultline itself, one of its ancestors or a "
						       "kernel thread: its tree is not a target", (int)f->target->pid);
		rc = find_named(f, &tree, v, MAX_FROZEN, err);
		if (rc < 0)
			return rc;
		for (int i = 0; i < rc; i++)
			if (kill(v[i], 0) < 0 && errno == EPERM)
				return fl_err_set(err, -EPERM, "not permitted to signal pid %d (need CAP_KILL or "
							       "the same user)", (int)v[i]);
		return 0;
	}
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

	if (!strcmp(scope, "child")) {
		snprintf(buf, len, "SIGSTOP every process named '%s' in the target's tree or cgroup, SIGCONT on revert",
			 fl_fault_value(f, "comm")->s);
		return;
	}
	snprintf(buf, len, "SIGSTOP the target's %s, SIGCONT on revert",
		 !strcmp(scope, "group") ? "process group" :
		 !strcmp(scope, "process") ? "main process" : "process group (if launched) or main process");
}

/*
 * Child scope: journal each match (pid + start time), then stop it. A journal failure is the
 * apply's failure, even after some were stopped (st->n of them: revert resumes those); a match
 * that could not be signalled is not, when others were (st->error says why).
 */
static int freeze_children(struct fl_fault *f, struct pause_state *st, struct fl_journal *j, struct fl_err *err)
{
	struct fl_proc_tree tree;
	pid_t v[MAX_MATCH];
	int n = find_named(f, &tree, v, MAX_MATCH, err), rc = 0, sent = 0;

	if (n < 0)
		return n;
	st->matched = n;
	for (int i = 0; i < n && i < MAX_FROZEN; i++) {
		struct frozen *z = &st->fz[st->n];
		char word[16];
		int64_t seq;
		int r;

		z->pid = v[i];
		if (fl_proc_starttime(v[i], &z->start))
			continue; /* gone since the scan */
		fl_proc_comm(v[i], z->comm, sizeof(z->comm));
		fl_proc_comm_word(z->comm, word, sizeof(word));
		seq = fl_journal_append(j, f, "pid=%d start=%llu signal_to=%d comm=%s", (int)v[i],
					(unsigned long long)z->start, (int)v[i], word);
		if (seq < 0)
			return fl_err_set(err, (int)seq, "journal write failed after %d of %d process(es) named '%s' "
					  "were stopped: %s", sent, n, st->name, strerror((int)-seq));
		st->n++;
		if (!st->applied_ns)
			st->applied_ns = fl_mono_ns();
		z->stop_lo_ns = fl_mono_ns();
		r = fl_proc_signal(v[i], z->start, v[i], SIGSTOP);
		if (!r) {
			z->signalled = true;
			sent++;
		} else if (r != -ESRCH && !rc) {
			rc = fl_err_set(err, r, "SIGSTOP to pid %d (%s): %s", (int)v[i], z->comm, strerror(-r));
		}
	}
	if (sent && rc)
		snprintf(st->error, sizeof(st->error), "%.95s", err->msg);
	if (!sent && !rc)
		rc = fl_err_set(err, -ESRCH, "every process named '%s' exited before it could be stopped", st->name);
	return sent ? 0 : rc;
}

/* Group or process scope: journal the main pid (and what the signal goes to), then stop it. */
static int freeze_main(struct fl_fault *f, struct pause_state *st, struct fl_journal *j, struct fl_err *err)
{
	struct frozen *z = &st->fz[0];
	int64_t seq = fl_journal_append(j, f, "pid=%d start=%llu signal_to=%d", (int)st->pid,
					(unsigned long long)st->start, (int)st->kill_id);
	int rc;

	if (seq < 0)
		return fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
	st->applied_ns = fl_mono_ns();
	st->n = 1;
	*z = (struct frozen){.pid = st->pid, .start = st->start, .stop_lo_ns = st->applied_ns};
	fl_proc_comm(st->pid, z->comm, sizeof(z->comm));
	rc = fl_proc_signal(st->pid, st->start, st->kill_id, SIGSTOP);
	if (rc)
		/* the journal says applied: the state stays (the report says why); nothing was stopped */
		return fl_err_set(err, rc, "SIGSTOP to %s %d: %s", st->kill_id < 0 ? "process group" : "pid",
				  st->kill_id < 0 ? -st->kill_id : st->kill_id, strerror(-rc));
	z->signalled = true;
	return 0;
}

static int pause_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	struct pause_state *st = calloc(1, sizeof(*st));
	int rc;

	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	rc = pause_target(f, &st->kill_id, err);
	if (rc)
		goto out;
	st->pid = f->target->pid;
	if (fl_proc_starttime(st->pid, &st->start)) {
		rc = fl_err_set(err, -ESRCH, "target pid %d is gone", (int)st->pid);
		goto out;
	}
	st->child_mode = child_scope(f);
	if (st->child_mode) {
		snprintf(st->name, sizeof(st->name), "%s", fl_fault_value(f, "comm")->s);
		rc = freeze_children(f, st, j, err);
	} else {
		rc = freeze_main(f, st, j, err);
	}
	if (!st->n)
		goto out; /* nothing journaled, nothing stopped */
	/* something is journaled: keep the state so revert resumes whatever was stopped */
	f->state = st;
	watch(st);
out:
	if (f->state != st)
		free(st);
	return rc;
}

static int pause_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct pause_state *st = f->state;
	char state = '?', pids[96] = "";
	double fmin = -1, fmax = -1, res = 0;
	int64_t end, csw = 0;
	int stopped = 0, threads = 0, off = 0;
	bool csw_all = true;

	if (!st)
		return -ENOENT;
	/* whatever apply's and revert's bounded watch did not see land, this tick's look does */
	look(st);
	if (!st->reverted_ns && fl_proc_state(st->fz[0].pid, &state) == 0 && (state == 'T' || state == 't'))
		st->stopped_seen = true;
	end = st->reverted_ns ? st->reverted_ns : fl_mono_ns();
	fl_obs_num(o, "pause_s", (double)(end - st->applied_ns) / 1e9, "%.3fs",
		   (double)(end - st->applied_ns) / 1e9);
	fl_obs_text(o, "stopped_seen", "%s", st->stopped_seen ? "yes" : "no");
	if (!st->reverted_ns)
		fl_obs_text(o, "state", "%c", state);
	if (st->child_mode && st->matched > MAX_FROZEN)
		fl_obs_text(o, "signalled", "matched %s%d named '%s', froze only the first %d (at most %d a pause)",
			    st->matched >= MAX_MATCH ? "at least " : "", st->matched, st->name, st->n, MAX_FROZEN);
	else if (st->child_mode)
		fl_obs_text(o, "signalled", "%d process(es) named '%s'", st->n, st->name);
	else
		fl_obs_text(o, "signalled", "%s %d", st->kill_id < 0 ? "pgid" : "pid",
			    st->kill_id < 0 ? -st->kill_id : st->kill_id);
	/* the freeze as /proc saw it: every thread stopped, until none was */
	for (int i = 0; i < st->n; i++) {
		const struct frozen *z = &st->fz[i];
		int w;

		if (!z->stopped_ns)
			continue;
		stopped++;
		threads += z->threads;
		w = snprintf(pids + off, sizeof(pids) - (size_t)off, "%s%d", off ? " " : "", (int)z->pid);
		if (w > 0 && off + w < (int)sizeof(pids))
			off += w;
		if (z->resumed_ns) {
			double s = (double)(z->resumed_ns - z->stopped_ns) / 1e9;
			double r = (double)(z->stopped_ns - z->stop_lo_ns + z->resumed_ns - z->resume_lo_ns) / 1e9;

			fmin = fmin < 0 || s < fmin ? s : fmin;
			fmax = s > fmax ? s : fmax;
			res = r > res ? r : res;
			csw += z->csw_delta;
			csw_all = csw_all && z->have_csw;
		}
	}
	if (st->child_mode)
		fl_obs_text(o, "frozen_pids", "%s", pids);
	fl_obs_num(o, "frozen", stopped, "%d of %d process(es), %d thread(s) seen stopped in /proc", stopped,
		   st->n, threads);
	if (fmin >= 0) {
		/* the polls bracket each stop and resume: res is how far the truth may lie from fmin */
		fl_obs_num(o, "frozen_s", fmin, "%.3fs (from /proc: all threads stopped until none was, within %.1fms)",
			   fmin, res * 1e3);
		fl_obs_num(o, "frozen_max_s", fmax, "%.3fs", fmax);
		fl_obs_num(o, "ran_while_frozen", (double)csw, "%lld context switch(es) while stopped%s", (long long)csw,
			   csw_all ? "" : " (some only from a later tick, or not at all)");
	}
	if (st->child_mode && st->n)
		fl_obs_text(o, "comm", "%s", st->fz[0].comm);
	if (st->error[0])
		fl_obs_text(o, "error", "%s", st->error);
	return 0;
}

/* SIGCONT through the pidfd path: a recycled pid is someone else, and one that is gone needs nothing. */
static int resume(pid_t pid, uint64_t start, pid_t to, struct fl_err *err)
{
	int rc = fl_proc_signal(pid, start, to, SIGCONT);

	if (rc && rc != -ESRCH)
		return fl_err_set(err, rc, "SIGCONT to %s %d: %s", to < 0 ? "process group" : "pid", to < 0 ? -to : to,
				  strerror(-rc));
	return 0;
}

/* Just before SIGCONT: did each stopped process stay stopped (no context switch since)? */
static void sample_before_resume(struct pause_state *st)
{
	for (int i = 0; i < st->n; i++) {
		struct frozen *z = &st->fz[i];
		int stopped, total;
		uint64_t csw;

		if (!z->have_csw || z->gone)
			continue;
		if (!fl_proc_same(z->pid, z->start) || tasks_of(z->pid, &stopped, &total, &csw)) {
			z->gone = true;
			continue;
		}
		z->csw_delta = (int64_t)(csw - z->csw_stopped);
	}
}

static int pause_revert(struct fl_fault *f, struct fl_err *err)
{
	struct pause_state *st = f->state;
	char state;
	int rc = 0;

	if (!st || st->reverted_ns)
		return 0;
	if (fl_proc_state(st->fz[0].pid, &state) == 0 && (state == 'T' || state == 't'))
		st->stopped_seen = true;
	look(st); /* a stop that landed since the last tick */
	sample_before_resume(st);
	for (int i = 0; i < st->n; i++) {
		struct frozen *z = &st->fz[i];
		int r;

		if (!z->signalled)
			continue; /* never stopped: nothing to resume */
		z->resume_lo_ns = fl_mono_ns();
		r = st->child_mode ? resume(z->pid, z->start, z->pid, err) : resume(st->pid, st->start, st->kill_id, err);
		if (r && !rc)
			rc = r;
	}
	if (rc)
		return rc;
	st->reverted_ns = fl_mono_ns();
	watch(st);
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
	return resume((pid_t)pid, start, (pid_t)to, err);
}

const struct fl_injector fl_inj_process_pause = {
	.type = "process.pause",
	.summary = "freeze the target, or a process in its tree by name (its database), with SIGSTOP for "
		   "the fault's duration (GC pause, frozen VM)",
	.preflight = "the target has a pid; its process group is its own (not pid 1, not faultline's); "
		     "kill(target, 0) is permitted; scope: child finds a process named `comm` below the "
		     "target or in its own cgroup",
	.params = pause_params,
	.validate = pause_validate,
	.probe = pause_probe,
	.check = pause_check,
	.describe = pause_describe,
	.apply = pause_apply,
	.observe = pause_observe,
	.revert = pause_revert,
	.revert_record = pause_revert_record,
};
