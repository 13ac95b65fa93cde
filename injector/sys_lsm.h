/* What sys_lsm.bpf.c and its loader share: the LSM hooks and their counter slots (the knobs and counters of both BPF syscall backends are in bpf_common.h). */
#ifndef FL_SYS_LSM_H
#define FL_SYS_LSM_H

#include "bpf_common.h"

/* "flsyslm1": marks a .rodata map as ours when revert_record reads one back by id. */
#define FL_SL_MAGIC 0x316d6c7379736c66ULL

/* Counter slots of the LSM backend (the hooks, with file_permission split by direction). */
enum fl_sl_slot {
	FL_SL_S_OPEN,
	FL_SL_S_READ,
	FL_SL_S_WRITE,
	FL_SL_S_CONNECT,
	FL_SL_S_BIND,
	FL_SL_S_SOCKET,
	FL_SL_S_SENDMSG,
	FL_SL_S_RECVMSG,
	FL_SL_S_ACCEPT,
	FL_SL_S_LISTEN,
	FL_SL_S_MMAP,
	FL_SL_S_GETSOCKOPT,
	FL_SL_S_SETSOCKOPT,
	FL_SL_NSLOT,
};

/* ---- the loader (user space only) ------------------------------------------------------------ */
#ifndef __VMLINUX_H__
#include <stddef.h>

#include "sys.h"

/* One program per LSM hook; bit i of a hook mask names program i. */
enum fl_sl_hook {
	FL_SL_H_OPEN,       /* lsm/file_open: open, openat, openat2, creat */
	FL_SL_H_PERM,       /* lsm/file_permission: read*, write* (MAY_READ / MAY_WRITE) */
	FL_SL_H_CONNECT,
	FL_SL_H_BIND,
	FL_SL_H_SOCKET,     /* lsm/socket_create, user sockets only */
	FL_SL_H_SENDMSG,
	FL_SL_H_RECVMSG,
	FL_SL_H_ACCEPT,
	FL_SL_H_LISTEN,
	FL_SL_H_MMAP,       /* lsm/mmap_file */
	FL_SL_H_GETSOCKOPT,
	FL_SL_H_SETSOCKOPT,
	FL_SL_NHOOKS,
};

/* The program name of each LSM hook ("fl_sl_open", ...: 15 characters at most, the kernel's limit). */
const char *fl_sl_prog_name(int hook);
/* Which hooks a rule needs, 0 when some syscall of it has none (then *why says which). */
unsigned fl_sl_hooks_for(const struct fl_sys_rule *r, const char **why);
/* One line for plan: the hooks, the scope, the errno; what each hook also catches. */
void fl_sl_describe(const struct fl_sys_rule *r, char *buf, size_t len);

#endif /* !__VMLINUX_H__ */

#endif
