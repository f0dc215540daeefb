package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// The plugin writes its Set-Cookie lines itself (cookie_header.go): every
// one must be exactly what http.SetCookie writes for the same cookie, over
// HTTPS and plain-http loopback, for every lifetime and SameSite mode the
// plugin uses, and for values it never makes (those go through
// http.SetCookie).
func TestSetCookieLineIsNetHTTPs(t *testing.T) {
	h := &Handler{logger: zap.NewNop(), devCookieOnce: new(sync.Once)}
	values := []string{"", "abc", "AZaz09-_.", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", strings.Repeat("x", 600),
		"a b", "a,b", `a"b`, "a;b", `a\b`, "é", "a=b", "a\x00b", "a\x7fb", "+/="}
	ages := []time.Duration{0, time.Second, 90 * time.Second, 400 * 24 * time.Hour, -1, -time.Hour, 500 * time.Millisecond}
	modes := []http.SameSite{0, http.SameSiteDefaultMode, http.SameSiteLaxMode, http.SameSiteStrictMode, http.SameSiteNoneMode}
	for _, target := range []string{"https://example.com/x", "http://localhost/x"} {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		if strings.HasPrefix(target, "https") {
			r.Host = "example.com"
		}
		dev := devMode(r)
		for _, c := range []cookie{tokenCookie, csrfCookie, challengeCookie, deviceCookie} {
			for _, v := range values {
				for _, age := range ages {
					for _, mode := range modes {
						got := httptest.NewRecorder()
						h.setCookie(got, r, c, v, age, mode)
						name := c.secure
						if dev {
							name = c.dev
						}
						hc := &http.Cookie{Name: name, Value: v, Path: "/", HttpOnly: true, Secure: !dev, SameSite: mode}
						if age > 0 {
							hc.MaxAge = int(age / time.Second)
						} else if age < 0 {
							hc.MaxAge = -1
						}
						want := httptest.NewRecorder()
						http.SetCookie(want, hc)
						g, w := got.Header().Values("Set-Cookie"), want.Header().Values("Set-Cookie")
						if strings.Join(g, "\n") != strings.Join(w, "\n") || len(g) != len(w) {
							t.Fatalf("cookie %s=%q age %v SameSite %v dev %v: wrote %q, net/http writes %q", name, v, age, mode, dev, g, w)
						}
					}
				}
			}
		}
	}
}

// Values with a character net/http would quote or drop are not written by
// cookieLine.
func TestCookieLineLeavesOddValuesToNetHTTP(t *testing.T) {
	for _, v := range []string{"a b", "a,b", `a"b`, "a;b", `a\b`, "é", "a=b", "+/", "\x00"} {
		if line := cookieLine("n", v, 0, true, http.SameSiteLaxMode); line != "" {
			t.Errorf("cookieLine(%q) = %q, want \"\" (net/http's)", v, line)
		}
	}
	if line := cookieLine("n", "ok", 0, true, http.SameSiteLaxMode); line == "" {
		t.Error("cookieLine refused a plain value")
	}
}
