/* Exact SLO accounting with bounded memory: 100 ms slots for windows, a ring of live per-second histograms. */
#include "slo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SLOT_NS (100 * FL_NS_PER_MS)

struct slot {
	uint32_t valid, good;
};

struct fl_slo {
	struct fl_slo_spec spec;
	int64_t t0, faults_start, recovery_start, end;
	int64_t timeout;
	struct fl_counts phase[FL_PHASE_N];
	struct fl_hist phase_hist[FL_PHASE_N];
	struct slot *by_sched, *by_done;  /* 100 ms slots, by scheduled and by completion time */
	int nslots;
	struct fl_second *sec;
	int nsec;
	int used_sec;                     /* seconds that received a request, +1 */
	struct fl_hist *live;             /* ring of per-second histograms not yet finalised */
	int *live_sec;                    /* which second each ring entry holds, -1 free */
	int nlive;
};

static const char *const class_names[FL_C_N] = {
	[FL_C_GOOD] = "good",
	[FL_C_BAD_STATUS] = "bad_status",
	[FL_C_TOO_SLOW] = "too_slow",
	[FL_C_TIMEOUT] = "timeout",
	[FL_C_REFUSED] = "refused",
	[FL_C_RESET] = "reset",
	[FL_C_CONN_ERROR] = "conn_error",
	[FL_C_BAD_RESPONSE] = "bad_response",
	[FL_C_NOT_SENT] = "not_sent",
};

const char *fl_class_name(enum fl_class c)
{
	return c < FL_C_N ? class_names[c] : "?";
}

double fl_ratio(uint64_t good, uint64_t valid)
{
	return valid ? (double)good / (double)valid : 1.0;
}

/* 95/100 against a target parsed from "95%" must not fail on the last bit of a double. */
static bool meets(double ratio, double target)
{
	return ratio >= target - 1e-12;
}

int fl_slo_create(const struct fl_slo_spec *spec, int64_t t0_ns, int64_t max_run_ns, int64_t timeout_ns,
		  struct fl_slo **out)
{
	struct fl_slo *s = calloc(1, sizeof(*s));
	int64_t span = max_run_ns + timeout_ns + 2 * FL_NS_PER_S;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->spec = *spec;
	s->t0 = t0_ns;
	s->faults_start = s->recovery_start = s->end = INT64_MAX;
	s->timeout = timeout_ns;
	s->nslots = (int)(span / SLOT_NS) + 1;
	s->nsec = (int)(span / FL_NS_PER_S) + 1;
	/* a second is final once all its requests are decided: timeout + 1 s after it began */
	s->nlive = (int)(timeout_ns / FL_NS_PER_S) + 4;
	s->by_sched = calloc((size_t)s->nslots, sizeof(*s->by_sched));
	s->by_done = calloc((size_t)s->nslots, sizeof(*s->by_done));
	s->sec = calloc((size_t)s->nsec, sizeof(*s->sec));
	s->live = calloc((size_t)s->nlive, sizeof(*s->live));
	s->live_sec = calloc((size_t)s->nlive, sizeof(*s->live_sec));
	if (!s->by_sched || !s->by_done || !s->sec || !s->live || !s->live_sec) {
		fl_slo_destroy(s);
		return -ENOMEM;
	}
	for (int i = 0; i < FL_PHASE_N; i++)
		fl_hist_init(&s->phase_hist[i]);
	for (int i = 0; i < s->nlive; i++) {
		fl_hist_init(&s->live[i]);
		s->live_sec[i] = -1;
	}
	for (int i = 0; i < s->nsec; i++)
		s->sec[i].p50_ns = s->sec[i].p99_ns = -1;
	*out = s;
	return 0;
}

void fl_slo_destroy(struct fl_slo *s)
{
	if (!s)
		return;
	free(s->by_sched);
	free(s->by_done);
	free(s->sec);
	free(s->live);
	free(s->live_sec);
	free(s);
}

void fl_slo_mark_faults_start(struct fl_slo *s, int64_t t_ns)
{
	if (s->faults_start == INT64_MAX)
		s->faults_start = t_ns;
}

void fl_slo_mark_recovery_start(struct fl_slo *s, int64_t t_ns)
{
	s->recovery_start = t_ns;
}

void fl_slo_mark_end(struct fl_slo *s, int64_t t_ns)
{
	s->end = t_ns;
}

/*
 * A request belongs to the phase its *scheduled* time falls in. Boundaries are decided before any
 * request scheduled after them can complete, so classifying at completion is exact.
 */
static enum fl_phase phase_of(const struct fl_slo *s, int64_t sched)
{
	if (sched >= s->recovery_start)
		return FL_PHASE_RECOVERY;
	if (sched >= s->faults_start)
		return FL_PHASE_FAULTS;
	return FL_PHASE_BASELINE;
}

static int slot_of(const struct fl_slo *s, int64_t t)
{
	int64_t i = (t - s->t0) / SLOT_NS;

	if (i < 0)
		return 0;
	return i >= s->nslots ? s->nslots - 1 : (int)i;
}

static void finalize_second(struct fl_slo *s, int ring)
{
	int sec = s->live_sec[ring];

	if (sec < 0)
		return;
	if (fl_hist_count(&s->live[ring]) > 0) {
		s->sec[sec].p50_ns = fl_hist_percentile(&s->live[ring], 50.0);
		s->sec[sec].p99_ns = fl_hist_percentile(&s->live[ring], 99.0);
	}
	s->sec[sec].final = true;
	fl_hist_reset(&s->live[ring]);
	s->live_sec[ring] = -1;
}

static struct fl_hist *live_hist(struct fl_slo *s, int sec)
{
	int ring = sec % s->nlive;

	if (s->live_sec[ring] != sec) {
		/* the ring is sized so this only finalises a second that is already decided */
		finalize_second(s, ring);
		s->live_sec[ring] = sec;
	}
	return &s->live[ring];
}

void fl_slo_record(struct fl_slo *s, int64_t sched_ns, int64_t done_ns, bool answered, int status,
		   enum fl_class cls_if_not)
{
	enum fl_class cls;
	enum fl_phase p = phase_of(s, sched_ns);
	int64_t latency = done_ns - sched_ns;
	int sec = (int)((sched_ns - s->t0) / FL_NS_PER_S);
	struct slot *a = &s->by_sched[slot_of(s, sched_ns)], *b = &s->by_done[slot_of(s, done_ns)];

	if (sec < 0)
		sec = 0;
	if (sec >= s->nsec)
		sec = s->nsec - 1;
	if (!answered)
		cls = cls_if_not;
	else if (!fl_status_in(&s->spec.good_status, status))
		cls = FL_C_BAD_STATUS;
	else if (latency > s->spec.good_latency_ns)
		cls = FL_C_TOO_SLOW;
	else
		cls = FL_C_GOOD;

	s->phase[p].requests++;
	s->phase[p].by_class[cls]++;
	a->valid++;
	b->valid++;
	s->sec[sec].requests++;
	if (cls == FL_C_GOOD) {
		a->good++;
		b->good++;
		s->sec[sec].good++;
	}
	if (sec + 1 > s->used_sec)
		s->used_sec = sec + 1;
	/* latency percentiles describe responses; failures are counted above, not timed */
	if (answered) {
		fl_hist_record(&s->phase_hist[p], latency);
		fl_hist_record(live_hist(s, sec), latency);
	}
}

const struct fl_counts *fl_slo_phase(const struct fl_slo *s, enum fl_phase p)
{
	return &s->phase[p];
}

const struct fl_hist *fl_slo_phase_hist(const struct fl_slo *s, enum fl_phase p)
{
	return &s->phase_hist[p];
}

static void sum_slots(const struct slot *v, int from, int to, uint64_t *valid, uint64_t *good)
{
	*valid = *good = 0;
	for (int i = from; i < to; i++) {
		*valid += v[i].valid;
		*good += v[i].good;
	}
}

void fl_slo_range(const struct fl_slo *s, int64_t from_ns, int64_t to_ns, uint64_t *valid, uint64_t *good)
{
	sum_slots(s->by_sched, slot_of(s, from_ns), slot_of(s, to_ns), valid, good);
}

double fl_slo_recent_ratio(const struct fl_slo *s, int64_t now_ns, int64_t window_ns, uint64_t *valid)
{
	uint64_t v, g;
	int to = slot_of(s, now_ns) + 1;
	int from = to - (int)(window_ns / SLOT_NS);

	sum_slots(s->by_done, from < 0 ? 0 : from, to, &v, &g);
	if (valid)
		*valid = v;
	return fl_ratio(g, v);
}

void fl_slo_tick(struct fl_slo *s, int64_t now_ns)
{
	/* seconds that began more than timeout + 1 s ago have every request decided */
	int64_t decided = (now_ns - s->t0 - s->timeout) / FL_NS_PER_S - 1;

	for (int r = 0; r < s->nlive; r++)
		if (s->live_sec[r] >= 0 && s->live_sec[r] <= decided)
			finalize_second(s, r);
}

void fl_slo_finish(struct fl_slo *s)
{
	for (int r = 0; r < s->nlive; r++)
		finalize_second(s, r);
}

const struct fl_second *fl_slo_seconds(const struct fl_slo *s, int *n)
{
	int64_t last = s->end == INT64_MAX ? s->used_sec : (s->end - s->t0 + FL_NS_PER_S - 1) / FL_NS_PER_S;

	*n = (int)(last > s->used_sec ? last : s->used_sec);
	if (*n > s->nsec)
		*n = s->nsec;
	return s->sec;
}

int64_t fl_slo_recovery_time(const struct fl_slo *s)
{
	int start, end, w = (int)(s->spec.window_ns / SLOT_NS);

	if (s->recovery_start == INT64_MAX)
		return -1;
	if (w < 1)
		w = 1;
	start = slot_of(s, s->recovery_start);
	/* the recovery window must lie inside the recovery phase */
	end = s->end == INT64_MAX ? s->nslots : slot_of(s, s->end);
	for (int i = start; i + w <= end; i++) {
		uint64_t v, g;

		sum_slots(s->by_sched, i, i + w, &v, &g);
		if (v > 0 && meets(fl_ratio(g, v), s->spec.survival_ratio))
			return (int64_t)(i - start) * SLOT_NS;
	}
	return -1;
}

void fl_slo_verdict(const struct fl_slo *s, struct fl_verdict *v)
{
	const struct fl_counts *b = &s->phase[FL_PHASE_BASELINE], *f = &s->phase[FL_PHASE_FAULTS];

	memset(v, 0, sizeof(*v));
	v->baseline_ratio = fl_ratio(fl_counts_good(b), b->requests);
	v->baseline_ok = b->requests > 0 && meets(v->baseline_ratio, s->spec.baseline_ratio);
	v->faults_ran = s->faults_start != INT64_MAX;
	v->fault_valid = f->requests;
	v->fault_good = fl_counts_good(f);
	v->survival_ratio = fl_ratio(v->fault_good, v->fault_valid);
	v->survival_ok = v->faults_ran && meets(v->survival_ratio, s->spec.survival_ratio);
	v->recovery_ns = fl_slo_recovery_time(s);
	v->recovery_judged = s->spec.recover_within_ns >= 0;
	v->recovery_ok = v->recovery_ns >= 0 &&
			 (!v->recovery_judged || v->recovery_ns <= s->spec.recover_within_ns);
	v->pass = v->survival_ok && (!v->recovery_judged || v->recovery_ok);
}
