package caddymodule_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var ieCode = regexp.MustCompile(`code: (\d{6})`)

// ieCodeTo is the newest code in the outbox for e164.
func ieCodeTo(e *itEnv, e164 string) (code string, messages int) {
	for _, m := range e.messages() {
		if m.To == e164 {
			messages++
			if c := ieCode.FindStringSubmatch(m.Body); c != nil {
				code = c[1]
			}
		}
	}
	return code, messages
}

// iePost posts form with the page's CSRF token.
func iePost(b *itBrowser, target string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	f := b.stepUpPage("/settings")
	form.Set("csrf", f["csrf"])
	form.Set("r", "/settings")
	resp, body := b.post(target, form, b.origin())
	return resp, html.UnescapeString(body)
}

// ieEnrol enrols typed (e164) for b and returns the verify response.
func ieEnrol(t *testing.T, e *itEnv, b *itBrowser, typed, e164 string) (*http.Response, string) {
	t.Helper()
	if resp, body := iePost(b, "/_stepup/enroll", url.Values{"phone": {typed}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("enroll %s: %d %s", typed, resp.StatusCode, itShort(body))
	}
	if resp, body := iePost(b, "/_stepup/send", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("send to %s: %d %s", typed, resp.StatusCode, itShort(body))
	}
	code, _ := ieCodeTo(e, e164)
	return iePost(b, "/_stepup/verify", url.Values{"code": {code}})
}

// TestIntegrationEnrollment walks enrollment through a real Caddy: enrol,
// step up again without being asked, a refused number, a number serving
// another identity, and a change of number that needs the old number and
// tells it.
func TestIntegrationEnrollment(t *testing.T) {
	e := itStart(t, itSite{Key: itKey, Options: "\t\tenroll"})

	t.Run("a user enrols a number by a code sent to it and reaches the app", func(t *testing.T) {
		b := e.browser("ie-olivia")
		if _, body := b.get("/_stepup/?r=%2Fsettings"); !strings.Contains(body, `name="phone"`) {
			t.Fatalf("no enrollment form:\n%s", itShort(body))
		}
		resp, body := ieEnrol(t, e, b, "090-5555-6666", "+819055556666")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/settings" {
			t.Fatalf("verify: %d %s", resp.StatusCode, itShort(body))
		}
		b.wantUpstream("/settings")
	})
	t.Run("a later step-up uses the enrolled number without asking", func(t *testing.T) {
		b := e.browser("ie-olivia")
		_, body := b.get("/_stepup/?r=%2Fsettings")
		if strings.Contains(body, `name="phone"`) || !strings.Contains(html.UnescapeString(body), "+81 90-****-6666") {
			t.Fatalf("the send page should offer the enrolled number:\n%s", itShort(body))
		}
	})
	t.Run("an IP-phone number is refused", func(t *testing.T) {
		resp, body := iePost(e.browser("ie-peter"), "/_stepup/enroll", url.Values{"phone": {"050-1234-5678"}})
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Use your own mobile phone number") {
			t.Fatalf("050: %d %s", resp.StatusCode, itShort(body))
		}
	})
	t.Run("a number serving another identity is refused without saying so, and grants nothing", func(t *testing.T) {
		b := e.browser("ie-quinn")
		resp, body := ieEnrol(t, e, b, "+81 90 5555 6666", "+819055556666")
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Use your own mobile phone number") {
			t.Fatalf("taken number: %d %s", resp.StatusCode, itShort(body))
		}
		b.wantStepUp("/settings")
	})
	t.Run("changing the number needs a step-up on the old one, and the old one is told", func(t *testing.T) {
		b := e.browser("ie-olivia")
		if resp, _ := b.get("/_stepup/change"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("change without a step-up: %d", resp.StatusCode)
		}
		if resp, _ := iePost(b, "/_stepup/send", url.Values{}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("send to the old number: %d", resp.StatusCode)
		}
		old, _ := ieCodeTo(e, "+819055556666")
		if resp, _ := iePost(b, "/_stepup/verify", url.Values{"code": {old}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("step-up on the old number: %d", resp.StatusCode)
		}
		if resp, body := b.get("/_stepup/change"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Enter your new mobile number") {
			t.Fatalf("change page: %d %s", resp.StatusCode, itShort(body))
		}
		if resp, body := ieEnrol(t, e, b, "080-7777-8888", "+818077778888"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("binding the new number: %d %s", resp.StatusCode, itShort(body))
		}
		told := false
		for _, m := range e.messages() {
			if m.To == "+819055556666" && strings.Contains(m.Body, "was changed") && !ieCode.MatchString(m.Body) {
				told = true
			}
		}
		if !told {
			t.Fatal("the old number was not told of the change")
		}
	})
}
