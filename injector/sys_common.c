/* The syscall names faultline knows (this architecture's numbers, from <sys/syscall.h>) and the after/probability/max rule every syscall backend applies. */
#include "sys.h"

#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>

#define S(name, cls) {#name, SYS_##name, cls}

/* Architectures differ (aarch64 has no open, creat, select...): only what this one has. */
const struct fl_syscall fl_syscalls[] = {
#ifdef SYS_open
	S(open, FL_SYS_FILE_OPEN),
#endif
#ifdef SYS_creat
	S(creat, FL_SYS_FILE_OPEN),
#endif
	S(openat, FL_SYS_FILE_OPEN),
#ifdef SYS_openat2
	S(openat2, FL_SYS_FILE_OPEN),
#endif
	S(read, FL_SYS_FILE_READ),
	S(readv, FL_SYS_FILE_READ),
	S(pread64, FL_SYS_FILE_READ),
	S(preadv, FL_SYS_FILE_READ),
	S(write, FL_SYS_FILE_WRITE),
	S(writev, FL_SYS_FILE_WRITE),
	S(pwrite64, FL_SYS_FILE_WRITE),
	S(pwritev, FL_SYS_FILE_WRITE),
	S(fsync, FL_SYS_FSYNC),
	S(fdatasync, FL_SYS_FSYNC),
	S(connect, FL_SYS_CONNECT),
	S(bind, FL_SYS_BIND),
	S(socket, FL_SYS_SOCKET),
	S(sendto, FL_SYS_SENDMSG),
	S(sendmsg, FL_SYS_SENDMSG),
	S(sendmmsg, FL_SYS_SENDMSG),
	S(recvfrom, FL_SYS_RECVMSG),
	S(recvmsg, FL_SYS_RECVMSG),
	S(recvmmsg, FL_SYS_RECVMSG),
#ifdef SYS_accept
	S(accept, FL_SYS_ACCEPT),
#endif
	S(accept4, FL_SYS_ACCEPT),
	S(listen, FL_SYS_LISTEN),
	S(getsockopt, FL_SYS_SOCKOPT),
	S(setsockopt, FL_SYS_SOCKOPT),
	S(mmap, FL_SYS_MMAP),
	S(close, FL_SYS_OTHER),
	S(unlinkat, FL_SYS_OTHER),
	S(renameat, FL_SYS_OTHER),
	S(mkdirat, FL_SYS_OTHER),
	S(ftruncate, FL_SYS_OTHER),
	S(fallocate, FL_SYS_OTHER),
	S(getrandom, FL_SYS_OTHER),
	S(epoll_wait, FL_SYS_OTHER),
	S(epoll_pwait, FL_SYS_OTHER),
	S(nanosleep, FL_SYS_OTHER),
	S(clone, FL_SYS_OTHER),
#ifdef SYS_clone3
	S(clone3, FL_SYS_OTHER),
#endif
	S(statx, FL_SYS_OTHER),
	S(newfstatat, FL_SYS_OTHER),
	{0},
};

const struct fl_syscall *fl_syscall_by_name(const char *name)
{
	for (const struct fl_syscall *s = fl_syscalls; s->name; s++)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

const struct fl_syscall *fl_syscall_by_nr(int nr)
{
	for (const struct fl_syscall *s = fl_syscalls; s->name; s++)
		if (s->nr == nr)
			return s;
	return NULL;
}

bool fl_sys_should_act(const struct fl_sys_rule *r, uint64_t matched, uint64_t acted, uint32_t rnd)
{
	if (matched <= r->after)
		return false;
	if (r->max && acted >= r->max)
		return false;
	/* probability as a 32-bit threshold, the same arithmetic as the BPF programs */
	if (r->probability >= 1.0)
		return true;
	return (uint64_t)rnd < (uint64_t)(r->probability * 4294967296.0);
}
