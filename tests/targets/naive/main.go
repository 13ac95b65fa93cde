// naive: the report service as it was written before the incidents in shared/INCIDENTS.md. Every
// weakness here is deliberate and is what a drill is meant to catch:
//   - the HTTP server has no timeouts at all (no ReadHeaderTimeout: slow-header clients pin a goroutine
//     and an fd each, forever);
//   - the downstream call has no timeout and no deadline (a stalled database stalls every request, and
//     requests pile up without bound);
//   - by default every downstream call opens a new connection (a fresh Transport, keep-alive off), so
//     each request costs an fd and leaves an ephemeral port in TIME_WAIT;
//   - concurrency is unbounded; nothing is shed;
//   - /healthz is 200 whatever the database does;
//   - on fd exhaustion net/http's own accept loop logs "http: Accept error: ... accept4: too many open
//     files; retrying in ..." and retries, as in production;
//   - a downstream named by host name is resolved again for every new connection, and the dial has no
//     timeout: a DNS server that stops answering holds each request for the resolver's whole timeout.
//
// Standard library only.
package main

import (
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
	listen           = flag.String("listen", "127.0.0.1:8080", "address to serve on (port 0: any free port, printed at startup)")
	downstream       = flag.String("downstream", "", "base URL of the downstream (its /query is called), e.g. http://127.0.0.1:9090")
	downstreamListen = flag.String("downstream-listen", "", "run a downstream inside this process on this address (when -downstream is not given)")
	downstreamDelay  = flag.Duration("downstream-delay", 2*time.Millisecond, "service time of the in-process downstream")
	newConnPerCall   = flag.Bool("new-conn-per-call", true, "open a new downstream connection for every call (false: http.DefaultClient)")
	failRatio        = flag.Float64("fail-ratio", 0, "answer 500 to this fraction of /api/report, deterministically (0.1: requests 10, 20, 30, ...)")
	resolverAddr     = flag.String("resolver", "", "resolve the downstream's host name with Go's resolver against the DNS server at IP:PORT (resolv.conf still sets timeout and attempts)")
	dnsListen        = flag.String("dns-listen", "", "run a DNS responder inside this process on this IP:PORT (UDP and TCP): every A query is answered 127.0.0.1")
)

// The server's own account of what it did, read back by tests through GET /stats.
var requests, okCount, errCount, shedCount, inflight atomic.Int64

type statsDoc struct {
	Requests int64        `json:"requests"`
	OK       int64        `json:"ok"`
	Errors   int64        `json:"errors"`
	Shed     int64        `json:"shed"`
	Inflight int64        `json:"inflight"`
	DNS      *dnsStatsDoc `json:"dns,omitempty"` // with -dns-listen or -resolver
}

func statsJSON() []byte {
	b, _ := json.Marshal(statsDoc{requests.Load(), okCount.Load(), errCount.Load(), shedCount.Load(), inflight.Load(), dnsStats()})
	return b
}

// failer picks the requests that fail: request n fails when floor(n*ppm/1e6) steps up, so exactly
// round(n*ratio) of the first n fail, evenly spread, with integer arithmetic only.
type failer struct{ ppm int64 }

func (f failer) fail(n int64) bool {
	return f.ppm > 0 && n*f.ppm/1000000 != (n-1)*f.ppm/1000000
}

// errLog logs at most one line a second, saying how many it swallowed.
type errLog struct {
	mu      sync.Mutex
	last    time.Time
	dropped int
}

func (l *errLog) printf(format string, args ...any) {
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

var downstreamErrs errLog

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

func main() {
	flag.Parse()
	if flag.NArg() > 0 || *failRatio < 0 || *failRatio > 1 || !ipPortOK(*resolverAddr) || !ipPortOK(*dnsListen) {
		fmt.Fprintln(os.Stderr, "naive: bad arguments (-fail-ratio must be in [0,1], -resolver and -dns-listen are IP:PORT, no positional arguments)")
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(log.Ldate | log.Lmicroseconds)

	if *dnsListen != "" {
		startDNS(*dnsListen)
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
	queryURL := base + "/query"
	fails := failer{int64(*failRatio*1e6 + 0.5)}

	client := http.DefaultClient // no Timeout; two idle connections per host, the default
	var dialer *net.Dialer       // nil: net/http's own
	if *resolverAddr != "" {
		res := newResolver(*resolverAddr)
		dialer = &net.Dialer{Resolver: res} // no Timeout: a lookup or connect may take as long as it takes
		t := http.DefaultTransport.(*http.Transport).Clone()
		// what http.DefaultTransport dials with, through our resolver
		t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Resolver: res}).DialContext
		client = &http.Client{Transport: t}
	}
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
		c := client
		if *newConnPerCall {
			// "a client per call": the shape of the pool-less Redis client of incident 4
			tr := &http.Transport{DisableKeepAlives: true}
			if dialer != nil {
				tr.DialContext = dialer.DialContext // a lookup for every call
			}
			c = &http.Client{Transport: tr}
		}
		resp, err := c.Get(queryURL) // no timeout, no deadline
		if err != nil {
			errCount.Add(1)
			downstreamErrs.printf("downstream: %v", err)
			http.Error(w, "downstream error", http.StatusBadGateway)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			errCount.Add(1)
			downstreamErrs.printf("downstream: status %d, %v", resp.StatusCode, err)
			http.Error(w, "downstream error", http.StatusBadGateway)
			return
		}
		okCount.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n") // always green: "zero alerts, total outage"
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(statsJSON(), '\n'))
	})

	// What http.ListenAndServe does (a Server with no timeouts), split so the log line comes after the bind.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: mux}
	log.Printf("listening on %s (downstream %s)", ln.Addr(), base)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		log.Printf("final stats %s", statsJSON())
		os.Exit(0) // no graceful shutdown: in-flight requests are dropped
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("serve: %v", err)
	}
}
