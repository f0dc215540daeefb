package caddymodule

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// IssueFull is the send through a store that returns its whole result
// (the refused resend's challenge among it): the same store step as
// Issue, so it counts and fails as Issue does.
func (s *htStore) IssueFull(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return otp.IssueResult{}, htErrDown
	}
	return s.Store.(otp.ResultIssuer).IssueFull(ctx, req)
}

// KeepsHistoryInIssue is the wrapped store's.
func (s *htStore) KeepsHistoryInIssue() bool {
	ri, ok := s.Store.(otp.ResultIssuer)
	return ok && ri.KeepsHistoryInIssue()
}

// TestCooldownRefusalShowsTheCodePageFromTheSendsStep checks that a send
// the cooldown refuses answers the code page, with the masked number and
// the attempts left, from the challenge the refusing store step returned:
// one store call, no read of the challenge of its own.
func TestCooldownRefusalShowsTheCodePageFromTheSendsStep(t *testing.T) {
	e := htNew(t, nil, nil)
	b := e.browser("alice")
	b.send()
	before := e.store.calls.Load()
	w, body := b.postSend()
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("a send within the cooldown answered %d, want 429:\n%s", w.Code, body)
	}
	if !strings.Contains(body, `name="code"`) || !strings.Contains(body, "****") {
		t.Errorf("the refusal is not the code page with the masked number:\n%s", body)
	}
	if n := e.store.calls.Load() - before; n != 1 {
		t.Errorf("the refused send made %d store calls, want 1 (the send's step, no read of the challenge)", n)
	}
}
