/* Measures what the syscall.error BPF backends cost per call: cgroup BPF per connect() and BPF LSM per openat()/read(), in scope (matched, unmatched), out of scope, and with no program, in one run. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_testlib.h"
#include "journal.h"
#include "procfs.h"
#include "sys.h"

#define MATCHED_PORT 5432
#define OTHER_PORT 5433
#define MAX_ROUNDS 64
#define MAX_ROWS 8

struct table {
	const char *title;      /* "per connect() of a UDP socket" */
	int nrows;
	const char *names[MAX_ROWS];
	int base[MAX_ROWS];     /* the row each one is compared with */
	double samples[MAX_ROWS][MAX_ROUNDS], med[MAX_ROWS];
};

struct bench {
	char mount[4096], home[4096], in[512], out[512];
	char jdir[256], fdir[256], inside[320], unmatched[320];
	struct fl_journal *j;
	bool made_in, made_out, moved;
	int n, rounds;
};

static const struct fl_injector bench_inj = {.type = "syscall.error"};
static struct fl_fault bench_fault = {.name = "bench-sys", .inj = &bench_inj};

/* Our own cgroup v2 dir, to return to at the end. */
static int own_cgroup(const char *mount, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[4096];
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, len, "%.2000s%.2000s", mount, strcmp(line + 3, "/") ? line + 3 : "");
			rc = 0;
		}
	fclose(f);
	return rc;
}

static void rule_of(struct fl_sys_rule *r, struct bench *b, const char *sys, int err, double p)
{
	memset(r, 0, sizeof(*r));
	r->f = &bench_fault;
	r->sys[r->n++] = fl_syscall_by_name(sys);
	r->classes = r->sys[0]->cls;
	r->err = err;
	r->probability = p;
	r->cgroup_v2 = b->in;
}

static void *apply(const struct fl_sys_backend *be, struct bench *b, const struct fl_sys_rule *r)
{
	struct fl_err e = {0};
	void *st = NULL;

	if (be->check(r, &e) || be->apply(r, b->j, &st, &e)) {
		fprintf(stderr, "apply (%s): %s %s\n", be->name, e.msg, e.hint);
		return NULL;
	}
	return st;
}

static void drop(const struct fl_sys_backend *be, struct bench *b, void *st)
{
	struct fl_err e = {0};

	if (be->revert(st, &e))
		fprintf(stderr, "revert: %s\n", e.msg);
	be->release(st);
	fl_journal_mark_fault_reverted(b->j, bench_fault.name);
}

/* ---- cgroup BPF: connect() ------------------------------------------------------------------ */

/* Mean ns per connect() over n calls (each call re-connects the UDP socket: no handshake). */
static double per_connect(int fd, uint16_t port, int n)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int64_t t0 = fl_tl_now_ns();

	for (int i = 0; i < n; i++)
		(void)!connect(fd, (struct sockaddr *)&a, sizeof(a));
	return (double)(fl_tl_now_ns() - t0) / n;
}

enum { C_NONE_IN, C_NONE_OUT, C_OUT, C_UNMATCHED, C_PASS, C_REFUSED, C_NROWS };

static int bench_cgroup(struct bench *b, struct table *t)
{
	struct fl_sys_rule r;
	int in = -1, out = -1, rc = -1;

	*t = (struct table){
		.title = "cgroup backend, per connect() of a UDP socket to 127.0.0.1",
		.nrows = C_NROWS,
		.names = {"no program, socket in the cgroup", "no program, socket outside",
			  "program attached, socket out of scope", "in scope, unmatched destination",
			  "in scope, matched, passed (probability 0%)", "in scope, matched, failed (probability 100%)"},
		.base = {C_NONE_IN, C_NONE_OUT, C_NONE_OUT, C_NONE_IN, C_NONE_IN, C_NONE_IN},
	};
	/* a socket is its creator's cgroup's for life (cgroup hooks judge the socket, not the caller) */
	b->moved = true;
	if (fl_tl_cgroup_join(b->in) || (in = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    fl_tl_cgroup_join(b->out) || (out = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		perror("joining the bench cgroups");
		goto out;
	}
	per_connect(in, OTHER_PORT, b->n);
	/* rounds interleave the configurations, so drift on a noisy VM hits them alike */
	for (int k = 0; k < b->rounds; k++) {
		void *st;

		t->samples[C_NONE_IN][k] = per_connect(in, MATCHED_PORT, b->n);
		t->samples[C_NONE_OUT][k] = per_connect(out, MATCHED_PORT, b->n);
		rule_of(&r, b, "connect", ECONNREFUSED, 0.0);
		r.has_dst = true;
		r.dst.family = AF_INET;
		r.dst.prefix = 32;
		inet_pton(AF_INET, "127.0.0.1", r.dst.addr);
		r.dst_port = MATCHED_PORT;
		if (!(st = apply(&fl_sys_backend_cgroup, b, &r)))
			goto out;
		/* a load and attach just ran: warm up again first */
		per_connect(out, MATCHED_PORT, b->n / 4);
		t->samples[C_OUT][k] = per_connect(out, MATCHED_PORT, b->n);
		t->samples[C_UNMATCHED][k] = per_connect(in, OTHER_PORT, b->n);
		t->samples[C_PASS][k] = per_connect(in, MATCHED_PORT, b->n);
		drop(&fl_sys_backend_cgroup, b, st);
		r.probability = 1.0;
		if (!(st = apply(&fl_sys_backend_cgroup, b, &r)))
			goto out;
		per_connect(in, MATCHED_PORT, b->n / 4);
		t->samples[C_REFUSED][k] = per_connect(in, MATCHED_PORT, b->n);
		drop(&fl_sys_backend_cgroup, b, st);
	}
	rc = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

/* ---- BPF LSM: openat() and read() ---------------------------------------------------------- */

/* Mean ns per open()+close() of path (the hook runs in the open). */
static double per_open(const char *path, int n)
{
	int64_t t0 = fl_tl_now_ns();

	for (int i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd >= 0)
			close(fd);
	}
	return (double)(fl_tl_now_ns() - t0) / n;
}

/* Mean ns per 1-byte read() of /dev/zero: file_permission, the hottest hook, out of scope or not. */
static double per_read(int fd, int n)
{
	int64_t t0 = fl_tl_now_ns();
	char c;

	for (int i = 0; i < n; i++)
		(void)!read(fd, &c, 1);
	return (double)(fl_tl_now_ns() - t0) / n;
}

enum { L_NONE_IN, L_NONE_OUT, L_OUT, L_UNMATCHED, L_PASS, L_REFUSED, L_NROWS };
enum { R_NONE_OUT, R_OUT, R_NONE_IN, R_PASS, R_NROWS };

static int bench_lsm(struct bench *b, struct table *t, struct table *rt)
{
	struct fl_sys_rule r;
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC), rc = -1;

	*t = (struct table){
		.title = "LSM backend, per open()+close() of a file (the hook runs in openat)",
		.nrows = L_NROWS,
		.names = {"no program, process in the cgroup", "no program, process outside",
			  "program attached, process out of scope", "in scope, path outside the prefix",
			  "in scope, matched, passed (probability 0%)", "in scope, matched, failed (probability 100%)"},
		.base = {L_NONE_IN, L_NONE_OUT, L_NONE_OUT, L_NONE_IN, L_NONE_IN, L_NONE_IN},
	};
	*rt = (struct table){
		.title = "LSM backend, per 1-byte read() of /dev/zero (file_permission, run by every read on the host)",
		.nrows = R_NROWS,
		.names = {"no program, process outside", "`read` rule attached, process out of scope",
			  "no program, process in the cgroup", "in scope, matched, passed (probability 0%)"},
		.base = {R_NONE_OUT, R_NONE_OUT, R_NONE_IN, R_NONE_IN},
	};
	if (zero < 0)
		return -1;
	b->moved = true;
	/* the LSM judges the calling task: joining a cgroup moves the process in or out of scope */
	if (fl_tl_cgroup_join(b->in)) {
		perror("joining the bench cgroup");
		goto out;
	}
	per_open(b->inside, b->n);
	for (int k = 0; k < b->rounds; k++) {
		void *st;

		if (fl_tl_cgroup_join(b->in))
			goto out;
		t->samples[L_NONE_IN][k] = per_open(b->inside, b->n);
		rt->samples[R_NONE_IN][k] = per_read(zero, b->n);
		if (fl_tl_cgroup_join(b->out))
			goto out;
		t->samples[L_NONE_OUT][k] = per_open(b->inside, b->n);
		rt->samples[R_NONE_OUT][k] = per_read(zero, b->n);

		rule_of(&r, b, "openat", EMFILE, 0.0);
		snprintf(r.path_prefix, sizeof(r.path_prefix), "%s", b->fdir);
		if (!(st = apply(&fl_sys_backend_lsm, b, &r)))
			goto out;
		/* a load and attach just ran (verifier, trampoline, synchronize_rcu): warm up again first */
		per_open(b->inside, b->n / 4);
		t->samples[L_OUT][k] = per_open(b->inside, b->n);
		if (fl_tl_cgroup_join(b->in))
			goto out;
		t->samples[L_UNMATCHED][k] = per_open(b->unmatched, b->n);
		t->samples[L_PASS][k] = per_open(b->inside, b->n);
		drop(&fl_sys_backend_lsm, b, st);
		r.probability = 1.0;
		if (!(st = apply(&fl_sys_backend_lsm, b, &r)))
			goto out;
		per_open(b->inside, b->n / 4);
		t->samples[L_REFUSED][k] = per_open(b->inside, b->n);
		drop(&fl_sys_backend_lsm, b, st);

		rule_of(&r, b, "read", EIO, 0.0);
		if (!(st = apply(&fl_sys_backend_lsm, b, &r)))
			goto out;
		per_read(zero, b->n / 4);
		rt->samples[R_PASS][k] = per_read(zero, b->n);
		if (fl_tl_cgroup_join(b->out))
			goto out;
		rt->samples[R_OUT][k] = per_read(zero, b->n);
		drop(&fl_sys_backend_lsm, b, st);
	}
	rc = 0;
out:
	close(zero);
	return rc;
}

/* ---- output ---------------------------------------------------------------------------------- */

static void medians(struct table *t, int rounds)
{
	for (int k = 0; k < t->nrows; k++) {
		qsort(t->samples[k], (size_t)rounds, sizeof(double), fl_tl_cmp_double);
		t->med[k] = t->samples[k][rounds / 2];
	}
}

static void print_table(FILE *f, const struct table *t, bool md)
{
	if (md) {
		fprintf(f, "%s:\n\n| configuration | ns per call | vs no program | ratio |\n| --- | ---: | ---: | ---: |\n",
			t->title);
		for (int k = 0; k < t->nrows; k++)
			fprintf(f, "| %s | %.1f | %+.1f | %.3f |\n", t->names[k], t->med[k], t->med[k] - t->med[t->base[k]],
				t->med[k] / t->med[t->base[k]]);
		fprintf(f, "\n");
		return;
	}
	fprintf(f, "%s\n%-50s %10s %10s %8s\n", t->title, "configuration", "ns/call", "vs none", "ratio");
	for (int k = 0; k < t->nrows; k++)
		fprintf(f, "%-50s %10.1f %+10.1f %8.3f\n", t->names[k], t->med[k], t->med[k] - t->med[t->base[k]],
			t->med[k] / t->med[t->base[k]]);
	fprintf(f, "\n");
}

static void usage(const char *me)
{
	fprintf(stderr, "usage: %s cgroup|lsm [-n CALLS_PER_SAMPLE] [-r ROUNDS] [-o MARKDOWN_FILE]\n", me);
}

int main(int argc, char **argv)
{
	struct bench b = {.n = 0, .rounds = 7};
	struct table t1, t2;
	const char *md = NULL;
	bool lsm;
	int opt, rc = 1;
	FILE *f;

	if (argc < 2 || (strcmp(argv[1], "cgroup") && strcmp(argv[1], "lsm"))) {
		usage(argv[0]);
		return 2;
	}
	lsm = !strcmp(argv[1], "lsm");
	optind = 2;
	while ((opt = getopt(argc, argv, "n:r:o:h")) != -1) {
		switch (opt) {
		case 'n':
			b.n = atoi(optarg);
			break;
		case 'r':
			b.rounds = atoi(optarg);
			break;
		case 'o':
			md = optarg;
			break;
		default:
			usage(argv[0]);
			return 2;
		}
	}
	if (!b.n)
		b.n = lsm ? 20000 : 200000;
	if (b.n < 1000 || b.rounds < 1 || b.rounds > MAX_ROUNDS) {
		usage(argv[0]);
		return 2;
	}
	if (geteuid()) {
		fprintf(stderr, "bench_sys needs root (BPF programs, cgroups)\n");
		return 2;
	}
	if (fl_cgroup_mount(NULL, b.mount, sizeof(b.mount)) || own_cgroup(b.mount, b.home, sizeof(b.home))) {
		fprintf(stderr, "no cgroup v2 hierarchy or membership\n");
		return 2;
	}
	snprintf(b.in, sizeof(b.in), "%.400s/fl-bench-sys-in-%d", b.mount, (int)getpid());
	snprintf(b.out, sizeof(b.out), "%.400s/fl-bench-sys-out-%d", b.mount, (int)getpid());
	if (fl_tl_mkdtemp(b.fdir, sizeof(b.fdir), "/tmp", "fl-bench-sys-files"))
		return 1;
	snprintf(b.inside, sizeof(b.inside), "%.250s/f", b.fdir);
	{
		char run[64];

		fl_tl_run_id(run, sizeof(run), getpid(), "bnch");
		b.j = fl_tl_journal(b.jdir, sizeof(b.jdir), "fl-bench-sys", run, "bench_sys");
		if (!b.j)
			goto out;
	}
	if (mkdir(b.in, 0755) || !(b.made_in = true) || mkdir(b.out, 0755) || !(b.made_out = true)) {
		perror("mkdir cgroup");
		goto out;
	}
	{
		int fd1 = open(b.inside, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), fd2;

		if (fd1 >= 0)
			close(fd1);
		if (lsm) {
			/* outside the prefix, sharing its letters: d_path and the whole compare run, then fail */
			snprintf(b.unmatched, sizeof(b.unmatched), "%.250s-other", b.fdir);
			fd2 = open(b.unmatched, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (fd2 >= 0)
				close(fd2);
		}
	}
	if (lsm ? bench_lsm(&b, &t1, &t2) : bench_cgroup(&b, &t1))
		goto out;
	medians(&t1, b.rounds);
	if (lsm)
		medians(&t2, b.rounds);
	printf("median of %d rounds x %d calls\n\n", b.rounds, b.n);
	print_table(stdout, &t1, false);
	if (lsm)
		print_table(stdout, &t2, false);
	f = md ? fopen(md, "w") : NULL;
	if (f) {
		fprintf(f, "`bench_sys %s -n %d -r %d`: median of %d rounds of %d calls, configurations interleaved "
			   "in each round.\n\n",
			argv[1], b.n, b.rounds, b.rounds, b.n);
		print_table(f, &t1, true);
		if (lsm)
			print_table(f, &t2, true);
		fclose(f);
		printf("wrote %s\n", md);
	} else if (md) {
		perror(md);
	}
	rc = 0;
out:
	if (b.moved && fl_tl_cgroup_join(b.home))
		fprintf(stderr, "cannot return to %s: %s\n", b.home, strerror(errno));
	if (b.made_in && rmdir(b.in))
		fprintf(stderr, "rmdir %s: %s\n", b.in, strerror(errno));
	if (b.made_out && rmdir(b.out))
		fprintf(stderr, "rmdir %s: %s\n", b.out, strerror(errno));
	if (b.j)
		fl_journal_close(b.j, true);
	if (fl_tl_rm_rf(b.jdir) || fl_tl_rm_rf(b.fdir))
		rc = 1;
	if (b.unmatched[0])
		unlink(b.unmatched);
	return rc;
}
