/* The cgroup-BPF backend of syscall.error against a real child in a cgroup of the test's own: exact errnos, scope, measured probability, exact after/max, revert from the journal in a fresh process, and a host left as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "fl_testlib.h"
#include "journal.h"
#include "procfs.h"
#include "sys.h"
#include "sys_backend_test.h"
#include "sys_cgroup.h"
#include "target.h"

#define AGENT_WAIT_MS 60000
#define MAX_PROGS 1024
#define MAPPED FL_TL_MAPPED

/* ---- the agent: a child inside the test cgroup that makes syscalls on request --------------- */

enum op {
	OP_TCP_CONNECT,   /* n TCP connects to 127.0.0.1 (or ::1, ::ffff:127.0.0.1) : port */
	OP_UDP_CONNECT,   /* n UDP connects: the cheapest call that reaches cgroup/connect4 */
	OP_BIND,          /* n binds of a UDP socket to 127.0.0.1:0 */
	OP_SOCKET,        /* n socket(family, SOCK_DGRAM) */
	OP_UDP_SENDTO,    /* n unconnected sendto()s to port */
	OP_UDP_SEND,      /* n connect() then send() to port */
	OP_SETSOCKOPT,    /* n setsockopt(SO_REUSEADDR) */
	OP_GETSOCKOPT,    /* n getsockopt(SO_TYPE) */
	OP_EXIT,
};

struct cmd {
	int op;
	int family;        /* AF_INET, AF_INET6, MAPPED; OP_SOCKET: the socket's family */
	uint16_t port;
	int n;
};

struct reply {
	int ok;            /* calls that succeeded */
	int errs;          /* calls that failed */
	int err_first;     /* errno of the first failure */
	int err_other;     /* failures with another errno than err_first */
	int first_fail;    /* index of the first failed call, -1 if none */
	int last_fail;
};

static void note(struct reply *r, int i, int rc, int e)
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

static int sock_of(int family, int type)
{
	return socket(family == MAPPED ? AF_INET6 : family, type | SOCK_CLOEXEC, 0);
}

static void agent_do(const struct cmd *c, struct reply *r)
{
	struct sockaddr_storage ss;
	socklen_t sl = fl_tl_lo_addr(c->family, c->port, &ss);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	for (int i = 0; i < c->n; i++) {
		int fd = -1, rc = 0, one = 1, v;
		socklen_t vl = sizeof(v);
		struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

		switch (c->op) {
		case OP_TCP_CONNECT:
			fd = sock_of(c->family, SOCK_STREAM);
			rc = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&ss, sl);
			/* reset, not closed: no TIME_WAIT piles up */
			if (fd >= 0)
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			break;
		case OP_UDP_CONNECT:
			fd = sock_of(c->family, SOCK_DGRAM);
			rc = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&ss, sl);
			break;
		case OP_BIND:
			fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&any, sizeof(any));
			break;
		case OP_SOCKET:
			fd = socket(c->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			rc = fd;
			break;
		case OP_UDP_SENDTO:
			fd = sock_of(c->family, SOCK_DGRAM);
			rc = fd < 0 ? -1 : (int)sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, sl);
			break;
		case OP_UDP_SEND:
			fd = sock_of(c->family, SOCK_DGRAM);
			rc = fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) ? -1 : (int)send(fd, "x", 1, 0);
			break;
		case OP_SETSOCKOPT:
			fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			rc = fd < 0 ? -1 : setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			break;
		case OP_GETSOCKOPT:
			fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			rc = fd < 0 ? -1 : getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vl);
			break;
		default:
			break;
		}
		note(r, i, rc, errno);
		if (fd >= 0)
			close(fd);
	}
}

/* Runs in the child; never returns. */
static void agent_main(const char *cg, int sock)
{
	struct cmd c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (sock != 3) {
		if (dup2(sock, 3) < 0)
			_exit(2);
		sock = 3;
	}
	/* nothing of the parent's: no listener, no journal, no BPF fd */
	syscall(SYS_close_range, 4, ~0U, 0);
	/* into the cgroup before any socket exists: a socket belongs to its creator's cgroup */
	if (fl_tl_cgroup_join(cg))
		_exit(3);
	while (read(sock, &c, sizeof(c)) == (ssize_t)sizeof(c)) {
		struct reply r = {.first_fail = -1, .last_fail = -1};

		if (c.op == OP_EXIT)
			_exit(0);
		agent_do(&c, &r);
		if (write(sock, &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(4);
	}
	_exit(0);
}

/* ---- the test's world ----------------------------------------------------------------------- */

struct world {
	bool ready;
	char why_not[256];
	char cg[512];
	bool cg_made;
	char jdir[256], run_id[64];
	struct fl_journal *j;
	pid_t agent;
	int agent_sock;
	/* listeners outside the cgroup: D is the matched destination, O another one */
	uint16_t port_d, port_o;
	int tcp_d, tcp_o, tcp6_d, udp_d, udp_o;
	pthread_t srv;
	bool srv_running;
	int stop[2];
	__u32 before_ids[MAX_PROGS];
	int nbefore;
	/* applied and not yet released, for a teardown after a failed assertion */
	struct sys_live live;
};

static struct world W;

/* What the front would pass: a fault of a test-local syscall.error injector. */
static const struct fl_injector test_inj = {.type = "syscall.error"};
static struct fl_fault test_fault = {.name = "sys-cg", .inj = &test_inj};

static void *server_main(void *arg)
{
	struct world *w = arg;

	for (;;) {
		struct pollfd pf[6] = {
			{.fd = w->stop[0], .events = POLLIN}, {.fd = w->tcp_d, .events = POLLIN},
			{.fd = w->tcp_o, .events = POLLIN},   {.fd = w->tcp6_d, .events = POLLIN},
			{.fd = w->udp_d, .events = POLLIN},   {.fd = w->udp_o, .events = POLLIN},
		};
		char buf[64];

		if (poll(pf, 6, -1) < 0)
			continue;
		if (pf[0].revents)
			return NULL;
		for (int i = 1; i <= 3; i++)
			if (pf[i].revents & POLLIN) {
				int c = accept4(pf[i].fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

				if (c >= 0)
					close(c);
			}
		for (int i = 4; i <= 5; i++)
			if (pf[i].revents & POLLIN)
				while (recv(pf[i].fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
					;
	}
}

/* fl_sc_* programs that were not there before the test (another session may have its own). */
static int new_progs(struct world *w)
{
	return fl_tl_bpf_new_progs("fl_sc_", w->before_ids, w->nbefore);
}

/* Every program attached directly to the cgroup, over every hook the backend uses. */
static int attached_count(const char *cg)
{
	static const enum bpf_attach_type types[] = {
		BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT, BPF_CGROUP_INET4_BIND, BPF_CGROUP_INET6_BIND,
		BPF_CGROUP_INET_SOCK_CREATE, BPF_CGROUP_UDP4_SENDMSG, BPF_CGROUP_UDP6_SENDMSG,
		BPF_CGROUP_GETSOCKOPT, BPF_CGROUP_SETSOCKOPT,
	};
	int n = fl_tl_cgroup_attached(cg, types, sizeof(types) / sizeof(types[0]));

	assert_true(n >= 0);
	return n;
}

static int group_setup(void **state)
{
	struct world *w = &W;
	struct fl_err e = {0};
	char mount[4096];
	int sv[2];

	memset(w, 0, sizeof(*w));
	w->agent_sock = w->tcp_d = w->tcp_o = w->tcp6_d = w->udp_d = w->udp_o = -1;
	w->stop[0] = w->stop[1] = -1;
	*state = w;
	if (geteuid() != 0) {
		snprintf(w->why_not, sizeof(w->why_not), "needs root to load BPF programs and create cgroups");
		return 0;
	}
	/* the kernel must take the programs here: a refusal is a failure, not a skip */
	if (fl_sys_backend_cgroup.probe(&e)) {
		fprintf(stderr, "cgroup backend probe: %s (%s)\n", e.msg, e.hint);
		return -1;
	}
	if (fl_cgroup_mount(NULL, mount, sizeof(mount)))
		return -1;
	w->nbefore = fl_tl_bpf_progs("fl_sc_", w->before_ids, MAX_PROGS);
	/* not faultline-*: that prefix belongs to runs, which recover may sweep */
	snprintf(w->cg, sizeof(w->cg), "%.400s/fl-systest-%d", mount, (int)getpid());
	if (mkdir(w->cg, 0755))
		return -1;
	w->cg_made = true;
	fl_tl_run_id(w->run_id, sizeof(w->run_id), getpid(), "abcd");
	w->j = fl_tl_journal(w->jdir, sizeof(w->jdir), "fl-systest", w->run_id, "test_sys_cgroup");
	if (!w->j)
		return -1;
	if (fl_tl_port_set(&w->port_d, &w->tcp_d, &w->tcp6_d, &w->udp_d) ||
	    fl_tl_port_set(&w->port_o, &w->tcp_o, NULL, &w->udp_o) || pipe2(w->stop, O_CLOEXEC))
		return -1;
	if (pthread_create(&w->srv, NULL, server_main, w))
		return -1;
	w->srv_running = true;
	/* forked before any BPF object exists, so it holds no link */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -1;
	w->agent = fork();
	if (w->agent < 0)
		return -1;
	if (w->agent == 0) {
		close(sv[0]);
		agent_main(w->cg, sv[1]);
	}
	close(sv[1]);
	w->agent_sock = sv[0];
	w->ready = true;
	return 0;
}

/* After a failed assertion: whatever is still applied goes, so the next test starts clean. */
static int drop_live(void **state)
{
	sys_drop_live(&fl_sys_backend_cgroup, &((struct world *)*state)->live);
	return 0;
}

static void stop_agent(struct world *w)
{
	if (w->agent > 0) {
		struct cmd c = {.op = OP_EXIT};

		if (write(w->agent_sock, &c, sizeof(c)) != (ssize_t)sizeof(c))
			kill(w->agent, SIGKILL);
		waitpid(w->agent, NULL, 0);
		w->agent = 0;
	}
}

static int group_teardown(void **state)
{
	struct world *w = *state;
	struct fl_err e;
	int rc = 0;

	drop_live(state);
	stop_agent(w);
	if (w->srv_running) {
		if (write(w->stop[1], "x", 1) != 1)
			pthread_cancel(w->srv);
		pthread_join(w->srv, NULL);
	}
	if (w->cg_made && access(w->cg, F_OK) == 0 && fl_cgroup_remove(w->cg, 2000, &e))
		rc = -1;
	if (w->j)
		fl_journal_close(w->j, false);
	if (fl_tl_rm_rf(w->jdir))
		rc = -1;
	{
		int *fds[] = {&w->agent_sock, &w->tcp_d, &w->tcp_o, &w->tcp6_d, &w->udp_d, &w->udp_o,
			      &w->stop[0], &w->stop[1]};

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

static struct reply agent(struct world *w, int op, int family, uint16_t port, int n)
{
	struct cmd c = {.op = op, .family = family, .port = port, .n = n};
	struct pollfd pf = {.fd = w->agent_sock, .events = POLLIN};
	struct reply r;

	assert_int_equal(write(w->agent_sock, &c, sizeof(c)), sizeof(c));
	assert_int_equal(poll(&pf, 1, AGENT_WAIT_MS), 1);
	assert_int_equal(read(w->agent_sock, &r, sizeof(r)), sizeof(r));
	return r;
}

/* A rule as the front would build it: syscalls by name (NULL-terminated), errno, probability. */
static void rule(struct fl_sys_rule *r, struct world *w, int err, double p, const char *const *names)
{
	sys_rule(r, &test_fault, w->agent, w->cg, err, p, names);
}

static void *apply(struct world *w, const struct fl_sys_rule *r)
{
	return sys_apply(&fl_sys_backend_cgroup, w->j, &w->live, r);
}

static void revert(struct world *w, void *st, struct fl_observation *o)
{
	sys_revert(&fl_sys_backend_cgroup, &w->live, st, o);
	assert_int_equal(attached_count(w->cg), 0);
}

/* A connect from the test process itself, outside the cgroup: 0 or errno. */
static int outside_connect(int family, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl = fl_tl_lo_addr(family, port, &ss);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	assert_true(fd >= 0);
	rc = connect(fd, (struct sockaddr *)&ss, sl) ? errno : 0;
	close(fd);
	return rc;
}

/* ---- the tests ------------------------------------------------------------------------------ */

static void test_check_refuses(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct fl_err e;
	char mount[4096];

	NEED_WORLD(w);
	rule(&r, w, ECONNREFUSED, 1.0, (const char *const[]){"connect", "bind", "socket", "sendto", "setsockopt", NULL});
	fl_err_clear(&e);
	assert_int_equal(fl_sys_backend_cgroup.check(&r, &e), 0);

	static const struct {
		const char *sys;
		const char *words[2];
	} no[] = {
		{"openat", {"file I/O", "lsm"}}, {"write", {"file I/O", "seccomp"}},
		{"accept4", {"accept", "lsm"}},  {"recvfrom", {"recvmsg4", "lsm"}},
		{"listen", {"listen", "lsm"}},   {"fsync", {"seccomp", "fsync"}},
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		rule(&r, w, EIO, 1.0, (const char *const[]){"connect", no[i].sys, NULL});
		fl_err_clear(&e);
		assert_int_equal(fl_sys_backend_cgroup.check(&r, &e), -EOPNOTSUPP);
		print_message("  %s: %s\n", no[i].sys, e.msg);
		assert_non_null(strstr(e.msg, no[i].sys));
		assert_non_null(strstr(e.msg, no[i].words[0]));
		assert_non_null(strstr(e.msg, no[i].words[1]));
	}
	/* delays are not for a BPF hook */
	rule(&r, w, 0, 1.0, (const char *const[]){"connect", NULL});
	r.delay_ns = 1000000;
	fl_err_clear(&e);
	assert_int_equal(fl_sys_backend_cgroup.check(&r, &e), -EOPNOTSUPP);
	assert_non_null(strstr(e.msg, "delay"));
	/* the root cgroup hits every process of the host: only when allowed */
	assert_int_equal(fl_cgroup_mount(NULL, mount, sizeof(mount)), 0);
	rule(&r, w, ECONNREFUSED, 1.0, (const char *const[]){"connect", NULL});
	r.cgroup_v2 = mount;
	fl_err_clear(&e);
	assert_int_equal(fl_sys_backend_cgroup.check(&r, &e), -EPERM);
	assert_non_null(strstr(e.msg, "root cgroup"));
	r.allow_host_wide = true;
	assert_int_equal(fl_sys_backend_cgroup.check(&r, &e), 0);
	/* no cgroup at all */
	r.cgroup_v2 = "";
	assert_int_not_equal(fl_sys_backend_cgroup.check(&r, &e), 0);
	assert_int_equal(attached_count(w->cg), 0);
}

/* connect() fails with exactly the errno, only inside the cgroup, only to the matched destination. */
static void test_connect_errno_exact(void **state)
{
	struct world *w = *state;
	static const int errnos[] = {ECONNREFUSED, EHOSTUNREACH};

	NEED_WORLD(w);
	for (size_t k = 0; k < 2; k++) {
		struct fl_sys_rule r;
		struct fl_observation o;
		struct reply d, d6, o4, base;
		void *st;

		rule(&r, w, errnos[k], 1.0, (const char *const[]){"connect", NULL});
		sys_dst_lo(&r, w->port_d);
		base = agent(w, OP_TCP_CONNECT, AF_INET, w->port_d, 20);
		assert_int_equal(base.ok, 20);
		st = apply(w, &r);
		d = agent(w, OP_TCP_CONNECT, AF_INET, w->port_d, 100);
		d6 = agent(w, OP_TCP_CONNECT, MAPPED, w->port_d, 20);
		o4 = agent(w, OP_TCP_CONNECT, AF_INET, w->port_o, 50);
		print_message("  %s: to D %d failed (%s), mapped %d failed, to O %d ok\n", strerror(errnos[k]), d.errs,
			      strerror(d.err_first), d6.errs, o4.ok);
		assert_int_equal(d.errs, 100);
		assert_int_equal(d.err_first, errnos[k]);
		assert_int_equal(d.err_other, 0);
		/* ::ffff:127.0.0.1 from a v6 socket is the same destination */
		assert_int_equal(d6.errs, 20);
		assert_int_equal(d6.err_first, errnos[k]);
		/* another port is not the matched destination */
		assert_int_equal(o4.ok, 50);
		/* this process is outside the cgroup */
		assert_int_equal(outside_connect(AF_INET, w->port_d), 0);
		revert(w, st, &o);
		assert_int_equal(sys_obs(&o, "calls_matched"), 120);
		assert_int_equal(sys_obs(&o, "calls_failed"), 120);
		d = agent(w, OP_TCP_CONNECT, AF_INET, w->port_d, 20);
		assert_int_equal(d.ok, 20);
	}
}

static void test_bind_socket_sockopt(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct fl_observation o;
	struct reply a, b;
	void *st;
	int fd;

	NEED_WORLD(w);
	rule(&r, w, EADDRINUSE, 1.0, (const char *const[]){"bind", NULL});
	st = apply(w, &r);
	a = agent(w, OP_BIND, AF_INET, 0, 30);
	assert_int_equal(a.errs, 30);
	assert_int_equal(a.err_first, EADDRINUSE);
	assert_int_equal(a.err_other, 0);
	/* outside: binds as usual */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	{
		struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

		assert_int_equal(bind(fd, (struct sockaddr *)&any, sizeof(any)), 0);
	}
	close(fd);
	revert(w, st, &o);
	assert_int_equal(sys_obs(&o, "calls_failed"), 30);

	rule(&r, w, EMFILE, 1.0, (const char *const[]){"socket", NULL});
	st = apply(w, &r);
	a = agent(w, OP_SOCKET, AF_INET, 0, 30);
	b = agent(w, OP_SOCKET, AF_INET6, 0, 10);
	assert_int_equal(a.errs, 30);
	assert_int_equal(a.err_first, EMFILE);
	assert_int_equal(a.err_other, 0);
	assert_int_equal(b.errs, 10);
	/* cgroup/sock_create runs for inet sockets only: a unix socket is untouched (the LSM backend catches it) */
	a = agent(w, OP_SOCKET, AF_UNIX, 0, 10);
	assert_int_equal(a.ok, 10);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	close(fd);
	revert(w, st, &o);
	assert_int_equal(sys_obs(&o, "calls_matched"), 40);

	/* only the sockopt call named: setsockopt fails, getsockopt goes on */
	rule(&r, w, ENOPROTOOPT, 1.0, (const char *const[]){"setsockopt", NULL});
	st = apply(w, &r);
	a = agent(w, OP_SETSOCKOPT, AF_INET, 0, 25);
	b = agent(w, OP_GETSOCKOPT, AF_INET, 0, 25);
	assert_int_equal(a.errs, 25);
	assert_int_equal(a.err_first, ENOPROTOOPT);
	assert_int_equal(b.ok, 25);
	revert(w, st, NULL);
	rule(&r, w, EINVAL, 1.0, (const char *const[]){"getsockopt", NULL});
	st = apply(w, &r);
	b = agent(w, OP_GETSOCKOPT, AF_INET, 0, 25);
	a = agent(w, OP_SETSOCKOPT, AF_INET, 0, 25);
	assert_int_equal(b.errs, 25);
	assert_int_equal(b.err_first, EINVAL);
	assert_int_equal(a.ok, 25);
	revert(w, st, NULL);
}

/* sendmsg: unconnected UDP sends to the destination fail; connected sends are judged at connect only. */
static void test_sendmsg_udp_only(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct fl_observation o;
	struct reply d, other, conn;
	void *st;

	NEED_WORLD(w);
	rule(&r, w, ENETUNREACH, 1.0, (const char *const[]){"sendto", NULL});
	sys_dst_lo(&r, w->port_d);
	st = apply(w, &r);
	d = agent(w, OP_UDP_SENDTO, AF_INET, w->port_d, 40);
	other = agent(w, OP_UDP_SENDTO, AF_INET, w->port_o, 40);
	conn = agent(w, OP_UDP_SEND, AF_INET, w->port_d, 10);
	assert_int_equal(d.errs, 40);
	assert_int_equal(d.err_first, ENETUNREACH);
	assert_int_equal(d.err_other, 0);
	assert_int_equal(other.ok, 40);
	/* the documented limit: a connected UDP socket's send() never reaches cgroup/sendmsg4 */
	assert_int_equal(conn.ok, 10);
	revert(w, st, &o);
	assert_int_equal(sys_obs(&o, "calls_matched"), 40);
}

/* 50% over 4000 UDP connects: counted by the child itself, and observe agrees to the call. */
static void test_probability(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct fl_observation o;
	struct reply d;
	const int n = 4000;
	void *st;
	double ratio;

	NEED_WORLD(w);
	rule(&r, w, ECONNREFUSED, 0.5, (const char *const[]){"connect", NULL});
	sys_dst_lo(&r, w->port_d);
	st = apply(w, &r);
	d = agent(w, OP_UDP_CONNECT, AF_INET, w->port_d, n);
	ratio = (double)d.errs / n;
	print_message("  50%% configured: %d of %d failed (%.2f%%)\n", d.errs, n, 100 * ratio);
	assert_int_equal(d.ok + d.errs, n);
	assert_int_equal(d.err_other, 0);
	assert_true(ratio >= 0.45 && ratio <= 0.55);
	memset(&o, 0, sizeof(o));
	assert_int_equal(fl_sys_backend_cgroup.observe(st, &o), 0);
	assert_int_equal(sys_obs(&o, "calls_matched"), n);
	assert_int_equal(sys_obs(&o, "calls_failed"), d.errs);
	assert_true(fabs(sys_obs(&o, "failed_observed") - ratio) < 1e-9);
	revert(w, st, NULL);
}

/* after 10, max 25: calls 0..9 pass, 10..34 fail, the rest pass; exactly. */
static void test_after_max(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct fl_observation o;
	struct reply d;
	void *st;

	NEED_WORLD(w);
	rule(&r, w, ECONNREFUSED, 1.0, (const char *const[]){"connect", NULL});
	sys_dst_lo(&r, w->port_d);
	r.after = 10;
	r.max = 25;
	st = apply(w, &r);
	d = agent(w, OP_UDP_CONNECT, AF_INET, w->port_d, 100);
	print_message("  after 10, max 25: %d failed, calls %d..%d\n", d.errs, d.first_fail, d.last_fail);
	assert_int_equal(d.errs, 25);
	assert_int_equal(d.first_fail, 10);
	assert_int_equal(d.last_fail, 34);
	revert(w, st, &o);
	assert_int_equal(sys_obs(&o, "calls_matched"), 100);
	assert_int_equal(sys_obs(&o, "calls_failed"), 25);

	/* after with a probability: none of the first `after` is ever failed */
	rule(&r, w, ECONNREFUSED, 0.5, (const char *const[]){"connect", NULL});
	sys_dst_lo(&r, w->port_d);
	r.after = 50;
	r.max = 100;
	st = apply(w, &r);
	d = agent(w, OP_UDP_CONNECT, AF_INET, w->port_d, 600);
	assert_true(d.first_fail >= 50);
	assert_int_equal(d.errs, 100);
	revert(w, st, NULL);
}

/* Fork a fresh process that reverts every record of a journal, as recover would. */
static void revert_records_in_child(const char *journal)
{
	int pipefd[2], status;
	pid_t pid;
	char msg[FL_ERR_MSG] = "";

	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fl_journal_info ji;
		struct fl_err e = {0};
		int rc;

		close(pipefd[0]);
		rc = fl_journal_read(journal, &ji, &e);
		for (int i = 0; !rc && i < ji.nrecs; i++) {
			char b[32];

			if (!fl_rec_get(&ji.recs[i], "backend", b, sizeof(b)) || strcmp(b, "cgroup"))
				continue;
			rc = fl_sys_backend_cgroup.revert_record(&ji.recs[i], &e);
			/* twice: idempotent */
			if (!rc)
				rc = fl_sys_backend_cgroup.revert_record(&ji.recs[i], &e);
		}
		if (!rc)
			fl_journal_info_free(&ji);
		if (write(pipefd[1], e.msg, strlen(e.msg)) < 0)
			_exit(9);
		_exit(rc ? 1 : 0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], msg, sizeof(msg) - 1) < 0)
		msg[0] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("revert_record in a fresh process: %s", msg);
}

static void test_revert_record_in_fresh_process(void **state)
{
	struct world *w = *state;
	struct fl_sys_rule r;
	struct fl_journal_info ji;
	struct fl_err e = {0};
	struct reply d;
	char b[64];
	void *st;

	NEED_WORLD(w);
	rule(&r, w, ECONNREFUSED, 1.0, (const char *const[]){"connect", "bind", "socket", "sendto", "setsockopt",
							      "getsockopt", NULL});
	st = apply(w, &r);
	assert_int_equal(attached_count(w->cg), 9);
	d = agent(w, OP_UDP_CONNECT, AF_INET, w->port_d, 5);
	assert_int_equal(d.errs, 5);
	/* the record is the backend's own and names what revert needs */
	assert_int_equal(fl_journal_read(fl_journal_path(w->j), &ji, &e), 0);
	assert_true(ji.nrecs > 0);
	assert_non_null(fl_rec_get(&ji.recs[ji.nrecs - 1], "backend", b, sizeof(b)));
	assert_string_equal(b, "cgroup");
	assert_non_null(fl_rec_get(&ji.recs[ji.nrecs - 1], "tag", b, sizeof(b)));
	assert_non_null(fl_rec_get(&ji.recs[ji.nrecs - 1], "cgid", b, sizeof(b)));
	assert_non_null(fl_rec_get(&ji.recs[ji.nrecs - 1], "progs", b, sizeof(b)));
	fl_journal_info_free(&ji);
	/* this process still holds the links: revert_record must detach them anyway */
	revert_records_in_child(fl_journal_path(w->j));
	assert_int_equal(attached_count(w->cg), 0);
	d = agent(w, OP_UDP_CONNECT, AF_INET, w->port_d, 5);
	assert_int_equal(d.ok, 5);
	/* the controller's own revert after that is a no-op, not an error */
	revert(w, st, NULL);
	assert_int_equal(new_progs(w), 0);
}

/* A controller killed with its fault applied: its unpinned links go with it; revert_record finds nothing. */
static void test_dead_controller(void **state)
{
	struct world *w = *state;
	char jdir[256] = "", journal[512];
	int pipefd[2], status;
	pid_t pid;

	NEED_WORLD(w);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char run2[64], dir[256] = "", ok;
		struct fl_journal *j;
		struct fl_sys_rule r;
		struct fl_err e;
		void *st = NULL;

		close(pipefd[0]);
		/* its own journal, as another controller would have */
		fl_tl_run_id(run2, sizeof(run2), getpid(), "dead");
		j = fl_tl_journal(dir, sizeof(dir), "fl-systest-dead", run2, "dead");
		memset(&r, 0, sizeof(r));
		r.f = &test_fault;
		r.sys[r.n++] = fl_syscall_by_name("connect");
		r.classes = FL_SYS_CONNECT;
		r.err = ECONNREFUSED;
		r.probability = 1.0;
		r.cgroup_v2 = w->cg;
		ok = j && !fl_sys_backend_cgroup.apply(&r, j, &st, &e) ? 'k' : 'x';
		if (write(pipefd[1], &ok, 1) != 1 || write(pipefd[1], dir, sizeof(dir)) != (ssize_t)sizeof(dir))
			_exit(2);
		if (j)
			snprintf(dir, sizeof(dir), "%s", fl_journal_path(j));
		if (write(pipefd[1], dir, sizeof(dir)) != (ssize_t)sizeof(dir))
			_exit(2);
		pause();
		_exit(0);
	}
	close(pipefd[1]);
	{
		char c = 0;

		assert_int_equal(read(pipefd[0], &c, 1), 1);
		assert_int_equal(read(pipefd[0], jdir, sizeof(jdir)), sizeof(jdir));
		assert_int_equal(read(pipefd[0], journal, 256), 256);
		close(pipefd[0]);
		if (c != 'k') {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			fl_tl_rm_rf(jdir);
			fail_msg("apply in the child failed");
		}
	}
	assert_int_equal(attached_count(w->cg), 2);
	assert_int_equal(agent(w, OP_UDP_CONNECT, AF_INET, w->port_d, 3).errs, 3);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* the kernel frees a dead process's links asynchronously: give it a moment */
	for (int i = 0; i < 100 && attached_count(w->cg); i++)
		usleep(10000);
	assert_int_equal(attached_count(w->cg), 0);
	assert_int_equal(agent(w, OP_UDP_CONNECT, AF_INET, w->port_d, 3).ok, 3);
	/* its record, read in a fresh process, has nothing left to do: still 0 */
	revert_records_in_child(journal);
	assert_int_equal(attached_count(w->cg), 0);
	assert_int_equal(fl_tl_rm_rf(jdir), 0);
}

/* Last: the agent, the cgroup and every program of ours gone; the host as it was. */
static void test_nothing_left(void **state)
{
	struct world *w = *state;
	struct fl_err e = {0};
	int status;

	NEED_WORLD(w);
	assert_int_equal(w->live.n, 0);
	assert_int_equal(attached_count(w->cg), 0);
	stop_agent(w);
	assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(fl_cgroup_remove(w->cg, 2000, &e), 0);
	assert_int_equal(access(w->cg, F_OK), -1);
	/* freed programs leave the id table a moment after their last reference */
	for (int i = 0; i < 100 && new_progs(w); i++)
		usleep(10000);
	assert_int_equal(new_progs(w), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_check_refuses, drop_live),
		cmocka_unit_test_teardown(test_connect_errno_exact, drop_live),
		cmocka_unit_test_teardown(test_bind_socket_sockopt, drop_live),
		cmocka_unit_test_teardown(test_sendmsg_udp_only, drop_live),
		cmocka_unit_test_teardown(test_probability, drop_live),
		cmocka_unit_test_teardown(test_after_max, drop_live),
		cmocka_unit_test_teardown(test_revert_record_in_fresh_process, drop_live),
		cmocka_unit_test_teardown(test_dead_controller, drop_live),
		cmocka_unit_test(test_nothing_left),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
