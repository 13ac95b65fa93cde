/* Unit tests for the scenario value grammar in controller/units.c: exact values, every error class, and the words users see. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strerrorname_np, sigabbrev_np: the C library's own names to check ours against */
#endif
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "units.h"

#define assert_contains(hay, needle)                                                            \
	do {                                                                                    \
		if (!strstr((hay), (needle)))                                                   \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));            \
	} while (0)

/* expr must fail with want (a negative errno), say msg_has in the message and hint_has in the hint. */
#define assert_fails(expr, want, err, msg_has, hint_has)                                        \
	do {                                                                                    \
		fl_err_clear(err);                                                              \
		assert_int_equal((expr), (want));                                               \
		assert_int_equal((err)->code, (want));                                          \
		assert_contains((err)->msg, (msg_has));                                         \
		assert_contains((err)->hint, (hint_has));                                       \
	} while (0)

#define DUR_HINT "durations are a number and a unit"
#define SIZE_HINT "sizes are a number and a unit"
#define RATIO_HINT "a ratio is between 0% and 100%"

static int64_t dur(const char *s)
{
	struct fl_err err = { 0 };
	int64_t ns = -1;

	if (fl_parse_duration(s, &ns, &err))
		fail_msg("fl_parse_duration(\"%s\"): %s", s, err.msg);
	return ns;
}

static uint64_t size(const char *s)
{
	struct fl_err err = { 0 };
	uint64_t b = 0;

	if (fl_parse_size(s, &b, &err))
		fail_msg("fl_parse_size(\"%s\"): %s", s, err.msg);
	return b;
}

static uint64_t brate(const char *s)
{
	struct fl_err err = { 0 };
	uint64_t b = 0;

	if (fl_parse_byte_rate(s, &b, &err))
		fail_msg("fl_parse_byte_rate(\"%s\"): %s", s, err.msg);
	return b;
}

static double rate(const char *s)
{
	struct fl_err err = { 0 };
	double r = -1;

	if (fl_parse_rate(s, &r, &err))
		fail_msg("fl_parse_rate(\"%s\"): %s", s, err.msg);
	return r;
}

static double ratio(const char *s)
{
	struct fl_err err = { 0 };
	double r = -1;

	if (fl_parse_ratio(s, &r, &err))
		fail_msg("fl_parse_ratio(\"%s\"): %s", s, err.msg);
	return r;
}

/* ---- durations ---- */

static void test_duration_units(void **state)
{
	(void)state;
	assert_int_equal(dur("7ns"), 7);
	assert_int_equal(dur("7us"), 7000);
	assert_int_equal(dur("7\xc2\xb5s"), 7000); /* µ, MICRO SIGN */
	assert_int_equal(dur("7\xce\xbcs"), 7000); /* μ, GREEK SMALL LETTER MU */
	assert_int_equal(dur("250ms"), 250000000);
	assert_int_equal(dur("30s"), 30000000000LL);
	assert_int_equal(dur("2m"), 120000000000LL);
	assert_int_equal(dur("1h"), 3600000000000LL);
	assert_int_equal(dur("007s"), 7000000000LL);
}

static void test_duration_decimals_are_exact(void **state)
{
	(void)state;
	assert_int_equal(dur("1.5s"), 1500000000);
	assert_int_equal(dur("0.001s"), 1000000);
	assert_int_equal(dur("0.1s"), 100000000);
	assert_int_equal(dur("1.000000001s"), 1000000001);
	assert_int_equal(dur("0.5m"), 30000000000LL);
	assert_int_equal(dur("2.5h"), 9000000000000LL);
	assert_int_equal(dur("1.5us"), 1500);
	assert_int_equal(dur("1.50000000000000000000000000s"), 1500000000); /* trailing zeros are not precision */
}

static void test_duration_zero(void **state)
{
	(void)state;
	assert_int_equal(dur("0s"), 0);
	assert_int_equal(dur("0ms"), 0);
	assert_int_equal(dur("0.0h"), 0);
	assert_int_equal(dur("0"), 0); /* zero is zero in every unit */
}

static void test_duration_int64_boundary(void **state)
{
	struct fl_err err;
	int64_t ns = 42;

	(void)state;
	assert_int_equal(dur("9223372036854775807ns"), INT64_MAX);
	assert_int_equal(dur("9223372036.854775807s"), INT64_MAX);
	assert_int_equal(dur("2562047h"), 2562047LL * 3600 * FL_NS_PER_S);
	assert_fails(fl_parse_duration("9223372036854775808ns", &ns, &err), -ERANGE, &err, "too long",
		     DUR_HINT);
	assert_fails(fl_parse_duration("9223372036.854775808s", &ns, &err), -ERANGE, &err, "292 years",
		     DUR_HINT);
	assert_fails(fl_parse_duration("2562048h", &ns, &err), -ERANGE, &err, "\"2562048h\"", DUR_HINT);
	assert_fails(fl_parse_duration("99999999999999999999999s", &ns, &err), -ERANGE, &err, "too large",
		     DUR_HINT);
	assert_int_equal(ns, 42); /* nothing written on failure */
}

static void test_duration_negative(void **state)
{
	struct fl_err err;
	int64_t ns;

	(void)state;
	assert_fails(fl_parse_duration("-5s", &ns, &err), -EINVAL, &err, "durations cannot be negative",
		     "ns us ms s m h");
	assert_contains(err.msg, "\"-5s\"");
}

static void test_duration_missing_unit(void **state)
{
	struct fl_err err;
	int64_t ns;

	(void)state;
	assert_fails(fl_parse_duration("5", &ns, &err), -EINVAL, &err, "\"5\" has no unit", "add a unit, e.g. 5s");
	assert_contains(err.hint, DUR_HINT);
	assert_fails(fl_parse_duration("1.5", &ns, &err), -EINVAL, &err, "has no unit", "1.5s");
}

static void test_duration_unknown_unit(void **state)
{
	struct fl_err err;
	int64_t ns;

	(void)state;
	assert_fails(fl_parse_duration("10 parsecs", &ns, &err), -EINVAL, &err, "unknown unit \"parsecs\"",
		     "units: ns us ms s m h");
	assert_fails(fl_parse_duration("5sec", &ns, &err), -EINVAL, &err, "unknown unit \"sec\"", DUR_HINT);
	assert_contains(err.msg, "did you mean 5s?");
	assert_fails(fl_parse_duration("3minutes", &ns, &err), -EINVAL, &err, "did you mean 3m?", DUR_HINT);
	assert_fails(fl_parse_duration("5S", &ns, &err), -EINVAL, &err, "did you mean 5s?", DUR_HINT);
	assert_fails(fl_parse_duration("1d", &ns, &err), -EINVAL, &err, "write 24h for a day", DUR_HINT);
	assert_fails(fl_parse_duration("5ks", &ns, &err), -EINVAL, &err, "unknown unit \"ks\"", DUR_HINT);
}

static void test_duration_blanks(void **state)
{
	struct fl_err err;
	int64_t ns;

	(void)state;
	assert_fails(fl_parse_duration("", &ns, &err), -EINVAL, &err, "empty duration", DUR_HINT);
	assert_fails(fl_parse_duration(NULL, &ns, &err), -EINVAL, &err, "empty duration", DUR_HINT);
	assert_fails(fl_parse_duration(" 5s", &ns, &err), -EINVAL, &err, "starts with a blank", DUR_HINT);
	assert_fails(fl_parse_duration("5s\n", &ns, &err), -EINVAL, &err, "ends with a blank", DUR_HINT);
	assert_contains(err.msg, "\"5s\\x0a\""); /* control characters are shown, not printed */
	assert_fails(fl_parse_duration("   ", &ns, &err), -EINVAL, &err, "blank", DUR_HINT);
	assert_fails(fl_parse_duration("10 s", &ns, &err), -EINVAL, &err, "no blanks between the number and the unit",
		     DUR_HINT);
	assert_contains(err.msg, "write 10s");
}

static void test_duration_not_a_number(void **state)
{
	struct fl_err err;
	int64_t ns;

	(void)state;
	assert_fails(fl_parse_duration("nans", &ns, &err), -EINVAL, &err, "not a number", DUR_HINT);
	assert_fails(fl_parse_duration("NaN", &ns, &err), -EINVAL, &err, "not a number", DUR_HINT);
	assert_fails(fl_parse_duration("infs", &ns, &err), -EINVAL, &err, "not a number", DUR_HINT);
	assert_fails(fl_parse_duration("0x10s", &ns, &err), -EINVAL, &err, "hexadecimal", DUR_HINT);
	assert_fails(fl_parse_duration("1e3s", &ns, &err), -EINVAL, &err, "exponents are not accepted", DUR_HINT);
	assert_fails(fl_parse_duration("1.5E-3s", &ns, &err), -EINVAL, &err, "exponents", DUR_HINT);
	assert_fails(fl_parse_duration("+5s", &ns, &err), -EINVAL, &err, "without a sign", DUR_HINT);
	assert_fails(fl_parse_duration(".5s", &ns, &err), -EINVAL, &err, "digit before the decimal point (0.5s)",
		     DUR_HINT);
	assert_fails(fl_parse_duration("5.s", &ns, &err), -EINVAL, &err, "must be followed by digits", DUR_HINT);
	assert_fails(fl_parse_duration("1,5s", &ns, &err), -EINVAL, &err, "no commas", DUR_HINT);
	assert_fails(fl_parse_duration("s", &ns, &err), -EINVAL, &err, "does not start with a number", DUR_HINT);
	assert_fails(fl_parse_duration("1.2.3s", &ns, &err), -EINVAL, &err, "unknown unit \".3s\"", DUR_HINT);
}

static void test_duration_finer_than_ns(void **state)
{
	struct fl_err err;
	int64_t ns = 42;

	(void)state;
	assert_fails(fl_parse_duration("1.0000000001s", &ns, &err), -EINVAL, &err, "finer than a nanosecond",
		     DUR_HINT);
	assert_fails(fl_parse_duration("0.5ns", &ns, &err), -EINVAL, &err, "finer than a nanosecond", DUR_HINT);
	assert_fails(fl_parse_duration("0.00000000000000000001s", &ns, &err), -EINVAL, &err,
		     "more than 19 decimal places", DUR_HINT);
	assert_int_equal(ns, 42);
}

/* ---- sizes ---- */

static void test_size_units(void **state)
{
	(void)state;
	assert_int_equal(size("512B"), 512);
	assert_int_equal(size("64KiB"), 64 * 1024);
	assert_int_equal(size("64MiB"), 64ULL << 20);
	assert_int_equal(size("2GiB"), 2ULL << 30);
	assert_int_equal(size("3TiB"), 3ULL << 40);
	assert_int_equal(size("10KB"), 10000);
	assert_int_equal(size("10MB"), 10000000);
	assert_int_equal(size("10GB"), 10000000000ULL);
	assert_int_equal(size("10TB"), 10000000000000ULL);
	assert_int_equal(size("0B"), 0);
	assert_int_equal(size("0"), 0);
}

static void test_size_decimals(void **state)
{
	struct fl_err err;
	uint64_t b = 42;

	(void)state;
	assert_int_equal(size("1.5GiB"), 3ULL << 29);
	assert_int_equal(size("0.5KiB"), 512);
	assert_int_equal(size("1.5KB"), 1500);
	assert_int_equal(size("0.25MiB"), 256 * 1024);
	/* sizes are whole bytes: refused, not rounded */
	assert_fails(fl_parse_size("1.1KiB", &b, &err), -EINVAL, &err, "not a whole number of bytes", SIZE_HINT);
	assert_contains(err.msg, "between 1126B and 1127B");
	assert_fails(fl_parse_size("0.5B", &b, &err), -EINVAL, &err, "not a whole number of bytes", SIZE_HINT);
	assert_int_equal(b, 42);
}

static void test_size_missing_unit(void **state)
{
	struct fl_err err;
	uint64_t b;

	(void)state;
	assert_fails(fl_parse_size("64", &b, &err), -EINVAL, &err, "\"64\" has no unit", "add a unit, e.g. 64MiB");
	assert_contains(err.hint, "KiB MiB GiB TiB");
}

static void test_size_unknown_unit(void **state)
{
	struct fl_err err;
	uint64_t b;

	(void)state;
	assert_fails(fl_parse_size("64K", &b, &err), -EINVAL, &err, "did you mean 64KiB?", SIZE_HINT);
	assert_fails(fl_parse_size("64Gi", &b, &err), -EINVAL, &err, "did you mean 64GiB?", SIZE_HINT);
	assert_fails(fl_parse_size("64mb", &b, &err), -EINVAL, &err, "did you mean 64MB?", SIZE_HINT);
	assert_fails(fl_parse_size("64bytes", &b, &err), -EINVAL, &err, "did you mean 64B?", SIZE_HINT);
	assert_fails(fl_parse_size("1PiB", &b, &err), -EINVAL, &err, "unknown unit \"PiB\"", SIZE_HINT);
	assert_fails(fl_parse_size("64 MiB", &b, &err), -EINVAL, &err, "no blanks", SIZE_HINT);
	assert_fails(fl_parse_size("-1MiB", &b, &err), -EINVAL, &err, "sizes cannot be negative", SIZE_HINT);
	assert_fails(fl_parse_size("", &b, &err), -EINVAL, &err, "empty size", SIZE_HINT);
	assert_fails(fl_parse_size("lots", &b, &err), -EINVAL, &err, "does not start with a number", SIZE_HINT);
}

static void test_size_overflow(void **state)
{
	struct fl_err err;
	uint64_t b = 42;

	(void)state;
	assert_int_equal(size("18446744073709551615B"), UINT64_MAX);
	assert_int_equal(size("16777215TiB"), 16777215ULL << 40);
	assert_fails(fl_parse_size("18446744073709551616B", &b, &err), -ERANGE, &err, "too large", SIZE_HINT);
	assert_fails(fl_parse_size("16777216TiB", &b, &err), -ERANGE, &err, "too large", SIZE_HINT);
	assert_fails(fl_parse_size("20000000TB", &b, &err), -ERANGE, &err, "18446744073709551615B", SIZE_HINT);
	assert_int_equal(b, 42);
}

/* ---- rates ---- */

static void test_rate(void **state)
{
	(void)state;
	assert_true(rate("200/s") == 200.0);
	assert_true(rate("12000/m") == 200.0);
	assert_true(rate("0.5/s") == 0.5);
	assert_true(rate("30/h") == 30.0 / 3600.0);
	assert_true(rate("0/s") == 0.0); /* zero parses; whether it is allowed is the caller's range check */
	assert_true(rate("1.25/s") == 1.25);
}

static void test_rate_errors(void **state)
{
	struct fl_err err;
	double r = 42;

	(void)state;
	assert_fails(fl_parse_rate("200", &r, &err), -EINVAL, &err, "has no time unit", "e.g. 200/s");
	assert_fails(fl_parse_rate("abc/s", &r, &err), -EINVAL, &err, "\"abc/s\" does not start with a number",
		     "200/s, 12000/m");
	assert_fails(fl_parse_rate("200/sec", &r, &err), -EINVAL, &err, "did you mean 200/s?", "200/s");
	assert_fails(fl_parse_rate("200/d", &r, &err), -EINVAL, &err, "unknown unit \"d\"", "200/s");
	assert_fails(fl_parse_rate("200/ms", &r, &err), -EINVAL, &err, "multiply by 1000", "200/s");
	assert_fails(fl_parse_rate("200rps", &r, &err), -EINVAL, &err, "did you mean 200/s?", "200/s");
	assert_fails(fl_parse_rate("200 /s", &r, &err), -EINVAL, &err, "no blanks before the /", "200/s");
	assert_fails(fl_parse_rate("200/ s", &r, &err), -EINVAL, &err, "no blanks", "200/s");
	assert_fails(fl_parse_rate("200/", &r, &err), -EINVAL, &err, "has no unit", "200/s");
	assert_fails(fl_parse_rate("/s", &r, &err), -EINVAL, &err, "does not start with a number", "200/s");
	assert_fails(fl_parse_rate("-5/s", &r, &err), -EINVAL, &err, "rates cannot be negative", "200/s");
	assert_fails(fl_parse_rate("5MB/s", &r, &err), -EINVAL, &err, "byte rate", "200/s");
	assert_fails(fl_parse_rate("99999999999999999999/s", &r, &err), -ERANGE, &err, "too large", "200/s");
	assert_true(r == 42);
}

/* ---- byte rates ---- */

static void test_byte_rate(void **state)
{
	(void)state;
	assert_int_equal(brate("20MiB/s"), 20ULL << 20);
	assert_int_equal(brate("10Mbit/s"), 1250000);
	assert_int_equal(brate("1kbit/s"), 125);
	assert_int_equal(brate("8bit/s"), 1);
	assert_int_equal(brate("1Gbit/s"), 125000000);
	assert_int_equal(brate("1.5KiB/s"), 1536);
	assert_int_equal(brate("60B/m"), 1);
	assert_int_equal(brate("7200KB/h"), 2000);
	assert_int_equal(brate("0B/s"), 0);
}

static void test_byte_rate_rounds_to_nearest(void **state)
{
	struct fl_err err;
	uint64_t b = 42;

	(void)state;
	assert_int_equal(brate("1GB/m"), 16666667);   /* 16666666.67 */
	assert_int_equal(brate("1.1KiB/s"), 1126);    /* 1126.4 */
	assert_int_equal(brate("12bit/s"), 2);        /* 1.5 rounds up */
	assert_fails(fl_parse_byte_rate("1bit/s", &b, &err), -ERANGE, &err, "less than 1 byte per second",
		     "10Mbit/s");
	assert_int_equal(b, 42);
}

static void test_byte_rate_errors(void **state)
{
	struct fl_err err;
	uint64_t b;

	(void)state;
	assert_fails(fl_parse_byte_rate("20MiB", &b, &err), -EINVAL, &err, "has no time unit", "e.g. 20MiB/s");
	assert_fails(fl_parse_byte_rate("20/s", &b, &err), -EINVAL, &err, "has no size unit", "20MiB/s");
	assert_fails(fl_parse_byte_rate("10Mbps", &b, &err), -EINVAL, &err, "did you mean 10Mbit/s?", "bit kbit");
	assert_fails(fl_parse_byte_rate("10Mb/s", &b, &err), -EINVAL, &err, "did you mean 10Mbit", "bit kbit");
	assert_fails(fl_parse_byte_rate("10MiB/sec", &b, &err), -EINVAL, &err, "did you mean 10MiB/s?", "bit kbit");
	assert_fails(fl_parse_byte_rate("10parsecs/s", &b, &err), -EINVAL, &err, "unknown unit \"parsecs\"",
		     "bit kbit");
	assert_fails(fl_parse_byte_rate("20 MiB/s", &b, &err), -EINVAL, &err, "no blanks", "20MiB/s");
	assert_fails(fl_parse_byte_rate("-1MiB/s", &b, &err), -EINVAL, &err, "byte rates cannot be negative",
		     "20MiB/s");
	assert_fails(fl_parse_byte_rate("16777216TiB/s", &b, &err), -ERANGE, &err, "too large", "20MiB/s");
	assert_int_equal(brate("16777215TiB/s"), 16777215ULL << 40);
}

/* ---- ratios ---- */

static void test_ratio(void **state)
{
	(void)state;
	assert_true(ratio("95%") == 0.95);
	assert_true(ratio("99.9%") == 0.999);
	assert_true(ratio("99.99%") == 0.9999);
	assert_true(ratio("0.95") == 0.95);
	assert_true(ratio("1") == 1.0);
	assert_true(ratio("0") == 0.0);
	assert_true(ratio("100%") == 1.0);
	assert_true(ratio("0%") == 0.0);
	assert_true(ratio("0.5%") == 0.005);
	assert_true(ratio("1.000") == 1.0);
}

static void test_ratio_out_of_range(void **state)
{
	struct fl_err err;
	double r = 42;

	(void)state;
	assert_fails(fl_parse_ratio("150%", &r, &err), -ERANGE, &err, "above 100%", RATIO_HINT);
	assert_fails(fl_parse_ratio("100.0001%", &r, &err), -ERANGE, &err, "above 100%", RATIO_HINT);
	assert_fails(fl_parse_ratio("1.5", &r, &err), -ERANGE, &err, "\"1.5\" is above 1", RATIO_HINT);
	assert_fails(fl_parse_ratio("1.0000000000000000001", &r, &err), -ERANGE, &err, "above 1", RATIO_HINT);
	assert_fails(fl_parse_ratio("95", &r, &err), -ERANGE, &err, "did you mean 95%?", RATIO_HINT);
	assert_fails(fl_parse_ratio("-1%", &r, &err), -ERANGE, &err, "negative", RATIO_HINT);
	assert_true(r == 42);
}

static void test_ratio_errors(void **state)
{
	struct fl_err err;
	double r;

	(void)state;
	assert_fails(fl_parse_ratio("95 %", &r, &err), -EINVAL, &err, "no blank before the %", RATIO_HINT);
	assert_fails(fl_parse_ratio("95%%", &r, &err), -EINVAL, &err, "unexpected \"%%\"", RATIO_HINT);
	assert_fails(fl_parse_ratio("abc%", &r, &err), -EINVAL, &err, "does not start with a number", RATIO_HINT);
	assert_fails(fl_parse_ratio("nan", &r, &err), -EINVAL, &err, "not a number", RATIO_HINT);
	assert_fails(fl_parse_ratio("1e-2", &r, &err), -EINVAL, &err, "exponents", RATIO_HINT);
	assert_fails(fl_parse_ratio("", &r, &err), -EINVAL, &err, "empty ratio", RATIO_HINT);
}

/* ---- integers ---- */

static void test_int(void **state)
{
	struct fl_err err = { 0 };
	int64_t v = 0;

	(void)state;
	assert_int_equal(fl_parse_int("42", 0, 100, &v, &err), 0);
	assert_int_equal(v, 42);
	assert_int_equal(fl_parse_int("-7", -10, 10, &v, &err), 0);
	assert_int_equal(v, -7);
	assert_int_equal(fl_parse_int("65535", 1, 65535, &v, &err), 0);
	assert_int_equal(v, 65535);
	assert_int_equal(fl_parse_int("9223372036854775807", INT64_MIN, INT64_MAX, &v, &err), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(fl_parse_int("-9223372036854775808", INT64_MIN, INT64_MAX, &v, &err), 0);
	assert_true(v == INT64_MIN);
	assert_int_equal(fl_parse_int("-0", -1, 1, &v, &err), 0);
	assert_int_equal(v, 0);
}

static void test_int_out_of_range(void **state)
{
	struct fl_err err;
	int64_t v = 42;

	(void)state;
	assert_fails(fl_parse_int("65536", 1, 65535, &v, &err), -ERANGE, &err, "between 1 and 65535", "from 1 to 65535");
	assert_fails(fl_parse_int("0", 1, 65535, &v, &err), -ERANGE, &err, "between 1 and 65535", "decimal digits");
	assert_fails(fl_parse_int("9223372036854775808", INT64_MIN, INT64_MAX, &v, &err), -ERANGE, &err,
		     "between -9223372036854775808 and 9223372036854775807", "decimal");
	assert_fails(fl_parse_int("-9223372036854775809", INT64_MIN, INT64_MAX, &v, &err), -ERANGE, &err,
		     "out of range", "decimal");
	assert_fails(fl_parse_int("999999999999999999999999", 0, 10, &v, &err), -ERANGE, &err, "out of range",
		     "from 0 to 10");
	assert_int_equal(v, 42);
}

static void test_int_errors(void **state)
{
	struct fl_err err;
	int64_t v = 42;

	(void)state;
	assert_fails(fl_parse_int("1.5", 0, 10, &v, &err), -EINVAL, &err, "not a whole number", "from 0 to 10");
	assert_fails(fl_parse_int("0x10", 0, 100, &v, &err), -EINVAL, &err, "hexadecimal", "decimal digits");
	assert_fails(fl_parse_int("1e3", 0, 10000, &v, &err), -EINVAL, &err, "exponents", "decimal digits");
	assert_fails(fl_parse_int("+5", 0, 10, &v, &err), -EINVAL, &err, "without a + sign", "decimal digits");
	assert_fails(fl_parse_int("12abc", 0, 100, &v, &err), -EINVAL, &err, "unexpected \"abc\"", "decimal");
	assert_fails(fl_parse_int("abc", 0, 100, &v, &err), -EINVAL, &err, "not a whole number", "decimal");
	assert_fails(fl_parse_int("-", 0, 100, &v, &err), -EINVAL, &err, "not a whole number", "decimal");
	assert_fails(fl_parse_int("", 0, 100, &v, &err), -EINVAL, &err, "empty integer", "decimal");
	assert_fails(fl_parse_int(" 5", 0, 100, &v, &err), -EINVAL, &err, "starts with a blank", "decimal");
	assert_fails(fl_parse_int("5", 10, 0, &v, &err), -EINVAL, &err, "bounds are reversed", "");
	assert_int_equal(v, 42);
}

/* ---- booleans ---- */

static void test_bool(void **state)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };
	struct fl_err err = { 0 };
	bool b;

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		b = false;
		assert_int_equal(fl_parse_bool(yes[i], &b, &err), 0);
		assert_true(b);
		b = true;
		assert_int_equal(fl_parse_bool(no[i], &b, &err), 0);
		assert_false(b);
	}
}

static void test_bool_errors(void **state)
{
	struct fl_err err;
	bool b;

	(void)state;
	assert_fails(fl_parse_bool("tRuE", &b, &err), -EINVAL, &err, "did you mean true?", "true or false");
	assert_fails(fl_parse_bool("oFF", &b, &err), -EINVAL, &err, "did you mean off?", "yes/no");
	assert_fails(fl_parse_bool("1", &b, &err), -EINVAL, &err, "write true", "true or false");
	assert_fails(fl_parse_bool("n", &b, &err), -EINVAL, &err, "write false", "true or false");
	assert_fails(fl_parse_bool("maybe", &b, &err), -EINVAL, &err, "\"maybe\" is not true or false", "on/off");
	assert_fails(fl_parse_bool("", &b, &err), -EINVAL, &err, "empty boolean", "true or false");
}

/* ---- HTTP status sets ---- */

static struct fl_status_set status_set(const char *s)
{
	struct fl_status_set set;
	struct fl_err err = { 0 };

	memset(&set, 0xff, sizeof(set));
	if (fl_parse_status_set(s, &set, &err))
		fail_msg("fl_parse_status_set(\"%s\"): %s", s, err.msg);
	return set;
}

static void assert_format(const char *in, const char *want)
{
	struct fl_status_set set = status_set(in);
	char buf[2048];

	assert_string_equal(fl_status_set_format(&set, buf, sizeof(buf)), want);
}

static void test_status_set(void **state)
{
	struct fl_status_set set;

	(void)state;
	set = status_set("200");
	assert_true(fl_status_in(&set, 200));
	assert_false(fl_status_in(&set, 201));
	assert_false(fl_status_in(&set, 199));

	set = status_set("200-399");
	assert_true(fl_status_in(&set, 200));
	assert_true(fl_status_in(&set, 304));
	assert_true(fl_status_in(&set, 399));
	assert_false(fl_status_in(&set, 400));
	assert_false(fl_status_in(&set, 199));

	set = status_set("5xx");
	assert_true(fl_status_in(&set, 500));
	assert_true(fl_status_in(&set, 599));
	assert_false(fl_status_in(&set, 499));
	assert_false(fl_status_in(&set, 600));

	set = status_set("200-299, 304");
	assert_true(fl_status_in(&set, 250));
	assert_true(fl_status_in(&set, 304));
	assert_false(fl_status_in(&set, 303));

	set = status_set("100,599");
	assert_true(fl_status_in(&set, 100));
	assert_true(fl_status_in(&set, 599));

	/* membership never reads outside the set */
	assert_false(fl_status_in(&set, -1));
	assert_false(fl_status_in(&set, 640));
	assert_false(fl_status_in(&set, 100000));
	assert_false(fl_status_in(NULL, 200));
}

static void test_status_set_format_merges(void **state)
{
	(void)state;
	assert_format("200-299,300-399,404", "200-399,404");
	assert_format("404, 2xx, 3xx", "200-399,404");
	assert_format("5xx,2xx", "200-299,500-599");
	assert_format("404,200-299,250", "200-299,404");
	assert_format("200,201", "200-201");
	assert_format("201,200,202", "200-202");
	assert_format("1xx,2xx,3xx,4xx,5xx", "100-599");
	assert_format("2XX", "200-299");
	assert_format("200-200", "200");
}

static void test_status_set_format_buffers(void **state)
{
	struct fl_status_set set = { { 0 } };
	char buf[16];

	(void)state;
	assert_string_equal(fl_status_set_format(&set, buf, sizeof(buf)), ""); /* empty set */
	set = status_set("200,202,204,206,208,210");
	assert_string_equal(fl_status_set_format(&set, buf, sizeof(buf)), "200,202,204,...");
	assert_string_equal(fl_status_set_format(&set, buf, 4), "...");
	assert_string_equal(fl_status_set_format(&set, buf, 2), "");
	buf[0] = 'x';
	assert_ptr_equal(fl_status_set_format(&set, buf, 0), buf);
	assert_int_equal(buf[0], 'x');
}

static void test_status_set_errors(void **state)
{
	struct fl_status_set set = { { 0 } };
	struct fl_err err;

	(void)state;
	assert_fails(fl_parse_status_set("7xx", &set, &err), -ERANGE, &err, "no status class \"7xx\"", "100-599");
	assert_fails(fl_parse_status_set("0xx", &set, &err), -ERANGE, &err, "no status class", "100-599");
	assert_fails(fl_parse_status_set("abc", &set, &err), -EINVAL, &err, "\"abc\" is not a status", "5xx");
	assert_fails(fl_parse_status_set("600", &set, &err), -ERANGE, &err, "600 is not an HTTP status", "100-599");
	assert_fails(fl_parse_status_set("99", &set, &err), -ERANGE, &err, "99 is not an HTTP status", "100-599");
	assert_fails(fl_parse_status_set("2000", &set, &err), -ERANGE, &err, "2000 is not", "100-599");
	assert_fails(fl_parse_status_set("200-600", &set, &err), -ERANGE, &err, "600", "100-599");
	assert_fails(fl_parse_status_set("0200", &set, &err), -EINVAL, &err, "leading zero", "100-599");
	assert_fails(fl_parse_status_set("399-200", &set, &err), -EINVAL, &err, "backwards (write 200-399)",
		     "100-599");
	assert_fails(fl_parse_status_set("2xx-3xx", &set, &err), -EINVAL, &err, "not classes", "100-599");
	assert_fails(fl_parse_status_set("200-3xx", &set, &err), -EINVAL, &err, "not classes", "100-599");
	assert_fails(fl_parse_status_set("200,", &set, &err), -EINVAL, &err, "ends with a comma", "100-599");
	assert_fails(fl_parse_status_set("200, ", &set, &err), -EINVAL, &err, "blank", "100-599");
	assert_fails(fl_parse_status_set("200,,300", &set, &err), -EINVAL, &err, "empty item", "100-599");
	assert_fails(fl_parse_status_set("200 ,300", &set, &err), -EINVAL, &err, "separate statuses with commas",
		     "100-599");
	assert_fails(fl_parse_status_set("200 300", &set, &err), -EINVAL, &err, "commas", "100-599");
	assert_fails(fl_parse_status_set("200;300", &set, &err), -EINVAL, &err, "unexpected \";300\"", "100-599");
	assert_fails(fl_parse_status_set("2xx5", &set, &err), -EINVAL, &err, "unexpected \"5\"", "100-599");
	assert_fails(fl_parse_status_set("", &set, &err), -EINVAL, &err, "empty status set", "100-599");
	assert_fails(fl_parse_status_set("-200", &set, &err), -EINVAL, &err, "not a status", "100-599");
	/* a failed parse leaves the set as it was */
	for (int st = 0; st < 640; st++)
		assert_false(fl_status_in(&set, st));
}

/* ---- errno names ---- */

static void test_errno_round_trip(void **state)
{
	struct fl_err err = { 0 };
	int known = 0;

	(void)state;
	for (int e = 1; e <= 133; e++) {
		const char *name = fl_errno_name(e);
		char num[8];
		int back = 0;

		if (e == 41 || e == 58) { /* the two holes in Linux's numbering */
			assert_null(name);
			snprintf(num, sizeof(num), "%d", e);
			assert_int_equal(fl_errno_from_name(num, &back, &err), -EINVAL);
			assert_contains(err.msg, "defines no errno");
			continue;
		}
		if (!name)
			fail_msg("errno %d has no name", e);
		assert_string_equal(name, strerrorname_np(e)); /* the C library agrees */
		assert_int_equal(fl_errno_from_name(name, &back, &err), 0);
		assert_int_equal(back, e);
		snprintf(num, sizeof(num), "%d", e);
		back = 0;
		assert_int_equal(fl_errno_from_name(num, &back, &err), 0);
		assert_int_equal(back, e);
		known++;
	}
	assert_int_equal(known, 131);
	assert_null(fl_errno_name(0));
	assert_null(fl_errno_name(-1));
	assert_null(fl_errno_name(134));
	assert_null(fl_errno_name(INT32_MIN));
}

static void test_errno_aliases(void **state)
{
	struct fl_err err = { 0 };
	int e = 0;

	(void)state;
	assert_int_equal(fl_errno_from_name("EWOULDBLOCK", &e, &err), 0);
	assert_int_equal(e, EAGAIN);
	assert_int_equal(fl_errno_from_name("EDEADLOCK", &e, &err), 0);
	assert_int_equal(e, EDEADLK);
	assert_int_equal(fl_errno_from_name("ENOTSUP", &e, &err), 0);
	assert_int_equal(e, EOPNOTSUPP);
	/* the canonical name comes back, never the alias */
	assert_string_equal(fl_errno_name(EAGAIN), "EAGAIN");
	assert_string_equal(fl_errno_name(EDEADLK), "EDEADLK");
	assert_string_equal(fl_errno_name(EOPNOTSUPP), "EOPNOTSUPP");
	assert_int_equal(fl_errno_from_name("ECONNREFUSED", &e, &err), 0);
	assert_int_equal(e, 111);
	assert_string_equal(fl_errno_name(111), "ECONNREFUSED");
}

static void test_errno_did_you_mean(void **state)
{
	struct fl_err err;
	int e = 42;

	(void)state;
	assert_fails(fl_errno_from_name("ECONNREFUSE", &e, &err), -EINVAL, &err,
		     "unknown errno name \"ECONNREFUSE\" (did you mean ECONNREFUSED?)", "ETIMEDOUT");
	assert_fails(fl_errno_from_name("ETIMEOUT", &e, &err), -EINVAL, &err, "did you mean ETIMEDOUT?", "1-133");
	assert_fails(fl_errno_from_name("CONNREFUSED", &e, &err), -EINVAL, &err, "did you mean ECONNREFUSED?",
		     "1-133");
	assert_fails(fl_errno_from_name("EWOULDBLOK", &e, &err), -EINVAL, &err, "did you mean EWOULDBLOCK?",
		     "1-133");
	assert_fails(fl_errno_from_name("econnrefused", &e, &err), -EINVAL, &err,
		     "upper-case (did you mean ECONNREFUSED?)", "1-133");
	assert_fails(fl_errno_from_name("XYZZY", &e, &err), -EINVAL, &err, "unknown errno name \"XYZZY\"",
		     "errno(3)");
	assert_null(strstr(err.msg, "did you mean"));
	assert_fails(fl_errno_from_name("EFOOBARBAZQUUXTHISISAVERYLONGNAMEINDEED", &e, &err), -EINVAL, &err,
		     "unknown errno name", "errno(3)");
	assert_int_equal(e, 42);
}

static void test_errno_numbers(void **state)
{
	struct fl_err err;
	int e = 42;

	(void)state;
	assert_fails(fl_errno_from_name("0", &e, &err), -ERANGE, &err, "Linux errnos are 1 to 133", "1-133");
	assert_fails(fl_errno_from_name("134", &e, &err), -ERANGE, &err, "out of range", "1-133");
	assert_fails(fl_errno_from_name("99999999999", &e, &err), -ERANGE, &err, "out of range", "1-133");
	assert_fails(fl_errno_from_name("41", &e, &err), -EINVAL, &err, "Linux defines no errno 41", "1-133");
	assert_fails(fl_errno_from_name("-111", &e, &err), -EINVAL, &err, "without the minus sign (111)", "1-133");
	assert_fails(fl_errno_from_name("-ECONNREFUSED", &e, &err), -EINVAL, &err, "(ECONNREFUSED)", "1-133");
	assert_fails(fl_errno_from_name("", &e, &err), -EINVAL, &err, "empty errno", "1-133");
	assert_int_equal(e, 42);
}

/* ---- signals ---- */

static void test_signal_names(void **state)
{
	struct fl_err err = { 0 };
	int sig = 0;

	(void)state;
	assert_int_equal(fl_signal_from_name("SIGKILL", &sig, &err), 0);
	assert_int_equal(sig, SIGKILL);
	assert_int_equal(fl_signal_from_name("KILL", &sig, &err), 0);
	assert_int_equal(sig, SIGKILL);
	assert_int_equal(fl_signal_from_name("9", &sig, &err), 0);
	assert_int_equal(sig, 9);
	assert_int_equal(fl_signal_from_name("64", &sig, &err), 0);
	assert_int_equal(sig, 64);
	assert_int_equal(fl_signal_from_name("SIGIOT", &sig, &err), 0);
	assert_int_equal(sig, SIGABRT);
	assert_int_equal(fl_signal_from_name("POLL", &sig, &err), 0);
	assert_int_equal(sig, SIGIO);
	assert_string_equal(fl_signal_name(SIGKILL), "SIGKILL");
	assert_string_equal(fl_signal_name(SIGABRT), "SIGABRT");
	assert_null(fl_signal_name(0));
	assert_null(fl_signal_name(65));
	assert_null(fl_signal_name(-9));
	/* every standard signal round-trips, and the C library's abbreviation means the same signal */
	for (int s = 1; s < 32; s++) {
		const char *name = fl_signal_name(s);
		char libc[32];
		int back = 0;

		snprintf(libc, sizeof(libc), "SIG%s", sigabbrev_np(s));
		if (s == SIGIO)
			assert_string_equal(name, "SIGIO"); /* glibc says POLL; the kernel's headers lead with SIGIO */
		else
			assert_string_equal(name, libc);
		assert_int_equal(fl_signal_from_name(name, &back, &err), 0);
		assert_int_equal(back, s);
		assert_int_equal(fl_signal_from_name(name + 3, &back, &err), 0);
		assert_int_equal(back, s);
		back = 0;
		assert_int_equal(fl_signal_from_name(libc, &back, &err), 0);
		assert_int_equal(back, s);
	}
}

static void test_signal_realtime(void **state)
{
	struct fl_err err = { 0 };
	int sig = 0;

	(void)state;
	assert_int_equal(fl_signal_from_name("SIGRTMIN", &sig, &err), 0);
	assert_int_equal(sig, SIGRTMIN);
	assert_int_equal(fl_signal_from_name("SIGRTMIN+3", &sig, &err), 0);
	assert_int_equal(sig, SIGRTMIN + 3);
	assert_int_equal(fl_signal_from_name("RTMIN+1", &sig, &err), 0);
	assert_int_equal(sig, SIGRTMIN + 1);
	assert_int_equal(fl_signal_from_name("SIGRTMAX", &sig, &err), 0);
	assert_int_equal(sig, SIGRTMAX);
	assert_int_equal(fl_signal_from_name("SIGRTMAX-2", &sig, &err), 0);
	assert_int_equal(sig, SIGRTMAX - 2);
	assert_string_equal(fl_signal_name(SIGRTMIN), "SIGRTMIN");
	assert_string_equal(fl_signal_name(SIGRTMIN + 2), "SIGRTMIN+2");
	assert_string_equal(fl_signal_name(SIGRTMAX), "SIGRTMAX");
	for (int s = SIGRTMIN; s <= SIGRTMAX; s++) {
		const char *name = fl_signal_name(s);
		int back = 0;

		assert_non_null(name);
		assert_int_equal(fl_signal_from_name(name, &back, &err), 0);
		assert_int_equal(back, s);
	}
	/* the C library keeps the signals between 31 and SIGRTMIN for itself: numbers only */
	for (int s = 32; s < SIGRTMIN; s++)
		assert_null(fl_signal_name(s));
	assert_fails(fl_signal_from_name("SIGRTMIN+99", &sig, &err), -ERANGE, &err, "outside SIGRTMIN..SIGRTMAX",
		     "SIGRTMIN+2");
	assert_fails(fl_signal_from_name("SIGRTMIN-1", &sig, &err), -ERANGE, &err, "outside", "1-64");
	assert_fails(fl_signal_from_name("SIGRTMIN+", &sig, &err), -EINVAL, &err, "expected a number after +",
		     "1-64");
}

static void test_signal_errors(void **state)
{
	struct fl_err err;
	int sig = 42;

	(void)state;
	assert_fails(fl_signal_from_name("0", &sig, &err), -ERANGE, &err, "signals are 1 to 64", "SIGKILL");
	assert_fails(fl_signal_from_name("65", &sig, &err), -ERANGE, &err, "out of range", "1-64");
	assert_fails(fl_signal_from_name("-9", &sig, &err), -EINVAL, &err, "without the minus sign (9)", "1-64");
	assert_fails(fl_signal_from_name("SIGKIL", &sig, &err), -EINVAL, &err, "did you mean SIGKILL?", "1-64");
	assert_fails(fl_signal_from_name("SIGTERN", &sig, &err), -EINVAL, &err, "did you mean SIGTERM?", "1-64");
	assert_fails(fl_signal_from_name("sigkill", &sig, &err), -EINVAL, &err, "upper-case (did you mean SIGKILL?)",
		     "1-64");
	assert_fails(fl_signal_from_name("term", &sig, &err), -EINVAL, &err, "did you mean SIGTERM?", "1-64");
	assert_fails(fl_signal_from_name("SIGFOOBAR", &sig, &err), -EINVAL, &err, "unknown signal \"SIGFOOBAR\"",
		     "SIGTERM");
	assert_null(strstr(err.msg, "did you mean"));
	assert_fails(fl_signal_from_name("", &sig, &err), -EINVAL, &err, "empty signal", "SIGKILL");
	assert_int_equal(sig, 42);
}

/* ---- formatting ---- */

static void assert_duration_text(int64_t ns, const char *want)
{
	char buf[64];

	assert_string_equal(fl_format_duration(ns, buf, sizeof(buf)), want);
}

static void test_format_duration(void **state)
{
	(void)state;
	assert_duration_text(1500000000, "1.5s");
	assert_duration_text(250000000, "250ms");
	assert_duration_text(120 * FL_NS_PER_S, "2m");
	assert_duration_text(90 * FL_NS_PER_S, "90s");
	assert_duration_text(0, "0s");
	assert_duration_text(3600 * FL_NS_PER_S, "1h");
	assert_duration_text(5400 * FL_NS_PER_S, "90m");
	assert_duration_text(3601 * FL_NS_PER_S, "3601s");
	assert_duration_text(1, "1ns");
	assert_duration_text(1500, "1.5us");
	assert_duration_text(1000000, "1ms");
	assert_duration_text(1234567891, "1.235s"); /* beyond 3 decimals: rounded */
	assert_duration_text(999999999, "1s");      /* rounding carries into the next unit */
	assert_duration_text(999999, "999.999us");
	assert_duration_text(-1500000000, "-1.5s");
	assert_duration_text(INT64_MAX, "9223372036.855s");
	assert_duration_text(INT64_MIN, "-9223372036.855s");
}

static void test_format_duration_round_trips(void **state)
{
	static const int64_t vals[] = {
		1, 999, 1500, 250000000, 1500000000, 60 * FL_NS_PER_S, 90 * FL_NS_PER_S, 7200 * FL_NS_PER_S,
		1001 * FL_NS_PER_MS, 2562047LL * 3600 * FL_NS_PER_S,
	};
	struct fl_err err = { 0 };
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		int64_t back = -1;

		assert_int_equal(fl_parse_duration(fl_format_duration(vals[i], buf, sizeof(buf)), &back, &err), 0);
		assert_int_equal(back, vals[i]);
	}
}

static void test_format_size(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(fl_format_size(64ULL << 20, buf, sizeof(buf)), "64MiB");
	assert_string_equal(fl_format_size(3ULL << 29, buf, sizeof(buf)), "1.5GiB");
	assert_string_equal(fl_format_size(512, buf, sizeof(buf)), "512B");
	assert_string_equal(fl_format_size(0, buf, sizeof(buf)), "0B");
	assert_string_equal(fl_format_size(1024, buf, sizeof(buf)), "1KiB");
	assert_string_equal(fl_format_size(1000, buf, sizeof(buf)), "1000B");
	assert_string_equal(fl_format_size(10000000, buf, sizeof(buf)), "10MB");
	assert_string_equal(fl_format_size(1500, buf, sizeof(buf)), "1.5KB");
	assert_string_equal(fl_format_size(1234567, buf, sizeof(buf)), "1.177MiB");
	assert_string_equal(fl_format_size((1ULL << 30) - 1, buf, sizeof(buf)), "1GiB");
	assert_string_equal(fl_format_size(5ULL << 40, buf, sizeof(buf)), "5TiB");
	assert_string_equal(fl_format_size(UINT64_MAX, buf, sizeof(buf)), "16777216TiB");
}

static void test_format_small_buffers(void **state)
{
	char buf[4];

	(void)state;
	assert_string_equal(fl_format_duration(1500000000, buf, sizeof(buf)), "1.5");
	assert_string_equal(fl_format_size(64ULL << 20, buf, sizeof(buf)), "64M");
	buf[0] = 'x';
	assert_ptr_equal(fl_format_duration(1, buf, 0), buf);
	assert_ptr_equal(fl_format_size(1, buf, 0), buf);
	assert_int_equal(buf[0], 'x');
}

/* ---- errors without a struct fl_err ---- */

static void test_null_err(void **state)
{
	struct fl_status_set set;
	int64_t ns;
	uint64_t b;
	double d;
	bool yes;
	int n;

	(void)state;
	assert_int_equal(fl_parse_duration("5", &ns, NULL), -EINVAL);
	assert_int_equal(fl_parse_duration("2562048h", &ns, NULL), -ERANGE);
	assert_int_equal(fl_parse_size("64", &b, NULL), -EINVAL);
	assert_int_equal(fl_parse_rate("200", &d, NULL), -EINVAL);
	assert_int_equal(fl_parse_byte_rate("20MiB", &b, NULL), -EINVAL);
	assert_int_equal(fl_parse_ratio("150%", &d, NULL), -ERANGE);
	assert_int_equal(fl_parse_int("5", 10, 20, &ns, NULL), -ERANGE);
	assert_int_equal(fl_parse_bool("maybe", &yes, NULL), -EINVAL);
	assert_int_equal(fl_parse_status_set("7xx", &set, NULL), -ERANGE);
	assert_int_equal(fl_errno_from_name("ECONNREFUSE", &n, NULL), -EINVAL);
	assert_int_equal(fl_signal_from_name("SIGKIL", &n, NULL), -EINVAL);
}

static void test_long_input_is_quoted_short(void **state)
{
	char in[400], want[64];
	struct fl_err err;
	int64_t ns;

	(void)state;
	memset(in, '7', sizeof(in) - 3);
	memcpy(in + sizeof(in) - 3, "x", 2);
	assert_fails(fl_parse_duration(in, &ns, &err), -ERANGE, &err, "...\"", DUR_HINT);
	assert_true(strlen(err.msg) < 200);
	snprintf(want, sizeof(want), "\"%.20s", in);
	assert_contains(err.msg, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_units),
		cmocka_unit_test(test_duration_decimals_are_exact),
		cmocka_unit_test(test_duration_zero),
		cmocka_unit_test(test_duration_int64_boundary),
		cmocka_unit_test(test_duration_negative),
		cmocka_unit_test(test_duration_missing_unit),
		cmocka_unit_test(test_duration_unknown_unit),
		cmocka_unit_test(test_duration_blanks),
		cmocka_unit_test(test_duration_not_a_number),
		cmocka_unit_test(test_duration_finer_than_ns),
		cmocka_unit_test(test_size_units),
		cmocka_unit_test(test_size_decimals),
		cmocka_unit_test(test_size_missing_unit),
		cmocka_unit_test(test_size_unknown_unit),
		cmocka_unit_test(test_size_overflow),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_rate_errors),
		cmocka_unit_test(test_byte_rate),
		cmocka_unit_test(test_byte_rate_rounds_to_nearest),
		cmocka_unit_test(test_byte_rate_errors),
		cmocka_unit_test(test_ratio),
		cmocka_unit_test(test_ratio_out_of_range),
		cmocka_unit_test(test_ratio_errors),
		cmocka_unit_test(test_int),
		cmocka_unit_test(test_int_out_of_range),
		cmocka_unit_test(test_int_errors),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_bool_errors),
		cmocka_unit_test(test_status_set),
		cmocka_unit_test(test_status_set_format_merges),
		cmocka_unit_test(test_status_set_format_buffers),
		cmocka_unit_test(test_status_set_errors),
		cmocka_unit_test(test_errno_round_trip),
		cmocka_unit_test(test_errno_aliases),
		cmocka_unit_test(test_errno_did_you_mean),
		cmocka_unit_test(test_errno_numbers),
		cmocka_unit_test(test_signal_names),
		cmocka_unit_test(test_signal_realtime),
		cmocka_unit_test(test_signal_errors),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_format_duration_round_trips),
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_format_small_buffers),
		cmocka_unit_test(test_null_err),
		cmocka_unit_test(test_long_input_is_quoted_short),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
