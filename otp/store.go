package otp

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Challenge is one step-up in progress: a code sent to one phone for one
// identity and session. The code itself is never kept, only its MAC.
type Challenge struct {
	ID          string    `json:"id"`
	Subject     string    `json:"sub"`
	SessionHash string    `json:"sid,omitempty"`
	PhoneHash   string    `json:"ph"`
	PhoneMasked string    `json:"pm"`
	CodeMAC     []byte    `json:"mac"`
	CreatedAt   time.Time `json:"created"`
	SentAt      time.Time `json:"sent"`
	ExpiresAt   time.Time `json:"exp"`
	Sends       int       `json:"sends"`
	Attempts    int       `json:"attempts"`
	MaxAttempts int       `json:"max_attempts"`
	// Calls is how many of the sends were voice calls.
	Calls int `json:"calls,omitempty"`
	// Delivery is the latest status the provider reported for the current
	// code, if any.
	Delivery DeliveryStatus `json:"delivery,omitempty"`
}

// Remaining is the number of verification attempts left.
func (c *Challenge) Remaining() int {
	if r := c.MaxAttempts - c.Attempts; r > 0 {
		return r
	}
	return 0
}

// IssueRequest asks the store to create a challenge, or to put a new code in
// an existing one (a resend). Both are gated by the identity's lock and its
// send cooldown, in the same atomic step.
type IssueRequest struct {
	// Challenge is the challenge to create. For a resend its ID names the
	// existing challenge, which must belong to the same subject, session and
	// phone and still have attempts left; only CodeMAC, SentAt and ExpiresAt
	// are taken from it.
	Challenge Challenge
	Resend    bool
	// Voice marks a resend by phone call; it also counts against MaxCalls.
	Voice    bool
	MaxCalls int
	Now      time.Time
	// MaxSends caps the codes one challenge may receive.
	MaxSends int
	// CooldownBase is the wait after the first send; each later send of the
	// same identity doubles it, up to CooldownMax.
	CooldownBase time.Duration
	CooldownMax  time.Duration
	// SendWindow is how long an identity's send count is remembered after
	// its last send (and so how long cooldowns keep growing).
	SendWindow time.Duration
}

// VerifyRequest asks the store to count an attempt, compare the code MAC in
// constant time and, on a match, consume the challenge: one atomic step.
type VerifyRequest struct {
	Subject     string
	ChallengeID string
	SessionHash string
	CodeMAC     []byte
	Now         time.Time
	Failures    FailurePolicy
}

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

// VerifyStatus is the outcome of one verification attempt.
type VerifyStatus int

// The outcomes of Store.Verify.
const (
	// VerifyOK: the code matched and the challenge is consumed.
	VerifyOK VerifyStatus = iota + 1
	// VerifyWrong: the code did not match; attempts remain.
	VerifyWrong
	// VerifyExhausted: the code did not match (or had no attempts left) and
	// the challenge is dead; a new code is needed.
	VerifyExhausted
	// VerifyNotFound: no live challenge of that id for this identity and
	// session (expired, used, or never made). Nothing was counted.
	VerifyNotFound
	// VerifyLocked: the identity is locked out; nothing was compared.
	VerifyLocked
)

func (s VerifyStatus) String() string {
	switch s {
	case VerifyOK:
		return "ok"
	case VerifyWrong:
		return "wrong_code"
	case VerifyExhausted:
		return "attempts_exhausted"
	case VerifyNotFound:
		return "no_challenge"
	case VerifyLocked:
		return "locked"
	}
	return fmt.Sprintf("VerifyStatus(%d)", int(s))
}

// VerifyResult reports what Store.Verify did.
type VerifyResult struct {
	Status VerifyStatus
	// Remaining attempts on the challenge after this one.
	Remaining int
	// Failures is the identity's consecutive failure count after this one.
	Failures int
	// LockedUntil is set when the identity is locked out.
	LockedUntil time.Time
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

// Store keeps challenges, per-identity counters, send limits and phone
// bindings. Every method that reads and then writes does so atomically:
// implementations use a mutex (memory) or a single Lua script (Redis), never
// a check-then-act across round trips. All keys of one identity can share a
// hash tag, so a Redis Cluster runs each operation on one node; the two
// exceptions, Limit (one counter per check) and BindPhone (the identity and
// the number's index), are ordered single-key steps whose partial states
// only ever refuse more, never less.
type Store interface {
	// Issue creates a challenge or puts a new code in an existing one. It
	// fails with *LockedError, *CooldownError, ErrSendLimit or
	// ErrChallengeNotFound, and changes nothing when it fails.
	Issue(ctx context.Context, req IssueRequest) (*Challenge, error)
	// Challenge returns a live challenge of the subject, or
	// ErrChallengeNotFound.
	Challenge(ctx context.Context, subject, id string, now time.Time) (*Challenge, error)
	// Verify counts, compares and consumes in one atomic step.
	Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error)
	// Identity returns the subject's counters (zero if none).
	Identity(ctx context.Context, subject string, now time.Time) (IdentityState, error)
	// SetDelivery records a provider's report on a live challenge's current
	// code. A status never replaces one that came later in the delivery
	// ("sent" after "delivered"); a report for a gone challenge is dropped.
	SetDelivery(ctx context.Context, subject, id string, status DeliveryStatus, now time.Time) error

	// Limit counts one send against every check, or against none: each
	// check's counter is raised in request order only while it is below
	// its Max, and when a later check refuses, the counters already raised
	// are lowered again, so a refused send costs nothing. A Redis Cluster
	// cannot hold every counter in one slot, so there each check is its own
	// atomic step and the lowering a separate one: meanwhile a concurrent
	// send may find a counter briefly fuller than it is and be refused. That
	// errs towards refusing; no check ever lets more than Max through.
	Limit(ctx context.Context, req LimitRequest) (LimitResult, error)
	// ResetLimit forgets every window of the counter name and key (an
	// operator's reset of the daily budget, say).
	ResetLimit(ctx context.Context, name, key string) error

	// BindPhone binds a phone number to the subject, replacing any number
	// it had (which is then free for others). It fails with ErrNumberTaken
	// when MaxIdentitiesPerNumber other identities are bound to the number
	// already, and with ErrBindConflict when a concurrent bind or unbind of
	// the same identity won; either way the binding is unchanged. Bindings
	// are the one thing a store keeps without expiry.
	BindPhone(ctx context.Context, req BindRequest) error
	// BoundPhone returns the subject's binding, or ErrNoBoundPhone.
	BoundPhone(ctx context.Context, subject string) (BoundPhone, error)
	// UnbindPhone removes the subject's binding, if any.
	UnbindPhone(ctx context.Context, subject string) error

	// Revoke sets the subject's "not before" (SECURITY.md rule 15): step-up
	// tokens authenticated before it stop passing, and the subject's
	// challenges created before it are gone (Verify answers VerifyNotFound,
	// Challenge and a resend ErrChallengeNotFound), in the same atomic step
	// as the rest of those operations. A later Revoke moves it forward; an
	// earlier one changes nothing. Like bindings, revocations do not
	// expire. A store may keep the not-before rounded up to its precision
	// (Redis: milliseconds), which errs towards revoking.
	Revoke(ctx context.Context, subject string, notBefore time.Time) error
	// NotBefore returns the subject's not-before, or the zero time.
	NotBefore(ctx context.Context, subject string) (time.Time, error)
	// Unlock forgets the subject's wrong-code count and lock-out (an
	// operator's unlock). Send counts, cooldowns and limits stay.
	Unlock(ctx context.Context, subject string) error
	// Locked lists up to max identities locked out at now (all of them
	// when max < 0), the latest lock-out end first, and the total number
	// locked. It is for an operator: a store may have to pass over all it
	// holds, and what it returns is no snapshot of one instant.
	Locked(ctx context.Context, now time.Time, max int) (locked []LockedIdentity, total int, err error)
	// LimitCount returns how many sends the window of check that holds now
	// has counted (for an operator's status: the daily budget left).
	LimitCount(ctx context.Context, check LimitCheck, now time.Time) (int, error)
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

// BindRequest binds a phone number to an identity.
type BindRequest struct {
	Subject string
	// PhoneHash (Keys.PhoneHash) identifies the number in the store.
	PhoneHash string
	// PhoneSealed (Keys.SealPhone) gives the number back to the service,
	// and only to it.
	PhoneSealed []byte
	PhoneMasked string
	// MaxIdentitiesPerNumber caps the identities one number may vouch for.
	MaxIdentitiesPerNumber int
	Now                    time.Time
}

// Validate reports a request no store should act on.
func (r BindRequest) Validate() error {
	switch {
	case r.Subject == "":
		return errors.New("bind phone: empty subject")
	case r.PhoneHash == "" || len(r.PhoneSealed) == 0:
		return errors.New("bind phone: missing phone hash or sealed number")
	case r.MaxIdentitiesPerNumber < 1:
		return fmt.Errorf("bind phone: max identities per number %d, expected at least 1", r.MaxIdentitiesPerNumber)
	}
	return nil
}

// BoundPhone is the number bound to an identity, as the store keeps it.
type BoundPhone struct {
	PhoneHash   string
	PhoneSealed []byte
	PhoneMasked string
	BoundAt     time.Time
}

// Errors returned by stores and the Service.
var (
	ErrChallengeNotFound = errors.New("no live challenge")
	ErrSendLimit         = errors.New("too many codes sent for this challenge")
	ErrCallLimit         = errors.New("too many calls for this challenge")
	// ErrStoreUnavailable wraps any failure to reach the store. Callers fail
	// closed on it: no SMS, no pass-through.
	ErrStoreUnavailable = errors.New("store unavailable")
	// ErrNumberTaken says the number is bound to as many other identities
	// as it may be.
	ErrNumberTaken = errors.New("this number is already in use by another account")
	// ErrNoBoundPhone says the identity has no phone number bound.
	ErrNoBoundPhone = errors.New("no phone number is bound to this identity")
	// ErrBindConflict says another change to the identity's binding came
	// in while this one was under way, and won: this one did not take
	// effect.
	ErrBindConflict = errors.New("the phone binding changed at the same time; try again")
)

// CooldownError says a code was sent too recently.
type CooldownError struct{ RetryAt time.Time }

func (e *CooldownError) Error() string {
	return "a code was sent recently; retry at " + e.RetryAt.UTC().Format(time.RFC3339)
}

// LockedError says the identity is locked out after too many wrong codes.
type LockedError struct{ Until time.Time }

func (e *LockedError) Error() string {
	return "locked out after too many wrong codes until " + e.Until.UTC().Format(time.RFC3339)
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

// Cooldown returns the wait after the n-th send (n >= 1): base doubled for
// each earlier send, capped at max.
func Cooldown(n int, base, max time.Duration) time.Duration {
	return doubling(n-1, base, max)
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

func doubling(k int, base, max time.Duration) time.Duration {
	d := base
	for i := 0; i < k && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}
