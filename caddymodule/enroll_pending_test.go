package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// A code sent to a number being enrolled proves only that the browser
// holds that number: it must bind it and step up together, or do nothing.

const (
	pnTyped    = "090-2222-3333"
	pnE164     = "+819022223333"
	pnNewTyped = "080-4444-5555"
	pnNew      = "+818044445555"
)

// pnSendToPending starts an enrolment of typed and sends a code to it,
// returning the code.
func pnSendToPending(t *testing.T, e *htEnv, b *htBrowser, typed, e164 string) string {
	t.Helper()
	if resp, body := enPost(b, "/_stepup/enroll", url.Values{"phone": {typed}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("enroll %s: %d\n%s", typed, resp.StatusCode, body)
	}
	if resp, body := enPost(b, "/_stepup/send", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("send to %s: %d\n%s", typed, resp.StatusCode, body)
	}
	code, _ := enCodeTo(t, e, e164)
	return code
}

// pnWantNothingGranted asserts that the verify answer granted no new
// step-up, and that the identity's bound number is still want ("" for
// none).
func pnWantNothingGranted(t *testing.T, e *htEnv, b *htBrowser, stepUp string, status int, body, want string) {
	t.Helper()
	if status == http.StatusSeeOther || status == http.StatusOK {
		t.Fatalf("the code of a number no longer being enrolled was taken: %d\n%s", status, body)
	}
	if got := b.cookie("__Host-stepup"); got != stepUp {
		t.Fatal("a step-up was granted from a code sent to a number that was not bound")
	}
	bound, err := e.h.service.BoundPhone(context.Background(), b.user)
	switch {
	case want == "" && !errors.Is(err, otp.ErrNoBoundPhone):
		t.Fatalf("a number was bound (%s, %v), want none", bound.E164, err)
	case want != "" && bound.E164 != want:
		t.Fatalf("bound number %s (%v), want %s still", bound.E164, err, want)
	}
}

func TestEnrollmentCodeOfAPendingNumberNeverStepsUpWithoutBindingIt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		cookie func(b *htBrowser)
	}{
		{"the enrol cookie dropped before the code is entered", func(b *htBrowser) {
			b.jar.SetCookies(htBase, []*http.Cookie{{Name: "__Host-stepup_enroll", Path: "/", Secure: true, MaxAge: -1}})
		}},
		{"the enrol cookie replaced by one that does not open", func(b *htBrowser) { b.setCookie("__Host-stepup_enroll", "bm90LXNlYWxlZA") }},
	} {
		t.Run("a first enrolment with "+tc.name+" binds nothing and grants no step-up", func(t *testing.T) {
			t.Parallel()
			e := enEnv(t)
			b := e.browser("pn-first")
			code := pnSendToPending(t, e, b, pnTyped, pnE164)
			tc.cookie(b)
			resp, body := enPost(b, "/_stepup/verify", url.Values{"code": {code}})
			pnWantNothingGranted(t, e, b, "", resp.StatusCode, body, "")
			b.wantStepUp("after the refused code")
		})
		t.Run("a change of number with "+tc.name+" keeps the old number and adds no step-up", func(t *testing.T) {
			t.Parallel()
			e := enEnv(t)
			b := e.browser("pn-change")
			if resp, body := enEnrol(t, e, b, pnTyped, pnE164); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("enrol: %d\n%s", resp.StatusCode, body)
			}
			stepUp := b.cookie("__Host-stepup")
			code := pnSendToPending(t, e, b, pnNewTyped, pnNew)
			tc.cookie(b)
			resp, body := enPost(b, "/_stepup/verify", url.Values{"code": {code}})
			pnWantNothingGranted(t, e, b, stepUp, resp.StatusCode, body, pnE164)
		})
	}

	t.Run("an enrol cookie for another number does not let the first number's code step up", func(t *testing.T) {
		t.Parallel()
		e := enEnv(t)
		b := e.browser("pn-swap")
		code := pnSendToPending(t, e, b, pnTyped, pnE164)
		challenge := b.cookie("__Host-stepup_challenge")
		if resp, body := enPost(b, "/_stepup/enroll", url.Values{"phone": {pnNewTyped}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("enroll another number: %d\n%s", resp.StatusCode, body)
		}
		b.setCookie("__Host-stepup_challenge", challenge)
		resp, body := enPost(b, "/_stepup/verify", url.Values{"code": {code}})
		pnWantNothingGranted(t, e, b, "", resp.StatusCode, body, "")
	})

	t.Run("a JSON client whose enrol cookie was dropped gets no step-up", func(t *testing.T) {
		t.Parallel()
		e := enEnv(t)
		b := e.browser("pn-json")
		code := pnSendToPending(t, e, b, pnTyped, pnE164)
		b.jar.SetCookies(htBase, []*http.Cookie{{Name: "__Host-stepup_enroll", Path: "/", Secure: true, MaxAge: -1}})
		status, out, _ := apCall(b, "/_stepup/api/verify", b.csrf(), `{"code":"`+code+`"}`)
		raw, _ := json.Marshal(out)
		if out["error"] != "no_challenge" {
			t.Fatalf("JSON answer %d %s, want the error no_challenge", status, raw)
		}
		pnWantNothingGranted(t, e, b, "", status, string(raw), "")
	})

	t.Run("with the enrol cookie kept, the same code binds the number and steps up", func(t *testing.T) {
		t.Parallel()
		e := enEnv(t)
		b := e.browser("pn-kept")
		code := pnSendToPending(t, e, b, pnTyped, pnE164)
		resp, body := enPost(b, "/_stepup/verify", url.Values{"code": {code}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/settings" {
			t.Fatalf("verify: %d\n%s", resp.StatusCode, body)
		}
		b.wantPass("after enrolling")
	})
}

// An enrolled number that today's policy refuses can get no code; the
// send page says only an operator's reset frees the identity, as the
// change page does, rather than the general "no number" message.
func TestEnrollmentSendPageForARefusedBoundNumberSaysItNeedsAReset(t *testing.T) {
	t.Parallel()
	s := r32Enrolled(t, pnTyped, pnE164, nil)
	deny := r32List(t, pnE164)
	e, _ := s.reload(t, func(h *Handler) { h.DenyNumbers = deny })

	t.Run("the send page, in English and Japanese, sends the user to an operator", func(t *testing.T) {
		for _, lang := range []string{"en", "ja"} {
			w, body := s.noStepUp.get("/_stepup/?r=%2Fsettings&lang=" + lang)
			r32WantNeedsReset(t, "the send page ("+lang+")", w.Code, html.UnescapeString(body), lang)
		}
	})
	t.Run("a send is refused the same way", func(t *testing.T) {
		resp, body := enPost(s.noStepUp, "/_stepup/send", url.Values{})
		r32WantNeedsReset(t, "a send", resp.StatusCode, body, "en")
	})
	t.Run("JSON clients get the error number_needs_reset from the state and send endpoints", func(t *testing.T) {
		w, body := s.noStepUp.get("/_stepup/api/state")
		var state map[string]any
		if err := json.Unmarshal([]byte(body), &state); err != nil || w.Code != http.StatusForbidden || state["error"] != "number_needs_reset" {
			t.Fatalf("state: %d %v\n%s", w.Code, err, body)
		}
		status, out, _ := apCall(s.noStepUp, "/_stepup/api/send", s.noStepUp.csrf(), `{}`)
		if status != http.StatusForbidden || out["error"] != "number_needs_reset" || !strings.Contains(out["message"].(string), "administrator") {
			t.Fatalf("send: %d %v", status, out)
		}
	})
	if n := len(e.messages()); n != 0 {
		t.Fatalf("%d messages sent to a refused number", n)
	}
}
