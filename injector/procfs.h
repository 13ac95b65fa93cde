/* Small /proc readers the injectors share: process identity (pid + start time), state, open fds. */
#ifndef FL_PROCFS_H
#define FL_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Start time in clock ticks since boot (field 22 of /proc/PID/stat): with the pid, a process identity. */
int fl_proc_starttime(pid_t pid, uint64_t *out);
/* One-letter state (R S D T t Z X ...) of /proc/PID/stat; 0 or -errno. */
int fl_proc_state(pid_t pid, char *state);
/* Process group of pid; 0 or -errno. */
int fl_proc_pgid(pid_t pid, pid_t *out);
/* The command name of pid (/proc/PID/comm, without the newline) into buf; 0 or -errno ("?" then). */
int fl_proc_comm(pid_t pid, char *buf, size_t len);
/* Parent pid of pid; 0 or -errno. */
int fl_proc_ppid(pid_t pid, pid_t *out);
/* Whether pid is a kernel thread (PF_KTHREAD in /proc/PID/stat's flags): 1, 0, or -errno. */
int fl_proc_is_kthread(pid_t pid);
/* Number of entries in /proc/PID/fd, or -errno. */
int fl_proc_count_fds(pid_t pid);
/* Whether this process has capability `cap` (CAP_*) in its effective set, from /proc/self/status. */
int fl_have_cap(int cap);
/* Mount point of the cgroup2 hierarchy (controller NULL), or of the v1 hierarchy carrying it. */
int fl_cgroup_mount(const char *controller, char *out, size_t len);
/* True when pid still is the process that had start time `start`. */
int fl_proc_same(pid_t pid, uint64_t start);
/* CLOCK_MONOTONIC now, in ns: the clock every injector times its observations with. */
int64_t fl_mono_ns(void);
/*
 * Whether a cgroup path (as /proc/PID/cgroup or an OOM report prints it) is dir or below it:
 * "/a/b" is under "/a", "/ab" is not; "/" holds every path, "" none.
 */
bool fl_path_under(const char *path, const char *dir);

#endif
