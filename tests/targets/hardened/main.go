// hardened: the report service with the fixes the survivors in shared/INCIDENTS.md run. Same API and
// flags as naive, plus:
//   - server timeouts: ReadHeader 2 s, Read 5 s, Write 10 s, Idle 30 s (incidents 1, 2);
//   - a deadline on every downstream call (-downstream-timeout) over one shared, bounded keep-alive pool,
//     warmed at start, with a dial timeout; short of fds or ports, calls wait for a pooled connection
//     and one paced connect() per -redial-every probes for a new one (incidents 1, 3, 4, 8);
//   - bounded in-flight requests: the excess gets an immediate 503 (incident 1);
//   - a circuit breaker on the downstream: after N consecutive failures, fast 503s for a cool-down, then
//     one probe request (incidents 6, 7, 12);
//   - /healthz that reports the dependency: 503 when the breaker is open or the last probe failed (6);
//   - a listener that caps connections (-max-conns) and survives EMFILE/ENFILE with a reserve fd,
//     logging once a second instead of spinning (incidents 2, 3);
//   - a downstream named by host name is resolved once and cached, re-resolved in the background,
//     and the last good answer kept when DNS fails or hangs (incident 8);
//   - a standby process holding the listening sockets that takes over when this one is killed
//     (OOM kill, crash), as a supervisor restarting a pod would (incident 5).
//
// Standard library only.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	listen            = flag.String("listen", "127.0.0.1:8080", "address to serve on (port 0: any free port, printed at startup)")
	downstream        = flag.String("downstream", "", "base URL of the downstream (its /query is called), e.g. http://127.0.0.1:9090")
	downstreamListen  = flag.String("downstream-listen", "", "run a downstream inside this process on this address (when -downstream is not given)")
	downstreamDelay   = flag.Duration("downstream-delay", 2*time.Millisecond, "service time of the in-process downstream")
	newConnPerCall    = flag.Bool("new-conn-per-call", false, "accepted for symmetry with naive; true is refused (the pool is the fix)")
	failRatio         = flag.Float64("fail-ratio", 0, "answer 500 to this fraction of /api/report, deterministically (0.1: requests 10, 20, 30, ...)")
	downstreamTimeout = flag.Duration("downstream-timeout", 200*time.Millisecond, "deadline of each downstream call, dial included")
	dialTimeout       = flag.Duration("dial-timeout", 200*time.Millisecond, "connect timeout to the downstream")
	redialEvery       = flag.Duration("redial-every", 20*time.Millisecond, "while this process has no fd or ephemeral port to spare, one connect() to the downstream per this interval for the whole process; waiting calls share the pooled connections meanwhile")
	poolIdle          = flag.Int("pool", 64, "idle keep-alive connections kept to the downstream (MaxIdleConnsPerHost)")
	poolMax           = flag.Int("max-downstream-conns", 128, "connections to the downstream at most (MaxConnsPerHost); callers beyond wait, within their deadline")
	poolWarm          = flag.Int("warm", 16, "downstream connections opened at start, so calls need no new fd or port later")
	maxInflight       = flag.Int("max-inflight", 256, "/api/report requests served at once; the excess gets an immediate 503")
	maxConns          = flag.Int("max-conns", 1024, "client connections held at once; the excess is accepted and closed at once")
	breakerFailures   = flag.Int("breaker-failures", 5, "consecutive downstream failures that open the circuit breaker")
	breakerCooldown   = flag.Duration("breaker-cooldown", time.Second, "how long an open breaker answers 503 before letting one probe through")
	healthInterval    = flag.Duration("health-interval", time.Second, "how often the downstream's /healthz is probed for our /healthz")
	readHeaderTimeout = flag.Duration("read-header-timeout", 2*time.Second, "http.Server ReadHeaderTimeout")
	readTimeout       = flag.Duration("read-timeout", 5*time.Second, "http.Server ReadTimeout")
	writeTimeout      = flag.Duration("write-timeout", 10*time.Second, "http.Server WriteTimeout")
	idleTimeout       = flag.Duration("idle-timeout", 30*time.Second, "http.Server IdleTimeout")
	shutdownTimeout   = flag.Duration("shutdown-timeout", 2*time.Second, "graceful shutdown budget on SIGTERM")
	standby           = flag.Bool("standby", true, "keep a started standby process holding the listening sockets; when this process dies without a graceful stop (OOM kill, crash) it takes over at once and starts a standby of its own")
	resolverAddr      = flag.String("resolver", "", "resolve the downstream's host name with Go's resolver against the DNS server at IP:PORT (resolv.conf still sets timeout and attempts)")
	dnsListen         = flag.String("dns-listen", "", "run a DNS responder inside this process on this IP:PORT (UDP and TCP): every A query is answered 127.0.0.1")
	dnsRefresh        = flag.Duration("dns-refresh", time.Second, "how often a cached downstream name is re-resolved in the background (each lookup bounded by it)")
)

// ---- counters ------------------------------------------------------------------------------------

// The server's own account of what it did, read back by tests through GET /stats.
//
//	requests = ok + errors + shed + inflight
//	shed: refused on purpose without calling the downstream (in-flight bound, open breaker)
//	errors: everything else that was not a 200 (injected 500s, downstream errors and timeouts)
var requests, okCount, errCount, shedCount, inflight atomic.Int64

// Connections: held now, and refused by the listener (over -max-conns, or closed on EMFILE).
var connsOpen, connsShed atomic.Int64

type statsDoc struct {
	Requests  int64        `json:"requests"`
	OK        int64        `json:"ok"`
	Errors    int64        `json:"errors"`
	Shed      int64        `json:"shed"`
	Inflight  int64        `json:"inflight"`
	Conns     int64        `json:"conns"`
	ConnsShed int64        `json:"conns_shed"`
	Breaker   string       `json:"breaker"`
	DNS       *dnsStatsDoc `json:"dns,omitempty"` // with -dns-listen or -resolver
}

func statsJSON(b *breaker) []byte {
	out, _ := json.Marshal(statsDoc{requests.Load(), okCount.Load(), errCount.Load(), shedCount.Load(),
		inflight.Load(), connsOpen.Load(), connsShed.Load(), b.state(), hardenedDNSStats()})
	return out
}

// failer picks the requests that fail: request n fails when floor(n*ppm/1e6) steps up, so exactly
// round(n*ratio) of the first n fail, evenly spread, with integer arithmetic only.
type failer struct{ ppm int64 }

func (f failer) fail(n int64) bool {
	return f.ppm > 0 && n*f.ppm/1000000 != (n-1)*f.ppm/1000000
}

// rateLog logs at most one line a second per instance, saying how many it swallowed.
type rateLog struct {
	mu      sync.Mutex
	last    time.Time
	dropped int
}

func (l *rateLog) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.last) < time.Second {
		l.dropped++
		return
	}
	msg := fmt.Sprintf(format, args...)
	if l.dropped > 0 {
		msg += fmt.Sprintf(" (and %d more in the last second)", l.dropped)
	}
	log.Print(msg)
	l.last, l.dropped = time.Now(), 0
}

// ---- circuit breaker -----------------------------------------------------------------------------

const (
	closed = iota
	open
	halfOpen
)

var stateNames = [...]string{"closed", "open", "half-open"}

type breaker struct {
	mu        sync.Mutex
	st        int
	failures  int // consecutive, while closed
	openedAt  time.Time
	probing   bool // half-open: the one probe is out
	threshold int
	cooldown  time.Duration
}

type outcome int

const (
	success outcome = iota
	failure         // the downstream failed: timeout, refused, reset, bad status
	neutral         // says nothing of the downstream: our own fds or ports ran out, the caller left
)

// allow says whether a call may go to the downstream now; in half-open, only the one probe may.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.st {
	case closed:
		return true
	case open:
		if time.Since(b.openedAt) < b.cooldown {
			return false
		}
		b.st, b.probing = halfOpen, true
		return true
	default:
		if b.probing {
			return false
		}
		b.probing = true
		return true
	}
}

func (b *breaker) record(o outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.st {
	case closed:
		switch o {
		case success:
			b.failures = 0
		case failure:
			b.failures++
			if b.failures >= b.threshold {
				b.st, b.openedAt = open, time.Now()
				log.Printf("breaker open: %d consecutive downstream failures; fast 503 for %v", b.failures, b.cooldown)
			}
		}
	case halfOpen:
		b.probing = false
		switch o {
		case success:
			b.st, b.failures = closed, 0
			log.Printf("breaker closed: the probe succeeded")
		case failure:
			b.st, b.openedAt = open, time.Now()
		}
	}
	// open: late results of calls that started before it opened change nothing
}

func (b *breaker) state() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st == open && time.Since(b.openedAt) >= b.cooldown {
		return stateNames[halfOpen]
	}
	return stateNames[b.st]
}

// ---- downstream calls ----------------------------------------------------------------------------

type callErr struct {
	status  int // what the client gets
	outcome outcome
	err     error
}

// localExhaustion: errors that are about this process or host, not the downstream.
func localExhaustion(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// starvedDials counts dials now waiting for an fd or an ephemeral port.
var starvedDials atomic.Int64

// redial paces the connects of dials that found no fd or port: one connect() for the whole process
// per -redial-every, however many calls are waiting. Under port exhaustion a connect() that fails
// has first walked the whole ephemeral range (2.1-2.3 ms of CPU for 28232 ports: bench_ports), so
// forty waiting calls that each retry every few milliseconds spend the CPU the pooled connections
// need, every call slows, more calls wait and redial: the service collapses on the connections it
// still has (seen: 2% of requests served instead of 100%).
var redial struct {
	sync.Mutex
	next time.Time
	last error // the shortage the last paced connect() met
}

// redialTurn says how long to wait before this dial may connect(); 0: now, and the turn is taken.
func redialTurn() time.Duration {
	redial.Lock()
	defer redial.Unlock()
	now := time.Now()
	if now.Before(redial.next) {
		return redial.next.Sub(now)
	}
	redial.next = now.Add(*redialEvery)
	return 0
}

func redialSaw(err error) {
	redial.Lock()
	redial.last = err
	redial.Unlock()
}

func redialLast() error {
	redial.Lock()
	defer redial.Unlock()
	return redial.last
}

// patientDial connects like net.Dialer, except that while this process has no fd or port to spare
// (EMFILE, ENFILE, EADDRNOTAVAIL, ...) the dial waits until the call's deadline instead of failing
// at once, and tries connect() again only in its turn (redial above); while other dials are already
// waiting, a new one does not even try first. Meanwhile the Transport hands the waiting call the
// first pooled connection another call gives back (its idle-connection wait queue is first come,
// first served), so under fd or port exhaustion the calls share the connections already open.
func patientDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var err error
		if starvedDials.Load() == 0 {
			c, e := dial(ctx, network, addr)
			if e == nil || !localExhaustion(e) {
				return c, e
			}
			redialSaw(e)
			err = e
		}
		starvedDials.Add(1)
		defer starvedDials.Add(-1)
		for {
			if wait := redialTurn(); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					if err == nil {
						err = redialLast()
					}
					if err == nil {
						err = ctx.Err()
					}
					return nil, err // the shortage, not the deadline, is why this dial failed
				case <-t.C:
				}
				continue
			}
			c, e := dial(ctx, network, addr)
			if e == nil || !localExhaustion(e) {
				return c, e
			}
			redialSaw(e)
			err = e
		}
	}
}

type downstreamClient struct {
	c        *http.Client
	queryURL string
}

func newDownstreamClient(base string) *downstreamClient {
	dialer := &net.Dialer{Timeout: *dialTimeout, KeepAlive: 15 * time.Second}
	tr := &http.Transport{
		DialContext:         patientDial(resolveCache.dial(dialer)),
		MaxIdleConns:        *poolIdle,
		MaxIdleConnsPerHost: *poolIdle,
		MaxConnsPerHost:     *poolMax,
		// shorter than any server-side idle timeout would be, long enough to outlast a drill
		IdleConnTimeout:   5 * time.Minute,
		ForceAttemptHTTP2: false,
	}
	return &downstreamClient{c: &http.Client{Transport: tr}, queryURL: base + "/query"}
}

// get does one GET under ctx and returns the body, or why not.
func (d *downstreamClient) get(ctx context.Context, url string) ([]byte, *callErr) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, &callErr{http.StatusInternalServerError, neutral, err}
	}
	resp, err := d.c.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			return nil, &callErr{http.StatusBadGateway, failure, fmt.Errorf("downstream status %d", resp.StatusCode)}
		}
	}
	switch {
	case err == nil:
		return body, nil
	case localExhaustion(err): // our shortage, not the downstream's fault: no breaker count
		return nil, &callErr{http.StatusServiceUnavailable, neutral, err}
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && starvedDials.Load() > 0:
		// the deadline passed while dials were waiting for an fd or a port: our shortage again
		return nil, &callErr{http.StatusServiceUnavailable, neutral, err}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, &callErr{http.StatusGatewayTimeout, failure, err}
	case ctx.Err() != nil: // the client went away: nothing learnt about the downstream
		return nil, &callErr{http.StatusServiceUnavailable, neutral, err}
	default:
		return nil, &callErr{http.StatusBadGateway, failure, err}
	}
}

// ---- retries: idempotent calls only, within a budget -----------------------------------------------

var (
	attemptTimeout = flag.Duration("attempt-timeout", 100*time.Millisecond, "deadline of one attempt of a downstream query; a failed or timed-out attempt is retried once (GET /query is idempotent) if the call's deadline and the retry budget allow")
	retryBudget    = flag.Float64("retry-budget", 0.2, "retries at most this share of downstream queries (each query earns it, a retry spends 1; 0: never retry), so a failing downstream is not hit with a retry storm")
)

var retryCount atomic.Int64

// budget holds the retry tokens: every query adds *retryBudget (up to 10 banked), a retry takes one.
var budget = struct {
	sync.Mutex
	tokens float64
}{}

func budgetEarn() {
	budget.Lock()
	if budget.tokens += *retryBudget; budget.tokens > 10 {
		budget.tokens = 10
	}
	budget.Unlock()
}

func budgetSpend() bool {
	budget.Lock()
	defer budget.Unlock()
	if budget.tokens < 1 {
		return false
	}
	budget.tokens--
	return true
}

// query calls the downstream's /query under ctx: a first attempt of at most -attempt-timeout, and
// when it fails for the downstream's reasons (a lost packet, a reset, a timeout - not our own fd or
// port shortage, not the caller leaving) one more attempt on another connection with what is left
// of ctx, if the budget has a token. A lossy link then costs one attempt's timeout, not the call.
func (d *downstreamClient) query(ctx context.Context) ([]byte, *callErr) {
	budgetEarn()
	for attempt := 0; ; attempt++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if attempt == 0 {
			actx, cancel = context.WithTimeout(ctx, *attemptTimeout)
		}
		body, e := d.get(actx, d.queryURL)
		cancel()
		if e == nil || attempt > 0 || e.outcome != failure || ctx.Err() != nil || !budgetSpend() {
			return body, e
		}
		retryCount.Add(1)
	}
}

// warm opens n pooled connections at once so that later calls find one idle.
func (d *downstreamClient) warm(base string, n int) int {
	var wg sync.WaitGroup
	var good atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, e := d.get(ctx, base+"/healthz"); e == nil {
				good.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(good.Load())
}

// ---- the listener --------------------------------------------------------------------------------

// guardedListener holds at most max connections (the excess is accepted and closed at once: the client
// learns immediately instead of waiting in the backlog) and survives fd exhaustion: on EMFILE/ENFILE it
// gives up a reserve fd, accepts the pending connection and closes it, and takes the reserve back.
// When even that cannot free an fd (the limit was lowered below what is already open), it backs off
// instead of spinning on a listener that stays readable.
type guardedListener struct {
	net.Listener
	max     int64
	reserve int // an fd on /dev/null, or -1
	emfile  rateLog
	full    rateLog
	backoff time.Duration
}

type guardedConn struct {
	net.Conn
	once sync.Once
}

func (c *guardedConn) Close() error {
	c.once.Do(func() { connsOpen.Add(-1) })
	return c.Conn.Close()
}

func openReserve() int {
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.backoff = 0
			if connsOpen.Add(1) > l.max {
				connsOpen.Add(-1)
				connsShed.Add(1)
				l.full.printf("connection limit %d reached: closing new connections", l.max)
				c.Close()
				continue
			}
			return &guardedConn{Conn: c}, nil
		}
		if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
			return nil, err // closed, or a transient error net/http retries itself
		}
		shed := false
		if l.reserve >= 0 {
			syscall.Close(l.reserve)
			l.reserve = -1
			if c2, err2 := l.Listener.Accept(); err2 == nil {
				c2.Close()
				connsShed.Add(1)
				shed = true
			}
			l.reserve = openReserve()
		} else {
			l.reserve = openReserve()
		}
		l.emfile.printf("accept: %v: shedding new connections (%d shed so far, %d held)",
			err, connsShed.Load(), connsOpen.Load())
		if shed {
			l.backoff = 0
			continue
		}
		if l.backoff == 0 {
			l.backoff = 5 * time.Millisecond
		} else if l.backoff < 50*time.Millisecond {
			l.backoff *= 2
		}
		time.Sleep(l.backoff)
	}
}

// ---- in-process downstream -----------------------------------------------------------------------

// acceptRetry keeps the in-process downstream accepting through fd exhaustion with a steady 5 ms
// retry, silently, instead of net/http's backoff of up to 1 s: in production the database is another
// process, and it must not carry the service's own accept stalls past the end of a fault.
type acceptRetry struct{ net.Listener }

func (l acceptRetry) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil && (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		return c, err
	}
}

func startDownstream(addr string, delay time.Duration) string {
	mux := http.NewServeMux()
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"rows":[{"id":1,"total":42}]}`+"\n")
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	ln, err := listenTCP("downstream", addr)
	if err != nil {
		log.Fatalf("downstream listen: %v", err)
	}
	go http.Serve(acceptRetry{ln}, mux)
	log.Printf("in-process downstream on %s (service time %v)", ln.Addr(), delay)
	return "http://" + ln.Addr().String()
}

// dnsCache keeps the last good resolution of each downstream host name (incident 8): a dial uses it
// at once, a goroutine re-resolves the name every -dns-refresh (each lookup bounded by that
// interval), and a failed refresh keeps the last good answer, so a DNS server that hangs or fails
// costs no request anything. Only the first lookup of a name waits, within the dial timeout.
type dnsCache struct {
	r      *net.Resolver
	mu     sync.Mutex
	addrs  map[string][]string
	failed atomic.Int64 // refreshes that failed (the last good answer was kept)
	errs   rateLog
}

var resolveCache = &dnsCache{r: net.DefaultResolver, addrs: map[string][]string{}}

func (c *dnsCache) lookup(ctx context.Context, host string) ([]string, error) {
	c.mu.Lock()
	a, ok := c.addrs[host]
	c.mu.Unlock()
	if ok {
		return a, nil
	}
	a, err := c.r.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if _, had := c.addrs[host]; !had {
		c.addrs[host] = a
		go c.refresh(host)
	}
	c.mu.Unlock()
	return a, nil
}

func (c *dnsCache) refresh(host string) {
	for range time.Tick(*dnsRefresh) {
		ctx, cancel := context.WithTimeout(context.Background(), *dnsRefresh)
		a, err := c.r.LookupHost(ctx, host)
		cancel()
		c.mu.Lock()
		if err == nil && len(a) > 0 {
			c.addrs[host] = a
		} else {
			c.failed.Add(1)
			c.errs.printf("dns: re-resolving %s failed (%v): keeping the last good answer %v", host, err, c.addrs[host])
		}
		c.mu.Unlock()
	}
}

// dial resolves a host name through the cache (an IP is dialed as it is), then dials the addresses
// in turn with d.
func (c *dnsCache) dial(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || net.ParseIP(host) != nil {
			return d.DialContext(ctx, network, addr)
		}
		lctx, cancel := context.WithTimeout(ctx, d.Timeout)
		ips, err := c.lookup(lctx, host)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			var conn net.Conn
			if conn, err = d.DialContext(ctx, network, net.JoinHostPort(ip, port)); err == nil {
				return conn, nil
			}
		}
		return nil, err
	}
}

// hardenedDNSStats: dnsStats plus the refreshes that failed.
func hardenedDNSStats() *dnsStatsDoc {
	d := dnsStats()
	if d != nil {
		n := resolveCache.failed.Load()
		d.RefreshFailed = &n
	}
	return d
}

// ---- standby ---------------------------------------------------------------------------------------

// A restart that recovers within the SLO (incident 5): what systemd's Restart=always with socket
// activation, or a kubelet restarting an OOM-killed container, gives a service. The standby is this
// binary started again with the same flags, with dups of the listening sockets and the read end of
// a pipe. It waits, serving nothing. When the primary stops gracefully it writes 'q' and the
// standby exits; when the primary dies any other way (SIGKILL from the OOM killer, a crash) the pipe
// just closes: the standby becomes the primary on the same sockets (connections queued meanwhile are
// kept, none refused) and starts a standby of its own. An idle standby is a few MiB, the primary
// under load more, so the kernel's OOM killer, choosing by size among equal oom_score_adj, takes the
// primary: the process whose heap grows, as in the incident.

const standbyEnv = "HARDENED_STANDBY" // in a standby: "PRIMARY-PID;ROLE,ROLE": listeners from fd 3, then the pipe

var (
	inherited   = map[string]net.Listener{} // a standby's sockets, by role, until its takeover uses them
	ownRoles    []string                    // the listeners this process serves, for its standby
	ownSockets  []*net.TCPListener
	standbyPipe *os.File // write end: closed by our death, 'q' on a graceful stop
)

// listenTCP binds addr, or, in a standby that took over, hands back the socket it inherited.
func listenTCP(role, addr string) (net.Listener, error) {
	ln, ok := inherited[role]
	if !ok {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, err
		}
	}
	if t, ok := ln.(*net.TCPListener); ok {
		ownRoles = append(ownRoles, role)
		ownSockets = append(ownSockets, t)
	}
	return ln, nil
}

// standbyWait: in a standby, take the inherited sockets and wait for the primary's end; return
// only to take over. In any other process: nothing.
func standbyWait() {
	spec := os.Getenv(standbyEnv)
	if spec == "" {
		return
	}
	os.Unsetenv(standbyEnv)
	primary, list, _ := strings.Cut(spec, ";")
	roles := strings.Split(list, ",")
	for i, role := range roles {
		f := os.NewFile(uintptr(3+i), role)
		ln, err := net.FileListener(f)
		if err != nil {
			log.Fatalf("standby: the %s socket (fd %d): %v", role, 3+i, err)
		}
		f.Close()
		inherited[role] = ln
	}
	ctl := os.NewFile(uintptr(3+len(roles)), "standby-pipe")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	end := make(chan bool, 1)
	go func() {
		b := make([]byte, 1)
		n, _ := ctl.Read(b)
		end <- n == 1 && b[0] == 'q'
	}()
	select {
	case <-sig:
		os.Exit(0)
	case graceful := <-end:
		if graceful {
			os.Exit(0)
		}
	}
	signal.Stop(sig)
	ctl.Close()
	log.Printf("standby: the primary (pid %s) died without a graceful stop: taking over %s", primary, list)
}

// startStandby starts this process's standby; without one the service still runs. The sockets
// are passed as raw fds through syscall.ForkExec: os/exec's ExtraFiles would call File.Fd(), which
// makes each socket blocking, and O_NONBLOCK belongs to the socket, shared with our own listener.
func startStandby() {
	exe, err := os.Executable()
	if err != nil {
		log.Printf("standby: %v (running without one)", err)
		return
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		log.Printf("standby: pipe: %v (running without one)", err)
		return
	}
	files := []uintptr{0, 1, 2}
	for _, t := range ownSockets {
		rc, err := t.SyscallConn()
		if err == nil {
			err = rc.Control(func(fd uintptr) { files = append(files, fd) })
		}
		if err != nil {
			log.Printf("standby: %v (running without one)", err)
			syscall.Close(p[0])
			syscall.Close(p[1])
			return
		}
	}
	files = append(files, uintptr(p[0]))
	env := append(os.Environ(), fmt.Sprintf("%s=%d;%s", standbyEnv, os.Getpid(), strings.Join(ownRoles, ",")))
	pid, err := syscall.ForkExec(exe, os.Args, &syscall.ProcAttr{Env: env, Files: files})
	syscall.Close(p[0])
	if err != nil {
		log.Printf("standby: %v (running without one)", err)
		syscall.Close(p[1])
		return
	}
	standbyPipe = os.NewFile(uintptr(p[1]), "standby-pipe")
	go func() { // reap it when it goes
		var ws syscall.WaitStatus
		for {
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
				return
			}
		}
	}()
	log.Printf("standby pid %d holds %s", pid, strings.Join(ownRoles, ", "))
}

func standbyStop() {
	if standbyPipe != nil {
		standbyPipe.Write([]byte{'q'})
	}
}

// ---- main ----------------------------------------------------------------------------------------

func main() {
	flag.Parse()
	bad := ""
	switch {
	case flag.NArg() > 0:
		bad = "no positional arguments"
	case *failRatio < 0 || *failRatio > 1:
		bad = "-fail-ratio must be in [0,1]"
	case *newConnPerCall:
		bad = "-new-conn-per-call is the incident, not the fix: use naive"
	case *maxInflight < 1 || *maxConns < 1 || *poolIdle < 1 || *poolMax < 1 || *poolWarm < 0 || *breakerFailures < 1:
		bad = "-max-inflight, -max-conns, -pool, -max-downstream-conns, -breaker-failures must be >= 1, -warm >= 0"
	case *downstreamTimeout <= 0 || *dialTimeout <= 0 || *healthInterval <= 0 || *dnsRefresh <= 0 || *redialEvery <= 0:
		bad = "-downstream-timeout, -dial-timeout, -health-interval, -dns-refresh, -redial-every must be > 0"
	case !ipPortOK(*resolverAddr) || !ipPortOK(*dnsListen):
		bad = "-resolver and -dns-listen are IP:PORT"
	}
	if bad != "" {
		fmt.Fprintf(os.Stderr, "hardened: %s\n", bad)
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(log.Ldate | log.Lmicroseconds)
	standbyWait() // returns at once unless this process is a standby, and then only to take over
	// The reserve fd is taken first, so it has one of the lowest numbers: RLIMIT_NOFILE bounds fd
	// numbers, not counts, and only a number under a lowered limit is of use to accept(2).
	reserve := openReserve()

	if *dnsListen != "" {
		startDNS(*dnsListen)
	}
	if *resolverAddr != "" {
		resolveCache.r = newResolver(*resolverAddr)
	}
	base := *downstream
	if base == "" || *downstreamListen != "" {
		addr := *downstreamListen
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		local := startDownstream(addr, *downstreamDelay)
		if base == "" {
			base = local
		}
	}
	ds := newDownstreamClient(base)
	br := &breaker{threshold: *breakerFailures, cooldown: *breakerCooldown}
	fails := failer{int64(*failRatio*1e6 + 0.5)}
	sem := make(chan struct{}, *maxInflight)
	var dsErrs rateLog

	if *poolWarm > 0 {
		n := *poolWarm
		if n > *poolIdle {
			n = *poolIdle
		}
		if got := ds.warm(base, n); got < n {
			log.Printf("downstream pool: %d of %d connections warmed (downstream not ready?)", got, n)
		}
	}

	// The dependency check behind /healthz: the last probe of the downstream's /healthz.
	var lastProbe atomic.Value // string: "" when good, else why not
	lastProbe.Store("")
	probe := func() {
		ctx, cancel := context.WithTimeout(context.Background(), *downstreamTimeout)
		defer cancel()
		if _, e := ds.get(ctx, base+"/healthz"); e != nil {
			lastProbe.Store(e.err.Error())
		} else {
			lastProbe.Store("")
		}
	}
	probe()
	go func() {
		for range time.Tick(*healthInterval) {
			probe()
		}
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("/api/report", func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		inflight.Add(1)
		defer inflight.Add(-1)
		if fails.fail(n) {
			errCount.Add(1)
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		default:
			shedCount.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		if !br.allow() {
			shedCount.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "downstream unavailable (circuit open)", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), *downstreamTimeout)
		defer cancel()
		body, e := ds.query(ctx)
		if e != nil {
			br.record(e.outcome)
			errCount.Add(1)
			dsErrs.printf("downstream: %v", e.err)
			http.Error(w, "downstream error", e.status)
			return
		}
		br.record(success)
		okCount.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		st, why := br.state(), lastProbe.Load().(string)
		w.Header().Set("Content-Type", "application/json")
		if st == stateNames[open] || why != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			msg, _ := json.Marshal(why)
			fmt.Fprintf(w, `{"status":"unhealthy","breaker":%q,"downstream":%s}`+"\n", st, msg)
			return
		}
		fmt.Fprintf(w, `{"status":"ok","breaker":%q,"downstream":"ok"}`+"\n", st)
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(statsJSON(br), '\n'))
	})

	inner, err := listenTCP("service", *listen)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	ln := &guardedListener{Listener: inner, max: int64(*maxConns), reserve: reserve}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: *readHeaderTimeout,
		ReadTimeout:       *readTimeout,
		WriteTimeout:      *writeTimeout,
		IdleTimeout:       *idleTimeout,
	}
	log.Printf("listening on %s (downstream %s, deadline %v, max in-flight %d, max conns %d)",
		inner.Addr(), base, *downstreamTimeout, *maxInflight, *maxConns)
	if *standby {
		startStandby()
	}

	done := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		standbyStop() // a graceful stop is not a death: the standby leaves too
		ctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Printf("shutdown: %v (in-flight requests cut)", err)
		}
		close(done)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("serve: %v", err)
	}
	<-done
	log.Printf("final stats %s", statsJSON(br))
}
