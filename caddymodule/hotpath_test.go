package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// An identity or session that is one request header placeholder is read
// from the request's header directly (inputOf). It must be exactly what
// Caddy's placeholder gives: the field's values joined with ",", found
// whatever the case the option names it in, "" when it is absent.
func TestHotPathHeaderInputMatchesCaddysPlaceholder(t *testing.T) {
	for _, expr := range []string{"{http.request.header.X-User}", "{http.request.header.x-user}", "{http.request.header.X-USER}"} {
		in := inputOf(expr)
		if in.header != "X-User" {
			t.Fatalf("inputOf(%q).header = %q, want X-User", expr, in.header)
		}
		for _, values := range [][]string{nil, {"alice"}, {"alice", "mallory"}, {""}, {"a,b", " c "}} {
			r := httptest.NewRequest(http.MethodGet, "https://example.com/settings", nil)
			for _, v := range values {
				r.Header.Add("X-User", v)
			}
			repl := caddyhttp.NewTestReplacer(r)
			want := repl.ReplaceAll(expr, "")
			if got := in.resolve(r, repl); got != want {
				t.Errorf("%s with X-User %q: read %q, Caddy's placeholder gives %q", expr, values, got, want)
			}
		}
	}
}

// Only exactly one request header placeholder is read directly; anything
// else still goes through the replacer.
func TestHotPathInputOfOtherPlaceholders(t *testing.T) {
	for _, expr := range []string{"{http.auth.user.id}", "{http.request.header.}", "user-{http.request.header.X-User}", "{http.request.header.X-User}{http.request.header.X-Org}", "{http.request.cookie.sid}"} {
		if in := inputOf(expr); in.header != "" {
			t.Errorf("inputOf(%q) reads header %q directly", expr, in.header)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "https://example.com/settings", nil)
	r.Header.Set("X-User", "alice")
	repl := caddyhttp.NewTestReplacer(r)
	repl.Set("http.auth.user.id", "bob")
	for expr, want := range map[string]string{"{http.auth.user.id}": "bob", "user-{http.request.header.X-User}": "user-alice", "": ""} {
		in := inputOf(expr)
		if got := in.resolve(r, repl); got != want {
			t.Errorf("%q resolved to %q, want %q", expr, got, want)
		}
	}
}
