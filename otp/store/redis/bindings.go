package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// BindPhone implements otp.Store in the ordered steps described in
// scripts.go: reserve, claim the number, bind, release older claims. A
// failure after the claim leaves the number claimed by this identity
// without a binding; a failure while releasing leaves the old number
// claimed. Both only make numbers look fuller than they are, and both are
// cleared by the identity's next bind or unbind. The binding is in effect
// once bindScript applied, so a failure to release is not reported.
func (s *Store) BindPhone(ctx context.Context, req otp.BindRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	seq, err := s.reserve(ctx, req)
	if err != nil {
		return err
	}
	if err := s.claim(ctx, req, seq); err != nil {
		return err
	}
	return s.apply(ctx, req, seq)
}

// reserve draws the attempt's seq and records the claim it will make.
func (s *Store) reserve(ctx context.Context, req otp.BindRequest) (int64, error) {
	seq, err := reserveScript.Run(ctx, s.client, []string{s.bindKey(req.Subject)}, req.PhoneHash).Int64()
	if err != nil {
		return 0, fmt.Errorf("redis bind phone: %w", err)
	}
	return seq, nil
}

// claim puts the identity in the number's index, or fails with
// otp.ErrNumberTaken. A refused claim stays recorded, so that a claim of a
// concurrent attempt on the same number is still released by a later bind.
func (s *Store) claim(ctx context.Context, req otp.BindRequest, seq int64) error {
	claimed, err := claimScript.Run(ctx, s.client, []string{s.numberKey(req.PhoneHash)},
		tagHash(req.Subject), seq, req.MaxIdentitiesPerNumber).Int()
	if err != nil {
		return fmt.Errorf("redis bind phone: %w", err)
	}
	if claimed == 0 {
		return otp.ErrNumberTaken
	}
	return nil
}

// apply writes the binding unless a later bind or unbind applied first,
// then releases the claims the binding in effect does not need.
func (s *Store) apply(ctx context.Context, req otp.BindRequest, seq int64) error {
	res, err := bindScript.Run(ctx, s.client, []string{s.bindKey(req.Subject)},
		seq, req.PhoneHash, string(req.PhoneSealed), req.PhoneMasked, ms(req.Now)).Slice()
	if err != nil {
		return fmt.Errorf("redis bind phone: %w", err)
	}
	if len(res) != 2 {
		return fmt.Errorf("redis bind phone: unexpected reply %v", res)
	}
	pending, _ := res[1].([]any)
	status, _ := res[0].(string)
	if status != "ok" {
		// A later bind or unbind won. Its release may have run before this
		// claim landed, so this attempt releases its own claim too.
		pending = append(pending, req.PhoneHash, strconv.FormatInt(seq, 10))
	}
	s.release(ctx, req.Subject, pending)
	if status != "ok" {
		return otp.ErrBindConflict
	}
	return nil
}

// release drops the identity's claims listed as phone hash, seq pairs, and
// then their records. What fails stays recorded for the next bind or
// unbind.
func (s *Store) release(ctx context.Context, subject string, pending []any) {
	member, bind := tagHash(subject), s.bindKey(subject)
	for i := 0; i+1 < len(pending); i += 2 {
		ph, _ := pending[i].(string)
		seq, _ := pending[i+1].(string)
		if err := releaseScript.Run(ctx, s.client, []string{s.numberKey(ph)}, member, seq).Err(); err != nil {
			continue
		}
		forgetScript.Run(ctx, s.client, []string{bind}, ph, seq)
	}
}

// BoundPhone implements otp.Store.
func (s *Store) BoundPhone(ctx context.Context, subject string) (otp.BoundPhone, error) {
	v, err := s.client.HMGet(ctx, s.bindKey(subject), "ph", "sealed", "pm", "at").Result()
	if err != nil {
		return otp.BoundPhone{}, fmt.Errorf("redis bound phone: %w", err)
	}
	ph, _ := v[0].(string)
	if ph == "" {
		return otp.BoundPhone{}, otp.ErrNoBoundPhone
	}
	sealed, _ := v[1].(string)
	masked, _ := v[2].(string)
	return otp.BoundPhone{PhoneHash: ph, PhoneSealed: []byte(sealed), PhoneMasked: masked, BoundAt: fromMS(toInt(v[3]))}, nil
}

// UnbindPhone implements otp.Store: the binding goes in one step, then the
// identity's claims on number indexes are released as after a bind.
func (s *Store) UnbindPhone(ctx context.Context, subject string) error {
	pending, err := unbindScript.Run(ctx, s.client, []string{s.bindKey(subject)}).Slice()
	if err != nil {
		return fmt.Errorf("redis unbind phone: %w", err)
	}
	s.release(ctx, subject, pending)
	return nil
}
