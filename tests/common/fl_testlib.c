/* The shared test and benchmark helpers of fl_testlib.h: shell commands, clocks, scenarios from text, namespaces, cgroups and journals. */
#include "fl_testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "fl_err.h"
#include "injector.h"
#include "journal.h"
#include "scenario.h"

/* Longest command line the shell helpers format (a longer one is refused, never cut). */
#define CMD_MAX 4096

#define ME program_invocation_short_name

/* ---- shell commands -------------------------------------------------------------------------- */

static int cmd_format(char *cmd, size_t len, const char *fmt, va_list ap)
{
	int n = vsnprintf(cmd, len, fmt, ap);

	if (n < 0 || (size_t)n >= len) {
		cmd[len - 1] = '\0';
		fprintf(stderr, "%s: command of %d bytes does not fit in %zu, not run: %.100s...\n", ME, n, len - 1,
			cmd);
		return -1;
	}
	return 0;
}

/* A wait status as an exit code: -1 for a signal or a failed wait. */
static int exit_code(int st)
{
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

int fl_tl_sh(const char *fmt, ...)
{
	char cmd[CMD_MAX];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = cmd_format(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (rc)
		return -1;
	return exit_code(system(cmd));
}

/* Format a command and start it with its stdout to read: NULL (why on stderr) when it did not fit or start. */
static FILE *popen_v(const char *fmt, va_list ap)
{
	char cmd[CMD_MAX];
	FILE *p;

	if (cmd_format(cmd, sizeof(cmd), fmt, ap))
		return NULL;
	p = popen(cmd, "r");
	if (!p)
		fprintf(stderr, "%s: popen %s: %s\n", ME, cmd, strerror(errno));
	return p;
}

int fl_tl_capture(char *buf, size_t len, const char *fmt, ...)
{
	char rest[4096];
	size_t n = 0, got;
	va_list ap;
	FILE *p;

	if (!len)
		return -1;
	buf[0] = '\0';
	va_start(ap, fmt);
	p = popen_v(fmt, ap);
	va_end(ap);
	if (!p)
		return -1;
	while (n < len - 1 && (got = fread(buf + n, 1, len - 1 - n, p)) > 0)
		n += got;
	buf[n] = '\0';
	/* the rest is read, not left to a SIGPIPE that would end the command early */
	while (fread(rest, 1, sizeof(rest), p) > 0)
		;
	return exit_code(pclose(p));
}

long fl_tl_sh_num(const char *fmt, ...)
{
	char line[64] = "";
	va_list ap;
	FILE *p;
	long v = -1;

	va_start(ap, fmt);
	p = popen_v(fmt, ap);
	va_end(ap);
	if (!p)
		return -1;
	if (fgets(line, sizeof(line), p))
		v = strtol(line, NULL, 10);
	while (fgets(line, sizeof(line), p))
		;
	pclose(p);
	return v;
}

int fl_tl_rm_rf(const char *dir)
{
	if (!dir || !dir[0])
		return 0;
	if (strchr(dir, '\'')) {
		fprintf(stderr, "%s: not removing %s: a quote in the path\n", ME, dir);
		return -1;
	}
	return fl_tl_sh("rm -rf -- '%s'", dir);
}

/* ---- clocks and sorting ---------------------------------------------------------------------- */

int64_t fl_tl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

double fl_tl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double fl_tl_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int fl_tl_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* ---- scenarios and observations ---------------------------------------------------------------- */

#define SCENARIO_HEAD                                                                          \
	"version: 1\nname: %s\ntarget: {url: \"http://127.0.0.1:1/\", pid: 4242}\n"             \
	"load: {rate: 1/s}\nslo: {good: {latency: 1s}, survival_ratio: 90%%}\nfaults:\n%s"

struct fl_scenario *fl_tl_scenario(const char *name, const char *faults_yaml, char *diag, size_t diag_len)
{
	struct fl_diags d = {0};
	struct fl_scenario *sc;
	char file[128], *buf;
	int n = snprintf(NULL, 0, SCENARIO_HEAD, name, faults_yaml);

	if (diag && diag_len)
		diag[0] = '\0';
	if (n < 0 || snprintf(file, sizeof(file), "%s.yaml", name) >= (int)sizeof(file)) {
		fprintf(stderr, "%s: scenario name too long: %.100s\n", ME, name);
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (!buf) {
		fprintf(stderr, "%s: scenario text of %d bytes: out of memory\n", ME, n);
		return NULL;
	}
	snprintf(buf, (size_t)n + 1, SCENARIO_HEAD, name, faults_yaml);
	sc = fl_scenario_parse(file, buf, (size_t)n, NULL, 0, &d);
	free(buf);
	if (diag && diag_len && d.n)
		snprintf(diag, diag_len, "%s%s%s", d.v[0].msg, d.v[0].hint ? " / " : "",
			 d.v[0].hint ? d.v[0].hint : "");
	if (!sc && !diag)
		fl_diags_print(&d, stderr);
	fl_diags_free(&d);
	return sc;
}

int fl_tl_obs_index(const struct fl_observation *o, const char *key)
{
	for (int i = 0; i < o->n; i++)
		if (!strcmp(o->kv[i].key, key))
			return i;
	return -1;
}

double fl_tl_obs_num(const struct fl_observation *o, const char *key, double dflt)
{
	int i = fl_tl_obs_index(o, key);

	return i >= 0 && o->kv[i].is_num ? o->kv[i].num : dflt;
}

/* ---- network namespaces ---------------------------------------------------------------------- */

struct sockaddr_in fl_tl_addr4(const char *ip, uint16_t port)
{
	struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(port)};

	if (inet_pton(AF_INET, ip, &s.sin_addr) != 1)
		fprintf(stderr, "%s: not an IPv4 address: %s\n", ME, ip);
	return s;
}

int fl_tl_netns_enter(const char *name)
{
	char path[PATH_MAX];
	int fd, rc = 0;

	if (snprintf(path, sizeof(path), "/run/netns/%s", name) >= (int)sizeof(path)) {
		fprintf(stderr, "%s: network namespace name too long: %.100s\n", ME, name);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		fprintf(stderr, "%s: open %s: %s\n", ME, path, strerror(-rc));
		return rc;
	}
	if (setns(fd, CLONE_NEWNET) < 0) {
		rc = -errno;
		fprintf(stderr, "%s: setns %s: %s\n", ME, path, strerror(-rc));
	}
	close(fd);
	return rc;
}

pid_t fl_tl_fork_in_netns(const char *name)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0) {
		fprintf(stderr, "%s: fork: %s\n", ME, strerror(errno));
		return -1;
	}
	if (pid > 0)
		return pid;
	/* a parent gone before the prctl would never send the signal */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(2);
	if (fl_tl_netns_enter(name))
		_exit(2);
	return 0;
}

int fl_tl_veth_pair(const char *ns_a, const char *veth_a, const char *cidr_a, const char *ns_b,
		    const char *veth_b, const char *cidr_b)
{
	int rc = fl_tl_sh("ip link add %s netns %s type veth peer name %s netns %s", veth_a, ns_a, veth_b, ns_b);

	if (!rc)
		rc = fl_tl_sh("ip -n %s addr add %s dev %s && ip -n %s link set %s up && ip -n %s link set lo up", ns_a,
			      cidr_a, veth_a, ns_a, veth_a, ns_a);
	if (!rc)
		rc = fl_tl_sh("ip -n %s addr add %s dev %s && ip -n %s link set %s up && ip -n %s link set lo up", ns_b,
			      cidr_b, veth_b, ns_b, veth_b, ns_b);
	return rc;
}

int fl_tl_netns_del(const char *name)
{
	return fl_tl_sh("ip netns del %s 2>/dev/null", name);
}

/* ---- cgroups and CPU time ---------------------------------------------------------------------- */

int fl_tl_cgroup_join(const char *cg)
{
	char path[PATH_MAX + 32];
	int fd, rc = 0;

	if (snprintf(path, sizeof(path), "%s/cgroup.procs", cg) >= (int)sizeof(path)) {
		rc = -ENAMETOOLONG;
	} else if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
	} else {
		if (dprintf(fd, "%d\n", (int)getpid()) < 0)
			rc = -errno;
		close(fd);
	}
	if (rc) {
		fprintf(stderr, "%s: joining cgroup %.200s: %s\n", ME, cg, strerror(-rc));
		errno = -rc; /* for a caller's perror() */
	}
	return rc;
}

void fl_tl_cpu_jiffies(int cpu, unsigned long long *busy, unsigned long long *total)
{
	char line[512], name[24];
	FILE *f = fopen("/proc/stat", "re");
	size_t nl;

	*busy = *total = 0;
	if (cpu < 0)
		snprintf(name, sizeof(name), "cpu ");
	else
		snprintf(name, sizeof(name), "cpu%d ", cpu);
	nl = strlen(name);
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long long v[8] = {0};

		if (strncmp(line, name, nl))
			continue;
		/* user nice system idle iowait irq softirq steal */
		if (sscanf(line + nl, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
			   &v[5], &v[6], &v[7]) == 8) {
			*busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
			*total = *busy + v[3] + v[4];
		}
		break;
	}
	if (f)
		fclose(f);
}

/* ---- run ids and journals ---------------------------------------------------------------------- */

void fl_tl_run_id(char *buf, size_t len, pid_t pid, const char *tag)
{
	snprintf(buf, len, FL_TL_RUN_STAMP "-%d-%s", (int)pid, tag);
}

int fl_tl_mkdtemp(char *dir, size_t len, const char *parent, const char *prefix)
{
	int n = snprintf(dir, len, "%s/%s-XXXXXX", parent, prefix);

	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "%s: mkdtemp %s/%s-XXXXXX: %s\n", ME, parent, prefix, strerror(ENAMETOOLONG));
		if (len)
			dir[0] = '\0';
		return -ENAMETOOLONG;
	}
	if (!mkdtemp(dir)) {
		int rc = -errno;

		fprintf(stderr, "%s: mkdtemp %s: %s\n", ME, dir, strerror(-rc));
		dir[0] = '\0';
		return rc;
	}
	return 0;
}

struct fl_journal *fl_tl_journal(char *dir, size_t len, const char *prefix, const char *run_id,
				 const char *scenario)
{
	struct fl_journal *j = NULL;
	struct fl_err e = {0};

	if (fl_tl_mkdtemp(dir, len, "/tmp", prefix))
		return NULL;
	if (fl_journal_open(dir, run_id, scenario, &j, &e)) {
		fprintf(stderr, "%s: journal in %s: %s\n", ME, dir, e.msg);
		return NULL;
	}
	return j;
}

uint64_t fl_tl_rss_anon(pid_t pid)
{
	char p[64], line[256];
	unsigned long long kib = 0;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	if (!(f = fopen(p, "re")))
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return (uint64_t)kib * 1024;
}

double fl_tl_cpu_s(pid_t pid)
{
	char p[64], buf[1024], *r;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(p, "re")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	r = strrchr(buf, ')');
	if (!r || sscanf(r + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- loopback sockets ------------------------------------------------------------------------- */

socklen_t fl_tl_lo_addr(int family, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6 || family == FL_TL_MAPPED) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (family == FL_TL_MAPPED)
			inet_pton(AF_INET6, "::ffff:127.0.0.1", &s6->sin6_addr);
		else
			s6->sin6_addr = in6addr_loopback;
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(*s4);
}

int fl_tl_bound(int family, int type, uint16_t port, uint16_t *got)
{
	struct sockaddr_storage ss;
	socklen_t sl = fl_tl_lo_addr(family, port, &ss);
	int one = 1, fd = socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) || (type == SOCK_STREAM && listen(fd, 4096)) ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		int e = -errno;

		close(fd);
		return e;
	}
	if (got)
		*got = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
						  ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

int fl_tl_port_set(uint16_t *port, int *tcp, int *tcp6, int *udp)
{
	/* the kernel picks the TCP port; UDP (and v6) may find that number taken: try another */
	for (int attempt = 0; attempt < 50; attempt++) {
		*tcp = fl_tl_bound(AF_INET, SOCK_STREAM, 0, port);
		if (*tcp < 0)
			return *tcp;
		*udp = fl_tl_bound(AF_INET, SOCK_DGRAM, *port, NULL);
		if (tcp6)
			*tcp6 = *udp >= 0 ? fl_tl_bound(AF_INET6, SOCK_STREAM, *port, NULL) : -1;
		if (*udp >= 0 && (!tcp6 || *tcp6 >= 0))
			return 0;
		close(*tcp);
		if (*udp >= 0)
			close(*udp);
	}
	return -EADDRINUSE;
}

/* ---- BPF programs ------------------------------------------------------------------------------ */

int fl_tl_bpf_progs(const char *prefix, uint32_t *ids, int cap)
{
	size_t plen = strlen(prefix);
	__u32 id = 0;
	int n = 0;

	while (n < cap && !bpf_prog_get_next_id(id, &id)) {
		struct bpf_prog_info pi;
		__u32 len = sizeof(pi);
		int fd = bpf_prog_get_fd_by_id(id);

		if (fd < 0)
			continue; /* unloaded since the id was listed */
		memset(&pi, 0, sizeof(pi));
		if (!bpf_obj_get_info_by_fd(fd, &pi, &len) && !strncmp(pi.name, prefix, plen))
			ids[n++] = id;
		close(fd);
	}
	return n;
}

int fl_tl_bpf_new_progs(const char *prefix, const uint32_t *before, int nbefore)
{
	enum { CAP = 4096 };
	uint32_t *now = calloc(CAP, sizeof(*now));
	int n, fresh = 0;

	if (!now)
		return -ENOMEM;
	n = fl_tl_bpf_progs(prefix, now, CAP);
	for (int i = 0; i < n; i++) {
		bool old = false;

		for (int k = 0; k < nbefore && !old; k++)
			old = now[i] == before[k];
		fresh += !old;
	}
	free(now);
	return fresh;
}

int fl_tl_cgroup_attached(const char *cg, const enum bpf_attach_type *types, size_t ntypes)
{
	int fd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;

	if (fd < 0)
		return -errno;
	for (size_t t = 0; t < ntypes; t++) {
		__u32 cnt = 0;

		if (bpf_prog_query(fd, types[t], 0, NULL, NULL, &cnt)) {
			int e = -errno;

			close(fd);
			return e;
		}
		n += (int)cnt;
	}
	close(fd);
	return n;
}
