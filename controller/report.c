/* Reports from a finished run: JSON through json-c, JUnit XML, a human summary and the verdict line. */
#include "report.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS(ns) ((double)(ns) / 1e6)
#define S(ns) ((double)(ns) / 1e9)

/* Phase windows relative to t0: baseline until the first apply, faults until the last revert. */
static void phase_bounds(const struct fl_run *r, enum fl_phase p, int64_t *from, int64_t *to)
{
	int64_t first = 0, last = 0, end = r->ended ? r->ended - r->t0 : 0;

	for (int i = 0; i < r->nfaults; i++) {
		const struct fl_fault_run *f = &r->faults[i];

		if (f->applied_at && (!first || f->applied_at - r->t0 < first))
			first = f->applied_at - r->t0;
		if (f->reverted_at && f->reverted_at - r->t0 > last)
			last = f->reverted_at - r->t0;
	}
	if (!first)
		first = last = end;
	switch (p) {
	case FL_PHASE_BASELINE: *from = 0; *to = first; break;
	case FL_PHASE_FAULTS: *from = first; *to = last; break;
	default: *from = last; *to = end; break;
	}
}

static const char *const phase_names[FL_PHASE_N] = {"baseline", "faults", "recovery"};

static json_object *jnum(double v)
{
	return json_object_new_double(v);
}

static json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : json_object_new_null();
}

static json_object *latency_obj(const struct fl_hist *h)
{
	json_object *o = json_object_new_object();

	if (!fl_hist_count(h)) {
		json_object_object_add(o, "p50", NULL);
		json_object_object_add(o, "p90", NULL);
		json_object_object_add(o, "p99", NULL);
		json_object_object_add(o, "max", NULL);
		return o;
	}
	json_object_object_add(o, "p50", jnum(MS(fl_hist_percentile(h, 50.0))));
	json_object_object_add(o, "p90", jnum(MS(fl_hist_percentile(h, 90.0))));
	json_object_object_add(o, "p99", jnum(MS(fl_hist_percentile(h, 99.0))));
	json_object_object_add(o, "max", jnum(MS(fl_hist_max(h))));
	return o;
}

static json_object *fault_obj(const struct fl_run *r, const struct fl_fault_run *fr)
{
	json_object *o = json_object_new_object(), *conf = json_object_new_object();
	json_object *obs = json_object_new_object();
	const struct fl_fault *f = fr->f;
	char buf[512];

	json_object_object_add(o, "name", jstr(f->name));
	json_object_object_add(o, "type", jstr(f->inj->type));
	json_object_object_add(o, "planned_apply_s", jnum(S(fr->planned_apply - r->t0)));
	json_object_object_add(o, "applied_at", fr->applied_at ? jnum(S(fr->applied_at - r->t0)) : NULL);
	json_object_object_add(o, "apply_error_ms",
			       fr->applied_at ? jnum(MS(fr->applied_at - fr->planned_apply)) : NULL);
	json_object_object_add(o, "planned_revert_s", jnum(S(fr->planned_revert - r->t0)));
	json_object_object_add(o, "reverted_at", fr->reverted_at ? jnum(S(fr->reverted_at - r->t0)) : NULL);
	json_object_object_add(o, "revert_error_ms",
			       fr->reverted_at ? jnum(MS(fr->reverted_at - fr->planned_revert)) : NULL);
	fl_format_duration(f->duration_ns, buf, sizeof(buf));
	json_object_object_add(conf, "at", jstr(fl_format_duration(f->at_ns, buf, sizeof(buf))));
	json_object_object_add(conf, "duration", jstr(fl_format_duration(f->duration_ns, buf, sizeof(buf))));
	for (int i = 0; f->inj->params[i].name; i++)
		if (f->values[i].set)
			json_object_object_add(conf, f->inj->params[i].name,
					       jstr(fl_value_format(&f->inj->params[i], &f->values[i], buf,
								    sizeof(buf))));
	json_object_object_add(o, "configured", conf);
	for (int i = 0; i < fr->obs.n; i++)
		json_object_object_add(obs, fr->obs.kv[i].key,
				       fr->obs.kv[i].is_num ? jnum(fr->obs.kv[i].num) : jstr(fr->obs.kv[i].text));
	json_object_object_add(o, "observed", obs);
	json_object_object_add(o, "error", fr->error[0] ? jstr(fr->error) : NULL);
	return o;
}

static bool active_in(const struct fl_run *r, const struct fl_fault_run *fr, int64_t from, int64_t to)
{
	int64_t a = fr->applied_at ? fr->applied_at - r->t0 : -1;
	int64_t v = fr->reverted_at ? fr->reverted_at - r->t0 : (r->ended ? r->ended - r->t0 : INT64_MAX);

	return a >= 0 && a < to && v > from;
}

static json_object *build_json(const struct fl_run *r)
{
	const struct fl_scenario *sc = r->sc;
	json_object *root = json_object_new_object(), *slo = json_object_new_object();
	json_object *o, *arr;
	char ts[64];
	struct tm tm;
	time_t t = (time_t)r->started_wall;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_object_add(root, "scenario", jstr(sc->name));
	json_object_object_add(root, "scenario_file", jstr(sc->file));
	json_object_object_add(root, "run_id", jstr(r->run_id));
	json_object_object_add(root, "started", jstr(ts));
	json_object_object_add(root, "verdict", jstr(fl_outcome_name(r->outcome)));
	json_object_object_add(root, "exit_code", json_object_new_int(r->exit_code));
	json_object_object_add(root, "reason", jstr(r->reason));

	o = json_object_new_object();
	json_object_object_add(o, "target", jnum(sc->slo.survival_ratio));
	json_object_object_add(o, "measured", r->slo && r->verdict.faults_ran ? jnum(r->verdict.survival_ratio) : NULL);
	json_object_object_add(o, "good", json_object_new_int64((int64_t)r->verdict.fault_good));
	json_object_object_add(o, "valid", json_object_new_int64((int64_t)r->verdict.fault_valid));
	json_object_object_add(slo, "survival_ratio", o);
	o = json_object_new_object();
	json_object_object_add(o, "target", jnum(sc->slo.baseline_ratio));
	json_object_object_add(o, "measured", r->slo ? jnum(r->verdict.baseline_ratio) : NULL);
	json_object_object_add(slo, "baseline_ratio", o);
	o = json_object_new_object();
	json_object_object_add(o, "limit", sc->slo.recover_within_ns >= 0 ? jnum(S(sc->slo.recover_within_ns)) : NULL);
	json_object_object_add(o, "measured",
			       r->slo && r->verdict.recovery_ns >= 0 ? jnum(S(r->verdict.recovery_ns)) : NULL);
	json_object_object_add(slo, "recovery_time_s", o);
	{
		char st[256];

		json_object_object_add(slo, "good_status",
				       jstr(fl_status_set_format(&sc->slo.good_status, st, sizeof(st))));
	}
	json_object_object_add(slo, "good_latency_ms", jnum(MS(sc->slo.good_latency_ns)));
	json_object_object_add(slo, "window_s", jnum(S(sc->slo.window_ns)));
	json_object_object_add(root, "slo", slo);

	arr = json_object_new_array();
	for (int p = 0; r->slo && p < FL_PHASE_N; p++) {
		const struct fl_counts *c = fl_slo_phase(r->slo, (enum fl_phase)p);
		json_object *ph = json_object_new_object(), *cls = json_object_new_object();
		int64_t from, to;

		phase_bounds(r, (enum fl_phase)p, &from, &to);
		json_object_object_add(ph, "name", jstr(phase_names[p]));
		json_object_object_add(ph, "start", jnum(S(from)));
		json_object_object_add(ph, "end", jnum(S(to)));
		json_object_object_add(ph, "requests", json_object_new_int64((int64_t)c->requests));
		json_object_object_add(ph, "good", json_object_new_int64((int64_t)fl_counts_good(c)));
		json_object_object_add(ph, "ratio", c->requests ? jnum(fl_ratio(fl_counts_good(c), c->requests)) : NULL);
		for (int k = 0; k < FL_C_N; k++)
			json_object_object_add(cls, fl_class_name((enum fl_class)k),
					       json_object_new_int64((int64_t)c->by_class[k]));
		json_object_object_add(ph, "outcomes", cls);
		json_object_object_add(ph, "latency_ms", latency_obj(fl_slo_phase_hist(r->slo, (enum fl_phase)p)));
		json_object_array_add(arr, ph);
	}
	json_object_object_add(root, "phases", arr);

	arr = json_object_new_array();
	for (int i = 0; i < r->nfaults; i++)
		json_object_array_add(arr, fault_obj(r, &r->faults[i]));
	json_object_object_add(root, "faults", arr);

	arr = json_object_new_array();
	if (r->slo) {
		int n;
		const struct fl_second *sec = fl_slo_seconds(r->slo, &n);

		for (int i = 0; i < n; i++) {
			json_object *e = json_object_new_object(), *act = json_object_new_array();

			json_object_object_add(e, "t", json_object_new_int(i));
			json_object_object_add(e, "requests", json_object_new_int64((int64_t)sec[i].requests));
			json_object_object_add(e, "good", json_object_new_int64((int64_t)sec[i].good));
			json_object_object_add(e, "p50_ms", sec[i].p50_ns >= 0 ? jnum(MS(sec[i].p50_ns)) : NULL);
			json_object_object_add(e, "p99_ms", sec[i].p99_ns >= 0 ? jnum(MS(sec[i].p99_ns)) : NULL);
			for (int k = 0; k < r->nfaults; k++)
				if (active_in(r, &r->faults[k], (int64_t)i * FL_NS_PER_S,
					      (int64_t)(i + 1) * FL_NS_PER_S))
					json_object_array_add(act, jstr(r->faults[k].f->name));
			json_object_object_add(e, "active_faults", act);
			json_object_array_add(arr, e);
		}
	}
	json_object_object_add(root, "timeline", arr);

	o = json_object_new_object();
	if (r->target) {
		json_object_object_add(o, "pid", json_object_new_int(r->target->info.pid));
		json_object_object_add(o, "launched", json_object_new_boolean(r->target->info.launched));
		json_object_object_add(o, "log", r->target->log_path[0] ? jstr(r->target->log_path) : NULL);
		json_object_object_add(o, "memory_limit", r->target->memory_limit ?
				       json_object_new_int64((int64_t)r->target->memory_limit) : NULL);
		json_object_object_add(o, "memory_limit_file", r->target->memory_limit ?
				       jstr(r->target->memory_limit_file) : NULL);
		json_object_object_add(o, "memory_swap_file", r->target->memory_swap_file[0] ?
				       jstr(r->target->memory_swap_file) : NULL);
		json_object_object_add(o, "memory_note", r->target->memory_note[0] ?
				       jstr(r->target->memory_note) : NULL);
	}
	json_object_object_add(o, "died", json_object_new_boolean(r->target_died));
	json_object_object_add(o, "death", r->target_died ? jstr(r->target_death) : NULL);
	json_object_object_add(o, "died_at", r->target_died ? jnum(S(r->target_died_at)) : NULL);
	json_object_object_add(root, "target", o);

	o = json_object_new_object();
	json_object_object_add(o, "rate", jnum(sc->load.rate));
	json_object_object_add(o, "connections", json_object_new_int(sc->load.connections));
	json_object_object_add(o, "sent_late", json_object_new_int64((int64_t)r->load_sent_late));
	json_object_object_add(o, "max_send_lag_ms", jnum(MS(r->load_max_lag_ns)));
	json_object_object_add(root, "load", o);
	json_object_object_add(root, "report_dir", jstr(r->report_dir));
	return root;
}

int fl_report_json(const struct fl_run *run, const char *path, struct fl_err *err)
{
	json_object *root = build_json(run);
	int rc = 0;

	if (json_object_to_file_ext(path, root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE) < 0)
		rc = fl_err_set(err, -EIO, "cannot write %s: %s", path, json_util_get_last_err());
	json_object_put(root);
	return rc;
}

static void xml_escape(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&apos;", f); break;
		default:
			/* XML 1.0 has no place for other control characters */
			if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
				fputc('?', f);
			else
				fputc(*s, f);
		}
	}
}

struct tcase {
	char name[192];
	char failure[1024]; /* "" = passed */
	bool error;         /* the drill itself could not judge this */
	bool skipped;
};

int fl_report_junit(const struct fl_run *r, const char *path, struct fl_err *err)
{
	const struct fl_scenario *sc = r->sc;
	struct tcase *tc = calloc((size_t)r->nfaults + 8, sizeof(*tc));
	int n = 0, failures = 0, errors = 0, skipped = 0;
	FILE *f;

	if (!tc)
		return fl_err_set(err, -ENOMEM, "out of memory");
	if (r->outcome == FL_OUT_UNRUNNABLE || r->outcome == FL_OUT_ABORTED || r->outcome == FL_OUT_INVALID) {
		snprintf(tc[n].name, sizeof(tc[n].name), "drill ran to completion");
		snprintf(tc[n].failure, sizeof(tc[n].failure), "%s: %.1000s", fl_outcome_name(r->outcome), r->reason);
		tc[n++].error = true;
	}
	if (r->slo) {
		snprintf(tc[n].name, sizeof(tc[n].name), "baseline ratio >= %g%%", sc->slo.baseline_ratio * 100);
		if (!r->verdict.baseline_ok)
			snprintf(tc[n].failure, sizeof(tc[n].failure),
				 "baseline ratio %.2f%% is below %g%% by %.2f points: the target was unhealthy before injection",
				 r->verdict.baseline_ratio * 100, sc->slo.baseline_ratio * 100,
				 (sc->slo.baseline_ratio - r->verdict.baseline_ratio) * 100);
		n++;
		snprintf(tc[n].name, sizeof(tc[n].name), "survival ratio >= %g%% during faults",
			 sc->slo.survival_ratio * 100);
		if (!r->verdict.faults_ran)
			tc[n].skipped = true;
		else if (!r->verdict.survival_ok)
			snprintf(tc[n].failure, sizeof(tc[n].failure),
				 "survival ratio %.2f%% (%llu good of %llu) is below %g%% by %.2f points",
				 r->verdict.survival_ratio * 100, (unsigned long long)r->verdict.fault_good,
				 (unsigned long long)r->verdict.fault_valid, sc->slo.survival_ratio * 100,
				 (sc->slo.survival_ratio - r->verdict.survival_ratio) * 100);
		n++;
		if (r->verdict.recovery_judged) {
			snprintf(tc[n].name, sizeof(tc[n].name), "recovery within %gs", S(sc->slo.recover_within_ns));
			if (!r->verdict.faults_ran)
				tc[n].skipped = true;
			else if (r->verdict.recovery_ns < 0)
				snprintf(tc[n].failure, sizeof(tc[n].failure),
					 "never back at %g%% within the %gs recovery phase", sc->slo.survival_ratio * 100,
					 S(sc->phases.recovery_ns));
			else if (!r->verdict.recovery_ok)
				snprintf(tc[n].failure, sizeof(tc[n].failure), "recovered in %.1fs, %.1fs over the %gs limit",
					 S(r->verdict.recovery_ns), S(r->verdict.recovery_ns - sc->slo.recover_within_ns),
					 S(sc->slo.recover_within_ns));
			n++;
		}
	}
	for (int i = 0; i < r->nfaults; i++) {
		const struct fl_fault_run *fr = &r->faults[i];

		snprintf(tc[n].name, sizeof(tc[n].name), "fault %s (%s) applied and reverted", fr->f->name,
			 fr->f->inj->type);
		if (fr->error[0]) {
			snprintf(tc[n].failure, sizeof(tc[n].failure), "%.1000s", fr->error);
			tc[n].error = true;
		} else if (!fr->applied_at) {
			tc[n].skipped = true;
		}
		n++;
	}
	for (int i = 0; i < n; i++) {
		skipped += tc[i].skipped;
		if (tc[i].failure[0])
			tc[i].error ? errors++ : failures++;
	}
	f = fopen(path, "w");
	if (!f) {
		free(tc);
		return fl_err_set(err, -errno, "cannot write %s: %s", path, strerror(errno));
	}
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	fprintf(f, "<testsuites name=\"faultline\" tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"%d\">\n", n,
		failures, errors, skipped);
	fprintf(f, "  <testsuite name=\"faultline.");
	xml_escape(f, sc->name);
	fprintf(f, "\" tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"%d\" time=\"%.3f\">\n", n, failures,
		errors, skipped, r->ended ? S(r->ended - r->t0) : 0.0);
	for (int i = 0; i < n; i++) {
		fprintf(f, "    <testcase classname=\"faultline.");
		xml_escape(f, sc->name);
		fprintf(f, "\" name=\"");
		xml_escape(f, tc[i].name);
		fprintf(f, "\"");
		if (!tc[i].failure[0] && !tc[i].skipped) {
			fprintf(f, "/>\n");
			continue;
		}
		fprintf(f, ">\n");
		if (tc[i].skipped) {
			fprintf(f, "      <skipped message=\"did not run\"/>\n");
		} else {
			fprintf(f, "      <%s message=\"", tc[i].error ? "error" : "failure");
			xml_escape(f, tc[i].failure);
			fprintf(f, "\">");
			xml_escape(f, tc[i].failure);
			fprintf(f, "</%s>\n", tc[i].error ? "error" : "failure");
		}
		fprintf(f, "    </testcase>\n");
	}
	fprintf(f, "  </testsuite>\n</testsuites>\n");
	free(tc);
	if (fclose(f) != 0)
		return fl_err_set(err, -errno, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

void fl_report_summary(const struct fl_run *r, FILE *out)
{
	const struct fl_scenario *sc = r->sc;

	if (!r->slo)
		return;
	fprintf(out, "\n%-9s %8s %8s %8s %9s %9s %9s  %s\n", "phase", "window", "requests", "good", "ratio",
		"p50 ms", "p99 ms", "bad: outcome=count");
	for (int p = 0; p < FL_PHASE_N; p++) {
		const struct fl_counts *c = fl_slo_phase(r->slo, (enum fl_phase)p);
		const struct fl_hist *h = fl_slo_phase_hist(r->slo, (enum fl_phase)p);
		int64_t from, to;
		char win[32], bad[256] = "";
		size_t off = 0;

		phase_bounds(r, (enum fl_phase)p, &from, &to);
		snprintf(win, sizeof(win), "%.1fs", S(to - from));
		for (int k = 1; k < FL_C_N; k++) {
			if (!c->by_class[k])
				continue;
			int w = snprintf(bad + off, sizeof(bad) - off, "%s%s=%llu", off ? " " : "",
					 fl_class_name((enum fl_class)k), (unsigned long long)c->by_class[k]);
			if (w > 0 && (size_t)w < sizeof(bad) - off)
				off += (size_t)w;
		}
		fprintf(out, "%-9s %8s %8llu %8llu %8.2f%% %9.1f %9.1f  %s\n", phase_names[p], win,
			(unsigned long long)c->requests, (unsigned long long)fl_counts_good(c),
			fl_ratio(fl_counts_good(c), c->requests) * 100,
			fl_hist_count(h) ? MS(fl_hist_percentile(h, 50.0)) : 0.0,
			fl_hist_count(h) ? MS(fl_hist_percentile(h, 99.0)) : 0.0, off ? bad : "-");
	}
	for (int i = 0; i < r->nfaults; i++) {
		const struct fl_fault_run *fr = &r->faults[i];
		const struct fl_fault *f = fr->f;
		char buf[256];

		fprintf(out, "\nfault %s (%s)", f->name, f->inj->type);
		if (fr->applied_at)
			fprintf(out, ": applied at %.3fs (%+.1f ms), reverted at %.3fs (%+.1f ms)\n",
				S(fr->applied_at - r->t0), MS(fr->applied_at - fr->planned_apply),
				fr->reverted_at ? S(fr->reverted_at - r->t0) : -1.0,
				fr->reverted_at ? MS(fr->reverted_at - fr->planned_revert) : 0.0);
		else
			fprintf(out, ": not applied\n");
		fprintf(out, "  configured:");
		fprintf(out, " duration=%s", fl_format_duration(f->duration_ns, buf, sizeof(buf)));
		for (int k = 0; f->inj->params[k].name; k++)
			if (f->values[k].set)
				fprintf(out, " %s=%s", f->inj->params[k].name,
					fl_value_format(&f->inj->params[k], &f->values[k], buf, sizeof(buf)));
		fprintf(out, "\n  observed:  ");
		for (int k = 0; k < fr->obs.n; k++)
			fprintf(out, " %s=%s", fr->obs.kv[k].key, fr->obs.kv[k].text);
		fprintf(out, "%s\n", fr->obs.n ? "" : " (nothing)");
		if (fr->error[0])
			fprintf(out, "  error: %s\n", fr->error);
	}
	if (r->target_died)
		fprintf(out, "\ntarget: %s at t=%.2fs\n", r->target_death, S(r->target_died_at));
	fprintf(out, "\nslo: survival %s%.2f%% (needs %g%%)", r->verdict.faults_ran ? "" : "n/a ",
		r->verdict.survival_ratio * 100, sc->slo.survival_ratio * 100);
	if (r->verdict.recovery_ns >= 0)
		fprintf(out, "; recovery %.1fs", S(r->verdict.recovery_ns));
	else
		fprintf(out, "; not recovered");
	if (r->verdict.recovery_judged)
		fprintf(out, " (limit %gs)", S(sc->slo.recover_within_ns));
	fprintf(out, "; baseline %.2f%% (needs %g%%)\n", r->verdict.baseline_ratio * 100,
		sc->slo.baseline_ratio * 100);
	if (r->load_sent_late)
		fprintf(out, "load: %llu requests sent over 1 ms late (max lag %.1f ms); latency is measured from "
			     "their scheduled time\n", (unsigned long long)r->load_sent_late, MS(r->load_max_lag_ns));
}

void fl_report_verdict_line(const struct fl_run *r, FILE *out)
{
	static const char *const word[] = {"PASS", "FAIL", "INVALID", "UNRUNNABLE", "ABORTED"};

	fprintf(out, "faultline: %s %s (exit %d): %s\n", word[r->outcome], r->sc->name, r->exit_code, r->reason);
}
