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
	_ otp.ResultIssuer = (*MemoryStore)(nil)
	_ otp.ResultIssuer = (*RedisStore)(nil)
)

// issueFull is the whole-result issue of a wrapped store; a store without
// one issues as the service did before (no history kept, nothing shown).
func issueFull(ctx context.Context, s otp.Store, req otp.IssueRequest) (otp.IssueResult, error) {
	if ri, ok := s.(otp.ResultIssuer); ok {
		return ri.IssueFull(ctx, req)
	}
	req.History = nil
	if req.Breaker != nil {
		b, err := breakerOf(s)
		if err != nil {
			return otp.IssueResult{}, err
		}
		return b.IssueGuarded(ctx, req)
	}
	c, err := s.Issue(ctx, req)
	return otp.IssueResult{Challenge: c}, err
}

// keepsHistoryInIssue reports whether a wrapped store keeps a send's
// history entry in the send's step.
func keepsHistoryInIssue(s otp.Store) bool {
	ri, ok := s.(otp.ResultIssuer)
	return ok && ri.KeepsHistoryInIssue()
}

// IssueFull implements otp.ResultIssuer.
func (m *MemoryStore) IssueFull(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	return issueFull(ctx, m.Store, req)
}

// KeepsHistoryInIssue implements otp.ResultIssuer.
func (m *MemoryStore) KeepsHistoryInIssue() bool { return keepsHistoryInIssue(m.Store) }

// IssueFull implements otp.ResultIssuer.
func (r *RedisStore) IssueFull(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	return issueFull(ctx, r.Store, req)
}

// KeepsHistoryInIssue implements otp.ResultIssuer.
func (r *RedisStore) KeepsHistoryInIssue() bool { return keepsHistoryInIssue(r.Store) }

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
