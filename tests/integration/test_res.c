/* memory.leak, cpu.burn and process.kill against real children in cgroups of the test's own: memory held and OOM kills as the kernel saw them, CPU really used, kills and restarts, revert_record from a fresh process, nothing left behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_testlib.h"
#include "journal.h"
#include "procfs.h"
#include "scenario.h"

#define MIB (1024.0 * 1024.0)
#define TARGET_HOLDS (30u << 20) /* the "service" holds this much, so the OOM killer has a choice */
#define MAX_HELPERS 16

struct world {
	char jdir[64];
	struct fl_journal *j;
	char memcg[PATH_MAX];        /* fl-res-<pid> in the memory hierarchy (v1, or v2 with memory) */
	int memv;
	char cpucg[PATH_MAX];        /* fl-res-<pid> in the cpu hierarchy */
	int cpuv;
	char v2cg[PATH_MAX];         /* fl-res-<pid> in cgroup v2: the target's "own cgroup" for kill scopes */
	pid_t target;                /* the "service": a child in all three, holding TARGET_HOLDS */
	bool target_reaped;
	pid_t helpers[MAX_HELPERS];  /* our other children (supervisors, decoy parents): killed and reaped */
	int nhelpers;
	pid_t watched[MAX_HELPERS];  /* grandchildren that must be gone at the end */
	int nwatched;
	struct fl_target_info info;
};

/* ---- the test's own cgroups ------------------------------------------------------------------ */

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static bool has_word(const char *path, const char *word)
{
	char w[64];
	FILE *f = fopen(path, "re");
	bool found = false;

	while (f && !found && fscanf(f, "%63s", w) == 1)
		found = !strcmp(w, word);
	if (f)
		fclose(f);
	return found;
}

/* mkdir <mount of controller>/fl-res-<pid>; v: 1, or 2 when the controller is on cgroup v2. */
static int make_cg(const char *controller, char *out, size_t len, int *v)
{
	char m[PATH_MAX], p[PATH_MAX + 32];

	out[0] = '\0';
	if (controller && fl_cgroup_mount(controller, m, sizeof(m)) == 0) {
		*v = 1;
	} else if (fl_cgroup_mount(NULL, m, sizeof(m)) == 0) {
		snprintf(p, sizeof(p), "%s/cgroup.subtree_control", m);
		if (controller && !has_word(p, controller))
			return -EOPNOTSUPP;
		*v = 2;
	} else {
		return -EOPNOTSUPP;
	}
	if (snprintf(out, len, "%.*s/fl-res-%d", (int)(len - 32), m, (int)getpid()) >= (int)len)
		return -ENAMETOOLONG;
	if (mkdir(out, 0755) < 0 && errno != EEXIST) {
		int rc = -errno;

		out[0] = '\0';
		return rc;
	}
	return 0;
}

static uint64_t cg_num(const char *dir, const char *file)
{
	char p[PATH_MAX + 64];
	unsigned long long v = 0;
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	if ((f = fopen(p, "re"))) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static uint64_t cg_keyed(const char *dir, const char *file, const char *key)
{
	char p[PATH_MAX + 64], k[64];
	unsigned long long v, out = 0;
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	if ((f = fopen(p, "re"))) {
		while (fscanf(f, "%63s %llu", k, &v) == 2)
			if (!strcmp(k, key))
				out = v;
		fclose(f);
	}
	return out;
}

static uint64_t mem_usage(const struct world *w)
{
	return cg_num(w->memcg, w->memv == 1 ? "memory.usage_in_bytes" : "memory.current");
}

static uint64_t oom_kills(const struct world *w)
{
	return cg_keyed(w->memcg, w->memv == 1 ? "memory.oom_control" : "memory.events", "oom_kill");
}

static void set_mem_limit(const struct world *w, uint64_t bytes)
{
	char p[PATH_MAX + 32], v[32];

	snprintf(p, sizeof(p), "%s/%s", w->memcg, w->memv == 1 ? "memory.limit_in_bytes" : "memory.max");
	if (bytes)
		snprintf(v, sizeof(v), "%llu", (unsigned long long)bytes);
	else
		snprintf(v, sizeof(v), "%s", w->memv == 1 ? "-1" : "max");
	assert_int_equal(write_file(p, v), 0);
}

/* Kill what is left inside (only our own test processes can be there), then rmdir; 0 once gone. */
static int rm_cg(const char *dir)
{
	char p[PATH_MAX + 32];
	struct stat sb;

	if (!dir[0])
		return 0;
	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	for (int i = 0; i < 300; i++) {
		FILE *f = fopen(p, "re");
		int x;

		if (f) {
			while (fscanf(f, "%d", &x) == 1)
				kill(x, SIGKILL);
			fclose(f);
		}
		if (rmdir(dir) == 0 || errno == ENOENT)
			break;
		usleep(10000);
	}
	return stat(dir, &sb) == 0 ? -EBUSY : 0;
}

/* ---- processes ---------------------------------------------------------------------------- */

/* In a fresh child: never outlive the test. */
static void child_dies_with_parent(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(2);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool gone(pid_t pid)
{
	char s = 0;

	return kill(pid, 0) < 0 || (fl_proc_state(pid, &s) == 0 && (s == 'Z' || s == 'X'));
}

static void add_helper(struct world *w, pid_t pid)
{
	assert_true(w->nhelpers < MAX_HELPERS);
	w->helpers[w->nhelpers++] = pid;
}

static void add_watched(struct world *w, pid_t pid)
{
	if (w->nwatched < MAX_HELPERS)
		w->watched[w->nwatched++] = pid;
}

/* ---- setup ------------------------------------------------------------------------------------ */

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	char run[64];
	int ready[2];
	pid_t parent = getpid();
	char c;

	if (!w)
		return -1;
	*state = w;
	if (geteuid() != 0)
		return 0; /* each test skips */
	fl_tl_run_id(run, sizeof(run), getpid(), "res");
	w->j = fl_tl_journal(w->jdir, sizeof(w->jdir), "fl-res", run, "test_res");
	if (!w->j)
		return -1;
	make_cg("memory", w->memcg, sizeof(w->memcg), &w->memv);
	make_cg("cpu", w->cpucg, sizeof(w->cpucg), &w->cpuv);
	make_cg(NULL, w->v2cg, sizeof(w->v2cg), &(int){0});
	if (pipe(ready) < 0)
		return -1;
	w->target = fork();
	if (w->target < 0)
		return -1;
	if (w->target == 0) {
		char *mem;

		child_dies_with_parent(parent);
		close(ready[0]);
		/* into the cgroups before the first page, so its memory is the cgroup's */
		if ((w->memcg[0] && fl_tl_cgroup_join(w->memcg)) || (w->cpucg[0] && fl_tl_cgroup_join(w->cpucg)) ||
		    (w->v2cg[0] && fl_tl_cgroup_join(w->v2cg)))
			_exit(3);
		mem = malloc(TARGET_HOLDS);
		if (!mem)
			_exit(4);
		memset(mem, 0x5a, TARGET_HOLDS);
		/* the pages must really be written: without this the compiler drops the unread memset */
		__asm__ volatile("" : : "r"(mem) : "memory");
		if (write(ready[1], "r", 1) != 1)
			_exit(5);
		for (;;)
			pause();
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1) {
		close(ready[0]);
		return -1;
	}
	close(ready[0]);
	w->info.pid = w->target;
	w->info.pgid = w->target;
	w->info.launched = true;
	snprintf(w->info.memcg, sizeof(w->info.memcg), "%s", w->memcg);
	snprintf(w->info.cgroup_v2, sizeof(w->info.cgroup_v2), "%s", w->v2cg);
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	int rc = 0, status;
	pid_t left;

	if (!w)
		return 0;
	if (w->target > 0 && !w->target_reaped) {
		kill(w->target, SIGKILL);
		waitpid(w->target, NULL, 0);
	}
	for (int i = 0; i < w->nhelpers; i++) {
		kill(w->helpers[i], SIGKILL);
		waitpid(w->helpers[i], NULL, 0);
	}
	/* nothing of ours may be left: no leaker, no burner, no supervisor */
	left = waitpid(-1, &status, WNOHANG);
	if (left != -1 || errno != ECHILD) {
		fprintf(stderr, "test_res: a child is left behind (waitpid: %d)\n", (int)left);
		rc = -1;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	/* the grandchildren died with their parents (PR_SET_PDEATHSIG): give the kernel a moment */
	for (int i = 0; i < w->nwatched; i++) {
		for (int k = 0; k < 100 && !gone(w->watched[i]); k++)
			sleep_ms(10);
		if (!gone(w->watched[i])) {
			fprintf(stderr, "test_res: pid %d is left behind\n", (int)w->watched[i]);
			rc = -1;
		}
	}
	if (rm_cg(w->memcg) || rm_cg(w->cpucg) || rm_cg(w->v2cg)) {
		fprintf(stderr, "test_res: a cgroup of the test is left behind\n");
		rc = -1;
	}
	if (w->j)
		fl_journal_close(w->j, false);
	if (fl_tl_rm_rf(w->jdir))
		rc = -1;
	free(w);
	return rc;
}

static void need_root(void)
{
	if (geteuid() != 0) {
		print_message("skipped: needs root (cgroups, other processes' /proc)\n");
		skip();
	}
}

static struct fl_scenario *fault(const char *yaml)
{
	struct fl_scenario *sc = fl_tl_scenario("res", yaml, NULL, 0);

	assert_non_null(sc);
	return sc;
}

/* The pids journaled for the fault named `fault`, in order. */
static int journaled(const struct world *w, const char *fault, pid_t *out, uint64_t *starts, int max)
{
	struct fl_journal_info info;
	struct fl_err e;
	int n = 0;

	assert_int_equal(fl_journal_read(fl_journal_path(w->j), &info, &e), 0);
	for (int i = 0; i < info.nrecs && n < max; i++) {
		int64_t pid;
		uint64_t start = 0;

		if (strcmp(info.recs[i].fault, fault) || fl_rec_get_i64(&info.recs[i], "pid", &pid))
			continue;
		fl_rec_get_u64(&info.recs[i], "start", &start);
		if (starts)
			starts[n] = start;
		out[n++] = (pid_t)pid;
	}
	fl_journal_info_free(&info);
	return n;
}

static const char *obs_text(const struct fl_observation *o, const char *key)
{
	int i = fl_tl_obs_index(o, key);

	return i >= 0 ? o->kv[i].text : "";
}

static void observe(struct fl_fault *f, struct fl_observation *o)
{
	o->n = 0;
	assert_int_equal(f->inj->observe(f, o), 0);
}

/* The scenario's one fault aimed at t, checked and applied (either failing fails the test); *t0 is
 * stamped just before the apply. */
static struct fl_fault *start(struct world *w, struct fl_scenario *sc, struct fl_target_info *t, double *t0)
{
	struct fl_fault *f = &sc->faults[0];
	struct fl_err e = {0};

	f->target = t;
	if (f->inj->check(f, &e))
		fail_msg("check: %s", e.msg);
	*t0 = fl_tl_now_s();
	if (f->inj->apply(f, w->j, &e))
		fail_msg("apply: %s", e.msg);
	return f;
}

/* Observe f every step_ms until secs after t0, then once more: o holds the last. */
static void observe_until(struct fl_fault *f, struct fl_observation *o, double t0, double secs, int step_ms)
{
	while (fl_tl_now_s() - t0 < secs) {
		observe(f, o);
		sleep_ms(step_ms);
	}
	observe(f, o);
}

/* ---- memory.leak ------------------------------------------------------------------------------ */

static void test_leak_holds_then_frees(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct fl_err e;
	uint64_t usage0, usage_full, usage_after, rss;
	double t0, held, rate;
	pid_t leaker;

	need_root();
	if (!w->memcg[0])
		skip();
	set_mem_limit(w, 0);
	sc = fault("  - {name: leak, type: memory.leak, duration: 10s, rate: 50MiB/s, limit: 200MiB}\n");
	usage0 = mem_usage(w);
	f = start(w, sc, &w->info, &t0);
	assert_int_equal(journaled(w, "leak", &leaker, NULL, 1), 1);
	/* the journaled child is the one in the target's cgroup */
	{
		char p[PATH_MAX + 32], line[64];
		bool found = false;
		FILE *pf;

		snprintf(p, sizeof(p), "%s/cgroup.procs", w->memcg);
		pf = fopen(p, "re");
		while (pf && fgets(line, sizeof(line), pf))
			found |= atoi(line) == leaker;
		if (pf)
			fclose(pf);
		assert_true(found);
	}
	observe_until(f, &o, t0, 4.2, 100);
	/* seen from outside: the child's /proc and the cgroup's counter, not the child's own count */
	rss = fl_tl_rss_anon(leaker);
	usage_full = mem_usage(w);
	held = fl_tl_obs_num(&o, "bytes_held", -1);
	rate = fl_tl_obs_num(&o, "rate_observed", -1);
	print_message("leak 200MiB at 50MiB/s after %.2fs: held %.1fMiB (observe), RssAnon %.1fMiB, cgroup usage "
		      "%.1f -> %.1fMiB, rate_observed %.2fMiB/s\n",
		      fl_tl_now_s() - t0, held / MIB, (double)rss / MIB, (double)usage0 / MIB,
		      (double)usage_full / MIB, rate / MIB);
	assert_true(rss >= 195u << 20);
	assert_true(usage_full - usage0 >= 195u << 20);
	assert_true(held >= 195 * MIB && held <= 201 * MIB);
	assert_true(rate >= 45 * MIB && rate <= 55 * MIB);
	assert_true(fl_tl_obs_num(&o, "oom_kills", -1) == 0);
	assert_string_equal(obs_text(&o, "leaker"), "alive");
	assert_string_equal(obs_text(&o, "oom_victims"), "none");

	assert_int_equal(f->inj->revert(f, &e), 0);
	usage_after = mem_usage(w);
	/* reaped by revert: freed at once */
	assert_true(kill(leaker, 0) < 0 && errno == ESRCH);
	print_message("after revert: cgroup usage %.1fMiB (before the leak %.1fMiB)\n", (double)usage_after / MIB,
		      (double)usage0 / MIB);
	assert_true(usage_after <= usage0 + (8u << 20));
	observe(f, &o);
	assert_true(fl_tl_obs_num(&o, "bytes_held", -1) == 0);
	assert_non_null(strstr(obs_text(&o, "freed"), "released at revert"));
	assert_non_null(strstr(obs_text(&o, "leaker"), "stopped at revert"));
	assert_int_equal(f->inj->revert(f, &e), 0); /* idempotent */
	f->inj->release(f);
	fl_scenario_free(sc);
}

static void test_leak_oom_reported_honestly(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct fl_err e;
	uint64_t ooms0, ooms;
	double t0;
	pid_t leaker;
	int status = 0;
	bool leaker_dead = false, target_dead = false;

	need_root();
	if (!w->memcg[0])
		skip();
	set_mem_limit(w, 150u << 20);
	ooms0 = oom_kills(w);
	sc = fault("  - {name: leak, type: memory.leak, duration: 10s, rate: 100MiB/s, limit: 300MiB}\n");
	f = start(w, sc, &w->info, &t0);
	assert_int_equal(journaled(w, "leak", &leaker, NULL, 1), 1);
	/* until the kernel has acted and the report names someone (or 8 s) */
	while (fl_tl_now_s() - t0 < 8) {
		observe(f, &o);
		if (fl_tl_obs_num(&o, "oom_kills", 0) >= 1 && strcmp(obs_text(&o, "oom_victims"), "none") &&
		    (gone(leaker) || gone(w->target)))
			break;
		sleep_ms(100);
	}
	sleep_ms(200);
	observe(f, &o);
	ooms = oom_kills(w) - ooms0;
	leaker_dead = gone(leaker);
	if (waitpid(w->target, &status, WNOHANG) == w->target) {
		w->target_reaped = true;
		target_dead = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
	}
	print_message("OOM at 150MiB after %.2fs: cgroup counted %llu kill(s); observe: oom_kills %.0f, "
		      "victims '%s', leaker '%s', target '%s'; truth: leaker %s, target %s\n",
		      fl_tl_now_s() - t0, (unsigned long long)ooms, fl_tl_obs_num(&o, "oom_kills", -1),
		      obs_text(&o, "oom_victims"), obs_text(&o, "leaker"), obs_text(&o, "target"),
		      leaker_dead ? "dead" : "alive", target_dead ? "SIGKILLed" : "alive");
	assert_true(ooms >= 1);
	assert_true(fl_tl_obs_num(&o, "oom_kills", -1) == (double)ooms);
	assert_true(leaker_dead || target_dead);
	/* whoever the kernel chose is named, and nobody else */
	assert_true(leaker_dead == (strstr(obs_text(&o, "oom_victims"), "leaker") != NULL));
	assert_true(target_dead == (strstr(obs_text(&o, "oom_victims"), "target") != NULL));
	if (leaker_dead)
		assert_non_null(strstr(obs_text(&o, "leaker"), "OOM-killed"));
	if (target_dead)
		assert_non_null(strstr(obs_text(&o, "target"), "OOM-killed"));
	assert_int_equal(f->inj->revert(f, &e), 0);
	assert_true(gone(leaker));
	assert_true(mem_usage(w) <= (uint64_t)TARGET_HOLDS + (8u << 20));
	f->inj->release(f);
	fl_scenario_free(sc);
}

static int adj_of(pid_t pid)
{
	char p[64];
	int v = -9999;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/oom_score_adj", (int)pid);
	if ((f = fopen(p, "re"))) {
		if (fscanf(f, "%d", &v) != 1)
			v = -9999;
		fclose(f);
	}
	return v;
}

static void set_adj(pid_t pid, int v)
{
	char p[64], s[16];

	snprintf(p, sizeof(p), "/proc/%d/oom_score_adj", (int)pid);
	snprintf(s, sizeof(s), "%d", v);
	assert_int_equal(write_file(p, s), 0);
}

/* A "restarted service": a fresh child of ours that joins the memory cgroup and waits there. */
static pid_t newcomer(struct world *w, int adj)
{
	pid_t parent = getpid(), pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char p[PATH_MAX + 32], v[16];

		child_dies_with_parent(parent);
		snprintf(p, sizeof(p), "%s/cgroup.procs", w->memcg);
		snprintf(v, sizeof(v), "%d", (int)getpid());
		if (write_file(p, v))
			_exit(3);
		for (;;)
			pause();
	}
	add_helper(w, pid);
	sleep_ms(50);
	set_adj(pid, adj); /* as inherited from a raised parent */
	return pid;
}

/*
 * owner: target, when the kernel took the leaker as well, right after the target and before the
 * leaker saw the first kill and dropped its pages (seen in CI runs). Not what owner: target aims
 * at, but the kernel's choice: the report must then be true, and it is checked here; the rest of
 * the case needs a live leaker and is skipped. The library's memory-leak-oom test fails hardened
 * whenever the leaker is killed, so a leaker that always dies cannot hide behind this skip.
 */
static void leaker_killed_too(struct fl_fault *f, struct fl_scenario *sc, struct fl_observation *o, pid_t leaker)
{
	struct fl_err e = {0};

	/* the report may lag the kill by an observe or two */
	for (int i = 0; i < 50 && !strstr(obs_text(o, "oom_victims"), "leaker"); i++) {
		sleep_ms(20);
		observe(f, o);
	}
	print_message("the kernel OOM-killed the leaker too: victims '%s', oom_kills %.0f\n", obs_text(o, "oom_victims"),
		      fl_tl_obs_num(o, "oom_kills", -1));
	assert_true(gone(leaker));
	assert_non_null(strstr(obs_text(o, "oom_victims"), "target"));
	assert_non_null(strstr(obs_text(o, "oom_victims"), "leaker"));
	assert_true(fl_tl_obs_num(o, "oom_kills", 0) >= 2);
	assert_int_equal(f->inj->revert(f, &e), 0);
	f->inj->release(f);
	fl_scenario_free(sc);
	print_message("skipped the rest: it needs a live leaker\n");
	skip();
}

static void test_leak_owner_target(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct fl_journal_info info;
	struct fl_err e;
	char data[FL_REC_DATA] = "";
	double t0, t_kill = 0;
	pid_t leaker, again;
	int status = 0, adj0 = adj_of(w->target);

	need_root();
	if (!w->memcg[0])
		skip();
	set_mem_limit(w, 150u << 20);
	sc = fault("  - {name: leak, type: memory.leak, duration: 10s, rate: 100MiB/s, limit: 300MiB, owner: target}\n");
	f = start(w, sc, &w->info, &t0);
	assert_int_equal(journaled(w, "leak", &leaker, NULL, 1), 1);
	/* journaled with what it raised, then raised */
	assert_int_equal(fl_journal_read(fl_journal_path(w->j), &info, &e), 0);
	snprintf(data, sizeof(data), "%s", info.recs[info.nrecs - 1].data);
	fl_journal_info_free(&info);
	{
		char want[64];

		snprintf(want, sizeof(want), "adj=%d:", (int)w->target);
		assert_non_null(strstr(data, "owner=target"));
		assert_non_null(strstr(data, want));
	}
	assert_int_equal(adj_of(w->target), 1000);
	assert_int_equal(adj_of(leaker), adj0);
	/* the kernel kills the target (the leaker is the larger, but the target's score is 1000) */
	while (fl_tl_now_s() - t0 < 8 && !gone(w->target))
		sleep_ms(20);
	t_kill = fl_tl_now_s() - t0;
	if (waitpid(w->target, &status, WNOHANG) == w->target)
		w->target_reaped = true;
	if (!w->target_reaped || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
		observe(f, &o);
		fail_msg("the target was not OOM-killed within %.1fs (target RssAnon %.1fMiB, leaker %s, "
			 "victims '%s', oom_kills %.0f)", t_kill, (double)fl_tl_rss_anon(w->target) / MIB,
			 gone(leaker) ? "dead" : "alive", obs_text(&o, "oom_victims"),
			 fl_tl_obs_num(&o, "oom_kills", -1));
	}
	if (gone(leaker)) {
		observe(f, &o);
		leaker_killed_too(f, sc, &o, leaker);
	}
	/* the leak went with it: within 0.5 s the leaker holds (almost) nothing, and has said so (it
	 * reports the drop right after freeing: an observe in between would not see it yet) */
	observe(f, &o);
	for (int i = 0; i < 50 && (fl_tl_rss_anon(leaker) > (8u << 20) || fl_tl_obs_num(&o, "leak_dropped", 0) < 1); i++) {
		sleep_ms(10);
		observe(f, &o);
	}
	assert_true(fl_tl_rss_anon(leaker) <= 8u << 20);
	print_message("owner: target, 150MiB: target OOM-killed after %.2fs; victims '%s'; dropped %.0f; %s; "
		      "leaker RssAnon %.1fMiB after\n", t_kill, obs_text(&o, "oom_victims"),
		      fl_tl_obs_num(&o, "leak_dropped", -1), obs_text(&o, "not_restarted"),
		      (double)fl_tl_rss_anon(leaker) / MIB);
	if (strstr(obs_text(&o, "oom_victims"), "leaker"))
		leaker_killed_too(f, sc, &o, leaker);
	assert_true(fl_tl_obs_num(&o, "oom_kills", 0) >= 1);
	assert_non_null(strstr(obs_text(&o, "oom_victims"), "target"));
	assert_null(strstr(obs_text(&o, "oom_victims"), "leaker"));
	assert_true(fl_tl_obs_num(&o, "leak_dropped", 0) >= 1);
	assert_true(obs_text(&o, "not_restarted")[0]);
	/* nobody new yet: it stays dropped */
	sleep_ms(300);
	assert_true(fl_tl_rss_anon(leaker) <= 8u << 20);
	/* a process born in the cgroup (the service restarted) leaks again */
	again = newcomer(w, 1000);
	for (int i = 0; i < 100 && fl_tl_rss_anon(leaker) < (20u << 20); i++)
		sleep_ms(10);
	assert_true(fl_tl_rss_anon(leaker) >= 20u << 20);
	observe(f, &o);
	print_message("a newcomer (pid %d): %s\n", (int)again, obs_text(&o, "restarted_after_s"));
	assert_true(fl_tl_obs_num(&o, "restarted_after_s", -1) > 0);
	/* revert: the leaker gone, the newcomer's inherited 1000 back to the target's old value */
	assert_int_equal(f->inj->revert(f, &e), 0);
	assert_true(gone(leaker));
	assert_int_equal(adj_of(again), adj0);
	/* and from the record alone: a journaled process still at 1000 gets its old value back */
	set_adj(again, 1000);
	{
		struct fl_journal_rec rec = {.seq = 1};
		uint64_t start = 0;

		assert_int_equal(fl_proc_starttime(again, &start), 0);
		assert_true(snprintf(rec.data, sizeof(rec.data), "pid=%d start=1 in=target limit=1 owner=target "
				     "base=%d procs=%s/cgroup.procs adj=%d:%llu:%d", (int)leaker, adj0, w->memcg,
				     (int)again, (unsigned long long)start, adj0) < (int)sizeof(rec.data));
		assert_int_equal(fl_injector_find("memory.leak")->revert_record(&rec, &e), 0);
		assert_int_equal(adj_of(again), adj0);
		/* a recycled pid (another start time) is left alone */
		set_adj(again, 1000);
		snprintf(rec.data, sizeof(rec.data), "pid=%d start=1 owner=target base=%d procs= adj=%d:%llu:%d",
			 (int)leaker, adj0, (int)again, (unsigned long long)start + 1, adj0);
		assert_int_equal(fl_injector_find("memory.leak")->revert_record(&rec, &e), 0);
		assert_int_equal(adj_of(again), 1000);
	}
	f->inj->release(f);
	fl_scenario_free(sc);
}

static void test_leak_checks(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_target_info none = {.pid = 0}, nomemcg = {.pid = 0}, host = {.pid = 0, .allow_host_wide = true};
	struct fl_err e;

	need_root();
	sc = fault("  - {name: a, type: memory.leak, duration: 1s, limit: 64MiB, in: host}\n"
		   "  - {name: b, type: memory.leak, duration: 1s, limit: 1TiB, in: host}\n"
		   "  - {name: c, type: memory.leak, duration: 1s, limit: 64MiB}\n");
	sc->faults[0].target = &w->info;
	assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), -EPERM);
	assert_non_null(strstr(e.msg, "refused without allow_host_wide"));
	sc->faults[0].target = &host;
	assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), 0);
	sc->faults[1].target = &host;
	assert_int_equal(sc->faults[1].inj->check(&sc->faults[1], &e), -ENOMEM);
	assert_non_null(strstr(e.msg, "MemAvailable"));
	sc->faults[2].target = &none;
	assert_int_equal(sc->faults[2].inj->check(&sc->faults[2], &e), -ESRCH);
	nomemcg.pid = w->target;
	sc->faults[2].target = &nomemcg;
	assert_int_equal(sc->faults[2].inj->check(&sc->faults[2], &e), -EOPNOTSUPP);
	/* a cgroup v2 dir without the memory controller (this host's v2 has only hugetlb) says so */
	{
		char m[PATH_MAX], ctl[PATH_MAX + 32];

		if (w->v2cg[0] && fl_cgroup_mount(NULL, m, sizeof(m)) == 0 &&
		    snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers", w->v2cg) > 0 && !has_word(ctl, "memory")) {
			snprintf(nomemcg.memcg, sizeof(nomemcg.memcg), "%s", w->v2cg);
			assert_int_equal(sc->faults[2].inj->check(&sc->faults[2], &e), -EOPNOTSUPP);
			assert_non_null(strstr(e.msg, "has no memory controller"));
		}
	}
	/* the v1 memory root (or the v2 root) is every process on the host */
	if (fl_cgroup_mount("memory", nomemcg.memcg, sizeof(nomemcg.memcg)) == 0) {
		assert_int_equal(sc->faults[2].inj->check(&sc->faults[2], &e), -EPERM);
		assert_non_null(strstr(e.msg, "root"));
	}
	/* a cgroup without a limit cannot stop a leak larger than the host */
	if (w->memcg[0]) {
		struct fl_scenario *big = fault("  - {name: d, type: memory.leak, duration: 1s, limit: 1TiB}\n");

		set_mem_limit(w, 0);
		big->faults[0].target = &w->info;
		assert_int_equal(big->faults[0].inj->check(&big->faults[0], &e), -ENOMEM);
		assert_non_null(strstr(e.msg, "no limit"));
		set_mem_limit(w, 100u << 20); /* with one, the OOM lands in the cgroup: allowed */
		assert_int_equal(big->faults[0].inj->check(&big->faults[0], &e), 0);
		fl_scenario_free(big);
	}
	fl_scenario_free(sc);
}

/* ---- cpu.burn --------------------------------------------------------------------------------- */

/* Run a burn for `secs`, return the cores it used as /proc counted them; obs gets the last observe. */
static double burn_for(struct world *w, const char *yaml, const char *name, double secs, int want,
		       struct fl_observation *o, pid_t *pids)
{
	struct fl_scenario *sc = fault(yaml);
	struct fl_fault *f = &sc->faults[0];
	double c0[8] = {0}, c1 = 0, t0;
	struct fl_err e;
	int n;

	f->target = &w->info;
	if (f->inj->check(f, &e))
		fail_msg("check: %s", e.msg);
	if (f->inj->apply(f, w->j, &e))
		fail_msg("apply: %s", e.msg);
	t0 = fl_tl_now_s();
	n = journaled(w, name, pids, NULL, 8);
	assert_int_equal(n, want);
	for (int i = 0; i < n; i++)
		c0[i] = fl_tl_cpu_s(pids[i]);
	while (fl_tl_now_s() - t0 < secs) {
		observe(f, o);
		sleep_ms(250);
	}
	for (int i = 0; i < n; i++)
		c1 += fl_tl_cpu_s(pids[i]) - c0[i];
	c1 /= fl_tl_now_s() - t0;
	observe(f, o);
	assert_int_equal(f->inj->revert(f, &e), 0);
	for (int i = 0; i < n; i++)
		assert_true(kill(pids[i], 0) < 0 && errno == ESRCH); /* killed and reaped */
	observe(f, o);
	assert_non_null(strstr(obs_text(o, "burners"), "stopped at revert"));
	free(f->state);
	f->state = NULL;
	fl_scenario_free(sc);
	return c1;
}

static void test_burn_accuracy(void **state)
{
	struct world *w = *state;
	struct fl_observation o = {0};
	pid_t pids[8];
	double used;

	need_root();
	if (!w->cpucg[0])
		skip();
	used = burn_for(w, "  - {name: burn, type: cpu.burn, duration: 10s, cores: 1, load: 50%}\n", "burn", 3.0, 1, &o,
			pids);
	print_message("cpu.burn 1 x 50%%: /proc %.3f cores; observe cores_used %.3f, load_observed %.1f%%, per_core %s\n",
		      used, fl_tl_obs_num(&o, "cores_used", -1), fl_tl_obs_num(&o, "load_observed", -1) * 100,
		      obs_text(&o, "per_core"));
	assert_true(used >= 0.40 && used <= 0.60);
	assert_true(fl_tl_obs_num(&o, "load_observed", -1) >= 0.40 && fl_tl_obs_num(&o, "load_observed", -1) <= 0.60);
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	used = burn_for(w, "  - {name: burn2, type: cpu.burn, duration: 10s, cores: 2}\n", "burn2", 2.0, 2, &o, pids);
	print_message("cpu.burn 2 x 100%%: /proc %.3f cores; observe cores_used %.3f, per_core %s\n", used,
		      fl_tl_obs_num(&o, "cores_used", -1), obs_text(&o, "per_core"));
	/* a shared 2-vCPU host: other sessions' work competes with the burners */
	assert_true(used >= 1.5);
	assert_true(fl_tl_obs_num(&o, "cores_used", -1) >= 1.5);
}

static void test_burn_inside_quota(void **state)
{
	struct world *w = *state;
	struct fl_observation o = {0};
	char p[PATH_MAX + 32];
	pid_t pids[8];
	double used;

	need_root();
	if (!w->cpucg[0] || sysconf(_SC_NPROCESSORS_ONLN) < 2)
		skip();
	/* the target's cgroup may use half a CPU: two burners inside it get half a CPU together */
	if (w->cpuv == 1) {
		snprintf(p, sizeof(p), "%s/cpu.cfs_quota_us", w->cpucg);
		assert_int_equal(write_file(p, "50000"), 0);
	} else {
		snprintf(p, sizeof(p), "%s/cpu.max", w->cpucg);
		assert_int_equal(write_file(p, "50000 100000"), 0);
	}
	used = burn_for(w, "  - {name: burn, type: cpu.burn, duration: 10s, cores: 2}\n", "burn", 2.0, 2, &o, pids);
	print_message("cpu.burn 2 x 100%% in a 0.5-CPU quota: /proc %.3f cores; observe cores_used %.3f, quota %s, "
		      "throttled %s\n", used, fl_tl_obs_num(&o, "cores_used", -1), obs_text(&o, "quota"),
		      obs_text(&o, "throttled_s"));
	assert_true(used >= 0.4 && used <= 0.6);
	assert_true(fl_tl_obs_num(&o, "throttled_s", 0) > 0);
	assert_non_null(strstr(obs_text(&o, "quota"), "0.50 CPU"));
}

static void test_burn_checks(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc = NULL;
	struct fl_target_info init = {.pid = 1};
	struct fl_err e;

	need_root();
	sc = fault("  - {name: a, type: cpu.burn, duration: 1s, cores: 256}\n"
		   "  - {name: b, type: cpu.burn, duration: 1s, in: host}\n"
		   "  - {name: c, type: cpu.burn, duration: 1s}\n");
	sc->faults[0].target = &w->info;
	assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), -EINVAL);
	assert_non_null(strstr(e.msg, "CPU(s) faultline may run on"));
	sc->faults[1].target = &w->info;
	assert_int_equal(sc->faults[1].inj->check(&sc->faults[1], &e), -EPERM);
	/* pid 1 lives in the root cpu cgroup: host-wide */
	sc->faults[2].target = &init;
	assert_int_equal(sc->faults[2].inj->check(&sc->faults[2], &e), -EPERM);
	assert_non_null(strstr(e.msg, "root cpu cgroup"));
	fl_scenario_free(sc);
}

/* ---- process.kill ----------------------------------------------------------------------------- */

static void test_kill_main_once(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct fl_err e;
	int status = 0;
	pid_t rec;

	need_root();
	sc = fault("  - {name: kill, type: process.kill, duration: 2s}\n");
	f = &sc->faults[0];
	f->target = &w->info;
	assert_int_equal(f->inj->check(f, &e), 0);
	if (f->inj->apply(f, w->j, &e))
		fail_msg("apply: %s", e.msg);
	assert_int_equal(waitpid(w->target, &status, 0), w->target);
	w->target_reaped = true;
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* journaled, with the signal */
	assert_int_equal(journaled(w, "kill", &rec, NULL, 1), 1);
	assert_int_equal(rec, w->target);
	sleep_ms(300);
	observe(f, &o);
	print_message("kill main: kills '%s', last_victim '%s', not_restarted '%s'\n", obs_text(&o, "kills"),
		      obs_text(&o, "last_victim"), obs_text(&o, "not_restarted"));
	assert_true(fl_tl_obs_num(&o, "kills", -1) == 1);
	assert_non_null(strstr(obs_text(&o, "last_victim"), "died"));
	assert_true(fl_tl_obs_index(&o, "not_restarted") >= 0);
	assert_true(fl_tl_obs_index(&o, "restarted_after_s") < 0);
	assert_int_equal(f->inj->revert(f, &e), 0);
	free(f->state);
	f->state = NULL;
	fl_scenario_free(sc);
}

#define WORKER "fl-res-worker"
#define RESTART_MS 200

/*
 * A supervisor (our child): it starts a worker named WORKER, writes the worker's pid to `report`
 * each time, and starts a new one RESTART_MS after the last one died. in_cg: its cgroup v2.
 */
static pid_t supervisor(struct world *w, int report)
{
	pid_t parent = getpid(), s = fork();

	assert_true(s >= 0);
	if (s > 0) {
		add_helper(w, s);
		return s;
	}
	child_dies_with_parent(parent);
	if (w->v2cg[0] && fl_tl_cgroup_join(w->v2cg))
		_exit(3);
	for (;;) {
		pid_t me = getpid(), wk = fork();

		if (wk == 0) {
			child_dies_with_parent(me);
			prctl(PR_SET_NAME, WORKER);
			for (;;)
				pause();
		}
		if (wk < 0 || write(report, &wk, sizeof(wk)) != (ssize_t)sizeof(wk))
			_exit(4);
		while (waitpid(wk, NULL, 0) < 0 && errno == EINTR)
			;
		sleep_ms(RESTART_MS);
	}
}

/* A process named WORKER that is our grandchild but not the target's: in_v2 puts it in the target's cgroup. */
static pid_t stranger(struct world *w, bool in_v2)
{
	pid_t parent = getpid(), p, g = 0;
	int pp[2];

	assert_int_equal(pipe(pp), 0);
	p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		pid_t me = getpid(), c;

		child_dies_with_parent(parent);
		c = fork();
		if (c == 0) {
			child_dies_with_parent(me);
			if (in_v2 && fl_tl_cgroup_join(w->v2cg))
				_exit(3);
			prctl(PR_SET_NAME, WORKER);
			for (;;)
				pause();
		}
		if (write(pp[1], &c, sizeof(c)) != (ssize_t)sizeof(c))
			_exit(4);
		for (;;)
			pause();
	}
	add_helper(w, p);
	close(pp[1]);
	assert_int_equal(read(pp[0], &g, sizeof(g)), (ssize_t)sizeof(g));
	close(pp[0]);
	add_watched(w, g);
	/* its comm and cgroup are set by the grandchild itself: wait until they are */
	for (int i = 0; i < 200; i++) {
		char comm[16];

		if (fl_proc_comm(g, comm, sizeof(comm)) == 0 && !strcmp(comm, WORKER))
			break;
		sleep_ms(5);
	}
	sleep_ms(20);
	return g;
}

static void test_kill_every_restarted_child(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct fl_err e;
	struct fl_target_info sup = {0};
	pid_t killed[16], outsider, in_cgroup, first = 0;
	int rp[2], n;
	double t0, restart, kills_at_revert;

	need_root();
	assert_int_equal(pipe(rp), 0);
	sup.pid = supervisor(w, rp[1]);
	close(rp[1]);
	assert_int_equal(read(rp[0], &first, sizeof(first)), (ssize_t)sizeof(first));
	add_watched(w, first);
	/* two strangers with the worker's name: one elsewhere (must survive), one in the target's cgroup */
	outsider = stranger(w, false);
	in_cgroup = w->v2cg[0] ? stranger(w, true) : 0;
	sup.pgid = sup.pid;
	snprintf(sup.cgroup_v2, sizeof(sup.cgroup_v2), "%s", w->v2cg);
	sc = fault("  - {name: kill, type: process.kill, duration: 5s, target: child, comm: " WORKER ", every: 1s}\n");
	f = start(w, sc, &sup, &t0);
	observe_until(f, &o, t0, 3.3, 50);
	n = journaled(w, "kill", killed, NULL, 16);
	for (int i = 0; i < n; i++)
		add_watched(w, killed[i]);
	restart = fl_tl_obs_num(&o, "restarted_after_s", -1);
	print_message("kill child every 1s for 3.3s: kills '%s' log '%s'; restarts '%s', last restarted_after_s '%s', "
		      "mean %s (supervisor restarts after %d ms)\n",
		      obs_text(&o, "kills"), obs_text(&o, "kill_log"), obs_text(&o, "restarts"),
		      obs_text(&o, "restarted_after_s"), obs_text(&o, "restart_mean_s"), RESTART_MS);
	/* every round hit the current worker: a new pid each time (plus the stranger in the cgroup once) */
	assert_true(n >= 4 + (in_cgroup ? 1 : 0));
	for (int i = 0; i < n; i++)
		for (int k = 0; k < i; k++)
			assert_true(killed[i] != killed[k]);
	assert_int_equal(killed[0] == first || killed[1] == first, 1);
	assert_true(fl_tl_obs_num(&o, "restarts", 0) >= 3);
	assert_true(restart >= RESTART_MS / 1000.0 - 0.02 && restart <= RESTART_MS / 1000.0 + 0.3);
	/* only inside the tree or the cgroup */
	assert_false(gone(outsider));
	for (int i = 0; i < n; i++)
		assert_true(killed[i] != outsider);
	if (in_cgroup) {
		bool hit = false;

		for (int i = 0; i < n; i++)
			hit |= killed[i] == in_cgroup;
		assert_true(hit);
		assert_true(gone(in_cgroup));
	}
	assert_int_equal(f->inj->revert(f, &e), 0);
	kills_at_revert = fl_tl_obs_num(&o, "kills", -1);
	sleep_ms(1200);
	observe(f, &o);
	assert_true(fl_tl_obs_num(&o, "kills", -1) == kills_at_revert); /* no round after revert */
	close(rp[0]);
	free(f->state);
	f->state = NULL;
	fl_scenario_free(sc);
}

static void test_kill_main_restarted_by_supervisor(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct fl_err e;
	struct fl_target_info main_of = {0};
	pid_t killed[16], wk = 0;
	int rp[2], n;
	double t0;

	need_root();
	assert_int_equal(pipe(rp), 0);
	supervisor(w, rp[1]);
	close(rp[1]);
	assert_int_equal(read(rp[0], &wk, sizeof(wk)), (ssize_t)sizeof(wk));
	add_watched(w, wk);
	for (int i = 0; i < 200; i++) {
		char comm[16];

		if (fl_proc_comm(wk, comm, sizeof(comm)) == 0 && !strcmp(comm, WORKER))
			break;
		sleep_ms(5);
	}
	/* a target found by pid: the worker is the service, its supervisor restarts it */
	main_of.pid = wk;
	sc = fault("  - {name: kill, type: process.kill, duration: 5s, signal: SIGTERM, every: 1s}\n");
	f = start(w, sc, &main_of, &t0);
	observe_until(f, &o, t0, 2.3, 50);
	n = journaled(w, "kill", killed, NULL, 16);
	for (int i = 0; i < n; i++)
		add_watched(w, killed[i]);
	print_message("kill main (SIGTERM) every 1s, supervised: kills '%s' log '%s'; restarts '%s', restarted_after_s '%s'\n",
		      obs_text(&o, "kills"), obs_text(&o, "kill_log"), obs_text(&o, "restarts"),
		      obs_text(&o, "restarted_after_s"));
	assert_int_equal(n, 3);
	assert_int_equal(killed[0], wk);
	assert_true(killed[1] != killed[0] && killed[2] != killed[1]);
	assert_true(fl_tl_obs_num(&o, "restarts", 0) >= 2);
	assert_true(fl_tl_obs_num(&o, "restarted_after_s", -1) >= 0.18 && fl_tl_obs_num(&o, "restarted_after_s", -1) <= 0.5);
	assert_int_equal(f->inj->revert(f, &e), 0);
	close(rp[0]);
	free(f->state);
	f->state = NULL;
	fl_scenario_free(sc);
}

static void test_kill_refuses(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_target_info init = {.pid = 1}, self = {.pid = getpid()}, parent = {.pid = getppid()};
	char diag[512];
	struct fl_err e;

	need_root();
	sc = fault("  - {name: kill, type: process.kill, duration: 1s}\n");
	sc->faults[0].target = &init;
	assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), -EPERM);
	sc->faults[0].target = &self;
	assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), -EPERM);
	sc->faults[0].target = &parent;
	assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), -EPERM);
	sc->faults[0].target = &w->info;
	assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), 0);
	fl_scenario_free(sc);
	/* mistakes caught when the scenario is loaded */
	assert_null(fl_tl_scenario("res", "  - {name: k, type: process.kill, duration: 1s, target: child}\n", diag, sizeof(diag)));
	assert_non_null(strstr(diag, "needs `comm`"));
	assert_null(fl_tl_scenario("res", "  - {name: k, type: process.kill, duration: 1s, comm: x}\n", diag, sizeof(diag)));
	assert_null(fl_tl_scenario("res", "  - {name: k, type: process.kill, duration: 1s, target: child, "
				   "comm: a-name-far-too-long}\n", diag, sizeof(diag)));
	assert_non_null(strstr(diag, "can never match"));
	assert_null(fl_tl_scenario("res", "  - {name: k, type: process.kill, duration: 1s, signal: SIGSTOP}\n", diag,
				   sizeof(diag)));
	assert_non_null(strstr(diag, "process.pause"));
	assert_null(fl_tl_scenario("res", "  - {name: k, type: process.kill, duration: 1s, every: 500ms}\n", diag,
				   sizeof(diag)));
}

/* ---- from the journal alone --------------------------------------------------------------------- */

static void test_revert_record_in_fresh_process(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_err e;
	pid_t leak[1], burn[2], fresh;
	uint64_t lstart[1];
	int status = 0;

	need_root();
	if (!w->memcg[0] || !w->cpucg[0])
		skip();
	set_mem_limit(w, 0);
	sc = fault("  - {name: leak, type: memory.leak, duration: 10s, rate: 256MiB/s, limit: 64MiB}\n"
		   "  - {name: burn, type: cpu.burn, duration: 10s, cores: 2, load: 30%}\n");
	for (int i = 0; i < 2; i++) {
		sc->faults[i].target = &w->info;
		if (sc->faults[i].inj->apply(&sc->faults[i], w->j, &e))
			fail_msg("apply %s: %s", sc->faults[i].name, e.msg);
	}
	sleep_ms(500);
	assert_int_equal(journaled(w, "leak", leak, lstart, 1), 1);
	assert_int_equal(journaled(w, "burn", burn, NULL, 2), 2);
	assert_true(fl_tl_rss_anon(leak[0]) >= 60u << 20);
	/* a recycled pid is someone else: a record whose start time differs leaves it alone */
	{
		struct fl_journal_rec rec = {.seq = 1};

		snprintf(rec.data, sizeof(rec.data), "pid=%d start=%llu", (int)leak[0], (unsigned long long)lstart[0] + 1);
		assert_int_equal(fl_injector_find("memory.leak")->revert_record(&rec, &e), 0);
		assert_false(gone(leak[0]));
	}
	/* the controller "crashed": its state is gone, only the journal is left */
	sc->faults[0].inj->release(&sc->faults[0]);
	free(sc->faults[1].state);
	sc->faults[1].state = NULL;
	fresh = fork();
	assert_true(fresh >= 0);
	if (fresh == 0) {
		struct fl_journal_info info;
		int bad = 0;

		if (fl_journal_read(fl_journal_path(w->j), &info, &e))
			_exit(10);
		for (int i = 0; i < info.nrecs; i++) {
			const struct fl_injector *inj = fl_injector_find(info.recs[i].injector);

			if (!inj || inj->revert_record(&info.recs[i], &e))
				bad++;
		}
		fl_journal_info_free(&info);
		_exit(bad);
	}
	assert_int_equal(waitpid(fresh, &status, 0), fresh);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* they died by the fresh process's SIGKILL; we, their parent, reap them */
	assert_int_equal(waitpid(leak[0], &status, 0), leak[0]);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(waitpid(burn[i], &status, 0), burn[i]);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	assert_true(mem_usage(w) <= (uint64_t)TARGET_HOLDS + (8u << 20));
	fl_scenario_free(sc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_leak_holds_then_frees, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leak_oom_reported_honestly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leak_owner_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leak_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_burn_accuracy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_burn_inside_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_burn_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_main_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_every_restarted_child, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_main_restarted_by_supervisor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revert_record_in_fresh_process, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
