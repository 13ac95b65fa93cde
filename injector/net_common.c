/* The pieces every network injector shares: the match table and its rules, namespaces, owned names, scratch-netns probes, handshake RTT probes, helper children. */
#include "net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
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

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/msg.h>
#include <netlink/route/link.h>

#include "journal.h"
#include "procfs.h"

#define OWNED_PREFIX "faultline-"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* ---- the match ------------------------------------------------------------------------------ */

static const char *const dir_names[] = {"egress", "ingress", NULL};
static const char *const proto_names[] = {"any", "tcp", "udp", "icmp", NULL};

enum { M_IFACE, M_DIR, M_DST, M_SRC, M_DPORT, M_SPORT, M_PROTO, M_CGROUP };

const struct fl_param fl_net_match_params[] = {
	[M_IFACE] = {.name = "interface", .kind = FL_P_STRING,
		     .help = "network interface (default: the one the route to dst_ip, or src_ip for "
			     "ingress, leaves by)"},
	[M_DIR] = {.name = "direction", .kind = FL_P_ENUM, .def = "egress", .enums = dir_names,
		   .help = "egress: packets the namespace sends; ingress: packets it receives"},
	[M_DST] = {.name = "dst_ip", .kind = FL_P_CIDR, .help = "destination address or CIDR"},
	[M_SRC] = {.name = "src_ip", .kind = FL_P_CIDR, .help = "source address or CIDR"},
	[M_DPORT] = {.name = "dst_port", .kind = FL_P_INT, .min = "1", .max = "65535",
		     .help = "destination port (tcp and udp unless protocol says which)"},
	[M_SPORT] = {.name = "src_port", .kind = FL_P_INT, .min = "1", .max = "65535",
		     .help = "source port"},
	[M_PROTO] = {.name = "protocol", .kind = FL_P_ENUM, .def = "any", .enums = proto_names,
		     .help = "transport protocol"},
	[M_CGROUP] = {.name = "cgroup", .kind = FL_P_BOOL, .def = "false",
		      .help = "only packets of sockets in the target's cgroup (egress; backends that "
			      "can see the socket)"},
	{0},
};

static const struct fl_value *match_values(const struct fl_fault *f)
{
	const struct fl_value *v = fl_fault_value(f, "match");

	return v->set ? v->obj : NULL;
}

int fl_net_match_get(const struct fl_fault *f, struct fl_net_match *m, struct fl_err *err)
{
	const struct fl_value *mv = match_values(f);

	memset(m, 0, sizeof(*m));
	m->family = AF_UNSPEC;
	if (!mv)
		return 0;
	if (mv[M_IFACE].set) {
		if (strlen(mv[M_IFACE].s) >= sizeof(m->iface))
			return fl_err_set(err, -EINVAL, "interface name '%s' is too long", mv[M_IFACE].s);
		snprintf(m->iface, sizeof(m->iface), "%s", mv[M_IFACE].s);
	}
	m->dir = mv[M_DIR].set ? (enum fl_net_dir)mv[M_DIR].i : FL_NET_EGRESS;
	if ((m->has_dst = mv[M_DST].set)) {
		m->dst = mv[M_DST].cidr;
		m->family = m->dst.family;
	}
	if ((m->has_src = mv[M_SRC].set)) {
		m->src = mv[M_SRC].cidr;
		m->family = m->src.family;
	}
	m->dst_port = mv[M_DPORT].set ? (uint16_t)mv[M_DPORT].i : 0;
	m->src_port = mv[M_SPORT].set ? (uint16_t)mv[M_SPORT].i : 0;
	m->proto = mv[M_PROTO].set ? (enum fl_net_proto)mv[M_PROTO].i : FL_NET_ANY;
	m->cgroup = mv[M_CGROUP].set && mv[M_CGROUP].b;
	return 0;
}

int fl_net_match_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err)
{
	const struct fl_value *mv = match_values(f);

	if (!mv)
		return 0;
	if ((mv[M_DPORT].set || mv[M_SPORT].set) && mv[M_PROTO].set && mv[M_PROTO].i == FL_NET_ICMP) {
		*blame = mv[M_DPORT].set ? &mv[M_DPORT] : &mv[M_SPORT];
		fl_err_set(err, -EINVAL, "match: icmp has no ports");
		fl_err_hint(err, "drop the port, or set protocol: tcp or udp");
		return -EINVAL;
	}
	if (mv[M_DST].set && mv[M_SRC].set && mv[M_DST].cidr.family != mv[M_SRC].cidr.family) {
		*blame = &mv[M_SRC];
		fl_err_set(err, -EINVAL, "match: dst_ip and src_ip are of different address families");
		return -EINVAL;
	}
	if (mv[M_IFACE].set && (!mv[M_IFACE].s[0] || strlen(mv[M_IFACE].s) >= IF_NAMESIZE ||
				strpbrk(mv[M_IFACE].s, " /\t"))) {
		*blame = &mv[M_IFACE];
		return fl_err_set(err, -EINVAL, "match: '%s' is not an interface name", mv[M_IFACE].s);
	}
	return 0;
}

bool fl_net_match_selective(const struct fl_net_match *m)
{
	return m->has_dst || m->has_src || m->dst_port || m->src_port || m->proto != FL_NET_ANY ||
	       m->cgroup;
}

static void cidr_format(const struct fl_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(c->family, c->addr, a, sizeof(a));
	snprintf(buf, len, "%s/%d", a, c->prefix);
}

void fl_net_match_format(const struct fl_net_match *m, char *buf, size_t len)
{
	char from[80] = "", to[80] = "", a[64];
	const char *proto = m->proto != FL_NET_ANY ? proto_names[m->proto] :
			    m->dst_port || m->src_port ? "tcp+udp" : "all";

	if (m->has_src || m->src_port) {
		if (m->has_src)
			cidr_format(&m->src, a, sizeof(a));
		snprintf(from, sizeof(from), " from %s", m->has_src ? a : "any");
		if (m->src_port)
			snprintf(from + strlen(from), sizeof(from) - strlen(from), " port %u", m->src_port);
	}
	if (m->has_dst || m->dst_port) {
		if (m->has_dst)
			cidr_format(&m->dst, a, sizeof(a));
		snprintf(to, sizeof(to), " to %s", m->has_dst ? a : "any");
		if (m->dst_port)
			snprintf(to + strlen(to), sizeof(to) - strlen(to), " port %u", m->dst_port);
	}
	snprintf(buf, len, "%s%s%s on %s (%s)%s", proto, from, to,
		 m->iface[0] ? m->iface : "the routed interface", dir_names[m->dir],
		 m->cgroup ? ", target's cgroup only" : "");
}

/* ---- namespaces ------------------------------------------------------------------------------ */

static int ns_fill(struct fl_netns *ns, int fd, const char *path, struct fl_err *err)
{
	struct stat st, self;

	if (fstat(fd, &st) < 0) {
		int rc = -errno;

		close(fd);
		return fl_err_set(err, rc, "fstat %s: %s", path, strerror(-rc));
	}
	ns->fd = fd;
	snprintf(ns->path, sizeof(ns->path), "%s", path);
	ns->dev = (uint64_t)st.st_dev;
	ns->ino = (uint64_t)st.st_ino;
	ns->own = stat("/proc/self/ns/net", &self) == 0 && self.st_dev == st.st_dev &&
		  self.st_ino == st.st_ino;
	return 0;
}

int fl_netns_open(const char *spec, struct fl_netns *ns, struct fl_err *err)
{
	char path[256];
	int fd;

	ns->fd = -1;
	if (!strncmp(spec, "pid:", 4))
		snprintf(path, sizeof(path), "/proc/%s/ns/net", spec + 4);
	else if (strchr(spec, '/'))
		snprintf(path, sizeof(path), "%s", spec);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", spec);
	/* journal records hold the path as one blank-free value */
	if (strpbrk(path, " \t\n#"))
		return fl_err_set(err, -EINVAL, "network namespace path '%s' holds a blank or '#'", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;

		fl_err_set(err, rc, "network namespace %s: %s", path, strerror(-rc));
		if (rc == -ENOENT)
			fl_err_hint(err, "`ip netns list` shows the named ones; pid:PID names a process's");
		return rc;
	}
	return ns_fill(ns, fd, path, err);
}

int fl_netns_resolve(const struct fl_fault *f, struct fl_netns *ns, struct fl_err *err)
{
	const struct fl_value *v = fl_fault_value(f, "netns");

	if (v->set)
		return fl_netns_open(v->s, ns, err);
	if (f->target && f->target->netns[0])
		return fl_netns_open(f->target->netns, ns, err);
	return fl_netns_open("/proc/self/ns/net", ns, err);
}

static bool same_ns(int fd, uint64_t dev, uint64_t ino)
{
	struct stat st;

	return fstat(fd, &st) == 0 && (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

struct find_ctx {
	uint64_t dev, ino;
	struct fl_netns *out;
	bool found;
};

static int find_cb(const struct fl_netns *ns, void *arg)
{
	struct find_ctx *c = arg;

	if (ns->dev != c->dev || ns->ino != c->ino)
		return 0;
	*c->out = *ns;
	c->out->fd = fcntl(ns->fd, F_DUPFD_CLOEXEC, 3);
	c->found = c->out->fd >= 0;
	return 1;
}

int fl_netns_find(const char *path, uint64_t dev, uint64_t ino, struct fl_netns *ns, struct fl_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct find_ctx c = {.dev = dev, .ino = ino, .out = ns};

	ns->fd = -1;
	if (fd >= 0 && same_ns(fd, dev, ino))
		return ns_fill(ns, fd, path, err);
	if (fd >= 0)
		close(fd);
	/* the path now names another namespace (a recycled pid, a re-created name): look by identity */
	fl_netns_each(find_cb, &c);
	if (c.found)
		return 0;
	return fl_err_set(err, -ENOENT, "network namespace %s (inode %llu) no longer exists", path,
			  (unsigned long long)ino);
}

int fl_netns_from_record(const struct fl_journal_rec *r, struct fl_netns *ns, struct fl_err *err)
{
	char path[256];
	uint64_t dev, ino;

	ns->fd = -1;
	if (!fl_rec_get(r, "netns", path, sizeof(path)) || fl_rec_get_u64(r, "ns_dev", &dev) ||
	    fl_rec_get_u64(r, "ns_ino", &ino))
		return fl_err_set(err, -EINVAL, "journal record %llu lacks netns/ns_dev/ns_ino",
				  (unsigned long long)r->seq);
	return fl_netns_find(path, dev, ino, ns, err);
}

void fl_netns_close(struct fl_netns *ns)
{
	if (ns && ns->fd >= 0)
		close(ns->fd);
	if (ns)
		ns->fd = -1;
}

int fl_netns_enter(const struct fl_netns *ns, int *saved, struct fl_err *err)
{
	*saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*saved < 0)
		return fl_err_set(err, -errno, "cannot open our own network namespace: %s", strerror(errno));
	if (ns->own)
		return 0;
	if (setns(ns->fd, CLONE_NEWNET) < 0) {
		int rc = -errno;

		close(*saved);
		*saved = -1;
		fl_err_set(err, rc, "setns(%s): %s", ns->path, strerror(-rc));
		if (rc == -EPERM)
			fl_err_hint(err, "entering another network namespace needs CAP_SYS_ADMIN (run as root)");
		return rc;
	}
	return 0;
}

void fl_netns_leave(int saved)
{
	if (saved < 0)
		return;
	/* returning can only fail if our own namespace vanished, which cannot happen while we hold it */
	if (setns(saved, CLONE_NEWNET) < 0)
		abort();
	close(saved);
}

/* Offer one candidate namespace to cb, once per identity; returns cb's non-zero to stop. */
static int each_try(const char *path, uint64_t (*seen)[2], int *nseen, int cap,
		    int (*cb)(const struct fl_netns *, void *), void *arg)
{
	struct fl_netns ns;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return 0;
	if (ns_fill(&ns, fd, path, NULL))
		return 0;
	for (int i = 0; i < *nseen; i++)
		if (seen[i][0] == ns.dev && seen[i][1] == ns.ino) {
			close(ns.fd);
			return 0;
		}
	if (*nseen < cap) {
		seen[*nseen][0] = ns.dev;
		seen[*nseen][1] = ns.ino;
		(*nseen)++;
	}
	rc = cb(&ns, arg);
	close(ns.fd);
	return rc;
}

int fl_netns_each(int (*cb)(const struct fl_netns *ns, void *arg), void *arg)
{
	enum { CAP = 4096 };
	uint64_t(*seen)[2] = calloc(CAP, sizeof(*seen));
	int nseen = 0, rc = 0;
	char path[300];
	DIR *d;
	struct dirent *e;

	if (!seen)
		return -ENOMEM;
	rc = each_try("/proc/self/ns/net", seen, &nseen, CAP, cb, arg);
	if (!rc && (d = opendir("/run/netns"))) {
		while (!rc && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/run/netns/%s", e->d_name);
			rc = each_try(path, seen, &nseen, CAP, cb, arg);
		}
		closedir(d);
	}
	if (!rc && (d = opendir("/proc"))) {
		while (!rc && (e = readdir(d))) {
			if (e->d_name[0] < '1' || e->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/ns/net", e->d_name);
			rc = each_try(path, seen, &nseen, CAP, cb, arg);
		}
		closedir(d);
	}
	free(seen);
	return rc;
}

int fl_net_route_socket(const struct fl_netns *ns, struct nl_sock **out, struct fl_err *err)
{
	struct nl_sock *sk;
	int saved, rc, one = 1;

	*out = NULL;
	rc = fl_netns_enter(ns, &saved, err);
	if (rc)
		return rc;
	sk = nl_socket_alloc();
	rc = sk ? nl_connect(sk, NETLINK_ROUTE) : -NLE_NOMEM;
	fl_netns_leave(saved);
	if (rc < 0) {
		nl_socket_free(sk);
		return fl_err_set(err, -EIO, "netlink socket in %s: %s", ns->path, nl_geterror(rc));
	}
	/* the kernel's own words in errors ("Specified qdisc kind is unknown") */
	setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	/* callers ask for an ACK when they want one: an unasked-for ACK left behind would be read
	 * as the next query's answer */
	nl_socket_disable_auto_ack(sk);
	nl_socket_set_msg_buf_size(sk, 65536);
	*out = sk;
	return 0;
}

int fl_net_ifindex(const struct fl_netns *ns, const char *name, int *ifindex, struct fl_err *err)
{
	struct nl_sock *sk;
	struct rtnl_link *link = NULL;
	int rc;

	*ifindex = 0;
	rc = fl_net_route_socket(ns, &sk, err);
	if (rc)
		return rc;
	rc = rtnl_link_get_kernel(sk, 0, name, &link);
	if (rc < 0) {
		rc = fl_err_set(err, -ENODEV, "no interface '%s' in network namespace %s", name, ns->path);
		fl_err_hint(err, "`ip -n NETNS link` lists them; or name the destination with match.dst_ip");
	} else {
		*ifindex = rtnl_link_get_ifindex(link);
		rc = 0;
	}
	rtnl_link_put(link);
	nl_socket_free(sk);
	return rc;
}

struct route_reply {
	int oif;
	int error;
};

static int route_reply_cb(struct nl_msg *msg, void *arg)
{
	struct route_reply *rr = arg;
	struct nlmsghdr *h = nlmsg_hdr(msg);
	struct nlattr *tb[RTA_MAX + 1];

	if (h->nlmsg_type != RTM_NEWROUTE)
		return NL_SKIP;
	if (nlmsg_parse(h, sizeof(struct rtmsg), tb, RTA_MAX, NULL) < 0)
		return NL_SKIP;
	if (tb[RTA_OIF])
		rr->oif = (int)nla_get_u32(tb[RTA_OIF]);
	return NL_OK;
}

static int route_err_cb(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	(void)nla;
	((struct route_reply *)arg)->error = e->error;
	return NL_STOP;
}

int fl_net_route_iface(const struct fl_netns *ns, const struct fl_cidr *addr, char *iface, size_t len,
		       struct fl_err *err)
{
	struct rtmsg rtm = {.rtm_family = (unsigned char)addr->family,
			    .rtm_dst_len = addr->family == AF_INET ? 32 : 128};
	struct route_reply rr = {0};
	struct nl_sock *sk = NULL;
	struct nl_msg *msg = NULL;
	struct nl_cb *cb = NULL;
	struct rtnl_link *link = NULL;
	char a[INET6_ADDRSTRLEN] = "?";
	int rc;

	inet_ntop(addr->family, addr->addr, a, sizeof(a));
	rc = fl_net_route_socket(ns, &sk, err);
	if (rc)
		return rc;
	msg = nlmsg_alloc_simple(RTM_GETROUTE, NLM_F_REQUEST);
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!msg || !cb || nlmsg_append(msg, &rtm, sizeof(rtm), NLMSG_ALIGNTO) < 0 ||
	    nla_put(msg, RTA_DST, addr->family == AF_INET ? 4 : 16, addr->addr) < 0) {
		rc = fl_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, route_reply_cb, &rr);
	nl_cb_err(cb, NL_CB_CUSTOM, route_err_cb, &rr);
	rc = nl_send_auto(sk, msg);
	if (rc >= 0)
		rc = nl_recvmsgs(sk, cb);
	if (rr.error || rc < 0 || rr.oif <= 0) {
		rc = fl_err_set(err, -ENETUNREACH, "no route to %s in network namespace %s%s%s", a, ns->path,
				rr.error ? ": " : "", rr.error ? strerror(-rr.error) : "");
		fl_err_hint(err, "set match.interface");
		goto out;
	}
	if (rtnl_link_get_kernel(sk, rr.oif, NULL, &link) < 0) {
		rc = fl_err_set(err, -ENODEV, "route to %s leaves by ifindex %d, which vanished", a, rr.oif);
		goto out;
	}
	snprintf(iface, len, "%s", rtnl_link_get_name(link));
	rc = 0;
out:
	rtnl_link_put(link);
	nl_cb_put(cb);
	nlmsg_free(msg);
	nl_socket_free(sk);
	return rc;
}

/* ---- owned names ---------------------------------------------------------------------------- */

int fl_net_owned_name(const struct fl_journal *j, const struct fl_fault *f, char *buf, size_t len)
{
	int n = snprintf(buf, len, OWNED_PREFIX "%s-%s", fl_journal_run_id(j), f->name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool fl_net_owned_run_id(const char *name, char *run_id, size_t len)
{
	const char *p, *end;
	int dashes = 0;

	if (strncmp(name, OWNED_PREFIX, strlen(OWNED_PREFIX)))
		return false;
	p = name + strlen(OWNED_PREFIX);
	/* a run id holds two dashes (YYYYMMDDTHHMMSS-PID-XXXX); the third ends it */
	for (end = p; *end; end++)
		if (*end == '-' && ++dashes == 3)
			break;
	if (dashes < 2 || (size_t)(end - p) >= len)
		return false;
	memcpy(run_id, p, (size_t)(end - p));
	run_id[end - p] = '\0';
	return true;
}

/* ---- requests --------------------------------------------------------------------------------- */

int fl_net_req_init(const struct fl_fault *f, bool need_iface, struct fl_net_req *r, struct fl_err *err)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->f = f;
	r->ns.fd = -1;
	rc = fl_net_match_get(f, &r->match, err);
	if (rc)
		return rc;
	rc = fl_netns_resolve(f, &r->ns, err);
	if (rc)
		return rc;
	r->host_ns = r->ns.own;
	if (!need_iface)
		return 0;
	if (r->match.iface[0]) {
		snprintf(r->iface, sizeof(r->iface), "%s", r->match.iface);
	} else {
		const struct fl_cidr *a = r->match.dir == FL_NET_EGRESS ? &r->match.dst : &r->match.src;
		bool have = r->match.dir == FL_NET_EGRESS ? r->match.has_dst : r->match.has_src;

		if (!have) {
			fl_err_set(err, -EINVAL, "no interface: set match.interface, or match.%s so the "
						 "route to it names one", r->match.dir == FL_NET_EGRESS ? "dst_ip" : "src_ip");
			return -EINVAL;
		}
		rc = fl_net_route_iface(&r->ns, a, r->iface, sizeof(r->iface), err);
		if (rc)
			return rc;
	}
	rc = fl_net_ifindex(&r->ns, r->iface, &r->ifindex, err);
	if (rc)
		return rc;
	/* blast radius: a whole host interface is only touched when the scenario says so */
	if (r->host_ns && !fl_net_match_selective(&r->match) && !(f->target && f->target->allow_host_wide)) {
		fl_err_set(err, -EPERM, "refusing to act on every packet of host interface %s", r->iface);
		fl_err_hint(err, "narrow it with match (dst_ip, dst_port, protocol, cgroup), act in the "
				 "target's own netns, or set allow_host_wide: true");
		return -EPERM;
	}
	return 0;
}

void fl_net_req_fini(struct fl_net_req *r)
{
	if (r)
		fl_netns_close(&r->ns);
}

/* ---- probes in a scratch namespace ---------------------------------------------------------- */

int fl_net_probe_in_scratch_ns(int (*fn)(void *arg, struct fl_err *err), void *arg, struct fl_err *err)
{
	struct fl_err child = {0};
	int p[2], status;
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		return fl_err_set(err, -errno, "pipe: %s", strerror(errno));
	pid = fl_spawn_child(&p[1], 1, err);
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return pid;
	}
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0)
			fl_err_set(&child, -errno, "unshare(CLONE_NEWNET): %s", strerror(errno));
		else
			fn(arg, &child);
		if (write(p[1], &child, sizeof(child)) < 0)
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	/* a probe is a few netlink calls: 10 s means it hangs, and the drill must not */
	{
		struct pollfd pf = {.fd = p[0], .events = POLLIN};

		n = -1;
		if (poll(&pf, 1, 10000) == 1) {
			do
				n = read(p[0], &child, sizeof(child));
			while (n < 0 && errno == EINTR);
		} else {
			kill(pid, SIGKILL);
		}
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(child))
		return fl_err_set(err, -EIO, "probe child died (status %d)", status);
	/* a probe that passes may still leave a note (a limit, a missing capability) */
	if (err && (child.code || child.msg[0]))
		*err = child;
	return child.code;
}

/* ---- handshake RTT probes ------------------------------------------------------------------ */

static socklen_t endpoint(int family, const void *addr, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, addr, 4);
		return sizeof(*s4);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	memcpy(&s6->sin6_addr, addr, 16);
	return sizeof(*s6);
}

/* A non-blocking connect from inside ns; the fd or -errno. */
static int probe_connect(const struct fl_netns *ns, int family, const void *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl = endpoint(family, addr, port, &ss);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	int saved, fd, rc;

	if (fl_netns_enter(ns, &saved, NULL))
		return -EPERM;
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	rc = fd < 0 ? -errno : 0;
	fl_netns_leave(saved);
	if (rc)
		return rc;
	/* the measured connection is reset, not closed politely: no TIME_WAIT, nothing for the peer to read */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* Has the connect finished? 1 with the handshake RTT in ms, 0 still pending, -errno failed. */
static int probe_collect(int fd, double *ms)
{
	struct pollfd pf = {.fd = fd, .events = POLLOUT};
	struct tcp_info ti;
	socklen_t tl = sizeof(ti);
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (poll(&pf, 1, 0) <= 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return -errno;
	if (soerr)
		return -soerr;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0)
		return -errno;
	/* right after the handshake the smoothed RTT is its one sample: SYN out to SYN-ACK back */
	*ms = (double)ti.tcpi_rtt / 1000.0;
	return 1;
}

void fl_rtt_probe_start(struct fl_rtt_probe *p, const struct fl_netns *ns, const struct fl_net_match *m)
{
	/*
	 * One remote endpoint over TCP: egress matches the SYN to dst, ingress the SYN-ACK from src.
	 * Not for cgroup-scoped matches: the probe's socket is not in the target's cgroup.
	 */
	const struct fl_cidr *c = m->dir == FL_NET_EGRESS ? &m->dst : &m->src;
	bool has = m->dir == FL_NET_EGRESS ? m->has_dst : m->has_src;
	uint16_t port = m->dir == FL_NET_EGRESS ? m->dst_port : m->src_port;

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	if (!has || !port || m->cgroup || c->prefix != (c->family == AF_INET ? 32 : 128) ||
	    (m->proto != FL_NET_ANY && m->proto != FL_NET_TCP))
		return;
	p->active = true;
	p->family = c->family;
	memcpy(p->addr, c->addr, p->family == AF_INET ? 4 : 16);
	p->port = port;
	fl_rtt_probe_step(p, ns);
	p->baseline_pending = p->fd >= 0;
}

void fl_rtt_probe_step(struct fl_rtt_probe *p, const struct fl_netns *ns)
{
	double ms = 0;

	if (!p->active)
		return;
	if (p->fd >= 0) {
		int rc = probe_collect(p->fd, &ms);

		if (rc == 0 && fl_mono_ns() - p->started_ns < 10LL * 1000000000)
			return; /* still in its handshake: a long delay; look again next time */
		if (rc == 1 && p->baseline_pending) {
			p->baseline_ms = ms;
			p->have_baseline = true;
		} else if (rc == 1) {
			p->last_ms = ms;
			p->min_ms = p->samples && p->min_ms < ms ? p->min_ms : ms;
			p->max_ms = p->samples && p->max_ms > ms ? p->max_ms : ms;
			p->sum_ms += ms;
			p->samples++;
		} else {
			p->failures++;
			p->last_errno = rc ? -rc : ETIMEDOUT;
		}
		p->baseline_pending = false;
		close(p->fd);
		p->fd = -1;
	}
	p->fd = probe_connect(ns, p->family, p->addr, p->port);
	if (p->fd < 0) {
		p->failures++;
		p->last_errno = -p->fd;
		p->fd = -1;
		return;
	}
	p->started_ns = fl_mono_ns();
}

void fl_rtt_probe_report(const struct fl_rtt_probe *p, struct fl_observation *o)
{
	double mean = p->samples ? p->sum_ms / p->samples : 0;

	if (!p->active)
		return;
	if (p->have_baseline)
		fl_obs_num(o, "rtt_baseline_ms", p->baseline_ms, "%.3f ms", p->baseline_ms);
	if (p->samples)
		fl_obs_num(o, "rtt_ms", mean, "%.3f ms (mean of %d; last %.3f, min %.3f, max %.3f)", mean,
			   p->samples, p->last_ms, p->min_ms, p->max_ms);
	if (p->samples && p->have_baseline)
		fl_obs_num(o, "added_rtt_ms", mean - p->baseline_ms, "%.3f ms", mean - p->baseline_ms);
	if (p->failures)
		fl_obs_text(o, "rtt_probe_failures", "%d (last: %s)", p->failures, strerror(p->last_errno));
}

void fl_rtt_probe_close(struct fl_rtt_probe *p)
{
	if (p && p->fd >= 0)
		close(p->fd);
	if (p)
		p->fd = -1;
}

/* ---- helper children ------------------------------------------------------------------------ */

static int int_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

pid_t fl_spawn_child(const int *keep, int nkeep, struct fl_err *err)
{
	pid_t parent = getpid(), pid;
	int sorted[16], n = 0;

	for (int i = 0; i < nkeep && n < 16; i++)
		if (keep[i] > 2)
			sorted[n++] = keep[i];
	qsort(sorted, (size_t)n, sizeof(int), int_cmp);
	pid = fork();
	if (pid < 0)
		return fl_err_set(err, -errno, "fork: %s", strerror(errno));
	if (pid > 0) {
		setpgid(pid, pid);
		return pid;
	}
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	{
		unsigned int lo = 3;

		for (int i = 0; i < n; i++) {
			if ((unsigned int)sorted[i] > lo)
				syscall(SYS_close_range, lo, (unsigned int)sorted[i] - 1, 0);
			lo = (unsigned int)sorted[i] + 1;
		}
		syscall(SYS_close_range, lo, ~0U, 0);
	}
	return 0;
}
