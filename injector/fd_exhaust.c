/* fd.exhaust: lower the target's RLIMIT_NOFILE with prlimit(2) so accept()/open() fail with EMFILE; restore it exactly on revert. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <unistd.h>

#include "injector.h"
#include "journal.h"
#include "procfs.h"

static const struct fl_param fd_params[] = {
	{.name = "limit", .kind = FL_P_INT, .required = true, .min = "1", .max = "1048576",
	 .help = "the soft RLIMIT_NOFILE to set; below the fds already open, every new fd fails with EMFILE"},
	{.name = "hard", .kind = FL_P_INT, .min = "1", .max = "1048576",
	 .help = "also lower the hard limit (default: keep it); refused without CAP_SYS_RESOURCE, "
		 "which restoring it needs"},
	{0},
};

struct fd_state {
	pid_t pid;
	uint64_t start;
	struct rlimit old, set;
	int fds_at_apply;
	int peak_fds;
	struct rlimit seen;      /* the limit read back from the kernel while applied */
	bool seen_set;
	bool reverted;
};

static int fd_probe(struct fl_err *err)
{
	struct rlimit r;

	/* prlimit on ourselves proves the syscall is there; per-target permission is checked later */
	if (prlimit(0, RLIMIT_NOFILE, NULL, &r) < 0)
		return fl_err_set(err, -errno, "prlimit(2): %s", strerror(errno));
	/* works without it, within limits: say which now rather than at 3 a.m. */
	if (!fl_have_cap(CAP_SYS_RESOURCE))
		fl_err_set(err, 0, "no CAP_SYS_RESOURCE: `hard` is refused (a lowered hard limit could not "
				   "be restored) and only targets whose uids and gids are all faultline's (%d/%d) can be limited",
			   (int)getuid(), (int)getgid());
	return 0;
}

static int fd_wanted(const struct fl_fault *f, const struct rlimit *old, struct rlimit *want,
		     struct fl_err *err)
{
	const struct fl_value *lim = fl_fault_value(f, "limit"), *hard = fl_fault_value(f, "hard");

	want->rlim_cur = (rlim_t)lim->i;
	want->rlim_max = hard->set ? (rlim_t)hard->i : old->rlim_max;
	if (want->rlim_cur > want->rlim_max)
		return fl_err_set(err, -EINVAL, "limit %llu is above the hard limit %llu",
				  (unsigned long long)want->rlim_cur, (unsigned long long)want->rlim_max);
	/* raising a hard limit back needs CAP_SYS_RESOURCE: without it the fault could not be undone */
	if (want->rlim_max > old->rlim_max ||
	    (want->rlim_max < old->rlim_max && !fl_have_cap(CAP_SYS_RESOURCE))) {
		fl_err_set(err, -EPERM, "%s the hard RLIMIT_NOFILE (%llu -> %llu) needs CAP_SYS_RESOURCE%s",
			   want->rlim_max > old->rlim_max ? "raising" : "lowering",
			   (unsigned long long)old->rlim_max, (unsigned long long)want->rlim_max,
			   want->rlim_max < old->rlim_max ? " to undo, and faultline does not have it" : "");
		fl_err_hint(err, "omit `hard`: the soft limit alone makes accept() fail with EMFILE");
		return -EPERM;
	}
	return 0;
}

static int fd_check(const struct fl_fault *f, struct fl_err *err)
{
	struct rlimit old, want;
	pid_t pid = f->target ? f->target->pid : 0;

	if (pid <= 0)
		return fl_err_set(err, -ESRCH, "fd.exhaust needs the target's pid "
					       "(target.run, pid, pidfile, cgroup or systemd_unit)");
	if (pid == 1 && !f->target->allow_host_wide)
		return fl_err_set(err, -EPERM, "refusing to limit pid 1 without allow_host_wide");
	if (prlimit(pid, RLIMIT_NOFILE, NULL, &old) < 0) {
		int rc = -errno;

		if (rc == -EPERM)
			return fl_err_set(err, rc, "not permitted to read pid %d's limits: prlimit needs "
						   "CAP_SYS_RESOURCE (run as root)", (int)pid);
		return fl_err_set(err, rc, "prlimit(%d): %s", (int)pid, strerror(-rc));
	}
	return fd_wanted(f, &old, &want, err);
}

static void fd_describe(const struct fl_fault *f, char *buf, size_t len)
{
	const struct fl_value *hard = fl_fault_value(f, "hard");

	if (hard->set)
		snprintf(buf, len, "prlimit(target, RLIMIT_NOFILE, %lld/%lld), old limits restored on revert",
			 (long long)fl_fault_value(f, "limit")->i, (long long)hard->i);
	else
		snprintf(buf, len, "prlimit(target, RLIMIT_NOFILE, soft %lld), old limits restored on revert",
			 (long long)fl_fault_value(f, "limit")->i);
}

static int fd_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	struct fd_state *st;
	int64_t seq;
	int rc;

	st = calloc(1, sizeof(*st));
	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	st->pid = f->target->pid;
	if (fl_proc_starttime(st->pid, &st->start)) {
		rc = fl_err_set(err, -ESRCH, "target pid %d is gone", (int)st->pid);
		goto fail;
	}
	if (prlimit(st->pid, RLIMIT_NOFILE, NULL, &st->old) < 0) {
		rc = fl_err_set(err, -errno, "prlimit(%d) read: %s", (int)st->pid, strerror(errno));
		goto fail;
	}
	rc = fd_wanted(f, &st->old, &st->set, err);
	if (rc)
		goto fail;
	seq = fl_journal_append(j, f, "pid=%d start=%llu old_cur=%llu old_max=%llu", (int)st->pid,
				(unsigned long long)st->start, (unsigned long long)st->old.rlim_cur,
				(unsigned long long)st->old.rlim_max);
	if (seq < 0) {
		rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
		goto fail;
	}
	st->fds_at_apply = fl_proc_count_fds(st->pid);
	st->peak_fds = st->fds_at_apply;
	f->state = st;
	if (prlimit(st->pid, RLIMIT_NOFILE, &st->set, NULL) < 0)
		return fl_err_set(err, -errno, "prlimit(%d, RLIMIT_NOFILE, %llu/%llu): %s", (int)st->pid,
				  (unsigned long long)st->set.rlim_cur,
				  (unsigned long long)st->set.rlim_max, strerror(errno));
	return 0;
fail:
	free(st);
	return rc;
}

static int fd_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct fd_state *st = f->state;
	struct rlimit now;
	int fds;

	if (!st)
		return -ENOENT;
	fds = fl_proc_count_fds(st->pid);
	if (fds > st->peak_fds)
		st->peak_fds = fds;
	fl_obs_num(o, "fds_at_apply", st->fds_at_apply, "%d", st->fds_at_apply);
	fl_obs_num(o, "fds_peak", st->peak_fds, "%d", st->peak_fds);
	/* read back from the kernel, not echoed from the config: what was really in force */
	if (!st->reverted && prlimit(st->pid, RLIMIT_NOFILE, NULL, &now) == 0) {
		st->seen = now;
		st->seen_set = true;
		fl_obs_num(o, "fds_open", fds, "%d", fds);
	}
	if (st->seen_set)
		fl_obs_num(o, "limit_in_force", (double)st->seen.rlim_cur, "%llu/%llu",
			   (unsigned long long)st->seen.rlim_cur, (unsigned long long)st->seen.rlim_max);
	fl_obs_text(o, "limit_before", "%llu/%llu", (unsigned long long)st->old.rlim_cur,
		    (unsigned long long)st->old.rlim_max);
	return 0;
}

static int restore(pid_t pid, uint64_t start, const struct rlimit *old, struct fl_err *err)
{
	/* a pid that died or was recycled has no limit of ours left to undo */
	if (!fl_proc_same(pid, start))
		return 0;
	if (prlimit(pid, RLIMIT_NOFILE, old, NULL) < 0 && errno != ESRCH)
		return fl_err_set(err, -errno, "prlimit(%d) restore %llu/%llu: %s", (int)pid,
				  (unsigned long long)old->rlim_cur, (unsigned long long)old->rlim_max,
				  strerror(errno));
	return 0;
}

static int fd_revert(struct fl_fault *f, struct fl_err *err)
{
	struct fd_state *st = f->state;
	int rc;

	if (!st || st->reverted)
		return 0;
	fd_observe(f, &(struct fl_observation){0});
	rc = restore(st->pid, st->start, &st->old, err);
	if (!rc)
		st->reverted = true;
	return rc;
}

static int fd_revert_record(const struct fl_journal_rec *r, struct fl_err *err)
{
	int64_t pid;
	uint64_t start, cur, max;
	struct rlimit old;

	if (fl_rec_get_i64(r, "pid", &pid) || fl_rec_get_u64(r, "start", &start) ||
	    fl_rec_get_u64(r, "old_cur", &cur) || fl_rec_get_u64(r, "old_max", &max))
		return fl_err_set(err, -EINVAL, "journal record %llu lacks pid/start/old_cur/old_max",
				  (unsigned long long)r->seq);
	old.rlim_cur = (rlim_t)cur;
	old.rlim_max = (rlim_t)max;
	return restore((pid_t)pid, start, &old, err);
}

const struct fl_injector fl_inj_fd_exhaust = {
	.type = "fd.exhaust",
	.summary = "lower the target's RLIMIT_NOFILE (prlimit) so accept()/open() fail with EMFILE",
	.preflight = "the target has a pid (not pid 1); prlimit(2) may read its RLIMIT_NOFILE; "
		     "limit <= hard limit; a lowered hard limit can be restored (CAP_SYS_RESOURCE)",
	.params = fd_params,
	.probe = fd_probe,
	.check = fd_check,
	.describe = fd_describe,
	.apply = fd_apply,
	.observe = fd_observe,
	.revert = fd_revert,
	.revert_record = fd_revert_record,
};
