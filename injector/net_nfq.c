/* The nfqueue network backend: iptables rules send the matched packets to an NFQUEUE whose delayer child holds (timer heap) or drops them, for kernels without sch_netem. */
#include "net.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include "journal.h"
#include "procfs.h"

#define NFQ_QUEUE_LO 1000
#define NFQ_QUEUE_HI 65000
#define NFQ_BIND_TRIES 8
/* Held packets: the cap bounds kernel memory (an MTU-sized skb is ~2.3 KiB of truesize). */
#define NFQ_HELD_DEFAULT 16384
#define NFQ_HELD_MAX 65536
/* The cap must still carry this many packets/s at the longest hold, else the delay is refused. */
#define NFQ_MIN_RATE 1000
/* Kernel queue slack above the cap: packets read-pending in the socket also count there. */
#define NFQ_KERNEL_SLACK 4096
#define NFQ_MAX_RULES 4
#define NFQ_SPEC 320
#define NFQ_MAX_ARGS 48
#define NFQ_EXEC_TIMEOUT_MS 15000
#define NFQ_STOP_WAIT_MS 2000
#define NFQ_READY_TIMEOUT_MS 5000
#define NFQ_RCVBUF (8 << 20)
#define NFQ_RX_BATCH 64
#define NFQ_RX_MSG 1024
#define NFQ_RX_BUDGET 4096
#define NFQ_VBUF 65536
/* Deviates of the normal/pareto shapes are clipped here, like netem's tables (+-4 sigma). */
#define NFQ_Z_CLIP 4.0
#define NFQ_PARETO_SD 0.8660254037844386 /* sqrt(3)/2: sd of a Pareto(shape 3, scale 1) */

static const char *const dist_names[] = {"uniform", "normal", "pareto", "paretonormal"};

/* ---- iptables: the one shell-out -------------------------------------------------------------- */

/*
 * NFQUEUE is an xtables target: this kernel has no native nft `queue` expression, and libnftnl
 * or libiptc are not stable library interfaces for xt targets, so the rules are made by running
 * the iptables binaries (inside the fault's netns), every exit status checked, stderr quoted.
 * Both flavours are named explicitly so a record stays valid if `alternatives` is switched.
 */
enum ipt_kind { IPT_NFT, IPT_LEGACY, IPT_NKINDS };
static const char *const kind_names[IPT_NKINDS] = {"nft", "legacy"};
static const char *const ipt_names[IPT_NKINDS][2] = {{"iptables-nft", "ip6tables-nft"},
						     {"iptables-legacy", "ip6tables-legacy"}};
static const char *const save_names[IPT_NKINDS][2] = {{"iptables-nft-save", "ip6tables-nft-save"},
						      {"iptables-legacy-save", "ip6tables-legacy-save"}};

static int fam_ix(int family)
{
	return family == AF_INET6;
}

/* Absolute path of an sbin tool, searched where Debian installs it. */
static int tool_path(const char *name, char *path, size_t len)
{
	static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, len, "%s/%s", dirs[i], name);
		if (access(path, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

static int missing_tool(struct fl_err *err, const char *name)
{
	fl_err_set(err, -ENOENT, "%s not found in /usr/sbin, /sbin, /usr/bin or /bin", name);
	fl_err_hint(err, "install the Debian package iptables (it ships iptables-nft and iptables-legacy)");
	return -ENOENT;
}

/* The default flavour first: the one /usr/sbin/iptables points to. */
static void kind_order(int order[IPT_NKINDS])
{
	char real[4096];

	order[0] = IPT_NFT;
	order[1] = IPT_LEGACY;
	if (realpath("/usr/sbin/iptables", real) && strstr(real, "legacy")) {
		order[0] = IPT_LEGACY;
		order[1] = IPT_NFT;
	}
}

struct capture {
	char *buf;
	size_t len, cap, max;
};

static int capture_read(int fd, struct capture *c)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n <= 0)
		return n < 0 && (errno == EINTR || errno == EAGAIN) ? 1 : 0;
	if (c->len + (size_t)n + 1 > c->cap && c->len + (size_t)n + 1 <= c->max) {
		size_t ncap = c->cap ? c->cap : 8192;
		char *nb;

		while (ncap < c->len + (size_t)n + 1)
			ncap *= 2;
		nb = realloc(c->buf, ncap);
		if (nb) {
			c->buf = nb;
			c->cap = ncap;
		}
	}
	if (c->buf && c->len + (size_t)n + 1 <= c->cap) {
		memcpy(c->buf + c->len, tmp, (size_t)n);
		c->len += (size_t)n;
		c->buf[c->len] = '\0';
	}
	return 1;
}

static void __attribute__((noreturn)) exec_in_ns(int nsfd, int outfd, int errfd, const char *path,
						 const char *const argv[])
{
	static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
	sigset_t none;
	int devnull = open("/dev/null", O_RDWR);

	/* the controller blocks SIGTERM/SIGINT for its signalfd; an exec'd tool must not inherit that */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0) {
		dprintf(errfd, "setns: %s", strerror(errno));
		_exit(126);
	}
	if (devnull >= 0)
		dup2(devnull, 0);
	dup2(outfd >= 0 ? outfd : devnull, 1);
	dup2(errfd, 2);
	execve(path, (char *const *)argv, envp);
	dprintf(2, "exec %s: %s", path, strerror(errno));
	_exit(127);
}

/*
 * Run argv (argv[0] a tool name) in the namespace nsfd (-1: ours) and wait for it. 0 with its
 * exit status in *status (128+signal when killed), stderr in errtxt and stdout in *out (when
 * out != NULL, malloc'd); negative errno when it could not be run at all.
 */
static int run_tool(int nsfd, const char *const argv[], int *status, char *errtxt, size_t errlen,
		    char **out, struct fl_err *err)
{
	struct capture co = {.max = 64 << 20}, ce = {.max = 16384};
	int op[2] = {-1, -1}, ep[2] = {-1, -1}, rc = 0, ws = 0;
	char path[256];
	int64_t deadline = fl_mono_ns() + (int64_t)NFQ_EXEC_TIMEOUT_MS * 1000000;
	pid_t pid;

	*status = -1;
	if (errtxt && errlen)
		errtxt[0] = '\0';
	if (out)
		*out = NULL;
	if (tool_path(argv[0], path, sizeof(path)))
		return missing_tool(err, argv[0]);
	if ((out && pipe2(op, O_CLOEXEC) < 0) || pipe2(ep, O_CLOEXEC) < 0) {
		rc = fl_err_set(err, -errno, "pipe: %s", strerror(errno));
		goto out;
	}
	{
		int keep[3] = {nsfd, op[1], ep[1]};

		pid = fl_spawn_child(keep, 3, err);
	}
	if (pid < 0) {
		rc = (int)pid;
		goto out;
	}
	if (pid == 0)
		exec_in_ns(nsfd, op[1], ep[1], path, argv);
	close(ep[1]);
	ep[1] = -1;
	if (op[1] >= 0) {
		close(op[1]);
		op[1] = -1;
	}
	for (;;) {
		struct pollfd pf[2] = {{.fd = ep[0], .events = POLLIN}, {.fd = op[0], .events = POLLIN}};
		int64_t left = (deadline - fl_mono_ns()) / 1000000;

		if (pf[0].fd < 0 && pf[1].fd < 0)
			break;
		if (left <= 0) {
			kill(pid, SIGKILL);
			rc = fl_err_set(err, -ETIMEDOUT, "%s did not finish within %d s", argv[0],
					NFQ_EXEC_TIMEOUT_MS / 1000);
			break;
		}
		if (poll(pf, 2, (int)left) < 0 && errno != EINTR) {
			kill(pid, SIGKILL);
			rc = fl_err_set(err, -errno, "poll: %s", strerror(errno));
			break;
		}
		if (pf[0].fd >= 0 && pf[0].revents && !capture_read(ep[0], &ce)) {
			close(ep[0]);
			ep[0] = -1;
		}
		if (pf[1].fd >= 0 && pf[1].revents && !capture_read(op[0], &co)) {
			close(op[0]);
			op[0] = -1;
		}
	}
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (!rc) {
		*status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
		if (errtxt && errlen) {
			snprintf(errtxt, errlen, "%s", ce.buf ? ce.buf : "");
			/* one line for messages: the tool's own newlines would break reports */
			for (char *p = errtxt; *p; p++)
				if (*p == '\n')
					*p = ' ';
			for (size_t l = strlen(errtxt); l && errtxt[l - 1] == ' '; l--)
				errtxt[l - 1] = '\0';
		}
		if (out) {
			*out = co.buf;
			co.buf = NULL;
		}
	}
out:
	for (int i = 0; i < 2; i++) {
		if (op[i] >= 0)
			close(op[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	free(co.buf);
	free(ce.buf);
	return rc;
}

/*
 * Does the legacy (x_tables) mangle table exist in that namespace? Looking at it with
 * iptables-legacy would instantiate it there, so read /proc/self/net/ip*_tables_names from a
 * child inside the namespace instead.
 */
static bool legacy_table_present(int nsfd, int family)
{
	const char *file = family == AF_INET6 ? "/proc/self/net/ip6_tables_names" :
						"/proc/self/net/ip_tables_names";
	char buf[512];
	size_t got = 0;
	int p[2], keep[2], ws = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return true; /* unsure: let iptables look */
	keep[0] = nsfd;
	keep[1] = p[1];
	pid = fl_spawn_child(keep, 2, NULL);
	if (pid == 0) {
		int fd;

		if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0)
			_exit(2);
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			_exit(errno == ENOENT ? 0 : 2); /* no x_tables for this family: no table */
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(p[1], buf, (size_t)n) != n)
				_exit(2);
		_exit(0);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return true;
	}
	while (got < sizeof(buf) - 1 && (n = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(p[0]);
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		return true;
	for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (!strcmp(line, "mangle"))
			return true;
	return false;
}

/* ---- the rules ------------------------------------------------------------------------------- */

struct nfq_rule {
	int family;                /* AF_INET or AF_INET6 */
	char chain[16];            /* OUTPUT (egress) or PREROUTING (ingress) */
	char spec[NFQ_SPEC];       /* match arguments, comma-separated: the journal's form */
};

struct nfq_ruleset {
	int kind;                  /* enum ipt_kind */
	int queue;
	char comment[128];         /* faultline-RUNID-FAULT */
	int n;
	struct nfq_rule r[NFQ_MAX_RULES];
};

static int spec_add(char *spec, const char *a, const char *b)
{
	size_t l = strlen(spec);
	int n = snprintf(spec + l, NFQ_SPEC - l, "%s%s%s%s", l ? "," : "", a, b ? "," : "", b ? b : "");

	return n < 0 || (size_t)n >= NFQ_SPEC - l ? -E2BIG : 0;
}

static void cidr_str(const struct fl_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(c->family, c->addr, a, sizeof(a));
	snprintf(buf, len, "%s/%d", a, c->prefix);
}

/* Whether a word can go into the comma/semicolon rule encoding of a journal record. */
static bool encodable(const char *s)
{
	return !strpbrk(s, ",; \t\n#\"'");
}

/* The cgroup v2 path of `abs` relative to the cgroup2 mount it lies under (xt_cgroup's --path). */
static int cg2_relative(const char *abs, char *rel, size_t len, struct fl_err *err)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, best[4096] = "";
	size_t cap = 0;
	int rc = -ENOENT;

	if (!f)
		return fl_err_set(err, -errno, "/proc/self/mountinfo: %s", strerror(errno));
	while (getline(&line, &cap, f) > 0) {
		char mnt[4096], *sep = strstr(line, " - ");
		size_t ml;

		/* field 5 is the mount point; the filesystem type follows " - " */
		if (!sep || strncmp(sep, " - cgroup2 ", 11) || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		ml = strlen(mnt);
		if (!strncmp(abs, mnt, ml) && (abs[ml] == '/' || abs[ml] == '\0') && ml >= strlen(best)) {
			snprintf(best, sizeof(best), "%s", mnt);
			snprintf(rel, len, "%s", abs[ml] ? abs + ml : "/");
			rc = 0;
		}
	}
	free(line);
	fclose(f);
	if (rc)
		return fl_err_set(err, -ENOENT, "target cgroup %s is not under a cgroup2 mount", abs);
	return 0;
}

/*
 * The rules for r: one per address family (both when the match names none) and, when ports are
 * given without a protocol, one each for tcp and udp. cgpath: xt_cgroup path or NULL.
 */
static int build_rules(const struct fl_net_req *r, bool v6_ok, const char *cgpath, struct nfq_ruleset *rs,
		       struct fl_err *err)
{
	const struct fl_net_match *m = &r->match;
	int fams[2], nf = 0, np = 0;
	enum fl_net_proto protos[2];

	rs->n = 0;
	if (m->family == AF_INET || m->family == AF_UNSPEC)
		fams[nf++] = AF_INET;
	/* a kernel without IPv6 has no v6 traffic to match: an address-less fault covers v4 alone */
	if (m->family == AF_INET6 || (m->family == AF_UNSPEC && v6_ok))
		fams[nf++] = AF_INET6;
	if (m->proto == FL_NET_ANY && (m->dst_port || m->src_port)) {
		protos[np++] = FL_NET_TCP;
		protos[np++] = FL_NET_UDP;
	} else {
		protos[np++] = m->proto;
	}
	for (int i = 0; i < nf; i++)
		for (int k = 0; k < np; k++) {
			struct nfq_rule *ru = &rs->r[rs->n++];
			char a[80], port[8];
			int rc = 0;

			memset(ru, 0, sizeof(*ru));
			ru->family = fams[i];
			snprintf(ru->chain, sizeof(ru->chain), "%s", m->dir == FL_NET_EGRESS ? "OUTPUT" : "PREROUTING");
			if (r->iface[0])
				rc |= spec_add(ru->spec, m->dir == FL_NET_EGRESS ? "-o" : "-i", r->iface);
			if (protos[k] == FL_NET_TCP)
				rc |= spec_add(ru->spec, "-p", "tcp");
			else if (protos[k] == FL_NET_UDP)
				rc |= spec_add(ru->spec, "-p", "udp");
			else if (protos[k] == FL_NET_ICMP)
				rc |= spec_add(ru->spec, "-p", fams[i] == AF_INET6 ? "icmpv6" : "icmp");
			if (m->has_dst) {
				cidr_str(&m->dst, a, sizeof(a));
				rc |= spec_add(ru->spec, "-d", a);
			}
			if (m->has_src) {
				cidr_str(&m->src, a, sizeof(a));
				rc |= spec_add(ru->spec, "-s", a);
			}
			if (m->dst_port) {
				snprintf(port, sizeof(port), "%u", m->dst_port);
				rc |= spec_add(ru->spec, "--dport", port);
			}
			if (m->src_port) {
				snprintf(port, sizeof(port), "%u", m->src_port);
				rc |= spec_add(ru->spec, "--sport", port);
			}
			if (cgpath) {
				rc |= spec_add(ru->spec, "-m", "cgroup");
				rc |= spec_add(ru->spec, "--path", cgpath);
			}
			if (rc)
				return fl_err_set(err, -E2BIG, "iptables rule for %s is too long", r->f->name);
		}
	return 0;
}

/* "4:OUTPUT:-o,veth0,-p,tcp;6:OUTPUT:..." (the NFQUEUE tail comes back from comment= and queue=). */
static int rules_encode(const struct nfq_ruleset *rs, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < rs->n; i++) {
		int n = snprintf(buf + off, len - off, "%s%c:%s:%s", i ? ";" : "",
				 rs->r[i].family == AF_INET6 ? '6' : '4', rs->r[i].chain, rs->r[i].spec);

		if (n < 0 || (size_t)n >= len - off)
			return -E2BIG;
		off += (size_t)n;
	}
	return 0;
}

static int rules_decode(const char *s, struct nfq_ruleset *rs)
{
	char copy[FL_REC_DATA], *save = NULL;

	rs->n = 0;
	snprintf(copy, sizeof(copy), "%s", s);
	for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		struct nfq_rule *ru;
		char *c1 = strchr(tok, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (rs->n == NFQ_MAX_RULES || !c2 || (tok[0] != '4' && tok[0] != '6') || c1 != tok + 1 ||
		    (size_t)(c2 - c1 - 1) >= sizeof(ru->chain) || strlen(c2 + 1) >= sizeof(ru->spec))
			return -EINVAL;
		ru = &rs->r[rs->n++];
		ru->family = tok[0] == '6' ? AF_INET6 : AF_INET;
		memcpy(ru->chain, c1 + 1, (size_t)(c2 - c1 - 1));
		ru->chain[c2 - c1 - 1] = '\0';
		snprintf(ru->spec, sizeof(ru->spec), "%s", c2 + 1);
	}
	return rs->n ? 0 : -EINVAL;
}

/* argv for `op` (-I inserts first, ahead of the namespace's own mangle rules; -C; -D). */
static int rule_argv(const struct nfq_ruleset *rs, const struct nfq_rule *ru, const char *op, char *store,
		     size_t storelen, char qbuf[12], const char *argv[NFQ_MAX_ARGS])
{
	int n = 0;

	snprintf(store, storelen, "%s", ru->spec);
	snprintf(qbuf, 12, "%d", rs->queue);
	argv[n++] = ipt_names[rs->kind][fam_ix(ru->family)];
	argv[n++] = "-w";
	argv[n++] = "5";
	argv[n++] = "-t";
	argv[n++] = "mangle";
	argv[n++] = op;
	argv[n++] = ru->chain;
	if (!strcmp(op, "-I"))
		argv[n++] = "1";
	for (char *p = store; *p && n < NFQ_MAX_ARGS - 12;) {
		argv[n++] = p;
		p += strcspn(p, ",");
		if (*p)
			*p++ = '\0';
	}
	argv[n++] = "-m";
	argv[n++] = "comment";
	argv[n++] = "--comment";
	argv[n++] = rs->comment;
	argv[n++] = "-j";
	argv[n++] = "NFQUEUE";
	argv[n++] = "--queue-num";
	argv[n++] = qbuf;
	argv[n++] = "--queue-bypass";
	argv[n] = NULL;
	return n;
}

static void argv_join(const char *const argv[], char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; argv[i] && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? " " : "", argv[i]);
}

static int tool_failed(struct fl_err *err, const char *const argv[], int status, const char *errtxt)
{
	char cmd[300];
	int code = strstr(errtxt, "ermission denied") ? -EPERM : -EIO;

	argv_join(argv, cmd, sizeof(cmd));
	fl_err_set(err, code, "`%s` exited with status %d: %s", cmd, status, errtxt[0] ? errtxt : "(no message)");
	if (code == -EPERM)
		fl_err_hint(err, "changing iptables rules needs CAP_NET_ADMIN (run as root)");
	return code;
}

static int nsfd_of(const struct fl_netns *ns)
{
	return ns->own ? -1 : ns->fd;
}

static int rule_insert(const struct nfq_ruleset *rs, const struct nfq_rule *ru, int nsfd, struct fl_err *err)
{
	const char *argv[NFQ_MAX_ARGS];
	char store[NFQ_SPEC], q[12], etxt[400];
	int status, rc;

	rule_argv(rs, ru, "-I", store, sizeof(store), q, argv);
	rc = run_tool(nsfd, argv, &status, etxt, sizeof(etxt), NULL, err);
	if (rc)
		return rc;
	return status ? tool_failed(err, argv, status, etxt) : 0;
}

/* Delete every copy of the rule; one already gone is fine (status 1 of -C: "Bad rule"). */
static int rule_delete(const struct nfq_ruleset *rs, const struct nfq_rule *ru, int nsfd, struct fl_err *err)
{
	const char *argv[NFQ_MAX_ARGS];
	char store[NFQ_SPEC], q[12], etxt[400];
	int status, rc;

	if (rs->kind == IPT_LEGACY && !legacy_table_present(nsfd, ru->family))
		return 0; /* no table, no rule; asking iptables-legacy would create the table */
	for (int round = 0; round < 16; round++) {
		rule_argv(rs, ru, "-C", store, sizeof(store), q, argv);
		rc = run_tool(nsfd, argv, &status, etxt, sizeof(etxt), NULL, err);
		if (rc)
			return rc;
		if (status == 1)
			return 0;
		if (status)
			return tool_failed(err, argv, status, etxt);
		rule_argv(rs, ru, "-D", store, sizeof(store), q, argv);
		rc = run_tool(nsfd, argv, &status, etxt, sizeof(etxt), NULL, err);
		if (rc)
			return rc;
		if (status && status != 1)
			return tool_failed(err, argv, status, etxt);
	}
	return 0;
}

static int rules_delete(const struct nfq_ruleset *rs, int nsfd, struct fl_err *err)
{
	int first = 0;

	for (int i = 0; i < rs->n; i++) {
		struct fl_err e = {0};
		int rc = rule_delete(rs, &rs->r[i], nsfd, &e);

		if (rc && !first) {
			first = rc;
			if (err)
				*err = e;
		}
	}
	return first;
}

/* ---- the queue socket: config through libnl, verdicts hand-built --------------------------- */

static int nfq_err_cb(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	(void)nla;
	*(int *)arg = e->error;
	return NL_STOP;
}

/* One NFQNL_MSG_CONFIG with the given parts, acknowledged: 0 or the kernel's negative errno. */
static int nfq_config(struct nl_sock *sk, uint16_t queue, uint8_t cmd, bool params, uint32_t maxlen,
		      uint32_t flags)
{
	struct nfgenmsg g = {.nfgen_family = AF_UNSPEC, .version = NFNETLINK_V0, .res_id = htons(queue)};
	struct nl_msg *msg = nlmsg_alloc_simple((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG,
						NLM_F_REQUEST | NLM_F_ACK);
	struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);
	int kerr = 0, rc = -ENOMEM;

	if (!msg || !cb || nlmsg_append(msg, &g, sizeof(g), NLMSG_ALIGNTO) < 0)
		goto out;
	if (cmd) {
		struct nfqnl_msg_config_cmd c = {.command = cmd};

		if (nla_put(msg, NFQA_CFG_CMD, sizeof(c), &c) < 0)
			goto out;
	}
	if (params) {
		/* META: the kernel sends headers and the packet id only, never the payload */
		struct nfqnl_msg_config_params p = {.copy_range = 0, .copy_mode = NFQNL_COPY_META};

		if (nla_put(msg, NFQA_CFG_PARAMS, sizeof(p), &p) < 0 ||
		    nla_put_u32(msg, NFQA_CFG_QUEUE_MAXLEN, htonl(maxlen)) < 0)
			goto out;
	}
	if (flags && (nla_put_u32(msg, NFQA_CFG_FLAGS, htonl(flags)) < 0 ||
		      nla_put_u32(msg, NFQA_CFG_MASK, htonl(flags)) < 0))
		goto out;
	nl_cb_err(cb, NL_CB_CUSTOM, nfq_err_cb, &kerr);
	rc = nl_send_auto(sk, msg);
	if (rc >= 0)
		rc = nl_recvmsgs(sk, cb);
	rc = kerr ? kerr : rc < 0 ? -EIO : 0;
out:
	nl_cb_put(cb);
	nlmsg_free(msg);
	return rc;
}

struct nfq_sock {
	struct nl_sock *sk;
	int fd;
	uint32_t flags;            /* NFQA_CFG_F_* in force */
};

static void nfq_close(struct nfq_sock *q)
{
	if (q && q->sk) {
		nl_socket_free(q->sk); /* closing unbinds the queue */
		q->sk = NULL;
		q->fd = -1;
	}
}

/* Bind queue `queue` in the current namespace. -EBUSY: another socket owns it. */
static int nfq_open(uint16_t queue, uint32_t maxlen, struct nfq_sock *q, struct fl_err *err)
{
	int one = 1, buf = NFQ_RCVBUF, rc;

	q->fd = -1;
	q->flags = 0;
	q->sk = nl_socket_alloc();
	if (!q->sk)
		return fl_err_set(err, -ENOMEM, "out of memory");
	rc = nl_connect(q->sk, NETLINK_NETFILTER);
	if (rc < 0) {
		rc = fl_err_set(err, -EIO, "netlink socket (NETLINK_NETFILTER): %s", nl_geterror(rc));
		goto fail;
	}
	q->fd = nl_socket_get_fd(q->sk);
	/* a burst must queue in the socket, not fail open in the kernel: a big buffer, no ENOBUFS */
	if (setsockopt(q->fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
		setsockopt(q->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	setsockopt(q->fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
	rc = nfq_config(q->sk, queue, NFQNL_CFG_CMD_BIND, false, 0, 0);
	/* owned by another socket: EPERM from the kernel (EBUSY is a second bind of our own) */
	if (rc == -EBUSY || (rc == -EPERM && fl_have_cap(CAP_NET_ADMIN) > 0)) {
		rc = fl_err_set(err, -EBUSY, "NFQUEUE %u is bound by another process", queue);
		goto fail;
	}
	if (rc) {
		fl_err_set(err, rc, "binding NFQUEUE %u: %s", queue, strerror(-rc));
		if (rc == -EPERM)
			fl_err_hint(err, "binding a netfilter queue needs CAP_NET_ADMIN (run as root)");
		goto fail;
	}
	rc = nfq_config(q->sk, queue, 0, true, maxlen, 0);
	if (rc) {
		fl_err_set(err, rc, "NFQUEUE %u copy mode META: %s", queue, strerror(-rc));
		goto fail;
	}
	/* fail open: a full queue lets packets through rather than dropping them; GSO: no resegmenting */
	q->flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO;
	if (nfq_config(q->sk, queue, 0, false, 0, q->flags)) {
		q->flags = NFQA_CFG_F_FAIL_OPEN;
		if (nfq_config(q->sk, queue, 0, false, 0, q->flags))
			q->flags = 0;
	}
	nl_socket_set_nonblocking(q->sk);
	return 0;
fail:
	nfq_close(q);
	return rc;
}

/* A verdict message, written by hand on the hot path: libnl would allocate one nl_msg per packet. */
struct nfq_vmsg {
	struct nlmsghdr nh;
	struct nfgenmsg g;
	struct nlattr a;
	struct nfqnl_msg_verdict_hdr v;
};

static size_t vmsg_put(unsigned char *buf, uint16_t queue, int type, uint32_t verdict, uint32_t id)
{
	struct nfq_vmsg m = {
		.nh = {.nlmsg_len = sizeof(m), .nlmsg_type = (uint16_t)((NFNL_SUBSYS_QUEUE << 8) | type),
		       .nlmsg_flags = NLM_F_REQUEST},
		.g = {.nfgen_family = AF_UNSPEC, .version = NFNETLINK_V0, .res_id = htons(queue)},
		.a = {.nla_len = sizeof(m.a) + sizeof(m.v), .nla_type = NFQA_VERDICT_HDR},
		.v = {.verdict = htonl(verdict), .id = htonl(id)},
	};

	memcpy(buf, &m, sizeof(m));
	return sizeof(m);
}

/* The packet id of an NFQNL_MSG_PACKET, 0 when it is something else. */
static uint32_t packet_id(struct nlmsghdr *nh)
{
	struct nlattr *a;

	if (nh->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET))
		return 0;
	a = nlmsg_find_attr(nh, sizeof(struct nfgenmsg), NFQA_PACKET_HDR);
	if (!a || nla_len(a) < (int)sizeof(struct nfqnl_msg_packet_hdr))
		return 0;
	return ntohl(((struct nfqnl_msg_packet_hdr *)nla_data(a))->packet_id);
}

/* ---- the delayer --------------------------------------------------------------------------- */

/* Written by the delayer alone, read by the controller: a MAP_SHARED page made before fork. */
struct nfq_counters {
	uint64_t seen, accepted, dropped, delayed, at_cap;
	uint64_t held_now, held_max, hold_sum_ns, hold_max_ns;
	uint64_t late, late_max_ns; /* releases over LATE_NS past their due time; the worst */
	uint64_t errors;           /* failed sends/receives and kernel error replies */
	int64_t last_errno;
};

#define CTR_SET(c, f, v) __atomic_store_n(&(c)->f, (v), __ATOMIC_RELAXED)
#define CTR_ADD(c, f, v) CTR_SET(c, f, (c)->f + (v))
#define CTR_GET(c, f) __atomic_load_n(&(c)->f, __ATOMIC_RELAXED)

struct held {
	int64_t due, arrived;
	uint32_t id;
};

struct delayer {
	struct nfq_counters *ctr;
	struct fl_net_effect fx;
	uint16_t queue;
	int fd;
	struct held *heap;         /* binary min-heap on due */
	uint32_t n, cap;
	bool in_order;             /* no jitter: releases come in id order, one batch verdict covers them */
	bool stopping;
	bool seen_any;
	uint32_t max_id;
	bool have_batch;
	uint32_t batch_id;
	unsigned char *vbuf;
	size_t vlen;
	uint64_t rng;
	double z;                  /* latent normal of the delay, AR(1) with delay_corr */
	bool lost_last;
	bool have_spare;
	double spare;
	struct mmsghdr mm[NFQ_RX_BATCH];
	struct iovec iov[NFQ_RX_BATCH];
	unsigned char (*rx)[NFQ_RX_MSG];
};

static bool id_after(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64: fast, and plenty for picking delays */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double rng_u01(struct delayer *d)
{
	return (double)(rng_next(&d->rng) >> 11) * 0x1.0p-53;
}

static double rng_normal(struct delayer *d)
{
	double u1, u2, r;

	if (d->have_spare) {
		d->have_spare = false;
		return d->spare;
	}
	do
		u1 = rng_u01(d);
	while (u1 <= 0.0);
	u2 = rng_u01(d);
	r = sqrt(-2.0 * log(u1));
	d->spare = r * sin(2.0 * M_PI * u2);
	d->have_spare = true;
	return r * cos(2.0 * M_PI * u2);
}

static double clip(double x, double lo, double hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

/* Pareto(shape 3) deviate at quantile u, centred and scaled to unit sd like netem's table. */
static double pareto_dev(double u)
{
	double w = 1.0 - u;

	if (w < 1e-12)
		w = 1e-12;
	return clip((pow(w, -1.0 / 3.0) - 1.5) / NFQ_PARETO_SD, -NFQ_Z_CLIP, NFQ_Z_CLIP);
}

/*
 * delay + jitter * X, X of the configured shape. Correlation acts on a latent normal (AR(1),
 * z' = rho z + sqrt(1-rho^2) n) mapped through its CDF, so each shape keeps its exact marginal
 * whatever delay_corr is (netem's weighted sum of uniforms narrows the spread instead).
 */
static int64_t sample_delay(struct delayer *d)
{
	double rho = clip(d->fx.delay_corr, 0.0, 1.0), x, u, v;

	if (d->fx.jitter_ns <= 0)
		return d->fx.delay_ns;
	d->z = rho * d->z + sqrt(1.0 - rho * rho) * rng_normal(d);
	u = 0.5 * erfc(-d->z * M_SQRT1_2);
	switch (d->fx.dist) {
	case FL_DIST_NORMAL:
		x = clip(d->z, -NFQ_Z_CLIP, NFQ_Z_CLIP);
		break;
	case FL_DIST_PARETO:
		x = pareto_dev(u);
		break;
	case FL_DIST_PARETONORMAL:
		/* netem's paretonormal: a quarter normal, three quarters pareto, quantile by quantile */
		x = 0.25 * clip(d->z, -NFQ_Z_CLIP, NFQ_Z_CLIP) + 0.75 * pareto_dev(u);
		break;
	default:
		x = 2.0 * u - 1.0;
		break;
	}
	v = (double)d->fx.delay_ns + (double)d->fx.jitter_ns * x;
	return v < 0 ? 0 : (int64_t)v;
}

/*
 * Loss as a two-state Markov chain: P(loss | last lost) = p + rho(1-p), P(loss | last kept) =
 * p(1-rho). Its stationary loss rate is exactly p and lag-1 correlation rho.
 */
static bool sample_loss(struct delayer *d)
{
	double p = d->fx.loss, rho = clip(d->fx.loss_corr, 0.0, 1.0), q;

	if (p <= 0)
		return false;
	q = d->lost_last ? p + rho * (1.0 - p) : p * (1.0 - rho);
	d->lost_last = rng_u01(d) < q;
	return d->lost_last;
}

static void heap_push(struct delayer *d, struct held h)
{
	uint32_t i = d->n++;

	while (i) {
		uint32_t p = (i - 1) / 2;

		if (d->heap[p].due <= h.due)
			break;
		d->heap[i] = d->heap[p];
		i = p;
	}
	d->heap[i] = h;
}

static struct held heap_pop(struct delayer *d)
{
	struct held top = d->heap[0], last = d->heap[--d->n];
	uint32_t i = 0;

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= d->n)
			break;
		if (c + 1 < d->n && d->heap[c + 1].due < d->heap[c].due)
			c++;
		if (last.due <= d->heap[c].due)
			break;
		d->heap[i] = d->heap[c];
		i = c;
	}
	if (d->n)
		d->heap[i] = last;
	return top;
}

static void note_error(struct delayer *d, int e)
{
	CTR_ADD(d->ctr, errors, 1);
	CTR_SET(d->ctr, last_errno, e);
}

static void v_flush(struct delayer *d)
{
	size_t off = 0;

	if (d->have_batch) {
		/* every packet up to batch_id that is still queued is one we release now */
		d->vlen += vmsg_put(d->vbuf + d->vlen, d->queue, NFQNL_MSG_VERDICT_BATCH, NF_ACCEPT, d->batch_id);
		d->have_batch = false;
	}
	while (off < d->vlen) {
		ssize_t n = send(d->fd, d->vbuf + off, d->vlen - off, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			note_error(d, n < 0 ? errno : EIO);
			break;
		}
		off += (size_t)n;
	}
	d->vlen = 0;
}

static void v_put(struct delayer *d, uint32_t verdict, uint32_t id)
{
	/* keep room for the batch message that a flush appends */
	if (d->vlen + 2 * sizeof(struct nfq_vmsg) > NFQ_VBUF)
		v_flush(d);
	d->vlen += vmsg_put(d->vbuf + d->vlen, d->queue, NFQNL_MSG_VERDICT, verdict, id);
}

/*
 * Accept id. `batchable`: every packet read so far with a smaller id has its verdict already
 * or gets it in this flush, so one NFQNL_MSG_VERDICT_BATCH up to the highest such id covers it.
 */
static void v_accept(struct delayer *d, uint32_t id, bool batchable)
{
	CTR_ADD(d->ctr, accepted, 1);
	if (batchable) {
		if (!d->have_batch || id_after(id, d->batch_id))
			d->batch_id = id;
		d->have_batch = true;
		return;
	}
	v_put(d, NF_ACCEPT, id);
}

static void held_count(struct delayer *d)
{
	CTR_SET(d->ctr, held_now, d->n);
	if (d->n > d->ctr->held_max)
		CTR_SET(d->ctr, held_max, d->n);
}

/* A release this far past its due time counts as late: the delayer fell behind (descheduled, busy). */
#define LATE_NS 1000000

static void release(struct delayer *d, struct held h, int64_t now, bool batchable)
{
	uint64_t hold = (uint64_t)(now - h.arrived);
	int64_t late = now - h.due;

	CTR_ADD(d->ctr, delayed, 1);
	CTR_ADD(d->ctr, hold_sum_ns, hold);
	if (hold > d->ctr->hold_max_ns)
		CTR_SET(d->ctr, hold_max_ns, hold);
	if (late > LATE_NS)
		CTR_ADD(d->ctr, late, 1);
	if (late > 0 && (uint64_t)late > d->ctr->late_max_ns)
		CTR_SET(d->ctr, late_max_ns, (uint64_t)late);
	v_accept(d, h.id, batchable);
}

static void on_packet(struct delayer *d, uint32_t id, int64_t now)
{
	int64_t dl;

	CTR_ADD(d->ctr, seen, 1);
	if (!d->seen_any || id_after(id, d->max_id))
		d->max_id = id;
	d->seen_any = true;
	if (d->stopping) {
		v_accept(d, id, true); /* a revert loses nothing: no more drops, no more holds */
		return;
	}
	if (sample_loss(d)) {
		CTR_ADD(d->ctr, dropped, 1);
		v_put(d, NF_DROP, id);
		return;
	}
	dl = sample_delay(d);
	if (dl <= 0) {
		v_accept(d, id, d->n == 0);
		return;
	}
	if (d->n >= d->cap) {
		/* at the cap: fail open, like the kernel's own full queue, and say so */
		CTR_ADD(d->ctr, at_cap, 1);
		v_accept(d, id, false);
		return;
	}
	heap_push(d, (struct held){.due = now + dl, .arrived = now, .id = id});
	held_count(d);
}

static void parse_msgs(struct delayer *d, unsigned char *buf, int len, int64_t now)
{
	for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; nlmsg_ok(nh, len); nh = nlmsg_next(nh, &len)) {
		uint32_t id;

		if (nh->nlmsg_type == NLMSG_ERROR) {
			struct nlmsgerr *e = nlmsg_data(nh);

			if (e->error)
				note_error(d, -e->error);
			continue;
		}
		id = packet_id(nh);
		if (id)
			on_packet(d, id, now);
	}
}

/* Read what the socket holds, many messages per call, up to a budget so releases stay on time. */
static void rx_drain(struct delayer *d)
{
	for (int budget = NFQ_RX_BUDGET; budget > 0;) {
		int got = recvmmsg(d->fd, d->mm, NFQ_RX_BATCH, MSG_DONTWAIT, NULL);
		int64_t now = fl_mono_ns();

		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				note_error(d, errno);
			return;
		}
		for (int i = 0; i < got; i++)
			parse_msgs(d, d->rx[i], (int)d->mm[i].msg_len, now);
		budget -= got;
		if (got < NFQ_RX_BATCH)
			return;
	}
}

static void release_due(struct delayer *d, int64_t now)
{
	while (d->n && d->heap[0].due <= now)
		release(d, heap_pop(d), now, d->in_order);
	held_count(d);
}

static void arm(int tfd, const struct delayer *d, int64_t *armed)
{
	struct itimerspec its = {0};
	int64_t due = d->n ? d->heap[0].due : 0;

	if (due == *armed)
		return;
	its.it_value.tv_sec = due / 1000000000;
	its.it_value.tv_nsec = due % 1000000000;
	/* an all-zero value disarms; a due time already past fires at once */
	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
	*armed = due;
}

/* Release every held packet and whatever is still unread: the kernel drops what an unbound queue holds. */
static void stop_flush(struct delayer *d)
{
	int64_t now = fl_mono_ns();

	d->stopping = true;
	while (d->n)
		release(d, heap_pop(d), now, false);
	held_count(d);
	v_flush(d);
	for (int round = 0; round < 64; round++) {
		uint64_t before = d->ctr->seen;

		rx_drain(d);
		if (d->seen_any) {
			/* one batch for anything still queued up to the highest id ever seen */
			d->have_batch = true;
			d->batch_id = d->max_id;
		}
		v_flush(d);
		if (d->ctr->seen == before)
			break;
	}
}

static int delayer_loop(struct delayer *d, int sfd, int tfd)
{
	struct epoll_event ev = {.events = EPOLLIN}, evs[4];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int64_t armed = 0;
	bool stop = false;

	if (ep < 0)
		return -errno;
	ev.data.fd = d->fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, d->fd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	ev.data.fd = tfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	while (!stop) {
		int n = epoll_wait(ep, evs, 4, -1);

		if (n < 0 && errno != EINTR) {
			note_error(d, errno);
			break;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == sfd) {
				struct signalfd_siginfo si;

				while (read(sfd, &si, sizeof(si)) == sizeof(si))
					stop = true;
			} else if (evs[i].data.fd == tfd) {
				uint64_t ticks;

				if (read(tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					note_error(d, errno);
			}
		}
		rx_drain(d);
		release_due(d, fl_mono_ns());
		v_flush(d);
		arm(tfd, d, &armed);
	}
	stop_flush(d);
	close(ep);
	return 0;
}

struct delayer_cfg {
	struct nfq_counters *ctr;
	struct fl_net_effect fx;
	uint16_t queue;
	uint32_t cap;
	int nsfd;                  /* -1: stay in ours */
	int report;                /* write end: the bind result as a struct fl_err */
};

static void __attribute__((noreturn)) delayer_main(const struct delayer_cfg *c)
{
	struct delayer *d = calloc(1, sizeof(*d));
	struct nfq_sock q = {.fd = -1};
	struct fl_err e = {0};
	sigset_t mask;
	int sfd = -1, tfd = -1, rc;

	prctl(PR_SET_NAME, "fl-nfq-delayer");
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	/* exactly these are blocked (the controller's mask is inherited) and read from a signalfd */
	sigprocmask(SIG_SETMASK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!d || sfd < 0 || tfd < 0) {
		rc = fl_err_set(&e, -errno ? -errno : -ENOMEM, "delayer setup: %s", strerror(errno ? errno : ENOMEM));
		goto report;
	}
	d->ctr = c->ctr;
	d->fx = c->fx;
	d->queue = c->queue;
	d->cap = c->cap;
	d->in_order = c->fx.jitter_ns <= 0;
	d->heap = calloc(c->cap, sizeof(*d->heap));
	d->vbuf = malloc(NFQ_VBUF);
	d->rx = malloc(sizeof(*d->rx) * NFQ_RX_BATCH);
	if (!d->heap || !d->vbuf || !d->rx) {
		rc = fl_err_set(&e, -ENOMEM, "delayer: out of memory for %u held packets", c->cap);
		goto report;
	}
	if (getrandom(&d->rng, sizeof(d->rng), 0) != sizeof(d->rng))
		d->rng = (uint64_t)fl_mono_ns() ^ (uint64_t)getpid() << 32;
	d->z = rng_normal(d);
	for (int i = 0; i < NFQ_RX_BATCH; i++) {
		d->iov[i] = (struct iovec){.iov_base = d->rx[i], .iov_len = NFQ_RX_MSG};
		d->mm[i].msg_hdr = (struct msghdr){.msg_iov = &d->iov[i], .msg_iovlen = 1};
	}
	if (c->nsfd >= 0 && setns(c->nsfd, CLONE_NEWNET) < 0) {
		rc = fl_err_set(&e, -errno, "delayer: setns: %s", strerror(errno));
		goto report;
	}
	if (c->nsfd >= 0)
		close(c->nsfd);
	rc = nfq_open(c->queue, c->cap + NFQ_KERNEL_SLACK, &q, &e);
	d->fd = q.fd;
report:
	if (write(c->report, &e, sizeof(e)) != (ssize_t)sizeof(e))
		rc = rc ? rc : -EPIPE;
	close(c->report);
	if (!rc)
		rc = delayer_loop(d, sfd, tfd);
	nfq_close(&q);
	_exit(rc ? 1 : 0);
}

/* ---- probe: a rule and a queue in a scratch namespace ------------------------------------------ */

struct nfq_probe_res {
	bool done;
	int rc;
	struct fl_err err;
	int kind;
	bool v6;
	bool cgroup;
	char v6_why[200];
	char cgroup_why[200];
};

static struct nfq_probe_res *g_probe;

static int lo_up(struct fl_err *err)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return fl_err_set(err, -errno, "socket: %s", strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr) < 0))
		rc = fl_err_set(err, -errno, "bringing lo up in the scratch namespace: %s", strerror(errno));
	close(fd);
	return rc;
}

static uint16_t pick_queue(void)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)fl_mono_ns();
	return (uint16_t)(NFQ_QUEUE_LO + r % (NFQ_QUEUE_HI - NFQ_QUEUE_LO + 1));
}

/* Inside the scratch namespace: bind a queue, add a rule, send one datagram, see it queued. */
static int probe_one(int kind, int family, const char *cgpath, struct fl_err *err)
{
	struct nfq_ruleset rs = {.kind = kind, .n = 1};
	struct nfq_rule *ru = &rs.r[0];
	struct nfq_sock q = {.fd = -1};
	struct sockaddr_storage ss = {0};
	unsigned char buf[NFQ_RX_MSG];
	char path[256];
	int rc, fd = -1;
	uint32_t id = 0;

	if (tool_path(ipt_names[kind][fam_ix(family)], path, sizeof(path)))
		return missing_tool(err, ipt_names[kind][fam_ix(family)]);
	rs.queue = pick_queue();
	snprintf(rs.comment, sizeof(rs.comment), "faultline-probe");
	ru->family = family;
	snprintf(ru->chain, sizeof(ru->chain), "OUTPUT");
	snprintf(ru->spec, sizeof(ru->spec), "-o,lo,-p,udp,--dport,9%s%s", cgpath ? ",-m,cgroup,--path," : "",
		 cgpath ? cgpath : "");
	rc = nfq_open((uint16_t)rs.queue, 16, &q, err);
	if (rc)
		return rc;
	rc = rule_insert(&rs, ru, -1, err);
	if (rc)
		goto out;
	fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(9);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(9);
		s6->sin6_addr = in6addr_loopback;
	}
	if (fd < 0 || sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, sizeof(ss)) < 0) {
		rc = fl_err_set(err, -errno, "sending a probe datagram over %s loopback: %s",
				family == AF_INET ? "IPv4" : "IPv6", strerror(errno));
		goto out;
	}
	for (int64_t deadline = fl_mono_ns() + 1000000000LL; !id && fl_mono_ns() < deadline;) {
		struct pollfd pf = {.fd = q.fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pf, 1, 100) <= 0)
			continue;
		n = recv(q.fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0 && nlmsg_ok((struct nlmsghdr *)buf, (int)n))
			id = packet_id((struct nlmsghdr *)buf);
	}
	if (!id) {
		rc = fl_err_set(err, -EOPNOTSUPP, "an %s NFQUEUE rule (%s) was accepted but no packet reached queue %d",
				family == AF_INET ? "IPv4" : "IPv6", ipt_names[kind][fam_ix(family)], rs.queue);
		goto out;
	}
	{
		unsigned char v[sizeof(struct nfq_vmsg)];

		if (send(q.fd, v, vmsg_put(v, (uint16_t)rs.queue, NFQNL_MSG_VERDICT, NF_DROP, id), 0) < 0)
			rc = fl_err_set(err, -errno, "NFQUEUE verdict: %s", strerror(errno));
	}
out:
	if (fd >= 0)
		close(fd);
	nfq_close(&q);
	return rc;
}

static int probe_scratch(void *arg, struct fl_err *err)
{
	struct nfq_probe_res *res = arg;
	int order[IPT_NKINDS], rc = -ENOENT;
	struct fl_err e6 = {0}, ecg = {0};
	char cg[4096] = "";
	FILE *f;

	rc = lo_up(err);
	if (rc)
		return rc;
	kind_order(order);
	for (int i = 0; i < IPT_NKINDS; i++) {
		struct fl_err e = {0};

		rc = probe_one(order[i], AF_INET, NULL, &e);
		if (!rc) {
			res->kind = order[i];
			break;
		}
		/* report the first flavour's reason unless it was merely not installed */
		if (i == 0 || err->code == -ENOENT)
			*err = e;
	}
	if (rc == -ENOENT && err->code == -ENOENT) {
		fl_err_set(err, -ENOENT, "neither %s nor %s is installed", ipt_names[order[0]][0], ipt_names[order[1]][0]);
		fl_err_hint(err, "install the Debian package iptables (it ships both)");
	}
	if (rc)
		return rc;
	res->v6 = probe_one(res->kind, AF_INET6, NULL, &e6) == 0;
	snprintf(res->v6_why, sizeof(res->v6_why), "%.199s", e6.msg);
	/* our own cgroup v2 path proves xt_cgroup matches sockets here */
	if ((f = fopen("/proc/self/cgroup", "re"))) {
		char line[4200];

		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "0::", 3)) {
				line[strcspn(line, "\n")] = '\0';
				snprintf(cg, sizeof(cg), "%.4000s", line + 3);
			}
		fclose(f);
	}
	if (!cg[0])
		fl_err_set(&ecg, -ENOENT, "this host has no cgroup v2 hierarchy (xt_cgroup --path needs one)");
	else if (!encodable(cg))
		fl_err_set(&ecg, -EINVAL, "cgroup path %s cannot be probed", cg);
	else
		res->cgroup = probe_one(res->kind, AF_INET, cg, &ecg) == 0;
	snprintf(res->cgroup_why, sizeof(res->cgroup_why), "%.199s", ecg.msg);
	return 0;
}

/* Run the probe once per process; later calls return what it found. */
static int probe_cached(const struct nfq_probe_res **out, struct fl_err *err)
{
	if (!g_probe) {
		void *p = mmap(NULL, sizeof(*g_probe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			return fl_err_set(err, -errno, "mmap: %s", strerror(errno));
		g_probe = p;
	}
	if (!g_probe->done) {
		struct fl_err e = {0};

		g_probe->rc = fl_net_probe_in_scratch_ns(probe_scratch, g_probe, &e);
		g_probe->err = e;
		g_probe->done = true;
	}
	*out = g_probe;
	if (g_probe->rc && err)
		*err = g_probe->err;
	return g_probe->rc;
}

static int nfq_probe(struct fl_err *err)
{
	const struct nfq_probe_res *pr;
	int rc;

	if (fl_have_cap(CAP_NET_ADMIN) <= 0) {
		fl_err_set(err, -EPERM, "no CAP_NET_ADMIN: iptables rules and netfilter queues need it");
		fl_err_hint(err, "run faultline as root");
		return -EPERM;
	}
	rc = probe_cached(&pr, err);
	if (rc)
		return rc;
	if (!pr->v6 || !pr->cgroup)
		fl_err_set(err, 0, "nfqueue via %s%s%s%s%s", ipt_names[pr->kind][0],
			   pr->v6 ? "" : "; IPv6 unavailable: ", pr->v6 ? "" : pr->v6_why,
			   pr->cgroup ? "" : "; match.cgroup unavailable: ", pr->cgroup ? "" : pr->cgroup_why);
	return 0;
}

/* ---- check ------------------------------------------------------------------------------------ */

/* The longest a packet can be held, from the shape's clipped range. */
static int64_t hold_bound(const struct fl_net_effect *fx)
{
	double k = fx->dist == FL_DIST_UNIFORM ? 1.0 : NFQ_Z_CLIP;

	return fx->delay_ns + (int64_t)(k * (double)fx->jitter_ns);
}

static uint32_t held_cap(const struct fl_net_effect *fx)
{
	return fx->queue_pkts ? fx->queue_pkts : NFQ_HELD_DEFAULT;
}

static bool proc_lists(const char *file, const char *word, bool *exists)
{
	FILE *f = fopen(file, "re");
	char line[128];
	bool found = false;

	*exists = f != NULL;
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		found = !strcmp(line, word);
	}
	fclose(f);
	return found;
}

static int refuse_netem(struct fl_err *err, const char *what)
{
	fl_err_set(err, -EOPNOTSUPP, "the nfqueue backend cannot %s: a queue verdict only accepts or drops", what);
	fl_err_hint(err, "use backend netem (tc netem, on a kernel with sch_netem: see tests/vm for one)");
	return -EOPNOTSUPP;
}

static bool needs_v6(const struct fl_net_req *r)
{
	return r->match.family == AF_INET6 || r->match.family == AF_UNSPEC;
}

static int nfq_check(const struct fl_net_req *r, struct fl_err *err)
{
	const struct fl_net_effect *fx = &r->fx;
	const struct nfq_probe_res *pr = g_probe && g_probe->done ? g_probe : NULL;
	uint32_t cap = held_cap(fx);
	int64_t hold = hold_bound(fx);
	bool exists;
	char path[256];

	if (fx->duplicate > 0)
		return refuse_netem(err, "duplicate packets");
	if (fx->corrupt > 0)
		return refuse_netem(err, "corrupt packets");
	if (fx->reorder > 0 || fx->gap > 0)
		return refuse_netem(err, "reorder packets on purpose (jitter alone does reorder)");
	if (fx->rate > 0)
		return refuse_netem(err, "limit bandwidth");
	if (fx->delay_ns < 0 || fx->jitter_ns < 0 || fx->loss < 0 || fx->loss > 1 || fx->delay_corr < 0 ||
	    fx->delay_corr > 1 || fx->loss_corr < 0 || fx->loss_corr > 1 || (unsigned)fx->dist > FL_DIST_PARETONORMAL)
		return fl_err_set(err, -EINVAL, "delay, jitter, loss or a correlation is out of range");
	if (cap > NFQ_HELD_MAX) {
		fl_err_set(err, -E2BIG, "queue_pkts %u is above the nfqueue backend's cap of %d held packets",
			   cap, NFQ_HELD_MAX);
		fl_err_hint(err, "held packets pin kernel memory (about 2.3 KiB each at MTU size)");
		return -E2BIG;
	}
	if (hold > 0 && (double)cap * 1e9 / (double)hold < NFQ_MIN_RATE) {
		fl_err_set(err, -E2BIG, "a packet may be held %.1f s (%s%s%s): %u held packets would carry only "
					"%.0f packets/s before the rest pass undelayed",
			   (double)hold / 1e9, fx->jitter_ns ? "delay + " : "its delay",
			   fx->jitter_ns ? dist_names[fx->dist] : "", fx->jitter_ns ? " jitter" : "", cap,
			   (double)cap * 1e9 / (double)hold);
		fl_err_hint(err, "the nfqueue backend needs its cap to carry %d packets/s: shorten the delay, or "
				 "raise queue_pkts up to %d; at the cap packets are accepted undelayed and counted "
				 "(held_at_cap)", NFQ_MIN_RATE, NFQ_HELD_MAX);
		return -E2BIG;
	}
	if (fl_have_cap(CAP_NET_ADMIN) <= 0) {
		fl_err_set(err, -EPERM, "no CAP_NET_ADMIN: the nfqueue backend's iptables rules and queue need it");
		fl_err_hint(err, "run faultline as root");
		return -EPERM;
	}
	if (pr && pr->rc) {
		if (err)
			*err = pr->err;
		return pr->rc;
	}
	if (access("/proc/net/netfilter/nfnetlink_queue", F_OK) < 0)
		return fl_err_set(err, -EOPNOTSUPP, "this kernel has no nfnetlink_queue "
						    "(CONFIG_NETFILTER_NETLINK_QUEUE): /proc/net/netfilter/nfnetlink_queue is missing");
	if (!proc_lists("/proc/net/ip_tables_targets", "NFQUEUE", &exists) && exists)
		return fl_err_set(err, -EOPNOTSUPP, "this kernel has no NFQUEUE xtables target "
						    "(CONFIG_NETFILTER_XT_TARGET_NFQUEUE)");
	{
		int order[IPT_NKINDS], kind = -1;

		kind_order(order);
		for (int i = 0; i < IPT_NKINDS && kind < 0; i++) {
			int k = pr ? pr->kind : order[i];

			if (!tool_path(ipt_names[k][0], path, sizeof(path)) &&
			    (!needs_v6(r) || !tool_path(ipt_names[k][1], path, sizeof(path))))
				kind = k;
		}
		if (kind < 0)
			return missing_tool(err, needs_v6(r) ? "ip6tables-nft or ip6tables-legacy" : "iptables-nft or iptables-legacy");
	}
	if (r->match.family == AF_INET6 && pr && !pr->v6)
		return fl_err_set(err, -EOPNOTSUPP, "IPv6 NFQUEUE rules do not work here: %s", pr->v6_why);
	if (r->iface[0] && !encodable(r->iface))
		return fl_err_set(err, -EINVAL, "interface name '%s' cannot be journaled (it holds , or ;)", r->iface);
	if (!encodable(r->ns.path))
		return fl_err_set(err, -EINVAL, "namespace path '%s' cannot be journaled (it holds a blank, , or ;)",
				  r->ns.path);
	if (r->match.cgroup) {
		const char *cg = r->f->target ? r->f->target->cgroup_v2 : "";
		char rel[4096];
		int rc;

		if (r->match.dir != FL_NET_EGRESS)
			return fl_err_set(err, -EOPNOTSUPP, "match.cgroup needs direction egress: at PREROUTING a "
							    "packet has no socket, so xt_cgroup cannot tell whose it is");
		if (pr && !pr->cgroup)
			return fl_err_set(err, -EOPNOTSUPP, "match.cgroup: xt_cgroup does not work here: %s", pr->cgroup_why);
		if (!proc_lists("/proc/net/ip_tables_matches", "cgroup", &exists) && exists)
			return fl_err_set(err, -EOPNOTSUPP, "match.cgroup: this kernel has no xt_cgroup match "
							    "(CONFIG_NETFILTER_XT_MATCH_CGROUP)");
		if (!cg[0])
			return fl_err_set(err, -EINVAL, "match.cgroup: the target has no cgroup v2 directory");
		rc = cg2_relative(cg, rel, sizeof(rel), err);
		if (rc)
			return rc;
		if (!encodable(rel) || strlen(rel) > 200)
			return fl_err_set(err, -EINVAL, "match.cgroup: cgroup path '%s' cannot be journaled", rel);
	}
	return 0;
}

/* ---- state, apply, observe, revert -------------------------------------------------------------- */

struct nfq_state {
	struct fl_netns ns;        /* our own fd: the request's is closed by the front */
	struct nfq_ruleset rs;
	struct nfq_counters *ctr;
	struct fl_net_effect fx;
	uint32_t cap;
	pid_t child;
	uint64_t child_start;
	int child_status;
	bool child_died;           /* exited while the fault was on: traffic passes (fail open) */
	bool reverted;
	struct fl_rtt_probe rtt;   /* the handshake RTT of the one TCP endpoint a match may name */
};

static void state_free(struct nfq_state *st)
{
	if (!st)
		return;
	fl_rtt_probe_close(&st->rtt);
	fl_netns_close(&st->ns);
	if (st->ctr)
		munmap(st->ctr, sizeof(*st->ctr));
	free(st);
}

static pid_t wait_exit(pid_t pid, int *status, bool block)
{
	pid_t w;

	while ((w = waitpid(pid, status, block ? 0 : WNOHANG)) < 0 && errno == EINTR)
		;
	return w;
}

/* SIGTERM (the delayer accepts what it holds), SIGKILL after NFQ_STOP_WAIT_MS; reaps it. */
static void delayer_stop(struct nfq_state *st)
{
	int status = 0;
	pid_t w = 0;

	if (st->child <= 0)
		return;
	kill(st->child, SIGTERM);
	for (int ms = 0; ms < NFQ_STOP_WAIT_MS && !(w = wait_exit(st->child, &status, false)); ms += 2)
		usleep(2000);
	if (w == 0) {
		kill(st->child, SIGKILL);
		w = wait_exit(st->child, &status, true);
	}
	if (w == st->child)
		st->child_status = status;
	st->child = 0;
}

static int delayer_start(struct nfq_state *st, const struct fl_net_req *r, struct fl_journal *j, struct fl_err *err)
{
	struct delayer_cfg cfg = {.ctr = st->ctr, .fx = st->fx, .queue = (uint16_t)st->rs.queue, .cap = st->cap,
				  .nsfd = nsfd_of(&st->ns)};
	struct fl_err child = {0};
	int p[2], keep[2], rc = 0;
	int64_t seq;
	ssize_t n = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return fl_err_set(err, -errno, "pipe: %s", strerror(errno));
	keep[0] = cfg.nsfd;
	keep[1] = p[1];
	pid = fl_spawn_child(keep, 2, err);
	if (pid == 0) {
		cfg.report = p[1];
		delayer_main(&cfg);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return (int)pid;
	}
	st->child = pid;
	if (fl_proc_starttime(pid, &st->child_start))
		st->child_start = 0;
	seq = fl_journal_append(j, r->f, "backend=nfqueue child=%d start=%llu queue=%d", (int)pid,
				(unsigned long long)st->child_start, st->rs.queue);
	if (seq < 0) {
		rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
		goto fail;
	}
	{
		struct pollfd pf = {.fd = p[0], .events = POLLIN};

		if (poll(&pf, 1, NFQ_READY_TIMEOUT_MS) > 0)
			n = read(p[0], &child, sizeof(child));
	}
	if (n != (ssize_t)sizeof(child)) {
		if (n == 0)
			rc = fl_err_set(err, -EIO, "the nfqueue delayer (pid %d) exited before binding queue %d",
					(int)pid, st->rs.queue);
		else
			rc = fl_err_set(err, -ETIMEDOUT, "the nfqueue delayer (pid %d) did not bind queue %d within %d ms",
					(int)pid, st->rs.queue, NFQ_READY_TIMEOUT_MS);
		goto fail;
	}
	if (child.code) {
		rc = child.code;
		if (err)
			*err = child;
		goto fail;
	}
	close(p[0]);
	return 0;
fail:
	close(p[0]);
	delayer_stop(st);
	return rc;
}

static int nfq_apply(const struct fl_net_req *r, struct fl_journal *j, void **state, struct fl_err *err)
{
	const struct nfq_probe_res *pr;
	struct nfq_state *st = NULL;
	char rules[FL_REC_DATA], rel[4096];
	const char *cgpath = NULL;
	int rc;

	*state = NULL;
	rc = nfq_check(r, err);
	if (rc)
		return rc;
	rc = probe_cached(&pr, err);
	if (rc)
		return rc;
	if (r->match.cgroup) {
		if (!pr->cgroup)
			return fl_err_set(err, -EOPNOTSUPP, "match.cgroup: xt_cgroup does not work here: %s", pr->cgroup_why);
		rc = cg2_relative(r->f->target->cgroup_v2, rel, sizeof(rel), err);
		if (rc)
			return rc;
		cgpath = rel;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	st->ns = r->ns;
	st->ns.fd = fcntl(r->ns.fd, F_DUPFD_CLOEXEC, 3);
	st->rtt.fd = -1;
	st->fx = r->fx;
	st->cap = held_cap(&r->fx);
	st->rs.kind = pr->kind;
	st->ctr = mmap(NULL, sizeof(*st->ctr), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (st->ctr == MAP_FAILED) {
		st->ctr = NULL;
		rc = fl_err_set(err, -errno, "mmap: %s", strerror(errno));
		goto fail;
	}
	if (st->ns.fd < 0) {
		rc = fl_err_set(err, -errno, "dup of the netns fd: %s", strerror(errno));
		goto fail;
	}
	if (fl_net_owned_name(j, r->f, st->rs.comment, sizeof(st->rs.comment))) {
		rc = fl_err_set(err, -ENAMETOOLONG, "fault name %s is too long for an iptables comment", r->f->name);
		goto fail;
	}
	/* its first handshake leaves before any rule exists: the path as it was, the baseline */
	fl_rtt_probe_start(&st->rtt, &st->ns, &r->match);
	for (int attempt = 0;; attempt++) {
		int64_t seq;

		st->rs.queue = pick_queue();
		rc = build_rules(r, pr->v6, cgpath, &st->rs, err);
		if (!rc && rules_encode(&st->rs, rules, sizeof(rules)))
			rc = fl_err_set(err, -E2BIG, "the rules of %s do not fit a journal record", r->f->name);
		if (rc)
			goto fail;
		seq = fl_journal_append(j, r->f, "backend=nfqueue " FL_NETNS_REC_FMT " ipt=%s queue=%d comment=%s rules=%s",
					FL_NETNS_REC_ARGS(&st->ns), kind_names[st->rs.kind], st->rs.queue,
					st->rs.comment, rules);
		if (seq < 0) {
			rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
			goto fail;
		}
		/* journaled: from here on revert undoes whatever is in place, even after a failure */
		*state = st;
		rc = delayer_start(st, r, j, err);
		if (rc != -EBUSY || attempt == NFQ_BIND_TRIES - 1)
			break;
	}
	if (rc)
		return rc;
	for (int i = 0; i < st->rs.n && !rc; i++)
		rc = rule_insert(&st->rs, &st->rs.r[i], nsfd_of(&st->ns), err);
	return rc;
fail:
	if (!*state)
		state_free(st);
	return rc;
}

static int nfq_observe(void *state, struct fl_observation *o)
{
	struct nfq_state *st = state;
	const struct nfq_counters *c;
	uint64_t seen, dropped, delayed;

	if (!st)
		return -ENOENT;
	c = st->ctr;
	if (st->child > 0 && wait_exit(st->child, &st->child_status, false) == st->child) {
		st->child = 0;
		st->child_died = true;
	}
	seen = CTR_GET(c, seen);
	dropped = CTR_GET(c, dropped);
	delayed = CTR_GET(c, delayed);
	fl_obs_text(o, "backend", "nfqueue");
	fl_obs_num(o, "queue", st->rs.queue, "%d", st->rs.queue);
	fl_obs_num(o, "packets_matched", (double)seen, "%llu", (unsigned long long)seen);
	fl_obs_num(o, "packets_delayed", (double)delayed, "%llu", (unsigned long long)delayed);
	fl_obs_num(o, "packets_dropped", (double)dropped, "%llu", (unsigned long long)dropped);
	fl_obs_num(o, "loss_observed", seen ? (double)dropped / (double)seen : 0, "%.2f%%",
		   seen ? 100.0 * (double)dropped / (double)seen : 0);
	{
		double mean = delayed ? (double)CTR_GET(c, hold_sum_ns) / (double)delayed / 1e6 : 0;
		double max = (double)CTR_GET(c, hold_max_ns) / 1e6;

		double late_max = (double)CTR_GET(c, late_max_ns) / 1e6;

		fl_obs_num(o, "hold_ms_mean", mean, "%.2fms", mean);
		fl_obs_num(o, "hold_ms_max", max, "%.2fms", max);
		/* what the delayer added past each packet's drawn delay: a hold over delay + jitter is this */
		fl_obs_num(o, "released_late", (double)CTR_GET(c, late), "%llu over 1 ms past due (worst %.2f ms late)",
			   (unsigned long long)CTR_GET(c, late), late_max);
		fl_obs_num(o, "late_ms_max", late_max, "%.2fms", late_max);
	}
	fl_obs_num(o, "held_now", (double)CTR_GET(c, held_now), "%llu (max %llu of %u)",
		   (unsigned long long)CTR_GET(c, held_now), (unsigned long long)CTR_GET(c, held_max), st->cap);
	fl_obs_num(o, "held_at_cap", (double)CTR_GET(c, at_cap), "%llu passed undelayed at the cap",
		   (unsigned long long)CTR_GET(c, at_cap));
	if (!st->reverted)
		fl_rtt_probe_step(&st->rtt, &st->ns);
	fl_rtt_probe_report(&st->rtt, o);
	if (st->child_died)
		fl_obs_text(o, "delayer", "exited early (status 0x%x): matched packets passed undelayed",
			    st->child_status);
	else if (CTR_GET(c, errors))
		fl_obs_text(o, "delayer", "%llu netlink errors, last: %s", (unsigned long long)CTR_GET(c, errors),
			    strerror((int)CTR_GET(c, last_errno)));
	return 0;
}

static int nfq_revert(void *state, struct fl_err *err)
{
	struct nfq_state *st = state;
	int rc;

	if (!st || st->reverted)
		return 0;
	/* rules first: no new packet enters the queue, then the delayer hands back what it holds */
	rc = rules_delete(&st->rs, nsfd_of(&st->ns), err);
	delayer_stop(st);
	fl_rtt_probe_close(&st->rtt);
	if (!rc)
		st->reverted = true;
	return rc;
}

static void nfq_release(void *state)
{
	struct nfq_state *st = state;

	if (!st)
		return;
	if (st->child > 0)
		delayer_stop(st);
	state_free(st);
}

/* ---- from the journal alone ------------------------------------------------------------------- */

/* Stop a delayer that is not our child: only if pid still is the process that was journaled. */
static int stop_recorded(pid_t pid, uint64_t start)
{
	int pfd;
	struct pollfd pf;

	if (pid <= 0 || !fl_proc_same(pid, start))
		return 0;
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0 && errno == ENOSYS) {
		/* no pidfds (before 5.3): signal by pid, re-checking its identity each time */
		kill(pid, SIGTERM);
		for (int ms = 0; ms < NFQ_STOP_WAIT_MS && fl_proc_same(pid, start); ms += 10) {
			char state = 0;

			if (!fl_proc_state(pid, &state) && state == 'Z')
				return 0;
			usleep(10000);
		}
		if (fl_proc_same(pid, start))
			kill(pid, SIGKILL);
		return 0;
	}
	/* checked again through the pidfd: the pid cannot be recycled under it from here on */
	if (pfd < 0 || !fl_proc_same(pid, start)) {
		if (pfd >= 0)
			close(pfd);
		return 0;
	}
	pf = (struct pollfd){.fd = pfd, .events = POLLIN};
	syscall(SYS_pidfd_send_signal, pfd, SIGTERM, NULL, 0);
	if (poll(&pf, 1, NFQ_STOP_WAIT_MS) <= 0) {
		syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
		poll(&pf, 1, 1000);
	}
	close(pfd);
	return 0;
}

static int nfq_revert_record(const struct fl_journal_rec *rec, struct fl_err *err)
{
	struct nfq_ruleset rs = {0};
	struct fl_netns ns = {.fd = -1};
	char kind[16], rules[FL_REC_DATA];
	int64_t pid, queue;
	uint64_t start;
	int rc;

	if (!fl_rec_get_i64(rec, "child", &pid)) {
		if (fl_rec_get_u64(rec, "start", &start))
			return fl_err_set(err, -EINVAL, "journal record %llu: child= without start=",
					  (unsigned long long)rec->seq);
		return stop_recorded((pid_t)pid, start);
	}
	if (!fl_rec_get(rec, "rules", rules, sizeof(rules)) || !fl_rec_get(rec, "ipt", kind, sizeof(kind)) ||
	    fl_rec_get_i64(rec, "queue", &queue) || !fl_rec_get(rec, "comment", rs.comment, sizeof(rs.comment)))
		return fl_err_set(err, -EINVAL, "journal record %llu lacks rules/ipt/queue/comment",
				  (unsigned long long)rec->seq);
	rs.kind = !strcmp(kind, "legacy") ? IPT_LEGACY : IPT_NFT;
	rs.queue = (int)queue;
	if (strcmp(kind, kind_names[rs.kind]) || rules_decode(rules, &rs))
		return fl_err_set(err, -EINVAL, "journal record %llu: cannot read its rules '%s' (ipt=%s)",
				  (unsigned long long)rec->seq, rules, kind);
	rc = fl_netns_from_record(rec, &ns, err);
	if (rc == -ENOENT)
		return 0; /* the namespace is gone, and its rules with it */
	if (rc)
		return rc;
	rc = rules_delete(&rs, nsfd_of(&ns), err);
	fl_netns_close(&ns);
	return rc;
}

/* ---- sweep: owned rules of runs nobody will revert ------------------------------------------ */

struct sweep_ctx {
	const struct fl_sweep *sw;
	int rc;
};

/*
 * Split one iptables-save line into words in place: blanks separate, "..." quotes (iptables-save
 * quotes any value with a character beyond [A-Za-z0-9-], e.g. a fault name with '_' or a cgroup
 * path) with \" and \\ escaped inside. Returns the number of words, -1 on a malformed line.
 */
static int save_words(char *line, char *words[], int max)
{
	char *r = line, *w = line;
	int n = 0;

	while (*r) {
		while (*r == ' ')
			r++;
		if (!*r)
			break;
		if (n == max)
			return -1;
		words[n++] = w;
		if (*r == '"') {
			for (r++; *r && *r != '"'; r++) {
				if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
					r++;
				*w++ = *r;
			}
			if (*r != '"')
				return -1;
			r++;
		} else {
			while (*r && *r != ' ')
				*w++ = *r++;
		}
		/* the terminator never overwrites unread input: w trails r by the quotes and escapes dropped */
		if (*r)
			r++;
		*w++ = '\0';
	}
	return n;
}

/* Run the rule of `words` (an `-A CHAIN ...` line of ours) as a -D. */
static int sweep_delete(int kind, int family, int nsfd, char *words[], int nw, struct fl_err *err)
{
	const char *argv[NFQ_MAX_ARGS + 8];
	char etxt[400];
	int n = 0, status, rc;

	argv[n++] = ipt_names[kind][fam_ix(family)];
	argv[n++] = "-w";
	argv[n++] = "5";
	argv[n++] = "-t";
	argv[n++] = "mangle";
	argv[n++] = "-D";
	for (int i = 1; i < nw; i++)
		argv[n++] = words[i];
	argv[n] = NULL;
	rc = run_tool(nsfd, argv, &status, etxt, sizeof(etxt), NULL, err);
	if (!rc && status)
		rc = tool_failed(err, argv, status, etxt);
	return rc;
}

static void sweep_table(struct sweep_ctx *c, const struct fl_netns *ns, int kind, int family)
{
	const char *argv[] = {save_names[kind][fam_ix(family)], "-t", "mangle", NULL};
	char path[256], etxt[400], *out = NULL, *save = NULL;
	int status, nsfd = nsfd_of(ns);
	struct fl_err e = {0};

	if (tool_path(argv[0], path, sizeof(path)) || tool_path(ipt_names[kind][fam_ix(family)], path, sizeof(path)))
		return;
	if (kind == IPT_LEGACY && !legacy_table_present(nsfd, family))
		return;
	if (run_tool(nsfd, argv, &status, etxt, sizeof(etxt), &out, &e) || status || !out) {
		free(out);
		return; /* a namespace we cannot list holds nothing we could remove either */
	}
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char run_id[64], what[720], copy[1024], *words[NFQ_MAX_ARGS];
		const char *comment = NULL;
		bool nfqueue = false;
		int nw, rc;

		if (strncmp(line, "-A ", 3) || strlen(line) >= sizeof(copy))
			continue;
		snprintf(copy, sizeof(copy), "%s", line);
		nw = save_words(copy, words, NFQ_MAX_ARGS);
		/* ours are exactly: -A CHAIN ... -m comment --comment faultline-RUNID-FAULT -j NFQUEUE ... */
		for (int i = 0; i + 1 < nw; i++) {
			if (!strcmp(words[i], "--comment"))
				comment = words[i + 1];
			if (!strcmp(words[i], "-j") && !strcmp(words[i + 1], "NFQUEUE"))
				nfqueue = true;
		}
		if (nw < 2 || !nfqueue || !comment || !fl_net_owned_run_id(comment, run_id, sizeof(run_id)) ||
		    !c->sw->dead(c->sw, run_id))
			continue;
		snprintf(what, sizeof(what), "%s mangle rule in %.250s: %.400s", ipt_names[kind][fam_ix(family)],
			 ns->path, line);
		e = (struct fl_err){0};
		rc = sweep_delete(kind, family, nsfd, words, nw, &e);
		c->sw->report(c->sw, run_id, what, rc, rc ? e.msg : NULL);
		if (rc && !c->rc)
			c->rc = rc;
	}
	free(out);
}

static int sweep_ns(const struct fl_netns *ns, void *arg)
{
	for (int kind = 0; kind < IPT_NKINDS; kind++) {
		sweep_table(arg, ns, kind, AF_INET);
		sweep_table(arg, ns, kind, AF_INET6);
	}
	return 0;
}

static int nfq_sweep(const struct fl_sweep *sw)
{
	struct sweep_ctx c = {.sw = sw};
	int rc = fl_netns_each(sweep_ns, &c);

	return rc ? rc : c.rc;
}

const struct fl_net_backend fl_net_backend_nfqueue = {
	.name = "nfqueue",
	.probe = nfq_probe,
	.check = nfq_check,
	.apply = nfq_apply,
	.observe = nfq_observe,
	.revert = nfq_revert,
	.release = nfq_release,
	.revert_record = nfq_revert_record,
	.sweep = nfq_sweep,
};
