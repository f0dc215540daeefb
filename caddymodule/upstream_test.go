package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// htUpstream is what the next handler saw of one request: its headers and
// the step-up placeholders.
type htUpstream struct {
	reached      bool
	header       http.Header
	placeholders map[string]string
}

// upstream serves one request and records what the next handler saw.
func (b *htBrowser) upstream(target string, extra ...string) (*httptest.ResponseRecorder, htUpstream) {
	b.t.Helper()
	r := b.request(http.MethodGet, target, nil, extra...)
	var seen htUpstream
	next := caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		seen = htUpstream{reached: true, header: r.Header.Clone(), placeholders: map[string]string{}}
		for _, k := range []string{"identity", "verified_at", "auth_time", "token"} {
			v, ok := repl.GetString("http.sms_stepup." + k)
			if !ok {
				v = "<unset>"
			}
			seen.placeholders[k] = v
		}
		return nil
	})
	w := httptest.NewRecorder()
	if err := b.e.h.ServeHTTP(w, r, next); err != nil {
		b.t.Fatalf("GET %s: %v", target, err)
	}
	b.jar.SetCookies(htBase, w.Result().Cookies())
	return w, seen
}

// TestUpstreamHeaders: with upstream_headers the handler itself tells the
// upstream who stepped up and when, so no header_up is needed; by default
// it tells nothing; a client's own X-Stepup-* headers never get through
// (SECURITY.md rule 21).
func TestUpstreamHeaders(t *testing.T) {
	t.Parallel()
	forged := []string{"X-Stepup-Identity: mallory", "x-stepup-auth-time: 1", "X-Stepup-Token: forged", "X-Stepup-Other: x"}

	t.Run("a valid step-up sets X-Stepup-Identity with upstream_headers identity, and every placeholder", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, func(h *Handler) { h.UpstreamHeaders = []string{"identity"} })
		b := e.browser("alice")
		stepped := e.clock.Now()
		b.stepUp()
		token := b.cookie("__Host-stepup")
		e.clock.Add(time.Minute)
		_, up := b.upstream("/settings", forged...)
		if !up.reached {
			t.Fatal("a valid cookie did not reach the upstream")
		}
		if got := up.header["X-Stepup-Identity"]; len(got) != 1 || got[0] != "alice" {
			t.Errorf("upstream header X-Stepup-Identity = %q, want alice", got)
		}
		for k, v := range up.header {
			if len(k) >= 9 && k[:9] == "X-Stepup-" && k != "X-Stepup-Identity" {
				t.Errorf("upstream header %s = %q: only X-Stepup-Identity was asked for", k, v)
			}
		}
		wantPh := map[string]string{"identity": "alice", "verified_at": stepped.UTC().Format(time.RFC3339),
			"auth_time": strconv.FormatInt(stepped.Unix(), 10), "token": token}
		for k, v := range wantPh {
			if up.placeholders[k] != v {
				t.Errorf("placeholder http.sms_stepup.%s = %q, want %q", k, up.placeholders[k], v)
			}
		}
	})

	t.Run("upstream_headers chooses the headers", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, func(h *Handler) { h.UpstreamHeaders = []string{"verified_at", "auth_time", "token"} })
		b := e.browser("alice")
		stepped := e.clock.Now()
		b.stepUp()
		_, up := b.upstream("/settings", forged...)
		want := http.Header{
			"X-Stepup-Verified-At": {stepped.UTC().Format(time.RFC3339)},
			"X-Stepup-Auth-Time":   {strconv.FormatInt(stepped.Unix(), 10)},
			"X-Stepup-Token":       {b.cookie("__Host-stepup")},
		}
		for k, v := range up.header {
			if len(k) >= 9 && k[:9] == "X-Stepup-" && (len(v) != 1 || want.Get(k) != v[0]) {
				t.Errorf("upstream header %s = %q, want %q", k, v, want[k])
			}
		}
		for k := range want {
			if _, ok := up.header[k]; !ok {
				t.Errorf("upstream header %s missing", k)
			}
		}

		for _, none := range [][]string{nil, {"none"}} {
			e := htNew(t, nil, func(h *Handler) { h.UpstreamHeaders = none })
			b := e.browser("alice")
			b.stepUp()
			_, up = b.upstream("/settings", forged...)
			if !up.reached || up.placeholders["identity"] != "alice" {
				t.Fatalf("upstream_headers %q: reached %v, identity placeholder %q", none, up.reached, up.placeholders["identity"])
			}
			for k, v := range up.header {
				if len(k) >= 9 && k[:9] == "X-Stepup-" {
					t.Errorf("upstream_headers %q: upstream header %s = %q, want none (the default)", none, k, v)
				}
			}
		}
	})

	t.Run("without a step-up no X-Stepup header and empty placeholders reach the upstream", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, func(h *Handler) { h.UpstreamHeaders = []string{"identity", "verified_at", "auth_time", "token"} })
		b := e.browser("alice")
		b.stepUp()
		_, up := b.upstream("/public", forged...) // not protected
		if !up.reached {
			t.Fatal("an unprotected route did not reach the upstream")
		}
		for k, v := range up.header {
			if len(k) >= 9 && k[:9] == "X-Stepup-" {
				t.Errorf("unprotected route: upstream header %s = %q", k, v)
			}
		}
		for k, v := range up.placeholders {
			if v != "" {
				t.Errorf("unprotected route: placeholder http.sms_stepup.%s = %q, want empty (set, so header_up never sends its text)", k, v)
			}
		}
		// The same headers on a protected route and a forged cookie: a
		// step-up, not the upstream.
		b.setCookie("__Host-stepup", "forged")
		w, up := b.upstream("/settings", forged...)
		if up.reached || w.Code != http.StatusSeeOther {
			t.Fatalf("a forged cookie: %d, reached the upstream %v", w.Code, up.reached)
		}
	})

	t.Run("a two-placeholder identity still resolves", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, func(h *Handler) {
			h.Identity, h.UpstreamHeaders = "{http.auth.user.id}@{http.request.host}", []string{"identity"}
		})
		b := e.browser("alice")
		b.stepUp()
		_, up := b.upstream("/settings")
		if got := up.header.Get("X-Stepup-Identity"); got != "alice@example.com" {
			t.Fatalf("X-Stepup-Identity = %q, want alice@example.com", got)
		}
	})
}

func TestUpstreamHeadersValidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		values []string
		ok     bool
	}{
		{nil, true}, {[]string{"none"}, true}, {[]string{"identity", "token"}, true},
		{[]string{"phone"}, false}, {[]string{"none", "identity"}, false}, {[]string{""}, false},
	} {
		h := &Handler{IdentityOptions: IdentityOptions{Identity: "{http.auth.user.id}", Phone: htNumber}, ScopeOptions: ScopeOptions{PathPrefix: DefaultPathPrefix}, TokenOptions: TokenOptions{UpstreamHeaders: tc.values}}
		err := h.Validate()
		if tc.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "upstream_headers")) {
			t.Errorf("upstream_headers %q: error %v", tc.values, err)
		}
	}
}

func TestPlaceholderKey(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string]string{
		"{http.auth.user.id}":                     "http.auth.user.id",
		"{http.request.header.X-User}":            "http.request.header.X-User",
		"{http.auth.user.id}@{http.request.host}": "",
		"user-{http.auth.user.id}":                "",
		"{http.auth.user.id}-x":                   "",
		"\\{http.auth.user.id}":                   "",
		"{a\\}b}":                                 "",
		"{}":                                      "",
		"alice":                                   "",
		"":                                        "",
	} {
		if got := placeholderKey(expr); got != want {
			t.Errorf("placeholderKey(%q) = %q, want %q", expr, got, want)
		}
	}
}
