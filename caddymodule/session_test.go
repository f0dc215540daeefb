package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestSessionCookieReadsTheCookieOrItsNumberedParts(t *testing.T) {
	t.Parallel()
	h := &Handler{IdentityOptions: IdentityOptions{SessionCookie: "_oauth2_proxy"}}
	h.provisionSession()
	var many []string
	for i := range maxSessionCookieParts + 1 {
		many = append(many, fmt.Sprintf("_oauth2_proxy_%d=p%d", i, i))
	}
	for _, tt := range []struct {
		name, cookies, want string
	}{
		{"the whole cookie is the session", "_oauth2_proxy=whole", "whole"},
		{"the whole cookie wins over parts", "_oauth2_proxy_0=a; _oauth2_proxy=whole; _oauth2_proxy_1=b", "whole"},
		{"the parts are joined in order whatever order they come in", "_oauth2_proxy_1=b; _oauth2_proxy_0=a", "ab"},
		{"the parts stop at the first gap", "_oauth2_proxy_0=a; _oauth2_proxy_1=b; _oauth2_proxy_3=d", "ab"},
		{"parts without the first are no session", "_oauth2_proxy_1=b; _oauth2_proxy_2=c", ""},
		{"a cookie whose name only starts with the name is not it", "_oauth2_proxy_csrf=x; _oauth2_proxyx=y", ""},
		{"at most 16 parts are joined", strings.Join(many, "; "), "p0p1p2p3p4p5p6p7p8p9p10p11p12p13p14p15"},
		{"no cookie is no session", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.cookies != "" {
				r.Header.Set("Cookie", tt.cookies)
			}
			got, ok := h.session(r, nil)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("session = %q, %t; want %q", got, ok, tt.want)
			}
		})
	}
}

// TestSessionMissingRefusesAndWarnsAtMostOnceAMinute: a configured session
// that comes out empty refuses every request (no pass with a valid step-up,
// no page, no code), and the warning with the likely cause comes once a
// minute of the handler's clock, not once a request.
func TestSessionMissingRefusesAndWarnsAtMostOnceAMinute(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, func(h *Handler) { h.Session = "{http.request.cookie.app_session}" })
	core, logs := observer.New(zap.WarnLevel)
	e.h.logger = zap.New(core)
	b := e.browser("alice")
	b.setCookie("app_session", "s-1")
	b.stepUp()
	b.wantPass("with the session")
	b.jar.SetCookies(htBase, []*http.Cookie{{Name: "app_session", Path: "/", MaxAge: -1}})

	warnings := func() int { return logs.FilterMessageSnippet("session came out empty").Len() }
	refused := func(what, target string) {
		t.Helper()
		before := e.next.Load()
		w, body := b.get(target)
		if w.Code != http.StatusUnauthorized || e.next.Load() != before || !strings.Contains(body, "Sign in again") {
			t.Fatalf("%s: %d, passed %t:\n%s", what, w.Code, e.next.Load() != before, body)
		}
	}
	refused("a protected page with a valid step-up but no session", "/settings")
	refused("the step-up page", "/_stepup/?r=%2Fsettings")
	w, body := b.postSend()
	if w.Code != http.StatusUnauthorized || len(e.messages()) != 1 {
		t.Fatalf("send without a session: %d, %d messages (1 from the step-up):\n%s", w.Code, len(e.messages()), body)
	}
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings after three refusals, want 1", n)
	}
	e.clock.Add(time.Minute - time.Second)
	refused("59 s later", "/settings")
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings within a minute, want 1", n)
	}
	e.clock.Add(2 * time.Second)
	refused("61 s later", "/settings")
	if n := warnings(); n != 2 {
		t.Fatalf("%d warnings after a minute, want 2", n)
	}
}

func TestSessionOptionsValidated(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		h    Handler
		want string
	}{
		{"session and session_cookie together", Handler{IdentityOptions: IdentityOptions{Session: "{http.request.cookie.s}", SessionCookie: "s"}}, "not both"},
		{"a session_cookie with a space", Handler{IdentityOptions: IdentityOptions{SessionCookie: "a b"}}, "expected a cookie name"},
		{"a session_cookie with a brace", Handler{IdentityOptions: IdentityOptions{SessionCookie: "{s}"}}, "expected a cookie name"},
	} {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if err := tt.h.validateSession(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("validateSession() = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
