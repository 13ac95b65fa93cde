/* Loader of net_cgroup.bpf.c and the cgroup-BPF network faults: network.partition, network.dns and the cgroup backend of network.loss. */
#include "net_cgroup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/bpf.h>

#include <bpf/libbpf.h>

#include "bpf_common.h"
#include "injector.h"
#include "journal.h"
#include "net.h"
#include "units.h"

#include "net_cgroup.skel.h"

/* revert_record reads the mark at offset 0 of a program's .rodata: keep the layout that way. */
_Static_assert(offsetof(struct net_cgroup__rodata, fl_cfg) == 0, "fl_cfg must open .rodata");
_Static_assert(sizeof(struct net_cgroup__rodata) == sizeof(struct fl_cg_cfg), "fl_cfg must be all of .rodata");
_Static_assert(offsetof(struct fl_cg_cfg, magic) == offsetof(struct fl_bpf_mark, magic) &&
		       offsetof(struct fl_cg_cfg, tag) == offsetof(struct fl_bpf_mark, tag),
	       "fl_cfg opens with the mark");
_Static_assert(sizeof(struct fl_cg_cfg) <= FL_BPF_RODATA_MAX, "fl_cfg fits the read-back buffer");
_Static_assert(FL_CG_H_NHOOKS <= FL_BPF_MAX_HOOKS, "hooks");

/* ---- hooks ---------------------------------------------------------------------------------- */

/* In the order of enum fl_cg_hook's bits. */
static const struct fl_bpf_hook cg_hooks[FL_CG_H_NHOOKS] = {
	{"connect4", "fl_cg_connect4", BPF_CGROUP_INET4_CONNECT},
	{"connect6", "fl_cg_connect6", BPF_CGROUP_INET6_CONNECT},
	{"sendmsg4", "fl_cg_sendmsg4", BPF_CGROUP_UDP4_SENDMSG},
	{"sendmsg6", "fl_cg_sendmsg6", BPF_CGROUP_UDP6_SENDMSG},
	{"egress", "fl_cg_egress", BPF_CGROUP_INET_EGRESS},
	{"ingress", "fl_cg_ingress", BPF_CGROUP_INET_INGRESS},
};

static const struct fl_bpf_kind cg_kind = {
	.prefix = "fl_cg_",
	.magic = FL_CG_MAGIC,
	.rodata_size = sizeof(struct fl_cg_cfg),
	.hooks = cg_hooks,
	.nhooks = FL_CG_H_NHOOKS,
	.lsm = false,
};

void fl_cg_hooks_format(unsigned hooks, char *buf, size_t len)
{
	fl_bpf_hooks_join(&cg_kind, hooks, false, buf, len);
}

void fl_cg_progs_format(unsigned hooks, char *buf, size_t len)
{
	fl_bpf_hooks_join(&cg_kind, hooks, true, buf, len);
}

/* ---- load, attach, count, unload --------------------------------------------------------------- */

struct fl_cg_prog {
	struct net_cgroup *skel;
	struct fl_bpf_links links;
	uint64_t snap[FL_CG_NCOUNTERS];  /* the counters when unloaded */
	bool unloaded;
};

int fl_cg_load(const struct fl_cg_cfg *cfg, unsigned hooks, struct fl_cg_prog **out, struct fl_err *err)
{
	struct fl_cg_prog *p;
	int rc;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return fl_err_set(err, -ENOMEM, "out of memory");
	p->skel = net_cgroup__open();
	if (!p->skel) {
		rc = fl_err_set(err, -errno, "net_cgroup__open: %s", strerror(errno));
		goto out;
	}
	rc = fl_bpf_links_init(&p->links, &cg_kind, p->skel->obj, hooks, err);
	if (rc)
		goto out;
	p->skel->rodata->fl_cfg = *cfg;
	p->skel->rodata->fl_cfg.magic = FL_CG_MAGIC;
	rc = net_cgroup__load(p->skel);
	if (rc) {
		fl_bpf_load_error("net_cgroup", rc, err);
		goto out;
	}
	*out = p;
	return 0;
out:
	fl_cg_destroy(p);
	return rc;
}

int fl_cg_attach(struct fl_cg_prog *p, const char *cgroup, struct fl_err *err)
{
	return fl_bpf_links_attach(&p->links, cgroup, err);
}

static int read_counters(struct fl_cg_prog *p, uint64_t out[FL_CG_NCOUNTERS])
{
	return fl_bpf_percpu_sum(p->skel->maps.fl_cg_counters, FL_CG_NCOUNTERS, out);
}

int fl_cg_counters(struct fl_cg_prog *p, uint64_t out[FL_CG_NCOUNTERS])
{
	if (!p)
		return -ENOENT;
	if (p->unloaded || !p->skel) {
		memcpy(out, p->snap, sizeof(p->snap));
		return 0;
	}
	return read_counters(p, out);
}

int fl_cg_unload(struct fl_cg_prog *p, struct fl_err *err)
{
	int rc = 0;

	if (!p || p->unloaded)
		return 0;
	/* detach first: nothing more is counted, so the snapshot is final */
	fl_bpf_links_drop(&p->links);
	if (p->skel) {
		rc = read_counters(p, p->snap);
		if (rc)
			fl_err_set(err, rc, "reading the counters before unloading: %s (detached anyway)",
				   strerror(-rc));
		net_cgroup__destroy(p->skel);
		p->skel = NULL;
	}
	p->unloaded = true;
	return rc;
}

void fl_cg_destroy(struct fl_cg_prog *p)
{
	if (!p)
		return;
	fl_bpf_links_drop(&p->links);
	net_cgroup__destroy(p->skel);
	free(p);
}

int fl_cg_probe(struct fl_err *err)
{
	struct fl_cg_cfg cfg = {.threshold = 1ULL << 32, .err = ECONNREFUSED};
	struct fl_cg_prog *p = NULL;
	libbpf_print_fn_t quiet;
	int rc;

	rc = fl_bpf_need_cgroup2(err);
	if (rc)
		return rc;
	/*
	 * Every program, to know the verifier takes them all; freed at once, never attached. libbpf
	 * is silenced meanwhile: our reason is precise, its "raise RLIMIT_MEMLOCK" guess is not.
	 */
	quiet = libbpf_set_print(NULL);
	rc = fl_cg_load(&cfg, (1u << FL_CG_H_NHOOKS) - 1, &p, err);
	libbpf_set_print(quiet);
	fl_cg_destroy(p);
	return rc;
}

/* ---- journal records -------------------------------------------------------------------------- */

int fl_cg_record_format(const char *cgroup, uint64_t cgid, uint64_t tag, unsigned hooks, char *buf,
			size_t len)
{
	char esc[800], hk[128], progs[160];
	int n;

	if (fl_bpf_escape(cgroup, esc, sizeof(esc)))
		return -ENAMETOOLONG;
	fl_cg_hooks_format(hooks, hk, sizeof(hk));
	fl_cg_progs_format(hooks, progs, sizeof(progs));
	n = snprintf(buf, len, "cgroup=%s cgid=%llu tag=%016llx hooks=%s progs=%s", esc,
		     (unsigned long long)cgid, (unsigned long long)tag, hk, progs);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int fl_cg_count_attached(const char *cgroup, uint64_t tag, struct fl_err *err)
{
	return fl_bpf_cgroup_count_attached(&cg_kind, cgroup, tag, err);
}

int fl_cg_revert_record(const struct fl_journal_rec *rec, int *detached, struct fl_err *err)
{
	return fl_bpf_cgroup_revert_record(&cg_kind, rec, detached, err);
}

/* ---- what the three faults share ----------------------------------------------------------- */

static uint64_t prob_threshold(double p)
{
	if (p >= 1.0)
		return 1ULL << 32;
	if (p <= 0.0)
		return 0;
	return (uint64_t)llround(p * 4294967296.0);
}

static void end_set(struct fl_cg_end *e, const struct fl_cidr *c, uint16_t port)
{
	memset(e, 0, sizeof(*e));
	e->port = port;
	if (!c)
		return;
	e->has_addr = 1;
	e->family = c->family == AF_INET6 ? FL_CG_F_V6 : FL_CG_F_V4;
	fl_bpf_cidr_words(c, e->addr, e->mask);
}

static unsigned families_of(const struct fl_cidr *a, const struct fl_cidr *b)
{
	const struct fl_cidr *c = a ? a : b;

	if (!c)
		return FL_CG_F_V4 | FL_CG_F_V6;
	return c->family == AF_INET6 ? FL_CG_F_V6 : FL_CG_F_V4;
}

static void cidr_text(const struct fl_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(c->family, c->addr, a, sizeof(a));
	if (c->prefix == (c->family == AF_INET6 ? 128 : 32))
		snprintf(buf, len, "%s", a);
	else
		snprintf(buf, len, "%s/%d", a, c->prefix);
}

/* "to 10.0.0.0/8 port 5432", "to any address port 53", "to anywhere" */
static void peer_text(const char *word, const struct fl_cidr *c, uint16_t port, char *buf, size_t len)
{
	char a[64] = "";

	if (c)
		cidr_text(c, a, sizeof(a));
	snprintf(buf, len, "%s %s%s%.0u", word, c ? a : port ? "any address" : "anywhere",
		 port ? " port " : "", port);
}

/* The state of one applied fault (any of the three). */
struct cg_state {
	struct fl_cg_prog *prog;
	struct fl_cg_cfg cfg;
	unsigned hooks;
	char cgroup[4096];
	int mode;           /* injector-specific */
	double probability; /* as configured */
	bool reverted;
};

/* Journal first (the record names the cgroup, its id, the hooks, the programs, the tag), then load and attach. */
static int cg_apply(const struct fl_fault *f, struct fl_journal *j, const char *cgroup, bool host_wide,
		    const char *prefix, const char *extra, struct cg_state *st, struct fl_err *err)
{
	char rec[FL_REC_DATA];
	uint64_t cgid;
	int64_t seq;
	int rc;

	rc = fl_bpf_cgroup_scope(cgroup, host_wide, &cgid, err);
	if (rc)
		return rc;
	snprintf(st->cgroup, sizeof(st->cgroup), "%s", cgroup);
	st->cfg.tag = fl_bpf_new_tag();
	if (fl_cg_record_format(cgroup, cgid, st->cfg.tag, st->hooks, rec, sizeof(rec)))
		return fl_err_set(err, -ENAMETOOLONG, "cgroup path %s is too long for a journal record", cgroup);
	seq = fl_journal_append(j, f, "%s%s%s%s", prefix, rec, extra[0] ? " " : "", extra);
	if (seq < 0)
		return fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
	rc = fl_cg_load(&st->cfg, st->hooks, &st->prog, err);
	if (rc)
		return rc;
	rc = fl_cg_attach(st->prog, cgroup, err);
	if (rc) {
		fl_cg_destroy(st->prog);
		st->prog = NULL;
	}
	return rc;
}

static int cg_revert(struct cg_state *st, struct fl_err *err)
{
	int rc;

	if (!st || st->reverted)
		return 0;
	rc = fl_cg_unload(st->prog, err);
	/* the links are gone even when the last counter read failed: do not detach twice */
	st->reverted = true;
	return rc;
}

static void cg_release(struct cg_state *st)
{
	if (!st)
		return;
	fl_cg_destroy(st->prog);
	free(st);
}

static double ratio(uint64_t num, uint64_t den)
{
	return den ? (double)num / (double)den : 0.0;
}

/* matched / acted / observed ratio next to the configured probability, under the given key names. */
static void obs_triple(struct fl_observation *o, const char *k_matched, const char *k_acted,
		       const char *k_ratio, uint64_t matched, uint64_t acted)
{
	fl_obs_num(o, k_matched, (double)matched, "%llu", (unsigned long long)matched);
	fl_obs_num(o, k_acted, (double)acted, "%llu", (unsigned long long)acted);
	if (matched)
		fl_obs_num(o, k_ratio, ratio(acted, matched), "%.1f%%", 100.0 * ratio(acted, matched));
	else
		fl_obs_text(o, k_ratio, "n/a (nothing matched yet)");
}

static void obs_common(struct fl_observation *o, const struct cg_state *st)
{
	fl_obs_num(o, "probability", st->probability, "%.1f%%", 100.0 * st->probability);
	fl_bpf_obs_hooks(o, &cg_kind, "", st->hooks, st->reverted);
}

static const char *errno_text(int e)
{
	const char *n = fl_errno_name(e);

	return n ? n : "?";
}

/* errnos a refused connect() can plausibly fail with; anything else would be a fault no kernel makes */
static const int allowed_errnos[] = {ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH,
				     ECONNRESET,   EACCES,    EPERM};

static int errno_validate(const struct fl_value *v, const struct fl_value **blame, struct fl_err *err)
{
	for (size_t i = 0; i < sizeof(allowed_errnos) / sizeof(allowed_errnos[0]); i++)
		if (v->i == allowed_errnos[i])
			return 0;
	*blame = v;
	fl_err_set(err, -EINVAL, "errno %s is not one connect() or sendmsg() fails with for a network fault",
		   errno_text((int)v->i));
	fl_err_hint(err, "use ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, ECONNRESET, EACCES or EPERM");
	return -EINVAL;
}

/* ---- network.partition ------------------------------------------------------------------------ */

static const char *const part_modes[] = {"refuse", "blackhole", NULL};
enum { PART_REFUSE, PART_BLACKHOLE };

static const struct fl_param part_params[] = {
	{.name = "match", .kind = FL_P_OBJECT, .sub = fl_net_match_params,
	 .help = "which destinations: dst_ip (address or CIDR), dst_port, protocol (tcp, udp; icmp only "
		 "with mode: blackhole); unset fields match anything. interface, direction, src_ip, "
		 "src_port do not apply: the scope is the target's cgroup"},
	{.name = "mode", .kind = FL_P_ENUM, .def = "refuse", .enums = part_modes,
	 .help = "refuse: connect() (and unconnected UDP sendmsg) fail at once with `errno`; blackhole: "
		 "packets to and from the destinations vanish, so connects hang until the caller's own "
		 "timeout (the kernel's SYN retries end in ETIMEDOUT after about 2 minutes) and UDP sends "
		 "succeed unanswered (a socket with IP_RECVERR, like glibc's resolver, sees ENOBUFS: use "
		 "network.dns for DNS); icmp is cut on the way back"},
	{.name = "errno", .kind = FL_P_ERRNO, .def = "ECONNREFUSED",
	 .help = "what connect()/sendmsg() fail with (mode: refuse): ECONNREFUSED, ETIMEDOUT, "
		 "EHOSTUNREACH, ENETUNREACH, ECONNRESET, EACCES or EPERM"},
	{.name = "probability", .kind = FL_P_RATIO, .def = "100%", .min = "0%", .max = "100%",
	 .help = "share of matched connects refused (refuse: each connect() rolls) or of flows "
		 "blackholed (blackhole: per connection, all its packets)"},
	{0},
};

static const struct fl_value *match_sub(const struct fl_fault *f, const char *name)
{
	const struct fl_value *m = fl_fault_value(f, "match");
	int i = fl_param_index(fl_net_match_params, name);

	return m->set && m->obj && i >= 0 ? &m->obj[i] : NULL;
}

/* A match field this mechanism cannot honour, given explicitly: refuse it where it was written. */
static int match_field_refused(const struct fl_fault *f, const char *name, const char *why,
			       const struct fl_value **blame, struct fl_err *err)
{
	const struct fl_value *v = match_sub(f, name);

	if (!v || !v->set || v->defaulted)
		return 0;
	*blame = v;
	return fl_err_set(err, -EINVAL, "match.%s does not apply to %s: %s", name, f->inj->type, why);
}

static int part_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err)
{
	const struct fl_value *mode = fl_fault_value(f, "mode"), *e = fl_fault_value(f, "errno");
	const struct fl_value *proto = match_sub(f, "protocol"), *cg = match_sub(f, "cgroup");
	int rc;

	rc = fl_net_match_validate(f, blame, err);
	if (rc)
		return rc;
	if ((rc = match_field_refused(f, "interface", "the hooks act on the target's sockets, on every "
						      "interface", blame, err)) ||
	    (rc = match_field_refused(f, "direction", "connects go out; blackhole drops both directions",
				      blame, err)) ||
	    (rc = match_field_refused(f, "src_ip", "match the destination with dst_ip", blame, err)) ||
	    (rc = match_field_refused(f, "src_port", "match the destination with dst_port", blame, err)))
		return rc;
	if (cg && cg->set && !cg->defaulted && !cg->b) {
		*blame = cg;
		return fl_err_set(err, -EINVAL, "match.cgroup: false is impossible here: %s always acts on "
						"the target's cgroup only", f->inj->type);
	}
	if (mode->i == PART_REFUSE && proto && proto->set && proto->i == FL_NET_ICMP) {
		*blame = proto;
		fl_err_set(err, -EINVAL, "mode: refuse acts on connect() and sendmsg(), which icmp does not use");
		fl_err_hint(err, "use mode: blackhole to drop icmp, or protocol: tcp or udp");
		return -EINVAL;
	}
	if (mode->i == PART_BLACKHOLE && e->set && !e->defaulted) {
		*blame = e;
		fl_err_set(err, -EINVAL, "errno applies to mode: refuse only: a blackhole fails nothing, it hangs");
		return -EINVAL;
	}
	return errno_validate(e, blame, err);
}

static int part_probe(struct fl_err *err)
{
	return fl_cg_probe(err);
}

/* Everything the partition's programs need, from the fault's values; read-only. */
static int part_config(const struct fl_fault *f, struct cg_state *st, struct fl_err *err)
{
	struct fl_net_match m;
	unsigned protos;
	int rc;

	rc = fl_net_match_get(f, &m, err);
	if (rc)
		return rc;
	memset(&st->cfg, 0, sizeof(st->cfg));
	st->mode = (int)fl_fault_value(f, "mode")->i;
	st->probability = fl_fault_value(f, "probability")->d;
	st->cfg.threshold = prob_threshold(st->probability);
	st->cfg.err = (__u32)fl_fault_value(f, "errno")->i;
	end_set(&st->cfg.peer, m.has_dst ? &m.dst : NULL, m.dst_port);
	st->cfg.families = families_of(m.has_dst ? &m.dst : NULL, NULL);
	protos = m.proto == FL_NET_TCP ? FL_CG_P_TCP : m.proto == FL_NET_UDP ? FL_CG_P_UDP :
		 m.proto == FL_NET_ICMP ? FL_CG_P_ICMP : FL_CG_P_TCP | FL_CG_P_UDP;
	if (st->mode == PART_REFUSE) {
		st->cfg.protos = protos;
		/* a v4 destination can also be reached from a v6 socket, as ::ffff:a.b.c.d */
		st->hooks = FL_CG_H_CONNECT4 | FL_CG_H_CONNECT6;
		if (m.has_dst && m.dst.family == AF_INET6)
			st->hooks = FL_CG_H_CONNECT6;
		if (protos & FL_CG_P_UDP)
			st->hooks |= st->hooks & FL_CG_H_CONNECT4 ? FL_CG_H_SENDMSG4 | FL_CG_H_SENDMSG6
								     : FL_CG_H_SENDMSG6;
	} else {
		/* no port and no protocol: every packet to and from the destination */
		st->cfg.protos = m.proto == FL_NET_ANY && !m.dst_port ? FL_CG_P_TCP | FL_CG_P_UDP | FL_CG_P_ICMP |
									FL_CG_P_OTHER : protos;
		st->cfg.skb_verdict = FL_CG_SKB_DROP_CN;
		st->cfg.per_flow = 1;
		st->hooks = FL_CG_H_EGRESS | FL_CG_H_INGRESS;
	}
	return 0;
}

static int part_check(const struct fl_fault *f, struct fl_err *err)
{
	struct cg_state st;
	int rc;

	memset(&st, 0, sizeof(st));
	rc = part_config(f, &st, err);
	if (rc)
		return rc;
	if (!f->target)
		return fl_err_set(err, -ESRCH, "network.partition needs a target (its cgroup scopes the fault)");
	return fl_bpf_cgroup_scope(f->target->cgroup_v2, f->target->allow_host_wide, NULL, err);
}

static void part_describe(const struct fl_fault *f, char *buf, size_t len)
{
	struct cg_state st;
	struct fl_net_match m;
	char to[128], hk[128];
	const char *where = f->target && f->target->cgroup_v2[0] ? f->target->cgroup_v2 : "the target's cgroup v2 dir";

	memset(&st, 0, sizeof(st));
	if (part_config(f, &st, NULL) || fl_net_match_get(f, &m, NULL)) {
		snprintf(buf, len, "cgroup BPF partition (invalid match)");
		return;
	}
	peer_text("to", m.has_dst ? &m.dst : NULL, m.dst_port, to, sizeof(to));
	fl_cg_hooks_format(st.hooks, hk, sizeof(hk));
	if (st.mode == PART_REFUSE)
		snprintf(buf, len, "cgroup/%s on %s: connect()/sendmsg() %s fail with %s (%.4g%%); links "
				   "detached on revert",
			 hk, where, to, errno_text((int)st.cfg.err), 100.0 * st.probability);
	else
		snprintf(buf, len, "cgroup_skb %s on %s: packets %s and back are dropped (%.4g%% of flows), "
				   "connects hang; links detached on revert",
			 hk, where, to, 100.0 * st.probability);
}

static int part_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	struct cg_state *st = calloc(1, sizeof(*st));
	char extra[96];
	int rc;

	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	rc = part_config(f, st, err);
	if (rc)
		goto out;
	snprintf(extra, sizeof(extra), "mode=%s errno=%u", part_modes[st->mode], st->cfg.err);
	rc = cg_apply(f, j, f->target ? f->target->cgroup_v2 : "", f->target && f->target->allow_host_wide,
		      "", extra, st, err);
	if (rc)
		goto out;
	f->state = st;
	return 0;
out:
	cg_release(st);
	return rc;
}

static int part_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct cg_state *st = f->state;
	uint64_t c[FL_CG_NCOUNTERS] = {0};
	int rc;

	if (!st)
		return -ENOENT;
	rc = fl_cg_counters(st->prog, c);
	if (rc)
		return rc;
	if (st->mode == PART_REFUSE) {
		obs_triple(o, "connects_matched", "connects_refused", "refused_observed", c[FL_CG_CONN_MATCHED],
			   c[FL_CG_CONN_REFUSED]);
		if (st->hooks & (FL_CG_H_SENDMSG4 | FL_CG_H_SENDMSG6))
			obs_triple(o, "sends_matched", "sends_refused", "sends_refused_observed",
				   c[FL_CG_SEND_MATCHED], c[FL_CG_SEND_REFUSED]);
		fl_obs_text(o, "errno", "%s", errno_text((int)st->cfg.err));
	} else {
		obs_triple(o, "packets_matched", "packets_dropped", "dropped_observed",
			   c[FL_CG_EGRESS_MATCHED] + c[FL_CG_INGRESS_MATCHED],
			   c[FL_CG_EGRESS_DROPPED] + c[FL_CG_INGRESS_DROPPED]);
		fl_obs_num(o, "egress_dropped", (double)c[FL_CG_EGRESS_DROPPED], "%llu",
			   (unsigned long long)c[FL_CG_EGRESS_DROPPED]);
		fl_obs_num(o, "ingress_dropped", (double)c[FL_CG_INGRESS_DROPPED], "%llu",
			   (unsigned long long)c[FL_CG_INGRESS_DROPPED]);
	}
	obs_common(o, st);
	return 0;
}

static int part_revert(struct fl_fault *f, struct fl_err *err)
{
	return cg_revert(f->state, err);
}

static void part_release(struct fl_fault *f)
{
	cg_release(f->state);
	f->state = NULL;
}

static int cg_revert_record_op(const struct fl_journal_rec *rec, struct fl_err *err)
{
	return fl_cg_revert_record(rec, NULL, err);
}

/*
 * No sweep: nothing is pinned or named outside the process. The links are unpinned, so they
 * detach when the controller's last fd closes (a dead controller takes them along), and a hung
 * one is handled from the journal by revert_record.
 */
const struct fl_injector fl_inj_network_partition = {
	.type = "network.partition",
	.summary = "connect()/sendmsg() from the target's cgroup to matched destinations fail with an errno "
		   "(refuse) or hang (blackhole), via eBPF cgroup hooks",
	.preflight = "a cgroup v2 hierarchy; libbpf loads the cgroup/connect|sendmsg (refuse) or "
		     "cgroup_skb (blackhole) programs; the target has its own cgroup v2 dir (not the root "
		     "unless allow_host_wide); CAP_BPF+CAP_NET_ADMIN or CAP_SYS_ADMIN",
	.params = part_params,
	.validate = part_validate,
	.probe = part_probe,
	.check = part_check,
	.describe = part_describe,
	.apply = part_apply,
	.observe = part_observe,
	.revert = part_revert,
	.release = part_release,
	.revert_record = cg_revert_record_op,
	.sweep = NULL,
};

/* ---- network.dns ------------------------------------------------------------------------------ */

static const char *const dns_modes[] = {"fail", "timeout", NULL};
enum { DNS_FAIL, DNS_TIMEOUT };

static const struct fl_param dns_params[] = {
	{.name = "mode", .kind = FL_P_ENUM, .def = "fail", .enums = dns_modes,
	 .help = "fail: queries (UDP sendmsg/connect, TCP connect to `port`) fail at once with `errno`; "
		 "timeout: replies from `port` are dropped at the target's cgroup ingress, so resolvers "
		 "wait out their own timeout"},
	{.name = "servers", .kind = FL_P_CIDR,
	 .help = "resolvers to match (address or CIDR, v4 or v6); default: any"},
	{.name = "port", .kind = FL_P_INT, .def = "53", .min = "1", .max = "65535",
	 .help = "the resolvers' port"},
	{.name = "errno", .kind = FL_P_ERRNO, .def = "ECONNREFUSED",
	 .help = "what the query's sendmsg()/connect() fails with (mode: fail): ECONNREFUSED, ETIMEDOUT, "
		 "EHOSTUNREACH, ENETUNREACH, ECONNRESET, EACCES or EPERM"},
	{.name = "probability", .kind = FL_P_RATIO, .def = "100%", .min = "0%", .max = "100%",
	 .help = "share of queries (fail) or replies (timeout) hit"},
	{0},
};

static int dns_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err)
{
	const struct fl_value *e = fl_fault_value(f, "errno");

	if (fl_fault_value(f, "mode")->i == DNS_TIMEOUT && e->set && !e->defaulted) {
		*blame = e;
		return fl_err_set(err, -EINVAL, "errno applies to mode: fail only: a timed-out query fails nothing");
	}
	return errno_validate(e, blame, err);
}

static void dns_config(const struct fl_fault *f, struct cg_state *st)
{
	const struct fl_value *srv = fl_fault_value(f, "servers");
	const struct fl_cidr *c = srv->set ? &srv->cidr : NULL;

	memset(&st->cfg, 0, sizeof(st->cfg));
	st->mode = (int)fl_fault_value(f, "mode")->i;
	st->probability = fl_fault_value(f, "probability")->d;
	st->cfg.threshold = prob_threshold(st->probability);
	st->cfg.err = (__u32)fl_fault_value(f, "errno")->i;
	st->cfg.protos = FL_CG_P_TCP | FL_CG_P_UDP;
	st->cfg.families = families_of(c, NULL);
	end_set(&st->cfg.peer, c, (uint16_t)fl_fault_value(f, "port")->i);
	if (st->mode == DNS_FAIL)
		st->hooks = c && c->family == AF_INET6 ? FL_CG_H_CONNECT6 | FL_CG_H_SENDMSG6 : FL_CG_H_SOCK_ADDR;
	else
		st->hooks = FL_CG_H_INGRESS;
}

static int dns_check(const struct fl_fault *f, struct fl_err *err)
{
	if (!f->target)
		return fl_err_set(err, -ESRCH, "network.dns needs a target (its cgroup scopes the fault)");
	return fl_bpf_cgroup_scope(f->target->cgroup_v2, f->target->allow_host_wide, NULL, err);
}

static void dns_describe(const struct fl_fault *f, char *buf, size_t len)
{
	struct cg_state st;
	const struct fl_value *srv = fl_fault_value(f, "servers");
	char to[128], hk[128];
	const char *where = f->target && f->target->cgroup_v2[0] ? f->target->cgroup_v2 : "the target's cgroup v2 dir";

	memset(&st, 0, sizeof(st));
	dns_config(f, &st);
	fl_cg_hooks_format(st.hooks, hk, sizeof(hk));
	if (st.mode == DNS_FAIL) {
		peer_text("to", srv->set ? &srv->cidr : NULL, (uint16_t)st.cfg.peer.port, to, sizeof(to));
		snprintf(buf, len, "cgroup/%s on %s: DNS queries %s fail with %s (%.4g%%); links detached on revert",
			 hk, where, to, errno_text((int)st.cfg.err), 100.0 * st.probability);
	} else {
		peer_text("from", srv->set ? &srv->cidr : NULL, (uint16_t)st.cfg.peer.port, to, sizeof(to));
		snprintf(buf, len, "cgroup_skb/ingress on %s: DNS replies %s dropped (%.4g%%), resolvers time "
				   "out; link detached on revert",
			 where, to, 100.0 * st.probability);
	}
}

static int dns_apply(struct fl_fault *f, struct fl_journal *j, struct fl_err *err)
{
	struct cg_state *st = calloc(1, sizeof(*st));
	char extra[96];
	int rc;

	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	dns_config(f, st);
	snprintf(extra, sizeof(extra), "mode=%s port=%u", dns_modes[st->mode], st->cfg.peer.port);
	rc = cg_apply(f, j, f->target ? f->target->cgroup_v2 : "", f->target && f->target->allow_host_wide,
		      "", extra, st, err);
	if (rc) {
		cg_release(st);
		return rc;
	}
	f->state = st;
	return 0;
}

static int dns_observe(struct fl_fault *f, struct fl_observation *o)
{
	struct cg_state *st = f->state;
	uint64_t c[FL_CG_NCOUNTERS] = {0};
	int rc;

	if (!st)
		return -ENOENT;
	rc = fl_cg_counters(st->prog, c);
	if (rc)
		return rc;
	if (st->mode == DNS_FAIL)
		obs_triple(o, "queries_matched", "queries_failed", "failed_observed",
			   c[FL_CG_CONN_MATCHED] + c[FL_CG_SEND_MATCHED], c[FL_CG_CONN_REFUSED] + c[FL_CG_SEND_REFUSED]);
	else
		obs_triple(o, "replies_matched", "replies_dropped", "dropped_observed", c[FL_CG_INGRESS_MATCHED],
			   c[FL_CG_INGRESS_DROPPED]);
	obs_common(o, st);
	return 0;
}

const struct fl_injector fl_inj_network_dns = {
	.type = "network.dns",
	.summary = "DNS queries from the target's cgroup fail with an errno or time out (replies dropped), "
		   "via eBPF cgroup hooks",
	.preflight = "a cgroup v2 hierarchy; libbpf loads the cgroup/connect|sendmsg (fail) or "
		     "cgroup_skb/ingress (timeout) programs; the target has its own cgroup v2 dir (not the "
		     "root unless allow_host_wide); CAP_BPF+CAP_NET_ADMIN or CAP_SYS_ADMIN",
	.params = dns_params,
	.validate = dns_validate,
	.probe = part_probe,
	.check = dns_check,
	.describe = dns_describe,
	.apply = dns_apply,
	.observe = dns_observe,
	.revert = part_revert,
	.release = part_release,
	.revert_record = cg_revert_record_op,
	.sweep = NULL, /* nothing outlives the controller: see network.partition */
};

/* ---- the cgroup backend of network.loss (and the other network.* front injectors) ------------ */

static int be_config(const struct fl_net_req *r, struct cg_state *st, struct fl_err *err)
{
	const struct fl_net_match *m = &r->match;
	const struct fl_net_effect *fx = &r->fx;
	int ifindex = r->ifindex;

	if (m->dir != FL_NET_INGRESS) {
		fl_err_set(err, -EOPNOTSUPP, "the cgroup backend drops packets on the target's ingress only: "
					     "egress drops of TCP are requeued by the local stack, not lost");
		fl_err_hint(err, "set match.direction: ingress (src_ip/src_port are then the remote peer), or "
				 "use backend netem for egress loss");
		return -EOPNOTSUPP;
	}
	if (fx->delay_ns || fx->jitter_ns || fx->duplicate > 0 || fx->corrupt > 0 || fx->reorder > 0 || fx->rate)
		return fl_err_set(err, -EOPNOTSUPP, "the cgroup backend can only drop packets (loss); use "
						    "backend netem or nfqueue for delay, duplicate, corrupt, "
						    "reorder or bandwidth");
	if (fx->loss_corr > 0)
		return fl_err_set(err, -EOPNOTSUPP, "the cgroup backend drops each packet independently: "
						    "loss correlation needs backend netem");
	if (m->iface[0] && ifindex <= 0) {
		int rc = fl_net_ifindex(&r->ns, m->iface, &ifindex, err);

		if (rc)
			return rc;
	}
	memset(&st->cfg, 0, sizeof(st->cfg));
	st->probability = fx->loss;
	st->cfg.threshold = prob_threshold(fx->loss);
	st->cfg.ifindex = m->iface[0] ? (__u32)ifindex : 0;
	/* on ingress the remote peer is the packet's source, the target's own end its destination */
	end_set(&st->cfg.peer, m->has_src ? &m->src : NULL, m->src_port);
	end_set(&st->cfg.local, m->has_dst ? &m->dst : NULL, m->dst_port);
	st->cfg.families = families_of(m->has_src ? &m->src : NULL, m->has_dst ? &m->dst : NULL);
	st->cfg.protos = m->proto == FL_NET_TCP ? FL_CG_P_TCP : m->proto == FL_NET_UDP ? FL_CG_P_UDP :
			 m->proto == FL_NET_ICMP ? FL_CG_P_ICMP :
			 m->src_port || m->dst_port ? FL_CG_P_TCP | FL_CG_P_UDP :
			 FL_CG_P_TCP | FL_CG_P_UDP | FL_CG_P_ICMP | FL_CG_P_OTHER;
	st->hooks = FL_CG_H_INGRESS;
	return 0;
}

static int be_check(const struct fl_net_req *r, struct fl_err *err)
{
	struct cg_state st;
	const struct fl_target_info *t = r->f ? r->f->target : NULL;
	int rc;

	memset(&st, 0, sizeof(st));
	rc = be_config(r, &st, err);
	if (rc)
		return rc;
	if (!t)
		return fl_err_set(err, -ESRCH, "the cgroup backend needs a target (its cgroup scopes the fault)");
	return fl_bpf_cgroup_scope(t->cgroup_v2, t->allow_host_wide, NULL, err);
}

static int be_apply(const struct fl_net_req *r, struct fl_journal *j, void **state, struct fl_err *err)
{
	struct cg_state *st = calloc(1, sizeof(*st));
	const struct fl_target_info *t = r->f ? r->f->target : NULL;
	char extra[64];
	int rc;

	*state = NULL;
	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	rc = be_config(r, st, err);
	if (rc)
		goto out;
	snprintf(extra, sizeof(extra), "loss=%.6f", st->probability);
	rc = cg_apply(r->f, j, t ? t->cgroup_v2 : "", t && t->allow_host_wide, "backend=cgroup ", extra, st, err);
	if (rc)
		goto out;
	*state = st;
	return 0;
out:
	cg_release(st);
	return rc;
}

static int be_observe(void *state, struct fl_observation *o)
{
	struct cg_state *st = state;
	uint64_t c[FL_CG_NCOUNTERS] = {0};
	int rc;

	if (!st)
		return -ENOENT;
	rc = fl_cg_counters(st->prog, c);
	if (rc)
		return rc;
	obs_triple(o, "packets_matched", "packets_dropped", "loss_observed", c[FL_CG_INGRESS_MATCHED],
		   c[FL_CG_INGRESS_DROPPED]);
	fl_obs_num(o, "loss_configured", st->probability, "%.2f%%", 100.0 * st->probability);
	/* "backend" is the front's key */
	fl_bpf_obs_hooks(o, &cg_kind, "cgroup_skb/", st->hooks, st->reverted);
	return 0;
}

static int be_revert(void *state, struct fl_err *err)
{
	return cg_revert(state, err);
}

static void be_release(void *state)
{
	cg_release(state);
}

const struct fl_net_backend fl_net_backend_cgroup = {
	.name = "cgroup",
	.probe = fl_cg_probe,
	.check = be_check,
	.apply = be_apply,
	.observe = be_observe,
	.revert = be_revert,
	.release = be_release,
	.revert_record = cg_revert_record_op,
	.sweep = NULL, /* nothing outlives the controller: see network.partition */
};
