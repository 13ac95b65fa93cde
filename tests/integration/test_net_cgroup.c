/* network.partition, network.dns and the cgroup backend of network.loss against a real child in a cgroup of the test's own: exact errnos, measured probabilities, blackholes, revert from the journal, and a host left as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "net.h"
#include "net_cgroup.h"
#include "scenario.h"
#include "target.h"

#define CG_ROOT "/sys/fs/cgroup/unified"
#define AGENT_WAIT_MS 30000
#define MAX_PROGS 1024

/* ---- the agent: a child inside the test cgroup that does socket work on request ------------- */

#define MAPPED FL_TL_MAPPED

enum op { OP_TCP_CONNECT, OP_TCP_NB, OP_UDP_SEND, OP_UDP_QUERY, OP_UDP_BIND, OP_UDP_COUNT, OP_PING, OP_EXIT };

struct cmd {
	int op;
	int family;        /* AF_INET (127.0.0.1), AF_INET6 (::1), or MAPPED (::ffff:127.0.0.1) */
	uint16_t port;
	int n;
	int timeout_ms;
	int syncnt;        /* TCP_SYNCNT for OP_TCP_NB, 0 = the kernel's */
	bool connected;    /* UDP: connect() first, then send() */
};

struct reply {
	int ok;            /* calls that succeeded (connects, sends, queries answered) */
	int errs;          /* calls that failed */
	int err_first;     /* errno of the first failure */
	int err_other;     /* failures with another errno than err_first */
	int timeouts;      /* queries sent but not answered within timeout_ms */
	int sync_errno;    /* OP_TCP_NB: connect()'s own errno (0 or EINPROGRESS when it went out) */
	bool completed;    /* OP_TCP_NB: the connect finished within timeout_ms */
	int final_errno;   /* OP_TCP_NB: SO_ERROR once finished */
	double elapsed_ms;
	uint16_t port;     /* OP_UDP_BIND */
	int received;      /* OP_UDP_COUNT */
};

static void note_err(struct reply *r, int e)
{
	if (!r->errs++)
		r->err_first = e;
	else if (e != r->err_first)
		r->err_other++;
}

static void agent_tcp_connect(const struct cmd *c, struct reply *r)
{
	struct sockaddr_storage ss;
	socklen_t sl = fl_tl_lo_addr(c->family, c->port, &ss);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	for (int i = 0; i < c->n; i++) {
		int fd = socket(c->family == MAPPED ? AF_INET6 : c->family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			note_err(r, errno);
			continue;
		}
		if (connect(fd, (struct sockaddr *)&ss, sl) == 0)
			r->ok++;
		else
			note_err(r, errno);
		/* reset, not closed: no TIME_WAIT piles up over thousands of connects */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
	}
}

static void agent_tcp_nb(const struct cmd *c, struct reply *r)
{
	struct sockaddr_storage ss;
	socklen_t sl = fl_tl_lo_addr(c->family, c->port, &ss), el = sizeof(r->final_errno);
	struct pollfd pf;
	double t0 = fl_tl_now_ms();
	int fd = socket(c->family == MAPPED ? AF_INET6 : c->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		r->sync_errno = errno;
		return;
	}
	if (c->syncnt)
		setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &c->syncnt, sizeof(c->syncnt));
	r->sync_errno = connect(fd, (struct sockaddr *)&ss, sl) ? errno : 0;
	if (r->sync_errno == EINPROGRESS) {
		pf = (struct pollfd){.fd = fd, .events = POLLOUT};
		r->completed = poll(&pf, 1, c->timeout_ms) == 1;
		if (r->completed)
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &r->final_errno, &el);
	} else {
		r->completed = true;
		r->final_errno = r->sync_errno;
	}
	r->elapsed_ms = fl_tl_now_ms() - t0;
	close(fd);
}

static void agent_udp(const struct cmd *c, struct reply *r, bool query)
{
	struct sockaddr_storage ss;
	socklen_t sl = fl_tl_lo_addr(c->family, c->port, &ss);

	for (int i = 0; i < c->n; i++) {
		int fd = socket(c->family == MAPPED ? AF_INET6 : c->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		char buf[64];
		ssize_t n;

		if (fd < 0) {
			note_err(r, errno);
			continue;
		}
		if (c->connected) {
			if (connect(fd, (struct sockaddr *)&ss, sl)) {
				note_err(r, errno);
				close(fd);
				continue;
			}
			n = send(fd, "query", 5, 0);
		} else {
			n = sendto(fd, "query", 5, 0, (struct sockaddr *)&ss, sl);
		}
		if (n < 0) {
			note_err(r, errno);
		} else if (!query) {
			r->ok++;
		} else {
			struct pollfd pf = {.fd = fd, .events = POLLIN};

			if (poll(&pf, 1, c->timeout_ms) == 1 && recv(fd, buf, sizeof(buf), 0) > 0)
				r->ok++;
			else
				r->timeouts++;
		}
		close(fd);
	}
}

static uint16_t icmp_sum(const void *p, size_t n)
{
	const uint16_t *w = p;
	uint32_t sum = 0;

	for (; n > 1; n -= 2)
		sum += *w++;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* n echo requests to 127.0.0.2 over a raw socket; ok counts the replies seen within timeout_ms each. */
static void ping_lo2(const struct cmd *c, struct reply *r)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000002)};
	uint16_t id = (uint16_t)(getpid() ^ 0x5a5a);
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);

	if (fd < 0) {
		note_err(r, errno);
		return;
	}
	for (int i = 0; i < c->n; i++) {
		struct icmphdr req = {.type = ICMP_ECHO};
		double t0 = fl_tl_now_ms();
		bool got = false;

		req.un.echo.id = htons(id);
		req.un.echo.sequence = htons((uint16_t)i);
		req.checksum = icmp_sum(&req, sizeof(req));
		if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
			note_err(r, errno);
			continue;
		}
		/* a raw socket sees every ICMP packet: wait for our own reply */
		while (!got && fl_tl_now_ms() - t0 < c->timeout_ms) {
			struct pollfd pf = {.fd = fd, .events = POLLIN};
			unsigned char buf[256];
			ssize_t n;

			if (poll(&pf, 1, (int)(c->timeout_ms - (fl_tl_now_ms() - t0)) + 1) != 1)
				break;
			n = recv(fd, buf, sizeof(buf), 0);
			if (n >= (ssize_t)(sizeof(struct iphdr) + sizeof(struct icmphdr))) {
				const struct icmphdr *h = (const void *)(buf + ((buf[0] & 0xf) * 4));

				got = h->type == ICMP_ECHOREPLY && h->un.echo.id == htons(id) &&
				      h->un.echo.sequence == htons((uint16_t)i);
			}
		}
		if (got)
			r->ok++;
		else
			r->timeouts++;
	}
	close(fd);
}

/* Runs in the child; never returns. */
static void agent_main(const char *cg, int sock)
{
	int rxfd = -1;
	struct cmd c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* nothing of the parent's: no listener, no journal, no BPF fd */
	if (sock != 3) {
		if (dup2(sock, 3) < 0)
			_exit(2);
		sock = 3;
	}
	syscall(SYS_close_range, 4, ~0U, 0);
	/* join the cgroup before any socket exists: a socket belongs to its creator's cgroup */
	if (fl_tl_cgroup_join(cg))
		_exit(3);
	while (read(sock, &c, sizeof(c)) == (ssize_t)sizeof(c)) {
		struct reply r;

		memset(&r, 0, sizeof(r));
		switch (c.op) {
		case OP_TCP_CONNECT:
			agent_tcp_connect(&c, &r);
			break;
		case OP_TCP_NB:
			agent_tcp_nb(&c, &r);
			break;
		case OP_UDP_SEND:
			agent_udp(&c, &r, false);
			break;
		case OP_UDP_QUERY:
			agent_udp(&c, &r, true);
			break;
		case OP_PING:
			ping_lo2(&c, &r);
			break;
		case OP_UDP_BIND: {
			struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
			socklen_t al = sizeof(a);
			int big = 16 << 20;

			if (rxfd >= 0)
				close(rxfd);
			rxfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			/* room for every datagram of the run: only the BPF program may drop one */
			setsockopt(rxfd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
			if (rxfd < 0 || bind(rxfd, (struct sockaddr *)&a, sizeof(a)) ||
			    getsockname(rxfd, (struct sockaddr *)&a, &al))
				note_err(&r, errno);
			r.port = ntohs(a.sin_port);
			break;
		}
		case OP_UDP_COUNT: {
			struct pollfd pf = {.fd = rxfd, .events = POLLIN};
			char buf[256];

			while (rxfd >= 0 && poll(&pf, 1, c.timeout_ms) == 1)
				if (recv(rxfd, buf, sizeof(buf), 0) > 0)
					r.received++;
			if (rxfd >= 0)
				close(rxfd);
			rxfd = -1;
			break;
		}
		case OP_EXIT:
		default:
			_exit(0);
		}
		if (write(sock, &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(4);
	}
	_exit(0);
}

/* ---- the parent's world: listeners and responders outside the cgroup, a journal, the cgroup -- */

struct world {
	bool ready;
	char why_not[256];
	char cg[256];
	bool cg_made;
	char jdir[64], run_id[64];
	struct fl_journal *j;
	struct fl_target_info info;
	pid_t agent;
	int agent_sock;
	/* port D: a UDP responder and TCP listeners (v4, v6) on the same number; port O: the other one */
	uint16_t port_d, port_o;
	int udp_d, udp_o, tcp_d, tcp_o, tcp6_d;
	atomic_int q_d, q_o, acc_d, acc_o;
	pthread_t srv;
	bool srv_running;
	int stop[2];
	/* programs named fl* before the test started: (id) */
	__u32 before_ids[MAX_PROGS];
	int nbefore;
	/* faults applied and not yet released, for a teardown after a failed assertion */
	struct fl_scenario *live[16];
	int nlive;
};

static struct world W;

static void *server_main(void *arg)
{
	struct world *w = arg;

	for (;;) {
		struct pollfd pf[6] = {
			{.fd = w->stop[0], .events = POLLIN}, {.fd = w->udp_d, .events = POLLIN},
			{.fd = w->udp_o, .events = POLLIN},   {.fd = w->tcp_d, .events = POLLIN},
			{.fd = w->tcp_o, .events = POLLIN},   {.fd = w->tcp6_d, .events = POLLIN},
		};
		char buf[256];

		if (poll(pf, 6, -1) < 0)
			continue;
		if (pf[0].revents)
			return NULL;
		for (int i = 1; i <= 2; i++) {
			struct sockaddr_storage from;
			socklen_t fl = sizeof(from);
			ssize_t n;

			if (!(pf[i].revents & POLLIN))
				continue;
			n = recvfrom(pf[i].fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
			if (n <= 0)
				continue;
			atomic_fetch_add(i == 1 ? &w->q_d : &w->q_o, 1);
			sendto(pf[i].fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
		}
		for (int i = 3; i <= 5; i++) {
			int c;

			if (!(pf[i].revents & POLLIN))
				continue;
			c = accept4(pf[i].fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (c < 0)
				continue;
			atomic_fetch_add(i == 4 ? &w->acc_o : &w->acc_d, 1);
			close(c);
		}
	}
}

static int list_fl_progs(__u32 *ids, char (*names)[BPF_OBJ_NAME_LEN], int cap)
{
	__u32 id = 0;
	int n = 0;

	while (!bpf_prog_get_next_id(id, &id)) {
		struct bpf_prog_info pi;
		__u32 len = sizeof(pi);
		int fd = bpf_prog_get_fd_by_id(id);

		if (fd < 0)
			continue;
		memset(&pi, 0, sizeof(pi));
		if (!bpf_obj_get_info_by_fd(fd, &pi, &len) && !strncmp(pi.name, "fl", 2) && n < cap) {
			ids[n] = id;
			if (names)
				snprintf(names[n], BPF_OBJ_NAME_LEN, "%s", pi.name);
			n++;
		}
		close(fd);
	}
	return n;
}

/* Every program attached directly to the cgroup, over the hooks these faults use. */
static int attached_count(const char *cg)
{
	static const enum bpf_attach_type types[] = {BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT,
						     BPF_CGROUP_UDP4_SENDMSG,  BPF_CGROUP_UDP6_SENDMSG,
						     BPF_CGROUP_INET_EGRESS,   BPF_CGROUP_INET_INGRESS};
	int n = fl_tl_cgroup_attached(cg, types, sizeof(types) / sizeof(types[0]));

	assert_true(n >= 0);
	return n;
}

static int group_setup(void **state)
{
	struct world *w = &W;
	struct fl_err e = {0};
	int sv[2];

	memset(w, 0, sizeof(*w));
	w->agent_sock = w->udp_d = w->udp_o = w->tcp_d = w->tcp_o = w->tcp6_d = -1;
	w->stop[0] = w->stop[1] = -1;
	*state = w;
	if (geteuid() != 0) {
		snprintf(w->why_not, sizeof(w->why_not), "needs root to load BPF programs and create cgroups");
		return 0;
	}
	if (access(CG_ROOT "/cgroup.procs", W_OK)) {
		snprintf(w->why_not, sizeof(w->why_not), "no writable cgroup v2 hierarchy at " CG_ROOT);
		return 0;
	}
	if (fl_cg_probe(&e)) {
		/* only a kernel that lacks the hooks is a skip; anything else is a failure to see */
		if (e.code == -EPERM || e.code == -EINVAL || e.code == -EOPNOTSUPP || e.code == -524) {
			snprintf(w->why_not, sizeof(w->why_not), "kernel refuses the programs: %.200s", e.msg);
			return 0;
		}
		fprintf(stderr, "fl_cg_probe: %s\n", e.msg);
		return -1;
	}
	w->nbefore = list_fl_progs(w->before_ids, NULL, MAX_PROGS);

	snprintf(w->cg, sizeof(w->cg), CG_ROOT "/fl-cgtest-%d", (int)getpid());
	if (mkdir(w->cg, 0755))
		return -1;
	w->cg_made = true;
	snprintf(w->info.cgroup_v2, sizeof(w->info.cgroup_v2), "%.255s", w->cg);

	fl_tl_run_id(w->run_id, sizeof(w->run_id), getpid(), "abcd");
	w->j = fl_tl_journal(w->jdir, sizeof(w->jdir), "fl-cgtest", w->run_id, "test_net_cgroup");
	if (!w->j)
		return -1;

	if (fl_tl_port_set(&w->port_d, &w->tcp_d, &w->tcp6_d, &w->udp_d) ||
	    fl_tl_port_set(&w->port_o, &w->tcp_o, NULL, &w->udp_o) || pipe2(w->stop, O_CLOEXEC))
		return -1;
	if (pthread_create(&w->srv, NULL, server_main, w))
		return -1;
	w->srv_running = true;

	/* the agent is forked before any BPF object exists, so it can hold no link */
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
	w->info.pid = w->agent;
	w->ready = true;
	return 0;
}

static void forget(struct world *w, struct fl_scenario *sc);

/* After a failed assertion: whatever is still applied goes, so the next test starts clean. */
static int drop_live(void **state)
{
	struct world *w = *state;
	struct fl_err e;

	while (w->nlive) {
		struct fl_scenario *sc = w->live[w->nlive - 1];

		for (int i = 0; i < sc->nfaults; i++) {
			struct fl_fault *f = &sc->faults[i];

			if (f->state) {
				f->inj->revert(f, &e);
				f->inj->release(f);
			}
		}
		forget(w, sc);
		fl_scenario_free(sc);
	}
	return 0;
}

static int group_teardown(void **state)
{
	struct world *w = *state;
	struct fl_err e;

	drop_live(state);
	if (w->agent > 0) {
		kill(w->agent, SIGKILL);
		waitpid(w->agent, NULL, 0);
	}
	if (w->srv_running) {
		if (write(w->stop[1], "x", 1) != 1)
			pthread_cancel(w->srv);
		pthread_join(w->srv, NULL);
	}
	if (w->cg_made)
		fl_cgroup_remove(w->cg, 2000, &e);
	if (w->j)
		fl_journal_close(w->j, false);
	if (fl_tl_rm_rf(w->jdir))
		return -1;
	{
		int *fds[] = {&w->agent_sock, &w->udp_d, &w->udp_o, &w->tcp_d, &w->tcp_o, &w->tcp6_d,
			      &w->stop[0], &w->stop[1]};

		for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
			if (*fds[i] >= 0)
				close(*fds[i]);
	}
	return 0;
}

#define NEED_WORLD(w)                                                   \
	do {                                                            \
		if (!(w)->ready) {                                      \
			print_message("skipped: %s\n", (w)->why_not);   \
			skip();                                         \
		}                                                       \
	} while (0)

static struct reply agent(struct world *w, struct cmd c)
{
	struct pollfd pf = {.fd = w->agent_sock, .events = POLLIN};
	struct reply r;

	assert_int_equal(write(w->agent_sock, &c, sizeof(c)), sizeof(c));
	assert_int_equal(poll(&pf, 1, AGENT_WAIT_MS), 1);
	assert_int_equal(read(w->agent_sock, &r, sizeof(r)), sizeof(r));
	return r;
}

static struct reply tcp_connects(struct world *w, int family, uint16_t port, int n)
{
	return agent(w, (struct cmd){.op = OP_TCP_CONNECT, .family = family, .port = port, .n = n});
}

/* The same connects from the test process itself: outside the cgroup. */
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

/* ---- faults from scenario text through the real tables ------------------------------------- */

static void forget(struct world *w, struct fl_scenario *sc)
{
	for (int i = 0; i < w->nlive; i++)
		if (w->live[i] == sc) {
			w->live[i] = w->live[--w->nlive];
			return;
		}
}

/* Parse one fault, aim it at the test cgroup, check and apply it. */
static struct fl_fault *apply_fault(struct world *w, const char *yaml, struct fl_scenario **out)
{
	struct fl_scenario *sc = fl_tl_scenario("t", yaml, NULL, 0);
	struct fl_fault *f;
	struct fl_err e = {0};

	assert_non_null(sc);
	assert_int_equal(sc->nfaults, 1);
	w->live[w->nlive++] = sc;
	f = &sc->faults[0];
	f->target = &w->info;
	if (f->inj->check(f, &e))
		fail_msg("check %s: %s (%s)", f->inj->type, e.msg, e.hint);
	if (f->inj->apply(f, w->j, &e))
		fail_msg("apply %s: %s (%s)", f->inj->type, e.msg, e.hint);
	*out = sc;
	return f;
}

static void revert_fault(struct world *w, struct fl_scenario *sc, struct fl_observation *final)
{
	struct fl_fault *f = &sc->faults[0];
	struct fl_err e = {0};

	if (f->inj->revert(f, &e))
		fail_msg("revert: %s", e.msg);
	assert_int_equal(f->inj->revert(f, &e), 0); /* idempotent */
	if (final) {
		memset(final, 0, sizeof(*final));
		assert_int_equal(f->inj->observe(f, final), 0);
	}
	f->inj->release(f);
	assert_int_equal(fl_journal_mark_fault_reverted(w->j, f->name), 0);
	forget(w, sc);
	fl_scenario_free(sc);
	assert_int_equal(attached_count(w->cg), 0);
}

static const struct fl_observation *obs_of(struct fl_fault *f, struct fl_observation *o)
{
	memset(o, 0, sizeof(*o));
	assert_int_equal(f->inj->observe(f, o), 0);
	return o;
}

static double obs_num(const struct fl_observation *o, const char *key)
{
	int i = fl_tl_obs_index(o, key);

	if (i < 0)
		fail_msg("observation has no %s", key);
	assert_true(o->kv[i].is_num);
	return o->kv[i].num;
}

static void settle(void)
{
	struct timespec ts = {.tv_nsec = 50 * 1000 * 1000};

	nanosleep(&ts, NULL);
}

/* ---- network.partition -------------------------------------------------------------------------- */

static void test_partition_refuses_with_exact_errno(void **state)
{
	static const char *const names[] = {"ECONNREFUSED", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH",
					    "ECONNRESET",   "EACCES",    "EPERM"};
	static const int nums[] = {ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, ECONNRESET, EACCES, EPERM};
	struct world *w = *state;
	char yaml[512];

	NEED_WORLD(w);
	for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++) {
		struct fl_scenario *sc;
		struct fl_fault *f;
		struct fl_observation o;
		struct reply r;
		int acc0 = atomic_load(&w->acc_d);

		snprintf(yaml, sizeof(yaml),
			 "  - {name: part, type: network.partition, duration: 1s, errno: %s,\n"
			 "     match: {dst_ip: 127.0.0.0/8, dst_port: %u}}\n",
			 names[k], w->port_d);
		f = apply_fault(w, yaml, &sc);
		assert_int_equal(attached_count(w->cg), 4); /* connect4/6, sendmsg4/6 */

		/* in scope, matched: exactly the configured errno, every time, and no SYN left */
		r = tcp_connects(w, AF_INET, w->port_d, 20);
		if (r.ok || r.errs != 20 || r.err_first != nums[k] || r.err_other)
			fail_msg("%s: %d ok, %d failed, first errno %s, %d other", names[k], r.ok, r.errs,
				 strerror(r.err_first), r.err_other);
		/* UDP: unconnected sendto and connect() of a UDP socket are refused the same way */
		r = agent(w, (struct cmd){.op = OP_UDP_SEND, .family = AF_INET, .port = w->port_d, .n = 5});
		assert_int_equal(r.errs, 5);
		assert_int_equal(r.err_first, nums[k]);
		r = agent(w, (struct cmd){.op = OP_UDP_SEND, .family = AF_INET, .port = w->port_d, .n = 5,
					  .connected = true});
		assert_int_equal(r.errs, 5);
		assert_int_equal(r.err_first, nums[k]);
		/* a v6 socket reaching the v4 destination as ::ffff:127.0.0.1 is the same destination */
		r = tcp_connects(w, MAPPED, w->port_d, 3);
		assert_int_equal(r.errs, 3);
		assert_int_equal(r.err_first, nums[k]);
		r = tcp_connects(w, AF_INET6, w->port_d, 2); /* ::1 is not in 127.0.0.0/8 */
		assert_int_equal(r.ok, 2);
		/* in scope, another port: fine */
		r = tcp_connects(w, AF_INET, w->port_o, 5);
		assert_int_equal(r.ok, 5);
		/* out of scope, matched port: fine */
		assert_int_equal(outside_connect(AF_INET, w->port_d), 0);
		settle();
		/* the 2 v6 connects and our own reached the listener; none of the 20 refused ones */
		assert_int_equal(atomic_load(&w->acc_d) - acc0, 3);

		obs_of(f, &o);
		assert_true(obs_num(&o, "connects_matched") == 28.0); /* 20 + 3 mapped TCP, 5 UDP connect() */
		assert_true(obs_num(&o, "connects_refused") == 28.0);
		assert_true(obs_num(&o, "sends_refused") == 5.0);
		assert_true(obs_num(&o, "refused_observed") == 1.0);
		revert_fault(w, sc, NULL);

		/* after revert everything passes */
		r = tcp_connects(w, AF_INET, w->port_d, 5);
		assert_int_equal(r.ok, 5);
		r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_d, .n = 2,
					  .timeout_ms = 1000});
		assert_int_equal(r.ok, 2);
	}
	print_message("partition: 7 errnos, each exact on 20/20 TCP connects, 5/5 UDP sendto, 5/5 UDP connect\n");
}

static void test_partition_v6_and_default_match(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct reply r;
	char yaml[512];

	NEED_WORLD(w);
	/* no address: every destination on that port, v4 and v6, tcp only */
	snprintf(yaml, sizeof(yaml),
		 "  - {name: part6, type: network.partition, duration: 1s, errno: ENETUNREACH,\n"
		 "     match: {dst_port: %u, protocol: tcp}}\n",
		 w->port_d);
	f = apply_fault(w, yaml, &sc);
	assert_int_equal(attached_count(w->cg), 2); /* tcp only: no sendmsg hooks */
	r = tcp_connects(w, AF_INET6, w->port_d, 10);
	assert_int_equal(r.errs, 10);
	assert_int_equal(r.err_first, ENETUNREACH);
	r = tcp_connects(w, AF_INET, w->port_d, 10);
	assert_int_equal(r.errs, 10);
	assert_int_equal(r.err_first, ENETUNREACH);
	/* udp is not matched */
	r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_d, .n = 2,
				  .timeout_ms = 1000});
	assert_int_equal(r.ok, 2);
	assert_int_equal(outside_connect(AF_INET6, w->port_d), 0);
	(void)f;
	revert_fault(w, sc, NULL);
	r = tcp_connects(w, AF_INET6, w->port_d, 3);
	assert_int_equal(r.ok, 3);
}

static void test_partition_probability(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o;
	struct reply r;
	char yaml[512];
	const int n = 2000;
	double share;

	NEED_WORLD(w);
	snprintf(yaml, sizeof(yaml),
		 "  - {name: half, type: network.partition, duration: 1s, probability: 50%%,\n"
		 "     match: {dst_ip: 127.0.0.1, dst_port: %u, protocol: tcp}}\n",
		 w->port_d);
	f = apply_fault(w, yaml, &sc);
	r = tcp_connects(w, AF_INET, w->port_d, n);
	share = (double)r.errs / n;
	print_message("partition probability 50%%: the child saw %d of %d connects refused (%.2f%%)\n", r.errs, n,
		      100.0 * share);
	assert_int_equal(r.ok + r.errs, n);
	assert_int_equal(r.err_other, 0);
	assert_int_equal(r.err_first, ECONNREFUSED);
	assert_true(share >= 0.45 && share <= 0.55);
	obs_of(f, &o);
	assert_true(obs_num(&o, "connects_matched") == (double)n);
	assert_true(obs_num(&o, "connects_refused") == (double)r.errs);
	assert_true(obs_num(&o, "probability") == 0.5);
	assert_true(obs_num(&o, "refused_observed") == share);
	revert_fault(w, sc, &o);
	/* the final observe after revert still has the whole fault */
	assert_true(obs_num(&o, "connects_refused") == (double)r.errs);
	r = tcp_connects(w, AF_INET, w->port_d, 20);
	assert_int_equal(r.ok, 20);
}

static void test_partition_blackhole(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o;
	struct reply r;
	char yaml[512];
	int acc0, q0;

	NEED_WORLD(w);
	snprintf(yaml, sizeof(yaml),
		 "  - {name: hole, type: network.partition, duration: 1s, mode: blackhole,\n"
		 "     match: {dst_ip: 127.0.0.1, dst_port: %u}}\n",
		 w->port_d);
	f = apply_fault(w, yaml, &sc);
	assert_int_equal(attached_count(w->cg), 2); /* cgroup_skb egress + ingress */
	acc0 = atomic_load(&w->acc_d);
	q0 = atomic_load(&w->q_d);

	/* matched: the connect is still pending after 500 ms (the caller's own timeout decides) */
	r = agent(w, (struct cmd){.op = OP_TCP_NB, .family = AF_INET, .port = w->port_d, .timeout_ms = 500});
	assert_int_equal(r.sync_errno, EINPROGRESS);
	assert_false(r.completed);
	/* unmatched: completes at once */
	r = agent(w, (struct cmd){.op = OP_TCP_NB, .family = AF_INET, .port = w->port_o, .timeout_ms = 500});
	assert_true(r.completed);
	assert_int_equal(r.final_errno, 0);
	assert_true(r.elapsed_ms < 100);
	/* like a real blackhole the kernel retransmits the SYN with backoff: with 1 retry, ETIMEDOUT at 1 s + 2 s */
	r = agent(w, (struct cmd){.op = OP_TCP_NB, .family = AF_INET, .port = w->port_d, .timeout_ms = 6000,
				  .syncnt = 1});
	print_message("blackhole: TCP_SYNCNT=1 connect ended with %s after %.0f ms\n", strerror(r.final_errno),
		      r.elapsed_ms);
	assert_true(r.completed);
	assert_int_equal(r.final_errno, ETIMEDOUT);
	assert_true(r.elapsed_ms > 2500 && r.elapsed_ms < 4500);
	/* UDP: the send "succeeds" (as on a real network), nothing arrives, no reply */
	r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_d, .n = 3,
				  .timeout_ms = 200});
	assert_int_equal(r.errs, 0);
	assert_int_equal(r.timeouts, 3);
	r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_o, .n = 3,
				  .timeout_ms = 1000});
	assert_int_equal(r.ok, 3);
	/* outside the cgroup the destination is fine */
	assert_int_equal(outside_connect(AF_INET, w->port_d), 0);
	settle();
	/* the SYNs and datagrams never reached the peer: only our own connect did */
	assert_int_equal(atomic_load(&w->acc_d) - acc0, 1);
	assert_int_equal(atomic_load(&w->q_d) - q0, 0);
	obs_of(f, &o);
	assert_true(obs_num(&o, "packets_dropped") >= 1 + 2 + 3); /* SYN, SYN + retry, 3 datagrams */
	assert_true(obs_num(&o, "packets_dropped") == obs_num(&o, "packets_matched"));
	revert_fault(w, sc, NULL);
	r = agent(w, (struct cmd){.op = OP_TCP_NB, .family = AF_INET, .port = w->port_d, .timeout_ms = 1000});
	assert_true(r.completed);
	assert_int_equal(r.final_errno, 0);

	/* a whole host: pings go unanswered too, and the ping itself is not an error */
	f = apply_fault(w, "  - {name: hole2, type: network.partition, duration: 1s, mode: blackhole,\n"
			   "     match: {dst_ip: 127.0.0.2}}\n", &sc);
	r = agent(w, (struct cmd){.op = OP_PING, .n = 3, .timeout_ms = 300});
	assert_int_equal(r.errs, 0);
	assert_int_equal(r.ok, 0);
	assert_int_equal(r.timeouts, 3);
	{
		struct reply mine;

		memset(&mine, 0, sizeof(mine));
		ping_lo2(&(struct cmd){.n = 2, .timeout_ms = 1000}, &mine);
		assert_int_equal(mine.ok, 2); /* from outside the cgroup */
	}
	obs_of(f, &o);
	assert_true(obs_num(&o, "ingress_dropped") == 3.0); /* the three echo replies */
	revert_fault(w, sc, NULL);
	r = agent(w, (struct cmd){.op = OP_PING, .n = 2, .timeout_ms = 1000});
	assert_int_equal(r.ok, 2);
}

/* Probability in blackhole mode is per flow: a connection is either wholly cut or wholly fine. */
static void test_partition_blackhole_per_flow(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o;
	char yaml[512];
	int hung = 0, fine = 0;
	const int n = 200;

	NEED_WORLD(w);
	snprintf(yaml, sizeof(yaml),
		 "  - {name: halfhole, type: network.partition, duration: 1s, mode: blackhole, probability: 50%%,\n"
		 "     match: {dst_port: %u, protocol: tcp}}\n",
		 w->port_d);
	f = apply_fault(w, yaml, &sc);
	for (int i = 0; i < n; i++) {
		struct reply r = agent(w, (struct cmd){.op = OP_TCP_NB, .family = AF_INET, .port = w->port_d,
						       .timeout_ms = 20});

		if (r.completed && r.final_errno == 0)
			fine++;
		else if (!r.completed)
			hung++;
	}
	print_message("blackhole probability 50%%: %d of %d connects hung, %d completed\n", hung, n, fine);
	assert_int_equal(hung + fine, n);
	assert_true(hung >= n * 35 / 100 && hung <= n * 65 / 100);
	obs_of(f, &o);
	assert_true(obs_num(&o, "packets_dropped") >= hung);
	revert_fault(w, sc, NULL);
}

/* ---- network.dns -------------------------------------------------------------------------------- */

static void test_dns_fail(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o;
	struct reply r;
	char yaml[512];
	int q0;

	NEED_WORLD(w);
	snprintf(yaml, sizeof(yaml),
		 "  - {name: nodns, type: network.dns, duration: 1s, mode: fail, port: %u,\n"
		 "     servers: 127.0.0.1, errno: EHOSTUNREACH}\n",
		 w->port_d);
	f = apply_fault(w, yaml, &sc);
	q0 = atomic_load(&w->q_d);
	r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_d, .n = 10,
				  .timeout_ms = 500});
	assert_int_equal(r.errs, 10);
	assert_int_equal(r.err_first, EHOSTUNREACH);
	assert_int_equal(r.err_other, 0);
	/* glibc's resolver connect()s its UDP socket first */
	r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_d, .n = 10,
				  .timeout_ms = 500, .connected = true});
	assert_int_equal(r.errs, 10);
	assert_int_equal(r.err_first, EHOSTUNREACH);
	/* DNS over TCP to the same port */
	r = tcp_connects(w, AF_INET, w->port_d, 5);
	assert_int_equal(r.errs, 5);
	assert_int_equal(r.err_first, EHOSTUNREACH);
	/* another resolver port answers */
	r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_o, .n = 5,
				  .timeout_ms = 1000});
	assert_int_equal(r.ok, 5);
	/* servers: 127.0.0.1 does not cover ::1 */
	r = tcp_connects(w, AF_INET6, w->port_d, 2);
	assert_int_equal(r.ok, 2);
	settle();
	assert_int_equal(atomic_load(&w->q_d) - q0, 0);
	obs_of(f, &o);
	assert_true(obs_num(&o, "queries_failed") == 25.0);
	assert_true(obs_num(&o, "queries_matched") == 25.0);
	assert_true(obs_num(&o, "failed_observed") == 1.0);
	revert_fault(w, sc, NULL);
	r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_d, .n = 5,
				  .timeout_ms = 1000});
	assert_int_equal(r.ok, 5);
}

static void test_dns_timeout(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o;
	struct reply r;
	char yaml[512];
	int q0;

	NEED_WORLD(w);
	snprintf(yaml, sizeof(yaml),
		 "  - {name: slowdns, type: network.dns, duration: 1s, mode: timeout, port: %u}\n", w->port_d);
	f = apply_fault(w, yaml, &sc);
	assert_int_equal(attached_count(w->cg), 1);
	q0 = atomic_load(&w->q_d);
	r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_d, .n = 5,
				  .timeout_ms = 300});
	/* the queries leave and are answered; the answers never reach the resolver */
	assert_int_equal(r.errs, 0);
	assert_int_equal(r.timeouts, 5);
	settle();
	assert_int_equal(atomic_load(&w->q_d) - q0, 5);
	r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_o, .n = 5,
				  .timeout_ms = 1000});
	assert_int_equal(r.ok, 5);
	/* DNS over TCP hangs too: the SYN-ACK from the resolver's port is a reply */
	r = agent(w, (struct cmd){.op = OP_TCP_NB, .family = AF_INET, .port = w->port_d, .timeout_ms = 300});
	assert_false(r.completed);
	obs_of(f, &o);
	assert_true(obs_num(&o, "replies_dropped") >= 6.0);
	assert_true(obs_num(&o, "replies_dropped") == obs_num(&o, "replies_matched"));
	revert_fault(w, sc, NULL);
	r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_d, .n = 5,
				  .timeout_ms = 1000});
	assert_int_equal(r.ok, 5);
}

/* ---- the cgroup backend of network.loss ------------------------------------------------------- */

static void test_cgroup_loss_backend(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_fault *f;
	struct fl_observation o;
	struct fl_journal_info ji;
	struct fl_err e;
	struct reply r;
	struct sockaddr_storage ss;
	socklen_t sl;
	char yaml[512];
	const int n = 4000;
	int fd, sent = 0;
	double loss;
	bool found = false;

	NEED_WORLD(w);
	if (!fl_injector_find("network.loss")) {
		print_message("skipped: network.loss is not registered in this tree\n");
		skip();
	}
	r = agent(w, (struct cmd){.op = OP_UDP_BIND});
	assert_int_equal(r.errs, 0);
	snprintf(yaml, sizeof(yaml),
		 "  - {name: lossy, type: network.loss, duration: 1s, percent: 20%%, backend: cgroup,\n"
		 "     match: {direction: ingress, protocol: udp, dst_port: %u, src_ip: 127.0.0.1}}\n",
		 r.port);
	f = apply_fault(w, yaml, &sc);
	assert_int_equal(attached_count(w->cg), 1);

	/* the sender is outside the cgroup: only the receiving child's ingress is in scope */
	sl = fl_tl_lo_addr(AF_INET, r.port, &ss);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	for (int i = 0; i < n; i++) {
		char msg[32];
		int len = snprintf(msg, sizeof(msg), "%d", i);

		if (sendto(fd, msg, (size_t)len, 0, (struct sockaddr *)&ss, sl) == len)
			sent++;
	}
	close(fd);
	assert_int_equal(sent, n);
	r = agent(w, (struct cmd){.op = OP_UDP_COUNT, .timeout_ms = 300});
	loss = 1.0 - (double)r.received / n;
	print_message("cgroup loss 20%%: the child received %d of %d datagrams (%.2f%% lost)\n", r.received, n,
		      100.0 * loss);
	assert_true(loss >= 0.17 && loss <= 0.23);
	obs_of(f, &o);
	assert_true(obs_num(&o, "packets_matched") == (double)n);
	assert_true(obs_num(&o, "packets_dropped") == (double)(n - r.received));
	assert_true(obs_num(&o, "loss_configured") == 0.2);

	/* the record is the backend's: the front dispatches revert_record on it */
	assert_int_equal(fl_journal_read(fl_journal_path(w->j), &ji, &e), 0);
	for (int i = 0; i < ji.nrecs; i++)
		if (!strcmp(ji.recs[i].fault, "lossy")) {
			assert_int_equal(strncmp(ji.recs[i].data, "backend=cgroup ", 15), 0);
			assert_non_null(strstr(ji.recs[i].data, "progs=fl_cg_ingress"));
			found = true;
		}
	fl_journal_info_free(&ji);
	assert_true(found);
	revert_fault(w, sc, NULL);

	/* after revert every datagram arrives */
	r = agent(w, (struct cmd){.op = OP_UDP_BIND});
	sl = fl_tl_lo_addr(AF_INET, r.port, &ss);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	for (int i = 0; i < 500; i++)
		sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, sl);
	close(fd);
	r = agent(w, (struct cmd){.op = OP_UDP_COUNT, .timeout_ms = 300});
	assert_int_equal(r.received, 500);
}

static void test_cgroup_backend_refuses_egress(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc;
	struct fl_err e = {0};

	NEED_WORLD(w);
	if (!fl_injector_find("network.loss")) {
		print_message("skipped: network.loss is not registered in this tree\n");
		skip();
	}
	sc = fl_tl_scenario("t",
			    "  - {name: lossy, type: network.loss, duration: 1s, percent: 20%, backend: cgroup,\n"
			    "     match: {protocol: udp, dst_port: 9}}\n",
			    NULL, 0);
	assert_non_null(sc);
	sc->faults[0].target = &w->info;
	assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), -EOPNOTSUPP);
	assert_non_null(strstr(e.msg, "requeued"));
	assert_non_null(strstr(e.hint, "direction: ingress"));
	fl_scenario_free(sc);
}

/* ---- from the journal alone ---------------------------------------------------------------------- */

/* In a fresh child holding none of the parent's fds: read the journal, revert every record of `fault`. */
static void revert_records_in_child(struct world *w, const char *journal, const char *fault)
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
		int rc = 0;

		if (p[1] != 3 && dup2(p[1], 3) < 0)
			_exit(2);
		syscall(SYS_close_range, 4, ~0U, 0);
		rc = fl_journal_read(journal, &ji, &e);
		for (int i = 0; !rc && i < ji.nrecs; i++) {
			if (strcmp(ji.recs[i].fault, fault) || ji.recs[i].reverted)
				continue;
			rc = fl_injector_find(ji.recs[i].injector)->revert_record(&ji.recs[i], &e);
			/* twice: idempotent */
			if (!rc)
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
	(void)w;
}

static void test_revert_record_in_fresh_process(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc, *keep;
	struct fl_fault *f;
	struct fl_observation o;
	struct fl_err e = {0};
	struct reply r;
	char yaml[512];

	NEED_WORLD(w);
	snprintf(yaml, sizeof(yaml),
		 "  - {name: rr, type: network.partition, duration: 1s, match: {dst_port: %u}}\n"
		 , w->port_d);
	f = apply_fault(w, yaml, &sc);
	/* another fault on the same cgroup: its programs carry another tag and must stay */
	snprintf(yaml, sizeof(yaml), "  - {name: keep, type: network.dns, duration: 1s, port: %u}\n", w->port_o);
	apply_fault(w, yaml, &keep);
	assert_int_equal(attached_count(w->cg), 8);
	r = tcp_connects(w, AF_INET, w->port_d, 3);
	assert_int_equal(r.errs, 3);

	/* the controller (this process) still holds the links: revert_record must detach them anyway */
	revert_records_in_child(w, fl_journal_path(w->j), "rr");
	assert_int_equal(attached_count(w->cg), 4);
	assert_int_equal(fl_cg_count_attached(w->cg, 0, &e), 4);
	r = tcp_connects(w, AF_INET, w->port_d, 3);
	assert_int_equal(r.ok, 3);
	r = agent(w, (struct cmd){.op = OP_UDP_QUERY, .family = AF_INET, .port = w->port_o, .n = 2,
				  .timeout_ms = 500});
	assert_int_equal(r.errs, 2); /* "keep" is still in force */
	/* the in-process revert afterwards is still fine, and observe still reports the fault */
	assert_int_equal(f->inj->revert(f, &e), 0);
	revert_fault(w, keep, NULL);
	revert_fault(w, sc, &o);
	assert_true(obs_num(&o, "connects_refused") == 3.0);
	assert_int_equal(fl_cg_count_attached(w->cg, 0, &e), 0);
}

/* A dead controller's unpinned links vanish with it; revert_record then has nothing to do. */
static void test_dead_controller_leaves_nothing(void **state)
{
	struct world *w = *state;
	char run2[64], journal[256], yaml[512];
	struct fl_journal_info ji;
	struct fl_err e = {0};
	int p[2], status, n = -1, detached = -1;
	pid_t pid;
	double t0, gone_ms = -1;
	struct reply r;

	NEED_WORLD(w);
	snprintf(run2, sizeof(run2), "20261201T000000-%d-dead", (int)getpid());
	snprintf(journal, sizeof(journal), "%s/%s.journal", w->jdir, run2);
	snprintf(yaml, sizeof(yaml),
		 "  - {name: orphan, type: network.partition, duration: 1s, match: {dst_port: %u}}\n", w->port_d);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fl_scenario *sc = fl_tl_scenario("t", yaml, NULL, 0);
		struct fl_journal *j = NULL;
		char ok = 'n';

		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (sc && !fl_journal_open(w->jdir, run2, "dead", &j, &e)) {
			sc->faults[0].target = &w->info;
			if (!sc->faults[0].inj->apply(&sc->faults[0], j, &e))
				ok = 'y';
		}
		if (write(p[1], &ok, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	{
		char ok = 0;

		assert_int_equal(read(p[0], &ok, 1), 1);
		close(p[0]);
		if (ok != 'y') {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			fail_msg("the child controller could not apply");
		}
	}
	assert_int_equal(attached_count(w->cg), 4);
	r = tcp_connects(w, AF_INET, w->port_d, 2);
	assert_int_equal(r.errs, 2);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	t0 = fl_tl_now_ms();
	while (fl_tl_now_ms() - t0 < 3000) {
		n = attached_count(w->cg);
		if (!n) {
			gone_ms = fl_tl_now_ms() - t0;
			break;
		}
		settle();
	}
	print_message("SIGKILLed controller: its links were gone %.0f ms after it was reaped\n", gone_ms);
	assert_int_equal(n, 0);
	assert_int_equal(fl_journal_read(journal, &ji, &e), 0);
	assert_false(ji.owner_alive);
	assert_int_equal(ji.nrecs, 1);
	assert_int_equal(fl_cg_revert_record(&ji.recs[0], &detached, &e), 0);
	assert_int_equal(detached, 0);
	fl_journal_info_free(&ji);
	r = tcp_connects(w, AF_INET, w->port_d, 2);
	assert_int_equal(r.ok, 2);
}

/* ---- what must be refused, before anything runs ------------------------------------------------ */

static void expect_invalid(const char *yaml, const char *needle)
{
	char diag[1024];
	struct fl_scenario *sc = fl_tl_scenario("t", yaml, diag, sizeof(diag));

	if (sc) {
		fl_scenario_free(sc);
		fail_msg("accepted: %s", yaml);
	}
	if (!strstr(diag, needle))
		fail_msg("diagnostic '%s' lacks '%s'", diag, needle);
}

static void test_validation_and_checks(void **state)
{
	struct world *w = *state;
	struct fl_target_info none = {0}, root = {0};
	struct fl_scenario *sc;
	struct fl_err e = {0};
	char buf[512];

	expect_invalid("  - {name: p, type: network.partition, duration: 1s, match: {interface: lo}}\n", "match.interface");
	expect_invalid("  - {name: p, type: network.partition, duration: 1s, match: {direction: ingress}}\n", "match.direction");
	expect_invalid("  - {name: p, type: network.partition, duration: 1s, match: {src_ip: 10.0.0.1}}\n", "match.src_ip");
	expect_invalid("  - {name: p, type: network.partition, duration: 1s, errno: EBADF}\n", "ECONNREFUSED, ETIMEDOUT");
	expect_invalid("  - {name: p, type: network.partition, duration: 1s, mode: blackhole, errno: EPERM}\n", "refuse only");
	expect_invalid("  - {name: p, type: network.partition, duration: 1s, match: {protocol: icmp}}\n", "mode: blackhole");
	expect_invalid("  - {name: d, type: network.dns, duration: 1s, mode: timeout, errno: EPERM}\n", "fail only");
	expect_invalid("  - {name: d, type: network.dns, duration: 1s, port: 0}\n", "port");

	sc = fl_tl_scenario("t",
			    "  - {name: p, type: network.partition, duration: 1s, match: {dst_ip: 10.1.0.0/16, "
			    "dst_port: 5432}}\n"
			    "  - {name: d, type: network.dns, duration: 1s, mode: timeout}\n",
			    NULL, 0);
	assert_non_null(sc);
	/* the parser keeps the prefix (it once dropped it, matching 10.1.0.0/32 instead) */
	assert_int_equal(fl_fault_value(&sc->faults[0], "match")->obj[fl_param_index(fl_net_match_params, "dst_ip")].cidr.prefix, 16);
	/* no cgroup: the reason says how a target gets one */
	sc->faults[0].target = &none;
	assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), -ENOENT);
	assert_non_null(strstr(e.hint, "launch"));
	/* the root cgroup only with allow_host_wide */
	snprintf(root.cgroup_v2, sizeof(root.cgroup_v2), CG_ROOT);
	sc->faults[1].target = &root;
	if (w->ready) {
		assert_int_equal(sc->faults[1].inj->check(&sc->faults[1], &e), -EPERM);
		assert_non_null(strstr(e.msg, "root cgroup"));
		root.allow_host_wide = true;
		assert_int_equal(sc->faults[1].inj->check(&sc->faults[1], &e), 0);
		sc->faults[0].target = &w->info;
		assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), 0);
	}
	sc->faults[0].target = NULL;
	sc->faults[0].inj->describe(&sc->faults[0], buf, sizeof(buf));
	print_message("plan: %s\n", buf);
	assert_non_null(strstr(buf, "10.1.0.0/16 port 5432"));
	assert_non_null(strstr(buf, "ECONNREFUSED"));
	sc->faults[1].inj->describe(&sc->faults[1], buf, sizeof(buf));
	print_message("plan: %s\n", buf);
	assert_non_null(strstr(buf, "port 53"));
	fl_scenario_free(sc);
}

/* ---- the host as it was ------------------------------------------------------------------------ */

static void test_host_is_as_before(void **state)
{
	struct world *w = *state;
	__u32 ids[MAX_PROGS];
	char names[MAX_PROGS][BPF_OBJ_NAME_LEN];
	struct fl_err e = {0};
	int n, status;
	struct timespec pause = {.tv_nsec = 20 * 1000 * 1000};

	NEED_WORLD(w);
	assert_int_equal(w->nlive, 0);
	assert_int_equal(attached_count(w->cg), 0);
	/* the agent leaves and is reaped; the cgroup is empty, then gone */
	assert_int_equal(write(w->agent_sock, &(struct cmd){.op = OP_EXIT}, sizeof(struct cmd)), sizeof(struct cmd));
	assert_int_equal(waitpid(w->agent, &status, 0), w->agent);
	w->agent = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(fl_cgroup_remove(w->cg, 2000, &e), 0);
	assert_true(access(w->cg, F_OK) && errno == ENOENT);
	w->cg_made = false;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* no child of ours is left */
	assert_int_equal(errno, ECHILD);
	/* no fl_* program that was not there before (release of the last reference can trail a little) */
	for (int tries = 0; tries < 100; tries++) {
		bool extra = false;

		n = list_fl_progs(ids, names, MAX_PROGS);
		for (int i = 0; i < n; i++) {
			bool old = false;

			for (int k = 0; k < w->nbefore; k++)
				old |= w->before_ids[k] == ids[i];
			if (!old && !strncmp(names[i], "fl_cg_", 6)) {
				extra = true;
				if (tries == 99)
					print_error("BPF program %u (%s) is still loaded\n", ids[i], names[i]);
			}
		}
		if (!extra)
			break;
		assert_true(tries < 99);
		nanosleep(&pause, NULL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_validation_and_checks, drop_live),
		cmocka_unit_test_teardown(test_partition_refuses_with_exact_errno, drop_live),
		cmocka_unit_test_teardown(test_partition_v6_and_default_match, drop_live),
		cmocka_unit_test_teardown(test_partition_probability, drop_live),
		cmocka_unit_test_teardown(test_partition_blackhole, drop_live),
		cmocka_unit_test_teardown(test_partition_blackhole_per_flow, drop_live),
		cmocka_unit_test_teardown(test_dns_fail, drop_live),
		cmocka_unit_test_teardown(test_dns_timeout, drop_live),
		cmocka_unit_test_teardown(test_cgroup_loss_backend, drop_live),
		cmocka_unit_test_teardown(test_cgroup_backend_refuses_egress, drop_live),
		cmocka_unit_test_teardown(test_revert_record_in_fresh_process, drop_live),
		cmocka_unit_test_teardown(test_dead_controller_leaves_nothing, drop_live),
		cmocka_unit_test_teardown(test_host_is_as_before, drop_live),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
