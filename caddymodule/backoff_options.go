package caddymodule

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// BackoffOptions shape the wait between codes (otp/backoff.go).
type BackoffOptions struct {
	// The resend backoff: the wait before an identity's next code starts
	// at base, doubles with each code sent within the hour up to max, and
	// each wait is lengthened by a random share of itself up to jitter,
	// drawn when the code is sent. Without it: resend_cooldown (or 30s),
	// up to 10m, and a jitter of 0.25.
	ResendBackoff *ResendBackoff `json:"resend_backoff,omitempty"`
}

// ResendBackoff is the resend_backoff block.
type ResendBackoff struct {
	// The first wait. Default: resend_cooldown, else 30s.
	Base caddy.Duration `json:"base,omitempty"`
	// The longest wait before the jitter. Default: 10m.
	Max caddy.Duration `json:"max,omitempty"`
	// The largest share of a wait added to it at random, 0 to 1.
	// Default: 0.25.
	Jitter *float64 `json:"jitter,omitempty"`
}

// DefaultResendJitter is resend_backoff's jitter when it sets none.
const DefaultResendJitter = 0.25

// maxResendBackoff bounds resend_backoff's base and max.
const maxResendBackoff = 24 * time.Hour

// parseResendBackoff reads the resend_backoff block.
func (h *Handler) parseResendBackoff(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	b := &ResendBackoff{}
	h.ResendBackoff = b
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		option := "resend_backoff." + sub
		h.caddyfileAt[option] = d.Token()
		var err error
		switch sub {
		case "base":
			b.Base, err = durationArg(d, option)
		case "max":
			b.Max, err = durationArg(d, option)
		case "jitter":
			var s string
			if s, err = oneArg(d); err == nil {
				j, perr := strconv.ParseFloat(s, 64)
				if perr != nil {
					return d.Errf("resend_backoff jitter %q: expected a share from 0 to 1, such as 0.25", s)
				}
				b.Jitter = &j
			}
		default:
			return d.Errf("unknown resend_backoff option %q: expected base, max or jitter", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// validateBackoff checks resend_backoff against itself and resend_cooldown.
func (h *Handler) validateBackoff() error {
	b := h.ResendBackoff
	if b == nil {
		return nil
	}
	if b.Base != 0 && h.ResendCooldown != 0 {
		return optionErrorf("resend_backoff.base", "resend_backoff base and resend_cooldown: expected one of them; both set the first wait")
	}
	for _, v := range []struct {
		option string
		d      caddy.Duration
	}{{"resend_backoff.base", b.Base}, {"resend_backoff.max", b.Max}} {
		if v.d < 0 || time.Duration(v.d) > maxResendBackoff {
			return optionErrorf(v.option, "%s %s: expected a duration such as 30s, more than 0 and at most %s", v.option, shortDuration(time.Duration(v.d)), shortDuration(maxResendBackoff))
		}
	}
	if base, max := h.cooldownBase(), h.cooldownMax(); base > max {
		return optionErrorf("resend_backoff.max", "resend_backoff max %s: expected at least the first wait, %s", shortDuration(max), shortDuration(base))
	}
	if j := h.resendJitter(); j < 0 || j > otp.MaxCooldownJitter {
		return optionErrorf("resend_backoff.jitter", "resend_backoff jitter %g: expected a share from 0 to %g, such as 0.25", j, otp.MaxCooldownJitter)
	}
	return nil
}

func (h *Handler) cooldownBase() time.Duration {
	switch {
	case h.ResendBackoff != nil && h.ResendBackoff.Base != 0:
		return time.Duration(h.ResendBackoff.Base)
	case h.ResendCooldown != 0:
		return time.Duration(h.ResendCooldown)
	}
	return otp.DefaultConfig().CooldownBase
}

func (h *Handler) cooldownMax() time.Duration {
	if h.ResendBackoff != nil && h.ResendBackoff.Max != 0 {
		return time.Duration(h.ResendBackoff.Max)
	}
	return otp.DefaultConfig().CooldownMax
}

// resendJitter is resend_backoff's jitter, DefaultResendJitter unless it
// sets one: on by default, so a script cannot time the next allowed send.
func (h *Handler) resendJitter() float64 {
	if b := h.ResendBackoff; b != nil && b.Jitter != nil {
		return *b.Jitter
	}
	return DefaultResendJitter
}

// applyBackoff sets the service's cooldowns from the options.
func (h *Handler) applyBackoff(cfg *otp.Config) {
	cfg.CooldownBase, cfg.CooldownMax, cfg.CooldownJitter = h.cooldownBase(), h.cooldownMax(), h.resendJitter()
}
