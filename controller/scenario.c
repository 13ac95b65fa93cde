/* Scenario version 1: YAML tree -> typed struct fl_scenario through declarative tables, reporting every error with file:line:col. */
#include "scenario.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "yamltree.h"

#define FL_MAX_SCENARIO_BYTES (4 << 20)

/* ---- diagnostics ------------------------------------------------------------------------- */

void fl_diags_add(struct fl_diags *d, const char *file, int line, int col, const char *hint,
		  const char *fmt, ...)
{
	struct fl_diag *g;
	va_list ap;
	char *msg = NULL;

	if (!d)
		return;
	if (d->n == d->cap) {
		int ncap = d->cap ? 2 * d->cap : 8;
		struct fl_diag *v = realloc(d->v, (size_t)ncap * sizeof(*v));

		if (!v)
			return;
		d->v = v;
		d->cap = ncap;
	}
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	g = &d->v[d->n];
	g->file = strdup(file ? file : "?");
	g->line = line;
	g->col = col;
	g->msg = msg;
	g->hint = hint && hint[0] ? strdup(hint) : NULL;
	if (!g->file || !g->msg) {
		free(g->file);
		free(g->msg);
		free(g->hint);
		return;
	}
	d->n++;
}

static int diag_cmp(const void *a, const void *b)
{
	const struct fl_diag *x = *(const struct fl_diag *const *)a;
	const struct fl_diag *y = *(const struct fl_diag *const *)b;
	int c = strcmp(x->file, y->file);

	if (c)
		return c;
	if (x->line != y->line)
		return x->line - y->line;
	if (x->col != y->col)
		return x->col - y->col;
	return x < y ? -1 : x > y;
}

void fl_diags_print(const struct fl_diags *d, FILE *out)
{
	const struct fl_diag **order;

	if (!d || !d->n)
		return;
	order = calloc((size_t)d->n, sizeof(*order));
	if (!order)
		return;
	for (int i = 0; i < d->n; i++)
		order[i] = &d->v[i];
	qsort(order, (size_t)d->n, sizeof(*order), diag_cmp);
	for (int i = 0; i < d->n; i++) {
		fprintf(out, "%s:%d:%d: error: %s\n", order[i]->file, order[i]->line, order[i]->col,
			order[i]->msg);
		if (order[i]->hint)
			fprintf(out, "  hint: %s\n", order[i]->hint);
	}
	free(order);
}

void fl_diags_free(struct fl_diags *d)
{
	if (!d)
		return;
	for (int i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
		free(d->v[i].hint);
	}
	free(d->v);
	memset(d, 0, sizeof(*d));
}

/* ---- the scenario's own tables -------------------------------------------------------------- */

static const char *const http_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};

static const struct fl_param incident_params[] = {
	{.name = "id", .kind = FL_P_STRING, .help = "the incident's identifier, e.g. INC-2041"},
	{.name = "date", .kind = FL_P_STRING,
	 .help = "when it happened, YYYY-MM-DD (known only from a digest without dates: the day the entry joined the library, said in a comment)"},
	{.name = "summary", .kind = FL_P_STRING, .help = "what happened, in a sentence"},
	{0},
};

static const struct fl_param target_params[] = {
	{.name = "url", .kind = FL_P_STRING, .required = true,
	 .help = "what the load hits: http://HOST:PORT/PATH (HOST an IP address or localhost)"},
	{.name = "run", .kind = FL_P_STRLIST,
	 .help = "argv of a service faultline launches in its own process group and cgroup"},
	{.name = "env", .kind = FL_P_STRMAP, .help = "extra environment for `run`"},
	{.name = "cwd", .kind = FL_P_STRING, .help = "working directory for `run`"},
	{.name = "ready_timeout", .kind = FL_P_DURATION, .def = "10s", .min = "100ms", .max = "10m",
	 .help = "how long a launched target may take until `url` answers"},
	{.name = "stop_grace", .kind = FL_P_DURATION, .def = "5s", .min = "0s", .max = "5m",
	 .help = "SIGTERM to SIGKILL grace period when stopping a launched target"},
	{.name = "pid", .kind = FL_P_INT, .min = "1", .max = "4194304",
	 .help = "an already running target, by pid"},
	{.name = "pidfile", .kind = FL_P_STRING, .help = "an already running target, by pidfile"},
	{.name = "cgroup", .kind = FL_P_STRING,
	 .help = "an already running target, by cgroup path (absolute, or relative to the cgroup mount)"},
	{.name = "systemd_unit", .kind = FL_P_STRING,
	 .help = "an already running target, by systemd unit (its cgroup is resolved)"},
	{.name = "netns", .kind = FL_P_STRING,
	 .help = "the target's network namespace: a name under /run/netns or a path"},
	{.name = "memory_limit", .kind = FL_P_SIZE, .min = "4MiB", .max = "1TiB",
	 .help = "launched targets only: the memory limit of the cgroup faultline gives `run` (v1 "
		 "memory.limit_in_bytes and memory.memsw.limit_in_bytes, v2 memory.max and memory.swap.max 0: "
		 "no swapping out of it), set before exec, gone with the cgroup; a found target keeps its own limit"},
	{0},
};

static const struct fl_param load_params[] = {
	{.name = "rate", .kind = FL_P_RATE, .required = true, .min = "0.1/s", .max = "1000000/s",
	 .help = "open-loop request rate; requests are scheduled on a fixed timetable"},
	{.name = "connections", .kind = FL_P_INT, .def = "32", .min = "1", .max = "10000",
	 .help = "keep-alive connection pool size"},
	{.name = "timeout", .kind = FL_P_DURATION, .def = "2s", .min = "1ms", .max = "10m",
	 .help = "per-request timeout, from the scheduled send time"},
	{.name = "method", .kind = FL_P_ENUM, .def = "GET", .enums = http_methods,
	 .help = "HTTP method"},
	{.name = "headers", .kind = FL_P_STRMAP, .help = "extra request headers"},
	{.name = "body", .kind = FL_P_STRING, .help = "request body (Content-Length is set)"},
	{0},
};

static const struct fl_param good_params[] = {
	{.name = "status", .kind = FL_P_STRING, .def = "200-399",
	 .help = "HTTP statuses that count as good: 200, 200-399, 2xx, lists"},
	{.name = "latency", .kind = FL_P_DURATION, .required = true, .min = "1ms", .max = "10m",
	 .help = "a good response completes within this, measured from its scheduled send time"},
	{0},
};

static const struct fl_param slo_params[] = {
	{.name = "good", .kind = FL_P_OBJECT, .required = true, .sub = good_params,
	 .help = "what a good request is"},
	{.name = "survival_ratio", .kind = FL_P_RATIO, .required = true,
	 .help = "good/valid over the fault window must be at least this"},
	{.name = "baseline_ratio", .kind = FL_P_RATIO,
	 .help = "the baseline phase must reach this before any fault (default: survival_ratio)"},
	{.name = "recover_within", .kind = FL_P_DURATION, .min = "0s", .max = "1h",
	 .help = "after the last revert, a window must be back at survival_ratio within this"},
	{.name = "window", .kind = FL_P_DURATION, .def = "1s", .min = "100ms", .max = "10m",
	 .help = "window for the recovery and guardrail ratios"},
	{0},
};

static const struct fl_param phases_params[] = {
	{.name = "baseline", .kind = FL_P_DURATION, .def = "10s", .min = "100ms", .max = "1h",
	 .help = "load with no fault; the target must meet baseline_ratio"},
	{.name = "recovery", .kind = FL_P_DURATION, .def = "15s", .min = "0s", .max = "1h",
	 .help = "load after the last fault is reverted"},
	{0},
};

static const struct fl_param guardrail_params[] = {
	{.name = "abort_below", .kind = FL_P_RATIO, .def = "0%",
	 .help = "abort (and revert) when the windowed ratio stays below this for `for`"},
	{.name = "for", .kind = FL_P_DURATION, .def = "5s", .min = "100ms", .max = "1h",
	 .help = "how long the ratio may stay below abort_below"},
	{.name = "max_duration", .kind = FL_P_DURATION, .min = "1s", .max = "24h",
	 .help = "hard limit on the whole run (default: the planned length + 1m)"},
	{.name = "heartbeat", .kind = FL_P_DURATION, .def = "5s", .min = "100ms", .max = "10m",
	 .help = "the guardian reverts everything if the controller is silent this long"},
	{0},
};

const struct fl_param fl_scenario_params[] = {
	{.name = "version", .kind = FL_P_INT, .required = true, .min = "1", .max = "1",
	 .help = "scenario format version; this faultline reads 1"},
	{.name = "name", .kind = FL_P_STRING, .required = true,
	 .help = "short name: letters, digits, '-', '_' and '.'"},
	{.name = "description", .kind = FL_P_STRING, .help = "what the drill is about"},
	{.name = "incident", .kind = FL_P_OBJECT, .sub = incident_params,
	 .help = "the past incident this reproduces"},
	{.name = "target", .kind = FL_P_OBJECT, .required = true, .sub = target_params,
	 .help = "the service under test"},
	{.name = "load", .kind = FL_P_OBJECT, .required = true, .sub = load_params,
	 .help = "the steady open-loop load kept on the target throughout"},
	{.name = "slo", .kind = FL_P_OBJECT, .required = true, .sub = slo_params,
	 .help = "what surviving means"},
	{.name = "phases", .kind = FL_P_OBJECT, .sub = phases_params,
	 .help = "load-only phases before and after the faults"},
	{.name = "guardrails", .kind = FL_P_OBJECT, .sub = guardrail_params,
	 .help = "when to abort and revert early"},
	{.name = "allow_host_wide", .kind = FL_P_BOOL, .def = "false",
	 .help = "allow host-wide scope (root cgroup, pid 1, a host interface without match)"},
	{0},
};

/* Index constants for the tables above; a unit test checks they match the names. */
enum { SC_VERSION, SC_NAME, SC_DESCRIPTION, SC_INCIDENT, SC_TARGET, SC_LOAD, SC_SLO, SC_PHASES,
       SC_GUARDRAILS, SC_ALLOW_HOST_WIDE };

/* `faults` is a list of injector-typed mappings, validated by parse_faults, not by the table. */
const struct fl_param fl_scenario_faults_param[] = {
	{.name = "faults", .kind = FL_P_STRLIST, .required = true,
	 .help = "the fault timeline: a list of faults, each with name, type, at, duration and its "
		 "injector's parameters"},
	{0},
};

const struct fl_param fl_fault_common_params[] = {
	{.name = "name", .kind = FL_P_STRING, .required = true,
	 .help = "unique within the scenario: letters, digits, '-' and '_'"},
	{.name = "type", .kind = FL_P_STRING, .required = true, .help = "the injector"},
	{.name = "at", .kind = FL_P_DURATION, .def = "0s", .min = "0s", .max = "24h",
	 .help = "offset from the start of the fault timeline"},
	{.name = "duration", .kind = FL_P_DURATION, .required = true, .min = "1ms", .max = "24h",
	 .help = "how long the fault stays applied"},
	{0},
};

const char *fl_param_kind_doc(enum fl_param_kind kind)
{
	switch (kind) {
	case FL_P_DURATION: return "duration (250ms, 1.5s, 2m)";
	case FL_P_SIZE: return "size (512KiB, 64MiB, 1GB)";
	case FL_P_RATE: return "rate (200/s, 12000/m)";
	case FL_P_BYTERATE: return "byte rate (20MiB/s, 10Mbit/s)";
	case FL_P_RATIO: return "ratio (95%, 0.95)";
	case FL_P_INT: return "integer";
	case FL_P_BOOL: return "boolean (true, false)";
	case FL_P_STRING: return "string";
	case FL_P_ENUM: return "one of";
	case FL_P_ERRNO: return "errno name (ECONNREFUSED)";
	case FL_P_SIGNAL: return "signal (SIGKILL, KILL, 9)";
	case FL_P_STRLIST: return "list of strings";
	case FL_P_CIDR: return "address or CIDR (10.0.0.1, 10.0.0.0/8, ::1)";
	case FL_P_OBJECT: return "mapping";
	case FL_P_STRMAP: return "mapping of strings";
	}
	return "?";
}

/* ---- helpers -------------------------------------------------------------------------------- */

struct ctx {
	const char *file;
	struct fl_diags *d;
};

static void err_at(struct ctx *c, const struct fl_ynode *n, const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void err_at(struct ctx *c, const struct fl_ynode *n, const char *hint, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	fl_diags_add(c->d, n ? n->file : c->file, n ? n->line : 1, n ? n->col : 1, hint, "%s",
		     msg ? msg : "out of memory");
	free(msg);
}

/* fl_edit_distance, clamped: SIZE_MAX (absurdly long words) must stay "far", not wrap negative. */
static int distance(const char *a, const char *b)
{
	size_t d = fl_edit_distance(a, b);

	return d > 99 ? 99 : (int)d;
}

/* Nearest of up to two candidate lists, or NULL when nothing is close. */
static const char *nearest(const char *word, const struct fl_param *a, const struct fl_param *b,
			   const char *const *words)
{
	const char *best = NULL;
	int bestd = 99;
	int limit = strlen(word) <= 4 ? 1 : strlen(word) <= 8 ? 2 : 3;


	for (const struct fl_param *p = a; p && p->name; p++) {
		int dd = distance(word, p->name);
		if (dd < bestd) {
			bestd = dd;
			best = p->name;
		}
	}
	for (const struct fl_param *p = b; p && p->name; p++) {
		int dd = distance(word, p->name);
		if (dd < bestd) {
			bestd = dd;
			best = p->name;
		}
	}
	for (int i = 0; words && words[i]; i++) {
		int dd = distance(word, words[i]);
		if (dd < bestd) {
			bestd = dd;
			best = words[i];
		}
	}
	return bestd <= limit ? best : NULL;
}

static void join_names(char *buf, size_t len, const struct fl_param *a, const struct fl_param *b)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int pass = 0; pass < 2; pass++) {
		for (const struct fl_param *p = pass ? b : a; p && p->name; p++) {
			int w = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", p->name);
			if (w < 0 || (size_t)w >= len - off)
				return;
			off += (size_t)w;
		}
	}
}

static const char *scalar_of(struct ctx *c, const struct fl_ynode *n, const char *path,
			     const char *what)
{
	if (n->type != FL_Y_SCALAR || fl_ynode_is_null(n)) {
		err_at(c, n, NULL, "%s: expected %s, got %s", path, what, fl_ynode_kind(n));
		return NULL;
	}
	return n->value;
}

static int parse_cidr(const char *s, struct fl_cidr *out, struct fl_err *err)
{
	char addr[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	int maxp;

	if (alen == 0 || alen >= sizeof(addr))
		goto bad;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		maxp = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		maxp = 128;
	} else {
		goto bad;
	}
	out->prefix = maxp;
	if (slash) {
		char *end;
		long p;

		errno = 0;
		p = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || errno || p < 0 || p > maxp)
			return fl_err_set(err, -EINVAL, "bad prefix length in '%s' (0..%d)", s, maxp);
		out->prefix = (int)p;
	}
	return 0;
bad:
	fl_err_set(err, -EINVAL, "'%s' is not an IP address or CIDR", s);
	fl_err_hint(err, "write 10.0.0.5, 10.0.0.0/8, ::1 or fd00::/8");
	return -EINVAL;
}

/* Parse a table's bound/default text; the tables are checked by a unit test, so failure is a bug. */
static int parse_text(const struct fl_param *p, const char *s, struct fl_value *v, struct fl_err *e)
{
	switch (p->kind) {
	case FL_P_DURATION:
		return fl_parse_duration(s, &v->i, e);
	case FL_P_SIZE:
		return fl_parse_size(s, &v->u, e);
	case FL_P_RATE:
		return fl_parse_rate(s, &v->d, e);
	case FL_P_BYTERATE:
		return fl_parse_byte_rate(s, &v->u, e);
	case FL_P_RATIO:
		return fl_parse_ratio(s, &v->d, e);
	case FL_P_INT:
		return fl_parse_int(s, INT64_MIN, INT64_MAX, &v->i, e);
	case FL_P_BOOL:
		return fl_parse_bool(s, &v->b, e);
	case FL_P_ERRNO: {
		int x;
		int r = fl_errno_from_name(s, &x, e);
		v->i = x;
		return r;
	}
	case FL_P_SIGNAL: {
		int x;
		int r = fl_signal_from_name(s, &x, e);
		v->i = x;
		return r;
	}
	case FL_P_ENUM:
		for (int i = 0; p->enums && p->enums[i]; i++) {
			if (!strcmp(p->enums[i], s)) {
				v->i = i;
				return 0;
			}
		}
		return fl_err_set(e, -EINVAL, "'%s' is not one of the allowed values", s);
	case FL_P_CIDR:
		return parse_cidr(s, &v->cidr, e);
	case FL_P_STRING:
		return 0;
	case FL_P_STRLIST:
	case FL_P_OBJECT:
	case FL_P_STRMAP:
		break;
	}
	return fl_err_set(e, -EINVAL, "no text form for this kind");
}

/* -1, 0, 1: compare two values of a numeric kind. */
static int value_cmp(enum fl_param_kind k, const struct fl_value *a, const struct fl_value *b)
{
	switch (k) {
	case FL_P_DURATION:
	case FL_P_INT:
		return (a->i > b->i) - (a->i < b->i);
	case FL_P_SIZE:
	case FL_P_BYTERATE:
		return (a->u > b->u) - (a->u < b->u);
	case FL_P_RATE:
	case FL_P_RATIO:
		return (a->d > b->d) - (a->d < b->d);
	default:
		return 0;
	}
}

static bool kind_has_range(enum fl_param_kind k)
{
	return k == FL_P_DURATION || k == FL_P_INT || k == FL_P_SIZE || k == FL_P_BYTERATE ||
	       k == FL_P_RATE || k == FL_P_RATIO;
}

static void enum_hint(char *buf, size_t len, const char *const *enums)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; enums && enums[i]; i++) {
		int w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "one of: ", enums[i]);
		if (w < 0 || (size_t)w >= len - off)
			return;
		off += (size_t)w;
	}
}

static int convert_object(struct ctx *c, const struct fl_param *params, const struct fl_ynode *map,
			  const char *path, const struct fl_param *extra, bool ignore_unknown,
			  struct fl_value *out);
static int count_params(const struct fl_param *p);

static char *path_join(const char *path, const char *name)
{
	char *s = NULL;

	if (!path || !path[0])
		return strdup(name);
	if (asprintf(&s, "%s.%s", path, name) < 0)
		return NULL;
	return s;
}

/* One value of the given kind from node n into v. Returns 0 or -EINVAL (diagnostic added). */
static int convert_value(struct ctx *c, const struct fl_param *p, const struct fl_ynode *n,
			 const char *path, struct fl_value *v)
{
	struct fl_err e;
	const char *s;
	char hint[512];

	v->line = n->line;
	v->col = n->col;
	switch (p->kind) {
	case FL_P_OBJECT:
		if (n->type != FL_Y_MAP) {
			err_at(c, n, NULL, "%s: expected a mapping, got %s", path, fl_ynode_kind(n));
			return -EINVAL;
		}
		v->obj = calloc((size_t)count_params(p->sub) + 1, sizeof(*v->obj));
		if (!v->obj)
			return -ENOMEM;
		v->set = true;
		return convert_object(c, p->sub, n, path, NULL, false, v->obj);
	case FL_P_STRMAP:
		if (n->type != FL_Y_MAP) {
			err_at(c, n, "write it as a mapping of names to values", "%s: expected a mapping, got %s",
			       path, fl_ynode_kind(n));
			return -EINVAL;
		}
		v->list.v = calloc((size_t)(2 * n->n + 1), sizeof(char *));
		if (!v->list.v)
			return -ENOMEM;
		for (int i = 0; i < n->n; i++) {
			const struct fl_ynode *val = n->items[2 * i + 1];

			s = val->type == FL_Y_SCALAR ? val->value : NULL;
			if (!s) {
				err_at(c, val, NULL, "%s.%s: expected a string, got %s", path,
				       n->items[2 * i]->value, fl_ynode_kind(val));
				return -EINVAL;
			}
			v->list.v[v->list.n++] = strdup(n->items[2 * i]->value);
			v->list.v[v->list.n++] = strdup(s);
		}
		v->set = true;
		return 0;
	case FL_P_STRLIST:
		if (n->type == FL_Y_MAP || fl_ynode_is_null(n)) {
			err_at(c, n, "write a list: [a, b] or one '- item' per line",
			       "%s: expected a list of strings, got %s", path, fl_ynode_kind(n));
			return -EINVAL;
		}
		{
			int cnt = n->type == FL_Y_SEQ ? n->n : 1;

			v->list.v = calloc((size_t)cnt + 1, sizeof(char *));
			if (!v->list.v)
				return -ENOMEM;
			for (int i = 0; i < cnt; i++) {
				const struct fl_ynode *it = n->type == FL_Y_SEQ ? n->items[i] : n;

				if (it->type != FL_Y_SCALAR || fl_ynode_is_null(it)) {
					err_at(c, it, NULL, "%s[%d]: expected a string, got %s", path, i,
					       fl_ynode_kind(it));
					return -EINVAL;
				}
				if (p->enums) {
					struct fl_value tmp = {0};
					struct fl_param ep = *p;

					ep.kind = FL_P_ENUM;
					if (parse_text(&ep, it->value, &tmp, &e)) {
						const char *near = nearest(it->value, NULL, NULL, p->enums);

						enum_hint(hint, sizeof(hint), p->enums);
						if (near) {
							char h2[600];
							snprintf(h2, sizeof(h2), "did you mean '%s'? (%s)", near, hint);
							err_at(c, it, h2, "%s: unknown value '%s'", path, it->value);
						} else {
							err_at(c, it, hint, "%s: unknown value '%s'", path, it->value);
						}
						return -EINVAL;
					}
				}
				v->list.v[v->list.n++] = strdup(it->value);
			}
		}
		v->set = true;
		return 0;
	default:
		break;
	}
	s = scalar_of(c, n, path, fl_param_kind_doc(p->kind));
	if (!s)
		return -EINVAL;
	fl_err_clear(&e);
	if (parse_text(p, s, v, &e)) {
		if (p->kind == FL_P_ENUM) {
			const char *near = nearest(s, NULL, NULL, p->enums);

			enum_hint(hint, sizeof(hint), p->enums);
			if (near) {
				char h2[600];
				snprintf(h2, sizeof(h2), "did you mean '%s'? (%s)", near, hint);
				err_at(c, n, h2, "%s: '%s' is not allowed", path, s);
			} else {
				err_at(c, n, hint, "%s: '%s' is not allowed", path, s);
			}
		} else if (p->kind == FL_P_INT) {
			/* the table's range is the useful hint, not int64's */
			snprintf(hint, sizeof(hint), "a whole number%s%s%s%s", p->min ? " from " : "",
				 p->min ? p->min : "", p->max ? " to " : "", p->max ? p->max : "");
			err_at(c, n, hint, "%s: %s", path, e.msg);
		} else {
			err_at(c, n, e.hint, "%s: %s", path, e.msg);
		}
		return -EINVAL;
	}
	if (p->kind == FL_P_ENUM || p->kind == FL_P_STRING)
		v->s = strdup(p->kind == FL_P_ENUM ? p->enums[v->i] : s);
	if (kind_has_range(p->kind)) {
		struct fl_value b = {0};

		if (p->min && !parse_text(p, p->min, &b, NULL) && value_cmp(p->kind, v, &b) < 0) {
			snprintf(hint, sizeof(hint), "%s ranges from %s to %s", p->name, p->min,
				 p->max ? p->max : "(no maximum)");
			err_at(c, n, hint, "%s: %s is below the minimum %s", path, s, p->min);
			return -EINVAL;
		}
		if (p->max && !parse_text(p, p->max, &b, NULL) && value_cmp(p->kind, v, &b) > 0) {
			snprintf(hint, sizeof(hint), "%s ranges from %s to %s", p->name,
				 p->min ? p->min : "(no minimum)", p->max);
			err_at(c, n, hint, "%s: %s is above the maximum %s", path, s, p->max);
			return -EINVAL;
		}
	}
	v->set = true;
	return 0;
}

static int count_params(const struct fl_param *p)
{
	int n = 0;

	while (p && p[n].name)
		n++;
	return n;
}

/*
 * Validate mapping `map` against `params` (and `extra`, keys handled by the caller) into out[]
 * (one slot per param). Reports unknown keys with a suggestion, missing required keys, and every
 * bad value. Defaults fill unset slots.
 */
static int convert_object(struct ctx *c, const struct fl_param *params, const struct fl_ynode *map,
			  const char *path, const struct fl_param *extra, bool ignore_unknown,
			  struct fl_value *out)
{
	int rc = 0;
	char names[1024];

	for (int i = 0; map && i < map->n; i++) {
		const struct fl_ynode *k = map->items[2 * i];
		int idx = fl_param_index(params, k->value);

		if (idx < 0 && (ignore_unknown || fl_param_index(extra, k->value) >= 0))
			continue;
		if (idx < 0) {
			const char *near = nearest(k->value, params, extra, NULL);
			char hint[1200];

			join_names(names, sizeof(names), params, extra);
			if (near)
				snprintf(hint, sizeof(hint), "did you mean '%s'?", near);
			else
				snprintf(hint, sizeof(hint), "known keys here: %s", names);
			err_at(c, k, hint, "unknown key '%s'%s%s", k->value, path && path[0] ? " in " : "",
			       path && path[0] ? path : "");
			rc = -EINVAL;
			continue;
		}
		if (out[idx].line) /* a duplicate key: already reported by the YAML layer */
			continue;
		{
			char *sub = path_join(path, k->value);
			int r;

			if (!sub)
				return -ENOMEM;
			r = convert_value(c, &params[idx], map->items[2 * i + 1], sub, &out[idx]);
			if (!out[idx].line)
				out[idx].line = map->items[2 * i + 1]->line;
			free(sub);
			if (r)
				rc = r;
		}
	}
	for (int i = 0; params[i].name; i++) {
		const struct fl_param *p = &params[i];

		if (out[i].set || out[i].line)
			continue;
		if (p->required) {
			if (path && path[0])
				err_at(c, map, p->help, "missing required key '%s' in %s", p->name, path);
			else
				err_at(c, map, p->help, "missing required key '%s'", p->name);
			rc = -EINVAL;
			continue;
		}
		if (p->kind == FL_P_OBJECT && p->sub) {
			/* an absent optional section still gets its defaults */
			out[i].obj = calloc((size_t)count_params(p->sub) + 1, sizeof(*out[i].obj));
			if (!out[i].obj)
				return -ENOMEM;
			if (convert_object(c, p->sub, NULL, path, NULL, false, out[i].obj))
				rc = -EINVAL;
			continue;
		}
		if (p->def) {
			if (parse_text(p, p->def, &out[i], NULL) == 0) {
				out[i].set = true;
				out[i].defaulted = true;
				if (p->kind == FL_P_STRING)
					out[i].s = strdup(p->def);
				if (p->kind == FL_P_ENUM)
					out[i].s = strdup(p->enums[out[i].i]);
			}
		}
	}
	return rc;
}

void fl_values_free(const struct fl_param *params, struct fl_value *values)
{
	if (!values)
		return;
	for (int i = 0; params && params[i].name; i++) {
		struct fl_value *v = &values[i];

		free(v->s);
		for (int k = 0; k < v->list.n; k++)
			free(v->list.v[k]);
		free(v->list.v);
		if (v->obj) {
			fl_values_free(params[i].sub, v->obj);
			free(v->obj);
		}
	}
}

/* ---- --set overrides ------------------------------------------------------------------------ */

static struct fl_ynode *seq_find_named(const struct fl_ynode *seq, const char *name)
{
	for (int i = 0; i < seq->n; i++) {
		const struct fl_ynode *nm = fl_ymap_get(seq->items[i], "name");

		if (nm && nm->type == FL_Y_SCALAR && !strcmp(nm->value, name))
			return seq->items[i];
	}
	return NULL;
}

static int apply_set(struct fl_ynode *root, const char *set, int idx, struct fl_diags *d)
{
	const char *eq = strchr(set, '=');
	char *key = NULL, *save = NULL, *seg, *next;
	struct fl_ynode *cur = root, *val = NULL;
	int rc = -EINVAL;
	int vcol;

	if (!eq || eq == set) {
		fl_diags_add(d, "--set", idx + 1, 1, "write --set KEY=VALUE, e.g. --set load.rate=500/s",
			     "'%s' is not KEY=VALUE", set);
		return -EINVAL;
	}
	key = strndup(set, (size_t)(eq - set));
	if (!key)
		return -ENOMEM;
	vcol = (int)(eq - set) + 1;
	if (!eq[1]) {
		val = calloc(1, sizeof(*val));
		if (val) {
			val->type = FL_Y_SCALAR;
			val->file = "--set";
			val->line = idx + 1;
			val->col = vcol + 1;
			val->value = strdup("");
		}
		if (!val || !val->value)
			goto out;
	} else {
		val = fl_yaml_parse("--set", eq + 1, strlen(eq + 1), idx, vcol, d);
		if (!val)
			goto out;
	}
	seg = strtok_r(key, ".", &save);
	while (seg) {
		next = strtok_r(NULL, ".", &save);
		if (!next) {
			if (cur->type != FL_Y_MAP)
				break;
			rc = fl_ymap_set(cur, "--set", idx + 1, 1, seg, val);
			if (!rc)
				val = NULL;
			goto out;
		}
		if (cur->type == FL_Y_SEQ) {
			struct fl_ynode *item = seq_find_named(cur, seg);

			if (!item) {
				fl_diags_add(d, "--set", idx + 1, 1, "name an existing fault",
					     "--set %.*s: no fault named '%s'", (int)(eq - set), set, seg);
				goto out;
			}
			cur = item;
		} else if (cur->type == FL_Y_MAP) {
			struct fl_ynode *child = fl_ymap_get(cur, seg);

			if (!child) {
				child = calloc(1, sizeof(*child));
				if (!child)
					goto out;
				child->type = FL_Y_MAP;
				child->file = "--set";
				child->line = idx + 1;
				child->col = 1;
				if (fl_ymap_set(cur, "--set", idx + 1, 1, seg, child)) {
					fl_ynode_free(child);
					goto out;
				}
			}
			cur = child;
		} else {
			break;
		}
		seg = next;
	}
	fl_diags_add(d, "--set", idx + 1, 1, "dotted paths name mapping keys and fault names",
		     "--set %.*s: that path goes through a value that is not a mapping", (int)(eq - set),
		     set);
out:
	fl_ynode_free(val);
	free(key);
	return rc;
}

/* ---- the scenario --------------------------------------------------------------------------- */

struct priv {
	struct fl_value top[16];
};

static bool name_ok(const char *s, bool allow_dot)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!isalnum(ch) && ch != '-' && ch != '_' && !(allow_dot && ch == '.'))
			return false;
	}
	return true;
}

static const struct fl_value *obj(const struct fl_value *top, int idx)
{
	return top[idx].obj;
}

static int check_url(const char *url, struct fl_err *e)
{
	const char *host, *hend, *port, *colon;
	long pn;
	char *end;

	if (strncmp(url, "http://", 7)) {
		fl_err_set(e, -EINVAL, "url '%s' must start with http://", url);
		fl_err_hint(e, "faultline's load generator speaks plain HTTP/1.1");
		return -EINVAL;
	}
	host = url + 7;
	if (*host == '[') {
		hend = strchr(host, ']');
		if (!hend)
			return fl_err_set(e, -EINVAL, "url '%s': unterminated IPv6 literal", url);
		colon = hend + 1;
	} else {
		hend = host + strcspn(host, ":/");
		colon = hend;
	}
	if (hend == host)
		return fl_err_set(e, -EINVAL, "url '%s' has no host", url);
	if (*colon != ':') {
		fl_err_set(e, -EINVAL, "url '%s' has no port", url);
		fl_err_hint(e, "write the port explicitly: http://127.0.0.1:8080/path");
		return -EINVAL;
	}
	port = colon + 1;
	errno = 0;
	pn = strtol(port, &end, 10);
	if (end == port || errno || pn < 1 || pn > 65535 || (*end && *end != '/'))
		return fl_err_set(e, -EINVAL, "url '%s': port must be 1..65535", url);
	if (*host != '[') {
		char h[256];
		unsigned char tmp[16];
		size_t hl = (size_t)(hend - host);

		if (hl >= sizeof(h))
			return fl_err_set(e, -EINVAL, "url '%s': host too long", url);
		memcpy(h, host, hl);
		h[hl] = '\0';
		if (strcmp(h, "localhost") && inet_pton(AF_INET, h, tmp) != 1) {
			fl_err_set(e, -EINVAL, "url '%s': host '%s' is not an IP address", url, h);
			fl_err_hint(e, "use an IP address (127.0.0.1, [::1]) or localhost: the load "
				       "generator does no DNS so a resolver fault cannot hide in it");
			return -EINVAL;
		}
	}
	return 0;
}

static int64_t fault_end(const struct fl_fault *f)
{
	return f->at_ns + f->duration_ns;
}

int64_t fl_scenario_timeline_ns(const struct fl_scenario *sc)
{
	int64_t end = 0;

	for (int i = 0; i < sc->nfaults; i++)
		if (fault_end(&sc->faults[i]) > end)
			end = fault_end(&sc->faults[i]);
	return end;
}

int64_t fl_scenario_total_ns(const struct fl_scenario *sc)
{
	return sc->phases.baseline_ns + fl_scenario_timeline_ns(sc) + sc->phases.recovery_ns;
}

static void parse_faults(struct ctx *c, struct fl_scenario *sc, const struct fl_ynode *root)
{
	const struct fl_ynode *seq = fl_ymap_get(root, "faults");

	if (!seq) {
		err_at(c, root, fl_scenario_faults_param[0].help, "missing required key 'faults'");
		return;
	}
	if (seq->type != FL_Y_SEQ) {
		err_at(c, seq, "write faults as a list, one '- name: ...' item per fault",
		       "faults: expected a list, got %s", fl_ynode_kind(seq));
		return;
	}
	if (seq->n == 0) {
		err_at(c, seq, "add at least one fault; see docs/injectors.md", "faults: the list is empty");
		return;
	}
	sc->faults = calloc((size_t)seq->n, sizeof(*sc->faults));
	if (!sc->faults)
		return;
	/* duplicate names first, from the text, so a fault with other errors still gets this one */
	for (int i = 0; i < seq->n; i++) {
		const struct fl_ynode *ni = fl_ymap_get(seq->items[i], "name");

		if (!ni || ni->type != FL_Y_SCALAR)
			continue;
		for (int k = 0; k < i; k++) {
			const struct fl_ynode *nk = fl_ymap_get(seq->items[k], "name");
			char hint[64];

			if (!nk || nk->type != FL_Y_SCALAR || strcmp(nk->value, ni->value))
				continue;
			snprintf(hint, sizeof(hint), "the first is at line %d", nk->line);
			err_at(c, ni, hint, "duplicate fault name '%s'", ni->value);
			break;
		}
	}
	for (int i = 0; i < seq->n; i++) {
		const struct fl_ynode *m = seq->items[i];
		struct fl_fault *f = &sc->faults[sc->nfaults];
		struct fl_value common[8] = {{0}};
		const struct fl_ynode *tn;
		char path[96];
		bool bad = false;

		if (m->type != FL_Y_MAP) {
			err_at(c, m, NULL, "faults[%d]: expected a mapping, got %s", i, fl_ynode_kind(m));
			continue;
		}
		tn = fl_ymap_get(m, "type");
		if (tn && tn->type == FL_Y_SCALAR && !fl_ynode_is_null(tn)) {
			f->inj = fl_injector_find(tn->value);
			if (!f->inj) {
				char hint[1024];
				const char *near = NULL;
				int bestd = 99;
				size_t off = 0;

				for (int k = 0; k < fl_injector_count; k++) {
					int dd = distance(tn->value, fl_injectors[k]->type);
					int w;

					if (dd < bestd) {
						bestd = dd;
						near = fl_injectors[k]->type;
					}
					w = snprintf(hint + off, sizeof(hint) - off, "%s%s", k ? ", " : "",
						     fl_injectors[k]->type);
					if (w > 0 && (size_t)w < sizeof(hint) - off)
						off += (size_t)w;
				}
				if (near && bestd <= 3) {
					char h2[1100];
					snprintf(h2, sizeof(h2), "did you mean '%s'? known types: %s", near, hint);
					err_at(c, tn, h2, "faults[%d]: unknown fault type '%s'", i, tn->value);
				} else {
					char h2[1100];
					snprintf(h2, sizeof(h2), "known types: %s", hint);
					err_at(c, tn, h2, "faults[%d]: unknown fault type '%s'", i, tn->value);
				}
				bad = true;
			}
		}
		{
			const struct fl_ynode *nn = fl_ymap_get(m, "name");
			if (nn && nn->type == FL_Y_SCALAR && !fl_ynode_is_null(nn))
				snprintf(path, sizeof(path), "faults.%.60s", nn->value);
			else
				snprintf(path, sizeof(path), "faults[%d]", i);
		}
		/* common keys; the injector's own keys are accepted here and validated below */
		/* without a known type the other keys cannot be judged: report only the type */
		if (convert_object(c, fl_fault_common_params, m, path, f->inj ? f->inj->params : NULL,
				   !f->inj, common))
			bad = true;
		if (f->inj) {
			int np = count_params(f->inj->params);

			f->values = calloc((size_t)np + 1, sizeof(*f->values));
			if (!f->values ||
			    convert_object(c, f->inj->params, m, path, fl_fault_common_params, true,
					   f->values))
				bad = true;
		}
		f->line = m->line;
		f->col = m->col;
		if (common[0].set) {
			if (!name_ok(common[0].s, false)) {
				const struct fl_ynode *nn = fl_ymap_get(m, "name");
				err_at(c, nn, "use letters, digits, '-' and '_' (at most 63)",
				       "%s: invalid fault name", path);
				bad = true;
			}
		}
		f->name = common[0].s;
		common[0].s = NULL;
		f->at_ns = common[2].i;
		f->duration_ns = common[3].i;
		fl_values_free(fl_fault_common_params, common);
		/* rules across parameters, from the injector, still at the line they were written */
		if (!bad && f->inj && f->inj->validate) {
			const struct fl_value *blame = NULL;
			struct fl_err e;

			fl_err_clear(&e);
			if (f->inj->validate(f, &blame, &e)) {
				fl_diags_add(c->d, c->file, blame && blame->line ? blame->line : m->line,
					     blame && blame->line ? blame->col : m->col, e.hint[0] ? e.hint : NULL,
					     "%s: %s", path, e.msg);
				bad = true;
			}
		}
		if (bad) {
			if (f->inj)
				fl_values_free(f->inj->params, f->values);
			free(f->values);
			free(f->name);
			memset(f, 0, sizeof(*f));
			continue;
		}
		sc->nfaults++;
	}
	/* rules between faults that are in force at once (the injectors say which pairs clash) */
	for (int i = 0; i < sc->nfaults; i++) {
		for (int k = i + 1; k < sc->nfaults; k++) {
			const struct fl_fault *a = &sc->faults[i], *b = &sc->faults[k];
			struct fl_err e;

			if (!a->inj->conflicts || a->inj->conflicts != b->inj->conflicts ||
			    a->at_ns >= fault_end(b) || b->at_ns >= fault_end(a))
				continue;
			fl_err_clear(&e);
			if (a->inj->conflicts(a, b, &e))
				fl_diags_add(c->d, c->file, b->line, b->col, e.hint[0] ? e.hint : NULL,
					     "faults.%s: %s", b->name, e.msg);
		}
	}
}

static void fill(struct ctx *c, struct fl_scenario *sc, struct fl_value *top, const struct fl_ynode *root)
{
	const struct fl_value *t = obj(top, SC_TARGET), *l = obj(top, SC_LOAD), *s = obj(top, SC_SLO);
	const struct fl_value *ph = obj(top, SC_PHASES), *g = obj(top, SC_GUARDRAILS);
	const struct fl_value *inc = obj(top, SC_INCIDENT);
	const struct fl_ynode *tnode = fl_ymap_get(root, "target");
	struct fl_err e;

	sc->version = (int)top[SC_VERSION].i;
	sc->name = top[SC_NAME].s;
	sc->description = top[SC_DESCRIPTION].s;
	sc->allow_host_wide = top[SC_ALLOW_HOST_WIDE].b;
	if (sc->name && !name_ok(sc->name, true))
		err_at(c, fl_ymap_get(root, "name"), "use letters, digits, '-', '_' and '.' (at most 63)",
		       "name: '%s' is not a valid scenario name", sc->name);
	if (inc) {
		sc->incident.id = inc[0].s;
		sc->incident.date = inc[1].s;
		sc->incident.summary = inc[2].s;
		if (sc->incident.date) {
			int y, mo, dd;
			char extra;

			if (sscanf(sc->incident.date, "%4d-%2d-%2d%c", &y, &mo, &dd, &extra) != 3 || mo < 1 ||
			    mo > 12 || dd < 1 || dd > 31 || strlen(sc->incident.date) != 10)
				err_at(c, fl_ymap_get(fl_ymap_get(root, "incident"), "date"),
				       "write the date as YYYY-MM-DD", "incident.date: '%s' is not a date",
				       sc->incident.date);
		}
	}
	if (t) {
		int identities = 0;
		const char *which[5] = {0};

		sc->target.url = t[0].s;
		sc->target.run = t[1].list;
		if (t[2].list.n) {
			sc->target.nenv = t[2].list.n / 2;
			sc->target.env = calloc((size_t)sc->target.nenv, sizeof(*sc->target.env));
			for (int i = 0; sc->target.env && i < sc->target.nenv; i++) {
				sc->target.env[i].key = t[2].list.v[2 * i];
				sc->target.env[i].value = t[2].list.v[2 * i + 1];
			}
		}
		sc->target.cwd = t[3].s;
		sc->target.ready_timeout_ns = t[4].i;
		sc->target.stop_grace_ns = t[5].i;
		sc->target.pid = (pid_t)t[6].i;
		sc->target.pidfile = t[7].s;
		sc->target.cgroup = t[8].s;
		sc->target.systemd_unit = t[9].s;
		sc->target.netns = t[10].s;
		sc->target.memory_limit = t[11].set ? t[11].u : 0;
		if (sc->target.url && check_url(sc->target.url, &e))
			err_at(c, fl_ymap_get(tnode, "url"), e.hint, "target.url: %s", e.msg);
		if (t[1].set && t[1].list.n == 0)
			err_at(c, fl_ymap_get(tnode, "run"), "give the program and its arguments",
			       "target.run: the command is empty");
		if (t[1].set)
			which[identities++] = "run";
		if (t[6].set)
			which[identities++] = "pid";
		if (t[7].set)
			which[identities++] = "pidfile";
		if (t[8].set)
			which[identities++] = "cgroup";
		if (t[9].set)
			which[identities++] = "systemd_unit";
		if (identities > 1)
			err_at(c, fl_ymap_get(tnode, which[1]),
			       "name the target one way: run, pid, pidfile, cgroup or systemd_unit",
			       "target: '%s' and '%s' are exclusive", which[0], which[1]);
		if (t[11].set && !t[1].set)
			err_at(c, fl_ymap_get(tnode, "memory_limit"),
			       "memory_limit is set on the cgroup faultline creates for `run`; a target found by "
			       "pid, pidfile, cgroup or systemd_unit keeps the limit its owner gave it",
			       "target.memory_limit without target.run");
		if ((t[2].set || t[3].set) && !t[1].set)
			err_at(c, fl_ymap_get(tnode, t[2].set ? "env" : "cwd"), "env and cwd apply to `run`",
			       "target.%s without target.run", t[2].set ? "env" : "cwd");
		if (sc->target.pid == 1 && !sc->allow_host_wide)
			err_at(c, fl_ymap_get(tnode, "pid"), "set allow_host_wide: true if you really mean it",
			       "target.pid 1 is the whole host: refused");
		if (sc->target.cgroup && !sc->allow_host_wide &&
		    (!strcmp(sc->target.cgroup, "/") || !sc->target.cgroup[strspn(sc->target.cgroup, "/")]))
			err_at(c, fl_ymap_get(tnode, "cgroup"), "set allow_host_wide: true if you really mean it",
			       "target.cgroup '/' is the root cgroup, i.e. the whole host: refused");
	}
	if (l) {
		sc->load.rate = l[0].d;
		sc->load.connections = (int)l[1].i;
		sc->load.timeout_ns = l[2].i;
		sc->load.method = l[3].s;
		sc->load.nheaders = l[4].list.n / 2;
		if (sc->load.nheaders) {
			sc->load.headers = calloc((size_t)sc->load.nheaders, sizeof(*sc->load.headers));
			for (int i = 0; sc->load.headers && i < sc->load.nheaders; i++) {
				sc->load.headers[i].key = l[4].list.v[2 * i];
				sc->load.headers[i].value = l[4].list.v[2 * i + 1];
			}
		}
		sc->load.body = l[5].s;
	}
	if (s) {
		const struct fl_value *good = s[0].obj;
		const struct fl_ynode *sn = fl_ymap_get(root, "slo");

		if (good) {
			if (good[0].s && fl_parse_status_set(good[0].s, &sc->slo.good_status, &e))
				err_at(c, fl_ymap_get(fl_ymap_get(sn, "good"), "status"), e.hint,
				       "slo.good.status: %s", e.msg);
			sc->slo.good_latency_ns = good[1].i;
		}
		sc->slo.survival_ratio = s[1].d;
		sc->slo.baseline_ratio = s[2].set ? s[2].d : s[1].d;
		sc->slo.recover_within_ns = s[3].set ? s[3].i : -1;
		sc->slo.window_ns = s[4].i;
		if (l && good && good[1].set && l[2].set && good[1].i > l[2].i)
			err_at(c, fl_ymap_get(fl_ymap_get(sn, "good"), "latency"),
			       "raise load.timeout or lower slo.good.latency",
			       "slo.good.latency is longer than load.timeout: no request could be that slow "
			       "and still be good");
	}
	if (ph) {
		sc->phases.baseline_ns = ph[0].i;
		sc->phases.recovery_ns = ph[1].i;
		if (s && ph[0].i < sc->slo.window_ns)
			err_at(c, fl_ymap_get(fl_ymap_get(root, "phases"), "baseline") ?
				  fl_ymap_get(fl_ymap_get(root, "phases"), "baseline") : root,
			       "lengthen phases.baseline or shorten slo.window",
			       "phases.baseline is shorter than one slo.window: it cannot show the target is healthy");
	}
	if (g) {
		sc->guardrails.abort_below = g[0].d;
		sc->guardrails.for_ns = g[1].i;
		sc->guardrails.max_duration_ns = g[2].set ? g[2].i : 0;
		sc->guardrails.heartbeat_ns = g[3].i;
	}
}

static void check_timeline(struct ctx *c, struct fl_scenario *sc, const struct fl_ynode *root)
{
	int64_t total = fl_scenario_total_ns(sc);
	const struct fl_ynode *g = fl_ymap_get(root, "guardrails");
	const struct fl_ynode *faults = fl_ymap_get(root, "faults");
	bool fault_late = false;
	char a[32], b[32];

	if (!sc->guardrails.max_duration_ns) {
		sc->guardrails.max_duration_ns = total + 60 * FL_NS_PER_S;
		return;
	}
	for (int i = 0; i < sc->nfaults; i++) {
		int64_t end = sc->phases.baseline_ns + fault_end(&sc->faults[i]);

		if (end > sc->guardrails.max_duration_ns) {
			const struct fl_ynode *fn = NULL;

			for (int k = 0; faults && k < faults->n; k++) {
				if (faults->items[k]->line == sc->faults[i].line)
					fn = fl_ymap_get(faults->items[k], "duration");
			}
			fl_format_duration(end, a, sizeof(a));
			fl_format_duration(sc->guardrails.max_duration_ns, b, sizeof(b));
			err_at(c, fn, "shorten the fault or raise guardrails.max_duration",
			       "fault '%s' ends at %s into the run (baseline + at + duration), past "
			       "guardrails.max_duration %s",
			       sc->faults[i].name, a, b);
			fault_late = true;
		}
	}
	if (!fault_late && total > sc->guardrails.max_duration_ns) {
		fl_format_duration(total, a, sizeof(a));
		fl_format_duration(sc->guardrails.max_duration_ns, b, sizeof(b));
		err_at(c, fl_ymap_get(g, "max_duration"), "shorten the phases or raise max_duration",
		       "guardrails.max_duration %s is shorter than the planned run %s", b, a);
	}
}

struct fl_scenario *fl_scenario_parse(const char *file, const char *buf, size_t len,
				      char *const *sets, int nsets, struct fl_diags *diags)
{
	struct ctx c = {.file = file, .d = diags};
	struct fl_scenario *sc = NULL;
	struct fl_ynode *root;
	struct priv *pv = NULL;
	int before = diags->n;

	root = fl_yaml_parse(file, buf, len, 0, 0, diags);
	if (!root)
		return NULL;
	if (root->type != FL_Y_MAP) {
		err_at(&c, root, "a scenario starts with 'version: 1' and 'name: ...'",
		       "the top level must be a mapping, got %s", fl_ynode_kind(root));
		goto out;
	}
	for (int i = 0; i < nsets; i++)
		apply_set(root, sets[i], i, diags);
	sc = calloc(1, sizeof(*sc));
	pv = calloc(1, sizeof(*pv));
	if (!sc || !pv || !(sc->file = strdup(file)))
		goto out;
	sc->priv = pv;
	{
		const struct fl_ynode *vn = fl_ymap_get(root, "version");

		/* an unsupported version makes every other message noise: say only that */
		if (vn && vn->type == FL_Y_SCALAR && strcmp(vn->value, "1")) {
			err_at(&c, vn, "this faultline reads scenario version 1",
			       "unsupported scenario version '%s'", vn->value);
			goto out;
		}
	}
	convert_object(&c, fl_scenario_params, root, "", fl_scenario_faults_param, false, pv->top);
	parse_faults(&c, sc, root);
	fill(&c, sc, pv->top, root);
	/* faults that failed validation were dropped; the others are still judged against the clock */
	check_timeline(&c, sc, root);
out:
	fl_ynode_free(root);
	if (diags->n != before) {
		fl_scenario_free(sc);
		return NULL;
	}
	return sc;
}

struct fl_scenario *fl_scenario_load(const char *path, char *const *sets, int nsets,
				     struct fl_diags *diags)
{
	FILE *f;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	struct fl_scenario *sc = NULL;
	struct stat st;

	f = fopen(path, "rb");
	if (!f) {
		fl_diags_add(diags, path, 1, 1, NULL, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fl_diags_add(diags, path, 1, 1, "give a .yaml file", "is a directory");
		goto out;
	}
	for (;;) {
		size_t r;

		if (len + 4096 > cap) {
			char *nb;

			cap = cap ? 2 * cap : 16384;
			nb = realloc(buf, cap + 1);
			if (!nb)
				goto out;
			buf = nb;
		}
		r = fread(buf + len, 1, cap - len, f);
		len += r;
		if (len > FL_MAX_SCENARIO_BYTES) {
			fl_diags_add(diags, path, 1, 1, NULL, "larger than %d MiB: not a scenario",
				     FL_MAX_SCENARIO_BYTES >> 20);
			goto out;
		}
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		fl_diags_add(diags, path, 1, 1, NULL, "read error: %s", strerror(errno));
		goto out;
	}
	buf[len] = '\0';
	sc = fl_scenario_parse(path, buf, len, sets, nsets, diags);
out:
	free(buf);
	fclose(f);
	return sc;
}

void fl_scenario_free(struct fl_scenario *sc)
{
	struct priv *pv;

	if (!sc)
		return;
	pv = sc->priv;
	for (int i = 0; i < sc->nfaults; i++) {
		fl_values_free(sc->faults[i].inj->params, sc->faults[i].values);
		free(sc->faults[i].values);
		free(sc->faults[i].name);
	}
	free(sc->faults);
	free(sc->target.env);
	free(sc->load.headers);
	if (pv)
		fl_values_free(fl_scenario_params, pv->top);
	free(pv);
	free(sc->file);
	free(sc);
}

char *fl_value_format(const struct fl_param *p, const struct fl_value *v, char *buf, size_t len)
{
	char tmp[64];
	size_t off = 0;

	buf[0] = '\0';
	if (!v || !v->set) {
		snprintf(buf, len, "(unset)");
		return buf;
	}
	switch (p->kind) {
	case FL_P_DURATION:
		fl_format_duration(v->i, buf, len);
		break;
	case FL_P_SIZE:
		fl_format_size(v->u, buf, len);
		break;
	case FL_P_BYTERATE:
		snprintf(buf, len, "%s/s", fl_format_size(v->u, tmp, sizeof(tmp)));
		break;
	case FL_P_RATE:
		snprintf(buf, len, "%g/s", v->d);
		break;
	case FL_P_RATIO:
		snprintf(buf, len, "%g%%", v->d * 100.0);
		break;
	case FL_P_INT:
		snprintf(buf, len, "%lld", (long long)v->i);
		break;
	case FL_P_BOOL:
		snprintf(buf, len, "%s", v->b ? "true" : "false");
		break;
	case FL_P_STRING:
	case FL_P_ENUM:
		snprintf(buf, len, "%s", v->s ? v->s : "");
		break;
	case FL_P_ERRNO:
		snprintf(buf, len, "%s", fl_errno_name((int)v->i) ? fl_errno_name((int)v->i) : "?");
		break;
	case FL_P_SIGNAL:
		snprintf(buf, len, "%s", fl_signal_name((int)v->i) ? fl_signal_name((int)v->i) : "?");
		break;
	case FL_P_CIDR: {
		char a[INET6_ADDRSTRLEN];

		inet_ntop(v->cidr.family, v->cidr.addr, a, sizeof(a));
		snprintf(buf, len, "%s/%d", a, v->cidr.prefix);
		break;
	}
	case FL_P_STRLIST:
	case FL_P_STRMAP: {
		bool map = p->kind == FL_P_STRMAP;

		for (int i = 0; i < v->list.n; i += map ? 2 : 1) {
			int w = map ? snprintf(buf + off, len - off, "%s%s: %s", i ? ", " : "{", v->list.v[i],
					       v->list.v[i + 1])
				    : snprintf(buf + off, len - off, "%s%s", i ? ", " : "[", v->list.v[i]);
			if (w < 0 || (size_t)w >= len - off)
				return buf;
			off += (size_t)w;
		}
		snprintf(buf + off, len - off, "%s", off ? (map ? "}" : "]") : (map ? "{}" : "[]"));
		break;
	}
	case FL_P_OBJECT:
		for (int i = 0; p->sub && p->sub[i].name; i++) {
			char one[256];
			int w;

			if (!v->obj || !v->obj[i].set)
				continue;
			w = snprintf(buf + off, len - off, "%s%s: %s", off ? ", " : "{", p->sub[i].name,
				     fl_value_format(&p->sub[i], &v->obj[i], one, sizeof(one)));
			if (w < 0 || (size_t)w >= len - off)
				return buf;
			off += (size_t)w;
		}
		snprintf(buf + off, len - off, "%s", off ? "}" : "{}");
		break;
	}
	return buf;
}

int fl_param_table_check(const struct fl_param *params, struct fl_err *err)
{
	for (int i = 0; params && params[i].name; i++) {
		const struct fl_param *p = &params[i];
		struct fl_value def = {0}, lo = {0}, hi = {0};
		struct fl_err e;

		for (int k = 0; k < i; k++)
			if (!strcmp(params[k].name, p->name))
				return fl_err_set(err, -EINVAL, "parameter '%s' is listed twice", p->name);
		if (!p->help || !p->help[0])
			return fl_err_set(err, -EINVAL, "parameter '%s' has no help text", p->name);
		if (p->kind == FL_P_ENUM && (!p->enums || !p->enums[0]))
			return fl_err_set(err, -EINVAL, "enum parameter '%s' has no values", p->name);
		if (p->kind == FL_P_OBJECT) {
			int rc;

			if (!p->sub)
				return fl_err_set(err, -EINVAL, "object parameter '%s' has no members", p->name);
			rc = fl_param_table_check(p->sub, err);
			if (rc)
				return rc;
		}
		if (p->required && p->def)
			return fl_err_set(err, -EINVAL, "parameter '%s' is required and has a default", p->name);
		if ((p->min || p->max) && !kind_has_range(p->kind))
			return fl_err_set(err, -EINVAL, "parameter '%s' has a range but its kind has none", p->name);
		if (p->min && parse_text(p, p->min, &lo, &e))
			return fl_err_set(err, -EINVAL, "parameter '%s': bad min '%s': %s", p->name, p->min, e.msg);
		if (p->max && parse_text(p, p->max, &hi, &e))
			return fl_err_set(err, -EINVAL, "parameter '%s': bad max '%s': %s", p->name, p->max, e.msg);
		if (p->min && p->max && value_cmp(p->kind, &lo, &hi) > 0)
			return fl_err_set(err, -EINVAL, "parameter '%s': min above max", p->name);
		if (p->def) {
			if (parse_text(p, p->def, &def, &e))
				return fl_err_set(err, -EINVAL, "parameter '%s': bad default '%s': %s", p->name,
						  p->def, e.msg);
			if ((p->min && value_cmp(p->kind, &def, &lo) < 0) ||
			    (p->max && value_cmp(p->kind, &def, &hi) > 0))
				return fl_err_set(err, -EINVAL, "parameter '%s': default outside its range",
						  p->name);
		}
	}
	return 0;
}
