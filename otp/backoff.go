package otp

import (
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"time"
)

// Resend backoff with jitter: the wait before an identity's next code
// grows with each code sent within the send window (CooldownBase doubled
// per earlier send, up to CooldownMax), and each wait is lengthened by a
// random share of itself, up to CooldownJitter, drawn from the service's
// random source (crypto/rand) when the send happens. The store keeps the
// result as the identity's NextSendAt, so the page and the API tell the
// user the exact wait they got, while a script cannot know it in advance.

// MaxCooldownJitter is the largest share of a cooldown its jitter may add.
const MaxCooldownJitter = 1.0

// jitterScale is the resolution of a drawn jitter: thousandths of the
// cooldown, as IssueRequest.JitterPermille carries it.
const jitterScale = 1000

// JitteredCooldown is the wait after the n-th send (n >= 1): Cooldown
// lengthened by permille thousandths of itself. The jitter comes after the
// cap, so even a wait at CooldownMax cannot be timed to the millisecond.
func JitteredCooldown(n int, base, max time.Duration, permille int) time.Duration {
	d := Cooldown(n, base, max)
	if permille <= 0 {
		return d
	}
	// Whole milliseconds, as the Redis store computes it.
	ms := d.Milliseconds()
	return d + time.Duration(ms*int64(permille)/jitterScale)*time.Millisecond
}

// drawJitter returns a uniform whole number of thousandths from 0 to
// jitter*1000, read from random (unbiased: crypto/rand.Int rejects what
// would skew it).
func drawJitter(random io.Reader, jitter float64) (int, error) {
	top := int64(jitter * jitterScale)
	if top <= 0 {
		return 0, nil
	}
	n, err := rand.Int(random, big.NewInt(top+1))
	if err != nil {
		return 0, fmt.Errorf("draw the cooldown's jitter: %w", err)
	}
	return int(n.Int64()), nil
}

// validJitter reports whether a cooldown jitter is in range.
func validJitter(j float64) bool {
	return j >= 0 && j <= MaxCooldownJitter
}
