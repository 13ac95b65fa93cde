/* The target's reach for name matches (process.kill, process.pause): its main process's tree and its own cgroups, never faultline, its ancestors, pid 1 or a kernel thread. */
#ifndef FL_PROCTREE_H
#define FL_PROCTREE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "injector.h"

struct fl_proc_tree {
	pid_t root;               /* the target's main process when the tree was taken */
	uint64_t root_start;      /* its start time: a recycled root pid has no tree */
	char scope_v2[PATH_MAX];  /* the target's own cgroups ("" when the root or faultline's own) */
	char scope_mem[PATH_MAX];
};

/* Take the target's tree: its main pid (with start time) and its own cgroups. 0 or -ESRCH. */
int fl_proc_tree_init(struct fl_proc_tree *t, const struct fl_target_info *info);
/*
 * Never a victim: pid 1, kernel threads, faultline itself and its ancestors, and faultline's
 * own helpers other than `target` (the one it launched, which may share the target's cgroup).
 */
bool fl_proc_protected(pid_t pid, pid_t target);
/* Whether pid lives in the target's own cgroup (v2 or v1 memory). */
bool fl_proc_tree_in_cgroup(const struct fl_proc_tree *t, pid_t pid);
/* Whether pid belongs to the target: below its main process, or in its own cgroup. */
bool fl_proc_tree_has(const struct fl_proc_tree *t, pid_t pid);
/*
 * Live processes named comm that belong to the target (never its main process, never a protected
 * one), at most max into out. Their count, or -errno.
 */
int fl_proc_tree_find(const struct fl_proc_tree *t, const char *comm, pid_t *out, int max);
/* A `comm` parameter that can match (1 to 15 characters: the kernel cuts longer names): 0, or -EINVAL with why. */
int fl_proc_comm_check(const char *comm, struct fl_err *err);
/* The cgroup the tree reaches, for messages ("" when none). */
const char *fl_proc_tree_cgroup(const struct fl_proc_tree *t);

/* comm may hold blanks, '#' and '=', which journal values may not: a safe spelling of it into out. */
void fl_proc_comm_word(const char *comm, char *out, size_t len);
/*
 * A handle on pid while it still is the process that started at `start`, so a pid recycled since
 * is never signalled: *pfd is a pidfd, or -1 on a kernel without them. 0, -ESRCH (gone) or -errno.
 */
int fl_proc_hold(pid_t pid, uint64_t start, int *pfd);
/*
 * Signal what fl_proc_hold holds: `to` is pid itself, or -pgid for its process group (through the
 * pidfd when pid leads it, else kill(2) while the pidfd shows pid alive). 0 or -errno (-ESRCH: gone).
 */
int fl_proc_send(int pfd, pid_t pid, uint64_t start, pid_t to, int sig);
/* fl_proc_hold, fl_proc_send, close: one signal to pid (or its group) only if it still is that process. */
int fl_proc_signal(pid_t pid, uint64_t start, pid_t to, int sig);
/* pid is no longer the process that started at `start`, or is a zombie: it holds nothing any more. */
bool fl_proc_gone(pid_t pid, uint64_t start);
/*
 * A helper from a journal record (leaker, burner, port holder, swarm child): SIGKILL pid only while
 * it still is that process, then wait up to timeout_ms until it has exited, so its memory, fds and
 * sockets are released. 0 (also when it was gone already), -ETIMEDOUT or -errno; `what` names it
 * in the message ("the leaker").
 */
int fl_proc_kill_wait(pid_t pid, uint64_t start, int timeout_ms, const char *what, struct fl_err *err);
/* fl_proc_kill_wait (5 s) of the helper a journal record names by pid= and start=: a revert_record. */
struct fl_journal_rec;
int fl_proc_kill_record(const struct fl_journal_rec *r, const char *what, struct fl_err *err);

#endif
