/* Human views of scenarios and the registry, all generated from the parameter tables. */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

#include "procfs.h"
#include "target.h"

struct event {
	int64_t t;
	int order; /* at equal t: reverts before applies, so a back-to-back pair never overlaps */
	const struct fl_fault *f;
	bool apply;
};

static int event_cmp(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->order - y->order;
}

static void print_params(const struct fl_fault *f, FILE *out)
{
	char buf[512];

	for (int i = 0; f->inj->params[i].name; i++) {
		const struct fl_value *v = &f->values[i];

		if (!v->set)
			continue;
		fprintf(out, "        %-14s %s%s\n", f->inj->params[i].name,
			fl_value_format(&f->inj->params[i], v, buf, sizeof(buf)),
			v->defaulted ? "  (default)" : "");
	}
}

static const char *target_how(const struct fl_target_spec *t, char *buf, size_t len)
{
	if (t->run.n) {
		size_t off = (size_t)snprintf(buf, len, "launch `");
		for (int i = 0; i < t->run.n && off < len; i++)
			off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? " " : "", t->run.v[i]);
		if (off < len)
			snprintf(buf + off, len - off, "` in its own process group and cgroup");
	} else if (t->pid) {
		snprintf(buf, len, "running process pid %d", (int)t->pid);
	} else if (t->pidfile) {
		snprintf(buf, len, "running process from pidfile %s", t->pidfile);
	} else if (t->cgroup) {
		snprintf(buf, len, "running processes of cgroup %s", t->cgroup);
	} else if (t->systemd_unit) {
		snprintf(buf, len, "running systemd unit %s", t->systemd_unit);
	} else {
		snprintf(buf, len, "only the url (no process: faults that need one fail preflight)");
	}
	return buf;
}

/* Exactly what a run would act on, as the host stands now. */
static void print_target_now(const struct fl_target_info *now, FILE *out)
{
	char comm[64];

	fl_proc_comm(now->pid, comm, sizeof(comm));
	fprintf(out, "           now: pid %d (%s)\n", (int)now->pid, comm);
	if (now->cgroup_v2[0])
		fprintf(out, "           cgroup v2     %s\n", now->cgroup_v2);
	if (now->memcg[0] && strcmp(now->memcg, now->cgroup_v2))
		fprintf(out, "           memory cgroup %s\n", now->memcg);
	fprintf(out, "           netns         %s\n", now->netns[0] ? now->netns : "faultline's own");
}

void fl_plan_print(const struct fl_scenario *sc, const struct fl_target_info *now, const char *why_not,
		   FILE *out)
{
	char a[64], b[64], c[64], st[256], how[1024];
	struct event *ev;
	int nev = 0;
	int64_t base = sc->phases.baseline_ns, tl = fl_scenario_timeline_ns(sc);

	fprintf(out, "scenario   %s (%s)\n", sc->name, sc->file);
	if (sc->description)
		fprintf(out, "           %s\n", sc->description);
	if (sc->incident.id)
		fprintf(out, "incident   %s%s%s\n", sc->incident.id, sc->incident.date ? " on " : "",
			sc->incident.date ? sc->incident.date : "");
	fprintf(out, "target     %s\n", target_how(&sc->target, how, sizeof(how)));
	if (sc->target.run.n)
		fprintf(out, "           ready when %s answers, within %s\n", sc->target.url,
			fl_format_duration(sc->target.ready_timeout_ns, a, sizeof(a)));
	if (sc->target.memory_limit) {
		const char *swap = fl_target_swap_warning();

		fprintf(out, "           memory limit %s on its own memory cgroup (memory.limit_in_bytes "
			"or memory.max; swap too: memory.memsw.limit_in_bytes or memory.swap.max 0), set "
			"before exec\n", fl_format_size(sc->target.memory_limit, a, sizeof(a)));
		if (swap)
			fprintf(out, "           WARNING: %s\n", swap);
	}
	if (now && now->pid > 0)
		print_target_now(now, out);
	else if (why_not)
		fprintf(out, "           now: REFUSED: %s (a run would exit 3 before injecting)\n", why_not);
	else if (sc->target.netns)
		fprintf(out, "           network namespace %s\n", sc->target.netns);
	fprintf(out, "load       %s %s at %g/s open-loop, %d connections, timeout %s\n", sc->load.method,
		sc->target.url, sc->load.rate, sc->load.connections,
		fl_format_duration(sc->load.timeout_ns, a, sizeof(a)));
	fprintf(out, "slo        good = status %s within %s\n",
		fl_status_set_format(&sc->slo.good_status, st, sizeof(st)),
		fl_format_duration(sc->slo.good_latency_ns, a, sizeof(a)));
	fprintf(out, "           survival >= %g%% over the fault window; baseline >= %g%%\n",
		sc->slo.survival_ratio * 100, sc->slo.baseline_ratio * 100);
	if (sc->slo.recover_within_ns >= 0)
		fprintf(out, "           back to %g%% within %s of the last revert (windows of %s)\n",
			sc->slo.survival_ratio * 100,
			fl_format_duration(sc->slo.recover_within_ns, a, sizeof(a)),
			fl_format_duration(sc->slo.window_ns, b, sizeof(b)));
	if (sc->guardrails.abort_below > 0)
		fprintf(out, "guardrails abort when a window stays below %g%% for %s; ", sc->guardrails.abort_below * 100,
			fl_format_duration(sc->guardrails.for_ns, a, sizeof(a)));
	else
		fprintf(out, "guardrails no ratio abort; ");
	fprintf(out, "max duration %s; guardian heartbeat %s\n",
		fl_format_duration(sc->guardrails.max_duration_ns, b, sizeof(b)),
		fl_format_duration(sc->guardrails.heartbeat_ns, c, sizeof(c)));
	if (sc->allow_host_wide)
		fprintf(out, "scope      allow_host_wide: true (host-wide faults permitted)\n");

	ev = calloc((size_t)sc->nfaults * 2 + 1, sizeof(*ev));
	if (!ev)
		return;
	for (int i = 0; i < sc->nfaults; i++) {
		ev[nev++] = (struct event){base + sc->faults[i].at_ns, 1, &sc->faults[i], true};
		ev[nev++] = (struct event){base + sc->faults[i].at_ns + sc->faults[i].duration_ns, 0,
					   &sc->faults[i], false};
	}
	qsort(ev, (size_t)nev, sizeof(*ev), event_cmp);

	fprintf(out, "\ntimeline (t=0 when the load starts; total %s)\n",
		fl_format_duration(fl_scenario_total_ns(sc), a, sizeof(a)));
	fprintf(out, "  %-9s start the guardian, %s, baseline phase (load only) for %s\n", "t=0s",
		sc->target.run.n ? "launch the target" : "find the target",
		fl_format_duration(base, b, sizeof(b)));
	fprintf(out, "  %-9s baseline must be >= %g%% good, else stop: exit 3, nothing injected\n", "",
		sc->slo.baseline_ratio * 100);
	for (int i = 0; i < nev; i++) {
		char t[32], d[512];

		snprintf(t, sizeof(t), "t=%s", fl_format_duration(ev[i].t, a, sizeof(a)));
		if (ev[i].apply) {
			ev[i].f->inj->describe(ev[i].f, d, sizeof(d));
			fprintf(out, "  %-9s apply  %s (%s) for %s: %s\n", t, ev[i].f->name,
				ev[i].f->inj->type, fl_format_duration(ev[i].f->duration_ns, b, sizeof(b)), d);
			print_params(ev[i].f, out);
		} else {
			fprintf(out, "  %-9s revert %s (%s)\n", t, ev[i].f->name, ev[i].f->inj->type);
		}
	}
	snprintf(how, sizeof(how), "t=%s", fl_format_duration(base + tl, a, sizeof(a)));
	fprintf(out, "  %-9s recovery phase (load only) for %s\n", how,
		fl_format_duration(sc->phases.recovery_ns, b, sizeof(b)));
	snprintf(how, sizeof(how), "t=%s", fl_format_duration(fl_scenario_total_ns(sc), a, sizeof(a)));
	fprintf(out, "  %-9s stop the load, revert anything still applied, verdict, reports%s\n", how,
		sc->target.run.n ? ", stop the target" : "");

	fprintf(out, "\npreflight (`faultline run` does these before anything is applied)\n");
	for (int i = 0; i < sc->nfaults; i++) {
		struct fl_fault *f = &sc->faults[i];
		struct fl_err e;

		fprintf(out, "  %-18s %s\n", f->name, f->inj->preflight ? f->inj->preflight : "(none)");
		if (!now)
			continue;
		/* check() has no side effect (the contract), so plan can say now what run would */
		fl_err_clear(&e);
		f->target = now;
		if (f->inj->check(f, &e))
			fprintf(out, "  %-18s now: FAILS: %s%s%s\n", "", e.msg, e.hint[0] ? "; " : "", e.hint);
		else
			fprintf(out, "  %-18s now: passes\n", "");
		f->target = NULL;
	}
	fprintf(out, "\nplan only: nothing was started, touched or injected.\n");
	free(ev);
}

static void param_row(const struct fl_param *p, FILE *out)
{
	fprintf(out, "    %-14s %-30s %s%s%s\n", p->name, fl_param_kind_doc(p->kind),
		p->required ? "required" : p->def ? "default " : "optional",
		p->def && !p->required ? p->def : "", "");
	if (p->min || p->max)
		fprintf(out, "    %-14s %-30s range %s .. %s\n", "", "", p->min ? p->min : "-",
			p->max ? p->max : "-");
	if (p->enums) {
		fprintf(out, "    %-14s %-30s one of:", "", "");
		for (int k = 0; p->enums[k]; k++)
			fprintf(out, " %s", p->enums[k]);
		fprintf(out, "\n");
	}
	fprintf(out, "    %-14s %s\n", "", p->help);
}

void fl_list_print(FILE *out)
{
	for (int i = 0; i < fl_injector_count; i++) {
		const struct fl_injector *inj = fl_injectors[i];
		struct fl_err e;
		int rc;

		fl_err_clear(&e);
		rc = inj->probe ? inj->probe(&e) : 0;
		fprintf(out, "%s\n  %s\n", inj->type, inj->summary);
		if (rc)
			fprintf(out, "  this host: UNAVAILABLE: %s%s%s\n", e.msg, e.hint[0] ? "; " : "", e.hint);
		else if (e.msg[0]) /* available, with a limit worth knowing before a drill */
			fprintf(out, "  this host: available; note: %s\n", e.msg);
		else
			fprintf(out, "  this host: available\n");
		fprintf(out, "  parameters (besides name, type, at, duration):\n");
		for (const struct fl_param *p = inj->params; p->name; p++)
			param_row(p, out);
		if (!inj->params[0].name)
			fprintf(out, "    (none)\n");
		fprintf(out, "\n");
	}
}

static void md_escape(const char *s, FILE *out)
{
	for (; *s; s++) {
		if (*s == '|')
			fputs("\\|", out);
		else
			fputc(*s, out);
	}
}

static void md_table(const struct fl_param *params, const char *prefix, FILE *out)
{
	for (const struct fl_param *p = params; p && p->name; p++) {
		fprintf(out, "| `%s%s` | %s", prefix, p->name, fl_param_kind_doc(p->kind));
		if (p->enums) {
			for (int k = 0; p->enums[k]; k++)
				fprintf(out, "%s`%s`", k ? ", " : " ", p->enums[k]);
		}
		fprintf(out, " | %s | ", p->required ? "required" : p->def ? p->def : "-");
		if (p->min || p->max)
			fprintf(out, "%s .. %s", p->min ? p->min : "", p->max ? p->max : "");
		fprintf(out, " | ");
		md_escape(p->help, out);
		fprintf(out, " |\n");
		if (p->kind == FL_P_OBJECT && p->sub) {
			char sub[128];

			snprintf(sub, sizeof(sub), "%s%s.", prefix, p->name);
			md_table(p->sub, sub, out);
		}
	}
}

void fl_reference_markdown(FILE *out)
{
	fprintf(out, "# Scenario and injector reference\n\n");
	fprintf(out, "Generated by `faultline list --markdown` from the parameter tables the validator "
		     "uses; a test fails when this file and the tables disagree.\n\n");
	fprintf(out, "## Scenario keys (version 1)\n\n");
	fprintf(out, "| key | kind | default | range | meaning |\n| --- | --- | --- | --- | --- |\n");
	md_table(fl_scenario_params, "", out);
	md_table(fl_scenario_faults_param, "", out);
	fprintf(out, "\n## Keys every fault has\n\n");
	fprintf(out, "| key | kind | default | range | meaning |\n| --- | --- | --- | --- | --- |\n");
	md_table(fl_fault_common_params, "", out);
	fprintf(out, "\n## Injectors\n");
	for (int i = 0; i < fl_injector_count; i++) {
		const struct fl_injector *inj = fl_injectors[i];

		fprintf(out, "\n### `%s`\n\n%s.\n\nPreflight: %s.\n\n", inj->type, inj->summary,
			inj->preflight ? inj->preflight : "none");
		if (!inj->params[0].name) {
			fprintf(out, "No parameters besides the common ones.\n");
			continue;
		}
		fprintf(out, "| parameter | kind | default | range | meaning |\n| --- | --- | --- | --- | --- |\n");
		md_table(inj->params, "", out);
	}
}
