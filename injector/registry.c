/* The registry: the X-macro list in injector.h becomes one array; lookups and observation helpers. */
#include "injector.h"

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
