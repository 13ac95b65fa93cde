// downstream: the "database" the demo services depend on. GET /query answers 200 with a small JSON body
// after a fixed service time; faultline's faults (network delay on this port, SIGSTOP of this process,
// refused connects) are what make it slow or unreachable. Standard library only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	listen = flag.String("listen", "127.0.0.1:9090", "address to serve on (port 0: any free port, printed at startup)")
	delay  = flag.Duration("delay", 2*time.Millisecond, "service time of each /query")
)

var queries, inflight atomic.Int64

func query(w http.ResponseWriter, r *http.Request) {
	n := queries.Add(1)
	inflight.Add(1)
	defer inflight.Add(-1)
	if *delay > 0 {
		t := time.NewTimer(*delay)
		select {
		case <-t.C:
		case <-r.Context().Done(): // the caller gave up: stop holding the goroutine
			t.Stop()
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"query":%d,"rows":[{"id":1,"total":42}]}`+"\n", n)
}

func main() {
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "downstream: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(log.Ldate | log.Lmicroseconds)
	log.SetPrefix("downstream: ")

	// Thousands of concurrent callers (a naive service opens one connection per call) need more fds
	// than the usual soft limit of 1024: take what the hard limit allows.
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/query", query)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"queries":%d,"inflight":%d}`+"\n", queries.Load(), inflight.Load())
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	// A database keeps its client connections as long as the client wants: no idle timeout, so the
	// services' keep-alive pools are never cut from this side.
	srv := &http.Server{Handler: mux}
	log.Printf("listening on %s (service time %v)", ln.Addr(), *delay)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		log.Printf("final stats {\"queries\":%d}", queries.Load())
		os.Exit(0)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("serve: %v", err)
	}
	select {} // Shutdown in progress: the signal goroutine exits
}
