package caddymodule

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// apCall posts a JSON body to an API endpoint with the CSRF header.
func apCall(b *htBrowser, path, csrf, body string, extra ...string) (int, map[string]any, http.Header) {
	b.t.Helper()
	r := b.request(http.MethodPost, path, nil, append([]string{"Content-Type: application/json", "X-CSRF-Token: " + csrf}, extra...)...)
	r.Body = ioNopCloser(strings.NewReader(body))
	r.ContentLength = int64(len(body))
	w := httptestRecorder()
	if err := b.e.h.ServeHTTP(w, r, nil); err != nil {
		b.t.Fatalf("POST %s: %v", path, err)
	}
	b.jar.SetCookies(htBase, w.Result().Cookies())
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		b.t.Fatalf("POST %s: %d, not JSON: %q", path, w.Code, w.Body.String())
	}
	return w.Code, out, w.Header()
}

func TestJSONStepUp(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	b := e.browser("api-alice")

	w, body := b.get("/settings", "Accept: application/json")
	var challenge map[string]any
	if err := json.Unmarshal([]byte(body), &challenge); err != nil || w.Code != http.StatusUnauthorized {
		t.Fatalf("protected API call: %d %q", w.Code, body)
	}
	if h := w.Header().Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_user_authentication"`) || !strings.Contains(h, `max_age="900"`) {
		t.Fatalf("WWW-Authenticate %q", h)
	}
	if challenge["send_url"] != "/_stepup/api/send" || challenge["verify_url"] != "/_stepup/api/verify" || challenge["state_url"] != "/_stepup/api/state" {
		t.Fatalf("the 401 body does not name the endpoints: %v", challenge)
	}

	w, body = b.get("/_stepup/api/state")
	var state map[string]any
	if err := json.Unmarshal([]byte(body), &state); err != nil || w.Code != http.StatusOK {
		t.Fatalf("state: %d %q", w.Code, body)
	}
	csrf, _ := state["csrf"].(string)
	if csrf == "" || state["page"] != "send" || state["masked"] != "+81 90-****-5678" {
		t.Fatalf("state %v", state)
	}

	t.Run("posts without the CSRF header, as a form, or from another site are refused and send nothing", func(t *testing.T) {
		if status, out, _ := apCall(b, "/_stepup/api/send", "", `{}`); status != http.StatusForbidden || out["error"] != "csrf" {
			t.Fatalf("no token: %d %v", status, out)
		}
		if status, _, _ := apCall(b, "/_stepup/api/send", csrf, `{}`, "Origin: https://evil.example"); status != http.StatusForbidden {
			t.Fatalf("cross-site origin: %d", status)
		}
		r := b.request(http.MethodPost, "/_stepup/api/send", nil, "Content-Type: application/x-www-form-urlencoded", "X-CSRF-Token: "+csrf)
		w := httptestRecorder()
		if err := e.h.ServeHTTP(w, r, nil); err != nil || w.Code != http.StatusUnsupportedMediaType {
			t.Fatalf("form post: %d %v", w.Code, err)
		}
		if n := len(e.messages()); n != 0 {
			t.Fatalf("%d messages sent by refused calls", n)
		}
	})

	status, out, _ := apCall(b, "/_stepup/api/send", csrf, `{"r":"/settings"}`)
	if status != http.StatusOK || out["status"] != "sent" || out["retry_in"].(float64) != 30 {
		t.Fatalf("send: %d %v", status, out)
	}
	code := e.lastCode()

	status, out, _ = apCall(b, "/_stepup/api/verify", csrf, `{"code":"`+htWrong(code)+`"}`)
	if status != http.StatusUnprocessableEntity || out["error"] != "wrong_code" || out["remaining"].(float64) != 4 {
		t.Fatalf("wrong code: %d %v", status, out)
	}
	status, out, hdr := apCall(b, "/_stepup/api/verify", csrf, `{"code":"`+code+`","r":"//evil.example"}`)
	if status != http.StatusOK || out["status"] != "verified" || out["return"] != "/" {
		t.Fatalf("verify: %d %v", status, out)
	}
	if !strings.Contains(strings.Join(hdr.Values("Set-Cookie"), "\n"), "__Host-stepup=") {
		t.Fatal("verify set no step-up cookie")
	}
	if w, body := b.get("/settings", "Accept: application/json"); w.Code != http.StatusOK || body != "next" {
		t.Fatalf("the API call after the step-up: %d %q", w.Code, body)
	}
}

func TestPagesCarryTheSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	b := e.browser("hdr-alice")
	w, _ := b.get("/_stepup/?r=%2Fsettings")
	h := w.Header()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'nonce-", "style-src 'nonce-", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	for k, v := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"} {
		if h.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, h.Get(k), v)
		}
	}
	w2, _ := b.get("/_stepup/?r=%2Fsettings")
	if w2.Header().Get("Content-Security-Policy") == csp {
		t.Error("the CSP nonce is the same on two responses")
	}
}

// TestJSONCooldownSaysHowLongWithoutAChallenge: a script whose send the
// cooldown refuses learns the wait from retry_in, as the README promises,
// also when it holds no challenge of its own (the code went out from a
// browser): the refusal is then the send page, which had no retry_in.
func TestJSONCooldownSaysHowLongWithoutAChallenge(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	e.browser("api-bob").send()
	e.clock.Add(10 * time.Second)
	script := e.browser("api-bob")
	status, out, _ := apCall(script, "/_stepup/api/send", script.csrf(), `{}`)
	if status != http.StatusTooManyRequests || out["error"] != "cooldown" || out["page"] != "send" {
		t.Fatalf("a send 10s after another browser's: %d %v; want 429, cooldown, the send page", status, out)
	}
	if got, _ := out["retry_in"].(float64); got != 20 {
		t.Errorf("retry_in %v, want 20 (30s cooldown, 10s in): %v", out["retry_in"], out)
	}
}
