/* cpu.burn: children that spin with a duty cycle of `load` on `cores` CPUs inside the target's cpu cgroup (v1 or v2), so they compete for its share and quota; observe reports the CPU time they really got. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "injector.h"
#include "journal.h"
#include "net.h"
#include "procfs.h"
#include "proctree.h"

/*
 * The duty-cycle period: short against the scheduler's 100 ms quota period and against a
 * request's latency budget, so the load reads as a steady share of a core, not as bursts.
 */
#define PERIOD_NS 10000000LL

static const char *const burn_scopes[] = {"target", "host", NULL};

static const struct fl_param burn_params[] = {
	{.name = "cores", .kind = FL_P_INT, .def = "1", .min = "1", .max = "256",
	 .help = "how many burners (one process each); at most the CPUs faultline may run on"},
	{.name = "load", .kind = FL_P_RATIO, .def = "100%", .min = "1%", .max = "100%",
	 .help = "each burner's duty cycle: it spins this share of every 10 ms and sleeps the rest "
		 "(observe reports the CPU time it really got)"},
	{.name = "in", .kind = FL_P_ENUM, .def = "target", .enums = burn_scopes,
	 .help = "target: the burners join the target's cpu cgroup (v1 cpu or v2), so they compete "
		 "inside its shares and quota; host: they stay in faultline's cgroup and compete with "
		 "every process (needs allow_host_wide)"},
	{0},
};

struct burner {
	pid_t pid;
	uint64_t start;
	bool reaped;
	int status;
	double cpu_s;          /* utime + stime: from /proc while it runs, from wait4 once reaped */
};

struct burn_state {
	double load;
	bool host;
	char cg[PATH_MAX];
	char rel[PATH_MAX];
	int cgv;
	int64_t go_ns, reverted_ns;
	bool have_thr;
	uint64_t thr0_ns, thr_ns, nthr0, nthr;
	int n;
	struct burner b[];
};

static int cpus_allowed(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return (int)sysconf(_SC_NPROCESSORS_ONLN);
	return CPU_COUNT(&set);
}

static bool file_has_word(const char *path, const char *word)
{
	char w[64];
	FILE *f = fopen(path, "re");
	bool found = false;

	if (!f)
		return false;
	while (!found && fscanf(f, "%63s", w) == 1)
		found = !strcmp(w, word);
	fclose(f);
	return found;
}

/* The cpu cgroup of pid, from /proc/PID/cgroup: v1 (a hierarchy carrying "cpu") or v2 with cpu enabled. */
static int cpu_cgroup_of(pid_t pid, char *dir, size_t len, char *rel, size_t rlen, int *v, struct fl_err *err)
{
	char p[64], line[4096], v2path[4096] = "", mount[PATH_MAX], ctl[PATH_MAX + 64];
	FILE *f;
	int found = 0;

	snprintf(p, sizeof(p), "/proc/%d/cgroup", (int)pid);
	if (!(f = fopen(p, "re")))
		return fl_err_set(err, -errno, "cannot read %s: %s", p, strerror(errno));
	while (!found && fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL, *save = NULL;

		line[strcspn(line, "\n")] = '\0';
		if (!c2)
			continue;
		*c2 = '\0';
		if (!strncmp(line, "0:", 2) && c2 == c1 + 1) {
			snprintf(v2path, sizeof(v2path), "%s", c2 + 1);
			continue;
		}
		for (char *c = strtok_r(c1 + 1, ",", &save); c; c = strtok_r(NULL, ",", &save))
			if (!strcmp(c, "cpu") && fl_cgroup_mount("cpu", mount, sizeof(mount)) == 0) {
				snprintf(dir, len, "%s%s", mount, strcmp(c2 + 1, "/") ? c2 + 1 : "");
				snprintf(rel, rlen, "%s", c2 + 1);
				*v = 1;
				found = 1;
				break;
			}
	}
	fclose(f);
	if (found)
		return 0;
	if (v2path[0] && fl_cgroup_mount(NULL, mount, sizeof(mount)) == 0) {
		snprintf(dir, len, "%s%s", mount, strcmp(v2path, "/") ? v2path : "");
		snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers", dir);
		if (file_has_word(ctl, "cpu")) {
			snprintf(rel, rlen, "%s", v2path);
			*v = 2;
			return 0;
		}
		fl_err_set(err, -EOPNOTSUPP, "pid %d has no cpu cgroup: no v1 cpu hierarchy is mounted and "
					     "its cgroup v2 %s has no cpu controller", (int)pid, dir);
		fl_err_hint(err, "enable it (echo +cpu > PARENT/cgroup.subtree_control), or use in: host with "
				 "allow_host_wide");
		return -EOPNOTSUPP;
	}
	return fl_err_set(err, -EOPNOTSUPP, "pid %d has no cpu cgroup: neither a v1 cpu hierarchy nor "
					    "cgroup v2 is mounted", (int)pid);
}

struct burn_where {
	bool host;
	char cg[PATH_MAX], rel[PATH_MAX];
	int v;
};

static int burn_where(const struct fl_fault *f, struct burn_where *w, struct fl_err *err)
{
	const struct fl_target_info *t = f->target;
	int rc;

	memset(w, 0, sizeof(*w));
	w->host = !strcmp(fl_fault_value(f, "in")->s, "host");
	if (w->host) {
		if (!t || !t->allow_host_wide) {
			fl_err_set(err, -EPERM, "cpu.burn in: host competes with every process on the host: "
						"refused without allow_host_wide");
			fl_err_hint(err, "burn inside the target's cpu cgroup (in: target), or set "
					 "allow_host_wide: true");
			return -EPERM;
		}
		return 0;
	}
	if (!t || t->pid <= 0)
		return fl_err_set(err, -ESRCH, "cpu.burn (in: target) needs the target's process to find "
					       "its cpu cgroup (target.run, pid, pidfile, cgroup or systemd_unit)");
	rc = cpu_cgroup_of(t->pid, w->cg, sizeof(w->cg), w->rel, sizeof(w->rel), &w->v, err);
	if (rc)
		return rc;
	if (!strcmp(w->rel, "/") && !t->allow_host_wide) {
		fl_err_set(err, -EPERM, "the target (pid %d) is in the root cpu cgroup (%s): burners there "
					"compete host-wide; refused without allow_host_wide", (int)t->pid, w->cg);
		fl_err_hint(err, "launch the target (target.run gives it a cgroup of its own) or name the "
				 "service's cgroup (target.cgroup, systemd_unit)");
		return -EPERM;
	}
	return 0;
}

static int burn_probe(struct fl_err *err)
{
	char m[PATH_MAX], p[PATH_MAX + 32];

	if (fl_cgroup_mount("cpu", m, sizeof(m)) == 0)
		return 0;
	if (fl_cgroup_mount(NULL, m, sizeof(m)) == 0 &&
	    snprintf(p, sizeof(p), "%s/cgroup.controllers", m) > 0 && file_has_word(p, "cpu"))
		return 0;
	fl_err_set(err, 0, "no cpu cgroup controller (v1 or v2): only in: host (with allow_host_wide) can run");
	return 0;
}

static int burn_check(const struct fl_fault *f, struct fl_err *err)
{
	struct burn_where w;
	int cores = (int)fl_fault_value(f, "cores")->i, ncpu = cpus_allowed();

	if (cores > ncpu) {
		fl_err_set(err, -EINVAL, "cores %d is more than the %d CPU(s) faultline may run on: the "
					 "burners would share CPUs and none would reach its load", cores, ncpu);
		fl_err_hint(err, "cores: %d or fewer", ncpu);
		return -EINVAL;
	}
	return burn_where(f, &w, err);
}

static void burn_describe(const struct fl_fault *f, char *buf, size_t len)
{
	snprintf(buf, len, "%lld child(ren) (fl-burn) spinning %.0f%% of every 10 ms %s, killed on revert",
		 (long long)fl_fault_value(f, "cores")->i, fl_fault_value(f, "load")->d * 100,
		 strcmp(fl_fault_value(f, "in")->s, "host") ? "in the target's cpu cgroup" :
		 "in faultline's own cgroup (host-wide)");
}

/* ---- the burner ------------------------------------------------------------------------------ */

static void sleep_until(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* In the child: wait for the go (sent once it is journaled and in the cgroup), then burn. Never returns. */
static void __attribute__((noreturn)) burner_main(int go, double load)
{
	volatile unsigned long spins = 0;
	int64_t start;
	char c = 0;
	ssize_t n;

	prctl(PR_SET_NAME, "fl-burn");
	do
		n = read(go, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1 || c != 'g')
		_exit(0);
	close(go);
	if (load >= 0.999)
		for (;;)
			spins++;
	/* wake on time: the default 50 us timer slack would come out of every busy phase */
	prctl(PR_SET_TIMERSLACK, 1UL);
	start = fl_mono_ns();
	for (;;) {
		/* busy for load x period from when it really woke: a late wake-up shortens the idle part */
		int64_t now = fl_mono_ns(), busy_end = now + (int64_t)(load * (double)PERIOD_NS);

		while ((now = fl_mono_ns()) < busy_end)
			spins++;
		start += PERIOD_NS;
		/* preempted past the period's end: start afresh, no catch-up burst above the load */
		if (now >= start)
			start = now;
		else
			sleep_until(start);
	}
}

/* utime + stime of a live process from /proc/PID/stat (fields 14 and 15), in seconds. */
static int proc_cpu_s(pid_t pid, double *out)
{
	char p[64], buf[1024], *rest, *save = NULL, *tok;
	unsigned long long ut = 0, stime = 0;
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = '\0';
	if (!(rest = strrchr(buf, ')')))
		return -EINVAL;
	tok = strtok_r(rest + 1, " ", &save); /* field 3, state */
	for (int i = 3; tok && i < 14; i++)
		tok = strtok_r(NULL, " ", &save);
	if (!tok)
		return -EINVAL;
	ut = strtoull(tok, NULL, 10);
	if (!(tok = strtok_r(NULL, " ", &save)))
		return -EINVAL;
	stime = strtoull(tok, NULL, 10);
	*out = (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

/* The cgroup's throttling so far (the quota at work): ns throttled and periods throttled. */
static bool throttle_of(const struct burn_state *st, uint64_t *ns, uint64_t *periods)
{
	char p[PATH_MAX + 32], line[256], k[64];
	unsigned long long v;
	bool got = false;
	FILE *f;

	if (st->host)
		return false;
	snprintf(p, sizeof(p), "%s/cpu.stat", st->cg);
	if (!(f = fopen(p, "re")))
		return false;
	*ns = *periods = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %llu", k, &v) != 2)
			continue;
		if (!strcmp(k, "throttled_time")) {        /* v1, ns */
			*ns = v;
			got = true;
		} else if (!strcmp(k, "throttled_usec")) { /* v2, us */
			*ns = v * 1000;
			got = true;
		} else if (!strcmp(k, "nr_throttled")) {
			*periods = v;
		}
	}
	fclose(f);
	return got;
}

/* The cgroup's CPU quota as text: "0.50 CPU (50000/100000us)" or "none". */
static void quota_text(const struct burn_state *st, char *buf, size_t len)
{
	char p[PATH_MAX + 32], q[32] = "";
	long long quota = -1, period = 0;
	FILE *f;

	snprintf(buf, len, "none");
	if (st->cgv == 1) {
		snprintf(p, sizeof(p), "%s/cpu.cfs_quota_us", st->cg);
		if ((f = fopen(p, "re"))) {
			if (fscanf(f, "%lld", &quota) != 1)
				quota = -1;
			fclose(f);
		}
		snprintf(p, sizeof(p), "%s/cpu.cfs_period_us", st->cg);
		if ((f = fopen(p, "re"))) {
			if (fscanf(f, "%lld", &period) != 1)
				period = 0;
			fclose(f);
		}
	} else {
		snprintf(p, sizeof(p), "%s/cpu.max", st->cg);
		if ((f = fopen(p, "re"))) {
			if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max"))
				quota = atoll(q);
			fclose(f);
		}
	}
	if (quota > 0 && period > 0)
		snprintf(buf, len, "%.2f CPU (%lld/%lldus)", (double)quota / (double)period, quota, period);
}

/* ---- apply, observe, revert ------------------------------------------------------------------ */

static void reap_one(struct burner *b, bool block)
{
	struct rusage ru;
	int status = 0;
	pid_t w;

	if (b->reaped || b->pid <= 0)
		return;
	while ((w = wait4(b->pid, &status, block ? 0 : WNOHANG, &ru)) < 0 && errno == EINTR)
		;
	if (w != b->pid)
		return;
	b->reaped = true;
	b->status = status;
	/* the kernel's own account, to the microsecond, of what it got */
	b->cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void stop_all(struct burn_state *st)
{
	for (int i = 0; i < st->n; i++)
		if (st->b[i].pid > 0 && !st->b[i].reaped)
			kill(st->b[i].pid, SIGKILL);
	for (int i = 0; i < st->n; i++)
		reap_one(&st->b[i], true);
}

static int cg_join(const char *dir, pid_t pid, struct fl_err *err)
{
	char p[PATH_MAX + 32], v[16];
	int fd, n, rc = 0;

	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	n = snprintf(v, sizeof(v), "%d", (int)pid);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fl_err_set(err, -errno, "open %s: %s", p, strerror(errno));
	if (write(fd, v, (size_t)n) != n)
		rc = fl_err_set(err, -errno, "moving burner pid %d into %s: %s", (int)pid, p, strerror(errno));
	close(fd);
	return rc;
}

static int burn_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	int cores = (int)fl_fault_value(f, "cores")->i, go[2] = {-1, -1}, rc = 0;
	struct burn_state *st = calloc(1, sizeof(*st) + (size_t)cores * sizeof(struct burner));
	struct burn_where w;
	char gos[256];

	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	st->load = fl_fault_value(f, "load")->d;
	rc = burn_where(f, &w, err);
	if (rc)
		goto fail;
	st->host = w.host;
	snprintf(st->cg, sizeof(st->cg), "%s", w.cg);
	snprintf(st->rel, sizeof(st->rel), "%s", w.rel);
	st->cgv = w.v;
	if (pipe2(go, O_CLOEXEC) < 0) {
		rc = fl_err_set(err, -errno, "pipe2: %s", strerror(errno));
		goto fail;
	}
	for (int i = 0; i < cores; i++) {
		struct burner *b = &st->b[i];
		int64_t seq;
		pid_t pid = fl_spawn_child(&go[0], 1, err);

		if (pid == 0)
			burner_main(go[0], st->load);
		if (pid < 0) {
			rc = (int)pid;
			goto fail;
		}
		b->pid = pid;
		st->n = i + 1;
		if (fl_proc_starttime(pid, &b->start)) {
			rc = fl_err_set(err, -ESRCH, "burner pid %d vanished at once", (int)pid);
			goto fail;
		}
		/* each journaled while it waits for the go: a record for every process that will burn */
		seq = fl_journal_append(j, f, "pid=%d start=%llu burner=%d of=%d", (int)pid,
					(unsigned long long)b->start, i + 1, cores);
		if (seq < 0) {
			rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
			goto fail;
		}
		if (!st->host && (rc = cg_join(st->cg, pid, err)))
			goto fail;
	}
	st->have_thr = throttle_of(st, &st->thr0_ns, &st->nthr0);
	st->thr_ns = st->thr0_ns;
	st->nthr = st->nthr0;
	memset(gos, 'g', sizeof(gos));
	st->go_ns = fl_mono_ns();
	for (int left = cores; left > 0;) {
		ssize_t n = write(go[1], gos, (size_t)(left < (int)sizeof(gos) ? left : (int)sizeof(gos)));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = fl_err_set(err, -errno, "starting the burners: %s", strerror(errno));
			goto fail;
		}
		left -= (int)n;
	}
	close(go[0]);
	close(go[1]);
	f->state = st;
	return 0;
fail:
	stop_all(st);
	if (go[0] >= 0)
		close(go[0]);
	if (go[1] >= 0)
		close(go[1]);
	free(st);
	return rc;
}

static int burn_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct burn_state *st = f->state;
	char per[96] = "", q[64];
	double total = 0, elapsed;
	size_t off = 0;
	int alive = 0;

	if (!st)
		return -ENOENT;
	elapsed = (double)((st->reverted_ns ? st->reverted_ns : fl_mono_ns()) - st->go_ns) / 1e9;
	for (int i = 0; i < st->n; i++) {
		struct burner *b = &st->b[i];
		double c = 0;

		if (!st->reverted_ns)
			reap_one(b, false);
		if (!b->reaped && proc_cpu_s(b->pid, &c) == 0)
			b->cpu_s = c;
		alive += !b->reaped;
		total += b->cpu_s;
		if (off < sizeof(per) && elapsed > 0) {
			int wr = snprintf(per + off, sizeof(per) - off, "%s%.1f%%", i ? " " : "", b->cpu_s / elapsed * 100);

			if (wr > 0)
				off += (size_t)wr;
		}
	}
	if (!st->reverted_ns && st->have_thr)
		throttle_of(st, &st->thr_ns, &st->nthr);
	fl_obs_num(o, "cpu_s", total, "%.2fs of CPU (utime+stime, /proc)", total);
	fl_obs_num(o, "elapsed_s", elapsed, "%.2fs", elapsed);
	if (elapsed > 0) {
		double cores = total / elapsed;

		fl_obs_num(o, "cores_used", cores, "%.2f (configured %d x %.0f%% = %.2f)", cores, st->n,
			   st->load * 100, st->n * st->load);
		fl_obs_num(o, "load_observed", cores / st->n, "%.1f%% per burner (configured %.0f%%)",
			   cores / st->n * 100, st->load * 100);
		fl_obs_text(o, "per_core", "%s", per);
	}
	if (st->reverted_ns)
		fl_obs_text(o, "burners", "0/%d (stopped at revert)", st->n);
	else
		fl_obs_text(o, "burners", "%d/%d alive", alive, st->n);
	if (st->host) {
		fl_obs_text(o, "cgroup", "host (faultline's own cgroup)");
	} else {
		fl_obs_text(o, "cgroup", "%.80s (v%d)", st->rel, st->cgv);
		quota_text(st, q, sizeof(q));
		fl_obs_text(o, "quota", "%s", q);
	}
	if (st->have_thr)
		fl_obs_num(o, "throttled_s", (double)(st->thr_ns - st->thr0_ns) / 1e9,
			   "%.2fs in %llu throttled period(s) (the cgroup's, since apply)",
			   (double)(st->thr_ns - st->thr0_ns) / 1e9, (unsigned long long)(st->nthr - st->nthr0));
	return 0;
}

static int burn_revert(struct fl_fault *f, struct fl_err *err)
{
	struct burn_state *st = f->state;

	(void)err;
	if (!st || st->reverted_ns)
		return 0;
	if (st->have_thr)
		throttle_of(st, &st->thr_ns, &st->nthr);
	stop_all(st);
	st->reverted_ns = fl_mono_ns();
	return 0;
}

static int burn_revert_record(const struct fl_journal_rec *r, struct fl_err *err)
{
	return fl_proc_kill_record(r, "burner", err);
}

const struct fl_injector fl_inj_cpu_burn = {
	.type = "cpu.burn",
	.summary = "burn CPU with `cores` spinning children at a duty cycle, inside the target's cpu cgroup",
	.preflight = "cores <= the CPUs faultline may run on; in: target: the target's pid is in a cpu "
		     "cgroup (v1 cpu or v2 with cpu) that is not the root; in: host: allow_host_wide",
	.params = burn_params,
	.probe = burn_probe,
	.check = burn_check,
	.describe = burn_describe,
	.apply = burn_apply,
	.observe = burn_observe,
	.revert = burn_revert,
	.revert_record = burn_revert_record,
};
