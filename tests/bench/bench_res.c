/* Measures memory.leak's achieved rate against its configured one and cpu.burn's accuracy, each next to stress-ng doing the same job in the same run, as /proc sees them. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_testlib.h"
#include "journal.h"
#include "procfs.h"
#include "scenario.h"

#define MIB (1024.0 * 1024.0)
#define MAXROWS 16
#define SAMPLE_MS 5         /* RSS sampling: fine enough to time a 0.5 s fill to 1% */

struct bench {
	char jdir[64];
	struct fl_journal *j;
	struct fl_target_info info;  /* host-wide scope: both tools run in the bench's own cgroup */
	bool have_sng;
	FILE *md;
};

static void out(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (b->md) {
		va_start(ap, fmt);
		vfprintf(b->md, fmt, ap);
		va_end(ap);
	}
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The descendants of pid (stress-ng's stressors and the children they work in), up to max. */
static int descendants_of(pid_t pid, pid_t *kids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)) && n < max) {
		char *end;
		long x = strtol(e->d_name, &end, 10);
		pid_t pp = (pid_t)x;

		if (*end || x <= 1)
			continue;
		for (int depth = 0; depth < 4 && pp > 1; depth++) {
			if (fl_proc_ppid(pp, &pp))
				break;
			if (pp == pid) {
				kids[n++] = (pid_t)x;
				break;
			}
		}
	}
	if (d)
		closedir(d);
	return n;
}

/* The largest RssAnon among pid's descendants: stress-ng's vm stressor works in a child of its own. */
static uint64_t max_rss_below(pid_t pid)
{
	pid_t kids[16];
	uint64_t best = 0;
	int n = descendants_of(pid, kids, 16);

	for (int i = 0; i < n; i++) {
		uint64_t r = fl_tl_rss_anon(kids[i]);

		if (r > best)
			best = r;
	}
	return best;
}

/* Start stress-ng in a process group of its own (so it can be stopped whole), quiet. */
static pid_t stress_ng(char *const argv[])
{
	pid_t parent = getpid(), p = fork();

	if (p != 0)
		return p;
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	execvp(argv[0], argv);
	_exit(127);
}

static void stop_group(pid_t p)
{
	kill(-p, SIGKILL);
	while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
		;
}

static struct fl_scenario *fault(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct fl_scenario *fault(const char *fmt, ...)
{
	char yaml[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(yaml, sizeof(yaml), fmt, ap);
	va_end(ap);
	return fl_tl_scenario("bench", yaml, NULL, 0);
}

/* The pid of the latest record of fault `name`. */
static pid_t journaled(struct bench *b, const char *name)
{
	struct fl_journal_info info;
	struct fl_err e;
	int64_t pid = 0;

	if (fl_journal_read(fl_journal_path(b->j), &info, &e))
		return 0;
	for (int i = 0; i < info.nrecs; i++)
		if (!strcmp(info.recs[i].fault, name))
			fl_rec_get_i64(&info.recs[i], "pid", &pid);
	fl_journal_info_free(&info);
	return (pid_t)pid;
}

/*
 * Sample RssAnon (of pid, or of the largest of below's descendants) until it reaches `want`:
 * seconds from t0 to half and to all, -1 if never. With f, observe it every 100 ms meanwhile, as
 * an engine would (more often than its 1 s tick), so its own estimate can be compared.
 */
static void time_fill(pid_t pid, pid_t below, double t0, uint64_t want, double limit_s, struct fl_fault *f,
		      double *half, double *full)
{
	double next_obs = t0 + 0.1;

	*half = *full = -1;
	while (fl_tl_now_s() - t0 < limit_s) {
		uint64_t held = below ? max_rss_below(below) : fl_tl_rss_anon(pid);

		if (f && fl_tl_now_s() >= next_obs) {
			struct fl_observation o = {0};

			f->inj->observe(f, &o);
			next_obs += 0.1;
		}

		if (*half < 0 && held >= want / 2)
			*half = fl_tl_now_s() - t0;
		if (held >= (uint64_t)(0.99 * (double)want)) {
			*full = fl_tl_now_s() - t0;
			return;
		}
		sleep_ms(SAMPLE_MS);
	}
}

/* ---- memory.leak vs stress-ng --vm --------------------------------------------------------------- */

static int bench_leak(struct bench *b, const char *rates, int mib)
{
	char list[128], *save = NULL;
	uint64_t want = (uint64_t)mib << 20;
	int rc = 0, row = 0;

	out(b, "\n### memory.leak: achieved rate vs configured (%d MiB, RssAnon of the leaker from /proc, sampled every %d ms)\n\n",
	    mib, SAMPLE_MS);
	out(b, "| configured | time to 99%% of %d MiB, from before apply | achieved | 2nd half only | observe's rate_observed |\n", mib);
	out(b, "| --- | --- | --- | --- | --- |\n");
	snprintf(list, sizeof(list), "%s", rates);
	for (char *r = strtok_r(list, ",", &save); r; r = strtok_r(NULL, ",", &save), row++) {
		struct fl_scenario *sc = fault("  - {name: leak%d, type: memory.leak, duration: 60s, rate: %s, limit: %dMiB, in: host}\n",
					       row, r, mib);
		struct fl_observation o = {0};
		struct fl_err e = {0};
		double half, full, t0, configured;
		char name[16];
		struct fl_fault *f;
		pid_t pid;

		if (!sc)
			return -EINVAL;
		f = &sc->faults[0];
		f->target = &b->info;
		configured = (double)fl_fault_value(f, "rate")->u;
		t0 = fl_tl_now_s();
		if (f->inj->apply(f, b->j, &e)) {
			fprintf(stderr, "apply %s: %s\n", r, e.msg);
			fl_scenario_free(sc);
			return -EIO;
		}
		snprintf(name, sizeof(name), "leak%d", row);
		pid = journaled(b, name);
		/* from before apply, as a user of the fault would count it (fork, journal, cgroup, go) */
		time_fill(pid, 0, t0, want, 60, f, &half, &full);
		o.n = 0;
		f->inj->observe(f, &o);
		/* "full" is 99% of mib (RssAnon also holds a few pages shared with the bench) */
		if (full > 0)
			out(b, "| %.0f MiB/s | %.3f s | %.1f MiB/s (%.1f%%) | %.1f MiB/s | %s |\n", configured / MIB, full,
			    0.99 * mib / full, (0.99 * mib / full) / (configured / MIB) * 100,
			    half > 0 && full > half ? (0.49 * mib) / (full - half) : 0.0,
			    fl_tl_obs_index(&o, "rate_observed") >= 0 ? o.kv[fl_tl_obs_index(&o, "rate_observed")].text : "-");
		else
			out(b, "| %.0f MiB/s | not reached in 60 s | | | |\n", configured / MIB);
		f->inj->revert(f, &e);
		f->inj->release(f);
		fl_journal_mark_fault_reverted(b->j, f->name);
		fl_scenario_free(sc);
	}
	if (!b->have_sng) {
		out(b, "\nstress-ng is not installed: no comparison row.\n");
		return rc;
	}
	{
		char bytes[32];
		char *argv[] = {"stress-ng", "--vm", "1", "--vm-bytes", bytes, "--vm-keep", "-t", "60s", "--quiet", NULL};
		double half, full, t0;
		pid_t sng;

		snprintf(bytes, sizeof(bytes), "%dM", mib);
		t0 = fl_tl_now_s();
		sng = stress_ng(argv);
		if (sng < 0)
			return -errno;
		/* from the fork of stress-ng, as for the leak: its worker is a grandchild that grows */
		time_fill(0, sng, t0, want, 60, NULL, &half, &full);
		if (full > 0)
			out(b, "| stress-ng --vm 1 --vm-bytes %dM --vm-keep (no rate: as fast as it can) | %.3f s | %.1f MiB/s "
			       "| %.1f MiB/s | - |\n",
			    mib, full, 0.99 * mib / full, half > 0 && full > half ? (0.49 * mib) / (full - half) : 0.0);
		else
			out(b, "| stress-ng --vm | did not reach %d MiB in 60 s | | | |\n", mib);
		stop_group(sng);
	}
	return rc;
}

/* ---- cpu.burn vs stress-ng --cpu-load -------------------------------------------------------------- */

/* CPU of the processes in pids over `secs`, as a share of one core, with per-second extremes. */
static void measure_cpu(const pid_t *pids, int n, double secs, double *mean, double *lo, double *hi)
{
	double c0 = 0, prev, t0 = fl_tl_now_s(), tprev = t0;

	for (int i = 0; i < n; i++)
		c0 += fmax(fl_tl_cpu_s(pids[i]), 0);
	prev = c0;
	*lo = 1e9;
	*hi = 0;
	while (fl_tl_now_s() - t0 < secs) {
		double c = 0, now, share;

		sleep_ms(1000);
		for (int i = 0; i < n; i++)
			c += fmax(fl_tl_cpu_s(pids[i]), 0);
		now = fl_tl_now_s();
		share = (c - prev) / (now - tprev);
		if (share < *lo)
			*lo = share;
		if (share > *hi)
			*hi = share;
		prev = c;
		tprev = now;
		if (now - t0 >= secs) {
			*mean = (c - c0) / (now - t0);
			return;
		}
	}
	*mean = (prev - c0) / (fl_tl_now_s() - t0);
}

static int bench_cpu(struct bench *b, const char *loads, int secs)
{
	char list[128], *save = NULL;
	int row = 0;

	out(b, "\n### cpu.burn: CPU really used vs configured load (1 burner, utime+stime from /proc over %d s; "
	       "1-second windows min..max)\n\n", secs);
	out(b, "| configured | cpu.burn | its 1 s windows | stress-ng --cpu 1 --cpu-load N | its 1 s windows |\n");
	out(b, "| --- | --- | --- | --- | --- |\n");
	snprintf(list, sizeof(list), "%s", loads);
	for (char *l = strtok_r(list, ",", &save); l; l = strtok_r(NULL, ",", &save), row++) {
		struct fl_scenario *sc = fault("  - {name: burn%d, type: cpu.burn, duration: 60s, load: %s%%, in: host}\n", row, l);
		double fm = 0, flo = 0, fhi = 0, sm = -1, slo = 0, shi = 0;
		struct fl_err e = {0};
		struct fl_fault *f;
		char name[16];
		pid_t pid;

		if (!sc)
			return -EINVAL;
		f = &sc->faults[0];
		f->target = &b->info;
		if (f->inj->apply(f, b->j, &e)) {
			fprintf(stderr, "apply burn %s%%: %s\n", l, e.msg);
			fl_scenario_free(sc);
			return -EIO;
		}
		snprintf(name, sizeof(name), "burn%d", row);
		pid = journaled(b, name);
		sleep_ms(200);
		measure_cpu(&pid, 1, secs, &fm, &flo, &fhi);
		f->inj->revert(f, &e);
		free(f->state);
		f->state = NULL;
		fl_journal_mark_fault_reverted(b->j, f->name);
		fl_scenario_free(sc);
		if (b->have_sng) {
			char load[16];
			char *argv[] = {"stress-ng", "--cpu", "1", "--cpu-load", load, "-t", "60s", "--quiet", NULL};
			pid_t sng, kids[16];
			int n = 0;

			snprintf(load, sizeof(load), "%s", l);
			sng = stress_ng(argv);
			for (int i = 0; i < 1000 && (n = descendants_of(sng, kids, 16)) == 0; i++)
				sleep_ms(1);
			sleep_ms(200);
			n = descendants_of(sng, kids, 16); /* every process doing its work, found after start-up */
			if (n)
				measure_cpu(kids, n, secs, &sm, &slo, &shi);
			stop_group(sng);
		}
		if (sm >= 0)
			out(b, "| %s%% | %.1f%% | %.1f..%.1f%% | %.1f%% | %.1f..%.1f%% |\n", l, fm * 100, flo * 100, fhi * 100,
			    sm * 100, slo * 100, shi * 100);
		else
			out(b, "| %s%% | %.1f%% | %.1f..%.1f%% | - | - |\n", l, fm * 100, flo * 100, fhi * 100);
	}
	return 0;
}

static void usage(const char *me)
{
	fprintf(stderr, "usage: %s [-r RATES] [-m MIB] [-l LOADS] [-t SECONDS] [-s leak|cpu|all] [-o FILE.md]\n"
			"  -r  memory.leak rates, comma-separated (default 10MiB/s,50MiB/s,200MiB/s,8GiB/s)\n"
			"  -m  how much each leak holds (default 100)\n"
			"  -l  cpu.burn loads in percent (default 25,50,75)\n"
			"  -t  seconds per cpu measurement (default 4)\n"
			"  -o  also write the tables as markdown to FILE\n", me);
}

int main(int argc, char **argv)
{
	const char *rates = "10MiB/s,50MiB/s,200MiB/s,8GiB/s", *loads = "25,50,75", *md = NULL, *which = "all";
	struct bench b = {.info = {.allow_host_wide = true}};
	int mib = 100, secs = 4, opt, rc = 0;
	char run[64];

	while ((opt = getopt(argc, argv, "r:m:l:t:s:o:h")) != -1) {
		switch (opt) {
		case 'r': rates = optarg; break;
		case 'm': mib = atoi(optarg); break;
		case 'l': loads = optarg; break;
		case 't': secs = atoi(optarg); break;
		case 's': which = optarg; break;
		case 'o': md = optarg; break;
		default: usage(argv[0]); return 2;
		}
	}
	if (mib < 1 || mib > 4096 || secs < 1 || secs > 120) {
		usage(argv[0]);
		return 2;
	}
	if (geteuid()) {
		fprintf(stderr, "bench_res needs root (other processes' /proc; the faults' own preconditions)\n");
		return 2;
	}
	b.have_sng = fl_tl_sh("command -v stress-ng >/dev/null 2>&1") == 0;
	if (md && !(b.md = fopen(md, "we"))) {
		perror(md);
		return 1;
	}
	fl_tl_run_id(run, sizeof(run), getpid(), "bres");
	b.j = fl_tl_journal(b.jdir, sizeof(b.jdir), "fl-bench-res", run, "bench_res");
	if (!b.j) {
		rc = 1;
		goto out;
	}
	{
		char ver[128] = "";

		if (b.have_sng)
			fl_tl_capture(ver, sizeof(ver), "stress-ng --version 2>&1 | head -1");
		ver[strcspn(ver, "\n")] = '\0';
		out(&b, "bench_res on %ld CPU(s); comparison: %s\n", sysconf(_SC_NPROCESSORS_ONLN),
		    b.have_sng ? ver : "stress-ng not installed");
	}
	if (!strcmp(which, "all") || !strcmp(which, "leak"))
		rc |= bench_leak(&b, rates, mib) ? 1 : 0;
	if (!strcmp(which, "all") || !strcmp(which, "cpu"))
		rc |= bench_cpu(&b, loads, secs) ? 1 : 0;
out:
	if (b.j)
		fl_journal_close(b.j, true);
	if (b.jdir[0])
		fl_tl_rm_rf(b.jdir);
	if (b.md)
		fclose(b.md);
	return rc;
}
