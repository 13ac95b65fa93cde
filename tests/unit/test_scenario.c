/* Scenario validation: one test per error class with the exact line:col and text, the broken corpus, the bundled library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

static const char valid[] =
	"version: 1\n"                                            /* 1 */
	"name: unit\n"                                            /* 2 */
	"target:\n"                                               /* 3 */
	"  url: http://127.0.0.1:8080/api\n"                      /* 4 */
	"  run: [./svc, -port, \"8080\"]\n"                       /* 5 */
	"load: {rate: 200/s, connections: 8}\n"                   /* 6 */
	"slo:\n"                                                  /* 7 */
	"  good: {status: 200-399, latency: 300ms}\n"             /* 8 */
	"  survival_ratio: 95%\n"                                 /* 9 */
	"faults:\n"                                               /* 10 */
	"  - name: fds\n"                                         /* 11 */
	"    type: fd.exhaust\n"                                  /* 12 */
	"    at: 2s\n"                                            /* 13 */
	"    duration: 10s\n"                                     /* 14 */
	"    limit: 64\n";                                        /* 15 */

/* Parse and return every diagnostic as "L:C: msg[ | hint]" lines (sorted), or NULL when valid. */
static char *diags_of(const char *yaml, size_t len, char *const *sets, int nsets,
		      struct fl_scenario **out)
{
	struct fl_diags d = {0};
	struct fl_scenario *sc = fl_scenario_parse("t.yaml", yaml, len, sets, nsets, &d);
	char *text = NULL;
	size_t tl = 0;
	FILE *m;

	if (sc) {
		assert_int_equal(d.n, 0);
		if (out)
			*out = sc;
		else
			fl_scenario_free(sc);
		return NULL;
	}
	assert_true(d.n > 0);
	m = open_memstream(&text, &tl);
	fl_diags_print(&d, m);
	fclose(m);
	fl_diags_free(&d);
	return text;
}

static char *diags_str(const char *yaml)
{
	return diags_of(yaml, strlen(yaml), NULL, 0, NULL);
}

/* The first diagnostic line must equal want exactly; hint (if given) must appear in its hint line. */
static void expect_error(const char *yaml, const char *want, const char *hint)
{
	char *t = diags_str(yaml);

	if (!t)
		fail_msg("expected an error '%s', but the scenario was accepted", want);
	if (!strstr(t, want))
		fail_msg("expected\n  %s\ngot\n%s", want, t);
	if (hint && !strstr(t, hint))
		fail_msg("expected hint containing '%s', got\n%s", hint, t);
	free(t);
}

static char *replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	char *out;

	assert_non_null(at);
	out = malloc(strlen(s) - strlen(from) + strlen(to) + 1);
	memcpy(out, s, (size_t)(at - s));
	strcpy(out + (at - s), to);
	strcat(out, at + strlen(from));
	return out;
}

static void expect_error_in(const char *from, const char *to, const char *want, const char *hint)
{
	char *y = replace(valid, from, to);

	expect_error(y, want, hint);
	free(y);
}

static void test_valid_scenario_is_typed(void **state)
{
	struct fl_scenario *sc = NULL;
	const struct fl_fault *f;

	(void)state;
	assert_null(diags_of(valid, strlen(valid), NULL, 0, &sc));
	assert_non_null(sc);
	assert_int_equal(sc->version, 1);
	assert_string_equal(sc->name, "unit");
	assert_string_equal(sc->target.url, "http://127.0.0.1:8080/api");
	assert_int_equal(sc->target.run.n, 3);
	assert_string_equal(sc->target.run.v[2], "8080");
	assert_true(sc->load.rate == 200.0);
	assert_int_equal(sc->load.connections, 8);
	assert_int_equal(sc->load.timeout_ns, 2 * FL_NS_PER_S);           /* default */
	assert_string_equal(sc->load.method, "GET");                      /* default */
	assert_true(fl_status_in(&sc->slo.good_status, 200));
	assert_true(fl_status_in(&sc->slo.good_status, 399));
	assert_false(fl_status_in(&sc->slo.good_status, 404));
	assert_int_equal(sc->slo.good_latency_ns, 300 * FL_NS_PER_MS);
	assert_true(sc->slo.survival_ratio > 0.9499 && sc->slo.survival_ratio < 0.9501);
	assert_true(sc->slo.baseline_ratio == sc->slo.survival_ratio);    /* defaults to survival */
	assert_int_equal(sc->slo.recover_within_ns, -1);                  /* not judged */
	assert_int_equal(sc->slo.window_ns, FL_NS_PER_S);
	assert_int_equal(sc->phases.baseline_ns, 10 * FL_NS_PER_S);
	assert_int_equal(sc->phases.recovery_ns, 15 * FL_NS_PER_S);
	assert_int_equal(sc->nfaults, 1);
	f = &sc->faults[0];
	assert_string_equal(f->name, "fds");
	assert_ptr_equal(f->inj, fl_injector_find("fd.exhaust"));
	assert_int_equal(f->at_ns, 2 * FL_NS_PER_S);
	assert_int_equal(f->duration_ns, 10 * FL_NS_PER_S);
	assert_int_equal(fl_fault_value(f, "limit")->i, 64);
	assert_false(fl_fault_value(f, "hard")->set);
	assert_int_equal(f->line, 11);
	/* default max_duration: the planned run (10 + 12 + 15 s) plus a minute */
	assert_int_equal(fl_scenario_total_ns(sc), 37 * FL_NS_PER_S);
	assert_int_equal(sc->guardrails.max_duration_ns, 97 * FL_NS_PER_S);
	assert_false(sc->allow_host_wide);
	fl_scenario_free(sc);
}

static void test_unknown_key_suggests(void **state)
{
	(void)state;
	expect_error_in("  survival_ratio: 95%\n", "  survival_ratio: 95%\n  recover_witin: 5s\n",
			"t.yaml:10:3: error: unknown key 'recover_witin' in slo", "did you mean 'recover_within'?");
	expect_error_in("    limit: 64\n", "    limit: 64\n    duraton: 1s\n",
			"t.yaml:16:5: error: unknown key 'duraton' in faults.fds", "did you mean 'duration'?");
	expect_error_in("name: unit\n", "name: unit\nzzz: 1\n", "t.yaml:3:1: error: unknown key 'zzz'",
			"known keys here: version, name");
}

static void test_wrong_type(void **state)
{
	(void)state;
	expect_error_in("  run: [./svc, -port, \"8080\"]\n", "  run: {a: b}\n",
			"t.yaml:5:8: error: target.run: expected a list of strings, got a mapping", NULL);
	expect_error_in("load: {rate: 200/s, connections: 8}\n", "load: [1, 2]\n",
			"t.yaml:6:7: error: load: expected a mapping, got a list", NULL);
	expect_error_in("load: {rate: 200/s, connections: 8}\n", "load: {rate: 200/s, connections: [8]}\n",
			"t.yaml:6:34: error: load.connections: expected integer, got a list", NULL);
}

static void test_bad_values_and_ranges(void **state)
{
	(void)state;
	expect_error_in("    duration: 10s\n", "    duration: 10 parsecs\n",
			"t.yaml:14:15: error: faults.fds.duration: ", "durations");
	expect_error_in("  survival_ratio: 95%\n", "  survival_ratio: 150%\n",
			"t.yaml:9:19: error: slo.survival_ratio: ", NULL);
	expect_error_in("    at: 2s\n", "    at: -5s\n", "t.yaml:13:9: error: faults.fds.at: ", NULL);
	expect_error_in("load: {rate: 200/s, connections: 8}\n", "load: {rate: 200/s, connections: 0}\n",
			"t.yaml:6:34: error: load.connections: 0 is below the minimum 1",
			"connections ranges from 1 to 10000");
	expect_error_in("    limit: 64\n", "    limit: 99999999\n",
			"t.yaml:15:12: error: faults.fds.limit: 99999999 is above the maximum 1048576", NULL);
	expect_error_in("load: {rate: 200/s, connections: 8}\n", "load: {rate: 200/s, method: GRAB}\n",
			"t.yaml:6:29: error: load.method: 'GRAB' is not allowed", "one of: GET, POST");
	expect_error_in("200-399", "200-799", "t.yaml:8:18: error: slo.good.status: status set \"200-799\": 799 is not an HTTP status", NULL);
}

static void test_missing_required(void **state)
{
	(void)state;
	expect_error_in("  survival_ratio: 95%\n", "",
			"t.yaml:8:3: error: missing required key 'survival_ratio' in slo", NULL);
	expect_error_in("    limit: 64\n", "",
			"t.yaml:11:5: error: missing required key 'limit' in faults.fds", NULL);
	expect_error_in("name: unit\n", "", "t.yaml:1:1: error: missing required key 'name'", NULL);
}

static void test_duplicate_fault_name(void **state)
{
	char *y = malloc(strlen(valid) + 200);

	(void)state;
	sprintf(y, "%s  - name: fds\n    type: process.pause\n    duration: 1s\n", valid);
	expect_error(y, "t.yaml:16:11: error: duplicate fault name 'fds'", "the first is at line 11");
	free(y);
}

#define NET_HEAD "version: 1\nname: t\ntarget: {url: \"http://127.0.0.1:9/\", pid: 4242}\n" \
		 "load: {rate: 10/s}\nslo: {good: {latency: 100ms}, survival_ratio: 50%}\nfaults:\n"

/* Rules the tables cannot say: across fields of one fault, and between faults in force at once. */
static void test_network_cross_rules(void **state)
{
	char *t;

	(void)state;
	expect_error(NET_HEAD "  - {name: a, type: network.loss, duration: 1s, percent: 5%, "
			      "match: {protocol: icmp, dst_port: 53}}\n",
		     "t.yaml:7:96: error: faults.a: match: icmp has no ports", "protocol: tcp or udp");
	expect_error(NET_HEAD "  - {name: a, type: network.bandwidth, duration: 1s, rate: 1MiB/s, limit: 1MiB, "
			      "latency: 10ms, match: {dst_port: 9}}\n",
		     "t.yaml:7:75: error: faults.a: limit and latency", "one of them");
	expect_error(NET_HEAD "  - {name: a, type: network.delay, duration: 10s, delay: 1ms, "
			      "match: {dst_ip: 10.0.0.0/8, dst_port: 5432}}\n"
			      "  - {name: b, type: network.loss, at: 5s, duration: 5s, percent: 1%, "
			      "match: {dst_ip: 10.9.9.9, dst_port: 5432}}\n",
		     "t.yaml:8:5: error: faults.b: acts on the same packets as a", "network.delay also takes loss");
	/* told apart by a port, by time, or by a different mechanism: accepted */
	t = diags_str(NET_HEAD "  - {name: a, type: network.delay, duration: 10s, delay: 1ms, "
			       "match: {dst_ip: 10.0.0.0/8, dst_port: 5432}}\n"
			       "  - {name: b, type: network.loss, duration: 5s, percent: 1%, "
			       "match: {dst_ip: 10.9.9.9, dst_port: 6379}}\n"
			       "  - {name: c, type: network.loss, at: 10s, duration: 5s, percent: 1%, "
			       "match: {dst_port: 5432}}\n"
			       "  - {name: d, type: network.loss, duration: 5s, percent: 1%, backend: cgroup, "
			       "match: {direction: ingress, src_port: 5432}}\n"
			       "  - {name: e, type: network.delay, duration: 10s, delay: 1ms, "
			       "match: {dst_ip: 192.168.0.0/16, dst_port: 5432}}\n");
	if (t)
		fail_msg("expected no error, got\n%s", t);
}

static void test_unknown_fault_type(void **state)
{
	(void)state;
	expect_error_in("type: fd.exhaust", "type: fd.exhuast",
			"t.yaml:12:11: error: faults[0]: unknown fault type 'fd.exhuast'",
			"did you mean 'fd.exhaust'? known types: process.pause, fd.exhaust");
	/* with an unknown type its other keys cannot be judged: only one error */
	{
		char *y = replace(valid, "type: fd.exhaust", "type: disk.melt");
		char *t = diags_str(y);

		assert_non_null(strstr(t, "unknown fault type 'disk.melt'"));
		assert_null(strstr(t, "'limit'"));
		free(t);
		free(y);
	}
}

static void test_fault_past_end_of_run(void **state)
{
	(void)state;
	expect_error_in("    limit: 64\n", "    limit: 64\nguardrails: {max_duration: 20s}\n",
			"t.yaml:14:15: error: fault 'fds' ends at 22s into the run (baseline + at + duration), "
			"past guardrails.max_duration 20s", NULL);
	expect_error_in("    limit: 64\n", "    limit: 64\nguardrails: {max_duration: 30s}\n",
			"t.yaml:16:28: error: guardrails.max_duration 30s is shorter than the planned run 37s",
			NULL);
}

static void test_unsupported_version(void **state)
{
	(void)state;
	expect_error_in("version: 1\n", "version: 2\n", "t.yaml:1:10: error: unsupported scenario version '2'",
			"reads scenario version 1");
}

static void test_yaml_syntax_error(void **state)
{
	(void)state;
	expect_error("version: 1\nname: [unclosed\n", "t.yaml:3:1: error: YAML syntax error", NULL);
	expect_error("version: 1\n  name: bad indent\n", "t.yaml:2:7: error: YAML syntax error", NULL);
}

static void test_empty_binary_and_non_utf8(void **state)
{
	static const char nul[] = "version: 1\nna\0me: x\n";
	static const char latin1[] = "version: 1\nname: caf\xe9\n";
	char *t;

	(void)state;
	t = diags_of("", 0, NULL, 0, NULL);
	assert_non_null(strstr(t, "t.yaml:1:1: error: the file is empty"));
	free(t);
	t = diags_of("  \n\n", 4, NULL, 0, NULL);
	assert_non_null(strstr(t, "the file is empty"));
	free(t);
	t = diags_of("# only a comment\n", 17, NULL, 0, NULL);
	assert_non_null(strstr(t, "no YAML document"));
	free(t);
	t = diags_of(nul, sizeof(nul) - 1, NULL, 0, NULL);
	assert_non_null(strstr(t, "t.yaml:2:3: error: NUL byte"));
	free(t);
	t = diags_of(latin1, sizeof(latin1) - 1, NULL, 0, NULL);
	assert_non_null(strstr(t, "t.yaml:2:10: error: invalid UTF-8 byte 0xe9"));
	free(t);
}

static void test_anchors_aliases_merge_rejected(void **state)
{
	(void)state;
	expect_error_in("load: {rate: 200/s, connections: 8}\n", "load: &l {rate: 200/s}\n",
			"t.yaml:6:7: error: YAML anchors ('&l') are not supported", "write the value out");
	expect_error("version: 1\nname: *x\n", "t.yaml:2:7: error: YAML aliases ('*x') are not supported",
		     NULL);
	expect_error_in("load: {rate: 200/s, connections: 8}\n", "load: {<<: {rate: 1/s}}\n",
			"t.yaml:6:8: error: merge keys ('<<') are not supported", NULL);
	expect_error("version: 1\n---\nversion: 1\n", "more than one YAML document", NULL);
	expect_error_in("name: unit\n", "name: !custom unit\n", "YAML tag '!custom' is not supported", NULL);
	expect_error_in("name: unit\n", "name: unit\nname: again\n",
			"t.yaml:3:1: error: duplicate key 'name' (first at line 2, column 1)", NULL);
}

static void test_target_exclusive_and_blast_radius(void **state)
{
	(void)state;
	expect_error_in("  run: [./svc, -port, \"8080\"]\n", "  run: [./svc]\n  pid: 1234\n",
			"t.yaml:6:8: error: target: 'run' and 'pid' are exclusive", "name the target one way");
	expect_error_in("  run: [./svc, -port, \"8080\"]\n", "  pid: 1\n",
			"t.yaml:5:8: error: target.pid 1 is the whole host: refused", "allow_host_wide");
	expect_error_in("  run: [./svc, -port, \"8080\"]\n", "  cgroup: /\n",
			"t.yaml:5:11: error: target.cgroup '/' is the root cgroup", NULL);
	/* a limit faultline sets on the cgroup it creates: a found target keeps its owner's */
	expect_error_in("  run: [./svc, -port, \"8080\"]\n", "  pid: 1234\n  memory_limit: 64MiB\n",
			"t.yaml:6:17: error: target.memory_limit without target.run", "keeps the limit its owner");
	expect_error_in("  run: [./svc, -port, \"8080\"]\n", "  run: [./svc]\n  memory_limit: 1MiB\n",
			"t.yaml:6:17: error: target.memory_limit", NULL);
	expect_error_in("  run: [./svc, -port, \"8080\"]\n", "  run: [./svc]\n  memory_limit: lots\n",
			"t.yaml:6:17: error: target.memory_limit", NULL);
	{
		char *y = replace(valid, "  run: [./svc, -port, \"8080\"]\n", "  run: [./svc]\n  memory_limit: 64MiB\n");
		struct fl_diags d = {0};
		struct fl_scenario *sc = fl_scenario_parse("t.yaml", y, strlen(y), NULL, 0, &d);

		assert_non_null(sc);
		assert_int_equal(sc->target.memory_limit, 64ULL << 20);
		fl_scenario_free(sc);
		fl_diags_free(&d);
		free(y);
	}
	expect_error_in("http://127.0.0.1:8080/api", "https://example.com/api",
			"t.yaml:4:8: error: target.url: url 'https://example.com/api' must start with http://",
			NULL);
	expect_error_in("http://127.0.0.1:8080/api", "http://db.internal:8080/",
			"target.url: url 'http://db.internal:8080/': host 'db.internal' is not an IP address",
			NULL);
	/* allowed explicitly */
	{
		char *y = replace(valid, "  run: [./svc, -port, \"8080\"]\n", "  pid: 1\n");
		char *y2 = malloc(strlen(y) + 32);

		sprintf(y2, "%sallow_host_wide: true\n", y);
		assert_null(diags_str(y2));
		free(y2);
		free(y);
	}
}

static void test_reports_every_error(void **state)
{
	char *y = replace(valid, "  survival_ratio: 95%\n", "  survival_ratio: 150%\n");
	char *y2 = replace(y, "connections: 8", "conections: 8");
	char *y3 = replace(y2, "    at: 2s\n", "    at: soon\n");
	char *t = diags_str(y3);
	int lines = 0;

	(void)state;
	for (const char *p = t; (p = strstr(p, ": error: ")); p++)
		lines++;
	assert_int_equal(lines, 3);
	free(t);
	free(y3);
	free(y2);
	free(y);
}

static void test_set_overrides(void **state)
{
	char *ok[] = {"load.rate=500/s", "faults.fds.limit=16", "phases.baseline=2s",
		      "target.run=[./other, -x]"};
	char *bad_value[] = {"load.rate=fast"};
	char *bad_fault[] = {"faults.nope.limit=3"};
	char *bad_form[] = {"load.rate"};
	char *unknown_key[] = {"load.rat=3/s"};
	struct fl_scenario *sc = NULL;
	char *t;

	(void)state;
	assert_null(diags_of(valid, strlen(valid), ok, 4, &sc));
	assert_true(sc->load.rate == 500.0);
	assert_int_equal(fl_fault_value(&sc->faults[0], "limit")->i, 16);
	assert_int_equal(sc->phases.baseline_ns, 2 * FL_NS_PER_S);
	assert_string_equal(sc->target.run.v[0], "./other");
	fl_scenario_free(sc);

	t = diags_of(valid, strlen(valid), bad_value, 1, NULL);
	assert_non_null(strstr(t, "--set:1:11: error: load.rate: "));
	free(t);
	t = diags_of(valid, strlen(valid), bad_fault, 1, NULL);
	assert_non_null(strstr(t, "--set:1:1: error: --set faults.nope.limit: no fault named 'nope'"));
	free(t);
	t = diags_of(valid, strlen(valid), bad_form, 1, NULL);
	assert_non_null(strstr(t, "'load.rate' is not KEY=VALUE"));
	free(t);
	t = diags_of(valid, strlen(valid), unknown_key, 1, NULL);
	assert_non_null(strstr(t, "--set:1:1: error: unknown key 'load.rat'") ||
			strstr(t, "unknown key 'rat' in load"));
	free(t);
}

static void test_deep_nesting_is_bounded(void **state)
{
	char buf[400];
	int n = 0;

	(void)state;
	for (int i = 0; i < 150; i++)
		buf[n++] = '[';
	buf[n] = '\0';
	expect_error(buf, "nesting deeper than 64 levels", NULL);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	buf[n] = '\0';
	*len = (size_t)n;
	fclose(f);
	return buf;
}

/* Every scenario bundled in scenarios/ validates. */
static void test_library_validates(void **state)
{
	const char *src = getenv("FL_SOURCE_DIR");
	char dir[4096];
	struct dirent *e;
	DIR *d;
	int count = 0;

	(void)state;
	if (!src)
		skip();
	snprintf(dir, sizeof(dir), "%s/scenarios", src);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[8192];
		struct fl_diags dg = {0};
		struct fl_scenario *sc;

		if (!strstr(e->d_name, ".yaml"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		sc = fl_scenario_load(path, NULL, 0, &dg);
		if (!sc) {
			fl_diags_print(&dg, stderr);
			fail_msg("%s does not validate", path);
		}
		fl_scenario_free(sc);
		fl_diags_free(&dg);
		count++;
	}
	closedir(d);
	assert_true(count >= 1);
}

/*
 * The broken corpus: tests/scenarios/broken/X.yaml with X.expected holding the exact diagnostics
 * (without the file name), one "LINE:COL: error: MESSAGE" line each, hints on "  hint:" lines.
 */
static void test_broken_corpus(void **state)
{
	const char *src = getenv("FL_SOURCE_DIR");
	char dir[4096];
	struct dirent *e;
	DIR *d;
	int count = 0;

	(void)state;
	if (!src)
		skip();
	snprintf(dir, sizeof(dir), "%s/tests/scenarios/broken", src);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[8192], exp_path[8192];
		char *buf, *want, *got = NULL, *p;
		size_t len, wl, gl = 0;
		struct fl_diags dg = {0};
		struct fl_scenario *sc;
		FILE *m;
		size_t nl = strlen(e->d_name);

		if (nl < 6 || strcmp(e->d_name + nl - 5, ".yaml"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		snprintf(exp_path, sizeof(exp_path), "%s/%.*s.expected", dir, (int)(nl - 5), e->d_name);
		buf = slurp(path, &len);
		want = slurp(exp_path, &wl);
		if (!want)
			fail_msg("%s has no .expected file", path);
		sc = fl_scenario_parse("", buf, len, NULL, 0, &dg);
		if (sc)
			fail_msg("%s validated but is in the broken corpus", path);
		m = open_memstream(&got, &gl);
		fl_diags_print(&dg, m);
		fclose(m);
		/* drop the empty file name: lines start ":LINE:COL:" */
		for (p = got; (p = strstr(p, "\n:")); p++)
			memmove(p + 1, p + 2, strlen(p + 2) + 1);
		if (got[0] == ':')
			memmove(got, got + 1, strlen(got));
		if (strcmp(got, want))
			fail_msg("%s:\nexpected:\n%s\ngot:\n%s", e->d_name, want, got);
		free(got);
		free(want);
		free(buf);
		fl_diags_free(&dg);
		count++;
	}
	closedir(d);
	assert_true(count >= 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_scenario_is_typed),
		cmocka_unit_test(test_unknown_key_suggests),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_bad_values_and_ranges),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_duplicate_fault_name),
		cmocka_unit_test(test_unknown_fault_type),
		cmocka_unit_test(test_fault_past_end_of_run),
		cmocka_unit_test(test_unsupported_version),
		cmocka_unit_test(test_yaml_syntax_error),
		cmocka_unit_test(test_empty_binary_and_non_utf8),
		cmocka_unit_test(test_anchors_aliases_merge_rejected),
		cmocka_unit_test(test_target_exclusive_and_blast_radius),
		cmocka_unit_test(test_reports_every_error),
		cmocka_unit_test(test_set_overrides),
		cmocka_unit_test(test_deep_nesting_is_bounded),
		cmocka_unit_test(test_library_validates),
		cmocka_unit_test(test_broken_corpus),
		cmocka_unit_test(test_network_cross_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
