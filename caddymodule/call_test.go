package caddymodule

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// callEnv is a flow environment wired as Caddy wires it: the service sends
// through the latency-measuring wrapper around the configured gateway, the
// console, which cannot place calls. An identity may have two codes an
// hour, so a send counted by mistake shows.
func callEnv(t *testing.T) *htEnv {
	t.Helper()
	two := 2
	e := htNew(t, nil, func(h *Handler) { h.Limits = &LimitsConfig{Identity: &two} })
	svc, err := e.h.newService(e.h.service.Config(), e.store)
	if err != nil {
		t.Fatal(err)
	}
	e.h.service = svc
	return e
}

func TestCallWhereTheGatewayCannotCall(t *testing.T) {
	t.Parallel()
	e := callEnv(t)
	b := e.browser("carl")
	code := b.send()
	// Past the resend cooldown: a call now would be let through to the
	// store and the gateway.
	e.clock.Add(time.Minute)
	before, err := e.h.service.Identity(t.Context(), "carl")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the form post is refused on the code page, which offers no call", func(t *testing.T) {
		w, body := b.do(http.MethodPost, "/_stepup/call", url.Values{"csrf": {b.csrf()}, "r": {"/settings"}})
		htWant(t, "call", w, body, http.StatusConflict, "Codes can&#39;t be read out by phone here")
		if !strings.Contains(body, `autocomplete="one-time-code"`) || strings.Contains(body, `action="/_stepup/call"`) {
			t.Fatalf("want the code page without a call button:\n%s", body)
		}
	})
	t.Run("the JSON API refuses it with a stable error word", func(t *testing.T) {
		status, out, _ := apCall(b, "/_stepup/api/call", b.csrf(), `{"r":"/settings"}`)
		if status != http.StatusConflict || out["error"] != "call_unavailable" || out["can_call"] != false {
			t.Fatalf("API call: %d %v", status, out)
		}
	})
	t.Run("nothing was sent, and the code, the send counts and the cooldown are untouched", func(t *testing.T) {
		if n := len(e.messages()); n != 1 {
			t.Fatalf("%d messages, want the first code's only", n)
		}
		after, err := e.h.service.Identity(t.Context(), "carl")
		if err != nil {
			t.Fatal(err)
		}
		if !after.NextSendAt.Equal(before.NextSendAt) {
			t.Fatalf("the cooldown moved from %s to %s", before.NextSendAt, after.NextSendAt)
		}
		c, err := e.h.store.Challenge(t.Context(), "carl", b.cookie("__Host-stepup_challenge"), e.clock.Now())
		if err != nil || c.Sends != 1 || c.Calls != 0 {
			t.Fatalf("challenge %+v %v: a send or a call was counted", c, err)
		}
		if w, body := b.verify(code); w.Code != http.StatusSeeOther {
			t.Fatalf("the code sent before the refused calls: %d\n%s", w.Code, body)
		}
		// The identity's second code of the hour, refused had a call been
		// counted as a send.
		b.send()
	})
}
