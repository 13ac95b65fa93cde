/* One loader toolkit for the BPF-backed injectors (net_cgroup.c, sys_cgroup.c, sys_lsm.c): hook tables, links, counters, finding tagged programs again from a journal record, record values, the cgroup scope, and the pieces both syscall backends share. */
#include "bpf_common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "injector.h"
#include "journal.h"
#include "procfs.h"
#include "sys.h"
#include "units.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

_Static_assert(offsetof(struct fl_sys_bpf_cfg, magic) == offsetof(struct fl_bpf_mark, magic) &&
		       offsetof(struct fl_sys_bpf_cfg, tag) == offsetof(struct fl_bpf_mark, tag),
	       "the syscall knobs open with the mark");
_Static_assert(sizeof(struct fl_sys_bpf_cfg) <= FL_BPF_RODATA_MAX, "the syscall knobs fit the read-back buffer");

/* ---- hooks ---------------------------------------------------------------------------------- */

void fl_bpf_hooks_join(const struct fl_bpf_kind *k, unsigned hooks, bool progs, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < k->nhooks; i++) {
		int w;

		if (!(hooks & (1u << i)))
			continue;
		w = snprintf(buf + off, len - off, "%s%s", off ? "," : "", progs ? k->hooks[i].prog : k->hooks[i].name);
		if (w < 0 || (size_t)w >= len - off)
			return;
		off += (size_t)w;
	}
}

void fl_bpf_obs_hooks(struct fl_observation *o, const struct fl_bpf_kind *k, const char *prefix, unsigned hooks,
		      bool reverted)
{
	char hk[256];

	fl_bpf_hooks_join(k, hooks, false, hk, sizeof(hk));
	fl_obs_text(o, "hooks", "%s%.80s%s", prefix, hk, reverted ? " (detached)" : "");
}

/* ---- load, attach, drop ------------------------------------------------------------------------ */

int fl_bpf_links_init(struct fl_bpf_links *l, const struct fl_bpf_kind *k, struct bpf_object *obj, unsigned hooks,
		      struct fl_err *err)
{
	int rc;

	memset(l, 0, sizeof(*l));
	l->kind = k;
	l->hooks = hooks;
	if (k->nhooks > FL_BPF_MAX_HOOKS)
		return fl_err_set(err, -E2BIG, "%d hooks of %s*: at most %d", k->nhooks, k->prefix, FL_BPF_MAX_HOOKS);
	for (int i = 0; i < k->nhooks; i++) {
		l->prog[i] = bpf_object__find_program_by_name(obj, k->hooks[i].prog);
		if (!l->prog[i])
			return fl_err_set(err, -ENOENT, "no program %s in the BPF object", k->hooks[i].prog);
		/* only what the fault uses is loaded: fewer programs in bpftool, less verifier time */
		rc = bpf_program__set_autoload(l->prog[i], (hooks & (1u << i)) != 0);
		if (rc)
			return fl_err_set(err, rc, "bpf_program__set_autoload(%s): %s", k->hooks[i].prog, strerror(-rc));
	}
	return 0;
}

static bool have_cgroup_caps(void)
{
	return fl_have_cap(CAP_SYS_ADMIN) || (fl_have_cap(CAP_BPF) && fl_have_cap(CAP_NET_ADMIN));
}

int fl_bpf_links_attach(struct fl_bpf_links *l, const char *cgroup, struct fl_err *err)
{
	const struct fl_bpf_kind *k = l->kind;
	int cgfd = -1, rc = 0;

	if (!k->lsm) {
		cgfd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cgfd < 0)
			return fl_err_set(err, -errno, "open %s: %s", cgroup, strerror(errno));
	}
	for (int i = 0; i < k->nhooks; i++) {
		if (!(l->hooks & (1u << i)))
			continue;
		l->link[i] = k->lsm ? bpf_program__attach_lsm(l->prog[i]) : bpf_program__attach_cgroup(l->prog[i], cgfd);
		if (l->link[i])
			continue;
		rc = -errno;
		if (k->lsm) {
			fl_err_set(err, rc, "bpf_program__attach_lsm(%s on lsm/%s): %s", k->hooks[i].prog, k->hooks[i].name,
				   strerror(-rc));
		} else {
			fl_err_set(err, rc, "bpf_program__attach_cgroup(%s, %s): %s", k->hooks[i].prog, cgroup,
				   strerror(-rc));
			if (rc == -EPERM)
				fl_err_hint(err, "attaching needs CAP_NET_ADMIN and CAP_BPF (or CAP_SYS_ADMIN)");
		}
		goto out;
	}
out:
	/* all or nothing: a half-attached fault would be a different fault */
	if (rc)
		fl_bpf_links_drop(l);
	if (cgfd >= 0)
		close(cgfd);
	return rc;
}

void fl_bpf_links_drop(struct fl_bpf_links *l)
{
	for (int i = 0; i < FL_BPF_MAX_HOOKS; i++) {
		if (!l->link[i])
			continue;
		if (!l->kind->lsm)
			bpf_link__detach(l->link[i]);
		bpf_link__destroy(l->link[i]);
		l->link[i] = NULL;
	}
}

int fl_bpf_percpu_sum(const struct bpf_map *map, uint32_t n, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus(), rc = 0;
	uint64_t *v;

	memset(out, 0, n * sizeof(*out));
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (__u32 k = 0; k < n; k++) {
		rc = bpf_map__lookup_elem(map, &k, sizeof(k), v, (size_t)ncpu * sizeof(*v), 0);
		if (rc)
			break;
		for (int c = 0; c < ncpu; c++)
			out[k] += v[c];
	}
	free(v);
	return rc;
}

int fl_bpf_load_error(const char *object, int rc, struct fl_err *err)
{
	struct rlimit ml = {0};

	fl_err_set(err, rc, "bpf_object__load(%s): %s", object, strerror(-rc));
	if (rc == -EPERM) {
		getrlimit(RLIMIT_MEMLOCK, &ml);
		if (!have_cgroup_caps())
			fl_err_hint(err, "loading cgroup BPF programs needs CAP_BPF and CAP_NET_ADMIN (or "
					 "CAP_SYS_ADMIN): run faultline as root");
		else
			fl_err_hint(err, "refused despite CAP_BPF/CAP_SYS_ADMIN: a kernel before 5.11 charges "
					 "BPF memory to RLIMIT_MEMLOCK (now %llu KiB: raise ulimit -l), or a "
					 "security module forbids bpf()",
				    ml.rlim_cur == RLIM_INFINITY ? 0ULL : (unsigned long long)ml.rlim_cur / 1024);
	} else if (rc == -EINVAL || rc == -EACCES || rc == -E2BIG || rc == -524 /* ENOTSUPP */ || rc == -EOPNOTSUPP) {
		fl_err_hint(err, "the verifier refused it: cgroup hooks calling bpf_set_retval need Linux 5.18 "
				 "or later (libbpf printed the verifier log)");
	} else if (rc == -ENOMEM) {
		fl_err_hint(err, "out of memory for BPF maps (RLIMIT_MEMLOCK or the memory cgroup)");
	}
	return rc;
}

uint64_t fl_bpf_new_tag(void)
{
	uint64_t t = 0;

	while (!t) {
		if (getrandom(&t, sizeof(t), 0) != (ssize_t)sizeof(t))
			t = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ (uint64_t)clock();
	}
	return t;
}

void fl_bpf_cidr_words(const struct fl_cidr *c, __u32 addr[4], __u32 mask[4])
{
	memset(addr, 0, 4 * sizeof(*addr));
	memset(mask, 0, 4 * sizeof(*mask));
	for (int w = 0; w < (c->family == AF_INET6 ? 4 : 1); w++) {
		int bits = c->prefix - 32 * w;
		uint32_t m = bits >= 32 ? 0xffffffffu : bits <= 0 ? 0 : ~((1u << (32 - bits)) - 1);
		uint32_t a;

		memcpy(&a, c->addr + 4 * w, 4);
		mask[w] = htonl(m);
		addr[w] = a & mask[w];
	}
}

/* ---- finding our programs again --------------------------------------------------------------- */

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

bool fl_bpf_prog_is_ours(const struct fl_bpf_kind *k, int prog_fd, uint64_t tag, int *bss_fd)
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
	if (bpf_obj_get_info_by_fd(prog_fd, &pi, &len) || strncmp(pi.name, k->prefix, strlen(k->prefix)))
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
		/* the whole value is copied out: the buffer must hold the kind's config struct */
		if (has_suffix(mi.name, ".rodata") && mi.value_size == k->rodata_size &&
		    k->rodata_size <= FL_BPF_RODATA_MAX) {
			unsigned char val[FL_BPF_RODATA_MAX];
			struct fl_bpf_mark m;

			if (!bpf_map_lookup_elem(mfd, &key, val)) {
				memcpy(&m, val, sizeof(m));
				ours = m.magic == k->magic && (!tag || m.tag == tag);
			}
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

int fl_bpf_revoke(int bss_fd)
{
	__u32 key = 0, one = 1;

	if (bss_fd < 0)
		return -ENOENT;
	return bpf_map_update_elem(bss_fd, &key, &one, BPF_ANY);
}

static void walk_close(struct fl_bpf_walk *w)
{
	if (w->bss_fd >= 0)
		close(w->bss_fd);
	if (w->prog_fd >= 0)
		close(w->prog_fd);
	if (w->link_fd >= 0)
		close(w->link_fd);
	w->link_fd = w->prog_fd = w->bss_fd = -1;
}

void fl_bpf_walk_start(struct fl_bpf_walk *w, const struct fl_bpf_kind *k, uint64_t cgid, uint64_t tag)
{
	w->kind = k;
	w->cgid = cgid;
	w->tag = tag;
	w->id = 0;
	w->link_fd = w->prog_fd = w->bss_fd = -1;
}

/* Is the link (info li) of the kind's type, and where the walk looks? */
static bool walk_wants(const struct fl_bpf_walk *w, const struct bpf_link_info *li)
{
	if (w->kind->lsm)
		return li->type == BPF_LINK_TYPE_TRACING && li->tracing.attach_type == BPF_LSM_MAC;
	return li->type == BPF_LINK_TYPE_CGROUP && li->cgroup.cgroup_id == w->cgid;
}

bool fl_bpf_walk_next(struct fl_bpf_walk *w)
{
	walk_close(w);
	while (!bpf_link_get_next_id(w->id, &w->id)) {
		struct bpf_link_info li;
		__u32 len = sizeof(li);

		w->link_fd = bpf_link_get_fd_by_id(w->id);
		if (w->link_fd < 0)
			continue; /* gone meanwhile */
		memset(&li, 0, sizeof(li));
		if (!bpf_obj_get_info_by_fd(w->link_fd, &li, &len) && walk_wants(w, &li)) {
			w->prog_fd = bpf_prog_get_fd_by_id(li.prog_id);
			if (w->prog_fd >= 0 && fl_bpf_prog_is_ours(w->kind, w->prog_fd, w->tag, &w->bss_fd))
				return true;
		}
		walk_close(w);
	}
	return false;
}

void fl_bpf_walk_stop(struct fl_bpf_walk *w)
{
	walk_close(w);
}

int fl_bpf_cgroup_query(const struct fl_bpf_kind *k, int cgfd, uint64_t tag, bool detach, struct fl_err *err)
{
	int left = 0;

	for (int h = 0; h < k->nhooks; h++) {
		__u32 ids[64], cnt = 64;
		LIBBPF_OPTS(bpf_prog_query_opts, q, .prog_ids = ids, .prog_cnt = cnt);
		int rc = bpf_prog_query_opts(cgfd, k->hooks[h].type, &q);

		if (rc)
			return fl_err_set(err, rc, "bpf_prog_query(cgroup, %s): %s", k->hooks[h].name, strerror(-rc));
		for (__u32 i = 0; i < q.prog_cnt && i < 64; i++) {
			int pfd = bpf_prog_get_fd_by_id(ids[i]), bss = -1;

			if (pfd < 0)
				continue;
			if (fl_bpf_prog_is_ours(k, pfd, tag, &bss)) {
				/* attached without a link: detached by program */
				if (!detach || bpf_prog_detach2(pfd, cgfd, k->hooks[h].type))
					left++;
			}
			if (bss >= 0)
				close(bss);
			close(pfd);
		}
	}
	return left;
}

int fl_bpf_cgroup_count_attached(const struct fl_bpf_kind *k, const char *cgroup, uint64_t tag, struct fl_err *err)
{
	int cgfd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC), n;

	if (cgfd < 0)
		return fl_err_set(err, -errno, "open %s: %s", cgroup, strerror(errno));
	n = fl_bpf_cgroup_query(k, cgfd, tag, false, err);
	close(cgfd);
	return n;
}

/* Revoke and detach every link of k with tag on cgroup id cgid: the count, or -errno. */
static int cgroup_detach_links(const struct fl_bpf_kind *k, uint64_t cgid, uint64_t tag, const char *fault,
			       struct fl_err *err)
{
	struct fl_bpf_walk w;
	int n = 0, rc;

	fl_bpf_walk_start(&w, k, cgid, tag);
	while (fl_bpf_walk_next(&w)) {
		/* revoked first (objects with a revoke flag): it acts no more even if the detach were refused */
		if (w.bss_fd >= 0)
			fl_bpf_revoke(w.bss_fd);
		rc = bpf_link_detach(w.link_fd);
		if (rc && rc != -ENOLINK) {
			fl_err_set(err, rc, "bpf_link_detach(link %u of fault %s on cgroup id %llu): %s", w.id, fault,
				   (unsigned long long)cgid, strerror(-rc));
			fl_bpf_walk_stop(&w);
			return rc;
		}
		n++;
	}
	return n;
}

static int parse_tag(const char *txt, uint64_t *tag)
{
	char *end;

	errno = 0;
	*tag = strtoull(txt, &end, 16);
	return *end || errno || !*tag || !txt[0] ? -EINVAL : 0;
}

int fl_bpf_cgroup_revert_record(const struct fl_bpf_kind *k, const struct fl_journal_rec *rec, int *detached,
				struct fl_err *err)
{
	char esc[1024], path[1024], tagtxt[32];
	uint64_t cgid, tag;
	struct stat st;
	int cgfd = -1, rc, left;

	if (detached)
		*detached = 0;
	if (!fl_rec_get(rec, "cgroup", esc, sizeof(esc)) || fl_rec_get_u64(rec, "cgid", &cgid) ||
	    !fl_rec_get(rec, "tag", tagtxt, sizeof(tagtxt)))
		return fl_err_set(err, -EINVAL, "journal record %llu lacks cgroup/cgid/tag",
				  (unsigned long long)rec->seq);
	if (parse_tag(tagtxt, &tag) || fl_bpf_unescape(esc, path, sizeof(path)))
		return fl_err_set(err, -EINVAL, "journal record %llu: bad tag '%s' or cgroup '%s'",
				  (unsigned long long)rec->seq, tagtxt, esc);
	rc = cgroup_detach_links(k, cgid, tag, rec->fault, err);
	if (rc < 0)
		return rc;
	if (detached)
		*detached = rc;
	cgfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0 || fstat(cgfd, &st) || (uint64_t)st.st_ino != cgid) {
		/* gone, or another cgroup now: the original took its programs with it */
		rc = 0;
		goto out;
	}
	left = fl_bpf_cgroup_query(k, cgfd, tag, true, err);
	if (left < 0) {
		rc = left;
		goto out;
	}
	if (left) {
		rc = fl_err_set(err, -EBUSY, "%d program(s) of fault %s are still attached to %s", left, rec->fault,
				path);
		fl_err_hint(err, "bpftool cgroup show %s lists them; bpftool cgroup detach removes one", path);
		goto out;
	}
	rc = 0;
out:
	if (cgfd >= 0)
		close(cgfd);
	return rc;
}

/* ---- journal record values -------------------------------------------------------------------- */

int fl_bpf_escape(const char *in, char *out, size_t len)
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

int fl_bpf_unescape(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (const char *c = in; *c; c++) {
		unsigned int x;

		if (o + 1 >= len)
			return -ENAMETOOLONG;
		if (*c == '%') {
			/* two hex digits exactly: sscanf alone would take " 5" or "5z" */
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

int fl_bpf_rec_tag(const struct fl_journal_rec *rec, uint64_t *tag)
{
	char txt[32];

	if (!fl_rec_get(rec, "tag", txt, sizeof(txt)))
		return -EINVAL;
	return parse_tag(txt, tag);
}

/* ---- the cgroup scope -------------------------------------------------------------------------- */

int fl_bpf_need_cgroup2(struct fl_err *err)
{
	char mount[4096];

	if (!fl_cgroup_mount(NULL, mount, sizeof(mount)))
		return 0;
	fl_err_set(err, -ENOENT, "no cgroup v2 hierarchy is mounted: the BPF cgroup hooks attach to cgroup v2 "
				 "directories");
	fl_err_hint(err, "mount -t cgroup2 none /sys/fs/cgroup/unified (it can live beside v1)");
	return -ENOENT;
}

int fl_bpf_cgroup_dir(const char *cgroup, struct stat *st, struct fl_err *err)
{
	struct statfs sfs;

	if (statfs(cgroup, &sfs) < 0 || stat(cgroup, st) < 0) {
		int rc = -errno;

		return fl_err_set(err, rc, "target cgroup %s: %s", cgroup, strerror(-rc));
	}
	if (sfs.f_type != CGROUP2_SUPER_MAGIC || !S_ISDIR(st->st_mode))
		return fl_err_set(err, -ENOTDIR, "%s is not a cgroup v2 directory", cgroup);
	return 0;
}

bool fl_bpf_cgroup_is_root(const char *dir, const struct stat *st, const char *mount)
{
	char m[4096], a[PATH_MAX], b[PATH_MAX];

	/* the root cgroup is kernfs node 1; inside a cgroup namespace the mount's root is the root */
	if (st->st_ino == 1)
		return true;
	if (!mount) {
		if (fl_cgroup_mount(NULL, m, sizeof(m)))
			return false;
		mount = m;
	}
	return realpath(dir, a) && realpath(mount, b) && !strcmp(a, b);
}

int fl_bpf_cgroup_scope(const char *cgroup, bool allow_host_wide, uint64_t *cgid, struct fl_err *err)
{
	struct stat st;
	int rc;

	if (!cgroup || !cgroup[0]) {
		fl_err_set(err, -ENOENT, "the target has no cgroup v2 directory to scope the BPF hooks to");
		fl_err_hint(err, "targets faultline launches (target.run) get one; a found target (pid, "
				 "cgroup, systemd_unit) must run in a cgroup v2 hierarchy");
		return -ENOENT;
	}
	rc = fl_bpf_cgroup_dir(cgroup, &st, err);
	if (rc)
		return rc;
	if (fl_bpf_cgroup_is_root(cgroup, &st, NULL) && !allow_host_wide) {
		fl_err_set(err, -EPERM, "refusing to attach to the root cgroup %s: every process of the host "
					"would be hit", cgroup);
		fl_err_hint(err, "launch the target (target.run) so it gets its own cgroup, or set "
				 "allow_host_wide: true");
		return -EPERM;
	}
	if (!have_cgroup_caps())
		return fl_err_set(err, -EPERM, "attaching cgroup BPF programs needs CAP_BPF and CAP_NET_ADMIN "
					       "(or CAP_SYS_ADMIN): run faultline as root");
	if (cgid)
		*cgid = (uint64_t)st.st_ino;
	return 0;
}

/* ---- shared by the BPF syscall backends ------------------------------------------------------ */

static uint64_t sys_threshold(double p)
{
	if (p >= 1.0)
		return 1ULL << 32;
	if (p <= 0.0)
		return 0;
	/* truncated, not rounded: the same 32-bit threshold fl_sys_should_act compares with */
	return (uint64_t)(p * 4294967296.0);
}

int fl_sysbpf_cfg_from_rule(const struct fl_sys_rule *r, struct fl_sys_bpf_cfg *cfg, struct fl_err *err)
{
	size_t n = strnlen(r->path_prefix, sizeof(r->path_prefix));

	if (r->err <= 0 || r->err > 4095)
		return fl_err_set(err, -EINVAL, "errno %d is not one a syscall can fail with", r->err);
	if (n >= FL_SYS_PATH_MAX)
		return fl_err_set(err, -ENAMETOOLONG, "path_prefix is longer than %d bytes", FL_SYS_PATH_MAX - 1);
	cfg->threshold = sys_threshold(r->probability);
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
		if (r->dst.prefix < 0 || r->dst.prefix > (cfg->dst_v6 ? 128 : 32))
			return fl_err_set(err, -EINVAL, "dst_ip prefix /%d is out of range", r->dst.prefix);
		fl_bpf_cidr_words(&r->dst, cfg->dst_addr, cfg->dst_mask);
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
	uint64_t flat[2 * FL_SYS_NSLOT];
	struct fl_sys_bpf_state s;
	__u32 k = 0;
	int rc;

	_Static_assert(sizeof(flat) == sizeof(out->slot), "slot i is entries 2i (matched) and 2i+1 (acted)");
	memset(out, 0, sizeof(*out));
	/* under the lock: matched and acted from the same instant */
	rc = bpf_map__lookup_elem(state, &k, sizeof(k), &s, sizeof(s), BPF_F_LOCK);
	if (rc)
		return rc;
	out->matched = s.matched;
	out->acted = s.acted;
	rc = fl_bpf_percpu_sum(ctr, 2 * FL_SYS_NSLOT, flat);
	memcpy(out->slot, flat, sizeof(flat));
	return rc;
}

/* matched / failed / ratio, configured probability, after, max and errno. */
static void sysbpf_observe_common(struct fl_observation *o, const struct fl_sysbpf_counts *c,
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

int fl_sysbpf_observe(const struct fl_sysbpf_run *r, struct fl_observation *o, const char *const *slot_names,
		      int nslot, const char *hooks_prefix)
{
	const struct fl_bpf_kind *k = r->links.kind;
	struct fl_sysbpf_counts c;
	char per[96];
	size_t off = 0;
	int rc;

	if (r->reverted || !r->state_map) {
		c = r->snap;
	} else {
		rc = fl_sysbpf_read_counts(r->state_map, r->ctr_map, &c);
		if (rc)
			return rc;
	}
	sysbpf_observe_common(o, &c, &r->cfg, r->probability);
	if (!slot_names)
		nslot = k->nhooks;
	/* per call kind, failed/matched: which of the rule's syscalls really happened */
	per[0] = '\0';
	for (int s = 0; s < nslot && s < FL_SYS_NSLOT; s++) {
		int w;

		if (!c.slot[s][0])
			continue;
		w = snprintf(per + off, sizeof(per) - off, "%s%s %llu/%llu", off ? ", " : "",
			     slot_names ? slot_names[s] : k->hooks[s].name, (unsigned long long)c.slot[s][1],
			     (unsigned long long)c.slot[s][0]);
		if (w < 0 || (size_t)w >= sizeof(per) - off)
			break;
		off += (size_t)w;
	}
	fl_obs_text(o, "failed_per_call", "%s", per[0] ? per : "none yet");
	fl_bpf_obs_hooks(o, k, hooks_prefix, r->links.hooks, r->reverted);
	return 0;
}

int fl_sysbpf_unload(struct fl_sysbpf_run *r, struct fl_err *err)
{
	int rc;

	/*
	 * Revoked first: a link some forked child inherited stays attached (an LSM link cannot be
	 * detached at all) but acts no more. Then detached: nothing more is counted, so the
	 * snapshot is final.
	 */
	if (r->revoked)
		*r->revoked = 1;
	fl_bpf_links_drop(&r->links);
	rc = fl_sysbpf_read_counts(r->state_map, r->ctr_map, &r->snap);
	if (rc)
		fl_err_set(err, rc, "reading the counters before unloading: %s (detached anyway)", strerror(-rc));
	r->state_map = r->ctr_map = NULL;
	r->revoked = NULL;
	r->reverted = true;
	return rc;
}

void fl_sysbpf_drop(struct fl_sysbpf_run *r)
{
	if (r->revoked)
		*r->revoked = 1;
	fl_bpf_links_drop(&r->links);
}
