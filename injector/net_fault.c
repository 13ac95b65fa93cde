/* The network fault types (delay, loss, duplicate, corrupt, reorder, bandwidth): parameters, backend choice, and dispatch to netem/tbf, nfqueue or cgroup. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "net.h"

/*
 * One front per fault type: a table of what the type accepts and the backends that can do it,
 * in `auto` order. The backend does the work; the front turns typed values into an effect.
 */
enum { B_AUTO = 0 };

static const char *const delay_backends[] = {"auto", "netem", "nfqueue", NULL};
static const char *const loss_backends[] = {"auto", "netem", "nfqueue", "cgroup", NULL};
static const char *const netem_backends[] = {"auto", "netem", NULL};
static const char *const tbf_backends[] = {"auto", "tbf", NULL};

static const struct fl_net_backend *backend_named(const char *name)
{
	if (!strcmp(name, "netem"))
		return &fl_net_backend_netem;
	if (!strcmp(name, "tbf"))
		return &fl_net_backend_tbf;
	if (!strcmp(name, "nfqueue"))
		return &fl_net_backend_nfqueue;
	if (!strcmp(name, "cgroup"))
		return &fl_net_backend_cgroup;
	return NULL;
}

static const char *const dist_names[] = {"uniform", "normal", "pareto", "paretonormal", NULL};

#define CORR(what)                                                                                 \
	{.name = "correlation", .kind = FL_P_RATIO, .def = "0%",                                    \
	 .help = "how much each packet's " what " depends on the previous one's (netem's correlation)"}

static const struct fl_param delay_params[] = {
	{.name = "delay", .kind = FL_P_DURATION, .required = true, .min = "100us", .max = "120s",
	 .help = "added one-way delay of every matched packet (once per round trip when only one "
		 "direction matches)"},
	{.name = "jitter", .kind = FL_P_DURATION, .def = "0s", .min = "0s", .max = "120s",
	 .help = "random variation around delay (see distribution)"},
	CORR("delay"),
	{.name = "distribution", .kind = FL_P_ENUM, .def = "uniform", .enums = dist_names,
	 .help = "shape of the jitter: uniform in delay ± jitter, or a table (normal, pareto, "
		 "paretonormal) scaled by jitter"},
	{.name = "loss", .kind = FL_P_RATIO, .min = "0.01%", .max = "100%",
	 .help = "also drop this share of the matched packets (one fault for delay plus loss: two faults "
		 "cannot act on the same packets)"},
	{.name = "queue", .kind = FL_P_INT, .def = "10000", .min = "16", .max = "65536",
	 .help = "packets that may be held at once; beyond it netem drops and nfqueue lets them "
		 "through undelayed (both counted)"},
	FL_NET_COMMON_PARAMS(delay_backends, "auto"),
	{0},
};

static const struct fl_param loss_params[] = {
	{.name = "percent", .kind = FL_P_RATIO, .required = true, .min = "0.01%", .max = "100%",
	 .help = "share of matched packets dropped"},
	CORR("loss"),
	FL_NET_COMMON_PARAMS(loss_backends, "auto"),
	{0},
};

static const struct fl_param duplicate_params[] = {
	{.name = "percent", .kind = FL_P_RATIO, .required = true, .min = "0.01%", .max = "100%",
	 .help = "share of matched packets sent twice"},
	CORR("duplication"),
	FL_NET_COMMON_PARAMS(netem_backends, "auto"),
	{0},
};

static const struct fl_param corrupt_params[] = {
	{.name = "percent", .kind = FL_P_RATIO, .required = true, .min = "0.01%", .max = "100%",
	 .help = "share of matched packets with one random bit flipped"},
	CORR("corruption"),
	FL_NET_COMMON_PARAMS(netem_backends, "auto"),
	{0},
};

static const struct fl_param reorder_params[] = {
	{.name = "percent", .kind = FL_P_RATIO, .required = true, .min = "0.01%", .max = "100%",
	 .help = "share of matched packets sent at once, ahead of the delayed others"},
	CORR("reordering"),
	{.name = "delay", .kind = FL_P_DURATION, .required = true, .min = "100us", .max = "120s",
	 .help = "delay of the packets that are not reordered (reordering needs a delay to overtake)"},
	{.name = "gap", .kind = FL_P_INT, .def = "1", .min = "1", .max = "1000000",
	 .help = "only every gap-th packet may be reordered (netem's gap)"},
	FL_NET_COMMON_PARAMS(netem_backends, "auto"),
	{0},
};

static const struct fl_param bandwidth_params[] = {
	{.name = "rate", .kind = FL_P_BYTERATE, .required = true, .min = "1KiB/s", .max = "1GiB/s",
	 .help = "the matched traffic's rate limit (10Mbit/s, 2MiB/s)"},
	{.name = "burst", .kind = FL_P_SIZE, .min = "1KiB", .max = "1GiB",
	 .help = "bucket size: bytes that may pass at once (default: 10 ms of rate, at least 16KiB)"},
	{.name = "latency", .kind = FL_P_DURATION, .min = "1ms", .max = "60s",
	 .help = "how long a packet may wait for the bucket before it is dropped (default 50ms; "
		 "exclusive with limit)"},
	{.name = "limit", .kind = FL_P_SIZE, .min = "1KiB", .max = "1GiB",
	 .help = "bytes that may wait for the bucket (exclusive with latency)"},
	FL_NET_COMMON_PARAMS(tbf_backends, "auto"),
	{0},
};

/* ---- from typed values to an effect ---------------------------------------------------------- */

static double ratio(const struct fl_fault *f, const char *name)
{
	const struct fl_value *v = fl_fault_value(f, name);

	return v->set ? v->d : 0;
}

static int64_t dur(const struct fl_fault *f, const char *name)
{
	const struct fl_value *v = fl_fault_value(f, name);

	return v->set ? v->i : 0;
}

static void effect_of(const struct fl_fault *f, struct fl_net_effect *fx)
{
	const char *t = f->inj->type;
	const struct fl_value *v;

	memset(fx, 0, sizeof(*fx));
	fx->queue_pkts = 10000;
	if (!strcmp(t, "network.delay")) {
		fx->delay_ns = dur(f, "delay");
		fx->jitter_ns = dur(f, "jitter");
		fx->delay_corr = ratio(f, "correlation");
		fx->dist = (enum fl_net_dist)fl_fault_value(f, "distribution")->i;
		fx->queue_pkts = (uint32_t)fl_fault_value(f, "queue")->i;
		fx->loss = ratio(f, "loss");
	} else if (!strcmp(t, "network.loss")) {
		fx->loss = ratio(f, "percent");
		fx->loss_corr = ratio(f, "correlation");
	} else if (!strcmp(t, "network.duplicate")) {
		fx->duplicate = ratio(f, "percent");
		fx->duplicate_corr = ratio(f, "correlation");
	} else if (!strcmp(t, "network.corrupt")) {
		fx->corrupt = ratio(f, "percent");
		fx->corrupt_corr = ratio(f, "correlation");
	} else if (!strcmp(t, "network.reorder")) {
		fx->reorder = ratio(f, "percent");
		fx->reorder_corr = ratio(f, "correlation");
		fx->delay_ns = dur(f, "delay");
		fx->gap = (int)fl_fault_value(f, "gap")->i;
	} else if (!strcmp(t, "network.bandwidth")) {
		fx->rate = fl_fault_value(f, "rate")->u;
		v = fl_fault_value(f, "burst");
		/* 10 ms worth of rate keeps tbf smooth; below ~16 KiB a GSO packet could never pass */
		fx->burst = v->set ? v->u : fx->rate / 100 > 16384 ? fx->rate / 100 : 16384;
		fx->limit = fl_fault_value(f, "limit")->set ? fl_fault_value(f, "limit")->u : 0;
		fx->latency_ns = fl_fault_value(f, "latency")->set ? dur(f, "latency") :
				 fx->limit ? 0 : 50 * 1000000LL;
	}
}

/* ---- backend choice ------------------------------------------------------------------------- */

static const char *const *backends_of(const struct fl_fault *f)
{
	int i = fl_param_index(f->inj->params, "backend");

	return f->inj->params[i].enums;
}

static bool needs_iface(const struct fl_net_backend *b);
static int build_req(const struct fl_fault *f, const struct fl_net_backend *b, struct fl_net_req *r,
		     struct fl_err *err);

/*
 * The backend a fault runs on, with its request built: the one named, or for auto the first in
 * the table's order that this host can run (its probe passed; with may_probe false, as in plan,
 * an unprobed one counts as possible) and whose check passes for this fault now — so a netem
 * host still falls back to nfqueue for an ingress match. cgroup is never chosen by auto: it
 * drops on ingress only and needs the target's cgroup. NULL: err has every candidate's reason.
 */
struct try_ctx {
	const struct fl_fault *f;
	const char *const *names;
	bool auto_, may_probe;
	struct fl_net_req *r;
};

static int try_backend(int i, void *arg, struct fl_err *e)
{
	struct try_ctx *c = arg;
	const struct fl_net_backend *b = backend_named(c->names[i]);
	int rc = 0;

	if (c->auto_ && b == &fl_net_backend_cgroup)
		return 1;
	if (c->may_probe || fl_probe_done(b->probe, &rc))
		rc = fl_probe_once(b->probe, e);
	if (!rc)
		rc = build_req(c->f, b, c->r, e);
	if (!rc && (rc = b->check(c->r, e)))
		fl_net_req_fini(c->r);
	return rc;
}

static const struct fl_net_backend *choose(const struct fl_fault *f, bool may_probe, struct fl_net_req *r,
					   struct fl_err *err)
{
	int named = (int)fl_fault_value(f, "backend")->i;
	struct try_ctx c = {.f = f, .names = backends_of(f), .auto_ = named == B_AUTO, .may_probe = may_probe, .r = r};
	int i = fl_choose(f->inj->type, c.names, named, try_backend, &c, err);

	return i > 0 ? backend_named(c.names[i]) : NULL;
}

static bool needs_iface(const struct fl_net_backend *b)
{
	return b != &fl_net_backend_cgroup;
}

static int build_req(const struct fl_fault *f, const struct fl_net_backend *b, struct fl_net_req *r,
		     struct fl_err *err)
{
	int rc = fl_net_req_init(f, needs_iface(b), r, err);

	if (rc) {
		fl_net_req_fini(r);
		return rc;
	}
	effect_of(f, &r->fx);
	return 0;
}

/* ---- the injector ops, shared by every type ------------------------------------------------- */

struct front_state {
	const struct fl_net_backend *b;
	void *bstate;
	struct fl_net_req req;
};

static int front_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err)
{
	int rc = fl_net_match_validate(f, blame, err);

	if (rc)
		return rc;
	if (!strcmp(f->inj->type, "network.bandwidth") && fl_fault_value(f, "limit")->set &&
	    fl_fault_value(f, "latency")->set) {
		*blame = fl_fault_value(f, "limit");
		fl_err_set(err, -EINVAL, "limit and latency both say how long the tbf queue is");
		fl_err_hint(err, "give one of them");
		return -EINVAL;
	}
	if (!strcmp(f->inj->type, "network.bandwidth")) {
		struct fl_net_effect fx;

		effect_of(f, &fx);
		/* tbf takes its bucket as 32-bit ticks of time at `rate` and its queue as an int of bytes */
		if ((double)fx.burst / (double)fx.rate > 200.0) {
			*blame = fl_fault_value(f, "burst")->set ? fl_fault_value(f, "burst") : fl_fault_value(f, "rate");
			fl_err_set(err, -ERANGE, "a burst of %llu bytes at this rate takes over 200 s to refill, "
						 "more than tbf can hold", (unsigned long long)fx.burst);
			fl_err_hint(err, "lower burst or raise rate");
			return -ERANGE;
		}
		if ((double)fx.rate * (double)fx.latency_ns / 1e9 + (double)fx.burst + (double)fx.limit > 2147483647.0) {
			*blame = fl_fault_value(f, "latency")->set ? fl_fault_value(f, "latency") : fl_fault_value(f, "limit");
			fl_err_set(err, -ERANGE, "the tbf queue (rate x latency + burst) would exceed 2 GiB");
			fl_err_hint(err, "lower latency or limit");
			return -ERANGE;
		}
	}
	if (!strcmp(f->inj->type, "network.delay") && fl_fault_value(f, "distribution")->i != FL_DIST_UNIFORM &&
	    !fl_fault_value(f, "jitter")->i) {
		*blame = fl_fault_value(f, "distribution");
		fl_err_set(err, -EINVAL, "a distribution shapes the jitter, and jitter is 0");
		fl_err_hint(err, "set jitter, or drop distribution");
		return -EINVAL;
	}
	return 0;
}

static bool cidr_disjoint(const struct fl_cidr *a, const struct fl_cidr *b)
{
	int n = a->prefix < b->prefix ? a->prefix : b->prefix;

	if (a->family != b->family)
		return true;
	for (int i = 0; i < n; i++)
		if (((a->addr[i / 8] ^ b->addr[i / 8]) >> (7 - i % 8)) & 1)
			return true;
	return false;
}

/*
 * Two tc/nfqueue faults that can see the same packet at the same time: the classifier (or the
 * first NFQUEUE rule) gives it to one of them only, so the other would silently do nothing
 * there. Disjoint when any field both set tells them apart.
 */
static int front_conflicts(const struct fl_fault *a, const struct fl_fault *b, struct fl_err *err)
{
	const struct fl_value *na = fl_fault_value(a, "netns"), *nb = fl_fault_value(b, "netns");
	const char *ba = fl_fault_value(a, "backend")->s, *bb = fl_fault_value(b, "backend")->s;
	struct fl_net_match ma, mb;

	if (fl_net_match_get(a, &ma, NULL) || fl_net_match_get(b, &mb, NULL))
		return 0;
	/* different mechanisms on one packet stack (NFQUEUE in OUTPUT, then the qdisc; cgroup hooks) */
	if ((ba && bb && strcmp(ba, "auto") && strcmp(bb, "auto") && strcmp(ba, bb)) ||
	    (ba && !strcmp(ba, "cgroup")) || (bb && !strcmp(bb, "cgroup")))
		return 0;
	if (na->set != nb->set || (na->set && strcmp(na->s, nb->s)) || ma.dir != mb.dir ||
	    (ma.iface[0] && mb.iface[0] && strcmp(ma.iface, mb.iface)) ||
	    (ma.has_dst && mb.has_dst && cidr_disjoint(&ma.dst, &mb.dst)) ||
	    (ma.has_src && mb.has_src && cidr_disjoint(&ma.src, &mb.src)) ||
	    (ma.dst_port && mb.dst_port && ma.dst_port != mb.dst_port) ||
	    (ma.src_port && mb.src_port && ma.src_port != mb.src_port) ||
	    (ma.proto != FL_NET_ANY && mb.proto != FL_NET_ANY && ma.proto != mb.proto))
		return 0;
	fl_err_set(err, -EINVAL, "acts on the same packets as %s while both are in force: each packet goes "
				 "to the first matching fault only, so one of them would do nothing",
		   a->name);
	fl_err_hint(err, "give them disjoint matches, run them one after the other, or use one fault "
			 "(network.delay also takes loss)");
	return -EINVAL;
}

/* A type is runnable when any of its backends is; the note says which can and which cannot. */
static int probe_any(const char *const *names, struct fl_err *err)
{
	fl_probe_fn probes[8];
	int n = 0;

	for (int i = 1; names[i] && n < 8; i++, n++)
		probes[n] = backend_named(names[i])->probe;
	return fl_probe_any(names + 1, probes, n, err);
}

static int front_check(const struct fl_fault *f, struct fl_err *err)
{
	struct fl_net_req r;

	if (!choose(f, false, &r, err))
		return err && err->code ? err->code : -EOPNOTSUPP;
	fl_net_req_fini(&r);
	return 0;
}

static void front_describe(const struct fl_fault *f, char *buf, size_t len)
{
	struct fl_net_match m;
	char what[200];
	const char *bk = fl_fault_value(f, "backend")->s;

	if (fl_net_match_get(f, &m, NULL))
		memset(&m, 0, sizeof(m));
	fl_net_match_format(&m, what, sizeof(what));
	if (!strcmp(bk ? bk : "auto", "auto"))
		bk = strcmp(f->inj->type, "network.bandwidth") ? "auto (netem where the kernel has it, else "
								 "nfqueue)" : "tbf";
	snprintf(buf, len, "%s on %s, in %s; backend %s; the interface's root qdisc (or rule) is "
			   "restored on revert", f->inj->type + strlen("network."), what,
		 fl_fault_value(f, "netns")->set ? fl_fault_value(f, "netns")->s : "the target's netns", bk);
}

static int front_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	struct front_state *st = calloc(1, sizeof(*st));

	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	st->b = choose(f, true, &st->req, err);
	if (!st->b) {
		free(st);
		return err && err->code ? err->code : -EOPNOTSUPP;
	}
	/* from here the state exists: revert must run even if apply fails halfway */
	f->state = st;
	return st->b->apply(&st->req, j, &st->bstate, err);
}

static int front_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct front_state *st = f->state;

	if (!st)
		return -ENOENT;
	fl_obs_text(o, "backend", "%s", st->b->name);
	return st->bstate ? st->b->observe(st->bstate, o) : 0;
}

static int front_revert(struct fl_fault *f, struct fl_err *err)
{
	struct front_state *st = f->state;

	if (!st || !st->bstate)
		return 0;
	return st->b->revert(st->bstate, err);
}

static void front_release(struct fl_fault *f)
{
	struct front_state *st = f->state;

	if (!st)
		return;
	if (st->bstate)
		st->b->release(st->bstate);
	fl_net_req_fini(&st->req);
	free(st);
	f->state = NULL;
}

static int front_revert_record(const struct fl_journal_rec *rec, struct fl_err *err)
{
	char name[32];
	const struct fl_net_backend *b;

	if (!fl_rec_get(rec, "backend", name, sizeof(name)))
		return fl_err_set(err, -EINVAL, "journal record %llu names no backend",
				  (unsigned long long)rec->seq);
	b = backend_named(name);
	if (!b)
		return fl_err_set(err, -ENOENT, "journal record %llu: unknown backend '%s'",
				  (unsigned long long)rec->seq, name);
	return b->revert_record(rec, err);
}

/* One sweep covers every type: they share the backends and the names they give. */
static int front_sweep(const struct fl_sweep *sw)
{
	int rc = 0;

	if (fl_net_backend_netem.sweep && fl_net_backend_netem.sweep(sw))
		rc = -EIO;
	if (fl_net_backend_nfqueue.sweep && fl_net_backend_nfqueue.sweep(sw))
		rc = -EIO;
	if (fl_net_backend_cgroup.sweep && fl_net_backend_cgroup.sweep(sw))
		rc = -EIO;
	return rc;
}

#define NET_FRONT(id, type_, summary_, params_, backends_, sweep_)                                 \
	static int id##_probe(struct fl_err *err) { return probe_any(backends_, err); }            \
	const struct fl_injector fl_inj_##id = {                                                    \
		.type = type_,                                                                      \
		.summary = summary_,                                                                \
		.preflight = "the namespace and interface exist; the backend runs here (netem: "    \
			     "sch_netem/tbf, htb and cls_bpf load, probed in a scratch netns; "    \
			     "nfqueue: iptables NFQUEUE works); a host interface needs a match or " \
			     "allow_host_wide; the root qdisc can be restored exactly",            \
		.params = params_,                                                                  \
		.validate = front_validate,                                                         \
		.conflicts = front_conflicts,                                                       \
		.probe = id##_probe,                                                                \
		.check = front_check,                                                               \
		.describe = front_describe,                                                         \
		.apply = front_apply,                                                               \
		.observe = front_observe,                                                           \
		.revert = front_revert,                                                             \
		.release = front_release,                                                           \
		.revert_record = front_revert_record,                                               \
		.sweep = sweep_,                                                                    \
	}

NET_FRONT(network_delay, "network.delay",
	  "add delay (and jitter) to matched packets: tc netem via libnl, or a userspace NFQUEUE delayer",
	  delay_params, delay_backends, front_sweep);
NET_FRONT(network_loss, "network.loss",
	  "drop a share of matched packets: netem, NFQUEUE, or cgroup-scoped on ingress via eBPF",
	  loss_params, loss_backends, NULL);
NET_FRONT(network_duplicate, "network.duplicate", "send a share of matched packets twice (netem)",
	  duplicate_params, netem_backends, NULL);
NET_FRONT(network_corrupt, "network.corrupt", "flip a bit in a share of matched packets (netem)",
	  corrupt_params, netem_backends, NULL);
NET_FRONT(network_reorder, "network.reorder",
	  "let a share of matched packets overtake the delayed others (netem)", reorder_params, netem_backends, NULL);
NET_FRONT(network_bandwidth, "network.bandwidth",
	  "limit the matched traffic's rate (tc tbf via libnl)", bandwidth_params, tbf_backends, NULL);
