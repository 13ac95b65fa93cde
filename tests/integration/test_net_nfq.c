/* The nfqueue backend between two test namespaces: measured delay, jitter and loss, lossless revert, revert from the journal alone, sweep, and nothing left behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_testlib.h"
#include "journal.h"
#include "net.h"
#include "procfs.h"

#define ADDR_A "192.0.2.1"
#define ADDR_B "192.0.2.2"
#define P_DELAY 5001 /* tcp echo: the port the faults hit */
#define P_CLEAN 5002 /* tcp echo: must stay untouched */
#define P_LOSS 5003  /* udp sink */
#define P_HOLD 5004  /* udp sink for the lossless revert */
#define P_RR 5005    /* tcp echo for revert_record */

struct sink {
	uint64_t loss, hold;
};

static struct world {
	char skip[300];
	char ns_a[64], ns_b[64], ns_c[64], veth_a[16], veth_b[16];
	char dir[64], run_id[64], cg[256];
	struct fl_journal *j;
	struct fl_netns a;
	pid_t server;
	struct sink *sink;
	char host_rules_before[65536];
	pid_t delayers[64];
	int ndelayers;
	void *live[16];            /* applied and not yet released: a failed test's fault is undone at teardown */
	bool torn_down;
} W;

static const struct fl_injector test_inj = {.type = "network.delay"};

/* ---- helpers ------------------------------------------------------------------------------- */

/* Every rule listing of a namespace ("" = the host), both flavours; no -t: nothing gets created. */
static void rules_of(const char *ns, char *buf, size_t len)
{
	char pre[96] = "";

	if (ns[0])
		snprintf(pre, sizeof(pre), "ip netns exec %s ", ns);
	fl_tl_capture(buf, len,
		      "(%siptables-nft-save; %sip6tables-nft-save; %siptables-legacy-save; %sip6tables-legacy-save) "
		      "2>/dev/null | grep -e '^-A' || true",
		      pre, pre, pre, pre);
}

static int count_lines_with(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* A socket made inside namespace ns. */
static int socket_in(const struct fl_netns *ns, int type)
{
	struct fl_err e;
	int saved, fd;

	assert_int_equal(fl_netns_enter(ns, &saved, &e), 0);
	fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	fl_netns_leave(saved);
	assert_true(fd >= 0);
	return fd;
}

/* n one-byte ping-pongs over one TCP connection from ns A to B:port; each RTT in ms into out[]. */
static void pingpong(uint16_t port, int n, double *out)
{
	struct sockaddr_in b = fl_tl_addr4(ADDR_B, port);
	struct timeval tv = {.tv_sec = 3};
	int fd = socket_in(&W.a, SOCK_STREAM), one = 1;
	char c = 'x';

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&b, sizeof(b)), 0);
	for (int i = 0; i < n; i++) {
		double t0 = fl_tl_now_ms();

		assert_int_equal(send(fd, &c, 1, 0), 1);
		assert_int_equal(recv(fd, &c, 1, 0), 1);
		out[i] = fl_tl_now_ms() - t0;
	}
	close(fd);
}

static double median_rtt(uint16_t port, int n)
{
	double v[64];

	pingpong(port, n, v);
	qsort(v, (size_t)n, sizeof(double), fl_tl_cmp_double);
	return v[n / 2];
}

static const struct fl_observation *observe(void *st, struct fl_observation *o)
{
	memset(o, 0, sizeof(*o));
	assert_int_equal(fl_net_backend_nfqueue.observe(st, o), 0);
	return o;
}

static double obs_num(const struct fl_observation *o, const char *key)
{
	int i = fl_tl_obs_index(o, key);

	if (i < 0)
		fail_msg("observation has no %s", key);
	return o->kv[i].num;
}

static void print_obs(const char *what, const struct fl_observation *o)
{
	printf("  observe %s:", what);
	for (int i = 0; i < o->n; i++)
		printf(" %s=%s", o->kv[i].key, o->kv[i].text);
	printf("\n");
}

/* A request for fault f: egress from A on its veth, tcp/udp to B:port. */
static void req_for(struct fl_net_req *r, const struct fl_fault *f, enum fl_net_proto proto, uint16_t port)
{
	struct fl_err e;

	memset(r, 0, sizeof(*r));
	r->f = f;
	r->match.dir = FL_NET_EGRESS;
	r->match.has_dst = true;
	r->match.dst.family = AF_INET;
	r->match.dst.prefix = 32;
	inet_pton(AF_INET, ADDR_B, r->match.dst.addr);
	r->match.family = AF_INET;
	r->match.dst_port = port;
	r->match.proto = proto;
	snprintf(r->match.iface, sizeof(r->match.iface), "%s", W.veth_a);
	snprintf(r->iface, sizeof(r->iface), "%s", W.veth_a);
	r->fx.queue_pkts = 10000;
	if (fl_netns_open(W.ns_a, &r->ns, &e))
		fail_msg("%s", e.msg);
	if (fl_net_ifindex(&r->ns, r->iface, &r->ifindex, &e))
		fail_msg("%s", e.msg);
}

/* The child= pids the journal holds for fault `name` (for the nothing-left-behind check). */
static void note_delayers(void)
{
	struct fl_journal_info info;
	struct fl_err e;

	assert_int_equal(fl_journal_read(fl_journal_path(W.j), &info, &e), 0);
	W.ndelayers = 0;
	for (int i = 0; i < info.nrecs && W.ndelayers < 64; i++) {
		int64_t pid;

		if (!fl_rec_get_i64(&info.recs[i], "child", &pid))
			W.delayers[W.ndelayers++] = (pid_t)pid;
	}
	fl_journal_info_free(&info);
}

static void *apply(struct fl_net_req *r)
{
	struct fl_err e = {0};
	void *st = NULL;
	int rc;

	assert_int_equal(fl_net_backend_nfqueue.check(r, &e), 0);
	rc = fl_net_backend_nfqueue.apply(r, W.j, &st, &e);
	if (rc)
		fail_msg("apply: %s (%s)", e.msg, e.hint);
	assert_non_null(st);
	for (int i = 0; i < 16; i++)
		if (!W.live[i]) {
			W.live[i] = st;
			break;
		}
	note_delayers();
	return st;
}

static void release(void *st)
{
	for (int i = 0; i < 16; i++)
		if (W.live[i] == st)
			W.live[i] = NULL;
	fl_net_backend_nfqueue.release(st);
}

static void revert_release(void *st)
{
	struct fl_err e = {0};

	if (fl_net_backend_nfqueue.revert(st, &e))
		fail_msg("revert: %s", e.msg);
	assert_int_equal(fl_net_backend_nfqueue.revert(st, &e), 0); /* idempotent */
}

/* ---- the server in namespace B ------------------------------------------------------------- */

static int listen_on(int type, uint16_t port)
{
	struct sockaddr_in s = fl_tl_addr4(ADDR_B, port);
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1, big = 4 << 20;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	if (bind(fd, (struct sockaddr *)&s, sizeof(s)) < 0 || (type == SOCK_STREAM && listen(fd, 64) < 0))
		_exit(3);
	return fd;
}

/* In B (the caller forked it there): tcp echo on three ports, udp sinks on two. */
static void __attribute__((noreturn)) server_main(void)
{
	int ep, lfd[3], u_loss, u_hold;
	struct epoll_event ev = {.events = EPOLLIN};

	ep = epoll_create1(0);
	lfd[0] = listen_on(SOCK_STREAM, P_DELAY);
	lfd[1] = listen_on(SOCK_STREAM, P_CLEAN);
	lfd[2] = listen_on(SOCK_STREAM, P_RR);
	u_loss = listen_on(SOCK_DGRAM, P_LOSS);
	u_hold = listen_on(SOCK_DGRAM, P_HOLD);
	for (int i = 0; i < 3; i++) {
		ev.data.u64 = (uint64_t)lfd[i] | 1ULL << 32;
		epoll_ctl(ep, EPOLL_CTL_ADD, lfd[i], &ev);
	}
	ev.data.u64 = (uint64_t)u_loss | 2ULL << 32;
	epoll_ctl(ep, EPOLL_CTL_ADD, u_loss, &ev);
	ev.data.u64 = (uint64_t)u_hold | 3ULL << 32;
	epoll_ctl(ep, EPOLL_CTL_ADD, u_hold, &ev);
	for (;;) {
		struct epoll_event evs[32];
		int n = epoll_wait(ep, evs, 32, -1);

		for (int i = 0; i < n; i++) {
			int fd = (int)(evs[i].data.u64 & 0xffffffff), kind = (int)(evs[i].data.u64 >> 32);
			char buf[2048];
			ssize_t got;

			if (kind == 1) {
				int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK), one = 1;

				if (c >= 0) {
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					ev.data.u64 = (uint64_t)c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
			} else if (kind == 2 || kind == 3) {
				while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
					__atomic_add_fetch(kind == 2 ? &W.sink->loss : &W.sink->hold, 1, __ATOMIC_RELAXED);
			} else {
				got = recv(fd, buf, sizeof(buf), 0);
				if (got <= 0) {
					close(fd);
					continue;
				}
				if (send(fd, buf, (size_t)got, MSG_NOSIGNAL) < 0)
					close(fd);
			}
		}
	}
}

/* ---- world setup / teardown --------------------------------------------------------------- */

static void world_destroy(void)
{
	if (W.torn_down)
		return;
	W.torn_down = true;
	for (int i = 0; i < 16; i++)
		if (W.live[i]) {
			struct fl_err e;

			fl_net_backend_nfqueue.revert(W.live[i], &e);
			fl_net_backend_nfqueue.release(W.live[i]);
			W.live[i] = NULL;
		}
	if (W.server > 0) {
		kill(W.server, SIGKILL);
		waitpid(W.server, NULL, 0);
		W.server = 0;
	}
	fl_netns_close(&W.a);
	if (W.j)
		fl_journal_close(W.j, false);
	W.j = NULL;
	fl_tl_netns_del(W.ns_a);
	fl_tl_netns_del(W.ns_b);
	fl_tl_netns_del(W.ns_c);
	if (W.cg[0])
		rmdir(W.cg);
	fl_tl_rm_rf(W.dir);
}

static int group_setup(void **state)
{
	struct fl_err e = {0};
	int pid = (int)getpid();

	(void)state;
	W.a.fd = -1;
	snprintf(W.ns_a, sizeof(W.ns_a), "fl-nfq-%d-a", pid);
	snprintf(W.ns_b, sizeof(W.ns_b), "fl-nfq-%d-b", pid);
	snprintf(W.ns_c, sizeof(W.ns_c), "fl-nfq-%d-c", pid);
	snprintf(W.veth_a, sizeof(W.veth_a), "nfq%da", pid % 10000000);
	snprintf(W.veth_b, sizeof(W.veth_b), "nfq%db", pid % 10000000);
	fl_tl_run_id(W.run_id, sizeof(W.run_id), pid, "abcd");
	if (geteuid() != 0) {
		snprintf(W.skip, sizeof(W.skip), "not root: the nfqueue backend needs CAP_NET_ADMIN");
		return 0;
	}
	if (fl_net_backend_nfqueue.probe(&e)) {
		snprintf(W.skip, sizeof(W.skip), "NFQUEUE unavailable: %.200s %.70s", e.msg, e.hint);
		return 0;
	}
	printf("  probe: %s\n", e.msg[0] ? e.msg : "ok");
	rules_of("", W.host_rules_before, sizeof(W.host_rules_before));
	if (fl_tl_sh("ip netns add %s && ip netns add %s && ip netns add %s", W.ns_a, W.ns_b, W.ns_c) ||
	    fl_tl_veth_pair(W.ns_a, W.veth_a, ADDR_A "/24", W.ns_b, W.veth_b, ADDR_B "/24"))
		return -1;
	if (fl_netns_open(W.ns_a, &W.a, &e))
		return -1;
	W.j = fl_tl_journal(W.dir, sizeof(W.dir), "fl-nfq", W.run_id, "test_net_nfq");
	if (!W.j)
		return -1;
	W.sink = mmap(NULL, sizeof(*W.sink), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (W.sink == MAP_FAILED)
		return -1;
	W.server = fl_tl_fork_in_netns(W.ns_b);
	if (W.server == 0)
		server_main();
	/* the listeners are up when a connect works */
	for (int i = 0; i < 200; i++) {
		struct sockaddr_in b = fl_tl_addr4(ADDR_B, P_RR);
		int fd = socket_in(&W.a, SOCK_STREAM), ok = connect(fd, (struct sockaddr *)&b, sizeof(b)) == 0;

		close(fd);
		if (ok)
			return 0;
		usleep(10000);
	}
	return -1;
}

static int group_teardown(void **state)
{
	(void)state;
	world_destroy();
	return 0;
}

#define NEED_WORLD()                                   \
	do {                                           \
		if (W.skip[0]) {                       \
			printf("  skip: %s\n", W.skip); \
			skip();                        \
		}                                      \
	} while (0)

/* ---- tests --------------------------------------------------------------------------------- */

static void test_check_refuses_what_it_cannot(void **state)
{
	struct fl_fault f = {.name = "chk", .inj = &test_inj};
	struct fl_net_req r;
	struct fl_err e;

	(void)state;
	NEED_WORLD();
	req_for(&r, &f, FL_NET_TCP, P_DELAY);
	r.fx.delay_ns = 50000000;
	assert_int_equal(fl_net_backend_nfqueue.check(&r, &e), 0);
	r.fx.duplicate = 0.1;
	assert_int_equal(fl_net_backend_nfqueue.check(&r, &e), -EOPNOTSUPP);
	assert_non_null(strstr(e.hint, "netem"));
	r.fx.duplicate = 0;
	r.fx.corrupt = 0.1;
	assert_int_equal(fl_net_backend_nfqueue.check(&r, &e), -EOPNOTSUPP);
	r.fx.corrupt = 0;
	r.fx.reorder = 0.1;
	assert_int_equal(fl_net_backend_nfqueue.check(&r, &e), -EOPNOTSUPP);
	r.fx.reorder = 0;
	r.fx.rate = 1000000;
	assert_int_equal(fl_net_backend_nfqueue.check(&r, &e), -EOPNOTSUPP);
	r.fx.rate = 0;
	/* 60 s of hold with 10000 slots carries < 1000 packets/s: refused, with the cap explained */
	r.fx.delay_ns = 60LL * 1000000000;
	assert_int_equal(fl_net_backend_nfqueue.check(&r, &e), -E2BIG);
	assert_non_null(strstr(e.hint, "held_at_cap"));
	r.fx.delay_ns = 50000000;
	r.fx.queue_pkts = 1000000;
	assert_int_equal(fl_net_backend_nfqueue.check(&r, &e), -E2BIG);
	r.fx.queue_pkts = 10000;
	/* a cgroup match needs the target's cgroup; ingress has no socket to look at */
	r.match.cgroup = true;
	assert_int_not_equal(fl_net_backend_nfqueue.check(&r, &e), 0);
	r.match.dir = FL_NET_INGRESS;
	assert_int_equal(fl_net_backend_nfqueue.check(&r, &e), -EOPNOTSUPP);
	fl_net_req_fini(&r);
}

static void test_delay_hits_only_the_matched_port(void **state)
{
	struct fl_fault f = {.name = "lat", .inj = &test_inj};
	struct fl_net_req r;
	struct fl_observation o;
	struct fl_journal_info info;
	struct fl_err e;
	double base_d, base_c, d, c, after, added, probe_added, rtt;
	char rules[8192];
	void *st;

	(void)state;
	NEED_WORLD();
	base_d = median_rtt(P_DELAY, 21);
	base_c = median_rtt(P_CLEAN, 21);
	req_for(&r, &f, FL_NET_TCP, P_DELAY);
	r.fx.delay_ns = 50 * 1000000LL;
	st = apply(&r);
	fl_net_req_fini(&r); /* the backend keeps its own namespace handle */

	/* the journal: the rules record first (everything to delete them), then the delayer */
	assert_int_equal(fl_journal_read(fl_journal_path(W.j), &info, &e), 0);
	assert_true(info.nrecs >= 2);
	{
		const struct fl_journal_rec *r1 = &info.recs[info.nrecs - 2], *r2 = &info.recs[info.nrecs - 1];
		char v[FL_REC_DATA];

		printf("  journal: %s\n  journal: %s\n", r1->data, r2->data);
		assert_string_equal(fl_rec_get(r1, "backend", v, sizeof(v)), "nfqueue");
		assert_non_null(fl_rec_get(r1, "rules", v, sizeof(v)));
		assert_non_null(strstr(v, "--dport," "5001"));
		assert_non_null(fl_rec_get(r1, "netns", v, sizeof(v)));
		assert_non_null(fl_rec_get(r2, "child", v, sizeof(v)));
		assert_non_null(fl_rec_get(r2, "start", v, sizeof(v)));
	}
	fl_journal_info_free(&info);
	rules_of(W.ns_a, rules, sizeof(rules));
	printf("  rules in %s:\n%s", W.ns_a, rules);
	assert_int_equal(count_lines_with(rules, W.run_id), 1);
	assert_non_null(strstr(rules, "--queue-bypass"));

	observe(st, &o); /* starts the first handshake probe */
	d = median_rtt(P_DELAY, 9);
	c = median_rtt(P_CLEAN, 21);
	added = d - base_d;
	printf("  port %d: %.3f -> %.3f ms (added %.3f); port %d: %.3f -> %.3f ms\n", P_DELAY, base_d, d, added,
	       P_CLEAN, base_c, c);
	assert_true(fabs(added - 50.0) <= 3.0);
	assert_true(c - base_c < 3.0);
	observe(st, &o); /* collects the probe started above (>= 450 ms ago) */
	print_obs("during", &o);
	probe_added = obs_num(&o, "added_rtt_ms");
	rtt = obs_num(&o, "rtt_ms");
	assert_true(rtt > 45.0);
	assert_true(fabs(probe_added - added) <= 3.0);
	assert_true(obs_num(&o, "packets_delayed") >= 9);
	assert_true(fabs(obs_num(&o, "hold_ms_mean") - 50.0) <= 3.0);
	assert_true(obs_num(&o, "packets_dropped") == 0);
	assert_true(obs_num(&o, "held_at_cap") == 0);

	revert_release(st);
	rules_of(W.ns_a, rules, sizeof(rules));
	assert_int_equal(count_lines_with(rules, W.run_id), 0);
	after = median_rtt(P_DELAY, 21);
	printf("  after revert: %.3f ms (baseline %.3f)\n", after, base_d);
	assert_true(after - base_d < 3.0);
	observe(st, &o); /* the final observe after revert still reports the whole fault */
	assert_true(obs_num(&o, "packets_delayed") >= 9);
	for (int i = 0; i < W.ndelayers; i++)
		assert_true(kill(W.delayers[i], 0) < 0 && errno == ESRCH);
	release(st);
}

/* The added delays of the last spread(), so a test can count how many fall in a window. */
static double spread_v[41];

static int spread_within(double lo, double hi)
{
	int n = 0;

	for (int i = 0; i < 41; i++)
		n += spread_v[i] >= lo && spread_v[i] <= hi;
	return n;
}

/*
 * Mean and sd of the samples inside lo..hi: the shape of the jitter without the ping a shared host
 * stalled for 100 ms (the tests first require that at most two fall outside).
 */
static void spread_inliers(double lo, double hi, double *mean, double *sd)
{
	double sum = 0, sq = 0;
	int n = 0;

	for (int i = 0; i < 41; i++)
		if (spread_v[i] >= lo && spread_v[i] <= hi) {
			sum += spread_v[i];
			sq += spread_v[i] * spread_v[i];
			n++;
		}
	*mean = n ? sum / n : 0;
	*sd = n ? sqrt(sq / n - *mean * *mean) : 0;
}

static void spread(enum fl_net_dist dist, int64_t delay_ms, int64_t jitter_ms, double *mean, double *sd,
		   double *lo, double *hi)
{
	struct fl_fault f = {.name = "jit", .inj = &test_inj};
	struct fl_net_req r;
	double base = median_rtt(P_DELAY, 21), v[41], sum = 0, sq = 0;
	int n = 41;
	void *st;

	req_for(&r, &f, FL_NET_TCP, P_DELAY);
	r.fx.delay_ns = delay_ms * 1000000;
	r.fx.jitter_ns = jitter_ms * 1000000;
	r.fx.dist = dist;
	st = apply(&r);
	fl_net_req_fini(&r);
	pingpong(P_DELAY, n, v);
	revert_release(st);
	release(st);
	*lo = 1e9;
	*hi = -1e9;
	for (int i = 0; i < n; i++) {
		double a = v[i] - base;

		spread_v[i] = a;
		sum += a;
		sq += a * a;
		*lo = a < *lo ? a : *lo;
		*hi = a > *hi ? a : *hi;
	}
	*mean = sum / n;
	*sd = sqrt(sq / n - *mean * *mean);
}

static void test_jitter_spreads_the_delay(void **state)
{
	double mean, sd, lo, hi;

	(void)state;
	NEED_WORLD();
	/* uniform 20 +- 10 ms: sd 5.8 in theory */
	spread(FL_DIST_UNIFORM, 20, 10, &mean, &sd, &lo, &hi);
	printf("  uniform 20+-10ms: mean %.2f sd %.2f range %.2f..%.2f ms\n", mean, sd, lo, hi);
	assert_true(hi - lo >= 8.0);
	/* in 10..30 ms, but a shared host may stall one ping now and then: 39 of 41 within 9..31.5 */
	assert_true(spread_within(9.0, 31.5) >= 39);
	spread_inliers(9.0, 31.5, &mean, &sd);
	printf("  inside 9..31.5 ms: mean %.2f sd %.2f\n", mean, sd);
	assert_true(fabs(mean - 20.0) <= 3.0);
	assert_true(sd > 3.5 && sd < 8.0);
	/* normal, sigma 5 ms: 39 of 41 within 4 sigma, and their spread a normal one's */
	spread(FL_DIST_NORMAL, 30, 5, &mean, &sd, &lo, &hi);
	printf("  normal 30 sigma 5ms: mean %.2f sd %.2f range %.2f..%.2f ms\n", mean, sd, lo, hi);
	assert_true(spread_within(30 - 4 * 5 - 1, 30 + 4 * 5 + 1.5) >= 39);
	spread_inliers(30 - 4 * 5 - 1, 30 + 4 * 5 + 1.5, &mean, &sd);
	printf("  inside 9..51.5 ms: mean %.2f sd %.2f\n", mean, sd);
	assert_true(fabs(mean - 30.0) <= 3.0);
	assert_true(sd > 2.5 && sd < 8.0);
}

static void test_ingress_without_address_covers_v4_v6_tcp_udp(void **state)
{
	struct fl_fault f = {.name = "ingr", .inj = &test_inj};
	struct fl_net_req r;
	struct fl_journal_info info;
	struct fl_err e;
	char rules[8192], v[FL_REC_DATA];
	double base, d;
	void *st;

	(void)state;
	NEED_WORLD();
	base = median_rtt(P_DELAY, 21);
	/* in B, on its veth, packets arriving for P_DELAY from anyone: tcp+udp, v4+v6, at PREROUTING */
	memset(&r, 0, sizeof(r));
	r.f = &f;
	r.match.dir = FL_NET_INGRESS;
	r.match.family = AF_UNSPEC;
	r.match.dst_port = P_DELAY;
	snprintf(r.iface, sizeof(r.iface), "%s", W.veth_b);
	r.fx.queue_pkts = 10000;
	r.fx.delay_ns = 30 * 1000000LL;
	assert_int_equal(fl_netns_open(W.ns_b, &r.ns, &e), 0);
	st = apply(&r);
	fl_net_req_fini(&r);
	rules_of(W.ns_b, rules, sizeof(rules));
	printf("  rules in %s:\n%s", W.ns_b, rules);
	assert_int_equal(count_lines_with(rules, "faultline-" /* ours */), 4);
	assert_int_equal(count_lines_with(rules, "-A PREROUTING -i "), 4);
	assert_int_equal(fl_journal_read(fl_journal_path(W.j), &info, &e), 0);
	assert_non_null(fl_rec_get(&info.recs[info.nrecs - 2], "rules", v, sizeof(v)));
	assert_int_equal(count_lines_with(v, ";") + 1, 4);
	fl_journal_info_free(&info);
	d = median_rtt(P_DELAY, 9);
	printf("  ingress: %.3f -> %.3f ms\n", base, d);
	assert_true(fabs(d - base - 30.0) <= 3.0);
	revert_release(st);
	release(st);
	rules_of(W.ns_b, rules, sizeof(rules));
	assert_int_equal(count_lines_with(rules, "faultline-"), 0);
	assert_true(median_rtt(P_DELAY, 21) - base < 3.0);
}

/* A child in cgroup `cg` (written to cgroup.procs before it makes its socket) runs the ping-pongs. */
static double median_rtt_in_cgroup(const char *cg, uint16_t port, int n)
{
	int p[2];
	double med = -1;
	pid_t c;

	assert_int_equal(pipe(p), 0);
	c = fork();
	if (c == 0) {
		if (fl_tl_cgroup_join(cg))
			_exit(2);
		med = median_rtt(port, n);
		if (write(p[1], &med, sizeof(med)) != sizeof(med))
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &med, sizeof(med)) != sizeof(med))
		med = -1;
	close(p[0]);
	assert_int_equal(waitpid(c, NULL, 0), c);
	return med;
}

static void test_cgroup_match_hits_only_that_cgroup(void **state)
{
	struct fl_fault f = {.name = "cg", .inj = &test_inj};
	struct fl_target_info target = {0};
	struct fl_net_req r;
	struct fl_err e;
	char *cg = W.cg, rules[8192];
	double base, in, out;
	struct stat sb;
	void *st;

	(void)state;
	NEED_WORLD();
	if (stat("/sys/fs/cgroup/unified", &sb) == 0)
		snprintf(W.cg, sizeof(W.cg), "/sys/fs/cgroup/unified/fl-nfq-%d", (int)getpid());
	else
		snprintf(W.cg, sizeof(W.cg), "/sys/fs/cgroup/fl-nfq-%d", (int)getpid());
	if (mkdir(cg, 0755) < 0) {
		printf("  skip: no writable cgroup v2 hierarchy (%s: %s)\n", cg, strerror(errno));
		skip();
	}
	snprintf(target.cgroup_v2, sizeof(target.cgroup_v2), "%s", cg);
	f.target = &target;
	base = median_rtt(P_DELAY, 21);
	req_for(&r, &f, FL_NET_TCP, P_DELAY);
	r.match.cgroup = true;
	r.fx.delay_ns = 40 * 1000000LL;
	if (fl_net_backend_nfqueue.check(&r, &e)) {
		rmdir(cg);
		fail_msg("check: %s", e.msg);
	}
	st = apply(&r);
	fl_net_req_fini(&r);
	rules_of(W.ns_a, rules, sizeof(rules));
	assert_non_null(strstr(rules, "-m cgroup --path \"/fl-nfq-"));
	in = median_rtt_in_cgroup(cg, P_DELAY, 9);
	out = median_rtt(P_DELAY, 21);
	printf("  cgroup %s: inside %.3f ms, outside %.3f ms (baseline %.3f)\n", cg, in, out, base);
	revert_release(st);
	release(st);
	assert_int_equal(rmdir(cg), 0);
	W.cg[0] = '\0';
	assert_true(fabs(in - base - 40.0) <= 3.0);
	assert_true(out - base < 3.0);
}

static uint64_t sink_count(uint64_t *c)
{
	uint64_t v = __atomic_load_n(c, __ATOMIC_RELAXED), prev;

	/* settled: nothing new for 100 ms */
	do {
		prev = v;
		usleep(100000);
		v = __atomic_load_n(c, __ATOMIC_RELAXED);
	} while (v != prev);
	return v;
}

/* n datagrams from A to B:port, paced so no socket buffer on the way overflows. */
static void send_udp(uint16_t port, int n, int per_ms)
{
	struct sockaddr_in b = fl_tl_addr4(ADDR_B, port);
	int fd = socket_in(&W.a, SOCK_DGRAM), big = 8 << 20;
	char payload[32] = "faultline nfq test";

	/* a queued datagram stays charged to the sender's buffer until its verdict: room for all */
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)), 0);

	for (int i = 0; i < n; i++) {
		assert_int_equal(sendto(fd, payload, sizeof(payload), 0, (struct sockaddr *)&b, sizeof(b)),
				 (ssize_t)sizeof(payload));
		if (per_ms && i % per_ms == per_ms - 1)
			usleep(1000);
	}
	close(fd);
}

static void test_loss_drops_the_configured_share(void **state)
{
	struct fl_fault f = {.name = "drop", .inj = &test_inj};
	struct fl_net_req r;
	struct fl_observation o;
	const int sent = 2500;
	uint64_t before, got;
	double measured;
	void *st;

	(void)state;
	NEED_WORLD();
	before = sink_count(&W.sink->loss);
	req_for(&r, &f, FL_NET_UDP, P_LOSS);
	r.fx.loss = 0.20;
	st = apply(&r);
	fl_net_req_fini(&r);
	send_udp(P_LOSS, sent, 25);
	got = sink_count(&W.sink->loss) - before;
	measured = 1.0 - (double)got / sent;
	observe(st, &o);
	print_obs("loss", &o);
	printf("  loss: %d sent, %llu received: %.2f%% lost\n", sent, (unsigned long long)got, 100 * measured);
	assert_true(fabs(measured - 0.20) <= 0.03);
	/* every datagram is accounted for: matched = sent, dropped by us = the ones missing */
	assert_true(obs_num(&o, "packets_matched") == sent);
	assert_true(obs_num(&o, "packets_dropped") == (double)(sent - (int)got));
	assert_true(fabs(obs_num(&o, "loss_observed") - measured) < 1e-9);
	revert_release(st);
	release(st);
}

static void test_revert_loses_no_held_packet(void **state)
{
	struct fl_fault f = {.name = "hold", .inj = &test_inj};
	struct fl_net_req r;
	struct fl_observation o;
	const int sent = 400;
	uint64_t before, got;
	double t0;
	void *st;

	(void)state;
	NEED_WORLD();
	before = sink_count(&W.sink->hold);
	req_for(&r, &f, FL_NET_UDP, P_HOLD);
	r.fx.delay_ns = 2000 * 1000000LL; /* far longer than the test waits: only the revert frees them */
	st = apply(&r);
	fl_net_req_fini(&r);
	t0 = fl_tl_now_ms();
	send_udp(P_HOLD, sent, 100);
	usleep(50000);
	observe(st, &o);
	print_obs("holding", &o);
	assert_true(obs_num(&o, "held_now") == sent);
	assert_int_equal(__atomic_load_n(&W.sink->hold, __ATOMIC_RELAXED) - before, 0);
	revert_release(st);
	got = sink_count(&W.sink->hold) - before;
	printf("  %d held, revert after %.0f ms: %llu delivered\n", sent, fl_tl_now_ms() - t0, (unsigned long long)got);
	assert_true(fl_tl_now_ms() - t0 < 2000); /* released by the revert, not by their timer */
	assert_int_equal(got, sent);
	observe(st, &o);
	assert_true(obs_num(&o, "held_now") == 0);
	assert_true(obs_num(&o, "packets_dropped") == 0);
	release(st);
}

static void test_revert_record_in_a_fresh_process(void **state)
{
	struct fl_fault f = {.name = "rr", .inj = &test_inj};
	struct fl_net_req r;
	struct fl_journal_info info;
	struct fl_err e;
	char rules[8192];
	double base, d;
	pid_t child, delayer = 0;
	int status;
	void *st;

	(void)state;
	NEED_WORLD();
	base = median_rtt(P_RR, 11);
	req_for(&r, &f, FL_NET_TCP, P_RR);
	r.fx.delay_ns = 50 * 1000000LL;
	st = apply(&r);
	fl_net_req_fini(&r);
	d = median_rtt(P_RR, 5);
	assert_true(d - base > 45.0);
	assert_int_equal(fl_journal_read(fl_journal_path(W.j), &info, &e), 0);
	for (int i = 0; i < info.nrecs; i++) {
		int64_t pid;

		if (!strcmp(info.recs[i].fault, "rr") && !fl_rec_get_i64(&info.recs[i], "child", &pid))
			delayer = (pid_t)pid;
	}
	assert_true(delayer > 0);
	/* as `faultline recover` would: another process, the records alone, newest first */
	child = fork();
	if (child == 0) {
		int bad = 0;

		for (int i = info.nrecs - 1; i >= 0; i--) {
			struct fl_err ce = {0};

			if (strcmp(info.recs[i].fault, "rr"))
				continue;
			if (fl_net_backend_nfqueue.revert_record(&info.recs[i], &ce)) {
				fprintf(stderr, "revert_record %llu: %s\n", (unsigned long long)info.recs[i].seq, ce.msg);
				bad = 1;
			}
		}
		_exit(bad);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	rules_of(W.ns_a, rules, sizeof(rules));
	assert_int_equal(count_lines_with(rules, "-rr "), 0);
	{
		char s = '?';

		/* gone, or a zombie waiting for us (its parent) to reap it */
		assert_true(fl_proc_state(delayer, &s) < 0 || s == 'Z');
	}
	d = median_rtt(P_RR, 11);
	assert_true(d - base < 3.0);
	/* and again: idempotent */
	for (int i = 0; i < info.nrecs; i++)
		if (!strcmp(info.recs[i].fault, "rr"))
			assert_int_equal(fl_net_backend_nfqueue.revert_record(&info.recs[i], &e), 0);
	fl_journal_info_free(&info);
	revert_release(st); /* reaps the delayer */
	release(st);
	assert_true(kill(delayer, 0) < 0 && errno == ESRCH);
}

static void test_revert_record_of_a_vanished_namespace(void **state)
{
	struct fl_fault f = {.name = "gone", .inj = &test_inj};
	struct fl_net_req r;
	struct fl_journal_info info;
	struct fl_err e;
	void *st;

	(void)state;
	NEED_WORLD();
	req_for(&r, &f, FL_NET_TCP, P_DELAY);
	fl_netns_close(&r.ns);
	assert_int_equal(fl_netns_open(W.ns_c, &r.ns, &e), 0);
	r.iface[0] = r.match.iface[0] = '\0';
	r.fx.delay_ns = 10 * 1000000LL;
	st = apply(&r);
	fl_net_req_fini(&r);
	assert_int_equal(fl_journal_read(fl_journal_path(W.j), &info, &e), 0);
	/* the delayer's record first (it pins the namespace), then the namespace itself goes */
	for (int i = info.nrecs - 1; i >= 0; i--)
		if (!strcmp(info.recs[i].fault, "gone") && strstr(info.recs[i].data, "child="))
			assert_int_equal(fl_net_backend_nfqueue.revert_record(&info.recs[i], &e), 0);
	revert_release(st);
	release(st);
	assert_int_equal(fl_tl_sh("ip netns del %s", W.ns_c), 0);
	for (int i = 0; i < info.nrecs; i++)
		if (!strcmp(info.recs[i].fault, "gone") && strstr(info.recs[i].data, "rules="))
			assert_int_equal(fl_net_backend_nfqueue.revert_record(&info.recs[i], &e), 0);
	fl_journal_info_free(&info);
}

#define DEAD_RUN "20261201T000000-999999-dead"

struct sweep_seen {
	int removed, failed;
	char what[8][720];
};

static bool sweep_dead(const struct fl_sweep *sw, const char *run_id)
{
	(void)sw;
	return !strcmp(run_id, DEAD_RUN);
}

static void sweep_report(const struct fl_sweep *sw, const char *run_id, const char *what, int rc, const char *msg)
{
	struct sweep_seen *s = sw->priv;

	printf("  sweep: run %s: %s: %s%s\n", run_id, what, rc ? "FAILED " : "removed", msg ? msg : "");
	assert_string_equal(run_id, DEAD_RUN);
	if (rc) {
		s->failed++;
		return;
	}
	if (s->removed < 8)
		snprintf(s->what[s->removed], sizeof(s->what[0]), "%s", what);
	s->removed++;
}

static void test_sweep_removes_only_dead_runs(void **state)
{
	struct sweep_seen seen = {0};
	struct fl_sweep sw = {.dead = sweep_dead, .report = sweep_report, .priv = &seen};
	const char *tail = "-j NFQUEUE --queue-num 3333 --queue-bypass";
	char rules[8192], live[128];

	(void)state;
	NEED_WORLD();
	snprintf(live, sizeof(live), "faultline-%s-live", W.run_id);
	assert_int_equal(fl_tl_sh("ip netns exec %s iptables-nft -t mangle -A OUTPUT -p udp --dport 6001 "
				  "-m comment --comment faultline-" DEAD_RUN "-orphan %s", W.ns_a, tail), 0);
	assert_int_equal(fl_tl_sh("ip netns exec %s ip6tables-nft -t mangle -A OUTPUT -p udp --dport 6001 "
				  "-m comment --comment faultline-" DEAD_RUN "-orphan6 %s", W.ns_a, tail), 0);
	assert_int_equal(fl_tl_sh("ip netns exec %s iptables-legacy -t mangle -A PREROUTING -p tcp --sport 6002 "
				  "-m comment --comment faultline-" DEAD_RUN "-orphanl %s", W.ns_a, tail), 0);
	/* iptables-save quotes a cgroup path (and any value beyond [A-Za-z0-9-]): the sweep must parse it */
	assert_int_equal(fl_tl_sh("ip netns exec %s iptables-nft -t mangle -A OUTPUT -p udp --dport 6005 "
				  "-m cgroup --path / -m comment --comment faultline-" DEAD_RUN "-orphan_q %s",
				  W.ns_a, tail), 0);
	assert_int_equal(fl_tl_sh("ip netns exec %s iptables-nft -t mangle -A OUTPUT -p udp --dport 6003 "
				  "-m comment --comment faultline-prod %s", W.ns_a, tail), 0);
	assert_int_equal(fl_tl_sh("ip netns exec %s iptables-nft -t mangle -A OUTPUT -p udp --dport 6004 "
				  "-m comment --comment %s %s", W.ns_a, live, tail), 0);
	assert_int_equal(fl_net_backend_nfqueue.sweep(&sw), 0);
	assert_int_equal(seen.failed, 0);
	assert_int_equal(seen.removed, 4);
	for (int i = 0; i < 4; i++)
		assert_non_null(strstr(seen.what[i], W.ns_a));
	rules_of(W.ns_a, rules, sizeof(rules));
	printf("  left in %s:\n%s", W.ns_a, rules);
	assert_null(strstr(rules, DEAD_RUN));
	assert_non_null(strstr(rules, "--comment faultline-prod "));
	assert_non_null(strstr(rules, live));
	/* a second sweep finds nothing of the dead run */
	seen.removed = 0;
	assert_int_equal(fl_net_backend_nfqueue.sweep(&sw), 0);
	assert_int_equal(seen.removed, 0);
	assert_int_equal(fl_tl_sh("ip netns exec %s iptables-nft -t mangle -D OUTPUT -p udp --dport 6003 "
				  "-m comment --comment faultline-prod %s", W.ns_a, tail), 0);
	assert_int_equal(fl_tl_sh("ip netns exec %s iptables-nft -t mangle -D OUTPUT -p udp --dport 6004 "
				  "-m comment --comment %s %s", W.ns_a, live, tail), 0);
}

static void test_nothing_left_behind(void **state)
{
	char now[65536], ns_rules[8192], path[128];
	struct stat sb;

	(void)state;
	NEED_WORLD();
	rules_of(W.ns_a, ns_rules, sizeof(ns_rules));
	assert_int_equal(count_lines_with(ns_rules, "faultline-"), 0);
	rules_of(W.ns_b, ns_rules, sizeof(ns_rules));
	assert_int_equal(count_lines_with(ns_rules, "faultline-"), 0);
	note_delayers();
	assert_true(W.ndelayers >= 9);
	for (int i = 0; i < W.ndelayers; i++)
		assert_true(kill(W.delayers[i], 0) < 0 && errno == ESRCH);
	/* no child of ours is left at all except the echo server */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), 0);
	kill(W.server, SIGKILL);
	waitpid(W.server, NULL, 0);
	W.server = 0;
	assert_true(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
	world_destroy();
	rules_of("", now, sizeof(now));
	assert_string_equal(now, W.host_rules_before);
	assert_int_equal(count_lines_with(now, W.run_id), 0);
	snprintf(path, sizeof(path), "/run/netns/%s", W.ns_a);
	assert_true(stat(path, &sb) < 0);
	snprintf(path, sizeof(path), "/run/netns/%s", W.ns_b);
	assert_true(stat(path, &sb) < 0);
	snprintf(path, sizeof(path), "/run/netns/%s", W.ns_c);
	assert_true(stat(path, &sb) < 0);
	snprintf(path, sizeof(path), "/sys/fs/cgroup/unified/fl-nfq-%d", (int)getpid());
	assert_true(stat(path, &sb) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_refuses_what_it_cannot),
		cmocka_unit_test(test_delay_hits_only_the_matched_port),
		cmocka_unit_test(test_jitter_spreads_the_delay),
		cmocka_unit_test(test_ingress_without_address_covers_v4_v6_tcp_udp),
		cmocka_unit_test(test_cgroup_match_hits_only_that_cgroup),
		cmocka_unit_test(test_loss_drops_the_configured_share),
		cmocka_unit_test(test_revert_loses_no_held_packet),
		cmocka_unit_test(test_revert_record_in_a_fresh_process),
		cmocka_unit_test(test_revert_record_of_a_vanished_namespace),
		cmocka_unit_test(test_sweep_removes_only_dead_runs),
		cmocka_unit_test(test_nothing_left_behind),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
