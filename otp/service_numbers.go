package otp

import (
	"context"
	"fmt"
)

// The service's operations on numbers and their bindings, and the limits an
// operator resets.

// ResetLimit clears a send limit for an operator: name is one of the Limit*
// names and value what it counts (an E.164 number for LimitPhone, an
// E.164 number without its last 4 digits for LimitPrefix, an address for
// LimitIP, a region such as JP or a calling code such as +882 for
// LimitCountry, nothing for LimitDailyBudget). This instance stops
// repeating the store's refusal by that limit at once (refusal_memo.go);
// another instance sharing the store within RefusalHold.
func (s *Service) ResetLimit(ctx context.Context, name, value string) error {
	switch name {
	case LimitPhone, LimitIdentity, LimitIP, LimitPrefix, LimitCountry, LimitDailyBudget:
	default:
		return fmt.Errorf("%w %q: expected one of %s, %s, %s, %s, %s, %s", ErrLimitName, name,
			LimitPhone, LimitIdentity, LimitIP, LimitPrefix, LimitCountry, LimitDailyBudget)
	}
	key := s.keys.LimitKey(name, limitValue(name, value))
	// Dropped after the store's step, whatever it answers: at worst the
	// next send asks the store again (refusal_memo.go).
	defer s.refusals.forget(refusalKey{limit: name, key: key})
	if err := s.store.ResetLimit(ctx, name, key); err != nil {
		return storeErr(err)
	}
	return nil
}

// BoundPhone returns the number bound to subject, opened with the service's
// keys; ErrNoBoundPhone if there is none. Only E164 and Masked are set: run
// the phone policy on E164 before sending to it, since the policy (a deny
// list, say) may have changed since the number was bound.
func (s *Service) BoundPhone(ctx context.Context, subject string) (Phone, error) {
	b, err := s.store.BoundPhone(ctx, subject)
	if err != nil {
		return Phone{}, storeErr(err)
	}
	e164, err := s.keys.OpenPhone(subject, b.PhoneSealed)
	if err != nil {
		return Phone{}, fmt.Errorf("bound phone: %w", err)
	}
	return Phone{E164: e164, Masked: s.keys.OpenMasked(subject, b.PhoneMasked)}, nil
}

// BindPhone makes phone the identity's number, replacing any other (the
// caller has verified a code sent to it). It fails with ErrNumberTaken when
// the number already serves maxIdentities other identities.
func (s *Service) BindPhone(ctx context.Context, subject string, phone Phone, maxIdentities int) error {
	sealed, err := s.keys.SealPhone(subject, phone.E164)
	if err != nil {
		return err
	}
	masked, err := s.keys.SealMasked(subject, phone.Masked)
	if err != nil {
		return err
	}
	err = s.store.BindPhone(ctx, BindRequest{Subject: subject, PhoneHash: s.keys.PhoneHash(phone.E164), PhoneSealed: sealed,
		PhoneMasked: masked, MaxIdentitiesPerNumber: maxIdentities, Now: s.clock.Now()})
	if err != nil {
		return storeErr(err)
	}
	return nil
}

// PhoneHash names a number without showing it.
func (s *Service) PhoneHash(phone Phone) string { return s.keys.PhoneHash(phone.E164) }

// Notify sends a message that carries no code (such as "your number was
// changed") to phone.
func (s *Service) Notify(ctx context.Context, phone Phone, locale, body string) error {
	if _, err := s.gateway.Send(ctx, Message{To: phone.E164, Body: body, Locale: locale}); err != nil {
		return fmt.Errorf("%w: %w", ErrSendFailed, err)
	}
	return nil
}

// CanCall reports whether codes can also be read out by phone.
func (s *Service) CanCall() bool { return s.voice != nil }
