package caddymodule

import (
	"net/http"
	"strconv"
	"testing"
)

// The cold token cache (issue 17): every request carries a token the
// handler has not seen, as after a restart or with more users than the
// cache holds. Tokens are minted while the timer is stopped.

// BenchmarkServeHTTPColdToken is a new user with a fresh token on every
// request, identity from a trusted header as in bench/Caddyfile: the
// token's first check and the identity's first revocation read.
func BenchmarkServeHTTPColdToken(b *testing.B) {
	htColdBench(b, func(i int) string { return "user-" + strconv.Itoa(i) })
}

// BenchmarkServeHTTPColdTokenOneUser is a fresh token on every request
// for one identity: the token's first check without the revocation read.
func BenchmarkServeHTTPColdTokenOneUser(b *testing.B) {
	htColdBench(b, func(int) string { return "alice" })
}

func htColdBench(b *testing.B, user func(int) string) {
	e := htNew(b, nil, func(h *Handler) {
		h.Identity = "{http.request.header.X-User}"
		h.HeadersSetBy = "trusted_proxy"
	})
	br := e.browser("")
	i := 0
	htBench(b, e, func() *http.Request {
		u := user(i)
		i++
		token, err := e.h.tokens.Issue(u, "", e.clock.Now())
		if err != nil {
			b.Fatal(err)
		}
		r := br.request(http.MethodGet, "/settings", nil, "X-User: "+u)
		r.Header.Set("Cookie", "__Host-stepup="+token+"; app_session=abc; theme=dark")
		return r
	})
}
