/* client.slowloris: a swarm of helper children holding many HTTP connections that trickle header bytes and never finish the request, as slow-header clients pin a server without ReadHeaderTimeout. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "injector.h"
#include "journal.h"
#include "net.h"
#include "procfs.h"
#include "proctree.h"
#include "units.h"

/* fds a swarm child keeps besides its connections (0-2, epoll, the namespace, a pipe) and slack */
#define FD_RESERVE 32
#define MAX_CHILDREN 16
/* a slot whose connect failed waits this long before it tries again (a down server is not spun on) */
#define RETRY_NS (100 * 1000000LL)
#define READY_MS 5000

static const struct fl_param slow_params[] = {
	{.name = "connections", .kind = FL_P_INT, .def = "200", .min = "1", .max = "1000000",
	 .help = "slow connections to keep open; one the server closes is replaced"},
	{.name = "interval", .kind = FL_P_DURATION, .def = "1s", .min = "1ms", .max = "10m",
	 .help = "each connection sends one more header byte this often, and never ends the headers"},
	{.name = "url", .kind = FL_P_STRING,
	 .help = "http://HOST[:PORT][/PATH] to aim at (default: the scenario's target.url); HOST must be "
		 "loopback or an address of one of this host's network namespaces"},
	{.name = "netns", .kind = FL_P_STRING,
	 .help = "network namespace the clients connect from: a name under /run/netns, a path, or pid:PID "
		 "(default: faultline's own, where the load runs)"},
	{0},
};

/* ---- the target: url, address, locality ------------------------------------------------------ */

struct slow_dst {
	struct sockaddr_storage ss;
	socklen_t len;
	char host[256];       /* for the Host header, as written in the url (with :port if given) */
	char path[512];
	char shown[300];      /* "127.0.0.1:8080" */
};

static const char *slow_url(const struct fl_fault *f)
{
	const struct fl_value *u = fl_fault_value(f, "url");

	if (u->set)
		return u->s;
	return f->target && f->target->url[0] ? f->target->url : NULL;
}

/* http://HOST[:PORT][/PATH] -> address (numeric, or resolved by getaddrinfo), Host header, path. */
static int parse_url(const char *url, struct slow_dst *d, struct fl_err *err)
{
	const char *p, *hs, *he, *ps;
	char name[256], port[8] = "80";
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
	int rc;

	memset(d, 0, sizeof(*d));
	if (strncmp(url, "http://", 7)) {
		fl_err_set(err, -EINVAL, "url '%s' is not http://", url);
		fl_err_hint(err, "slow headers need a plaintext HTTP/1.1 endpoint (https would first need a TLS handshake)");
		return -EINVAL;
	}
	p = url + 7;
	ps = p + strcspn(p, "/?#");
	snprintf(d->host, sizeof(d->host), "%.*s", (int)(ps - p), p);
	snprintf(d->path, sizeof(d->path), "%s", *ps == '/' ? ps : "/");
	if (*p == '[') {
		hs = p + 1;
		he = memchr(hs, ']', (size_t)(ps - hs));
		if (!he)
			return fl_err_set(err, -EINVAL, "url '%s': unterminated [IPv6] host", url);
		p = he + 1;
	} else {
		hs = p;
		he = memchr(hs, ':', (size_t)(ps - hs));
		if (!he)
			he = ps;
		p = he;
	}
	if (p < ps && *p == ':') {
		if (ps - p - 1 < 1 || ps - p - 1 > 5)
			return fl_err_set(err, -EINVAL, "url '%s': bad port", url);
		snprintf(port, sizeof(port), "%.*s", (int)(ps - p - 1), p + 1);
	}
	if (he == hs || (size_t)(he - hs) >= sizeof(name))
		return fl_err_set(err, -EINVAL, "url '%s' has no host", url);
	snprintf(name, sizeof(name), "%.*s", (int)(he - hs), hs);
	rc = getaddrinfo(name, port, &hints, &ai);
	if (rc || !ai) {
		fl_err_set(err, -EHOSTUNREACH, "url '%s': cannot resolve %s: %s", url, name, gai_strerror(rc));
		if (ai)
			freeaddrinfo(ai);
		return -EHOSTUNREACH;
	}
	memcpy(&d->ss, ai->ai_addr, ai->ai_addrlen);
	d->len = ai->ai_addrlen;
	freeaddrinfo(ai);
	{
		char a[INET6_ADDRSTRLEN] = "?";
		const void *addr = d->ss.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&d->ss)->sin_addr
							     : (const void *)&((struct sockaddr_in6 *)&d->ss)->sin6_addr;

		inet_ntop(d->ss.ss_family, addr, a, sizeof(a));
		snprintf(d->shown, sizeof(d->shown), d->ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", a, port);
	}
	return 0;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

struct local_ctx {
	const struct sockaddr_storage *ss;
	bool found;
	char where[256];
};

/* Is the address one of the interfaces' of the namespace we are in? */
static bool addr_here(const struct sockaddr_storage *ss)
{
	struct ifaddrs *ifa = NULL;
	bool found = false;

	if (getifaddrs(&ifa) < 0)
		return false;
	for (struct ifaddrs *i = ifa; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != ss->ss_family)
			continue;
		if (ss->ss_family == AF_INET)
			found = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr ==
				((const struct sockaddr_in *)ss)->sin_addr.s_addr;
		else
			found = !memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
					&((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	}
	freeifaddrs(ifa);
	return found;
}

static int local_cb(const struct fl_netns *ns, void *arg)
{
	struct local_ctx *c = arg;
	int saved;

	if (fl_netns_enter(ns, &saved, NULL))
		return 0;
	c->found = addr_here(c->ss);
	fl_netns_leave(saved);
	if (c->found)
		snprintf(c->where, sizeof(c->where), "%s", ns->path);
	return c->found;
}

/*
 * Traffic rules: a slow-header swarm aims only at this host's own services, never at a remote
 * host: loopback, or an address assigned in one of this host's network namespaces.
 */
static int dst_is_local(const struct slow_dst *d, struct fl_err *err)
{
	struct local_ctx c = {.ss = &d->ss};

	if (is_loopback(&d->ss))
		return 0;
	fl_netns_each(local_cb, &c);
	if (c.found)
		return 0;
	fl_err_set(err, -EPERM, "refusing a slow-header swarm against %s: not loopback and not an address of any "
				"network namespace of this host", d->shown);
	fl_err_hint(err, "aim at the target's own address (loopback, or its namespace's veth address)");
	return -EPERM;
}

/* ---- the swarm ------------------------------------------------------------------------------- */

/* One child's counters, in memory shared with the controller (the child writes, observe reads). */
struct swarm_stats {
	_Atomic int64_t open;             /* fds now: connecting + held */
	_Atomic int64_t held;             /* established, not closed by the server */
	_Atomic int64_t connecting;
	_Atomic uint64_t opened;          /* connects started */
	_Atomic uint64_t established;
	_Atomic uint64_t closed_by_server;
	_Atomic uint64_t life_ns;         /* sum of established -> closed, over closed_by_server */
	_Atomic uint64_t refused;
	_Atomic uint64_t failed;
	_Atomic int last_errno;
	_Atomic uint64_t bytes;
	_Atomic int64_t oldest_ns;        /* when the oldest connection now held was established, 0 none */
	int code;                         /* set before exit when the child could not run */
	char why[160];
};

struct swarm_job {
	const struct fl_netns *ns;
	const struct slow_dst *dst;
	int64_t interval_ns;
	int n;                            /* this child's connections */
	struct swarm_stats *stats;
};

enum { C_FREE, C_CONNECTING, C_HELD, C_RETRY };

struct conn {
	int fd;
	int state;
	int64_t est_ns, due_ns;           /* established at; next byte (held) or next try (retry) */
	uint32_t sent;
};

#define ADD(field, v) atomic_fetch_add_explicit(&st->field, (v), memory_order_relaxed)

/* Byte i of the request: the request line and Host, then "X-a: b\r\n" forever, never "\r\n\r\n". */
static char script_byte(const char *prefix, size_t plen, uint32_t i)
{
	static const char rep[] = "X-a: b\r\n";

	return i < plen ? prefix[i] : rep[(i - plen) % (sizeof(rep) - 1)];
}

static void conn_close(struct conn *c, struct swarm_stats *st, int epfd, int64_t retry_at)
{
	if (c->state == C_HELD)
		ADD(held, -1);
	if (c->state == C_CONNECTING)
		ADD(connecting, -1);
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		ADD(open, -1);
	}
	c->fd = -1;
	c->state = C_RETRY;
	c->due_ns = retry_at;
}

static void conn_failed(struct conn *c, struct swarm_stats *st, int epfd, int e, int64_t now)
{
	if (e == ECONNREFUSED)
		ADD(refused, 1);
	else
		ADD(failed, 1);
	atomic_store_explicit(&st->last_errno, e, memory_order_relaxed);
	conn_close(c, st, epfd, now + RETRY_NS);
}

static void conn_open(struct conn *c, int idx, const struct swarm_job *job, int epfd, int64_t now)
{
	struct swarm_stats *st = job->stats;
	/* reset on close, not FIN: a killed swarm leaves no TIME_WAIT behind on either side */
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)idx};
	int fd = socket(job->dst->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	ADD(opened, 1);
	if (fd < 0) {
		c->fd = -1;
		c->state = C_FREE;
		conn_failed(c, st, epfd, errno, now);
		return;
	}
	ADD(open, 1);
	c->fd = fd;
	c->sent = 0;
	c->state = C_CONNECTING;
	ADD(connecting, 1);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		conn_failed(c, st, epfd, errno, now);
		return;
	}
	if (connect(fd, (const struct sockaddr *)&job->dst->ss, job->dst->len) < 0 && errno != EINPROGRESS)
		conn_failed(c, st, epfd, errno, now);
}

/* One more byte; false when the server is gone (the caller closes). */
static bool conn_send(struct conn *c, struct swarm_stats *st, const char *prefix, size_t plen, int64_t next)
{
	char b = script_byte(prefix, plen, c->sent);
	ssize_t n = send(c->fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n == 1) {
		c->sent++;
		ADD(bytes, 1);
	} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		return false;
	}
	c->due_ns = next;
	return true;
}

static void server_closed(struct conn *c, struct swarm_stats *st, int epfd, int64_t now)
{
	ADD(closed_by_server, 1);
	ADD(life_ns, (uint64_t)(now - c->est_ns));
	/* replaced at the next tick, as a slowloris tool keeps its count */
	conn_close(c, st, epfd, now);
}

static void swarm_run(const struct swarm_job *job)
{
	struct swarm_stats *st = job->stats;
	struct conn *cs = calloc((size_t)job->n, sizeof(*cs));
	struct epoll_event evs[256];
	char prefix[1024];
	size_t plen;
	int64_t tick = job->interval_ns / 20, next_tick;
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	if (!cs || epfd < 0) {
		st->code = -ENOMEM;
		snprintf(st->why, sizeof(st->why), "swarm start: %s", strerror(errno ? errno : ENOMEM));
		_exit(1);
	}
	snprintf(prefix, sizeof(prefix), "GET %s HTTP/1.1\r\nHost: %s\r\n", job->dst->path, job->dst->host);
	plen = strlen(prefix);
	/* a byte per interval needs no finer clock than a twentieth of it (1..50 ms) */
	if (tick < 1000000)
		tick = 1000000;
	if (tick > 50000000)
		tick = 50000000;
	for (int i = 0; i < job->n; i++) {
		cs[i].fd = -1;
		conn_open(&cs[i], i, job, epfd, fl_mono_ns());
	}
	next_tick = fl_mono_ns() + tick;
	for (;;) {
		int64_t now = fl_mono_ns(), oldest = 0;
		int wait_ms = next_tick > now ? (int)((next_tick - now + 999999) / 1000000) : 0;
		int n = epoll_wait(epfd, evs, 256, wait_ms);

		now = fl_mono_ns();
		for (int k = 0; k < n; k++) {
			struct conn *c = &cs[evs[k].data.u32];

			if (c->state == C_CONNECTING) {
				int soerr = 0;
				socklen_t sl = sizeof(soerr);
				struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = evs[k].data.u32};

				if (!(evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
					continue;
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
				if (soerr || (evs[k].events & (EPOLLERR | EPOLLHUP))) {
					conn_failed(c, st, epfd, soerr ? soerr : ECONNRESET, now);
					continue;
				}
				c->state = C_HELD;
				c->est_ns = now;
				ADD(connecting, -1);
				ADD(held, 1);
				ADD(established, 1);
				epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
				if (!conn_send(c, st, prefix, plen, now + job->interval_ns))
					server_closed(c, st, epfd, now);
			} else if (c->state == C_HELD) {
				char buf[512];
				ssize_t r;
				bool gone = (evs[k].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;

				/* whatever the server says (a 408, a 400) is read and dropped; EOF or reset ends it */
				while ((r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
					;
				if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
					gone = true;
				if (gone)
					server_closed(c, st, epfd, now);
			}
		}
		if (now < next_tick)
			continue;
		next_tick = now + tick;
		for (int i = 0; i < job->n; i++) {
			struct conn *c = &cs[i];

			if (c->state == C_HELD && c->due_ns <= now) {
				/* late by more than an interval (a stalled child): no burst to catch up */
				int64_t next = c->due_ns + job->interval_ns;

				if (next <= now)
					next = now + job->interval_ns;
				if (!conn_send(c, st, prefix, plen, next))
					server_closed(c, st, epfd, now);
			} else if ((c->state == C_RETRY || c->state == C_FREE) && c->due_ns <= now) {
				conn_open(c, i, job, epfd, now);
			}
			if (c->state == C_HELD && (!oldest || c->est_ns < oldest))
				oldest = c->est_ns;
		}
		atomic_store_explicit(&st->oldest_ns, oldest, memory_order_relaxed);
	}
}

static void swarm_main(const struct swarm_job *job, int go_fd)
{
	struct fl_err e = {0};
	struct rlimit rl;
	int saved;
	char c;
	ssize_t n;

	prctl(PR_SET_NAME, "fl-slowloris");
	if (fl_netns_enter(job->ns, &saved, &e)) {
		job->stats->code = e.code ? e.code : -EPERM;
		snprintf(job->stats->why, sizeof(job->stats->why), "%.150s", e.msg);
		_exit(1);
	}
	if (saved >= 0)
		close(saved);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* no connection before the controller's journal names this process */
	do
		n = read(go_fd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(0);
	close(go_fd);
	swarm_run(job);
	_exit(0);
}

/* ---- the injector ---------------------------------------------------------------------------- */

struct child {
	pid_t pid;
	uint64_t start;
	int n;
	bool reaped;
};

struct slow_state {
	struct fl_netns ns;
	struct slow_dst dst;
	int64_t interval_ns;
	int connections;
	struct child ch[MAX_CHILDREN];
	int nch;
	struct swarm_stats *stats;   /* nch of them, shared with the children */
	size_t stats_len;
	int64_t applied_ns, reverted_ns;
	struct swarm_stats final;    /* summed at revert, what the last observe reports */
	bool reverted;
};

static int child_budget(void)
{
	struct rlimit rl;
	rlim_t hard;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024 - FD_RESERVE;
	hard = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
	return hard > FD_RESERVE * 2 ? (int)(hard - FD_RESERVE) : FD_RESERVE;
}

/* The ephemeral range of ns: each connection to one destination needs a port of it. */
static int range_size(const struct fl_netns *ns)
{
	char buf[64];
	int saved, fd, lo, hi;
	ssize_t n = -1;

	if (fl_netns_enter(ns, &saved, NULL))
		return -1;
	fd = open("/proc/sys/net/ipv4/ip_local_port_range", O_RDONLY | O_CLOEXEC);
	fl_netns_leave(saved);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return sscanf(buf, "%d %d", &lo, &hi) == 2 && hi >= lo ? hi - lo + 1 : -1;
}

static int slow_ns(const struct fl_fault *f, struct fl_netns *ns, struct fl_err *err)
{
	const struct fl_value *v = fl_fault_value(f, "netns");

	/* the clients connect from where the load does (faultline's own namespace) unless told */
	return fl_netns_open(v->set ? v->s : "/proc/self/ns/net", ns, err);
}

static int slow_plan(const struct fl_fault *f, struct slow_state *st, struct fl_err *err)
{
	const char *url = slow_url(f);
	int budget, range, rc;

	st->ns.fd = -1;
	st->connections = (int)fl_fault_value(f, "connections")->i;
	st->interval_ns = fl_fault_value(f, "interval")->i;
	if (!url) {
		fl_err_set(err, -EINVAL, "client.slowloris has no url: the target has none and `url` is unset");
		fl_err_hint(err, "set url: http://127.0.0.1:8080/ on the fault, or target.url");
		return -EINVAL;
	}
	rc = parse_url(url, &st->dst, err);
	if (rc)
		return rc;
	rc = dst_is_local(&st->dst, err);
	if (rc)
		return rc;
	rc = slow_ns(f, &st->ns, err);
	if (rc)
		return rc;
	budget = child_budget();
	if (st->connections > MAX_CHILDREN * budget) {
		fl_err_set(err, -EMFILE, "%d connections exceed the fd budget: %d children of %d fds (the hard "
					 "RLIMIT_NOFILE less %d)", st->connections, MAX_CHILDREN, budget, FD_RESERVE);
		fl_err_hint(err, "fewer connections, or a higher hard RLIMIT_NOFILE for faultline");
		return -EMFILE;
	}
	range = range_size(&st->ns);
	if (range > 0 && st->connections > range) {
		fl_err_set(err, -EADDRNOTAVAIL, "%d connections to %s need as many ephemeral ports; the range of %s "
						"holds %d", st->connections, st->dst.shown, st->ns.path, range);
		fl_err_hint(err, "fewer connections, or widen net.ipv4.ip_local_port_range");
		return -EADDRNOTAVAIL;
	}
	st->nch = (st->connections + budget - 1) / budget;
	return 0;
}

/* At load time, with FILE:LINE:COL: the url's form (resolution and locality wait for check). */
static int slow_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err)
{
	const struct fl_value *u = fl_fault_value(f, "url");

	if (u->set && strncmp(u->s, "http://", 7)) {
		*blame = u;
		fl_err_set(err, -EINVAL, "url '%s' is not http://", u->s);
		fl_err_hint(err, "slow headers need a plaintext HTTP/1.1 endpoint: http://HOST[:PORT][/PATH]");
		return -EINVAL;
	}
	if (u->set && (!u->s[7] || strchr("/?#:", u->s[7]))) {
		*blame = u;
		return fl_err_set(err, -EINVAL, "url '%s' has no host", u->s);
	}
	return 0;
}

static int slow_probe(struct fl_err *err)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);

	if (fd < 0)
		return fl_err_set(err, -errno, "epoll_create1: %s", strerror(errno));
	close(fd);
	return 0;
}

static int slow_check(const struct fl_fault *f, struct fl_err *err)
{
	struct slow_state st = {0};
	int rc = slow_plan(f, &st, err);

	fl_netns_close(&st.ns);
	return rc;
}

static void slow_describe(const struct fl_fault *f, char *buf, size_t len)
{
	const char *url = slow_url(f);
	char iv[32];

	fl_format_duration(fl_fault_value(f, "interval")->i, iv, sizeof(iv));
	snprintf(buf, len, "%lld slow-header connections to %s from helper children, one header byte every %s, "
			   "never a complete request; closed ones replaced; killed on revert",
		 (long long)fl_fault_value(f, "connections")->i, url ? url : "(the target's url)", iv);
}

static void stats_sum(const struct slow_state *st, struct swarm_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (int i = 0; i < st->nch; i++) {
		struct swarm_stats *s = &st->stats[i];
		int64_t old = atomic_load_explicit(&s->oldest_ns, memory_order_relaxed);
		int64_t cur = atomic_load_explicit(&sum->oldest_ns, memory_order_relaxed);

#define SUM(fld) atomic_store_explicit(&sum->fld, atomic_load_explicit(&sum->fld, memory_order_relaxed) + \
					   atomic_load_explicit(&s->fld, memory_order_relaxed), memory_order_relaxed)
		SUM(open);
		SUM(held);
		SUM(connecting);
		SUM(opened);
		SUM(established);
		SUM(closed_by_server);
		SUM(life_ns);
		SUM(refused);
		SUM(failed);
		SUM(bytes);
#undef SUM
		if (old && (!cur || old < cur))
			atomic_store_explicit(&sum->oldest_ns, old, memory_order_relaxed);
		if (atomic_load_explicit(&s->last_errno, memory_order_relaxed))
			atomic_store_explicit(&sum->last_errno, atomic_load_explicit(&s->last_errno, memory_order_relaxed),
					      memory_order_relaxed);
		if (s->code && !sum->code) {
			sum->code = s->code;
			memcpy(sum->why, s->why, sizeof(sum->why));
		}
	}
}

static void slow_stop(struct slow_state *st)
{
	for (int i = 0; i < st->nch; i++)
		if (st->ch[i].pid > 0 && !st->ch[i].reaped)
			kill(st->ch[i].pid, SIGKILL);
	for (int i = 0; i < st->nch; i++) {
		if (st->ch[i].pid > 0 && !st->ch[i].reaped)
			while (waitpid(st->ch[i].pid, NULL, 0) < 0 && errno == EINTR)
				;
		st->ch[i].reaped = true;
	}
}

static int slow_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	struct slow_state *st = calloc(1, sizeof(*st));
	struct swarm_job job = {0};
	int go[MAX_CHILDREN][2], rc = 0;

	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	rc = slow_plan(f, st, err);
	if (rc)
		goto fail;
	st->stats_len = sizeof(struct swarm_stats) * (size_t)st->nch;
	st->stats = mmap(NULL, st->stats_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (st->stats == MAP_FAILED) {
		st->stats = NULL;
		rc = fl_err_set(err, -errno, "mmap of the swarm's counters: %s", strerror(errno));
		goto fail;
	}
	job.ns = &st->ns;
	job.dst = &st->dst;
	job.interval_ns = st->interval_ns;
	st->applied_ns = fl_mono_ns();
	f->state = st;
	/* from here on the journal may name children: the state stays for revert even on failure */
	for (int i = 0; i < st->nch; i++) {
		int keep[2];
		pid_t pid;

		if (pipe2(go[i], O_CLOEXEC) < 0) {
			rc = fl_err_set(err, -errno, "pipe: %s", strerror(errno));
			st->nch = i;
			for (int k = 0; k < i; k++)
				close(go[k][1]);
			return rc;
		}
		keep[0] = st->ns.fd;
		keep[1] = go[i][0];
		job.n = (int)((int64_t)st->connections * (i + 1) / st->nch - (int64_t)st->connections * i / st->nch);
		job.stats = &st->stats[i];
		pid = fl_spawn_child(keep, 2, err);
		if (pid == 0)
			swarm_main(&job, go[i][0]);
		close(go[i][0]);
		if (pid < 0) {
			close(go[i][1]);
			st->nch = i;
			for (int k = 0; k < i; k++)
				close(go[k][1]);
			return (int)pid;
		}
		st->ch[i].pid = pid;
		st->ch[i].n = job.n;
		fl_proc_starttime(pid, &st->ch[i].start);
	}
	for (int i = 0; i < st->nch && !rc; i++) {
		int64_t seq = fl_journal_append(j, f, "kind=swarm pid=%d start=%llu child=%d/%d connections=%d "
						      FL_NETNS_REC_FMT,
						(int)st->ch[i].pid, (unsigned long long)st->ch[i].start, i + 1, st->nch,
						st->ch[i].n, FL_NETNS_REC_ARGS(&st->ns));

		if (seq < 0)
			rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
	}
	for (int i = 0; i < st->nch; i++) {
		/* a failed journal closes the pipe unwritten: the child exits without a connection */
		if (!rc && write(go[i][1], "g", 1) != 1)
			rc = fl_err_set(err, -errno, "starting swarm child %d: %s", (int)st->ch[i].pid, strerror(errno));
		close(go[i][1]);
	}
	if (rc)
		return rc;
	/* the children are up once their first connects are under way (or they said why not) */
	for (int ms = 0; ms < READY_MS; ms++) {
		struct swarm_stats sum;

		stats_sum(st, &sum);
		if (sum.code)
			return fl_err_set(err, sum.code, "swarm: %s", sum.why);
		if ((int)atomic_load_explicit(&sum.opened, memory_order_relaxed) >= st->connections)
			return 0;
		usleep(1000);
	}
	return fl_err_set(err, -ETIMEDOUT, "the swarm did not start its connections within %d ms", READY_MS);
fail:
	fl_netns_close(&st->ns);
	free(st);
	return rc;
}

static int slow_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct slow_state *st = f->state;
	struct swarm_stats now;
	const struct swarm_stats *s = &now;
	uint64_t closed, life;
	int64_t oldest, t = fl_mono_ns();
	int alive = 0;

	if (!st)
		return -ENOENT;
	if (st->reverted) {
		s = &st->final;
		t = st->reverted_ns;
	} else if (st->stats) {
		stats_sum(st, &now);
		for (int i = 0; i < st->nch; i++) {
			char c;

			if (fl_proc_state(st->ch[i].pid, &c) == 0 && c != 'Z')
				alive++;
		}
	} else {
		return -ENOENT;
	}
#define LD(fld) atomic_load_explicit(&s->fld, memory_order_relaxed)
	closed = LD(closed_by_server);
	life = LD(life_ns);
	oldest = LD(oldest_ns);
	fl_obs_num(o, "connections_open", (double)LD(open), "%lld of %d%s", (long long)LD(open), st->connections,
		   st->reverted ? " (when reverted)" : "");
	fl_obs_num(o, "accepted_and_held", (double)LD(held), "%lld", (long long)LD(held));
	if (LD(connecting))
		fl_obs_num(o, "connecting", (double)LD(connecting), "%lld", (long long)LD(connecting));
	fl_obs_num(o, "closed_by_server", (double)closed, closed ? "%llu (mean %.3f s after connect)" : "%llu",
		   (unsigned long long)closed, closed ? (double)life / (double)closed / 1e9 : 0.0);
	if (closed)
		fl_obs_num(o, "mean_close_s", (double)life / (double)closed / 1e9, "%.3f s",
			   (double)life / (double)closed / 1e9);
	if (oldest)
		fl_obs_num(o, "held_longest_s", (double)(t - oldest) / 1e9, "%.1f s", (double)(t - oldest) / 1e9);
	fl_obs_num(o, "refused", (double)LD(refused), "%llu", (unsigned long long)LD(refused));
	fl_obs_num(o, "failed", (double)LD(failed), LD(last_errno) ? "%llu (last: %s)" : "%llu",
		   (unsigned long long)LD(failed), strerror(LD(last_errno)));
	fl_obs_num(o, "connects_total", (double)LD(opened), "%llu", (unsigned long long)LD(opened));
	fl_obs_num(o, "header_bytes_sent", (double)LD(bytes), "%llu", (unsigned long long)LD(bytes));
#undef LD
	fl_obs_text(o, "swarm", "%d child%s (%d alive) -> %s, 1 byte per %.3gs", st->nch, st->nch == 1 ? "" : "ren",
		    alive, st->dst.shown, (double)st->interval_ns / 1e9);
	if (f->target && f->target->pid > 0 && !st->reverted) {
		int fds = fl_proc_count_fds(f->target->pid);

		if (fds >= 0)
			fl_obs_num(o, "target_fds", fds, "%d", fds);
	}
	return 0;
}

static int slow_revert(struct fl_fault *f, struct fl_err *err)
{
	struct slow_state *st = f->state;

	(void)err;
	if (!st || st->reverted)
		return 0;
	if (st->stats)
		stats_sum(st, &st->final);
	slow_stop(st);
	st->reverted_ns = fl_mono_ns();
	st->reverted = true;
	return 0;
}

static void slow_release(struct fl_fault *f)
{
	struct slow_state *st = f->state;

	if (!st)
		return;
	slow_stop(st);
	if (st->stats)
		munmap(st->stats, st->stats_len);
	fl_netns_close(&st->ns);
	free(st);
	f->state = NULL;
}

static int slow_revert_record(const struct fl_journal_rec *r, struct fl_err *err)
{
	return fl_proc_kill_record(r, "swarm child", err);
}

const struct fl_injector fl_inj_client_slowloris = {
	.type = "client.slowloris",
	.summary = "hold many HTTP connections to the target that trickle header bytes and never finish "
		   "a request (slow-header clients)",
	.preflight = "a url (the fault's or target.url), http://, whose host is loopback or an address of "
		     "one of this host's network namespaces; connections fit the fd budget and the clients' "
		     "ephemeral port range",
	.params = slow_params,
	.validate = slow_validate,
	.probe = slow_probe,
	.check = slow_check,
	.describe = slow_describe,
	.apply = slow_apply,
	.observe = slow_observe,
	.revert = slow_revert,
	.release = slow_release,
	.revert_record = slow_revert_record,
};
