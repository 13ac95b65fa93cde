/* Parses the value grammar of scenarios exactly (durations, sizes, rates, ratios, status sets, errno and signal names) and formats values back for people. */
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef unsigned __int128 u128;

#define HINT_DURATION "durations are a number and a unit: 250ms, 1.5s, 2m, 1h (units: ns us ms s m h)"
#define HINT_SIZE "sizes are a number and a unit: 512B, 64KiB, 1.5GiB, 10MB (units: B KiB MiB GiB TiB, or KB MB GB TB for powers of 1000)"
#define HINT_RATE "rates are a count per second, minute or hour: 200/s, 12000/m, 0.5/s, 30/h"
#define HINT_BYTE_RATE "byte rates are a size per second, minute or hour: 20MiB/s, 10Mbit/s, 1GB/m (sizes: B KiB MiB GiB TiB KB MB GB TB; bits: bit kbit Mbit Gbit)"
#define HINT_RATIO "a ratio is between 0% and 100%: write 95%, 99.9% or 0.95"
#define HINT_BOOL "booleans are true or false (also yes/no and on/off, in lower case, Capitalised or UPPER case)"
#define HINT_STATUS "status sets are HTTP statuses 100-599, ranges and classes separated by commas: 200, 200-399, 5xx, 200-299, 304"
#define HINT_ERRNO "errnos are upper-case names as in errno(3) (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH) or their numbers 1-133"
#define HINT_SIGNAL "signals are names (SIGKILL, SIGTERM, KILL, SIGRTMIN+2) or numbers 1-64"

/* Inputs are quoted at most this long, so a pasted paragraph cannot crowd the reason out of the message. */
#define QUOTE_MAX 48
#define QUOTE_BUF (QUOTE_MAX * 4 + 8)
#define Q(s) quote((char[QUOTE_BUF]){0}, (s), strlen(s))
#define QN(s, n) quote((char[QUOTE_BUF]){0}, (s), (n))

/* Longer than any errno or signal name: longer inputs get no "did you mean". */
#define NAME_CAP 32

#define FRAC_DIGITS_MAX 19 /* 10^19 still fits in uint64_t */

static const uint64_t pow10_u64[FRAC_DIGITS_MAX + 1] = {
	1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
	100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
	10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
	100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL,
};

static const char *quote(char *buf, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	bool cut = false;
	size_t o = 0;

	if (n > QUOTE_MAX) {
		n = QUOTE_MAX;
		/* back up to a character boundary so the ellipsis never follows half a UTF-8 sequence */
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
		cut = true;
	}
	buf[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 0xf];
		} else {
			buf[o++] = (char)c;
		}
	}
	if (cut) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* One exit for every parser error: the message, the hint and the code in one place. */
static int fail(struct fl_err *err, int code, const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct fl_err *err, int code, const char *hint, const char *fmt, ...)
{
	char msg[FL_ERR_MSG];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fl_err_set(err, code, "%s", msg);
	if (hint)
		fl_err_hint(err, "%s", hint);
	return code;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Empty values and surrounding blanks are refused up front: YAML already stripped what it meant to. */
static int check_text(const char *s, const char *what, const char *hint, struct fl_err *err)
{
	size_t n;

	if (!s || !*s)
		return fail(err, -EINVAL, hint, "empty %s: a value is needed", what);
	n = strlen(s);
	if (is_blank(s[0]))
		return fail(err, -EINVAL, hint, "%s %s starts with a blank: remove it", what, Q(s));
	if (is_blank(s[n - 1]))
		return fail(err, -EINVAL, hint, "%s %s ends with a blank: remove it", what, Q(s));
	return 0;
}

struct unit {
	const char *name;
	uint64_t mul;
	bool bits; /* a bit unit: divide by 8 for bytes */
};

/* A spelling people use that is not in the grammar, and what to write instead. */
struct alias {
	const char *name;
	const char *use;  /* the unit to suggest, or NULL */
	const char *note; /* said instead when there is no single unit to suggest */
};

/* Everything a parser says about its kind of value, so the helpers can word errors for it. */
struct grammar {
	const char *what;    /* "duration": names the value in messages */
	const char *plural;  /* "durations" */
	const char *hint;    /* the accepted forms */
	const char *example; /* the unit suggested when none is written */
	const struct unit *units;
	size_t nunits;
	const struct alias *aliases; /* ends with a NULL name */
};

static const struct unit duration_units[] = {
	{ "ns", 1, false },
	{ "us", FL_NS_PER_US, false },
	{ "\xc2\xb5s", FL_NS_PER_US, false }, /* U+00B5 MICRO SIGN */
	{ "\xce\xbcs", FL_NS_PER_US, false }, /* U+03BC GREEK SMALL LETTER MU, what most keyboards give */
	{ "ms", FL_NS_PER_MS, false },
	{ "s", FL_NS_PER_S, false },
	{ "m", 60 * FL_NS_PER_S, false },
	{ "h", 3600 * FL_NS_PER_S, false },
};

static const struct alias duration_aliases[] = {
	{ "sec", "s", NULL }, { "secs", "s", NULL }, { "second", "s", NULL }, { "seconds", "s", NULL },
	{ "min", "m", NULL }, { "mins", "m", NULL }, { "minute", "m", NULL }, { "minutes", "m", NULL },
	{ "hr", "h", NULL }, { "hrs", "h", NULL }, { "hour", "h", NULL }, { "hours", "h", NULL },
	{ "msec", "ms", NULL }, { "msecs", "ms", NULL }, { "millis", "ms", NULL },
	{ "usec", "us", NULL }, { "usecs", "us", NULL }, { "nsec", "ns", NULL }, { "nsecs", "ns", NULL },
	{ "d", NULL, "days are not a unit: write 24h for a day" },
	{ "day", NULL, "days are not a unit: write 24h for a day" },
	{ "days", NULL, "days are not a unit: write 24h for a day" },
	{ NULL, NULL, NULL },
};

#define KIB 1024ULL
static const struct unit size_units[] = {
	{ "B", 1, false },
	{ "KiB", KIB, false },
	{ "MiB", KIB * KIB, false },
	{ "GiB", KIB * KIB * KIB, false },
	{ "TiB", KIB * KIB * KIB * KIB, false },
	{ "KB", 1000ULL, false },
	{ "MB", 1000000ULL, false },
	{ "GB", 1000000000ULL, false },
	{ "TB", 1000000000000ULL, false },
};

static const struct alias size_aliases[] = {
	{ "b", "B", NULL }, { "byte", "B", NULL }, { "bytes", "B", NULL },
	{ "K", "KiB", NULL }, { "k", "KiB", NULL }, { "Ki", "KiB", NULL },
	{ "M", "MiB", NULL }, { "Mi", "MiB", NULL },
	{ "G", "GiB", NULL }, { "Gi", "GiB", NULL },
	{ "T", "TiB", NULL }, { "Ti", "TiB", NULL },
	{ NULL, NULL, NULL },
};

static const struct unit byte_rate_units[] = {
	{ "B", 1, false },
	{ "KiB", KIB, false },
	{ "MiB", KIB * KIB, false },
	{ "GiB", KIB * KIB * KIB, false },
	{ "TiB", KIB * KIB * KIB * KIB, false },
	{ "KB", 1000ULL, false },
	{ "MB", 1000000ULL, false },
	{ "GB", 1000000000ULL, false },
	{ "TB", 1000000000000ULL, false },
	{ "bit", 1, true },
	{ "kbit", 1000ULL, true },
	{ "Mbit", 1000000ULL, true },
	{ "Gbit", 1000000000ULL, true },
};

/* A lower-case b means bits to network people, so those aliases come before any case-blind match. */
static const struct alias byte_rate_aliases[] = {
	{ "b", "bit", NULL }, { "bits", "bit", NULL }, { "Kb", "kbit", NULL }, { "kb", "kbit", NULL },
	{ "Kbit", "kbit", NULL }, { "Mb", "Mbit", NULL }, { "Gb", "Gbit", NULL },
	{ "bps", "bit/s", NULL }, { "kbps", "kbit/s", NULL }, { "Kbps", "kbit/s", NULL },
	{ "Mbps", "Mbit/s", NULL }, { "Gbps", "Gbit/s", NULL },
	{ "KBps", "KB/s", NULL }, { "MBps", "MB/s", NULL }, { "GBps", "GB/s", NULL },
	{ "byte", "B", NULL }, { "bytes", "B", NULL },
	{ "K", "KiB", NULL }, { "k", "KiB", NULL }, { "Ki", "KiB", NULL },
	{ "M", "MiB", NULL }, { "Mi", "MiB", NULL },
	{ "G", "GiB", NULL }, { "Gi", "GiB", NULL },
	{ "T", "TiB", NULL }, { "Ti", "TiB", NULL },
	{ NULL, NULL, NULL },
};

static const struct unit per_units[] = {
	{ "s", 1, false },
	{ "m", 60, false },
	{ "h", 3600, false },
};

static const struct alias per_aliases[] = {
	{ "sec", "s", NULL }, { "second", "s", NULL }, { "min", "m", NULL }, { "minute", "m", NULL },
	{ "hr", "h", NULL }, { "hour", "h", NULL },
	{ "ms", NULL, "rates are per second, minute or hour: multiply by 1000 and write /s" },
	{ NULL, NULL, NULL },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct grammar g_duration = {
	"duration", "durations", HINT_DURATION, "s",
	duration_units, NELEM(duration_units), duration_aliases,
};
static const struct grammar g_size = {
	"size", "sizes", HINT_SIZE, "MiB", size_units, NELEM(size_units), size_aliases,
};
static const struct grammar g_rate = {
	"rate", "rates", HINT_RATE, "s", per_units, NELEM(per_units), per_aliases,
};
static const struct grammar g_byte_rate = {
	"byte rate", "byte rates", HINT_BYTE_RATE, "MiB",
	byte_rate_units, NELEM(byte_rate_units), byte_rate_aliases,
};
static const struct grammar g_byte_rate_per = {
	"byte rate", "byte rates", HINT_BYTE_RATE, "s", per_units, NELEM(per_units), per_aliases,
};
static const struct grammar g_ratio = { "ratio", "ratios", HINT_RATIO, "%", NULL, 0, NULL };

/* An unsigned decimal as written: value = ip + frac / 10^fdigits, kept exact (no double anywhere). */
struct decimal {
	uint64_t ip;
	uint64_t frac;   /* the fraction digits, trailing zeros dropped */
	int fdigits;     /* how many digits frac stands for */
};

/*
 * The number at the start of s: digits, optionally a point and more digits.
 * Signs, hex, exponents, nan/inf and decimal commas are refused by name.
 */
static int scan_decimal(const char *s, const char **end, struct decimal *d, const struct grammar *g,
			struct fl_err *err)
{
	const char *p = s;
	bool too_precise = false;
	int n = 0;

	*d = (struct decimal){ 0, 0, 0 };
	if (*p == '+')
		return fail(err, -EINVAL, g->hint, "%s %s: write the number without a sign", g->what, Q(s));
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		return fail(err, -EINVAL, g->hint, "%s %s: hexadecimal numbers are not accepted, write it in decimal",
			    g->what, Q(s));
	if (!is_digit(*p)) {
		if (*p == '.' && is_digit(p[1]))
			return fail(err, -EINVAL, g->hint, "%s %s: write a digit before the decimal point (0%s)",
				    g->what, Q(s), s);
		if (!strncasecmp(p, "nan", 3) || !strncasecmp(p, "inf", 3))
			return fail(err, -EINVAL, g->hint, "%s %s: not a number; %s are finite decimal numbers",
				    g->what, Q(s), g->plural);
		return fail(err, -EINVAL, g->hint, "%s %s does not start with a number", g->what, Q(s));
	}
	for (; is_digit(*p); p++) {
		unsigned digit = (unsigned)(*p - '0');

		if (d->ip > (UINT64_MAX - digit) / 10)
			return fail(err, -ERANGE, g->hint, "%s %s: the number is too large", g->what, Q(s));
		d->ip = d->ip * 10 + digit;
	}
	if (*p == '.') {
		p++;
		if (!is_digit(*p))
			return fail(err, -EINVAL, g->hint, "%s %s: a decimal point must be followed by digits",
				    g->what, Q(s));
		for (; is_digit(*p); p++) {
			if (n < FRAC_DIGITS_MAX) {
				d->frac = d->frac * 10 + (uint64_t)(*p - '0');
				n++;
			} else if (*p != '0') {
				too_precise = true;
			}
		}
		if (too_precise)
			return fail(err, -EINVAL, g->hint, "%s %s: more than %d decimal places", g->what, Q(s),
				    FRAC_DIGITS_MAX);
		while (n > 0 && d->frac % 10 == 0) {
			d->frac /= 10;
			n--;
		}
		d->fdigits = n;
	}
	if ((*p == 'e' || *p == 'E') &&
	    (is_digit(p[1]) || ((p[1] == '+' || p[1] == '-') && is_digit(p[2]))))
		return fail(err, -EINVAL, g->hint, "%s %s: exponents are not accepted, write the number out in full",
			    g->what, Q(s));
	if (*p == ',' && is_digit(p[1]))
		return fail(err, -EINVAL, g->hint,
			    "%s %s: no commas in numbers (write 1.5 for one and a half, 1000 for a thousand)",
			    g->what, Q(s));
	*end = p;
	return 0;
}

/* A decimal times mul / div, as a whole part plus the remainder rem_num / rem_den of one. */
struct scaled {
	u128 whole;
	u128 rem_num;
	u128 rem_den;
};

/* Exact for mul < 2^64 and div < 2^45: no intermediate can pass 2^128. */
static struct scaled dec_scale(const struct decimal *d, uint64_t mul, uint64_t div)
{
	u128 p10 = pow10_u64[d->fdigits];
	u128 f = (u128)d->frac * mul;
	u128 w = (u128)d->ip * mul + f / p10;
	struct scaled r = {
		.whole = w / div,
		.rem_num = (w % div) * p10 + f % p10,
		.rem_den = p10 * div,
	};

	return r;
}

/* Half-way rounds up: the grammar has no negative values, so this is round-half-away-from-zero. */
static u128 scaled_round(const struct scaled *v)
{
	return v->whole + (2 * v->rem_num >= v->rem_den ? 1 : 0);
}

static const struct unit *unit_find(const struct grammar *g, const char *u, size_t len, bool any_case)
{
	for (size_t i = 0; i < g->nunits; i++) {
		const char *name = g->units[i].name;

		if (strlen(name) != len)
			continue;
		if (any_case ? !strncasecmp(name, u, len) : !memcmp(name, u, len))
			return &g->units[i];
	}
	return NULL;
}

static const struct alias *alias_find(const struct grammar *g, const char *u, size_t len, bool any_case)
{
	for (const struct alias *a = g->aliases; a && a->name; a++) {
		if (strlen(a->name) != len)
			continue;
		if (any_case ? !strncasecmp(a->name, u, len) : !memcmp(a->name, u, len))
			return a;
	}
	return NULL;
}

/* prefix is what came before the unit (the number, or "200/"), reused to spell the suggestion out. */
static int unknown_unit(const char *s, size_t prefix, const char *u, size_t len, const struct grammar *g,
			struct fl_err *err)
{
	const struct alias *a = alias_find(g, u, len, false);
	const struct unit *unit = NULL;
	const char *use = NULL, *note = NULL;

	if (!a)
		unit = unit_find(g, u, len, true);
	if (!a && !unit)
		a = alias_find(g, u, len, true);
	if (a) {
		use = a->use;
		note = a->note;
	} else if (unit) {
		use = unit->name;
	}
	if (use)
		return fail(err, -EINVAL, g->hint, "%s %s: unknown unit %s (did you mean %.*s%s?)", g->what, Q(s),
			    QN(u, len), (int)prefix, s, use);
	if (note)
		return fail(err, -EINVAL, g->hint, "%s %s: unknown unit %s (%s)", g->what, Q(s), QN(u, len), note);
	return fail(err, -EINVAL, g->hint, "%s %s: unknown unit %s", g->what, Q(s), QN(u, len));
}

/* The unit text u..u+len that follows s's first prefix bytes must be exactly one of g's units. */
static int take_unit(const char *s, size_t prefix, const char *u, size_t len, const struct grammar *g,
		     const struct unit **out, struct fl_err *err)
{
	const char *t = u;
	size_t tlen = len;

	if (len == 0) {
		fail(err, -EINVAL, NULL, "%s %s has no unit", g->what, Q(s));
		fl_err_hint(err, "add a unit, e.g. %.*s%s; %s", (int)prefix, s, g->example, g->hint);
		return -EINVAL;
	}
	while (tlen > 0 && is_blank(*t)) {
		t++;
		tlen--;
	}
	while (tlen > 0 && is_blank(t[tlen - 1]))
		tlen--;
	if (tlen != len && tlen > 0 && unit_find(g, t, tlen, false))
		return fail(err, -EINVAL, g->hint, "%s %s: no blanks between the number and the unit (write %.*s%.*s)",
			    g->what, Q(s), (int)prefix, s, (int)tlen, t);
	if (tlen == 0)
		return fail(err, -EINVAL, g->hint, "%s %s: blanks where a unit should be", g->what, Q(s));
	*out = unit_find(g, t, tlen, false);
	if (!*out)
		return unknown_unit(s, prefix, t, tlen, g, err);
	return 0;
}

/* "0" alone is the same in every unit, so it needs none (YAML authors write `at: 0`). */
static bool is_bare_zero(const char *s, const char *end)
{
	return s[0] == '0' && end == s + 1 && *end == '\0';
}

int fl_parse_duration(const char *s, int64_t *out_ns, struct fl_err *err)
{
	const struct grammar *g = &g_duration;
	const struct unit *u;
	struct decimal d;
	struct scaled v;
	const char *end;
	int rc;

	rc = check_text(s, g->what, g->hint, err);
	if (rc)
		return rc;
	if (s[0] == '-')
		return fail(err, -EINVAL, g->hint, "duration %s: durations cannot be negative", Q(s));
	rc = scan_decimal(s, &end, &d, g, err);
	if (rc)
		return rc;
	if (is_bare_zero(s, end)) {
		*out_ns = 0;
		return 0;
	}
	rc = take_unit(s, (size_t)(end - s), end, strlen(end), g, &u, err);
	if (rc)
		return rc;
	v = dec_scale(&d, u->mul, 1);
	if (v.whole > INT64_MAX)
		return fail(err, -ERANGE, g->hint,
			    "duration %s is too long: the longest is 9223372036.854775807s (about 292 years)", Q(s));
	/* Refused, not rounded: a duration written finer than 1 ns is a unit mix-up, and there is no right way to round it. */
	if (v.rem_num)
		return fail(err, -EINVAL, g->hint,
			    "duration %s is finer than a nanosecond: durations are whole nanoseconds, use fewer decimals",
			    Q(s));
	*out_ns = (int64_t)v.whole;
	return 0;
}

int fl_parse_size(const char *s, uint64_t *out_bytes, struct fl_err *err)
{
	const struct grammar *g = &g_size;
	const struct unit *u;
	struct decimal d;
	struct scaled v;
	const char *end;
	int rc;

	rc = check_text(s, g->what, g->hint, err);
	if (rc)
		return rc;
	if (s[0] == '-')
		return fail(err, -EINVAL, g->hint, "size %s: sizes cannot be negative", Q(s));
	rc = scan_decimal(s, &end, &d, g, err);
	if (rc)
		return rc;
	if (is_bare_zero(s, end)) {
		*out_bytes = 0;
		return 0;
	}
	rc = take_unit(s, (size_t)(end - s), end, strlen(end), g, &u, err);
	if (rc)
		return rc;
	v = dec_scale(&d, u->mul, 1);
	if (v.whole > UINT64_MAX)
		return fail(err, -ERANGE, g->hint, "size %s is too large: the largest is 18446744073709551615B (16EiB)",
			    Q(s));
	/* Refused, not rounded: "1.1KiB" is 1126.4 bytes, and a silent 1126 would be a value nobody wrote. */
	if (v.rem_num)
		return fail(err, -EINVAL, g->hint,
			    "size %s is not a whole number of bytes (it is between %" PRIu64 "B and %" PRIu64 "B)",
			    Q(s), (uint64_t)v.whole, (uint64_t)v.whole + 1);
	*out_bytes = (uint64_t)v.whole;
	return 0;
}

/* The time unit after a '/': p points just past it. */
static int take_per(const char *s, const char *p, const struct grammar *per, uint64_t *secs, struct fl_err *err)
{
	const struct unit *u;
	int rc;

	rc = take_unit(s, (size_t)(p - s), p, strlen(p), per, &u, err);
	if (rc)
		return rc;
	*secs = u->mul;
	return 0;
}

static const struct alias rate_suffixes[] = {
	{ "rps", "/s", NULL }, { "qps", "/s", NULL }, { "ps", "/s", NULL }, { "rpm", "/m", NULL },
	{ NULL, NULL, NULL },
};

int fl_parse_rate(const char *s, double *out_per_s, struct fl_err *err)
{
	const struct grammar *g = &g_rate;
	const struct grammar sfx = { "rate", "rates", HINT_RATE, "/s", NULL, 0, rate_suffixes };
	const char *end, *slash;
	struct decimal d;
	uint64_t secs;
	u128 num;
	int rc;

	rc = check_text(s, g->what, g->hint, err);
	if (rc)
		return rc;
	if (s[0] == '-')
		return fail(err, -EINVAL, g->hint, "rate %s: rates cannot be negative", Q(s));
	rc = scan_decimal(s, &end, &d, g, err);
	if (rc)
		return rc;
	if (*end != '/') {
		size_t numlen = (size_t)(end - s);

		if (*end == '\0') {
			fail(err, -EINVAL, NULL, "rate %s has no time unit", Q(s));
			fl_err_hint(err, "add one, e.g. %s/s; %s", s, g->hint);
			return -EINVAL;
		}
		slash = strchr(end, '/');
		if (slash && strspn(end, " \t") == (size_t)(slash - end))
			return fail(err, -EINVAL, g->hint, "rate %s: no blanks before the /", Q(s));
		if (slash)
			return fail(err, -EINVAL, g->hint,
				    "rate %s: unexpected %s before the / (a rate counts events; a size per second is a byte rate)",
				    Q(s), QN(end, (size_t)(slash - end)));
		if (alias_find(&sfx, end, strlen(end), true))
			return unknown_unit(s, numlen, end, strlen(end), &sfx, err);
		return fail(err, -EINVAL, g->hint, "rate %s: unexpected %s after the number", Q(s), Q(end));
	}
	rc = take_per(s, end + 1, g, &secs, err);
	if (rc)
		return rc;
	/* One rounding only: the exact numerator divided by 10^k (k <= 19, exact in a double) then by the seconds. */
	num = (u128)d.ip * pow10_u64[d.fdigits] + d.frac;
	*out_per_s = (double)num / (double)pow10_u64[d.fdigits] / (double)secs;
	return 0;
}

int fl_parse_byte_rate(const char *s, uint64_t *out_bytes_per_s, struct fl_err *err)
{
	const struct grammar *g = &g_byte_rate;
	const char *end, *slash;
	const struct unit *u;
	struct decimal d;
	struct scaled v;
	uint64_t secs;
	size_t ulen;
	u128 r;
	int rc;

	rc = check_text(s, g->what, g->hint, err);
	if (rc)
		return rc;
	if (s[0] == '-')
		return fail(err, -EINVAL, g->hint, "byte rate %s: byte rates cannot be negative", Q(s));
	rc = scan_decimal(s, &end, &d, g, err);
	if (rc)
		return rc;
	slash = strchr(end, '/');
	ulen = slash ? (size_t)(slash - end) : strlen(end);
	if (ulen == 0) {
		fail(err, -EINVAL, NULL, "byte rate %s has no size unit", Q(s));
		fl_err_hint(err, "add one, e.g. %.*sMiB/s or %.*sMbit/s; %s", (int)(end - s), s, (int)(end - s), s,
			    g->hint);
		return -EINVAL;
	}
	rc = take_unit(s, (size_t)(end - s), end, ulen, g, &u, err);
	if (rc)
		return rc;
	if (!slash) {
		fail(err, -EINVAL, NULL, "byte rate %s has no time unit", Q(s));
		fl_err_hint(err, "add one, e.g. %s/s; %s", s, g->hint);
		return -EINVAL;
	}
	rc = take_per(s, slash + 1, &g_byte_rate_per, &secs, err);
	if (rc)
		return rc;
	/* Rounded to the nearest byte per second: "1GB/m" is 16666666.67 B/s and nobody can write that exactly. */
	v = dec_scale(&d, u->mul, (u->bits ? 8 : 1) * secs);
	r = scaled_round(&v);
	if (r > UINT64_MAX)
		return fail(err, -ERANGE, g->hint, "byte rate %s is too large: the largest is 18446744073709551615B/s",
			    Q(s));
	if (r == 0 && (v.whole || v.rem_num))
		return fail(err, -ERANGE, g->hint, "byte rate %s is less than 1 byte per second", Q(s));
	*out_bytes_per_s = (uint64_t)r;
	return 0;
}

int fl_parse_ratio(const char *s, double *out, struct fl_err *err)
{
	const struct grammar *g = &g_ratio;
	bool percent = false;
	struct decimal d;
	const char *end;
	u128 num, den;
	int rc;

	rc = check_text(s, g->what, g->hint, err);
	if (rc)
		return rc;
	if (s[0] == '-')
		return fail(err, -ERANGE, g->hint, "ratio %s is negative", Q(s));
	rc = scan_decimal(s, &end, &d, g, err);
	if (rc)
		return rc;
	if (end[0] == '%' && end[1] == '\0') {
		percent = true;
	} else if (*end != '\0') {
		size_t nb = strspn(end, " \t");

		if (nb && !strcmp(end + nb, "%"))
			return fail(err, -EINVAL, g->hint, "ratio %s: no blank before the %%", Q(s));
		return fail(err, -EINVAL, g->hint, "ratio %s: unexpected %s after the number", Q(s), Q(end));
	}
	num = (u128)d.ip * pow10_u64[d.fdigits] + d.frac;
	den = (u128)pow10_u64[d.fdigits] * (percent ? 100 : 1);
	if (num > den) {
		if (percent)
			return fail(err, -ERANGE, g->hint, "ratio %s is above 100%%", Q(s));
		if (d.fdigits == 0 && d.ip <= 100)
			return fail(err, -ERANGE, g->hint, "ratio %s is above 1 (did you mean %s%%?)", Q(s), s);
		return fail(err, -ERANGE, g->hint, "ratio %s is above 1", Q(s));
	}
	/* den <= 10^21 is exact in a double, so this is the correctly rounded value when num < 2^53. */
	*out = (double)num / (double)den;
	return 0;
}

int fl_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, struct fl_err *err)
{
	char hint[FL_ERR_HINT];
	bool neg, overflow = false;
	uint64_t mag = 0;
	const char *p;
	int64_t v = 0;
	int rc;

	snprintf(hint, sizeof(hint), "a whole number in decimal digits from %" PRId64 " to %" PRId64, min, max);
	if (min > max)
		return fail(err, -EINVAL, NULL, "integer bounds are reversed (%" PRId64 " > %" PRId64 ")", min, max);
	rc = check_text(s, "integer", hint, err);
	if (rc)
		return rc;
	neg = s[0] == '-';
	p = s + neg;
	if (*p == '+')
		return fail(err, -EINVAL, hint, "integer %s: write the number without a + sign", Q(s));
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		return fail(err, -EINVAL, hint, "integer %s: hexadecimal numbers are not accepted, write it in decimal",
			    Q(s));
	if (!is_digit(*p))
		return fail(err, -EINVAL, hint, "integer %s is not a whole number", Q(s));
	for (; is_digit(*p); p++) {
		unsigned digit = (unsigned)(*p - '0');

		if (mag > (UINT64_MAX - digit) / 10)
			overflow = true;
		else
			mag = mag * 10 + digit;
	}
	if (*p == '.')
		return fail(err, -EINVAL, hint, "integer %s is not a whole number", Q(s));
	if ((*p == 'e' || *p == 'E') && (is_digit(p[1]) || ((p[1] == '+' || p[1] == '-') && is_digit(p[2]))))
		return fail(err, -EINVAL, hint, "integer %s: exponents are not accepted, write the number out in full",
			    Q(s));
	if (*p)
		return fail(err, -EINVAL, hint, "integer %s: unexpected %s after the number", Q(s), Q(p));
	if (neg) {
		if (overflow || mag > (uint64_t)INT64_MAX + 1)
			overflow = true;
		else
			v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	} else {
		if (overflow || mag > (uint64_t)INT64_MAX)
			overflow = true;
		else
			v = (int64_t)mag;
	}
	if (overflow || v < min || v > max)
		return fail(err, -ERANGE, hint, "integer %s is out of range: it must be between %" PRId64 " and %" PRId64,
			    Q(s), min, max);
	*out = v;
	return 0;
}

/* YAML 1.1's spellings, without its single letters y/n: too easy to type by accident in a drill. */
static const struct {
	const char *name;
	bool value;
} bools[] = {
	{ "true", true }, { "True", true }, { "TRUE", true },
	{ "yes", true }, { "Yes", true }, { "YES", true },
	{ "on", true }, { "On", true }, { "ON", true },
	{ "false", false }, { "False", false }, { "FALSE", false },
	{ "no", false }, { "No", false }, { "NO", false },
	{ "off", false }, { "Off", false }, { "OFF", false },
};

int fl_parse_bool(const char *s, bool *out, struct fl_err *err)
{
	int rc;

	rc = check_text(s, "boolean", HINT_BOOL, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < NELEM(bools); i++) {
		if (!strcmp(s, bools[i].name)) {
			*out = bools[i].value;
			return 0;
		}
	}
	for (size_t i = 0; i < NELEM(bools); i += 3) {
		if (!strcasecmp(s, bools[i].name))
			return fail(err, -EINVAL, HINT_BOOL, "boolean %s: mixed case is not accepted (did you mean %s?)",
				    Q(s), bools[i].name);
	}
	if (!strcmp(s, "1") || !strcmp(s, "0") || !strcasecmp(s, "y") || !strcasecmp(s, "n"))
		return fail(err, -EINVAL, HINT_BOOL, "boolean %s: write %s", Q(s),
			    (s[0] == '1' || s[0] == 'y' || s[0] == 'Y') ? "true" : "false");
	return fail(err, -EINVAL, HINT_BOOL, "boolean %s is not true or false", Q(s));
}

/* Set size: statuses 0..639 fit, fl_status_set_format walks them all. */
#define STATUS_LIMIT ((int)(sizeof(((struct fl_status_set *)0)->bits) * 8))

/* One status at *p (three digits, 100..599); the item is what the message quotes. */
static int status_number(const char *s, const char **pp, const char *item, size_t ilen, int *out,
			 struct fl_err *err)
{
	const char *p = *pp;
	int n = 0, v = 0;

	for (; is_digit(*p); p++, n++) {
		if (n < 4)
			v = v * 10 + (*p - '0');
	}
	if (n == 0)
		return fail(err, -EINVAL, HINT_STATUS, "status set %s: %s is not a status, range or class", Q(s),
			    QN(item, ilen));
	if (n > 1 && (*pp)[0] == '0')
		return fail(err, -EINVAL, HINT_STATUS, "status set %s: %s has a leading zero", Q(s), QN(item, ilen));
	if (n != 3 || v < 100 || v > 599)
		return fail(err, -ERANGE, HINT_STATUS, "status set %s: %.*s is not an HTTP status (100 to 599)", Q(s),
			    n, *pp);
	*out = v;
	*pp = p;
	return 0;
}

/* One item at *pp: "200", "200-399" or "2xx". */
static int status_item(const char *s, const char **pp, int *lo, int *hi, struct fl_err *err)
{
	const char *item = *pp, *p = *pp;
	size_t ilen = strcspn(item, ",");
	int rc;

	if (is_digit(p[0]) && (p[1] == 'x' || p[1] == 'X') && (p[2] == 'x' || p[2] == 'X')) {
		if (p[0] < '1' || p[0] > '5')
			return fail(err, -ERANGE, HINT_STATUS, "status set %s: there is no status class %s (1xx to 5xx)",
				    Q(s), QN(p, 3));
		if (p[3] == '-')
			return fail(err, -EINVAL, HINT_STATUS,
				    "status set %s: %s: ranges join statuses, not classes (write 200-399)", Q(s),
				    QN(item, ilen));
		*lo = (p[0] - '0') * 100;
		*hi = *lo + 99;
		*pp = p + 3;
		return 0;
	}
	rc = status_number(s, &p, item, ilen, lo, err);
	if (rc)
		return rc;
	*hi = *lo;
	if (*p == '-') {
		p++;
		if (is_digit(p[0]) && (p[1] == 'x' || p[1] == 'X'))
			return fail(err, -EINVAL, HINT_STATUS,
				    "status set %s: %s: ranges join statuses, not classes (write 200-399)", Q(s),
				    QN(item, ilen));
		rc = status_number(s, &p, item, ilen, hi, err);
		if (rc)
			return rc;
		if (*lo > *hi)
			return fail(err, -EINVAL, HINT_STATUS, "status set %s: range %s is backwards (write %d-%d)",
				    Q(s), QN(item, ilen), *hi, *lo);
	}
	*pp = p;
	return 0;
}

int fl_parse_status_set(const char *s, struct fl_status_set *out, struct fl_err *err)
{
	struct fl_status_set set = { { 0 } };
	const char *p;
	int rc;

	rc = check_text(s, "status set", HINT_STATUS, err);
	if (rc)
		return rc;
	p = s;
	for (;;) {
		int lo, hi;

		rc = status_item(s, &p, &lo, &hi, err);
		if (rc)
			return rc;
		for (int st = lo; st <= hi; st++)
			set.bits[st / 64] |= 1ULL << (st % 64);
		if (*p == '\0')
			break;
		if (*p != ',') {
			if (is_blank(*p))
				return fail(err, -EINVAL, HINT_STATUS,
					    "status set %s: separate statuses with commas; blanks may only follow a comma",
					    Q(s));
			return fail(err, -EINVAL, HINT_STATUS, "status set %s: unexpected %s after %s", Q(s),
				    QN(p, strcspn(p, ",")), QN(s, (size_t)(p - s)));
		}
		p++;
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return fail(err, -EINVAL, HINT_STATUS, "status set %s ends with a comma", Q(s));
		if (*p == ',')
			return fail(err, -EINVAL, HINT_STATUS, "status set %s has an empty item between commas", Q(s));
	}
	*out = set;
	return 0;
}

bool fl_status_in(const struct fl_status_set *set, int status)
{
	if (!set || status < 0 || status >= STATUS_LIMIT)
		return false;
	return (set->bits[status / 64] >> (status % 64)) & 1;
}

/* A set that does not fit ends in "..." so a cut list is never mistaken for a smaller set. */
char *fl_status_set_format(const struct fl_status_set *set, char *buf, size_t len)
{
	size_t o = 0;
	bool cut = false;

	if (!buf || len == 0)
		return buf;
	buf[0] = '\0';
	for (int st = 0; st < STATUS_LIMIT && !cut; st++) {
		char item[24];
		int lo = st, n;

		if (!fl_status_in(set, st))
			continue;
		while (st + 1 < STATUS_LIMIT && fl_status_in(set, st + 1))
			st++;
		if (lo == st)
			n = snprintf(item, sizeof(item), "%s%d", o ? "," : "", lo);
		else
			n = snprintf(item, sizeof(item), "%s%d-%d", o ? "," : "", lo, st);
		if (o + (size_t)n + 1 > len) {
			cut = true;
			break;
		}
		memcpy(buf + o, item, (size_t)n + 1);
		o += (size_t)n;
	}
	if (cut) {
		if (len < 4) {
			buf[0] = '\0';
			return buf;
		}
		if (o > len - 4)
			o = len - 4;
		memcpy(buf + o, "...", 4);
	}
	return buf;
}

struct named {
	const char *name;
	int num;
};

/* Every errno Linux defines (asm-generic/errno-base.h and errno.h), numbers from the C library at compile time. */
#define FL_ERRNO_LIST(X)                                                                                      \
	X(EPERM) X(ENOENT) X(ESRCH) X(EINTR) X(EIO) X(ENXIO) X(E2BIG) X(ENOEXEC) X(EBADF) X(ECHILD)           \
	X(EAGAIN) X(ENOMEM) X(EACCES) X(EFAULT) X(ENOTBLK) X(EBUSY) X(EEXIST) X(EXDEV) X(ENODEV)             \
	X(ENOTDIR) X(EISDIR) X(EINVAL) X(ENFILE) X(EMFILE) X(ENOTTY) X(ETXTBSY) X(EFBIG) X(ENOSPC)           \
	X(ESPIPE) X(EROFS) X(EMLINK) X(EPIPE) X(EDOM) X(ERANGE) X(EDEADLK) X(ENAMETOOLONG) X(ENOLCK)         \
	X(ENOSYS) X(ENOTEMPTY) X(ELOOP) X(ENOMSG) X(EIDRM) X(ECHRNG) X(EL2NSYNC) X(EL3HLT) X(EL3RST)         \
	X(ELNRNG) X(EUNATCH) X(ENOCSI) X(EL2HLT) X(EBADE) X(EBADR) X(EXFULL) X(ENOANO) X(EBADRQC)            \
	X(EBADSLT) X(EBFONT) X(ENOSTR) X(ENODATA) X(ETIME) X(ENOSR) X(ENONET) X(ENOPKG) X(EREMOTE)           \
	X(ENOLINK) X(EADV) X(ESRMNT) X(ECOMM) X(EPROTO) X(EMULTIHOP) X(EDOTDOT) X(EBADMSG) X(EOVERFLOW)      \
	X(ENOTUNIQ) X(EBADFD) X(EREMCHG) X(ELIBACC) X(ELIBBAD) X(ELIBSCN) X(ELIBMAX) X(ELIBEXEC) X(EILSEQ)   \
	X(ERESTART) X(ESTRPIPE) X(EUSERS) X(ENOTSOCK) X(EDESTADDRREQ) X(EMSGSIZE) X(EPROTOTYPE)              \
	X(ENOPROTOOPT) X(EPROTONOSUPPORT) X(ESOCKTNOSUPPORT) X(EOPNOTSUPP) X(EPFNOSUPPORT)                   \
	X(EAFNOSUPPORT) X(EADDRINUSE) X(EADDRNOTAVAIL) X(ENETDOWN) X(ENETUNREACH) X(ENETRESET)               \
	X(ECONNABORTED) X(ECONNRESET) X(ENOBUFS) X(EISCONN) X(ENOTCONN) X(ESHUTDOWN) X(ETOOMANYREFS)         \
	X(ETIMEDOUT) X(ECONNREFUSED) X(EHOSTDOWN) X(EHOSTUNREACH) X(EALREADY) X(EINPROGRESS) X(ESTALE)       \
	X(EUCLEAN) X(ENOTNAM) X(ENAVAIL) X(EISNAM) X(EREMOTEIO) X(EDQUOT) X(ENOMEDIUM) X(EMEDIUMTYPE)        \
	X(ECANCELED) X(ENOKEY) X(EKEYEXPIRED) X(EKEYREVOKED) X(EKEYREJECTED) X(EOWNERDEAD)                  \
	X(ENOTRECOVERABLE) X(ERFKILL) X(EHWPOISON)

/* Second names for numbers above: accepted when parsing, never printed. */
#define FL_ERRNO_ALIASES(X) X(EWOULDBLOCK) X(EDEADLOCK) X(ENOTSUP)

#define FL_NAMED(n) { #n, n },
static const struct named errnos[] = { FL_ERRNO_LIST(FL_NAMED) };
static const struct named errno_aliases[] = { FL_ERRNO_ALIASES(FL_NAMED) };
#undef FL_NAMED

#define FL_ERRNO_MAX EHWPOISON
_Static_assert(EHWPOISON == 133, "the errno table and its messages assume Linux's numbering");

#define FL_SIGNAL_LIST(X)                                                                                     \
	X(HUP) X(INT) X(QUIT) X(ILL) X(TRAP) X(ABRT) X(BUS) X(FPE) X(KILL) X(USR1) X(SEGV) X(USR2) X(PIPE)   \
	X(ALRM) X(TERM) X(STKFLT) X(CHLD) X(CONT) X(STOP) X(TSTP) X(TTIN) X(TTOU) X(URG) X(XCPU) X(XFSZ)     \
	X(VTALRM) X(PROF) X(WINCH) X(IO) X(PWR) X(SYS)
#define FL_SIGNAL_ALIASES(X) X(IOT) X(POLL) X(CLD)

#define FL_NAMED_SIG(n) { "SIG" #n, SIG##n },
static const struct named signals[] = { FL_SIGNAL_LIST(FL_NAMED_SIG) };
static const struct named signal_aliases[] = { FL_SIGNAL_ALIASES(FL_NAMED_SIG) };
#undef FL_NAMED_SIG

/* Names for SIGRTMIN + i; SIGRTMIN is a C library choice (34 with glibc), so the index is computed at run time. */
static const char *const rt_names[] = {
	"SIGRTMIN", "SIGRTMIN+1", "SIGRTMIN+2", "SIGRTMIN+3", "SIGRTMIN+4", "SIGRTMIN+5", "SIGRTMIN+6",
	"SIGRTMIN+7", "SIGRTMIN+8", "SIGRTMIN+9", "SIGRTMIN+10", "SIGRTMIN+11", "SIGRTMIN+12", "SIGRTMIN+13",
	"SIGRTMIN+14", "SIGRTMIN+15", "SIGRTMIN+16", "SIGRTMIN+17", "SIGRTMIN+18", "SIGRTMIN+19",
	"SIGRTMIN+20", "SIGRTMIN+21", "SIGRTMIN+22", "SIGRTMIN+23", "SIGRTMIN+24", "SIGRTMIN+25",
	"SIGRTMIN+26", "SIGRTMIN+27", "SIGRTMIN+28", "SIGRTMIN+29", "SIGRTMIN+30", "SIGRTMIN+31",
	"SIGRTMIN+32",
};

static const struct named *named_find(const struct named *tab, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(tab[i].name, name))
			return &tab[i];
	return NULL;
}

size_t fl_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[NAME_CAP + 1];

	if (la > NAME_CAP || lb > NAME_CAP)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* The closest name in tab, if it is close enough to be what was meant (at most 2 edits, and a third of the name). */
static void closest(const struct named *tab, size_t n, const char *in, const char **best, size_t *bestd)
{
	for (size_t i = 0; i < n; i++) {
		size_t d = fl_edit_distance(in, tab[i].name);

		if (d <= 2 && d * 3 <= strlen(tab[i].name) && d < *bestd) {
			*best = tab[i].name;
			*bestd = d;
		}
	}
}

/* up gets s in upper case, behind prefix unless s already starts with it; false when too long to compare. */
static bool upcase(char *up, const char *prefix, const char *s)
{
	size_t o = 0;

	if (strlen(prefix) + strlen(s) > NAME_CAP)
		return false;
	if (strncasecmp(s, prefix, strlen(prefix))) {
		memcpy(up, prefix, strlen(prefix));
		o = strlen(prefix);
	}
	for (; *s; s++)
		up[o++] = (*s >= 'a' && *s <= 'z') ? (char)(*s - 'a' + 'A') : *s;
	up[o] = '\0';
	return true;
}

/* Digits only, at most 4 of them (more answers 10000, which every caller refuses as out of range). */
static bool small_number(const char *s, int *out)
{
	int v = 0, n = 0;

	for (; is_digit(*s); s++, n++)
		if (n < 5)
			v = v * 10 + (*s - '0');
	if (n == 0 || *s)
		return false;
	*out = n > 4 ? 10000 : v;
	return true;
}

const char *fl_errno_name(int e)
{
	for (size_t i = 0; i < NELEM(errnos); i++)
		if (errnos[i].num == e)
			return errnos[i].name;
	return NULL;
}

int fl_errno_from_name(const char *name, int *out, struct fl_err *err)
{
	const struct named *hit;
	char up[NAME_CAP + 1];
	const char *best = NULL;
	size_t bestd = SIZE_MAX;
	int n, rc;

	rc = check_text(name, "errno", HINT_ERRNO, err);
	if (rc)
		return rc;
	if (name[0] == '-')
		return fail(err, -EINVAL, HINT_ERRNO, "errno %s: write it without the minus sign (%s)", Q(name),
			    name + 1);
	if (small_number(name, &n)) {
		if (n < 1 || n > FL_ERRNO_MAX)
			return fail(err, -ERANGE, HINT_ERRNO, "errno %s is out of range: Linux errnos are 1 to %d",
				    Q(name), FL_ERRNO_MAX);
		if (!fl_errno_name(n))
			return fail(err, -EINVAL, HINT_ERRNO, "errno %s: Linux defines no errno %d", Q(name), n);
		*out = n;
		return 0;
	}
	hit = named_find(errnos, NELEM(errnos), name);
	if (!hit)
		hit = named_find(errno_aliases, NELEM(errno_aliases), name);
	if (hit) {
		*out = hit->num;
		return 0;
	}
	if (upcase(up, "", name)) {
		hit = named_find(errnos, NELEM(errnos), up);
		if (!hit)
			hit = named_find(errno_aliases, NELEM(errno_aliases), up);
		if (hit)
			return fail(err, -EINVAL, HINT_ERRNO, "errno %s: names are upper-case (did you mean %s?)",
				    Q(name), hit->name);
		closest(errnos, NELEM(errnos), up, &best, &bestd);
		closest(errno_aliases, NELEM(errno_aliases), up, &best, &bestd);
	}
	if (best)
		return fail(err, -EINVAL, HINT_ERRNO, "unknown errno name %s (did you mean %s?)", Q(name), best);
	return fail(err, -EINVAL, HINT_ERRNO, "unknown errno name %s", Q(name));
}

const char *fl_signal_name(int sig)
{
	for (size_t i = 0; i < NELEM(signals); i++)
		if (signals[i].num == sig)
			return signals[i].name;
	if (sig == SIGRTMAX)
		return "SIGRTMAX";
	if (sig >= SIGRTMIN && sig < SIGRTMAX && (size_t)(sig - SIGRTMIN) < NELEM(rt_names))
		return rt_names[sig - SIGRTMIN];
	return NULL;
}

/* "RTMIN", "RTMIN+3", "RTMAX-2" (already without "SIG"): 1 when it is one, 0 when not, or a negative error. */
static int rt_signal(const char *name, const char *rt, int *out, struct fl_err *err)
{
	int base, off = 0, sign = 1, sig;
	const char *p = rt + 5;

	if (!strncmp(rt, "RTMIN", 5))
		base = SIGRTMIN;
	else if (!strncmp(rt, "RTMAX", 5))
		base = SIGRTMAX;
	else
		return 0;
	if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		if (!small_number(p + 1, &off))
			return fail(err, -EINVAL, HINT_SIGNAL, "signal %s: expected a number after %c", Q(name), *p);
	} else if (*p) {
		return 0;
	}
	sig = base + sign * off;
	if (sig < SIGRTMIN || sig > SIGRTMAX)
		return fail(err, -ERANGE, HINT_SIGNAL,
			    "signal %s is outside SIGRTMIN..SIGRTMAX (SIGRTMIN+0 to SIGRTMIN+%d)", Q(name),
			    SIGRTMAX - SIGRTMIN);
	*out = sig;
	return 1;
}

int fl_signal_from_name(const char *name, int *out, struct fl_err *err)
{
	char full[NAME_CAP + 8], up[NAME_CAP + 1];
	const struct named *hit;
	const char *bare, *best = NULL;
	size_t bestd = SIZE_MAX;
	int n, rc;

	rc = check_text(name, "signal", HINT_SIGNAL, err);
	if (rc)
		return rc;
	if (name[0] == '-')
		return fail(err, -EINVAL, HINT_SIGNAL, "signal %s: write it without the minus sign (%s)", Q(name),
			    name + 1);
	if (small_number(name, &n)) {
		if (n < 1 || n > SIGRTMAX)
			return fail(err, -ERANGE, HINT_SIGNAL, "signal %s is out of range: signals are 1 to %d",
				    Q(name), SIGRTMAX);
		*out = n;
		return 0;
	}
	bare = strncmp(name, "SIG", 3) ? name : name + 3;
	rc = rt_signal(name, bare, out, err);
	if (rc)
		return rc < 0 ? rc : 0;
	if (strlen(bare) <= NAME_CAP) {
		snprintf(full, sizeof(full), "SIG%s", bare);
		hit = named_find(signals, NELEM(signals), full);
		if (!hit)
			hit = named_find(signal_aliases, NELEM(signal_aliases), full);
		if (hit) {
			*out = hit->num;
			return 0;
		}
	}
	if (upcase(up, "SIG", name)) {
		hit = named_find(signals, NELEM(signals), up);
		if (!hit)
			hit = named_find(signal_aliases, NELEM(signal_aliases), up);
		if (hit)
			return fail(err, -EINVAL, HINT_SIGNAL, "signal %s: names are upper-case (did you mean %s?)",
				    Q(name), hit->name);
		closest(signals, NELEM(signals), up, &best, &bestd);
		closest(signal_aliases, NELEM(signal_aliases), up, &best, &bestd);
	}
	if (best)
		return fail(err, -EINVAL, HINT_SIGNAL, "unknown signal %s (did you mean %s?)", Q(name), best);
	return fail(err, -EINVAL, HINT_SIGNAL, "unknown signal %s", Q(name));
}

/* Whether v in unit is exact with at most three decimals. */
static bool exact3(uint64_t v, uint64_t unit)
{
	return ((u128)v * 1000) % unit == 0;
}

/* v in unit, rounded half up to three decimals, trailing zeros dropped: "1.5", "250", "1.235". */
static void put_scaled(char *buf, size_t len, const char *sign, uint64_t v, uint64_t unit, const char *name)
{
	u128 t = ((u128)v * 1000 + unit / 2) / unit;
	uint64_t whole = (uint64_t)(t / 1000);
	unsigned milli = (unsigned)(t % 1000);
	char frac[5] = "";

	if (milli) {
		int n = 3;

		snprintf(frac, sizeof(frac), ".%03u", milli);
		while (frac[n] == '0')
			frac[n--] = '\0';
	}
	snprintf(buf, len, "%s%" PRIu64 "%s%s", sign, whole, frac, name);
}

/* Thousandths of v in unit after rounding: tells when rounding carried into the next unit. */
static u128 rounded_milli(uint64_t v, uint64_t unit)
{
	return ((u128)v * 1000 + unit / 2) / unit;
}

/*
 * Minutes and hours only when whole ("90s", not "1.5m"); below that the
 * largest of s ms us ns worth at least 1, exact up to three decimals and
 * rounded beyond ("1.235s"), so configured values print as written.
 */
char *fl_format_duration(int64_t ns, char *buf, size_t len)
{
	static const struct unit small[] = {
		{ "s", FL_NS_PER_S, false },
		{ "ms", FL_NS_PER_MS, false },
		{ "us", FL_NS_PER_US, false },
		{ "ns", 1, false },
	};
	const char *sign = ns < 0 ? "-" : "";
	uint64_t v = ns < 0 ? 0 - (uint64_t)ns : (uint64_t)ns;
	size_t i = 0;

	if (!buf || len == 0)
		return buf;
	if (v == 0) {
		snprintf(buf, len, "0s");
		return buf;
	}
	if (v % (3600 * FL_NS_PER_S) == 0) {
		snprintf(buf, len, "%s%" PRIu64 "h", sign, v / (uint64_t)(3600 * FL_NS_PER_S));
		return buf;
	}
	if (v % (60 * FL_NS_PER_S) == 0) {
		snprintf(buf, len, "%s%" PRIu64 "m", sign, v / (uint64_t)(60 * FL_NS_PER_S));
		return buf;
	}
	while (i + 1 < NELEM(small) && v < small[i].mul)
		i++;
	/* 999999999ns rounds to 1000.000ms: say 1s instead */
	if (i > 0 && rounded_milli(v, small[i].mul) >= 1000 * 1000)
		i--;
	put_scaled(buf, len, sign, v, small[i].mul, small[i].name);
	return buf;
}

/*
 * The largest binary unit worth at least 1 when exact to three decimals
 * ("1.5GiB"), else the largest decimal unit when that is exact ("10MB"),
 * else the binary unit rounded ("1.177MiB").
 */
char *fl_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const struct unit bin[] = {
		{ "TiB", KIB * KIB * KIB * KIB, false },
		{ "GiB", KIB * KIB * KIB, false },
		{ "MiB", KIB * KIB, false },
		{ "KiB", KIB, false },
		{ "B", 1, false },
	};
	static const struct unit dec[] = {
		{ "TB", 1000000000000ULL, false },
		{ "GB", 1000000000ULL, false },
		{ "MB", 1000000ULL, false },
		{ "KB", 1000ULL, false },
		{ "B", 1, false },
	};
	size_t b = 0, d = 0;

	if (!buf || len == 0)
		return buf;
	while (b + 1 < NELEM(bin) && bytes < bin[b].mul)
		b++;
	while (d + 1 < NELEM(dec) && bytes < dec[d].mul)
		d++;
	if (exact3(bytes, bin[b].mul)) {
		put_scaled(buf, len, "", bytes, bin[b].mul, bin[b].name);
	} else if (exact3(bytes, dec[d].mul)) {
		put_scaled(buf, len, "", bytes, dec[d].mul, dec[d].name);
	} else {
		if (b > 0 && rounded_milli(bytes, bin[b].mul) >= 1024 * 1000)
			b--;
		put_scaled(buf, len, "", bytes, bin[b].mul, bin[b].name);
	}
	return buf;
}
