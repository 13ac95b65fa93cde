/* Log-linear latency histogram: nanoseconds from 1 µs to 1 h with <= 1% relative error, fixed memory. */
#ifndef FL_HIST_H
#define FL_HIST_H

#include <stdint.h>

/*
 * Layout: every power of two [2^k, 2^(k+1)) is split into 64 equal sub-buckets, so a bucket is at
 * most 1/64 of its lower edge wide and its midpoint is within 1/128 (0.78%) of any value in it.
 * Bucket 0 is [1000, 1008) ns: values below 1 µs (and negative ones, as 0) are counted there.
 * The last bucket ends just past 1 h; values above 1 h go to an overflow count.
 */
#define FL_HIST_LOWEST_NS 1000LL               /* 1 µs */
#define FL_HIST_HIGHEST_NS 3600000000000LL     /* 1 h */
#define FL_HIST_SUB_BITS 6                     /* 64 sub-buckets per power of two */
#define FL_HIST_NBUCKETS 2028                  /* [1 µs, 1 h]; checked in hist.c */

/*
 * A zero-filled struct is a valid empty histogram (calloc works; fl_hist_init is memset).
 * About 16 KiB; no allocation after that, so it may be embedded or put in arrays.
 */
struct fl_hist {
	uint64_t total;                   /* every value recorded, overflow included */
	uint64_t overflow;                /* values > FL_HIST_HIGHEST_NS */
	int64_t min, max;                 /* exact, of the values as recorded (negatives as 0) */
	unsigned __int128 sum;            /* exact, for the mean; cannot overflow in practice */
	uint64_t counts[FL_HIST_NBUCKETS];
};

void fl_hist_init(struct fl_hist *h);
void fl_hist_reset(struct fl_hist *h);
/* Count one value in ns; < 1 µs counts in the first bucket, > 1 h in the overflow. O(1). */
void fl_hist_record(struct fl_hist *h, int64_t ns);
/* dst += src: afterwards dst is exactly what recording both streams into it would give. */
void fl_hist_merge(struct fl_hist *dst, const struct fl_hist *src);

uint64_t fl_hist_count(const struct fl_hist *h);
uint64_t fl_hist_overflow(const struct fl_hist *h);
/* Exact smallest / largest value recorded; 0 when empty. */
int64_t fl_hist_min(const struct fl_hist *h);
int64_t fl_hist_max(const struct fl_hist *h);
/* Exact arithmetic mean of the values recorded; 0 when empty. */
double fl_hist_mean(const struct fl_hist *h);

/*
 * The p-th percentile (0 <= p <= 100) as the order statistic of rank r = ceil(p/100 * n), r >= 1
 * (p = 50 of 10 values is the 5th smallest). Reported as the midpoint of the bucket holding
 * rank r, clamped to [min, max], so it is within 0.78% of the exact value for values in
 * [1 µs, 1 h]; rank 1 and rank n report the exact min and max. When rank r falls in the
 * overflow (and r < n) the result is FL_HIST_HIGHEST_NS, to be read as ">= 1 h".
 * 0 when empty.
 */
int64_t fl_hist_percentile(const struct fl_hist *h, double p);

#endif
