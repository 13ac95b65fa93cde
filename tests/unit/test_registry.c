/* The registry and every parameter table are well formed, and docs/reference.md is what the tables generate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "scenario.h"

static void test_every_injector_is_complete(void **state)
{
	(void)state;
	assert_true(fl_injector_count > 0);
	for (int i = 0; i < fl_injector_count; i++) {
		const struct fl_injector *inj = fl_injectors[i];
		const char *dot = strchr(inj->type, '.');

		/* family.name: the docs group injectors by family */
		assert_non_null(dot);
		assert_true(dot > inj->type && dot[1]);
		assert_non_null(inj->summary);
		assert_non_null(inj->preflight);
		assert_non_null(inj->params);
		assert_non_null(inj->probe);
		assert_non_null(inj->check);
		assert_non_null(inj->describe);
		assert_non_null(inj->apply);
		assert_non_null(inj->observe);
		assert_non_null(inj->revert);
		assert_non_null(inj->revert_record);
		assert_ptr_equal(fl_injector_find(inj->type), inj);
		for (int k = 0; k < i; k++)
			assert_string_not_equal(fl_injectors[k]->type, inj->type);
		/* an injector parameter may not shadow a key every fault has */
		for (const struct fl_param *p = inj->params; p->name; p++)
			assert_int_equal(fl_param_index(fl_fault_common_params, p->name), -1);
	}
	assert_null(fl_injector_find("network.nonsense"));
}

static void check_table(const struct fl_param *t, const char *what)
{
	struct fl_err e = {0};
	int rc = fl_param_table_check(t, &e);

	if (rc)
		fail_msg("%s: %s", what, e.msg);
}

static void test_every_table_is_well_formed(void **state)
{
	(void)state;
	check_table(fl_scenario_params, "scenario");
	check_table(fl_fault_common_params, "fault common keys");
	for (int i = 0; i < fl_injector_count; i++)
		check_table(fl_injectors[i]->params, fl_injectors[i]->type);
}

static void test_table_check_catches_mistakes(void **state)
{
	static const char *const none[] = {NULL};
	const struct fl_param bad_default[] = {
		{.name = "d", .kind = FL_P_DURATION, .def = "5 parsecs", .help = "x"}, {0}};
	const struct fl_param out_of_range[] = {
		{.name = "d", .kind = FL_P_DURATION, .def = "2h", .max = "1h", .help = "x"}, {0}};
	const struct fl_param twice[] = {
		{.name = "a", .kind = FL_P_INT, .help = "x"}, {.name = "a", .kind = FL_P_INT, .help = "y"}, {0}};
	const struct fl_param empty_enum[] = {
		{.name = "e", .kind = FL_P_ENUM, .enums = none, .help = "x"}, {0}};
	const struct fl_param no_help[] = {{.name = "h", .kind = FL_P_INT}, {0}};
	struct fl_err e;

	(void)state;
	assert_int_equal(fl_param_table_check(bad_default, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "bad default"));
	assert_int_equal(fl_param_table_check(out_of_range, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "outside its range"));
	assert_int_equal(fl_param_table_check(twice, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "twice"));
	assert_int_equal(fl_param_table_check(empty_enum, &e), -EINVAL);
	assert_int_equal(fl_param_table_check(no_help, &e), -EINVAL);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	*len = (size_t)n;
	fclose(f);
	return buf;
}

static void test_reference_doc_matches_tables(void **state)
{
	const char *src = getenv("FL_SOURCE_DIR");
	char path[4096], *mem = NULL, *doc;
	size_t memlen = 0, doclen = 0;
	FILE *out;

	(void)state;
	if (!src)
		skip();
	snprintf(path, sizeof(path), "%s/docs/reference.md", src);
	out = open_memstream(&mem, &memlen);
	assert_non_null(out);
	fl_reference_markdown(out);
	fclose(out);
	doc = slurp(path, &doclen);
	if (!doc)
		fail_msg("%s is missing: generate it with `faultline list --markdown > docs/reference.md`",
			 path);
	if (doclen != memlen || memcmp(doc, mem, memlen))
		fail_msg("docs/reference.md differs from the parameter tables: regenerate it with "
			 "`build/faultline list --markdown > docs/reference.md`");
	free(doc);
	free(mem);
}

static void test_fault_value_lookup(void **state)
{
	const struct fl_injector *inj = fl_injector_find("fd.exhaust");
	struct fl_value vals[4] = {{0}};
	struct fl_fault f = {.name = "x", .inj = inj, .values = vals};

	(void)state;
	assert_non_null(inj);
	vals[fl_param_index(inj->params, "limit")] = (struct fl_value){.set = true, .i = 64};
	assert_true(fl_fault_value(&f, "limit")->set);
	assert_int_equal(fl_fault_value(&f, "limit")->i, 64);
	assert_false(fl_fault_value(&f, "no-such-param")->set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_injector_is_complete),
		cmocka_unit_test(test_every_table_is_well_formed),
		cmocka_unit_test(test_table_check_catches_mistakes),
		cmocka_unit_test(test_reference_doc_matches_tables),
		cmocka_unit_test(test_fault_value_lookup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
