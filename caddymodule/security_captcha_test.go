package caddymodule

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSecurityRule34_CaptchaAnswerUsedOnceInItsSession: a CAPTCHA answer
// is taken once, and only from the identity and session its challenge was
// made for. A right answer replayed, another session's challenge with
// its right answer, and another identity's, are refused with no SMS; so
// is a right answer to a challenge a wrong answer used up.
func TestSecurityRule34_CaptchaAnswerUsedOnceInItsSession(t *testing.T) {
	t.Parallel()
	e := capNew(t, "always", func(h *Handler) { h.Session = "{http.request.cookie.app_session}" })
	browser := func(user, session string) *htBrowser {
		b := e.browser(user)
		b.setCookie("app_session", session)
		return b
	}
	a1 := browser("r33-alice", "session-one")
	a2 := browser("r33-alice", "session-two")
	bob := browser("r33-bob", "session-one")
	token := capPage(a1)
	answer := capPow(t, token)
	capPage(a2)
	capPage(bob)

	for _, tc := range []struct {
		who  string
		b    *htBrowser
		want string
	}{
		{"the same identity in another session", a2, "did not pass"},
		{"another identity", bob, "did not pass"},
	} {
		if w, body := capSend(tc.b, answer); w.Code != http.StatusForbidden || !strings.Contains(body, tc.want) {
			t.Errorf("%s with alice's first session's answer: %d, want 403 %q", tc.who, w.Code, tc.want)
		}
	}
	if w, body := capSend(a1, answer); w.Code != http.StatusSeeOther {
		t.Fatalf("the answer in its own session: %d\n%s", w.Code, body)
	}
	if w, body := capSend(a1, answer); w.Code != http.StatusForbidden || !strings.Contains(body, "already used") {
		t.Errorf("the answer again: %d, want 403 (used)", w.Code)
	}
	if w, _ := capSend(a2, answer); w.Code != http.StatusForbidden {
		t.Errorf("the used answer in another session: %d, want 403", w.Code)
	}

	fresh := capPage(a2)
	capSend(a2, url.Values{"captcha_challenge": {fresh}, "captcha_pow": {"not-a-solution"}})
	if w, _ := capSend(a2, capPow(t, fresh)); w.Code != http.StatusForbidden {
		t.Errorf("a right answer after a wrong one to the same challenge: %d, want 403", w.Code)
	}
	if n := len(e.messages()); n != 1 {
		t.Errorf("%d SMS went out, want only the one of the answer in its own session", n)
	}
}
