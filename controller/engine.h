/* The drill engine: one event loop (epoll + timerfd + signalfd) from preflight to verdict. */
#ifndef FL_ENGINE_H
#define FL_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "exitcodes.h"
#include "scenario.h"
#include "slo.h"
#include "target.h"

struct fl_run_opts {
	const char *state_dir;     /* journal directory */
	const char *report_dir;    /* target.log and friends; NULL = a new dir under $TMPDIR */
	bool quiet;                /* only the verdict line */
	int progress_fd;           /* where progress goes (1); a TTY gets a live line */
};

/* Per fault: planned vs actual times (CLOCK_MONOTONIC, relative to t0 in reports). */
struct fl_fault_run {
	struct fl_fault *f;
	int64_t planned_apply, planned_revert;
	int64_t applied_at, reverted_at;     /* 0 = did not happen */
	bool active;
	int apply_rc, revert_rc;
	char error[512];                     /* apply/revert failure, "" if none */
	struct fl_observation obs;           /* last observation (final one after revert) */
};

enum fl_outcome { FL_OUT_PASS, FL_OUT_FAIL, FL_OUT_INVALID, FL_OUT_UNRUNNABLE, FL_OUT_ABORTED };

struct fl_run {
	const struct fl_scenario *sc;
	char run_id[64];
	int64_t started_wall;                /* unix seconds */
	int64_t t0;                          /* load start (CLOCK_MONOTONIC ns) */
	int64_t ended;                       /* load stop */
	enum fl_outcome outcome;
	int exit_code;
	char reason[1024];                   /* why unrunnable/aborted, or what breached */
	struct fl_verdict verdict;
	struct fl_slo *slo;                  /* NULL if the load never started */
	struct fl_fault_run *faults;
	int nfaults;
	struct fl_target *target;
	char report_dir[4096];
	bool target_died;
	char target_death[256];
	int64_t target_died_at;              /* relative to t0 */
	uint64_t load_sent_late;             /* requests sent more than 1 ms after their slot */
	int64_t load_max_lag_ns;
};

/* Run the drill. Fills run (free with fl_run_free) and returns the exit code. */
int fl_engine_run(const struct fl_scenario *sc, const struct fl_run_opts *opts, struct fl_run *run);
void fl_run_free(struct fl_run *run);
const char *fl_outcome_name(enum fl_outcome o);

#endif
