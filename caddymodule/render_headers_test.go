package caddymodule

import (
	"net/http"
	"net/textproto"
	"testing"
)

// TestSetHeadersIsHeaderSet: setHeaders leaves what Header.Set would, for
// the names render and pageHeaders use (canonical, so Get finds them), and
// a value appended to one header does not show in the next, though the
// values share one allocation.
func TestSetHeadersIsHeaderSet(t *testing.T) {
	got, want := http.Header{"Referrer-Policy": {"old"}}, http.Header{"Referrer-Policy": {"old"}}
	kv := []string{"Cache-Control", "no-store", "Referrer-Policy", "no-referrer", "X-Content-Type-Options", "nosniff",
		"X-Frame-Options", "DENY", "Content-Security-Policy", "default-src 'none'", "Content-Type", "text/html; charset=utf-8",
		"Content-Language", "ja"}
	setHeaders(got, kv...)
	for i := 0; i < len(kv); i += 2 {
		if textproto.CanonicalMIMEHeaderKey(kv[i]) != kv[i] {
			t.Errorf("%q is not canonical: Header.Get would not find it", kv[i])
		}
		want.Set(kv[i], kv[i+1])
	}
	if len(got) != len(want) {
		t.Fatalf("setHeaders left %v, Header.Set %v", got, want)
	}
	for name := range want {
		if g, w := got.Values(name), want.Values(name); len(g) != 1 || g[0] != w[0] {
			t.Errorf("%s: setHeaders %q, Header.Set %q", name, g, w)
		}
	}
	got.Add("Cache-Control", "private")
	if v := got.Values("Referrer-Policy"); len(v) != 1 || v[0] != "no-referrer" {
		t.Errorf("adding to Cache-Control changed Referrer-Policy: %q", v)
	}
}
