/* Loader of sys_cgroup.bpf.c: the cgroup-BPF backend of syscall.error, failing the socket syscalls of every process in the target's cgroup v2 directory. */
#include "sys_cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "journal.h"
#include "net_cgroup.h"
#include "procfs.h"
#include "units.h"

#include "sys_cgroup.skel.h"

/* revert_record reads the tag at offset 0 of .rodata and writes the revoke flag at offset 0 of .bss. */
_Static_assert(offsetof(struct sys_cgroup__rodata, fl_cfg) == 0, "fl_cfg must open .rodata");
_Static_assert(sizeof(struct sys_cgroup__rodata) == sizeof(struct fl_sys_bpf_cfg), "fl_cfg must be all of .rodata");
_Static_assert(sizeof(struct sys_cgroup__bss) == sizeof(__u32), "fl_revoked must be all of .bss");
_Static_assert(FL_SC_NHOOKS <= FL_SYS_NSLOT, "counter slots");

#define PROG_PREFIX "fl_sc_"

static const struct {
	const char *name;
	const char *prog;
	enum bpf_attach_type type;
} hook_tab[FL_SC_NHOOKS] = {
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

static struct bpf_program *hook_prog(struct sys_cgroup *s, int i)
{
	struct bpf_program *const progs[FL_SC_NHOOKS] = {
		s->progs.fl_sc_connect4, s->progs.fl_sc_connect6, s->progs.fl_sc_bind4,
		s->progs.fl_sc_bind6,    s->progs.fl_sc_sock,     s->progs.fl_sc_sendmsg4,
		s->progs.fl_sc_sendmsg6, s->progs.fl_sc_getsopt,  s->progs.fl_sc_setsopt,
	};

	return progs[i];
}

const char *fl_sc_prog_name(int hook)
{
	return hook >= 0 && hook < FL_SC_NHOOKS ? hook_tab[hook].prog : NULL;
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

static void hooks_join(unsigned hooks, bool progs, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < FL_SC_NHOOKS; i++) {
		int w;

		if (!(hooks & (1u << i)))
			continue;
		w = snprintf(buf + off, len - off, "%s%s", off ? "," : "", progs ? hook_tab[i].prog : hook_tab[i].name);
		if (w < 0 || (size_t)w >= len - off)
			return;
		off += (size_t)w;
	}
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
	return fl_cg_check_scope(r->cgroup_v2, r->allow_host_wide, &p->cgid, err);
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
	hooks_join(p.hooks, false, hk, sizeof(hk));
	snprintf(buf, len, "cgroup/%s on %s: fail with %s%s%s; links detached on revert", hk, r->cgroup_v2,
		 fl_errno_name(r->err) ? fl_errno_name(r->err) : "?",
		 p.hooks & (3u << FL_SC_H_SENDMSG4) ? "; sendmsg: unconnected UDP sends only (TCP and connected "
						      "UDP are judged at connect)" : "",
		 p.hooks & (1u << FL_SC_H_SOCK) ? "; socket: AF_INET/AF_INET6 only" : "");
}

/* ---- load, attach, count, unload --------------------------------------------------------------- */

struct sc_state {
	struct sys_cgroup *skel;
	struct bpf_link *links[FL_SC_NHOOKS];
	unsigned hooks;
	struct fl_sys_bpf_cfg cfg;
	double probability;
	struct fl_sysbpf_counts snap;
	bool reverted;
};

static void detach_all(struct sc_state *st)
{
	for (int i = 0; i < FL_SC_NHOOKS; i++) {
		if (!st->links[i])
			continue;
		/* detach explicitly: closing our fd is not enough if a forked child inherited it */
		bpf_link__detach(st->links[i]);
		bpf_link__destroy(st->links[i]);
		st->links[i] = NULL;
	}
}

static void sc_destroy(struct sc_state *st)
{
	if (!st)
		return;
	if (st->skel && st->skel->bss)
		st->skel->bss->fl_revoked = 1;
	detach_all(st);
	sys_cgroup__destroy(st->skel);
	free(st);
}

static int sc_load(const struct fl_sys_bpf_cfg *cfg, unsigned hooks, struct sc_state *st, struct fl_err *err)
{
	int rc;

	st->hooks = hooks;
	st->cfg = *cfg;
	st->skel = sys_cgroup__open();
	if (!st->skel)
		return fl_err_set(err, -errno, "sys_cgroup__open: %s", strerror(errno));
	/* only what the rule uses is loaded: fewer programs in bpftool, less verifier time */
	for (int i = 0; i < FL_SC_NHOOKS; i++) {
		rc = bpf_program__set_autoload(hook_prog(st->skel, i), (hooks & (1u << i)) != 0);
		if (rc)
			return fl_err_set(err, rc, "bpf_program__set_autoload(%s): %s", hook_tab[i].prog, strerror(-rc));
	}
	st->skel->rodata->fl_cfg = *cfg;
	rc = sys_cgroup__load(st->skel);
	if (rc) {
		fl_err_set(err, rc, "bpf_object__load(sys_cgroup): %s", strerror(-rc));
		if (rc == -EPERM)
			fl_err_hint(err, "loading cgroup BPF programs needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN)");
		else if (rc == -EINVAL || rc == -EACCES)
			fl_err_hint(err, "the verifier refused it: bpf_set_retval in cgroup hooks needs Linux 5.18 "
					 "or later (libbpf printed the verifier log)");
		return rc;
	}
	return 0;
}

static int sc_attach(struct sc_state *st, const char *cgroup, struct fl_err *err)
{
	int cgfd, rc = 0;

	cgfd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0)
		return fl_err_set(err, -errno, "open %s: %s", cgroup, strerror(errno));
	for (int i = 0; i < FL_SC_NHOOKS; i++) {
		if (!(st->hooks & (1u << i)))
			continue;
		st->links[i] = bpf_program__attach_cgroup(hook_prog(st->skel, i), cgfd);
		if (!st->links[i]) {
			rc = -errno;
			fl_err_set(err, rc, "bpf_program__attach_cgroup(%s, %s): %s", hook_tab[i].prog, cgroup,
				   strerror(-rc));
			goto out;
		}
	}
out:
	/* all or nothing: a half-attached fault would be a different fault */
	if (rc)
		detach_all(st);
	close(cgfd);
	return rc;
}

/* A cgroup v2 mount, and every program loads (then is freed, never attached): the verifier takes them all. */
static int sc_probe(struct fl_err *err)
{
	struct fl_sys_bpf_cfg cfg;
	struct sc_state *st;
	libbpf_print_fn_t quiet;
	char mount[4096];
	int rc;

	if (fl_cgroup_mount(NULL, mount, sizeof(mount))) {
		fl_err_set(err, -ENOENT, "no cgroup v2 hierarchy is mounted: the BPF cgroup hooks attach to cgroup "
					 "v2 directories");
		fl_err_hint(err, "mount -t cgroup2 none /sys/fs/cgroup/unified (it can live beside v1)");
		return -ENOENT;
	}
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
	p.cfg.tag = fl_cg_new_tag();
	st->probability = r->probability;
	if (fl_sysbpf_escape(r->cgroup_v2, esc, sizeof(esc))) {
		rc = fl_err_set(err, -ENAMETOOLONG, "cgroup path %s is too long for a journal record", r->cgroup_v2);
		goto out;
	}
	hooks_join(p.hooks, false, hk, sizeof(hk));
	hooks_join(p.hooks, true, progs, sizeof(progs));
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
	rc = sc_attach(st, r->cgroup_v2, err);
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
	struct fl_sysbpf_counts c;
	char per[96], hk[160];
	size_t off = 0;
	int rc;

	if (!st)
		return -ENOENT;
	if (st->reverted || !st->skel) {
		c = st->snap;
	} else {
		rc = fl_sysbpf_read_counts(st->skel->maps.fl_sys_st, st->skel->maps.fl_sys_ctr, &c);
		if (rc)
			return rc;
	}
	fl_sysbpf_observe_common(o, &c, &st->cfg, st->probability);
	per[0] = '\0';
	for (int s = 0; s < FL_SC_NHOOKS; s++) {
		int w;

		if (!c.slot[s][0])
			continue;
		w = snprintf(per + off, sizeof(per) - off, "%s%s %llu/%llu", off ? ", " : "", hook_tab[s].name,
			     (unsigned long long)c.slot[s][1], (unsigned long long)c.slot[s][0]);
		if (w < 0 || (size_t)w >= sizeof(per) - off)
			break;
		off += (size_t)w;
	}
	fl_obs_text(o, "failed_per_call", "%s", per[0] ? per : "none yet");
	hooks_join(st->hooks, false, hk, sizeof(hk));
	fl_obs_text(o, "hooks", "cgroup/%.80s%s", hk, st->reverted ? " (detached)" : "");
	return 0;
}

static int sc_revert(void *state, struct fl_err *err)
{
	struct sc_state *st = state;
	int rc;

	if (!st || st->reverted)
		return 0;
	st->skel->bss->fl_revoked = 1;
	/* detached first: nothing more is counted, so the snapshot is final */
	detach_all(st);
	rc = fl_sysbpf_read_counts(st->skel->maps.fl_sys_st, st->skel->maps.fl_sys_ctr, &st->snap);
	if (rc)
		fl_err_set(err, rc, "reading the counters before unloading: %s (detached anyway)", strerror(-rc));
	sys_cgroup__destroy(st->skel);
	st->skel = NULL;
	st->reverted = true;
	return rc;
}

static void sc_release(void *state)
{
	sc_destroy(state);
}

/* ---- revert from the journal ---------------------------------------------------------------- */

/* Detach every cgroup link on cgroup id cgid whose program is ours with `tag`: the count, or -errno. */
static int detach_links(uint64_t cgid, uint64_t tag, const char *fault, struct fl_err *err)
{
	__u32 id = 0;
	int n = 0;

	while (!bpf_link_get_next_id(id, &id)) {
		struct bpf_link_info li;
		__u32 len = sizeof(li);
		int lfd = bpf_link_get_fd_by_id(id), pfd = -1, bss = -1, rc;

		if (lfd < 0)
			continue; /* gone meanwhile */
		memset(&li, 0, sizeof(li));
		if (bpf_obj_get_info_by_fd(lfd, &li, &len) || li.type != BPF_LINK_TYPE_CGROUP ||
		    li.cgroup.cgroup_id != cgid)
			goto next;
		pfd = bpf_prog_get_fd_by_id(li.prog_id);
		if (pfd < 0 || !fl_sysbpf_prog_is_ours(pfd, PROG_PREFIX, FL_SC_MAGIC, tag, &bss))
			goto next;
		/* revoked first: it acts no more even if the detach below were refused */
		fl_sysbpf_revoke(bss);
		rc = bpf_link_detach(lfd);
		if (rc && rc != -ENOLINK) {
			fl_err_set(err, rc, "bpf_link_detach(link %u of fault %s on cgroup id %llu): %s", id, fault,
				   (unsigned long long)cgid, strerror(-rc));
			close(bss);
			close(pfd);
			close(lfd);
			return rc;
		}
		n++;
next:
		if (bss >= 0)
			close(bss);
		if (pfd >= 0)
			close(pfd);
		close(lfd);
	}
	return n;
}

/* Ours with `tag` still attached to cgfd over every hook we use; with detach, those are detached too. */
static int query_ours(int cgfd, uint64_t tag, bool detach, struct fl_err *err)
{
	int left = 0;

	for (int h = 0; h < FL_SC_NHOOKS; h++) {
		__u32 ids[64], cnt = 64;
		LIBBPF_OPTS(bpf_prog_query_opts, q, .prog_ids = ids, .prog_cnt = cnt);
		int rc = bpf_prog_query_opts(cgfd, hook_tab[h].type, &q);

		if (rc)
			return fl_err_set(err, rc, "bpf_prog_query(cgroup, %s): %s", hook_tab[h].name, strerror(-rc));
		for (__u32 i = 0; i < q.prog_cnt && i < 64; i++) {
			int pfd = bpf_prog_get_fd_by_id(ids[i]), bss = -1;

			if (pfd < 0)
				continue;
			if (fl_sysbpf_prog_is_ours(pfd, PROG_PREFIX, FL_SC_MAGIC, tag, &bss)) {
				/* attached without a link (bpftool, an older faultline): detach by program */
				if (!detach || bpf_prog_detach2(pfd, cgfd, hook_tab[h].type))
					left++;
			}
			if (bss >= 0)
				close(bss);
			close(pfd);
		}
	}
	return left;
}

int fl_sc_count_attached(const char *cgroup, uint64_t tag, struct fl_err *err)
{
	int cgfd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC), n;

	if (cgfd < 0)
		return fl_err_set(err, -errno, "open %s: %s", cgroup, strerror(errno));
	n = query_ours(cgfd, tag, false, err);
	close(cgfd);
	return n;
}

/*
 * From the record alone: detach every link of ours with its tag on its cgroup (by id: a removed
 * but busy cgroup still holds links, a new one at the same path is another cgroup), then check
 * with BPF_PROG_QUERY that none is left. Idempotent: a cgroup that is gone took its programs along.
 */
static int sc_revert_record(const struct fl_journal_rec *rec, struct fl_err *err)
{
	char esc[1024], path[1024];
	uint64_t cgid, tag;
	struct stat st;
	int cgfd = -1, rc, left;

	if (fl_sysbpf_rec_tag(rec, &tag) || !fl_rec_get(rec, "cgroup", esc, sizeof(esc)) ||
	    fl_rec_get_u64(rec, "cgid", &cgid) || fl_sysbpf_unescape(esc, path, sizeof(path)))
		return fl_err_set(err, -EINVAL, "journal record %llu lacks a valid tag, cgroup or cgid",
				  (unsigned long long)rec->seq);
	rc = detach_links(cgid, tag, rec->fault, err);
	if (rc < 0)
		return rc;
	cgfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0 || fstat(cgfd, &st) || (uint64_t)st.st_ino != cgid) {
		rc = 0;
		goto out;
	}
	left = query_ours(cgfd, tag, true, err);
	if (left < 0) {
		rc = left;
		goto out;
	}
	if (left) {
		rc = fl_err_set(err, -EBUSY, "%d program(s) of fault %s are still attached to %s", left, rec->fault, path);
		fl_err_hint(err, "bpftool cgroup show %s lists them; bpftool cgroup detach removes one", path);
		goto out;
	}
	rc = 0;
out:
	if (cgfd >= 0)
		close(cgfd);
	return rc;
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
