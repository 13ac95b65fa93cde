/* Drives the load generator the way the engine does (epoll + timerfd) and reports its CPU per request and how well it kept the timetable. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "load.h"

#define S 1000000000LL
#define MS 1000000LL

struct tally {
	struct fl_hist ok;      /* latency of FL_REQ_OK, from the scheduled time */
	uint64_t by[FL_REQ_NOUTCOMES];
	uint64_t non2xx;
};

static void on_result(void *arg, const struct fl_req_result *r)
{
	struct tally *t = arg;

	t->by[r->outcome]++;
	if (r->outcome == FL_REQ_OK) {
		fl_hist_record(&t->ok, r->latency_ns);
		if (r->status < 200 || r->status > 299)
			t->non2xx++;
	}
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * S + ts.tv_nsec;
}

static double cpu_s(const struct rusage *a, const struct rusage *b, bool sys)
{
	const struct timeval *x = sys ? &a->ru_stime : &a->ru_utime, *y = sys ? &b->ru_stime : &b->ru_utime;

	return (double)(y->tv_sec - x->tv_sec) + (double)(y->tv_usec - x->tv_usec) / 1e6;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_load --url URL [--rate N] [--duration S] [--connections N] [--timeout MS]\n"
		   "                  [--slack-us US]   (send slack; -1: none, 0: the library default)\n"
		   "  open-loop load at N req/s for S seconds; prints key=value results\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, 'u'},      {"rate", required_argument, NULL, 'r'},
		{"duration", required_argument, NULL, 'd'}, {"connections", required_argument, NULL, 'c'},
		{"timeout", required_argument, NULL, 't'},  {"slack-us", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct fl_load_cfg cfg = {.rate = 10000, .connections = 50, .timeout_ns = 2 * S};
	struct tally *t = calloc(1, sizeof(*t));
	struct fl_load *l = NULL;
	struct fl_load_stats st;
	struct fl_err err = {0};
	struct rusage ru0, ru1;
	struct epoll_event ev = {.events = EPOLLIN}, out[8];
	double dur = 10, user, sys, elapsed;
	int64_t t0, end, limit, done_at, prev = 0, max_gap = 0;
	int ep = -1, tfd = -1, opt, rc = 1;
	bool stopped = false;
	uint64_t total = 0, wakes = 0;

	if (!t) {
		fprintf(stderr, "bench_load: out of memory\n");
		return 1;
	}
	while ((opt = getopt_long(argc, argv, "u:r:d:c:t:s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'u': cfg.url = optarg; break;
		case 'r': cfg.rate = strtod(optarg, NULL); break;
		case 'd': dur = strtod(optarg, NULL); break;
		case 'c': cfg.connections = atoi(optarg); break;
		case 't': cfg.timeout_ns = (int64_t)(strtod(optarg, NULL) * MS); break;
		case 's': cfg.send_slack_ns = (int64_t)(strtod(optarg, NULL) * 1000); break;
		case 'h': usage(stdout); free(t); return 0;
		default: usage(stderr); free(t); return 2;
		}
	}
	if (!cfg.url || dur <= 0) {
		usage(stderr);
		free(t);
		return 2;
	}
	fl_hist_init(&t->ok);
	if (fl_load_create(&cfg, on_result, t, &l, &err)) {
		fprintf(stderr, "bench_load: %s%s%s\n", err.msg, err.hint[0] ? "; " : "", err.hint);
		goto out;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (ep < 0 || tfd < 0) {
		perror("bench_load: epoll/timerfd");
		goto out;
	}
	ev.data.u32 = 1;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fl_load_fd(l), &ev) < 0)
		goto out;
	ev.data.u32 = 2;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0)
		goto out;

	getrusage(RUSAGE_SELF, &ru0);
	t0 = now_ns() + 10 * MS;
	end = t0 + (int64_t)(dur * 1e9);
	limit = end + cfg.timeout_ns + S;
	fl_load_start(l, t0);
	for (;;) {
		int64_t now = now_ns(), wake;
		struct itimerspec its = {0};
		uint64_t x;

		/* the longest the loop was away: a stall of this process (or of the VM), not of nginx */
		if (prev && now - prev > max_gap && now < end)
			max_gap = now - prev;
		prev = now;
		if (!stopped && now >= end) {
			fl_load_stop(l, end - 1);
			stopped = true;
		}
		if (fl_load_dispatch(l, now) < 0) {
			perror("bench_load: dispatch");
			goto out;
		}
		if ((stopped && !fl_load_outstanding(l)) || now >= limit)
			break;
		wake = fl_load_next_deadline(l);
		if (!stopped && end < wake)
			wake = end;
		if (limit < wake)
			wake = limit;
		if (wake < 1)
			wake = 1;
		its.it_value.tv_sec = wake / S;
		its.it_value.tv_nsec = wake % S;
		timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
		if (epoll_wait(ep, out, 8, -1) < 0 && errno != EINTR) {
			perror("bench_load: epoll_wait");
			goto out;
		}
		if (read(tfd, &x, sizeof(x)) < 0 && errno != EAGAIN) {
			perror("bench_load: read(timerfd)");
			goto out;
		}
		wakes++;
	}
	done_at = now_ns();
	getrusage(RUSAGE_SELF, &ru1);
	fl_load_stats(l, &st);
	for (int o = 0; o < FL_REQ_NOUTCOMES; o++)
		total += t->by[o];
	user = cpu_s(&ru0, &ru1, false);
	sys = cpu_s(&ru0, &ru1, true);
	elapsed = (double)(done_at - t0) / 1e9;

	printf("url=%s\nrate=%g\nduration_s=%g\nconnections=%d\n", cfg.url, cfg.rate, dur, cfg.connections);
	printf("scheduled=%llu\nreported=%llu\n", (unsigned long long)st.scheduled, (unsigned long long)total);
	for (int o = 0; o < FL_REQ_NOUTCOMES; o++)
		printf("%s=%llu\n", fl_req_outcome_name((enum fl_req_outcome)o), (unsigned long long)t->by[o]);
	printf("non2xx=%llu\nconnects=%llu\nwakes=%llu\n", (unsigned long long)t->non2xx,
	       (unsigned long long)st.connects, (unsigned long long)wakes);
	printf("achieved_rate=%.1f\n", (double)t->by[FL_REQ_OK] / dur);
	printf("elapsed_s=%.3f\ncpu_user_s=%.3f\ncpu_sys_s=%.3f\n", elapsed, user, sys);
	printf("cpu_us_per_req=%.3f\n", t->by[FL_REQ_OK] ? (user + sys) * 1e6 / (double)t->by[FL_REQ_OK] : 0.0);
	printf("sent_late=%llu\nsent_late_frac=%.5f\nmax_lag_ms=%.3f\nmax_backlog=%llu\n",
	       (unsigned long long)st.sent_late, st.scheduled ? (double)st.sent_late / (double)st.scheduled : 0.0,
	       (double)st.max_lag_ns / 1e6, (unsigned long long)st.max_backlog);
	printf("max_loop_gap_ms=%.3f\n", (double)max_gap / 1e6);
	printf("p50_ms=%.3f\np90_ms=%.3f\np99_ms=%.3f\np999_ms=%.3f\nmax_ms=%.3f\n",
	       (double)fl_hist_percentile(&t->ok, 50) / 1e6, (double)fl_hist_percentile(&t->ok, 90) / 1e6,
	       (double)fl_hist_percentile(&t->ok, 99) / 1e6, (double)fl_hist_percentile(&t->ok, 99.9) / 1e6,
	       (double)fl_hist_max(&t->ok) / 1e6);
	rc = total == st.scheduled ? 0 : 1;
	if (rc)
		fprintf(stderr, "bench_load: %llu scheduled but %llu reported\n", (unsigned long long)st.scheduled,
			(unsigned long long)total);
out:
	fl_load_destroy(l);
	if (tfd >= 0)
		close(tfd);
	if (ep >= 0)
		close(ep);
	free(t);
	return rc;
}
