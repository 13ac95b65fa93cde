/* What every network injector shares: the `match` of packets, network namespaces, owned names, the backend contract and RTT probes. */
#ifndef FL_NET_H
#define FL_NET_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "injector.h"

struct fl_journal;
struct fl_journal_rec;

/* ---- the match: which packets a network fault touches ------------------------------------- */

enum fl_net_dir { FL_NET_EGRESS, FL_NET_INGRESS };
enum fl_net_proto { FL_NET_ANY, FL_NET_TCP, FL_NET_UDP, FL_NET_ICMP };

/*
 * Packet header fields in the fault's direction (egress: dst is the remote peer; ingress: src
 * is). Unset fields match anything. Ports imply tcp and udp when `protocol` is unset.
 */
struct fl_net_match {
	char iface[IF_NAMESIZE];   /* "" = the interface of the route to dst (egress) / src (ingress) */
	enum fl_net_dir dir;
	bool has_dst, has_src;
	struct fl_cidr dst, src;
	uint16_t dst_port, src_port; /* 0 = any */
	enum fl_net_proto proto;
	bool cgroup;               /* only sockets of the target's cgroup (where the backend can) */
	int family;                /* AF_INET, AF_INET6, or AF_UNSPEC when no address is given */
};

/* The `match` sub-table every network injector puts in its params (as {.name = "match", .sub = ...}). */
extern const struct fl_param fl_net_match_params[];
/* The parameters every tc/nfqueue network fault has besides its own: match, netns, backend. */
#define FL_NET_COMMON_PARAMS(backends, backend_default)                                              \
	{.name = "match", .kind = FL_P_OBJECT, .sub = fl_net_match_params,                              \
	 .help = "which packets: interface, direction, dst_ip/src_ip, dst_port/src_port, protocol, "   \
		 "cgroup; unset fields match anything"},                                                 \
	{.name = "netns", .kind = FL_P_STRING,                                                          \
	 .help = "network namespace to act in: a name under /run/netns, a path, or pid:PID "             \
		 "(default: the target's)"},                                                            \
	{.name = "backend", .kind = FL_P_ENUM, .def = backend_default, .enums = backends,               \
	 .help = "mechanism; auto picks the first this host can run and the report says which"}

/* Decode f's `match` value (absent = match everything). 0 or -EINVAL with err. */
int fl_net_match_get(const struct fl_fault *f, struct fl_net_match *m, struct fl_err *err);
/* Cross-field rules (ports need tcp/udp, one address family, ...), for an injector's validate. */
int fl_net_match_validate(const struct fl_fault *f, const struct fl_value **blame, struct fl_err *err);
/* Does the match narrow traffic beyond an interface (addresses, ports, protocol, cgroup)? */
bool fl_net_match_selective(const struct fl_net_match *m);
/* "tcp to 10.0.0.2/32 port 5432 on veth0 (egress)" */
void fl_net_match_format(const struct fl_net_match *m, char *buf, size_t len);

/* ---- network namespaces ----------------------------------------------------------------------- */

struct fl_netns {
	int fd;                    /* open nsfs file, -1 when unresolved */
	char path[256];            /* how it was named: /run/netns/X, /proc/PID/ns/net, /proc/self/ns/net */
	uint64_t dev, ino;         /* its identity: the journal records these */
	bool own;                  /* faultline's own namespace */
};

/*
 * The namespace a fault acts in: its `netns` parameter, else the target's (target.netns, or the
 * target pid's when it differs from faultline's), else faultline's own. Read-only.
 */
int fl_netns_resolve(const struct fl_fault *f, struct fl_netns *ns, struct fl_err *err);
/* Open `spec` (a name under /run/netns, a path, or pid:PID). */
int fl_netns_open(const char *spec, struct fl_netns *ns, struct fl_err *err);
/*
 * For revert_record: reopen the namespace the journal named (path + dev/ino), checking it is the
 * same one; if the path now names another, look for dev/ino under /run/netns and /proc/ * /ns/net.
 * -ENOENT: it no longer exists (its interfaces, qdiscs and rules went with it).
 */
int fl_netns_find(const char *path, uint64_t dev, uint64_t ino, struct fl_netns *ns, struct fl_err *err);
void fl_netns_close(struct fl_netns *ns);
/* Move this thread into ns; *saved gets an fd of the namespace to return to (fl_netns_leave). */
int fl_netns_enter(const struct fl_netns *ns, int *saved, struct fl_err *err);
void fl_netns_leave(int saved);
/* "path dev ino" for journal records: netns=PATH ns_dev=N ns_ino=N */
#define FL_NETNS_REC_FMT "netns=%s ns_dev=%llu ns_ino=%llu"
#define FL_NETNS_REC_ARGS(ns) (ns)->path, (unsigned long long)(ns)->dev, (unsigned long long)(ns)->ino
/* Reopen the namespace of a record written with FL_NETNS_REC_FMT (see fl_netns_find). */
int fl_netns_from_record(const struct fl_journal_rec *r, struct fl_netns *ns, struct fl_err *err);
/* Each distinct namespace this host shows (ours, those under /run/netns, those of every /proc/PID): for sweeps. */
int fl_netns_each(int (*cb)(const struct fl_netns *ns, void *arg), void *arg);

struct nl_sock;
/*
 * A NETLINK_ROUTE socket created inside ns (it stays bound to ns), with the kernel's extended
 * error messages on and no automatic ACK requests (ask for one per request that wants it).
 */
int fl_net_route_socket(const struct fl_netns *ns, struct nl_sock **out, struct fl_err *err);
/* Interface index of `name` inside ns (0 with err when absent). Uses a netlink query: read-only. */
int fl_net_ifindex(const struct fl_netns *ns, const char *name, int *ifindex, struct fl_err *err);
/* The interface the route to `addr` leaves by, inside ns: the default for match.interface. */
int fl_net_route_iface(const struct fl_netns *ns, const struct fl_cidr *addr, char *iface, size_t len,
		       struct fl_err *err);

/* ---- owned names ---------------------------------------------------------------------------- */

/* "faultline-RUNID-FAULT": iptables comments, BPF filter names, pins. recover parses it back. */
int fl_net_owned_name(const struct fl_journal *j, const struct fl_fault *f, char *buf, size_t len);
/* The run id inside an owned name ("faultline-RUNID-FAULT" -> RUNID); false when not ours. */
bool fl_net_owned_run_id(const char *name, char *run_id, size_t len);

/* ---- what to do to matched packets: backend-neutral ---------------------------------------- */

enum fl_net_dist { FL_DIST_UNIFORM, FL_DIST_NORMAL, FL_DIST_PARETO, FL_DIST_PARETONORMAL };

struct fl_net_effect {
	int64_t delay_ns, jitter_ns;
	double delay_corr;                  /* 0..1 */
	enum fl_net_dist dist;
	double loss, loss_corr;             /* probabilities 0..1 */
	double duplicate, duplicate_corr;
	double corrupt, corrupt_corr;
	double reorder, reorder_corr;
	int gap;                            /* reorder: every gap-th packet goes out at once */
	uint64_t rate;                      /* bandwidth in bytes/s, 0 = none */
	uint64_t burst;                     /* bytes */
	uint64_t limit;                     /* bandwidth queue in bytes (0: from latency) */
	int64_t latency_ns;                 /* bandwidth: how long a packet may wait */
	uint32_t queue_pkts;                /* delay queue length in packets (netem limit) */
};

/* One network fault as a backend sees it. */
struct fl_net_req {
	const struct fl_fault *f;
	struct fl_net_match match;
	struct fl_net_effect fx;
	struct fl_netns ns;
	char iface[IF_NAMESIZE];            /* resolved interface ("" for backends that need none) */
	int ifindex;
	bool host_ns;                       /* ns is the host's (faultline's own) namespace */
};

/*
 * A mechanism behind network.delay/loss/...: netem (tc via libnl-route), nfqueue (userspace
 * delayer), cgroup (eBPF cgroup hooks). The front injector picks one (`backend`), journals
 * through it, and dispatches revert_record on the record's `backend=` key.
 */
struct fl_net_backend {
	const char *name;
	/* Can this host run it at all (for auto and `faultline list`)? May fork a throwaway netns. */
	int (*probe)(struct fl_err *err);
	/* Can it run this fault now? Read-only: no qdisc, rule, program or process is created. */
	int (*check)(const struct fl_net_req *r, struct fl_err *err);
	/* Journal (with backend=NAME first in the record data), then act. *state owned by the backend. */
	int (*apply)(const struct fl_net_req *r, struct fl_journal *j, void **state, struct fl_err *err);
	int (*observe)(void *state, struct fl_observation *obs);
	/* Idempotent; keeps state for a final observe. */
	int (*revert)(void *state, struct fl_err *err);
	void (*release)(void *state);
	/* Undo from the record alone, in a fresh process. */
	int (*revert_record)(const struct fl_journal_rec *rec, struct fl_err *err);
	/* Remove objects this backend named for runs sw->dead() says nobody will revert. */
	int (*sweep)(const struct fl_sweep *sw);
};

extern const struct fl_net_backend fl_net_backend_netem;
extern const struct fl_net_backend fl_net_backend_tbf;
extern const struct fl_net_backend fl_net_backend_nfqueue;
extern const struct fl_net_backend fl_net_backend_cgroup;

/* Build a request from a fault (match, netns, interface); read-only. */
int fl_net_req_init(const struct fl_fault *f, bool need_iface, struct fl_net_req *r, struct fl_err *err);
void fl_net_req_fini(struct fl_net_req *r);

/*
 * Run fn(arg) in a child that has its own, new network namespace (unshare), and return its
 * result (0 or -errno; the message comes back in err). A probe that must create a qdisc or
 * load a program to know whether the kernel can, without touching any namespace of the host.
 */
int fl_net_probe_in_scratch_ns(int (*fn)(void *arg, struct fl_err *err), void *arg, struct fl_err *err);

/* ---- observing the effect independently: TCP handshake RTT -------------------------------- */

/*
 * A non-blocking TCP connect to one endpoint from inside a namespace, started at one observe
 * and read at the next: the kernel's first RTT sample (tcpi_rtt right after the handshake) is
 * the SYN -> SYN-ACK time, so a delay on the matched path shows up in it without ever blocking
 * the event loop. The connection is reset (SO_LINGER 0) as soon as it is measured.
 */
struct fl_rtt_probe {
	bool active;               /* the match names one TCP endpoint: probing */
	int fd;
	int family;
	unsigned char addr[16];
	uint16_t port;
	int64_t started_ns;
	bool baseline_pending;     /* the connect under way left before the fault acted */
	bool have_baseline;
	double baseline_ms;
	int samples;
	double last_ms, min_ms, max_ms, sum_ms;
	int failures;
	int last_errno;
};

/*
 * Start probing when the match names one TCP endpoint (dst_ip with a full prefix and dst_port,
 * tcp or any, not cgroup-scoped): call it before the fault acts, so its first connection's SYN
 * has left unaffected and gives the baseline. Never blocks.
 */
void fl_rtt_probe_start(struct fl_rtt_probe *p, const struct fl_netns *ns, const struct fl_net_match *m);
/* Collect a finished probe (if any) and start the next one, inside ns. Never blocks. */
void fl_rtt_probe_step(struct fl_rtt_probe *p, const struct fl_netns *ns);
/* rtt_baseline_ms, rtt_ms (mean), added_rtt_ms and failures, into obs. */
void fl_rtt_probe_report(const struct fl_rtt_probe *p, struct fl_observation *o);
void fl_rtt_probe_close(struct fl_rtt_probe *p);

/* ---- children an injector starts --------------------------------------------------------- */

/*
 * fork() a helper child that dies with the controller (PR_SET_PDEATHSIG SIGKILL), has its own
 * process group, and keeps only the fds in keep[] (plus 0-2): a child must not pin another
 * fault's BPF links or the journal's lock. Returns the pid in the parent, 0 in the child.
 */
pid_t fl_spawn_child(const int *keep, int nkeep, struct fl_err *err);

#endif
