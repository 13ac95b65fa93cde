/* process.kill: signal the target's main process, or its children by name, once or on a period, each kill journaled before it is sent, and report whether a supervisor brought the process back and how fast. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
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
#include "units.h"

#define MAX_KILLS 64          /* kills remembered for the report and restart matching (a ring) */
#define MAX_ROUND 32          /* processes one round may signal */
#define DEATH_WAIT_MS 20      /* how long a kill waits to see its victim die: the event loop must not stall */
/* the engine acts on faults at its one-second tick: a shorter period could not be kept */
#define MIN_EVERY_NS FL_NS_PER_S

static const char *const kill_targets[] = {"main", "child", NULL};

static const struct fl_param kill_params[] = {
	{.name = "signal", .kind = FL_P_SIGNAL, .def = "SIGKILL",
	 .help = "the signal: SIGKILL is a crash or an OOM kill, SIGTERM a graceful stop; stop "
		 "signals are refused (process.pause stops and resumes)"},
	{.name = "target", .kind = FL_P_ENUM, .def = "main", .enums = kill_targets,
	 .help = "main: the target's main process (after a restart, its replacement); child: every "
		 "process named `comm` that descends from the target's main process or lives in the "
		 "target's own cgroup, never one outside them"},
	{.name = "comm", .kind = FL_P_STRING,
	 .help = "with target: child, the command name to match, as /proc/PID/comm and ps -o comm "
		 "show it (at most 15 characters; `name` is the fault's own)"},
	{.name = "every", .kind = FL_P_DURATION, .min = "0s", .max = "1h",
	 .help = "repeat on this period while the fault lasts, at whatever then matches (a restarted "
		 "process too); 0 or absent: once. At least 1s: the controller acts on a 1 s tick"},
	{0},
};

struct kill_rec {
	pid_t pid;
	uint64_t start;
	pid_t ppid;
	char comm[16];
	int64_t at_ns;            /* CLOCK_MONOTONIC */
	double at_boot_s;         /* CLOCK_BOOTTIME: start times in /proc count from boot */
	int64_t died_ns;          /* first seen gone; 0: not yet */
	double died_in_s;         /* seen gone within DEATH_WAIT_MS of the signal; -1: not then */
	bool restarted;
	pid_t new_pid;
	double restart_s;         /* the replacement's start time minus the kill's */
};

struct kill_state {
	const struct fl_fault *f;
	struct fl_journal *j;     /* kills after apply (every) are journaled here too */
	int sig;
	bool child_mode;
	char name[16];
	int64_t every_ns, next_ns, applied_ns, reverted_ns;
	struct fl_proc_tree tree; /* the target at apply: the tree and cgroups `comm` matches in */
	pid_t main;               /* main mode: the incarnation the next round signals */
	uint64_t main_start;
	int nkills, nmiss, nrestarts;
	double restart_sum;
	int64_t last_miss_ns;
	char last_error[96];
	struct kill_rec rec[MAX_KILLS];
};

static int64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/* ---- sending ---------------------------------------------------------------------------------- */

/* Journal, then signal one process (through a pidfd, so a recycled pid is never hit). */
static int kill_one(struct kill_state *st, pid_t pid, struct fl_err *err)
{
	struct kill_rec r = {.pid = pid, .died_in_s = -1};
	char word[16];
	int64_t seq;
	int pfd, rc;

	if (fl_proc_starttime(pid, &r.start))
		return -ESRCH;
	fl_proc_comm(pid, r.comm, sizeof(r.comm));
	fl_proc_ppid(pid, &r.ppid);
	fl_proc_comm_word(r.comm, word, sizeof(word));
	rc = fl_proc_hold(pid, r.start, &pfd);
	if (rc)
		return rc == -ESRCH ? rc : fl_err_set(err, rc, "pidfd_open(%d): %s", (int)pid, strerror(-rc));
	/* the record is the drill's account of what it did; there is nothing to undo */
	seq = fl_journal_append(st->j, st->f, "pid=%d start=%llu signal=%d comm=%s", (int)pid,
				(unsigned long long)r.start, st->sig, word);
	if (seq < 0) {
		rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
		goto out;
	}
	r.at_ns = clock_ns(CLOCK_MONOTONIC);
	r.at_boot_s = (double)clock_ns(CLOCK_BOOTTIME) / 1e9;
	rc = fl_proc_send(pfd, pid, r.start, pid, st->sig);
	if (rc) {
		if (rc != -ESRCH)
			fl_err_set(err, rc, "signal %s to pid %d (%s): %s", fl_signal_name(st->sig) ?: "?",
				   (int)pid, r.comm, strerror(-rc));
		goto out;
	}
	if (pfd >= 0) {
		struct pollfd pf = {.fd = pfd, .events = POLLIN};

		if (poll(&pf, 1, DEATH_WAIT_MS) > 0) {
			r.died_ns = clock_ns(CLOCK_MONOTONIC);
			r.died_in_s = (double)(r.died_ns - r.at_ns) / 1e9;
		}
	}
	st->rec[st->nkills % MAX_KILLS] = r;
	st->nkills++;
out:
	if (pfd >= 0)
		close(pfd);
	return rc;
}

/* One round: signal every process the fault names now. 0 when at least one was signalled. */
static int kill_round(struct kill_state *st, int64_t now, struct fl_err *err)
{
	pid_t v[MAX_ROUND];
	int n = 0, sent = 0, rc = 0;

	if (st->child_mode) {
		n = fl_proc_tree_find(&st->tree, st->name, v, MAX_ROUND);
		if (n < 0)
			return fl_err_set(err, n, "scanning /proc: %s", strerror(-n));
	} else if (!fl_proc_gone(st->main, st->main_start) && !fl_proc_protected(st->main, st->tree.root)) {
		v[n++] = st->main;
	}
	for (int i = 0; i < n; i++) {
		int r = kill_one(st, v[i], err);

		if (!r)
			sent++;
		else if (r != -ESRCH && !rc)
			rc = r; /* a pid that died between the scan and the signal is no failure */
	}
	if (!sent) {
		st->nmiss++;
		st->last_miss_ns = now;
		if (!rc)
			rc = -ESRCH;
	} else if (rc && err) {
		/* some were signalled: the round counts, and the report keeps why the others were not */
		snprintf(st->last_error, sizeof(st->last_error), "%.95s", err->msg);
	}
	return sent ? 0 : rc;
}

/* ---- restarts ---------------------------------------------------------------------------------- */

static bool taken(const struct kill_state *st, pid_t pid)
{
	int n = st->nkills < MAX_KILLS ? st->nkills : MAX_KILLS;

	for (int i = 0; i < n; i++)
		if (st->rec[i].pid == pid || (st->rec[i].restarted && st->rec[i].new_pid == pid))
			return true;
	return false;
}

/* Is some dead victim named comm still waiting for its replacement? */
static bool awaited(const struct kill_state *st, int n, const char *comm)
{
	for (int i = 0; i < n; i++)
		if (st->rec[i].died_ns && !st->rec[i].restarted && !strcmp(comm, st->rec[i].comm))
			return true;
	return false;
}

/*
 * A victim is back when a process with its name started after the kill under the same parent
 * (a supervisor; not pid 1, which adopts everything) or inside the target's own cgroup (systemd).
 * Its start time, from /proc, dates the restart to the kernel's tick, whenever we look.
 */
static void find_restarts(struct kill_state *st)
{
	int n = st->nkills < MAX_KILLS ? st->nkills : MAX_KILLS, waiting = 0;
	double hz = (double)sysconf(_SC_CLK_TCK);
	struct dirent *e;
	DIR *d;

	for (int i = 0; i < n; i++) {
		struct kill_rec *r = &st->rec[i];

		if (!r->died_ns && fl_proc_gone(r->pid, r->start))
			r->died_ns = clock_ns(CLOCK_MONOTONIC);
		waiting += r->died_ns && !r->restarted;
	}
	if (!waiting || !(d = opendir("/proc")))
		return;
	while ((e = readdir(d))) {
		char comm[16], *end;
		long x = strtol(e->d_name, &end, 10);
		uint64_t start;
		pid_t ppid = 0;

		if (*end || x <= 1 || taken(st, (pid_t)x) || fl_proc_comm((pid_t)x, comm, sizeof(comm)) ||
		    fl_proc_starttime((pid_t)x, &start) || fl_proc_gone((pid_t)x, start))
			continue;
		/* most processes have no victim's name: skip them before the costlier checks */
		if (!awaited(st, n, comm) || fl_proc_protected((pid_t)x, st->tree.root))
			continue;
		fl_proc_ppid((pid_t)x, &ppid);
		/* several victims may share a name: the one with the same parent first, then by cgroup */
		for (int pass = 0, matched = 0; pass < 2 && !matched; pass++) {
			for (int i = 0; i < n && !matched; i++) {
				struct kill_rec *r = &st->rec[i];
				double started = (double)start / hz;

				/* a start time in the kill's own tick may still be the kill's: one tick of slack */
				if (!r->died_ns || r->restarted || strcmp(comm, r->comm) ||
				    started + 1.0 / hz < r->at_boot_s)
					continue;
				if (pass == 0 ? !(r->ppid > 1 && ppid == r->ppid) : !fl_proc_tree_in_cgroup(&st->tree, (pid_t)x))
					continue;
				matched = 1;
				r->restarted = true;
				r->new_pid = (pid_t)x;
				r->restart_s = started > r->at_boot_s ? started - r->at_boot_s : 0;
				st->nrestarts++;
				st->restart_sum += r->restart_s;
				/* main mode: the replacement is the main process the next round signals */
				if (!st->child_mode && r->pid == st->main) {
					st->main = (pid_t)x;
					st->main_start = start;
				}
			}
		}
	}
	closedir(d);
}

/* ---- the contract ------------------------------------------------------------------------------ */

static int kill_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err)
{
	const struct fl_value *sig = fl_fault_value(f, "signal"), *name = fl_fault_value(f, "comm"),
			      *every = fl_fault_value(f, "every");
	bool child = !strcmp(fl_fault_value(f, "target")->s, "child");

	if (is_stop_signal((int)sig->i)) {
		*blame = sig;
		fl_err_set(err, -EINVAL, "%s would leave the process stopped with nothing to resume it",
			   fl_signal_name((int)sig->i) ?: "a stop signal");
		fl_err_hint(err, "use process.pause: it stops the target and sends SIGCONT on revert");
		return -EINVAL;
	}
	if (child && !name->set) {
		*blame = NULL;
		fl_err_set(err, -EINVAL, "target: child needs `comm`, the command name of the processes to signal");
		fl_err_hint(err, "add comm: WORKER (as ps -o comm shows it)");
		return -EINVAL;
	}
	if (!child && name->set) {
		*blame = name;
		fl_err_set(err, -EINVAL, "`comm` selects children of the target, but target is main");
		fl_err_hint(err, "add target: child, or remove comm");
		return -EINVAL;
	}
	if (name->set && fl_proc_comm_check(name->s, err)) {
		*blame = name;
		return -EINVAL;
	}
	if (every->set && every->i > 0 && every->i < MIN_EVERY_NS) {
		*blame = every;
		fl_err_set(err, -EINVAL, "every must be 0 (once) or at least 1s: the controller acts on faults "
					 "once a second");
		return -EINVAL;
	}
	return 0;
}

static int kill_probe(struct fl_err *err)
{
	if (!fl_have_cap(CAP_KILL))
		fl_err_set(err, 0, "no CAP_KILL: only targets running as uid %d can be signalled", (int)getuid());
	return 0;
}

static int kill_check(const struct fl_fault *f, struct fl_err *err)
{
	const struct fl_target_info *t = f->target;
	pid_t pid = t ? t->pid : 0;

	if (pid <= 0)
		return fl_err_set(err, -ESRCH, "process.kill needs the target's pid "
					       "(target.run, pid, pidfile, cgroup or systemd_unit)");
	/* whatever allow_host_wide says: init's death takes the host (or the container) with it */
	if (pid == 1)
		return fl_err_set(err, -EPERM, "refusing to signal pid 1 or match names below it");
	if (fl_proc_protected(pid, pid))
		return fl_err_set(err, -EPERM, "pid %d is faultline itself, one of its ancestors or a kernel "
					       "thread: not a target to kill", (int)pid);
	if (kill(pid, 0) < 0) {
		int rc = -errno;

		if (rc == -EPERM)
			return fl_err_set(err, rc, "not permitted to signal pid %d (need CAP_KILL or the same user)",
					  (int)pid);
		return fl_err_set(err, rc, "cannot signal pid %d: %s", (int)pid, strerror(-rc));
	}
	return 0;
}

static void kill_describe(const struct fl_fault *f, char *buf, size_t len)
{
	const struct fl_value *every = fl_fault_value(f, "every");
	const char *sig = fl_signal_name((int)fl_fault_value(f, "signal")->i);
	char d[32] = "";

	if (every->set && every->i > 0)
		fl_format_duration(every->i, d, sizeof(d));
	if (!strcmp(fl_fault_value(f, "target")->s, "child"))
		snprintf(buf, len, "%s every process named '%s' in the target's tree or cgroup%s%s, then watch for restarts",
			 sig ? sig : "signal", fl_fault_value(f, "comm")->s, d[0] ? ", every " : " once", d);
	else
		snprintf(buf, len, "%s the target's main process%s%s, then watch for a restart",
			 sig ? sig : "signal", d[0] ? " (its replacement too), every " : " once", d);
}

static int kill_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	const struct fl_target_info *t = f->target;
	const struct fl_value *every = fl_fault_value(f, "every");
	struct kill_state *st = calloc(1, sizeof(*st));
	int rc;

	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	st->f = f;
	st->j = j;
	st->sig = (int)fl_fault_value(f, "signal")->i;
	st->child_mode = !strcmp(fl_fault_value(f, "target")->s, "child");
	if (st->child_mode)
		snprintf(st->name, sizeof(st->name), "%s", fl_fault_value(f, "comm")->s);
	st->every_ns = every->set ? every->i : 0;
	rc = kill_check(f, err);
	if (rc)
		goto fail;
	if (fl_proc_tree_init(&st->tree, t)) {
		rc = fl_err_set(err, -ESRCH, "target pid %d is gone", (int)t->pid);
		goto fail;
	}
	st->main = st->tree.root;
	st->main_start = st->tree.root_start;
	st->applied_ns = clock_ns(CLOCK_MONOTONIC);
	rc = kill_round(st, st->applied_ns, err);
	if (rc == -ESRCH) {
		if (st->child_mode)
			fl_err_set(err, rc, "no process named '%s' below pid %d%s%s", st->name, (int)t->pid,
				   fl_proc_tree_cgroup(&st->tree)[0] ? " or in its cgroup " : "",
				   fl_proc_tree_cgroup(&st->tree));
		else
			fl_err_set(err, rc, "target pid %d is gone", (int)t->pid);
	}
	if (rc && !st->nkills)
		goto fail;
	st->next_ns = st->applied_ns + st->every_ns;
	f->state = st;
	return rc; /* some were signalled: the state stays, so the report tells which */
fail:
	free(st);
	return rc;
}

static int kill_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct kill_state *st = f->state;
	int64_t now = clock_ns(CLOCK_MONOTONIC);
	int n, first;
	char log[96] = "";
	size_t off = 0;

	if (!st)
		return -ENOENT;
	if (st->every_ns && !st->reverted_ns && now >= st->next_ns) {
		struct fl_err e = {0};

		if (kill_round(st, now, &e) && e.msg[0])
			snprintf(st->last_error, sizeof(st->last_error), "%.95s", e.msg);
		/* on the period's grid; after a stall, the next period from now, not a burst */
		st->next_ns += st->every_ns;
		if (st->next_ns <= now)
			st->next_ns = now + st->every_ns;
	}
	find_restarts(st);
	n = st->nkills < MAX_KILLS ? st->nkills : MAX_KILLS;
	first = st->nkills < MAX_KILLS ? 0 : st->nkills % MAX_KILLS;
	fl_obs_num(o, "kills", st->nkills, "%d x %s", st->nkills, fl_signal_name(st->sig) ?: "?");
	/* the latest kills that fit, oldest first: "+0.00s 1234 +1.00s 1240" */
	for (int k = n - 1; k >= 0; k--) {
		const struct kill_rec *r = &st->rec[(first + k) % MAX_KILLS];
		char one[40];
		int w = snprintf(one, sizeof(one), "+%.2fs %d ", (double)(r->at_ns - st->applied_ns) / 1e9, (int)r->pid);

		if (w <= 0 || off + (size_t)w >= sizeof(log))
			break;
		memmove(log + w, log, off + 1);
		memcpy(log, one, (size_t)w);
		off += (size_t)w;
	}
	if (off)
		log[off - 1] = '\0';
	fl_obs_text(o, "kill_log", "%s", log);
	if (n) {
		const struct kill_rec *r = &st->rec[(st->nkills - 1) % MAX_KILLS];

		if (r->died_in_s >= 0)
			fl_obs_text(o, "last_victim", "pid %d (%s) died %.1fms after the signal", (int)r->pid, r->comm,
				    r->died_in_s * 1e3);
		else if (r->died_ns)
			fl_obs_text(o, "last_victim", "pid %d (%s) died, seen %.2fs after the signal", (int)r->pid,
				    r->comm, (double)(r->died_ns - r->at_ns) / 1e9);
		else
			fl_obs_text(o, "last_victim", "pid %d (%s) still running %.2fs after the signal", (int)r->pid,
				    r->comm, (double)(now - r->at_ns) / 1e9);
		fl_obs_num(o, "restarts", st->nrestarts, "%d of %d kills", st->nrestarts, st->nkills);
		if (r->restarted)
			fl_obs_num(o, "restarted_after_s", r->restart_s, "%.2fs (pid %d replaced %d)", r->restart_s,
				   (int)r->new_pid, (int)r->pid);
		else if (r->died_ns)
			fl_obs_text(o, "not_restarted", "no new '%s' under its parent or in the target's cgroup %.2fs after the kill",
				    r->comm, (double)(now - r->at_ns) / 1e9);
		if (st->nrestarts > 1)
			fl_obs_num(o, "restart_mean_s", st->restart_sum / st->nrestarts, "%.2fs", st->restart_sum / st->nrestarts);
	}
	if (st->nmiss)
		fl_obs_num(o, "missed_rounds", st->nmiss, "%d round(s) found nothing to signal (last +%.2fs)", st->nmiss,
			   (double)(st->last_miss_ns - st->applied_ns) / 1e9);
	if (st->last_error[0])
		fl_obs_text(o, "error", "%s", st->last_error);
	if (st->every_ns && !st->reverted_ns)
		fl_obs_num(o, "next_kill_s", (double)(st->next_ns - now) / 1e9, "in %.2fs", (double)(st->next_ns - now) / 1e9);
	return 0;
}

static int kill_revert(struct fl_fault *f, struct fl_err *err)
{
	struct kill_state *st = f->state;

	(void)err;
	/* no more rounds; a signal cannot be taken back: bringing the process back is its supervisor's job */
	if (st && !st->reverted_ns)
		st->reverted_ns = clock_ns(CLOCK_MONOTONIC);
	return 0;
}

/*
 * Nothing to undo from a record: the signal was delivered and the process's fate is sealed;
 * restarting it is its supervisor's job (that is what the drill measures), and a recycled pid
 * must not be touched. The record is the drill's account of what was sent, not an undo step.
 */
static int kill_revert_record(const struct fl_journal_rec *r, struct fl_err *err)
{
	(void)r;
	(void)err;
	return 0;
}

const struct fl_injector fl_inj_process_kill = {
	.type = "process.kill",
	.summary = "signal the target's main process or its children by name (SIGKILL by default), once or every period",
	.preflight = "the target has a pid that is not 1, not faultline or its ancestors; kill(target, 0) "
		     "is permitted; a name matches only below the target or in its own cgroup",
	.params = kill_params,
	.validate = kill_validate,
	.probe = kill_probe,
	.check = kill_check,
	.describe = kill_describe,
	.apply = kill_apply,
	.observe = kill_observe,
	.revert = kill_revert,
	.revert_record = kill_revert_record,
};
