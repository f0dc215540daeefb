package storetest_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

// TestBreakerSuiteCatchesBrokenStores is TestSuiteCatchesBrokenStores for
// RunBreaker: each broken breaker must fail the cases guarding what it
// breaks, and the intact memory store must pass.
func TestBreakerSuiteCatchesBrokenStores(t *testing.T) {
	if name, ok := os.LookupEnv(brokenEnv); ok {
		storetest.RunBreaker(t, func(t *testing.T) otp.BreakerStore { return brokenBreaker(t, name) })
		return
	}
	t.Parallel()
	cases := []struct {
		name   string
		broken string
		fails  []string
	}{
		{"an intact store passes", "", nil},
		{"a store that never counts a conversion fails", "convert-noop",
			[]string{"verified sends keep a scope open", "a conversion counts every send of its ref once"}},
		{"a store that counts one conversion for a resent ref fails", "convert-one-send",
			[]string{"a conversion counts every send of its ref once"}},
		{"a store whose unblock does nothing fails", "unblock-noop",
			[]string{"an unblock lifts the block and forgets the counts"}},
		{"a store that lets a blocked send through fails", "block-ignored",
			[]string{"a blocked scope refuses a send and counts nothing",
				"100 concurrent sends to one scope pass exactly min_sends"}},
		{"a store whose guarded send ignores the breaker fails", "guard-ignored",
			[]string{"a guarded send is refused by a block before anything is counted, and counted when it passes",
				"a verification with BreakerConvert converts its sends in the same step"}},
		{"a store whose verification converts nothing fails", "verify-no-convert",
			[]string{"a verification with BreakerConvert converts its sends in the same step"}},
		{"a store whose stats read nothing fails", "stats-empty",
			[]string{"stats read each scope's sends and conversions in the window",
				"stats count nothing and lift no block"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkSuiteAgainst(t, "TestBreakerSuiteCatchesBrokenStores", tc.broken, tc.fails)
		})
	}
}

func brokenBreaker(t *testing.T, name string) otp.BreakerStore {
	m := memory.New(nil, time.Hour)
	t.Cleanup(func() { m.Close() })
	switch name {
	case "":
		return m
	case "convert-noop", "convert-one-send", "unblock-noop", "block-ignored", "stats-empty", "guard-ignored", "verify-no-convert":
		return &brokenBreakerStore{Store: m, how: name, seen: map[string]int{}}
	}
	t.Fatalf("unknown broken breaker %q", name)
	return nil
}

type brokenBreakerStore struct {
	*memory.Store
	how  string
	mu   sync.Mutex
	seen map[string]int
}

func (s *brokenBreakerStore) BreakerConvert(ctx context.Context, ref string, now time.Time) error {
	if s.how == "convert-noop" {
		return nil
	}
	return s.Store.BreakerConvert(ctx, ref, now)
}

func (s *brokenBreakerStore) IssueGuarded(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	if s.how == "guard-ignored" {
		req.Breaker = nil
		c, err := s.Store.Issue(ctx, req)
		return otp.IssueResult{Challenge: c}, err
	}
	return s.Store.IssueGuarded(ctx, req)
}

func (s *brokenBreakerStore) Verify(ctx context.Context, req otp.VerifyRequest) (otp.VerifyResult, error) {
	if s.how == "verify-no-convert" {
		req.BreakerConvert = false
	}
	return s.Store.Verify(ctx, req)
}

func (s *brokenBreakerStore) BreakerUnblock(ctx context.Context, scope string, now time.Time) (bool, error) {
	if s.how == "unblock-noop" {
		return true, nil
	}
	return s.Store.BreakerUnblock(ctx, scope, now)
}

func (s *brokenBreakerStore) BreakerCount(ctx context.Context, req otp.BreakerCountRequest) (otp.BreakerCountResult, error) {
	if s.how == "convert-one-send" {
		// Each resend of a ref is kept apart, so its verification
		// converts only the first send.
		s.mu.Lock()
		if n := s.seen[req.Ref]; n > 0 {
			req.Ref += "#" + strconv.Itoa(n)
		}
		s.seen[strings.SplitN(req.Ref, "#", 2)[0]]++
		s.mu.Unlock()
	}
	res, err := s.Store.BreakerCount(ctx, req)
	if s.how == "block-ignored" && res.Blocked != nil {
		res.Blocked = nil
	}
	return res, err
}

func (s *brokenBreakerStore) BreakerStats(ctx context.Context, scopes []string, now time.Time, p otp.BreakerPolicy) ([]otp.BreakerTally, error) {
	if s.how == "stats-empty" {
		out := make([]otp.BreakerTally, len(scopes))
		for i, sc := range scopes {
			out[i].Scope = sc
		}
		return out, nil
	}
	return s.Store.BreakerStats(ctx, scopes, now, p)
}
