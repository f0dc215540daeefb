package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// The third-party CAPTCHAs: the page loads the provider's widget, which
// puts a token in the form, and the send checks the token with the
// provider's documented verification endpoint (a form POST of secret,
// response and remoteip; JSON with success). The handler's own signed,
// single-use challenge goes with it, so the answer is bound to the
// session as the built-in one is (SECURITY.md rule 34). A provider that
// fails or is slow refuses the send (fail closed, rule 31).

// captchaProvider is what the handler knows of one provider.
type captchaProvider struct {
	// verifyURL is the documented endpoint; field is the form field the
	// widget fills; script is the widget's script; class is its element.
	verifyURL, field, script, class string
	// csp is the origins the widget needs, for script, frame, connect
	// and style.
	csp string
	// sendSiteKey: the endpoint takes the site key too (hCaptcha).
	sendSiteKey bool
}

var captchaProviders = map[string]captchaProvider{
	"turnstile": {
		verifyURL: "https://challenges.cloudflare.com/turnstile/v0/siteverify", field: "cf-turnstile-response",
		script: "https://challenges.cloudflare.com/turnstile/v0/api.js", class: "cf-turnstile",
		csp: "https://challenges.cloudflare.com",
	},
	"hcaptcha": {
		verifyURL: "https://api.hcaptcha.com/siteverify", field: "h-captcha-response",
		script: "https://js.hcaptcha.com/1/api.js", class: "h-captcha",
		csp: "https://hcaptcha.com https://*.hcaptcha.com", sendSiteKey: true,
	},
	"recaptcha": {
		verifyURL: "https://www.google.com/recaptcha/api/siteverify", field: "g-recaptcha-response",
		script: "https://www.google.com/recaptcha/api.js", class: "g-recaptcha",
		csp: "https://www.google.com https://www.gstatic.com",
	},
}

// captchaProviderTimeout bounds one verification.
const captchaProviderTimeout = 5 * time.Second

// provider is the configured third-party CAPTCHA; ok is false for pow.
func (h *Handler) provider() (captchaProvider, bool) {
	if h.Captcha == nil {
		return captchaProvider{}, false
	}
	p, ok := captchaProviders[h.Captcha.Type]
	return p, ok
}

// captchaCSP is what the page's CSP adds for the provider's widget: its
// origins for scripts, frames, connections and styles; "" for pow.
func (h *Handler) captchaCSP() string {
	p, ok := h.provider()
	if !ok {
		return ""
	}
	return fmt.Sprintf("; frame-src %[1]s; connect-src %[1]s", p.csp)
}

// captchaScriptSources are the provider's origins for script-src and
// style-src, with a leading space; "" for pow.
func (h *Handler) captchaScriptSources() string {
	if p, ok := h.provider(); ok {
		return " " + p.csp
	}
	return ""
}

// errProviderUnavailable is a provider that did not answer as documented.
var errProviderUnavailable = errors.New("captcha provider unavailable")

// verifyProvider asks the provider whether token is a solved CAPTCHA: true
// when it says success for a site this handler serves (and, for reCAPTCHA
// v3, a score at least min_score); errProviderUnavailable when it can't be
// asked or answers something else. host is where the send was posted.
func (h *Handler) verifyProvider(ctx context.Context, p captchaProvider, token, remoteIP, host string) (bool, error) {
	if token == "" || len(token) > 4096 {
		return false, nil
	}
	form := url.Values{"secret": {h.captchaSecret}, "response": {token}}
	if remoteIP != "" {
		form.Set("remoteip", remoteIP)
	}
	if p.sendSiteKey {
		form.Set("sitekey", h.Captcha.SiteKey)
	}
	endpoint := p.verifyURL
	if h.Captcha.VerifyURL != "" {
		endpoint = h.Captcha.VerifyURL
	}
	ctx, cancel := context.WithTimeout(ctx, captchaProviderTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return false, fmt.Errorf("%w: %v", errProviderUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("%w: %s: %v", errProviderUnavailable, h.Captcha.Type, err)
	}
	defer resp.Body.Close()
	var answer struct {
		Success  *bool    `json:"success"`
		Score    *float64 `json:"score"`
		Hostname string   `json:"hostname"`
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%w: %s answered %d", errProviderUnavailable, h.Captcha.Type, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&answer); err != nil || answer.Success == nil {
		return false, fmt.Errorf("%w: %s answered no success field", errProviderUnavailable, h.Captcha.Type)
	}
	if answer.Score != nil && h.Captcha.MinScore > 0 && *answer.Score < h.Captcha.MinScore {
		return false, nil
	}
	if *answer.Success && !h.captchaHostAllowed(answer.Hostname, host) {
		// A token solved on another site that shares the site key (or a
		// key whose domain check is off at the provider) is not this
		// site's: the provider's own docs ask the server to check this.
		h.logger.Warn("CAPTCHA solved on another site: send refused",
			zap.String("provider", h.Captcha.Type), zap.String("hostname", answer.Hostname))
		return false, nil
	}
	return *answer.Success, nil
}

// captchaHostAllowed reports whether a provider's hostname is a site the
// CAPTCHA is for: one of captcha hostnames, or, with none set, the host
// the send was posted to (without its port).
func (h *Handler) captchaHostAllowed(hostname, requestHost string) bool {
	hostname = strings.ToLower(hostname)
	want := h.Captcha.Hostnames
	if len(want) == 0 {
		if host, _, err := net.SplitHostPort(requestHost); err == nil {
			requestHost = host
		}
		want = []string{strings.ToLower(strings.Trim(requestHost, "[]"))}
	}
	for _, w := range want {
		if w == "*" || (hostname != "" && w == hostname) {
			return true
		}
	}
	return false
}
