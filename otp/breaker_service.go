package otp

import (
	"context"
	"errors"
)

// tellBlocks tells OnBlock of each block a send set.
func (s *Service) tellBlocks(blocks []BreakerBlock) {
	if s.cfg.Breaker.OnBlock == nil {
		return
	}
	for _, b := range blocks {
		s.cfg.Breaker.OnBlock(b)
	}
}

// BreakerBlocks lists the breaker's blocks in force (for an operator).
func (s *Service) BreakerBlocks(ctx context.Context) ([]BreakerBlock, error) {
	if s.breaker == nil {
		return nil, nil
	}
	bs, err := s.breaker.BreakerBlocks(ctx, s.clock.Now())
	if err != nil {
		return nil, storeErr(err)
	}
	return bs, nil
}

// ErrNotBlocked says an unblock found no block on what it named.
var ErrNotBlocked = errors.New("no fraud guard block on it")

// Unblock lifts the breaker's blocks on target, a prefix or range
// ("+4477009") or a country ("GB", "+882"), and forgets their counts. It
// returns the scopes lifted, or ErrNotBlocked. This instance stops
// repeating the store's refusal by those scopes at once (refusal_memo.go);
// another instance sharing the store within RefusalHold.
func (s *Service) Unblock(ctx context.Context, target string) ([]string, error) {
	if s.breaker == nil {
		return nil, ErrNotBlocked
	}
	var lifted []string
	for _, kind := range []string{BreakerPrefix, BreakerRange, BreakerCountry} {
		scope := kind + ":" + unblockValue(kind, target)
		ok, err := s.breaker.BreakerUnblock(ctx, scope, s.clock.Now())
		s.refusals.forget(scopeRefusal(scope))
		if err != nil {
			return lifted, storeErr(err)
		}
		if ok {
			lifted = append(lifted, scope)
		}
	}
	if len(lifted) == 0 {
		return nil, ErrNotBlocked
	}
	return lifted, nil
}

// unblockValue normalises what an operator typed the way Scopes writes it.
func unblockValue(kind, target string) string {
	if kind == BreakerCountry {
		return limitValue(LimitCountry, target)
	}
	return limitValue(LimitPrefix, target)
}
