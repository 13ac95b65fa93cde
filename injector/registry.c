/* The registry: the X-macro list in injector.h becomes one array; lookups and observation helpers. */
#include "injector.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FL_INJECTOR_PTR(id) &fl_inj_##id,
const struct fl_injector *const fl_injectors[] = {FL_INJECTORS(FL_INJECTOR_PTR) NULL};
#undef FL_INJECTOR_PTR

const int fl_injector_count = (int)(sizeof(fl_injectors) / sizeof(fl_injectors[0])) - 1;

const struct fl_injector *fl_injector_find(const char *type)
{
	for (int i = 0; i < fl_injector_count; i++)
		if (!strcmp(fl_injectors[i]->type, type))
			return fl_injectors[i];
	return NULL;
}

int fl_param_index(const struct fl_param *params, const char *name)
{
	for (int i = 0; params && params[i].name; i++)
		if (!strcmp(params[i].name, name))
			return i;
	return -1;
}

const struct fl_value *fl_fault_value(const struct fl_fault *f, const char *name)
{
	static const struct fl_value unset;
	int i = fl_param_index(f->inj->params, name);

	return i < 0 || !f->values ? &unset : &f->values[i];
}

static void obs_put(struct fl_observation *o, const char *key, bool is_num, double num,
		    const char *fmt, va_list ap)
{
	int i;

	for (i = 0; i < o->n; i++)
		if (!strcmp(o->kv[i].key, key))
			break;
	if (i == o->n) {
		if (o->n == FL_OBS_MAX)
			return;
		o->n++;
	}
	snprintf(o->kv[i].key, sizeof(o->kv[i].key), "%s", key);
	vsnprintf(o->kv[i].text, sizeof(o->kv[i].text), fmt, ap);
	o->kv[i].num = num;
	o->kv[i].is_num = is_num;
}

void fl_obs_num(struct fl_observation *o, const char *key, double num, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	obs_put(o, key, true, num, fmt, ap);
	va_end(ap);
}

void fl_obs_text(struct fl_observation *o, const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	obs_put(o, key, false, 0, fmt, ap);
	va_end(ap);
}

static struct {
	fl_probe_fn fn;
	int rc;
	struct fl_err err;
} probed[32];

int fl_probe_once(fl_probe_fn probe, struct fl_err *err)
{
	int i;

	if (!probe)
		return 0;
	for (i = 0; i < 32 && probed[i].fn && probed[i].fn != probe; i++)
		;
	if (i == 32)
		return probe(err); /* more mechanisms than slots: just ask again */
	if (!probed[i].fn) {
		fl_err_clear(&probed[i].err);
		probed[i].rc = probe(&probed[i].err);
		probed[i].fn = probe;
	}
	if (err && (probed[i].rc || probed[i].err.msg[0]))
		*err = probed[i].err;
	return probed[i].rc;
}

bool fl_probe_done(fl_probe_fn probe, int *rc)
{
	for (int i = 0; i < 32 && probed[i].fn; i++)
		if (probed[i].fn == probe) {
			*rc = probed[i].rc;
			return true;
		}
	*rc = 0;
	return !probe;
}

int fl_probe_any(const char *const *names, const fl_probe_fn *probes, int n, struct fl_err *err)
{
	char ok[256] = "", bad[FL_ERR_MSG] = "";
	size_t ook = 0, obad = 0;

	for (int i = 0; i < n; i++) {
		struct fl_err e;
		int w;

		fl_err_clear(&e);
		if (!fl_probe_once(probes[i], &e)) {
			w = snprintf(ok + ook, sizeof(ok) - ook, "%s%s", ook ? ", " : "", names[i]);
			if (w > 0 && (size_t)w < sizeof(ok) - ook)
				ook += (size_t)w;
			continue;
		}
		w = snprintf(bad + obad, sizeof(bad) - obad, "%s%s unavailable: %s%s%s", obad ? "; " : "", names[i],
			     e.msg, e.hint[0] ? " — " : "", e.hint);
		if (w > 0 && (size_t)w < sizeof(bad) - obad)
			obad += (size_t)w;
	}
	if (!ook)
		return fl_err_set(err, -EOPNOTSUPP, "%s", bad);
	if (obad)
		fl_err_set(err, 0, "runs here with: %s; %s", ok, bad);
	else if (n > 1)
		fl_err_set(err, 0, "runs here with: %s", ok);
	return 0;
}

int fl_choose(const char *type, const char *const *names, int named,
	      int (*try)(int i, void *arg, struct fl_err *err), void *arg, struct fl_err *err)
{
	char why[FL_ERR_MSG] = "";
	size_t off = 0;
	int last = -EOPNOTSUPP, tried = 0;
	struct fl_err only;

	fl_err_clear(&only);
	for (int i = named ? named : 1; names[i]; i++) {
		struct fl_err e;
		int rc, w;

		fl_err_clear(&e);
		rc = try(i, arg, &e);
		if (rc == 0)
			return i;
		if (rc > 0)
			continue;
		last = rc;
		only = e;
		tried++;
		if (named)
			break;
		/* every candidate's reason, without hints: several must fit one message */
		w = snprintf(why + off, sizeof(why) - off, "%s%s: %s", off ? "; " : "", names[i], e.msg);
		if (w > 0 && (size_t)w < sizeof(why) - off)
			off += (size_t)w;
	}
	/* one candidate: its own words and hint; several: every one's reason */
	if (tried == 1) {
		if (err)
			*err = only;
		return last;
	}
	return fl_err_set(err, last, "no backend for %s can run this fault here (%s)", type, why);
}
