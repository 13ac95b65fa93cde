/* SLO arithmetic against synthetic request streams whose answers are worked out by hand in the comments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "slo.h"

#define S FL_NS_PER_S
#define MS FL_NS_PER_MS
#define T0 (1000 * S) /* an arbitrary monotonic origin */

static struct fl_slo_spec spec(double survival, int64_t latency, int64_t recover_within)
{
	struct fl_slo_spec s = {0};
	struct fl_err e;

	assert_int_equal(fl_parse_status_set("200-399", &s.good_status, &e), 0);
	s.good_latency_ns = latency;
	s.survival_ratio = survival;
	s.baseline_ratio = 0.99;
	s.recover_within_ns = recover_within;
	s.window_ns = 1 * S;
	return s;
}

/* 100 req/s: request i is scheduled at T0 + i * 10 ms. */
static int64_t sched(int i)
{
	return T0 + (int64_t)i * 10 * MS;
}

static void test_half_failing_fault_window(void **state)
{
	struct fl_slo_spec sp = spec(0.95, 300 * MS, 2 * S);
	struct fl_slo *s;
	struct fl_verdict v;

	(void)state;
	assert_int_equal(fl_slo_create(&sp, T0, 60 * S, 2 * S, &s), 0);
	/* baseline 0..10 s: 1000 requests, all 200 in 5 ms */
	for (int i = 0; i < 1000; i++)
		fl_slo_record(s, sched(i), sched(i) + 5 * MS, true, 200, FL_C_GOOD);
	fl_slo_mark_faults_start(s, T0 + 10 * S);
	/* faults 10..12 s: 200 requests, every other one a 500 -> 100 good of 200 = 50% */
	for (int i = 1000; i < 1200; i++)
		fl_slo_record(s, sched(i), sched(i) + 5 * MS, true, i % 2 ? 200 : 500, FL_C_GOOD);
	fl_slo_mark_recovery_start(s, T0 + 12 * S);
	for (int i = 1200; i < 1500; i++)
		fl_slo_record(s, sched(i), sched(i) + 5 * MS, true, 200, FL_C_GOOD);
	fl_slo_mark_end(s, T0 + 15 * S);
	fl_slo_finish(s);
	fl_slo_verdict(s, &v);

	assert_int_equal(fl_slo_phase(s, FL_PHASE_BASELINE)->requests, 1000);
	assert_int_equal(fl_slo_phase(s, FL_PHASE_FAULTS)->requests, 200);
	assert_int_equal(fl_slo_phase(s, FL_PHASE_FAULTS)->by_class[FL_C_BAD_STATUS], 100);
	assert_int_equal(fl_slo_phase(s, FL_PHASE_RECOVERY)->requests, 300);
	assert_true(v.baseline_ok);
	assert_true(v.faults_ran);
	assert_int_equal(v.fault_valid, 200);
	assert_int_equal(v.fault_good, 100);
	assert_true(fabs(v.survival_ratio - 0.5) < 1e-12);
	assert_false(v.survival_ok);
	assert_int_equal(v.recovery_ns, 0); /* the first window after the revert is all good */
	assert_true(v.recovery_ok);
	assert_false(v.pass);
	fl_slo_destroy(s);
}

/*
 * A 2 s stop-the-world pause from 10 s to 12 s at 100 req/s with a 500 ms limit: every request
 * scheduled in the pause completes at 12 s, so its latency is 12 s - scheduled. Only those
 * scheduled at or after 11.5 s are good: 50 of 200 = 25%. Measuring from the *send* time instead
 * would call all 200 fast; that is the coordinated omission this arithmetic must not commit.
 */
static void test_pause_counts_from_scheduled_time(void **state)
{
	struct fl_slo_spec sp = spec(0.20, 500 * MS, -1);
	struct fl_slo *s;
	struct fl_verdict v;

	(void)state;
	assert_int_equal(fl_slo_create(&sp, T0, 60 * S, 3 * S, &s), 0);
	for (int i = 0; i < 1000; i++)
		fl_slo_record(s, sched(i), sched(i) + 2 * MS, true, 200, FL_C_GOOD);
	fl_slo_mark_faults_start(s, T0 + 10 * S);
	for (int i = 1000; i < 1200; i++)
		fl_slo_record(s, sched(i), T0 + 12 * S, true, 200, FL_C_GOOD);
	fl_slo_mark_recovery_start(s, T0 + 12 * S);
	for (int i = 1200; i < 1300; i++)
		fl_slo_record(s, sched(i), sched(i) + 2 * MS, true, 200, FL_C_GOOD);
	fl_slo_mark_end(s, T0 + 13 * S);
	fl_slo_verdict(s, &v);
	/* scheduled 11.50, 11.51, ... 11.99 s: 50 requests with latency <= 500 ms */
	assert_int_equal(v.fault_good, 50);
	assert_int_equal(v.fault_valid, 200);
	assert_int_equal(fl_slo_phase(s, FL_PHASE_FAULTS)->by_class[FL_C_TOO_SLOW], 150);
	assert_true(fabs(v.survival_ratio - 0.25) < 1e-12);
	assert_true(v.survival_ok);
	assert_false(v.recovery_judged);
	assert_true(v.pass);
	/* the fault phase's p99 is the oldest request's wait, ~2 s (histogram error <= 1%) */
	assert_true(fl_hist_percentile(fl_slo_phase_hist(s, FL_PHASE_FAULTS), 99.0) > 1960 * MS);
	fl_slo_destroy(s);
}

/*
 * After the revert at 20 s the service fails until 23.25 s. With 1 s windows stepped by 100 ms,
 * [23.1, 24.1) holds 15 bad of 100 (85%); [23.2, 24.2) holds 5 bad of 100 = 95%, which meets
 * 95%: recovery time 3.2 s. A 3 s limit fails, a 4 s limit passes.
 */
static void test_recovery_time(void **state)
{
	struct fl_slo_spec sp = spec(0.95, 300 * MS, 3 * S);
	struct fl_slo *s;
	struct fl_verdict v;

	(void)state;
	assert_int_equal(fl_slo_create(&sp, T0, 60 * S, 2 * S, &s), 0);
	for (int i = 0; i < 1000; i++)
		fl_slo_record(s, sched(i), sched(i) + 1 * MS, true, 200, FL_C_GOOD);
	fl_slo_mark_faults_start(s, T0 + 10 * S);
	for (int i = 1000; i < 2000; i++)
		fl_slo_record(s, sched(i), sched(i) + 1 * MS, true, 200, FL_C_GOOD);
	fl_slo_mark_recovery_start(s, T0 + 20 * S);
	for (int i = 2000; i < 3000; i++) {
		if (i < 2325)
			fl_slo_record(s, sched(i), sched(i) + 2 * S, false, 0, FL_C_TIMEOUT);
		else
			fl_slo_record(s, sched(i), sched(i) + 1 * MS, true, 200, FL_C_GOOD);
	}
	fl_slo_mark_end(s, T0 + 30 * S);
	fl_slo_verdict(s, &v);
	assert_true(v.survival_ok);
	assert_int_equal(v.recovery_ns, 3200 * MS);
	assert_false(v.recovery_ok);
	assert_false(v.pass);
	assert_int_equal(fl_slo_phase(s, FL_PHASE_RECOVERY)->by_class[FL_C_TIMEOUT], 325);
	fl_slo_destroy(s);

	sp.recover_within_ns = 4 * S;
	assert_int_equal(fl_slo_create(&sp, T0, 60 * S, 2 * S, &s), 0);
	fl_slo_mark_faults_start(s, T0);
	fl_slo_mark_recovery_start(s, T0 + 1 * S);
	for (int i = 100; i < 1000; i++)
		fl_slo_record(s, sched(i), sched(i) + 1 * MS, i >= 425, 200, FL_C_REFUSED);
	fl_slo_mark_end(s, T0 + 10 * S);
	fl_slo_verdict(s, &v);
	assert_int_equal(v.recovery_ns, 3200 * MS);
	assert_true(v.recovery_ok);
	fl_slo_destroy(s);
}

static void test_never_recovers(void **state)
{
	struct fl_slo_spec sp = spec(0.95, 300 * MS, 5 * S);
	struct fl_slo *s;
	struct fl_verdict v;

	(void)state;
	assert_int_equal(fl_slo_create(&sp, T0, 60 * S, 2 * S, &s), 0);
	fl_slo_mark_faults_start(s, T0 + 1 * S);
	fl_slo_mark_recovery_start(s, T0 + 2 * S);
	for (int i = 0; i < 500; i++)
		fl_slo_record(s, sched(i), sched(i) + 1 * MS, i < 100, 200, FL_C_RESET);
	fl_slo_mark_end(s, T0 + 5 * S);
	fl_slo_verdict(s, &v);
	assert_int_equal(v.recovery_ns, -1);
	assert_false(v.recovery_ok);
	assert_int_equal(fl_slo_phase(s, FL_PHASE_RECOVERY)->by_class[FL_C_RESET], 300);
	fl_slo_destroy(s);
}

static void test_baseline_gate(void **state)
{
	struct fl_slo_spec sp = spec(0.95, 300 * MS, -1);
	struct fl_slo *s;
	struct fl_verdict v;

	(void)state;
	assert_int_equal(fl_slo_create(&sp, T0, 60 * S, 2 * S, &s), 0);
	/* 985 good of 1000 = 98.5% < 99% */
	for (int i = 0; i < 1000; i++)
		fl_slo_record(s, sched(i), sched(i) + 1 * MS, i >= 15, 200, FL_C_NOT_SENT);
	fl_slo_verdict(s, &v);
	assert_false(v.baseline_ok);
	assert_true(fabs(v.baseline_ratio - 0.985) < 1e-12);
	assert_false(v.faults_ran);
	assert_false(v.pass);
	assert_int_equal(fl_slo_phase(s, FL_PHASE_BASELINE)->by_class[FL_C_NOT_SENT], 15);
	fl_slo_destroy(s);
}

/* 95 of 100 against 95%: floating point must not turn an exact hit into a miss. */
static void test_exact_threshold(void **state)
{
	struct fl_slo_spec sp = spec(0.95, 300 * MS, -1);
	struct fl_slo *s;
	struct fl_verdict v;

	(void)state;
	assert_int_equal(fl_slo_create(&sp, T0, 60 * S, 2 * S, &s), 0);
	fl_slo_mark_faults_start(s, T0);
	for (int i = 0; i < 100; i++)
		fl_slo_record(s, sched(i), sched(i) + 1 * MS, true, i < 5 ? 503 : 204, FL_C_GOOD);
	fl_slo_mark_recovery_start(s, T0 + 1 * S);
	fl_slo_verdict(s, &v);
	assert_int_equal(v.fault_good, 95);
	assert_true(v.survival_ok);
	fl_slo_destroy(s);
}

static void test_seconds_and_recent_window(void **state)
{
	struct fl_slo_spec sp = spec(0.95, 300 * MS, -1);
	struct fl_slo *s;
	const struct fl_second *sec;
	uint64_t valid;
	int n;

	(void)state;
	assert_int_equal(fl_slo_create(&sp, T0, 60 * S, 2 * S, &s), 0);
	/* second 0: 100 requests of 10 ms; second 1: 100 requests, 40 bad, of 20 ms */
	for (int i = 0; i < 100; i++)
		fl_slo_record(s, sched(i), sched(i) + 10 * MS, true, 200, FL_C_GOOD);
	for (int i = 100; i < 200; i++)
		fl_slo_record(s, sched(i), sched(i) + 20 * MS, true, i < 140 ? 500 : 200, FL_C_GOOD);
	/*
	 * At 2.02 s a 1 s window is the ten 100 ms completion slots [1.1 s, 2.1 s): requests 108..199
	 * (scheduled 1.08..1.99 s, done 20 ms later) = 92, of which 140..199 are good = 60.
	 */
	assert_true(fabs(fl_slo_recent_ratio(s, T0 + 2020 * MS, 1 * S, &valid) - 60.0 / 92.0) < 1e-12);
	assert_int_equal(valid, 92);
	fl_slo_mark_end(s, T0 + 2 * S);
	fl_slo_finish(s);
	sec = fl_slo_seconds(s, &n);
	assert_int_equal(n, 2);
	assert_int_equal(sec[0].requests, 100);
	assert_int_equal(sec[0].good, 100);
	assert_int_equal(sec[1].requests, 100);
	assert_int_equal(sec[1].good, 60);
	assert_true(llabs(sec[0].p50_ns - 10 * MS) <= 10 * MS / 100 + 1);
	assert_true(llabs(sec[1].p99_ns - 20 * MS) <= 20 * MS / 100 + 1);
	assert_true(sec[0].final && sec[1].final);
	fl_slo_destroy(s);
}

/* A long run reuses the ring of live per-second histograms: seconds finalise as they are decided. */
static void test_long_run_bounded(void **state)
{
	struct fl_slo_spec sp = spec(0.95, 300 * MS, -1);
	struct fl_slo *s;
	const struct fl_second *sec;
	int n;

	(void)state;
	assert_int_equal(fl_slo_create(&sp, T0, 600 * S, 1 * S, &s), 0);
	for (int i = 0; i < 600 * 100; i++) {
		fl_slo_record(s, sched(i), sched(i) + (i % 100 + 1) * MS, true, 200, FL_C_GOOD);
		if (i % 100 == 99)
			fl_slo_tick(s, sched(i) + 1 * MS);
	}
	fl_slo_mark_end(s, T0 + 600 * S);
	fl_slo_finish(s);
	sec = fl_slo_seconds(s, &n);
	assert_int_equal(n, 600);
	for (int i = 0; i < n; i++) {
		assert_int_equal(sec[i].requests, 100);
		/* latencies 1..100 ms: the median is 50 ms (within 1%) */
		assert_true(llabs(sec[i].p50_ns - 50 * MS) <= 50 * MS / 100 + 1);
	}
	fl_slo_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_half_failing_fault_window),
		cmocka_unit_test(test_pause_counts_from_scheduled_time),
		cmocka_unit_test(test_recovery_time),
		cmocka_unit_test(test_never_recovers),
		cmocka_unit_test(test_baseline_gate),
		cmocka_unit_test(test_exact_threshold),
		cmocka_unit_test(test_seconds_and_recent_window),
		cmocka_unit_test(test_long_run_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
