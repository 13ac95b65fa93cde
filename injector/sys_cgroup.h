/* What sys_cgroup.bpf.c and its loader share: the cgroup-BPF hooks of the syscall backend (the knobs and counters of both BPF syscall backends are in bpf_common.h). */
#ifndef FL_SYS_CGROUP_H
#define FL_SYS_CGROUP_H

#include "bpf_common.h"

/* "flsyscg1": marks a .rodata map as ours when revert_record reads one back by id. */
#define FL_SC_MAGIC 0x3167637379736c66ULL

/* One program per cgroup hook, and one counter slot per program (same index). */
enum fl_sc_hook {
	FL_SC_H_CONNECT4,   /* cgroup/connect4: connect() of AF_INET sockets */
	FL_SC_H_CONNECT6,   /* cgroup/connect6: AF_INET6 (v4-mapped destinations too) */
	FL_SC_H_BIND4,
	FL_SC_H_BIND6,
	FL_SC_H_SOCK,       /* cgroup/sock_create: socket() of AF_INET/AF_INET6 */
	FL_SC_H_SENDMSG4,   /* cgroup/sendmsg4: unconnected UDP sends with an address only */
	FL_SC_H_SENDMSG6,
	FL_SC_H_GETSOCKOPT, /* cgroup/getsockopt: runs after the kernel's own getsockopt */
	FL_SC_H_SETSOCKOPT, /* cgroup/setsockopt: runs before it */
	FL_SC_NHOOKS,
};

/* ---- the loader (user space only) ------------------------------------------------------------ */
#ifndef __VMLINUX_H__
#include <stddef.h>

#include "sys.h"

/* The program name of each hook ("fl_sc_connect4", ...). */
const char *fl_sc_prog_name(int hook);
/* Which hooks a rule needs; 0 when one of its syscalls has none (*why names it and says what would work). */
unsigned fl_sc_hooks_for(const struct fl_sys_rule *r, const char **why);
/* One line for plan: hooks, cgroup, errno, and what each hook cannot see (connected UDP sends...). */
void fl_sc_describe(const struct fl_sys_rule *r, char *buf, size_t len);
/* How many programs of ours carrying `tag` (0: any tag) are attached to cgroup, or -errno. */
int fl_sc_count_attached(const char *cgroup, uint64_t tag, struct fl_err *err);

#endif /* !__VMLINUX_H__ */

#endif
