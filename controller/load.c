/* The load generator: a timetable of slots, a keep-alive pool of non-blocking sockets, an incremental HTTP/1.1 response parser. */
#include "load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE 8192                 /* per connection: bounds one status, header, chunk-size or trailer line */
#define MAX_EVENTS 256
#define MAX_EVENT_ROUNDS 8            /* epoll_wait calls per dispatch, so dispatch stays short */
#define CONNECTS_PER_DISPATCH 32      /* a refusing target must not turn the loop into a connect storm */
#define CONNECT_RETRY_NS 1000000LL    /* ... and when that budget ran out, come back in 1 ms */
#define MAX_RATE 1e7
#define MAX_TIMEOUT_NS (24 * 3600 * 1000000000LL)

enum conn_state { C_CLOSED, C_CONNECTING, C_IDLE, C_BUSY };

enum parse_state {
	P_STATUS, P_HEADERS, P_BODY_LEN, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_END, P_TRAILERS, P_BODY_EOF
};

enum parse_result { PARSE_MORE, PARSE_DONE, PARSE_BAD };

struct conn {
	int fd;
	enum conn_state state;
	struct conn *prev, *next;  /* in exactly one list: closed, idle or busy */
	int64_t sched;             /* the request it carries (C_CONNECTING, C_BUSY) */
	size_t sent;               /* bytes of the request written */
	bool peer_closed;          /* EPOLLRDHUP seen: the server will send nothing more */
	int64_t rx_mono;           /* batched mode: kernel receive time of the last bytes read, 0 = none */
	/* the response being parsed */
	enum parse_state ps;
	int status;
	bool http10, keep_alive, close, chunked, has_len, te_other;
	uint64_t remaining;        /* body or chunk bytes still to come */
	size_t len;                /* bytes in buf not yet parsed */
	char *buf;
};

struct list {
	struct conn *head, *tail;
};

struct fl_load {
	fl_load_cb cb;
	void *arg;
	int epfd;                  /* the owner's: holds sockep, except in batched mode where it stays empty */
	int sockep;                /* the sockets, edge-triggered */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char *req;                 /* the request never changes: built once */
	size_t reqlen;
	bool no_body;              /* HEAD: responses carry no body */
	double ns_per_req;
	int64_t slack;             /* added to the next slot's deadline when slots are closer than it */
	bool batched;              /* slack > 0: sockets are polled every `slack`, not on readiness */
	int64_t last_poll;
	int64_t rt_off;            /* CLOCK_REALTIME - CLOCK_MONOTONIC, for kernel receive timestamps */
	int64_t timeout;
	struct conn *conns;
	int nconns;
	char *bufs;
	struct list closed, idle, busy;   /* busy: oldest slot first, so its head times out first */
	uint64_t nbusy;
	struct epoll_event *evs;
	int nevs;
	bool started, stopped;
	int64_t t0;
	uint64_t next;             /* first slot not yet due */
	uint64_t unsent;           /* first due slot not yet on a connection: [unsent, next) is the backlog */
	int64_t retry_at;          /* connect budget spent with a backlog waiting; 0 = no */
	struct fl_load_stats st;
};

static const char *const outcome_names[FL_REQ_NOUTCOMES] = {
	[FL_REQ_OK] = "ok",
	[FL_REQ_TIMEOUT] = "timeout",
	[FL_REQ_REFUSED] = "refused",
	[FL_REQ_RESET] = "reset",
	[FL_REQ_CONN_ERROR] = "conn_error",
	[FL_REQ_BAD_RESPONSE] = "bad_response",
	[FL_REQ_NOT_SENT] = "not_sent",
};

const char *fl_req_outcome_name(enum fl_req_outcome o)
{
	return (unsigned)o < FL_REQ_NOUTCOMES ? outcome_names[o] : "?";
}

static int64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Computed from i, never accumulated, so the timetable does not drift. */
static int64_t sched_of(const struct fl_load *l, uint64_t i)
{
	return l->t0 + (int64_t)((double)i * l->ns_per_req);
}

/* ---- lists -------------------------------------------------------------------------------- */

static void list_push_front(struct list *li, struct conn *c)
{
	c->prev = NULL;
	c->next = li->head;
	if (li->head)
		li->head->prev = c;
	else
		li->tail = c;
	li->head = c;
}

static void list_push_back(struct list *li, struct conn *c)
{
	c->next = NULL;
	c->prev = li->tail;
	if (li->tail)
		li->tail->next = c;
	else
		li->head = c;
	li->tail = c;
}

static void list_remove(struct list *li, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		li->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		li->tail = c->prev;
	c->prev = c->next = NULL;
}

static struct conn *list_pop_front(struct list *li)
{
	struct conn *c = li->head;

	if (c)
		list_remove(li, c);
	return c;
}

/* ---- configuration ------------------------------------------------------------------------ */

static bool is_tchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Parse http://HOST[:PORT][/PATH]: *auth (HOST[:PORT], for the Host header) and *path point into url. */
static int parse_url(const char *url, struct sockaddr_storage *ss, socklen_t *sslen, const char **auth,
		     size_t *authlen, const char **path, struct fl_err *err)
{
	const char *h, *hend, *p, *end;
	char host[INET6_ADDRSTRLEN + 1];
	unsigned long port = 80;
	bool v6 = false;

	if (!url || !*url)
		return fl_err_set(err, -EINVAL, "load: no url");
	if (!strncasecmp(url, "https://", 8)) {
		fl_err_set(err, -EPROTONOSUPPORT, "load: url '%s': https is not supported", url);
		fl_err_hint(err, "point the load at a plain-HTTP listener (or a TLS-terminating sidecar)");
		return -EPROTONOSUPPORT;
	}
	if (strncasecmp(url, "http://", 7)) {
		fl_err_set(err, -EINVAL, "load: url '%s' does not start with http://", url);
		fl_err_hint(err, "write it as http://127.0.0.1:8080/path");
		return -EINVAL;
	}
	h = url + 7;
	end = h + strcspn(h, "/?#");
	*auth = h;
	*authlen = (size_t)(end - h);
	if (memchr(h, '@', *authlen))
		return fl_err_set(err, -EINVAL, "load: url '%s': credentials in the url are not supported", url);
	if (*h == '[') {
		hend = memchr(h, ']', (size_t)(end - h));
		if (!hend)
			return fl_err_set(err, -EINVAL, "load: url '%s': unterminated [IPv6] literal", url);
		h++;
		p = hend + 1;
		v6 = true;
	} else {
		hend = memchr(h, ':', (size_t)(end - h));
		if (!hend)
			hend = end;
		p = hend;
	}
	if (hend == h || (size_t)(hend - h) >= sizeof(host))
		return fl_err_set(err, -EINVAL, "load: url '%s': bad host", url);
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	if (p < end) {
		char *pe;

		if (*p != ':' || p + 1 == end || p[1] < '0' || p[1] > '9')
			return fl_err_set(err, -EINVAL, "load: url '%s': bad port", url);
		errno = 0;
		port = strtoul(p + 1, &pe, 10);
		if (errno || pe != end || port < 1 || port > 65535)
			return fl_err_set(err, -EINVAL, "load: url '%s': port must be 1-65535", url);
	}
	memset(ss, 0, sizeof(*ss));
	if (!v6 && !strcasecmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if (!v6 && inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*sslen = sizeof(struct sockaddr_in);
	} else if (v6 && inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		*sslen = sizeof(struct sockaddr_in6);
	} else {
		fl_err_set(err, -EINVAL, "load: url '%s': host '%s' is not an IP address", url, host);
		fl_err_hint(err, "use an IPv4 literal, [IPv6] or localhost: a name lookup would block the event loop");
		return -EINVAL;
	}
	*path = end;
	for (const char *q = end; *q && *q != '#'; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return fl_err_set(err, -EINVAL, "load: url '%s': space or control character in the path", url);
	return 0;
}

static bool header_named(const char *h, const char *name)
{
	size_t n = strlen(name);

	return !strncasecmp(h, name, n) && h[n] == ':';
}

static int check_header(const char *h, struct fl_err *err)
{
	const char *colon;

	if (!h)
		return fl_err_set(err, -EINVAL, "load: header is NULL");
	colon = strchr(h, ':');
	if (!colon || colon == h)
		return fl_err_set(err, -EINVAL, "load: header '%s' is not 'Name: value'", h);
	for (const char *q = h; q < colon; q++)
		if (!is_tchar(*q))
			return fl_err_set(err, -EINVAL, "load: header '%s': bad character in the name", h);
	if (strpbrk(h, "\r\n"))
		return fl_err_set(err, -EINVAL, "load: header '%.40s...' contains a line break", h);
	if (header_named(h, "Content-Length") || header_named(h, "Transfer-Encoding")) {
		fl_err_set(err, -EINVAL, "load: header '%s' is set by faultline", h);
		fl_err_hint(err, "Content-Length follows from the body; chunked requests are not sent");
		return -EINVAL;
	}
	return 0;
}

static bool has_header(const struct fl_load_cfg *cfg, const char *name)
{
	for (int i = 0; i < cfg->nheaders; i++)
		if (header_named(cfg->headers[i], name))
			return true;
	return false;
}

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n <= b->cap)
		memcpy(b->p + b->len, s, n);
	b->len += n; /* past cap only if the size estimate was wrong: caught by the caller */
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static int build_request(struct fl_load *l, const struct fl_load_cfg *cfg, const char *method,
			 const char *auth, size_t authlen, const char *path, struct fl_err *err)
{
	size_t pathlen = strcspn(path, "#"), bodylen = cfg->body ? strlen(cfg->body) : 0;
	bool want_len = cfg->body || !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH");
	struct sbuf b = {0};
	char num[32];

	b.cap = strlen(method) + pathlen + authlen + bodylen + 256;
	for (int i = 0; i < cfg->nheaders; i++)
		b.cap += strlen(cfg->headers[i]) + 2;
	b.p = malloc(b.cap);
	if (!b.p)
		return fl_err_set(err, -ENOMEM, "load: out of memory for the request");
	sb_str(&b, method);
	sb_str(&b, " ");
	if (pathlen == 0 || path[0] != '/')
		sb_str(&b, "/");
	sb_add(&b, path, pathlen);
	sb_str(&b, " HTTP/1.1\r\n");
	if (!has_header(cfg, "Host")) {
		sb_str(&b, "Host: ");
		sb_add(&b, auth, authlen);
		sb_str(&b, "\r\n");
	}
	if (!has_header(cfg, "User-Agent"))
		sb_str(&b, "User-Agent: faultline\r\n");
	if (!has_header(cfg, "Connection"))
		sb_str(&b, "Connection: keep-alive\r\n");
	for (int i = 0; i < cfg->nheaders; i++) {
		sb_str(&b, cfg->headers[i]);
		sb_str(&b, "\r\n");
	}
	if (want_len) {
		snprintf(num, sizeof(num), "%zu", bodylen);
		sb_str(&b, "Content-Length: ");
		sb_str(&b, num);
		sb_str(&b, "\r\n");
	}
	sb_str(&b, "\r\n");
	if (bodylen)
		sb_add(&b, cfg->body, bodylen);
	if (b.len > b.cap) {
		free(b.p);
		return fl_err_set(err, -EOVERFLOW, "load: request larger than estimated (a bug)");
	}
	l->req = b.p;
	l->reqlen = b.len;
	return 0;
}

int fl_load_create(const struct fl_load_cfg *cfg, fl_load_cb cb, void *arg, struct fl_load **out,
		   struct fl_err *err)
{
	struct fl_load *l = NULL;
	const char *auth = NULL, *path = NULL, *method;
	size_t authlen = 0;
	int rc;

	if (out)
		*out = NULL;
	if (!cfg || !cb || !out)
		return fl_err_set(err, -EINVAL, "load: no configuration, callback or result pointer");
	if (!isfinite(cfg->rate) || cfg->rate <= 0 || cfg->rate > MAX_RATE)
		return fl_err_set(err, -ERANGE, "load: rate %g/s is outside (0, %g]", cfg->rate, MAX_RATE);
	if (cfg->connections < 1 || cfg->connections > FL_LOAD_MAX_CONNECTIONS)
		return fl_err_set(err, -ERANGE, "load: connections %d is outside 1-%d", cfg->connections,
				  FL_LOAD_MAX_CONNECTIONS);
	if (cfg->timeout_ns <= 0 || cfg->timeout_ns > MAX_TIMEOUT_NS)
		return fl_err_set(err, -ERANGE, "load: timeout must be positive and at most 24h");
	if (cfg->send_slack_ns > FL_LOAD_LATE_NS)
		return fl_err_set(err, -ERANGE, "load: send slack above %lld ns would make every send late",
				  FL_LOAD_LATE_NS);
	if (cfg->nheaders < 0 || (cfg->nheaders > 0 && !cfg->headers))
		return fl_err_set(err, -EINVAL, "load: %d headers but no header array", cfg->nheaders);
	method = cfg->method && *cfg->method ? cfg->method : "GET";
	for (const char *q = method; *q; q++)
		if (!is_tchar(*q))
			return fl_err_set(err, -EINVAL, "load: method '%s' is not an HTTP token", method);
	for (int i = 0; i < cfg->nheaders; i++) {
		rc = check_header(cfg->headers[i], err);
		if (rc)
			return rc;
	}

	l = calloc(1, sizeof(*l));
	if (!l)
		return fl_err_set(err, -ENOMEM, "load: out of memory");
	l->epfd = l->sockep = -1;
	rc = parse_url(cfg->url, &l->addr, &l->addrlen, &auth, &authlen, &path, err);
	if (rc)
		goto out;
	rc = build_request(l, cfg, method, auth, authlen, path, err);
	if (rc)
		goto out;
	l->no_body = !strcmp(method, "HEAD");
	l->cb = cb;
	l->arg = arg;
	l->ns_per_req = 1e9 / cfg->rate;
	l->slack = cfg->send_slack_ns ? cfg->send_slack_ns : FL_LOAD_DEFAULT_SLACK_NS;
	if (l->slack < 0 || (double)l->slack <= l->ns_per_req)
		l->slack = 0; /* one slot per wake-up anyway: be exact */
	l->batched = l->slack > 0;
	l->timeout = cfg->timeout_ns;
	l->nconns = cfg->connections;
	l->nevs = l->nconns < MAX_EVENTS ? l->nconns : MAX_EVENTS;
	l->conns = calloc((size_t)l->nconns, sizeof(*l->conns));
	/* one block: untouched pages of idle slots cost no memory */
	l->bufs = calloc((size_t)l->nconns, BUF_SIZE);
	l->evs = calloc((size_t)l->nevs, sizeof(*l->evs));
	if (!l->conns || !l->bufs || !l->evs) {
		rc = fl_err_set(err, -ENOMEM, "load: out of memory for %d connections", l->nconns);
		goto out;
	}
	for (int i = l->nconns - 1; i >= 0; i--) {
		l->conns[i].fd = -1;
		l->conns[i].buf = l->bufs + (size_t)i * BUF_SIZE;
		list_push_front(&l->closed, &l->conns[i]);
	}
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->sockep = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0 || l->sockep < 0) {
		rc = fl_err_set(err, -errno, "load: epoll_create1: %s", strerror(errno));
		goto out;
	}
	/*
	 * Below 1/slack req/s the owner wakes as soon as a response arrives. Above it, a wake-up
	 * per response would cost more than the requests (on a VM, tens of µs each): the sockets
	 * are then polled every `slack` instead, and completion times come from the kernel's
	 * receive timestamps, so batching does not add to the measured latency.
	 */
	if (!l->batched) {
		struct epoll_event ev = {.events = EPOLLIN};

		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->sockep, &ev) < 0) {
			rc = fl_err_set(err, -errno, "load: epoll_ctl: %s", strerror(errno));
			goto out;
		}
	}
	*out = l;
	l = NULL;
	rc = 0;
out:
	fl_load_destroy(l);
	return rc;
}

int fl_load_start(struct fl_load *l, int64_t t0_ns)
{
	if (!l || l->started || l->stopped)
		return -EINVAL;
	l->t0 = t0_ns;
	l->started = true;
	return 0;
}

int fl_load_fd(const struct fl_load *l)
{
	return l ? l->epfd : -1;
}

/* ---- requests and connections ------------------------------------------------------------- */

static void report(struct fl_load *l, int64_t sched, int64_t done, int status, enum fl_req_outcome o)
{
	struct fl_req_result r = {
		.sched_ns = sched, .done_ns = done, .latency_ns = done - sched, .status = status, .outcome = o,
	};

	l->st.reported++;
	l->st.by_outcome[o]++;
	l->cb(l->arg, &r);
}

static void reset_parser(struct conn *c)
{
	c->ps = P_STATUS;
	c->status = 0;
	c->http10 = c->keep_alive = c->close = c->chunked = c->has_len = c->te_other = false;
	c->remaining = 0;
}

/* Back to the closed list; the slot reconnects lazily when a request needs it. */
static void conn_close(struct fl_load *l, struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->state = C_CLOSED;
	c->len = 0;
	c->sent = 0;
	c->peer_closed = false;
	c->rx_mono = 0;
	reset_parser(c);
	list_push_front(&l->closed, c);
}

/*
 * The request on c is decided. A connection survives only a clean, complete exchange; after a
 * timeout, an error or stray bytes it is closed (and reopened for a later request).
 */
static void finish(struct fl_load *l, struct conn *c, int64_t now, enum fl_req_outcome o, int err)
{
	int64_t sched = c->sched;
	int status = c->status;

	list_remove(&l->busy, c);
	l->nbusy--;
	if (o == FL_REQ_OK && now - sched > l->timeout)
		o = FL_REQ_TIMEOUT; /* complete, but late: OK always means within the timeout */
	if (err)
		l->st.last_errno = err;
	if (o == FL_REQ_OK && !c->close && !c->peer_closed && !c->len && c->sent == l->reqlen) {
		c->state = C_IDLE;
		reset_parser(c);
		list_push_front(&l->idle, c); /* LIFO: few hot connections, the rest may idle out */
	} else {
		conn_close(l, c);
	}
	report(l, sched, now, status, o);
}

static enum fl_req_outcome outcome_of_errno(int e)
{
	switch (e) {
	case ECONNREFUSED:
		return FL_REQ_REFUSED;
	case ECONNRESET:
	case EPIPE:
	case ECONNABORTED:
		return FL_REQ_RESET;
	default:
		return FL_REQ_CONN_ERROR;
	}
}

/* Write what is left of the request; EAGAIN waits for the EPOLLOUT edge. */
static void write_request(struct fl_load *l, struct conn *c, int64_t now)
{
	while (c->sent < l->reqlen) {
		ssize_t n = send(c->fd, l->req + c->sent, l->reqlen - c->sent, MSG_NOSIGNAL);

		if (n > 0) {
			c->sent += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		finish(l, c, now, outcome_of_errno(n < 0 ? errno : EPIPE), n < 0 ? errno : EPIPE);
		return;
	}
}

static void take_slot(struct fl_load *l, struct conn *c, int64_t sched, int64_t now)
{
	int64_t lag = now - sched;

	c->sched = sched;
	c->sent = 0;
	c->len = 0;
	c->rx_mono = 0;
	reset_parser(c);
	list_push_back(&l->busy, c);
	l->nbusy++;
	if (lag > FL_LOAD_LATE_NS) {
		l->st.sent_late++;
		if (lag > l->st.max_lag_ns)
			l->st.max_lag_ns = lag;
	}
}

static void start_connect(struct fl_load *l, struct conn *c, int64_t sched, int64_t now)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
	int one = 1, e;

	take_slot(l, c, sched, now);
	c->state = C_CONNECTING;
	l->st.connects++;
	c->fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (c->fd < 0) {
		e = errno;
		finish(l, c, now, FL_REQ_CONN_ERROR, e);
		return;
	}
	/* one small write per request: never wait for Nagle */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (l->batched)
		setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	/* edge-triggered, registered once: no epoll_ctl per request */
	if (epoll_ctl(l->sockep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		e = errno;
		finish(l, c, now, FL_REQ_CONN_ERROR, e);
		return;
	}
	if (connect(c->fd, (const struct sockaddr *)&l->addr, l->addrlen) == 0) {
		c->state = C_BUSY;
		write_request(l, c, now);
		return;
	}
	e = errno;
	if (e != EINPROGRESS)
		finish(l, c, now, outcome_of_errno(e), e);
}

/* ---- response parsing --------------------------------------------------------------------- */

/* The next line in buf from *pos, without its CR LF (a bare LF is accepted); NULL if incomplete. */
static char *take_line(struct conn *c, size_t *pos, size_t *n)
{
	char *start = c->buf + *pos, *nl = memchr(start, '\n', c->len - *pos);

	if (!nl)
		return NULL;
	*n = (size_t)(nl - start);
	if (*n && start[*n - 1] == '\r')
		(*n)--;
	*pos = (size_t)(nl - c->buf) + 1;
	return start;
}

static bool parse_status(struct conn *c, const char *s, size_t n)
{
	if (n < 12 || memcmp(s, "HTTP/1.", 7) || s[7] < '0' || s[7] > '9' || s[8] != ' ')
		return false;
	for (int i = 9; i < 12; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	if (n > 12 && s[12] != ' ')
		return false;
	c->http10 = s[7] == '0';
	c->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	return c->status >= 100;
}

static bool token_in(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok);

	/* comma-separated list, optional whitespace */
	for (size_t i = 0; i < n;) {
		size_t j, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		j = i;
		while (j < n && v[j] != ',')
			j++;
		e = j;
		while (e > i && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - i == tl && !strncasecmp(v + i, tok, tl))
			return true;
		i = j;
	}
	return false;
}

static bool parse_header(struct conn *c, const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n), *v;
	size_t nl, vl;

	if (s[0] == ' ' || s[0] == '\t')
		return true; /* obsolete line folding: the continuation of a header we do not need */
	if (!colon || colon == s)
		return false;
	nl = (size_t)(colon - s);
	for (size_t i = 0; i < nl; i++)
		if (!is_tchar(s[i]))
			return false;
	v = colon + 1;
	vl = n - nl - 1;
	while (vl && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	if (nl == 14 && !strncasecmp(s, "Content-Length", 14)) {
		uint64_t x = 0;

		if (!vl)
			return false;
		for (size_t i = 0; i < vl; i++) {
			if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - 9) / 10)
				return false;
			x = x * 10 + (uint64_t)(v[i] - '0');
		}
		if (c->has_len && x != c->remaining)
			return false; /* two different lengths: a smuggling-shaped response */
		c->has_len = true;
		c->remaining = x;
	} else if (nl == 17 && !strncasecmp(s, "Transfer-Encoding", 17)) {
		/* chunked must be the last coding; anything else is delimited by the close */
		if (vl >= 7 && !strncasecmp(v + vl - 7, "chunked", 7) &&
		    (vl == 7 || v[vl - 8] == ',' || v[vl - 8] == ' ' || v[vl - 8] == '\t')) {
			c->chunked = true;
			c->te_other = false;
		} else {
			c->chunked = false;
			c->te_other = true;
		}
	} else if (nl == 10 && !strncasecmp(s, "Connection", 10)) {
		if (token_in(v, vl, "close"))
			c->close = true;
		if (token_in(v, vl, "keep-alive"))
			c->keep_alive = true;
	}
	return true;
}

/* Where the body goes once the head is complete. */
static enum parse_result end_of_head(struct fl_load *l, struct conn *c)
{
	if (c->status < 200) {
		if (c->status == 101)
			return PARSE_BAD; /* we never asked for an upgrade */
		reset_parser(c);  /* 100 Continue, 103 Early Hints: the real response follows */
		return PARSE_MORE;
	}
	if (c->http10 && !c->keep_alive)
		c->close = true;
	if (l->no_body || c->status == 204 || c->status == 304)
		return PARSE_DONE;
	if (c->chunked) {
		c->ps = P_CHUNK_SIZE;
		return PARSE_MORE;
	}
	if (c->has_len && !c->te_other) {
		if (!c->remaining)
			return PARSE_DONE;
		c->ps = P_BODY_LEN;
		return PARSE_MORE;
	}
	c->ps = P_BODY_EOF; /* no length: the body ends when the server closes */
	c->close = true;
	return PARSE_MORE;
}

static bool parse_chunk_size(struct conn *c, const char *s, size_t n)
{
	uint64_t x = 0;
	size_t i = 0;

	for (; i < n; i++) {
		int d;

		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f')
			d = (s[i] | 0x20) - 'a' + 10;
		else
			break;
		if (i >= 15)
			return false;
		x = x * 16 + (uint64_t)d;
	}
	if (i == 0)
		return false;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i < n && s[i] != ';') /* ";name=value" chunk extensions are ignored */
		return false;
	c->remaining = x;
	return true;
}

/* Consume what buf holds; body bytes are counted, not kept. */
static enum parse_result parse(struct fl_load *l, struct conn *c)
{
	size_t pos = 0, n;
	enum parse_result r = PARSE_MORE;
	char *s;

	while (r == PARSE_MORE) {
		if (c->ps == P_BODY_LEN || c->ps == P_CHUNK_DATA || c->ps == P_BODY_EOF) {
			uint64_t avail = c->len - pos, take;

			if (!avail)
				break;
			take = c->ps == P_BODY_EOF || avail < c->remaining ? avail : c->remaining;
			pos += take;
			if (c->ps == P_BODY_EOF)
				continue;
			c->remaining -= take;
			if (!c->remaining) {
				if (c->ps == P_BODY_LEN)
					r = PARSE_DONE;
				else
					c->ps = P_CHUNK_END;
			}
			continue;
		}
		s = take_line(c, &pos, &n);
		if (!s)
			break;
		switch (c->ps) {
		case P_STATUS:
			if (!parse_status(c, s, n))
				r = PARSE_BAD;
			else
				c->ps = P_HEADERS;
			break;
		case P_HEADERS:
			if (n == 0)
				r = end_of_head(l, c);
			else if (!parse_header(c, s, n))
				r = PARSE_BAD;
			break;
		case P_CHUNK_SIZE:
			if (!parse_chunk_size(c, s, n))
				r = PARSE_BAD;
			else
				c->ps = c->remaining ? P_CHUNK_DATA : P_TRAILERS;
			break;
		case P_CHUNK_END:
			if (n != 0)
				r = PARSE_BAD;
			else
				c->ps = P_CHUNK_SIZE;
			break;
		case P_TRAILERS:
			if (n == 0)
				r = PARSE_DONE;
			break;
		default:
			r = PARSE_BAD;
			break;
		}
	}
	/* keep only the unparsed tail (a partial line, or bytes after a complete response) */
	if (pos) {
		memmove(c->buf, c->buf + pos, c->len - pos);
		c->len -= pos;
	}
	if (r == PARSE_MORE && c->len == BUF_SIZE)
		r = PARSE_BAD; /* one line longer than the buffer */
	return r;
}

/* recv, and in batched mode the kernel's receive time of the bytes read, as CLOCK_MONOTONIC. */
static ssize_t recv_ts(struct fl_load *l, struct conn *c, size_t room)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = c->buf + c->len, .iov_len = room};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	ssize_t n;

	if (!l->batched)
		return recv(c->fd, c->buf + c->len, room, 0);
	n = recvmsg(c->fd, &mh, 0);
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
			struct timespec ts;

			memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
			c->rx_mono = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - l->rt_off;
		}
	}
	return n;
}

/* When the response completed: the kernel's receive time if known and plausible, else now. */
static int64_t done_time(const struct conn *c, int64_t now)
{
	if (c->rx_mono <= 0 || c->rx_mono > now)
		return now;
	return c->rx_mono < c->sched ? c->sched : c->rx_mono;
}

/* Read until the response is complete, the socket is drained, or the connection ends. */
static void read_response(struct fl_load *l, struct conn *c, uint32_t events, int64_t now)
{
	if (events & (EPOLLRDHUP | EPOLLHUP))
		c->peer_closed = true;
	for (;;) {
		size_t room = BUF_SIZE - c->len;
		ssize_t n = recv_ts(l, c, room);
		enum parse_result r;

		if (n > 0) {
			c->len += (size_t)n;
			r = parse(l, c);
			if (r == PARSE_BAD) {
				finish(l, c, now, FL_REQ_BAD_RESPONSE, 0);
				return;
			}
			if (r == PARSE_DONE) {
				finish(l, c, done_time(c, now), FL_REQ_OK, 0);
				return;
			}
			/* a short read drained the socket; later bytes bring a new edge. Not so after a FIN. */
			if ((size_t)n < room && !c->peer_closed)
				return;
			continue;
		}
		if (n == 0) {
			c->peer_closed = true;
			if (c->ps == P_BODY_EOF)
				finish(l, c, done_time(c, now), FL_REQ_OK, 0);
			else
				finish(l, c, now, FL_REQ_RESET, 0); /* closed before a complete response */
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		finish(l, c, now, outcome_of_errno(errno), errno);
		return;
	}
}

static void on_event(struct fl_load *l, struct conn *c, uint32_t events, int64_t now)
{
	switch (c->state) {
	case C_CLOSED:
		return;
	case C_CONNECTING: {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (!soerr && (events & EPOLLHUP))
			soerr = ECONNRESET;
		if (soerr) {
			finish(l, c, now, outcome_of_errno(soerr), soerr);
			return;
		}
		c->state = C_BUSY;
		write_request(l, c, now);
		if (c->state == C_BUSY && (events & (EPOLLIN | EPOLLRDHUP)))
			read_response(l, c, events, now);
		return;
	}
	case C_IDLE: {
		char b;
		ssize_t n;

		if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
			return;
		n = recv(c->fd, &b, 1, MSG_PEEK);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* the server closed an idle keep-alive connection, or sent bytes nobody asked for */
		list_remove(&l->idle, c);
		conn_close(l, c);
		return;
	}
	case C_BUSY:
		if ((events & EPOLLOUT) && c->sent < l->reqlen) {
			write_request(l, c, now);
			if (c->state != C_BUSY)
				return;
		}
		if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			read_response(l, c, events, now);
		return;
	}
}

/* ---- the timetable ------------------------------------------------------------------------ */

static void schedule_due(struct fl_load *l, int64_t now)
{
	if (!l->started || l->stopped)
		return;
	while (sched_of(l, l->next) <= now)
		l->next++;
}

static void expire(struct fl_load *l, int64_t now)
{
	/* in flight: the busy list is in slot order, so only its head can be due */
	while (l->busy.head && now - l->busy.head->sched >= l->timeout)
		finish(l, l->busy.head, now, FL_REQ_TIMEOUT, 0);
	/* waiting: the backlog is in slot order too */
	while (l->unsent < l->next) {
		int64_t s = sched_of(l, l->unsent);

		if (now - s < l->timeout)
			break;
		l->unsent++;
		report(l, s, now, 0, FL_REQ_NOT_SENT);
	}
}

/* Oldest waiting request first, on the most recently used idle connection, else a new one. */
static void send_backlog(struct fl_load *l, int64_t now)
{
	int budget = CONNECTS_PER_DISPATCH;

	l->retry_at = 0;
	while (l->unsent < l->next) {
		int64_t s = sched_of(l, l->unsent);
		struct conn *c = list_pop_front(&l->idle);

		if (c) {
			l->unsent++;
			take_slot(l, c, s, now);
			c->state = C_BUSY;
			write_request(l, c, now);
			continue;
		}
		if (!l->closed.head)
			break; /* every connection busy: the request waits, its clock running */
		if (!budget) {
			l->retry_at = now + CONNECT_RETRY_NS;
			break;
		}
		budget--;
		c = list_pop_front(&l->closed);
		l->unsent++;
		start_connect(l, c, s, now);
	}
	if (l->next - l->unsent > l->st.max_backlog)
		l->st.max_backlog = l->next - l->unsent;
}

int fl_load_dispatch(struct fl_load *l, int64_t now_ns)
{
	int64_t now = mono_now(), due;
	int rc = 0;

	if (!l)
		return -EINVAL;
	/* slots are due by the owner's clock (never ahead of the real one), so stop() is exact */
	due = now_ns < now ? now_ns : now;
	if (l->batched) {
		struct timespec rt;

		clock_gettime(CLOCK_REALTIME, &rt);
		l->rt_off = (int64_t)rt.tv_sec * 1000000000LL + rt.tv_nsec - mono_now();
	}
	l->last_poll = now;
	for (int round = 0; round < MAX_EVENT_ROUNDS; round++) {
		int n = epoll_wait(l->sockep, l->evs, l->nevs, 0);

		if (n < 0) {
			if (errno != EINTR)
				rc = -errno;
			break;
		}
		if (n > 0)
			now = mono_now(); /* completion times from the real clock */
		for (int i = 0; i < n; i++)
			on_event(l, l->evs[i].data.ptr, l->evs[i].events, now);
		if (n < l->nevs)
			break;
	}
	schedule_due(l, due);
	expire(l, now);
	send_backlog(l, now);
	return rc;
}

int64_t fl_load_next_deadline(const struct fl_load *l)
{
	int64_t d = INT64_MAX;

	if (!l)
		return d;
	if (l->started && !l->stopped)
		d = sched_of(l, l->next) + l->slack;
	if (l->unsent < l->next) {
		int64_t e = sched_of(l, l->unsent) + l->timeout;

		if (e < d)
			d = e;
		if (l->retry_at && l->retry_at < d)
			d = l->retry_at;
		/* a connection is free (stop() made requests due outside dispatch): already due */
		if (l->idle.head || (l->closed.head && !l->retry_at))
			d = sched_of(l, l->unsent);
	}
	if (l->busy.head && l->busy.head->sched + l->timeout < d)
		d = l->busy.head->sched + l->timeout;
	/* batched: nothing wakes the owner for a response, so poll for them */
	if (l->batched && l->busy.head && l->last_poll + l->slack < d)
		d = l->last_poll + l->slack;
	return d;
}

int fl_load_stop(struct fl_load *l, int64_t now_ns)
{
	if (!l)
		return -EINVAL;
	schedule_due(l, now_ns);
	l->stopped = true;
	return 0;
}

uint64_t fl_load_outstanding(const struct fl_load *l)
{
	return l ? l->nbusy + (l->next - l->unsent) : 0;
}

uint64_t fl_load_scheduled(const struct fl_load *l)
{
	return l ? l->next : 0;
}

void fl_load_abandon(struct fl_load *l, int64_t now_ns)
{
	if (!l)
		return;
	l->stopped = true;
	while (l->busy.head)
		finish(l, l->busy.head, now_ns, FL_REQ_TIMEOUT, 0);
	while (l->unsent < l->next) {
		int64_t s = sched_of(l, l->unsent++);

		report(l, s, now_ns, 0, FL_REQ_NOT_SENT);
	}
}

void fl_load_late_stats(const struct fl_load *l, uint64_t *sent_late, int64_t *max_lag_ns)
{
	if (sent_late)
		*sent_late = l ? l->st.sent_late : 0;
	if (max_lag_ns)
		*max_lag_ns = l ? l->st.max_lag_ns : 0;
}

void fl_load_stats(const struct fl_load *l, struct fl_load_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!l)
		return;
	*out = l->st;
	out->scheduled = l->next;
	out->in_flight = l->nbusy;
	out->backlog = l->next - l->unsent;
}

void fl_load_destroy(struct fl_load *l)
{
	if (!l)
		return;
	if (l->conns) {
		fl_load_abandon(l, mono_now());
		/* what is left open is idle; a slot never set up is C_CLOSED with fd 0 from calloc */
		for (int i = 0; i < l->nconns; i++)
			if (l->conns[i].state != C_CLOSED && l->conns[i].fd >= 0)
				close(l->conns[i].fd);
	}
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->sockep >= 0)
		close(l->sockep);
	free(l->evs);
	free(l->bufs);
	free(l->conns);
	free(l->req);
	free(l);
}
