/* Recovery from the journal alone: `faultline recover`, the guardian that outlives a dead controller, and the check that stops a run over a mess. */
#include "recovery.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "injector.h"
#include "journal.h"
#include "procfs.h"
#include "target.h"

static void say(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(FILE *out, const char *fmt, ...)
{
	va_list ap;

	if (!out)
		return;
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fflush(out);
}

/*
 * A launched target: kill its process group, then empty and remove its cgroups. The group is
 * killed while its leader is still the process we started, and also when the leader is gone but
 * the group is not (a child that outlived it: hardened's standby takes over when its primary
 * dies): the kernel never hands out a pid that is still some group's id, so a group without its
 * leader is still ours. Only a leader pid reused by another process stops us.
 */
static int stop_recorded_target(const struct fl_journal_rec *r, struct fl_err *err)
{
	int64_t pid = 0, pgid = 0;
	uint64_t start = 0;
	char key[8], cg[4096];

	if (fl_rec_get_i64(r, "pid", &pid) || fl_rec_get_u64(r, "start", &start) ||
	    fl_rec_get_i64(r, "pgid", &pgid))
		return fl_err_set(err, -EINVAL, "target record %llu lacks pid/start/pgid",
				  (unsigned long long)r->seq);
	if (pid > 1 && pgid > 1 && (fl_proc_same((pid_t)pid, start) || (kill((pid_t)pid, 0) < 0 && errno == ESRCH)))
		kill(-(pid_t)pgid, SIGKILL);
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "cg%d", i);
		if (!fl_rec_get(r, key, cg, sizeof(cg)))
			continue;
		/* only a cgroup of ours: the name carries faultline's prefix */
		if (!strstr(cg, "/" FL_OWNED_PREFIX))
			continue;
		/* a killed target may still be exiting: give it 10 s */
		if (fl_cgroup_remove(cg, 10000, err))
			return -EBUSY;
	}
	return 0;
}

int fl_recover_journal(const char *path, bool force, FILE *out, struct fl_recover_stats *st)
{
	struct fl_journal_info info;
	struct fl_err err;
	int failed = 0, rc;

	st->journals++;
	rc = fl_journal_read(path, &info, &err);
	if (rc) {
		say(out, "recover: %s: %s\n", path, err.msg);
		st->failed++;
		return rc;
	}
	if (info.owner_alive && !force) {
		say(out, "recover: run %s (pid %d) is still running or its guardian is at work: left alone\n",
		    info.run_id, (int)info.owner_pid);
		st->alive++;
		fl_journal_info_free(&info);
		return 0;
	}
	if (info.torn) {
		say(out, "recover: run %s: %d damaged record(s) at the end of the journal ignored (the "
			 "writer died mid-write; the side effect they announced was not made)\n",
		    info.run_id, info.torn);
		st->torn += info.torn;
	}
	/* newest first: later faults may sit on top of earlier ones */
	for (int i = info.nrecs - 1; i >= 0; i--) {
		const struct fl_journal_rec *r = &info.recs[i];
		const struct fl_injector *inj;

		if (r->reverted)
			continue;
		fl_err_clear(&err);
		if (!strcmp(r->injector, FL_TARGET_RECORD)) {
			rc = stop_recorded_target(r, &err);
		} else if ((inj = fl_injector_find(r->injector))) {
			rc = inj->revert_record(r, &err);
		} else {
			rc = fl_err_set(&err, -ENOENT, "no injector '%s' in this faultline", r->injector);
		}
		if (rc) {
			say(out, "recover: run %s: FAILED to revert %s (%s): %s\n", info.run_id, r->fault,
			    r->injector, err.msg);
			st->failed++;
			failed++;
			continue;
		}
		fl_journal_mark_reverted_path(path, r->seq, NULL);
		st->reverted++;
		say(out, "recover: run %s: reverted %s (%s): %s\n", info.run_id, r->fault, r->injector, r->data);
	}
	if (!failed) {
		unlink(path);
		say(out, "recover: run %s: clean; journal removed\n", info.run_id);
	}
	fl_journal_info_free(&info);
	return failed ? -EIO : 0;
}

static bool is_journal(const char *name)
{
	size_t n = strlen(name);

	return n > 8 && !strcmp(name + n - 8, ".journal");
}

int fl_recover_dir(const char *dir, FILE *out, struct fl_recover_stats *st)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		char path[4200];

		if (!is_journal(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (fl_recover_journal(path, false, out, st))
			rc = -EIO;
	}
	closedir(d);
	return rc;
}

int fl_recover_pending(const char *dir, char *first, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		struct fl_journal_info info;
		char path[4200];
		bool pending = false;

		if (!is_journal(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (fl_journal_read(path, &info, NULL))
			continue;
		for (int i = 0; i < info.nrecs && !info.owner_alive; i++)
			pending |= !info.recs[i].reverted;
		if (pending && !n++)
			snprintf(first, len, "%s", path);
		fl_journal_info_free(&info);
	}
	closedir(d);
	return n;
}

/* ---- run ids and the sweep of owned objects whose journal is lost ------------------------ */

void fl_run_id_make(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;
	unsigned int rnd = 0;
	struct timespec ts;

	gmtime_r(&t, &tm);
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		rnd = (unsigned int)ts.tv_nsec;
	}
	snprintf(buf, len, "%04d%02d%02dT%02d%02d%02d-%d-%04x", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)getpid(), rnd & 0xffff);
}

bool fl_run_id_parse(const char *id, pid_t *owner)
{
	static const char head[] = "DDDDDDDDTDDDDDD-"; /* D: a digit */
	const char *p = id;
	long pid = 0;

	/* YYYYMMDDTHHMMSS-PID-XXXX exactly: a user's "faultline-prod" cgroup is never ours */
	for (size_t i = 0; i < sizeof(head) - 1; i++, p++)
		if (head[i] == 'D' ? !isdigit((unsigned char)*p) : *p != head[i])
			return false;
	if (!isdigit((unsigned char)*p))
		return false;
	while (isdigit((unsigned char)*p) && pid < INT_MAX / 10)
		pid = pid * 10 + (*p++ - '0');
	if (*p++ != '-' || pid <= 0)
		return false;
	for (int i = 0; i < 4; i++, p++)
		if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
			return false;
	if (*p)
		return false;
	if (owner)
		*owner = (pid_t)pid;
	return true;
}

struct sweep {
	const char *state_dir;
	FILE *out;
	struct fl_recover_stats *st;
};

/* Is this run over, with nobody left to clean up after it? Unsure means no. */
static bool run_is_dead(const char *state_dir, const char *run_id, const char **why)
{
	char path[4200], comm[64];
	pid_t owner;
	int rc;

	snprintf(path, sizeof(path), "%s/%s.journal", state_dir, run_id);
	if (access(path, F_OK) == 0) {
		*why = "its journal is still there (live, or not yet recovered)";
		return false;
	}
	if (!fl_run_id_parse(run_id, &owner)) {
		*why = "not a faultline run id";
		return false;
	}
	/* a run with another --state-dir: its controller still running means it is alive */
	rc = fl_proc_comm(owner, comm, sizeof(comm));
	if (!rc && !strncmp(comm, "faultline", 9)) {
		*why = "its controller is still running";
		return false;
	}
	if (rc && rc != -ENOENT && rc != -ESRCH) {
		*why = "its controller's pid exists but cannot be read";
		return false;
	}
	*why = "no journal and its controller is gone";
	return true;
}

static int sweep_cgroup(const char *dir, const char *run_id, void *arg)
{
	struct sweep *sw = arg;
	const char *why;
	struct fl_err err;

	if (!fl_run_id_parse(run_id, NULL))
		return 0; /* someone else's name that happens to start with our prefix */
	if (!run_is_dead(sw->state_dir, run_id, &why))
		return 0;
	fl_err_clear(&err);
	if (fl_cgroup_remove(dir, 2000, &err)) {
		say(sw->out, "recover: FAILED to sweep cgroup %s (run %s, %s): %s\n", dir, run_id, why, err.msg);
		sw->st->failed++;
		return -EBUSY;
	}
	say(sw->out, "recover: swept cgroup %s (run %s: %s)\n", dir, run_id, why);
	sw->st->swept++;
	return 0;
}

static bool sweep_dead(const struct fl_sweep *s, const char *run_id)
{
	const struct sweep *sw = s->priv;
	const char *why;

	return fl_run_id_parse(run_id, NULL) && run_is_dead(sw->state_dir, run_id, &why);
}

static void sweep_report(const struct fl_sweep *s, const char *run_id, const char *what, int rc,
			 const char *msg)
{
	struct sweep *sw = s->priv;

	if (rc) {
		say(sw->out, "recover: FAILED to sweep %s (run %s): %s\n", what, run_id, msg ? msg : strerror(-rc));
		sw->st->failed++;
		return;
	}
	say(sw->out, "recover: swept %s (run %s: no journal and its controller is gone)\n", what, run_id);
	sw->st->swept++;
}

int fl_recover_sweep(const char *state_dir, FILE *out, struct fl_recover_stats *st)
{
	struct sweep sw = {.state_dir = state_dir, .out = out, .st = st};
	struct fl_sweep inj_sw = {.dead = sweep_dead, .report = sweep_report, .priv = &sw};
	int rc = fl_cgroup_owned_each(sweep_cgroup, &sw) ? -EIO : 0;

	/* then what the injectors named: rules, filters, pins, each found by its own injector */
	for (int i = 0; i < fl_injector_count; i++)
		if (fl_injectors[i]->sweep && fl_injectors[i]->sweep(&inj_sw))
			rc = -EIO;
	return rc;
}

/* ---- the guardian ------------------------------------------------------------------------ */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keep stdio, the pipe and the journal (its lock marks the run as handled); close the rest. */
static void close_other_fds(int keep, const char *journal_path)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int dfd = d ? dirfd(d) : -1;

	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name);
		char link[4096];
		ssize_t n;

		if (e->d_name[0] == '.' || fd <= 2 || fd == keep || fd == dfd)
			continue;
		n = readlinkat(dfd, e->d_name, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			if (strstr(link, journal_path) || strstr(journal_path, link))
				continue;
		}
		close(fd);
	}
	if (d)
		closedir(d);
}

static void guardian_main(int rfd, const char *journal, int64_t heartbeat_ns, pid_t controller)
{
	int64_t last = mono_ms(), limit = heartbeat_ns / 1000000;
	struct fl_recover_stats st = {0};
	bool done = false;
	char buf[64];

	setsid(); /* out of the controller's session and process group: Ctrl-C does not reach it */
	close_other_fds(rfd, journal);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	for (;;) {
		struct pollfd pf = {.fd = rfd, .events = POLLIN};
		int64_t left = limit - (mono_ms() - last);
		ssize_t n;

		if (left <= 0) {
			fprintf(stderr, "faultline guardian: no heartbeat from the controller (pid %d) for %lld ms: "
					"killing it and reverting its faults\n", (int)controller, (long long)limit);
			kill(controller, SIGKILL);
			break;
		}
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		n = read(rfd, buf, sizeof(buf));
		if (n > 0) {
			last = mono_ms();
			done |= memchr(buf, 'd', (size_t)n) != NULL;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (done)
			_exit(0);
		fprintf(stderr, "faultline guardian: the controller (pid %d) died without finishing: "
				"reverting its faults from %s\n", (int)controller, journal);
		break;
	}
	fl_recover_journal(journal, true, stderr, &st);
	_exit(st.failed ? 3 : 0);
}

int fl_guardian_start(const char *journal_path, int64_t heartbeat_ns, struct fl_guardian *g,
		      struct fl_err *err)
{
	int p[2];
	pid_t controller = getpid(), pid;

	g->pid = 0;
	g->fd = -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return fl_err_set(err, -errno, "guardian pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return fl_err_set(err, -errno, "cannot start the guardian: fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(p[1]);
		guardian_main(p[0], journal_path, heartbeat_ns, controller);
	}
	close(p[0]);
	/* a heartbeat must never block the loop; a dead guardian must not SIGPIPE the controller */
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	signal(SIGPIPE, SIG_IGN);
	g->pid = pid;
	g->fd = p[1];
	return 0;
}

void fl_guardian_beat(struct fl_guardian *g)
{
	if (g && g->fd >= 0 && write(g->fd, "h", 1) < 0) {
		/* EAGAIN: the guardian has beats queued; EPIPE: it is gone (reaped at the end) */
	}
}

void fl_guardian_done(struct fl_guardian *g)
{
	if (!g || g->pid <= 0)
		return;
	if (g->fd >= 0) {
		if (write(g->fd, "d", 1) < 0) {
			/* the guardian is gone: nothing to tell */
		}
		close(g->fd);
		g->fd = -1;
	}
	waitpid(g->pid, NULL, 0);
	g->pid = 0;
}
