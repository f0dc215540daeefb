package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// capProviderFake is a provider's verification endpoint: it checks the
// documented request (a form POST of secret, response and remoteip, and
// for hCaptcha sitekey) and answers as told.
type capProviderFake struct {
	t        *testing.T
	provider string
	mu       sync.Mutex
	answer   map[string]any
	status   int
	forms    []url.Values
}

func (f *capProviderFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		f.t.Errorf("%s: %s with Content-Type %q, want a form POST", f.provider, r.Method, r.Header.Get("Content-Type"))
	}
	if err := r.ParseForm(); err != nil {
		f.t.Error(err)
	}
	want := []string{"secret", "response", "remoteip"}
	if f.provider == "hcaptcha" {
		want = append(want, "sitekey")
	}
	for _, k := range want {
		if r.PostForm.Get(k) == "" {
			f.t.Errorf("%s: the form has no %s: %v", f.provider, k, r.PostForm)
		}
	}
	if len(r.PostForm) != len(want) {
		f.t.Errorf("%s: form fields %v, want exactly %v", f.provider, r.PostForm, want)
	}
	f.forms = append(f.forms, r.PostForm)
	if f.status != 0 {
		w.WriteHeader(f.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(f.answer)
}

// TestCaptchaProviders: for each provider the page loads its widget with
// the site key and its origins in the CSP (and only then), the send posts
// the widget's token to the verification endpoint in the documented shape,
// a success sends, a failure refuses, and a provider that fails refuses
// the send with a clear 503 (fail closed).
func TestCaptchaProviders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ provider, field, class, origin string }{
		{"turnstile", "cf-turnstile-response", "cf-turnstile", "https://challenges.cloudflare.com"},
		{"hcaptcha", "h-captcha-response", "h-captcha", "https://hcaptcha.com"},
		{"recaptcha", "g-recaptcha-response", "g-recaptcha", "https://www.google.com"},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			fake := &capProviderFake{t: t, provider: tc.provider, answer: map[string]any{"success": false, "error-codes": []string{"invalid-input-response"}}}
			srv := httptest.NewServer(fake)
			t.Cleanup(srv.Close)
			e := capNew(t, "always", func(h *Handler) {
				h.Captcha = &CaptchaConfig{Type: tc.provider, SiteKey: "site-" + tc.provider, Secret: "secret-" + tc.provider, VerifyURL: srv.URL}
			})
			b := e.browser("prov-" + tc.provider)
			w, body := b.get("/_stepup/?r=%2Fsettings")
			csp := w.Header().Get("Content-Security-Policy")
			if !strings.Contains(body, `class="`+tc.class+`" data-sitekey="site-`+tc.provider+`"`) || !strings.Contains(csp, "script-src 'nonce-") ||
				!strings.Contains(csp, tc.origin) || !strings.Contains(csp, "frame-src "+tc.origin) {
				t.Fatalf("the page lacks the widget or its CSP the origin %s:\nCSP %s\n%s", tc.origin, csp, body)
			}
			send := func(token string) (*httptest.ResponseRecorder, string) {
				_, page := b.get("/_stepup/?r=%2Fsettings")
				return capSend(b, url.Values{"captcha_challenge": {capChallenge(page)}, tc.field: {token}})
			}
			if w, body := send("token-refused"); w.Code != http.StatusForbidden || !strings.Contains(body, "did not pass") {
				t.Fatalf("a token the provider refuses: %d\n%s", w.Code, body)
			}
			form := fake.forms[len(fake.forms)-1]
			if form.Get("secret") != "secret-"+tc.provider || form.Get("response") != "token-refused" || form.Get("remoteip") != "192.0.2.10" {
				t.Errorf("the provider was asked %v", form)
			}
			if tc.provider == "hcaptcha" && form.Get("sitekey") != "site-hcaptcha" {
				t.Errorf("hCaptcha was not sent the site key: %v", form)
			}
			fake.mu.Lock()
			fake.status = http.StatusInternalServerError
			fake.mu.Unlock()
			if w, body := send("token-any"); w.Code != http.StatusServiceUnavailable || !strings.Contains(body, "no code was sent") {
				t.Fatalf("a provider that fails: %d, want 503\n%s", w.Code, body)
			}
			fake.mu.Lock()
			fake.status, fake.answer = 0, map[string]any{"success": true, "hostname": "example.com"}
			fake.mu.Unlock()
			if w, body := send("token-good"); w.Code != http.StatusSeeOther {
				t.Fatalf("a token the provider takes: %d\n%s", w.Code, body)
			}
			if n := len(e.messages()); n != 1 {
				t.Errorf("%d SMS, want 1 (only the send the provider passed)", n)
			}
		})
	}
	t.Run("recaptcha v3 below min_score", func(t *testing.T) {
		t.Parallel()
		fake := &capProviderFake{t: t, provider: "recaptcha", answer: map[string]any{"success": true, "score": 0.3, "action": "send"}}
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)
		e := capNew(t, "always", func(h *Handler) {
			h.Captcha = &CaptchaConfig{Type: "recaptcha", SiteKey: "k", Secret: "s", VerifyURL: srv.URL, MinScore: 0.5}
		})
		b := e.browser("prov-v3")
		_, page := b.get("/_stepup/?r=%2Fsettings")
		if w, _ := capSend(b, url.Values{"captcha_challenge": {capChallenge(page)}, "g-recaptcha-response": {"t"}}); w.Code != http.StatusForbidden {
			t.Errorf("score 0.3 with min_score 0.5: %d, want 403", w.Code)
		}
	})
	t.Run("a token solved on another site", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name, answered string
			hostnames      []string
			want           int
		}{
			{"another host than the send's", "attacker.example", nil, http.StatusForbidden},
			{"no hostname in the answer", "", nil, http.StatusForbidden},
			{"the send's host, another case", "EXAMPLE.com", nil, http.StatusSeeOther},
			{"one of captcha hostnames", "www.example.org", []string{"example.org", "www.example.org"}, http.StatusSeeOther},
			{"not one of captcha hostnames", "example.com", []string{"example.org"}, http.StatusForbidden},
			{"any, for test keys", "dummy-key-pass", []string{"*"}, http.StatusSeeOther},
		} {
			fake := &capProviderFake{t: t, provider: "turnstile", answer: map[string]any{"success": true, "hostname": tc.answered}}
			srv := httptest.NewServer(fake)
			t.Cleanup(srv.Close)
			e := capNew(t, "always", func(h *Handler) {
				h.Captcha = &CaptchaConfig{Type: "turnstile", SiteKey: "k", Secret: "s", VerifyURL: srv.URL, Hostnames: tc.hostnames}
			})
			b := e.browser("prov-host")
			_, page := b.get("/_stepup/?r=%2Fsettings")
			w, body := capSend(b, url.Values{"captcha_challenge": {capChallenge(page)}, "cf-turnstile-response": {"t"}})
			if w.Code != tc.want {
				t.Errorf("%s (provider says %q, hostnames %v): %d, want %d\n%s", tc.name, tc.answered, tc.hostnames, w.Code, tc.want, body)
			}
			if sent := len(e.messages()); (sent == 1) != (tc.want == http.StatusSeeOther) {
				t.Errorf("%s: %d SMS", tc.name, sent)
			}
		}
	})
	t.Run("pow adds no origin to the CSP", func(t *testing.T) {
		t.Parallel()
		e := capNew(t, "always", nil)
		w, _ := e.browser("prov-none").get("/_stepup/?r=%2Fsettings")
		if csp := w.Header().Get("Content-Security-Policy"); strings.Contains(csp, "https://") || strings.Contains(csp, "frame-src") {
			t.Errorf("captcha pow: CSP %q names an origin", csp)
		}
	})
}
