package otp

import (
	"context"
	"time"
)

// Reading the breaker's counts without counting (issue 15 follow-up): the
// CAPTCHA's risk takes a number whose population is heading for a block
// as a sign of pumping, before the block itself.

// BreakerTally is what the window holds of one scope.
type BreakerTally struct {
	Scope              string
	Sends, Conversions int
}

// BreakerStatsStore is the read-only part of a BreakerStore, apart so that
// a caller that only judges risk asks for no more.
type BreakerStatsStore interface {
	// BreakerStats returns, per scope in order, the sends and conversions
	// of the window of policy ending at now, in one atomic read. It counts
	// nothing and changes no block; an unknown scope has zero of both.
	BreakerStats(ctx context.Context, scopes []string, now time.Time, policy BreakerPolicy) ([]BreakerTally, error)
}

// Watches reports whether a population with sends and conversions in the
// window is heading for a block: it has had at least half of MinSends
// sends and verifies less than MinConversion of them. It judges with the
// integer arithmetic of Trips.
func (p BreakerPolicy) Watches(sends, conversions int) bool {
	return p.On() && 2*sends >= p.MinSends && conversions*1000 < p.MinConversionPermille()*sends
}

// BreakerWatching reports whether the breaker is watching a population of
// phone (the first such scope: prefix, range, then country): false when
// the breaker is off. A store that can't be read is an error, for the
// caller to fail closed on.
func (s *Service) BreakerWatching(ctx context.Context, phone Phone) (bool, string, error) {
	if s.breaker == nil || !s.cfg.Breaker.On() {
		return false, "", nil
	}
	ts, err := s.breaker.BreakerStats(ctx, s.cfg.Breaker.Scopes(phone), s.clock.Now(), s.cfg.Breaker)
	if err != nil {
		return false, "", storeErr(err)
	}
	for _, t := range ts {
		if s.cfg.Breaker.Watches(t.Sends, t.Conversions) {
			return true, t.Scope, nil
		}
	}
	return false, "", nil
}
