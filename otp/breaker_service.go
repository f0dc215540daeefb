package otp

import (
	"context"
	"errors"
)

// breakerAdmits returns the scopes a send to phone counts in, or
// *BlockedError when one of them is blocked. It only reads, and comes before
// the store's send, so a blocked send spends no cooldown, send limit or
// daily budget.
func (s *Service) breakerAdmits(ctx context.Context, phone Phone) ([]string, error) {
	if s.breaker == nil {
		return nil, nil
	}
	scopes := s.cfg.Breaker.Scopes(phone)
	b, blocked, err := s.breaker.BreakerBlocked(ctx, scopes, s.clock.Now())
	if err != nil {
		return nil, storeErr(err)
	}
	if blocked {
		return nil, &BlockedError{Scope: b.Scope, Until: b.Until}
	}
	return scopes, nil
}

// breakerCounts counts a send that the store passed, just before it goes to
// the gateway, and tells OnBlock of each block it set. The store refuses it
// if a concurrent send set a block since breakerAdmits, so no more than
// MinSends unverified sends reach one population however many run at once.
func (s *Service) breakerCounts(ctx context.Context, ref string, scopes []string) error {
	if s.breaker == nil {
		return nil
	}
	res, err := s.breaker.BreakerCount(ctx, BreakerCountRequest{
		Ref: ref, Scopes: scopes, Now: s.clock.Now(), RefTTL: s.cfg.CodeTTL, Policy: s.cfg.Breaker,
	})
	if err != nil {
		return storeErr(err)
	}
	if s.cfg.Breaker.OnBlock != nil {
		for _, b := range res.NewBlocks {
			s.cfg.Breaker.OnBlock(b)
		}
	}
	if res.Blocked != nil {
		return &BlockedError{Scope: res.Blocked.Scope, Until: res.Blocked.Until}
	}
	return nil
}

// breakerConverts counts a verified code as a conversion of its challenge's
// sends. A failure here is not the user's: the code did verify. A lost
// conversion only makes the breaker stricter, which is the side to err on,
// so it does not fail the verification.
func (s *Service) breakerConverts(ctx context.Context, challengeID string) {
	if s.breaker == nil {
		return
	}
	_ = s.breaker.BreakerConvert(ctx, challengeID, s.clock.Now())
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
// returns the scopes lifted, or ErrNotBlocked.
func (s *Service) Unblock(ctx context.Context, target string) ([]string, error) {
	if s.breaker == nil {
		return nil, ErrNotBlocked
	}
	var lifted []string
	for _, kind := range []string{BreakerPrefix, BreakerRange, BreakerCountry} {
		scope := kind + ":" + unblockValue(kind, target)
		ok, err := s.breaker.BreakerUnblock(ctx, scope, s.clock.Now())
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
