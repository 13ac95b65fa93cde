/* Run ids: what faultline makes always parses back, and nothing else is taken for one (the sweep relies on it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <unistd.h>

#include "recovery.h"

static void test_made_ids_parse_back(void **state)
{
	char id[64];
	pid_t owner = 0;

	(void)state;
	for (int i = 0; i < 100; i++) {
		fl_run_id_make(id, sizeof(id));
		assert_true(fl_run_id_parse(id, &owner));
		assert_int_equal(owner, getpid());
	}
}

static void test_only_exact_ids_are_ours(void **state)
{
	static const char *const not_ours[] = {
		"", "prod", "user", "20261122T123350", "20261122T123350-", "20261122T123350-42",
		"20261122T123350-42-", "20261122T123350-42-abc", "20261122T123350-42-abcde",
		"20261122T123350-42-ABCD", "20261122T123350-0-abcd", "20261122X123350-42-abcd",
		"2026112T1233500-42-abcd", "20261122T123350-x42-abcd", "20261122T123350-42-abcd/x",
		"20261122T123350-42-abcd ", " 20261122T123350-42-abcd", "20261122T123350-99999999999-abcd",
	};
	pid_t owner = 0;

	(void)state;
	assert_true(fl_run_id_parse("20261122T123350-42-0f9a", &owner));
	assert_int_equal(owner, 42);
	for (size_t i = 0; i < sizeof(not_ours) / sizeof(not_ours[0]); i++) {
		if (fl_run_id_parse(not_ours[i], NULL))
			fail_msg("'%s' taken for a run id", not_ours[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_made_ids_parse_back),
		cmocka_unit_test(test_only_exact_ids_are_ours),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
