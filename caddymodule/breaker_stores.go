package caddymodule

import (
	"context"
	"fmt"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The store modules keep the fraud guard's counts and blocks in the store
// they wrap, so the service finds an otp.BreakerStore in them, as it finds
// the history (history_stores.go). Delegating method by method, rather than
// wrapping the module in a struct that adds the breaker, keeps every other
// optional part of the store (history, replays, claims) visible.
var (
	_ otp.BreakerStore = (*MemoryStore)(nil)
	_ otp.BreakerStore = (*RedisStore)(nil)
)

// breakerOf is the breaker part of a wrapped store.
func breakerOf(s otp.Store) (otp.BreakerStore, error) {
	if b, ok := s.(otp.BreakerStore); ok {
		return b, nil
	}
	return nil, fmt.Errorf("%w (the store is a %T)", otp.ErrNoBreakerStore, s)
}

// breakerStore delegates otp.BreakerStore to the store a module wraps.
type breakerStore struct{ inner func() otp.Store }

func (d breakerStore) IssueGuarded(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	b, err := breakerOf(d.inner())
	if err != nil {
		return otp.IssueResult{}, err
	}
	return b.IssueGuarded(ctx, req)
}

func (d breakerStore) BreakerBlocked(ctx context.Context, scopes []string, now time.Time) (otp.BreakerBlock, bool, error) {
	b, err := breakerOf(d.inner())
	if err != nil {
		return otp.BreakerBlock{}, false, err
	}
	return b.BreakerBlocked(ctx, scopes, now)
}

func (d breakerStore) BreakerCount(ctx context.Context, req otp.BreakerCountRequest) (otp.BreakerCountResult, error) {
	b, err := breakerOf(d.inner())
	if err != nil {
		return otp.BreakerCountResult{}, err
	}
	return b.BreakerCount(ctx, req)
}

func (d breakerStore) BreakerConvert(ctx context.Context, ref string, now time.Time) error {
	b, err := breakerOf(d.inner())
	if err != nil {
		return err
	}
	return b.BreakerConvert(ctx, ref, now)
}

func (d breakerStore) BreakerBlocks(ctx context.Context, now time.Time) ([]otp.BreakerBlock, error) {
	b, err := breakerOf(d.inner())
	if err != nil {
		return nil, err
	}
	return b.BreakerBlocks(ctx, now)
}

func (d breakerStore) BreakerUnblock(ctx context.Context, scope string, now time.Time) (bool, error) {
	b, err := breakerOf(d.inner())
	if err != nil {
		return false, err
	}
	return b.BreakerUnblock(ctx, scope, now)
}

func (d breakerStore) BreakerStats(ctx context.Context, scopes []string, now time.Time, p otp.BreakerPolicy) ([]otp.BreakerTally, error) {
	b, err := breakerOf(d.inner())
	if err != nil {
		return nil, err
	}
	return b.BreakerStats(ctx, scopes, now, p)
}

// IssueGuarded implements otp.BreakerStore.
func (m *MemoryStore) IssueGuarded(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	return m.breaker().IssueGuarded(ctx, req)
}

// BreakerBlocked implements otp.BreakerStore.
func (m *MemoryStore) BreakerBlocked(ctx context.Context, scopes []string, now time.Time) (otp.BreakerBlock, bool, error) {
	return m.breaker().BreakerBlocked(ctx, scopes, now)
}

// BreakerCount implements otp.BreakerStore.
func (m *MemoryStore) BreakerCount(ctx context.Context, req otp.BreakerCountRequest) (otp.BreakerCountResult, error) {
	return m.breaker().BreakerCount(ctx, req)
}

// BreakerConvert implements otp.BreakerStore.
func (m *MemoryStore) BreakerConvert(ctx context.Context, ref string, now time.Time) error {
	return m.breaker().BreakerConvert(ctx, ref, now)
}

// BreakerBlocks implements otp.BreakerStore.
func (m *MemoryStore) BreakerBlocks(ctx context.Context, now time.Time) ([]otp.BreakerBlock, error) {
	return m.breaker().BreakerBlocks(ctx, now)
}

// BreakerUnblock implements otp.BreakerStore.
func (m *MemoryStore) BreakerUnblock(ctx context.Context, scope string, now time.Time) (bool, error) {
	return m.breaker().BreakerUnblock(ctx, scope, now)
}

// BreakerStats implements otp.BreakerStore.
func (m *MemoryStore) BreakerStats(ctx context.Context, scopes []string, now time.Time, p otp.BreakerPolicy) ([]otp.BreakerTally, error) {
	return m.breaker().BreakerStats(ctx, scopes, now, p)
}

func (m *MemoryStore) breaker() breakerStore {
	return breakerStore{func() otp.Store { return m.Store }}
}

// IssueGuarded implements otp.BreakerStore.
func (r *RedisStore) IssueGuarded(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	return r.breaker().IssueGuarded(ctx, req)
}

// BreakerBlocked implements otp.BreakerStore.
func (r *RedisStore) BreakerBlocked(ctx context.Context, scopes []string, now time.Time) (otp.BreakerBlock, bool, error) {
	return r.breaker().BreakerBlocked(ctx, scopes, now)
}

// BreakerCount implements otp.BreakerStore.
func (r *RedisStore) BreakerCount(ctx context.Context, req otp.BreakerCountRequest) (otp.BreakerCountResult, error) {
	return r.breaker().BreakerCount(ctx, req)
}

// BreakerConvert implements otp.BreakerStore.
func (r *RedisStore) BreakerConvert(ctx context.Context, ref string, now time.Time) error {
	return r.breaker().BreakerConvert(ctx, ref, now)
}

// BreakerBlocks implements otp.BreakerStore.
func (r *RedisStore) BreakerBlocks(ctx context.Context, now time.Time) ([]otp.BreakerBlock, error) {
	return r.breaker().BreakerBlocks(ctx, now)
}

// BreakerUnblock implements otp.BreakerStore.
func (r *RedisStore) BreakerUnblock(ctx context.Context, scope string, now time.Time) (bool, error) {
	return r.breaker().BreakerUnblock(ctx, scope, now)
}

// BreakerStats implements otp.BreakerStore.
func (r *RedisStore) BreakerStats(ctx context.Context, scopes []string, now time.Time, p otp.BreakerPolicy) ([]otp.BreakerTally, error) {
	return r.breaker().BreakerStats(ctx, scopes, now, p)
}

func (r *RedisStore) breaker() breakerStore {
	return breakerStore{func() otp.Store { return r.Store }}
}
