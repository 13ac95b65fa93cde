// Demo target for faultline drills: one Go HTTP service built twice, as "naive" (the service as it was before
// the incidents in shared/INCIDENTS.md) and "hardened" (as the survivors run it). Standard library only.
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

// defaultMode is set at link time: -ldflags "-X main.defaultMode=hardened".
var defaultMode = "naive"

var (
	mode              = flag.String("mode", defaultMode, "naive or hardened")
	listen            = flag.String("listen", "127.0.0.1:8080", "address to serve on")
	downstream        = flag.String("downstream", "", "URL of the downstream service (its /query is called)")
	downstreamListen  = flag.String("downstream-listen", "", "also run the downstream in this process on this address")
	downstreamDelay   = flag.Duration("downstream-delay", 2*time.Millisecond, "service time of the embedded downstream")
	failRatio         = flag.Float64("fail-ratio", 0, "answer 500 to this fraction of /api/report (every k-th request)")
	downstreamTimeout = flag.Duration("downstream-timeout", 200*time.Millisecond, "hardened: deadline on downstream calls")
	maxInflight       = flag.Int("max-inflight", 256, "hardened: requests served at once; more are shed with 503")
	maxConns          = flag.Int("max-conns", 1024, "hardened: client connections held at once")
	poolSize          = flag.Int("pool", 32, "hardened: downstream connections, opened at start and reused")
)

// Counters a test reads back as the server's own account of what it did.
var stats struct {
	requests, ok, errors, shed, inflight int64
}

func statsJSON() string {
	b, _ := json.Marshal(map[string]int64{
		"requests": atomic.LoadInt64(&stats.requests), "ok": atomic.LoadInt64(&stats.ok),
		"errors": atomic.LoadInt64(&stats.errors), "shed": atomic.LoadInt64(&stats.shed),
		"inflight": atomic.LoadInt64(&stats.inflight),
	})
	return string(b)
}

// ---- the downstream ("database") -----------------------------------------------------------

func serveDownstream(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(*downstreamDelay)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"rows":1}`)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("downstream: %v", err)
	}
	go http.Serve(ln, mux)
}

// ---- the service -----------------------------------------------------------------------------

type service struct {
	call     func(ctx context.Context) error // one downstream query
	failK    int64
	hardened bool
	sem      chan struct{}
	br       breaker
}

func (s *service) report(w http.ResponseWriter, r *http.Request) {
	n := atomic.AddInt64(&stats.requests, 1)
	atomic.AddInt64(&stats.inflight, 1)
	defer atomic.AddInt64(&stats.inflight, -1)
	if s.hardened {
		select {
		case s.sem <- struct{}{}:
			defer func() { <-s.sem }()
		default: // over capacity: a fast 503 beats a slow timeout
			atomic.AddInt64(&stats.shed, 1)
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		if !s.br.allow() {
			atomic.AddInt64(&stats.shed, 1)
			http.Error(w, "downstream unavailable (breaker open)", http.StatusServiceUnavailable)
			return
		}
	}
	if s.failK > 0 && n%s.failK == 0 {
		atomic.AddInt64(&stats.errors, 1)
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	if s.hardened {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *downstreamTimeout)
		defer cancel()
	}
	err := s.call(ctx)
	if s.hardened {
		s.br.record(err)
	}
	if err != nil {
		atomic.AddInt64(&stats.errors, 1)
		log.Printf("downstream: %v", err)
		http.Error(w, "downstream error", http.StatusBadGateway)
		return
	}
	atomic.AddInt64(&stats.ok, 1)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"report":"ok"}`)
}

func (s *service) healthz(w http.ResponseWriter, r *http.Request) {
	// naive: green whatever the dependency does ("zero alerts, total outage")
	if s.hardened && s.br.open() {
		http.Error(w, "downstream unavailable", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

// naiveCall dials a fresh connection per call with no deadline: ephemeral ports and fds go one per request.
func naiveCall(url string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("downstream status %d", resp.StatusCode)
		}
		return nil
	}
}

// pooledCall reuses a bounded pool of keep-alive connections, opened at start, with deadlines everywhere.
func pooledCall(url string) func(ctx context.Context) error {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 200 * time.Millisecond, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        *poolSize,
		MaxIdleConnsPerHost: *poolSize,
		MaxConnsPerHost:     *poolSize, // wait for a pooled connection rather than dial a new one
		IdleConnTimeout:     10 * time.Minute,
	}
	c := &http.Client{Transport: tr}
	call := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("downstream status %d", resp.StatusCode)
		}
		return nil
	}
	// warm the pool: all connections open together, so later calls never need a new fd or port
	var wg sync.WaitGroup
	for i := 0; i < *poolSize; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			call(ctx)
		}()
	}
	wg.Wait()
	return call
}

// breaker opens after 5 consecutive failures and lets one probe through after a second.
type breaker struct {
	mu       sync.Mutex
	failures int
	openedAt time.Time
}

func (b *breaker) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures >= 5 && time.Since(b.openedAt) < time.Second
}

func (b *breaker) allow() bool { return !b.open() }

func (b *breaker) record(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= 5 {
		b.openedAt = time.Now()
	}
}

// limitListener holds at most n connections and survives EMFILE: a reserve fd is given up to accept
// and close the connection at once (the client gets a clean close, not an unanswered SYN backlog).
type limitListener struct {
	net.Listener
	slots   chan struct{}
	reserve *os.File
	lastLog time.Time
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		l.slots <- struct{}{}
		c, err := l.Listener.Accept()
		if err == nil {
			return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
		}
		<-l.slots
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			if time.Since(l.lastLog) > time.Second {
				log.Printf("accept: %v: shedding new connections", err)
				l.lastLog = time.Now()
			}
			if l.reserve != nil {
				l.reserve.Close()
				if c2, err2 := l.Listener.Accept(); err2 == nil {
					c2.Close()
				}
				l.reserve, _ = os.Open(os.DevNull)
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		return nil, err
	}
}

func main() {
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	if *mode != "naive" && *mode != "hardened" {
		log.Fatalf("-mode must be naive or hardened")
	}
	if *downstreamListen != "" {
		serveDownstream(*downstreamListen)
		if *downstream == "" {
			*downstream = "http://" + *downstreamListen
		}
	}
	if *downstream == "" {
		log.Fatalf("give -downstream URL or -downstream-listen ADDR")
	}
	s := &service{hardened: *mode == "hardened", sem: make(chan struct{}, *maxInflight)}
	if *failRatio > 0 {
		s.failK = int64(1 / *failRatio + 0.5)
	}
	if s.hardened {
		s.call = pooledCall(*downstream + "/query")
	} else {
		s.call = naiveCall(*downstream + "/query")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/report", s.report)
	mux.HandleFunc("/healthz", s.healthz)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, statsJSON()+"\n") })

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: mux}
	if s.hardened {
		srv.ReadHeaderTimeout = 2 * time.Second
		srv.ReadTimeout = 5 * time.Second
		srv.WriteTimeout = 10 * time.Second
		srv.IdleTimeout = 30 * time.Second
		reserve, _ := os.Open(os.DevNull)
		ln = &limitListener{Listener: ln, slots: make(chan struct{}, *maxConns), reserve: reserve}
	}
	log.Printf("%s listening on %s, downstream %s", *mode, *listen, *downstream)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		// the final count goes to stderr, which faultline keeps in the report dir
		fmt.Fprintf(os.Stderr, "final stats %s\n", statsJSON())
		if s.hardened {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
		}
		os.Exit(0)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("serve: %v", err)
	}
}
