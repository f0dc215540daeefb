package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest/observer"
)

// SECURITY.md rule 32: re-binding a phone number always needs a fresh
// step-up on the old number or an operator, including when today's policy
// refuses the old number.

const (
	r32Alice    = "r32-alice"
	r32NewTyped = "080-4444-5555"
	r32New      = "+818044445555"
)

// r32Setup is r32-alice, enrolled on the handler old (which shares its
// memory store with every handler loaded after it, as across a reload),
// seen from two browsers: alice, whose step-up from the enrolment is still
// fresh, and noStepUp, the same identity and session on a browser that
// loaded the step-up page before the reload but never stepped up.
type r32Setup struct {
	store           string
	old             *htEnv
	alice, noStepUp *htBrowser
}

// r32Env is a handler where users enrol their own numbers, on the memory
// store named store, with its policy changed by configure.
func r32Env(t *testing.T, clock *htClock, store string, configure func(*Handler)) *htEnv {
	t.Helper()
	return htNew(t, clock, func(h *Handler) {
		h.Phone, h.Enroll = "", true
		secManySends(h)
		h.StoreRaw = json.RawMessage(`{"type":"memory","name":"` + store + `"}`)
		if configure != nil {
			configure(h)
		}
	})
}

// r32Enrolled enrols typed (e164 once normalised) for r32-alice on a
// handler configured by before.
func r32Enrolled(t *testing.T, typed, e164 string, before func(*Handler)) *r32Setup {
	t.Helper()
	s := &r32Setup{store: fmt.Sprintf("r32-%d-%d", os.Getpid(), htSeq.Add(1))}
	s.old = r32Env(t, nil, s.store, before)
	s.alice = secBrowser(t, s.old, r32Alice)
	if resp, body := enEnrol(t, s.old, s.alice, typed, e164); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("enrol %s: %d\n%s", typed, resp.StatusCode, body)
	}
	s.noStepUp = secBrowser(t, s.old, r32Alice)
	s.noStepUp.csrf()
	return s
}

// reload loads the config again with its policy changed by after, on the
// same store, key and clock, and moves both browsers to the new handler.
func (s *r32Setup) reload(t *testing.T, after func(*Handler)) (*htEnv, *observer.ObservedLogs) {
	t.Helper()
	e := r32Env(t, s.old.clock, s.store, after)
	s.alice.e, s.noStepUp.e = e, e
	return e, htObserve(e)
}

// r32List writes a deny_numbers file.
func r32List(t *testing.T, numbers ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "numbers.txt")
	if err := os.WriteFile(path, []byte(strings.Join(numbers, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// r32NeedsReset is what the refusal says, by language: the number can't
// be changed here, and who can help.
var r32NeedsReset = map[string][]string{
	"en": {"can't be changed here", "Contact your administrator"},
	"ja": {"ここでは変更できません", "管理者にお問い合わせください"},
}

// r32WantRefused asserts that b, in lang, is refused the enrolment of a
// new number and the change page, with the page sending it to an operator,
// no step-up granted or changed, and no enrolment under way; and that a
// send afterwards is refused too. It returns how many refusals it made.
func r32WantRefused(t *testing.T, b *htBrowser, lang string) int {
	t.Helper()
	stepUp := b.cookie("__Host-stepup")
	resp, body := enPost(b, "/_stepup/enroll", url.Values{"phone": {r32NewTyped}, "lang": {lang}})
	r32WantNeedsReset(t, "enrolling a new number", resp.StatusCode, body, lang)
	if b.cookie("__Host-stepup_enroll") != "" {
		t.Fatal("the new number was kept for enrolment")
	}
	w, page := b.get("/_stepup/change?lang=" + lang)
	r32WantNeedsReset(t, "the change page", w.Code, html.UnescapeString(page), lang)
	if resp, body := enPost(b, "/_stepup/send", url.Values{}); resp.StatusCode == http.StatusSeeOther {
		t.Fatalf("a send after the refusal: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if got := b.cookie("__Host-stepup"); got != stepUp {
		t.Fatal("the refusal granted or changed a step-up")
	}
	return 2
}

func r32WantNeedsReset(t *testing.T, what string, status int, body, lang string) {
	t.Helper()
	if status != http.StatusForbidden {
		t.Fatalf("%s: status %d, want 403\n%s", what, status, body)
	}
	for _, text := range r32NeedsReset[lang] {
		if !strings.Contains(body, text) {
			t.Fatalf("%s: the page does not say %q\n%s", what, text, body)
		}
	}
}

// r32WantAudited asserts n audit events number_change_refused naming the
// policy's reason, with numbers only masked: no log entry holds any of
// digits (the national digits of the numbers involved).
func r32WantAudited(t *testing.T, logs *observer.ObservedLogs, n int, reason string, digits ...string) {
	t.Helper()
	events := htEvents(logs, "number_change_refused")
	if len(events) != n {
		t.Fatalf("%d number_change_refused events, want %d", len(events), n)
	}
	for _, ev := range events {
		m := ev.ContextMap()
		if m["identity"] != r32Alice || m["policy_reason"] != reason || !strings.Contains(fmt.Sprint(m["phone"]), "*") {
			t.Fatalf("audit event %v: want identity %s, policy_reason %s and the old number masked", m, r32Alice, reason)
		}
	}
	for _, ev := range logs.All() {
		entry := ev.Message + fmt.Sprint(ev.ContextMap())
		for _, d := range digits {
			if strings.Contains(entry, d) {
				t.Fatalf("a log entry holds a full number (%s): %s", d, entry)
			}
		}
	}
}

func r32Bound(t *testing.T, e *htEnv) string {
	t.Helper()
	p, err := e.h.service.BoundPhone(context.Background(), r32Alice)
	if err != nil {
		t.Fatal(err)
	}
	return p.E164
}

func TestSecurityRule32_ReBindingARefusedNumberNeedsAnOperator(t *testing.T) {
	t.Parallel()
	// Each case enrols a number under before, then reloads with after;
	// listed is a deny_numbers file that lists the old number.
	for _, tc := range []struct {
		name        string
		typed, e164 string
		digits      string
		reason      string
		before      func(h *Handler)
		after       func(h *Handler, listed string)
	}{
		{
			name: "an old number now in deny_numbers lets no new number be enrolled", typed: "090-2222-3333", e164: "+819022223333",
			digits: "9022223333", reason: "deny_list",
			after: func(h *Handler, listed string) { h.DenyNumbers = listed },
		},
		{
			name: "an old number whose country is no longer allowed lets no new number be enrolled", typed: "+1 415 555 2671", e164: "+14155552671",
			digits: "4155552671", reason: "country",
			before: func(h *Handler) { h.AllowCountries = []string{"JP", "US"} },
			after:  func(h *Handler, _ string) { h.AllowCountries = []string{"JP"} },
		},
		{
			name: "an old number whose type is no longer allowed lets no new number be enrolled", typed: "03-1234-5678", e164: "+81312345678",
			digits: "312345678", reason: "type",
			before: func(h *Handler) { h.AllowTypes = []string{"mobile", "fixed_line_or_mobile", "fixed_line"} },
			after:  func(*Handler, string) {},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := r32Enrolled(t, tc.typed, tc.e164, tc.before)
			sent := len(s.old.messages())
			listed := r32List(t, tc.e164)
			e, logs := s.reload(t, func(h *Handler) { tc.after(h, listed) })
			n := r32WantRefused(t, s.noStepUp, "ja")
			n += r32WantRefused(t, s.alice, "en")
			r32WantAudited(t, logs, n, tc.reason, tc.digits, "8044445555")
			if got := r32Bound(t, e); got != tc.e164 {
				t.Fatalf("bound number %s, want the old one still", got)
			}
			if got := len(s.old.messages()) + len(e.messages()); got != sent {
				t.Fatalf("%d messages were sent after the reload, want none: %v", got-sent, e.messages())
			}
		})
	}

	t.Run("a JSON client is refused with the error number_needs_reset", func(t *testing.T) {
		t.Parallel()
		s := r32Enrolled(t, "090-2222-3333", "+819022223333", nil)
		deny := r32List(t, "+819022223333")
		e, logs := s.reload(t, func(h *Handler) { h.DenyNumbers = deny })
		w, body := s.alice.do(http.MethodPost, "/_stepup/enroll", url.Values{"csrf": {s.alice.csrf()}, "r": {"/settings"}, "phone": {r32NewTyped}},
			"Accept: application/json")
		var got struct{ Error, Message string }
		if err := json.Unmarshal([]byte(body), &got); err != nil || w.Code != http.StatusForbidden || got.Error != "number_needs_reset" ||
			!strings.Contains(got.Message, "administrator") {
			t.Fatalf("JSON answer: %d %v\n%s", w.Code, err, body)
		}
		r32WantAudited(t, logs, 1, "deny_list", "9022223333", "8044445555")
		if len(e.messages()) != 0 {
			t.Fatalf("messages were sent: %v", e.messages())
		}
	})

	t.Run("a number being enrolled when the policy changed is not bound when its code comes back", func(t *testing.T) {
		t.Parallel()
		s := r32Enrolled(t, "090-2222-3333", "+819022223333", nil)
		if resp, body := enPost(s.alice, "/_stepup/enroll", url.Values{"phone": {r32NewTyped}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("enrol a new number on a fresh step-up, before the reload: %d\n%s", resp.StatusCode, body)
		}
		deny := r32List(t, "+819022223333")
		e, logs := s.reload(t, func(h *Handler) { h.DenyNumbers = deny })
		stepUp := s.alice.cookie("__Host-stepup")
		enPost(s.alice, "/_stepup/send", url.Values{})
		code, _ := enCodeTo(t, e, r32New)
		resp, body := enPost(s.alice, "/_stepup/verify", url.Values{"code": {code}})
		r32WantNeedsReset(t, "the code of the new number", resp.StatusCode, body, "en")
		if got := r32Bound(t, e); got != "+819022223333" {
			t.Fatalf("bound number %s, want the old one still", got)
		}
		if s.alice.cookie("__Host-stepup") != stepUp {
			t.Fatal("the refused binding granted a step-up")
		}
		r32WantAudited(t, logs, 1, "deny_list", "9022223333", "8044445555")
	})

	t.Run("after an operator's reset-number the user enrols a new number", func(t *testing.T) {
		t.Parallel()
		s := r32Enrolled(t, "090-2222-3333", "+819022223333", nil)
		deny := r32List(t, "+819022223333")
		e, _ := s.reload(t, func(h *Handler) { h.DenyNumbers = deny })
		if masked, err := e.h.service.ResetNumber(context.Background(), r32Alice); err != nil || masked != "+81 90-****-3333" {
			t.Fatalf("reset-number: %q %v", masked, err)
		}
		if _, body := s.noStepUp.get("/_stepup/?r=%2Fsettings"); !strings.Contains(body, `name="phone"`) {
			t.Fatalf("after the reset the page does not ask for a number:\n%s", body)
		}
		if resp, body := enEnrol(t, e, s.noStepUp, r32NewTyped, r32New); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("enrol after the reset: %d\n%s", resp.StatusCode, body)
		}
		if got := r32Bound(t, e); got != r32New {
			t.Fatalf("bound number %s, want the new one", got)
		}
	})

	t.Run("an allowed old number still changes on a fresh step-up, and is told", func(t *testing.T) {
		t.Parallel()
		s := r32Enrolled(t, "090-2222-3333", "+819022223333", nil)
		deny := r32List(t, "+819099998888")
		e, _ := s.reload(t, func(h *Handler) { h.DenyNumbers = deny })
		if resp, body := enEnrol(t, e, s.alice, r32NewTyped, r32New); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("change on a fresh step-up: %d\n%s", resp.StatusCode, body)
		}
		if got := r32Bound(t, e); got != r32New {
			t.Fatalf("bound number %s, want the new one", got)
		}
		var notices int
		for _, m := range e.messages() {
			if m.To == "+819022223333" && strings.Contains(m.Body, "was changed") && !secCodeRE.MatchString(m.Body) {
				notices++
			}
		}
		if notices != 1 {
			t.Fatalf("%d notices to the old number, want 1: %v", notices, e.messages())
		}
	})
}
