/* memory.leak: a child that allocates and writes memory at a rate up to a cap inside the target's memory cgroup (v1 or v2), holds it until revert (or, owned by the target, until the OOM killer takes the target), and reports what the kernel saw: RSS, cgroup usage, OOM kills, whom they hit, whether the service came back. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "injector.h"
#include "journal.h"
#include "net.h"
#include "procfs.h"
#include "proctree.h"
#include "units.h"

#define MIB (1024.0 * 1024.0)
/*
 * The most of MemAvailable a leak may take when nothing but the host stops it (in: host, or a
 * cgroup without a limit below it): past that the global OOM killer may choose any process,
 * faultline, its guardian, sshd or the CI runner included.
 */
#define HOST_SHARE 0.9
/* v1 writes "no limit" as PAGE_COUNTER_MAX pages (about 2^63 bytes): anything this large is none */
#define NO_LIMIT (1ULL << 62)
/* processes of the cgroup observe keeps by name and start time (victims, vanished_other) */
#define MAX_TRACKED 64
/* pids one read of cgroup.procs holds (the leaker's restart watch, the adj restore); past it, said */
#define MAX_PIDS 4096
#define MAX_VICTIMS 8
#define READY_MS 5000
/* a sample at this share of `limit` counts as full: RssAnon moves by a few pages besides the leak */
#define FULL_SHARE 0.98
/* owner: target: the oom_score_adj given to the target's processes (the kernel's maximum) */
#define OWNER_ADJ 1000
/* processes of the target's cgroup whose oom_score_adj one journal record can hold */
#define MAX_ADJ 16
/* how often the leaker looks at the cgroup's OOM counter and, after a drop, at its processes */
#define WATCH_MS 5

static const char *const leak_scopes[] = {"target", "host", NULL};
static const char *const leak_owners[] = {"leaker", "target", NULL};

static const struct fl_param leak_params[] = {
	{.name = "rate", .kind = FL_P_BYTERATE, .def = "10MiB/s", .min = "64KiB/s", .max = "8GiB/s",
	 .help = "how fast the leak grows: anonymous pages allocated and written per second, so RSS "
		 "and the cgroup's usage really grow (observe reports the rate /proc saw)"},
	{.name = "limit", .kind = FL_P_SIZE, .required = true, .min = "1MiB", .max = "1TiB",
	 .help = "the most the leak allocates; held until revert, then freed at once. Above the "
		 "cgroup's own limit the kernel OOM-kills someone in it: the leaker or the service"},
	{.name = "in", .kind = FL_P_ENUM, .def = "target", .enums = leak_scopes,
	 .help = "target: the leaker joins the target's memory cgroup (v1 or v2) before it "
		 "allocates, so reclaim and OOM kills land where a real leak's would; host: it stays "
		 "in faultline's cgroup and presses on the whole host (needs allow_host_wide)"},
	{.name = "owner", .kind = FL_P_ENUM, .def = "leaker", .enums = leak_owners,
	 .help = "whose leak it is. leaker: the child's own, so the OOM killer usually picks the "
		 "child (the largest task). target: the service's, as when its own heap grows: every "
		 "process of the target's memory cgroup gets oom_score_adj 1000 for the fault (restored "
		 "after), so the OOM killer takes the service; the leak is freed when it does (a killed "
		 "process's heap is gone) and starts over when a new process appears in the cgroup (a "
		 "restarted service leaks again). Needs in: target"},
	{0},
};

/* a target process whose oom_score_adj owner: target raised, as journaled */
struct adj_rec {
	pid_t pid;
	uint64_t start;
	int old;
};

/* what the leaker tells faultline after the go (owner: target), with its CLOCK_MONOTONIC time */
struct leak_event {
	char what;            /* 'D': dropped, the target was OOM-killed; 'R': restarted, a new process
			       * came; 'T': the cgroup holds more than MAX_PIDS processes (once) */
	int64_t ns;
};

struct memcg {
	char dir[PATH_MAX];
	char rel[PATH_MAX];   /* the path below its hierarchy's mount, as the kernel's OOM report names it */
	int v;                /* 1 or 2 */
	bool root;            /* the hierarchy's root: every process on the host */
};

struct tracked {              /* a process of the cgroup, to tell which ones vanished */
	pid_t pid;
	uint64_t start;
	char comm[16];
	int64_t gone_ns;
};

struct victim {
	pid_t pid;
	char comm[16];
	int64_t ns;           /* when the kernel killed it (its log's time, as CLOCK_MONOTONIC), 0 if unknown */
};

struct leak_state {
	pid_t pid;            /* the leaker */
	uint64_t start;
	bool host;
	struct memcg cg;
	uint64_t rate, limit;
	pid_t target;         /* the target's main pid, 0 when unknown */
	uint64_t target_start;
	int64_t target_gone_ns;
	int64_t go_ns;
	int64_t stopped_ns;   /* revert stopped the leaker (and read the last of the kernel's log) */
	int64_t reverted_ns;  /* revert finished: oom_score_adj restored too; retried until then */
	uint64_t anon0;       /* the leaker's RssAnon before it allocated: pages it shares with faultline */
	uint64_t held, peak, swapped;
	int64_t grow_ns;      /* the last sample while still growing, for the rate */
	uint64_t grow_bytes;
	int64_t full_ns;      /* the first sample at FULL_SHARE of limit */
	uint64_t full_bytes;
	bool have_oom;
	uint64_t oom0, oom_now;
	bool have_usage;
	uint64_t usage, usage_at_revert, usage_after_revert, cg_limit;
	int kmsg;             /* /dev/kmsg from apply on: the kernel's own word on each OOM victim */
	bool kmsg_clock;      /* kmsg_off is known: the log's times can be told as CLOCK_MONOTONIC */
	int64_t kmsg_off;     /* CLOCK_MONOTONIC minus the log's clock (the kernel's local_clock) */
	struct tracked procs[MAX_TRACKED];
	int nprocs;
	bool procs_truncated, pids_truncated; /* more processes than MAX_TRACKED / MAX_PIDS were seen */
	struct victim victims[MAX_VICTIMS];
	int nvictims, victims_total;
	bool reaped, killed_by_revert;
	int status;
	int64_t died_ns;
	uint64_t held_at_revert;
	bool owner_target;
	struct adj_rec adj[MAX_ADJ];
	int nadj, base_adj;
	int events;           /* the leaker's reports after the go (owner: target), -1 if none */
	int drops, restarts;
	int64_t first_drop_ns, last_drop_ns, back_ns;
	double back_s;        /* the first restart after a drop: how long the service was gone */
};

/* ---- files of /proc and of cgroups ---------------------------------------------------------- */

/* The first word of a file as a number; "max" (cgroup v2's "no limit") is UINT64_MAX. */
static int read_u64(const char *path, uint64_t *out)
{
	char buf[64];
	FILE *f = fopen(path, "re");
	int rc = -EINVAL;

	if (!f)
		return -errno;
	if (fscanf(f, "%63s", buf) == 1) {
		if (!strcmp(buf, "max")) {
			*out = UINT64_MAX;
			rc = 0;
		} else {
			char *end;

			errno = 0;
			*out = strtoull(buf, &end, 10);
			rc = errno || *end ? -EINVAL : 0;
		}
	}
	fclose(f);
	return rc;
}

/* "key value" lines (memory.oom_control, memory.events, memory.stat, /proc/vmstat, /proc/meminfo). */
static int keyed_u64(const char *path, const char *key, uint64_t *out)
{
	char line[256], k[128];
	unsigned long long v;
	FILE *f = fopen(path, "re");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %llu", k, &v) == 2 && !strcmp(k, key)) {
			*out = v;
			rc = 0;
			break;
		}
	fclose(f);
	return rc;
}

static int mem_available(uint64_t *bytes)
{
	uint64_t kib;
	int rc = keyed_u64("/proc/meminfo", "MemAvailable:", &kib);

	if (!rc)
		*bytes = kib * 1024;
	return rc;
}

static bool file_has_word(const char *path, const char *word)
{
	char w[64];
	FILE *f = fopen(path, "re");
	bool found = false;

	if (!f)
		return false;
	while (!found && fscanf(f, "%63s", w) == 1)
		found = !strcmp(w, word);
	fclose(f);
	return found;
}

static bool has_file(const char *dir, const char *name)
{
	char p[PATH_MAX + 64];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

/* Where the memory controller lives on this host: "v1 at DIR", "v2 at DIR", or "" (none). */
static void memory_controller(char *buf, size_t len)
{
	char m[PATH_MAX], p[PATH_MAX + 32];

	buf[0] = '\0';
	if (fl_cgroup_mount("memory", m, sizeof(m)) == 0) {
		snprintf(buf, len, "v1 at %s", m);
		return;
	}
	if (fl_cgroup_mount(NULL, m, sizeof(m)) == 0 &&
	    snprintf(p, sizeof(p), "%s/cgroup.controllers", m) > 0 && file_has_word(p, "memory"))
		snprintf(buf, len, "v2 at %s", m);
}

/* Name a memory cgroup directory: which version, its path as OOM reports print it, root or not. */
static int memcg_open(const char *dir, struct memcg *cg, struct fl_err *err)
{
	char mount[PATH_MAX], real[PATH_MAX], realm[PATH_MAX], p[PATH_MAX + 32];
	bool v2root = false;

	memset(cg, 0, sizeof(*cg));
	if (!realpath(dir, real))
		return fl_err_set(err, -errno, "the target's memory cgroup %s: %s", dir, strerror(errno));
	if (fl_cgroup_mount(NULL, mount, sizeof(mount)) == 0 && realpath(mount, realm) &&
	    !strcmp(real, realm)) {
		snprintf(p, sizeof(p), "%s/cgroup.controllers", real);
		v2root = file_has_word(p, "memory");
	}
	if (has_file(real, "memory.limit_in_bytes")) {
		cg->v = 1;
		if (fl_cgroup_mount("memory", mount, sizeof(mount)) || !realpath(mount, realm))
			realm[0] = '\0';
	} else if (has_file(real, "memory.max") || v2root) {
		cg->v = 2;
		if (fl_cgroup_mount(NULL, mount, sizeof(mount)) || !realpath(mount, realm))
			realm[0] = '\0';
	} else {
		char ctl[256] = "";
		FILE *f;

		snprintf(p, sizeof(p), "%s/cgroup.controllers", real);
		if ((f = fopen(p, "re"))) {
			if (!fgets(ctl, sizeof(ctl), f))
				ctl[0] = '\0';
			ctl[strcspn(ctl, "\n")] = '\0';
			fclose(f);
		}
		fl_err_set(err, -EOPNOTSUPP, "the target's cgroup %s has no memory controller (its "
					     "cgroup.controllers: \"%s\")", real, ctl);
		fl_err_hint(err, "enable it (echo +memory > PARENT/cgroup.subtree_control), or use in: host "
				 "with allow_host_wide");
		return -EOPNOTSUPP;
	}
	snprintf(cg->dir, sizeof(cg->dir), "%s", real);
	{
		size_t n = strlen(realm);

		if (n && !strncmp(real, realm, n) && (real[n] == '/' || !real[n]))
			snprintf(cg->rel, sizeof(cg->rel), "%s", real[n] ? real + n : "/");
		else
			snprintf(cg->rel, sizeof(cg->rel), "%s", real);
	}
	cg->root = !strcmp(cg->rel, "/");
	return 0;
}

static int memcg_usage(const struct memcg *cg, uint64_t *out)
{
	char p[PATH_MAX + 32];

	snprintf(p, sizeof(p), "%s/%s", cg->dir, cg->v == 1 ? "memory.usage_in_bytes" : "memory.current");
	return read_u64(p, out);
}

/* The limit in force, counting the ancestors' (a parent's limit stops a child's leak as well). */
static uint64_t memcg_limit(const struct memcg *cg)
{
	char p[PATH_MAX + 32], dir[PATH_MAX];
	uint64_t v, best = UINT64_MAX;
	size_t base;

	if (cg->v == 1) {
		snprintf(p, sizeof(p), "%s/memory.stat", cg->dir);
		return keyed_u64(p, "hierarchical_memory_limit", &v) == 0 && v < NO_LIMIT ? v : UINT64_MAX;
	}
	/* v2: memory.max of this cgroup and each parent up to the mount (the root has none) */
	snprintf(dir, sizeof(dir), "%s", cg->dir);
	base = strlen(cg->dir) - (cg->root ? 0 : strlen(cg->rel));
	while (strlen(dir) > base) {
		char *slash;

		snprintf(p, sizeof(p), "%s/memory.max", dir);
		if (read_u64(p, &v) == 0 && v < best)
			best = v;
		slash = strrchr(dir, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	return best < NO_LIMIT ? best : UINT64_MAX;
}

/* OOM kills so far: the cgroup's own counter, or the host's (/proc/vmstat) for in: host. */
static int oom_count(const struct leak_state *st, uint64_t *out)
{
	char p[PATH_MAX + 32];

	if (st->host)
		return keyed_u64("/proc/vmstat", "oom_kill", out);
	snprintf(p, sizeof(p), "%s/%s", st->cg.dir, st->cg.v == 1 ? "memory.oom_control" : "memory.events");
	return keyed_u64(p, "oom_kill", out);
}

/* RssAnon and VmSwap of a process, in bytes. */
static int proc_anon(pid_t pid, uint64_t *anon, uint64_t *swap)
{
	char p[64], line[256];
	unsigned long long kib;
	FILE *f;
	int found = 0;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	if (!(f = fopen(p, "re")))
		return -errno;
	*swap = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "RssAnon: %llu kB", &kib) == 1) {
			*anon = kib * 1024;
			found = 1;
		} else if (sscanf(line, "VmSwap: %llu kB", &kib) == 1) {
			*swap = kib * 1024;
		}
	}
	fclose(f);
	return found ? 0 : -ESRCH; /* a zombie has no RssAnon line: nothing is held */
}

/* ---- where the leak goes ------------------------------------------------------------------- */

static int leak_where(const struct fl_fault *f, bool *host, struct memcg *cg, struct fl_err *err)
{
	const struct fl_target_info *t = f->target;
	char where[PATH_MAX + 16];
	int rc;

	*host = !strcmp(fl_fault_value(f, "in")->s, "host");
	if (*host) {
		if (!t || !t->allow_host_wide) {
			fl_err_set(err, -EPERM, "memory.leak in: host presses on the whole host's memory: "
						"refused without allow_host_wide");
			fl_err_hint(err, "leak into the target's memory cgroup (in: target), or set "
					 "allow_host_wide: true");
			return -EPERM;
		}
		return 0;
	}
	if (!t || !t->memcg[0]) {
		if (!t || t->pid <= 0)
			return fl_err_set(err, -ESRCH, "memory.leak (in: target) needs the target's memory "
						       "cgroup, and this target has no process (give target.run, "
						       "pid, pidfile, cgroup or systemd_unit)");
		memory_controller(where, sizeof(where));
		if (!where[0])
			return fl_err_set(err, -EOPNOTSUPP, "pid %d has no memory cgroup: this host has no "
							    "cgroup v1 memory hierarchy and its cgroup v2 has "
							    "no memory controller", (int)t->pid);
		return fl_err_set(err, -EOPNOTSUPP, "pid %d has no memory cgroup that faultline found "
						    "(memory controller: %s)", (int)t->pid, where);
	}
	rc = memcg_open(t->memcg, cg, err);
	if (rc)
		return rc;
	if (cg->root && !t->allow_host_wide) {
		fl_err_set(err, -EPERM, "the target's memory cgroup is the root of its hierarchy (%s): a "
					"leak there is host-wide; refused without allow_host_wide", cg->dir);
		fl_err_hint(err, "launch the target (target.run gives it a cgroup of its own) or name "
				 "the service's cgroup (target.cgroup, systemd_unit)");
		return -EPERM;
	}
	return 0;
}

static int leak_probe(struct fl_err *err)
{
	char where[PATH_MAX + 16];
	int k = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC), kerr = errno;

	if (k >= 0)
		close(k);
	memory_controller(where, sizeof(where));
	if (!where[0])
		fl_err_set(err, 0, "no memory cgroup controller (v1 or v2): only in: host (with "
				   "allow_host_wide) can run");
	else if (k < 0)
		fl_err_set(err, 0, "cannot read /dev/kmsg (%s): OOM victims are told by which "
				   "processes vanished, not by the kernel's report", strerror(kerr));
	return 0;
}

static int leak_check(const struct fl_fault *f, struct fl_err *err)
{
	uint64_t limit = fl_fault_value(f, "limit")->u, avail, room = limit, cl = UINT64_MAX, used = 0;
	char a[32], b[32], c[32], d[32];
	struct memcg cg;
	bool host;
	int rc = leak_where(f, &host, &cg, err);

	if (rc)
		return rc;
	if (mem_available(&avail))
		return fl_err_set(err, -EIO, "cannot read MemAvailable from /proc/meminfo");
	if (!host) {
		cl = memcg_limit(&cg);
		memcg_usage(&cg, &used);
		if (cl != UINT64_MAX) {
			uint64_t left = cl > used ? cl - used : 0; /* what the cgroup lets it add */

			room = limit < left ? limit : left;
		}
	}
	if ((double)room <= HOST_SHARE * (double)avail)
		return 0;
	fl_format_size(limit, a, sizeof(a));
	fl_format_size(avail, b, sizeof(b));
	fl_format_size((uint64_t)(HOST_SHARE * (double)avail), c, sizeof(c));
	if (host) {
		fl_err_set(err, -ENOMEM, "limit %s is more than %.0f%% of the host's MemAvailable (%s): the "
					 "host-wide OOM killer could pick any process (faultline, sshd)",
			   a, HOST_SHARE * 100, b);
	} else {
		fl_format_size(cl, d, sizeof(d));
		fl_err_set(err, -ENOMEM, "limit %s: the target's memory cgroup %s has %s%s, so the leak "
					 "could take more than %.0f%% of the host's MemAvailable (%s) before its "
					 "cgroup stops it, and the host-wide OOM killer could pick any process",
			   a, cg.dir, cl == UINT64_MAX ? "no limit" : "limit ", cl == UINT64_MAX ? "" : d,
			   HOST_SHARE * 100, b);
	}
	fl_err_hint(err, "lower limit below %s%s", c,
		    host ? "" : ", or give the target's cgroup a memory limit (memory.max / memory.limit_in_bytes)");
	return -ENOMEM;
}

static int leak_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err)
{
	const struct fl_value *owner = fl_fault_value(f, "owner");

	if (!strcmp(owner->s, "target") && !strcmp(fl_fault_value(f, "in")->s, "host")) {
		*blame = owner;
		fl_err_set(err, -EINVAL, "owner: target makes the leak the target's, which needs it charged to "
					 "the target's memory cgroup: not with in: host");
		fl_err_hint(err, "use in: target (the default), or owner: leaker");
		return -EINVAL;
	}
	return 0;
}

static void leak_describe(const struct fl_fault *f, char *buf, size_t len)
{
	char r[32], l[32];

	fl_format_size(fl_fault_value(f, "rate")->u, r, sizeof(r));
	fl_format_size(fl_fault_value(f, "limit")->u, l, sizeof(l));
	if (!strcmp(fl_fault_value(f, "owner")->s, "target"))
		snprintf(buf, len, "a child (fl-leak) allocating and writing %s/s up to %s inside the target's "
			 "memory cgroup, owned by the target: its processes get oom_score_adj %d (restored at "
			 "revert); the leak is freed when the OOM killer takes the target and starts over when "
			 "a new process appears", r, l, OWNER_ADJ);
	else
		snprintf(buf, len, "a child (fl-leak) allocating and writing %s/s up to %s %s, held until revert (then killed: all freed at once)",
			 r, l, strcmp(fl_fault_value(f, "in")->s, "host") ? "inside the target's memory cgroup" :
			 "in faultline's own cgroup (host-wide)");
}

/* ---- the leaker ----------------------------------------------------------------------------- */

struct leak_cfg {
	uint64_t rate, limit;
	int go, report;
	bool owner_target;
	char oom_file[PATH_MAX + 32];   /* the cgroup's OOM counter (owner: target) */
	char procs_file[PATH_MAX + 32]; /* its cgroup.procs */
};

static void sleep_until(int64_t ns);

/* The pids of a cgroup.procs file, at most n (*more, when not NULL, says whether there were more); -1 when it cannot be read. */
static int read_pids(const char *path, pid_t *out, int n, bool *more)
{
	FILE *f = fopen(path, "re");
	int k = 0, x;

	if (more)
		*more = false;
	if (!f)
		return -1;
	while (fscanf(f, "%d", &x) == 1) {
		if (k == n) {
			if (more)
				*more = true;
			break;
		}
		out[k++] = x;
	}
	fclose(f);
	return k;
}

static bool pid_in(pid_t p, const pid_t *v, int n)
{
	for (int i = 0; i < n; i++)
		if (v[i] == p)
			return true;
	return false;
}

static void leaker_tell(const struct leak_cfg *c, char what)
{
	struct leak_event ev = {.what = what, .ns = fl_mono_ns()};

	/* faultline gone or not listening: the leak goes on regardless */
	(void)!write(c->report, &ev, sizeof(ev));
}

/* The cgroup's pids into v; past MAX_PIDS a pid list is partial, which faultline is told once. */
static int leaker_pids(const struct leak_cfg *c, pid_t *v)
{
	static bool told;
	bool more;
	int n = read_pids(c->procs_file, v, MAX_PIDS, &more);

	if (more && !told) {
		leaker_tell(c, 'T');
		told = true;
	}
	return n;
}

/*
 * owner: target, in the leaker: has the OOM killer taken someone else in the cgroup since *seen?
 * Then the leak, which was that process's, is freed at once (as its heap went with it), and the
 * leaker waits, holding nothing, until a process that was not there before appears (the service
 * restarted), then leaks again from zero. `before` is the cgroup's pids sampled before the kill.
 */
static bool leaker_watch(const struct leak_cfg *c, unsigned char *mem, uint64_t *done, uint64_t *seen,
			 pid_t *before, int *nbefore)
{
	pid_t now[MAX_PIDS], self = getpid();
	uint64_t v;
	int n;

	if (keyed_u64(c->oom_file, "oom_kill", &v) || v <= *seen)
		return false;
	*seen = v;
	if (*done)
		madvise(mem, *done, MADV_DONTNEED); /* the pages are gone, uncharged at once */
	*done = 0;
	leaker_tell(c, 'D');
	for (;;) {
		sleep_until(fl_mono_ns() + WATCH_MS * 1000000LL);
		if (keyed_u64(c->oom_file, "oom_kill", &v) == 0)
			*seen = v;
		n = leaker_pids(c, now);
		for (int i = 0; i < n; i++)
			if (now[i] != self && !pid_in(now[i], before, *nbefore)) {
				*nbefore = leaker_pids(c, before);
				leaker_tell(c, 'R');
				return true;
			}
	}
}

static void sleep_until(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* In the child: wait for the go (sent once it is journaled and in the cgroup), then leak. Never returns. */
static void __attribute__((noreturn)) leaker_main(const struct leak_cfg *c)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint64_t done = 0;
	unsigned char *mem;
	int64_t t0;
	char go = 0;
	ssize_t n;
	int rc = 0;

	prctl(PR_SET_NAME, "fl-leak");
	do
		n = read(c->go, &go, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1 || go != 'g')
		_exit(0); /* faultline gave up before the go: allocate nothing */
	/* reserved, not committed: only pages written below count, like a heap that grows */
	mem = mmap(NULL, c->limit, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		rc = -errno;
	else
		/* 4 KiB pages, so RSS grows at the rate and not in 2 MiB steps where THP is "always" */
		madvise(mem, c->limit, MADV_NOHUGEPAGE);
	if (write(c->report, &rc, sizeof(rc)) != (ssize_t)sizeof(rc) || rc)
		_exit(1);
	if (!c->owner_target)
		close(c->report);
	t0 = fl_mono_ns();
	if (c->owner_target) {
		uint64_t seen = 0;
		pid_t before[MAX_PIDS];
		int nbefore = leaker_pids(c, before);
		int64_t sampled = t0;

		keyed_u64(c->oom_file, "oom_kill", &seen);
		for (;;) {
			int64_t now = fl_mono_ns(), next;
			uint64_t due = (uint64_t)((double)(now - t0) / 1e9 * (double)c->rate);

			if (leaker_watch(c, mem, &done, &seen, before, &nbefore)) {
				t0 = sampled = fl_mono_ns();
				continue;
			}
			/* who was there before a kill, refreshed while nothing happens */
			if (now - sampled >= 100000000LL) {
				nbefore = leaker_pids(c, before);
				sampled = now;
			}
			/*
			 * no catching up after a stall (reclaim, the OOM kill itself): a burst right after a
			 * kill would fill the room the victim left and kill the next process before the leak
			 * is dropped; a real heap does not grow faster for having been stalled
			 */
			if (due > done + (uint64_t)((double)c->rate * 0.01) + page) {
				due = done + (uint64_t)((double)c->rate * 0.01) + page;
				t0 = now - (int64_t)((double)due * 1e9 / (double)c->rate);
			}
			if (due > c->limit)
				due = c->limit;
			for (; done < due;) {
				int64_t t = fl_mono_ns();
				uint64_t v;

				mem[done] = (unsigned char)((done / page) | 1);
				done += page;
				/*
				 * has the OOM killer struck (then drop at once, above)? Looked at every 256 KiB,
				 * and after a write that stalled (the charge waited on reclaim or on an OOM kill
				 * the write itself set off): more pages then could make the leaker the next victim
				 */
				if ((((done / page) & 63) == 0 || fl_mono_ns() - t > 1000000) &&
				    keyed_u64(c->oom_file, "oom_kill", &v) == 0 && v > seen)
					break;
			}
			next = t0 + (int64_t)((double)(done + page) * 1e9 / (double)c->rate);
			if (done >= c->limit || next > now + WATCH_MS * 1000000LL)
				next = now + WATCH_MS * 1000000LL;
			sleep_until(next > now + 1000000 ? next : now + 1000000);
		}
	}
	while (done < c->limit) {
		int64_t now = fl_mono_ns(), next;
		uint64_t due = (uint64_t)((double)(now - t0) / 1e9 * (double)c->rate);

		if (due > c->limit)
			due = c->limit;
		/* a write per page makes it resident and charged, as a heap really used would be */
		for (; done < due; done += page)
			mem[done] = (unsigned char)((done / page) | 1);
		if (done >= c->limit)
			break;
		/* until the next page is due, but at least 1 ms: at GiB/s a sleep per page costs more than the page */
		next = t0 + (int64_t)((double)(done + page) * 1e9 / (double)c->rate);
		sleep_until(next > now + 1000000 ? next : now + 1000000);
	}
	for (;;)
		pause();
}

static int cg_join(const char *dir, pid_t pid, struct fl_err *err)
{
	char p[PATH_MAX + 32], v[16];
	int fd, n, rc = 0;

	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	n = snprintf(v, sizeof(v), "%d", (int)pid);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fl_err_set(err, -errno, "open %s: %s", p, strerror(errno));
	if (write(fd, v, (size_t)n) != n) {
		rc = -errno;
		fl_err_set(err, rc, "moving the leaker (pid %d) into %s: %s", (int)pid, p, strerror(errno));
		if (rc == -EBUSY)
			fl_err_hint(err, "cgroup v2 holds processes only in leaf cgroups: name the target's leaf cgroup");
	}
	close(fd);
	return rc;
}

/* ---- owner: target: the target's oom_score_adj --------------------------------------------- */

static int adj_read(pid_t pid, int *out)
{
	char p[64];
	FILE *f;
	int rc;

	snprintf(p, sizeof(p), "/proc/%d/oom_score_adj", (int)pid);
	if (!(f = fopen(p, "re")))
		return errno == ENOENT ? -ESRCH : -errno;
	rc = fscanf(f, "%d", out) == 1 ? 0 : -EINVAL;
	fclose(f);
	return rc;
}

/*
 * Set pid's oom_score_adj to `value` if it is still the process started at `start` and its value
 * is `expect` (INT_MIN: any). The file is opened before the identity check, and an open file of
 * /proc/PID stays bound to that task, so a pid recycled meanwhile is never written. Raising needs
 * no privilege; lowering back to what it was is allowed down to the task's oom_score_adj_min.
 */
static int adj_set(pid_t pid, uint64_t start, int expect, int value)
{
	char p[64], v[16];
	int fd, n, cur, rc = 0;
	ssize_t k;

	snprintf(p, sizeof(p), "/proc/%d/oom_score_adj", (int)pid);
	fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	if (!fl_proc_same(pid, start)) {
		close(fd);
		return -ESRCH;
	}
	k = pread(fd, v, sizeof(v) - 1, 0);
	if (k <= 0) {
		rc = k < 0 ? -errno : -ESRCH;
		goto out;
	}
	v[k] = '\0';
	cur = atoi(v);
	if (expect != INT_MIN && cur != expect)
		goto out; /* changed by someone else since: theirs now */
	n = snprintf(v, sizeof(v), "%d", value);
	if (pwrite(fd, v, (size_t)n, 0) != n)
		rc = -errno;
out:
	close(fd);
	return rc;
}

static bool adj_recorded(const struct adj_rec *a, int n, pid_t pid)
{
	for (int i = 0; i < n; i++)
		if (a[i].pid == pid)
			return true;
	return false;
}

/*
 * Undo owner: target: every journaled process still alive and still at OWNER_ADJ gets its old
 * value back; a process born in the cgroup during the fault (started at or after `since`, the
 * leaker's start) that inherited OWNER_ADJ gets `base`, the main target's old value. `skip`: the
 * leaker. The same code runs in revert and, from the record alone, in revert_record.
 */
static int adj_restore(const struct adj_rec *a, int n, const char *procs_file, uint64_t since, int base,
		       pid_t skip, struct fl_err *err)
{
	FILE *f = procs_file && procs_file[0] ? fopen(procs_file, "re") : NULL;
	int rc = 0, x;

	for (int i = 0; i < n; i++) {
		int r = adj_set(a[i].pid, a[i].start, OWNER_ADJ, a[i].old);

		if (r && r != -ESRCH && !rc)
			rc = fl_err_set(err, r, "restoring oom_score_adj %d of pid %d: %s", a[i].old,
					(int)a[i].pid, strerror(-r));
	}
	/* read as it goes, not into a buffer: however many were born, none is left at OWNER_ADJ */
	while (f && fscanf(f, "%d", &x) == 1) {
		uint64_t start;
		int r;

		if (x == skip || adj_recorded(a, n, x) || fl_proc_starttime(x, &start) || start < since)
			continue;
		r = adj_set(x, start, OWNER_ADJ, base);
		if (r && r != -ESRCH && !rc)
			rc = fl_err_set(err, r, "restoring oom_score_adj %d of pid %d (born during the fault): %s",
					base, x, strerror(-r));
	}
	if (f)
		fclose(f);
	return rc;
}

/* "PID:START:OLD,..." as journaled. */
static int adj_parse(const char *s, struct adj_rec *a, int max)
{
	int n = 0;

	while (s && *s && n < max) {
		int pid, old, used = 0;
		unsigned long long start;

		if (sscanf(s, "%d:%llu:%d%n", &pid, &start, &old, &used) != 3 || used == 0)
			return -EINVAL;
		a[n++] = (struct adj_rec){.pid = pid, .start = start, .old = old};
		s += used;
		if (*s == ',')
			s++;
		else if (*s)
			return -EINVAL;
	}
	return n;
}

/* ---- who the OOM killer hit ----------------------------------------------------------------- */

static void victim_add(struct leak_state *st, pid_t pid, const char *comm, int64_t ns)
{
	for (int i = 0; i < st->nvictims; i++)
		if (st->victims[i].pid == pid)
			return;
	st->victims_total++;
	if (st->nvictims < MAX_VICTIMS) {
		st->victims[st->nvictims].pid = pid;
		st->victims[st->nvictims].ns = ns;
		snprintf(st->victims[st->nvictims].comm, sizeof(st->victims[0].comm), "%s", comm);
		st->nvictims++;
	}
}

static bool is_victim(const struct leak_state *st, pid_t pid)
{
	for (int i = 0; i < st->nvictims; i++)
		if (st->victims[i].pid == pid)
			return true;
	return false;
}

static bool is_member(const struct leak_state *st, pid_t pid)
{
	if (pid == st->pid || pid == st->target)
		return true;
	for (int i = 0; i < st->nprocs; i++)
		if (st->procs[i].pid == pid)
			return true;
	return false;
}

/* Value of `key=` in a comma-separated oom-kill report ("...,oom_memcg=/x,task=y,pid=N,..."). */
static bool report_field(const char *msg, const char *key, char *out, size_t len)
{
	char pat[32];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), ",%s=", key);
	p = strstr(msg, pat);
	if (!p)
		return false;
	p += strlen(pat);
	n = strcspn(p, ",\n");
	snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
	return true;
}

/*
 * /dev/kmsg stamps each record with the kernel's local_clock, which is not CLOCK_MONOTONIC (the
 * two part by seconds on a host long up, or after a suspend): a marker written to the log now and
 * read back gives the offset between them, to within the write's own few microseconds. Without
 * it (printk.devkmsg=off, the log not writable) the kernel's report still names the victims, but
 * their times are left unknown and a kill is timed by the leaker's own look at the OOM counter.
 */
static void kmsg_calibrate(struct leak_state *st)
{
	char mark[96], rec[8192];
	int64_t t0, t1;
	ssize_t w;
	int fd, len;

	fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* the newline ends the record at once: one without it stays unreadable until the next */
	len = snprintf(mark, sizeof(mark), "faultline: memory.leak clock mark (leaker pid %d)\n", (int)st->pid);
	t0 = fl_mono_ns();
	w = write(fd, mark, (size_t)len);
	t1 = fl_mono_ns();
	close(fd);
	/* the record is in the log when write returns: it is among the next ones read */
	for (int i = 0; w == len && i < 1000 && !st->kmsg_clock; i++) {
		unsigned long long usec;
		ssize_t n = read(st->kmsg, rec, sizeof(rec) - 1);
		char *msg;

		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			break;
		rec[n] = '\0';
		msg = strchr(rec, ';');
		if (msg && !strncmp(msg + 1, mark, (size_t)len - 1) && sscanf(rec, "%*u,%*u,%llu", &usec) == 1) {
			st->kmsg_off = t0 + (t1 - t0) / 2 - (int64_t)usec * 1000;
			st->kmsg_clock = true;
		}
	}
}

/*
 * Read what the kernel logged since the last call. "oom-kill:" names the cgroup under OOM and the
 * victim's, but is rate-limited with the task dump; "Killed process N (comm)" comes with every
 * kill but names no cgroup: it counts when N is one of the cgroup's processes we know.
 */
static void kmsg_scan(struct leak_state *st)
{
	char rec[8192];
	int64_t ns;

	if (st->kmsg < 0)
		return;
	for (int i = 0; i < 100000; i++) {
		char *msg, *p;
		unsigned long long usec = 0;
		ssize_t n = read(st->kmsg, rec, sizeof(rec) - 1);

		if (n < 0 && errno == EPIPE)
			continue; /* records were overwritten before we read them; go on with the rest */
		if (n <= 0)
			break;
		rec[n] = '\0';
		msg = strchr(rec, ';');
		if (!msg)
			continue;
		msg++;
		/* "PRIO,SEQ,USEC,FLAGS;": USEC is the kernel's local_clock, moved onto CLOCK_MONOTONIC */
		ns = st->kmsg_clock && sscanf(rec, "%*u,%*u,%llu", &usec) == 1 ?
			     (int64_t)usec * 1000 + st->kmsg_off : 0;
		if (!strncmp(msg, "oom-kill:", 9)) {
			char oc[PATH_MAX], tc[PATH_MAX], task[16] = "?", pid[16];

			if (!report_field(msg, "pid", pid, sizeof(pid)))
				continue;
			report_field(msg, "task", task, sizeof(task));
			if (st->host ? strstr(msg, "constraint=CONSTRAINT_NONE") != NULL :
			    ((report_field(msg, "oom_memcg", oc, sizeof(oc)) && !strcmp(oc, st->cg.rel)) ||
			     (report_field(msg, "task_memcg", tc, sizeof(tc)) && fl_path_under(tc, st->cg.rel))))
				victim_add(st, (pid_t)atoi(pid), task, ns);
		} else if ((p = strstr(msg, "Killed process "))) {
			char comm[16] = "?", *open_paren, *close_paren;
			pid_t pid = (pid_t)atoi(p + strlen("Killed process "));

			open_paren = strchr(p, '(');
			close_paren = open_paren ? strchr(open_paren, ')') : NULL;
			if (open_paren && close_paren)
				snprintf(comm, sizeof(comm), "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
			if (pid > 0 && (is_member(st, pid) || (st->host && !strncmp(msg, "Out of memory", 13))))
				victim_add(st, pid, comm, ns);
		}
	}
}

/* Who is in the cgroup now (added to what we knew), and which of those we knew are gone. */
static void procs_scan(struct leak_state *st, int64_t now)
{
	char p[PATH_MAX + 32];
	FILE *f;
	int x;

	for (int i = 0; i < st->nprocs; i++)
		if (!st->procs[i].gone_ns && fl_proc_gone(st->procs[i].pid, st->procs[i].start))
			st->procs[i].gone_ns = now;
	if (st->host)
		return;
	snprintf(p, sizeof(p), "%s/cgroup.procs", st->cg.dir);
	if (!(f = fopen(p, "re")))
		return;
	while (fscanf(f, "%d", &x) == 1) {
		struct tracked *t = &st->procs[st->nprocs];
		bool known = x == st->pid;

		for (int i = 0; i < st->nprocs && !known; i++)
			known = st->procs[i].pid == x && !st->procs[i].gone_ns;
		if (!known && st->nprocs == MAX_TRACKED) {
			st->procs_truncated = true; /* said in observe: who vanished is told of the first only */
			break;
		}
		if (known || fl_proc_starttime(x, &t->start))
			continue;
		t->pid = x;
		t->gone_ns = 0;
		fl_proc_comm(x, t->comm, sizeof(t->comm));
		st->nprocs++;
	}
	fclose(f);
}

static void leak_poll_events(struct leak_state *st);

/* Everything observe and revert report, sampled now. */
static void leak_poll(struct leak_state *st, int64_t now)
{
	uint64_t anon, swap, v;

	kmsg_scan(st);
	leak_poll_events(st);
	procs_scan(st, now);
	if (!st->reaped) {
		int status;

		if (waitpid(st->pid, &status, WNOHANG) == st->pid) {
			st->reaped = true;
			st->status = status;
			st->died_ns = now;
			st->held = 0;
		}
	}
	if (!st->reaped && proc_anon(st->pid, &anon, &swap) == 0) {
		st->held = anon > st->anon0 ? anon - st->anon0 : 0;
		st->swapped = swap;
		if (st->held > st->peak)
			st->peak = st->held;
		if ((double)st->held < FULL_SHARE * (double)st->limit) {
			/* the rate is the first growth's: after a drop (owner: target) it starts over from 0 */
			if (st->held > st->grow_bytes && !st->drops) {
				st->grow_ns = now;
				st->grow_bytes = st->held;
			}
		} else if (!st->full_ns) {
			st->full_ns = now;
			st->full_bytes = st->held;
		}
	}
	if (st->target && !st->target_gone_ns && fl_proc_gone(st->target, st->target_start))
		st->target_gone_ns = now;
	if (oom_count(st, &v) == 0) {
		st->oom_now = v;
		/* no kernel log to name victims: the leaker dead of a SIGKILL nobody here sent is one */
		if (st->kmsg < 0 && st->reaped && !st->killed_by_revert && WIFSIGNALED(st->status) &&
		    WTERMSIG(st->status) == SIGKILL && v > st->oom0)
			victim_add(st, st->pid, "fl-leak", 0);
	}
	if (!st->host && memcg_usage(&st->cg, &v) == 0) {
		st->usage = v;
		st->have_usage = true;
	}
	if (!st->host)
		st->cg_limit = memcg_limit(&st->cg);
}

/* owner: target: what the leaker reported since the last look (drops, restarts). */
static void leak_poll_events(struct leak_state *st)
{
	if (st->events >= 0) {
		struct leak_event ev;

		while (read(st->events, &ev, sizeof(ev)) == (ssize_t)sizeof(ev)) {
			if (ev.what == 'D') {
				st->drops++;
				if (!st->first_drop_ns)
					st->first_drop_ns = ev.ns;
				st->last_drop_ns = ev.ns;
			} else if (ev.what == 'R') {
				st->restarts++;
				if (!st->back_ns)
					st->back_ns = ev.ns;
			} else if (ev.what == 'T') {
				st->pids_truncated = true;
			}
		}
	}
}

/* ---- apply, observe, revert ----------------------------------------------------------------- */

static void state_free(struct leak_state *st)
{
	if (!st)
		return;
	if (st->kmsg >= 0)
		close(st->kmsg);
	if (st->events >= 0)
		close(st->events);
	free(st);
}

static void reap(struct leak_state *st)
{
	int status = 0;

	while (waitpid(st->pid, &status, 0) < 0 && errno == EINTR)
		;
	st->reaped = true;
	st->status = status;
}

/*
 * owner: target: the processes of the target's cgroup (the leaker not yet in it) and their
 * oom_score_adj, into st->adj and the journal's "PID:START:OLD,..." form.
 */
static int adj_collect(struct leak_state *st, const char *procs_file, char *out, size_t len, struct fl_err *err)
{
	pid_t pids[MAX_PIDS];
	int k = read_pids(procs_file, pids, MAX_PIDS, NULL);
	size_t off = 0;

	if (strpbrk(procs_file, " \t\n"))
		return fl_err_set(err, -EINVAL, "owner: target: the cgroup path %s has a blank, which the "
						"journal cannot hold", procs_file);
	if (k < 0)
		return fl_err_set(err, -errno, "reading %s: %s", procs_file, strerror(errno));
	st->base_adj = INT_MIN;
	for (int i = 0; i < k; i++) {
		struct adj_rec *a = &st->adj[st->nadj];

		if (pids[i] == st->pid || fl_proc_starttime(pids[i], &a->start) || adj_read(pids[i], &a->old))
			continue; /* gone meanwhile */
		if (st->nadj == MAX_ADJ)
			return fl_err_set(err, -E2BIG, "owner: target: the target's memory cgroup holds more "
						       "than %d processes", MAX_ADJ);
		a->pid = pids[i];
		if (a->pid == st->target || st->base_adj == INT_MIN)
			st->base_adj = a->old;
		off += (size_t)snprintf(out + off, len - off, "%s%d:%llu:%d", st->nadj ? "," : "",
					(int)a->pid, (unsigned long long)a->start, a->old);
		st->nadj++;
	}
	if (!st->nadj)
		return fl_err_set(err, -ESRCH, "owner: target: the target's memory cgroup %s has no process "
					       "to own the leak", st->cg.dir);
	return 0;
}

static int leak_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	int go[2] = {-1, -1}, rep[2] = {-1, -1}, keep[2], rc = 0, child_rc = 0;
	struct leak_state *st = calloc(1, sizeof(*st));
	struct leak_cfg cfg = {0};
	char adjs[MAX_ADJ * 40] = "";
	int64_t seq;
	ssize_t n = -1;
	pid_t pid;

	if (!st) {
		rc = fl_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	st->kmsg = -1;
	st->events = -1;
	st->owner_target = !strcmp(fl_fault_value(f, "owner")->s, "target");
	st->rate = fl_fault_value(f, "rate")->u;
	st->limit = fl_fault_value(f, "limit")->u;
	rc = leak_where(f, &st->host, &st->cg, err);
	if (rc)
		goto out;
	if (f->target && f->target->pid > 0 && fl_proc_starttime(f->target->pid, &st->target_start) == 0)
		st->target = f->target->pid;
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
		rc = fl_err_set(err, -errno, "pipe2: %s", strerror(errno));
		goto out;
	}
	cfg = (struct leak_cfg){.rate = st->rate, .limit = st->limit, .go = go[0], .report = rep[1],
				.owner_target = st->owner_target};
	if (st->owner_target) {
		snprintf(cfg.oom_file, sizeof(cfg.oom_file), "%s/%s", st->cg.dir,
			 st->cg.v == 1 ? "memory.oom_control" : "memory.events");
		snprintf(cfg.procs_file, sizeof(cfg.procs_file), "%s/cgroup.procs", st->cg.dir);
	}
	keep[0] = go[0];
	keep[1] = rep[1];
	pid = fl_spawn_child(keep, 2, err);
	if (pid == 0)
		leaker_main(&cfg);
	close(go[0]);
	close(rep[1]);
	go[0] = rep[1] = -1;
	if (pid < 0) {
		rc = (int)pid;
		goto out;
	}
	st->pid = pid;
	if (fl_proc_starttime(pid, &st->start)) {
		rc = fl_err_set(err, -ESRCH, "the leaker (pid %d) vanished at once", (int)pid);
		goto out;
	}
	if (st->owner_target && (rc = adj_collect(st, cfg.procs_file, adjs, sizeof(adjs), err)))
		goto out;
	/* journaled while it waits for the go: nothing is allocated that the record cannot undo */
	if (st->owner_target)
		seq = fl_journal_append(j, f, "pid=%d start=%llu in=target limit=%llu owner=target base=%d "
				       "procs=%s adj=%s", (int)pid, (unsigned long long)st->start,
				       (unsigned long long)st->limit, st->base_adj, cfg.procs_file, adjs);
	else
		seq = fl_journal_append(j, f, "pid=%d start=%llu in=%s limit=%llu", (int)pid,
					(unsigned long long)st->start, st->host ? "host" : "target",
					(unsigned long long)st->limit);
	if (seq < 0) {
		rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
		goto out;
	}
	/* into the cgroup before the first page, so every page is charged where a real leak's would be */
	if (!st->host && (rc = cg_join(st->cg.dir, pid, err)))
		goto out;
	/* the leak is the service's: the OOM killer is to prefer it, as it would the leaking process */
	for (int i = 0; st->owner_target && i < st->nadj; i++) {
		int r = adj_set(st->adj[i].pid, st->adj[i].start, INT_MIN, OWNER_ADJ);

		if (r && r != -ESRCH) {
			rc = fl_err_set(err, r, "raising oom_score_adj of pid %d to %d: %s", (int)st->adj[i].pid,
					OWNER_ADJ, strerror(-r));
			goto out;
		}
	}
	st->kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (st->kmsg >= 0) {
		lseek(st->kmsg, 0, SEEK_END); /* only what happens from now on */
		kmsg_calibrate(st);
	}
	procs_scan(st, fl_mono_ns());
	st->have_oom = oom_count(st, &st->oom0) == 0;
	st->oom_now = st->oom0;
	if (proc_anon(pid, &st->anon0, &st->swapped))
		st->anon0 = 0;
	st->go_ns = fl_mono_ns();
	if (write(go[1], "g", 1) != 1) {
		rc = fl_err_set(err, -errno, "starting the leaker: %s", strerror(errno));
		goto out;
	}
	{
		struct pollfd pf = {.fd = rep[0], .events = POLLIN};

		if (poll(&pf, 1, READY_MS) > 0)
			n = read(rep[0], &child_rc, sizeof(child_rc));
	}
	if (n != (ssize_t)sizeof(child_rc)) {
		rc = fl_err_set(err, -EIO, "the leaker (pid %d) %s before it started allocating", (int)pid,
				n == 0 ? "died" : "did not answer");
		goto out;
	}
	if (child_rc) {
		rc = fl_err_set(err, child_rc, "the leaker could not reserve %llu bytes: mmap: %s",
				(unsigned long long)st->limit, strerror(-child_rc));
		goto out;
	}
	if (st->owner_target) {
		/* the leaker's drop/restart reports, read by each poll */
		fcntl(rep[0], F_SETFL, fcntl(rep[0], F_GETFL) | O_NONBLOCK);
		st->events = rep[0];
		rep[0] = -1;
	}
	f->state = st;
out:
	for (int i = 0; i < 2; i++) {
		if (go[i] >= 0)
			close(go[i]);
		if (rep[i] >= 0)
			close(rep[i]);
	}
	if (rc && st) {
		if (st->pid > 0 && !st->reaped) {
			kill(st->pid, SIGKILL);
			reap(st);
		}
		if (st->nadj && adj_restore(st->adj, st->nadj, cfg.procs_file, st->start, st->base_adj,
					    st->pid, NULL)) {
			/* a target left at OWNER_ADJ is a fault left behind: kept, so revert tries again */
			st->stopped_ns = fl_mono_ns();
			f->state = st;
			if (err)
				snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg),
					 "; oom_score_adj of the target's processes not restored yet (revert retries)");
		} else {
			state_free(st);
		}
	}
	return rc;
}

static double rel_s(const struct leak_state *st, int64_t t)
{
	return (double)(t - st->go_ns) / 1e9;
}

static void victims_text(const struct leak_state *st, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	if (!st->victims_total) {
		snprintf(buf, len, "none");
		return;
	}
	for (int i = 0; i < st->nvictims && off < len; i++) {
		const struct victim *v = &st->victims[i];
		int w;

		if (v->pid == st->pid)
			w = snprintf(buf + off, len - off, "%sleaker %d", i ? ", " : "", (int)v->pid);
		else if (v->pid == st->target)
			w = snprintf(buf + off, len - off, "%starget %d (%s)", i ? ", " : "", (int)v->pid, v->comm);
		else
			w = snprintf(buf + off, len - off, "%spid %d (%s)", i ? ", " : "", (int)v->pid, v->comm);
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
		if (v->ns > st->go_ns && (w = snprintf(buf + off, len - off, " +%.2fs", rel_s(st, v->ns))) > 0 &&
		    (size_t)w < len - off)
			off += (size_t)w;
	}
	if (st->victims_total > st->nvictims && off < len)
		snprintf(buf + off, len - off, " +%d more", st->victims_total - st->nvictims);
}

static void leaker_text(const struct leak_state *st, char *buf, size_t len)
{
	if (!st->reaped)
		snprintf(buf, len, "alive");
	else if (st->killed_by_revert)
		snprintf(buf, len, "stopped at revert (+%.2fs)", rel_s(st, st->stopped_ns));
	else if (WIFSIGNALED(st->status) && WTERMSIG(st->status) == SIGKILL && is_victim(st, st->pid))
		snprintf(buf, len, "OOM-killed (seen +%.2fs)", rel_s(st, st->died_ns));
	else if (WIFSIGNALED(st->status))
		snprintf(buf, len, "killed by %s (seen +%.2fs), not by faultline", strsignal(WTERMSIG(st->status)),
			 rel_s(st, st->died_ns));
	else
		snprintf(buf, len, "exited with status %d (seen +%.2fs)", WEXITSTATUS(st->status),
			 rel_s(st, st->died_ns));
}

static int leak_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct leak_state *st = f->state;
	int64_t now = fl_mono_ns();
	char text[96];
	uint64_t avail;

	if (!st)
		return -ENOENT;
	if (!st->stopped_ns)
		leak_poll(st, now);
	fl_obs_num(o, "bytes_held", (double)st->held, "%.1fMiB of %.1fMiB (RssAnon from /proc)",
		   (double)st->held / MIB, (double)st->limit / MIB);
	fl_obs_num(o, "bytes_peak", (double)st->peak, "%.1fMiB", (double)st->peak / MIB);
	if (st->grow_ns > st->go_ns && st->grow_ns - st->go_ns >= 100000000LL) {
		double r = (double)st->grow_bytes / ((double)(st->grow_ns - st->go_ns) / 1e9);

		fl_obs_num(o, "rate_observed", r, "%.1fMiB/s (configured %.1fMiB/s)", r / MIB, (double)st->rate / MIB);
	} else if (st->full_ns > st->go_ns) {
		/* full before a growing sample: a lower bound, by the sampling */
		double r = (double)st->full_bytes / ((double)(st->full_ns - st->go_ns) / 1e9);

		fl_obs_num(o, "rate_observed", r, ">= %.1fMiB/s (full by the first sample; configured %.1fMiB/s)",
			   r / MIB, (double)st->rate / MIB);
	}
	if (st->full_ns)
		fl_obs_num(o, "full_seen_s", rel_s(st, st->full_ns), "%.2fs", rel_s(st, st->full_ns));
	if (st->swapped)
		fl_obs_num(o, "bytes_swapped", (double)st->swapped, "%.1fMiB", (double)st->swapped / MIB);
	if (st->host) {
		fl_obs_text(o, "cgroup", "host (faultline's own cgroup)");
		if (mem_available(&avail) == 0)
			fl_obs_num(o, "mem_available", (double)avail, "%.1fMiB", (double)avail / MIB);
	} else {
		fl_obs_text(o, "cgroup", "%.80s (v%d)", st->cg.rel, st->cg.v);
		if (st->have_usage)
			fl_obs_num(o, "cgroup_usage", (double)st->usage, "%.1fMiB", (double)st->usage / MIB);
		if (st->cg_limit == UINT64_MAX)
			fl_obs_text(o, "cgroup_limit", "none");
		else
			fl_obs_num(o, "cgroup_limit", (double)st->cg_limit, "%.1fMiB", (double)st->cg_limit / MIB);
	}
	if (st->have_oom)
		fl_obs_num(o, "oom_kills", (double)(st->oom_now - st->oom0), "%llu %s",
			   (unsigned long long)(st->oom_now - st->oom0), st->host ? "on the host" : "in the cgroup");
	victims_text(st, text, sizeof(text));
	if (st->kmsg < 0 && st->victims_total)
		fl_obs_text(o, "oom_victims", "%.60s (inferred: no kernel log)", text);
	else
		fl_obs_text(o, "oom_victims", "%s", text);
	leaker_text(st, text, sizeof(text));
	fl_obs_text(o, "leaker", "%s", text);
	if (st->target) {
		if (!st->target_gone_ns)
			fl_obs_text(o, "target", "alive (pid %d)", (int)st->target);
		else
			fl_obs_text(o, "target", "pid %d gone (seen +%.2fs)%s", (int)st->target,
				    rel_s(st, st->target_gone_ns),
				    is_victim(st, st->target) ? ", OOM-killed" : "");
	}
	{
		/* processes of the cgroup that vanished without an OOM report: the service's own exits */
		int others = 0;

		for (int i = 0; i < st->nprocs; i++)
			if (st->procs[i].gone_ns && st->procs[i].pid != st->target && !is_victim(st, st->procs[i].pid))
				others++;
		if (others)
			fl_obs_num(o, "vanished_other", others, "%d process(es) of the cgroup exited, not by an OOM kill", others);
	}
	if (st->owner_target) {
		int64_t kill_ns = 0;

		/*
		 * the first kill of one of the target's processes: the kernel's own time when its log's
		 * clock is known (kmsg_calibrate), else when the leaker saw the OOM counter move
		 */
		for (int i = 0; i < st->nvictims; i++)
			if (st->victims[i].pid != st->pid && st->victims[i].ns > st->go_ns &&
			    (!kill_ns || st->victims[i].ns < kill_ns))
				kill_ns = st->victims[i].ns;
		fl_obs_text(o, "owner", "target: oom_score_adj %d on %d process(es), %s", OWNER_ADJ, st->nadj,
			    st->reverted_ns ? "restored at revert" : st->stopped_ns ? "NOT restored yet (revert retries)" :
			    "restored at revert");
		if (st->drops && kill_ns && st->first_drop_ns >= kill_ns)
			fl_obs_num(o, "leak_dropped", st->drops, "%d time(s), with the OOM-killed target (first +%.2fs, "
				   "%.1f ms after the kernel's kill)", st->drops, rel_s(st, st->first_drop_ns),
				   (double)(st->first_drop_ns - kill_ns) / 1e6);
		else if (st->drops)
			fl_obs_num(o, "leak_dropped", st->drops, "%d time(s), with the OOM-killed target (first +%.2fs)",
				   st->drops, rel_s(st, st->first_drop_ns));
		else
			fl_obs_num(o, "leak_dropped", 0, "never: no OOM kill took the target");
		if (!kill_ns)
			kill_ns = st->first_drop_ns;
		if (st->back_ns && kill_ns && st->back_ns >= kill_ns)
			fl_obs_num(o, "restarted_after_s", (double)(st->back_ns - kill_ns) / 1e9,
				   "%.3fs: a new process in the cgroup (+%.2fs); leak restarted %d time(s)",
				   (double)(st->back_ns - kill_ns) / 1e9, rel_s(st, st->back_ns), st->restarts);
		else if (st->drops)
			fl_obs_text(o, "not_restarted", "no new process in the cgroup since the kill at +%.2fs",
				    rel_s(st, kill_ns));
	}
	if (st->procs_truncated || st->pids_truncated)
		fl_obs_text(o, "note", "the cgroup held more than %d processes: %s", st->pids_truncated ? MAX_PIDS :
			    MAX_TRACKED, st->pids_truncated ? "restarts were told from a partial list (may be false)" :
			    "only the first are named as victims or counted in vanished_other");
	if (st->stopped_ns) {
		if (st->host)
			fl_obs_text(o, "freed", "%.1fMiB released at revert", (double)st->held_at_revert / MIB);
		else
			fl_obs_text(o, "freed", "%.1fMiB released at revert; cgroup usage %.1f -> %.1fMiB",
				    (double)st->held_at_revert / MIB, (double)st->usage_at_revert / MIB,
				    (double)st->usage_after_revert / MIB);
	}
	return 0;
}

static int leak_revert(struct fl_fault *f, struct fl_err *err)
{
	struct leak_state *st = f->state;
	char procs[PATH_MAX + 32];
	uint64_t v;
	int rc = 0;

	if (!st || st->reverted_ns)
		return 0;
	/* the leaker once; a retry (the restore below failed) retries only the restore */
	if (!st->stopped_ns) {
		leak_poll(st, fl_mono_ns());
		st->held_at_revert = st->held;
		st->usage_at_revert = st->usage;
		if (!st->reaped) {
			/* SIGKILL frees the whole leak at once, as a restart of a leaking service would */
			kill(st->pid, SIGKILL);
			reap(st);
			st->killed_by_revert = true;
			st->died_ns = fl_mono_ns();
		}
		st->held = 0;
		if (!st->host && memcg_usage(&st->cg, &v) == 0)
			st->usage_after_revert = st->usage = v;
		kmsg_scan(st);
		leak_poll_events(st);
		st->stopped_ns = fl_mono_ns();
	}
	if (st->owner_target) {
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", st->cg.dir);
		rc = adj_restore(st->adj, st->nadj, procs, st->start, st->base_adj, st->pid, err);
	}
	/* reverted (and so marked in the journal) only once nothing of the fault is left */
	if (!rc)
		st->reverted_ns = fl_mono_ns();
	return rc;
}

static void leak_release(struct fl_fault *f)
{
	state_free(f->state);
	f->state = NULL;
}

static int leak_revert_record(const struct fl_journal_rec *r, struct fl_err *err)
{
	char owner[16], procs[PATH_MAX + 32], adjs[FL_REC_DATA];
	struct adj_rec adj[MAX_ADJ];
	int64_t pid, base;
	uint64_t start;
	int n, rc, rc2 = 0;

	if (fl_rec_get_i64(r, "pid", &pid) || fl_rec_get_u64(r, "start", &start))
		return fl_err_set(err, -EINVAL, "journal record %llu lacks pid/start", (unsigned long long)r->seq);
	rc = fl_proc_kill_wait((pid_t)pid, start, 5000, "the leaker", err);
	/* the target's oom_score_adj whether or not the leaker could be killed: each is a fault left */
	if (!fl_rec_get(r, "owner", owner, sizeof(owner)) || strcmp(owner, "target"))
		goto out;
	if (fl_rec_get_i64(r, "base", &base) || !fl_rec_get(r, "procs", procs, sizeof(procs)) ||
	    !fl_rec_get(r, "adj", adjs, sizeof(adjs)) || (n = adj_parse(adjs, adj, MAX_ADJ)) < 0) {
		rc2 = fl_err_set(rc ? NULL : err, -EINVAL, "journal record %llu (owner=target) lacks "
				 "base/procs/adj", (unsigned long long)r->seq);
		goto out;
	}
	rc2 = adj_restore(adj, n, procs, start, (int)base, (pid_t)pid, rc ? NULL : err);
out:
	/* the first failure's message is kept; the other's is said by its code */
	if (rc && rc2 && err)
		snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg),
			 "; restoring the target's oom_score_adj failed too: %s", strerror(-rc2));
	return rc ? rc : rc2;
}

const struct fl_injector fl_inj_memory_leak = {
	.type = "memory.leak",
	.summary = "leak memory at a rate up to a cap inside the target's memory cgroup (pressure, OOM kills)",
	.preflight = "in: target: the target has a memory cgroup (v1 memory.limit_in_bytes or v2 "
		     "memory.max) that is not the root; in: host: allow_host_wide; what the cgroup's "
		     "limit lets the leak take stays under 90% of MemAvailable",
	.params = leak_params,
	.validate = leak_validate,
	.probe = leak_probe,
	.check = leak_check,
	.describe = leak_describe,
	.apply = leak_apply,
	.observe = leak_observe,
	.revert = leak_revert,
	.release = leak_release,
	.revert_record = leak_revert_record,
};
