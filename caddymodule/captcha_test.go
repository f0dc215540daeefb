package caddymodule

import (
	"bytes"
	"context"
	"html"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/pow"
)

// capDifficulty keeps the tests' proofs of work cheap: the check is the
// same at every difficulty.
const capDifficulty = 6

// capNew is a handler with captcha pow and captcha_when when ("" for the
// default, risky).
func capNew(t *testing.T, when string, configure func(*Handler)) *htEnv {
	return htNew(t, nil, func(h *Handler) {
		h.Captcha = &CaptchaConfig{Type: "pow", Difficulty: capDifficulty}
		h.CaptchaWhen = when
		if configure != nil {
			configure(h)
		}
	})
}

var capChallengeRE = regexp.MustCompile(`name="captcha_challenge" value="([^"]*)"`)

// capChallenge is the challenge the page body carries, or "".
func capChallenge(body string) string {
	m := capChallengeRE.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// capDifficultyOf reads the difficulty a challenge token names.
func capDifficultyOf(t *testing.T, token string) int {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 5 {
		t.Fatalf("challenge %q: not c1.id.difficulty.expiry.mac", token)
	}
	d, err := strconv.Atoi(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func capSolve(t *testing.T, token string) string {
	t.Helper()
	return pow.Solve(context.Background(), token, capDifficultyOf(t, token))
}

// capPage opens the step-up page and returns its challenge.
func capPage(b *htBrowser) string {
	b.t.Helper()
	w, body := b.get("/_stepup/?r=%2Fsettings")
	if w.Code != http.StatusOK {
		b.t.Fatalf("step-up page: %d\n%s", w.Code, body)
	}
	b.csrf()
	return capChallenge(body)
}

// capSend posts the send form with the CAPTCHA fields given.
func capSend(b *htBrowser, fields url.Values) (*httptest.ResponseRecorder, string) {
	b.t.Helper()
	form := url.Values{"csrf": {b.csrf()}, "r": {"/settings"}}
	for k, v := range fields {
		form[k] = v
	}
	return b.do(http.MethodPost, "/_stepup/send", form)
}

func capPow(t *testing.T, token string) url.Values {
	return url.Values{"captcha_challenge": {token}, "captcha_pow": {capSolve(t, token)}}
}

// TestCaptchaPow: with captcha pow a first send (a device and an address
// new to the identity) needs the page's proof of work: refused without
// it, with a nonce that falls short of the difficulty, and with the same
// answer a second time; taken with a right answer.
func TestCaptchaPow(t *testing.T) {
	t.Parallel()
	e := capNew(t, "", nil)
	b := e.browser("cap-alice")
	token := capPage(b)
	if token == "" {
		t.Fatal("the send page of a first step-up has no CAPTCHA challenge")
	}
	if d := capDifficultyOf(t, token); d != capDifficulty+2 {
		t.Errorf("two risk signals (new device, new address): difficulty %d, want %d", d, capDifficulty+2)
	}

	w, body := capSend(b, nil)
	if w.Code != http.StatusForbidden || !strings.Contains(html.UnescapeString(body), "automated request") || capChallenge(body) == "" {
		t.Fatalf("a risky send without an answer: %d, want 403 saying why with a new challenge\n%s", w.Code, body)
	}
	if n := len(e.messages()); n != 0 {
		t.Fatalf("%d SMS went out without an answer", n)
	}

	fresh := capChallenge(body)
	short := ""
	for i := 0; ; i++ { // a nonce that falls short of the difficulty
		n := strconv.Itoa(i)
		if sum := pow.Sum(fresh, n); pow.LeadingZeroBits(sum[:]) < capDifficultyOf(t, fresh) {
			short = n
			break
		}
	}
	if w, body := capSend(b, url.Values{"captcha_challenge": {fresh}, "captcha_pow": {short}}); w.Code != http.StatusForbidden || !strings.Contains(body, "did not pass") {
		t.Fatalf("a nonce short of the difficulty: %d\n%s", w.Code, body)
	}
	if w, body := capSend(b, capPow(t, fresh)); w.Code != http.StatusForbidden || !strings.Contains(body, "already used") {
		t.Fatalf("a right answer to a challenge a wrong one used up: %d\n%s", w.Code, body)
	}

	answer := capPow(t, token)
	if w, body := capSend(b, answer); w.Code != http.StatusSeeOther {
		t.Fatalf("a send with a right answer: %d\n%s", w.Code, body)
	}
	if n := len(e.messages()); n != 1 {
		t.Fatalf("%d SMS after a right answer, want 1", n)
	}
	e.clock.Add(2 * time.Minute) // past the resend cooldown
	if w, body := capSend(b, answer); w.Code != http.StatusForbidden || !strings.Contains(body, "already used") {
		t.Fatalf("the same answer again: %d, want 403 (used)\n%s", w.Code, body)
	}
	if n := len(e.messages()); n != 1 {
		t.Fatalf("a replayed answer sent an SMS (%d in all)", n)
	}
}

// TestCaptchaDifficultyMustMatchTheRisk: a solved challenge made for a
// lower risk than the send has (here one made with one bit less) is
// refused, and nothing is sent.
func TestCaptchaDifficultyMustMatchTheRisk(t *testing.T) {
	t.Parallel()
	e := capNew(t, "", nil)
	b := e.browser("cap-bob")
	token := capPage(b)
	r := b.request(http.MethodGet, "/_stepup/", nil)
	v := e.h.newVisit(httptest.NewRecorder(), r, nil, b.user)
	v.sessionHash = ""
	easy, _, err := e.h.keys.IssueCaptcha(capDifficultyOf(t, token)-1, e.h.captchaBinding(v), e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if w, body := capSend(b, capPow(t, easy)); w.Code != http.StatusForbidden || !strings.Contains(body, "automated request") {
		t.Fatalf("an easier challenge than the risk needs: %d\n%s", w.Code, body)
	}
	if n := len(e.messages()); n != 0 {
		t.Fatalf("%d SMS went out", n)
	}
}

// TestCaptchaImage: a page without JavaScript shows the challenge's
// image; its text, typed in lower case, passes once; a wrong text uses up
// the challenge.
func TestCaptchaImage(t *testing.T) {
	t.Parallel()
	e := capNew(t, "", nil)
	b := e.browser("cap-carol")
	token := capPage(b)
	w, body := b.get("/_stepup/captcha.png?c=" + url.QueryEscape(token))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "image/png" {
		t.Fatalf("captcha.png: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	img, err := png.Decode(bytes.NewReader([]byte(body)))
	if err != nil || img.Bounds().Dx() != captchaWidth {
		t.Fatalf("captcha.png is not a %dpx-wide PNG: %v", captchaWidth, err)
	}
	if w, _ := e.browser("cap-mallory").get("/_stepup/captcha.png?c=" + url.QueryEscape(token)); w.Code != http.StatusNotFound {
		t.Errorf("another identity's challenge image: %d, want 404", w.Code)
	}
	c, err := e.h.keys.OpenCaptcha(token, otp.CaptchaBinding{Identity: b.user, Scope: e.h.audience}, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	text := e.h.keys.CaptchaText(c.ID)
	wrong := "XXXXX"
	if text == wrong {
		wrong = "YYYYY"
	}
	_, body = capSend(b, url.Values{"captcha_challenge": {token}, "captcha_text": {wrong}})
	if !strings.Contains(body, "did not pass") {
		t.Fatalf("a wrong text passed:\n%s", body)
	}
	fresh := capChallenge(body)
	c, _ = e.h.keys.OpenCaptcha(fresh, otp.CaptchaBinding{Identity: b.user, Scope: e.h.audience}, e.clock.Now())
	if w, body := capSend(b, url.Values{"captcha_challenge": {fresh}, "captcha_text": {strings.ToLower(e.h.keys.CaptchaText(c.ID))}}); w.Code != http.StatusSeeOther {
		t.Fatalf("the image's text: %d\n%s", w.Code, body)
	}
	if w, _ := capSend(b, url.Values{"captcha_challenge": {token}, "captcha_text": {text}}); w.Code != http.StatusForbidden {
		t.Fatalf("the right text of a challenge a wrong answer used up: %d, want 403", w.Code)
	}
}

// TestCaptchaWhen: never asks for none; risky asks none of a device and
// address that verified a code, once the hour after its last send is
// over; always asks even then.
func TestCaptchaWhen(t *testing.T) {
	t.Parallel()
	t.Run("never", func(t *testing.T) {
		t.Parallel()
		e := capNew(t, "never", nil)
		b := e.browser("when-never")
		if token := capPage(b); token != "" {
			t.Error("captcha_when never: the page has a challenge")
		}
		b.send()
	})
	for _, tc := range []struct {
		when     string
		afterAll bool
	}{{"risky", false}, {"always", true}} {
		t.Run(tc.when, func(t *testing.T) {
			t.Parallel()
			e := capNew(t, tc.when, nil)
			b := e.browser("when-" + tc.when)
			if w, body := capSend(b, capPow(t, capPage(b))); w.Code != http.StatusSeeOther {
				t.Fatalf("first send: %d\n%s", w.Code, body)
			}
			if w, _ := b.verify(e.lastCode()); w.Code != http.StatusSeeOther {
				t.Fatalf("verify: %d", w.Code)
			}
			e.clock.Add(30 * time.Minute)
			if token := capPage(b); token == "" {
				t.Errorf("%s: a second send within the hour needs no challenge", tc.when)
			}
			e.clock.Add(31 * time.Minute)
			token := capPage(b)
			if (token != "") != tc.afterAll {
				t.Fatalf("%s, a known device and address an hour after the last send: challenge %q", tc.when, token)
			}
			if tc.afterAll {
				if d := capDifficultyOf(t, token); d != capDifficulty {
					t.Errorf("always with no risk signal: difficulty %d, want %d", d, capDifficulty)
				}
				return
			}
			if w, body := capSend(b, nil); w.Code != http.StatusSeeOther {
				t.Fatalf("risky, no signal, no answer: %d\n%s", w.Code, body)
			}
		})
	}
}

// TestDeviceCookie: the first page visit sets a signed __Host- device
// cookie; a tampered one is treated as a new device (a new cookie, and
// the risk of a new device), never an error.
func TestDeviceCookie(t *testing.T) {
	t.Parallel()
	e := capNew(t, "", nil)
	b := e.browser("dev-alice")
	w, _ := b.get("/_stepup/?r=%2Fsettings")
	var dc *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-stepup_device" {
			dc = c
		}
	}
	if dc == nil || !dc.HttpOnly || !dc.Secure || dc.Path != "/" || dc.Domain != "" || dc.SameSite != http.SameSiteLaxMode || dc.MaxAge < 365*24*3600 {
		t.Fatalf("device cookie: %+v; want __Host-, HttpOnly, Secure, Path=/, SameSite=Lax, a year or more", dc)
	}
	if w, body := capSend(b, capPow(t, capPage(b))); w.Code != http.StatusSeeOther {
		t.Fatalf("send: %d\n%s", w.Code, body)
	}
	b.verify(e.lastCode())
	e.clock.Add(2 * time.Hour)
	if token := capPage(b); token != "" {
		t.Fatal("a known device and address, no recent send: the page still asks for a CAPTCHA")
	}
	good := b.cookie("__Host-stepup_device")
	b.setCookie("__Host-stepup_device", good[:len(good)-2]+"xx")
	w, body := b.get("/_stepup/?r=%2Fsettings")
	if w.Code != http.StatusOK || capChallenge(body) == "" {
		t.Fatalf("a tampered device cookie: %d, want the page with a challenge (a new device)\n%s", w.Code, body)
	}
	if now := b.cookie("__Host-stepup_device"); now == good || now == "" {
		t.Error("a tampered device cookie was not replaced by a new one")
	}
}

// TestDeviceLimit: limits { device 2 } stops the third send from one
// browser, whichever identity asks; another browser still sends.
func TestDeviceLimit(t *testing.T) {
	t.Parallel()
	two := 2
	e := htNew(t, nil, func(h *Handler) { h.Limits = &LimitsConfig{Device: &two} })
	first := e.browser("dl-1")
	first.send()
	device := first.cookie("__Host-stepup_device")
	if device == "" {
		t.Fatal("no device cookie after the page")
	}
	for i, user := range []string{"dl-2", "dl-3"} {
		b := e.browser(user)
		b.setCookie("__Host-stepup_device", device)
		w, body := b.postSend()
		if want := []int{http.StatusSeeOther, http.StatusTooManyRequests}[i]; w.Code != want {
			t.Fatalf("send %d from one device with limits device 2: %d, want %d\n%s", i+2, w.Code, want, body)
		}
	}
	e.browser("dl-4").send()
}

// TestCaptchaJSON: the JSON API answers a risky send with 403
// captcha_required and the challenge, and takes the answer in the body.
func TestCaptchaJSON(t *testing.T) {
	t.Parallel()
	e := capNew(t, "", nil)
	b := e.browser("cap-json")
	csrf := b.csrf()
	code, out, _ := apCall(b, "/_stepup/api/send", csrf, `{}`)
	c, _ := out["captcha"].(map[string]any)
	if code != http.StatusForbidden || out["error"] != "captcha_required" || c == nil || c["kind"] != "pow" {
		t.Fatalf("a risky API send without an answer: %d %v", code, out)
	}
	token, _ := c["challenge"].(string)
	if d, _ := c["difficulty"].(float64); int(d) != capDifficultyOf(t, token) || !strings.Contains(c["image_url"].(string), "/captcha.png?c=") {
		t.Fatalf("challenge: %v", c)
	}
	body := `{"captcha":{"challenge":` + strconv.Quote(token) + `,"nonce":` + strconv.Quote(capSolve(t, token)) + `}}`
	if code, out, _ := apCall(b, "/_stepup/api/send", csrf, body); code != http.StatusOK || out["status"] != "sent" {
		t.Fatalf("an API send with the answer: %d %v", code, out)
	}
}
