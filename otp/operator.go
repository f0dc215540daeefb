package otp

import (
	"context"
	"errors"
	"time"
)

// Operator actions: what `caddy sms-stepup unlock|reset-number|
// reset-budget|status` do (revoke is in revocation.go). They act on the
// store only, so they take effect on every instance that shares it.

// Unlock forgets subject's wrong-code count and lock-out.
func (s *Service) Unlock(ctx context.Context, subject string) error {
	if subject == "" {
		return errors.New("unlock: empty identity")
	}
	if err := s.store.Unlock(ctx, subject); err != nil {
		return storeErr(err)
	}
	return nil
}

// ResetNumber removes subject's bound phone number (an operator's reset,
// SECURITY.md rule 13), so the next step-up enrols a number afresh. It
// returns the masked number that was bound, or ErrNoBoundPhone.
func (s *Service) ResetNumber(ctx context.Context, subject string) (string, error) {
	if subject == "" {
		return "", errors.New("reset number: empty identity")
	}
	b, err := s.store.BoundPhone(ctx, subject)
	if err != nil {
		if errors.Is(err, ErrNoBoundPhone) {
			return "", err
		}
		return "", storeErr(err)
	}
	if err := s.store.UnbindPhone(ctx, subject); err != nil {
		return "", storeErr(err)
	}
	return s.keys.OpenMasked(subject, b.PhoneMasked), nil
}

// Locked lists up to max identities locked out now, and how many there are.
func (s *Service) Locked(ctx context.Context, max int) ([]LockedIdentity, int, error) {
	l, n, err := s.store.Locked(ctx, s.clock.Now(), max)
	if err != nil {
		return nil, 0, storeErr(err)
	}
	return l, n, nil
}

// Budget is the state of the daily send budget.
type Budget struct {
	// Max is the configured budget; 0 means there is none.
	Max int
	// Used is what today's window (UTC) has counted.
	Used int
	// ResetAt is when the window ends.
	ResetAt time.Time
}

// Left is the sends the budget still allows: 0 also when there is no
// budget (Max 0), which does not stop any send.
func (b Budget) Left() int {
	if b.Used >= b.Max {
		return 0
	}
	return b.Max - b.Used
}

// DailyBudget reads the daily send budget without counting against it.
func (s *Service) DailyBudget(ctx context.Context) (Budget, error) {
	max := s.cfg.Limits.DailyBudget
	if max <= 0 {
		return Budget{}, nil
	}
	check := LimitCheck{Name: LimitDailyBudget, Key: s.keys.LimitKey(LimitDailyBudget, ""), Max: max, Window: 24 * time.Hour}
	now := s.clock.Now()
	_, end := check.Bounds(now)
	used, err := s.store.LimitCount(ctx, check, now)
	if err != nil {
		return Budget{}, storeErr(err)
	}
	return Budget{Max: max, Used: used, ResetAt: end}, nil
}
