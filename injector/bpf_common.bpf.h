/* Kernel-side helpers the BPF objects of the injectors share (per-CPU counts, the probability roll, CIDR tests) and, for the two syscall backends, their knobs, revoke flag, maps and after/probability/max decision. */
#ifndef FL_BPF_COMMON_BPF_H
#define FL_BPF_COMMON_BPF_H

/*
 * Include after vmlinux.h (with BPF_NO_PRESERVE_ACCESS_INDEX first if the object wants no CO-RE
 * records). Nothing here may land in .rodata but the syscall objects' fl_cfg: the loaders read
 * the config back from offset 0 and assert it is all of .rodata.
 */
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "bpf_common.h"

/* Add one to slot of a per-CPU array map. */
static __always_inline void fl_bpf_count(void *map, __u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(map, &slot);

	/* per-CPU slot: no other CPU writes it, a plain add is enough */
	if (v)
		*v += 1;
}

/* The probability roll: one random draw per matched event; threshold >= 2^32 always acts. */
static __always_inline bool fl_bpf_roll(__u64 threshold)
{
	return threshold >= (1ULL << 32) || (__u64)bpf_get_prandom_u32() < threshold;
}

/*
 * Does address a (4 words in network order; a_v6 false: IPv4 in word 0) lie in the CIDR
 * addr/mask (cidr_v6 false: an IPv4 CIDR in word 0, already masked)?
 */
static __always_inline bool fl_bpf_cidr_has(const volatile __u32 *addr, const volatile __u32 *mask, bool cidr_v6,
					    const __u32 *a, bool a_v6)
{
	if (!a_v6)
		return !cidr_v6 && (a[0] & mask[0]) == addr[0];
	/* an IPv4-mapped destination (::ffff:a.b.c.d) is an IPv4 peer for a v4 CIDR */
	if (!cidr_v6)
		return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff) && (a[3] & mask[0]) == addr[0];
	return (a[0] & mask[0]) == addr[0] && (a[1] & mask[1]) == addr[1] && (a[2] & mask[2]) == addr[2] &&
	       (a[3] & mask[3]) == addr[3];
}

/* ---- the syscall backends' objects: define FL_BPF_SYS_OBJECT before including ---------------- */
#ifdef FL_BPF_SYS_OBJECT

/* The only .rodata variable, so it sits at offset 0 (the loader asserts it). */
const volatile struct fl_sys_bpf_cfg fl_cfg = {};

/*
 * The only .bss variable. Set by revert (or by revert_record from another process): a link some
 * other process still holds (an inherited cgroup link; any LSM link, which as a tracing link has
 * no BPF_LINK_DETACH) can only be told to stop acting.
 */
__u32 fl_revoked = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fl_sys_bpf_state);
} fl_sys_st SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * FL_SYS_NSLOT);
	__type(key, __u32);
	__type(value, __u64);
} fl_sys_ctr SEC(".maps");

static __always_inline bool fl_sys_revoked(void)
{
	return *(volatile __u32 *)&fl_revoked;
}

/*
 * One matching call: fl_sys_should_act's after/probability/max arithmetic, the counts under the
 * lock so `after` and `max` are exact across CPUs; the random draw first (no helper call may be
 * made while the lock is held). True: fail it. A revoked program acts on nothing.
 */
static __always_inline bool fl_sys_decide(__u32 slot)
{
	__u32 zero = 0;
	bool roll = fl_bpf_roll(fl_cfg.threshold);
	struct fl_sys_bpf_state *s = bpf_map_lookup_elem(&fl_sys_st, &zero);
	bool act = false;

	if (!s || fl_sys_revoked())
		return false;
	bpf_spin_lock(&s->lock);
	s->matched++;
	if (s->matched > fl_cfg.after && roll && (!fl_cfg.max || s->acted < fl_cfg.max)) {
		s->acted++;
		act = true;
	}
	bpf_spin_unlock(&s->lock);
	fl_bpf_count(&fl_sys_ctr, 2 * slot);
	if (act)
		fl_bpf_count(&fl_sys_ctr, 2 * slot + 1);
	return act;
}

static __always_inline bool fl_sys_dst_narrowed(void)
{
	return fl_cfg.dst_has_addr || fl_cfg.dst_port;
}

/* The destination of connect() or sendmsg(): a as in fl_bpf_cidr_has, port in host order. */
static __always_inline bool fl_sys_dst_ok(const __u32 *a, bool v6, __u32 port)
{
	if (fl_cfg.dst_port && port != fl_cfg.dst_port)
		return false;
	if (!fl_cfg.dst_has_addr)
		return true;
	return fl_bpf_cidr_has(fl_cfg.dst_addr, fl_cfg.dst_mask, fl_cfg.dst_v6, a, v6);
}

#endif /* FL_BPF_SYS_OBJECT */

#endif
