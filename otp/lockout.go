package otp

import (
	"context"
	"time"
)

// FailurePolicy limits wrong codes per identity across all its challenges
// (NIST SP 800-63B 3.2.2). A new code does not reset the count; a correct one
// does.
type FailurePolicy struct {
	// Budget is how many consecutive failures are free of delay.
	Budget int
	// DelayBase is the first lock-out once Budget is spent; each further
	// failure doubles it, up to DelayMax.
	DelayBase time.Duration
	DelayMax  time.Duration
	// HardLimit locks the identity for HardLock, in effect until an
	// operator unlocks it (`caddy sms-stepup unlock`): SECURITY.md rule 7
	// and NIST SP 800-63B 3.2.2 allow never more than 100 consecutive
	// failures, so the count must not simply expire. Never more than 100.
	HardLimit int
	// Window is how long the failure count is kept after the last failure.
	Window time.Duration
}

// LockDelay returns the lock-out after failures consecutive wrong codes, or 0
// while they are within the budget.
func (p FailurePolicy) LockDelay(failures int) time.Duration {
	if failures < p.Budget {
		return 0
	}
	if failures >= p.HardLimit {
		return HardLock
	}
	return doubling(failures-p.Budget, p.DelayBase, p.DelayMax)
}

// HardLock is the lock-out once FailurePolicy.HardLimit consecutive wrong
// codes are reached: long enough to mean "until an operator unlocks it".
// The failure count is kept as long as the lock, so the identity never gets
// a further 100 tries by waiting.
const HardLock = 100 * 365 * 24 * time.Hour

// IsHardLock reports whether a lock-out ending at until, seen at now, is the
// hard lock (which only an operator lifts) rather than a timed delay.
func IsHardLock(until, now time.Time) bool {
	return until.Sub(now) > 10*365*24*time.Hour
}

// IdentityState is what the store knows of one identity's recent activity.
type IdentityState struct {
	Failures    int
	LockedUntil time.Time
	Sends       int
	NextSendAt  time.Time
}

// Locked reports whether the identity may not verify or send at now.
func (s IdentityState) Locked(now time.Time) bool {
	return now.Before(s.LockedUntil)
}

// LockedIdentity is one identity locked out after wrong codes.
type LockedIdentity struct {
	// Subject names the identity. A store that keeps identities hashed
	// (Redis) leaves it empty and returns SealedSubject, the sealed name
	// that came with the lock-out's VerifyRequest, which the Service opens
	// into Subject. Both are empty for a lock-out the store cannot name
	// (one written by an older version, or sealed under a key since
	// rotated away).
	Subject       string
	SealedSubject []byte
	Failures      int
	Until         time.Time
}

// sealedSubjects hands a store each identity sealed with the verification
// that may lock it out, and opens the sealed names in the store's list of
// lock-outs: so a store that keeps identities hashed (Redis) never holds one
// in clear, yet an operator's list names them (issue 13). The Service puts
// it in front of its store.
type sealedSubjects struct {
	Store
	keys *Keys
}

// Verify implements Store.
func (s sealedSubjects) Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error) {
	sealed, err := s.keys.SealSubject(req.Subject)
	if err != nil {
		return VerifyResult{}, err
	}
	req.SealedSubject = sealed
	return s.Store.Verify(ctx, req)
}

// Locked implements Store. A name that does not open is left out, and the
// identity listed without it.
func (s sealedSubjects) Locked(ctx context.Context, now time.Time, max int) ([]LockedIdentity, int, error) {
	locked, total, err := s.Store.Locked(ctx, now, max)
	for i, l := range locked {
		if l.Subject == "" && len(l.SealedSubject) > 0 {
			locked[i].Subject, _ = s.keys.OpenSubject(l.SealedSubject)
		}
		locked[i].SealedSubject = nil
	}
	return locked, total, err
}
