package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestMethodOverrideIsMatchedAsTheClaimedMethod: with protect naming
// methods, a POST that claims DELETE through a method-override header or
// a _method query parameter, which ASP.NET, JAX-RS, Spring and Express
// upstreams act on as a DELETE, needs the step-up a DELETE needs (rule
// 28); what claims nothing protected still passes.
func TestMethodOverrideIsMatchedAsTheClaimedMethod(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, func(h *Handler) {
		h.ProtectRaw = caddyhttp.RawMatcherSets{{"path": json.RawMessage(`["/account*"]`), "method": json.RawMessage(`["DELETE","PUT"]`)}}
	})
	b := e.browser("alice")
	for _, tc := range []struct {
		name, method, target string
		headers              []string
		protected            bool
	}{
		{"a DELETE (control)", http.MethodDelete, "/account", nil, true},
		{"a plain POST (control)", http.MethodPost, "/account", nil, false},
		{"a POST with X-HTTP-Method-Override: DELETE", http.MethodPost, "/account", []string{"X-HTTP-Method-Override: DELETE"}, true},
		{"a POST with X-HTTP-Method: delete, in lower case", http.MethodPost, "/account", []string{"X-HTTP-Method: delete"}, true},
		{"a POST with X-Method-Override: PUT", http.MethodPost, "/account/email", []string{"X-Method-Override: PUT"}, true},
		{"a POST with X-HTTP-Method-Override: GET, DELETE", http.MethodPost, "/account", []string{"X-HTTP-Method-Override: GET, DELETE"}, true},
		{"a POST with ?_method=DELETE", http.MethodPost, "/account?_method=DELETE", nil, true},
		{"a POST with X_HTTP_METHOD_OVERRIDE: DELETE, as PHP reads it", http.MethodPost, "/account", []string{"X_HTTP_METHOD_OVERRIDE: DELETE"}, true},
		{"a POST with X.HTTP.Method: DELETE", http.MethodPost, "/account", []string{"X.HTTP.Method: DELETE"}, true},
		{"a POST with X-HTTP-Method-Overrides: DELETE, another name", http.MethodPost, "/account", []string{"X-HTTP-Method-Overrides: DELETE"}, false},
		{"a GET with ?_method=put", http.MethodGet, "/account?x=1&_method=put", nil, true},
		{"a POST with ?%5Fmethod=DELETE, the key encoded", http.MethodPost, "/account?%5Fmethod=DELETE", nil, true},
		{"a POST with ?_%6Dethod=DELETE", http.MethodPost, "/account?_%6Dethod=DELETE", nil, true},
		{"a POST that claims GET", http.MethodPost, "/account", []string{"X-HTTP-Method-Override: GET"}, false},
		{"a POST that claims DELETE elsewhere", http.MethodPost, "/other", []string{"X-HTTP-Method-Override: DELETE"}, false},
	} {
		before := e.next.Load()
		w, body := b.do(tc.method, tc.target, nil, tc.headers...)
		passed := e.next.Load() > before
		switch {
		case tc.protected && passed:
			t.Errorf("%s: reached the upstream without a step-up (status %d)", tc.name, w.Code)
		case !tc.protected && !passed:
			t.Errorf("%s: held for a step-up (status %d): %s", tc.name, w.Code, body)
		}
	}
}

// BenchmarkClaimedMethods is what the method-override check adds to a
// request that claims nothing and that protect did not match by Caddy's
// matchers (bench/notes-review-9.md).
func BenchmarkClaimedMethods(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "https://example.com/docs/page?lang=ja&theme=dark", nil)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Cookie", "app_session=abc")
	b.ReportAllocs()
	for b.Loop() {
		if claimedMethods(r) != nil {
			b.Fatal("a plain GET claims a method")
		}
	}
}
