/* Measures how fast ports.exhaust takes the default ephemeral range (and 10k ports) in a namespace of its own, against naive peers in the same run: one process binding port by port, one connecting until it fails, and stress-ng --sockmany. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_testlib.h"
#include "journal.h"
#include "scenario.h"

#define LO 32768
#define HI 60999
#define FULL (HI - LO + 1)
#define LISTEN_PORT 7
#define MAX_RUNS 32

struct bench {
	char ns[64], ns_path[128];
	char jdir[64];
	struct fl_journal *j;
	struct fl_target_info info;
	pid_t listener;
	int runs;
};

struct sample {
	double ms[MAX_RUNS];
	int n;
	long held;            /* ports the run held (last run) */
	char note[160];
};

static double median(struct sample *s)
{
	double v[MAX_RUNS];

	if (!s->n)
		return -1;
	memcpy(v, s->ms, sizeof(double) * (size_t)s->n);
	qsort(v, (size_t)s->n, sizeof(double), fl_tl_cmp_double);
	return v[s->n / 2];
}

static double minimum(const struct sample *s)
{
	double m = s->n ? s->ms[0] : -1;

	for (int i = 1; i < s->n; i++)
		if (s->ms[i] < m)
			m = s->ms[i];
	return m;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Kernel memory in use (Slab, kB): what holding the sockets costs. */
static long slab_kb(void)
{
	return fl_tl_sh_num("awk '/^Slab:/ {print $2}' /proc/meminfo");
}

/* What one connect() to the listener costs a client in the namespace: non-blocking connects (each
 * closed with an RST, so no TIME_WAIT keeps its port) for about 300 ms of wall time. */
struct connect_cost {
	int n;
	double cpu_us;  /* CPU (user + system) per connect() */
	int fail_errno; /* errno of the failures, 0 if none failed */
	int failed;
};

/* Runs fn(arg, out) in a child inside the bench's namespace and copies its `size`-byte result back
 * into out; out is zeroed when the child fails. */
static void in_netns(struct bench *b, void (*fn)(const void *arg, void *out), const void *arg, void *out, size_t size)
{
	int p[2], st;
	pid_t pid;

	memset(out, 0, size);
	if (pipe2(p, O_CLOEXEC))
		return;
	pid = fl_tl_fork_in_netns(b->ns);
	if (pid == 0) {
		fn(arg, out);
		_exit(write(p[1], out, size) == (ssize_t)size ? 0 : 1);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], out, size) != (ssize_t)size)
		memset(out, 0, size);
	close(p[0]);
	if (pid > 0)
		waitpid(pid, &st, 0);
}

static void connect_cost_child(const void *arg, void *out)
{
	struct connect_cost *r = out;
	struct sockaddr_in dst = fl_tl_addr4("127.0.0.1", LISTEN_PORT);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct timespec c0, c1;
	double t0 = fl_tl_now_ms();

	(void)arg;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	while (fl_tl_now_ms() - t0 < 300) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		if (fd < 0)
			break;
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) && errno != EINPROGRESS) {
			r->fail_errno = errno;
			r->failed++;
		}
		close(fd);
		r->n++;
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	if (r->n)
		r->cpu_us = ((double)(c1.tv_sec - c0.tv_sec) * 1e6 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e3) / r->n;
}

static struct connect_cost run_connect_cost(struct bench *b)
{
	struct connect_cost r;

	in_netns(b, connect_cost_child, NULL, &r, sizeof(r));
	return r;
}

/* ---- faultline -------------------------------------------------------------------------------- */

/* One ports.exhaust apply/observe/revert; ms of each into the samples; with `during`, what a
 * connect() costs while the fault holds. */
static int run_fault(struct bench *b, const char *extra, struct sample *apply, struct sample *observe,
		     struct sample *revert, long *slab_delta, struct connect_cost *during)
{
	char yaml[256];
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct fl_err e = {0};
	double t0;
	long s0 = slab_kb();
	int rc = -1;

	snprintf(yaml, sizeof(yaml), "  - {name: bench, type: ports.exhaust, duration: 10s%s}\n", extra);
	sc = fl_tl_scenario("bench", yaml, NULL, 0);
	if (!sc)
		return -1;
	f = &sc->faults[0];
	f->target = &b->info;
	t0 = fl_tl_now_ms();
	if (f->inj->apply(f, b->j, &e)) {
		fprintf(stderr, "apply: %s\n", e.msg);
		goto out;
	}
	apply->ms[apply->n++] = fl_tl_now_ms() - t0;
	if (slab_delta)
		*slab_delta = slab_kb() - s0;
	t0 = fl_tl_now_ms();
	f->inj->observe(f, &o);
	if (observe)
		observe->ms[observe->n++] = fl_tl_now_ms() - t0;
	apply->held = (long)fl_tl_obs_num(&o, "ports_held", -1);
	{
		int i = fl_tl_obs_index(&o, "connect_probe");

		snprintf(apply->note, sizeof(apply->note), "%s", i >= 0 ? o.kv[i].text : "");
	}
	if (during)
		*during = run_connect_cost(b);
	t0 = fl_tl_now_ms();
	f->inj->revert(f, &e);
	if (revert)
		revert->ms[revert->n++] = fl_tl_now_ms() - t0;
	rc = 0;
out:
	if (f->state)
		f->inj->release(f);
	fl_scenario_free(sc);
	return rc;
}

/* ---- naive peers, in a child inside the namespace ---------------------------------------------- */

enum peer { PEER_BIND, PEER_CONNECT };

struct peer_result {
	double ms;
	int held;
	int stop_errno;
};

struct peer_job {
	enum peer kind;
	int n;
};

/* One process: socket()+bind() port after port (or connect() and let the kernel pick), up to n. */
static void peer_child(const void *arg, void *out)
{
	const struct peer_job *job = arg;
	struct peer_result *r = out;
	struct sockaddr_in dst = fl_tl_addr4("127.0.0.1", LISTEN_PORT);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	double t0;

	raise_nofile();
	t0 = fl_tl_now_ms();
	for (int i = 0; i < job->n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (job->kind == PEER_CONNECT ? SOCK_NONBLOCK : 0), 0);
		int ok;

		if (fd < 0) {
			r->stop_errno = errno;
			break;
		}
		if (job->kind == PEER_BIND) {
			struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(LO + i))};

			ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		} else {
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			ok = connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == 0 || errno == EINPROGRESS;
		}
		if (!ok) {
			r->stop_errno = errno;
			close(fd);
			break;
		}
		r->held++;
	}
	r->ms = fl_tl_now_ms() - t0;
}

static struct peer_result run_peer(struct bench *b, enum peer kind, int n)
{
	struct peer_job job = {.kind = kind, .n = n};
	struct peer_result r;

	in_netns(b, peer_child, &job, &r, sizeof(r));
	return r;
}

/* stress-ng --sockmany with a bogo-op budget: wall time and "N sockets opened at one time". */
static int run_stress_ng(struct bench *b, int ops, double *ms, long *held)
{
	char out[8192], *p;
	double t0;
	int rc;

	if (fl_tl_sh("command -v stress-ng >/dev/null 2>&1"))
		return -ENOENT;
	t0 = fl_tl_now_ms();
	rc = fl_tl_capture(out, sizeof(out),
			   "cd /tmp && ip netns exec %s stress-ng --sockmany 1 --sockmany-ops %d -t 60 -v 2>&1", b->ns, ops);
	*ms = fl_tl_now_ms() - t0;
	*held = -1;
	if ((p = strstr(out, "sockets opened at one time"))) {
		while (p > out && p[-1] != ' ')
			p--;
		while (p > out && p[-1] == ' ')
			p--;
		while (p > out && p[-1] >= '0' && p[-1] <= '9')
			p--;
		*held = strtol(p, NULL, 10);
	}
	return rc;
}

/* ---- the world ---------------------------------------------------------------------------------- */

static int world_up(struct bench *b)
{
	char run_id[64];
	int p[2];
	char c;

	snprintf(b->ns, sizeof(b->ns), "fl-portb-%d", (int)getpid());
	snprintf(b->ns_path, sizeof(b->ns_path), "/run/netns/%.60s", b->ns);
	if (fl_tl_sh("ip netns add %s && ip -n %s link set lo up", b->ns, b->ns) ||
	    fl_tl_sh("ip netns exec %s sysctl -qw net.ipv4.ip_local_port_range='%d %d'", b->ns, LO, HI))
		return -1;
	snprintf(b->info.netns, sizeof(b->info.netns), "%.120s", b->ns_path);
	/* a listener for the connect peer (a backlog nobody accepts: connect()s still take their port) */
	if (pipe2(p, O_CLOEXEC))
		return -1;
	b->listener = fl_tl_fork_in_netns(b->ns);
	if (b->listener == 0) {
		struct sockaddr_in a = fl_tl_addr4("127.0.0.1", LISTEN_PORT);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096) || write(p[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	if (b->listener < 0 || read(p[0], &c, 1) != 1)
		return -1;
	close(p[0]);
	fl_tl_run_id(run_id, sizeof(run_id), getpid(), "bnch");
	b->j = fl_tl_journal(b->jdir, sizeof(b->jdir), "fl-portb", run_id, "bench_ports");
	return b->j ? 0 : -1;
}

static void world_down(struct bench *b)
{
	if (b->listener > 0) {
		kill(b->listener, SIGKILL);
		waitpid(b->listener, NULL, 0);
	}
	if (b->j)
		fl_journal_close(b->j, false);
	fl_tl_rm_rf(b->jdir);
	fl_tl_netns_del(b->ns);
}

static void usage(const char *me)
{
	fprintf(stderr, "usage: %s [-r RUNS] [-o MARKDOWN_FILE]   (root; default -r 5 -o /tmp/ports-bench-section.md)\n",
		me);
}

int main(int argc, char **argv)
{
	struct bench b = {.runs = 5};
	const char *md = "/tmp/ports-bench-section.md";
	struct sample full = {0}, full_obs = {0}, full_rev = {0}, k10 = {0}, dst = {0}, dst_rev = {0};
	struct peer_result pb10 = {0}, pbfull = {0}, pc10 = {0}, pc19 = {0};
	struct connect_cost cc_free, cc_dst = {0};
	struct rlimit rl;
	double sng_ms = -1;
	long sng_held = -1, slab = 0;
	int opt, sng_rc;
	FILE *f;

	while ((opt = getopt(argc, argv, "r:o:h")) != -1) {
		switch (opt) {
		case 'r':
			b.runs = atoi(optarg);
			break;
		case 'o':
			md = optarg;
			break;
		default:
			usage(argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (b.runs < 1 || b.runs > MAX_RUNS) {
		usage(argv[0]);
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "%s: needs root (a network namespace of its own)\n", argv[0]);
		return 3;
	}
	raise_nofile();
	getrlimit(RLIMIT_NOFILE, &rl);
	if (world_up(&b)) {
		world_down(&b);
		return 1;
	}
	cc_free = run_connect_cost(&b);
	for (int i = 0; i < b.runs; i++) {
		run_fault(&b, "", &full, &full_obs, &full_rev, i == 0 ? &slab : NULL, NULL);
		run_fault(&b, ", count: 10000", &k10, NULL, NULL, NULL, NULL);
		run_fault(&b, ", dst: \"127.0.0.1:7\"", &dst, NULL, &dst_rev, NULL, i == 0 ? &cc_dst : NULL);
	}
	pb10 = run_peer(&b, PEER_BIND, 10000);
	pbfull = run_peer(&b, PEER_BIND, FULL);
	pc10 = run_peer(&b, PEER_CONNECT, 10000);
	/* past half the range the kernel's port search scans what is taken, once per connect() */
	pc19 = run_peer(&b, PEER_CONNECT, 19000);
	sng_rc = run_stress_ng(&b, 10000, &sng_ms, &sng_held);
	world_down(&b);

	printf("ports.exhaust bench: netns range %d-%d (%d ports), RLIMIT_NOFILE %llu/%llu, %d runs (median, min)\n", LO,
	       HI, FULL, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, b.runs);
	printf("  faultline, whole range          apply %7.1f ms (min %.1f)  held %ld  probe: %s\n", median(&full),
	       minimum(&full), full.held, full.note);
	printf("                                  observe (sock_diag count) %.1f ms, revert %.1f ms, kernel memory +%ld kB\n",
	       median(&full_obs), median(&full_rev), slab);
	printf("  faultline, count 10000          apply %7.1f ms (min %.1f)  held %ld\n", median(&k10), minimum(&k10),
	       k10.held);
	printf("  faultline, dst (whole range)    apply %7.1f ms (min %.1f)  held %ld  revert %.1f ms\n", median(&dst),
	       minimum(&dst), dst.held, median(&dst_rev));
	printf("  peer: 1 process bind(), 10000   %7.1f ms  held %d\n", pb10.ms, pb10.held);
	printf("  peer: 1 process bind(), range   %7.1f ms  held %d of %d, stopped by %s\n", pbfull.ms, pbfull.held, FULL,
	       pbfull.stop_errno ? strerror(pbfull.stop_errno) : "nothing");
	printf("  peer: 1 process connect(), 10000 %6.1f ms  held %d\n", pc10.ms, pc10.held);
	printf("  peer: 1 process connect(), 19000 %6.1f ms  held %d\n", pc19.ms, pc19.held);
	printf("  a client's connect(), range free        %6.1f us CPU each (%d in 300 ms, %d failed)\n", cc_free.cpu_us,
	       cc_free.n, cc_free.failed);
	printf("  a client's connect(), dst range held    %6.1f us CPU each (%d in 300 ms, %d failed: %s)\n", cc_dst.cpu_us,
	       cc_dst.n, cc_dst.failed, cc_dst.fail_errno ? strerror(cc_dst.fail_errno) : "-");
	if (sng_rc == -ENOENT)
		printf("  stress-ng --sockmany: not installed (apt-get install -y stress-ng)\n");
	else
		printf("  stress-ng --sockmany, 10000 ops %7.1f ms wall (process start included), %ld sockets at once\n",
		       sng_ms, sng_held);

	f = fopen(md, "w");
	if (!f) {
		fprintf(stderr, "%s: %s\n", md, strerror(errno));
		return 1;
	}
	fprintf(f, "### ports.exhaust: time to take the ephemeral range\n\n");
	fprintf(f, "`build/tests/bench/bench_ports -r %d` (root), one network namespace of its own with the default "
		   "range %d-%d (%d ports), RLIMIT_NOFILE %llu/%llu, %ld CPUs. Times are the apply as the engine "
		   "sees it: holders forked, each journaled (fsync) before it binds, every port held and reported, "
		   "and a `connect()` probe run. Median of %d runs (min in brackets); the peers run once, in the "
		   "same run.\n\n",
		b.runs, LO, HI, FULL, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
		sysconf(_SC_NPROCESSORS_ONLN), b.runs);
	fprintf(f, "| what | ports held | time |\n| --- | ---: | ---: |\n");
	fprintf(f, "| ports.exhaust, whole range (bound sockets, every destination) | %ld | %.1f ms (%.1f) |\n", full.held,
		median(&full), minimum(&full));
	fprintf(f, "| ports.exhaust, `count: 10000` | %ld | %.1f ms (%.1f) |\n", k10.held, median(&k10), minimum(&k10));
	fprintf(f, "| ports.exhaust, `dst` scope, whole range (TCP_REPAIR, one-port range per socket) | %ld | %.1f ms (%.1f) |\n",
		dst.held, median(&dst), minimum(&dst));
	fprintf(f, "| peer: one process, `socket()`+`bind()` port by port, 10000 | %d | %.1f ms |\n", pb10.held, pb10.ms);
	fprintf(f, "| peer: one process, `socket()`+`bind()`, whole range | %d (stopped: %s) | %.1f ms |\n", pbfull.held,
		pbfull.stop_errno ? strerror(pbfull.stop_errno) : "-", pbfull.ms);
	fprintf(f, "| peer: one process, non-blocking `connect()` (kernel picks), 10000 | %d | %.1f ms |\n", pc10.held,
		pc10.ms);
	fprintf(f, "| peer: the same, 19000 (past half the range) | %d | %.1f ms |\n", pc19.held, pc19.ms);
	if (sng_rc != -ENOENT)
		fprintf(f, "| peer: `stress-ng --sockmany 1 --sockmany-ops 10000` (wall, start included) | %ld at once | %.1f ms |\n",
			sng_held, sng_ms);
	fprintf(f, "\nWhole range, faultline: observe (a sock_diag dump of both families, counted per port) %.1f ms; "
		   "revert (SIGKILL + reap of every holder) %.1f ms; kernel memory (Slab) +%ld kB while held. "
		   "Probe after apply: %s.\n\n",
		median(&full_obs), median(&full_rev), slab, full.note);
	fprintf(f, "One process cannot hold the range when it has fewer fds than the range has ports (here %llu < %d): "
		   "the holders are sized to the hard limit and started in parallel (at least one per CPU for "
		   "4096 ports or more).\n",
		(unsigned long long)rl.rlim_max, FULL);
	fprintf(f, "\nThe `connect()` peer shows why the dst scope pins each socket to one port (IP_LOCAL_PORT_RANGE, "
		   "Linux 6.3+) instead of letting the kernel pick: the kernel searches even ports first, so past half "
		   "the range every `connect()` scans the taken ones (10000 in %.0f ms, 19000 in %.0f ms).\n",
		pc10.ms, pc19.ms);
	fprintf(f, "\nWhat the fault costs the target's own dials: a non-blocking `connect()` to the held destination "
		   "took %.1f us of CPU (user + system) while the `dst` fault held the whole range (%d of %d failed, %s), "
		   "against %.1f us with the range free (%d of %d failed), in the same run: the kernel walks the whole "
		   "range before it gives up. A client that retries a starved dial per waiting call, every few "
		   "milliseconds, spends its CPU there; see `port-exhaustion` in docs/library.md.\n",
		cc_dst.cpu_us, cc_dst.failed, cc_dst.n, cc_dst.fail_errno ? strerror(cc_dst.fail_errno) : "none failed",
		cc_free.cpu_us, cc_free.failed, cc_free.n);
	fclose(f);
	printf("wrote %s\n", md);
	return 0;
}
