package caddymodule

import (
	"net/http"
	"net/textproto"
	"testing"
)

// setHeaders sets what Header.Set would, and a later Add or Set of one
// field leaves the others as they were.
func TestSetHeadersIsHeaderSet(t *testing.T) {
	pairs := []string{"Cache-Control", "no-store", "X-Frame-Options", "DENY", "Content-Language", "ja"}
	got, want := http.Header{"Cache-Control": {"old"}}, http.Header{"Cache-Control": {"old"}}
	setHeaders(got, pairs...)
	for i := 0; i < len(pairs); i += 2 {
		if textproto.CanonicalMIMEHeaderKey(pairs[i]) != pairs[i] {
			t.Fatalf("%q is not canonical", pairs[i])
		}
		want.Set(pairs[i], pairs[i+1])
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if len(got[k]) != 1 || got[k][0] != v[0] {
			t.Fatalf("%s: got %q, want %q", k, got[k], v)
		}
	}
	got.Add("Cache-Control", "private")
	got.Set("Content-Language", "en")
	if got.Get("X-Frame-Options") != "DENY" || got.Get("Content-Language") != "en" || len(got.Values("Cache-Control")) != 2 {
		t.Fatalf("after Add and Set: %v", got)
	}
	if v := got.Values("X-Frame-Options"); len(v) != 1 {
		t.Fatalf("an Add to Cache-Control wrote into X-Frame-Options: %q", v)
	}
}
