/* Loader of sys_lsm.bpf.c, the BPF LSM backend of syscall.error: its hooks, its scope (a cgroup, a process or the host), and revoking its links from a journal record. */
#include "sys_lsm.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/capability.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "journal.h"
#include "procfs.h"
#include "units.h"

#include "sys_lsm.skel.h"

/* the initial cgroup namespace's inode number (include/linux/proc_ns.h) */
#define FL_CGROUP_INIT_INO 0xEFFFFFFBU

/* revert_record reads the mark at offset 0 of .rodata and writes the revoke flag at offset 0 of .bss. */
_Static_assert(offsetof(struct sys_lsm__rodata, fl_cfg) == 0, "fl_cfg must open .rodata");
_Static_assert(sizeof(struct sys_lsm__rodata) == sizeof(struct fl_sys_bpf_cfg), "fl_cfg must be all of .rodata");
_Static_assert(sizeof(struct sys_lsm__bss) == sizeof(__u32), "fl_revoked must be all of .bss");
_Static_assert(FL_SL_NSLOT <= FL_SYS_NSLOT, "counter slots");
_Static_assert(FL_SL_NHOOKS <= FL_BPF_MAX_HOOKS, "hooks");

#define LSM_LIST "/sys/kernel/security/lsm"

/* ---- hooks ---------------------------------------------------------------------------------- */

/* One program per LSM hook; the name is the hook's (lsm/NAME). */
static const struct fl_bpf_hook sl_hooks[FL_SL_NHOOKS] = {
	[FL_SL_H_OPEN] = {"file_open", "fl_sl_open", BPF_LSM_MAC},
	[FL_SL_H_PERM] = {"file_permission", "fl_sl_perm", BPF_LSM_MAC},
	[FL_SL_H_CONNECT] = {"socket_connect", "fl_sl_connect", BPF_LSM_MAC},
	[FL_SL_H_BIND] = {"socket_bind", "fl_sl_bind", BPF_LSM_MAC},
	[FL_SL_H_SOCKET] = {"socket_create", "fl_sl_socket", BPF_LSM_MAC},
	[FL_SL_H_SENDMSG] = {"socket_sendmsg", "fl_sl_sendmsg", BPF_LSM_MAC},
	[FL_SL_H_RECVMSG] = {"socket_recvmsg", "fl_sl_recvmsg", BPF_LSM_MAC},
	[FL_SL_H_ACCEPT] = {"socket_accept", "fl_sl_accept", BPF_LSM_MAC},
	[FL_SL_H_LISTEN] = {"socket_listen", "fl_sl_listen", BPF_LSM_MAC},
	[FL_SL_H_MMAP] = {"mmap_file", "fl_sl_mmap", BPF_LSM_MAC},
	[FL_SL_H_GETSOCKOPT] = {"socket_getsockopt", "fl_sl_getsopt", BPF_LSM_MAC},
	[FL_SL_H_SETSOCKOPT] = {"socket_setsockopt", "fl_sl_setsopt", BPF_LSM_MAC},
};

static const struct fl_bpf_kind sl_kind = {
	.prefix = "fl_sl_",
	.magic = FL_SL_MAGIC,
	.rodata_size = sizeof(struct fl_sys_bpf_cfg),
	.hooks = sl_hooks,
	.nhooks = FL_SL_NHOOKS,
	.lsm = true,
};

static const char *const slot_names[FL_SL_NSLOT] = {
	"open", "read", "write", "connect", "bind", "socket", "sendmsg",
	"recvmsg", "accept", "listen", "mmap", "getsockopt", "setsockopt",
};

const char *fl_sl_prog_name(int hook)
{
	return hook >= 0 && hook < FL_SL_NHOOKS ? sl_hooks[hook].prog : NULL;
}

unsigned fl_sl_hooks_for(const struct fl_sys_rule *r, const char **why)
{
	unsigned hooks = 0;

	*why = NULL;
	if (r->n == 0) {
		*why = "the rule names no syscall";
		return 0;
	}
	for (int i = 0; i < r->n; i++) {
		const struct fl_syscall *s = r->sys[i];

		switch (s->cls) {
		case FL_SYS_FILE_OPEN: hooks |= 1u << FL_SL_H_OPEN; break;
		case FL_SYS_FILE_READ:
		case FL_SYS_FILE_WRITE: hooks |= 1u << FL_SL_H_PERM; break;
		case FL_SYS_CONNECT: hooks |= 1u << FL_SL_H_CONNECT; break;
		case FL_SYS_BIND: hooks |= 1u << FL_SL_H_BIND; break;
		case FL_SYS_SOCKET: hooks |= 1u << FL_SL_H_SOCKET; break;
		case FL_SYS_SENDMSG: hooks |= 1u << FL_SL_H_SENDMSG; break;
		case FL_SYS_RECVMSG: hooks |= 1u << FL_SL_H_RECVMSG; break;
		case FL_SYS_ACCEPT: hooks |= 1u << FL_SL_H_ACCEPT; break;
		case FL_SYS_LISTEN: hooks |= 1u << FL_SL_H_LISTEN; break;
		case FL_SYS_MMAP: hooks |= 1u << FL_SL_H_MMAP; break;
		case FL_SYS_SOCKOPT:
			/* two hooks for one class: only the one named */
			hooks |= 1u << (!strcmp(s->name, "getsockopt") ? FL_SL_H_GETSOCKOPT : FL_SL_H_SETSOCKOPT);
			break;
		default:
			*why = s->name;
			return 0;
		}
	}
	return hooks;
}

/* ---- scope ---------------------------------------------------------------------------------- */

struct sl_plan {
	unsigned hooks;
	struct fl_sys_bpf_cfg cfg;
	char cgroup[4096];      /* "" unless scope is the cgroup */
};

/* Depth of dir below the cgroup2 mount: the level bpf_get_current_ancestor_cgroup_id takes. */
static int cgroup_level(const char *dir, const char *mount, __u32 *level, struct fl_err *err)
{
	char a[PATH_MAX], b[PATH_MAX];
	struct stat ns;
	size_t lb;
	__u32 n = 0;

	/* in a cgroup namespace the mount's root is not the kernel's root: the depth would be wrong */
	if (stat("/proc/self/ns/cgroup", &ns) == 0 && ns.st_ino != FL_CGROUP_INIT_INO) {
		fl_err_set(err, -EOPNOTSUPP, "faultline runs in a cgroup namespace: the depth of %s below the "
					     "real cgroup root, which the LSM scope test needs, is unknown here", dir);
		fl_err_hint(err, "run faultline in the host's cgroup namespace, or use backend cgroup (socket calls)");
		return -EOPNOTSUPP;
	}
	if (!realpath(dir, a) || !realpath(mount, b))
		return fl_err_set(err, -errno, "realpath %s: %s", dir, strerror(errno));
	lb = strlen(b);
	if (strncmp(a, b, lb) || (a[lb] != '/' && a[lb] != '\0'))
		return fl_err_set(err, -EXDEV, "%s is not under the cgroup2 mount %s", a, b);
	for (const char *c = a + lb; *c; c++)
		if (*c == '/' && c[1] && c[1] != '/')
			n++;
	*level = n;
	return 0;
}

/* Who the programs act for: the target's cgroup and below, else its process, else (allowed) everyone. */
static int sl_scope(const struct fl_sys_rule *r, struct sl_plan *p, struct fl_err *err)
{
	const char *cg = r->cgroup_v2 ? r->cgroup_v2 : "";
	char mount[4096];
	struct stat st;
	int rc;

	p->cgroup[0] = '\0';
	if (cg[0]) {
		rc = fl_bpf_cgroup_dir(cg, &st, err);
		if (rc)
			return rc;
		if (fl_cgroup_mount(NULL, mount, sizeof(mount)))
			return fl_err_set(err, -ENOENT, "no cgroup v2 hierarchy is mounted (target cgroup %s)", cg);
		if (!fl_bpf_cgroup_is_root(cg, &st, mount)) {
			rc = cgroup_level(cg, mount, &p->cfg.cg_level, err);
			if (rc)
				return rc;
			p->cfg.scope = FL_SYS_SCOPE_CGROUP;
			p->cfg.cgid = (__u64)st.st_ino;
			snprintf(p->cgroup, sizeof(p->cgroup), "%s", cg);
			return 0;
		}
		/* the root is nobody's own cgroup: fall back to the process */
	}
	if (r->tgid > 0) {
		if (kill(r->tgid, 0) && errno == ESRCH)
			return fl_err_set(err, -ESRCH, "target pid %d is gone", (int)r->tgid);
		if (stat("/proc/self/ns/pid", &st))
			return fl_err_set(err, -errno, "stat /proc/self/ns/pid: %s", strerror(errno));
		p->cfg.scope = FL_SYS_SCOPE_TGID;
		p->cfg.tgid = (__u32)r->tgid;
		p->cfg.pidns_dev = (__u64)st.st_dev;
		p->cfg.pidns_ino = (__u64)st.st_ino;
		return 0;
	}
	if (r->allow_host_wide) {
		p->cfg.scope = FL_SYS_SCOPE_ALL;
		return 0;
	}
	fl_err_set(err, -ESRCH, "the target has neither a cgroup v2 directory of its own nor a pid to scope the "
				"LSM programs to");
	fl_err_hint(err, "launch the target (target.run), name its pid or cgroup, or set allow_host_wide: true");
	return -ESRCH;
}

/* ---- check ---------------------------------------------------------------------------------- */

/* The active LSM list into buf: 1 when read, 0 when unreadable (securityfs not mounted). */
static int lsm_list(char *buf, size_t len)
{
	FILE *f = fopen(LSM_LIST, "re");
	bool ok;

	buf[0] = '\0';
	if (!f)
		return 0;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return ok;
}

static bool list_has_bpf(const char *list)
{
	char copy[512], *save = NULL;

	snprintf(copy, sizeof(copy), "%s", list);
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (!strcmp(t, "bpf"))
			return true;
	return false;
}

/* What to do about a kernel that refuses BPF LSM, into the hint. */
static void lsm_remedy(struct fl_err *err)
{
	char list[512];

	if (!lsm_list(list, sizeof(list)))
		fl_err_hint(err, "boot with lsm=...,bpf on the kernel command line (CONFIG_BPF_LSM=y); " LSM_LIST
				 " is unreadable (securityfs not mounted); a hypervisor may forbid BPF LSM even "
				 "then; else use backend cgroup or seccomp");
	else if (!list_has_bpf(list))
		fl_err_hint(err, "bpf is missing from " LSM_LIST " (%.100s): boot with lsm=%.100s,bpf; a "
				 "hypervisor may forbid BPF LSM even then", list, list);
	else
		fl_err_hint(err, "bpf is an active LSM (%.100s), so the hypervisor or a sandbox forbids BPF "
				 "trampolines here; use backend cgroup (socket calls) or seccomp", list);
}

static int sl_caps(struct fl_err *err)
{
	if (fl_have_cap(CAP_SYS_ADMIN) || (fl_have_cap(CAP_BPF) && fl_have_cap(CAP_PERFMON)))
		return 0;
	return fl_err_set(err, -EPERM, "loading BPF LSM programs needs CAP_BPF and CAP_PERFMON (or "
				       "CAP_SYS_ADMIN): run faultline as root");
}

/* Everything apply needs, from the rule; read-only. */
static int sl_plan(const struct fl_sys_rule *r, struct sl_plan *p, struct fl_err *err)
{
	const char *why;
	int rc;

	memset(p, 0, sizeof(*p));
	rc = fl_sysbpf_check_errno_only(r, "lsm", err);
	if (rc)
		return rc;
	p->hooks = fl_sl_hooks_for(r, &why);
	if (!p->hooks) {
		if (r->n == 0)
			return fl_err_set(err, -EINVAL, "%s", why);
		fl_err_set(err, -EOPNOTSUPP, "%s has no LSM hook to fail it in", why);
		fl_err_hint(err, "backend seccomp can fail any syscall of a target faultline launches (target.run)");
		return -EOPNOTSUPP;
	}
	if (r->path_prefix[0] && r->path_prefix[0] != '/') {
		fl_err_set(err, -EINVAL, "path_prefix '%s' is relative: the LSM sees resolved absolute paths",
			   r->path_prefix);
		fl_err_hint(err, "give the directory as an absolute path, as the target's root sees it");
		return -EINVAL;
	}
	rc = fl_sysbpf_cfg_from_rule(r, &p->cfg, err);
	if (rc)
		return rc;
	return sl_scope(r, p, err);
}

static int sl_check(const struct fl_sys_rule *r, struct fl_err *err)
{
	struct sl_plan p;
	char list[512];
	int rc;

	rc = sl_plan(r, &p, err);
	if (rc)
		return rc;
	if (lsm_list(list, sizeof(list)) && !list_has_bpf(list)) {
		fl_err_set(err, -EOPNOTSUPP, "BPF LSM unavailable: bpf is not an active LSM (%s)", list);
		fl_err_hint(err, "boot with lsm=%.100s,bpf on the kernel command line; a hypervisor may forbid it "
				 "even then", list);
		return -EOPNOTSUPP;
	}
	return sl_caps(err);
}

void fl_sl_describe(const struct fl_sys_rule *r, char *buf, size_t len)
{
	struct sl_plan p;
	char hk[256], scope[160];

	if (sl_plan(r, &p, NULL)) {
		snprintf(buf, len, "BPF LSM: this rule cannot run (see check)");
		return;
	}
	fl_bpf_hooks_join(&sl_kind, p.hooks, false, hk, sizeof(hk));
	if (p.cfg.scope == FL_SYS_SCOPE_CGROUP)
		snprintf(scope, sizeof(scope), "tasks of %.100s and below", p.cgroup);
	else if (p.cfg.scope == FL_SYS_SCOPE_TGID)
		snprintf(scope, sizeof(scope), "the threads of pid %u (not its children)", p.cfg.tgid);
	else
		snprintf(scope, sizeof(scope), "every task of the host");
	snprintf(buf, len, "BPF LSM %s for %s: fail with %s%s%s%s; links dropped on revert", hk, scope,
		 fl_errno_name(r->err) ? fl_errno_name(r->err) : "?",
		 p.hooks & (1u << FL_SL_H_SENDMSG) ? "; sendmsg also catches write() on sockets" : "",
		 p.hooks & (1u << FL_SL_H_RECVMSG) ? "; recvmsg also catches read() on sockets" : "",
		 p.hooks & (1u << FL_SL_H_OPEN) ? "; open covers open, openat, openat2, creat and exec" : "");
}

/* ---- load, attach, count, unload --------------------------------------------------------------- */

struct sl_state {
	struct sys_lsm *skel;
	struct fl_sysbpf_run run;
};

static void sl_destroy(struct sl_state *st)
{
	if (!st)
		return;
	fl_sysbpf_drop(&st->run);
	sys_lsm__destroy(st->skel);
	free(st);
}

/* Open -> configure -> load; only the hooks asked for are loaded. */
static int sl_load(const struct fl_sys_bpf_cfg *cfg, unsigned hooks, struct sl_state *st, struct fl_err *err)
{
	int rc;

	st->run.cfg = *cfg;
	st->skel = sys_lsm__open();
	if (!st->skel)
		return fl_err_set(err, -errno, "sys_lsm__open: %s", strerror(errno));
	rc = fl_bpf_links_init(&st->run.links, &sl_kind, st->skel->obj, hooks, err);
	if (rc)
		return rc;
	st->skel->rodata->fl_cfg = *cfg;
	rc = sys_lsm__load(st->skel);
	if (rc)
		return fl_err_set(err, rc, "BPF_PROG_LOAD of the LSM programs (bpf_object__load): %s", strerror(-rc));
	/* after the load: only then is skel->bss the kernel map's memory, not the initial image */
	st->run.revoked = &st->skel->bss->fl_revoked;
	st->run.state_map = st->skel->maps.fl_sys_st;
	st->run.ctr_map = st->skel->maps.fl_sys_ctr;
	return 0;
}

/* libbpf's messages during the probe: kept to tell an empty verifier log, never printed. */
static char probe_log[4096];
static size_t probe_log_len;

static int probe_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int w;

	(void)level;
	if (probe_log_len >= sizeof(probe_log) - 1)
		return 0;
	w = vsnprintf(probe_log + probe_log_len, sizeof(probe_log) - probe_log_len, fmt, ap);
	if (w > 0)
		probe_log_len += (size_t)w < sizeof(probe_log) - probe_log_len ? (size_t)w :
									      sizeof(probe_log) - probe_log_len - 1;
	return 0;
}

/*
 * Really load and attach a trivial program (socket_create, counting only: probability 0, for
 * this process alone), make one socket, see the hook run, drop it. Nothing stays behind.
 */
static int sl_probe(struct fl_err *err)
{
	struct fl_sys_bpf_cfg cfg;
	struct fl_sysbpf_counts c;
	struct sl_state *st = NULL;
	libbpf_print_fn_t old;
	struct fl_err e = {0};
	struct stat ns;
	int rc, fd;

	rc = sl_caps(err);
	if (rc)
		return rc;
	if (stat("/proc/self/ns/pid", &ns))
		return fl_err_set(err, -errno, "stat /proc/self/ns/pid: %s", strerror(errno));
	memset(&cfg, 0, sizeof(cfg));
	cfg.magic = FL_SL_MAGIC;
	cfg.tag = fl_bpf_new_tag();
	cfg.err = EPERM;
	cfg.threshold = 0;
	cfg.scope = FL_SYS_SCOPE_TGID;
	cfg.tgid = (__u32)getpid();
	cfg.pidns_dev = (__u64)ns.st_dev;
	cfg.pidns_ino = (__u64)ns.st_ino;
	st = calloc(1, sizeof(*st));
	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	/* libbpf's "raise RLIMIT_MEMLOCK" guess is wrong here: keep its words, print none */
	probe_log_len = 0;
	probe_log[0] = '\0';
	old = libbpf_set_print(probe_print);
	rc = sl_load(&cfg, 1u << FL_SL_H_SOCKET, st, &e);
	libbpf_set_print(old);
	if (rc) {
		fl_err_set(err, rc, "BPF LSM unavailable: BPF_PROG_LOAD of an lsm/socket_create program: %s%s",
			   strerror(-rc), strstr(probe_log, "BEGIN PROG LOAD LOG") ? "" : " (empty verifier log)");
		lsm_remedy(err);
		goto out;
	}
	rc = fl_bpf_links_attach(&st->run.links, NULL, &e);
	if (rc) {
		fl_err_set(err, rc, "BPF LSM unavailable: attaching an lsm/socket_create program "
				    "(bpf_program__attach_lsm): %s", strerror(-rc));
		lsm_remedy(err);
		goto out;
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		close(fd);
	rc = fl_sysbpf_read_counts(st->run.state_map, st->run.ctr_map, &c);
	if (rc) {
		fl_err_set(err, rc, "reading the probe program's counter: %s", strerror(-rc));
		goto out;
	}
	if (c.matched == 0) {
		char list[512];

		rc = -EOPNOTSUPP;
		if (lsm_list(list, sizeof(list)))
			fl_err_set(err, rc, "BPF LSM unavailable: an lsm/socket_create program attached but never ran "
					    "(active LSMs: %s)", list);
		else
			fl_err_set(err, rc, "BPF LSM unavailable: an lsm/socket_create program attached but never ran "
					    "(bpf is not an active LSM)");
		lsm_remedy(err);
		goto out;
	}
	rc = 0;
out:
	sl_destroy(st);
	return rc;
}

static int sl_apply(const struct fl_sys_rule *r, struct fl_journal *j, void **state, struct fl_err *err)
{
	struct sl_state *st = NULL;
	struct sl_plan p;
	char rec[FL_REC_DATA], esc[1024], hk[256], progs[256];
	int64_t seq;
	int rc, n;

	*state = NULL;
	rc = sl_plan(r, &p, err);
	if (rc)
		return rc;
	st = calloc(1, sizeof(*st));
	if (!st)
		return fl_err_set(err, -ENOMEM, "out of memory");
	p.cfg.magic = FL_SL_MAGIC;
	p.cfg.tag = fl_bpf_new_tag();
	st->run.probability = r->probability;
	if (fl_bpf_escape(p.cgroup[0] ? p.cgroup : "-", esc, sizeof(esc))) {
		rc = fl_err_set(err, -ENAMETOOLONG, "cgroup path %s is too long for a journal record", p.cgroup);
		goto out;
	}
	fl_bpf_hooks_join(&sl_kind, p.hooks, false, hk, sizeof(hk));
	fl_bpf_hooks_join(&sl_kind, p.hooks, true, progs, sizeof(progs));
	/* the tag and the program names find the links again; the rest says what they did */
	n = snprintf(rec, sizeof(rec), "backend=lsm tag=%016llx progs=%s hooks=%s scope=%s cgroup=%s cgid=%llu "
				       "level=%u tgid=%u errno=%u",
		     (unsigned long long)p.cfg.tag, progs, hk,
		     p.cfg.scope == FL_SYS_SCOPE_CGROUP ? "cgroup" : p.cfg.scope == FL_SYS_SCOPE_TGID ? "tgid" : "all",
		     esc, (unsigned long long)p.cfg.cgid, p.cfg.cg_level, p.cfg.tgid, p.cfg.err);
	if (n < 0 || (size_t)n >= sizeof(rec)) {
		rc = fl_err_set(err, -ENAMETOOLONG, "journal record too long (cgroup path %s)", p.cgroup);
		goto out;
	}
	seq = fl_journal_append(j, r->f, "%s", rec);
	if (seq < 0) {
		rc = fl_err_set(err, (int)seq, "journal write failed: %s", strerror((int)-seq));
		goto out;
	}
	rc = sl_load(&p.cfg, p.hooks, st, err);
	if (rc)
		goto out;
	rc = fl_bpf_links_attach(&st->run.links, NULL, err);
	if (rc)
		goto out;
	*state = st;
	return 0;
out:
	sl_destroy(st);
	return rc;
}

static int sl_observe(void *state, struct fl_observation *o)
{
	struct sl_state *st = state;

	if (!st)
		return -ENOENT;
	return fl_sysbpf_observe(&st->run, o, slot_names, FL_SL_NSLOT, "lsm/");
}

static int sl_revert(void *state, struct fl_err *err)
{
	struct sl_state *st = state;
	int rc;

	if (!st || st->run.reverted)
		return 0;
	rc = fl_sysbpf_unload(&st->run, err);
	sys_lsm__destroy(st->skel);
	st->skel = NULL;
	return rc;
}

static void sl_release(void *state)
{
	sl_destroy(state);
}

/* ---- revert from the journal ---------------------------------------------------------------- */

/* The pid holding link `id` open (from /proc/PID/fdinfo), 0 when none is found. */
static pid_t link_holder(__u32 id)
{
	DIR *proc = opendir("/proc");
	struct dirent *p;
	pid_t who = 0;

	if (!proc)
		return 0;
	while (!who && (p = readdir(proc))) {
		char dir[64], path[128], target[64], line[128];
		struct dirent *f;
		int pid = atoi(p->d_name);
		DIR *fds;

		if (pid <= 0)
			continue;
		snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
		fds = opendir(dir);
		if (!fds)
			continue;
		while (!who && (f = readdir(fds))) {
			ssize_t n;
			FILE *fi;

			int fdn = atoi(f->d_name);

			if (!isdigit((unsigned char)f->d_name[0]))
				continue;
			snprintf(path, sizeof(path), "%s/%d", dir, fdn);
			n = readlink(path, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			if (strcmp(target, "anon_inode:bpf_link"))
				continue;
			snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fdn);
			fi = fopen(path, "re");
			if (!fi)
				continue;
			while (fgets(line, sizeof(line), fi)) {
				unsigned lid;

				if (sscanf(line, "link_id: %u", &lid) == 1 && lid == id) {
					who = (pid_t)pid;
					break;
				}
			}
			fclose(fi);
		}
		closedir(fds);
	}
	closedir(proc);
	return who;
}

/*
 * Every LSM link of ours with the record's tag: revoked (it stops failing calls at once), then
 * detached where the kernel can. A tracing link has no BPF_LINK_DETACH, so one still held by a
 * live process (a hung controller) stays attached but inert until that process exits; that is
 * said in err->msg with a 0 return. A dead controller's links are gone already.
 */
static int sl_revert_record(const struct fl_journal_rec *rec, struct fl_err *err)
{
	struct fl_bpf_walk w;
	uint64_t tag;
	__u32 held_id = 0;
	int found = 0, held = 0, rc = 0;

	if (fl_bpf_rec_tag(rec, &tag))
		return fl_err_set(err, -EINVAL, "journal record %llu lacks a valid tag", (unsigned long long)rec->seq);
	fl_bpf_walk_start(&w, &sl_kind, 0, tag);
	while (fl_bpf_walk_next(&w)) {
		found++;
		rc = fl_bpf_revoke(w.bss_fd);
		if (rc) {
			fl_err_set(err, rc, "revoking LSM link %u of fault %s (writing its .bss): %s", w.id, rec->fault,
				   strerror(-rc));
			goto out;
		}
		if (bpf_link_detach(w.link_fd)) {
			held++;
			held_id = w.id;
		}
	}
	if (held) {
		pid_t who = link_holder(held_id);

		/* not an error: nothing is failed any more; said so the operator knows what remains */
		fl_err_set(err, 0, "%d LSM link(s) of fault %s revoked (they fail no call) but still attached: held "
				   "open by pid %d; tracing links cannot be detached from another process, they go "
				   "when it exits", held, rec->fault, (int)who);
	} else if (found) {
		fl_err_set(err, 0, "%d LSM link(s) of fault %s detached", found, rec->fault);
	}
out:
	fl_bpf_walk_stop(&w);
	return rc;
}

/*
 * No sweep: nothing is pinned. The links are unpinned, so they detach when the controller's last
 * fd closes (a dead controller takes them along); a hung one is revoked from its journal record.
 */
const struct fl_sys_backend fl_sys_backend_lsm = {
	.name = "lsm",
	.probe = sl_probe,
	.check = sl_check,
	.apply = sl_apply,
	.observe = sl_observe,
	.revert = sl_revert,
	.release = sl_release,
	.revert_record = sl_revert_record,
};
