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

// TestCooldownRefusalShowsNoOtherSessionsChallenge: the challenge a send
// refused by the cooldown shows is the request's session's (SECURITY.md
// rule 6): a browser of the same identity in another app session that
// carries the first session's challenge cookie, and the first user's
// browser carrying another identity's, get the send page, never the code
// page of a challenge that is not theirs.
func TestCooldownRefusalShowsNoOtherSessionsChallenge(t *testing.T) {
	e := htNew(t, nil, func(h *Handler) { h.Session = "{http.request.cookie.app_session}" })
	first := e.browser("alice")
	first.setCookie("app_session", "session-one")
	first.send()
	challenge := first.cookie("__Host-stepup_challenge")
	if challenge == "" {
		t.Fatal("the send set no challenge cookie")
	}
	isCodePage := func(body string) bool { return strings.Contains(body, `name="code"`) }
	if _, body := first.postSend(); !isCodePage(body) {
		t.Fatalf("the refused resend in the challenge's own session is not the code page:\n%s", body)
	}

	other := e.browser("alice")
	other.setCookie("app_session", "session-two")
	other.setCookie("__Host-stepup_challenge", challenge)
	w, body := other.postSend()
	if w.Code != http.StatusTooManyRequests || isCodePage(body) {
		t.Errorf("a resend in another session naming the first's challenge answered %d, the code page %v:\n%s", w.Code, isCodePage(body), body)
	}

	bob := e.browser("bob")
	bob.setCookie("app_session", "session-one")
	bob.send()
	bob.setCookie("__Host-stepup_challenge", challenge)
	w, body = bob.postSend()
	if w.Code != http.StatusTooManyRequests || isCodePage(body) {
		t.Errorf("bob's resend naming alice's challenge answered %d, the code page %v:\n%s", w.Code, isCodePage(body), body)
	}
}
