package caddymodule

import (
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// htDiscard is a ResponseWriter that keeps nothing, so the benchmarks
// measure the handler and not a recorder.
type htDiscard struct{ h http.Header }

func (d htDiscard) Header() http.Header       { return d.h }
func (htDiscard) Write(p []byte) (int, error) { return len(p), nil }
func (htDiscard) WriteHeader(int)             {}

// htBench serves requests from fresh to the provisioned handler of e in a
// loop and checks that every request reached the next handler. As in Caddy,
// every request is new: its own headers (the handler adds X-Stepup-* ones)
// and its own replacer (the handler adds placeholders). They are made in
// batches while the timer is stopped, so only the handler is measured.
func htBench(b *testing.B, e *htEnv, fresh func() *http.Request) {
	var passed int
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		passed++
		return nil
	})
	w := htDiscard{h: http.Header{}}
	const batch = 1024
	reqs := make([]*http.Request, batch)
	i := batch
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if i == batch {
			b.StopTimer()
			for j := range reqs {
				reqs[j] = fresh()
			}
			i = 0
			b.StartTimer()
		}
		if err := e.h.ServeHTTP(w, reqs[i], next); err != nil {
			b.Fatal(err)
		}
		reqs[i] = nil
		i++
		n++
	}
	if passed != n {
		b.Fatalf("%d of %d requests reached the next handler", passed, n)
	}
}

// BenchmarkServeHTTPHotPath is a protected request with a valid step-up
// cookie: the cost every protected request pays.
func BenchmarkServeHTTPHotPath(b *testing.B) {
	e := htNew(b, nil, nil)
	token, err := e.h.tokens.Issue("alice", "", e.clock.Now())
	if err != nil {
		b.Fatal(err)
	}
	br := e.browser("alice")
	br.setCookie("__Host-stepup", token)
	// The first request reads the identity's revocation; the fake clock
	// stands still, so no later one does.
	htBench(b, e, func() *http.Request {
		r := br.request(http.MethodGet, "/settings", nil)
		r.Header.Set("Cookie", r.Header.Get("Cookie")+"; app_session=abc; theme=dark")
		return r
	})
	if n := e.store.calls.Load(); n != 1 {
		b.Fatalf("the hot path made %d store calls, want one read of the revocation", n)
	}
}

// BenchmarkServeHTTPHotPathHeaderIdentity is the hot path as bench/Caddyfile
// and the README set it up: the identity from a request header that a
// trusted proxy sets.
func BenchmarkServeHTTPHotPathHeaderIdentity(b *testing.B) {
	e := htNew(b, nil, func(h *Handler) {
		h.Identity = "{http.request.header.X-User}"
		h.HeadersSetBy = "trusted_proxy"
	})
	token, err := e.h.tokens.Issue("alice", "", e.clock.Now())
	if err != nil {
		b.Fatal(err)
	}
	br := e.browser("")
	br.setCookie("__Host-stepup", token)
	htBench(b, e, func() *http.Request {
		r := br.request(http.MethodGet, "/settings", nil, "X-User: alice")
		r.Header.Set("Cookie", r.Header.Get("Cookie")+"; app_session=abc; theme=dark")
		return r
	})
	if n := e.store.calls.Load(); n != 1 {
		b.Fatalf("the hot path made %d store calls, want one read of the revocation", n)
	}
}

// BenchmarkServeHTTPUnprotected is a request the protect matchers do not
// cover: the cost the plugin adds to the rest of the site.
func BenchmarkServeHTTPUnprotected(b *testing.B) {
	e := htNew(b, nil, nil)
	br := e.browser("alice")
	htBench(b, e, func() *http.Request { return br.request(http.MethodGet, "/public/style.css", nil) })
}
