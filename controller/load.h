/* Open-loop HTTP/1.1 load: requests on a fixed timetable, latency from the scheduled time, every request reported once. */
#ifndef FL_LOAD_H
#define FL_LOAD_H

#include <stdint.h>

#include "fl_err.h"

/*
 * How it plugs into the owner's event loop (it owns no thread and no timer):
 *   - add fl_load_fd() to the owner's epoll with EPOLLIN: an epoll fd holding its sockets;
 *   - after every dispatch, arm the owner's timer for fl_load_next_deadline() (absolute
 *     CLOCK_MONOTONIC ns): the next slot, the next timeout, or the next poll;
 *   - call fl_load_dispatch() whenever the loop wakes (fd readable, timer, or anything else):
 *     it reads what arrived, expires what timed out, sends every request that is due, and
 *     never blocks.
 * Two regimes, chosen from the rate at create:
 *   - exact (rate <= 1/slack, e.g. <= 4000/s): the owner wakes for every slot and, through the
 *     fd, for every response;
 *   - batched (faster): a wake-up sends every slot that came in the last `slack` and reads every
 *     response; the fd stays quiet and next_deadline asks for a poll every `slack` while
 *     requests are in flight. Completion times are the kernel's receive timestamps
 *     (SO_TIMESTAMPNS), so the polling does not add to measured latency; the load is bursty at
 *     the slack's time scale. On a VM a wake-up costs 20-40 µs of CPU: this is what keeps the
 *     generator at about wrk's CPU per request (docs/benchmarks.md).
 * Results arrive through the callback, from inside dispatch, stop, abandon or destroy. The
 * callback may call fl_load_stop, fl_load_outstanding and the stats functions, nothing else.
 * Memory is fixed at create: connections x 8 KiB of line buffer plus the pool; the backlog of
 * waiting requests is two counters (requests are sent in slot order), whatever its length.
 */

#define FL_LOAD_MAX_CONNECTIONS 10000
#define FL_LOAD_LATE_NS 1000000LL      /* "sent late": handed to a connection > 1 ms after its slot */
#define FL_LOAD_DEFAULT_SLACK_NS 250000LL

struct fl_load_cfg {
	const char *url;             /* http://HOST[:PORT][/PATH]: HOST an IPv4 literal, [IPv6] or localhost */
	double rate;                 /* requests per second, > 0 */
	int connections;             /* keep-alive pool size = most requests in flight, 1..10000 */
	int64_t timeout_ns;          /* per request, counted from its scheduled time, > 0 */
	const char *method;          /* NULL: GET */
	const char *const *headers;  /* "Name: value"; Host, User-Agent, Connection replace ours */
	int nheaders;
	const char *body;            /* NULL: none; else sent with Content-Length */
	/*
	 * How late a send may be so that one wake-up serves several slots (the batched regime,
	 * above 1/slack req/s). 0: FL_LOAD_DEFAULT_SLACK_NS; < 0: never batch; at most 1 ms.
	 * Latency still counts from the slot, so batching can add up to the slack, never hide it.
	 */
	int64_t send_slack_ns;
};

enum fl_req_outcome {
	FL_REQ_OK,            /* a complete response within the timeout; status says which */
	FL_REQ_TIMEOUT,       /* handed to a connection, no complete response within the timeout */
	FL_REQ_REFUSED,       /* its connection was refused (ECONNREFUSED) */
	FL_REQ_RESET,         /* reset (ECONNRESET, EPIPE) or closed before a complete response */
	FL_REQ_CONN_ERROR,    /* any other connect or I/O error (EADDRNOTAVAIL, EMFILE, ...) */
	FL_REQ_BAD_RESPONSE,  /* not HTTP/1.x, or malformed framing */
	FL_REQ_NOT_SENT,      /* no connection was free for it before its timeout */
	FL_REQ_NOUTCOMES,
};

struct fl_req_result {
	int64_t sched_ns;     /* its slot: t0 + i * 1e9 / rate (CLOCK_MONOTONIC) */
	int64_t done_ns;      /* when its fate was known */
	int64_t latency_ns;   /* done - sched: corrected for coordinated omission */
	int status;           /* HTTP status if a status line arrived (always for FL_REQ_OK), else 0 */
	enum fl_req_outcome outcome;
};

typedef void (*fl_load_cb)(void *arg, const struct fl_req_result *r);

struct fl_load;

struct fl_load_stats {
	uint64_t scheduled;                     /* slots that have come */
	uint64_t reported;                      /* results delivered through the callback */
	uint64_t by_outcome[FL_REQ_NOUTCOMES];
	uint64_t in_flight;                     /* on a connection (connecting or sent) */
	uint64_t backlog;                       /* due, waiting for a free connection */
	uint64_t max_backlog;                   /* most requests left waiting after a dispatch */
	uint64_t connects;                      /* connections opened */
	uint64_t sent_late;                     /* handed to a connection > 1 ms after the slot */
	int64_t max_lag_ns;                     /* the largest such lag */
	int last_errno;                         /* of the last REFUSED/RESET/CONN_ERROR, for reports */
};

const char *fl_req_outcome_name(enum fl_req_outcome o);

/* Validates everything and allocates all memory; no socket is opened until requests are due. */
int fl_load_create(const struct fl_load_cfg *cfg, fl_load_cb cb, void *arg, struct fl_load **out,
		   struct fl_err *err);
/* Request i is due at t0 + i * 1e9 / rate. -EINVAL if started or stopped already. */
int fl_load_start(struct fl_load *l, int64_t t0_ns);
int fl_load_fd(const struct fl_load *l);
/*
 * now_ns: CLOCK_MONOTONIC now as the owner sees it: slots at or before it are due (clamped to
 * the real clock). Timeouts and completion times use the real clock. 0 or -errno (epoll_wait).
 */
int fl_load_dispatch(struct fl_load *l, int64_t now_ns);
/* The latest absolute time dispatch must run again; INT64_MAX when nothing is pending. */
int64_t fl_load_next_deadline(const struct fl_load *l);
/*
 * Requests due at or before now are owed and still run; no later slot is scheduled. What is
 * outstanding completes, times out or is NOT_SENT through later dispatches.
 */
int fl_load_stop(struct fl_load *l, int64_t now_ns);
/* Scheduled but not yet reported (backlog + in flight): drain until 0. */
uint64_t fl_load_outstanding(const struct fl_load *l);
/* Stop, and report every outstanding request now: in flight as TIMEOUT, backlog as NOT_SENT. */
void fl_load_abandon(struct fl_load *l, int64_t now_ns);
uint64_t fl_load_scheduled(const struct fl_load *l);
void fl_load_late_stats(const struct fl_load *l, uint64_t *sent_late, int64_t *max_lag_ns);
void fl_load_stats(const struct fl_load *l, struct fl_load_stats *out);
/* Abandons what is outstanding (so it is reported), closes everything. NULL is fine. */
void fl_load_destroy(struct fl_load *l);

#endif
