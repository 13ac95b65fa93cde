/* The latency histogram against exact order statistics of seeded random data, its boundaries, merging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

#define N 100000
#define US 1000LL
#define HOUR FL_HIST_HIGHEST_NS

/* splitmix64: the same samples on every libc and every run */
static uint64_t next_u64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* log-uniform in [1 µs, 1 h] */
static int64_t log_uniform(uint64_t *s)
{
	double u = (double)(next_u64(s) >> 11) / 9007199254740992.0; /* [0, 1) with 53 bits */
	double v = exp(log(1e3) + u * (log(3.6e12) - log(1e3)));

	if (v < 1e3)
		v = 1e3;
	if (v > 3.6e12)
		v = 3.6e12;
	return (int64_t)v;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The definition fl_hist_percentile documents, in integers: p is given in tenths of a percent. */
static int64_t exact(const int64_t *sorted, uint64_t n, uint64_t p_tenths)
{
	uint64_t r = (p_tenths * n + 999) / 1000;

	if (r < 1)
		r = 1;
	return sorted[r - 1];
}

static void assert_within_1pct(int64_t got, int64_t want, const char *what)
{
	double rel = fabs((double)got - (double)want) / (double)want;

	if (rel > 0.01)
		fail_msg("%s: got %lld, exact %lld, relative error %.4f%%", what, (long long)got,
			 (long long)want, rel * 100);
}

static int64_t *samples(uint64_t seed, size_t n)
{
	int64_t *v = malloc(n * sizeof(*v));

	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i] = log_uniform(&seed);
	return v;
}

static void test_percentiles_match_sorted_data(void **state)
{
	static const uint64_t tenths[] = {0, 10, 100, 250, 500, 750, 900, 990, 999, 1000};
	int64_t *v = samples(42, N);
	struct fl_hist *h = malloc(sizeof(*h));
	unsigned __int128 sum = 0;
	char what[64];

	(void)state;
	assert_non_null(h);
	fl_hist_init(h);
	for (size_t i = 0; i < N; i++) {
		fl_hist_record(h, v[i]);
		sum += (uint64_t)v[i];
	}
	qsort(v, N, sizeof(*v), cmp64);
	assert_int_equal(fl_hist_count(h), N);
	assert_int_equal(fl_hist_overflow(h), 0);
	assert_int_equal(fl_hist_min(h), v[0]);
	assert_int_equal(fl_hist_max(h), v[N - 1]);
	assert_true(fabs(fl_hist_mean(h) - (double)sum / N) <= 1e-9 * ((double)sum / N));
	for (size_t i = 0; i < sizeof(tenths) / sizeof(tenths[0]); i++) {
		snprintf(what, sizeof(what), "p%g", (double)tenths[i] / 10);
		assert_within_1pct(fl_hist_percentile(h, (double)tenths[i] / 10), exact(v, N, tenths[i]), what);
	}
	/* the ones the reports print, named as in the brief */
	assert_within_1pct(fl_hist_percentile(h, 50.0), v[N / 2 - 1], "p50");
	assert_within_1pct(fl_hist_percentile(h, 90.0), v[90000 - 1], "p90");
	assert_within_1pct(fl_hist_percentile(h, 99.0), v[99000 - 1], "p99");
	assert_within_1pct(fl_hist_percentile(h, 99.9), v[99900 - 1], "p99.9");
	assert_int_equal(fl_hist_percentile(h, 100.0), v[N - 1]);
	free(h);
	free(v);
}

/* Every rank of a sorted sample, not only the usual percentiles. */
static void test_every_rank_within_1pct(void **state)
{
	enum { M = 2000 };
	int64_t *v = samples(7, M);
	struct fl_hist h;
	char what[64];

	(void)state;
	fl_hist_init(&h);
	for (size_t i = 0; i < M; i++)
		fl_hist_record(&h, v[i]);
	qsort(v, M, sizeof(*v), cmp64);
	for (int r = 1; r <= M; r++) {
		/* p chosen so that ceil(p/100 * M) == r */
		double p = 100.0 * ((double)r - 0.5) / M;

		snprintf(what, sizeof(what), "rank %d", r);
		assert_within_1pct(fl_hist_percentile(&h, p), v[r - 1], what);
	}
	free(v);
}

/* A value between two far-away ones is reported from its bucket alone: the bucket error bound. */
static void test_bucket_error_bound_over_the_range(void **state)
{
	struct fl_hist h;
	int checked = 0;

	(void)state;
	for (double x = 1e3; x <= 3.6e12; x *= 1.0007) {
		int64_t v = (int64_t)x;

		fl_hist_reset(&h);
		fl_hist_record(&h, 0);
		fl_hist_record(&h, v);
		fl_hist_record(&h, v);
		fl_hist_record(&h, 2 * HOUR);
		assert_within_1pct(fl_hist_percentile(&h, 50.0), v, "bucket midpoint");
		checked++;
	}
	assert_true(checked > 30000);
}

static void test_merge_of_halves_equals_whole(void **state)
{
	int64_t *v = samples(1234, N);
	struct fl_hist *whole = malloc(sizeof(*whole)), *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	static const double ps[] = {0, 1, 50, 90, 99, 99.9, 99.99, 100};

	(void)state;
	assert_non_null(whole);
	assert_non_null(a);
	assert_non_null(b);
	fl_hist_init(whole);
	fl_hist_init(a);
	fl_hist_init(b);
	for (size_t i = 0; i < N; i++) {
		fl_hist_record(whole, v[i]);
		fl_hist_record(i % 3 ? a : b, v[i]); /* uneven, interleaved halves */
	}
	fl_hist_record(whole, 3 * HOUR); /* and an overflow on one side */
	fl_hist_record(b, 3 * HOUR);
	fl_hist_merge(a, b);
	assert_int_equal(fl_hist_count(a), fl_hist_count(whole));
	assert_int_equal(fl_hist_overflow(a), 1);
	assert_int_equal(fl_hist_min(a), fl_hist_min(whole));
	assert_int_equal(fl_hist_max(a), fl_hist_max(whole));
	assert_true(fl_hist_mean(a) == fl_hist_mean(whole));
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
		assert_int_equal(fl_hist_percentile(a, ps[i]), fl_hist_percentile(whole, ps[i]));
	assert_memory_equal(a, whole, sizeof(*a));

	/* merging into an empty one copies; merging an empty one changes nothing */
	fl_hist_reset(b);
	fl_hist_merge(b, whole);
	assert_memory_equal(b, whole, sizeof(*b));
	fl_hist_reset(a);
	fl_hist_merge(b, a);
	assert_memory_equal(b, whole, sizeof(*b));
	free(whole);
	free(a);
	free(b);
	free(v);
}

static void test_boundaries(void **state)
{
	struct fl_hist h;

	(void)state;
	/* exactly 1 µs and exactly 1 h are in range */
	fl_hist_init(&h);
	fl_hist_record(&h, US);
	fl_hist_record(&h, US);
	fl_hist_record(&h, HOUR);
	fl_hist_record(&h, HOUR);
	assert_int_equal(fl_hist_overflow(&h), 0);
	assert_int_equal(fl_hist_percentile(&h, 50.0), 1004); /* midpoint of [1000, 1008) */
	assert_within_1pct(fl_hist_percentile(&h, 75.0), HOUR, "p75 at 1 h");
	assert_true(fl_hist_percentile(&h, 75.0) <= HOUR);    /* clamped to the max */
	assert_int_equal(fl_hist_min(&h), US);
	assert_int_equal(fl_hist_max(&h), HOUR);

	/* 0 and sub-µs values count in the first bucket; min stays exact */
	fl_hist_reset(&h);
	fl_hist_record(&h, 0);
	assert_int_equal(fl_hist_count(&h), 1);
	assert_int_equal(fl_hist_min(&h), 0);
	assert_int_equal(fl_hist_max(&h), 0);
	assert_int_equal(fl_hist_percentile(&h, 50.0), 0);
	fl_hist_record(&h, 999);
	fl_hist_record(&h, 1003);
	fl_hist_record(&h, 5 * US);
	/* rank 2 of {0, 999, 1003, 5000} shares the first bucket [1000, 1008) with 1003 */
	assert_int_equal(fl_hist_percentile(&h, 50.0), 1004);
	assert_int_equal(fl_hist_percentile(&h, 75.0), 1004);
	assert_int_equal(fl_hist_percentile(&h, 100.0), 5 * US);

	/* negative latencies (a clock step) are recorded as 0, not lost */
	fl_hist_reset(&h);
	fl_hist_record(&h, -5);
	assert_int_equal(fl_hist_count(&h), 1);
	assert_int_equal(fl_hist_min(&h), 0);

	/* above 1 h: counted in the overflow; a percentile landing there reads ">= 1 h" */
	fl_hist_reset(&h);
	fl_hist_record(&h, HOUR + 1);
	assert_int_equal(fl_hist_overflow(&h), 1);
	assert_int_equal(fl_hist_count(&h), 1);
	assert_int_equal(fl_hist_max(&h), HOUR + 1);
	fl_hist_reset(&h);
	fl_hist_record(&h, 1000 * US);
	fl_hist_record(&h, 2 * HOUR);
	fl_hist_record(&h, 3 * HOUR);
	fl_hist_record(&h, 4 * HOUR);
	assert_int_equal(fl_hist_overflow(&h), 3);
	assert_int_equal(fl_hist_percentile(&h, 25.0), 1000 * US);
	assert_int_equal(fl_hist_percentile(&h, 50.0), HOUR);
	assert_int_equal(fl_hist_percentile(&h, 75.0), HOUR);
	assert_int_equal(fl_hist_percentile(&h, 100.0), 4 * HOUR); /* the max is exact */
	assert_true(fl_hist_mean(&h) == (1e6 + 9.0 * (double)HOUR) / 4);
	fl_hist_record(&h, INT64_MAX); /* the exact sum does not overflow */
	assert_int_equal(fl_hist_max(&h), INT64_MAX);
	assert_true(fl_hist_mean(&h) > (double)INT64_MAX / 5 * 0.999);
}

static void test_empty(void **state)
{
	struct fl_hist h;
	struct fl_hist *z = calloc(1, sizeof(*z));

	(void)state;
	fl_hist_init(&h);
	assert_int_equal(fl_hist_count(&h), 0);
	assert_int_equal(fl_hist_overflow(&h), 0);
	assert_int_equal(fl_hist_min(&h), 0);
	assert_int_equal(fl_hist_max(&h), 0);
	assert_true(fl_hist_mean(&h) == 0.0);
	assert_int_equal(fl_hist_percentile(&h, 0.0), 0);
	assert_int_equal(fl_hist_percentile(&h, 50.0), 0);
	assert_int_equal(fl_hist_percentile(&h, 100.0), 0);
	/* calloc'd memory is an empty histogram too, and records correctly */
	assert_non_null(z);
	fl_hist_record(z, 5 * US);
	assert_int_equal(fl_hist_min(z), 5 * US);
	assert_int_equal(fl_hist_max(z), 5 * US);
	free(z);
	/* after a reset, nothing of the past shows */
	fl_hist_record(&h, 7 * US);
	fl_hist_reset(&h);
	assert_int_equal(fl_hist_count(&h), 0);
	assert_int_equal(fl_hist_percentile(&h, 99.0), 0);
}

static void test_percentile_argument_edges(void **state)
{
	struct fl_hist h;

	(void)state;
	fl_hist_init(&h);
	for (int i = 1; i <= 10; i++)
		fl_hist_record(&h, i * 1000 * US);
	assert_int_equal(fl_hist_percentile(&h, -1.0), 1000 * US);   /* below 0: the min */
	assert_int_equal(fl_hist_percentile(&h, 0.0), 1000 * US);
	assert_int_equal(fl_hist_percentile(&h, NAN), 1000 * US);
	assert_int_equal(fl_hist_percentile(&h, 250.0), 10000 * US); /* above 100: the max */
	/* rank ceil(p/100 * 10): 50 -> 5th, 50.01 -> 6th, 10 -> 1st, 10.01 -> 2nd */
	assert_within_1pct(fl_hist_percentile(&h, 50.0), 5000 * US, "p50 of 10");
	assert_within_1pct(fl_hist_percentile(&h, 50.01), 6000 * US, "p50.01 of 10");
	assert_int_equal(fl_hist_percentile(&h, 10.0), 1000 * US);
	assert_within_1pct(fl_hist_percentile(&h, 10.01), 2000 * US, "p10.01 of 10");
	assert_int_equal(fl_hist_percentile(&h, 90.01), 10000 * US);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_percentiles_match_sorted_data),
		cmocka_unit_test(test_every_rank_within_1pct),
		cmocka_unit_test(test_bucket_error_bound_over_the_range),
		cmocka_unit_test(test_merge_of_halves_equals_whole),
		cmocka_unit_test(test_boundaries),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_percentile_argument_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
