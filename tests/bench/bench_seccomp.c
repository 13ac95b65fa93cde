/* Per-syscall cost of the seccomp backend in a launched target (this binary re-executed): no filter, filter with rules off, a rule on whose arguments do not match, a rule acting, and a call outside the filter, unpinned and on one CPU, in one run. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fl_testlib.h"
#include "journal.h"
#include "sys.h"

#define TARGET_ARG "--fl-bench-seccomp-target"
#define PORT 47101          /* udp connects go here */
#define RULE_PORT 9         /* the arg-matched rule wants this port: never the one used */
#define ROUNDS 5

/* ---- the target ---------------------------------------------------------------------------- */

/* ns per call of `what`, n calls. */
static double run_calls(const char *what, long n)
{
	struct sockaddr_in s = fl_tl_addr4("127.0.0.1", PORT);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int64_t t0 = fl_tl_now_ns();

	if (!strcmp(what, "close"))
		for (long i = 0; i < n; i++)
			close(-1); /* EBADF: the cheapest call the filter can name */
	else if (!strcmp(what, "connect"))
		for (long i = 0; i < n; i++)
			connect(fd, (struct sockaddr *)&s, sizeof(s));
	else if (!strcmp(what, "getppid"))
		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);
	t0 = fl_tl_now_ns() - t0;
	close(fd);
	return (double)t0 / (double)n;
}

static void __attribute__((noreturn)) target_main(void)
{
	char line[128], what[32];
	long n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin)) {
		if (sscanf(line, "%31s %ld", what, &n) == 2)
			printf("%.1f\n", run_calls(what, n));
		else
			_exit(0);
	}
	_exit(0);
}

/* ---- the driver ---------------------------------------------------------------------------- */

struct target {
	pid_t pid;
	int in, out;
};

static struct fl_journal *J;

static int read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n < len - 1) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};

		if (poll(&pf, 1, 60000) != 1 || read(fd, buf + n, 1) != 1)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return 0;
}

/* As the engine launches: prepare, fork, fds close-on-exec, the child hook last, exec, done. */
static int launch(struct target *t, struct fl_sys_rule *rules, int n)
{
	const struct fl_sys_backend *b = &fl_sys_backend_seccomp;
	int cmd[2], rsp[2], ep[2], e = 0;
	pid_t parent = getpid();
	char line[64];

	for (int i = 0; i < n; i++) {
		struct fl_err err = {0};

		if (b->launch_prepare(&rules[i], J, &err)) {
			fprintf(stderr, "bench_seccomp: launch_prepare: %s\n", err.msg);
			return -1;
		}
	}
	if (pipe2(cmd, O_CLOEXEC) || pipe2(rsp, O_CLOEXEC) || pipe2(ep, O_CLOEXEC))
		return -1;
	t->pid = fork();
	if (t->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent || dup2(cmd[0], 0) < 0 || dup2(rsp[1], 1) < 0)
			_exit(127);
		syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
		for (int i = 0; i < n; i++)
			if ((e = b->launch_child()) < 0)
				goto fail;
		execl("/proc/self/exe", "bench_seccomp", TARGET_ARG, (char *)NULL);
		e = -errno;
fail:
		if (write(ep[1], &e, sizeof(e)) < 0)
			_exit(125);
		_exit(127);
	}
	close(cmd[0]);
	close(rsp[1]);
	close(ep[1]);
	t->in = cmd[1];
	t->out = rsp[0];
	if (read(ep[0], &e, sizeof(e)) == (ssize_t)sizeof(e)) {
		close(ep[0]);
		waitpid(t->pid, NULL, 0);
		if (n)
			b->launch_done(0);
		fprintf(stderr, "bench_seccomp: launch failed: %s\n", strerror(-e));
		return -1;
	}
	close(ep[0]);
	if (n)
		b->launch_done(t->pid);
	for (int i = 0; i < n; i++)
		rules[i].tgid = t->pid;
	return read_line(t->out, line, sizeof(line));
}

static void target_stop(struct target *t)
{
	if (write(t->in, "quit\n", 5) < 0)
		kill(t->pid, SIGKILL);
	waitpid(t->pid, NULL, 0);
	close(t->in);
	close(t->out);
}

static double last_min, last_max;

/* Median over ROUNDS of ns per call (the rounds' min and max in last_min, last_max). */
static double measure(struct target *t, const char *what, long n)
{
	double v[ROUNDS];
	char line[64];

	for (int r = 0; r < ROUNDS; r++) {
		dprintf(t->in, "%s %ld\n", what, n);
		if (read_line(t->out, line, sizeof(line)))
			return -1;
		v[r] = atof(line);
	}
	qsort(v, ROUNDS, sizeof(v[0]), fl_tl_cmp_double);
	last_min = v[0];
	last_max = v[ROUNDS - 1];
	return v[ROUNDS / 2];
}

static void rule_init(struct fl_sys_rule *r, struct fl_fault *f, const char *name, const char *sys, int err)
{
	static const struct fl_injector inj = {.type = "syscall.error"};

	memset(r, 0, sizeof(*r));
	memset(f, 0, sizeof(*f));
	f->name = (char *)name;
	f->inj = &inj;
	r->f = f;
	r->sys[r->n] = fl_syscall_by_name(sys);
	r->classes = r->sys[r->n++]->cls;
	r->err = err;
	r->probability = 1.0;
	r->launched = true;
	r->cgroup_v2 = "";
}

struct row {
	const char *call, *setup;
	double ns, base, min, max;
};

static struct row row(const char *call, const char *setup, double ns, double base)
{
	return (struct row){call, setup, ns, base, last_min, last_max};
}

/* Append a row; its setup text names the pass (heap, freed by main); min/max are the last measure's. */
static void add_row(struct row *rows, int *nr, const char *mode, const char *call, const char *what, double ns,
		    double base)
{
	char *setup = NULL;

	if (asprintf(&setup, "%s%s", what, mode) < 0)
		setup = NULL;
	rows[(*nr)++] = row(call, setup ? setup : "?", ns, base);
}

/*
 * One pass: a plain target and a filtered one, every case measured, both stopped. pinned: the
 * bench, its targets and the supervisor all on CPU 0 (each notified call is then two context
 * switches on one CPU, independent of what else runs on the other); else wherever the scheduler
 * puts them (a round trip then also waits for a wake-up on another, possibly busy, CPU).
 */
static int bench_pass(bool pinned, struct row *rows, int *nr)
{
	const char *mode = pinned ? " [one CPU]" : "";
	struct fl_fault f[3];
	struct fl_sys_rule r[3];
	struct target plain, filt;
	struct fl_err e = {0};
	void *st_args = NULL, *st_act = NULL;
	double base_close, base_connect, base_getppid;
	cpu_set_t one, saved;
	int rc = 1;

	sched_getaffinity(0, sizeof(saved), &saved);
	if (pinned) {
		CPU_ZERO(&one);
		CPU_SET(0, &one);
		sched_setaffinity(0, sizeof(one), &one);
	}
	/* connect on port RULE_PORT only: never matched; connect any: acts; close: in the filter, never on */
	rule_init(&r[0], &f[0], "args", "connect", ECONNREFUSED);
	r[0].dst_port = RULE_PORT;
	rule_init(&r[1], &f[1], "act", "connect", ECONNREFUSED);
	rule_init(&r[2], &f[2], "close", "close", EBADF);
	if (launch(&plain, NULL, 0))
		goto out;
	if (launch(&filt, r, 3)) {
		target_stop(&plain);
		goto out;
	}
	base_close = measure(&plain, "close", 500000);
	add_row(rows, nr, mode, "close(-1)", "no filter", base_close, base_close);
	add_row(rows, nr, mode, "close(-1)", "in the filter, every rule off (CONTINUE)", measure(&filt, "close", 20000),
		base_close);
	base_connect = measure(&plain, "connect", 200000);
	add_row(rows, nr, mode, "UDP connect", "no filter", base_connect, base_connect);
	add_row(rows, nr, mode, "UDP connect", "in the filter, every rule off (CONTINUE)",
		measure(&filt, "connect", 20000), base_connect);
	if (fl_sys_backend_seccomp.apply(&r[0], J, &st_args, &e))
		goto stop;
	add_row(rows, nr, mode, "UDP connect", "rule on, dst_port does not match (sockaddr read, CONTINUE)",
		measure(&filt, "connect", 20000), base_connect);
	fl_sys_backend_seccomp.revert(st_args, &e);
	if (fl_sys_backend_seccomp.apply(&r[1], J, &st_act, &e))
		goto stop;
	add_row(rows, nr, mode, "UDP connect", "rule on and acting (fails ECONNREFUSED)",
		measure(&filt, "connect", 20000), base_connect);
	fl_sys_backend_seccomp.revert(st_act, &e);
	base_getppid = measure(&plain, "getppid", 500000);
	add_row(rows, nr, mode, "getppid", "no filter", base_getppid, base_getppid);
	add_row(rows, nr, mode, "getppid", "not in the filter (ALLOW in the kernel)", measure(&filt, "getppid", 500000),
		base_getppid);
	rc = 0;
stop:
	if (rc)
		fprintf(stderr, "bench_seccomp: apply: %s\n", e.msg);
	target_stop(&plain);
	target_stop(&filt);
	fl_sys_backend_seccomp.release(st_args);
	fl_sys_backend_seccomp.release(st_act);
out:
	sched_setaffinity(0, sizeof(saved), &saved);
	return rc;
}

int main(int argc, char **argv)
{
	const char *outpath = NULL; /* -o FILE: the table goes there too (markdown, for docs/benchmarks.md) */
	struct row rows[32];
	char dir[256], run_id[64];
	struct fl_err e = {0};
	struct utsname u;
	int nr = 0, opt, rc;
	FILE *out;

	if (argc == 2 && !strcmp(argv[1], TARGET_ARG))
		target_main();
	while ((opt = getopt(argc, argv, "o:")) != -1)
		if (opt == 'o')
			outpath = optarg;
	if (fl_sys_backend_seccomp.probe(&e)) {
		fprintf(stderr, "bench_seccomp: seccomp user notification unavailable: %s\n", e.msg);
		return 3;
	}
	fl_tl_run_id(run_id, sizeof(run_id), getpid(), "bnch");
	J = fl_tl_journal(dir, sizeof(dir), "fl-bench-sc", run_id, "bench_seccomp");
	if (!J)
		return 1;
	rc = bench_pass(false, rows, &nr) || bench_pass(true, rows, &nr);
	fl_journal_close(J, false);
	fl_tl_rm_rf(dir);
	if (rc)
		return 1;
	out = outpath ? fopen(outpath, "w") : stdout;
	if (!out) {
		fprintf(stderr, "bench_seccomp: %s: %s\n", outpath, strerror(errno));
		return 1;
	}
	uname(&u);
	fprintf(out, "### seccomp backend: cost per syscall (bench_seccomp)\n\n");
	fprintf(out, "Measured in a target launched through the backend's hooks (the bench binary re-executed), "
		     "median of %d rounds, kernel %s, %ld CPUs; unpinned, then everything on one CPU. \"in the "
		     "filter\" calls go to the supervisor and back (user notification); the rest never leave the "
		     "kernel.\n\n",
		ROUNDS, u.release, sysconf(_SC_NPROCESSORS_ONLN));
	fprintf(out, "| call | setup | ns/call (median) | rounds min..max | vs no filter | added |\n"
		     "| --- | --- | ---: | ---: | ---: | ---: |\n");
	for (int i = 0; i < nr; i++)
		fprintf(out, "| %s | %s | %.0f | %.0f..%.0f | %.1fx | %+.2f us |\n", rows[i].call, rows[i].setup,
			rows[i].ns, rows[i].min, rows[i].max, rows[i].ns / rows[i].base, (rows[i].ns - rows[i].base) / 1000.0);
	if (out != stdout)
		fclose(out);
	for (int i = 0; i < nr; i++)
		if (strcmp(rows[i].setup, "?"))
			free((char *)rows[i].setup);
	if (outpath) {
		char text[8192];
		FILE *in = fopen(outpath, "r");
		size_t n = in ? fread(text, 1, sizeof(text) - 1, in) : 0;

		text[n] = '\0';
		if (in)
			fclose(in);
		fputs(text, stdout);
	}
	return 0;
}
