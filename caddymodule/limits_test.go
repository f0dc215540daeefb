package caddymodule

import (
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestDailyBudgetStopsSendsBeforeTheGateway: once the day's budget is
// spent every send is refused with 429 and a wait in minutes, and no
// message reaches the gateway.
func TestDailyBudgetStopsSendsBeforeTheGateway(t *testing.T) {
	t.Parallel()
	one := 1
	e := htNew(t, nil, func(h *Handler) { h.Limits = &LimitsConfig{DailyBudget: &one} })
	e.browser("budget-a").send()
	w, body := e.browser("budget-b").postSend()
	body = html.UnescapeString(body)
	if w.Code != http.StatusTooManyRequests || !strings.Contains(body, "Too many codes were requested. Try again in") {
		t.Fatalf("a send past the daily budget: %d\n%s", w.Code, body)
	}
	if w.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if n := len(e.messages()); n != 1 {
		t.Fatalf("%d messages reached the gateway, want 1", n)
	}
}

// TestPerPhoneLimit: five codes an hour to one number by default, whoever
// asks (here five identities sharing a number, as a pumping bot would).
func TestPerPhoneLimit(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	for i, user := range []string{"pp-1", "pp-2", "pp-3", "pp-4", "pp-5"} {
		if w, body := e.browser(user).postSend(); w.Code != http.StatusSeeOther {
			t.Fatalf("send %d: %d\n%s", i+1, w.Code, body)
		}
	}
	if w, _ := e.browser("pp-6").postSend(); w.Code != http.StatusTooManyRequests {
		t.Fatalf("a sixth code to the same number within the hour got %d, want 429", w.Code)
	}
}

// TestCooldownAndFailureBudgetOptions: resend_cooldown and failure_budget
// change the waits they name.
func TestCooldownAndFailureBudgetOptions(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, func(h *Handler) { h.ResendCooldown = caddyDuration(5); h.FailureBudget = 2 })
	b := e.browser("opt-alice")
	code := b.send()
	e.clock.Add(4 * second)
	if w, _ := b.postSend(); w.Code != http.StatusTooManyRequests {
		t.Fatalf("a resend within resend_cooldown 5s got %d", w.Code)
	}
	e.clock.Add(second)
	if w, _ := b.postSend(); w.Code != http.StatusSeeOther {
		t.Fatalf("a resend after 5s got %d", w.Code)
	}
	code = e.lastCode()
	b.verify(htWrong(code))
	if w, body := b.verify(htWrong(code)); w.Code != http.StatusTooManyRequests || !strings.Contains(body, "Too many wrong codes") {
		t.Fatalf("the second wrong code with failure_budget 2 should lock: %d", w.Code)
	}
}

const second = time.Second

func caddyDuration(seconds int) caddy.Duration {
	return caddy.Duration(time.Duration(seconds) * time.Second)
}
