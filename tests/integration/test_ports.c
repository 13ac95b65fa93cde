/* ports.exhaust, ports.occupy and client.slowloris against real sockets: EADDRNOTAVAIL / EADDRINUSE during the fault and not after, counts that agree with the kernel, slow-header swarms against the naive and hardened Go targets, revert_record from a fresh process, nothing left behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fl_testlib.h"
#include "journal.h"
#include "procfs.h"
#include "scenario.h"

/* listeners in the test namespace: 8080 and 8081 on 127.0.0.1, 8082 on [::1] */
#define P_A 8080
#define P_B 8081
#define P_V6 8082
#define RANGE_LO 40000
#define RANGE_HI 40199
#define RANGE_N (RANGE_HI - RANGE_LO + 1)

struct world {
	bool ready;
	char why_not[200];
	char ns[64], ns_full[64];        /* a 200-port range; the default range */
	char ns_path[128], full_path[128];
	bool ns_made, full_made;
	char jdir[128], run_id[64];
	struct fl_journal *j;
	struct fl_target_info info;
	pid_t listener;
	bool v6;
	struct fl_scenario *live[8];
	int nlive;
	pid_t go[4];                     /* Go targets running, killed by drop_live after a failure */
	char targets[PATH_MAX];
};

static struct world W;

/* ---- small helpers ---------------------------------------------------------------------------- */

static int raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	rl.rlim_cur = rl.rlim_max;
	return setrlimit(RLIMIT_NOFILE, &rl) ? -errno : 0;
}

static int listen_on(int family, const char *ip, uint16_t port)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		inet_pton(AF_INET, ip, &s4->sin_addr);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
		sl = sizeof(*s6);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 4096)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The listener process: accepts everything and keeps it (a closed server end would free a client port). */
static void listener_main(int ready, bool v6)
{
	struct pollfd pf[3];
	int n = 0;

	raise_nofile();
	pf[n++].fd = listen_on(AF_INET, "127.0.0.1", P_A);
	pf[n++].fd = listen_on(AF_INET, "127.0.0.1", P_B);
	if (v6)
		pf[n++].fd = listen_on(AF_INET6, "::1", P_V6);
	for (int i = 0; i < n; i++) {
		if (pf[i].fd < 0)
			_exit(3);
		pf[i].events = POLLIN;
	}
	if (write(ready, "r", 1) != 1)
		_exit(3);
	close(ready);
	for (;;) {
		if (poll(pf, (nfds_t)n, -1) <= 0)
			continue;
		for (int i = 0; i < n; i++)
			if (pf[i].revents)
				accept4(pf[i].fd, NULL, NULL, SOCK_CLOEXEC);
	}
}

static socklen_t endpoint(int family, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*s4);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	s6->sin6_addr = in6addr_loopback;
	return sizeof(*s6);
}

/* A non-blocking connect, reset on close (no TIME_WAIT to skew the next count): 0 or errno. */
static int connect_once(int family, uint16_t port, int *keep)
{
	struct sockaddr_storage ss;
	socklen_t sl = endpoint(family, port, &ss);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return errno;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS)
		rc = errno;
	if (rc || !keep)
		close(fd);
	else
		*keep = fd;
	return rc;
}

/* connect() from a process inside ns (the "target"): 0 or the errno it got. */
static int ns_connect(const char *ns, int family, uint16_t port)
{
	int status;
	pid_t pid = fl_tl_fork_in_netns(ns);

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(connect_once(family, port, NULL));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

struct count_result {
	int ok;
	int last_errno;
};

/* How many connect()s to 127.0.0.1:port succeed from inside ns before one fails (all kept open). */
static struct count_result ns_count(const char *ns, uint16_t port, int max)
{
	struct count_result r = {0};
	int p[2], status;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fl_tl_fork_in_netns(ns);
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd;

		raise_nofile();
		while (r.ok < max && !(r.last_errno = connect_once(AF_INET, port, &fd)))
			r.ok++;
		_exit(write(p[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &r, sizeof(r)), sizeof(r));
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return r;
}

/* bind() (and listen(), SO_REUSEADDR: what a Go service's net.Listen does) in ns: 0 or errno. */
static int ns_bind(const char *ns, int family, const char *ip, uint16_t port)
{
	int status;
	pid_t pid = fl_tl_fork_in_netns(ns);

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = listen_on(family, ip, port);

		_exit(fd < 0 ? errno : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static double obs_num(const struct fl_observation *o, const char *key)
{
	return fl_tl_obs_num(o, key, -1);
}

static const char *obs_text(const struct fl_observation *o, const char *key)
{
	int i = fl_tl_obs_index(o, key);

	return i < 0 ? "" : o->kv[i].text;
}

static void obs_print(const char *what, const struct fl_observation *o)
{
	print_message("%s:\n", what);
	for (int i = 0; i < o->n; i++)
		print_message("    %-24s %s\n", o->kv[i].key, o->kv[i].text);
}

static void forget(struct world *w, struct fl_scenario *sc)
{
	for (int i = 0; i < w->nlive; i++)
		if (w->live[i] == sc) {
			w->live[i] = w->live[--w->nlive];
			return;
		}
}

static struct fl_fault *fault_from(struct world *w, const char *yaml, struct fl_scenario **out)
{
	struct fl_scenario *sc = fl_tl_scenario("t", yaml, NULL, 0);

	assert_non_null(sc);
	assert_int_equal(sc->nfaults, 1);
	w->live[w->nlive++] = sc;
	sc->faults[0].target = &w->info;
	*out = sc;
	return &sc->faults[0];
}

static struct fl_fault *apply_fault(struct world *w, const char *yaml, struct fl_scenario **out)
{
	struct fl_fault *f = fault_from(w, yaml, out);
	struct fl_err e = {0};

	if (f->inj->check(f, &e))
		fail_msg("check %s: %s (%s)", f->inj->type, e.msg, e.hint);
	if (f->inj->apply(f, w->j, &e))
		fail_msg("apply %s: %s (%s)", f->inj->type, e.msg, e.hint);
	return f;
}

/* revert (twice: idempotent), the final observation, release. */
static void finish_fault(struct world *w, struct fl_scenario *sc, struct fl_observation *final)
{
	struct fl_fault *f = &sc->faults[0];
	struct fl_err e = {0};

	if (f->inj->revert(f, &e))
		fail_msg("revert: %s", e.msg);
	assert_int_equal(f->inj->revert(f, &e), 0);
	if (final) {
		memset(final, 0, sizeof(*final));
		assert_int_equal(f->inj->observe(f, final), 0);
	}
	f->inj->release(f);
	forget(w, sc);
	fl_scenario_free(sc);
}

static int drop_live(void **state)
{
	struct world *w = *state;
	struct fl_err e;

	for (int i = 0; i < 4; i++)
		if (w->go[i] > 0) {
			kill(w->go[i], SIGKILL);
			waitpid(w->go[i], NULL, 0);
			w->go[i] = 0;
		}

	while (w->nlive) {
		struct fl_scenario *sc = w->live[w->nlive - 1];

		for (int i = 0; i < sc->nfaults; i++)
			if (sc->faults[i].state) {
				sc->faults[i].inj->revert(&sc->faults[i], &e);
				sc->faults[i].inj->release(&sc->faults[i]);
			}
		forget(w, sc);
		fl_scenario_free(sc);
	}
	return 0;
}

/* The pids of this process's children, from /proc (zombies included). */
static int children_of_me(pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d))) {
		pid_t pid, ppid;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		pid = (pid_t)atoi(e->d_name);
		if (fl_proc_ppid(pid, &ppid) == 0 && ppid == getpid() && n < max)
			out[n++] = pid;
	}
	if (d)
		closedir(d);
	return n;
}

/* ---- the world ---------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
	struct world *w = &W;
	const char *bin = getenv("FL_BINARY_DIR");
	int p[2];
	char c;

	memset(w, 0, sizeof(*w));
	*state = w;
	if (geteuid() != 0) {
		snprintf(w->why_not, sizeof(w->why_not), "needs root (network namespaces, TCP_REPAIR, SO_MARK)");
		return 0;
	}
	raise_nofile();
	snprintf(w->targets, sizeof(w->targets), "%s/tests/targets", bin ? bin : "build");
	snprintf(w->ns, sizeof(w->ns), "fl-port-%d", (int)getpid());
	snprintf(w->ns_full, sizeof(w->ns_full), "fl-portf-%d", (int)getpid());
	snprintf(w->ns_path, sizeof(w->ns_path), "/run/netns/%.60s", w->ns);
	snprintf(w->full_path, sizeof(w->full_path), "/run/netns/%.60s", w->ns_full);
	if (fl_tl_sh("ip netns add %s", w->ns))
		return -1;
	w->ns_made = true;
	if (fl_tl_sh("ip netns add %s", w->ns_full))
		return -1;
	w->full_made = true;
	if (fl_tl_sh("ip -n %s link set lo up && ip -n %s link set lo up", w->ns, w->ns_full) ||
	    fl_tl_sh("ip netns exec %s sysctl -qw net.ipv4.ip_local_port_range='%d %d'", w->ns, RANGE_LO, RANGE_HI) ||
	    fl_tl_sh("ip netns exec %s sysctl -qw net.ipv4.ip_local_port_range='32768 60999'", w->ns_full))
		return -1;
	w->v6 = fl_tl_sh("ip netns exec %s ip -6 addr show dev lo | grep -q '::1'", w->ns) == 0;
	if (pipe2(p, O_CLOEXEC))
		return -1;
	w->listener = fl_tl_fork_in_netns(w->ns);
	if (w->listener == 0)
		listener_main(p[1], w->v6);
	close(p[1]);
	if (w->listener < 0 || read(p[0], &c, 1) != 1)
		return -1;
	close(p[0]);
	fl_tl_run_id(w->run_id, sizeof(w->run_id), getpid(), "port");
	w->j = fl_tl_journal(w->jdir, sizeof(w->jdir), "fl-port", w->run_id, "test_ports");
	if (!w->j)
		return -1;
	snprintf(w->info.netns, sizeof(w->info.netns), "%.120s", w->ns_path);
	w->ready = true;
	return 0;
}

static void world_down(struct world *w)
{
	if (w->listener > 0) {
		kill(w->listener, SIGKILL);
		waitpid(w->listener, NULL, 0);
		w->listener = 0;
	}
	if (w->ns_made && !fl_tl_netns_del(w->ns))
		w->ns_made = false;
	if (w->full_made && !fl_tl_netns_del(w->ns_full))
		w->full_made = false;
}

static int group_teardown(void **state)
{
	struct world *w = *state;

	drop_live(state);
	world_down(w);
	if (w->j)
		fl_journal_close(w->j, false);
	return fl_tl_rm_rf(w->jdir) ? -1 : 0;
}

#define NEED_WORLD(w)                                                 \
	do {                                                          \
		if (!(w)->ready) {                                    \
			print_message("skipped: %s\n", (w)->why_not); \
			skip();                                       \
		}                                                     \
	} while (0)

/* ---- ports.exhaust ------------------------------------------------------------------------------ */

static void test_exhaust_checks(void **state)
{
	struct world *w = *state;
	struct fl_target_info host = {0};
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_err e = {0};
	char diag[512], yaml[256];

	NEED_WORLD(w);
	/* table rules at load time */
	assert_null(fl_tl_scenario("t", "  - {name: p, type: ports.exhaust, duration: 1s, count: 5, fraction: 50%}\n",
				   diag, sizeof(diag)));
	assert_non_null(strstr(diag, "exclusive"));
	assert_null(fl_tl_scenario("t", "  - {name: p, type: ports.exhaust, duration: 1s, dst: nowhere}\n", diag,
				   sizeof(diag)));
	assert_non_null(strstr(diag, "ip:port"));
	/* count beyond the range */
	f = fault_from(w, "  - {name: p, type: ports.exhaust, duration: 1s, count: 201}\n", &sc);
	assert_int_equal(f->inj->check(f, &e), -ERANGE);
	assert_non_null(strstr(e.msg, "40000-40199"));
	finish_fault(w, sc, NULL);
	/* blast radius: every destination in faultline's own namespace */
	f = fault_from(w, "  - {name: p, type: ports.exhaust, duration: 1s}\n", &sc);
	f->target = &host;
	assert_int_equal(f->inj->check(f, &e), -EPERM);
	assert_non_null(strstr(e.hint, "allow_host_wide"));
	host.allow_host_wide = true;
	assert_int_equal(f->inj->check(f, &e), 0);
	finish_fault(w, sc, NULL);
	/* a dst-scoped hold in the host namespace is fine */
	host.allow_host_wide = false;
	f = fault_from(w, "  - {name: p, type: ports.exhaust, duration: 1s, dst: \"127.0.0.1:9\"}\n", &sc);
	f->target = &host;
	assert_int_equal(f->inj->check(f, &e), 0);
	finish_fault(w, sc, NULL);
	/* a namespace that is not there */
	snprintf(yaml, sizeof(yaml), "  - {name: p, type: ports.exhaust, duration: 1s, netns: fl-port-none-%d}\n",
		 (int)getpid());
	f = fault_from(w, yaml, &sc);
	assert_int_equal(f->inj->check(f, &e), -ENOENT);
	finish_fault(w, sc, NULL);
}

static void test_exhaust_whole_range(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct fl_journal_info ji;
	struct fl_err e = {0};
	struct count_result r;
	int recs = 0;

	NEED_WORLD(w);
	assert_int_equal(ns_connect(w->ns, AF_INET, P_A), 0);
	f = apply_fault(w, "  - {name: all, type: ports.exhaust, duration: 10s}\n", &sc);
	/* the target's connect() in that namespace: no port left, for IPv4 and IPv6 alike */
	assert_int_equal(ns_connect(w->ns, AF_INET, P_A), EADDRNOTAVAIL);
	assert_int_equal(ns_connect(w->ns, AF_INET, P_B), EADDRNOTAVAIL);
	if (w->v6)
		assert_int_equal(ns_connect(w->ns, AF_INET6, P_V6), EADDRNOTAVAIL);
	r = ns_count(w->ns, P_A, RANGE_N);
	assert_int_equal(r.ok, 0);
	assert_int_equal(r.last_errno, EADDRNOTAVAIL);
	assert_int_equal(f->inj->observe(f, &o), 0);
	obs_print("ports.exhaust, whole 200-port range", &o);
	/* the kernel's count: every port of the range, and no connect() found one */
	assert_true(obs_num(&o, "ports_held") == RANGE_N);
	assert_true(obs_num(&o, "range_size") == RANGE_N);
	assert_true(obs_num(&o, "held_fraction") == 1.0);
	assert_true(obs_num(&o, "ports_free") == 0);
	assert_non_null(strstr(obs_text(&o, "connect_probe"), "EADDRNOTAVAIL"));
	assert_non_null(strstr(obs_text(&o, "ports_held"), "sock_diag"));
	/* each holder was journaled */
	assert_int_equal(fl_journal_read(fl_journal_path(w->j), &ji, &e), 0);
	for (int i = 0; i < ji.nrecs; i++)
		recs += !strcmp(ji.recs[i].fault, "all") && strstr(ji.recs[i].data, "kind=bind") != NULL;
	fl_journal_info_free(&ji);
	assert_true(recs >= 1 && recs == (int)obs_num(&o, "holders_alive"));
	finish_fault(w, sc, &o);
	obs_print("after revert", &o);
	assert_true(obs_num(&o, "ports_held_after_revert") == 0);
	/* at once after revert */
	assert_int_equal(ns_connect(w->ns, AF_INET, P_A), 0);
	r = ns_count(w->ns, P_A, RANGE_N);
	assert_int_equal(r.ok, RANGE_N);
}

static void test_exhaust_count_leaves_the_rest(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct count_result r;

	NEED_WORLD(w);
	f = apply_fault(w, "  - {name: some, type: ports.exhaust, duration: 10s, count: 100}\n", &sc);
	assert_int_equal(f->inj->observe(f, &o), 0);
	obs_print("ports.exhaust count: 100", &o);
	assert_true(obs_num(&o, "ports_held") == 100);
	assert_true(obs_num(&o, "ports_free") == 100);
	/* exactly the other 100 ports are left to connect() */
	r = ns_count(w->ns, P_A, RANGE_N);
	assert_int_equal(r.ok, 100);
	assert_int_equal(r.last_errno, EADDRNOTAVAIL);
	finish_fault(w, sc, NULL);
	r = ns_count(w->ns, P_A, RANGE_N);
	assert_int_equal(r.ok, RANGE_N);
}

static void test_exhaust_fraction_and_in_use_ports(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct count_result r;
	int p[2], status;
	pid_t holder;
	char c;

	NEED_WORLD(w);
	/* 20 connections already open from the range, as a busy target has: those ports are in use */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	holder = fl_tl_fork_in_netns(w->ns);
	assert_true(holder >= 0);
	if (holder == 0) {
		int fd;

		for (int i = 0; i < 20; i++)
			if (connect_once(AF_INET, P_B, &fd))
				_exit(1);
		if (write(p[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	f = apply_fault(w, "  - {name: frac, type: ports.exhaust, duration: 10s, fraction: 100%}\n", &sc);
	assert_int_equal(f->inj->observe(f, &o), 0);
	obs_print("ports.exhaust fraction: 100% with 20 ports in use", &o);
	/* the in-use ports are held too (bound on the fallback address): connect() reuses none of them */
	assert_true(obs_num(&o, "ports_held") == RANGE_N);
	assert_non_null(strstr(obs_text(&o, "holders_held"), "(20 bound on"));
	r = ns_count(w->ns, P_A, RANGE_N);
	assert_int_equal(r.ok, 0);
	finish_fault(w, sc, NULL);
	kill(holder, SIGKILL);
	assert_int_equal(waitpid(holder, &status, 0), holder);
	f = apply_fault(w, "  - {name: half, type: ports.exhaust, duration: 10s, fraction: 50%}\n", &sc);
	r = ns_count(w->ns, P_A, RANGE_N);
	assert_int_equal(r.ok, RANGE_N / 2);
	finish_fault(w, sc, NULL);
}

/* ipv6: true holds with dual-stack sockets: explicit binds of both families fail too. */
static void test_exhaust_ipv6_holders(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};

	NEED_WORLD(w);
	if (!w->v6) {
		print_message("skipped: no IPv6 on the test namespace's lo\n");
		skip();
	}
	assert_int_equal(ns_bind(w->ns, AF_INET6, "::", 40005), 0);
	f = apply_fault(w, "  - {name: v6, type: ports.exhaust, duration: 10s, ipv6: true}\n", &sc);
	assert_int_equal(ns_connect(w->ns, AF_INET, P_A), EADDRNOTAVAIL);
	assert_int_equal(ns_connect(w->ns, AF_INET6, P_V6), EADDRNOTAVAIL);
	assert_int_equal(ns_bind(w->ns, AF_INET6, "::", 40005), EADDRINUSE);
	assert_int_equal(ns_bind(w->ns, AF_INET6, "::1", 40005), EADDRINUSE);
	assert_int_equal(ns_bind(w->ns, AF_INET, "127.0.0.1", 40005), EADDRINUSE);
	assert_int_equal(f->inj->observe(f, &o), 0);
	assert_true(obs_num(&o, "ports_held") == RANGE_N);
	assert_non_null(strstr(obs_text(&o, "scope"), "dual-stack"));
	finish_fault(w, sc, NULL);
	assert_int_equal(ns_bind(w->ns, AF_INET6, "::", 40005), 0);
}

static void test_exhaust_dst_scope(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct count_result r;
	char yaml[256];
	long ss_count;

	NEED_WORLD(w);
	snprintf(yaml, sizeof(yaml), "  - {name: todb, type: ports.exhaust, duration: 10s, dst: \"127.0.0.1:%d\"}\n", P_A);
	f = apply_fault(w, yaml, &sc);
	assert_int_equal(ns_connect(w->ns, AF_INET, P_A), EADDRNOTAVAIL);
	/* other destinations keep every port */
	assert_int_equal(ns_connect(w->ns, AF_INET, P_B), 0);
	r = ns_count(w->ns, P_B, RANGE_N);
	assert_int_equal(r.ok, RANGE_N);
	assert_int_equal(f->inj->observe(f, &o), 0);
	obs_print("ports.exhaust dst: 127.0.0.1:8080", &o);
	assert_true(obs_num(&o, "ports_held") == RANGE_N);
	assert_true(obs_num(&o, "ports_free") == 0);
	/* ss agrees: 200 established 4-tuples toward the destination (made without one packet) */
	ss_count = fl_tl_sh_num("ip netns exec %s ss -Htn state established dst 127.0.0.1:%d | wc -l", w->ns, P_A);
	assert_int_equal(ss_count, RANGE_N);
	finish_fault(w, sc, NULL);
	assert_int_equal(ns_connect(w->ns, AF_INET, P_A), 0);
	assert_int_equal(fl_tl_sh_num("ip netns exec %s ss -Htn state established dst 127.0.0.1:%d | wc -l", w->ns,
				      P_A), 0);
	if (!w->v6)
		return;
	snprintf(yaml, sizeof(yaml), "  - {name: todb6, type: ports.exhaust, duration: 10s, dst: \"[::1]:%d\"}\n", P_V6);
	f = apply_fault(w, yaml, &sc);
	assert_int_equal(ns_connect(w->ns, AF_INET6, P_V6), EADDRNOTAVAIL);
	assert_int_equal(ns_connect(w->ns, AF_INET, P_A), 0);
	o.n = 0;
	assert_int_equal(f->inj->observe(f, &o), 0);
	assert_true(obs_num(&o, "ports_held") == RANGE_N);
	finish_fault(w, sc, NULL);
	assert_int_equal(ns_connect(w->ns, AF_INET6, P_V6), 0);
}

/* The default range (28232 ports) in a namespace: timed, well under a second. */
static void test_exhaust_default_range_timed(void **state)
{
	struct world *w = *state;
	struct fl_target_info info = {0};
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct fl_err e = {0};
	double t0, t_apply, t_revert;

	NEED_WORLD(w);
	snprintf(info.netns, sizeof(info.netns), "%s", w->full_path);
	f = fault_from(w, "  - {name: full, type: ports.exhaust, duration: 10s}\n", &sc);
	f->target = &info;
	assert_int_equal(f->inj->check(f, &e), 0);
	t0 = fl_tl_now_ms();
	if (f->inj->apply(f, w->j, &e))
		fail_msg("apply: %s", e.msg);
	t_apply = fl_tl_now_ms() - t0;
	assert_int_equal(ns_connect(w->ns_full, AF_INET, 9), EADDRNOTAVAIL);
	assert_int_equal(f->inj->observe(f, &o), 0);
	obs_print("ports.exhaust, default range 32768-60999", &o);
	assert_true(obs_num(&o, "ports_held") == 28232);
	t0 = fl_tl_now_ms();
	assert_int_equal(f->inj->revert(f, &e), 0);
	t_revert = fl_tl_now_ms() - t0;
	print_message("default range: %d ports held in %.1f ms (apply, holders journaled and ready); revert %.1f ms\n",
		      28232, t_apply, t_revert);
	assert_true(t_apply < 1000);
	/* a connect() now gets a port (refused: nobody listens on 9, which is fine) */
	assert_int_equal(ns_connect(w->ns_full, AF_INET, 9), 0);
	finish_fault(w, sc, NULL);
}

/* A controller SIGKILLed mid-fault takes its holders with it (PR_SET_PDEATHSIG). */
static void test_exhaust_dies_with_controller(void **state)
{
	struct world *w = *state;
	pid_t ctl, holders[64];
	int p[2], n = 0, status;
	double t0;

	NEED_WORLD(w);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	ctl = fork();
	assert_true(ctl >= 0);
	if (ctl == 0) {
		struct fl_scenario *sc = fl_tl_scenario("t", "  - {name: orphan, type: ports.exhaust, duration: 9s}\n",
							NULL, 0);
		struct fl_fault *f = &sc->faults[0];
		struct fl_err e = {0};
		pid_t kids[64];
		int nk;

		f->target = &w->info;
		if (f->inj->apply(f, w->j, &e))
			_exit(1);
		nk = children_of_me(kids, 64);
		if (write(p[1], kids, sizeof(pid_t) * (size_t)nk) < 0)
			_exit(1);
		close(p[1]);
		pause();
		_exit(0);
	}
	close(p[1]);
	n = (int)(read(p[0], holders, sizeof(holders)) / (ssize_t)sizeof(pid_t));
	close(p[0]);
	assert_true(n >= 1);
	assert_int_equal(ns_connect(w->ns, AF_INET, P_A), EADDRNOTAVAIL);
	t0 = fl_tl_now_ms();
	kill(ctl, SIGKILL);
	assert_int_equal(waitpid(ctl, &status, 0), ctl);
	for (int i = 0; i < n; i++)
		while (kill(holders[i], 0) == 0 && fl_tl_now_ms() - t0 < 3000) {
			char s;

			if (fl_proc_state(holders[i], &s) == 0 && s == 'Z')
				break;
			usleep(2000);
		}
	print_message("holders gone %.2f ms after the controller's SIGKILL\n", fl_tl_now_ms() - t0);
	assert_true(fl_tl_now_ms() - t0 < 3000);
	/* the ports are back (a zombie holds no socket) */
	for (int i = 0; i < 100 && ns_connect(w->ns, AF_INET, P_A); i++)
		usleep(10000);
	assert_int_equal(ns_connect(w->ns, AF_INET, P_A), 0);
}

/* ---- ports.occupy --------------------------------------------------------------------------------- */

static void test_occupy_free_port(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};

	NEED_WORLD(w);
	assert_int_equal(ns_bind(w->ns, AF_INET, "127.0.0.1", 8090), 0);
	f = apply_fault(w, "  - {name: occ, type: ports.occupy, duration: 10s, port: 8090}\n", &sc);
	/* a restarted service: SO_REUSEADDR + bind + listen, on one address or all, v4 or v6 */
	assert_int_equal(ns_bind(w->ns, AF_INET, "127.0.0.1", 8090), EADDRINUSE);
	assert_int_equal(ns_bind(w->ns, AF_INET, "0.0.0.0", 8090), EADDRINUSE);
	if (w->v6)
		assert_int_equal(ns_bind(w->ns, AF_INET6, "::", 8090), EADDRINUSE);
	assert_int_equal(f->inj->observe(f, &o), 0);
	obs_print("ports.occupy port 8090", &o);
	assert_true(obs_num(&o, "held") == 1);
	assert_true(obs_num(&o, "others") == 0);
	/* a connection to it is queued, never answered: the stale-instance case */
	assert_int_equal(ns_connect(w->ns, AF_INET, 8090), 0);
	finish_fault(w, sc, &o);
	assert_true(obs_num(&o, "held") == 0);
	assert_int_equal(ns_bind(w->ns, AF_INET, "127.0.0.1", 8090), 0);
}

static void test_occupy_port_the_target_holds(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct fl_err e = {0};
	int p[2], status;
	pid_t target;
	char c;
	double t0;

	NEED_WORLD(w);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	target = fl_tl_fork_in_netns(w->ns);
	assert_true(target >= 0);
	if (target == 0) {
		if (listen_on(AF_INET, "0.0.0.0", 8091) < 0 || write(p[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	w->info.pid = target;
	/* wait: false refuses at apply, saying who holds it */
	f = fault_from(w, "  - {name: occ0, type: ports.occupy, duration: 10s, port: 8091, wait: false}\n", &sc);
	assert_int_equal(f->inj->check(f, &e), 0);
	assert_int_equal(f->inj->apply(f, w->j, &e), -EADDRINUSE);
	finish_fault(w, sc, NULL);
	/* wait: true (the default) takes it when the target lets go */
	f = apply_fault(w, "  - {name: occ1, type: ports.occupy, duration: 10s, port: 8091}\n", &sc);
	assert_int_equal(f->inj->observe(f, &o), 0);
	obs_print("ports.occupy of a port the target listens on", &o);
	assert_true(obs_num(&o, "held") == 0);
	assert_true(obs_num(&o, "others") == 1);
	assert_non_null(strstr(obs_text(&o, "other_holder"), "the target"));
	assert_non_null(strstr(obs_text(&o, "note"), "the target itself"));
	/* the target restarts: it dies, and its successor's bind fails */
	kill(target, SIGKILL);
	assert_int_equal(waitpid(target, &status, 0), target);
	t0 = fl_tl_now_ms();
	do {
		o.n = 0;
		assert_int_equal(f->inj->observe(f, &o), 0);
	} while (obs_num(&o, "held") != 1 && fl_tl_now_ms() - t0 < 2000 && !usleep(1000));
	obs_print("after the target died", &o);
	assert_true(obs_num(&o, "held") == 1);
	assert_true(obs_num(&o, "held_after_s") > 0);
	assert_int_equal(ns_bind(w->ns, AF_INET, "0.0.0.0", 8091), EADDRINUSE);
	finish_fault(w, sc, NULL);
	w->info.pid = 0;
	assert_int_equal(ns_bind(w->ns, AF_INET, "0.0.0.0", 8091), 0);
}

/* ---- client.slowloris ------------------------------------------------------------------------------ */

struct go_target {
	pid_t pid;
	uint16_t port;
	char url[128];
};

static uint16_t free_port(void)
{
	struct sockaddr_in a = fl_tl_addr4("127.0.0.1", 0);
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint16_t port = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* One plain GET on loopback: the status (0: none within timeout_ms) and how long it took. */
static int http_get(uint16_t port, const char *path, int timeout_ms, double *ms)
{
	struct sockaddr_in a = fl_tl_addr4("127.0.0.1", port);
	struct pollfd pf;
	char req[256], buf[4096];
	size_t got = 0;
	int fd, status = 0;
	double t0 = fl_tl_now_ms();
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
		goto out;
	pf.fd = fd;
	pf.events = POLLOUT;
	if (poll(&pf, 1, timeout_ms) != 1)
		goto out;
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		goto out;
	pf.events = POLLIN;
	while (got < sizeof(buf) - 1) {
		int left = timeout_ms - (int)(fl_tl_now_ms() - t0);
		ssize_t n;

		if (left <= 0 || poll(&pf, 1, left) != 1)
			break;
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	buf[got] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		status = 0;
out:
	*ms = fl_tl_now_ms() - t0;
	close(fd);
	return status;
}

/* Start a Go demo target on loopback (as tests/e2e/lib.sh start_ext does), with nofile soft:hard. */
static bool go_start(struct world *w, const char *kind, struct go_target *t, rlim_t soft)
{
	char bin[PATH_MAX + 32], listen[32], down[32];
	struct rlimit rl = {.rlim_cur = soft, .rlim_max = 5000};
	double ms;

	snprintf(bin, sizeof(bin), "%s/%s", w->targets, kind);
	if (access(bin, X_OK))
		return false;
	t->port = free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", t->port);
	snprintf(down, sizeof(down), "127.0.0.1:%u", free_port());
	snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%u/api/report", t->port);
	t->pid = fork();
	assert_true(t->pid >= 0);
	if (t->pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		/* the target dies with the test, whatever ends it */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		/* hardened's standby would outlive the SIGKILL go_stop sends (it takes over): not here */
		if (!strcmp(kind, "hardened"))
			execl(bin, kind, "-listen", listen, "-downstream-listen", down, "-standby=false", (char *)NULL);
		else
			execl(bin, kind, "-listen", listen, "-downstream-listen", down, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 4; i++)
		if (!w->go[i]) {
			w->go[i] = t->pid;
			break;
		}
	for (int i = 0; i < 200; i++) {
		if (http_get(t->port, "/api/report", 500, &ms) == 200)
			break;
		usleep(25000);
	}
	assert_int_equal(http_get(t->port, "/api/report", 1000, &ms), 200);
	assert_int_equal(prlimit(t->pid, RLIMIT_NOFILE, &rl, NULL), 0);
	return true;
}

static void go_stop(struct world *w, struct go_target *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		for (int i = 0; i < 4; i++)
			if (w->go[i] == t->pid)
				w->go[i] = 0;
	}
	t->pid = 0;
}

/* Median of n normal requests' latency; *good = how many got 200 within timeout_ms. */
static double normal_requests(uint16_t port, int n, int timeout_ms, int *good)
{
	double ms[16];

	*good = 0;
	for (int i = 0; i < n && i < 16; i++) {
		*good += http_get(port, "/api/report", timeout_ms, &ms[i]) == 200;
		usleep(50000);
	}
	qsort(ms, (size_t)(n < 16 ? n : 16), sizeof(double), fl_tl_cmp_double);
	return ms[(n < 16 ? n : 16) / 2];
}

#define SWARM 300

static void test_slowloris_checks(void **state)
{
	struct world *w = *state;
	struct fl_target_info t = {0};
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_err e = {0};
	char yaml[256];

	NEED_WORLD(w);
	assert_null(fl_tl_scenario("t", "  - {name: s, type: client.slowloris, duration: 1s, url: \"ftp://x/\"}\n", yaml,
				   sizeof(yaml)));
	assert_non_null(strstr(yaml, "http://"));
	/* no url anywhere */
	f = fault_from(w, "  - {name: s, type: client.slowloris, duration: 1s}\n", &sc);
	f->target = &t;
	assert_int_equal(f->inj->check(f, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "no url"));
	/* the target's url, from the contract */
	snprintf(t.url, sizeof(t.url), "http://127.0.0.1:9/");
	assert_int_equal(f->inj->check(f, &e), 0);
	/* traffic rules: not a remote host */
	snprintf(t.url, sizeof(t.url), "http://192.0.2.77:80/");
	assert_int_equal(f->inj->check(f, &e), -EPERM);
	snprintf(t.url, sizeof(t.url), "https://127.0.0.1/");
	assert_int_equal(f->inj->check(f, &e), -EINVAL);
	finish_fault(w, sc, NULL);
	/* more connections than the clients' namespace has ephemeral ports (200 in the test's) */
	snprintf(yaml, sizeof(yaml), "  - {name: s, type: client.slowloris, duration: 1s, connections: 500, "
				     "netns: %s, url: \"http://127.0.0.1:8080/\"}\n", w->ns);
	f = fault_from(w, yaml, &sc);
	assert_int_equal(f->inj->check(f, &e), -EADDRNOTAVAIL);
	finish_fault(w, sc, NULL);
}

static void test_slowloris_naive_holds_them(void **state)
{
	struct world *w = *state;
	struct go_target t = {0};
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	struct rlimit tight = {.rlim_cur = 256, .rlim_max = 5000};
	double base_ms, during_ms, starved_ms;
	int good, fds0, fds1;
	char yaml[256];

	NEED_WORLD(w);
	if (!go_start(w, "naive", &t, 3000)) {
		print_message("skipped: the Go demo targets are not built in %s (golang-go missing)\n", w->targets);
		skip();
	}
	base_ms = normal_requests(t.port, 5, 2000, &good);
	assert_int_equal(good, 5);
	fds0 = fl_proc_count_fds(t.pid);
	/* the url comes from the target (fl_target_info.url), as in a scenario */
	snprintf(w->info.url, sizeof(w->info.url), "%s", t.url);
	w->info.pid = t.pid;
	snprintf(yaml, sizeof(yaml), "  - {name: slow, type: client.slowloris, duration: 30s, connections: %d, interval: 1s}\n",
		 SWARM);
	f = apply_fault(w, yaml, &sc);
	sleep(4);
	assert_int_equal(f->inj->observe(f, &o), 0);
	obs_print("client.slowloris against naive (no ReadHeaderTimeout), 4 s in", &o);
	fds1 = fl_proc_count_fds(t.pid);
	/* every slow connection is held: none closed, the server's fds grew by the swarm */
	assert_true(obs_num(&o, "accepted_and_held") == SWARM);
	assert_true(obs_num(&o, "closed_by_server") == 0);
	assert_true(obs_num(&o, "held_longest_s") >= 3.5);
	assert_true(fds1 - fds0 >= SWARM);
	during_ms = normal_requests(t.port, 5, 2000, &good);
	print_message("naive: fds %d -> %d; normal request median %.1f ms before, %.1f ms during (%d/5 good)\n", fds0,
		      fds1, base_ms, during_ms, good);
	/* with the fds of a small container (256) the same swarm starves it: accept() gets EMFILE */
	assert_int_equal(prlimit(t.pid, RLIMIT_NOFILE, &tight, NULL), 0);
	starved_ms = normal_requests(t.port, 3, 2000, &good);
	print_message("naive at RLIMIT_NOFILE 256 under the swarm: %d/3 normal requests good, median %.0f ms\n", good,
		      starved_ms);
	assert_int_equal(good, 0);
	finish_fault(w, sc, &o);
	obs_print("after revert", &o);
	/* the swarm gone, the target serves again */
	assert_int_equal(http_get(t.port, "/api/report", 3000, &during_ms), 200);
	memset(w->info.url, 0, sizeof(w->info.url));
	w->info.pid = 0;
	go_stop(w, &t);
}

static void test_slowloris_hardened_cuts_them(void **state)
{
	struct world *w = *state;
	struct go_target t = {0};
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o = {0};
	double base_ms, during_ms, mean;
	int good;
	char yaml[256];

	NEED_WORLD(w);
	if (!go_start(w, "hardened", &t, 3000)) {
		print_message("skipped: the Go demo targets are not built in %s (golang-go missing)\n", w->targets);
		skip();
	}
	base_ms = normal_requests(t.port, 5, 2000, &good);
	assert_int_equal(good, 5);
	w->info.pid = t.pid;
	/* the url as the fault's own parameter this time */
	snprintf(yaml, sizeof(yaml),
		 "  - {name: slow, type: client.slowloris, duration: 30s, connections: %d, interval: 1s, url: \"%s\"}\n",
		 SWARM, t.url);
	f = apply_fault(w, yaml, &sc);
	sleep(5);
	during_ms = normal_requests(t.port, 9, 2000, &good);
	assert_int_equal(f->inj->observe(f, &o), 0);
	obs_print("client.slowloris against hardened (ReadHeaderTimeout 2s), 5 s in", &o);
	mean = obs_num(&o, "mean_close_s");
	print_message("hardened: normal request median %.1f ms before, %.1f ms during (%d/9 good); slow connections "
		      "cut after %.3f s on average\n", base_ms, during_ms, good, mean);
	assert_true(obs_num(&o, "closed_by_server") >= SWARM);
	assert_true(mean > 1.8 && mean < 2.6);
	assert_true(obs_num(&o, "held_longest_s") < 2.6);
	assert_int_equal(good, 9);
	assert_true(during_ms < 200);
	finish_fault(w, sc, NULL);
	w->info.pid = 0;
	go_stop(w, &t);
}

/* ---- recovery and the end state --------------------------------------------------------------------- */

static void revert_records_in_child(const char *journal, const char *const *faults, int nfaults)
{
	int p[2], status;
	struct fl_err ce;
	pid_t pid;

	assert_int_equal(pipe2(p, 0), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fl_journal_info ji = {0};
		struct fl_err e = {0};
		int rc;

		if (p[1] != 3 && dup2(p[1], 3) < 0)
			_exit(2);
		syscall(SYS_close_range, 4, ~0U, 0);
		rc = fl_journal_read(journal, &ji, &e);
		for (int i = 0; !rc && i < ji.nrecs; i++) {
			bool mine = false;

			for (int k = 0; k < nfaults; k++)
				mine |= !strcmp(ji.recs[i].fault, faults[k]);
			if (!mine || ji.recs[i].reverted)
				continue;
			rc = fl_injector_find(ji.recs[i].injector)->revert_record(&ji.recs[i], &e);
			if (!rc) /* idempotent */
				rc = fl_injector_find(ji.recs[i].injector)->revert_record(&ji.recs[i], &e);
		}
		if (ji.recs)
			fl_journal_info_free(&ji);
		e.code = rc;
		_exit(write(3, &e, sizeof(e)) == (ssize_t)sizeof(e) ? 0 : 1);
	}
	close(p[1]);
	memset(&ce, 0, sizeof(ce));
	assert_int_equal(read(p[0], &ce, sizeof(ce)), sizeof(ce));
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (ce.code)
		fail_msg("revert_record in a fresh process: %s", ce.msg);
}

static void test_revert_record_in_fresh_process(void **state)
{
	static const char *const names[] = {"rr-dst", "rr-ports", "rr-occ", "rr-slow"};
	struct world *w = *state;
	struct fl_scenario *sc[4] = {0};
	struct go_target t = {0};
	pid_t kids[128];
	int nkids, nf = 3;
	char yaml[256];
	double ms;

	NEED_WORLD(w);
	/* every 4-tuple toward P_B, then 150 ports for every destination on top (bound beside them) */
	snprintf(yaml, sizeof(yaml), "  - {name: rr-dst, type: ports.exhaust, duration: 10s, dst: \"127.0.0.1:%d\"}\n", P_B);
	apply_fault(w, yaml, &sc[0]);
	apply_fault(w, "  - {name: rr-ports, type: ports.exhaust, duration: 10s, count: 150}\n", &sc[1]);
	apply_fault(w, "  - {name: rr-occ, type: ports.occupy, duration: 10s, port: 8092}\n", &sc[2]);
	if (go_start(w, "naive", &t, 3000)) {
		snprintf(yaml, sizeof(yaml),
			 "  - {name: rr-slow, type: client.slowloris, duration: 10s, connections: 50, url: \"%s\"}\n", t.url);
		apply_fault(w, yaml, &sc[3]);
		nf = 4;
	} else {
		print_message("(no Go target: the swarm part is left out)\n");
	}
	usleep(300000);
	assert_int_equal(ns_connect(w->ns, AF_INET, P_B), EADDRNOTAVAIL);
	assert_int_equal(ns_count(w->ns, P_A, RANGE_N).ok, RANGE_N - 150);
	assert_int_equal(ns_bind(w->ns, AF_INET, "0.0.0.0", 8092), EADDRINUSE);
	nkids = children_of_me(kids, 128);
	assert_true(nkids >= nf + 1); /* the holders, the swarm, the listener (and the Go target) */

	revert_records_in_child(fl_journal_path(w->j), names, nf);
	/* every holder and swarm child is dead (zombies of ours, their sockets closed) */
	for (int k = 0; k < nf; k++) {
		struct fl_journal_info ji;
		struct fl_err e;

		assert_int_equal(fl_journal_read(fl_journal_path(w->j), &ji, &e), 0);
		for (int i = 0; i < ji.nrecs; i++) {
			int64_t pid;
			char s = '?';

			if (strcmp(ji.recs[i].fault, names[k]) || fl_rec_get_i64(&ji.recs[i], "pid", &pid))
				continue;
			assert_true(fl_proc_state((pid_t)pid, &s) != 0 || s == 'Z');
		}
		fl_journal_info_free(&ji);
	}
	assert_int_equal(ns_count(w->ns, P_A, RANGE_N).ok, RANGE_N);
	assert_int_equal(ns_connect(w->ns, AF_INET, P_B), 0);
	assert_int_equal(ns_bind(w->ns, AF_INET, "0.0.0.0", 8092), 0);
	if (nf == 4)
		assert_int_equal(http_get(t.port, "/api/report", 2000, &ms), 200);
	/* the in-process revert afterwards is harmless, and reaps */
	for (int k = nf - 1; k >= 0; k--)
		finish_fault(w, sc[k], NULL);
	go_stop(w, &t);
}

static void test_nothing_left_behind(void **state)
{
	struct world *w = *state;
	pid_t kids[64];
	int n;

	NEED_WORLD(w);
	drop_live(state);
	world_down(w);
	assert_false(w->ns_made);
	assert_false(w->full_made);
	assert_int_equal(fl_tl_sh("ip netns list | grep -q -e '^%s\\b' -e '^%s\\b'", w->ns, w->ns_full), 1);
	n = children_of_me(kids, 64);
	for (int i = 0; i < n; i++)
		print_error("child %d is still there\n", (int)kids[i]);
	assert_int_equal(n, 0);
	w->ready = false;
	snprintf(w->why_not, sizeof(w->why_not), "world torn down");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_exhaust_checks, drop_live),
		cmocka_unit_test_teardown(test_exhaust_whole_range, drop_live),
		cmocka_unit_test_teardown(test_exhaust_count_leaves_the_rest, drop_live),
		cmocka_unit_test_teardown(test_exhaust_fraction_and_in_use_ports, drop_live),
		cmocka_unit_test_teardown(test_exhaust_ipv6_holders, drop_live),
		cmocka_unit_test_teardown(test_exhaust_dst_scope, drop_live),
		cmocka_unit_test_teardown(test_exhaust_default_range_timed, drop_live),
		cmocka_unit_test_teardown(test_exhaust_dies_with_controller, drop_live),
		cmocka_unit_test_teardown(test_occupy_free_port, drop_live),
		cmocka_unit_test_teardown(test_occupy_port_the_target_holds, drop_live),
		cmocka_unit_test_teardown(test_slowloris_checks, drop_live),
		cmocka_unit_test_teardown(test_slowloris_naive_holds_them, drop_live),
		cmocka_unit_test_teardown(test_slowloris_hardened_cuts_them, drop_live),
		cmocka_unit_test_teardown(test_revert_record_in_fresh_process, drop_live),
		cmocka_unit_test_teardown(test_nothing_left_behind, drop_live),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
