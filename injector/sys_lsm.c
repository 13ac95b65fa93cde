/* Loader of sys_lsm.bpf.c, the BPF LSM backend of syscall.error, and the pieces both BPF syscall backends share (rule to knobs, counters, ownership tests, journal values). */
#include "sys_lsm.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/capability.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "journal.h"
#include "net_cgroup.h"
#include "procfs.h"
#include "units.h"

#include "sys_lsm.skel.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
/* the initial cgroup namespace's inode number (include/linux/proc_ns.h) */
#define FL_CGROUP_INIT_INO 0xEFFFFFFBU

/* revert_record reads the tag at offset 0 of .rodata and writes the revoke flag at offset 0 of .bss. */
_Static_assert(offsetof(struct sys_lsm__rodata, fl_cfg) == 0, "fl_cfg must open .rodata");
_Static_assert(sizeof(struct sys_lsm__rodata) == sizeof(struct fl_sys_bpf_cfg), "fl_cfg must be all of .rodata");
_Static_assert(sizeof(struct sys_lsm__bss) == sizeof(__u32), "fl_revoked must be all of .bss");
_Static_assert(FL_SL_NSLOT <= FL_SYS_NSLOT, "counter slots");

#define PROG_PREFIX "fl_sl_"
#define LSM_LIST "/sys/kernel/security/lsm"

/* ---- hooks ---------------------------------------------------------------------------------- */

static const struct {
	const char *prog;
	const char *hook;
} hook_tab[FL_SL_NHOOKS] = {
	[FL_SL_H_OPEN] = {"fl_sl_open", "file_open"},
	[FL_SL_H_PERM] = {"fl_sl_perm", "file_permission"},
	[FL_SL_H_CONNECT] = {"fl_sl_connect", "socket_connect"},
	[FL_SL_H_BIND] = {"fl_sl_bind", "socket_bind"},
	[FL_SL_H_SOCKET] = {"fl_sl_socket", "socket_create"},
	[FL_SL_H_SENDMSG] = {"fl_sl_sendmsg", "socket_sendmsg"},
	[FL_SL_H_RECVMSG] = {"fl_sl_recvmsg", "socket_recvmsg"},
	[FL_SL_H_ACCEPT] = {"fl_sl_accept", "socket_accept"},
	[FL_SL_H_LISTEN] = {"fl_sl_listen", "socket_listen"},
	[FL_SL_H_MMAP] = {"fl_sl_mmap", "mmap_file"},
	[FL_SL_H_GETSOCKOPT] = {"fl_sl_getsopt", "socket_getsockopt"},
	[FL_SL_H_SETSOCKOPT] = {"fl_sl_setsopt", "socket_setsockopt"},
};

static const char *const slot_names[FL_SL_NSLOT] = {
	"open", "read", "write", "connect", "bind", "socket", "sendmsg",
	"recvmsg", "accept", "listen", "mmap", "getsockopt", "setsockopt",
};

static struct bpf_program *hook_prog(struct sys_lsm *s, int i)
{
	struct bpf_program *const progs[FL_SL_NHOOKS] = {
		s->progs.fl_sl_open,    s->progs.fl_sl_perm,    s->progs.fl_sl_connect, s->progs.fl_sl_bind,
		s->progs.fl_sl_socket,  s->progs.fl_sl_sendmsg, s->progs.fl_sl_recvmsg, s->progs.fl_sl_accept,
		s->progs.fl_sl_listen,  s->progs.fl_sl_mmap,    s->progs.fl_sl_getsopt, s->progs.fl_sl_setsopt,
	};

	return progs[i];
}

const char *fl_sl_prog_name(int hook)
{
	return hook >= 0 && hook < FL_SL_NHOOKS ? hook_tab[hook].prog : NULL;
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

static void hooks_join(unsigned hooks, bool progs, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < FL_SL_NHOOKS; i++) {
		int w;

		if (!(hooks & (1u << i)))
			continue;
		w = snprintf(buf + off, len - off, "%s%s", off ? "," : "", progs ? hook_tab[i].prog : hook_tab[i].hook);
		if (w < 0 || (size_t)w >= len - off)
			return;
		off += (size_t)w;
	}
}

/* ---- shared by the BPF syscall backends ------------------------------------------------------ */

static uint64_t prob_threshold(double p)
{
	if (p >= 1.0)
		return 1ULL << 32;
	if (p <= 0.0)
		return 0;
	/* the same 32-bit threshold fl_sys_should_act compares with */
	return (uint64_t)(p * 4294967296.0);
}

int fl_sysbpf_cfg_from_rule(const struct fl_sys_rule *r, struct fl_sys_bpf_cfg *cfg, struct fl_err *err)
{
	size_t n = strnlen(r->path_prefix, sizeof(r->path_prefix));

	if (r->err <= 0 || r->err > 4095)
		return fl_err_set(err, -EINVAL, "errno %d is not one a syscall can fail with", r->err);
	if (n >= FL_SYS_PATH_MAX)
		return fl_err_set(err, -ENAMETOOLONG, "path_prefix is longer than %d bytes", FL_SYS_PATH_MAX - 1);
	cfg->threshold = prob_threshold(r->probability);
	cfg->after = r->after;
	cfg->max = r->max;
	cfg->err = (__u32)r->err;
	cfg->perm_mask = 0;
	for (int i = 0; i < r->n; i++) {
		if (r->sys[i]->cls == FL_SYS_FILE_READ)
			cfg->perm_mask |= FL_MAY_READ;
		if (r->sys[i]->cls == FL_SYS_FILE_WRITE)
			cfg->perm_mask |= FL_MAY_WRITE;
	}
	memset(cfg->dst_addr, 0, sizeof(cfg->dst_addr));
	memset(cfg->dst_mask, 0, sizeof(cfg->dst_mask));
	cfg->dst_has_addr = r->has_dst;
	cfg->dst_v6 = r->has_dst && r->dst.family == AF_INET6;
	cfg->dst_port = r->dst_port;
	if (r->has_dst) {
		int words = cfg->dst_v6 ? 4 : 1, max = cfg->dst_v6 ? 128 : 32;

		if (r->dst.prefix < 0 || r->dst.prefix > max)
			return fl_err_set(err, -EINVAL, "dst_ip prefix /%d is out of range", r->dst.prefix);
		for (int w = 0; w < words; w++) {
			int bits = r->dst.prefix - 32 * w;
			uint32_t m = bits >= 32 ? 0xffffffffu : bits <= 0 ? 0 : ~((1u << (32 - bits)) - 1);
			uint32_t a;

			memcpy(&a, r->dst.addr + 4 * w, 4);
			cfg->dst_mask[w] = htonl(m);
			cfg->dst_addr[w] = a & cfg->dst_mask[w];
		}
	}
	memset(cfg->prefix, 0, sizeof(cfg->prefix));
	memcpy(cfg->prefix, r->path_prefix, n);
	cfg->prefix_len = (__u32)n;
	return 0;
}

int fl_sysbpf_check_errno_only(const struct fl_sys_rule *r, const char *backend, struct fl_err *err)
{
	if (r->err > 0)
		return 0;
	fl_err_set(err, -EOPNOTSUPP, "backend %s can only fail calls with an errno: a BPF hook cannot hold a "
				     "call for a delay", backend);
	fl_err_hint(err, "syscall.delay needs backend seccomp (user notification), for a target faultline launches");
	return -EOPNOTSUPP;
}

int fl_sysbpf_read_counts(const struct bpf_map *state, const struct bpf_map *ctr, struct fl_sysbpf_counts *out)
{
	struct fl_sys_bpf_state s;
	int ncpu = libbpf_num_possible_cpus(), rc;
	__u32 k = 0;
	uint64_t *v;

	memset(out, 0, sizeof(*out));
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	/* under the lock: matched and acted from the same instant */
	rc = bpf_map__lookup_elem(state, &k, sizeof(k), &s, sizeof(s), BPF_F_LOCK);
	if (rc)
		return rc;
	out->matched = s.matched;
	out->acted = s.acted;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (k = 0; k < 2 * FL_SYS_NSLOT; k++) {
		rc = bpf_map__lookup_elem(ctr, &k, sizeof(k), v, (size_t)ncpu * sizeof(*v), 0);
		if (rc)
			break;
		for (int c = 0; c < ncpu; c++)
			out->slot[k / 2][k % 2] += v[c];
	}
	free(v);
	return rc;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

bool fl_sysbpf_prog_is_ours(int prog_fd, const char *prefix, uint64_t magic, uint64_t tag, int *bss_fd)
{
	struct bpf_prog_info pi;
	__u32 map_ids[16], len = sizeof(pi);
	bool ours = false;
	int bss = -1;

	if (bss_fd)
		*bss_fd = -1;
	memset(&pi, 0, sizeof(pi));
	pi.nr_map_ids = 16;
	pi.map_ids = (__u64)(uintptr_t)map_ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &pi, &len) || strncmp(pi.name, prefix, strlen(prefix)))
		return false;
	for (__u32 i = 0; i < pi.nr_map_ids && i < 16; i++) {
		struct bpf_map_info mi;
		__u32 mlen = sizeof(mi), key = 0;
		int mfd = bpf_map_get_fd_by_id(map_ids[i]);

		if (mfd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		if (bpf_obj_get_info_by_fd(mfd, &mi, &mlen)) {
			close(mfd);
			continue;
		}
		if (has_suffix(mi.name, ".rodata") && mi.value_size == sizeof(struct fl_sys_bpf_cfg)) {
			struct fl_sys_bpf_cfg cfg;

			if (!bpf_map_lookup_elem(mfd, &key, &cfg))
				ours = cfg.magic == magic && (!tag || cfg.tag == tag);
		} else if (has_suffix(mi.name, ".bss") && mi.value_size == sizeof(__u32) && bss < 0) {
			bss = mfd;
			continue;
		}
		close(mfd);
	}
	if (ours && bss_fd)
		*bss_fd = bss;
	else if (bss >= 0)
		close(bss);
	return ours;
}

int fl_sysbpf_revoke(int bss_fd)
{
	__u32 key = 0, one = 1;

	if (bss_fd < 0)
		return -ENOENT;
	return bpf_map_update_elem(bss_fd, &key, &one, BPF_ANY);
}

int fl_sysbpf_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (const unsigned char *c = (const unsigned char *)in; *c; c++) {
		bool esc = *c <= ' ' || *c >= 0x7f || *c == '#' || *c == '%' || *c == '=';

		if (o + (esc ? 3 : 1) >= len)
			return -ENAMETOOLONG;
		if (esc)
			o += (size_t)snprintf(out + o, len - o, "%%%02X", *c);
		else
			out[o++] = (char)*c;
	}
	out[o] = '\0';
	return 0;
}

int fl_sysbpf_unescape(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (const char *c = in; *c; c++) {
		unsigned int x;

		if (o + 1 >= len)
			return -ENAMETOOLONG;
		if (*c == '%') {
			if (!isxdigit((unsigned char)c[1]) || !isxdigit((unsigned char)c[2]) ||
			    sscanf(c + 1, "%2x", &x) != 1)
				return -EINVAL;
			out[o++] = (char)x;
			c += 2;
		} else {
			out[o++] = *c;
		}
	}
	out[o] = '\0';
	return 0;
}

int fl_sysbpf_rec_tag(const struct fl_journal_rec *rec, uint64_t *tag)
{
	char txt[32], *end;

	if (!fl_rec_get(rec, "tag", txt, sizeof(txt)))
		return -EINVAL;
	errno = 0;
	*tag = strtoull(txt, &end, 16);
	return *end || errno || !*tag || !txt[0] ? -EINVAL : 0;
}

void fl_sysbpf_observe_common(struct fl_observation *o, const struct fl_sysbpf_counts *c,
			      const struct fl_sys_bpf_cfg *cfg, double probability)
{
	const char *en = fl_errno_name((int)cfg->err);

	fl_obs_num(o, "calls_matched", (double)c->matched, "%llu", (unsigned long long)c->matched);
	fl_obs_num(o, "calls_failed", (double)c->acted, "%llu", (unsigned long long)c->acted);
	/* the ratio the probability governs: calls past `after`, before `max` stopped it */
	if (c->matched > cfg->after && (!cfg->max || c->acted < cfg->max)) {
		double r = (double)c->acted / (double)(c->matched - cfg->after);

		fl_obs_num(o, "failed_observed", r, "%.1f%%", 100.0 * r);
	} else {
		fl_obs_text(o, "failed_observed", c->matched > cfg->after ? "n/a (max reached)" :
						 "n/a (nothing past `after` yet)");
	}
	fl_obs_num(o, "probability", probability, "%.1f%%", 100.0 * probability);
	fl_obs_text(o, "errno", "%s", en ? en : "?");
	if (cfg->after)
		fl_obs_num(o, "after", (double)cfg->after, "%llu", (unsigned long long)cfg->after);
	if (cfg->max)
		fl_obs_num(o, "max", (double)cfg->max, "%llu", (unsigned long long)cfg->max);
}

/* ---- scope ---------------------------------------------------------------------------------- */

struct sl_plan {
	unsigned hooks;
	struct fl_sys_bpf_cfg cfg;
	char cgroup[4096];      /* "" unless scope is the cgroup */
};

static bool is_cgroup2_root(const char *dir, const struct stat *st, const char *mount)
{
	char a[PATH_MAX], b[PATH_MAX];

	/* the root cgroup is kernfs node 1 */
	return st->st_ino == 1 || (realpath(dir, a) && realpath(mount, b) && !strcmp(a, b));
}

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
	struct statfs sfs;
	struct stat st;
	int rc;

	p->cgroup[0] = '\0';
	if (cg[0]) {
		if (statfs(cg, &sfs) < 0 || stat(cg, &st) < 0) {
			rc = -errno;
			return fl_err_set(err, rc, "target cgroup %s: %s", cg, strerror(-rc));
		}
		if (sfs.f_type != CGROUP2_SUPER_MAGIC || !S_ISDIR(st.st_mode))
			return fl_err_set(err, -ENOTDIR, "%s is not a cgroup v2 directory", cg);
		if (fl_cgroup_mount(NULL, mount, sizeof(mount)))
			return fl_err_set(err, -ENOENT, "no cgroup v2 hierarchy is mounted (target cgroup %s)", cg);
		if (!is_cgroup2_root(cg, &st, mount)) {
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
	hooks_join(p.hooks, false, hk, sizeof(hk));
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
	struct bpf_link *links[FL_SL_NHOOKS];
	unsigned hooks;
	struct fl_sys_bpf_cfg cfg;
	double probability;
	struct fl_sysbpf_counts snap;   /* the counters when unloaded */
	bool reverted;
};

static void sl_destroy(struct sl_state *st)
{
	if (!st)
		return;
	if (st->skel && st->skel->bss)
		st->skel->bss->fl_revoked = 1;
	for (int i = 0; i < FL_SL_NHOOKS; i++)
		bpf_link__destroy(st->links[i]);
	sys_lsm__destroy(st->skel);
	free(st);
}

/* Open -> configure -> load; only the hooks asked for are loaded. */
static int sl_load(const struct fl_sys_bpf_cfg *cfg, unsigned hooks, struct sl_state *st, struct fl_err *err)
{
	int rc;

	st->hooks = hooks;
	st->cfg = *cfg;
	st->skel = sys_lsm__open();
	if (!st->skel)
		return fl_err_set(err, -errno, "sys_lsm__open: %s", strerror(errno));
	for (int i = 0; i < FL_SL_NHOOKS; i++) {
		rc = bpf_program__set_autoload(hook_prog(st->skel, i), (hooks & (1u << i)) != 0);
		if (rc)
			return fl_err_set(err, rc, "bpf_program__set_autoload(%s): %s", hook_tab[i].prog, strerror(-rc));
	}
	st->skel->rodata->fl_cfg = *cfg;
	rc = sys_lsm__load(st->skel);
	if (rc)
		return fl_err_set(err, rc, "BPF_PROG_LOAD of the LSM programs (bpf_object__load): %s", strerror(-rc));
	return 0;
}

static int sl_attach(struct sl_state *st, struct fl_err *err)
{
	for (int i = 0; i < FL_SL_NHOOKS; i++) {
		if (!(st->hooks & (1u << i)))
			continue;
		st->links[i] = bpf_program__attach_lsm(hook_prog(st->skel, i));
		if (!st->links[i]) {
			int rc = -errno;

			/* all or nothing: a half-attached fault would be a different fault */
			for (int k = 0; k < i; k++) {
				bpf_link__destroy(st->links[k]);
				st->links[k] = NULL;
			}
			return fl_err_set(err, rc, "bpf_program__attach_lsm(%s on lsm/%s): %s", hook_tab[i].prog,
					  hook_tab[i].hook, strerror(-rc));
		}
	}
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
	cfg.tag = fl_cg_new_tag();
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
	rc = sl_attach(st, &e);
	if (rc) {
		fl_err_set(err, rc, "BPF LSM unavailable: attaching an lsm/socket_create program "
				    "(bpf_program__attach_lsm): %s", strerror(-rc));
		lsm_remedy(err);
		goto out;
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		close(fd);
	rc = fl_sysbpf_read_counts(st->skel->maps.fl_sys_st, st->skel->maps.fl_sys_ctr, &c);
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
	p.cfg.tag = fl_cg_new_tag();
	st->probability = r->probability;
	if (fl_sysbpf_escape(p.cgroup[0] ? p.cgroup : "-", esc, sizeof(esc))) {
		rc = fl_err_set(err, -ENAMETOOLONG, "cgroup path %s is too long for a journal record", p.cgroup);
		goto out;
	}
	hooks_join(p.hooks, false, hk, sizeof(hk));
	hooks_join(p.hooks, true, progs, sizeof(progs));
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
	rc = sl_attach(st, err);
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
	struct fl_sysbpf_counts c;
	char per[96], hk[256];
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
	/* per call kind, failed/matched: which of the rule's syscalls really happened */
	per[0] = '\0';
	for (int s = 0; s < FL_SL_NSLOT; s++) {
		int w;

		if (!c.slot[s][0])
			continue;
		w = snprintf(per + off, sizeof(per) - off, "%s%s %llu/%llu", off ? ", " : "", slot_names[s],
			     (unsigned long long)c.slot[s][1], (unsigned long long)c.slot[s][0]);
		if (w < 0 || (size_t)w >= sizeof(per) - off)
			break;
		off += (size_t)w;
	}
	fl_obs_text(o, "failed_per_call", "%s", per[0] ? per : "none yet");
	hooks_join(st->hooks, false, hk, sizeof(hk));
	fl_obs_text(o, "hooks", "lsm/%.80s%s", hk, st->reverted ? " (detached)" : "");
	return 0;
}

static int sl_revert(void *state, struct fl_err *err)
{
	struct sl_state *st = state;
	int rc = 0;

	if (!st || st->reverted)
		return 0;
	/* first: a link some forked child inherited stays attached, but acts no more */
	st->skel->bss->fl_revoked = 1;
	for (int i = 0; i < FL_SL_NHOOKS; i++) {
		bpf_link__destroy(st->links[i]);
		st->links[i] = NULL;
	}
	rc = fl_sysbpf_read_counts(st->skel->maps.fl_sys_st, st->skel->maps.fl_sys_ctr, &st->snap);
	if (rc)
		fl_err_set(err, rc, "reading the counters before unloading: %s (detached anyway)", strerror(-rc));
	sys_lsm__destroy(st->skel);
	st->skel = NULL;
	st->reverted = true;
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
	uint64_t tag;
	__u32 id = 0, held_id = 0;
	int found = 0, held = 0;

	if (fl_sysbpf_rec_tag(rec, &tag))
		return fl_err_set(err, -EINVAL, "journal record %llu lacks a valid tag", (unsigned long long)rec->seq);
	while (!bpf_link_get_next_id(id, &id)) {
		struct bpf_link_info li;
		__u32 len = sizeof(li);
		int lfd = bpf_link_get_fd_by_id(id), pfd = -1, bss = -1, rc;

		if (lfd < 0)
			continue; /* gone meanwhile */
		memset(&li, 0, sizeof(li));
		if (bpf_obj_get_info_by_fd(lfd, &li, &len) || li.type != BPF_LINK_TYPE_TRACING ||
		    li.tracing.attach_type != BPF_LSM_MAC)
			goto next;
		pfd = bpf_prog_get_fd_by_id(li.prog_id);
		if (pfd < 0 || !fl_sysbpf_prog_is_ours(pfd, PROG_PREFIX, FL_SL_MAGIC, tag, &bss))
			goto next;
		found++;
		rc = fl_sysbpf_revoke(bss);
		if (rc) {
			fl_err_set(err, rc, "revoking LSM link %u of fault %s (writing its .bss): %s", id, rec->fault,
				   strerror(-rc));
			close(bss);
			close(pfd);
			close(lfd);
			return rc;
		}
		if (bpf_link_detach(lfd)) {
			held++;
			held_id = id;
		}
next:
		if (bss >= 0)
			close(bss);
		if (pfd >= 0)
			close(pfd);
		close(lfd);
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
	return 0;
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
