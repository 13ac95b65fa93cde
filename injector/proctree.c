/* Which processes a name match may reach: the target's main process's descendants and its own cgroups, with faultline and the host protected. */
#include "proctree.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "journal.h"
#include "procfs.h"

bool fl_proc_protected(pid_t pid, pid_t target)
{
	pid_t self = getpid(), p = self, pp;

	if (pid <= 1 || fl_proc_is_kthread(pid) == 1)
		return true;
	for (int d = 0; p > 1 && d < 256; d++) {
		if (p == pid)
			return true;
		if (fl_proc_ppid(p, &p))
			break;
	}
	return pid != target && fl_proc_ppid(pid, &pp) == 0 && pp == self;
}

/* The cgroup v2 path ("0::") and the v1 memory path of pid (0: ourselves), as /proc/PID/cgroup names them. */
static void cgroups_of(pid_t pid, char *v2, size_t l2, char *mem, size_t lm)
{
	char p[64], line[4096];
	FILE *f;

	v2[0] = mem[0] = '\0';
	if (pid > 0)
		snprintf(p, sizeof(p), "/proc/%d/cgroup", (int)pid);
	else
		snprintf(p, sizeof(p), "/proc/self/cgroup");
	if (!(f = fopen(p, "re")))
		return;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL, *save = NULL;

		line[strcspn(line, "\n")] = '\0';
		if (!c2)
			continue;
		*c2 = '\0';
		if (c2 == c1 + 1 && !strncmp(line, "0:", 2)) {
			snprintf(v2, l2, "%s", c2 + 1);
			continue;
		}
		for (char *c = strtok_r(c1 + 1, ",", &save); c; c = strtok_r(NULL, ",", &save))
			if (!strcmp(c, "memory"))
				snprintf(mem, lm, "%s", c2 + 1);
	}
	fclose(f);
}

/*
 * abs (a cgroup directory) as the path /proc/PID/cgroup prints, below mount; "" when it is not
 * below mount, is the root (every process), or holds faultline itself (its processes are not the
 * target's alone: a name match there could hit the drill's neighbours).
 */
static void scope_of(const char *abs, const char *controller, const char *own, char *out, size_t len)
{
	char mount[PATH_MAX];
	size_t n;

	out[0] = '\0';
	if (!abs[0] || fl_cgroup_mount(controller, mount, sizeof(mount)))
		return;
	n = strlen(mount);
	if (strncmp(abs, mount, n) || (abs[n] && abs[n] != '/') || !abs[n] || !strcmp(abs + n, "/"))
		return;
	if (fl_path_under(own, abs + n))
		return;
	snprintf(out, len, "%s", abs + n);
}

int fl_proc_tree_init(struct fl_proc_tree *t, const struct fl_target_info *info)
{
	char own_v2[PATH_MAX], own_mem[PATH_MAX];

	memset(t, 0, sizeof(*t));
	if (!info || info->pid <= 0 || fl_proc_starttime(info->pid, &t->root_start))
		return -ESRCH;
	t->root = info->pid;
	cgroups_of(0, own_v2, sizeof(own_v2), own_mem, sizeof(own_mem));
	scope_of(info->cgroup_v2, NULL, own_v2, t->scope_v2, sizeof(t->scope_v2));
	scope_of(info->memcg, "memory", own_mem, t->scope_mem, sizeof(t->scope_mem));
	return 0;
}

bool fl_proc_tree_in_cgroup(const struct fl_proc_tree *t, pid_t pid)
{
	char v2[PATH_MAX], mem[PATH_MAX];

	if (!t->scope_v2[0] && !t->scope_mem[0])
		return false;
	cgroups_of(pid, v2, sizeof(v2), mem, sizeof(mem));
	return (t->scope_v2[0] && fl_path_under(v2, t->scope_v2)) ||
	       (t->scope_mem[0] && fl_path_under(mem, t->scope_mem));
}

static bool descends(pid_t pid, pid_t root)
{
	pid_t p = pid;

	for (int d = 0; d < 64 && p > 1; d++) {
		if (fl_proc_ppid(p, &p))
			return false;
		if (p == root)
			return true;
	}
	return false;
}

bool fl_proc_tree_has(const struct fl_proc_tree *t, pid_t pid)
{
	return (fl_proc_same(t->root, t->root_start) && descends(pid, t->root)) || fl_proc_tree_in_cgroup(t, pid);
}

int fl_proc_tree_find(const struct fl_proc_tree *t, const char *comm, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)) && n < max) {
		char name[16], *end, state = 0;
		long x = strtol(e->d_name, &end, 10);

		if (*end || x <= 1 || (pid_t)x == t->root)
			continue;
		if (fl_proc_comm((pid_t)x, name, sizeof(name)) || strcmp(name, comm))
			continue;
		/* a zombie keeps its name but is dead already: its parent has not reaped it yet */
		if (fl_proc_state((pid_t)x, &state) || state == 'Z' || state == 'X')
			continue;
		if (fl_proc_protected((pid_t)x, t->root) || !fl_proc_tree_has(t, (pid_t)x))
			continue;
		out[n++] = (pid_t)x;
	}
	closedir(d);
	return n;
}

const char *fl_proc_tree_cgroup(const struct fl_proc_tree *t)
{
	return t->scope_v2[0] ? t->scope_v2 : t->scope_mem;
}

int fl_proc_comm_check(const char *comm, struct fl_err *err)
{
	if (strlen(comm) <= 15 && comm[0])
		return 0;
	fl_err_set(err, -EINVAL, "'%s' can never match: command names are 1 to 15 characters (the kernel cuts them)",
		   comm);
	fl_err_hint(err, "use '%.15s'", comm);
	return -EINVAL;
}

void fl_proc_comm_word(const char *comm, char *out, size_t len)
{
	size_t i;

	for (i = 0; comm[i] && i + 1 < len; i++)
		out[i] = (comm[i] > ' ' && comm[i] != '#' && comm[i] != '=' && comm[i] < 127) ? comm[i] : '_';
	out[i] = '\0';
}

#ifndef PIDFD_SIGNAL_PROCESS_GROUP
#define PIDFD_SIGNAL_PROCESS_GROUP (1U << 2) /* linux/pidfd.h, Linux 6.9 */
#endif

int fl_proc_hold(pid_t pid, uint64_t start, int *pfd)
{
	*pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (*pfd < 0 && errno != ENOSYS)
		return -errno;
	/* checked after the open: the pidfd then names this very process, whatever the pid becomes */
	if (!fl_proc_same(pid, start)) {
		if (*pfd >= 0)
			close(*pfd);
		*pfd = -1;
		return -ESRCH;
	}
	return 0;
}

int fl_proc_send(int pfd, pid_t pid, uint64_t start, pid_t to, int sig)
{
	if (to != pid && to >= 0)
		return -EINVAL;
	if (pfd < 0 && !fl_proc_same(pid, start))
		return -ESRCH;
	if (pfd >= 0 && to == pid)
		return syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) ? -errno : 0;
	/* the group pid leads: the kernel resolves it from the pidfd (EINVAL before 6.9: kill(2) below) */
	if (pfd >= 0 && -to == pid && !syscall(SYS_pidfd_send_signal, pfd, sig, NULL, PIDFD_SIGNAL_PROCESS_GROUP))
		return 0;
	if (pfd >= 0 && -to == pid && errno != EINVAL)
		return -errno;
	return kill(to, sig) ? -errno : 0;
}

int fl_proc_signal(pid_t pid, uint64_t start, pid_t to, int sig)
{
	int pfd, rc = fl_proc_hold(pid, start, &pfd);

	if (rc)
		return rc;
	rc = fl_proc_send(pfd, pid, start, to, sig);
	if (pfd >= 0)
		close(pfd);
	return rc;
}

bool fl_proc_gone(pid_t pid, uint64_t start)
{
	char s = 0;

	return !fl_proc_same(pid, start) || (fl_proc_state(pid, &s) == 0 && (s == 'Z' || s == 'X'));
}

int fl_proc_kill_wait(pid_t pid, uint64_t start, int timeout_ms, const char *what, struct fl_err *err)
{
	int pfd, rc;

	if (pid <= 0)
		return 0;
	rc = fl_proc_hold(pid, start, &pfd);
	if (rc == -ESRCH)
		return 0;
	if (rc)
		return fl_err_set(err, rc, "pidfd_open(%d): %s", (int)pid, strerror(-rc));
	rc = fl_proc_send(pfd, pid, start, pid, SIGKILL);
	if (rc && rc != -ESRCH) {
		fl_err_set(err, rc, "SIGKILL to %s (pid %d): %s", what, (int)pid, strerror(-rc));
	} else if (pfd >= 0) {
		/* a pidfd is readable once its process has exited (a zombie included) */
		struct pollfd pf = {.fd = pfd, .events = POLLIN};

		rc = poll(&pf, 1, timeout_ms) > 0 ? 0 : -ETIMEDOUT;
	} else {
		/* no pidfds (before 5.3): watch /proc */
		rc = -ETIMEDOUT;
		for (int ms = 0; ms <= timeout_ms && rc; ms += 2)
			if (fl_proc_gone(pid, start))
				rc = 0;
			else
				usleep(2000);
	}
	if (rc == -ETIMEDOUT)
		fl_err_set(err, rc, "%s (pid %d) did not exit within %d ms of SIGKILL", what, (int)pid, timeout_ms);
	if (pfd >= 0)
		close(pfd);
	return rc == -ESRCH ? 0 : rc;
}

int fl_proc_kill_record(const struct fl_journal_rec *r, const char *what, struct fl_err *err)
{
	int64_t pid;
	uint64_t start;

	if (fl_rec_get_i64(r, "pid", &pid) || fl_rec_get_u64(r, "start", &start) || pid <= 0)
		return fl_err_set(err, -EINVAL, "journal record %llu lacks pid/start", (unsigned long long)r->seq);
	return fl_proc_kill_wait((pid_t)pid, start, 5000, what, err);
}
