/*
 * What the tests of syscall.error's BPF backends (test_sys_cgroup, test_sys_lsm) share: rules built
 * as the front builds them, apply and revert through a backend with every applied state kept for the
 * teardown, and observations read strictly. Static helpers for cmocka tests: include after cmocka.h.
 */
#ifndef FL_SYS_BACKEND_TEST_H
#define FL_SYS_BACKEND_TEST_H

#include <arpa/inet.h>
#include <string.h>

#include "fl_testlib.h"
#include "injector.h"
#include "sys.h"

/* The states a test applied and has not reverted yet: the teardown reverts what a failed assertion left. */
struct sys_live {
	void *st[8];
	int n;
};

/* A rule for fault f: syscalls by name (NULL-terminated), errno, probability, on process tgid in cgroup cg. */
static inline void sys_rule(struct fl_sys_rule *r, struct fl_fault *f, pid_t tgid, const char *cg, int err, double p,
			    const char *const *names)
{
	memset(r, 0, sizeof(*r));
	r->f = f;
	for (int i = 0; names[i]; i++) {
		r->sys[r->n] = fl_syscall_by_name(names[i]);
		assert_non_null(r->sys[r->n]);
		r->classes |= r->sys[r->n]->cls;
		r->n++;
	}
	r->err = err;
	r->probability = p;
	r->tgid = tgid;
	r->cgroup_v2 = cg;
}

/* Only calls toward 127.0.0.1:port. */
static inline void sys_dst_lo(struct fl_sys_rule *r, uint16_t port)
{
	r->has_dst = true;
	r->dst.family = AF_INET;
	r->dst.prefix = 32;
	inet_pton(AF_INET, "127.0.0.1", r->dst.addr);
	r->dst_port = port;
}

/* check + apply, both required to succeed; the state is kept in live until sys_revert. */
static inline void *sys_apply(const struct fl_sys_backend *be, struct fl_journal *j, struct sys_live *live,
			      const struct fl_sys_rule *r)
{
	struct fl_err e = {0};
	void *st = NULL;

	if (be->check(r, &e))
		fail_msg("check: %s (%s)", e.msg, e.hint);
	if (be->apply(r, j, &st, &e))
		fail_msg("apply: %s (%s)", e.msg, e.hint);
	assert_non_null(st);
	assert_true(live->n < (int)(sizeof(live->st) / sizeof(live->st[0])));
	live->st[live->n++] = st;
	return st;
}

/* Revert (twice: it must be idempotent), observe into o when not NULL, release. */
static inline void sys_revert(const struct fl_sys_backend *be, struct sys_live *live, void *st, struct fl_observation *o)
{
	struct fl_err e = {0};

	assert_int_equal(be->revert(st, &e), 0);
	assert_int_equal(be->revert(st, &e), 0);
	if (o) {
		memset(o, 0, sizeof(*o));
		assert_int_equal(be->observe(st, o), 0);
	}
	for (int i = 0; i < live->n; i++)
		if (live->st[i] == st) {
			live->st[i] = live->st[--live->n];
			break;
		}
	be->release(st);
}

/* Teardown: revert and release whatever a failed test left applied. */
static inline void sys_drop_live(const struct fl_sys_backend *be, struct sys_live *live)
{
	struct fl_err e;

	while (live->n) {
		void *st = live->st[--live->n];

		be->revert(st, &e);
		be->release(st);
	}
}

/* An observation that must be there. */
static inline double sys_obs(struct fl_observation *o, const char *key)
{
	double v = fl_tl_obs_num(o, key, -1);

	if (v < 0)
		fail_msg("observation %s missing", key);
	return v;
}

#endif
