/* The target: launched in its own process group and faultline-owned cgroups, or found by pid/pidfile/cgroup/unit; readiness and stop. */
#include "target.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "load.h"
#include "procfs.h"

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- cgroup mounts ---------------------------------------------------------------------- */

static bool file_has_word(const char *path, const char *word)
{
	char buf[1024];
	FILE *f = fopen(path, "re");
	bool found = false;

	if (!f)
		return false;
	while (fscanf(f, "%1023s", buf) == 1)
		if (!strcmp(buf, word))
			found = true;
	fclose(f);
	return found;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	n = n < 0 ? -errno : 0;
	close(fd);
	return (int)n;
}

/* ---- network namespaces ----------------------------------------------------------------- */

static void set_netns(struct fl_target *t, const char *spec)
{
	snprintf(t->info.netns, sizeof(t->info.netns), "%s%s", strchr(spec, '/') ? "" : "/run/netns/", spec);
}

/* A found process in a namespace of its own: network faults act there, not in faultline's. */
static void netns_of_pid(struct fl_target *t)
{
	char path[64];
	struct stat a, b;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)t->info.pid);
	if (stat(path, &a) == 0 && stat("/proc/self/ns/net", &b) == 0 &&
	    (a.st_dev != b.st_dev || a.st_ino != b.st_ino))
		snprintf(t->info.netns, sizeof(t->info.netns), "%s", path);
}

/* ---- launch ------------------------------------------------------------------------------ */

static int add_own_cgroup(struct fl_target *t, const char *mount, const char *run_id, struct fl_err *err)
{
	char *dir = t->own_cgroups[t->n_own_cgroups];

	snprintf(dir, sizeof(t->own_cgroups[0]), "%s/" FL_OWNED_PREFIX "%s", mount, run_id);
	if (mkdir(dir, 0755) < 0)
		return fl_err_set(err, -errno, "cannot create cgroup %s: %s", dir, strerror(errno));
	t->n_own_cgroups++;
	return 0;
}

static int write_limit(const char *path, uint64_t bytes, struct fl_err *err)
{
	char v[32];
	int fd, n, rc = 0;

	n = snprintf(v, sizeof(v), "%llu", (unsigned long long)bytes);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fl_err_set(err, -errno, "target.memory_limit: open %s: %s", path, strerror(errno));
	if (write(fd, v, (size_t)n) != n)
		rc = fl_err_set(err, -errno, "target.memory_limit: writing %s to %s: %s", v, path, strerror(errno));
	close(fd);
	return rc;
}

static bool swap_on(void)
{
	char line[128];
	unsigned long long kib = 0;
	FILE *f = fopen("/proc/meminfo", "re");
	bool on = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SwapTotal: %llu kB", &kib) == 1) {
			on = kib > 0;
			break;
		}
	fclose(f);
	return on;
}

#define SWAP_WARNING "the leak can be swapped out instead of OOM-killed: the drill may see no OOM kill"

const char *fl_target_swap_warning(void)
{
	char mount[4096], p[4096 + 256 + 32];
	bool seen = false, has = false;
	struct dirent *d;
	DIR *dir;

	if (!swap_on())
		return NULL;
	/* where fl_target_launch puts the memory cgroup: v2 when its root offers memory, else v1 */
	if (fl_cgroup_mount(NULL, mount, sizeof(mount)) == 0 &&
	    snprintf(p, sizeof(p), "%s/cgroup.controllers", mount) > 0 && file_has_word(p, "memory")) {
		/* the root has no memory.swap.max: ask a child, as the launch's cgroup will be one */
		if (!(dir = opendir(mount)))
			return NULL;
		while (!seen && (d = readdir(dir))) {
			snprintf(p, sizeof(p), "%s/%s/memory.max", mount, d->d_name);
			if (d->d_name[0] == '.' || access(p, F_OK))
				continue;
			seen = true;
			snprintf(p, sizeof(p), "%s/%s/memory.swap.max", mount, d->d_name);
			has = access(p, F_OK) == 0;
		}
		closedir(dir);
		return seen && !has ? "swap is on and cgroup v2 has no memory.swap.max (no swap accounting): "
				      SWAP_WARNING : NULL;
	}
	if (fl_cgroup_mount("memory", mount, sizeof(mount)) == 0 &&
	    snprintf(p, sizeof(p), "%s/memory.memsw.limit_in_bytes", mount) > 0 && access(p, F_OK))
		return "swap is on and the v1 memory controller has no memory.memsw.limit_in_bytes (boot with "
		       "swapaccount=1): " SWAP_WARNING;
	return NULL;
}

/*
 * target.memory_limit: written to the memory cgroup just created for the launch, before the child
 * joins it, so the limit is in force from the first page; the cgroup (and the limit) goes at stop.
 * Swap is limited too where the controller can (else the leak's pages are swapped out and no OOM
 * kill comes): v2 memory.swap.max 0; v1 memory.memsw.limit_in_bytes (memory+swap) the same limit,
 * written after memory.limit_in_bytes, which it may never be below.
 */
static int set_memory_limit(struct fl_target *t, uint64_t bytes, struct fl_err *err)
{
	char p[4200], sw[4200];
	bool v1;
	int rc;

	if (!t->info.memcg[0]) {
		fl_err_set(err, -EOPNOTSUPP, "target.memory_limit: this host has no memory cgroup controller "
					     "(no cgroup v1 memory hierarchy, no memory in cgroup v2)");
		fl_err_hint(err, "drop target.memory_limit, or run where a memory controller is mounted");
		return -EOPNOTSUPP;
	}
	/* v2 when the memory cgroup is the cgroup2 dir (its controllers include memory), else v1 */
	v1 = strcmp(t->info.memcg, t->info.cgroup_v2) != 0;
	snprintf(p, sizeof(p), "%s/%s", t->info.memcg, v1 ? "memory.limit_in_bytes" : "memory.max");
	snprintf(sw, sizeof(sw), "%s/%s", t->info.memcg, v1 ? "memory.memsw.limit_in_bytes" : "memory.swap.max");
	rc = write_limit(p, bytes, err);
	if (rc)
		goto out;
	t->memory_limit = bytes;
	snprintf(t->memory_limit_file, sizeof(t->memory_limit_file), "%s", p);
	if (access(sw, F_OK) == 0) {
		rc = write_limit(sw, v1 ? bytes : 0, err);
		if (rc)
			goto out;
		snprintf(t->memory_swap_file, sizeof(t->memory_swap_file), "%s", sw);
	} else if (swap_on()) {
		snprintf(t->memory_note, sizeof(t->memory_note), "swap is on and the cgroup has no %s: %s",
			 v1 ? "memory.memsw.limit_in_bytes (boot with swapaccount=1)" : "memory.swap.max",
			 SWAP_WARNING);
	}
out:
	return rc;
}

/* In the child: join the cgroups, set up stdio, environment and signals, exec. Never returns. */
static void child_exec(const struct fl_target_spec *spec, const struct fl_target *t, int logfd,
		       int errfd, pid_t parent, int (*hook)(void *), void *hook_arg)
{
	sigset_t none;
	int e;

	setpgid(0, 0);
	/* never outlive the controller; the getppid check closes the race with its death */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	for (int i = 0; i < t->n_own_cgroups; i++) {
		char p[4200];

		snprintf(p, sizeof(p), "%s/cgroup.procs", t->own_cgroups[i]);
		if ((e = write_str(p, "0")) < 0)
			goto fail;
	}
	/* like `ip netns exec`: the service lives in its namespace, faultline stays in its own */
	if (t->info.netns[0]) {
		int nsfd = open(t->info.netns, O_RDONLY | O_CLOEXEC);

		if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
			e = -errno;
			goto fail;
		}
		close(nsfd);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	{
		int null = open("/dev/null", O_RDONLY);

		if (null < 0 || dup2(null, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0) {
			e = -errno;
			goto fail;
		}
	}
	if (spec->cwd && chdir(spec->cwd) < 0) {
		e = -errno;
		goto fail;
	}
	for (int i = 0; i < spec->nenv; i++)
		setenv(spec->env[i].key, spec->env[i].value, 1);
	/* the target must not inherit faultline's fds (the journal, sockets, the epoll) */
	syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
	/* last, so nothing of our own set-up passes through what it installs (a seccomp filter) */
	if (hook && (e = hook(hook_arg)) < 0)
		goto fail;
	execvp(spec->run.v[0], spec->run.v);
	e = -errno;
fail:
	if (write(errfd, &e, sizeof(e)) < 0)
		_exit(126);
	_exit(127);
}

int fl_target_launch(const struct fl_target_spec *spec, const char *run_id, const char *log_dir,
		     bool allow_host_wide, int (*child_hook)(void *), void *hook_arg,
		     struct fl_target **out, struct fl_err *err)
{
	struct fl_target *t = calloc(1, sizeof(*t));
	char mount[4096], **argv = NULL;
	int pipefd[2] = {-1, -1}, logfd = -1, rc = 0, e = 0;
	pid_t pid;
	ssize_t n;

	*out = NULL;
	if (!t)
		return fl_err_set(err, -ENOMEM, "out of memory");
	t->pidfd = -1;
	t->info.allow_host_wide = allow_host_wide;
	snprintf(t->info.url, sizeof(t->info.url), "%s", spec->url ? spec->url : "");
	(void)argv;
	if (mkdir(log_dir, 0755) < 0 && errno != EEXIST) {
		rc = fl_err_set(err, -errno, "cannot create %s: %s", log_dir, strerror(errno));
		goto fail;
	}
	snprintf(t->log_path, sizeof(t->log_path), "%s/target.log", log_dir);
	logfd = open(t->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0) {
		rc = fl_err_set(err, -errno, "cannot open %s: %s", t->log_path, strerror(errno));
		goto fail;
	}
	/* cgroup v2 for BPF scoping; v1 memory/cpu where those controllers live on v1 */
	if (fl_cgroup_mount(NULL, mount, sizeof(mount)) == 0) {
		rc = add_own_cgroup(t, mount, run_id, err);
		if (rc)
			goto fail;
		snprintf(t->info.cgroup_v2, sizeof(t->info.cgroup_v2), "%s", t->own_cgroups[0]);
		{
			char ctl[4200];

			snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers", t->info.cgroup_v2);
			if (file_has_word(ctl, "memory"))
				snprintf(t->info.memcg, sizeof(t->info.memcg), "%s", t->info.cgroup_v2);
		}
	}
	if (!t->info.memcg[0] && fl_cgroup_mount("memory", mount, sizeof(mount)) == 0) {
		rc = add_own_cgroup(t, mount, run_id, err);
		if (rc)
			goto fail;
		snprintf(t->info.memcg, sizeof(t->info.memcg), "%s", t->own_cgroups[t->n_own_cgroups - 1]);
	}
	if (spec->memory_limit && (rc = set_memory_limit(t, spec->memory_limit, err)))
		goto fail;
	if (fl_cgroup_mount("cpu", mount, sizeof(mount)) == 0 && strcmp(mount, t->info.memcg) &&
	    t->n_own_cgroups < 4) {
		rc = add_own_cgroup(t, mount, run_id, err);
		if (rc)
			goto fail;
	}
	if (spec->netns) {
		set_netns(t, spec->netns);
		if (access(t->info.netns, R_OK) < 0) {
			rc = fl_err_set(err, -errno, "target.netns %s: %s", t->info.netns, strerror(errno));
			fl_err_hint(err, "create it first (ip netns add NAME) or fix the name");
			goto fail;
		}
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		rc = fl_err_set(err, -errno, "pipe2: %s", strerror(errno));
		goto fail;
	}
	{
		pid_t parent = getpid();

		pid = fork();
		if (pid < 0) {
			rc = fl_err_set(err, -errno, "fork: %s", strerror(errno));
			goto fail;
		}
		if (pid == 0)
			child_exec(spec, t, logfd, pipefd[1], parent, child_hook, hook_arg);
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	setpgid(pid, pid); /* also here, so the group exists whichever side runs first */
	t->info.pid = t->info.pgid = pid;
	t->info.launched = true;
	t->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	/* EOF: exec succeeded (the pipe was close-on-exec); an int: why it failed */
	do {
		n = read(pipefd[0], &e, sizeof(e));
	} while (n < 0 && errno == EINTR);
	if (n == sizeof(e)) {
		rc = fl_err_set(err, e, "cannot start `%s`: %s", spec->run.v[0], strerror(-e));
		if (e == -ENOENT)
			fl_err_hint(err, "target.run paths are relative to the directory faultline runs in");
		waitpid(pid, NULL, 0);
		t->info.pid = 0;
		goto fail;
	}
	close(pipefd[0]);
	close(logfd);
	*out = t;
	return 0;
fail:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (logfd >= 0)
		close(logfd);
	fl_target_stop(t, 0, NULL);
	fl_target_free(t);
	return rc;
}

/* ---- attach ------------------------------------------------------------------------------ */

static bool is_root_cgroup(const char *dir, const char *mount)
{
	char a[PATH_MAX], b[PATH_MAX];

	return realpath(dir, a) && realpath(mount, b) && !strcmp(a, b);
}

/* cgroup paths of a running pid, from /proc/PID/cgroup. */
static void cgroups_of(struct fl_target *t)
{
	char path[64], line[4096], mount[4096];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)t->info.pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *nl = strchr(line, '\n'), *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (nl)
			*nl = '\0';
		if (!c2)
			continue;
		if (!strncmp(line, "0::", 3) && fl_cgroup_mount(NULL, mount, sizeof(mount)) == 0)
			snprintf(t->info.cgroup_v2, sizeof(t->info.cgroup_v2), "%s%s", mount, c2 + 1);
		if (strstr(c1, ":memory:") == c1 && fl_cgroup_mount("memory", mount, sizeof(mount)) == 0)
			snprintf(t->info.memcg, sizeof(t->info.memcg), "%s%s", mount, c2 + 1);
	}
	fclose(f);
	/* a v2 cgroup is the memory cgroup only where v2 carries the memory controller */
	if (!t->info.memcg[0] && t->info.cgroup_v2[0]) {
		char ctl[4200];

		snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers", t->info.cgroup_v2);
		if (file_has_word(ctl, "memory"))
			snprintf(t->info.memcg, sizeof(t->info.memcg), "%s", t->info.cgroup_v2);
	}
}

/* The lowest pid in a cgroup (or its first non-empty descendant): its main process. */
static pid_t main_pid_of_cgroup(const char *dir, int depth)
{
	char p[4200];
	FILE *f;
	pid_t best = 0;
	int x;
	DIR *d;
	struct dirent *e;

	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	f = fopen(p, "re");
	if (f) {
		while (fscanf(f, "%d", &x) == 1)
			if (!best || x < best)
				best = x;
		fclose(f);
	}
	if (best || depth > 8)
		return best;
	d = opendir(dir);
	while (d && (e = readdir(d)) && !best) {
		if (e->d_type == DT_DIR && e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			best = main_pid_of_cgroup(p, depth + 1);
		}
	}
	if (d)
		closedir(d);
	return best;
}

/* systemctl is the only way to ask systemd for a unit's cgroup without D-Bus code: a checked shell-out. */
static int unit_cgroup(const char *unit, char *cg, size_t len, pid_t *main_pid, struct fl_err *err)
{
	char cmd[512], line[4096];
	FILE *p;
	int status, n = 0;

	for (const char *c = unit; *c; c++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@._-:\\", *c))
			return fl_err_set(err, -EINVAL, "systemd unit name '%s' has odd characters", unit);
	snprintf(cmd, sizeof(cmd), "systemctl show -p MainPID -p ControlGroup --value -- '%s' 2>&1", unit);
	p = popen(cmd, "re");
	if (!p)
		return fl_err_set(err, -errno, "cannot run systemctl: %s", strerror(errno));
	*main_pid = 0;
	cg[0] = '\0';
	while (fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = '\0';
		if (n == 0)
			*main_pid = (pid_t)atoi(line);
		else if (n == 1)
			snprintf(cg, len, "%s", line);
		n++;
	}
	status = pclose(p);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) == 127)
		return fl_err_set(err, -ENOENT, "systemd_unit needs systemctl, which is not available here");
	if (WEXITSTATUS(status) != 0 || n < 2)
		return fl_err_set(err, -ENOENT, "systemctl show %s failed (exit %d)", unit, WEXITSTATUS(status));
	if (!cg[0] || *main_pid <= 0)
		return fl_err_set(err, -ESRCH, "systemd unit %s is not running", unit);
	return 0;
}

/*
 * Targets no scenario can mean, whatever allow_host_wide says: a kernel thread (signals and
 * rlimits do nothing useful to it), faultline itself, or one of its ancestors (the shell, sudo,
 * sshd or CI runner that started the drill: freezing it or starving its fds stalls the drill and
 * can cut the operator off; a pidfile or a systemd MainPID that points there is a mistake).
 */
static int refuse_own_kin(pid_t pid, struct fl_err *err)
{
	pid_t p = getpid();
	char comm[64];

	if (fl_proc_is_kthread(pid) == 1)
		return fl_err_set(err, -EPERM, "pid %d is a kernel thread: not a target", (int)pid);
	for (int depth = 0; p > 1 && depth < 256; depth++) {
		if (p == pid) {
			fl_proc_comm(pid, comm, sizeof(comm));
			if (depth == 0)
				return fl_err_set(err, -EPERM, "pid %d is faultline itself: not a target", (int)pid);
			return fl_err_set(err, -EPERM,
					  "pid %d (%s) is an ancestor of this faultline (%d level%s up): a fault on "
					  "it would hit the drill itself; point the target at the service",
					  (int)pid, comm, depth, depth == 1 ? "" : "s");
		}
		if (fl_proc_ppid(p, &p))
			break;
	}
	return 0;
}

int fl_target_attach(const struct fl_target_spec *spec, bool allow_host_wide, struct fl_target **out,
		     struct fl_err *err)
{
	struct fl_target *t = calloc(1, sizeof(*t));
	char mount[4096] = "", dir[4200];
	int rc = 0;

	*out = NULL;
	if (!t)
		return fl_err_set(err, -ENOMEM, "out of memory");
	t->pidfd = -1;
	t->info.allow_host_wide = allow_host_wide;
	snprintf(t->info.url, sizeof(t->info.url), "%s", spec->url ? spec->url : "");
	fl_cgroup_mount(NULL, mount, sizeof(mount));
	if (spec->pid) {
		t->info.pid = spec->pid;
	} else if (spec->pidfile) {
		FILE *f = fopen(spec->pidfile, "re");
		int x = 0;

		if (!f || fscanf(f, "%d", &x) != 1 || x <= 0) {
			rc = fl_err_set(err, f ? -EINVAL : -errno, "cannot read a pid from %s", spec->pidfile);
			if (f)
				fclose(f);
			goto fail;
		}
		fclose(f);
		t->info.pid = x;
	} else if (spec->cgroup) {
		if (spec->cgroup[0] == '/' && strncmp(spec->cgroup, "/sys/", 5))
			snprintf(dir, sizeof(dir), "%s%s", mount, spec->cgroup);
		else if (spec->cgroup[0] == '/')
			snprintf(dir, sizeof(dir), "%s", spec->cgroup);
		else
			snprintf(dir, sizeof(dir), "%s/%s", mount, spec->cgroup);
		if (!allow_host_wide && mount[0] && is_root_cgroup(dir, mount)) {
			rc = fl_err_set(err, -EPERM, "cgroup %s is the root cgroup: refused without allow_host_wide", dir);
			goto fail;
		}
		t->info.pid = main_pid_of_cgroup(dir, 0);
		if (!t->info.pid) {
			rc = fl_err_set(err, -ESRCH, "no process in cgroup %s", dir);
			goto fail;
		}
	} else if (spec->systemd_unit) {
		char cg[4096];

		rc = unit_cgroup(spec->systemd_unit, cg, sizeof(cg), &t->info.pid, err);
		if (rc)
			goto fail;
	}
	if (t->info.pid <= 0) {
		/* url only: faults that need a process fail their own preflight with the reason */
		*out = t;
		return 0;
	}
	if (t->info.pid == 1 && !allow_host_wide) {
		rc = fl_err_set(err, -EPERM, "pid 1 is the whole host: refused without allow_host_wide");
		goto fail;
	}
	rc = refuse_own_kin(t->info.pid, err);
	if (rc)
		goto fail;
	if (fl_proc_starttime(t->info.pid, &t->start)) {
		rc = fl_err_set(err, -ESRCH, "no process %d", (int)t->info.pid);
		goto fail;
	}
	fl_proc_pgid(t->info.pid, &t->info.pgid);
	cgroups_of(t);
	if (spec->netns)
		set_netns(t, spec->netns);
	else
		netns_of_pid(t);
	t->pidfd = (int)syscall(SYS_pidfd_open, t->info.pid, 0);
	*out = t;
	return 0;
fail:
	fl_target_free(t);
	return rc;
}

/* ---- readiness, exit, stop ---------------------------------------------------------------- */

static const char *log_tail(const struct fl_target *t, char *buf, size_t len)
{
	int fd = open(t->log_path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)(len - 1))
		lseek(fd, size - (off_t)(len - 1), SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\n' && p[1])
			*p = '|';
	return buf;
}

struct probe {
	bool done;
	struct fl_req_result r;
};

static void probe_cb(void *arg, const struct fl_req_result *r)
{
	struct probe *p = arg;

	if (!p->done) {
		p->done = true;
		p->r = *r;
	}
}

/* One attempt through the load generator itself, so "answers" means what the drill will see. */
static int probe_http(const char *url, char *why, size_t whylen, struct fl_err *err)
{
	struct fl_load_cfg cfg = {.url = url, .rate = 1000, .connections = 1, .timeout_ns = 500000000LL};
	struct probe p = {0};
	struct fl_load *l;
	struct pollfd pf;
	int rc = fl_load_create(&cfg, probe_cb, &p, &l, err);

	if (rc)
		return rc;
	fl_load_start(l, mono_ns());
	pf.fd = fl_load_fd(l);
	pf.events = POLLIN;
	while (!p.done) {
		fl_load_dispatch(l, mono_ns());
		fl_load_stop(l, mono_ns()); /* the first slot is the only one wanted */
		if (p.done)
			break;
		poll(&pf, 1, 10);
	}
	fl_load_destroy(l);
	if (p.r.outcome == FL_REQ_OK)
		return 0;
	snprintf(why, whylen, "%s", fl_req_outcome_name(p.r.outcome));
	return 1;
}

int fl_target_wait_ready(struct fl_target *t, const char *url, int64_t timeout_ns, int cancel_fd,
			 struct fl_err *err)
{
	int64_t deadline = mono_ns() + timeout_ns;
	char why[256] = "no attempt yet", tail[512];

	for (;;) {
		struct pollfd pf[2] = {{.fd = t->pidfd, .events = POLLIN}, {.fd = cancel_fd, .events = POLLIN}};
		int rc = probe_http(url, why, sizeof(why), err);

		if (rc <= 0)
			return rc;
		if (fl_target_check_exit(t)) {
			char how[128];

			return fl_err_set(err, -ECHILD, "target %s before it was ready; end of %s: %s",
					  fl_target_exit_text(t, how, sizeof(how)), t->log_path,
					  log_tail(t, tail, sizeof(tail)));
		}
		if (mono_ns() >= deadline) {
			char d[32];

			return fl_err_set(err, -ETIMEDOUT, "target did not answer %s within %s (last attempt: %s)",
					  url, fl_format_duration(timeout_ns, d, sizeof(d)), why);
		}
		if (t->beat)
			t->beat(t->beat_arg);
		if (poll(pf, 2, 50) > 0 && (pf[1].revents & POLLIN))
			return fl_err_set(err, -EINTR, "interrupted while waiting for the target");
	}
}

bool fl_target_check_exit(struct fl_target *t)
{
	siginfo_t si;

	if (!t || t->exited || t->info.pid <= 0)
		return t ? t->exited : false;
	if (t->info.launched) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)t->info.pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid == t->info.pid) {
			t->exit_status = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status;
			t->exited = true;
		}
	} else if (!fl_proc_same(t->info.pid, t->start)) {
		t->exited = true;
	}
	if (t->exited)
		t->exited_at_ns = mono_ns();
	return t->exited;
}

const char *fl_target_exit_text(const struct fl_target *t, char *buf, size_t len)
{
	if (!t->info.launched)
		snprintf(buf, len, "pid %d is gone", (int)t->info.pid);
	else if (WIFEXITED(t->exit_status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(t->exit_status));
	else
		snprintf(buf, len, "was killed by %s", strsignal(t->exit_status & 0x7f));
	return buf;
}

static bool wait_gone(struct fl_target *t, int64_t grace_ns)
{
	int64_t until = mono_ns() + grace_ns;

	for (;;) {
		if (fl_target_check_exit(t))
			return true;
		if (mono_ns() >= until)
			return false;
		if (t->beat)
			t->beat(t->beat_arg);
		if (t->pidfd >= 0) {
			struct pollfd pf = {.fd = t->pidfd, .events = POLLIN};

			poll(&pf, 1, 20);
		} else {
			usleep(20000);
		}
	}
}

int fl_cgroup_remove(const char *dir, int wait_ms, struct fl_err *err)
{
	char p[4200];

	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	for (int waited = 0;; waited += 10) {
		FILE *f = fopen(p, "re");
		int x, left = 0;

		if (!f && errno == ENOENT)
			return 0; /* gone already */
		if (f) {
			while (fscanf(f, "%d", &x) == 1) {
				kill(x, SIGKILL);
				left++;
			}
			fclose(f);
		}
		if (!left && (rmdir(dir) == 0 || errno == ENOENT))
			return 0;
		if (waited >= wait_ms)
			break;
		usleep(10000);
	}
	return fl_err_set(err, -EBUSY, "cannot remove cgroup %s: %s", dir, strerror(errno));
}

int fl_cgroup_owned_each(int (*cb)(const char *dir, const char *run_id, void *arg), void *arg)
{
	static const char *const hierarchies[] = {NULL /* cgroup2 */, "memory", "cpu"};
	char seen[3][4096] = {""}; /* mounts already walked: cpu and memory may share one v1 mount */
	int rc = 0;

	for (int h = 0; h < 3; h++) {
		char mount[4096] = "";
		struct dirent *e;
		bool dup = false;
		DIR *d;

		if (fl_cgroup_mount(hierarchies[h], mount, sizeof(mount)) || !mount[0])
			continue;
		for (int k = 0; k < h; k++)
			dup |= !strcmp(seen[k], mount);
		memcpy(seen[h], mount, sizeof(mount));
		if (dup || !(d = opendir(mount)))
			continue;
		while ((e = readdir(d))) {
			char dir[4096 + 256 + 2];
			int r;

			if (e->d_type != DT_DIR || strncmp(e->d_name, FL_OWNED_PREFIX, strlen(FL_OWNED_PREFIX)))
				continue;
			snprintf(dir, sizeof(dir), "%s/%s", mount, e->d_name);
			r = cb(dir, e->d_name + strlen(FL_OWNED_PREFIX), arg);
			if (r && !rc)
				rc = r;
		}
		closedir(d);
	}
	return rc;
}

int fl_target_stop(struct fl_target *t, int64_t grace_ns, struct fl_err *err)
{
	int rc = 0;

	if (!t)
		return 0;
	if (t->info.launched && t->info.pid > 0 && !t->stopped) {
		if (!fl_target_check_exit(t)) {
			kill(-t->info.pgid, SIGTERM);
			if (!wait_gone(t, grace_ns)) {
				kill(-t->info.pgid, SIGKILL);
				wait_gone(t, 5 * 1000000000LL);
			}
		}
		/* the group may hold children the main process left behind */
		kill(-t->info.pgid, SIGKILL);
		t->stopped = true;
	}
	for (int i = t->n_own_cgroups - 1; i >= 0; i--) {
		int r = fl_cgroup_remove(t->own_cgroups[i], 1000, err);

		if (r)
			rc = r;
		else
			t->own_cgroups[i][0] = '\0';
	}
	if (!rc)
		t->n_own_cgroups = 0;
	return rc;
}

void fl_target_free(struct fl_target *t)
{
	if (!t)
		return;
	if (t->pidfd >= 0)
		close(t->pidfd);
	free(t);
}
