package caddymodule

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var enCode = regexp.MustCompile(`code: (\d{6})`)

// enEnv is a handler whose users enrol their own numbers.
func enEnv(t *testing.T) *htEnv {
	return htNew(t, nil, func(h *Handler) { h.Phone, h.Enroll = "", true })
}

// enCodeTo returns the last code sent to e164 and how many messages it got.
func enCodeTo(t *testing.T, e *htEnv, e164 string) (string, int) {
	t.Helper()
	code, n := "", 0
	for _, m := range e.messages() {
		if m.To == e164 {
			n++
			if c := enCode.FindStringSubmatch(m.Body); c != nil {
				code = c[1]
			}
		}
	}
	return code, n
}

func enPost(b *htBrowser, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	form.Set("csrf", b.csrf())
	form.Set("r", "/settings")
	w, body := b.do(http.MethodPost, path, form)
	return w.Result(), html.UnescapeString(body)
}

// enEnrol walks a browser through enrolling number (typed as typed).
func enEnrol(t *testing.T, e *htEnv, b *htBrowser, typed, e164 string) (*http.Response, string) {
	t.Helper()
	if resp, body := enPost(b, "/_stepup/enroll", url.Values{"phone": {typed}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("enroll %s: %d\n%s", typed, resp.StatusCode, body)
	}
	if resp, body := enPost(b, "/_stepup/send", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("send to %s: %d\n%s", typed, resp.StatusCode, body)
	}
	code, _ := enCodeTo(t, e, e164)
	return enPost(b, "/_stepup/verify", url.Values{"code": {code}})
}

func TestEnrollment(t *testing.T) {
	t.Parallel()
	e := enEnv(t)
	alice := e.browser("en-alice")

	t.Run("an identity without a number is asked for one, which is read back in full before a code goes to it", func(t *testing.T) {
		w, body := alice.get("/_stepup/?r=%2Fsettings")
		if w.Code != http.StatusOK || !strings.Contains(body, `name="phone"`) || !strings.Contains(body, `autocomplete="tel"`) {
			t.Fatalf("enroll page: %d\n%s", w.Code, body)
		}
		if resp, body := enPost(alice, "/_stepup/enroll", url.Values{"phone": {"090-2222-3333"}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("enroll: %d\n%s", resp.StatusCode, body)
		}
		w, body = alice.get("/_stepup/?r=%2Fsettings")
		body = html.UnescapeString(body)
		if !strings.Contains(body, "+81 90-2222-3333") || !strings.Contains(body, "Check it is yours") {
			t.Fatalf("the number is not read back: %d %v\n%s", w.Code, w.Header(), body)
		}
		if _, n := enCodeTo(t, e, "+819022223333"); n != 0 {
			t.Fatal("a code went out before the person confirmed the number")
		}
	})
	t.Run("the code sent to the new number binds it and steps up", func(t *testing.T) {
		enPost(alice, "/_stepup/send", url.Values{})
		code, _ := enCodeTo(t, e, "+819022223333")
		resp, body := enPost(alice, "/_stepup/verify", url.Values{"code": {code}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/settings" {
			t.Fatalf("verify: %d\n%s", resp.StatusCode, body)
		}
		alice.wantPass("after enrolling")
	})
	t.Run("a later step-up uses the enrolled number without asking", func(t *testing.T) {
		again := e.browser("en-alice")
		_, body := again.get("/_stepup/?r=%2Fsettings")
		body = html.UnescapeString(body)
		if strings.Contains(body, `name="phone"`) || !strings.Contains(body, "+81 90-****-3333") {
			t.Fatalf("the send page should show the enrolled number, masked:\n%s", body)
		}
		_, before := enCodeTo(t, e, "+819022223333")
		if w, body := again.postSend(); w.Code != http.StatusSeeOther {
			t.Fatalf("send: %d\n%s", w.Code, body)
		}
		if _, after := enCodeTo(t, e, "+819022223333"); after != before+1 {
			t.Fatal("the code did not go to the enrolled number")
		}
	})
	t.Run("an IP phone number is refused in words that send the person to their mobile", func(t *testing.T) {
		bob := e.browser("en-bob")
		resp, body := enPost(bob, "/_stepup/enroll", url.Values{"phone": {"050-1234-5678"}})
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Use your own mobile phone number") {
			t.Fatalf("050 number: %d\n%s", resp.StatusCode, body)
		}
		if bob.cookie("__Host-stepup_enroll") != "" {
			t.Fatal("a refused number was kept for enrollment")
		}
	})
	t.Run("a number serving another identity is refused the same way, and no step-up is granted", func(t *testing.T) {
		mallory := e.browser("en-mallory")
		resp, body := enEnrol(t, e, mallory, "+81 90 2222 3333", "+819022223333")
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Use your own mobile phone number") {
			t.Fatalf("a taken number: %d\n%s", resp.StatusCode, body)
		}
		if mallory.cookie("__Host-stepup") != "" {
			t.Fatal("a step-up cookie was set although the number could not be bound")
		}
		if _, body := mallory.get("/_stepup/?r=%2Fsettings"); !strings.Contains(body, `name="phone"`) {
			t.Fatal("the identity should still have no number")
		}
	})
	t.Run("changing the number needs a fresh step-up on the old one, and the old one is told", func(t *testing.T) {
		e.clock.Add(10 * changeFreshness)
		w, _ := alice.get("/_stepup/change")
		if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/_stepup/?r=%2F_stepup%2Fchange") {
			t.Fatalf("change without a fresh step-up: %d %q", w.Code, w.Header().Get("Location"))
		}
		if resp, _ := enPost(alice, "/_stepup/enroll", url.Values{"phone": {"080-4444-5555"}}); resp.StatusCode != http.StatusSeeOther ||
			!strings.Contains(resp.Header.Get("Location"), "change") {
			t.Fatalf("a new number without a fresh step-up should be sent to step up first: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// Step up on the old number.
		enPost(alice, "/_stepup/send", url.Values{})
		old, _ := enCodeTo(t, e, "+819022223333")
		if resp, _ := enPost(alice, "/_stepup/verify", url.Values{"code": {old}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("step-up on the old number: %d", resp.StatusCode)
		}
		if w, body := alice.get("/_stepup/change"); w.Code != http.StatusOK || !strings.Contains(body, "Enter your new mobile number") {
			t.Fatalf("change page after a fresh step-up: %d\n%s", w.Code, body)
		}
		e.clock.Add(changeFreshness / 2)
		resp, body := enEnrol(t, e, alice, "080-4444-5555", "+818044445555")
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("binding the new number: %d\n%s", resp.StatusCode, body)
		}
		var notice string
		for _, m := range e.messages() {
			if m.To == "+819022223333" && strings.Contains(m.Body, "was changed") {
				notice = m.Body
			}
		}
		if notice == "" || enCode.MatchString(notice) {
			t.Fatalf("the old number got no notice (or one with a code): %q", notice)
		}
		_, body = e.browser("en-alice").get("/_stepup/?r=%2Fsettings")
		body = html.UnescapeString(body)
		if !strings.Contains(body, "+81 80-****-5555") {
			t.Fatalf("later step-ups should use the new number:\n%s", body)
		}
	})
}

// Changing the number is the most sensitive thing the plugin guards: a
// revoked step-up must not open it, even within the hot path's revocation
// refresh interval, and a store that can't say refuses.
func TestChangeNumberRefusesARevokedStepUp(t *testing.T) {
	t.Parallel()
	e := enEnv(t)
	carol := e.browser("en-carol")
	if resp, body := enEnrol(t, e, carol, "090-7777-1234", "+819077771234"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("enrol: %d\n%s", resp.StatusCode, body)
	}
	if w, body := carol.get("/_stepup/change"); w.Code != http.StatusOK || !strings.Contains(body, "Enter your new mobile number") {
		t.Fatalf("change page right after the step-up: %d\n%s", w.Code, body)
	}

	e.clock.Add(time.Second) // the revocation comes after the step-up
	e.revokeOnStore("en-carol")
	w, _ := carol.get("/_stepup/change")
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/_stepup/?r=%2F_stepup%2Fchange") {
		t.Fatalf("change page with a revoked step-up, within revocation_refresh: %d %q; want a redirect to step up", w.Code, w.Header().Get("Location"))
	}
	if resp, _ := enPost(carol, "/_stepup/enroll", url.Values{"phone": {"080-4444-9999"}}); resp.StatusCode != http.StatusSeeOther ||
		!strings.Contains(resp.Header.Get("Location"), "change") {
		t.Fatalf("a new number on a revoked step-up: %d %q; want sent to step up first", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A step-up after the revocation opens it again.
	e.clock.Add(time.Second)
	enPost(carol, "/_stepup/send", url.Values{})
	code, _ := enCodeTo(t, e, "+819077771234")
	if resp, _ := enPost(carol, "/_stepup/verify", url.Values{"code": {code}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("step-up after the revocation: %d", resp.StatusCode)
	}
	if w, _ := carol.get("/_stepup/change"); w.Code != http.StatusOK {
		t.Fatalf("change page after a new step-up: %d", w.Code)
	}
}
