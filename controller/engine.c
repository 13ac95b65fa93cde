/* The drill: preflight, target, baseline gate, fault timeline, recovery, revert, verdict — on one epoll loop. */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "failpoint.h"
#include "journal.h"
#include "load.h"
#include "procfs.h"
#include "recovery.h"

#define TICK_NS FL_NS_PER_S

enum { EV_SIGNAL = 1, EV_TIMER, EV_LOAD, EV_TARGET };

struct engine {
	const struct fl_scenario *sc;
	const struct fl_run_opts *opts;
	struct fl_run *run;
	struct fl_journal *journal;
	struct fl_guardian guardian;
	struct fl_load *load;
	int epfd, sigfd, timerfd;
	sigset_t oldmask;
	bool tty;
	int64_t baseline_end, end;           /* absolute */
	bool gate_done, aborted, stopping;
	int64_t next_tick;
	int64_t next_beat, beat_every;       /* guardian heartbeat: a third of guardrails.heartbeat */
	int64_t below_since;                 /* guardrail: when the window ratio went below, 0 = not */
	int64_t last_plain;                  /* last non-TTY progress line */
	int applied_total, reverted_total;
};

const char *fl_outcome_name(enum fl_outcome o)
{
	static const char *const names[] = {"pass", "fail", "invalid", "unrunnable", "aborted"};

	return o <= FL_OUT_ABORTED ? names[o] : "?";
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * FL_NS_PER_S + ts.tv_nsec;
}

static void set_outcome(struct fl_run *r, enum fl_outcome o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_outcome(struct fl_run *r, enum fl_outcome o, const char *fmt, ...)
{
	static const int codes[] = {FL_EXIT_PASS, FL_EXIT_FAIL, FL_EXIT_INVALID, FL_EXIT_UNRUNNABLE,
				    FL_EXIT_ABORTED};
	va_list ap;

	r->outcome = o;
	r->exit_code = codes[o];
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

static void say(struct engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct engine *e, const char *fmt, ...)
{
	va_list ap;
	char line[1024];

	if (e->opts->quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (e->tty)
		dprintf(e->opts->progress_fd, "\r\033[K%s\n", line);
	else
		dprintf(e->opts->progress_fd, "%s\n", line);
}

static double rel_s(const struct engine *e, int64_t t)
{
	return (double)(t - e->run->t0) / 1e9;
}

/* ---- faults ------------------------------------------------------------------------------- */

static bool all_faults_done(const struct engine *e)
{
	for (int i = 0; i < e->run->nfaults; i++)
		if (!e->run->faults[i].reverted_at)
			return false;
	return true;
}

static int apply_fault(struct engine *e, struct fl_fault_run *fr, int64_t now)
{
	struct fl_err err;
	int rc;

	fl_err_clear(&err);
	if (e->applied_total == 0 && e->run->slo)
		fl_slo_mark_faults_start(e->run->slo, now);
	rc = fr->f->inj->apply(fr->f, e->journal, &err);
	fl_failpoint_kill("after-apply", fr->f->name);
	if (!rc && fl_failpoint("apply-error", fr->f->name))
		rc = fl_err_set(&err, -EIO, "failpoint apply-error (its effect is in place)");
	fr->applied_at = now;
	fr->apply_rc = rc;
	/* even a failed apply may have journaled and partly acted: revert treats it as applied */
	fr->active = true;
	e->applied_total++;
	if (rc) {
		snprintf(fr->error, sizeof(fr->error), "apply failed: %.480s", err.msg);
		return rc;
	}
	say(e, "t=%6.2fs  applied  %s (%s), %+.1f ms from plan", rel_s(e, now), fr->f->name,
	    fr->f->inj->type, (double)(now - fr->planned_apply) / 1e6);
	return 0;
}

static void revert_fault(struct engine *e, struct fl_fault_run *fr, int64_t now)
{
	struct fl_err err;
	int rc;

	if (!fr->active)
		return;
	fl_err_clear(&err);
	rc = fr->f->inj->revert(fr->f, &err);
	fr->revert_rc = rc;
	if (rc) {
		/* keep it active: the exit path retries, and recover will find it in the journal */
		snprintf(fr->error + strlen(fr->error), sizeof(fr->error) - strlen(fr->error),
			 "%srevert failed: %.400s", fr->error[0] ? "; " : "", err.msg);
		say(e, "t=%6.2fs  REVERT FAILED %s: %s", rel_s(e, now), fr->f->name, err.msg);
		return;
	}
	fl_failpoint_kill("mid-revert", fr->f->name);
	fr->active = false;
	fr->reverted_at = now;
	/* the recovery phase starts at the revert that leaves nothing applied */
	if (e->run->slo && all_faults_done(e))
		fl_slo_mark_recovery_start(e->run->slo, now);
	fl_journal_mark_fault_reverted(e->journal, fr->f->name);
	fr->obs.n = 0;
	fr->f->inj->observe(fr->f, &fr->obs);
	e->reverted_total++;
	say(e, "t=%6.2fs  reverted %s, %+.1f ms from plan", rel_s(e, now), fr->f->name,
	    (double)(now - fr->planned_revert) / 1e6);
}

static void revert_all(struct engine *e)
{
	/* reverse order of application: later faults may sit on top of earlier ones */
	for (int i = e->run->nfaults - 1; i >= 0; i--)
		revert_fault(e, &e->run->faults[i], now_ns());
	for (int i = e->run->nfaults - 1; i >= 0; i--)
		if (e->run->faults[i].active) /* one retry for a revert that failed */
			revert_fault(e, &e->run->faults[i], now_ns());
}

/* ---- load --------------------------------------------------------------------------------- */

static enum fl_class class_of(enum fl_req_outcome o)
{
	switch (o) {
	case FL_REQ_TIMEOUT: return FL_C_TIMEOUT;
	case FL_REQ_REFUSED: return FL_C_REFUSED;
	case FL_REQ_RESET: return FL_C_RESET;
	case FL_REQ_BAD_RESPONSE: return FL_C_BAD_RESPONSE;
	case FL_REQ_NOT_SENT: return FL_C_NOT_SENT;
	case FL_REQ_CONN_ERROR:
	default: return FL_C_CONN_ERROR;
	}
}

static void on_result(void *arg, const struct fl_req_result *r)
{
	struct engine *e = arg;

	if (!e->run->slo)
		return;
	fl_slo_record(e->run->slo, r->sched_ns, r->done_ns, r->outcome == FL_REQ_OK, r->status,
		      class_of(r->outcome));
}

/* ---- progress ----------------------------------------------------------------------------- */

static void progress(struct engine *e, int64_t now)
{
	const char *phase = now < e->baseline_end ? "baseline" : all_faults_done(e) ? "recovery" : "faults";
	uint64_t valid = 0;
	double ratio = fl_slo_recent_ratio(e->run->slo, now, e->sc->slo.window_ns, &valid);
	const struct fl_hist *h = fl_slo_phase_hist(e->run->slo,
						    now < e->baseline_end ? FL_PHASE_BASELINE :
						    all_faults_done(e) ? FL_PHASE_RECOVERY : FL_PHASE_FAULTS);
	char active[256] = "", p99[32] = "- (nothing answered yet)";
	size_t off = 0;
	char line[512];

	if (e->opts->quiet)
		return;
	for (int i = 0; i < e->run->nfaults; i++) {
		if (!e->run->faults[i].active)
			continue;
		int w = snprintf(active + off, sizeof(active) - off, "%s%s", off ? "," : "",
				 e->run->faults[i].f->name);
		if (w > 0 && (size_t)w < sizeof(active) - off)
			off += (size_t)w;
	}
	/* the phase's p99 so far, of the answers: none yet (a stall) is not 0 ms */
	if (fl_hist_count(h))
		snprintf(p99, sizeof(p99), "%.1f ms", (double)fl_hist_percentile(h, 99.0) / 1e6);
	snprintf(line, sizeof(line), "%-8s %6.1f/%.1fs  window %5.1f%% good (%llu req)  p99 %s  active: %s",
		 phase, rel_s(e, now), rel_s(e, e->end), ratio * 100, (unsigned long long)valid, p99,
		 off ? active : "-");
	if (e->tty) {
		dprintf(e->opts->progress_fd, "\r\033[K%s", line);
	} else if (now - e->last_plain >= 5 * FL_NS_PER_S) {
		dprintf(e->opts->progress_fd, "%s\n", line);
		e->last_plain = now;
	}
}

/* ---- the loop ----------------------------------------------------------------------------- */

static int arm_timer(struct engine *e, int64_t at)
{
	struct itimerspec its = {0};

	if (at < 1)
		at = 1;
	its.it_value.tv_sec = at / FL_NS_PER_S;
	its.it_value.tv_nsec = at % FL_NS_PER_S;
	return timerfd_settime(e->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0 ? -errno : 0;
}

static int64_t next_fault_event(const struct engine *e)
{
	int64_t t = INT64_MAX;

	for (int i = 0; i < e->run->nfaults; i++) {
		const struct fl_fault_run *fr = &e->run->faults[i];

		if (!fr->applied_at && fr->planned_apply < t)
			t = fr->planned_apply;
		else if (fr->active && fr->planned_revert < t)
			t = fr->planned_revert;
	}
	return t;
}

static void handle_signal(struct engine *e)
{
	struct signalfd_siginfo si;

	while (read(e->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (!e->aborted) {
			e->aborted = true;
			set_outcome(e->run, FL_OUT_ABORTED, "aborted by %s: everything was reverted",
				    strsignal((int)si.ssi_signo));
			say(e, "received %s: reverting everything", strsignal((int)si.ssi_signo));
		}
	}
}

static void check_guardrails(struct engine *e, int64_t now)
{
	const struct fl_guardrails *g = &e->sc->guardrails;

	if (now - e->run->t0 > g->max_duration_ns) {
		e->aborted = true;
		set_outcome(e->run, FL_OUT_ABORTED, "guardrail: the run passed max_duration %.0fs; "
			    "everything was reverted", (double)g->max_duration_ns / 1e9);
		return;
	}
	if (g->abort_below <= 0 || !e->applied_total)
		return;
	{
		uint64_t valid;
		double ratio = fl_slo_recent_ratio(e->run->slo, now, e->sc->slo.window_ns, &valid);

		if (valid == 0 || ratio >= g->abort_below) {
			e->below_since = 0;
			return;
		}
		if (!e->below_since)
			e->below_since = now;
		if (now - e->below_since >= g->for_ns) {
			e->aborted = true;
			set_outcome(e->run, FL_OUT_ABORTED,
				    "guardrail: the good ratio stayed below %.1f%% for %.1fs (last window "
				    "%.1f%%); everything was reverted",
				    g->abort_below * 100, (double)g->for_ns / 1e9, ratio * 100);
		}
	}
}

/* End of baseline: the target must be healthy before anything is injected. */
static bool baseline_gate(struct engine *e)
{
	const struct fl_counts *b = fl_slo_phase(e->run->slo, FL_PHASE_BASELINE);
	double ratio = fl_ratio(fl_counts_good(b), b->requests);

	e->gate_done = true;
	if (b->requests > 0 && ratio >= e->sc->slo.baseline_ratio - 1e-12) {
		say(e, "t=%6.2fs  baseline %.2f%% good of %llu (needs %g%%): injecting",
		    rel_s(e, e->baseline_end), ratio * 100, (unsigned long long)b->requests,
		    e->sc->slo.baseline_ratio * 100);
		return true;
	}
	set_outcome(e->run, FL_OUT_UNRUNNABLE,
		    "target unhealthy before injection: baseline %.2f%% good of %llu decided requests, "
		    "needs %g%%; nothing was injected",
		    ratio * 100, (unsigned long long)b->requests, e->sc->slo.baseline_ratio * 100);
	return false;
}

static void beat(void *arg)
{
	struct engine *e = arg;
	int64_t now = now_ns();

	if (now >= e->next_beat) {
		fl_guardian_beat(&e->guardian);
		e->next_beat = now + e->beat_every;
	}
}

static void on_tick(struct engine *e, int64_t now)
{
	for (int i = 0; i < e->run->nfaults; i++) {
		struct fl_fault_run *fr = &e->run->faults[i];

		if (fr->active) {
			fr->obs.n = 0;
			fr->f->inj->observe(fr->f, &fr->obs);
		}
	}
	fl_slo_tick(e->run->slo, now);
	check_guardrails(e, now);
	progress(e, now);
}

static void check_target(struct engine *e, int64_t now)
{
	if (e->run->target_died || !fl_target_check_exit(e->run->target))
		return;
	e->run->target_died = true;
	e->run->target_died_at = now - e->run->t0;
	fl_target_exit_text(e->run->target, e->run->target_death, sizeof(e->run->target_death));
	say(e, "t=%6.2fs  the target %s (counts against the service)", rel_s(e, now),
	    e->run->target_death);
	epoll_ctl(e->epfd, EPOLL_CTL_DEL, e->run->target->pidfd, NULL);
}

static int loop(struct engine *e)
{
	struct epoll_event evs[8];

	for (;;) {
		int64_t now = now_ns(), wake;
		int n;

		if (e->aborted)
			return 0;
		if (!e->gate_done && now >= e->baseline_end && !baseline_gate(e))
			return 0;
		/* due fault events, reverts before applies so back-to-back faults never overlap */
		for (int pass = 0; e->gate_done && pass < 2; pass++) {
			for (int i = 0; i < e->run->nfaults; i++) {
				struct fl_fault_run *fr = &e->run->faults[i];

				if (pass == 0 && fr->active && now >= fr->planned_revert) {
					revert_fault(e, fr, now);
				} else if (pass == 1 && !fr->applied_at && now >= fr->planned_apply) {
					if (apply_fault(e, fr, now)) {
						set_outcome(e->run, FL_OUT_UNRUNNABLE,
							    "fault %s: %s; everything was reverted", fr->f->name,
							    fr->error);
						return 0;
					}
				}
			}
		}
		beat(e);
		if (now >= e->next_tick) {
			on_tick(e, now);
			e->next_tick += TICK_NS;
			if (e->aborted)
				return 0;
		}
		if (now >= e->end)
			return 0;
		wake = e->next_tick < e->next_beat ? e->next_tick : e->next_beat;
		if (!e->gate_done && e->baseline_end < wake)
			wake = e->baseline_end;
		if (next_fault_event(e) < wake)
			wake = next_fault_event(e);
		if (fl_load_next_deadline(e->load) < wake)
			wake = fl_load_next_deadline(e->load);
		if (e->end < wake)
			wake = e->end;
		if (arm_timer(e, wake) < 0)
			return -errno;
		n = epoll_wait(e->epfd, evs, 8, -1);
		if (n < 0 && errno != EINTR)
			return -errno;
		now = now_ns();
		for (int i = 0; i < n; i++) {
			switch (evs[i].data.u32) {
			case EV_SIGNAL:
				handle_signal(e);
				break;
			case EV_TIMER: {
				uint64_t x;

				if (read(e->timerfd, &x, sizeof(x)) < 0 && errno != EAGAIN)
					return -errno;
				break;
			}
			case EV_TARGET:
				check_target(e, now);
				break;
			default:
				break;
			}
		}
		/* the generator is cheap to poll: let it send what is due and read what arrived */
		fl_load_dispatch(e->load, now);
	}
}

/* After the last scheduled request: let outstanding ones finish or time out, bounded. */
static void drain(struct engine *e)
{
	int64_t limit = now_ns() + e->sc->load.timeout_ns + FL_NS_PER_S;
	struct epoll_event ev;

	fl_load_stop(e->load, now_ns());
	for (;;) {
		int64_t now = now_ns(), wake = fl_load_next_deadline(e->load);

		beat(e);
		if (e->next_beat < wake)
			wake = e->next_beat;
		if (fl_load_outstanding(e->load) == 0 || now >= limit)
			break;
		if (wake > limit)
			wake = limit;
		arm_timer(e, wake);
		if (epoll_wait(e->epfd, &ev, 1, -1) > 0 && ev.data.u32 == EV_TIMER) {
			uint64_t x;

			if (read(e->timerfd, &x, sizeof(x)) < 0) {
				/* nothing: a spurious wake is harmless */
			}
		} else if (ev.data.u32 == EV_SIGNAL) {
			handle_signal(e);
		}
		fl_load_dispatch(e->load, now_ns());
	}
	/* past timeout + 1 s nothing can still be good: account for any straggler as a timeout */
	fl_load_abandon(e->load, now_ns());
}

/* ---- setup -------------------------------------------------------------------------------- */

static int make_report_dir(struct fl_run *r, const struct fl_run_opts *o, struct fl_err *err)
{
	const char *tmp = getenv("TMPDIR");

	if (o->report_dir)
		snprintf(r->report_dir, sizeof(r->report_dir), "%s", o->report_dir);
	else
		snprintf(r->report_dir, sizeof(r->report_dir), "%s/faultline-%s", tmp && *tmp ? tmp : "/tmp",
			 r->run_id);
	if (mkdir(r->report_dir, 0755) < 0 && errno != EEXIST)
		return fl_err_set(err, -errno, "cannot create report dir %s: %s", r->report_dir,
				  strerror(errno));
	return 0;
}

static int setup_loop(struct engine *e, struct fl_err *err)
{
	sigset_t mask;
	struct epoll_event ev = {.events = EPOLLIN};

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, &e->oldmask) < 0)
		return fl_err_set(err, -errno, "sigprocmask: %s", strerror(errno));
	e->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	e->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->sigfd < 0 || e->timerfd < 0 || e->epfd < 0)
		return fl_err_set(err, -errno, "event loop setup: %s", strerror(errno));
	ev.data.u32 = EV_SIGNAL;
	epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->sigfd, &ev);
	ev.data.u32 = EV_TIMER;
	epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->timerfd, &ev);
	return 0;
}

static void teardown_loop(struct engine *e)
{
	if (e->epfd >= 0)
		close(e->epfd);
	if (e->timerfd >= 0)
		close(e->timerfd);
	if (e->sigfd >= 0) {
		close(e->sigfd);
		sigprocmask(SIG_SETMASK, &e->oldmask, NULL);
	}
}

/* Every fault's injector must be able to run on this host; report every reason at once. */
static bool probe_all(struct engine *e, bool with_check)
{
	char reasons[sizeof(e->run->reason)] = "";
	size_t off = 0;
	bool ok = true;

	for (int i = 0; i < e->sc->nfaults; i++) {
		struct fl_fault *f = &e->sc->faults[i];
		struct fl_err err;
		int rc;

		fl_err_clear(&err);
		rc = with_check ? f->inj->check(f, &err) : f->inj->probe(&err);
		if (!rc)
			continue;
		ok = false;
		int w = snprintf(reasons + off, sizeof(reasons) - off, "%s%s (%s): %s%s%s",
				 off ? "; " : "", f->name, f->inj->type, err.msg, err.hint[0] ? " — " : "",
				 err.hint);
		if (w > 0 && (size_t)w < sizeof(reasons) - off)
			off += (size_t)w;
	}
	if (!ok)
		set_outcome(e->run, FL_OUT_UNRUNNABLE, "preflight: %s; nothing was injected", reasons);
	return ok;
}

static int start_load(struct engine *e, struct fl_err *err)
{
	const struct fl_scenario *sc = e->sc;
	const char **hdrs = calloc((size_t)sc->load.nheaders + 1, sizeof(char *));
	struct fl_load_cfg cfg = {0};
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = EV_LOAD};
	int rc;

	if (!hdrs)
		return fl_err_set(err, -ENOMEM, "out of memory");
	for (int i = 0; i < sc->load.nheaders; i++) {
		if (asprintf((char **)&hdrs[i], "%s: %s", sc->load.headers[i].key,
			     sc->load.headers[i].value) < 0)
			hdrs[i] = NULL;
	}
	cfg.url = sc->target.url;
	cfg.rate = sc->load.rate;
	cfg.connections = sc->load.connections;
	cfg.timeout_ns = sc->load.timeout_ns;
	cfg.method = sc->load.method;
	cfg.headers = hdrs;
	cfg.nheaders = sc->load.nheaders;
	cfg.body = sc->load.body;
	rc = fl_load_create(&cfg, on_result, e, &e->load, err);
	for (int i = 0; i < sc->load.nheaders; i++)
		free((char *)hdrs[i]);
	free(hdrs);
	if (rc)
		return rc;
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fl_load_fd(e->load), &ev) < 0)
		return fl_err_set(err, -errno, "epoll_ctl(load): %s", strerror(errno));
	return 0;
}

/* In the target's child, just before exec: each fault's own set-up (async-signal-safe). */
static int launch_child_hooks(void *arg)
{
	struct engine *e = arg;

	for (int i = 0; i < e->sc->nfaults; i++) {
		struct fl_fault *f = &e->sc->faults[i];
		int rc;

		if (f->inj->launch_child && (rc = f->inj->launch_child(f)) < 0)
			return rc;
	}
	return 0;
}

/* The launched target is a side effect too: the guardian and recover must be able to stop it. */
static int journal_target(struct engine *e, const struct fl_target *t)
{
	static const struct fl_injector target_inj = {.type = FL_TARGET_RECORD};
	static const struct fl_fault target_fault = {.name = ".target", .inj = &target_inj}; /* no user fault name has a dot */
	char cgs[4 * 4200] = "";
	size_t off = 0;
	uint64_t start = 0;

	fl_proc_starttime(t->info.pid, &start);
	for (int i = 0; i < t->n_own_cgroups; i++) {
		int w = snprintf(cgs + off, sizeof(cgs) - off, " cg%d=%s", i, t->own_cgroups[i]);

		if (w > 0 && (size_t)w < sizeof(cgs) - off)
			off += (size_t)w;
	}
	return fl_journal_append(e->journal, &target_fault, "pid=%d start=%llu pgid=%d%s", (int)t->info.pid,
				 (unsigned long long)start, (int)t->info.pgid, cgs) < 0;
}

int fl_engine_run(const struct fl_scenario *sc, const struct fl_run_opts *opts, struct fl_run *run)
{
	struct engine e = {.sc = sc, .opts = opts, .run = run, .epfd = -1, .sigfd = -1, .timerfd = -1,
			   .guardian = {.fd = -1}};
	struct fl_err err;
	int rc;

	memset(run, 0, sizeof(*run));
	run->sc = sc;
	run->started_wall = (int64_t)time(NULL);
	e.tty = isatty(opts->progress_fd) && !opts->quiet;
	fl_run_id_make(run->run_id, sizeof(run->run_id));
	set_outcome(run, FL_OUT_UNRUNNABLE, "did not start");
	fl_err_clear(&err);

	run->nfaults = sc->nfaults;
	run->faults = calloc((size_t)sc->nfaults + 1, sizeof(*run->faults));
	if (!run->faults) {
		set_outcome(run, FL_OUT_UNRUNNABLE, "out of memory");
		return run->exit_code;
	}
	for (int i = 0; i < sc->nfaults; i++)
		run->faults[i].f = &sc->faults[i];

	if (setup_loop(&e, &err) || make_report_dir(run, opts, &err)) {
		set_outcome(run, FL_OUT_UNRUNNABLE, "%s", err.msg);
		goto out;
	}
	{
		char left[4200];

		/* a dead run's faults may still be in place: drilling on top of them would lie */
		if (fl_recover_pending(opts->state_dir, left, sizeof(left))) {
			set_outcome(run, FL_OUT_UNRUNNABLE,
				    "an earlier run left faults behind (%s): run `faultline recover --state-dir %s` "
				    "first; nothing was started",
				    left, opts->state_dir);
			goto out;
		}
	}
	/* the host must be able to run every fault before anything is started */
	if (!probe_all(&e, false))
		goto out;
	rc = fl_journal_open(opts->state_dir, run->run_id, sc->name, &e.journal, &err);
	if (rc) {
		set_outcome(run, FL_OUT_UNRUNNABLE, "%s%s%s", err.msg, err.hint[0] ? "; " : "", err.hint);
		goto out;
	}
	rc = fl_guardian_start(fl_journal_path(e.journal), sc->guardrails.heartbeat_ns, &e.guardian, &err);
	if (rc) {
		set_outcome(run, FL_OUT_UNRUNNABLE, "%s", err.msg);
		goto out;
	}
	e.beat_every = sc->guardrails.heartbeat_ns / 3;
	beat(&e);
	say(&e, "faultline run %s: scenario %s, report dir %s", run->run_id, sc->name, run->report_dir);

	if (sc->target.run.n) {
		/* faults that must be set up inside the target (seccomp) prepare around its fork */
		for (int i = 0; i < sc->nfaults && !rc; i++)
			if (sc->faults[i].inj->launch_prepare)
				rc = sc->faults[i].inj->launch_prepare(&sc->faults[i], e.journal, &err);
		if (!rc)
			rc = fl_target_launch(&sc->target, run->run_id, run->report_dir, sc->allow_host_wide,
					      launch_child_hooks, &e, &run->target, &err);
		for (int i = 0; i < sc->nfaults; i++)
			if (sc->faults[i].inj->launch_done)
				sc->faults[i].inj->launch_done(&sc->faults[i], run->target ? run->target->info.pid : 0);
	} else
		rc = fl_target_attach(&sc->target, sc->allow_host_wide, &run->target, &err);
	if (rc) {
		set_outcome(run, FL_OUT_UNRUNNABLE, "target: %s; nothing was injected", err.msg);
		goto out;
	}
	run->target->info.allow_host_wide = sc->allow_host_wide;
	run->target->beat = beat;
	run->target->beat_arg = &e;
	if (run->target->info.launched && journal_target(&e, run->target)) {
		set_outcome(run, FL_OUT_UNRUNNABLE, "cannot journal the launched target; nothing was injected");
		goto out;
	}
	if (sc->target.run.n) {
		rc = fl_target_wait_ready(run->target, sc->target.url, sc->target.ready_timeout_ns, e.sigfd,
					  &err);
		if (rc == -EINTR) {
			handle_signal(&e);
			goto out;
		}
		if (rc) {
			set_outcome(run, FL_OUT_UNRUNNABLE, "target not ready: %s; nothing was injected",
				    err.msg);
			goto out;
		}
		say(&e, "target ready: pid %d, %s", (int)run->target->info.pid, sc->target.url);
		if (run->target->memory_limit) {
			char lim[32];

			say(&e, "target memory limit %s (%s%s%s)",
			    fl_format_size(run->target->memory_limit, lim, sizeof(lim)),
			    run->target->memory_limit_file, run->target->memory_swap_file[0] ? "; swap: " : "",
			    run->target->memory_swap_file);
			if (run->target->memory_note[0])
				say(&e, "WARNING: target.memory_limit: %s", run->target->memory_note);
		}
	}
	if (run->target->pidfd >= 0) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = EV_TARGET};

		epoll_ctl(e.epfd, EPOLL_CTL_ADD, run->target->pidfd, &ev);
	}
	for (int i = 0; i < sc->nfaults; i++)
		sc->faults[i].target = &run->target->info;
	if (!probe_all(&e, true))
		goto out;

	if (start_load(&e, &err)) {
		set_outcome(run, FL_OUT_UNRUNNABLE, "load: %s; nothing was injected", err.msg);
		goto out;
	}
	run->t0 = now_ns() + 10 * FL_NS_PER_MS;
	rc = fl_slo_create(&sc->slo, run->t0, sc->guardrails.max_duration_ns, sc->load.timeout_ns,
			   &run->slo);
	if (rc) {
		set_outcome(run, FL_OUT_UNRUNNABLE, "out of memory for the SLO accounting");
		goto out;
	}
	e.baseline_end = run->t0 + sc->phases.baseline_ns;
	e.end = e.baseline_end + fl_scenario_timeline_ns(sc) + sc->phases.recovery_ns;
	e.next_tick = run->t0 + TICK_NS;
	e.last_plain = run->t0;
	for (int i = 0; i < run->nfaults; i++) {
		run->faults[i].planned_apply = e.baseline_end + sc->faults[i].at_ns;
		run->faults[i].planned_revert = run->faults[i].planned_apply + sc->faults[i].duration_ns;
	}
	fl_load_start(e.load, run->t0);
	say(&e, "load: %g req/s to %s; baseline %.1fs", sc->load.rate, sc->target.url,
	    (double)sc->phases.baseline_ns / 1e9);

	set_outcome(run, FL_OUT_PASS, "running");
	rc = loop(&e);
	if (rc) {
		e.aborted = true;
		set_outcome(run, FL_OUT_ABORTED, "event loop failed: %s; everything was reverted",
			    strerror(-rc));
	}
	/* every exit path from here reverts first, then finishes the accounting */
	revert_all(&e);
	run->ended = now_ns();
	fl_slo_mark_end(run->slo, run->ended);
	drain(&e);
	fl_load_late_stats(e.load, &run->load_sent_late, &run->load_max_lag_ns);
	fl_slo_finish(run->slo);
	if (e.tty)
		dprintf(opts->progress_fd, "\r\033[K");
	fl_slo_verdict(run->slo, &run->verdict);
	if (run->outcome == FL_OUT_PASS && e.gate_done) {
		if (!run->verdict.pass) {
			char why[512] = "";

			if (!run->verdict.survival_ok)
				snprintf(why, sizeof(why), "survival ratio %.2f%% < %g%%",
					 run->verdict.survival_ratio * 100, sc->slo.survival_ratio * 100);
			if (run->verdict.recovery_judged && !run->verdict.recovery_ok)
				snprintf(why + strlen(why), sizeof(why) - strlen(why),
					 "%srecovery %s (limit %.1fs)", why[0] ? "; " : "",
					 run->verdict.recovery_ns < 0 ? "never happened" : "too slow",
					 (double)sc->slo.recover_within_ns / 1e9);
			set_outcome(run, FL_OUT_FAIL, "SLO breached: %s", why);
		} else {
			set_outcome(run, FL_OUT_PASS, "every SLO held");
		}
	}
out:
	revert_all(&e);
	for (int i = 0; i < run->nfaults; i++) {
		struct fl_fault_run *fr = &run->faults[i];

		if (fr->applied_at && fr->f->state) {
			fr->obs.n = 0;
			fr->f->inj->observe(fr->f, &fr->obs);
			if (fr->f->inj->release)
				fr->f->inj->release(fr->f);
			else
				free(fr->f->state);
			fr->f->state = NULL;
		}
	}
	if (run->target) {
		check_target(&e, now_ns());
		fl_err_clear(&err);
		if (fl_target_stop(run->target, sc->target.stop_grace_ns, &err))
			say(&e, "stopping the target: %s", err.msg);
		else if (run->target->info.launched)
			fl_journal_mark_fault_reverted(e.journal, ".target");
	}
	fl_load_destroy(e.load);
	/* all undone: tell the guardian; otherwise let it try from the journal before we exit */
	if (e.journal && fl_journal_pending(e.journal)) {
		say(&e, "%d journaled change(s) could not be reverted: the guardian tries again from %s",
		    fl_journal_pending(e.journal), fl_journal_path(e.journal));
		if (e.guardian.fd >= 0)
			close(e.guardian.fd);
		e.guardian.fd = -1;
		if (e.guardian.pid > 0)
			waitpid(e.guardian.pid, NULL, 0);
		e.guardian.pid = 0;
	}
	fl_guardian_done(&e.guardian);
	fl_journal_close(e.journal, true);
	teardown_loop(&e);
	return run->exit_code;
}

void fl_run_free(struct fl_run *run)
{
	if (!run)
		return;
	fl_slo_destroy(run->slo);
	fl_target_free(run->target);
	free(run->faults);
	memset(run, 0, sizeof(*run));
}
