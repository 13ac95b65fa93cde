/* The BPF LSM backend of syscall.error: where the kernel refuses BPF LSM (this host) the probe says why and the test skips with that reason; where it allows it (the test VM) a child in a cgroup of the test's own gets exact errnos on every hook, scope, probability, after/max, and revert leaves nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "fl_testlib.h"
#include "journal.h"
#include "procfs.h"
#include "sys.h"
#include "sys_backend_test.h"
#include "sys_lsm.h"
#include "target.h"

#define AGENT_WAIT_MS 120000
#define MAX_PROGS 1024

/* ---- the agent: a child in the test cgroup that makes syscalls on request ------------------ */

/*
 * Commands and replies go through shared memory and futexes, never through a syscall an LSM
 * hook sees (read, write, sendmsg, ...): those are what the faults break.
 */
enum op {
	OP_OPEN,          /* n open(path, O_RDONLY) */
	OP_TCP_CONNECT,   /* n TCP connects to 127.0.0.1:port */
	OP_UDP_SENDTO,    /* n unconnected sendto(127.0.0.1:port) */
	OP_UDP_SEND,      /* n connect() + send() to 127.0.0.1:port */
	OP_WRITE,         /* n write() to /dev/null */
	OP_READ,          /* n read() from /dev/zero */
	OP_SOCKET,        /* n socket(family, SOCK_DGRAM) */
	OP_BIND,          /* n bind(127.0.0.1:0) of a UDP socket */
	OP_LISTEN,        /* n listen() on a bound TCP socket */
	OP_ACCEPT,        /* n accept() of a connection the agent made to itself */
	OP_RECV,          /* n recv() of a datagram the agent sent itself */
	OP_MMAP,          /* n anonymous mmap() */
	OP_SETSOCKOPT,
	OP_GETSOCKOPT,
	OP_EXIT,
};

struct reply {
	int ok, errs, err_first, err_other, first_fail, last_fail;
};

struct chan {
	_Atomic uint32_t cmd_seq, done_seq;
	int op, family, n;
	uint16_t port;
	char path[256];
	struct reply r;
};

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

static void note(struct reply *r, int i, long rc, int e)
{
	if (rc >= 0) {
		r->ok++;
		return;
	}
	if (!r->errs++) {
		r->err_first = e;
		r->first_fail = i;
	} else if (e != r->err_first) {
		r->err_other++;
	}
	r->last_fail = i;
}

static struct sockaddr_in lo4(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	return a;
}

/* A TCP listener on 127.0.0.1 with a kernel-chosen port (its port into *port), or -1. */
static int self_listener(uint16_t *port)
{
	struct sockaddr_in a = lo4(0);
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 8) ||
	    getsockname(fd, (struct sockaddr *)&a, &al)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static void agent_op(struct chan *c, int devnull, int zero)
{
	struct reply *r = &c->r;
	struct sockaddr_in to = lo4(c->port), any = lo4(0);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	char b = 'x';

	memset(r, 0, sizeof(*r));
	r->first_fail = r->last_fail = -1;
	for (int i = 0; i < c->n; i++) {
		int fd = -1, fd2 = -1, fd3 = -1, one = 1, v = 0, e = 0;
		socklen_t vl = sizeof(v), al = sizeof(any);
		long rc = -1;
		uint16_t p = 0;
		void *m;

		errno = 0;
		switch (c->op) {
		case OP_OPEN:
			rc = fd = open(c->path, O_RDONLY | O_CLOEXEC);
			break;
		case OP_TCP_CONNECT:
			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			rc = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&to, sizeof(to));
			e = errno;
			if (fd >= 0)
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			errno = e;
			break;
		case OP_UDP_SENDTO:
			fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			rc = fd < 0 ? -1 : sendto(fd, &b, 1, 0, (struct sockaddr *)&to, sizeof(to));
			break;
		case OP_UDP_SEND:
			fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			rc = fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to)) ? -1 : send(fd, &b, 1, 0);
			break;
		case OP_WRITE:
			rc = write(devnull, &b, 1);
			break;
		case OP_READ:
			rc = read(zero, &b, 1);
			break;
		case OP_SOCKET:
			rc = fd = socket(c->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			break;
		case OP_BIND:
			fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&any, sizeof(any));
			break;
		case OP_LISTEN:
			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			rc = fd < 0 || bind(fd, (struct sockaddr *)&any, sizeof(any)) ? -2 : listen(fd, 8);
			break;
		case OP_ACCEPT:
			fd = self_listener(&p);
			to = lo4(p);
			fd2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			/* on loopback the handshake is done when connect() returns */
			if (fd < 0 || fd2 < 0 || connect(fd2, (struct sockaddr *)&to, sizeof(to)))
				rc = -2;
			else
				rc = fd3 = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
			break;
		case OP_RECV:
			fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (fd < 0 || bind(fd, (struct sockaddr *)&any, sizeof(any)) ||
			    getsockname(fd, (struct sockaddr *)&to, &al) ||
			    sendto(fd, &b, 1, 0, (struct sockaddr *)&to, sizeof(to)) != 1)
				rc = -2;
			else {
				struct pollfd pf = {.fd = fd, .events = POLLIN};

				/* loopback delivers at once; poll() is no hook, so it only bounds a lost datagram */
				rc = poll(&pf, 1, 2000) == 1 ? recv(fd, &b, 1, MSG_DONTWAIT) : -2;
			}
			any = lo4(0);
			break;
		case OP_MMAP:
			m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			rc = m == MAP_FAILED ? -1 : 0;
			if (m != MAP_FAILED)
				munmap(m, 4096);
			break;
		case OP_SETSOCKOPT:
			fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			rc = fd < 0 ? -2 : setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			break;
		case OP_GETSOCKOPT:
			fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			rc = fd < 0 ? -2 : getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vl);
			break;
		default:
			break;
		}
		/* -2: a step before the call under test failed; counted apart so a test sees it */
		note(r, i, rc, rc == -2 ? -1 : errno);
		if (fd3 >= 0)
			close(fd3);
		if (fd2 >= 0)
			close(fd2);
		if (fd >= 0)
			close(fd);
		to = lo4(c->port);
	}
}

/* Runs in the child; never returns. */
static void agent_main(const char *cg, struct chan *c)
{
	uint32_t seen = 0;
	int devnull, zero;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* nothing of the parent's: no listener, no journal, no BPF fd */
	syscall(SYS_close_range, 3, ~0U, 0);
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || zero < 0 || (cg[0] && fl_tl_cgroup_join(cg)))
		_exit(3);
	for (;;) {
		uint32_t now = atomic_load(&c->cmd_seq);

		if (now == seen) {
			futex(&c->cmd_seq, FUTEX_WAIT, seen, NULL);
			continue;
		}
		seen = now;
		if (c->op == OP_EXIT)
			_exit(0);
		agent_op(c, devnull, zero);
		atomic_store(&c->done_seq, seen);
		futex(&c->done_seq, FUTEX_WAKE, 1, NULL);
	}
}

/* ---- the test's world ----------------------------------------------------------------------- */

struct world {
	bool ready;
	bool probe_ok;
	char why_not[FL_ERR_MSG + 64];
	char cg[512];
	bool cg_made;
	char jdir[256], run_id[64];
	char dir[256], sibling[300];   /* the prefix dir, and "<dir>x" that shares its letters, not its path */
	char inside[320], outside[320];/* <dir>/f, <dir>x/f */
	struct fl_journal *j;
	struct chan *chan;
	pid_t agent, agent2;           /* agent2: the same agent outside any cgroup of ours */
	struct chan *chan2;
	uint16_t port_d, port_o;
	int tcp_d, tcp_o;
	pthread_t srv;
	bool srv_running;
	int stop[2];
	__u32 before_ids[MAX_PROGS];
	int nbefore;
	struct sys_live live;
};

static struct world W;

static const struct fl_injector test_inj = {.type = "syscall.error"};
static struct fl_fault test_fault = {.name = "sys-lsm", .inj = &test_inj};

static bool in_vm(void)
{
	const char *v = getenv("FL_VM");

	return v && !strcmp(v, "1");
}

static void *server_main(void *arg)
{
	struct world *w = arg;

	for (;;) {
		struct pollfd pf[3] = {
			{.fd = w->stop[0], .events = POLLIN},
			{.fd = w->tcp_d, .events = POLLIN},
			{.fd = w->tcp_o, .events = POLLIN},
		};

		if (poll(pf, 3, -1) < 0)
			continue;
		if (pf[0].revents)
			return NULL;
		for (int i = 1; i <= 2; i++)
			if (pf[i].revents & POLLIN) {
				int c = accept4(pf[i].fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

				if (c >= 0)
					close(c);
			}
	}
}

static int tcp_listener(uint16_t *port)
{
	struct sockaddr_in a = lo4(0);
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096) ||
	    getsockname(fd, (struct sockaddr *)&a, &al))
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

/* fl_sl_* programs loaded now that were not before the test. */
static int new_progs(struct world *w)
{
	return fl_tl_bpf_new_progs("fl_sl_", w->before_ids, w->nbefore);
}

/* LSM links of ours (tracing links to fl_sl_* programs), attached now. */
static int lsm_links(void)
{
	__u32 id = 0;
	int n = 0;

	while (!bpf_link_get_next_id(id, &id)) {
		struct bpf_link_info li;
		struct bpf_prog_info pi;
		__u32 len = sizeof(li), plen = sizeof(pi);
		int lfd = bpf_link_get_fd_by_id(id), pfd;

		if (lfd < 0)
			continue;
		memset(&li, 0, sizeof(li));
		if (!bpf_obj_get_info_by_fd(lfd, &li, &len) && li.type == BPF_LINK_TYPE_TRACING &&
		    (pfd = bpf_prog_get_fd_by_id(li.prog_id)) >= 0) {
			memset(&pi, 0, sizeof(pi));
			if (!bpf_obj_get_info_by_fd(pfd, &pi, &plen) && !strncmp(pi.name, "fl_sl_", 6))
				n++;
			close(pfd);
		}
		close(lfd);
	}
	return n;
}

static pid_t start_agent(const char *cg, struct chan **out)
{
	struct chan *c = mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pid;

	if (c == MAP_FAILED)
		return -1;
	memset(c, 0, sizeof(*c));
	pid = fork();
	if (pid == 0)
		agent_main(cg, c);
	if (pid < 0) {
		munmap(c, sizeof(*c));
		return -1;
	}
	*out = c;
	return pid;
}

static void stop_agent(pid_t *pid, struct chan **c)
{
	if (*pid > 0) {
		(*c)->op = OP_EXIT;
		atomic_fetch_add(&(*c)->cmd_seq, 1);
		futex(&(*c)->cmd_seq, FUTEX_WAKE, 1, NULL);
		/* a wedged agent is not waited for forever */
		for (int i = 0; i < 200 && waitpid(*pid, NULL, WNOHANG) == 0; i++)
			usleep(10000);
		if (kill(*pid, 0) == 0) {
			kill(*pid, SIGKILL);
			waitpid(*pid, NULL, 0);
		}
		*pid = 0;
	}
	if (*c) {
		munmap(*c, sizeof(**c));
		*c = NULL;
	}
}

static int write_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int group_setup(void **state)
{
	struct world *w = &W;
	struct fl_err e = {0};
	char mount[4096];
	int rc;

	memset(w, 0, sizeof(*w));
	w->tcp_d = w->tcp_o = -1;
	w->stop[0] = w->stop[1] = -1;
	*state = w;
	if (geteuid() != 0) {
		snprintf(w->why_not, sizeof(w->why_not), "needs root to load BPF programs and create cgroups");
		return 0;
	}
	rc = fl_sys_backend_lsm.probe(&e);
	if (rc) {
		/* test_probe asserts the reason; everything else skips with it */
		snprintf(w->why_not, sizeof(w->why_not), "%s", e.msg);
		return 0;
	}
	w->probe_ok = true;
	if (fl_cgroup_mount(NULL, mount, sizeof(mount)))
		return -1;
	w->nbefore = fl_tl_bpf_progs("fl_sl_", w->before_ids, MAX_PROGS);
	/* not faultline-*: that prefix belongs to runs, which recover may sweep */
	snprintf(w->cg, sizeof(w->cg), "%.400s/fl-lsmtest-%d", mount, (int)getpid());
	if (mkdir(w->cg, 0755))
		return -1;
	w->cg_made = true;
	fl_tl_run_id(w->run_id, sizeof(w->run_id), getpid(), "abcd");
	w->j = fl_tl_journal(w->jdir, sizeof(w->jdir), "fl-lsmtest", w->run_id, "test_sys_lsm");
	if (!w->j)
		return -1;
	if (fl_tl_mkdtemp(w->dir, sizeof(w->dir), "/tmp", "fl-lsmtest-files"))
		return -1;
	snprintf(w->sibling, sizeof(w->sibling), "%.250sx", w->dir);
	snprintf(w->inside, sizeof(w->inside), "%.250s/f", w->dir);
	snprintf(w->outside, sizeof(w->outside), "%.260s/f", w->sibling);
	if (mkdir(w->sibling, 0755) || write_file(w->inside) || write_file(w->outside))
		return -1;
	if ((w->tcp_d = tcp_listener(&w->port_d)) < 0 || (w->tcp_o = tcp_listener(&w->port_o)) < 0 ||
	    pipe2(w->stop, O_CLOEXEC))
		return -1;
	if (pthread_create(&w->srv, NULL, server_main, w))
		return -1;
	w->srv_running = true;
	/* forked before any BPF object exists, so they hold no link */
	w->agent = start_agent(w->cg, &w->chan);
	w->agent2 = start_agent("", &w->chan2);
	if (w->agent < 0 || w->agent2 < 0)
		return -1;
	w->ready = true;
	return 0;
}

static int drop_live(void **state)
{
	sys_drop_live(&fl_sys_backend_lsm, &((struct world *)*state)->live);
	return 0;
}

static int group_teardown(void **state)
{
	struct world *w = *state;
	struct fl_err e;
	int rc = 0;

	drop_live(state);
	stop_agent(&w->agent, &w->chan);
	stop_agent(&w->agent2, &w->chan2);
	if (w->srv_running) {
		if (write(w->stop[1], "x", 1) != 1)
			pthread_cancel(w->srv);
		pthread_join(w->srv, NULL);
	}
	if (w->cg_made && access(w->cg, F_OK) == 0 && fl_cgroup_remove(w->cg, 2000, &e))
		rc = -1;
	if (w->j)
		fl_journal_close(w->j, false);
	if (fl_tl_rm_rf(w->jdir) || fl_tl_rm_rf(w->dir) || (w->dir[0] && fl_tl_rm_rf(w->sibling)))
		rc = -1;
	{
		int *fds[] = {&w->tcp_d, &w->tcp_o, &w->stop[0], &w->stop[1]};

		for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
			if (*fds[i] >= 0)
				close(*fds[i]);
	}
	return rc;
}

#define NEED_WORLD(w)                                                 \
	do {                                                          \
		if (!(w)->ready) {                                    \
			print_message("skipped: %s\n", (w)->why_not); \
			skip();                                       \
		}                                                     \
	} while (0)

static struct reply ask(struct chan *c, int op, int family, uint16_t port, const char *path, int n)
{
	uint32_t want;
	double t0 = fl_tl_now_ms();

	c->op = op;
	c->family = family;
	c->port = port;
	c->n = n;
	snprintf(c->path, sizeof(c->path), "%s", path ? path : "");
	want = atomic_fetch_add(&c->cmd_seq, 1) + 1;
	futex(&c->cmd_seq, FUTEX_WAKE, 1, NULL);
	while (atomic_load(&c->done_seq) != want) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000000};

		if (fl_tl_now_ms() - t0 > AGENT_WAIT_MS)
			fail_msg("the agent did not answer op %d within %d ms", op, AGENT_WAIT_MS);
		futex(&c->done_seq, FUTEX_WAIT, atomic_load(&c->done_seq), &ts);
	}
	return c->r;
}

static struct reply agent(struct world *w, int op, uint16_t port, const char *path, int n)
{
	return ask(w->chan, op, AF_INET, port, path, n);
}

static void rule(struct fl_sys_rule *r, struct world *w, int err, double p, const char *const *names)
{
	sys_rule(r, &test_fault, w->agent, w->cg, err, p, names);
}

static void *apply(struct world *w, const struct fl_sys_rule *r)
{
	return sys_apply(&fl_sys_backend_lsm, w->j, &w->live, r);
}

static void revert(struct world *w, void *st, struct fl_observation *o)
{
	sys_revert(&fl_sys_backend_lsm, &w->live, st, o);
	assert_int_equal(lsm_links(), 0);
}

/* ---- the tests ------------------------------------------------------------------------------ */

/* The probe loads and attaches for real: here it works, or it says exactly why not. */
static void test_probe(void **state)
{
	struct world *w = *state;
	struct fl_err e = {0};
	char list[512] = "";
	FILE *f;
	int rc;

	if (geteuid() != 0) {
		print_message("skipped: %s\n", w->why_not);
		skip();
	}
	rc = fl_sys_backend_lsm.probe(&e);
	if ((f = fopen("/sys/kernel/security/lsm", "re"))) {
		if (!fgets(list, sizeof(list), f))
			list[0] = '\0';
		fclose(f);
		list[strcspn(list, "\n")] = '\0';
	}
	print_message("  probe: %d %s%s%s\n  active LSMs: %s\n", rc, e.msg, e.hint[0] ? " — " : "", e.hint,
		      list[0] ? list : "(unreadable)");
	if (in_vm()) {
		/* Debian's kernel with lsm=...,bpf: a refusal there is a bug, not a skip */
		assert_int_equal(rc, 0);
		return;
	}
	if (rc == 0)
		return; /* a host that allows BPF LSM: every test below runs */
	assert_int_not_equal(rc, 0);
	assert_true(!strncmp(e.msg, "BPF LSM unavailable: ", strlen("BPF LSM unavailable: ")));
	/* the kernel's own words and the remedy */
	assert_true(strstr(e.msg, strerror(-rc)) != NULL);
	assert_non_null(strstr(e.hint, "lsm="));
	assert_non_null(strstr(e.hint, "bpf"));
	assert_non_null(strstr(e.hint, "hypervisor"));
	/* nothing of the probe stays loaded */
	{
		__u32 ids[64];

		assert_int_equal(fl_tl_bpf_progs("fl_sl_", ids, 64), 0);
	}
	print_message("skipped: %s\n", e.msg);
	skip();
}

static void test_check_refuses(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct fl_err e;

	NEED_WORLD(w);
	rule(&r, w, EIO, 1.0, (const char *const[]){"openat", "write", "connect", "accept4", "mmap", "listen",
						    "recvfrom", "getsockopt", NULL});
	fl_err_clear(&e);
	assert_int_equal(fl_sys_backend_lsm.check(&r, &e), 0);
	rule(&r, w, EIO, 1.0, (const char *const[]){"openat", "fsync", NULL});
	assert_int_equal(fl_sys_backend_lsm.check(&r, &e), -EOPNOTSUPP);
	assert_non_null(strstr(e.msg, "fsync has no LSM hook"));
	assert_non_null(strstr(e.hint, "seccomp"));
	rule(&r, w, 0, 1.0, (const char *const[]){"openat", NULL});
	r.delay_ns = 1000000;
	assert_int_equal(fl_sys_backend_lsm.check(&r, &e), -EOPNOTSUPP);
	assert_non_null(strstr(e.msg, "delay"));
	rule(&r, w, EIO, 1.0, (const char *const[]){"openat", NULL});
	snprintf(r.path_prefix, sizeof(r.path_prefix), "relative/dir");
	assert_int_equal(fl_sys_backend_lsm.check(&r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "relative"));
	/* no cgroup of its own, no pid, not allowed host-wide: nothing to scope to */
	rule(&r, w, EIO, 1.0, (const char *const[]){"openat", NULL});
	r.cgroup_v2 = "";
	r.tgid = 0;
	assert_int_equal(fl_sys_backend_lsm.check(&r, &e), -ESRCH);
	assert_int_equal(lsm_links(), 0);
}

/* The target's open() under the prefix fails with EMFILE; outside the cgroup, or outside the prefix, it works. */
static void test_open_emfile(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct fl_observation o;
	struct reply in, sib, out, base;
	void *st;

	NEED_WORLD(w);
	rule(&r, w, EMFILE, 1.0, (const char *const[]){"openat", "open", NULL});
	snprintf(r.path_prefix, sizeof(r.path_prefix), "%s", w->dir);
	base = agent(w, OP_OPEN, 0, w->inside, 5);
	assert_int_equal(base.ok, 5);
	st = apply(w, &r);
	in = agent(w, OP_OPEN, 0, w->inside, 20);
	sib = agent(w, OP_OPEN, 0, w->outside, 20);
	out = ask(w->chan2, OP_OPEN, AF_INET, 0, w->inside, 20);
	print_message("  in the cgroup: %d of 20 opens of %s failed (%s); %s: %d ok; outside the cgroup: %d ok\n",
		      in.errs, w->inside, strerror(in.err_first), w->outside, sib.ok, out.ok);
	assert_int_equal(in.errs, 20);
	assert_int_equal(in.err_first, EMFILE);
	assert_int_equal(in.err_other, 0);
	/* "<dir>x" shares the prefix's letters, not its directory */
	assert_int_equal(sib.ok, 20);
	/* another process, outside the cgroup, opens the same path */
	assert_int_equal(out.ok, 20);
	revert(w, st, &o);
	assert_int_equal(sys_obs(&o, "calls_matched"), 20);
	assert_int_equal(sys_obs(&o, "calls_failed"), 20);
	in = agent(w, OP_OPEN, 0, w->inside, 5);
	assert_int_equal(in.ok, 5);
}

/* connect() refused with the configured errno, to the matched destination only. */
static void test_connect(void **state)
{
	struct world *w = *state;
	static const int errnos[] = {ECONNREFUSED, EHOSTUNREACH};

	NEED_WORLD(w);
	for (int k = 0; k < 2; k++) {
		struct fl_sys_rule r;
		struct fl_observation o;
		struct reply d, other, out;
		void *st;

		rule(&r, w, errnos[k], 1.0, (const char *const[]){"connect", NULL});
		sys_dst_lo(&r, w->port_d);
		st = apply(w, &r);
		d = agent(w, OP_TCP_CONNECT, w->port_d, NULL, 30);
		other = agent(w, OP_TCP_CONNECT, w->port_o, NULL, 30);
		out = ask(w->chan2, OP_TCP_CONNECT, AF_INET, w->port_d, NULL, 30);
		print_message("  %s: to D %d failed (%s), to O %d ok, outside %d ok\n", strerror(errnos[k]), d.errs,
			      strerror(d.err_first), other.ok, out.ok);
		assert_int_equal(d.errs, 30);
		assert_int_equal(d.err_first, errnos[k]);
		assert_int_equal(d.err_other, 0);
		assert_int_equal(other.ok, 30);
		assert_int_equal(out.ok, 30);
		revert(w, st, &o);
		assert_int_equal(sys_obs(&o, "calls_matched"), 30);
	}
}

/* Each of the other hooks, once: the call named fails with the errno, exactly. */
static void test_every_hook(void **state)
{
	struct world *w = *state;
	static const struct {
		const char *sys;
		int op, family, err;
	} cases[] = {
		{"write", OP_WRITE, AF_INET, EIO},         {"read", OP_READ, AF_INET, EIO},
		{"socket", OP_SOCKET, AF_UNIX, EMFILE},    {"socket", OP_SOCKET, AF_INET6, EAFNOSUPPORT},
		{"bind", OP_BIND, AF_INET, EADDRINUSE},    {"listen", OP_LISTEN, AF_INET, EADDRINUSE},
		{"accept4", OP_ACCEPT, AF_INET, EMFILE},   {"recvfrom", OP_RECV, AF_INET, ECONNRESET},
		{"mmap", OP_MMAP, AF_INET, ENOMEM},        {"setsockopt", OP_SETSOCKOPT, AF_INET, ENOPROTOOPT},
		{"getsockopt", OP_GETSOCKOPT, AF_INET, EINVAL},
	};

	NEED_WORLD(w);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fl_sys_rule r;
		struct fl_observation o;
		struct reply a, out;
		void *st;

		rule(&r, w, cases[i].err, 1.0, (const char *const[]){cases[i].sys, NULL});
		st = apply(w, &r);
		a = ask(w->chan, cases[i].op, cases[i].family, 0, NULL, 10);
		out = ask(w->chan2, cases[i].op, cases[i].family, 0, NULL, 10);
		print_message("  %-10s -> %d of 10 failed with %s; outside %d ok\n", cases[i].sys, a.errs,
			      a.errs ? strerror(a.err_first) : "-", out.ok);
		assert_int_equal(a.errs, 10);
		assert_int_equal(a.err_first, cases[i].err);
		assert_int_equal(a.err_other, 0);
		assert_int_equal(out.ok, 10);
		revert(w, st, &o);
		assert_true(sys_obs(&o, "calls_failed") >= 10);
	}
}

/* sendto narrowed by destination; unlike cgroup BPF, a connected UDP send() is caught too. */
static void test_sendmsg(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct reply d, other, conn;
	void *st;

	NEED_WORLD(w);
	rule(&r, w, ENETUNREACH, 1.0, (const char *const[]){"sendto", NULL});
	sys_dst_lo(&r, w->port_d);
	st = apply(w, &r);
	d = agent(w, OP_UDP_SENDTO, w->port_d, NULL, 20);
	other = agent(w, OP_UDP_SENDTO, w->port_o, NULL, 20);
	conn = agent(w, OP_UDP_SEND, w->port_d, NULL, 20);
	assert_int_equal(d.errs, 20);
	assert_int_equal(d.err_first, ENETUNREACH);
	assert_int_equal(other.ok, 20);
	assert_int_equal(conn.errs, 20);
	assert_int_equal(conn.err_first, ENETUNREACH);
	revert(w, st, NULL);
}

/* 50% over 2000 opens, counted by the child; observe agrees to the call. */
static void test_probability(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct fl_observation o;
	struct reply d;
	const int n = 2000;
	double ratio;
	void *st;

	NEED_WORLD(w);
	rule(&r, w, EMFILE, 0.5, (const char *const[]){"openat", NULL});
	snprintf(r.path_prefix, sizeof(r.path_prefix), "%s", w->dir);
	st = apply(w, &r);
	d = agent(w, OP_OPEN, 0, w->inside, n);
	ratio = (double)d.errs / n;
	print_message("  50%% configured: %d of %d opens failed (%.2f%%)\n", d.errs, n, 100 * ratio);
	assert_int_equal(d.err_other, 0);
	assert_true(ratio >= 0.45 && ratio <= 0.55);
	memset(&o, 0, sizeof(o));
	assert_int_equal(fl_sys_backend_lsm.observe(st, &o), 0);
	assert_int_equal(sys_obs(&o, "calls_matched"), n);
	assert_int_equal(sys_obs(&o, "calls_failed"), d.errs);
	revert(w, st, NULL);
}

static void test_after_max(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct fl_observation o;
	struct reply d;
	void *st;

	NEED_WORLD(w);
	rule(&r, w, EMFILE, 1.0, (const char *const[]){"openat", NULL});
	snprintf(r.path_prefix, sizeof(r.path_prefix), "%s", w->dir);
	r.after = 10;
	r.max = 25;
	st = apply(w, &r);
	d = agent(w, OP_OPEN, 0, w->inside, 100);
	print_message("  after 10, max 25: %d failed, calls %d..%d\n", d.errs, d.first_fail, d.last_fail);
	assert_int_equal(d.errs, 25);
	assert_int_equal(d.first_fail, 10);
	assert_int_equal(d.last_fail, 34);
	revert(w, st, &o);
	assert_int_equal(sys_obs(&o, "calls_matched"), 100);
	assert_int_equal(sys_obs(&o, "calls_failed"), 25);
}

/* Without a cgroup of its own (none, or the root), the target's process is the scope. */
static void test_tgid_scope(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct reply a, b;
	char mount[4096];
	void *st;

	NEED_WORLD(w);
	assert_int_equal(fl_cgroup_mount(NULL, mount, sizeof(mount)), 0);
	for (int k = 0; k < 2; k++) {
		rule(&r, w, EACCES, 1.0, (const char *const[]){"openat", NULL});
		snprintf(r.path_prefix, sizeof(r.path_prefix), "%s", w->dir);
		r.cgroup_v2 = k ? mount : "";
		r.tgid = w->agent2;
		st = apply(w, &r);
		a = ask(w->chan2, OP_OPEN, AF_INET, 0, w->inside, 10);
		b = agent(w, OP_OPEN, 0, w->inside, 10);
		assert_int_equal(a.errs, 10);
		assert_int_equal(a.err_first, EACCES);
		assert_int_equal(b.ok, 10);
		revert(w, st, NULL);
	}
}

/* Fork a fresh process that reverts every lsm record of the journal; its note into msg. */
static void revert_records_in_child(const char *journal, char *msg, size_t len)
{
	int pipefd[2], status;
	pid_t pid;
	ssize_t n;

	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fl_journal_info ji;
		struct fl_err e = {0};
		char last[FL_ERR_MSG] = "";
		int rc;

		close(pipefd[0]);
		rc = fl_journal_read(journal, &ji, &e);
		for (int i = 0; !rc && i < ji.nrecs; i++) {
			char b[32];

			if (!fl_rec_get(&ji.recs[i], "backend", b, sizeof(b)) || strcmp(b, "lsm"))
				continue;
			fl_err_clear(&e);
			rc = fl_sys_backend_lsm.revert_record(&ji.recs[i], &e);
			if (e.msg[0])
				snprintf(last, sizeof(last), "%s", e.msg);
			/* twice: idempotent */
			if (!rc)
				rc = fl_sys_backend_lsm.revert_record(&ji.recs[i], &e);
		}
		if (!rc)
			fl_journal_info_free(&ji);
		if (write(pipefd[1], rc ? e.msg : last, strlen(rc ? e.msg : last)) < 0)
			_exit(9);
		_exit(rc ? 1 : 0);
	}
	close(pipefd[1]);
	n = read(pipefd[0], msg, len - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("revert_record in a fresh process: %s", msg);
}

/*
 * revert_record in a fresh process while this one (the "controller") still holds the links: a
 * tracing link cannot be detached from outside, so it is revoked and acts no more; the
 * controller's own revert then removes it. A killed controller's links are simply gone.
 */
static void test_revert_record(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	char msg[FL_ERR_MSG], jdir[256] = "", journal[256] = "";
	struct reply d;
	int pipefd[2], status;
	pid_t pid;
	void *st;

	NEED_WORLD(w);
	rule(&r, w, EMFILE, 1.0, (const char *const[]){"openat", "connect", NULL});
	snprintf(r.path_prefix, sizeof(r.path_prefix), "%s", w->dir);
	st = apply(w, &r);
	assert_int_equal(lsm_links(), 2);
	assert_int_equal(agent(w, OP_OPEN, 0, w->inside, 3).errs, 3);
	revert_records_in_child(fl_journal_path(w->j), msg, sizeof(msg));
	print_message("  revert_record: %s\n", msg);
	assert_non_null(strstr(msg, "revoked"));
	d = agent(w, OP_OPEN, 0, w->inside, 10);
	assert_int_equal(d.ok, 10);
	revert(w, st, NULL);
	assert_int_equal(lsm_links(), 0);

	/* a controller that dies with the fault applied */
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char run2[64], dir[256] = "", path[256] = "", ok;
		struct fl_journal *j;
		struct fl_err e;
		void *st2 = NULL;

		close(pipefd[0]);
		fl_tl_run_id(run2, sizeof(run2), getpid(), "dead");
		j = fl_tl_journal(dir, sizeof(dir), "fl-lsmtest-dead", run2, "dead");
		ok = j && !fl_sys_backend_lsm.apply(&r, j, &st2, &e) ? 'k' : 'x';
		if (j)
			snprintf(path, sizeof(path), "%s", fl_journal_path(j));
		if (write(pipefd[1], &ok, 1) != 1 || write(pipefd[1], dir, sizeof(dir)) != (ssize_t)sizeof(dir) ||
		    write(pipefd[1], path, sizeof(path)) != (ssize_t)sizeof(path))
			_exit(2);
		pause();
		_exit(0);
	}
	close(pipefd[1]);
	{
		char c = 0;

		assert_int_equal(read(pipefd[0], &c, 1), 1);
		assert_int_equal(read(pipefd[0], jdir, sizeof(jdir)), sizeof(jdir));
		assert_int_equal(read(pipefd[0], journal, sizeof(journal)), sizeof(journal));
		close(pipefd[0]);
		if (c != 'k') {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			fl_tl_rm_rf(jdir);
			fail_msg("apply in the child failed");
		}
	}
	assert_int_equal(agent(w, OP_OPEN, 0, w->inside, 3).errs, 3);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	for (int i = 0; i < 200 && lsm_links(); i++)
		usleep(10000);
	assert_int_equal(lsm_links(), 0);
	assert_int_equal(agent(w, OP_OPEN, 0, w->inside, 3).ok, 3);
	revert_records_in_child(journal, msg, sizeof(msg));
	assert_int_equal(fl_tl_rm_rf(jdir), 0);
}

static void test_nothing_left(void **state)
{
	struct world *w = *state;
	struct fl_err e = {0};
	int status;

	NEED_WORLD(w);
	assert_int_equal(w->live.n, 0);
	assert_int_equal(lsm_links(), 0);
	stop_agent(&w->agent, &w->chan);
	stop_agent(&w->agent2, &w->chan2);
	assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(fl_cgroup_remove(w->cg, 2000, &e), 0);
	assert_int_equal(access(w->cg, F_OK), -1);
	for (int i = 0; i < 200 && new_progs(w); i++)
		usleep(10000);
	assert_int_equal(new_progs(w), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe),
		cmocka_unit_test_teardown(test_check_refuses, drop_live),
		cmocka_unit_test_teardown(test_open_emfile, drop_live),
		cmocka_unit_test_teardown(test_connect, drop_live),
		cmocka_unit_test_teardown(test_every_hook, drop_live),
		cmocka_unit_test_teardown(test_sendmsg, drop_live),
		cmocka_unit_test_teardown(test_probability, drop_live),
		cmocka_unit_test_teardown(test_after_max, drop_live),
		cmocka_unit_test_teardown(test_tgid_scope, drop_live),
		cmocka_unit_test_teardown(test_revert_record, drop_live),
		cmocka_unit_test(test_nothing_left),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
