package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// cfPaths is a path matcher set, as a route's or protect's JSON.
func cfPaths(paths ...string) caddyhttp.RawMatcherSets {
	b, _ := json.Marshal(paths)
	return caddyhttp.RawMatcherSets{{"path": b}}
}

var payoutAction = otp.Action{"en": "change your payout account", "ja": "振込先の変更"}

// rtNew is the ht handler (protect /settings*) with a payout route of
// max_age 2m and an action, and a settings route of max_age 15m.
func rtNew(t *testing.T, configure func(*Handler)) *htEnv {
	t.Helper()
	return htNew(t, nil, func(h *Handler) {
		h.ServiceName = "Example Corp"
		h.Routes = []StepUpRoute{
			{MatchRaw: cfPaths("/account/payout*"), MaxAge: caddy.Duration(2 * time.Minute), Action: payoutAction},
			{MatchRaw: cfPaths("/settings*"), MaxAge: caddy.Duration(15 * time.Minute)},
		}
		if configure != nil {
			configure(h)
		}
	})
}

var rtH1 = regexp.MustCompile(`<h1>([^<]*)</h1>`)

func rtHeading(t *testing.T, body string) string {
	t.Helper()
	m := rtH1.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no <h1> in:\n%s", body)
	}
	return m[1]
}

// rtSend asks for a code for the return path ret in lang and returns the
// SMS it sent.
func rtSend(t *testing.T, b *htBrowser, ret, lang string, extra url.Values) string {
	t.Helper()
	before := len(b.e.messages())
	form := url.Values{"csrf": {b.csrf()}, "r": {ret}, "lang": {lang}}
	for k, v := range extra {
		form[k] = v
	}
	w, body := b.do(http.MethodPost, "/_stepup/send", form)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("send: status %d:\n%s", w.Code, body)
	}
	msgs := b.e.messages()
	if len(msgs) != before+1 {
		t.Fatalf("send wrote %d messages, want 1", len(msgs)-before)
	}
	return msgs[len(msgs)-1].Body
}

var rtDigits = regexp.MustCompile(`\d{6}`)

func TestRoutesNameTheActionOnThePages(t *testing.T) {
	t.Parallel()
	e := rtNew(t, nil)
	for _, tc := range []struct{ name, target, want string }{
		{"the send page of the payout route says what is confirmed", "/_stepup/?r=%2Faccount%2Fpayout%2Fedit", "Confirm it&#39;s you to change your payout account"},
		{"in Japanese too", "/_stepup/?r=%2Faccount%2Fpayout&lang=ja", "振込先の変更のためのご本人確認"},
		{"a route without an action keeps the plain heading", "/_stepup/?r=%2Fsettings", "Confirm it&#39;s you"},
		{"a return path no route matches keeps the plain heading", "/_stepup/?r=%2F", "Confirm it&#39;s you"},
		{"a return path that only a reading of it puts under the payout route names the payout action", "/_stepup/?r=%2Fx%2F..%3B%2Faccount%2Fpayout", "Confirm it&#39;s you to change your payout account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, body := e.browser("alice").get(tc.target)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d:\n%s", w.Code, body)
			}
			if got := rtHeading(t, body); got != tc.want {
				t.Errorf("heading %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("the code page after the send keeps the action", func(t *testing.T) {
		b := e.browser("bob")
		rtSend(t, b, "/account/payout", "en", nil)
		_, body := b.get("/_stepup/?r=%2Faccount%2Fpayout&m=sent")
		if !strings.Contains(body, `name="code"`) || rtHeading(t, body) != "Confirm it&#39;s you to change your payout account" {
			t.Errorf("code page heading %q", rtHeading(t, body))
		}
	})
}

func TestRoutesNameTheActionInTheSMS(t *testing.T) {
	t.Parallel()
	e := rtNew(t, nil)
	t.Run("the English SMS of the payout route names its action", func(t *testing.T) {
		sms := rtSend(t, e.browser("alice"), "/account/payout", "en", nil)
		want := "Example Corp: " + rtDigits.FindString(sms) + " is your code to change your payout account\nIt expires in 5 min. Never share it with anyone."
		if sms != want {
			t.Errorf("SMS %q, want %q", sms, want)
		}
	})
	t.Run("the Japanese SMS names it in Japanese", func(t *testing.T) {
		sms := rtSend(t, e.browser("bob"), "/account/payout", "ja", nil)
		if !strings.HasPrefix(sms, "Example Corp 振込先の変更の確認コード: ") {
			t.Errorf("SMS %q", sms)
		}
	})
	t.Run("a route without an action sends the plain SMS", func(t *testing.T) {
		sms := rtSend(t, e.browser("carol"), "/settings", "en", nil)
		if !strings.HasPrefix(sms, "Example Corp code: ") || strings.Contains(sms, "is your code to") {
			t.Errorf("SMS %q", sms)
		}
	})
	t.Run("an action field the client adds to the form is ignored", func(t *testing.T) {
		sms := rtSend(t, e.browser("dave"), "/account/payout", "en", url.Values{"action": {"view your dashboard"}, "Action": {"view your dashboard"}})
		if !strings.Contains(sms, "is your code to change your payout account") || strings.Contains(sms, "dashboard") {
			t.Errorf("SMS %q", sms)
		}
	})
	t.Run("a return path that only a reading puts under the payout route still names the payout action", func(t *testing.T) {
		sms := rtSend(t, e.browser("erin"), "/settings/..;/account/payout", "en", nil)
		if !strings.Contains(sms, "is your code to change your payout account") {
			t.Errorf("SMS %q", sms)
		}
	})
}

func TestRoutesFreshnessPerRoute(t *testing.T) {
	t.Parallel()
	t.Run("each route's max_age decides, and a route outside protect needs a step-up too", func(t *testing.T) {
		t.Parallel()
		e := rtNew(t, nil)
		b := e.browser("alice")
		if w, _ := b.get("/account/payout"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/_stepup/?r=%2Faccount%2Fpayout" {
			t.Fatalf("payout without a step-up: %d %q, want a 303 to the step-up page", w.Code, w.Header().Get("Location"))
		}
		b.stepUp()
		e.clock.Add(2*time.Minute - time.Second)
		rtWantPass(t, b, "/account/payout", "payout 1 s before its max_age")
		e.clock.Add(2 * time.Second)
		rtWantStepUp(t, b, "/account/payout", 120, "payout 1 s after its max_age")
		b.wantPass("settings, whose max_age is 15m, at 2m")
		e.clock.Add(13 * time.Minute)
		b.wantStepUp("settings 1 s after its max_age")
	})
	t.Run("a path that a reading puts under a stricter route gets the strictest max_age", func(t *testing.T) {
		t.Parallel()
		e := rtNew(t, nil)
		b := e.browser("alice")
		b.stepUp()
		e.clock.Add(2*time.Minute + time.Second)
		for _, p := range []string{"/settings/..;/account/payout", "/settings/..%2Faccount%2Fpayout", "/Account/Payout", "/settings/..%5Caccount/payout"} {
			rtWantStepUp(t, b, p, 120, p)
		}
		b.wantPass("plain /settings")
	})
	t.Run("the handler's own max_age still holds where protect matches: a route can't loosen it", func(t *testing.T) {
		t.Parallel()
		e := rtNew(t, func(h *Handler) { h.MaxAge = caddy.Duration(5 * time.Minute) })
		b := e.browser("alice")
		b.stepUp()
		e.clock.Add(5*time.Minute + time.Second)
		b.wantStepUp("settings (route max_age 15m) after the handler's 5m")
	})
	t.Run("of overlapping routes the strictest decides and names the action, whatever their order", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, func(h *Handler) {
			h.Routes = []StepUpRoute{
				{MatchRaw: cfPaths("/account*"), MaxAge: caddy.Duration(10 * time.Minute), Action: otp.Action{"en": "change your account", "ja": "アカウントの変更"}},
				{MatchRaw: cfPaths("/account/payout*"), MaxAge: caddy.Duration(2 * time.Minute), Action: payoutAction},
			}
		})
		b := e.browser("alice")
		_, body := b.get("/_stepup/?r=%2Faccount%2Fpayout")
		if got := rtHeading(t, body); got != "Confirm it&#39;s you to change your payout account" {
			t.Errorf("heading %q", got)
		}
		_, body = b.get("/_stepup/?r=%2Faccount%2Fprofile")
		if got := rtHeading(t, body); got != "Confirm it&#39;s you to change your account" {
			t.Errorf("heading %q", got)
		}
		b.stepUp()
		e.clock.Add(2*time.Minute + time.Second)
		rtWantStepUp(t, b, "/account/payout", 120, "payout after 2m")
		rtWantPass(t, b, "/account/profile", "profile at 2m")
	})
}

func rtWantPass(t *testing.T, b *htBrowser, target, what string) {
	t.Helper()
	before := b.e.next.Load()
	w, body := b.get(target)
	if w.Code != http.StatusOK || body != "next" || b.e.next.Load() != before+1 {
		t.Fatalf("%s: %s answered %d %q, want to pass", what, target, w.Code, body)
	}
}

// rtWantStepUp asserts that target needs a step-up: a browser is sent to
// the page, a JSON client gets 401 with maxAge.
func rtWantStepUp(t *testing.T, b *htBrowser, target string, maxAge int, what string) {
	t.Helper()
	before := b.e.next.Load()
	w, _ := b.get(target)
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/_stepup/?r=") {
		t.Fatalf("%s: %s answered %d (Location %q), want a 303 to the step-up page", what, target, w.Code, w.Header().Get("Location"))
	}
	w, _ = b.get(target, "Accept: application/json")
	if wa := w.Header().Get("WWW-Authenticate"); w.Code != http.StatusUnauthorized || !strings.Contains(wa, `max_age="`+strconv.Itoa(maxAge)+`"`) {
		t.Fatalf("%s: JSON %s answered %d, WWW-Authenticate %q; want 401 with max_age=%d", what, target, w.Code, wa, maxAge)
	}
	if b.e.next.Load() != before {
		t.Fatalf("%s: %s reached the next handler", what, target)
	}
}
