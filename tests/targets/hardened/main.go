// hardened: the report service with the fixes the survivors in shared/INCIDENTS.md run. Same API and
// flags as naive, plus:
//   - server timeouts: ReadHeader 2 s, Read 5 s, Write 10 s, Idle 30 s (incidents 1, 2);
//   - a deadline on every downstream call (-downstream-timeout) over one shared, bounded keep-alive pool,
//     warmed at start, with a dial timeout (incidents 1, 4, 8);
//   - bounded in-flight requests: the excess gets an immediate 503 (incident 1);
//   - a circuit breaker on the downstream: after N consecutive failures, fast 503s for a cool-down, then
//     one probe request (incidents 6, 7, 12);
//   - /healthz that reports the dependency: 503 when the breaker is open or the last probe failed (6);
//   - a listener that caps connections (-max-conns) and survives EMFILE/ENFILE with a reserve fd,
//     logging once a second instead of spinning (incidents 2, 3).
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
	Requests  int64  `json:"requests"`
	OK        int64  `json:"ok"`
	Errors    int64  `json:"errors"`
	Shed      int64  `json:"shed"`
	Inflight  int64  `json:"inflight"`
	Conns     int64  `json:"conns"`
	ConnsShed int64  `json:"conns_shed"`
	Breaker   string `json:"breaker"`
}

func statsJSON(b *breaker) []byte {
	out, _ := json.Marshal(statsDoc{requests.Load(), okCount.Load(), errCount.Load(), shedCount.Load(),
		inflight.Load(), connsOpen.Load(), connsShed.Load(), b.state()})
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

// patientDial connects like net.Dialer, except that when this process has no fd or port to spare
// (EMFILE, ENFILE, EADDRNOTAVAIL, ...) it tries again every few milliseconds until the call's deadline
// instead of failing at once. Meanwhile the Transport hands the waiting call the first pooled
// connection another call gives back (its idle-connection wait queue is first come, first served),
// so under fd or port exhaustion the calls share the connections already open, in order.
func patientDial(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil || !localExhaustion(err) {
			return c, err
		}
		starvedDials.Add(1)
		defer starvedDials.Add(-1)
		for pause := time.Millisecond; ; {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, err // the shortage, not the deadline, is why this dial failed
			case <-t.C:
			}
			if pause < 8*time.Millisecond {
				pause *= 2
			}
			if c, err = d.DialContext(ctx, network, addr); err == nil || !localExhaustion(err) {
				return c, err
			}
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
		DialContext:         patientDial(dialer),
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
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("downstream listen: %v", err)
	}
	go http.Serve(acceptRetry{ln}, mux)
	log.Printf("in-process downstream on %s (service time %v)", ln.Addr(), delay)
	return "http://" + ln.Addr().String()
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
	case *downstreamTimeout <= 0 || *dialTimeout <= 0 || *healthInterval <= 0:
		bad = "-downstream-timeout, -dial-timeout, -health-interval must be > 0"
	}
	if bad != "" {
		fmt.Fprintf(os.Stderr, "hardened: %s\n", bad)
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(log.Ldate | log.Lmicroseconds)
	// The reserve fd is taken first, so it has one of the lowest numbers: RLIMIT_NOFILE bounds fd
	// numbers, not counts, and only a number under a lowered limit is of use to accept(2).
	reserve := openReserve()

	base := *downstream
	if base == "" {
		addr := *downstreamListen
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		base = startDownstream(addr, *downstreamDelay)
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
		body, e := ds.get(ctx, ds.queryURL)
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

	inner, err := net.Listen("tcp", *listen)
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

	done := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
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
