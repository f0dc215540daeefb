package caddymodule

import (
	"context"
	"fmt"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The store modules keep the send history in the store they wrap, so the
// service finds an otp.HistoryStore in them.
var (
	_ otp.HistoryStore = (*MemoryStore)(nil)
	_ otp.HistoryStore = (*RedisStore)(nil)
)

// historyOf is the history part of a wrapped store.
func historyOf(s otp.Store) (otp.HistoryStore, error) {
	if hs, ok := s.(otp.HistoryStore); ok {
		return hs, nil
	}
	return nil, fmt.Errorf("the store %T cannot keep a send history", s)
}

// AppendHistory implements otp.HistoryStore.
func (m *MemoryStore) AppendHistory(ctx context.Context, rec otp.HistoryRecord) error {
	hs, err := historyOf(m.Store)
	if err != nil {
		return err
	}
	return hs.AppendHistory(ctx, rec)
}

// History implements otp.HistoryStore.
func (m *MemoryStore) History(ctx context.Context, key string, since, now time.Time, retention time.Duration, max int) ([]otp.HistoryItem, error) {
	hs, err := historyOf(m.Store)
	if err != nil {
		return nil, err
	}
	return hs.History(ctx, key, since, now, retention, max)
}

// AppendHistory implements otp.HistoryStore.
func (r *RedisStore) AppendHistory(ctx context.Context, rec otp.HistoryRecord) error {
	hs, err := historyOf(r.Store)
	if err != nil {
		return err
	}
	return hs.AppendHistory(ctx, rec)
}

// History implements otp.HistoryStore.
func (r *RedisStore) History(ctx context.Context, key string, since, now time.Time, retention time.Duration, max int) ([]otp.HistoryItem, error) {
	hs, err := historyOf(r.Store)
	if err != nil {
		return nil, err
	}
	return hs.History(ctx, key, since, now, retention, max)
}
