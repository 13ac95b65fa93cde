/* /proc and cgroup readers: process identity, state, process group, open fd count, cgroup mounts. */
#include "procfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Read /proc/PID/stat and return a pointer just past the ") " that ends comm (comm may hold ')'). */
static int read_stat(pid_t pid, char *buf, size_t len, char **rest)
{
	char path[64];
	ssize_t n;
	int fd;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -ESRCH;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EINVAL;
	*rest = p + 2;
	return 0;
}

int fl_proc_state(pid_t pid, char *state)
{
	char buf[1024], *rest;
	int rc = read_stat(pid, buf, sizeof(buf), &rest);

	if (rc)
		return rc;
	*state = rest[0];
	return 0;
}

static int stat_field(pid_t pid, int field, unsigned long long *out)
{
	char buf[1024], *rest, *save = NULL, *tok;
	int rc = read_stat(pid, buf, sizeof(buf), &rest);

	if (rc)
		return rc;
	/* rest starts at field 3 (state) */
	tok = strtok_r(rest, " ", &save);
	for (int i = 3; tok && i < field; i++)
		tok = strtok_r(NULL, " ", &save);
	if (!tok)
		return -EINVAL;
	*out = strtoull(tok, NULL, 10);
	return 0;
}

int fl_proc_starttime(pid_t pid, uint64_t *out)
{
	unsigned long long v;
	int rc = stat_field(pid, 22, &v);

	if (!rc)
		*out = v;
	return rc;
}

int fl_proc_pgid(pid_t pid, pid_t *out)
{
	unsigned long long v;
	int rc = stat_field(pid, 5, &v);

	if (!rc)
		*out = (pid_t)v;
	return rc;
}

int fl_proc_comm(pid_t pid, char *buf, size_t len)
{
	char path[64];
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	snprintf(buf, len, "?");
	if (!(f = fopen(path, "re")))
		return -errno;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	else
		rc = -EIO;
	fclose(f);
	return rc;
}

int fl_proc_ppid(pid_t pid, pid_t *out)
{
	unsigned long long v;
	int rc = stat_field(pid, 4, &v);

	if (!rc)
		*out = (pid_t)v;
	return rc;
}

int fl_proc_is_kthread(pid_t pid)
{
	const unsigned long long pf_kthread = 0x00200000; /* include/linux/sched.h */
	unsigned long long flags;
	int rc = stat_field(pid, 9, &flags);

	return rc ? rc : !!(flags & pf_kthread);
}

int fl_proc_count_fds(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int fl_proc_same(pid_t pid, uint64_t start)
{
	uint64_t now;

	return fl_proc_starttime(pid, &now) == 0 && now == start;
}

int fl_have_cap(int cap)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long eff = 0;
	int found = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			found = 1;
			break;
		}
	fclose(f);
	return found && cap >= 0 && cap < 64 && ((eff >> cap) & 1);
}

int fl_cgroup_mount(const char *controller, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char mnt[4096], fstype[64], opts[1024];
		char *sep = strstr(line, " - ");

		/* fields: id parent maj:min root mount-point options ... - fstype source super-options */
		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %*s %1023s", fstype, opts) != 2)
			continue;
		if (!controller && !strcmp(fstype, "cgroup2")) {
			snprintf(out, len, "%s", mnt);
			rc = 0;
			break;
		}
		if (controller && !strcmp(fstype, "cgroup")) {
			char *save = NULL;

			for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
				if (!strcmp(o, controller)) {
					snprintf(out, len, "%s", mnt);
					rc = 0;
				}
			}
			if (!rc)
				break;
		}
	}
	fclose(f);
	return rc;
}

int64_t fl_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

bool fl_path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (!n || !path[0])
		return false;
	if (!strcmp(dir, "/"))
		return path[0] == '/';
	return !strncmp(path, dir, n) && (path[n] == '/' || !path[n]);
}
