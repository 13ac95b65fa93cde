/* Measures the network faults between two namespaces of its own: apply/revert latency per injector and backend, and added-delay accuracy against ping. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/magic.h>
#include <linux/membarrier.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/btf.h>

#include "exitcodes.h"
#include "fl_testlib.h"
#include "journal.h"
#include "net.h"
#include "net_cgroup.h"
#include "net_tc.h"
#include "net_tc.skel.h"
#include "procfs.h"
#include "recovery.h"
#include "scenario.h"

/* TEST-NET-1, only ever inside the two namespaces this bench makes */
#define ADDR_A "192.0.2.1"
#define ADDR_B "192.0.2.2"
#define P_TCP "5001"   /* listener in B: the TCP cases connect here */
#define P_PART "5002"  /* partition's match: nothing listens, nothing connects */
#define MAXN 200
#define MAXS 256       /* RTT samples per measurement */

/* ---- the world: names, namespaces, cgroup, journal ------------------------------------------ */

struct opts {
	int cycles;          /* -n: measured apply+revert cycles per case (plus one warm-up) */
	int pings;           /* -k: pings per delay up to 100 ms */
	int pings_long;      /* pings for the 1000 ms delay */
	int connects;        /* -c: connect() timings per TCP case up to 100 ms */
	int connects_long;
	char acc[64];        /* -a: delay backends for the accuracy part: auto, nfqueue, netem (comma list) */
	bool latency, accuracy;
	const char *md;      /* -o: markdown tables here as well */
	const char *jparent; /* -j: where the journal's mkdtemp dir goes */
};

static struct world {
	struct opts o;
	pid_t pid;
	char ns_a[64], ns_b[64], veth_a[16], veth_b[16];
	char cg[300], jdir[300], run_id[64];
	char cg_why[400];
	bool made_a, made_b, made_cg;
	struct fl_target_info info;
	struct fl_journal *j;
	struct fl_netns a;
	pid_t listener;
	FILE *md;
	int failures;        /* measurements that went wrong: exit 1 */
} W;

static volatile sig_atomic_t g_worker, g_signal;

static double ms_since(int64_t t0)
{
	return (double)(fl_tl_now_ns() - t0) / 1e6;
}

/* A sorted copy of n values (NULL when n is 0 or memory is short). */
static double *sorted_copy(const double *v, int n)
{
	double *s = n > 0 ? malloc((size_t)n * sizeof(double)) : NULL;

	if (!s)
		return NULL;
	memcpy(s, v, (size_t)n * sizeof(double));
	qsort(s, (size_t)n, sizeof(double), fl_tl_cmp_double);
	return s;
}

/* Nearest-rank percentile (p in 0..100) of n values; NAN when there are none. */
static double pct(const double *v, int n, double p)
{
	double *s = sorted_copy(v, n), x;
	int k;

	if (!s)
		return NAN;
	k = (int)ceil(p / 100.0 * n) - 1;
	x = s[k < 0 ? 0 : k >= n ? n - 1 : k];
	free(s);
	return x;
}

static double median(const double *v, int n)
{
	double *s = sorted_copy(v, n), x;

	if (!s)
		return NAN;
	x = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return x;
}

/* ---- tables, printed as text and (with -o) as markdown -------------------------------------- */

#define T_COLS 12
#define T_ROWS 16

struct table {
	int ncols, nrows;
	const char *head[T_COLS];
	char cell[T_ROWS][T_COLS][80];
};

static void table_set(struct table *t, int row, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void table_set(struct table *t, int row, int col, const char *fmt, ...)
{
	va_list ap;

	if (row >= T_ROWS || col >= T_COLS)
		return;
	va_start(ap, fmt);
	vsnprintf(t->cell[row][col], sizeof(t->cell[row][col]), fmt, ap);
	va_end(ap);
	if (row >= t->nrows)
		t->nrows = row + 1;
}

static void table_print(const struct table *t, FILE *out, bool md)
{
	int w[T_COLS];

	if (!out)
		return;
	for (int c = 0; c < t->ncols; c++) {
		w[c] = (int)strlen(t->head[c]);
		for (int r = 0; r < t->nrows; r++)
			if ((int)strlen(t->cell[r][c]) > w[c])
				w[c] = (int)strlen(t->cell[r][c]);
	}
	if (md) {
		for (int c = 0; c < t->ncols; c++)
			fprintf(out, "| %s ", t->head[c]);
		fprintf(out, "|\n");
		for (int c = 0; c < t->ncols; c++)
			fprintf(out, "| %s ", c ? "---:" : "---");
		fprintf(out, "|\n");
		for (int r = 0; r < t->nrows; r++) {
			for (int c = 0; c < t->ncols; c++)
				fprintf(out, "| %s ", t->cell[r][c]);
			fprintf(out, "|\n");
		}
		fprintf(out, "\n");
		return;
	}
	for (int c = 0; c < t->ncols; c++)
		fprintf(out, c ? "  %*s" : "  %-*s", w[c], t->head[c]);
	fprintf(out, "\n");
	for (int r = 0; r < t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++)
			fprintf(out, c ? "  %*s" : "  %-*s", w[c], t->cell[r][c]);
		fprintf(out, "\n");
	}
	fprintf(out, "\n");
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A line for both outputs (markdown gets it as a paragraph line). */
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (W.md) {
		va_start(ap, fmt);
		vfprintf(W.md, fmt, ap);
		va_end(ap);
	}
}

static void emit(const struct table *t)
{
	table_print(t, stdout, false);
	table_print(t, W.md, true);
}

/* ---- faults from scenario text, as the controller builds them -------------------------------- */

static struct fl_scenario *scenario_with(const char *fault_yaml)
{
	struct fl_scenario *sc = fl_tl_scenario("bench", fault_yaml, NULL, 0);

	if (sc)
		sc->faults[0].target = &W.info;
	return sc;
}

/* revert, release, mark: the engine's order; errors are reported, not fatal */
static void undo(struct fl_fault *f)
{
	struct fl_err e = {0};

	if (f->inj->revert(f, &e)) {
		fprintf(stderr, "bench_net: revert %s: %s\n", f->name, e.msg);
		W.failures++;
	}
	if (f->inj->release)
		f->inj->release(f);
	fl_journal_mark_fault_reverted(W.j, f->name);
}

/* ---- what is in force, looked at from outside (untimed) ------------------------------------- */

enum where { ST_IPT, ST_TC, ST_CG };

/* Objects of this run in namespace A: iptables rules, our htb root, or programs on our cgroup. */
static long in_force(enum where k)
{
	struct fl_err e = {0};

	switch (k) {
	case ST_IPT:
		return fl_tl_sh_num("nsenter --net=/run/netns/%s sh -c '(iptables-nft-save; iptables-legacy-save) "
				    "2>/dev/null' | grep -c -- '%s'", W.ns_a, W.run_id);
	case ST_TC:
		return fl_tl_sh_num("tc -n %s qdisc show dev %s | grep -c 'htb fa17:'", W.ns_a, W.veth_a);
	case ST_CG:
		return W.cg[0] ? fl_cg_count_attached(W.cg, 0, &e) : -1;
	}
	return -1;
}

/* ---- part 1: apply and revert latency -------------------------------------------------------- */

enum probe { PR_NFQ, PR_NETEM, PR_TBF, PR_CG, PR_PART };

static int probe_of(enum probe p, struct fl_err *e)
{
	switch (p) {
	case PR_NFQ:
		return fl_net_backend_nfqueue.probe(e);
	case PR_NETEM:
		return fl_net_backend_netem.probe(e);
	case PR_TBF:
		return fl_net_backend_tbf.probe(e);
	case PR_CG:
		return fl_net_backend_cgroup.probe(e);
	case PR_PART:
		return fl_inj_network_partition.probe(e);
	}
	return -EINVAL;
}

struct lat_case {
	const char *label;
	const char *yaml;
	enum probe probe;
	enum where where;
	bool cgroup;
};

static const struct lat_case lat_cases[] = {
	{"network.delay, nfqueue, icmp to B",
	 "  - {name: lat-nfq, type: network.delay, duration: 60s, delay: 10ms, backend: nfqueue, "
	 "match: {dst_ip: " ADDR_B ", protocol: icmp}}\n", PR_NFQ, ST_IPT, false},
	{"network.delay, nfqueue, tcp to B:" P_TCP " (+ handshake baseline)",
	 "  - {name: lat-nfq-tcp, type: network.delay, duration: 60s, delay: 10ms, backend: nfqueue, "
	 "match: {dst_ip: " ADDR_B ", dst_port: " P_TCP ", protocol: tcp}}\n", PR_NFQ, ST_IPT, false},
	{"network.delay, netem, icmp to B",
	 "  - {name: lat-netem, type: network.delay, duration: 60s, delay: 10ms, backend: netem, "
	 "match: {dst_ip: " ADDR_B ", protocol: icmp}}\n", PR_NETEM, ST_TC, false},
	{"network.delay, netem, tcp to B:" P_TCP " (+ handshake baseline)",
	 "  - {name: lat-netem-tcp, type: network.delay, duration: 60s, delay: 10ms, backend: netem, "
	 "match: {dst_ip: " ADDR_B ", dst_port: " P_TCP ", protocol: tcp}}\n", PR_NETEM, ST_TC, false},
	{"network.bandwidth, tbf, tcp to B:" P_TCP,
	 "  - {name: lat-tbf, type: network.bandwidth, duration: 60s, rate: 10Mbit/s, "
	 "match: {dst_ip: " ADDR_B ", dst_port: " P_TCP ", protocol: tcp}}\n", PR_TBF, ST_TC, false},
	{"network.loss, cgroup, ingress from B",
	 "  - {name: lat-loss, type: network.loss, duration: 60s, percent: 10%, backend: cgroup, "
	 "match: {direction: ingress, src_ip: " ADDR_B "}}\n", PR_CG, ST_CG, true},
	{"network.partition, refuse, tcp to B:" P_PART,
	 "  - {name: lat-part, type: network.partition, duration: 60s, "
	 "match: {dst_ip: " ADDR_B ", dst_port: " P_PART ", protocol: tcp}}\n", PR_PART, ST_CG, true},
};
#define NCASES ((int)(sizeof(lat_cases) / sizeof(lat_cases[0])))

struct lat_res {
	bool ran;
	char why[1200];
	int n;
	double check[MAXN], apply[MAXN], revert[MAXN], mark[MAXN];
	double bare[MAXN], bare_mark[MAXN]; /* a bare journal append (+ its mark) in the same cycle */
	double first_apply, first_revert;
	int recs;            /* journal records one apply writes */
	int forced, gone;    /* cycles where the objects were there after apply / gone after revert */
};

static struct fl_injector bare_inj = {.type = "bench.append"};
static struct fl_fault bare_fault = {.name = "bare-append", .inj = &bare_inj};

/* One record appended and marked reverted, each fdatasync'd: what a record costs right now. */
static void bare_append(double *app, double *mark)
{
	int64_t t0 = fl_tl_now_ns();

	if (fl_journal_append(W.j, &bare_fault, "backend=none bench=1") < 0)
		W.failures++;
	*app = ms_since(t0);
	t0 = fl_tl_now_ns();
	fl_journal_mark_fault_reverted(W.j, bare_fault.name);
	*mark = ms_since(t0);
}

static void lat_run(const struct lat_case *c, struct lat_res *r)
{
	struct fl_err e = {0};
	struct fl_scenario *sc;
	struct fl_fault *f;

	memset(r, 0, sizeof(*r));
	if (c->cgroup && !W.cg[0]) {
		snprintf(r->why, sizeof(r->why), "no cgroup v2 dir of our own: %s", W.cg_why);
		return;
	}
	if (probe_of(c->probe, &e)) {
		snprintf(r->why, sizeof(r->why), "%s", e.msg);
		return;
	}
	sc = scenario_with(c->yaml);
	if (!sc) {
		snprintf(r->why, sizeof(r->why), "scenario text rejected (a bench bug)");
		W.failures++;
		return;
	}
	f = &sc->faults[0];
	r->ran = true;
	for (int i = 0; i <= W.o.cycles; i++) {
		int64_t t0;
		int before, rc;
		double ch, ap, rv, mk, ba, bm;
		long k;

		/* the disk's fdatasync cost drifts with other tenants' I/O: sample it next to each apply */
		bare_append(&ba, &bm);
		before = fl_journal_pending(W.j);
		fl_err_clear(&e);
		t0 = fl_tl_now_ns();
		rc = f->inj->check(f, &e);
		ch = ms_since(t0);
		if (rc) {
			snprintf(r->why, sizeof(r->why), "check: %s", e.msg);
			r->ran = false;
			W.failures++;
			break;
		}
		t0 = fl_tl_now_ns();
		rc = f->inj->apply(f, W.j, &e);
		ap = ms_since(t0);
		if (rc) {
			snprintf(r->why, sizeof(r->why), "apply: %s %s", e.msg, e.hint);
			r->ran = false;
			W.failures++;
			undo(f);
			break;
		}
		r->recs = fl_journal_pending(W.j) - before;
		k = in_force(c->where);
		r->forced += k > 0;
		fl_err_clear(&e);
		t0 = fl_tl_now_ns();
		rc = f->inj->revert(f, &e);
		rv = ms_since(t0);
		if (rc) {
			fprintf(stderr, "bench_net: revert %s: %s\n", f->name, e.msg);
			W.failures++;
		}
		if (f->inj->release)
			f->inj->release(f);
		t0 = fl_tl_now_ns();
		fl_journal_mark_fault_reverted(W.j, f->name);
		mk = ms_since(t0);
		r->gone += in_force(c->where) == 0;
		if (i == 0) {
			r->first_apply = ap;
			r->first_revert = rv;
			continue;
		}
		r->check[r->n] = ch;
		r->apply[r->n] = ap;
		r->revert[r->n] = rv;
		r->mark[r->n] = mk;
		r->bare[r->n] = ba;
		r->bare_mark[r->n] = bm;
		r->n++;
	}
	fl_scenario_free(sc);
}

/* fork+exec argv with no output; its wall time in ms, or -1 when it failed. */
static double run_timed(char *const argv[])
{
	int64_t t0 = fl_tl_now_ns();
	int st;
	pid_t p = fork();

	if (p == 0) {
		int dn = open("/dev/null", O_RDWR);

		dup2(dn, 1);
		dup2(dn, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (p < 0)
		return -1;
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? ms_since(t0) : -1;
}

struct peer_res {
	bool ran;
	char why[160];
	int n, failed;
	double add[MAXN], del[MAXN];
};

/* N add/del cycles of one CLI command pair (the cost a tool that shells out pays). */
static void peer_run(char *const add[], char *const del[], struct peer_res *r)
{
	r->ran = true;
	for (int i = 0; i <= W.o.cycles; i++) {
		double a = run_timed(add), d = run_timed(del);

		if (a < 0 || d < 0) {
			r->failed++;
			if (d < 0)
				run_timed(del);
			continue;
		}
		if (i == 0)
			continue; /* warm-up, like the injectors' */
		r->add[r->n] = a;
		r->del[r->n] = d;
		r->n++;
	}
}

/* Reading the kernel's BTF the way libbpf does: a sysfs file, at most a page per read(). */
static double read_vmlinux_btf(long *bytes)
{
	char buf[4096];
	int64_t t0 = fl_tl_now_ns();
	int fd = open("/sys/kernel/btf/vmlinux", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	*bytes = 0;
	if (fd < 0)
		return NAN;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		*bytes += n;
	close(fd);
	return ms_since(t0);
}

/*
 * Where the BPF-based applies spend their time, through the same public calls the injectors
 * make, and the RCU grace period that an nf_tables rule deletion waits for (iptables -D: the
 * nfqueue revert). membarrier(MEMBARRIER_CMD_GLOBAL) is one synchronize_rcu().
 */
static void bench_components(void)
{
	enum { C_READ, C_BTF, C_TC, C_CG_IN, C_CG_CONN, C_CG_ATT, C_CG_UNL, C_GP, NC };
	static double v[NC][MAXN];
	int nv[NC] = {0};
	long bytes = 0;
	struct table t = {.ncols = 4, .head = {"component", "p50", "p90", "n"}};
	const char *names[NC] = {
		"read /sys/kernel/btf/vmlinux, 4 KiB per read()",
		"btf__load_vmlinux_btf (that read + parse)",
		"net_tc__open + net_tc__load (tc classifier; tbf/netem apply)",
		"fl_cg_load(ingress) (network.loss cgroup apply)",
		"fl_cg_load(connect4+connect6) (network.partition apply)",
		"fl_cg_attach (one link, our cgroup)",
		"fl_cg_unload (detach + unload)",
		"one RCU grace period (membarrier GLOBAL)",
	};

	for (int i = 0; i < W.o.cycles; i++) {
		struct fl_cg_cfg cfg = {0};
		struct fl_cg_prog *p = NULL;
		struct fl_err e = {0};
		struct net_tc *skel;
		struct btf *btf;
		int64_t t0;

		v[C_READ][nv[C_READ]++] = read_vmlinux_btf(&bytes);
		t0 = fl_tl_now_ns();
		btf = btf__load_vmlinux_btf();
		if (btf)
			v[C_BTF][nv[C_BTF]++] = ms_since(t0);
		btf__free(btf);
		t0 = fl_tl_now_ns();
		skel = net_tc__open();
		if (skel && !net_tc__load(skel))
			v[C_TC][nv[C_TC]++] = ms_since(t0);
		net_tc__destroy(skel);
		t0 = fl_tl_now_ns();
		if (!fl_cg_load(&cfg, FL_CG_H_INGRESS, &p, &e)) {
			v[C_CG_IN][nv[C_CG_IN]++] = ms_since(t0);
			if (W.cg[0]) {
				t0 = fl_tl_now_ns();
				if (!fl_cg_attach(p, W.cg, &e)) {
					v[C_CG_ATT][nv[C_CG_ATT]++] = ms_since(t0);
					t0 = fl_tl_now_ns();
					if (!fl_cg_unload(p, &e))
						v[C_CG_UNL][nv[C_CG_UNL]++] = ms_since(t0);
				}
			}
		}
		fl_cg_destroy(p);
		p = NULL;
		t0 = fl_tl_now_ns();
		if (!fl_cg_load(&cfg, FL_CG_H_CONNECT4 | FL_CG_H_CONNECT6, &p, &e))
			v[C_CG_CONN][nv[C_CG_CONN]++] = ms_since(t0);
		fl_cg_destroy(p);
		t0 = fl_tl_now_ns();
		if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
			v[C_GP][nv[C_GP]++] = ms_since(t0);
	}
	for (int c = 0; c < NC; c++) {
		table_set(&t, c, 0, "%s", names[c]);
		if (!nv[c]) {
			table_set(&t, c, 1, "-");
			table_set(&t, c, 2, "-");
			table_set(&t, c, 3, "0");
			continue;
		}
		table_set(&t, c, 1, "%.2f", median(v[c], nv[c]));
		table_set(&t, c, 2, "%.2f", pct(v[c], nv[c], 90));
		table_set(&t, c, 3, "%d", nv[c]);
	}
	say("where the time goes (ms): the BPF object loads the injectors do, kernel BTF (%.1f MiB), and one RCU "
	    "grace period\n\n", (double)bytes / (1 << 20));
	emit(&t);
}

static void bench_latency(void)
{
	static struct lat_res res[NCASES];
	struct peer_res peer[3] = {0};
	struct table t = {.ncols = 11,
			  .head = {"fault, backend, match", "check", "apply p50", "apply p90", "1st apply", "journal recs",
				   "apply - fsyncs", "revert p50", "revert p90", "mark reverted", "in force / gone"}};
	struct table tj = {.ncols = 4, .head = {"journal operation", "p50", "p90", "n"}};
	struct table tp = {.ncols = 7, .head = {"CLI peer (fork+exec)", "add p50", "add p90", "del p50", "del p90",
						 "n", "faultline apply p50 / CLI add p50"}};
	static double app[NCASES * MAXN], mark[NCASES * MAXN];
	int napp = 0;
	struct fl_err e = {0};
	int row = 0;

	say("\n## apply and revert latency (ms; %d cycles after one warm-up, each: check, apply, revert, "
	    "release, mark reverted)\n\n", W.o.cycles);
	for (int i = 0; i < NCASES; i++) {
		const struct lat_case *c = &lat_cases[i];
		struct lat_res *r = &res[i];

		fprintf(stderr, "  ... %s\n", c->label);
		lat_run(c, r);
		table_set(&t, row, 0, "%s", c->label);
		if (!r->ran || !r->n) {
			table_set(&t, row, 1, "skipped");
			for (int k = 2; k < t.ncols; k++)
				table_set(&t, row, k, "-");
			row++;
			continue;
		}
		table_set(&t, row, 1, "%.2f", median(r->check, r->n));
		table_set(&t, row, 2, "%.2f", median(r->apply, r->n));
		table_set(&t, row, 3, "%.2f", pct(r->apply, r->n, 90));
		table_set(&t, row, 4, "%.2f", r->first_apply);
		table_set(&t, row, 5, "%d", r->recs);
		table_set(&t, row, 6, "%.2f", median(r->apply, r->n) - r->recs * median(r->bare, r->n));
		table_set(&t, row, 7, "%.2f", median(r->revert, r->n));
		table_set(&t, row, 8, "%.2f", pct(r->revert, r->n, 90));
		table_set(&t, row, 9, "%.2f", median(r->mark, r->n));
		table_set(&t, row, 10, "%d/%d / %d/%d", r->forced, r->n + 1, r->gone, r->n + 1);
		row++;
	}
	for (int i = 0; i < NCASES; i++)
		for (int k = 0; k < res[i].n; k++) {
			app[napp] = res[i].bare[k];
			mark[napp++] = res[i].bare_mark[k];
		}
	table_set(&tj, 0, 0, "fl_journal_append (one record + fdatasync)");
	table_set(&tj, 0, 1, "%.3f", median(app, napp));
	table_set(&tj, 0, 2, "%.3f", pct(app, napp, 90));
	table_set(&tj, 0, 3, "%d", napp);
	table_set(&tj, 1, 0, "fl_journal_mark_fault_reverted (one record)");
	table_set(&tj, 1, 1, "%.3f", median(mark, napp));
	table_set(&tj, 1, 2, "%.3f", pct(mark, napp, 90));
	table_set(&tj, 1, 3, "%d", napp);
	say("journal in %s (a dir made under %s); one bare append sampled in every cycle, next to the "
	    "apply\n\n", W.jdir, W.o.jparent);
	emit(&tj);
	emit(&t);
	for (int i = 0; i < NCASES; i++)
		if (!res[i].ran)
			say("- %s: skipped: %s\n", lat_cases[i].label, res[i].why);
	say("\n\"apply - fsyncs\" = apply p50 minus (journal records x that row's bare fl_journal_append p50): "
	    "the kernel and process work. \"in force / gone\": cycles in which `iptables-save`, `tc qdisc show` or "
	    "BPF_PROG_QUERY saw the objects after apply and none after revert.\n\n");

	/* peers: the same kernel objects made by the CLIs, as a tool that shells out makes them */
	{
		char nsarg[96];
		char *tbf_add[] = {"tc", "-n", W.ns_a, "qdisc", "add", "dev", W.veth_a, "root", "tbf", "rate", "10mbit",
				   "burst", "16k", "latency", "50ms", NULL};
		char *netem_add[] = {"tc", "-n", W.ns_a, "qdisc", "add", "dev", W.veth_a, "root", "netem", "delay",
				     "10ms", NULL};
		char *tc_del[] = {"tc", "-n", W.ns_a, "qdisc", "del", "dev", W.veth_a, "root", NULL};
		char *ipt_add[] = {"nsenter", nsarg, "iptables", "-t", "mangle", "-A", "OUTPUT", "-o", W.veth_a, "-p",
				   "icmp", "-d", ADDR_B, "-j", "NFQUEUE", "--queue-num", "4242", "--queue-bypass", NULL};
		char *ipt_del[] = {"nsenter", nsarg, "iptables", "-t", "mangle", "-D", "OUTPUT", "-o", W.veth_a, "-p",
				   "icmp", "-d", ADDR_B, "-j", "NFQUEUE", "--queue-num", "4242", "--queue-bypass", NULL};
		const char *labels[3] = {"iptables -A/-D ... -j NFQUEUE (rule only, no delayer)",
					 "tc qdisc add/del root netem delay 10ms", "tc qdisc add/del root tbf rate 10mbit"};
		/* the faultline row each peer is held against */
		const int vs[3] = {0, 2, 4};

		snprintf(nsarg, sizeof(nsarg), "--net=/run/netns/%s", W.ns_a);
		if (res[0].ran)
			peer_run(ipt_add, ipt_del, &peer[0]);
		else
			snprintf(peer[0].why, sizeof(peer[0].why), "the nfqueue row did not run");
		fl_err_clear(&e);
		if (!fl_net_backend_netem.probe(&e))
			peer_run(netem_add, tc_del, &peer[1]);
		else
			snprintf(peer[1].why, sizeof(peer[1].why), "no netem here");
		peer_run(tbf_add, tc_del, &peer[2]);
		row = 0;
		for (int i = 0; i < 3; i++) {
			struct peer_res *p = &peer[i];
			const struct lat_res *r = &res[vs[i]];

			if (!p->ran)
				continue;
			table_set(&tp, row, 0, "%s", labels[i]);
			table_set(&tp, row, 1, "%.2f", median(p->add, p->n));
			table_set(&tp, row, 2, "%.2f", pct(p->add, p->n, 90));
			table_set(&tp, row, 3, "%.2f", median(p->del, p->n));
			table_set(&tp, row, 4, "%.2f", pct(p->del, p->n, 90));
			table_set(&tp, row, 5, "%d%s", p->n, p->failed ? " (failures!)" : "");
			if (r->ran && r->n && p->n)
				table_set(&tp, row, 6, "%.2f", median(r->apply, r->n) / median(p->add, p->n));
			else
				table_set(&tp, row, 6, "-");
			if (p->failed)
				W.failures++;
			row++;
		}
		if (row)
			emit(&tp);
		for (int i = 0; i < 3; i++)
			if (!peer[i].ran)
				say("- peer \"%s\": skipped: %s\n", labels[i], peer[i].why);
	}
	bench_components();
	{
		bool over = false;

		for (int i = 0; i < NCASES; i++) {
			double ap, rv;

			if (!res[i].ran || !res[i].n)
				continue;
			ap = pct(res[i].apply, res[i].n, 90);
			rv = pct(res[i].revert, res[i].n, 90);
			if (ap < 5 && rv < 5)
				continue;
			say("- over the 5 ms goal at p90: %s:%s%s\n", lat_cases[i].label,
			    ap >= 5 ? " apply" : "", rv >= 5 ? " revert" : "");
			over = true;
		}
		if (!over)
			say("- every row that ran is under the 5 ms goal at p90\n");
	}
}

/* ---- part 2: added-delay accuracy ----------------------------------------------------------- */

/* ping from A to B: every reply's RTT in ms, and ping's own mean (its summary has µs precision). */
static int ping_rtts(int count, double *out, double *mean)
{
	char cmd[256], line[512];
	FILE *p;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "ip netns exec %s ping -n -c %d -i 0.2 -W 5 " ADDR_B " 2>&1", W.ns_a, count);
	p = popen(cmd, "r");
	if (!p)
		return 0;
	*mean = NAN;
	while (fgets(line, sizeof(line), p)) {
		const char *t = strstr(line, "time="), *sum = strstr(line, "rtt min/avg/max/mdev = ");
		double lo;

		if (t && n < MAXS)
			out[n++] = strtod(t + 5, NULL);
		if (sum && sscanf(sum + strlen("rtt min/avg/max/mdev = "), "%lf/%lf", &lo, mean) != 2)
			*mean = NAN;
	}
	pclose(p);
	return n;
}

/* n blocking connect()s from A to B:P_TCP, each timed; after each, f (if any) is observed. */
static int connect_rtts(int count, double *out, struct fl_fault *f)
{
	struct sockaddr_in b = fl_tl_addr4(ADDR_B, (uint16_t)atoi(P_TCP));
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct timeval tv = {.tv_sec = 5};
	int n = 0;

	for (int i = 0; i < count && n < MAXS; i++) {
		struct fl_err e = {0};
		int saved, fd;
		int64_t t0;

		if (fl_netns_enter(&W.a, &saved, &e))
			return n;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		fl_netns_leave(saved);
		if (fd < 0)
			return n;
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		t0 = fl_tl_now_ns();
		if (connect(fd, (struct sockaddr *)&b, sizeof(b)) == 0)
			out[n++] = ms_since(t0);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
		if (f) {
			struct fl_observation o = {0};

			f->inj->observe(f, &o);
		}
	}
	return n;
}

struct acc_row {
	int delay_ms;
	bool ok;
	char why[1200];
	int nb, nf;
	double base, with, lo, hi, added;
	double mean_added;   /* ICMP: from ping's summary means */
	double fl;           /* faultline's own number */
	double fl2;          /* TCP: hold_ms_mean (nfqueue) or delay in force (netem) */
};

static bool acc_apply(struct fl_fault *f, struct acc_row *r)
{
	struct fl_err e = {0};

	if (f->inj->check(f, &e) || f->inj->apply(f, W.j, &e)) {
		snprintf(r->why, sizeof(r->why), "%s %s", e.msg, e.hint);
		undo(f);
		W.failures++;
		return false;
	}
	return true;
}

static void acc_icmp(const char *backend, int delay_ms, int count, struct acc_row *r)
{
	double b[MAXS], d[MAXS];
	char yaml[512];
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	double mb, mf;

	memset(r, 0, sizeof(*r));
	r->delay_ms = delay_ms;
	r->nb = ping_rtts(count, b, &mb);
	snprintf(yaml, sizeof(yaml),
		 "  - {name: acc-icmp-%d, type: network.delay, duration: 60s, delay: %dms, backend: %s, "
		 "match: {dst_ip: " ADDR_B ", protocol: icmp}}\n", delay_ms, delay_ms, backend);
	sc = scenario_with(yaml);
	if (!sc)
		return;
	f = &sc->faults[0];
	if (acc_apply(f, r)) {
		r->nf = ping_rtts(count, d, &mf);
		r->mean_added = mf - mb;
		f->inj->observe(f, &o);
		undo(f);
		r->ok = r->nb > 0 && r->nf > 0;
		r->base = median(b, r->nb);
		r->with = median(d, r->nf);
		r->lo = pct(d, r->nf, 0);
		r->hi = pct(d, r->nf, 100);
		r->added = r->with - r->base;
		/* nfqueue: how long the delayer really held them; netem: what the kernel has in force */
		r->fl = fl_tl_obs_num(&o, "hold_ms_mean", NAN);
		if (isnan(r->fl))
			r->fl = fl_tl_obs_num(&o, "delay_in_force_ms", NAN);
		if (r->nf < count)
			snprintf(r->why, sizeof(r->why), "%d of %d pings answered", r->nf, count);
	}
	fl_scenario_free(sc);
}

static void acc_tcp(const char *backend, int delay_ms, int count, struct acc_row *r)
{
	double b[MAXS], d[MAXS];
	char yaml[512];
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};

	memset(r, 0, sizeof(*r));
	r->delay_ms = delay_ms;
	r->nb = connect_rtts(count, b, NULL);
	snprintf(yaml, sizeof(yaml),
		 "  - {name: acc-tcp-%d, type: network.delay, duration: 60s, delay: %dms, backend: %s, "
		 "match: {dst_ip: " ADDR_B ", dst_port: " P_TCP ", protocol: tcp}}\n", delay_ms, delay_ms, backend);
	sc = scenario_with(yaml);
	if (!sc)
		return;
	f = &sc->faults[0];
	if (acc_apply(f, r)) {
		f->inj->observe(f, &o); /* starts faultline's first handshake probe */
		r->nf = connect_rtts(count, d, f);
		usleep((useconds_t)(delay_ms + 50) * 1000);
		memset(&o, 0, sizeof(o));
		f->inj->observe(f, &o); /* collects the last one */
		undo(f);
		r->ok = r->nb > 0 && r->nf > 0;
		r->base = median(b, r->nb);
		r->with = median(d, r->nf);
		r->lo = pct(d, r->nf, 0);
		r->hi = pct(d, r->nf, 100);
		r->added = r->with - r->base;
		r->fl = fl_tl_obs_num(&o, "added_rtt_ms", NAN);
		r->fl2 = fl_tl_obs_num(&o, "hold_ms_mean", NAN);
		if (isnan(r->fl2))
			r->fl2 = fl_tl_obs_num(&o, "delay_in_force_ms", NAN);
		if (isnan(r->fl))
			snprintf(r->why, sizeof(r->why), "no added_rtt_ms in the observation");
	}
	fl_scenario_free(sc);
}

static void acc_backend(const char *backend)
{
	static const int delays[] = {1, 10, 100, 1000};
	struct table ti = {.ncols = 10,
			   .head = {"configured", "pings", "ping RTT, no fault (p50)", "ping RTT with fault: p50 (min-max)",
				    "ping added (p50)", "ping added (mean)", "error (mean)", "error %", "", "faultline / ping (mean)"}};
	struct table tt = {.ncols = 9,
			   .head = {"configured", "connects", "connect(), no fault (p50)", "connect() with fault: p50 (min-max)",
				    "connect() added (p50)", "error", "faultline added_rtt_ms", "", "faultline / connect()"}};
	bool nfq = !strcmp(backend, "nfqueue");
	struct fl_err e = {0};

	ti.head[8] = nfq ? "faultline hold_ms_mean" : "faultline delay_in_force_ms";
	tt.head[7] = nfq ? "hold_ms_mean" : "delay_in_force_ms";
	if (probe_of(nfq ? PR_NFQ : PR_NETEM, &e)) {
		say("\n## added-delay accuracy, backend %s: skipped: %s\n", backend, e.msg);
		return;
	}
	say("\n## added-delay accuracy, backend %s (match dst_ip %s, protocol icmp: only the echo request "
	    "is delayed; ms)\n\n", backend, ADDR_B);
	for (int i = 0; i < 4; i++) {
		struct acc_row r;
		int k = delays[i] >= 1000 ? W.o.pings_long : W.o.pings;

		fprintf(stderr, "  ... %s icmp %d ms\n", backend, delays[i]);
		acc_icmp(backend, delays[i], k, &r);
		table_set(&ti, i, 0, "%d", delays[i]);
		table_set(&ti, i, 1, "%d/%d", r.nf, k);
		if (!r.ok) {
			for (int c = 2; c < ti.ncols; c++)
				table_set(&ti, i, c, "-");
			say("- %d ms: %s\n", delays[i], r.why);
			continue;
		}
		table_set(&ti, i, 2, "%.3f", r.base);
		table_set(&ti, i, 3, "%.3f (%.3f-%.3f)", r.with, r.lo, r.hi);
		table_set(&ti, i, 4, "%.3f", r.added);
		table_set(&ti, i, 5, "%.3f", r.mean_added);
		table_set(&ti, i, 6, "%+.3f", r.mean_added - delays[i]);
		table_set(&ti, i, 7, "%+.1f%%", 100 * (r.mean_added - delays[i]) / delays[i]);
		table_set(&ti, i, 8, "%.3f", r.fl);
		table_set(&ti, i, 9, "%.3f", r.fl / r.mean_added);
	}
	emit(&ti);
	say("ping prints each reply's time with 3 significant digits (1 ms steps from 100 ms up): the error "
	    "is taken from its summary means, which have µs precision.\n\n");
	say("TCP: match dst_port %s, protocol tcp, a listener in B; connect() timed in the bench, "
	    "added_rtt_ms from faultline's own handshake probe (observe), ms\n\n", P_TCP);
	for (int i = 0; i < 4; i++) {
		struct acc_row r;
		int k = delays[i] >= 1000 ? W.o.connects_long : W.o.connects;

		fprintf(stderr, "  ... %s tcp %d ms\n", backend, delays[i]);
		acc_tcp(backend, delays[i], k, &r);
		table_set(&tt, i, 0, "%d", delays[i]);
		table_set(&tt, i, 1, "%d/%d", r.nf, k);
		if (!r.ok) {
			for (int c = 2; c < tt.ncols; c++)
				table_set(&tt, i, c, "-");
			say("- tcp %d ms: %s\n", delays[i], r.why);
			continue;
		}
		table_set(&tt, i, 2, "%.3f", r.base);
		table_set(&tt, i, 3, "%.3f (%.3f-%.3f)", r.with, r.lo, r.hi);
		table_set(&tt, i, 4, "%.3f", r.added);
		table_set(&tt, i, 5, "%+.3f", r.added - delays[i]);
		table_set(&tt, i, 6, "%.3f", r.fl);
		table_set(&tt, i, 7, "%.3f", r.fl2);
		table_set(&tt, i, 8, "%.3f", r.fl / r.added);
		if (r.why[0])
			say("- tcp %d ms: %s\n", delays[i], r.why);
	}
	emit(&tt);
}

static void bench_accuracy(void)
{
	char list[64], *save = NULL;
	struct fl_err e = {0};

	snprintf(list, sizeof(list), "%s", W.o.acc);
	for (char *b = strtok_r(list, ",", &save); b; b = strtok_r(NULL, ",", &save)) {
		if (!strcmp(b, "auto"))
			b = fl_net_backend_netem.probe(&e) ? "nfqueue" : "netem";
		if (strcmp(b, "nfqueue") && strcmp(b, "netem")) {
			fprintf(stderr, "bench_net: -a: unknown backend %s\n", b);
			W.failures++;
			continue;
		}
		acc_backend(b);
	}
}

/* ---- the worker: runs every measurement; the parent cleans up after it whatever happens ---- */

/* In B (the caller forked it there): accept and close, for the TCP cases. */
static void __attribute__((noreturn)) listener_main(void)
{
	struct sockaddr_in s = fl_tl_addr4(ADDR_B, (uint16_t)atoi(P_TCP));
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&s, sizeof(s)) < 0 || listen(fd, 256) < 0)
		_exit(3);
	for (;;) {
		int c = accept(fd, NULL, NULL);

		if (c >= 0)
			close(c);
	}
}

static bool listener_up(void)
{
	double v[1];

	for (int i = 0; i < 200; i++) {
		if (connect_rtts(1, v, NULL) == 1)
			return true;
		usleep(10000);
	}
	return false;
}

static int worker_main(void)
{
	struct fl_err e = {0};
	struct utsname u;
	long left_ipt, left_tc, left_cg;
	int rc = FL_EXIT_PASS;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fl_journal_open(W.jdir, W.run_id, "bench_net", &W.j, &e)) {
		fprintf(stderr, "bench_net: journal: %s\n", e.msg);
		return FL_EXIT_FAIL;
	}
	if (fl_netns_open(W.ns_a, &W.a, &e)) {
		fprintf(stderr, "bench_net: %s\n", e.msg);
		return FL_EXIT_FAIL;
	}
	W.listener = fl_tl_fork_in_netns(W.ns_b);
	if (W.listener == 0)
		listener_main();
	if (W.listener < 0 || !listener_up()) {
		fprintf(stderr, "bench_net: the listener in %s did not come up\n", W.ns_b);
		return FL_EXIT_FAIL;
	}
	if (W.o.md) {
		W.md = fopen(W.o.md, "w");
		if (!W.md)
			fprintf(stderr, "bench_net: %s: %s\n", W.o.md, strerror(errno));
	}
	uname(&u);
	say("bench_net: Linux %s, %ld CPUs; namespaces %s/%s (veth %s/%s, %s/%s), run %s, cgroup %s\n",
	    u.release, sysconf(_SC_NPROCESSORS_ONLN), W.ns_a, W.ns_b, W.veth_a, W.veth_b, ADDR_A, ADDR_B, W.run_id,
	    W.cg[0] ? W.cg : "(none)");
	if (W.o.latency)
		bench_latency();
	if (W.o.accuracy)
		bench_accuracy();
	/* the injectors' own reverts must have left nothing in A, before the namespace goes */
	left_ipt = in_force(ST_IPT);
	left_tc = in_force(ST_TC);
	left_cg = W.cg[0] ? in_force(ST_CG) : 0;
	printf("\nafter every revert, in %s: %ld iptables rules of this run, %ld htb roots of ours, %ld programs on "
	       "the cgroup; %d journal records pending\n", W.ns_a, left_ipt, left_tc, left_cg, fl_journal_pending(W.j));
	if (left_ipt || left_tc || left_cg || fl_journal_pending(W.j))
		W.failures++;
	if (W.md)
		fclose(W.md);
	kill(W.listener, SIGKILL);
	waitpid(W.listener, NULL, 0);
	fl_netns_close(&W.a);
	fl_journal_close(W.j, false); /* the parent reads it back, then removes it */
	if (W.failures) {
		fprintf(stderr, "bench_net: %d measurement(s) failed\n", W.failures);
		rc = FL_EXIT_FAIL;
	}
	return rc;
}

/* ---- the parent: setup, the worker, cleanup on every path, verification --------------------- */

static void on_signal(int sig)
{
	g_signal = sig;
	if (g_worker > 0)
		kill(-g_worker, SIGKILL);
}

/* A cgroup v2 directory of our own under the v2 mount (/sys/fs/cgroup/unified here, /sys/fs/cgroup in the VM). */
static void cgroup_make(void)
{
	static const char *const roots[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
	struct statfs sf;

	for (int i = 0; i < 2; i++) {
		if (statfs(roots[i], &sf) || sf.f_type != CGROUP2_SUPER_MAGIC)
			continue;
		snprintf(W.cg, sizeof(W.cg), "%s/fl-bn-%d", roots[i], (int)W.pid);
		if (mkdir(W.cg, 0755) == 0) {
			W.made_cg = true;
			snprintf(W.info.cgroup_v2, sizeof(W.info.cgroup_v2), "%s", W.cg);
			return;
		}
		snprintf(W.cg_why, sizeof(W.cg_why), "mkdir %s: %s", W.cg, strerror(errno));
		W.cg[0] = '\0';
		return;
	}
	snprintf(W.cg_why, sizeof(W.cg_why), "no cgroup2 mount at /sys/fs/cgroup/unified or /sys/fs/cgroup");
}

static int setup(void)
{
	snprintf(W.ns_a, sizeof(W.ns_a), "fl-bn-%d-a", (int)W.pid);
	snprintf(W.ns_b, sizeof(W.ns_b), "fl-bn-%d-b", (int)W.pid);
	snprintf(W.veth_a, sizeof(W.veth_a), "bn%da", (int)W.pid % 10000000);
	snprintf(W.veth_b, sizeof(W.veth_b), "bn%db", (int)W.pid % 10000000);
	fl_tl_run_id(W.run_id, sizeof(W.run_id), W.pid, "abcd");
	if (fl_tl_mkdtemp(W.jdir, sizeof(W.jdir), W.o.jparent, "fl-bn"))
		return -1;
	W.made_a = !fl_tl_sh("ip netns add %s", W.ns_a);
	W.made_b = W.made_a && !fl_tl_sh("ip netns add %s", W.ns_b);
	if (!W.made_b || fl_tl_veth_pair(W.ns_a, W.veth_a, ADDR_A "/24", W.ns_b, W.veth_b, ADDR_B "/24")) {
		fprintf(stderr, "bench_net: cannot set up the namespaces\n");
		return -1;
	}
	snprintf(W.info.netns, sizeof(W.info.netns), "/run/netns/%s", W.ns_a);
	cgroup_make();
	return 0;
}

/*
 * Reap every descendant: the parent is a child subreaper, so the worker's orphans (a delayer or
 * tool child that outlived it, the listener) come to it. Those still running after a grace
 * period are ours by descent and get SIGKILL. Returns how many were reaped; *left = still there.
 */
static int reap_descendants(int *left)
{
	int reaped = 0;
	int64_t until = fl_tl_now_ns() + 3000000000LL;

	*left = 0;
	for (;;) {
		pid_t p = waitpid(-1, NULL, WNOHANG);

		if (p > 0) {
			reaped++;
			continue;
		}
		if (p < 0 && errno == ECHILD)
			return reaped;
		if (fl_tl_now_ns() > until)
			break;
		if (fl_tl_now_ns() > until - 2000000000LL) {
			DIR *d = opendir("/proc");
			struct dirent *de;

			while (d && (de = readdir(d))) {
				pid_t pid = (pid_t)atoi(de->d_name), pp;

				if (pid > 0 && !fl_proc_ppid(pid, &pp) && pp == getpid())
					kill(pid, SIGKILL);
			}
			if (d)
				closedir(d);
		}
		usleep(10000);
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		reaped++;
	*left = waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD ? 0 : 1;
	return reaped;
}

struct journal_view {
	bool present;
	int recs, unreverted, delayers, delayers_alive;
};

static void journal_look(const char *path, struct journal_view *v, bool mark_bare)
{
	struct fl_journal_info info = {0};
	struct fl_err e = {0};
	struct stat sb;

	memset(v, 0, sizeof(*v));
	if (stat(path, &sb) || fl_journal_read(path, &info, &e))
		return;
	v->present = true;
	v->recs = info.nrecs;
	for (int i = 0; i < info.nrecs; i++) {
		const struct fl_journal_rec *r = &info.recs[i];
		int64_t pid;
		uint64_t start;

		/* a bare append announces no side effect: nothing to revert, only to mark */
		if (mark_bare && !r->reverted && !strcmp(r->injector, bare_inj.type))
			fl_journal_mark_reverted_path(path, r->seq, NULL);
		else
			v->unreverted += !r->reverted;
		if (!fl_rec_get_i64(r, "child", &pid) && !fl_rec_get_u64(r, "start", &start)) {
			v->delayers++;
			/* the same process (pid + start time), not whoever has the pid now */
			v->delayers_alive += fl_proc_same((pid_t)pid, start) > 0;
		}
	}
	fl_journal_info_free(&info);
}

/* Undo the world; then check it is gone and say so. 0 when everything is back as it was. */
static int cleanup_and_verify(pid_t worker)
{
	struct fl_recover_stats rs = {0};
	struct journal_view jv = {0}, after = {0};
	char path[400];
	struct stat sb;
	int bad = 0, reaped = 0, left = 0, alive;
	long host_rules;
	bool host_link, recovered = false;

	if (worker > 0) {
		/* stragglers of the worker's group, while its zombie keeps the group id ours */
		kill(-worker, SIGKILL);
		while (waitpid(worker, NULL, 0) < 0 && errno == EINTR)
			;
		g_worker = 0; /* reaped: its pid and group id are no longer ours to signal */
		reaped = reap_descendants(&left);
	}
	snprintf(path, sizeof(path), "%s/%s.journal", W.jdir, W.run_id);
	if (W.jdir[0]) {
		journal_look(path, &jv, true);
		/* the worker died with faults applied: undo them from the journal alone, as recover would */
		if (jv.unreverted) {
			printf("\nthe worker left %d unreverted journal record(s): reverting them from the journal\n",
			       jv.unreverted);
			fl_recover_journal(path, true, stdout, &rs);
			recovered = true;
			reaped += reap_descendants(&left);
		}
		journal_look(path, &after, false);
	}
	if (W.made_b)
		fl_tl_netns_del(W.ns_b);
	if (W.made_a)
		fl_tl_netns_del(W.ns_a);
	if (W.made_cg)
		for (int i = 0; i < 100 && rmdir(W.cg) < 0 && errno == EBUSY; i++)
			usleep(10000);
	fl_tl_rm_rf(W.jdir);

	/* verification: nothing of ours on the host */
	host_rules = fl_tl_sh_num("(iptables-nft-save; iptables-legacy-save; ip6tables-nft-save; "
				  "ip6tables-legacy-save) 2>/dev/null | grep -c -- '%s'", W.run_id);
	host_link = fl_tl_sh("ip link show dev %s >/dev/null 2>&1", W.veth_a) == 0;
	printf("\ncleanup: ");
	snprintf(path, sizeof(path), "/run/netns/%s", W.ns_a);
	bad += !stat(path, &sb);
	printf("netns %s %s, ", W.ns_a, stat(path, &sb) ? "deleted" : "STILL THERE");
	snprintf(path, sizeof(path), "/run/netns/%s", W.ns_b);
	bad += !stat(path, &sb);
	printf("%s %s; ", W.ns_b, stat(path, &sb) ? "deleted" : "STILL THERE");
	if (W.made_cg) {
		bad += !stat(W.cg, &sb);
		printf("cgroup %s %s; ", W.cg, stat(W.cg, &sb) ? "removed" : "STILL THERE");
	}
	bad += host_rules != 0;
	printf("%ld iptables rules naming the run on the host; ", host_rules);
	bad += host_link;
	printf("veth %s %s; ", W.veth_a, host_link ? "STILL ON THE HOST" : "gone (and its qdiscs)");
	if (jv.present) {
		printf("journal: %d records, %d unreverted when the worker ended", jv.recs, jv.unreverted);
		if (recovered)
			printf(", %d reverted from the journal, %d failed", rs.reverted, rs.failed);
		bad += after.present && after.unreverted;
		printf("; ");
	}
	alive = after.present ? after.delayers_alive : jv.delayers_alive;
	bad += alive + left;
	printf("%d delayers started, %d alive; %d descendant(s) reaped after the worker, %s; ", jv.delayers, alive,
	       reaped, left ? "SOME STILL RUNNING" : "none left");
	bad += W.jdir[0] && !stat(W.jdir, &sb);
	printf("journal dir %s\n", W.jdir[0] && !stat(W.jdir, &sb) ? "STILL THERE" : "removed");
	printf("cleanup %s\n", bad ? "INCOMPLETE" : "verified: the host is as it was");
	return bad;
}

static void usage(const char *me)
{
	fprintf(stderr,
		"usage: %s [-n CYCLES] [-k PINGS] [-c CONNECTS] [-a BACKENDS] [-s latency|accuracy|all] [-o FILE.md] "
		"[-j DIR]\n"
		"  -n  apply+revert cycles per fault, after one warm-up (default 20)\n"
		"  -k  pings per delay up to 100 ms (default 20; 1000 ms gets a quarter, at least 3)\n"
		"  -c  connect() timings per TCP delay up to 100 ms (default 10; 1000 ms: 3)\n"
		"  -a  delay backends for the accuracy part, comma separated: auto, nfqueue, netem (default auto: "
		"netem where the kernel has it, else nfqueue)\n"
		"  -s  which part to run (default all)\n"
		"  -o  also write the tables as markdown to FILE\n"
		"  -j  parent dir of the journal's temporary dir (default /tmp)\n",
		me);
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};
	int opt, rc = FL_EXIT_FAIL, status = 0;
	pid_t worker = -1;
	unsigned long long busy0, total0;
	int64_t t_start;

	W.o = (struct opts){.cycles = 20, .pings = 20, .connects = 10, .connects_long = 3, .latency = true,
			    .accuracy = true, .jparent = "/tmp"};
	snprintf(W.o.acc, sizeof(W.o.acc), "auto");
	while ((opt = getopt(argc, argv, "n:k:c:a:s:o:j:h")) != -1) {
		switch (opt) {
		case 'n':
			W.o.cycles = atoi(optarg);
			break;
		case 'k':
			W.o.pings = atoi(optarg);
			break;
		case 'c':
			W.o.connects = atoi(optarg);
			break;
		case 'a':
			snprintf(W.o.acc, sizeof(W.o.acc), "%s", optarg);
			break;
		case 's':
			W.o.latency = !strcmp(optarg, "latency") || !strcmp(optarg, "all");
			W.o.accuracy = !strcmp(optarg, "accuracy") || !strcmp(optarg, "all");
			if (!W.o.latency && !W.o.accuracy) {
				usage(argv[0]);
				return FL_EXIT_INVALID;
			}
			break;
		case 'o':
			W.o.md = optarg;
			break;
		case 'j':
			W.o.jparent = optarg;
			break;
		default:
			usage(argv[0]);
			return FL_EXIT_INVALID;
		}
	}
	if (optind != argc || W.o.cycles < 1 || W.o.cycles >= MAXN || W.o.pings < 3 || W.o.pings > MAXS ||
	    W.o.connects < 1 || W.o.connects > MAXS) {
		usage(argv[0]);
		return FL_EXIT_INVALID;
	}
	W.o.pings_long = W.o.pings / 4 < 3 ? 3 : W.o.pings / 4;
	if (geteuid() != 0) {
		fprintf(stderr, "bench_net: needs root (network namespaces, tc, iptables, BPF, cgroups)\n");
		return FL_EXIT_UNRUNNABLE;
	}
	W.pid = getpid();
	fl_tl_cpu_jiffies(-1, &busy0, &total0);
	t_start = fl_tl_now_ns();
	/* the worker's orphans (delayers, tool children) come back to us, to be reaped and counted */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (setup() == 0 && !g_signal) {
		fflush(NULL);
		worker = fork();
		if (worker == 0) {
			struct sigaction dfl = {.sa_handler = SIG_DFL};

			sigaction(SIGINT, &dfl, NULL);
			sigaction(SIGTERM, &dfl, NULL);
			sigaction(SIGHUP, &dfl, NULL);
			/* its own group, so the parent can stop it and every child it made at once */
			setpgid(0, 0);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != W.pid)
				_exit(FL_EXIT_FAIL);
			_exit(worker_main());
		}
		if (worker > 0) {
			setpgid(worker, worker);
			g_worker = worker;
			if (g_signal)
				kill(-worker, SIGKILL);
			/* WNOWAIT: the zombie keeps its pid (and group id) ours until the cleanup has looked */
			{
				siginfo_t si;

				while (waitid(P_PID, (id_t)worker, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
					;
				status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
			}
			rc = status;
		}
	}
	if (cleanup_and_verify(worker) && rc == FL_EXIT_PASS)
		rc = FL_EXIT_FAIL;
	{
		/* the noise meter: CPU time the rest of the machine used while the bench ran */
		struct rusage self, kids;
		unsigned long long busy1, total1;
		double hz = (double)sysconf(_SC_CLK_TCK), ours, all;

		fl_tl_cpu_jiffies(-1, &busy1, &total1);
		getrusage(RUSAGE_SELF, &self);
		getrusage(RUSAGE_CHILDREN, &kids);
		ours = (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec + kids.ru_stime.tv_sec) +
		       (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
				kids.ru_stime.tv_usec) / 1e6;
		all = (double)(busy1 - busy0) / hz;
		printf("CPU over the run (%.0f s wall, %.0f CPU-seconds): this bench and its children %.1f s, everything "
		       "else %.1f s\n", ms_since(t_start) / 1000, (double)(total1 - total0) / hz, ours,
		       all > ours ? all - ours : 0.0);
	}
	if (g_signal) {
		fprintf(stderr, "bench_net: stopped by %s; cleaned up\n", strsignal(g_signal));
		rc = FL_EXIT_ABORTED;
	}
	return rc;
}
