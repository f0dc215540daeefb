package caddymodule

import (
	"context"
	"errors"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// codePurpose is what a verified code may do, decided by the number its
// challenge went to.
type codePurpose int

const (
	// purposeNone: the code went to a number that is neither the one this
	// browser is enrolling nor the identity's own; it proves nothing.
	purposeNone codePurpose = iota
	// purposeStepUp: the code went to the identity's own number.
	purposeStepUp
	// purposeEnrol: the code went to the number being enrolled; it binds
	// the number and steps up together, or does neither.
	purposeEnrol
)

// codePurpose decides what a verified code of challenge c may do. A code
// sent to a pending number must never step up without binding it: when the
// enrol cookie was dropped, forged or replaced by another number's, the
// challenge's number matches neither the pending one nor the identity's
// own, and the code does nothing. c is nil when the challenge could not
// be read before the code was checked; nothing then vouches for its number.
func (h *Handler) codePurpose(ctx context.Context, v *visit, c *otp.Challenge) (codePurpose, otp.Phone, error) {
	if c == nil {
		return purposeNone, otp.Phone{}, nil
	}
	if pending, ok := h.pendingPhone(v); ok && c.PhoneHash == h.service.PhoneHash(pending) {
		return purposeEnrol, pending, nil
	}
	own, err := h.phoneFor(ctx, v.identity, v.repl)
	switch {
	case err == nil && c.PhoneHash == h.service.PhoneHash(own):
		return purposeStepUp, otp.Phone{}, nil
	case err == nil, errors.Is(err, errNoPhone), otp.IsPhoneRefusal(err):
		return purposeNone, otp.Phone{}, nil
	}
	return purposeNone, otp.Phone{}, err
}
