/* The value grammar of scenarios: durations, sizes, rates, ratios, status sets, errno and signal names. */
#ifndef FL_UNITS_H
#define FL_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_err.h"

/*
 * Every parser takes the whole string (no trailing garbage, no surrounding
 * blanks), returns 0 or -EINVAL / -ERANGE, and on error fills err->msg with
 * what was wrong and err->hint with the accepted forms.
 */

#define FL_NS_PER_US 1000LL
#define FL_NS_PER_MS 1000000LL
#define FL_NS_PER_S 1000000000LL

/* "250ms", "1.5s", "2m", "1h", "0s"; units ns us ms s m h; no negative values. */
int fl_parse_duration(const char *s, int64_t *out_ns, struct fl_err *err);
/* "512B", "64KiB", "1.5GiB", "10MB": B KiB MiB GiB TiB (1024) and KB MB GB TB (1000). */
int fl_parse_size(const char *s, uint64_t *out_bytes, struct fl_err *err);
/* "200/s", "12000/m", "0.5/s": events per second. */
int fl_parse_rate(const char *s, double *out_per_s, struct fl_err *err);
/* "20MiB/s", "10Mbit/s", "1GB/m": bytes per second (bits are divided by 8). */
int fl_parse_byte_rate(const char *s, uint64_t *out_bytes_per_s, struct fl_err *err);
/* "95%", "99.9%", "0.95", "1": a ratio in [0, 1]. */
int fl_parse_ratio(const char *s, double *out, struct fl_err *err);
/* A decimal integer within [min, max]. */
int fl_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, struct fl_err *err);
/* "true"/"false" (also yes/no/on/off as YAML 1.1 spells them). */
int fl_parse_bool(const char *s, bool *out, struct fl_err *err);

/* HTTP status sets: "200", "200-399", "2xx", "200-299,304", lists of those. */
struct fl_status_set {
	uint64_t bits[10]; /* status 0..639, one bit each; only 100..599 may be set */
};
int fl_parse_status_set(const char *s, struct fl_status_set *out, struct fl_err *err);
bool fl_status_in(const struct fl_status_set *set, int status);
/* Canonical text ("200-399,404") into buf; returns buf. */
char *fl_status_set_format(const struct fl_status_set *set, char *buf, size_t len);

/* errno names: every errno Linux defines, "ECONNREFUSED" <-> 111. Case-sensitive names. */
int fl_errno_from_name(const char *name, int *out, struct fl_err *err);
const char *fl_errno_name(int e); /* NULL when unknown */

/* Signal names: "SIGKILL" or "KILL" or a number 1..64. */
int fl_signal_from_name(const char *name, int *out, struct fl_err *err);
const char *fl_signal_name(int sig); /* "SIGKILL"; NULL when unknown */

/* Levenshtein distance, case-insensitive, for "did you mean" hints; SIZE_MAX for very long words. */
size_t fl_edit_distance(const char *a, const char *b);

/* Human formatting for plan/list/report output: "1.5s", "250ms", "64MiB". */
char *fl_format_duration(int64_t ns, char *buf, size_t len);
char *fl_format_size(uint64_t bytes, char *buf, size_t len);

#endif
