/* The syscall fault types (syscall.error, syscall.delay): parameters, the choice of backend (BPF LSM, cgroup BPF, seccomp), dispatch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "procfs.h"
#include "sys.h"
#include "units.h"

/* Decided before a launched target's cgroup exists, so the choice relies on FL_SYS_CGROUP_CLASSES. */
#define CGROUP_CLASSES FL_SYS_CGROUP_CLASSES

static const char *const error_backends[] = {"auto", "lsm", "cgroup", "seccomp", NULL};
static const char *const delay_backends[] = {"auto", "seccomp", NULL};

#define SYS_COMMON_PARAMS(backends)                                                                 \
	{.name = "syscalls", .kind = FL_P_STRLIST, .required = true,                                  \
	 .help = "the syscalls to act on, by name (connect, openat, write, ...; `faultline list` "    \
		 "and docs/syscalls.md list them)"},                                                 \
	{.name = "probability", .kind = FL_P_RATIO, .def = "100%",                                    \
	 .help = "share of the matching calls acted on (after `after`, until `max`)"},                \
	{.name = "after", .kind = FL_P_INT, .def = "0", .min = "0", .max = "1000000000",              \
	 .help = "let the first N matching calls pass"},                                              \
	{.name = "max", .kind = FL_P_INT, .def = "0", .min = "0", .max = "1000000000",                \
	 .help = "act on at most N calls (0: no limit)"},                                             \
	{.name = "path_prefix", .kind = FL_P_STRING,                                                  \
	 .help = "open-like calls: only paths under this prefix"},                                    \
	{.name = "dst_ip", .kind = FL_P_CIDR, .help = "connect/sendto: only to this address or CIDR"},\
	{.name = "dst_port", .kind = FL_P_INT, .min = "1", .max = "65535",                            \
	 .help = "connect/sendto: only to this port"},                                                \
	{.name = "backend", .kind = FL_P_ENUM, .def = "auto", .enums = backends,                      \
	 .help = "auto: BPF LSM where the kernel allows it, else cgroup BPF for socket syscalls, "    \
		 "else seccomp for a target faultline launches; the report says which"}

static const struct fl_param error_params[] = {
	{.name = "errno", .kind = FL_P_ERRNO, .required = true,
	 .help = "what the call fails with (ECONNREFUSED, EMFILE, EIO, ENOSPC, ...)"},
	SYS_COMMON_PARAMS(error_backends),
	{0},
};

static const struct fl_param delay_params[] = {
	{.name = "delay", .kind = FL_P_DURATION, .required = true, .min = "100us", .max = "60s",
	 .help = "how long each acted-on call is held before it runs"},
	{.name = "jitter", .kind = FL_P_DURATION, .def = "0s", .min = "0s", .max = "60s",
	 .help = "uniform variation around delay"},
	SYS_COMMON_PARAMS(delay_backends),
	{0},
};

static const struct fl_sys_backend *backend_named(const char *name)
{
	if (!strcmp(name, "lsm"))
		return &fl_sys_backend_lsm;
	if (!strcmp(name, "cgroup"))
		return &fl_sys_backend_cgroup;
	if (!strcmp(name, "seccomp"))
		return &fl_sys_backend_seccomp;
	return NULL;
}

static bool is_delay(const struct fl_fault *f)
{
	return !strcmp(f->inj->type, "syscall.delay");
}

/* ---- the rule from typed values ------------------------------------------------------------- */

static void rule_of(const struct fl_fault *f, struct fl_sys_rule *r)
{
	const struct fl_value *sys = fl_fault_value(f, "syscalls"), *v;

	memset(r, 0, sizeof(*r));
	r->f = f;
	for (int i = 0; i < sys->list.n && r->n < FL_SYS_MAX; i++) {
		const struct fl_syscall *s = fl_syscall_by_name(sys->list.v[i]);

		if (s) {
			r->sys[r->n++] = s;
			r->classes |= s->cls;
		}
	}
	if (is_delay(f)) {
		r->delay_ns = fl_fault_value(f, "delay")->i;
		r->jitter_ns = fl_fault_value(f, "jitter")->i;
	} else {
		r->err = (int)fl_fault_value(f, "errno")->i;
	}
	r->probability = fl_fault_value(f, "probability")->d;
	r->after = (uint64_t)fl_fault_value(f, "after")->i;
	r->max = (uint64_t)fl_fault_value(f, "max")->i;
	if ((v = fl_fault_value(f, "path_prefix"))->set)
		snprintf(r->path_prefix, sizeof(r->path_prefix), "%s", v->s);
	if ((v = fl_fault_value(f, "dst_ip"))->set) {
		r->has_dst = true;
		r->dst = v->cidr;
	}
	if ((v = fl_fault_value(f, "dst_port"))->set)
		r->dst_port = (uint16_t)v->i;
	if (f->target) {
		r->tgid = f->target->pid;
		r->launched = f->target->launched;
		r->cgroup_v2 = f->target->cgroup_v2;
		r->allow_host_wide = f->target->allow_host_wide;
	} else {
		r->cgroup_v2 = "";
	}
}

static int sys_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err)
{
	const struct fl_value *sys = fl_fault_value(f, "syscalls");
	unsigned classes = 0;

	if (sys->list.n > FL_SYS_MAX) {
		*blame = sys;
		return fl_err_set(err, -E2BIG, "at most %d syscalls per fault", FL_SYS_MAX);
	}
	for (int i = 0; i < sys->list.n; i++) {
		const struct fl_syscall *s = fl_syscall_by_name(sys->list.v[i]);

		if (!s) {
			*blame = sys;
			fl_err_set(err, -EINVAL, "syscalls: '%s' is not a syscall faultline knows on this architecture",
				   sys->list.v[i]);
			fl_err_hint(err, "names as in syscall(2): connect, openat, read, write, fsync, ... "
					 "(docs/reference.md lists them)");
			return -EINVAL;
		}
		classes |= s->cls;
	}
	if (fl_fault_value(f, "path_prefix")->set && !(classes & FL_SYS_FILE_OPEN)) {
		*blame = fl_fault_value(f, "path_prefix");
		fl_err_set(err, -EINVAL, "path_prefix only narrows open-like calls, and none is listed");
		fl_err_hint(err, "add open or openat to syscalls, or drop path_prefix");
		return -EINVAL;
	}
	if ((fl_fault_value(f, "dst_ip")->set || fl_fault_value(f, "dst_port")->set) &&
	    !(classes & (FL_SYS_CONNECT | FL_SYS_SENDMSG))) {
		*blame = fl_fault_value(f, "dst_ip")->set ? fl_fault_value(f, "dst_ip") : fl_fault_value(f, "dst_port");
		fl_err_set(err, -EINVAL, "dst_ip/dst_port only narrow connect and sendto/sendmsg, and none is listed");
		return -EINVAL;
	}
	if (is_delay(f) && fl_fault_value(f, "jitter")->i > fl_fault_value(f, "delay")->i) {
		*blame = fl_fault_value(f, "jitter");
		return fl_err_set(err, -EINVAL, "jitter may not exceed delay (a call cannot be held less than 0 s)");
	}
	return 0;
}

/* ---- backend choice ------------------------------------------------------------------------- */

/*
 * The backend chosen for a launched target's fault before the launch (seccomp must be set up
 * around the fork): kept so check and apply take the same one. A process runs one drill.
 */
static struct prepared {
	const struct fl_fault *f;
	const struct fl_sys_backend *b;
} prepared[64];

static const struct fl_sys_backend *prepared_for(const struct fl_fault *f)
{
	for (int i = 0; i < 64; i++)
		if (prepared[i].f == f)
			return prepared[i].b;
	return NULL;
}

/*
 * The backend a fault runs on: the one named, or for auto the first of lsm, cgroup, seccomp
 * that this host can run (probe; with may_probe false, as in plan, an unprobed one counts as
 * possible) and whose check passes now. NULL: err has every candidate's reason.
 */
struct try_ctx {
	const char *const *names;
	const struct fl_sys_backend *pre;
	bool may_probe;
	const struct fl_sys_rule *r;
};

static int try_backend(int i, void *arg, struct fl_err *e)
{
	struct try_ctx *c = arg;
	const struct fl_sys_backend *b = backend_named(c->names[i]);
	int rc = 0;

	if (c->pre && b != c->pre)
		return 1;
	if (c->may_probe || fl_probe_done(b->probe, &rc))
		rc = fl_probe_once(b->probe, e);
	return rc ? rc : b->check(c->r, e);
}

static const struct fl_sys_backend *choose(const struct fl_fault *f, bool may_probe, struct fl_sys_rule *r,
					   struct fl_err *err)
{
	struct try_ctx c = {.names = f->inj->params[fl_param_index(f->inj->params, "backend")].enums,
			    .pre = prepared_for(f), .may_probe = may_probe, .r = r};
	int i;

	rule_of(f, r);
	i = fl_choose(f->inj->type, c.names, (int)fl_fault_value(f, "backend")->i, try_backend, &c, err);
	return i > 0 ? backend_named(c.names[i]) : NULL;
}

/* ---- the injector ops ---------------------------------------------------------------------- */

struct front_state {
	const struct fl_sys_backend *b;
	struct fl_sys_rule rule;
	void *bstate;
};

static int sys_probe_any(const char *const *names, struct fl_err *err)
{
	fl_probe_fn probes[4];
	int n = 0;

	for (int i = 1; names[i] && n < 4; i++, n++)
		probes[n] = backend_named(names[i])->probe;
	return fl_probe_any(names + 1, probes, n, err);
}

static int error_probe(struct fl_err *err)
{
	return sys_probe_any(error_backends, err);
}

static int delay_probe(struct fl_err *err)
{
	return sys_probe_any(delay_backends, err);
}

static int sys_check(const struct fl_fault *f, struct fl_err *err)
{
	struct fl_sys_rule r;

	return choose(f, false, &r, err) ? 0 : (err && err->code ? err->code : -EOPNOTSUPP);
}

static void sys_describe(const struct fl_fault *f, char *buf, size_t len)
{
	const struct fl_value *sys = fl_fault_value(f, "syscalls");
	char list[256] = "", what[128];
	size_t off = 0;

	for (int i = 0; i < sys->list.n; i++) {
		int w = snprintf(list + off, sizeof(list) - off, "%s%s", i ? "," : "", sys->list.v[i]);

		if (w > 0 && (size_t)w < sizeof(list) - off)
			off += (size_t)w;
	}
	if (is_delay(f))
		snprintf(what, sizeof(what), "are held %lld ms", (long long)(fl_fault_value(f, "delay")->i / 1000000));
	else
		snprintf(what, sizeof(what), "fail with %s",
			 fl_errno_name((int)fl_fault_value(f, "errno")->i) ? fl_errno_name((int)fl_fault_value(f, "errno")->i) : "?");
	snprintf(buf, len, "the target's %s calls %s (probability %g%%, after %lld, max %lld); backend %s",
		 list, what, fl_fault_value(f, "probability")->d * 100, (long long)fl_fault_value(f, "after")->i,
		 (long long)fl_fault_value(f, "max")->i, fl_fault_value(f, "backend")->s);
}

/* A seccomp launch prepared and not yet told how it went: the backend hears it once per launch. */
static bool seccomp_launch_pending;

/*
 * Before a launched target is forked: decide its backend now. auto takes lsm if the kernel
 * allows it, cgroup if every syscall listed is a socket call (the target's cgroup is made at
 * launch), else seccomp, which must be prepared around the fork.
 */
static int sys_launch_prepare(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	const char *const *names = f->inj->params[fl_param_index(f->inj->params, "backend")].enums;
	int named = (int)fl_fault_value(f, "backend")->i;
	const struct fl_sys_backend *b = NULL;
	struct fl_sys_rule r;
	char mount[4096];
	int slot;

	rule_of(f, &r);
	r.launched = true;
	for (slot = 0; slot < 64 && prepared[slot].f; slot++)
		;
	if (slot == 64)
		return fl_err_set(err, -ENOSPC, "too many syscall faults in one scenario");
	/* the first of this type's backends that will be able to act once the target runs */
	for (int i = named ? named : 1; names[i] && !b; i++) {
		const struct fl_sys_backend *c = backend_named(names[i]);

		if (named || c == &fl_sys_backend_seccomp)
			b = c;
		else if (c == &fl_sys_backend_lsm && !fl_probe_once(c->probe, NULL))
			b = c;
		else if (c == &fl_sys_backend_cgroup && !(r.classes & ~CGROUP_CLASSES) && !fl_probe_once(c->probe, NULL) &&
			 fl_cgroup_mount(NULL, mount, sizeof(mount)) == 0)
			b = c;
	}
	if (!b)
		return fl_err_set(err, -EOPNOTSUPP, "no backend of %s can act on this target", f->inj->type);
	prepared[slot].f = f;
	prepared[slot].b = b;
	if (b != &fl_sys_backend_seccomp)
		return 0;
	if (fl_probe_once(b->probe, err))
		return err && err->code ? err->code : -EOPNOTSUPP;
	seccomp_launch_pending = true;
	return b->launch_prepare(&r, j, err);
}

static int sys_launch_child(struct fl_fault *f)
{
	/* one filter for every seccomp rule: the backend installs it once, later calls return 0 */
	return prepared_for(f) == &fl_sys_backend_seccomp ? fl_sys_backend_seccomp.launch_child() : 0;
}

static void sys_launch_done(struct fl_fault *f, pid_t pid)
{
	if (prepared_for(f) == &fl_sys_backend_seccomp && seccomp_launch_pending) {
		seccomp_launch_pending = false;
		fl_sys_backend_seccomp.launch_done(pid);
	}
}

static int sys_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	struct front_state *st = calloc(1, sizeof(*st));

	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	st->b = choose(f, true, &st->rule, err);
	if (!st->b) {
		free(st);
		return err && err->code ? err->code : -EOPNOTSUPP;
	}
	f->state = st;
	return st->b->apply(&st->rule, j, &st->bstate, err);
}

static int sys_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct front_state *st = f->state;

	if (!st)
		return -ENOENT;
	fl_obs_text(o, "backend", "%s", st->b->name);
	return st->bstate ? st->b->observe(st->bstate, o) : 0;
}

static int sys_revert(struct fl_fault *f, struct fl_err *err)
{
	struct front_state *st = f->state;

	return st && st->bstate ? st->b->revert(st->bstate, err) : 0;
}

static void sys_release(struct fl_fault *f)
{
	struct front_state *st = f->state;

	if (!st)
		return;
	if (st->bstate)
		st->b->release(st->bstate);
	free(st);
	f->state = NULL;
}

static int sys_revert_record(const struct fl_journal_rec *rec, struct fl_err *err)
{
	char name[32];
	const struct fl_sys_backend *b;

	if (!fl_rec_get(rec, "backend", name, sizeof(name)) || !(b = backend_named(name)))
		return fl_err_set(err, -EINVAL, "journal record %llu names no known syscall backend",
				  (unsigned long long)rec->seq);
	return b->revert_record(rec, err);
}

#define SYS_FRONT(id, type_, summary_, params_, probe_)                                             \
	const struct fl_injector fl_inj_##id = {                                                    \
		.type = type_,                                                                      \
		.summary = summary_,                                                                \
		.preflight = "every syscall is known here; the backend runs (lsm: a BPF LSM program " \
			     "loads and attaches; cgroup: socket calls only, the target has a cgroup " \
			     "v2 dir; seccomp: faultline launches the target)",                    \
		.params = params_,                                                                  \
		.validate = sys_validate,                                                           \
		.probe = probe_,                                                                    \
		.check = sys_check,                                                                 \
		.describe = sys_describe,                                                           \
		.apply = sys_apply,                                                                 \
		.observe = sys_observe,                                                             \
		.revert = sys_revert,                                                               \
		.release = sys_release,                                                             \
		.revert_record = sys_revert_record,                                                 \
		.launch_prepare = sys_launch_prepare,                                               \
		.launch_child = sys_launch_child,                                                   \
		.launch_done = sys_launch_done,                                                     \
	}

SYS_FRONT(syscall_error, "syscall.error",
	  "make the target's syscalls fail with an errno: BPF LSM, cgroup BPF (socket calls), or seccomp "
	  "(launched targets)",
	  error_params, error_probe);
SYS_FRONT(syscall_delay, "syscall.delay",
	  "hold the target's syscalls for a delay before they run (seccomp user notification, launched targets)",
	  delay_params, delay_probe);
