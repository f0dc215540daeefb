package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/console"
)

// boRandom reads as an endless run of one byte: each jitter drawn from 0
// to 250 thousandths is that byte's value.
type boRandom byte

func (r boRandom) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// boWithRandom gives e's handler a service whose random source is random.
func boWithRandom(t *testing.T, e *htEnv, random io.Reader) {
	t.Helper()
	svc, err := otp.NewService(e.h.service.Config(), e.store, console.New(nil, e.outbox, e.clock), e.h.keys, e.clock, random)
	if err != nil {
		t.Fatal(err)
	}
	e.h.service = svc
}

// TestResendBackoffJitterIsTheWaitTheUserIsTold: with resend_backoff's
// jitter, the JSON API's retry_in and the page's countdown are the wait the
// send drew (30s + 10%), not the bare base, and the next wait doubles.
func TestResendBackoffJitterIsTheWaitTheUserIsTold(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, func(h *Handler) { h.ResendBackoff = &ResendBackoff{} })
	if cfg := e.h.service.Config(); cfg.CooldownJitter != DefaultResendJitter || cfg.CooldownBase != 30*time.Second {
		t.Fatalf("resend_backoff {}: jitter %g, base %s", cfg.CooldownJitter, cfg.CooldownBase)
	}
	boWithRandom(t, e, boRandom(100))
	b := e.browser("bo-alice")
	_, body := b.get("/_stepup/api/state")
	var state struct{ CSRF string }
	if err := json.Unmarshal([]byte(body), &state); err != nil {
		t.Fatal(err)
	}
	csrf := state.CSRF
	status, out, _ := apCall(b, "/_stepup/api/send", csrf, `{"r":"/settings"}`)
	if status != http.StatusOK || out["retry_in"].(float64) != 33 {
		t.Fatalf("send: %d %v; want retry_in 33 (30s and 10%% jitter)", status, out)
	}
	e.clock.Add(10 * time.Second)
	if _, page := b.get("/_stepup/?r=%2Fsettings"); !strings.Contains(page, `data-retry="23"`) || !strings.Contains(page, "a new code in 23 seconds") {
		t.Fatalf("the code page does not count down the 23s left:\n%s", page)
	}
	status, out, _ = apCall(b, "/_stepup/api/send", csrf, `{"r":"/settings"}`)
	if status != http.StatusTooManyRequests || out["retry_in"].(float64) != 23 {
		t.Fatalf("a resend 10s in: %d %v; want 429 and retry_in 23", status, out)
	}
	e.clock.Add(23 * time.Second)
	status, out, _ = apCall(b, "/_stepup/api/send", csrf, `{"r":"/settings"}`)
	if status != http.StatusOK || out["retry_in"].(float64) != 66 {
		t.Fatalf("the resend after the wait: %d %v; want retry_in 66 (60s and 10%%)", status, out)
	}
}

// TestResendBackoffOptions: resend_backoff sets the base, the cap and the
// jitter; resend_cooldown still sets the base; a wrong value is refused
// naming its line and what was expected.
func TestResendBackoffOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lines     []string
		base, max time.Duration
		jitter    float64
	}{
		{nil, 30 * time.Second, 10 * time.Minute, 0.25},
		{[]string{"resend_cooldown 20s"}, 20 * time.Second, 10 * time.Minute, 0.25},
		{[]string{"resend_backoff {", "base 1m", "max 1h", "jitter 0.5", "}"}, time.Minute, time.Hour, 0.5},
		{[]string{"resend_cooldown 20s", "resend_backoff {", "jitter 0", "}"}, 20 * time.Second, 10 * time.Minute, 0},
		{[]string{"resend_backoff"}, 30 * time.Second, 10 * time.Minute, 0.25},
	} {
		h, err := cfParse(cfWith(tc.lines...))
		if err != nil {
			t.Fatalf("%q: %v", tc.lines, err)
		}
		if cfg := h.otpConfig(); cfg.CooldownBase != tc.base || cfg.CooldownMax != tc.max || cfg.CooldownJitter != tc.jitter {
			t.Errorf("%q: %s..%s jitter %g, want %s..%s jitter %g", tc.lines, cfg.CooldownBase, cfg.CooldownMax, cfg.CooldownJitter, tc.base, tc.max, tc.jitter)
		}
	}
	for _, tc := range []struct {
		lines []string
		at    string
		words string
	}{
		{[]string{"resend_backoff {", "jitter 1.5", "}"}, "Testfile:5", "resend_backoff jitter 1.5: expected a share from 0 to 1, such as 0.25"},
		{[]string{"resend_backoff {", "jitter lots", "}"}, "Testfile:5", `resend_backoff jitter "lots": expected a share from 0 to 1`},
		{[]string{"resend_backoff {", "base 2m", "max 1m", "}"}, "Testfile:6", "resend_backoff max 1m: expected at least the first wait, 2m"},
		{[]string{"resend_backoff {", "max 48h", "}"}, "Testfile:5", "resend_backoff.max 48h: expected a duration such as 30s, more than 0 and at most 24h"},
		{[]string{"resend_cooldown 20s", "resend_backoff {", "base 1m", "}"}, "Testfile:6", "resend_backoff base and resend_cooldown: expected one of them"},
		{[]string{"resend_backoff {", "colour blue", "}"}, "Testfile:5", `unknown resend_backoff option "colour": expected base, max or jitter`},
	} {
		_, err := cfParse(cfWith(tc.lines...))
		if err == nil || !strings.Contains(err.Error(), tc.words) || !strings.HasSuffix(err.Error(), ", at "+tc.at) {
			t.Errorf("%q: %v; want %q at %s", tc.lines, err, tc.words, tc.at)
		}
	}
}

// TestReadmeResendBackoffExampleAdapts adapts the README's resend_backoff
// block inside a site, so the README can't show one that fails to load.
func TestReadmeResendBackoffExampleAdapts(t *testing.T) {
	t.Parallel()
	block := readmeCaddyfileBlock(t, func(b string) bool { return strings.HasPrefix(strings.TrimSpace(b), "resend_backoff {") })
	if block == "" {
		t.Fatal("the README has no caddyfile block starting with `resend_backoff {`")
	}
	indented := regexp.MustCompile("(?m)^").ReplaceAllString(strings.TrimSuffix(block, "\n"), "\t\t")
	site := "example.com {\n\tsms_stepup /settings* {\n\t\tidentity {http.auth.user.id}\n\t\tphone {http.request.header.X-Phone}\n" + indented + "\n\t}\n}\n"
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site), map[string]any{"filename": "README.md"})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("the README's resend_backoff does not adapt: %v %v\n%s", err, warnings, site)
	}
	if !strings.Contains(string(out), `"resend_backoff":{"base":30000000000,"jitter":0.25,"max":600000000000}`) {
		t.Fatalf("the adapted config lacks the backoff:\n%s", out)
	}
}
