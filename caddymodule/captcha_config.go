package caddymodule

import (
	"strconv"

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
	// (with an image CAPTCHA for a page without JavaScript).
	Type string `json:"type,omitempty"`
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
	if c.Type != "pow" {
		return optionErrorf("captcha", "captcha %q: expected pow", c.Type)
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
		default:
			return d.Errf("unknown captcha option %q: expected difficulty", sub)
		}
	}
	h.Captcha = c
	return nil
}
