/* Scenario files (version 1): libyaml -> typed struct fl_scenario, every error with file:line:col. */
#ifndef FL_SCENARIO_H
#define FL_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "injector.h"
#include "units.h"

/* One diagnostic: FILE:LINE:COL: error: MSG, then "  hint: HINT". Lines and columns are 1-based. */
struct fl_diag {
	char *file;
	int line, col;
	char *msg;
	char *hint; /* may be NULL */
};

struct fl_diags {
	struct fl_diag *v;
	int n, cap;
};

void fl_diags_add(struct fl_diags *d, const char *file, int line, int col, const char *hint,
		  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void fl_diags_print(const struct fl_diags *d, FILE *out);
void fl_diags_free(struct fl_diags *d);

struct fl_kv {
	char *key, *value;
};

struct fl_target_spec {
	char *url;
	struct fl_strlist run;     /* argv; empty = not launched by faultline */
	struct fl_kv *env;
	int nenv;
	char *cwd;
	int64_t ready_timeout_ns;
	pid_t pid;                 /* 0 = unset */
	char *pidfile;
	char *cgroup;
	char *systemd_unit;
	char *netns;
	int64_t stop_grace_ns;
	uint64_t memory_limit;     /* bytes, 0 = none set (launched targets only) */
};

struct fl_load_spec {
	double rate;               /* requests per second */
	int connections;
	int64_t timeout_ns;
	char *method;              /* GET, POST, ... */
	struct fl_kv *headers;
	int nheaders;
	char *body;
};

struct fl_slo_spec {
	struct fl_status_set good_status;
	int64_t good_latency_ns;
	double survival_ratio;
	double baseline_ratio;
	int64_t recover_within_ns;
	int64_t window_ns;
};

struct fl_guardrails {
	double abort_below;        /* 0 = no ratio guardrail */
	int64_t for_ns;
	int64_t max_duration_ns;
	int64_t heartbeat_ns;
};

struct fl_scenario {
	char *file;
	int version;
	char *name;
	char *description;
	struct {
		char *id, *date, *summary;
	} incident;
	struct fl_target_spec target;
	struct fl_load_spec load;
	struct fl_slo_spec slo;
	struct {
		int64_t baseline_ns, recovery_ns;
	} phases;
	struct fl_fault *faults;
	int nfaults;
	struct fl_guardrails guardrails;
	bool allow_host_wide;
	void *priv;                /* the typed values the fields above borrow from */
};

/* The scenario's own sections, as parameter tables (for validation and the docs). */
extern const struct fl_param fl_scenario_params[];
extern const struct fl_param fl_scenario_faults_param[];
extern const struct fl_param fl_fault_common_params[];
/* Human name of a parameter kind, with its syntax ("duration (250ms, 1.5s, 2m)"). */
const char *fl_param_kind_doc(enum fl_param_kind kind);

/*
 * Parse and validate. Returns the scenario, or NULL with every error found in
 * diags (each with file:line:col). A scenario is returned only when diags has
 * no error. `sets` are KEY=VALUE overrides (dotted paths, e.g. load.rate=500/s,
 * faults.db.delay=1s) applied before validation; their errors name "--set".
 */
struct fl_scenario *fl_scenario_load(const char *path, char *const *sets, int nsets,
				     struct fl_diags *diags);
struct fl_scenario *fl_scenario_parse(const char *file, const char *buf, size_t len,
				      char *const *sets, int nsets, struct fl_diags *diags);
void fl_scenario_free(struct fl_scenario *sc);

/* Total planned run length: baseline + fault timeline + recovery. */
int64_t fl_scenario_timeline_ns(const struct fl_scenario *sc);
int64_t fl_scenario_total_ns(const struct fl_scenario *sc);

/* A value in scenario syntax ("250ms", "95%", "[a, b]") for plan, list and reports. */
char *fl_value_format(const struct fl_param *p, const struct fl_value *v, char *buf, size_t len);

/* Self-check of a parameter table: defaults and bounds parse, defaults in range, enums present. */
int fl_param_table_check(const struct fl_param *params, struct fl_err *err);

/* Free the values of one parameter table (used by the scenario and by tests). */
void fl_values_free(const struct fl_param *params, struct fl_value *values);

#endif
