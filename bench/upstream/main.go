// Command upstream is the application behind Caddy in the benchmarks of
// bench/run: it answers every request 200 with a two-byte body, and counts
// the requests it served so the harness can check which ones reached it
// (every hot-path request must, no redirect-path request may).
//
//	upstream -addr 127.0.0.1:0
//
// It prints "listening on <addr>" once it accepts connections. When the
// request carries X-Bench-Echo (the harness's sanity checks), it echoes the
// request's X-Stepup-Identity header back as X-Seen-Identity, so the harness
// can check what reached it. GET /__count
// answers the count so far (the harness asks it directly, never through
// Caddy). It listens on loopback only.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	ln, err := listenLoopback(*addr)
	if err != nil {
		log.Fatal(err)
	}
	var served atomic.Int64
	body := []byte("ok")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/__count" {
			w.Write([]byte(strconv.FormatInt(served.Load(), 10)))
			return
		}
		served.Add(1)
		if id := r.Header.Get("X-Stepup-Identity"); id != "" && r.Header.Get("X-Bench-Echo") != "" {
			// Lets the harness's sanity checks see the identity passed
			// on. Only they ask: a response header more costs Caddy
			// about 3% of a request, which must not weigh on the
			// configurations that pass the identity on.
			w.Header().Set("X-Seen-Identity", id)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", "2")
		w.Write(body)
	})
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(ln, h))
}

// listenLoopback refuses any address that is not a loopback one: the
// benchmarks must never put a listener on a real network.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("address %q: expected a loopback IP such as 127.0.0.1:0", addr)
	}
	return net.Listen("tcp", addr)
}
