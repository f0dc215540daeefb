package otp

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Revocation: the per-identity "not before" that an operator's revoke sets
// (SECURITY.md rule 15), and the cache through which the hot path reads it
// at most once per identity per refresh interval.

// DefaultRevocationRefresh is how long an instance trusts what it last read
// of an identity's not-before before reading it again.
const DefaultRevocationRefresh = 10 * time.Second

// MaxRevocationRefresh is the longest a revocation may take to reach an
// instance.
const MaxRevocationRefresh = 5 * time.Minute

// maxRevocationCache bounds the identities whose not-before an instance
// remembers; past it each new identity displaces one (roomFor).
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

// RevocationInterval is RevocationRefresh with its default applied: how
// long an instance answers from memory before reading a not-before again.
func (c Config) RevocationInterval() time.Duration {
	if c.RevocationRefresh <= 0 {
		return DefaultRevocationRefresh
	}
	return c.RevocationRefresh
}

// Revoke makes every step-up token of subject authenticated before now stop
// passing, on every instance sharing the store (within each instance's
// revocation refresh interval; at once on this one), and kills the
// subject's challenges in flight. It returns the not-before it set: now,
// rounded up to the millisecond, the precision at which it is compared
// with a token's auth time (see Revokes).
func (s *Service) Revoke(ctx context.Context, subject string) (time.Time, error) {
	if subject == "" {
		return time.Time{}, errors.New("revoke: empty identity")
	}
	now := s.clock.Now()
	nb := time.UnixMilli(msCeil(now))
	if err := s.store.Revoke(ctx, subject, nb); err != nil {
		return time.Time{}, storeErr(err)
	}
	s.remember(subject, nb, now)
	return nb, nil
}

// Revokes reports whether a not-before revokes a step-up authenticated at
// authTime. Both are compared in whole milliseconds, the precision of a
// token's auth time and of a stored not-before, with the not-before
// rounded up: a step-up made before it never counts, one made at or after
// it always does, even within the same second.
func Revokes(notBefore, authTime time.Time) bool {
	return !notBefore.IsZero() && authTime.UnixMilli() < msCeil(notBefore)
}

// msCeil is t in Unix milliseconds, rounded up.
func msCeil(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
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
// stays off the store. While one call reads an identity's not-before
// again, concurrent calls answer from what was read before. The times are
// compared as Revokes does.
//
// When the store cannot be read, Revoked keeps the last answer it had (no
// revocation if it never had one) and reports the error; it then tries the
// store again only once the refresh interval has passed, as after a read
// that worked. So a valid cookie still passes while the store is down
// without each request waiting on the store (the hot path needs no store),
// and a revocation made meanwhile takes effect within the refresh interval
// once the store is back.
func (s *Service) Revoked(ctx context.Context, subject string, authTime time.Time) (bool, error) {
	now := s.clock.Now()
	nb, due := s.dueForRead(subject, now)
	if due {
		at, err := s.store.NotBefore(ctx, subject)
		if err != nil {
			s.placeholder(subject, now)
			return nb.revokes(authTime), storeErr(err)
		}
		nb = s.remember(subject, at, now)
	}
	return nb.revokes(authTime), nil
}

// revokes reports whether a token authenticated at authTime is revoked.
func (nb notBefore) revokes(authTime time.Time) bool {
	return Revokes(nb.at, authTime)
}

// dueForRead returns what is known of subject's not-before, and whether it
// is to be read from the store now. An identity already known is claimed
// for the read (its checked time set to now), so that concurrent calls, and
// calls while the store is down, answer from memory until the next
// interval. One never read is not: every call reads until a read worked,
// or failed and left a placeholder with no revocation.
func (s *Service) dueForRead(subject string, now time.Time) (notBefore, bool) {
	refresh := s.cfg.RevocationInterval()
	stale := func(nb notBefore) bool { return now.Sub(nb.checked) >= refresh || now.Before(nb.checked) }
	s.revoked.mu.RLock()
	nb, ok := s.revoked.m[subject]
	s.revoked.mu.RUnlock()
	if !ok {
		// No placeholder yet: a read that may still succeed must not be
		// pre-empted by an answer of "no revocation".
		return nb, true
	}
	if !stale(nb) {
		return nb, false
	}
	s.revoked.mu.Lock()
	defer s.revoked.mu.Unlock()
	nb, ok = s.revoked.m[subject]
	if !ok || !stale(nb) {
		return nb, !ok
	}
	s.revoked.m[subject] = notBefore{at: nb.at, checked: now}
	return nb, true
}

// placeholder notes a failed first read of subject's not-before at now, as
// no revocation, unless something is known of it by now.
func (s *Service) placeholder(subject string, now time.Time) {
	s.revoked.mu.Lock()
	defer s.revoked.mu.Unlock()
	if _, ok := s.revoked.m[subject]; ok {
		return
	}
	s.revoked.roomFor(subject)
	s.revoked.m[subject] = notBefore{checked: now}
}

// remember caches subject's not-before as read (or set) at checked, and
// returns what it keeps: a not-before never moves back.
func (s *Service) remember(subject string, at, checked time.Time) notBefore {
	s.revoked.mu.Lock()
	defer s.revoked.mu.Unlock()
	s.revoked.roomFor(subject)
	if old, ok := s.revoked.m[subject]; ok && old.at.After(at) {
		at = old.at
	}
	nb := notBefore{at: at, checked: checked}
	s.revoked.m[subject] = nb
	return nb
}
