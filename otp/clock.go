package otp

import "time"

// Clock tells the time. Everything that depends on time takes a Clock so that
// tests can move time forward instead of sleeping.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }
