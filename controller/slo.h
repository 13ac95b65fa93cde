/* SLO arithmetic: classify every scheduled request, ratios per phase, per second and per window, recovery time, verdict. */
#ifndef FL_SLO_H
#define FL_SLO_H

#include <stdbool.h>
#include <stdint.h>

#include "hist.h"
#include "scenario.h"

enum fl_phase { FL_PHASE_BASELINE, FL_PHASE_FAULTS, FL_PHASE_RECOVERY, FL_PHASE_N };

/* Why a request was not good; exactly one per request. */
enum fl_class {
	FL_C_GOOD,
	FL_C_BAD_STATUS,    /* answered, status not in slo.good.status */
	FL_C_TOO_SLOW,      /* good status, latency above slo.good.latency (from the scheduled time) */
	FL_C_TIMEOUT,
	FL_C_REFUSED,
	FL_C_RESET,
	FL_C_CONN_ERROR,
	FL_C_BAD_RESPONSE,
	FL_C_NOT_SENT,      /* could not be sent before its timeout */
	FL_C_N,
};

const char *fl_class_name(enum fl_class c);

struct fl_counts {
	uint64_t requests;         /* valid: every scheduled request */
	uint64_t by_class[FL_C_N];
};

static inline uint64_t fl_counts_good(const struct fl_counts *c)
{
	return c->by_class[FL_C_GOOD];
}

struct fl_second {
	uint64_t requests, good;
	int64_t p50_ns, p99_ns;    /* of requests that got a response; -1 when none */
	bool final;
};

struct fl_slo;

/*
 * t0 is the load's start (request timetable origin), max_run the longest the run may last
 * (guardrails.max_duration), timeout the load's request timeout: together they bound memory.
 */
int fl_slo_create(const struct fl_slo_spec *spec, int64_t t0_ns, int64_t max_run_ns, int64_t timeout_ns,
		  struct fl_slo **out);
void fl_slo_destroy(struct fl_slo *s);

/* Phase boundaries as they happen: the first fault applied, the last fault reverted, the end. */
void fl_slo_mark_faults_start(struct fl_slo *s, int64_t t_ns);
void fl_slo_mark_recovery_start(struct fl_slo *s, int64_t t_ns);
void fl_slo_mark_end(struct fl_slo *s, int64_t t_ns);

/*
 * One scheduled request's fate. `status` is the HTTP status when answered (else 0); `answered`
 * says a full response arrived; `cls_if_not` is the failure class when not answered.
 */
void fl_slo_record(struct fl_slo *s, int64_t sched_ns, int64_t done_ns, bool answered, int status,
		   enum fl_class cls_if_not);

/* Counts of one phase (by scheduled time); and of any [from, to) by scheduled time. */
const struct fl_counts *fl_slo_phase(const struct fl_slo *s, enum fl_phase p);
const struct fl_hist *fl_slo_phase_hist(const struct fl_slo *s, enum fl_phase p);
void fl_slo_range(const struct fl_slo *s, int64_t from_ns, int64_t to_ns, uint64_t *valid, uint64_t *good);
/* good/valid of requests *completed* in (now - window, now]: what the guardrail watches. */
double fl_slo_recent_ratio(const struct fl_slo *s, int64_t now_ns, int64_t window_ns, uint64_t *valid);
/* Finalise per-second stats whose requests are all decided (call about once a second). */
void fl_slo_tick(struct fl_slo *s, int64_t now_ns);
/* Per-second timeline (index 0 = [t0, t0+1s)); call fl_slo_finish first for final values. */
const struct fl_second *fl_slo_seconds(const struct fl_slo *s, int *n);
void fl_slo_finish(struct fl_slo *s);

struct fl_verdict {
	bool baseline_ok;
	double baseline_ratio;
	bool faults_ran;           /* a fault window exists */
	double survival_ratio;     /* good/valid over the fault window */
	uint64_t fault_valid, fault_good;
	bool survival_ok;
	bool recovery_judged;      /* slo.recover_within was given */
	int64_t recovery_ns;       /* -1: never back within the recovery phase */
	bool recovery_ok;
	bool pass;                 /* survival_ok && (!recovery_judged || recovery_ok) */
};

/*
 * Recovery time: the smallest t >= 0 (100 ms steps) such that the window
 * [recovery_start + t, + slo.window) holds requests and its ratio is >= survival_ratio.
 */
int64_t fl_slo_recovery_time(const struct fl_slo *s);
void fl_slo_verdict(const struct fl_slo *s, struct fl_verdict *v);
double fl_ratio(uint64_t good, uint64_t valid); /* 1.0 when valid == 0 */

#endif
