package otp

import (
	"context"
	"time"
)

// Store keeps challenges, per-identity counters, send limits and phone
// bindings. Every method that reads and then writes does so atomically:
// implementations use a mutex (memory) or a single Lua script (Redis), never
// a check-then-act across round trips. All keys of one identity share a hash
// tag, so a Redis Cluster runs each operation on them on one node. Three
// operations span keys that a Cluster keeps in different slots: Issue (the
// identity and one counter per send limit; with BreakerStore.IssueGuarded
// the breaker's keys too), Limit (the counters) and
// BindPhone (the identity and the number's index). On a Cluster they run as
// ordered single-slot steps whose partial states only ever refuse more,
// never less; in memory, on a single Redis and on Sentinel, Issue and Limit
// are one atomic step each.
type Store interface {
	// Issue makes one send: it creates a challenge or puts a new code in
	// an existing one, and counts the send against every limit of the
	// request, as one decision. It fails with *LockedError,
	// *CooldownError, ErrSendLimit, ErrCallLimit, ErrChallengeNotFound or
	// *RateLimitError (the first limit, in request order, at its Max, and
	// the end of its window), and a send that fails counts nothing and
	// changes nothing. On a Redis Cluster the limits are counted one per
	// step and lowered again when a later step refuses: meanwhile a
	// concurrent send may find a counter briefly fuller than it is and be
	// refused. That errs towards refusing; no limit ever lets more than
	// Max through.
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

	// Limit counts a send that makes no challenge (an operator's test
	// message) against every check, or against none: each check's counter
	// is raised in request order only while it is below its Max, and when
	// a later check refuses, the counters already raised are lowered
	// again, so a refused send costs nothing. The counters are the ones
	// Issue counts. On a Redis Cluster each check is its own step, as in
	// Issue.
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
