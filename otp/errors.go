package otp

import (
	"errors"
	"fmt"
	"time"
)

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

// RateLimitError says a send limit refused a code. Limit is one of the
// Limit* names.
type RateLimitError struct {
	Limit   string
	RetryAt time.Time
}

func (e *RateLimitError) Error() string {
	return "too many codes sent (" + e.Limit + " limit); retry at " + e.RetryAt.UTC().Format(time.RFC3339)
}

// ErrNoVoice says a call was asked for where no voice gateway is configured
// or there is no code to call about yet.
var ErrNoVoice = errors.New("no voice gateway, or no challenge to call for")

// ErrMalformedCode says the input is not a code of the configured length. It
// is not counted as an attempt: it cannot be a correct guess.
var ErrMalformedCode = errors.New("malformed code")

// ErrLimitName says a reset named no known limit.
var ErrLimitName = errors.New("unknown send limit")

// storeErr passes the store's domain errors through and marks everything
// else as the store being unavailable, so callers fail closed.
func storeErr(err error) error {
	switch {
	case errors.Is(err, ErrChallengeNotFound), errors.Is(err, ErrSendLimit), errors.Is(err, ErrCallLimit), errors.Is(err, ErrStoreUnavailable),
		errors.Is(err, ErrNumberTaken), errors.Is(err, ErrNoBoundPhone), errors.Is(err, ErrBindConflict), isRefusal(err):
		return err
	}
	return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
}

// isRefusal reports whether err is one of the store's typed refusals of a
// send. errors.AsType, unlike errors.As, allocates no target for a miss
// (issue 17: each refused send under a flood paid four).
func isRefusal(err error) bool {
	if _, ok := errors.AsType[*CooldownError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*LockedError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*RateLimitError](err); ok {
		return true
	}
	_, ok := errors.AsType[*BlockedError](err)
	return ok
}
