/* Log-linear histogram: the bucket index comes from the leading bit and the six after it, in integer arithmetic. */
#include "hist.h"

#include <math.h>
#include <string.h>

#define SUB_COUNT (1 << FL_HIST_SUB_BITS)
/* 1000 ns lies in the power of two [512, 1024); its sub-bucket there is (1000 >> 3) - 64 = 61 */
#define FIRST_OCTAVE 9
#define FIRST_OFFSET 61

_Static_assert((FL_HIST_LOWEST_NS >> FIRST_OCTAVE) == 1, "1 µs must lie in the first octave");
_Static_assert(((FL_HIST_LOWEST_NS >> (FIRST_OCTAVE - FL_HIST_SUB_BITS)) & (SUB_COUNT - 1)) == FIRST_OFFSET,
	       "first bucket must start at 1 µs");
_Static_assert((FL_HIST_LOWEST_NS & ((1 << (FIRST_OCTAVE - FL_HIST_SUB_BITS)) - 1)) == 0,
	       "1 µs must be a bucket's lower edge");
/* 1 h = 3.6e12 ns lies in [2^41, 2^42) */
_Static_assert((FL_HIST_HIGHEST_NS >> 41) == 1, "1 h must lie in octave 41");
_Static_assert(((41 - FIRST_OCTAVE) << FL_HIST_SUB_BITS) +
		       ((FL_HIST_HIGHEST_NS >> (41 - FL_HIST_SUB_BITS)) & (SUB_COUNT - 1)) - FIRST_OFFSET ==
		       FL_HIST_NBUCKETS - 1,
	       "FL_HIST_NBUCKETS must end with the bucket holding 1 h");

/* v in [FL_HIST_LOWEST_NS, FL_HIST_HIGHEST_NS] */
static int bucket_of(uint64_t v)
{
	int k = 63 - __builtin_clzll(v);
	int sub = (int)(v >> (k - FL_HIST_SUB_BITS)) & (SUB_COUNT - 1);

	return ((k - FIRST_OCTAVE) << FL_HIST_SUB_BITS) + sub - FIRST_OFFSET;
}

/* The inverse: bucket i is [*lo, *lo + *width). */
static void bucket_range(int i, int64_t *lo, int64_t *width)
{
	int j = i + FIRST_OFFSET;
	int k = FIRST_OCTAVE + (j >> FL_HIST_SUB_BITS);
	int sub = j & (SUB_COUNT - 1);

	*lo = (int64_t)(SUB_COUNT + sub) << (k - FL_HIST_SUB_BITS);
	*width = (int64_t)1 << (k - FL_HIST_SUB_BITS);
}

void fl_hist_init(struct fl_hist *h)
{
	memset(h, 0, sizeof(*h));
}

void fl_hist_reset(struct fl_hist *h)
{
	memset(h, 0, sizeof(*h));
}

void fl_hist_record(struct fl_hist *h, int64_t ns)
{
	if (ns < 0)
		ns = 0;
	if (h->total == 0 || ns < h->min)
		h->min = ns;
	if (h->total == 0 || ns > h->max)
		h->max = ns;
	h->total++;
	h->sum += (uint64_t)ns;
	if (ns > FL_HIST_HIGHEST_NS)
		h->overflow++;
	else
		h->counts[bucket_of((uint64_t)(ns < FL_HIST_LOWEST_NS ? FL_HIST_LOWEST_NS : ns))]++;
}

void fl_hist_merge(struct fl_hist *dst, const struct fl_hist *src)
{
	if (!src->total)
		return;
	if (!dst->total || src->min < dst->min)
		dst->min = src->min;
	if (!dst->total || src->max > dst->max)
		dst->max = src->max;
	dst->total += src->total;
	dst->overflow += src->overflow;
	dst->sum += src->sum;
	for (int i = 0; i < FL_HIST_NBUCKETS; i++)
		dst->counts[i] += src->counts[i];
}

uint64_t fl_hist_count(const struct fl_hist *h)
{
	return h->total;
}

uint64_t fl_hist_overflow(const struct fl_hist *h)
{
	return h->overflow;
}

int64_t fl_hist_min(const struct fl_hist *h)
{
	return h->total ? h->min : 0;
}

int64_t fl_hist_max(const struct fl_hist *h)
{
	return h->total ? h->max : 0;
}

double fl_hist_mean(const struct fl_hist *h)
{
	return h->total ? (double)h->sum / (double)h->total : 0.0;
}

/* ceil(p/100 * n) in [1, n]; the tolerance keeps 99.9% of 100000 at rank 99900, not 99901. */
static uint64_t rank_of(double p, uint64_t n)
{
	double x;
	uint64_t r;

	if (!(p > 0.0)) /* also NaN */
		return 1;
	if (p >= 100.0)
		return n;
	x = p * (double)n / 100.0;
	r = (uint64_t)ceil(x - x * 1e-12);
	if (r < 1)
		r = 1;
	return r > n ? n : r;
}

int64_t fl_hist_percentile(const struct fl_hist *h, double p)
{
	uint64_t r, seen = 0;

	if (!h->total)
		return 0;
	r = rank_of(p, h->total);
	if (r == 1)
		return h->min;
	if (r == h->total)
		return h->max;
	for (int i = 0; i < FL_HIST_NBUCKETS; i++) {
		int64_t lo, width, mid;

		seen += h->counts[i];
		if (seen < r)
			continue;
		bucket_range(i, &lo, &width);
		mid = lo + width / 2;
		/* the exact value is in this bucket and in [min, max]: clamping only gets closer */
		if (mid < h->min)
			mid = h->min;
		if (mid > h->max)
			mid = h->max;
		return mid;
	}
	return FL_HIST_HIGHEST_NS; /* rank r is in the overflow: ">= 1 h" */
}
