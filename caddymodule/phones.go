package caddymodule

import (
	"context"
	"errors"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

var errNoPhone = errors.New("no phone number for this identity")

// phoneFor finds the number of identity: the phone placeholder first, then
// the phone file, then the phone sources in order (phone_sources.go), then
// (with enroll) the number the identity enrolled.
func (h *Handler) phoneFor(ctx context.Context, identity string, repl *caddy.Replacer) (otp.Phone, error) {
	if p, found, err := h.phoneAtHand(identity, repl); found {
		return p, err
	}
	if h.sources != nil {
		if p, err := h.sourcePhone(ctx, identity); !errors.Is(err, errNoPhone) {
			return p, err
		}
	}
	if h.Enroll {
		return h.boundPhone(ctx, identity)
	}
	return otp.Phone{}, errNoPhone
}

// phoneAtHand is phoneFor's answer when the phone placeholder or the phone
// file has one, found without any look-up (and so without a context); false
// when the sources or the enrolled number must be asked.
func (h *Handler) phoneAtHand(identity string, repl *caddy.Replacer) (otp.Phone, bool, error) {
	if h.Phone != "" {
		if raw := repl.ReplaceAll(h.Phone, ""); raw != "" {
			p, err := h.checkPhone(raw)
			return p, true, err
		}
	}
	return h.filePhone(identity)
}
