package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// jeState is the JSON client's GET {prefix}/api/state.
func jeState(t *testing.T, b *htBrowser) map[string]any {
	t.Helper()
	w, body := b.get("/_stepup/api/state")
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil || w.Code != http.StatusOK {
		t.Fatalf("state: %d %q", w.Code, body)
	}
	return out
}

// jeEnrol runs a JSON client through enrolling typed, returning the
// verify answer.
func jeEnrol(t *testing.T, e *htEnv, b *htBrowser, typed, e164 string) (int, map[string]any) {
	t.Helper()
	csrf := jeState(t, b)["csrf"].(string)
	if status, out, _ := apCall(b, "/_stepup/api/enroll", csrf, `{"phone":"`+typed+`","r":"/settings"}`); status != http.StatusOK || out["status"] != "enrolling" {
		t.Fatalf("enroll %s: %d %v", typed, status, out)
	}
	if status, out, _ := apCall(b, "/_stepup/api/send", csrf, `{}`); status != http.StatusOK || out["status"] != "sent" {
		t.Fatalf("send to %s: %d %v", typed, status, out)
	}
	code, _ := enCodeTo(t, e, e164)
	status, out, _ := apCall(b, "/_stepup/api/verify", csrf, `{"code":"`+code+`"}`)
	return status, out
}

// jeWantNoEnrolment asserts that an answer started no enrolment: no enrol
// cookie and no code to the number.
func jeWantNoEnrolment(t *testing.T, e *htEnv, b *htBrowser, e164 string) {
	t.Helper()
	if b.cookie("__Host-stepup_enroll") != "" {
		t.Error("an enrol cookie was set")
	}
	if _, n := enCodeTo(t, e, e164); n != 0 {
		t.Errorf("%d messages went to %s", n, e164)
	}
}

func TestJSONEnrollment(t *testing.T) {
	t.Parallel()
	e := enEnv(t)

	t.Run("a JSON client enrols: the state says so, the number is read back, and the code binds it and steps up", func(t *testing.T) {
		b := e.browser("je-alice")
		if w, body := b.get("/settings", "Accept: application/json"); w.Code != http.StatusUnauthorized || !strings.Contains(body, `"enroll_url":"/_stepup/api/enroll"`) {
			t.Fatalf("the 401 of a handler that enrols does not name its enrol endpoint: %d %s", w.Code, body)
		}
		state := jeState(t, b)
		if state["enroll"] != true || state["page"] != "enroll" || state["csrf"] == "" {
			t.Fatalf("state of an identity without a number: %v", state)
		}
		csrf := state["csrf"].(string)
		status, out, _ := apCall(b, "/_stepup/api/enroll", csrf, `{"phone":"090-2222-3333","r":"/settings"}`)
		if status != http.StatusOK || out["status"] != "enrolling" || out["masked"] != "+81 90-****-3333" || out["formatted"] != "+81 90-2222-3333" || out["message"] == "" {
			t.Fatalf("enroll: %d %v", status, out)
		}
		if _, n := enCodeTo(t, e, "+819022223333"); n != 0 {
			t.Fatal("a code went out before the client asked for one")
		}
		if state := jeState(t, b); state["enrolling"] != true || state["formatted"] != "+81 90-2222-3333" || state["enroll"] != false {
			t.Fatalf("state while enrolling: %v", state)
		}
		if status, out, _ := apCall(b, "/_stepup/api/send", csrf, `{}`); status != http.StatusOK || out["masked"] != "+81 90-****-3333" {
			t.Fatalf("send: %d %v", status, out)
		}
		code, _ := enCodeTo(t, e, "+819022223333")
		status, out, hdr := apCall(b, "/_stepup/api/verify", csrf, `{"code":"`+code+`"}`)
		if status != http.StatusOK || out["status"] != "verified" || out["enrolled"] != true {
			t.Fatalf("verify: %d %v", status, out)
		}
		if !strings.Contains(strings.Join(hdr.Values("Set-Cookie"), "\n"), "__Host-stepup=") {
			t.Fatal("verify set no step-up cookie")
		}
		if bound, err := e.h.service.BoundPhone(context.Background(), "je-alice"); err != nil || bound.E164 != "+819022223333" {
			t.Fatalf("bound: %+v %v", bound, err)
		}
		if w, body := b.get("/settings", "Accept: application/json"); w.Code != http.StatusOK || body != "next" {
			t.Fatalf("the API call after enrolling: %d %q", w.Code, body)
		}
		if state := jeState(t, b); state["enroll"] != false || state["masked"] != "+81 90-****-3333" || state["can_change"] != true {
			t.Fatalf("state once enrolled: %v", state)
		}
	})
	t.Run("an enrolment without the CSRF header is refused and starts nothing", func(t *testing.T) {
		b := e.browser("je-nocsrf")
		jeState(t, b) // the nonce cookie, as a real client would have it
		if status, out, _ := apCall(b, "/_stepup/api/enroll", "", `{"phone":"090-3333-4444"}`); status != http.StatusForbidden || out["error"] != "csrf" {
			t.Fatalf("no CSRF header: %d %v", status, out)
		}
		jeWantNoEnrolment(t, e, b, "+819033334444")
	})
	t.Run("a 050 number is refused with phone_refused, as the form refuses it", func(t *testing.T) {
		b := e.browser("je-voip")
		csrf := jeState(t, b)["csrf"].(string)
		status, out, _ := apCall(b, "/_stepup/api/enroll", csrf, `{"phone":"050-1234-5678"}`)
		if status != http.StatusUnprocessableEntity || out["error"] != "phone_refused" || out["enroll"] != true {
			t.Fatalf("050: %d %v", status, out)
		}
		jeWantNoEnrolment(t, e, b, "+815012345678")
	})
	t.Run("a change of number without a fresh step-up on the old one is refused until the client steps up on it", func(t *testing.T) {
		b := e.browser("je-carol")
		if status, out := jeEnrol(t, e, b, "090-5555-1234", "+819055551234"); status != http.StatusOK {
			t.Fatalf("enrol: %d %v", status, out)
		}
		e.clock.Add(10 * changeFreshness)
		csrf := jeState(t, b)["csrf"].(string)
		status, out, _ := apCall(b, "/_stepup/api/enroll", csrf, `{"phone":"080-6666-1234"}`)
		if status != http.StatusForbidden || out["error"] != "change_needs_step_up" {
			t.Fatalf("a new number on a stale step-up: %d %v", status, out)
		}
		jeWantNoEnrolment(t, e, b, "+818066661234")

		// A step-up on the old number opens the change, and the old one is told.
		apCall(b, "/_stepup/api/send", csrf, `{}`)
		old, _ := enCodeTo(t, e, "+819055551234")
		if status, out, _ := apCall(b, "/_stepup/api/verify", csrf, `{"code":"`+old+`"}`); status != http.StatusOK || out["enrolled"] != nil {
			t.Fatalf("step-up on the old number: %d %v", status, out)
		}
		if status, out := jeEnrol(t, e, b, "080-6666-1234", "+818066661234"); status != http.StatusOK || out["enrolled"] != true {
			t.Fatalf("the new number after a fresh step-up: %d %v", status, out)
		}
		told := false
		for _, m := range e.messages() {
			told = told || (m.To == "+819055551234" && strings.Contains(m.Body, "was changed"))
		}
		if !told {
			t.Fatal("the old number was not told of the change")
		}
	})
	t.Run("a code sent to a pending number, entered without the enrol cookie, neither binds nor steps up", func(t *testing.T) {
		b := e.browser("je-dave")
		csrf := jeState(t, b)["csrf"].(string)
		apCall(b, "/_stepup/api/enroll", csrf, `{"phone":"090-7777-4321"}`)
		apCall(b, "/_stepup/api/send", csrf, `{}`)
		code, n := enCodeTo(t, e, "+819077774321")
		if n != 1 {
			t.Fatalf("%d codes to the pending number, want 1", n)
		}
		b.jar.SetCookies(htBase, []*http.Cookie{{Name: "__Host-stepup_enroll", Path: "/", Secure: true, MaxAge: -1}})
		status, out, _ := apCall(b, "/_stepup/api/verify", csrf, `{"code":"`+code+`"}`)
		raw, _ := json.Marshal(out)
		pnWantNothingGranted(t, e, b, "", status, string(raw), "")
	})
}
