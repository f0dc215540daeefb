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

// Limit implements otp.Store. It raises the counters in request order and,
// when one refuses, lowers those it raised, all under the mutex, so it
// behaves as the Redis store does without its window of doubt.
func (s *Store) Limit(ctx context.Context, req otp.LimitRequest) (otp.LimitResult, error) {
	if err := ctx.Err(); err != nil {
		return otp.LimitResult{}, err
	}
	if err := req.Validate(); err != nil {
		return otp.LimitResult{}, err
	}
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	for i, c := range req.Checks {
		w := windowOf(c, req.Now)
		if s.limits[w] >= c.Max {
			for _, raised := range req.Checks[:i] {
				s.lower(windowOf(raised, req.Now))
			}
			_, end := c.Bounds(req.Now)
			return otp.LimitResult{Refused: c.Name, RetryAt: end}, nil
		}
		s.limits[w]++
	}
	return otp.LimitResult{Allowed: true}, nil
}

// lower undoes one raise of a counter. Callers hold s.limitsMu.
func (s *Store) lower(w limitWindow) {
	if s.limits[w]--; s.limits[w] <= 0 {
		delete(s.limits, w)
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
