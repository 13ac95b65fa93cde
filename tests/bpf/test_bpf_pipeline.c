/* The BPF build pipeline end to end: skeleton, rodata knob, load, cgroup attach, a real refused connect, clean detach. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "fl_err.h"
#include "fl_selftest.h"
#include "fl_selftest.skel.h"

#define CGROUP2_ROOT "/sys/fs/cgroup/unified"
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#define CONNECT_WAIT_MS 2000
#define GONE_WAIT_MS 2000
#define CHILD_WAIT_MS 10000

/* What the child saw: errno of connect() itself, and SO_ERROR once an in-progress connect settled. */
struct connect_result {
	int sync_errno;
	int final_errno;
};

struct child_report {
	int join_errno; /* writing itself into cgroup.procs */
	struct connect_result refused, passed;
};

static int listen_lo(uint16_t *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	/* Non-blocking: accept4's SOCK_NONBLOCK is for the new socket, not for the wait. */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 8) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len)) {
		int err = -errno;

		close(fd);
		return err;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Non-blocking, so a refusal by the hook (synchronous) is told apart from a RST (after EINPROGRESS). */
static struct connect_result connect_lo(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct connect_result r = {.sync_errno = -1, .final_errno = -1};
	struct pollfd pfd;
	socklen_t len = sizeof(r.final_errno);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		r.sync_errno = r.final_errno = errno;
		return r;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		r.sync_errno = r.final_errno = 0;
		goto out;
	}
	r.sync_errno = r.final_errno = errno;
	if (errno != EINPROGRESS)
		goto out;
	pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&pfd, 1, CONNECT_WAIT_MS) != 1) {
		r.final_errno = ETIMEDOUT;
		goto out;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &r.final_errno, &len))
		r.final_errno = errno;
out:
	close(fd);
	return r;
}

/* Runs in the child: join the cgroup, connect to both ports, report. Never returns. */
static void child_main(const char *procs, uint16_t refused_port, uint16_t passed_port, int wfd)
{
	struct child_report rep = {.join_errno = 0};
	int fd = open(procs, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || dprintf(fd, "%d\n", (int)getpid()) < 0)
		rep.join_errno = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
	if (!rep.join_errno) {
		rep.refused = connect_lo(refused_port);
		rep.passed = connect_lo(passed_port);
	}
	_exit(write(wfd, &rep, sizeof(rep)) == (ssize_t)sizeof(rep) ? 0 : 1);
}

/* Every wait is bounded: a killed test could not remove its cgroup. */
static int read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		n = poll(&pfd, 1, timeout_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ETIMEDOUT;
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		got += (size_t)n;
	}
	return 0;
}

static int accept_within(int lfd, int timeout_ms)
{
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};

	if (timeout_ms && poll(&pfd, 1, timeout_ms) < 0)
		return -errno;
	lfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	return lfd < 0 ? -errno : lfd;
}

/* True once the kernel no longer knows the id (release can trail the last close slightly). */
static bool id_gone(int (*get_fd_by_id)(__u32), __u32 id)
{
	struct timespec pause = {.tv_nsec = 10 * 1000 * 1000};

	for (int waited = 0; waited <= GONE_WAIT_MS; waited += 10) {
		int fd = get_fd_by_id(id);

		if (fd < 0 && errno == ENOENT)
			return true;
		if (fd >= 0)
			close(fd);
		nanosleep(&pause, NULL);
	}
	return false;
}

static int cgroup_rmdir(const char *path)
{
	struct timespec pause = {.tv_nsec = 10 * 1000 * 1000};

	/* A reaped child has left, but be patient with EBUSY rather than leak the directory. */
	for (int i = 0; i < 100; i++) {
		if (!rmdir(path) || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		nanosleep(&pause, NULL);
	}
	return -EBUSY;
}

#define FAIL(...)                                         \
	do {                                              \
		fl_err_set(&err, -EIO, __VA_ARGS__);      \
		goto out;                                 \
	} while (0)

static void test_connect4_refuses_target_port(void **state)
{
	struct fl_err err = {0};
	struct statfs sfs;
	struct fl_selftest *skel = NULL;
	struct bpf_link *link = NULL;
	struct bpf_prog_info pinfo;
	struct bpf_link_info linfo;
	struct child_report rep;
	char cg[256] = "", procs[300];
	int cgfd = -1, lrefused = -1, lpassed = -1, pipefd[2] = {-1, -1}, status = 0, conn, rc;
	uint16_t refused_port = 0, passed_port = 0;
	__u32 prog_id = 0, link_id = 0, key, rnd = 0, len;
	__u64 hits[FL_SELFTEST_NSLOTS] = {0};
	pid_t child = -1;
	bool cg_made = false, cg_gone = true, prog_gone = true, link_gone = true;

	(void)state;
	if (geteuid() != 0) {
		print_message("skipped: needs root to load BPF programs and create cgroups\n");
		skip();
	}
	if (statfs(CGROUP2_ROOT, &sfs) || sfs.f_type != CGROUP2_SUPER_MAGIC) {
		print_message("skipped: no cgroup v2 hierarchy at " CGROUP2_ROOT "\n");
		skip();
	}

	/* Two real listeners: a refusal on the first can only be the hook's, not a RST. */
	lrefused = listen_lo(&refused_port);
	if (lrefused < 0)
		FAIL("listen on 127.0.0.1: %s", strerror(-lrefused));
	lpassed = listen_lo(&passed_port);
	if (lpassed < 0)
		FAIL("listen on 127.0.0.1: %s", strerror(-lpassed));

	skel = fl_selftest__open();
	if (!skel)
		FAIL("fl_selftest__open: %s", strerror(errno));
	skel->rodata->target_port = refused_port;
	rc = fl_selftest__load(skel);
	if (rc)
		FAIL("fl_selftest__load: %s", strerror(-rc));
	/* libbpf 1.1 predates bpf_prog_get_info_by_fd(); bpf_obj_get_info_by_fd() is the same call. */
	memset(&pinfo, 0, sizeof(pinfo));
	len = sizeof(pinfo);
	if (bpf_obj_get_info_by_fd(bpf_program__fd(skel->progs.fl_selftest_connect4), &pinfo, &len))
		FAIL("bpf_obj_get_info_by_fd(prog): %s", strerror(errno));
	prog_id = pinfo.id;
	/* The kernel keeps BPF_OBJ_NAME_LEN - 1 = 15 characters of the name. */
	if (strcmp(pinfo.name, "fl_selftest_con"))
		FAIL("loaded program is named '%s', expected 'fl_selftest_con'", pinfo.name);

	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (__u32)time(NULL) ^ (__u32)clock();
	snprintf(cg, sizeof(cg), CGROUP2_ROOT "/fl-selftest-%d-%08x", (int)getpid(), rnd);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
	if (mkdir(cg, 0755))
		FAIL("mkdir %s: %s", cg, strerror(errno));
	cg_made = true;
	cgfd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0)
		FAIL("open %s: %s", cg, strerror(errno));

	link = bpf_program__attach_cgroup(skel->progs.fl_selftest_connect4, cgfd);
	if (!link)
		FAIL("bpf_program__attach_cgroup(%s): %s", cg, strerror(errno));
	memset(&linfo, 0, sizeof(linfo));
	len = sizeof(linfo);
	if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &linfo, &len))
		FAIL("bpf_obj_get_info_by_fd(link): %s", strerror(errno));
	link_id = linfo.id;

	if (pipe2(pipefd, O_CLOEXEC))
		FAIL("pipe2: %s", strerror(errno));
	child = fork();
	if (child < 0)
		FAIL("fork: %s", strerror(errno));
	if (child == 0)
		child_main(procs, refused_port, passed_port, pipefd[1]);
	close(pipefd[1]);
	pipefd[1] = -1;
	rc = read_full(pipefd[0], &rep, sizeof(rep), CHILD_WAIT_MS);
	if (waitpid(child, &status, 0) == child)
		child = -1;
	if (rc)
		FAIL("reading the child's report: %s", strerror(-rc));
	if (child != -1 || !WIFEXITED(status) || WEXITSTATUS(status))
		FAIL("child did not exit cleanly (status 0x%x)", status);
	if (rep.join_errno)
		FAIL("child: write %s: %s", procs, strerror(rep.join_errno));

	if (rep.refused.sync_errno != ECONNREFUSED)
		FAIL("connect to hooked port %u: got '%s' from connect(), expected ECONNREFUSED from the hook",
		     refused_port, strerror(rep.refused.sync_errno));
	if ((rep.passed.sync_errno && rep.passed.sync_errno != EINPROGRESS) || rep.passed.final_errno)
		FAIL("connect to unhooked port %u: connect() '%s', then '%s'; expected success", passed_port,
		     strerror(rep.passed.sync_errno), strerror(rep.passed.final_errno));
	/* The refused SYN never left; the passed connection reaches the backlog (allow for the last ACK). */
	conn = accept_within(lrefused, 0);
	if (conn >= 0) {
		close(conn);
		FAIL("the listener on the hooked port %u got a connection", refused_port);
	}
	conn = accept_within(lpassed, CONNECT_WAIT_MS);
	if (conn < 0)
		FAIL("accept on the unhooked port %u: %s", passed_port, strerror(-conn));
	close(conn);

	for (key = 0; key < FL_SELFTEST_NSLOTS; key++) {
		rc = bpf_map__lookup_elem(skel->maps.counters, &key, sizeof(key), &hits[key], sizeof(hits[key]), 0);
		if (rc)
			FAIL("bpf_map__lookup_elem(counters[%u]): %s", key, strerror(-rc));
	}
	if (hits[FL_SELFTEST_REFUSED] != 1 || hits[FL_SELFTEST_PASSED] != 1)
		FAIL("counters: refused %llu, passed %llu; expected 1 and 1",
		     (unsigned long long)hits[FL_SELFTEST_REFUSED],
		     (unsigned long long)hits[FL_SELFTEST_PASSED]);

out:
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	bpf_link__destroy(link);
	fl_selftest__destroy(skel);
	if (cgfd >= 0)
		close(cgfd);
	for (int i = 0; i < 2; i++)
		if (pipefd[i] >= 0)
			close(pipefd[i]);
	if (lrefused >= 0)
		close(lrefused);
	if (lpassed >= 0)
		close(lpassed);
	if (cg_made) {
		rc = cgroup_rmdir(cg);
		if (rc)
			print_error("rmdir %s: %s\n", cg, strerror(-rc));
		cg_gone = access(cg, F_OK) && errno == ENOENT;
	}
	/* By id, not by name: another run of this test may share the kernel. */
	if (prog_id)
		prog_gone = id_gone(bpf_prog_get_fd_by_id, prog_id);
	if (link_id)
		link_gone = id_gone(bpf_link_get_fd_by_id, link_id);

	if (err.code)
		print_error("%s\n", err.msg);
	assert_int_equal(err.code, 0);
	if (!cg_gone)
		print_error("cgroup %s is still there\n", cg);
	assert_true(cg_gone);
	if (!prog_gone)
		print_error("BPF program id %u (fl_selftest_con) is still loaded\n", prog_id);
	assert_true(prog_gone);
	if (!link_gone)
		print_error("BPF link id %u is still there\n", link_id);
	assert_true(link_gone);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect4_refuses_target_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
