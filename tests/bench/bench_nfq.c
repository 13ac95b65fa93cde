/* The nfqueue delayer's packets/s ceiling on one core: a UDP flood between two test namespaces, with and without the queue, in one run. */
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fl_testlib.h"
#include "journal.h"
#include "net.h"
#include "recovery.h"

#define ADDR_A "192.0.2.1"
#define ADDR_B "192.0.2.2"
#define PORT 7001
#define BATCH 64
#define CPU_DELAYER 0
#define CPU_TRAFFIC 1

struct counts {
	uint64_t sent, received;
	int stop;
};

static char ns_a[64], ns_b[64], veth_a[16], veth_b[16];

static void pin(pid_t pid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(pid, sizeof(set), &set) < 0)
		fprintf(stderr, "bench_nfq: sched_setaffinity(%d, cpu %d): %s\n", (int)pid, cpu, strerror(errno));
}

/* In B (the caller forked it there): count every datagram, many per syscall, until stopped. */
static void __attribute__((noreturn)) receiver(struct counts *c)
{
	struct sockaddr_in b = fl_tl_addr4(ADDR_B, PORT);
	static char bufs[BATCH][256];
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	struct timeval tv = {.tv_usec = 100000};
	int fd, big = 16 << 20;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (bind(fd, (struct sockaddr *)&b, sizeof(b)) < 0)
		_exit(3);
	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof(bufs[i])};
		mm[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
	}
	for (;;) {
		int n = recvmmsg(fd, mm, BATCH, MSG_WAITFORONE, NULL);

		if (n > 0)
			__atomic_add_fetch(&c->received, (uint64_t)n, __ATOMIC_RELAXED);
	}
}

/* In A (the caller forked it there): send as fast as the stack takes them for `secs`. */
static void __attribute__((noreturn)) sender(struct counts *c, double secs)
{
	struct sockaddr_in b = fl_tl_addr4(ADDR_B, PORT);
	static char payload[64] = "faultline bench_nfq";
	struct mmsghdr mm[BATCH];
	struct iovec iov = {.iov_base = payload, .iov_len = sizeof(payload)};
	double end;
	int fd, big = 16 << 20;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	if (connect(fd, (struct sockaddr *)&b, sizeof(b)) < 0)
		_exit(3);
	for (int i = 0; i < BATCH; i++)
		mm[i].msg_hdr = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1};
	end = fl_tl_now_s() + secs;
	while (fl_tl_now_s() < end) {
		int n = sendmmsg(fd, mm, BATCH, 0);

		if (n > 0)
			__atomic_add_fetch(&c->sent, (uint64_t)n, __ATOMIC_RELAXED);
	}
	_exit(0);
}

struct result {
	double secs, sent_pps, recv_pps, queued_pps, cpu_s, core_busy;
	uint64_t sent, received, queued, bypassed, at_cap;
	double hold_ms;
};

static void settle(struct counts *c)
{
	uint64_t prev;

	do {
		prev = __atomic_load_n(&c->received, __ATOMIC_RELAXED);
		usleep(200000);
	} while (__atomic_load_n(&c->received, __ATOMIC_RELAXED) != prev);
}

static void flood(struct counts *c, double secs, struct result *r)
{
	double t0;
	pid_t s;

	settle(c);
	c->sent = 0;
	__atomic_store_n(&c->received, 0, __ATOMIC_RELAXED);
	t0 = fl_tl_now_s();
	s = fl_tl_fork_in_netns(ns_a);
	if (s == 0)
		sender(c, secs);
	pin(s, CPU_TRAFFIC);
	waitpid(s, NULL, 0);
	r->secs = fl_tl_now_s() - t0;
	settle(c);
	r->sent = c->sent;
	r->received = __atomic_load_n(&c->received, __ATOMIC_RELAXED);
	r->sent_pps = (double)r->sent / r->secs;
	r->recv_pps = (double)r->received / r->secs;
}

struct phase {
	const char *name;
	int64_t delay_ns, jitter_ns;
	struct result r;
};

/* One flood through a fresh nfqueue fault with this effect, its delayer pinned to CPU_DELAYER. */
static int queued_flood(struct counts *c, struct fl_journal *j, double secs, struct phase *ph)
{
	struct fl_injector inj = {.type = "network.delay"};
	struct fl_fault f = {.name = "bench", .inj = &inj};
	struct fl_journal_info info;
	struct fl_observation o = {0};
	struct fl_net_req r = {0};
	struct fl_err e = {0};
	void *st = NULL;
	pid_t delayer = 0;
	unsigned long long b0, t0, b1, t1;
	double cpu0;
	int rc;

	r.f = &f;
	r.match.dir = FL_NET_EGRESS;
	r.match.proto = FL_NET_UDP;
	r.match.dst_port = PORT;
	r.match.family = AF_INET;
	snprintf(r.iface, sizeof(r.iface), "%s", veth_a);
	r.fx.queue_pkts = 10000;
	r.fx.delay_ns = ph->delay_ns;
	r.fx.jitter_ns = ph->jitter_ns;
	rc = fl_netns_open(ns_a, &r.ns, &e);
	if (!rc)
		rc = fl_net_backend_nfqueue.check(&r, &e);
	if (!rc)
		rc = fl_net_backend_nfqueue.apply(&r, j, &st, &e);
	if (rc) {
		fprintf(stderr, "bench_nfq: %s %s\n", e.msg, e.hint);
		goto out;
	}
	if (!fl_journal_read(fl_journal_path(j), &info, &e)) {
		for (int i = 0; i < info.nrecs; i++) {
			int64_t pid;

			if (!fl_rec_get_i64(&info.recs[i], "child", &pid))
				delayer = (pid_t)pid;
		}
		fl_journal_info_free(&info);
	}
	pin(delayer, CPU_DELAYER);
	cpu0 = fl_tl_cpu_s(delayer);
	/* cpu0's busy share: softirq work done by ksoftirqd counts too */
	fl_tl_cpu_jiffies(CPU_DELAYER, &b0, &t0);
	flood(c, secs, &ph->r);
	fl_tl_cpu_jiffies(CPU_DELAYER, &b1, &t1);
	ph->r.cpu_s = fl_tl_cpu_s(delayer) - cpu0;
	ph->r.core_busy = t1 > t0 ? (double)(b1 - b0) / (double)(t1 - t0) : 0;
	fl_net_backend_nfqueue.observe(st, &o);
	ph->r.queued = (uint64_t)fl_tl_obs_num(&o, "packets_matched", -1);
	ph->r.queued_pps = (double)ph->r.queued / ph->r.secs;
	ph->r.bypassed = ph->r.received > ph->r.queued ? ph->r.received - ph->r.queued : 0;
	ph->r.at_cap = (uint64_t)fl_tl_obs_num(&o, "held_at_cap", -1);
	ph->r.hold_ms = fl_tl_obs_num(&o, "hold_ms_mean", -1);
	rc = fl_net_backend_nfqueue.revert(st, &e);
	if (rc)
		fprintf(stderr, "bench_nfq: revert: %s\n", e.msg);
out:
	fl_net_backend_nfqueue.release(st);
	fl_netns_close(&r.ns);
	return rc;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	struct phase phases[] = {
		{.name = "delay 0"},
		{.name = "delay 5ms", .delay_ns = 5000000},
		{.name = "delay 5ms jitter 1ms", .delay_ns = 5000000, .jitter_ns = 1000000},
	};
	struct fl_journal *j = NULL;
	struct result plain = {0};
	struct fl_err e = {0};
	char dir[64] = "", run_id[64];
	struct counts *c;
	pid_t rx;
	int rc = 1;

	if (geteuid() != 0) {
		fprintf(stderr, "bench_nfq: needs root (network namespaces, iptables, NFQUEUE)\n");
		return 2;
	}
	if (secs <= 0 || secs > 30)
		secs = 2.0;
	if (fl_net_backend_nfqueue.probe(&e)) {
		fprintf(stderr, "bench_nfq: NFQUEUE unavailable: %s %s\n", e.msg, e.hint);
		return 2;
	}
	snprintf(ns_a, sizeof(ns_a), "fl-nfqb-%d-a", (int)getpid());
	snprintf(ns_b, sizeof(ns_b), "fl-nfqb-%d-b", (int)getpid());
	snprintf(veth_a, sizeof(veth_a), "nfqb%da", (int)getpid() % 1000000);
	snprintf(veth_b, sizeof(veth_b), "nfqb%db", (int)getpid() % 1000000);
	c = mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED || fl_tl_mkdtemp(dir, sizeof(dir), "/tmp", "fl-nfq-bench"))
		return 1;
	fl_run_id_make(run_id, sizeof(run_id));
	if (fl_tl_sh("ip netns add %s && ip netns add %s", ns_a, ns_b) ||
	    fl_tl_veth_pair(ns_a, veth_a, ADDR_A "/24", ns_b, veth_b, ADDR_B "/24") ||
	    fl_journal_open(dir, run_id, "bench_nfq", &j, &e))
		goto out;
	rx = fl_tl_fork_in_netns(ns_b);
	if (rx == 0)
		receiver(c);
	pin(rx, CPU_TRAFFIC);
	usleep(200000);

	flood(c, secs, &plain);
	rc = 0;
	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]) && !rc; i++)
		rc = queued_flood(c, j, secs, &phases[i]);
	kill(rx, SIGKILL);
	waitpid(rx, NULL, 0);
	if (rc)
		goto out;
	printf("bench_nfq: UDP 64-byte flood %s -> %s, %.1f s per phase; sender+receiver on cpu %d, delayer on cpu %d\n",
	       ns_a, ns_b, secs, CPU_TRAFFIC, CPU_DELAYER);
	printf("  %-22s %11s %11s %12s %9s %8s %9s %12s %9s %7s\n", "", "sent pkt/s", "recv pkt/s", "via queue/s",
	       "bypassed", "at cap", "hold ms", "delayer cpu", "cpu0 busy", "ratio");
	printf("  %-22s %11.0f %11.0f %12s %9s %8s %9s %12s %9s %7s\n", "no queue", plain.sent_pps, plain.recv_pps,
	       "-", "-", "-", "-", "-", "-", "1");
	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		const struct result *q = &phases[i].r;

		printf("  %-22s %11.0f %11.0f %12.0f %9llu %8llu %9.3f %11.0f%% %8.0f%% %7.3f\n", phases[i].name,
		       q->sent_pps, q->recv_pps, q->queued_pps, (unsigned long long)q->bypassed,
		       (unsigned long long)q->at_cap, q->hold_ms, 100 * q->cpu_s / q->secs, 100 * q->core_busy,
		       plain.recv_pps > 0 ? q->queued_pps / plain.recv_pps : 0);
	}
	printf("  ratio = packets through the queue per second / delivered per second without it\n");
	printf("  one-core ceiling = via queue/s / cpu%d busy share (delayer + the softirq work its verdicts "
	       "trigger):", CPU_DELAYER);
	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
		printf(" %s %.0f pkt/s%s", phases[i].name,
		       phases[i].r.core_busy > 0 ? phases[i].r.queued_pps / phases[i].r.core_busy : 0,
		       i + 1 < sizeof(phases) / sizeof(phases[0]) ? ";" : "\n");
out:
	fl_journal_close(j, false);
	fl_tl_netns_del(ns_a);
	fl_tl_netns_del(ns_b);
	fl_tl_rm_rf(dir);
	return rc;
}
