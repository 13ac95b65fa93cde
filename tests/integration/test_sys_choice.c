/* syscall.error's choice of backend on this host and its load-time rules: what auto picks for which calls, every reason when nothing fits, the cgroup backend's reach as the chooser assumes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fl_testlib.h"
#include "procfs.h"
#include "scenario.h"
#include "sys.h"

static struct fl_scenario *parse(const char *faults, char *diag, size_t len)
{
	return fl_tl_scenario("t", faults, diag, len);
}

/* The chooser decides cgroup-or-not before the cgroup exists: the backend's check must agree. */
static void test_cgroup_classes_match_the_backend(void **state)
{
	char mount[4096];

	(void)state;
	if (geteuid() || fl_cgroup_mount(NULL, mount, sizeof(mount))) {
		print_message("skipped: needs root and a cgroup2 mount\n");
		skip();
	}
	for (const struct fl_syscall *s = fl_syscalls; s->name; s++) {
		struct fl_sys_rule r = {.n = 1, .err = ECONNREFUSED, .probability = 1, .cgroup_v2 = mount,
					.allow_host_wide = true, .tgid = getpid()};
		struct fl_err e;
		int rc;

		r.sys[0] = s;
		r.classes = s->cls;
		fl_err_clear(&e);
		rc = fl_sys_backend_cgroup.check(&r, &e);
		if ((rc == 0) != !!(s->cls & FL_SYS_CGROUP_CLASSES))
			fail_msg("%s: cgroup check %s (%s), the chooser assumes it %s", s->name, rc ? "refuses" : "accepts",
				 e.msg, s->cls & FL_SYS_CGROUP_CLASSES ? "can" : "cannot");
	}
}

static void test_load_time_rules(void **state)
{
	char d[2048];

	(void)state;
	assert_null(parse("  - {name: a, type: syscall.error, duration: 1s, syscalls: [conect], errno: EIO}\n", d, sizeof(d)));
	assert_non_null(strstr(d, "'conect' is not a syscall"));
	assert_null(parse("  - {name: a, type: syscall.error, duration: 1s, syscalls: [read], errno: EIO, path_prefix: /data}\n",
			  d, sizeof(d)));
	assert_non_null(strstr(d, "path_prefix only narrows open-like calls"));
	assert_null(parse("  - {name: a, type: syscall.delay, duration: 1s, syscalls: [fsync], delay: 10ms, jitter: 20ms}\n",
			  d, sizeof(d)));
	assert_non_null(strstr(d, "jitter may not exceed delay"));
	assert_null(parse("  - {name: a, type: syscall.error, duration: 1s, syscalls: [openat], errno: EIO, dst_port: 5432}\n",
			  d, sizeof(d)));
	assert_non_null(strstr(d, "dst_ip/dst_port only narrow connect"));
}

/* A running process, not launched: socket calls go to cgroup (lsm is refused here), file calls to nothing. */
static void test_auto_for_a_found_process(void **state)
{
	struct fl_target_info t = {.pid = getpid()};
	struct fl_scenario *sc;
	struct fl_err e;
	char mount[4096];

	(void)state;
	if (geteuid() || fl_cgroup_mount(NULL, mount, sizeof(mount))) {
		print_message("skipped: needs root and a cgroup2 mount\n");
		skip();
	}
	snprintf(t.cgroup_v2, sizeof(t.cgroup_v2), "%s", mount);
	t.allow_host_wide = true;
	fl_err_clear(&e);
	if (!fl_sys_backend_lsm.probe(&e)) {
		print_message("skipped: this host runs BPF LSM; the test is about one that refuses it\n");
		skip();
	}
	sc = parse("  - {name: a, type: syscall.error, duration: 1s, syscalls: [openat], errno: EMFILE}\n", NULL, 0);
	assert_non_null(sc);
	sc->faults[0].target = &t;
	fl_probe_any((const char *const[]){"lsm", "cgroup", "seccomp"},
		     (const fl_probe_fn[]){fl_sys_backend_lsm.probe, fl_sys_backend_cgroup.probe, fl_sys_backend_seccomp.probe},
		     3, NULL);
	fl_err_clear(&e);
	assert_int_not_equal(sc->faults[0].inj->check(&sc->faults[0], &e), 0);
	/* every candidate says why: lsm refused by the kernel, cgroup has no file hooks, seccomp needs a launch */
	print_message("  %s\n", e.msg);
	assert_non_null(strstr(e.msg, "lsm:"));
	assert_non_null(strstr(e.msg, "cgroup:"));
	assert_non_null(strstr(e.msg, "seccomp:"));
	fl_scenario_free(sc);
	sc = parse("  - {name: a, type: syscall.error, duration: 1s, syscalls: [connect], errno: ECONNREFUSED}\n", NULL, 0);
	assert_non_null(sc);
	sc->faults[0].target = &t;
	fl_err_clear(&e);
	if (sc->faults[0].inj->check(&sc->faults[0], &e))
		fail_msg("connect on a found process should pick cgroup: %s", e.msg);
	fl_scenario_free(sc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_time_rules),
		cmocka_unit_test(test_cgroup_classes_match_the_backend),
		cmocka_unit_test(test_auto_for_a_found_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
