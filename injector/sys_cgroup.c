/* Loader of sys_cgroup.bpf.c: the cgroup-BPF backend of syscall.error, failing the socket syscalls of every process in the target's cgroup v2 directory. */
#include "sys_cgroup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <bpf/libbpf.h>

#include "journal.h"
#include "units.h"

#include "sys_cgroup.skel.h"

/* revert_record reads the mark at offset 0 of .rodata and writes the revoke flag at offset 0 of .bss. */
_Static_assert(offsetof(struct sys_cgroup__rodata, fl_cfg) == 0, "fl_cfg must open .rodata");
_Static_assert(sizeof(struct sys_cgroup__rodata) == sizeof(struct fl_sys_bpf_cfg), "fl_cfg must be all of .rodata");
_Static_assert(sizeof(struct sys_cgroup__bss) == sizeof(__u32), "fl_revoked must be all of .bss");
_Static_assert(FL_SC_NHOOKS <= FL_SYS_NSLOT, "counter slots");
_Static_assert(FL_SC_NHOOKS <= FL_BPF_MAX_HOOKS, "hooks");

/* One program per hook, and the hook's name is also its counter slot's. */
static const struct fl_bpf_hook sc_hooks[FL_SC_NHOOKS] = {
	[FL_SC_H_CONNECT4] = {"connect4", "fl_sc_connect4", BPF_CGROUP_INET4_CONNECT},
	[FL_SC_H_CONNECT6] = {"connect6", "fl_sc_connect6", BPF_CGROUP_INET6_CONNECT},
	[FL_SC_H_BIND4] = {"bind4", "fl_sc_bind4", BPF_CGROUP_INET4_BIND},
	[FL_SC_H_BIND6] = {"bind6", "fl_sc_bind6", BPF_CGROUP_INET6_BIND},
	[FL_SC_H_SOCK] = {"sock_create", "fl_sc_sock", BPF_CGROUP_INET_SOCK_CREATE},
	[FL_SC_H_SENDMSG4] = {"sendmsg4", "fl_sc_sendmsg4", BPF_CGROUP_UDP4_SENDMSG},
	[FL_SC_H_SENDMSG6] = {"sendmsg6", "fl_sc_sendmsg6", BPF_CGROUP_UDP6_SENDMSG},
	[FL_SC_H_GETSOCKOPT] = {"getsockopt", "fl_sc_getsopt", BPF_CGROUP_GETSOCKOPT},
	[FL_SC_H_SETSOCKOPT] = {"setsockopt", "fl_sc_setsopt", BPF_CGROUP_SETSOCKOPT},
};

static const struct fl_bpf_kind sc_kind = {
	.prefix = "fl_sc_",
	.magic = FL_SC_MAGIC,
	.rodata_size = sizeof(struct fl_sys_bpf_cfg),
	.hooks = sc_hooks,
	.nhooks = FL_SC_NHOOKS,
	.lsm = false,
};

const char *fl_sc_prog_name(int hook)
{
	return hook >= 0 && hook < FL_SC_NHOOKS ? sc_hooks[hook].prog : NULL;
}

/* Why a syscall class has no cgroup hook that can fail it, and what would work. */
static const char *no_hook_reason(unsigned cls)
{
	switch (cls) {
	case FL_SYS_FILE_OPEN:
	case FL_SYS_FILE_READ:
	case FL_SYS_FILE_WRITE:
	case FL_SYS_MMAP:
		return "is file I/O: cgroup BPF hooks see only sockets; use backend lsm (file_open, "
		       "file_permission, mmap_file hooks) or seccomp (a target faultline launches)";
	case FL_SYS_ACCEPT:
		return "has no cgroup BPF hook (none runs at accept); use backend lsm (socket_accept) or "
		       "seccomp (a target faultline launches)";
	case FL_SYS_RECVMSG:
		return "cannot be failed by a cgroup hook (cgroup/recvmsg4|6 can only rewrite a UDP source "
		       "address); use backend lsm (socket_recvmsg) or seccomp (a target faultline launches)";
	case FL_SYS_LISTEN:
		return "has no cgroup BPF hook; use backend lsm (socket_listen) or seccomp (a target faultline "
		       "launches)";
	default:
		return "has no cgroup BPF hook and no LSM hook; use backend seccomp (a target faultline launches)";
	}
}

unsigned fl_sc_hooks_for(const struct fl_sys_rule *r, const char **why)
{
	/* a v4 destination can be reached from a v6 socket as ::ffff:a.b.c.d; a v6 one only from v6 */
	unsigned both = r->has_dst && r->dst.family == AF_INET6 ? 2u : 3u, hooks = 0;

	*why = NULL;
	for (int i = 0; i < r->n; i++) {
		const struct fl_syscall *s = r->sys[i];

		switch (s->cls) {
		case FL_SYS_CONNECT: hooks |= both << FL_SC_H_CONNECT4; break;
		case FL_SYS_BIND: hooks |= 3u << FL_SC_H_BIND4; break;
		case FL_SYS_SOCKET: hooks |= 1u << FL_SC_H_SOCK; break;
		case FL_SYS_SENDMSG: hooks |= both << FL_SC_H_SENDMSG4; break;
		case FL_SYS_SOCKOPT:
			hooks |= 1u << (!strcmp(s->name, "getsockopt") ? FL_SC_H_GETSOCKOPT : FL_SC_H_SETSOCKOPT);
			break;
		default:
			*why = s->name;
			return 0;
		}
	}
	return hooks;
}

/* ---- check ---------------------------------------------------------------------------------- */

struct sc_plan {
	unsigned hooks;
	struct fl_sys_bpf_cfg cfg;
	uint64_t cgid;
};

static int sc_plan(const struct fl_sys_rule *r, struct sc_plan *p, struct fl_err *err)
{
	const char *why;
	int rc;

	memset(p, 0, sizeof(*p));
	rc = fl_sysbpf_check_errno_only(r, "cgroup", err);
	if (rc)
		return rc;
	if (r->n == 0)
		return fl_err_set(err, -EINVAL, "the rule names no syscall");
	p->hooks = fl_sc_hooks_for(r, &why);
	if (!p->hooks) {
		const struct fl_syscall *s = fl_syscall_by_name(why);

		return fl_err_set(err, -EOPNOTSUPP, "backend cgroup cannot fail %s: it %s", why,
				  no_hook_reason(s ? s->cls : FL_SYS_OTHER));
	}
	rc = fl_sysbpf_cfg_from_rule(r, &p->cfg, err);
	if (rc)
		return rc;
	/* a cgroup v2 dir of the target's own, not the root unless allowed, and the capabilities */
	return fl_bpf_cgroup_scope(r->cgroup_v2, r->allow_host_wide, &p->cgid, err);
}

static int sc_check(const struct fl_sys_rule *r, struct fl_err *err)
{
	struct sc_plan p;

	return sc_plan(r, &p, err);
}

void fl_sc_describe(const struct fl_sys_rule *r, char *buf, size_t len)
{
	struct sc_plan p;
	char hk[256];

	if (sc_plan(r, &p, NULL)) {
		snprintf(buf, len, "cgroup BPF: this rule cannot run (see check)");
		return;
	}
	fl_bpf_hooks_join(&sc_kind, p.hooks, false, hk, sizeof(hk));
	snprintf(buf, len, "cgroup/%s on %s: fail with %s%s%s; links detached on revert", hk, r->cgroup_v2,
		 fl_errno_name(r->err) ? fl_errno_name(r->err) : "?",
		 p.hooks & (3u << FL_SC_H_SENDMSG4) ? "; sendmsg: unconnected UDP sends only (TCP and connected "
						      "UDP are judged at connect)" : "",
		 p.hooks & (1u << FL_SC_H_SOCK) ? "; socket: AF_INET/AF_INET6 only" : "");
}

/* ---- load, attach, count, unload --------------------------------------------------------------- */

struct sc_state {
	struct sys_cgroup *skel;
	struct fl_sysbpf_run run;
};

static void sc_destroy(struct sc_state *st)
{
	if (!st)
		return;
	fl_sysbpf_drop(&st->run);
	sys_cgroup__destroy(st->skel);
	free(st);
}

static int sc_load(const struct fl_sys_bpf_cfg *cfg, unsigned hooks, struct sc_state *st, struct fl_err *err)
{
	int rc;

	st->run.cfg = *cfg;
	st->skel = sys_cgroup__open();
	if (!st->skel)
		return fl_err_set(err, -errno, "sys_cgroup__open: %s", strerror(errno));
	rc = fl_bpf_links_init(&st->run.links, &sc_kind, st->skel->obj, hooks, err);
	if (rc)
		return rc;
	st->skel->rodata->fl_cfg = *cfg;
	rc = sys_cgroup__load(st->skel);
	if (rc)
		return fl_bpf_load_error("sys_cgroup", rc, err);
	/* after the load: only then is skel->bss the kernel map's memory, not the initial image */
	st->run.revoked = &st->skel->bss->fl_revoked;
	st->run.state_map = st->skel->maps.fl_sys_st;
	st->run.ctr_map = st->skel->maps.fl_sys_ctr;
	return 0;
}

/* A cgroup v2 mount, and every program loads (then is freed, never attached): the verifier takes them all. */
static int sc_probe(struct fl_err *err)
{
	struct fl_sys_bpf_cfg cfg;
	struct sc_state *st;
	libbpf_print_fn_t quiet;
	int rc;

	rc = fl_bpf_need_cgroup2(err);
	if (rc)
		return rc;
	memset(&cfg, 0, sizeof(cfg));
	cfg.magic = FL_SC_MAGIC;
	cfg.err = ECONNREFUSED;
	st = calloc(1, sizeof(*st));
	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	quiet = libbpf_set_print(NULL);
	rc = sc_load(&cfg, (1u << FL_SC_NHOOKS) - 1, st, err);
	libbpf_set_print(quiet);
	sc_destroy(st);
	return rc;
}

static int sc_apply(const struct fl_sys_rule *r, struct fl_journal *j, void **state, struct fl_err *err)
{
	struct sc_state *st = NULL;
	struct sc_plan p;
	char rec[FL_REC_DATA], esc[800], hk[160], progs[200];
	int64_t seq;
	int rc, n;

	*state = NULL;
	rc = sc_plan(r, &p, err);
	if (rc)
		return rc;
	st = calloc(1, sizeof(*st));
	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	p.cfg.magic = FL_SC_MAGIC;
	p.cfg.tag = fl_bpf_new_tag();
	st->run.probability = r->probability;
	if (fl_bpf_escape(r->cgroup_v2, esc, sizeof(esc))) {
		rc = fl_err_set(err, -ENAMETOOLONG, "cgroup path %s is too long for a journal record", r->cgroup_v2);
		goto out;
	}
	fl_bpf_hooks_join(&sc_kind, p.hooks, false, hk, sizeof(hk));
	fl_bpf_hooks_join(&sc_kind, p.hooks, true, progs, sizeof(progs));
	/* cgid + tag + program names find the links again; the path lets revert check nothing is left */
	n = snprintf(rec, sizeof(rec), "backend=cgroup tag=%016llx cgroup=%s cgid=%llu hooks=%s progs=%s errno=%u",
		     (unsigned long long)p.cfg.tag, esc, (unsigned long long)p.cgid, hk, progs, p.cfg.err);
	if (n < 0 || (size_t)n >= sizeof(rec)) {
		rc = fl_err_set(err, -ENAMETOOLONG, "journal record too long (cgroup path %s)", r->cgroup_v2);
		goto out;
	}
	seq = fl_journal_append(j, r->f, "%s", rec);
	if (seq < 0) {
		rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
		goto out;
	}
	rc = sc_load(&p.cfg, p.hooks, st, err);
	if (rc)
		goto out;
	rc = fl_bpf_links_attach(&st->run.links, r->cgroup_v2, err);
	if (rc)
		goto out;
	*state = st;
	return 0;
out:
	sc_destroy(st);
	return rc;
}

static int sc_observe(void *state, struct fl_observation *o)
{
	struct sc_state *st = state;

	if (!st)
		return -ENOENT;
	return fl_sysbpf_observe(&st->run, o, NULL, FL_SC_NHOOKS, "cgroup/");
}

static int sc_revert(void *state, struct fl_err *err)
{
	struct sc_state *st = state;
	int rc;

	if (!st || st->run.reverted)
		return 0;
	rc = fl_sysbpf_unload(&st->run, err);
	sys_cgroup__destroy(st->skel);
	st->skel = NULL;
	return rc;
}

static void sc_release(void *state)
{
	sc_destroy(state);
}

/* ---- revert from the journal ---------------------------------------------------------------- */

int fl_sc_count_attached(const char *cgroup, uint64_t tag, struct fl_err *err)
{
	return fl_bpf_cgroup_count_attached(&sc_kind, cgroup, tag, err);
}

/*
 * From the record alone: revoke and detach every link of ours with its tag on its cgroup (by
 * id: a removed but busy cgroup still holds links, a new one at the same path is another
 * cgroup), then check with BPF_PROG_QUERY that none is left. Idempotent: a cgroup that is gone
 * took its programs along.
 */
static int sc_revert_record(const struct fl_journal_rec *rec, struct fl_err *err)
{
	return fl_bpf_cgroup_revert_record(&sc_kind, rec, NULL, err);
}

/* No sweep: nothing is pinned; a dead controller's unpinned links detach with it. */
const struct fl_sys_backend fl_sys_backend_cgroup = {
	.name = "cgroup",
	.probe = sc_probe,
	.check = sc_check,
	.apply = sc_apply,
	.observe = sc_observe,
	.revert = sc_revert,
	.release = sc_release,
	.revert_record = sc_revert_record,
};
