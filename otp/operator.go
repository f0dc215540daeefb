package otp

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Operator actions: what `caddy sms-stepup unlock|revoke|reset-number|
// reset-budget|status` do, and the per-identity "not before" that revoke
// sets (SECURITY.md rule 15). They act on the store only, so they take
// effect on every instance that shares it.

// DefaultRevocationRefresh is how long an instance trusts what it last read
// of an identity's not-before before reading it again.
const DefaultRevocationRefresh = 10 * time.Second

// MaxRevocationRefresh is the longest a revocation may take to reach an
// instance.
const MaxRevocationRefresh = 5 * time.Minute

// maxRevocationCache bounds the identities whose not-before an instance
// remembers; past it the cache starts over (each entry is re-read once).
const maxRevocationCache = 100000

// revocations caches not-before times by subject, so the hot path reads the
// store at most once per identity per refresh interval.
type revocations struct {
	mu sync.RWMutex
	m  map[string]notBefore
}

type notBefore struct {
	at      time.Time // the not-before; zero if none
	checked time.Time // when it was read from the store
}

// Revoke makes every step-up token of subject authenticated before now stop
// passing, on every instance sharing the store (within each instance's
// revocation refresh interval; at once on this one), and kills the
// subject's challenges in flight. It returns the not-before it set.
func (s *Service) Revoke(ctx context.Context, subject string) (time.Time, error) {
	if subject == "" {
		return time.Time{}, errors.New("revoke: empty identity")
	}
	now := s.clock.Now()
	if err := s.store.Revoke(ctx, subject, now); err != nil {
		return time.Time{}, storeErr(err)
	}
	s.remember(subject, now, now)
	return now, nil
}

// Unlock forgets subject's wrong-code count and lock-out.
func (s *Service) Unlock(ctx context.Context, subject string) error {
	if subject == "" {
		return errors.New("unlock: empty identity")
	}
	return storeErr(s.store.Unlock(ctx, subject))
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
	return b.PhoneMasked, nil
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

// Left is the sends the budget still allows.
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

// NotBefore returns subject's not-before as the store has it (zero if
// none), reading the store every time.
func (s *Service) NotBefore(ctx context.Context, subject string) (time.Time, error) {
	t, err := s.store.NotBefore(ctx, subject)
	if err != nil {
		return time.Time{}, storeErr(err)
	}
	return t, nil
}

// Revoked reports whether a token of subject authenticated at authTime has
// been revoked. It reads the store at most once per identity per
// RevocationRefresh; in between it answers from memory, so the hot path
// stays off the store. A token's auth_time has whole seconds while a
// not-before has milliseconds, so a token made in the same second as a
// revocation counts as revoked: the error is towards asking again.
//
// When the store cannot be read, Revoked keeps the last answer it had (no
// revocation if it never had one) and reports the error: a valid cookie
// still passes while the store is down (the hot path needs no store), and a
// revocation made meanwhile takes effect once the store is back.
func (s *Service) Revoked(ctx context.Context, subject string, authTime time.Time) (bool, error) {
	now := s.clock.Now()
	refresh := s.cfg.RevocationRefresh
	if refresh <= 0 {
		refresh = DefaultRevocationRefresh
	}
	s.revoked.mu.RLock()
	nb, ok := s.revoked.m[subject]
	s.revoked.mu.RUnlock()
	var err error
	if !ok || now.Sub(nb.checked) >= refresh || now.Before(nb.checked) {
		var at time.Time
		at, err = s.store.NotBefore(ctx, subject)
		if err == nil {
			nb = notBefore{at: at, checked: now}
			s.remember(subject, at, now)
		} else {
			err = storeErr(err)
		}
	}
	return !nb.at.IsZero() && authTime.Before(nb.at), err
}

// remember caches subject's not-before as read (or set) at checked.
func (s *Service) remember(subject string, at, checked time.Time) {
	s.revoked.mu.Lock()
	defer s.revoked.mu.Unlock()
	if s.revoked.m == nil || len(s.revoked.m) >= maxRevocationCache {
		s.revoked.m = make(map[string]notBefore)
	}
	if old, ok := s.revoked.m[subject]; ok && old.at.After(at) {
		at = old.at
	}
	s.revoked.m[subject] = notBefore{at: at, checked: checked}
}
