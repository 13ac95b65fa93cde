/* Pipeline self-test: a cgroup/connect4 hook refusing TCP connects to one port, counting what it saw. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "fl_selftest.h"

/* vmlinux.h carries types, not macros. */
#ifndef ECONNREFUSED
#define ECONNREFUSED 111
#endif
#define FL_SOCK_STREAM 1

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader between open and load (host byte order); 0 refuses nothing. */
const volatile __u16 target_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FL_SELFTEST_NSLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("cgroup/connect4")
int fl_selftest_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->type != FL_SOCK_STREAM)
		return 1;
	if (target_port && ctx->user_port == bpf_htons(target_port)) {
		count(FL_SELFTEST_REFUSED);
		/* Without it a refused connect4 surfaces as EPERM. */
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	count(FL_SELFTEST_PASSED);
	return 1;
}
