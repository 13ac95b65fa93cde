/* The helpers the integration tests and the benchmarks share (shell commands, clocks, scenarios from text, test namespaces, cgroups, journals), free of cmocka: they return NULL or -errno and say why on stderr. */
#ifndef FL_TESTLIB_H
#define FL_TESTLIB_H

#include <linux/bpf.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fl_journal;
struct fl_observation;
struct fl_scenario;

/* A run id of the real grammar for the tests and benches: "20261201T000000-<pid>-<tag>". */
#define FL_TL_RUN_STAMP "20261201T000000"

/* ---- shell commands -------------------------------------------------------------------------- */

/* Format a command and run it with sh: its exit status; -1 when it was killed, could not run or did not fit. */
int fl_tl_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Format and run a command; its stdout into buf (at most len - 1 bytes, always terminated; what
 * does not fit is read and dropped, so the command is not cut short). Returns as fl_tl_sh does.
 */
int fl_tl_capture(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The first line of a command's stdout as a number; -1 when it printed none. */
long fl_tl_sh_num(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* rm -rf dir (nothing when dir is ""): 0, or fl_tl_sh's nonzero status. */
int fl_tl_rm_rf(const char *dir);

/* ---- clocks (CLOCK_MONOTONIC) and sorting ----------------------------------------------------- */

int64_t fl_tl_now_ns(void);
double fl_tl_now_ms(void);
double fl_tl_now_s(void);

/* qsort() comparator for doubles, ascending. */
int fl_tl_cmp_double(const void *a, const void *b);

/* ---- scenarios and observations ---------------------------------------------------------------- */

/*
 * Parse a scenario named `name` (file "<name>.yaml") around `faults_yaml`, the lines under
 * "faults:", with a fixed header (a target with pid 4242, a 1/s load and an SLO), so parameters go
 * through the real tables. With diag, the first diagnostic ("msg / hint") goes there and nothing is
 * printed; without, a failure's diagnostics go to stderr. NULL when the text is refused.
 */
struct fl_scenario *fl_tl_scenario(const char *name, const char *faults_yaml, char *diag, size_t diag_len);

/* Index of key in o, -1 when it is not there. */
int fl_tl_obs_index(const struct fl_observation *o, const char *key);

/* The number under key, or dflt when there is none (or the value is text). */
double fl_tl_obs_num(const struct fl_observation *o, const char *key, double dflt);

/* ---- network namespaces ---------------------------------------------------------------------- */

/* An IPv4 address and port. */
struct sockaddr_in fl_tl_addr4(const char *ip, uint16_t port);

/* Move the calling thread into the named network namespace (/run/netns/<name>) for good: 0 or -errno. */
int fl_tl_netns_enter(const char *name);

/*
 * fork() for a child that must not outlive its parent and works inside the named namespace:
 * in the child (return 0) PR_SET_PDEATHSIG is SIGKILL and the namespace entered (a child that
 * cannot enter it exits 2); in the parent the child's pid, or -1 when fork failed.
 */
pid_t fl_tl_fork_in_netns(const char *name);

/*
 * A veth pair from namespace ns_a (veth_a, address cidr_a such as "192.0.2.1/24") to ns_b
 * (veth_b, cidr_b), both ends and both loopbacks up; the namespaces must exist. 0 or the
 * failing command's nonzero status.
 */
int fl_tl_veth_pair(const char *ns_a, const char *veth_a, const char *cidr_a, const char *ns_b,
		    const char *veth_b, const char *cidr_b);

/* ip netns del, quietly: 0 or nonzero (a namespace already gone is nonzero). */
int fl_tl_netns_del(const char *name);

/* ---- loopback sockets ------------------------------------------------------------------------- */

/* A family for fl_tl_lo_addr: IPv6 socket, IPv4-mapped address (::ffff:127.0.0.1). */
#define FL_TL_MAPPED (-AF_INET6)

/* The loopback address of family (AF_INET 127.0.0.1, AF_INET6 ::1, FL_TL_MAPPED) and port into ss. */
socklen_t fl_tl_lo_addr(int family, uint16_t port, struct sockaddr_storage *ss);
/* A non-blocking socket of family (AF_INET, AF_INET6: v6-only) and type bound to loopback:port (0: any),
 * listening when SOCK_STREAM; its port into *got (may be NULL). The fd, or -errno. */
int fl_tl_bound(int family, int type, uint16_t port, uint16_t *got);
/* A TCP listener, a UDP socket and (tcp6 not NULL) a v6 TCP listener on one free loopback port
 * number, into *port: 0, or -errno. */
int fl_tl_port_set(uint16_t *port, int *tcp, int *tcp6, int *udp);

/* ---- BPF programs ------------------------------------------------------------------------------ */

/* The ids of the loaded BPF programs whose name starts with prefix, up to cap: how many. */
int fl_tl_bpf_progs(const char *prefix, uint32_t *ids, int cap);
/* How many programs named prefix* are loaded now that are not among before[0..nbefore) (another
 * session may have its own), or -ENOMEM. */
int fl_tl_bpf_new_progs(const char *prefix, const uint32_t *before, int nbefore);
/* Programs attached directly to cgroup directory cg, summed over the attach types: or -errno. */
int fl_tl_cgroup_attached(const char *cg, const enum bpf_attach_type *types, size_t ntypes);

/* ---- cgroups and CPU time ---------------------------------------------------------------------- */

/* Move the calling process into cgroup v2 directory cg (its cgroup.procs): 0 or -errno. */
int fl_tl_cgroup_join(const char *cg);

/*
 * Busy and total jiffies from /proc/stat: of every CPU (cpu < 0, the "cpu" line) or of one
 * ("cpuN"). Busy counts user nice system irq softirq steal; total adds idle and iowait. 0 when unread.
 */
void fl_tl_cpu_jiffies(int cpu, unsigned long long *busy, unsigned long long *total);

/* ---- run ids and journals ---------------------------------------------------------------------- */

/* FL_TL_RUN_STAMP "-<pid>-<tag>" into buf. */
void fl_tl_run_id(char *buf, size_t len, pid_t pid, const char *tag);

/* mkdtemp of "<parent>/<prefix>-XXXXXX" into dir: 0, or -errno with dir "" (so cleanup skips it). */
int fl_tl_mkdtemp(char *dir, size_t len, const char *parent, const char *prefix);

/*
 * The journal of run_id (for scenario `scenario`) in a fresh "/tmp/<prefix>-XXXXXX" dir, its path
 * into dir ("" when the dir could not be made). NULL when either failed.
 */
struct fl_journal *fl_tl_journal(char *dir, size_t len, const char *prefix, const char *run_id,
				 const char *scenario);

/* The RssAnon of a process, in bytes, as /proc/PID/status has it: 0 when unreadable (gone). */
uint64_t fl_tl_rss_anon(pid_t pid);
/* utime + stime of a live process, in seconds (its /proc/PID/stat, fields 14 and 15); -1 when unreadable. */
double fl_tl_cpu_s(pid_t pid);

#endif
