/* ports.exhaust and ports.occupy: sockets held by helper children in a network namespace, so the target's connect() finds no ephemeral port (EADDRNOTAVAIL) or its restart cannot bind its listen port (EADDRINUSE). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>

#include "injector.h"
#include "journal.h"
#include "net.h"
#include "procfs.h"
#include "proctree.h"

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51 /* Linux 6.3: a per-socket ephemeral range, "hi << 16 | lo" */
#endif
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif
/*
 * Socket states as sock_diag reports them. Linux 6.8 also dumps bound-but-inactive sockets (bind()
 * without listen or connect), asked for with state bit 13 and reported in state CLOSE: only bound
 * ones are in a table the dump walks while CLOSE.
 */
#define ST_CLOSE 7
#define ST_LISTEN 10
/* SO_MARK on every socket a holder keeps: sock_diag then tells ours from everyone else's */
#define HOLD_MARK 0x666c7074u
/* fds a holder keeps besides its sockets (0-2, the namespace, two pipes) and some slack */
#define FD_RESERVE 32
#define MAX_HOLDERS 64
/* how long apply waits for every holder to say it holds its share */
#define READY_MS 10000
/* a port already in use (a connection from it, a TIME_WAIT) is held by a bind on an address no one
 * uses: the bind joins the port's bind bucket, and connect() skips every bucket a bind() made */
#define FALLBACK_V4 "127.255.255.254"

/* ---- addresses ---------------------------------------------------------------------------------- */

/* "1.2.3.4:80" or "[::1]:80" into ss; 0 or -EINVAL with err. */
static int parse_endpoint(const char *s, struct sockaddr_storage *ss, socklen_t *len, struct fl_err *err)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	char *end;
	long port;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			goto bad;
		hl = (size_t)(rb - s - 1);
		colon = rb + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			goto bad;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, s, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 1 || port > 65535)
		goto bad;
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return 0;
	}
bad:
	fl_err_set(err, -EINVAL, "'%s' is not an ip:port endpoint", s);
	fl_err_hint(err, "a literal address and a port: 10.0.0.5:6379 or [fd00::5]:6379");
	return -EINVAL;
}

static uint16_t ss_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
					      : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

static const void *ss_addr(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
					: (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
}

/* "1.2.3.4:80" / "[::1]:80" */
static void ss_format(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(ss->ss_family, ss_addr(ss), a, sizeof(a));
	snprintf(buf, len, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, ss_port(ss));
}

/* ---- the ephemeral range of a namespace --------------------------------------------------------- */

struct port_range {
	int lo, hi;       /* inclusive, as net.ipv4.ip_local_port_range says */
	int size;
	int reserved;     /* of them, taken out by net.ipv4.ip_local_reserved_ports (connect skips them) */
	uint16_t *cand;   /* the others, ascending: the ports connect() may pick */
	int ncand;
};

static void range_free(struct port_range *r)
{
	free(r->cand);
	r->cand = NULL;
}

/* Read a sysctl file of the current thread's namespace (/proc/sys/net follows the reader's netns). */
static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* "1000-1010,2000" -> flags[port] = 1 */
static void parse_reserved(const char *s, uint8_t *flags)
{
	while (*s) {
		char *end;
		long a = strtol(s, &end, 10), b = a;

		if (end == s)
			break;
		if (*end == '-')
			b = strtol(end + 1, &end, 10);
		for (long p = a; p <= b && p <= 65535; p++)
			if (p >= 0)
				flags[p] = 1;
		s = end;
		while (*s == ',' || *s == ' ' || *s == '\n')
			s++;
	}
}

static int range_read(const struct fl_netns *ns, struct port_range *r, struct fl_err *err)
{
	char rng[64], res[8192];
	uint8_t *flags = NULL;
	int saved, rc, rrc;

	memset(r, 0, sizeof(*r));
	rc = fl_netns_enter(ns, &saved, err);
	if (rc)
		return rc;
	rc = read_small("/proc/sys/net/ipv4/ip_local_port_range", rng, sizeof(rng));
	rrc = read_small("/proc/sys/net/ipv4/ip_local_reserved_ports", res, sizeof(res));
	fl_netns_leave(saved);
	if (rc)
		return fl_err_set(err, rc, "net.ipv4.ip_local_port_range of %s: %s", ns->path, strerror(-rc));
	if (sscanf(rng, "%d %d", &r->lo, &r->hi) != 2 || r->lo < 1 || r->hi > 65535 || r->lo > r->hi)
		return fl_err_set(err, -EINVAL, "net.ipv4.ip_local_port_range of %s reads '%.40s'", ns->path, rng);
	r->size = r->hi - r->lo + 1;
	flags = calloc(65536, 1);
	r->cand = calloc((size_t)r->size, sizeof(*r->cand));
	if (!flags || !r->cand) {
		rc = fl_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (!rrc)
		parse_reserved(res, flags);
	for (int p = r->lo; p <= r->hi; p++) {
		if (flags[p])
			r->reserved++;
		else
			r->cand[r->ncand++] = (uint16_t)p;
	}
	rc = 0;
out:
	free(flags);
	if (rc)
		range_free(r);
	return rc;
}

/* ---- the kernel's view: sock_diag ------------------------------------------------------------- */

struct diag_sock {
	int family;
	int state;
	uint16_t sport, dport;
	unsigned char src[16], dst[16];   /* v4 in the first 4 bytes */
	uint32_t inode;
	uint32_t mark;
	bool has_mark;
};

typedef void (*diag_cb)(const struct diag_sock *s, void *arg);

/* Every TCP socket of one family in ns, bound-only ones included where the kernel dumps them. */
static int diag_dump(const struct fl_netns *ns, int family, diag_cb cb, void *arg, struct fl_err *err)
{
	struct {
		struct nlmsghdr h;
		struct inet_diag_req_v2 r;
	} req = {
		.h = {.nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
		      .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
		/* every state; bit 13 adds the bound-only sockets (6.8+), older kernels ignore it */
		.r = {.sdiag_family = (uint8_t)family, .sdiag_protocol = IPPROTO_TCP, .idiag_states = ~0u},
	};
	enum { BUF = 65536 };
	char *buf = NULL;
	int fd, saved, rc;

	rc = fl_netns_enter(ns, &saved, err);
	if (rc)
		return rc;
	/* a netlink socket stays bound to the namespace it was made in */
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	rc = fd < 0 ? -errno : 0;
	fl_netns_leave(saved);
	if (rc)
		return fl_err_set(err, rc, "NETLINK_SOCK_DIAG socket in %s: %s", ns->path, strerror(-rc));
	buf = malloc(BUF);
	if (!buf) {
		rc = fl_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (send(fd, &req, sizeof(req), 0) < 0) {
		rc = fl_err_set(err, -errno, "sock_diag request: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t len = recv(fd, buf, BUF, 0);

		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0) {
			rc = fl_err_set(err, len < 0 ? -errno : -EIO, "sock_diag dump: %s",
					len < 0 ? strerror(errno) : "ended early");
			goto out;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
			const struct inet_diag_msg *m;
			struct diag_sock s = {0};
			int alen;

			if (h->nlmsg_type == NLMSG_DONE) {
				rc = 0;
				goto out;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				rc = fl_err_set(err, e->error ? e->error : -EIO, "sock_diag dump: %s",
						strerror(e->error ? -e->error : EIO));
				goto out;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
				continue;
			m = NLMSG_DATA(h);
			s.family = m->idiag_family;
			s.state = m->idiag_state;
			s.sport = ntohs(m->id.idiag_sport);
			s.dport = ntohs(m->id.idiag_dport);
			memcpy(s.src, m->id.idiag_src, 16);
			memcpy(s.dst, m->id.idiag_dst, 16);
			s.inode = m->idiag_inode;
			alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			for (const struct rtattr *a = (const struct rtattr *)(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen))
				if (a->rta_type == INET_DIAG_MARK && RTA_PAYLOAD(a) >= 4) {
					memcpy(&s.mark, RTA_DATA(a), 4);
					s.has_mark = true;
				}
			cb(&s, arg);
		}
	}
out:
	free(buf);
	close(fd);
	return rc;
}

/* Does a dumped socket's remote end equal ss (a v4-mapped v6 socket counts for a v4 ss)? */
static bool diag_dst_is(const struct diag_sock *s, const struct sockaddr_storage *ss)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (s->dport != ss_port(ss))
		return false;
	if (ss->ss_family == AF_INET) {
		if (s->family == AF_INET)
			return !memcmp(s->dst, ss_addr(ss), 4);
		return !memcmp(s->dst, mapped, 12) && !memcmp(s->dst + 12, ss_addr(ss), 4);
	}
	return s->family == AF_INET6 && !memcmp(s->dst, ss_addr(ss), 16);
}

/* Does pid have an fd on socket inode "socket:[N]" (want)? */
static bool pid_holds(pid_t pid, const char *want)
{
	char path[300], link[64];
	struct dirent *e;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if (pid <= 0 || !(d = opendir(path)))
		return false;
	while (!found && (e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			found = !strcmp(link, want);
		}
	}
	closedir(d);
	return found;
}

/* The pid holding socket inode ino: the target's fds first, then every process's; 0 when none. */
static pid_t inode_owner(uint32_t ino, pid_t first)
{
	char want[32];
	struct dirent *e;
	pid_t found = 0;
	DIR *d;

	snprintf(want, sizeof(want), "socket:[%u]", ino);
	if (pid_holds(first, want))
		return first;
	if (!(d = opendir("/proc")))
		return 0;
	while (!found && (e = readdir(d)))
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && pid_holds((pid_t)atoi(e->d_name), want))
			found = (pid_t)atoi(e->d_name);
	closedir(d);
	return found;
}

/* ---- holder children ------------------------------------------------------------------------ */

enum hold_kind { HOLD_BIND, HOLD_REPAIR, HOLD_OCCUPY };
static const char *const kind_names[] = {"bind", "repair", "occupy"};

enum { OCC_HELD = 1, OCC_WAITING = 2 };

/* What a holder tells the controller over its pipe (one write, smaller than PIPE_BUF: atomic). */
struct hold_report {
	int held;          /* sockets it keeps */
	int fallback;      /* of them, bound on FALLBACK_V4 because the port was already in use */
	int unavailable;   /* ports it could not take (a listener; a 4-tuple toward dst in use) */
	int code;          /* 0, or the -errno that stopped it */
	int state;         /* occupy: OCC_HELD or OCC_WAITING */
	bool picked;       /* repair: the kernel picked ports (no per-socket range on this kernel) */
	int64_t at_ns;     /* CLOCK_MONOTONIC when it was written */
	char why[160];
};

/* What a holder does; the child reads it from the memory it inherits. */
struct hold_job {
	enum hold_kind kind;
	const struct fl_netns *ns;
	const uint16_t *ports;               /* bind/repair: the plan; this holder takes ports[first..first+n) */
	int first, n;
	int family;                          /* bind: AF_INET, or AF_INET6 dual-stack */
	struct sockaddr_storage addr;        /* repair: the destination; occupy: the address to bind */
	socklen_t addr_len;
	bool listen, wait;                   /* occupy */
};

struct holder {
	pid_t pid;
	uint64_t start;
	int go_fd, rep_fd;                   /* parent ends: "go" byte out, reports in */
	int first, n;
	struct hold_report rep;
	bool reported, reaped;
};

static void set_mark(int fd)
{
	uint32_t mark = HOLD_MARK;

	/* needs CAP_NET_ADMIN; without it observe counts what the holders say */
	setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
}

/* Hold port for connect(): 0 held on the wildcard, 1 held on the fallback address, -errno not held. */
static int hold_bind(int family, uint16_t port, int *out)
{
	struct sockaddr_storage ss = {0};
	int fd, rc, zero = 0, one = 1;
	socklen_t sl;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		/* dual-stack [::]: the target's own IPv4 and IPv6 bind()s of the port fail too */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) == 0) {
		set_mark(fd);
		*out = fd;
		return 0;
	}
	rc = -errno;
	close(fd);
	if (rc != -EADDRINUSE)
		return rc;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	{
		struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(port)};

		inet_pton(AF_INET, FALLBACK_V4, &s4.sin_addr);
		/* the address need not be up (a namespace whose lo is down) */
		setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&s4, sizeof(s4)) == 0) {
			set_mark(fd);
			*out = fd;
			return 1;
		}
	}
	rc = -errno;
	close(fd);
	return rc;
}

/*
 * Take the 4-tuple (our address, port, dst) without a packet: a TCP_REPAIR socket's connect()
 * picks its port like any connect() (so the port stays usable toward other destinations) and
 * goes straight to ESTABLISHED; closing it sends nothing either. port 0: the kernel picks.
 */
static int hold_repair(const struct hold_job *job, uint16_t port, int *out)
{
	int fd, one = 1, rc;

	fd = socket(job->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &one, sizeof(one)) < 0)
		goto fail;
	if (port) {
		/* a one-port range: the kernel's search for a free port is one probe, not a scan */
		uint32_t r = (uint32_t)port << 16 | port;

		if (setsockopt(fd, IPPROTO_IP, IP_LOCAL_PORT_RANGE, &r, sizeof(r)) < 0)
			goto fail;
	}
	if (connect(fd, (const struct sockaddr *)&job->addr, job->addr_len) < 0)
		goto fail;
	/* after connect: a mark could change the route, and so the source address, if set before */
	set_mark(fd);
	*out = fd;
	return 0;
fail:
	rc = -errno;
	close(fd);
	return rc;
}

static void report_write(int fd, struct hold_report *rep)
{
	ssize_t n;

	rep->at_ns = fl_mono_ns();
	do
		n = write(fd, rep, sizeof(*rep));
	while (n < 0 && errno == EINTR);
}

/* ports.occupy's holder: bind (and listen) once the port is free, and keep it. */
static void occupy_main(const struct hold_job *job, int rep_fd)
{
	struct hold_report rep = {0};
	int fd, one = 1, zero = 0;
	bool said_waiting = false;

	for (;;) {
		fd = socket(job->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rep.code = -errno;
			snprintf(rep.why, sizeof(rep.why), "socket: %s", strerror(errno));
			break;
		}
		if (job->addr.ss_family == AF_INET6 &&
		    IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&job->addr)->sin6_addr))
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		/* a listener with SO_REUSEADDR binds past its predecessor's TIME_WAITs, as a Go service
		 * does; being LISTEN it still conflicts with everyone's bind (SO_REUSEADDR or not). No
		 * SO_REUSEPORT: a reuseport service must not share the port with us either. */
		if (job->listen)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		set_mark(fd);
		if (bind(fd, (const struct sockaddr *)&job->addr, job->addr_len) == 0 &&
		    (!job->listen || listen(fd, 16) == 0)) {
			rep.held = 1;
			rep.state = OCC_HELD;
			rep.code = 0;
			report_write(rep_fd, &rep);
			for (;;)
				pause();
		}
		rep.code = -errno;
		close(fd);
		if (rep.code != -EADDRINUSE || !job->wait) {
			snprintf(rep.why, sizeof(rep.why), "%s: %s", job->listen ? "bind+listen" : "bind",
				 strerror(-rep.code));
			break;
		}
		if (!said_waiting) {
			rep.state = OCC_WAITING;
			rep.code = 0;
			report_write(rep_fd, &rep);
			said_waiting = true;
		}
		/* a restarting service rebinds within milliseconds: poll often (a failed bind costs ~2 us) */
		usleep(1000);
	}
	report_write(rep_fd, &rep);
	_exit(1);
}

/* How often a holder retries the ports it missed, and how many at most each time. */
#define RETRY_TICK_MS 10
#define RETRY_PER_TICK 64

/* ports.exhaust's holder: take its share of the plan, report, then retake what frees up. */
static void exhaust_main(const struct hold_job *job, int rep_fd)
{
	struct hold_report rep = {0};
	uint16_t *missed = calloc((size_t)job->n + 1, sizeof(*missed));
	int nmissed = 0, fd;

	if (!missed) {
		rep.code = -ENOMEM;
		snprintf(rep.why, sizeof(rep.why), "out of memory");
		report_write(rep_fd, &rep);
		_exit(1);
	}
	for (int i = 0; i < job->n && !rep.code; i++) {
		uint16_t port = job->ports[job->first + i];
		int rc;

		if (job->kind == HOLD_BIND) {
			rc = hold_bind(job->family, port, &fd);
			if (rc >= 0) {
				rep.held++;
				rep.fallback += rc;
				continue;
			}
		} else if (rep.picked) {
			rc = hold_repair(job, 0, &fd);
			if (rc == 0) {
				rep.held++;
				continue;
			}
			if (rc == -EADDRNOTAVAIL)
				break; /* the kernel found no port left toward dst: the whole range is in use */
		} else {
			rc = hold_repair(job, port, &fd);
			if (rc == -ENOPROTOOPT) {
				/* before Linux 6.3 there is no per-socket range: let the kernel pick (slower
				 * near a full range, where each connect() scans what is taken) */
				rep.picked = true;
				i--;
				continue;
			}
			if (rc == 0) {
				rep.held++;
				continue;
			}
		}
		if (rc == -EADDRINUSE || rc == -EADDRNOTAVAIL) {
			missed[nmissed++] = port;
			rep.unavailable++;
			continue;
		}
		rep.code = rc;
		snprintf(rep.why, sizeof(rep.why), "%s port %u: %s", job->kind == HOLD_BIND ? "bind" : "connect (TCP_REPAIR)",
			 port, strerror(-rc));
	}
	report_write(rep_fd, &rep);
	close(rep_fd);
	if (rep.code)
		_exit(1);
	/*
	 * A listener that goes away or a connection that ends frees a port: take it too, before the
	 * target's next connect() gets it (as leaked connections would: a service that reuses its last
	 * free ports should not look healthier than one with none; a backoff lets it). Only the ports
	 * missed at apply are retried, each until taken, every 10 ms, at most RETRY_PER_TICK of them a
	 * tick in turn: a few dozen in use at apply are all retried each tick, thousands in TIME_WAIT
	 * (taken for a minute) cost no more than that many attempts a tick.
	 */
	for (int at = 0;;) {
		int left = 0, end, next = 0;

		usleep(RETRY_TICK_MS * 1000);
		if (at >= nmissed)
			at = 0;
		end = at + RETRY_PER_TICK < nmissed ? at + RETRY_PER_TICK : nmissed;
		for (int i = 0; i < nmissed; i++) {
			int rc = -EAGAIN;

			if (i >= at && i < end)
				rc = job->kind == HOLD_BIND ? hold_bind(job->family, missed[i], &fd)
							    : hold_repair(job, rep.picked ? 0 : missed[i], &fd);
			if (rc < 0)
				missed[left++] = missed[i];
			if (i == end - 1)
				next = left; /* the next tick starts after the last one tried */
		}
		nmissed = left;
		at = next;
	}
}

static void holder_main(const struct hold_job *job, int go_fd, int rep_fd)
{
	struct hold_report rep = {0};
	struct fl_err e = {0};
	struct rlimit rl;
	int saved;
	char c;
	ssize_t n;

	prctl(PR_SET_NAME, job->kind == HOLD_OCCUPY ? "fl-port-occupy" : "fl-ports-hold");
	if (fl_netns_enter(job->ns, &saved, &e)) {
		rep.code = e.code;
		snprintf(rep.why, sizeof(rep.why), "%.150s", e.msg);
		report_write(rep_fd, &rep);
		_exit(1);
	}
	if (saved >= 0)
		close(saved); /* never goes back */
	/* the soft limit up to the hard one: a holder is sized to the hard limit (minus FD_RESERVE) */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* nothing is held before the controller's journal names this process */
	do
		n = read(go_fd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(0);
	close(go_fd);
	if (job->kind == HOLD_OCCUPY)
		occupy_main(job, rep_fd);
	else
		exhaust_main(job, rep_fd);
	_exit(0);
}

struct hold_set {
	struct holder *h;
	int n;
	int64_t started_ns, ready_ns;
};

/*
 * Start n holders (job with first/n set per holder by `share`), journal each before it acts, then
 * let them go and wait for every first report. On error the holders started stay in hs, so the
 * caller's revert kills them (the journal already names them).
 */
static int holders_start(struct hold_set *hs, struct hold_job *job, int n, const int *first, const int *count,
			 struct fl_journal *j, const struct fl_fault *f, struct fl_err *err)
{
	int rc = 0;

	hs->h = calloc((size_t)n, sizeof(*hs->h));
	if (!hs->h)
		return fl_err_set(err, -ENOMEM, "out of memory");
	hs->started_ns = fl_mono_ns();
	for (int i = 0; i < n; i++) {
		struct holder *h = &hs->h[i];
		int go[2], rep[2], keep[3];
		pid_t pid;

		h->go_fd = h->rep_fd = -1;
		if (pipe2(go, O_CLOEXEC) < 0)
			return fl_err_set(err, -errno, "pipe: %s", strerror(errno));
		if (pipe2(rep, O_CLOEXEC) < 0) {
			rc = -errno;
			close(go[0]);
			close(go[1]);
			return fl_err_set(err, rc, "pipe: %s", strerror(-rc));
		}
		keep[0] = job->ns->fd;
		keep[1] = go[0];
		keep[2] = rep[1];
		job->first = first ? first[i] : 0;
		job->n = count ? count[i] : 0;
		pid = fl_spawn_child(keep, 3, err);
		if (pid == 0)
			holder_main(job, go[0], rep[1]);
		close(go[0]);
		close(rep[1]);
		if (pid < 0) {
			close(go[1]);
			close(rep[0]);
			return (int)pid;
		}
		h->pid = pid;
		h->go_fd = go[1];
		h->rep_fd = rep[0];
		h->first = job->first;
		h->n = job->n;
		hs->n = i + 1;
		if (fl_proc_starttime(pid, &h->start))
			return fl_err_set(err, -ESRCH, "holder %d vanished at birth", (int)pid);
	}
	/* journal every holder, fsync'd, before any of them holds anything */
	for (int i = 0; i < hs->n; i++) {
		struct holder *h = &hs->h[i];
		int64_t seq = fl_journal_append(j, f, "kind=%s pid=%d start=%llu holder=%d/%d ports=%d " FL_NETNS_REC_FMT,
						kind_names[job->kind], (int)h->pid, (unsigned long long)h->start,
						i + 1, hs->n, h->n, FL_NETNS_REC_ARGS(job->ns));

		if (seq < 0)
			return fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
	}
	for (int i = 0; i < hs->n; i++) {
		if (write(hs->h[i].go_fd, "g", 1) != 1)
			return fl_err_set(err, -errno, "starting holder %d: %s", (int)hs->h[i].pid, strerror(errno));
		close(hs->h[i].go_fd);
		hs->h[i].go_fd = -1;
	}
	/* every first report, within READY_MS */
	for (int got = 0; got < hs->n;) {
		struct pollfd pf[MAX_HOLDERS];
		int idx[MAX_HOLDERS], np = 0, left = READY_MS - (int)((fl_mono_ns() - hs->started_ns) / 1000000);

		for (int i = 0; i < hs->n; i++)
			if (!hs->h[i].reported) {
				pf[np].fd = hs->h[i].rep_fd;
				pf[np].events = POLLIN;
				idx[np++] = i;
			}
		if (left <= 0 || (rc = poll(pf, (nfds_t)np, left)) == 0)
			return fl_err_set(err, -ETIMEDOUT, "%d of %d holders did not report within %d ms", hs->n - got,
					  hs->n, READY_MS);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return fl_err_set(err, -errno, "poll: %s", strerror(errno));
		for (int k = 0; k < np; k++) {
			struct holder *h = &hs->h[idx[k]];
			ssize_t r;

			if (!pf[k].revents)
				continue;
			r = read(h->rep_fd, &h->rep, sizeof(h->rep));
			h->reported = true;
			got++;
			if (r != (ssize_t)sizeof(h->rep))
				return fl_err_set(err, -ECHILD, "holder %d died before it reported", (int)h->pid);
			if (h->rep.code)
				return fl_err_set(err, h->rep.code, "holder %d: %s", (int)h->pid, h->rep.why);
		}
	}
	hs->ready_ns = fl_mono_ns();
	return 0;
}

static int holders_alive(const struct hold_set *hs)
{
	int n = 0;

	for (int i = 0; i < hs->n; i++) {
		char s;

		if (!hs->h[i].reaped && fl_proc_state(hs->h[i].pid, &s) == 0 && s != 'Z')
			n++;
	}
	return n;
}

/* SIGKILL every holder and reap it: its sockets are closed by the time waitpid returns. */
static void holders_stop(struct hold_set *hs)
{
	for (int i = 0; i < hs->n; i++)
		if (!hs->h[i].reaped && hs->h[i].pid > 0)
			kill(hs->h[i].pid, SIGKILL);
	for (int i = 0; i < hs->n; i++) {
		struct holder *h = &hs->h[i];

		if (!h->reaped && h->pid > 0)
			while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
				;
		h->reaped = true;
		if (h->go_fd >= 0)
			close(h->go_fd);
		if (h->rep_fd >= 0)
			close(h->rep_fd);
		h->go_fd = h->rep_fd = -1;
	}
}

static void holders_free(struct hold_set *hs)
{
	holders_stop(hs);
	free(hs->h);
	hs->h = NULL;
	hs->n = 0;
}

/* revert_record: SIGKILL the journaled holder if it still is that process; wait until it is gone. */
static int kill_recorded(const struct fl_journal_rec *r, struct fl_err *err)
{
	return fl_proc_kill_record(r, "holder", err);
}

/* The soft/hard RLIMIT_NOFILE budget of one holder (the hard limit, less what it keeps besides). */
static int holder_budget(void)
{
	struct rlimit rl;
	rlim_t hard;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024 - FD_RESERVE;
	hard = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
	return hard > FD_RESERVE * 2 ? (int)(hard - FD_RESERVE) : FD_RESERVE;
}

static int cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

/* ==== ports.exhaust ========================================================================= */

static const struct fl_param exhaust_params[] = {
	{.name = "count", .kind = FL_P_INT, .min = "1", .max = "65535",
	 .help = "ports of the ephemeral range to hold, from its low end (default: all of it); "
		 "exclusive with fraction"},
	{.name = "fraction", .kind = FL_P_RATIO, .min = "0%", .max = "100%",
	 .help = "share of the range's usable ports (those net.ipv4.ip_local_reserved_ports leaves) to "
		 "hold instead of a count (90%: a tenth left)"},
	{.name = "dst", .kind = FL_P_STRING,
	 .help = "ip:port ([v6]:port): take only the 4-tuples toward this destination (TCP_REPAIR "
		 "sockets, no packet sent, needs CAP_NET_ADMIN), so connect() to it fails while "
		 "other destinations work; default: every destination (bound sockets)"},
	{.name = "ipv6", .kind = FL_P_BOOL, .def = "false",
	 .help = "hold with dual-stack IPv6 sockets, so the target's explicit IPv4 and IPv6 bind()s "
		 "of those ports fail too; connect() fails for both families either way (one bind "
		 "table per port)"},
	{.name = "netns", .kind = FL_P_STRING,
	 .help = "network namespace whose range is held: a name under /run/netns, a path, or pid:PID "
		 "(default: the target's)"},
	{0},
};

struct exhaust_state {
	struct fl_netns ns;
	struct port_range range;
	bool has_dst;
	struct sockaddr_storage dst;
	socklen_t dst_len;
	bool ipv6;
	int want;                  /* ports to hold */
	int per_holder;            /* fd budget of one holder */
	struct hold_set hs;
	int64_t applied_ns;
	uint8_t *flags;            /* per port, during observe */
	/* what the kernel showed, while in force */
	int held, blocked, marked_seen;
	bool counted, by_holders;
	char probe[96];
	bool reverted;
	int held_after;            /* kernel count just after revert, -1 unknown */
};

static void exhaust_release(struct fl_fault *f);

static double want_fraction(const struct fl_fault *f)
{
	const struct fl_value *fr = fl_fault_value(f, "fraction");

	return fr->set ? fr->d : 1.0;
}

static int exhaust_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err)
{
	const struct fl_value *count = fl_fault_value(f, "count"), *fr = fl_fault_value(f, "fraction"),
			      *dst = fl_fault_value(f, "dst"), *v6 = fl_fault_value(f, "ipv6");
	struct sockaddr_storage ss;
	socklen_t sl;

	if (count->set && fr->set) {
		*blame = fr;
		fl_err_set(err, -EINVAL, "count and fraction are exclusive");
		fl_err_hint(err, "give a number of ports or a share of the range, not both");
		return -EINVAL;
	}
	if (fr->set && fr->d <= 0) {
		*blame = fr;
		return fl_err_set(err, -EINVAL, "a fraction of 0%% holds nothing");
	}
	if (dst->set && parse_endpoint(dst->s, &ss, &sl, err)) {
		*blame = dst;
		return -EINVAL;
	}
	if (dst->set && v6->set && !v6->defaulted && v6->b) {
		*blame = v6;
		fl_err_set(err, -EINVAL, "ipv6 applies to holds for every destination");
		fl_err_hint(err, "with dst, the destination's address gives the family");
		return -EINVAL;
	}
	return 0;
}

/* Everything check and apply share: namespace, range, destination, how many, blast radius. */
static int exhaust_plan(const struct fl_fault *f, struct exhaust_state *st, struct fl_err *err)
{
	const struct fl_value *count = fl_fault_value(f, "count"), *dst = fl_fault_value(f, "dst");
	int rc;

	st->ns.fd = -1;
	st->ipv6 = fl_fault_value(f, "ipv6")->b;
	if ((st->has_dst = dst->set)) {
		rc = parse_endpoint(dst->s, &st->dst, &st->dst_len, err);
		if (rc)
			return rc;
	}
	rc = fl_netns_resolve(f, &st->ns, err);
	if (rc)
		return rc;
	/* blast radius: every destination in faultline's own namespace starves every process of the host */
	if (st->ns.own && !st->has_dst && !(f->target && f->target->allow_host_wide)) {
		fl_err_set(err, -EPERM, "refusing to hold ephemeral ports for every destination in faultline's "
					"own network namespace (%s): every process on the host would lose them",
			   st->ns.path);
		fl_err_hint(err, "scope it with dst: ip:port, act in the target's own netns, or set "
				 "allow_host_wide: true");
		return -EPERM;
	}
	rc = range_read(&st->ns, &st->range, err);
	if (rc)
		return rc;
	if (count->set) {
		st->want = (int)count->i;
	} else {
		double n = want_fraction(f) * st->range.ncand;

		st->want = (int)n;
		if (st->want < 1)
			return fl_err_set(err, -EINVAL, "%.4g%% of the %d usable ports of %d-%d is no port at all",
					  want_fraction(f) * 100, st->range.ncand, st->range.lo, st->range.hi);
	}
	if (st->want > st->range.ncand) {
		fl_err_set(err, -ERANGE, "count %d exceeds the ephemeral range of %s: %d-%d holds %d ports%s",
			   st->want, st->ns.path, st->range.lo, st->range.hi, st->range.ncand,
			   st->range.reserved ? " besides the reserved ones" : "");
		fl_err_hint(err, "omit count to hold the whole range, or widen net.ipv4.ip_local_port_range");
		return -ERANGE;
	}
	if (st->ipv6 && !st->has_dst) {
		int saved, fd = -1;

		if (!fl_netns_enter(&st->ns, &saved, NULL)) {
			fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
			rc = fd < 0 ? -errno : 0;
			fl_netns_leave(saved);
			if (fd >= 0)
				close(fd);
			if (rc)
				return fl_err_set(err, rc, "ipv6: no IPv6 TCP socket in %s: %s", st->ns.path, strerror(-rc));
		}
	}
	st->per_holder = holder_budget();
	if ((st->want + st->per_holder - 1) / st->per_holder > MAX_HOLDERS)
		return fl_err_set(err, -EMFILE, "holding %d ports needs more than %d holders of %d fds (the hard "
						"RLIMIT_NOFILE less %d)", st->want, MAX_HOLDERS, st->per_holder, FD_RESERVE);
	if (st->has_dst && !fl_have_cap(CAP_NET_ADMIN)) {
		fl_err_set(err, -EPERM, "dst scope takes 4-tuples with TCP_REPAIR sockets, which needs CAP_NET_ADMIN");
		fl_err_hint(err, "run faultline as root");
		return -EPERM;
	}
	return 0;
}

static void probe_cb(const struct diag_sock *s, void *arg)
{
	if (s->state == ST_CLOSE && s->sport == 40000)
		++*(int *)arg;
}

/* In a scratch namespace (lo down): is a bound socket in the kernel's dump; does TCP_REPAIR work? */
static int exhaust_probe_fn(void *arg, struct fl_err *err)
{
	struct hold_job job = {.kind = HOLD_REPAIR};
	struct sockaddr_in *d = (struct sockaddr_in *)&job.addr;
	struct fl_netns self = {.fd = -1};
	char notes[FL_ERR_MSG] = "";
	int fd = -1, rfd = -1, rc, seen = 0;

	(void)arg;
	rc = hold_bind(AF_INET, 40000, &fd);
	if (rc < 0)
		return fl_err_set(err, rc, "bind in a scratch namespace: %s", strerror(-rc));
	if (fl_netns_open("/proc/self/ns/net", &self, NULL) == 0) {
		diag_dump(&self, AF_INET, probe_cb, &seen, NULL);
		fl_netns_close(&self);
	}
	if (!seen)
		snprintf(notes, sizeof(notes), "the kernel does not dump bound sockets (Linux < 6.8): ports_held "
					       "is the holders' own count");
	d->sin_family = AF_INET;
	d->sin_port = htons(9);
	d->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	job.addr_len = sizeof(*d);
	rc = hold_repair(&job, 40001, &rfd);
	if (rc == -EPERM || rc == -ENOPROTOOPT)
		snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes), "%s%s", notes[0] ? "; " : "",
			 rc == -EPERM ? "dst scope unavailable: TCP_REPAIR needs CAP_NET_ADMIN"
				      : "no per-socket port range (Linux < 6.3): dst scope lets the kernel pick "
					"ports, slow near a full range");
	close(fd);
	if (rfd >= 0)
		close(rfd);
	if (notes[0])
		fl_err_set(err, 0, "%s", notes);
	return 0;
}

struct count_ctx {
	const struct exhaust_state *st;
	uint8_t *flags;            /* bit 0 ours, bit 1 blocked for connect() */
	int marked;
};

static void count_cb(const struct diag_sock *s, void *arg)
{
	struct count_ctx *c = arg;
	const struct exhaust_state *st = c->st;
	bool bound = s->state == ST_CLOSE || s->state == ST_LISTEN;
	bool ours = s->has_mark && s->mark == HOLD_MARK;

	if (s->sport < st->range.lo || s->sport > st->range.hi)
		return;
	if (st->has_dst) {
		bool toward = diag_dst_is(s, &st->dst) && s->state != ST_CLOSE;

		if (bound || toward)
			c->flags[s->sport] |= 2;
		if (ours && toward) {
			c->flags[s->sport] |= 1;
			c->marked++;
		}
		return;
	}
	if (bound)
		c->flags[s->sport] |= 2;
	if (ours && s->state == ST_CLOSE) {
		c->flags[s->sport] |= 1;
		c->marked++;
	}
}

/* Count from the kernel's tables: ports held by our sockets, ports connect() cannot use. */
static int exhaust_count(struct exhaust_state *st, int *held, int *blocked, int *marked, struct fl_err *err)
{
	struct count_ctx c = {.st = st};
	int rc;

	if (!st->flags && !(st->flags = malloc(65536)))
		return -ENOMEM;
	memset(st->flags, 0, 65536);
	c.flags = st->flags;
	rc = diag_dump(&st->ns, AF_INET, count_cb, &c, err);
	if (!rc)
		rc = diag_dump(&st->ns, AF_INET6, count_cb, &c, err);
	if (rc)
		return rc;
	*held = *blocked = 0;
	/* over the ports connect() may pick: the reserved ones are out of play either way */
	for (int i = 0; i < st->range.ncand; i++) {
		*held += st->flags[st->range.cand[i]] & 1;
		*blocked += (st->flags[st->range.cand[i]] >> 1) & 1;
	}
	*marked = c.marked;
	return 0;
}

/*
 * Ask the kernel for a port the way the target's connect() would, without a packet: a TCP_REPAIR
 * connect() to dst (or to 127.0.0.1:9) picks a port or fails with EADDRNOTAVAIL; closed at once.
 */
static void connect_probe(struct exhaust_state *st)
{
	struct hold_job job = {.kind = HOLD_REPAIR};
	struct sockaddr_storage local;
	socklen_t ll = sizeof(local);
	int saved, fd = -1, rc;

	if (st->has_dst) {
		job.addr = st->dst;
		job.addr_len = st->dst_len;
	} else {
		struct sockaddr_in *d = (struct sockaddr_in *)&job.addr;

		d->sin_family = AF_INET;
		d->sin_port = htons(9);
		d->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		job.addr_len = sizeof(*d);
	}
	if (fl_netns_enter(&st->ns, &saved, NULL)) {
		snprintf(st->probe, sizeof(st->probe), "not run: cannot enter %.60s", st->ns.path);
		return;
	}
	rc = hold_repair(&job, 0, &fd);
	fl_netns_leave(saved);
	if (rc == -EADDRNOTAVAIL)
		snprintf(st->probe, sizeof(st->probe), "EADDRNOTAVAIL: connect() finds no free port");
	else if (rc == 0 && getsockname(fd, (struct sockaddr *)&local, &ll) == 0)
		snprintf(st->probe, sizeof(st->probe), "connect() still gets a port (%u)", ss_port(&local));
	else
		snprintf(st->probe, sizeof(st->probe), "not conclusive: %s", strerror(rc ? -rc : EIO));
	if (fd >= 0)
		close(fd);
}

static int exhaust_probe(struct fl_err *err)
{
	return fl_net_probe_in_scratch_ns(exhaust_probe_fn, NULL, err);
}

static int exhaust_check(const struct fl_fault *f, struct fl_err *err)
{
	struct exhaust_state st = {0};
	int rc = exhaust_plan(f, &st, err);

	fl_netns_close(&st.ns);
	range_free(&st.range);
	return rc;
}

static void exhaust_describe(const struct fl_fault *f, char *buf, size_t len)
{
	const struct fl_value *count = fl_fault_value(f, "count"), *dst = fl_fault_value(f, "dst"),
			      *ns = fl_fault_value(f, "netns");
	char how[64];

	if (count->set)
		snprintf(how, sizeof(how), "%lld ports", (long long)count->i);
	else
		snprintf(how, sizeof(how), "%.4g%%", want_fraction(f) * 100);
	if (dst->set)
		snprintf(buf, len, "take %s of the ephemeral range's 4-tuples toward %s in netns %s (TCP_REPAIR "
				   "sockets in helper children, no packet sent); killed on revert",
			 how, dst->s, ns->set ? ns->s : "of the target");
	else
		snprintf(buf, len, "bind %s of the ephemeral range in netns %s (helper children, one socket per "
				   "port) so connect() fails with EADDRNOTAVAIL; killed on revert",
			 how, ns->set ? ns->s : "of the target");
}

static int exhaust_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	struct exhaust_state *st = calloc(1, sizeof(*st));
	struct hold_job job = {0};
	int *first = NULL, *count = NULL, nh, rc;

	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	st->held_after = -1;
	rc = exhaust_plan(f, st, err);
	if (rc)
		goto fail;
	/* one holder per fd budget, and at least one per CPU for a big range: binds run in parallel */
	nh = (st->want + st->per_holder - 1) / st->per_holder;
	if (st->want >= 4096 && nh < cpus())
		nh = cpus();
	first = calloc((size_t)nh, sizeof(*first));
	count = calloc((size_t)nh, sizeof(*count));
	if (!first || !count) {
		rc = fl_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (int i = 0; i < nh; i++) {
		first[i] = (int)((int64_t)st->want * i / nh);
		count[i] = (int)((int64_t)st->want * (i + 1) / nh) - first[i];
	}
	job.kind = st->has_dst ? HOLD_REPAIR : HOLD_BIND;
	job.ns = &st->ns;
	job.ports = st->range.cand;
	job.family = st->ipv6 ? AF_INET6 : AF_INET;
	if (st->has_dst) {
		job.addr = st->dst;
		job.addr_len = st->dst_len;
	}
	st->applied_ns = fl_mono_ns();
	f->state = st;
	/* from here on the journal may name holders: state stays for revert even when this fails */
	rc = holders_start(&st->hs, &job, nh, first, count, j, f, err);
	free(first);
	free(count);
	if (!rc)
		connect_probe(st);
	return rc;
fail:
	free(first);
	free(count);
	fl_netns_close(&st->ns);
	range_free(&st->range);
	free(st);
	return rc;
}

static int exhaust_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct exhaust_state *st = f->state;
	int hheld = 0, fallback = 0, unavail = 0, alive;
	char dst[INET6_ADDRSTRLEN + 8];

	if (!st)
		return -ENOENT;
	for (int i = 0; i < st->hs.n; i++) {
		hheld += st->hs.h[i].rep.held;
		fallback += st->hs.h[i].rep.fallback;
		unavail += st->hs.h[i].rep.unavailable;
	}
	if (!st->reverted) {
		int held, blocked, marked;

		if (exhaust_count(st, &held, &blocked, &marked, NULL) == 0) {
			st->counted = true;
			/* no marked socket while holders hold some: no bound-socket dump (< 6.8) or no mark */
			st->by_holders = marked == 0 && hheld > 0;
			st->held = st->by_holders ? hheld : held;
			st->blocked = st->by_holders ? hheld : blocked;
			st->marked_seen = marked;
		}
	}
	if (st->counted) {
		int usable = st->range.ncand, free_ports = usable - st->blocked;

		fl_obs_num(o, "ports_held", st->held, "%d of %d (%s)", st->held, usable,
			   st->by_holders ? "the holders' count: this kernel does not dump bound sockets"
					  : "kernel: sock_diag");
		fl_obs_num(o, "held_fraction", (double)st->held / usable, "%.1f%% of the usable range",
			   100.0 * st->held / usable);
		fl_obs_num(o, "ports_free", free_ports < 0 ? 0 : free_ports, "%d%s", free_ports < 0 ? 0 : free_ports,
			   st->has_dst ? " toward dst" : "");
	}
	fl_obs_text(o, "range", "%d-%d (%d ports, %d reserved)", st->range.lo, st->range.hi, st->range.size,
		    st->range.reserved);
	fl_obs_num(o, "range_size", st->range.size, "%d", st->range.size);
	fl_obs_num(o, "holders_held", hheld, "%d by %d holders at apply (%d bound on " FALLBACK_V4 ": in use)",
		   hheld, st->hs.n, fallback);
	if (unavail)
		fl_obs_num(o, "unavailable", unavail, "%d (listening, or in use toward dst: retried every 10 ms, 64 at a time, until taken)",
			   unavail);
	if (st->has_dst) {
		ss_format(&st->dst, dst, sizeof(dst));
		fl_obs_text(o, "scope", "4-tuples toward %s (TCP_REPAIR, no packet sent)", dst);
	} else {
		fl_obs_text(o, "scope", "every destination (%s bound sockets)", st->ipv6 ? "dual-stack" : "IPv4");
	}
	if (st->hs.ready_ns)
		fl_obs_num(o, "apply_ms", (double)(st->hs.ready_ns - st->applied_ns) / 1e6, "%.1f ms",
			   (double)(st->hs.ready_ns - st->applied_ns) / 1e6);
	if (st->probe[0])
		fl_obs_text(o, "connect_probe", "%s", st->probe);
	alive = st->reverted ? 0 : holders_alive(&st->hs);
	fl_obs_num(o, "holders_alive", alive, "%d of %d", alive, st->hs.n);
	if (st->reverted && st->held_after >= 0)
		fl_obs_num(o, "ports_held_after_revert", st->held_after, "%d", st->held_after);
	return 0;
}

static int exhaust_revert(struct fl_fault *f, struct fl_err *err)
{
	struct exhaust_state *st = f->state;
	int held, blocked, marked;

	(void)err;
	if (!st || st->reverted)
		return 0;
	exhaust_observe(f, &(struct fl_observation){0});
	holders_stop(&st->hs);
	st->reverted = true;
	/* the kernel's word that nothing of ours is left */
	if (exhaust_count(st, &held, &blocked, &marked, NULL) == 0)
		st->held_after = st->by_holders ? 0 : held;
	return 0;
}

static void exhaust_release(struct fl_fault *f)
{
	struct exhaust_state *st = f->state;

	if (!st)
		return;
	holders_free(&st->hs);
	fl_netns_close(&st->ns);
	range_free(&st->range);
	free(st->flags);
	free(st);
	f->state = NULL;
}

const struct fl_injector fl_inj_ports_exhaust = {
	.type = "ports.exhaust",
	.summary = "hold the ephemeral port range of a network namespace (or its 4-tuples toward one "
		   "destination) so connect() fails with EADDRNOTAVAIL",
	.preflight = "the network namespace opens; its net.ipv4.ip_local_port_range is read; count fits "
		     "the range; the holders' fd budget suffices; every-destination holds in faultline's own "
		     "namespace need allow_host_wide; dst scope needs CAP_NET_ADMIN",
	.params = exhaust_params,
	.validate = exhaust_validate,
	.probe = exhaust_probe,
	.check = exhaust_check,
	.describe = exhaust_describe,
	.apply = exhaust_apply,
	.observe = exhaust_observe,
	.revert = exhaust_revert,
	.release = exhaust_release,
	.revert_record = kill_recorded,
};

/* ==== ports.occupy ========================================================================== */

static const struct fl_param occupy_params[] = {
	{.name = "port", .kind = FL_P_INT, .required = true, .min = "1", .max = "65535",
	 .help = "the TCP port the target listens on"},
	{.name = "address", .kind = FL_P_STRING,
	 .help = "address to bind (default: any, dual-stack [::], which blocks every address of the port)"},
	{.name = "listen", .kind = FL_P_BOOL, .def = "true",
	 .help = "listen as well (a stale instance: connections are queued and never answered); false: "
		 "bind only (nothing there: connections are refused)"},
	{.name = "wait", .kind = FL_P_BOOL, .def = "true",
	 .help = "when the port is in use (the target listens on it), take it the moment it is released "
		 "(a restart); false: the apply fails instead"},
	{.name = "netns", .kind = FL_P_STRING,
	 .help = "network namespace: a name under /run/netns, a path, or pid:PID (default: the target's)"},
	{0},
};

struct occupy_state {
	struct fl_netns ns;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool listen;
	struct hold_set hs;
	int64_t applied_ns, held_ns;
	bool held_seen, reverted;
	int others;
	pid_t other_pid;
	char other[96];
};

/* The address to bind: `address` with `port`, or dual-stack [::] (0.0.0.0 where IPv6 is off). */
static int occupy_addr(const struct fl_fault *f, struct sockaddr_storage *ss, socklen_t *sl, struct fl_err *err)
{
	const struct fl_value *a = fl_fault_value(f, "address");
	uint16_t port = (uint16_t)fl_fault_value(f, "port")->i;

	memset(ss, 0, sizeof(*ss));
	if (!a->set) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0) {
			close(fd);
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(port);
			*sl = sizeof(*s6);
			return 0;
		}
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons(port);
		*sl = sizeof(struct sockaddr_in);
		return 0;
	}
	if (inet_pton(AF_INET, a->s, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons(port);
		*sl = sizeof(struct sockaddr_in);
		return 0;
	}
	if (inet_pton(AF_INET6, a->s, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
		*sl = sizeof(struct sockaddr_in6);
		return 0;
	}
	fl_err_set(err, -EINVAL, "address '%s' is not a literal IPv4 or IPv6 address", a->s);
	fl_err_hint(err, "0.0.0.0, 127.0.0.1, ::, ::1, or omit it for every address");
	return -EINVAL;
}

static int occupy_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	if (fl_fault_value(f, "address")->set && occupy_addr(f, &ss, &sl, err)) {
		*blame = fl_fault_value(f, "address");
		return -EINVAL;
	}
	return 0;
}

static int occupy_probe(struct fl_err *err)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return fl_err_set(err, -errno, "socket: %s", strerror(errno));
	close(fd);
	return 0;
}

static int occupy_check(const struct fl_fault *f, struct fl_err *err)
{
	struct sockaddr_storage ss;
	struct fl_netns ns = {.fd = -1};
	socklen_t sl;
	int rc = occupy_addr(f, &ss, &sl, err);

	if (!rc)
		rc = fl_netns_resolve(f, &ns, err);
	fl_netns_close(&ns);
	return rc;
}

static void occupy_describe(const struct fl_fault *f, char *buf, size_t len)
{
	const struct fl_value *a = fl_fault_value(f, "address"), *ns = fl_fault_value(f, "netns");

	snprintf(buf, len, "%s %s port %lld in netns %s from a helper child%s, so the target cannot bind it; "
			   "killed on revert",
		 fl_fault_value(f, "listen")->b ? "bind and listen on" : "bind", a->set ? a->s : "every address's",
		 (long long)fl_fault_value(f, "port")->i, ns->set ? ns->s : "of the target",
		 fl_fault_value(f, "wait")->b ? " (waiting for it if it is in use)" : "");
}

static int occupy_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	struct occupy_state *st = calloc(1, sizeof(*st));
	struct hold_job job = {.kind = HOLD_OCCUPY};
	int rc;

	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	st->ns.fd = -1;
	rc = occupy_addr(f, &st->addr, &st->addr_len, err);
	if (!rc)
		rc = fl_netns_resolve(f, &st->ns, err);
	if (rc) {
		fl_netns_close(&st->ns);
		free(st);
		return rc;
	}
	st->listen = fl_fault_value(f, "listen")->b;
	job.ns = &st->ns;
	job.addr = st->addr;
	job.addr_len = st->addr_len;
	job.listen = st->listen;
	job.wait = fl_fault_value(f, "wait")->b;
	st->applied_ns = fl_mono_ns();
	f->state = st;
	rc = holders_start(&st->hs, &job, 1, NULL, NULL, j, f, err);
	if (st->hs.n && st->hs.h[0].reported) {
		if (st->hs.h[0].rep.state == OCC_HELD) {
			st->held_ns = st->hs.h[0].rep.at_ns;
			st->held_seen = true;
		}
		/* the holder tells again when a wait ends: read it without blocking in observe */
		fcntl(st->hs.h[0].rep_fd, F_SETFL, O_NONBLOCK);
	}
	return rc;
}

struct occ_ctx {
	uint16_t port;
	int ours, others;
	uint32_t other_ino;
	struct diag_sock other;
};

static void occ_cb(const struct diag_sock *s, void *arg)
{
	struct occ_ctx *c = arg;

	if (s->sport != c->port || (s->state != ST_LISTEN && s->state != ST_CLOSE))
		return;
	if (s->has_mark && s->mark == HOLD_MARK) {
		c->ours++;
		return;
	}
	if (!c->others++) {
		c->other_ino = s->inode;
		c->other = *s;
	}
}

/* Read what the holder said since (its "held" after a wait), waiting up to wait_ms for a first word. */
static void occupy_reports(struct occupy_state *st, int wait_ms)
{
	struct pollfd pf = {.events = POLLIN};
	struct hold_report rep;

	if (!st->hs.n || st->hs.h[0].rep_fd < 0 || st->reverted)
		return;
	pf.fd = st->hs.h[0].rep_fd;
	if (wait_ms && poll(&pf, 1, wait_ms) <= 0)
		return;
	while (read(st->hs.h[0].rep_fd, &rep, sizeof(rep)) == (ssize_t)sizeof(rep)) {
		st->hs.h[0].rep = rep;
		if (rep.state == OCC_HELD && !st->held_seen) {
			st->held_seen = true;
			st->held_ns = rep.at_ns;
		}
	}
}

static int occupy_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct occupy_state *st = f->state;
	struct occ_ctx c = {0};
	char a[INET6_ADDRSTRLEN + 8];
	pid_t target = f->target ? f->target->pid : 0;

	if (!st)
		return -ENOENT;
	occupy_reports(st, 0);
	c.port = ss_port(&st->addr);
	if (!st->reverted && diag_dump(&st->ns, AF_INET, occ_cb, &c, NULL) == 0 &&
	    diag_dump(&st->ns, AF_INET6, occ_cb, &c, NULL) == 0) {
		st->others = c.others;
		st->other[0] = '\0';
		if (c.others) {
			char comm[32] = "?", addr[INET6_ADDRSTRLEN] = "?";

			st->other_pid = inode_owner(c.other_ino, target);
			if (st->other_pid)
				fl_proc_comm(st->other_pid, comm, sizeof(comm));
			inet_ntop(c.other.family, c.other.src, addr, sizeof(addr));
			snprintf(st->other, sizeof(st->other), "pid %d (%s%s) %s %s", (int)st->other_pid, comm,
				 st->other_pid && st->other_pid == target ? ", the target" : "",
				 c.other.state == ST_LISTEN ? "listens on" : "bound to", addr);
		}
		/* the kernel shows the listener a moment before the holder's word arrives */
		if (c.ours && !st->held_seen)
			occupy_reports(st, 100);
		fl_obs_num(o, "held", c.ours > 0, "%s", c.ours > 0 ? "yes (kernel: sock_diag)" : "no");
	} else if (st->reverted) {
		fl_obs_num(o, "held", 0, "no (reverted)");
	}
	ss_format(&st->addr, a, sizeof(a));
	fl_obs_text(o, "address", "%s%s", a, st->listen ? " (listening, never accepting)" : " (bound only)");
	if (st->held_seen)
		fl_obs_num(o, "held_after_s", (double)(st->held_ns - st->applied_ns) / 1e9, "%.3f s",
			   (double)(st->held_ns - st->applied_ns) / 1e9);
	else if (!st->reverted)
		fl_obs_text(o, "state", "waiting: the port is in use; taken the moment it is released");
	fl_obs_num(o, "others", st->others, "%d other socket%s on the port", st->others, st->others == 1 ? "" : "s");
	if (st->others && st->other[0]) {
		fl_obs_text(o, "other_holder", "%s", st->other);
		if (!st->held_seen)
			fl_obs_text(o, "note", "%s holds the port: no effect until it releases it (restarts)",
				    st->other_pid && st->other_pid == target ? "the target itself" : "another process");
		else
			fl_obs_text(o, "note", "shared by address: the other socket is on another address of the port");
	}
	return 0;
}

static int occupy_revert(struct fl_fault *f, struct fl_err *err)
{
	struct occupy_state *st = f->state;

	(void)err;
	if (!st || st->reverted)
		return 0;
	occupy_observe(f, &(struct fl_observation){0});
	holders_stop(&st->hs);
	st->reverted = true;
	return 0;
}

static void occupy_release(struct fl_fault *f)
{
	struct occupy_state *st = f->state;

	if (!st)
		return;
	holders_free(&st->hs);
	fl_netns_close(&st->ns);
	free(st);
	f->state = NULL;
}

const struct fl_injector fl_inj_ports_occupy = {
	.type = "ports.occupy",
	.summary = "bind (and listen on) the target's listen port from a helper child so a restarted "
		   "service fails with EADDRINUSE",
	.preflight = "the address parses; the network namespace opens. A port the target still holds is "
		     "not refused: the holder takes it when the target releases it (observe says which)",
	.params = occupy_params,
	.validate = occupy_validate,
	.probe = occupy_probe,
	.check = occupy_check,
	.describe = occupy_describe,
	.apply = occupy_apply,
	.observe = occupy_observe,
	.revert = occupy_revert,
	.release = occupy_release,
	.revert_record = kill_recorded,
};
