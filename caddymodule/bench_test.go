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

// htBench serves r to the provisioned handler of e in a loop and checks
// that every request reached the next handler.
func htBench(b *testing.B, e *htEnv, r *http.Request) {
	var passed int
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		passed++
		return nil
	})
	w := htDiscard{h: http.Header{}}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := e.h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
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
	r := br.request(http.MethodGet, "/settings", nil)
	r.Header.Set("Cookie", r.Header.Get("Cookie")+"; app_session=abc; theme=dark")
	htBench(b, e, r)
	if e.store.calls.Load() != 0 {
		b.Fatalf("the hot path made %d store calls", e.store.calls.Load())
	}
}

// BenchmarkServeHTTPUnprotected is a request the protect matchers do not
// cover: the cost the plugin adds to the rest of the site.
func BenchmarkServeHTTPUnprotected(b *testing.B) {
	e := htNew(b, nil, nil)
	r := e.browser("alice").request(http.MethodGet, "/public/style.css", nil)
	htBench(b, e, r)
}
