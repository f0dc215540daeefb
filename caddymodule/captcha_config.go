package caddymodule

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/pow"
)

// CaptchaOptions ask for a CAPTCHA before a send when the risk calls for
// it (issue 15). With no captcha there is none: sends stay as they were.
type CaptchaOptions struct {
	// Captcha is the CAPTCHA a send needs when captcha_when says so.
	Captcha *CaptchaConfig `json:"captcha,omitempty"`
	// CaptchaWhen is always, risky (the default) or never. Risky is an
	// address or device new to the identity, a second send within the
	// hour, an address past half its limit, or a prefix the fraud guard
	// is watching (see risk.go).
	CaptchaWhen string `json:"captcha_when,omitempty"`
}

// CaptchaConfig is one kind of CAPTCHA.
type CaptchaConfig struct {
	// Type is pow, the built-in proof of work the page's script solves
	// (with an image CAPTCHA for a page without JavaScript), or turnstile,
	// hcaptcha or recaptcha, checked with the provider.
	Type string `json:"type,omitempty"`
	// SiteKey and Secret are the provider's keys (placeholders such as
	// {env.TURNSTILE_SECRET} are expanded at start-up).
	SiteKey string `json:"site_key,omitempty"`
	Secret  string `json:"secret,omitempty"`
	// VerifyURL replaces the provider's documented verification endpoint
	// (a self-hosted one, or a test's).
	VerifyURL string `json:"verify_url,omitempty"`
	// MinScore is the lowest reCAPTCHA v3 score accepted (0 to 1); 0
	// takes what the provider calls a success.
	MinScore float64 `json:"min_score,omitempty"`
	// Hostnames are the sites a provider's solved CAPTCHA may come from
	// (the hostname its answer names). Empty: the host the send was posted
	// to. ["*"] takes any, for a provider's test keys only.
	Hostnames []string `json:"hostnames,omitempty"`
	// Difficulty is the proof of work's leading zero bits for one risk
	// signal (and for captcha_when always with none); each further signal
	// adds 2, up to Difficulty+8. Default 14.
	Difficulty int `json:"difficulty,omitempty"`
}

// DefaultPowDifficulty is about 16,000 hashes on average: a fraction of a
// second in a phone's browser.
const DefaultPowDifficulty = 14

// maxPowBase keeps the hardest challenge (base+8) within pow.MaxDifficulty.
const maxPowBase = pow.MaxDifficulty - 8

// captchaWhen is the option as given, with its default.
func (h *Handler) captchaWhen() string {
	if h.CaptchaWhen == "" {
		return "risky"
	}
	return h.CaptchaWhen
}

// validateCaptcha checks captcha and captcha_when.
func (h *Handler) validateCaptcha() error {
	switch h.CaptchaWhen {
	case "", "always", "risky", "never":
	default:
		return optionErrorf("captcha_when", "captcha_when %q: expected always, risky or never", h.CaptchaWhen)
	}
	c := h.Captcha
	if c == nil {
		if h.CaptchaWhen == "always" || h.CaptchaWhen == "risky" {
			return optionErrorf("captcha_when", "captcha_when %s: expected a captcha too (captcha pow, say), which it says when to ask for", h.CaptchaWhen)
		}
		return nil
	}
	if _, provider := captchaProviders[c.Type]; provider {
		return validateProvider(c)
	}
	if c.Type != "pow" {
		return optionErrorf("captcha", "captcha %q: expected pow, turnstile, hcaptcha or recaptcha", c.Type)
	}
	if c.Difficulty < 0 || c.Difficulty > maxPowBase {
		return optionErrorf("captcha.difficulty", "captcha difficulty %d: expected a whole number of bits from 1 to %d (default %d)", c.Difficulty, maxPowBase, DefaultPowDifficulty)
	}
	return nil
}

// parseCaptchaOption reads
//
//	captcha pow {
//	    difficulty 14
//	}
//	captcha turnstile|hcaptcha|recaptcha {
//	    site_key   <key>
//	    secret     <secret>
//	    verify_url <url>       # optional
//	    min_score  0.5         # optional, recaptcha v3
//	}
//	captcha_when always|risky|never
func (h *Handler) parseCaptchaOption(d *caddyfile.Dispenser, opt string) error {
	if opt == "captcha_when" {
		v, err := oneArg(d)
		h.CaptchaWhen = v
		return err
	}
	c := &CaptchaConfig{Type: "pow"}
	if d.NextArg() {
		c.Type = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		h.caddyfileAt["captcha."+sub] = d.Token()
		switch sub {
		case "difficulty":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			if c.Difficulty, err = strconv.Atoi(v); err != nil {
				return d.Errf("captcha difficulty %q: expected a whole number of bits from 1 to %d", v, maxPowBase)
			}
		case "site_key", "secret", "verify_url":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			*map[string]*string{"site_key": &c.SiteKey, "secret": &c.Secret, "verify_url": &c.VerifyURL}[sub] = v
		case "hostnames":
			c.Hostnames = d.RemainingArgs()
			if len(c.Hostnames) == 0 {
				return d.Errf("captcha hostnames: expected one or more host names (or * for any)")
			}
		case "min_score":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			if c.MinScore, err = strconv.ParseFloat(v, 64); err != nil {
				return d.Errf("captcha min_score %q: expected a score from 0 to 1", v)
			}
		default:
			return d.Errf("unknown captcha option %q: expected difficulty (pow), or site_key, secret, verify_url, min_score and hostnames (providers)", sub)
		}
	}
	h.Captcha = c
	return nil
}

// validateProvider checks a third-party CAPTCHA's options.
func validateProvider(c *CaptchaConfig) error {
	switch {
	case c.SiteKey == "" || c.Secret == "":
		return optionErrorf("captcha", "captcha %s: expected site_key and secret, from the provider's dashboard", c.Type)
	case c.VerifyURL != "" && !strings.HasPrefix(c.VerifyURL, "https://") && !strings.HasPrefix(c.VerifyURL, "http://"):
		return optionErrorf("captcha.verify_url", "captcha verify_url %q: expected an https:// URL", c.VerifyURL)
	case c.MinScore < 0 || c.MinScore > 1 || (c.MinScore > 0 && c.Type != "recaptcha"):
		return optionErrorf("captcha.min_score", "captcha min_score %v: expected a score from 0 to 1, for recaptcha (v3) only", c.MinScore)
	case c.Difficulty != 0:
		return optionErrorf("captcha.difficulty", "captcha difficulty: expected it with captcha pow only")
	}
	return validateCaptchaHostnames(c.Hostnames)
}

// validateCaptchaHostnames takes host names as a provider names them: no
// scheme, port or path; or * alone.
func validateCaptchaHostnames(names []string) error {
	for _, n := range names {
		switch {
		case n == "*" && len(names) == 1:
		case n == "*":
			return optionErrorf("captcha.hostnames", "captcha hostnames: expected * alone, or host names without it")
		case n == "" || strings.ContainsAny(n, ":/ *") || strings.ToLower(n) != n:
			return optionErrorf("captcha.hostnames", "captcha hostnames %q: expected a lower-case host name such as www.example.com, without scheme, port or path", n)
		}
	}
	return nil
}
