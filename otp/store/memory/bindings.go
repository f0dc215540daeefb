package memory

import (
	"bytes"
	"context"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// BindPhone implements otp.Store. The binding and the number's index change
// together under one mutex.
func (s *Store) BindPhone(ctx context.Context, req otp.BindRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	s.bindMu.Lock()
	defer s.bindMu.Unlock()
	holders := s.numbers[req.PhoneHash]
	if !holders[req.Subject] && len(holders) >= req.MaxIdentitiesPerNumber {
		return otp.ErrNumberTaken
	}
	s.unbind(req.Subject)
	holders = s.numbers[req.PhoneHash]
	if holders == nil {
		holders = make(map[string]bool)
		s.numbers[req.PhoneHash] = holders
	}
	holders[req.Subject] = true
	s.bindings[req.Subject] = otp.BoundPhone{
		PhoneHash:   req.PhoneHash,
		PhoneSealed: bytes.Clone(req.PhoneSealed),
		PhoneMasked: req.PhoneMasked,
		BoundAt:     req.Now,
	}
	return nil
}

// BoundPhone implements otp.Store.
func (s *Store) BoundPhone(ctx context.Context, subject string) (otp.BoundPhone, error) {
	if err := ctx.Err(); err != nil {
		return otp.BoundPhone{}, err
	}
	s.bindMu.Lock()
	defer s.bindMu.Unlock()
	b, ok := s.bindings[subject]
	if !ok {
		return otp.BoundPhone{}, otp.ErrNoBoundPhone
	}
	b.PhoneSealed = bytes.Clone(b.PhoneSealed)
	return b, nil
}

// UnbindPhone implements otp.Store.
func (s *Store) UnbindPhone(ctx context.Context, subject string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.bindMu.Lock()
	defer s.bindMu.Unlock()
	s.unbind(subject)
	return nil
}

// unbind drops the subject's binding and its place in its number's index.
// Callers hold s.bindMu.
func (s *Store) unbind(subject string) {
	b, ok := s.bindings[subject]
	if !ok {
		return
	}
	delete(s.bindings, subject)
	delete(s.numbers[b.PhoneHash], subject)
	if len(s.numbers[b.PhoneHash]) == 0 {
		delete(s.numbers, b.PhoneHash)
	}
}
