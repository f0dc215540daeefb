package memory

import (
	"context"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// limitWindow names one fixed window (Unix milliseconds) of one send-limit
// counter. The counters sit in one flat map keyed by it: most counters (one
// per phone, one per identity) only ever have one window live, and a map of
// their own would cost several times the entry.
type limitWindow struct {
	name, key  string
	start, end int64
}

func windowOf(c otp.LimitCheck, now time.Time) limitWindow {
	start, end := c.Bounds(now)
	return limitWindow{c.Name, c.Key, start.UnixMilli(), end.UnixMilli()}
}

// Limit implements otp.Store: the counters of Issue, without a challenge.
func (s *Store) Limit(ctx context.Context, req otp.LimitRequest) (otp.LimitResult, error) {
	if err := ctx.Err(); err != nil {
		return otp.LimitResult{}, err
	}
	if err := req.Validate(); err != nil {
		return otp.LimitResult{}, err
	}
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	if err := s.refusal(req.Checks, req.Now); err != nil {
		return otp.LimitResult{Refused: err.Limit, RetryAt: err.RetryAt}, nil
	}
	s.raise(req.Checks, req.Now)
	return otp.LimitResult{Allowed: true}, nil
}

// refusal returns the first check, in order, whose counter is at its Max,
// as the error that refuses the send; nil if every one has room. Callers
// hold s.limitsMu.
func (s *Store) refusal(checks []otp.LimitCheck, now time.Time) *otp.RateLimitError {
	for _, c := range checks {
		if s.limits[windowOf(c, now)] >= c.Max {
			_, end := c.Bounds(now)
			return &otp.RateLimitError{Limit: c.Name, RetryAt: end}
		}
	}
	return nil
}

// raise counts one send against every check. Callers hold s.limitsMu and
// have found no refusal.
func (s *Store) raise(checks []otp.LimitCheck, now time.Time) {
	for _, c := range checks {
		s.limits[windowOf(c, now)]++
	}
}

// ResetLimit implements otp.Store. It walks every counter: a reset is an
// operator's rare act, and an index by name and key would cost every send.
func (s *Store) ResetLimit(ctx context.Context, name, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	for w := range s.limits {
		if w.name == name && w.key == key {
			delete(s.limits, w)
		}
	}
	return nil
}

// LimitCount implements otp.Store.
func (s *Store) LimitCount(ctx context.Context, check otp.LimitCheck, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := check.Validate(); err != nil {
		return 0, err
	}
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	return s.limits[windowOf(check, now)], nil
}

// LimitWindows reports how many send-limit windows are held (for tests and
// metrics).
func (s *Store) LimitWindows() int {
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	return len(s.limits)
}

// sweepLimits drops the windows that have ended at now.
func (s *Store) sweepLimits(now time.Time) {
	n := now.UnixMilli()
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	for w := range s.limits {
		if w.end <= n {
			delete(s.limits, w)
		}
	}
}
