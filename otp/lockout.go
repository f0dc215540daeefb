package otp

import "time"

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
	// Subject is empty when the store cannot name the identity: Redis
	// keeps identities hashed and the subject only in the record of a
	// lock-out, so one written before it did so is listed without it.
	Subject  string
	Failures int
	Until    time.Time
}
