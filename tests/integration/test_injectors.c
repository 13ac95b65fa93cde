/* process.pause and fd.exhaust against a real child: apply journals first, revert restores exactly, revert_record works from the journal alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_testlib.h"
#include "journal.h"
#include "procfs.h"
#include "scenario.h"

struct world {
	char dir[64];
	pid_t child;
	struct fl_target_info info;
	struct fl_journal *j;
};

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	struct fl_err e;

	if (fl_tl_mkdtemp(w->dir, sizeof(w->dir), "/tmp", "fl-inj"))
		return -1;
	w->child = fork();
	if (w->child == 0) {
		setpgid(0, 0);
		for (;;)
			pause();
	}
	setpgid(w->child, w->child);
	w->info.pid = w->child;
	w->info.pgid = w->child;
	w->info.launched = true;
	if (fl_journal_open(w->dir, "test-run", "unit", &w->j, &e))
		return -1;
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	kill(w->child, SIGKILL);
	waitpid(w->child, NULL, 0);
	fl_journal_close(w->j, false);
	if (fl_tl_rm_rf(w->dir))
		return -1;
	free(w);
	return 0;
}

/* Build a fault of `type` from scenario text, so parameters go through the real tables. */
static struct fl_scenario *scenario_with(const char *fault_yaml)
{
	struct fl_scenario *sc = fl_tl_scenario("t", fault_yaml, NULL, 0);

	assert_non_null(sc);
	return sc;
}

static char state_of(pid_t pid)
{
	char s = '?';

	/* SIGSTOP/SIGCONT are asynchronous: give the kernel a moment to act */
	for (int i = 0; i < 200; i++) {
		assert_int_equal(fl_proc_state(pid, &s), 0);
		if (s == 'T' || s == 'S')
			break;
		usleep(1000);
	}
	return s;
}

static void wait_state(pid_t pid, char want)
{
	char s = '?';

	for (int i = 0; i < 500 && s != want; i++) {
		fl_proc_state(pid, &s);
		if (s != want)
			usleep(1000);
	}
	assert_int_equal(s, want);
}

static void test_pause_apply_observe_revert(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc = scenario_with("  - {name: freeze, type: process.pause, duration: 1s}\n");
	struct fl_fault *f = &sc->faults[0];
	struct fl_observation o = {0};
	struct fl_journal_info info;
	struct fl_err e;

	f->target = &w->info;
	assert_int_equal(f->inj->check(f, &e), 0);
	assert_int_equal(f->inj->apply(f, w->j, &e), 0);
	wait_state(w->child, 'T');
	usleep(200 * 1000);
	assert_int_equal(f->inj->observe(f, &o), 0);
	assert_int_equal(f->inj->revert(f, &e), 0);
	wait_state(w->child, 'S');
	/* idempotent */
	assert_int_equal(f->inj->revert(f, &e), 0);
	o.n = 0;
	assert_int_equal(f->inj->observe(f, &o), 0);
	for (int i = 0; i < o.n; i++) {
		if (!strcmp(o.kv[i].key, "pause_s"))
			assert_true(o.kv[i].num >= 0.19 && o.kv[i].num < 1.0);
		if (!strcmp(o.kv[i].key, "stopped_seen"))
			assert_string_equal(o.kv[i].text, "yes");
	}
	/* the journal holds the record, written before the signal */
	assert_int_equal(fl_journal_read(fl_journal_path(w->j), &info, &e), 0);
	assert_int_equal(info.nrecs, 1);
	assert_string_equal(info.recs[0].injector, "process.pause");
	assert_true(info.owner_alive);
	fl_journal_info_free(&info);
	free(f->state);
	f->state = NULL;
	fl_scenario_free(sc);
}

static void test_pause_revert_record_from_journal(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc = scenario_with("  - {name: freeze, type: process.pause, duration: 1s}\n");
	struct fl_fault *f = &sc->faults[0];
	struct fl_journal_info info;
	struct fl_err e;

	f->target = &w->info;
	assert_int_equal(f->inj->apply(f, w->j, &e), 0);
	wait_state(w->child, 'T');
	/* forget the in-memory state, as a crashed controller would */
	free(f->state);
	f->state = NULL;
	assert_int_equal(fl_journal_read(fl_journal_path(w->j), &info, &e), 0);
	assert_int_equal(info.nrecs, 1);
	assert_int_equal(fl_injector_find(info.recs[0].injector)->revert_record(&info.recs[0], &e), 0);
	wait_state(w->child, 'S');
	fl_journal_info_free(&info);
	fl_scenario_free(sc);
	(void)state_of;
}

static void limits_of(pid_t pid, struct rlimit *r)
{
	assert_int_equal(prlimit(pid, RLIMIT_NOFILE, NULL, r), 0);
}

static void test_fd_exhaust_restores_exactly(void **state)
{
	struct world *w = *state;
	/* with CAP_SYS_RESOURCE the hard limit is lowered too; without it only the soft one can be */
	bool cap = fl_have_cap(CAP_SYS_RESOURCE);
	struct fl_scenario *sc = scenario_with(
		cap ? "  - {name: fds, type: fd.exhaust, duration: 1s, limit: 16, hard: 32}\n"
		    : "  - {name: fds, type: fd.exhaust, duration: 1s, limit: 16}\n");
	struct fl_fault *f = &sc->faults[0];
	struct rlimit before, during, after, odd = {.rlim_cur = 777, .rlim_max = 4099};
	struct fl_observation o = {0};
	struct fl_err e;
	bool saw_limit = false;

	/* an unusual limit to restore, so "restored" cannot be a coincidence (lowering needs no cap) */
	assert_int_equal(prlimit(w->child, RLIMIT_NOFILE, &odd, NULL), 0);
	limits_of(w->child, &before);
	f->target = &w->info;
	assert_int_equal(f->inj->check(f, &e), 0);
	assert_int_equal(f->inj->apply(f, w->j, &e), 0);
	limits_of(w->child, &during);
	assert_int_equal(during.rlim_cur, 16);
	assert_int_equal(during.rlim_max, cap ? 32 : 4099);
	assert_int_equal(f->inj->observe(f, &o), 0);
	for (int i = 0; i < o.n; i++) {
		if (!strcmp(o.kv[i].key, "limit_in_force")) {
			assert_true(o.kv[i].num == 16.0);
			saw_limit = true;
		}
		if (!strcmp(o.kv[i].key, "fds_open"))
			assert_true(o.kv[i].num >= 3); /* the child's own count from /proc */
	}
	assert_true(saw_limit);
	assert_int_equal(f->inj->revert(f, &e), 0);
	limits_of(w->child, &after);
	assert_int_equal(after.rlim_cur, before.rlim_cur);
	assert_int_equal(after.rlim_max, before.rlim_max);
	free(f->state);
	f->state = NULL;

	/* and from the journal alone, after a "crash" */
	if (f->inj->apply(f, w->j, &e))
		fail_msg("second apply: %s", e.msg);
	free(f->state);
	f->state = NULL;
	{
		struct fl_journal_info info;

		assert_int_equal(fl_journal_read(fl_journal_path(w->j), &info, &e), 0);
		assert_int_equal(info.nrecs, 2);
		assert_int_equal(f->inj->revert_record(&info.recs[1], &e), 0);
		fl_journal_info_free(&info);
	}
	limits_of(w->child, &after);
	assert_int_equal(after.rlim_cur, 777);
	assert_int_equal(after.rlim_max, 4099);
	fl_scenario_free(sc);
}

static void test_checks_refuse_what_they_must(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc = scenario_with("  - {name: fds, type: fd.exhaust, duration: 1s, limit: 64, hard: 32}\n"
					       "  - {name: freeze, type: process.pause, duration: 1s}\n");
	struct fl_target_info gone = {.pid = 0};
	struct fl_target_info init = {.pid = 1};
	struct fl_err e;

	sc->faults[0].target = &w->info;
	assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), -EINVAL);
	assert_non_null(strstr(e.msg, "above the hard limit"));
	if (!fl_have_cap(CAP_SYS_RESOURCE)) {
		/* this host's root lacks it: a lowered hard limit could never be restored */
		struct fl_scenario *hard = scenario_with(
			"  - {name: fds, type: fd.exhaust, duration: 1s, limit: 8, hard: 16}\n");

		hard->faults[0].target = &w->info;
		assert_int_equal(hard->faults[0].inj->check(&hard->faults[0], &e), -EPERM);
		assert_non_null(strstr(e.msg, "needs CAP_SYS_RESOURCE to undo"));
		assert_non_null(strstr(e.hint, "omit `hard`"));
		fl_scenario_free(hard);
	}
	sc->faults[1].target = &gone;
	assert_int_equal(sc->faults[1].inj->check(&sc->faults[1], &e), -ESRCH);
	sc->faults[1].target = &init;
	assert_int_equal(sc->faults[1].inj->check(&sc->faults[1], &e), -EPERM);
	sc->faults[0].target = &init;
	assert_int_equal(sc->faults[0].inj->check(&sc->faults[0], &e), -EPERM);
	fl_scenario_free(sc);
}

/* A recycled pid is someone else: revert_record must leave it alone. */
static void test_revert_record_ignores_recycled_pid(void **state)
{
	struct world *w = *state;
	struct fl_journal_rec rec = {.seq = 1};
	struct rlimit before, after;
	uint64_t start;
	struct fl_err e;

	assert_int_equal(fl_proc_starttime(w->child, &start), 0);
	limits_of(w->child, &before);
	snprintf(rec.data, sizeof(rec.data), "pid=%d start=%llu old_cur=5 old_max=5", (int)w->child,
		 (unsigned long long)start + 1);
	assert_int_equal(fl_injector_find("fd.exhaust")->revert_record(&rec, &e), 0);
	limits_of(w->child, &after);
	assert_int_equal(after.rlim_cur, before.rlim_cur);
}

/* ---- scope: child: a process in the target's tree, by name ------------------------------------ */

#define DB_COMM "fl-test-db"

/* A child that starts a grandchild named DB_COMM (its pid written to fd) and then waits. */
static pid_t spawn_parent_of_db(pid_t *db)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pid_t g;

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion in the test must not leave us behind */
		setpgid(0, 0);
		close(p[0]);
		g = fork();
		if (g == 0) {
			pid_t me = getpid();

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			prctl(PR_SET_NAME, DB_COMM);
			if (write(p[1], &me, sizeof(me)) != sizeof(me))
				_exit(1);
			for (;;)
				pause();
		}
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], db, sizeof(*db)), (ssize_t)sizeof(*db));
	close(p[0]);
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static const struct fl_observation *observe_kv(const struct fl_observation *o, const char *key, int *i)
{
	for (*i = 0; *i < o->n; (*i)++)
		if (!strcmp(o->kv[*i].key, key))
			return o;
	fail_msg("observation has no %s", key);
	return NULL;
}

static void test_pause_child_freezes_only_the_named_descendant(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc = scenario_with("  - {name: db, type: process.pause, duration: 1s, scope: child, "
					       "comm: " DB_COMM "}\n");
	struct fl_fault *f = &sc->faults[0];
	struct fl_target_info info = {0};
	struct fl_observation o = {0};
	struct fl_journal_info ji;
	pid_t db, decoy_db, target, decoy;
	char pidtext[16], buf[64];
	struct fl_err e;
	int i;

	(void)w;
	target = spawn_parent_of_db(&db);
	/* the same name outside the target's tree (and no cgroup of its own): never matched */
	decoy = spawn_parent_of_db(&decoy_db);
	info.pid = info.pgid = target;
	info.launched = true;
	f->target = &info;
	wait_state(db, 'S');
	assert_int_equal(f->inj->check(f, &e), 0);
	assert_int_equal(f->inj->apply(f, w->j, &e), 0);
	wait_state(db, 'T');
	usleep(300 * 1000);
	assert_int_equal(fl_proc_state(target, &buf[0]), 0);
	assert_int_equal(buf[0], 'S');          /* the service itself keeps running */
	assert_int_equal(fl_proc_state(decoy_db, &buf[0]), 0);
	assert_int_equal(buf[0], 'S');          /* the namesake outside is untouched */
	/* journaled by pid and start time, before the signal */
	assert_int_equal(fl_journal_read(fl_journal_path(w->j), &ji, &e), 0);
	assert_int_equal(ji.nrecs, 1);
	snprintf(pidtext, sizeof(pidtext), "%d", (int)db);
	assert_string_equal(fl_rec_get(&ji.recs[0], "pid", buf, sizeof(buf)), pidtext);
	assert_string_equal(fl_rec_get(&ji.recs[0], "signal_to", buf, sizeof(buf)), pidtext);
	fl_journal_info_free(&ji);
	assert_int_equal(f->inj->revert(f, &e), 0);
	wait_state(db, 'S');
	assert_int_equal(f->inj->revert(f, &e), 0); /* idempotent */
	assert_int_equal(f->inj->observe(f, &o), 0);
	observe_kv(&o, "frozen_pids", &i);
	assert_string_equal(o.kv[i].text, pidtext);
	observe_kv(&o, "frozen", &i);
	assert_true(o.kv[i].num == 1.0);
	/* the freeze as /proc saw it: the 300 ms slept above, plus the waits around it */
	observe_kv(&o, "frozen_s", &i);
	print_message("child freeze: frozen_s %.3f s for ~0.30 s held\n", o.kv[i].num);
	assert_true(o.kv[i].num >= 0.29 && o.kv[i].num < 0.6);
	observe_kv(&o, "ran_while_frozen", &i);
	assert_true(o.kv[i].num == 0.0);
	free(f->state);
	f->state = NULL;
	reap(target);
	reap(decoy);
	fl_scenario_free(sc);
}

static void test_pause_child_refuses_outside_the_tree(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc = scenario_with("  - {name: db, type: process.pause, duration: 1s, scope: child, "
					       "comm: " DB_COMM "}\n");
	struct fl_fault *f = &sc->faults[0];
	struct fl_journal_info ji;
	pid_t decoy_db, decoy;
	struct fl_err e;
	char s;

	/* the target (w->child) has no such descendant; a process of that name lives elsewhere */
	decoy = spawn_parent_of_db(&decoy_db);
	f->target = &w->info;
	if (f->inj->check(f, &e) != -ESRCH)
		fail_msg("check found '%s' below pid %d (decoy %d, its db %d): %s", DB_COMM, (int)w->child,
			 (int)decoy, (int)decoy_db, e.msg);
	assert_non_null(strstr(e.msg, "no process named '" DB_COMM "' below pid"));
	assert_int_equal(f->inj->apply(f, w->j, &e), -ESRCH);
	assert_null(f->state);
	usleep(50 * 1000);
	assert_int_equal(fl_proc_state(decoy_db, &s), 0);
	assert_int_equal(s, 'S');
	assert_int_equal(fl_journal_read(fl_journal_path(w->j), &ji, &e), 0);
	assert_int_equal(ji.nrecs, 0); /* nothing journaled, nothing stopped */
	fl_journal_info_free(&ji);
	/* the target's own main process is never a `comm` match, even when its name fits */
	{
		struct fl_target_info self_db = {.pid = decoy_db, .pgid = decoy_db};

		f->target = &self_db;
		assert_int_equal(f->inj->check(f, &e), -ESRCH);
	}
	reap(decoy);
	fl_scenario_free(sc);
}

static void test_pause_child_revert_record_in_fresh_process(void **state)
{
	struct world *w = *state;
	struct fl_scenario *sc = scenario_with("  - {name: db, type: process.pause, duration: 1s, scope: child, "
					       "comm: " DB_COMM "}\n");
	struct fl_fault *f = &sc->faults[0];
	struct fl_target_info info = {0};
	pid_t db, target, fresh;
	int status = 0;
	struct fl_err e;

	target = spawn_parent_of_db(&db);
	info.pid = info.pgid = target;
	f->target = &info;
	assert_int_equal(f->inj->apply(f, w->j, &e), 0);
	wait_state(db, 'T');
	/* the controller "crashed": only the journal is left, read by a process that never applied */
	free(f->state);
	f->state = NULL;
	fresh = fork();
	assert_true(fresh >= 0);
	if (fresh == 0) {
		struct fl_journal_info ji;
		int bad = 0, n;

		if (fl_journal_read(fl_journal_path(w->j), &ji, &e))
			_exit(10);
		n = ji.nrecs;
		for (int i = 0; i < n; i++)
			bad += fl_injector_find(ji.recs[i].injector)->revert_record(&ji.recs[i], &e) != 0;
		fl_journal_info_free(&ji);
		_exit(n == 1 ? bad : 20 + n);
	}
	assert_int_equal(waitpid(fresh, &status, 0), fresh);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	wait_state(db, 'S');
	reap(target);
	fl_scenario_free(sc);
}

static void test_pause_child_validation(void **state)
{
	char diag[2048];

	(void)state;
	assert_null(fl_tl_scenario("t", "  - {name: p, type: process.pause, duration: 1s, scope: child}\n", diag,
				   sizeof(diag)));
	assert_non_null(strstr(diag, "scope: child needs `comm`"));
	assert_null(fl_tl_scenario("t", "  - {name: p, type: process.pause, duration: 1s, comm: db}\n", diag,
				   sizeof(diag)));
	assert_non_null(strstr(diag, "add scope: child"));
	assert_null(fl_tl_scenario("t", "  - {name: p, type: process.pause, duration: 1s, scope: child, "
				   "comm: a-name-far-too-long}\n", diag, sizeof(diag)));
	assert_non_null(strstr(diag, "can never match"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pause_apply_observe_revert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_revert_record_from_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_exhaust_restores_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checks_refuse_what_they_must, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revert_record_ignores_recycled_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_child_freezes_only_the_named_descendant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_child_refuses_outside_the_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_child_revert_record_in_fresh_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_child_validation, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
