package otp_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
)

// The refusal memo (otp/refusal_memo.go) seen from the service, on both
// stores: a store that counts its steps shows which sends reached it.

// fullStore is what both stores are: the service's every part.
type fullStore interface {
	otp.Store
	otp.BreakerStore
	otp.HistoryStore
	otp.ResultIssuer
}

// stepStore counts the send's store steps (the issue, in whichever form
// the service uses, and the history entry it writes after) and fails them
// while down, as a store that cannot be reached would.
type stepStore struct {
	fullStore
	steps atomic.Int64
	down  atomic.Bool
}

var errStepStoreDown = errors.New("dial tcp: connection refused")

func (s *stepStore) step() error {
	s.steps.Add(1)
	if s.down.Load() {
		return errStepStoreDown
	}
	return nil
}

func (s *stepStore) Issue(ctx context.Context, req otp.IssueRequest) (*otp.Challenge, error) {
	if err := s.step(); err != nil {
		return nil, err
	}
	return s.fullStore.Issue(ctx, req)
}

func (s *stepStore) IssueGuarded(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	if err := s.step(); err != nil {
		return otp.IssueResult{}, err
	}
	return s.fullStore.IssueGuarded(ctx, req)
}

func (s *stepStore) IssueFull(ctx context.Context, req otp.IssueRequest) (otp.IssueResult, error) {
	if err := s.step(); err != nil {
		return otp.IssueResult{}, err
	}
	return s.fullStore.IssueFull(ctx, req)
}

func (s *stepStore) AppendHistory(ctx context.Context, rec otp.HistoryRecord) error {
	if err := s.step(); err != nil {
		return err
	}
	return s.fullStore.AppendHistory(ctx, rec)
}

// memoStores are the stores the memo is tested on: memory, and a real
// redis-server of the test's own on a free loopback port.
var memoStores = []struct {
	name string
	open func(t *testing.T, clock otp.Clock) fullStore
}{
	{"memory", func(t *testing.T, clock otp.Clock) fullStore {
		s := memory.New(clock, time.Hour)
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"redis", func(t *testing.T, _ otp.Clock) fullStore {
		redistest.Require(t, "redis-server")
		srv := redistest.Start(t)
		client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
		t.Cleanup(func() { client.Close() })
		return redis.New(client, "memo-test:")
	}},
}

// memoFixture is a service over a step-counting store.
type memoFixture struct {
	svc   *otp.Service
	store *stepStore
	clock *fakeClock
}

func newMemoFixture(t *testing.T, open func(*testing.T, otp.Clock) fullStore, cfg otp.Config) *memoFixture {
	t.Helper()
	f := &memoFixture{clock: newFakeClock()}
	f.store = &stepStore{fullStore: open(t, f.clock)}
	svc, err := otp.NewService(cfg, f.store, &recordingGateway{}, mustKeys(t, rootKey), f.clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

// send sends a first code to e164 for subject from ip, and returns what
// came of it and how many store steps it took.
func (f *memoFixture) send(t *testing.T, subject, e164, ip string) (otp.SendResult, error, int64) {
	t.Helper()
	before := f.store.steps.Load()
	res, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: subject, SessionHash: "s-" + subject, ClientIP: ip,
		Phone: otp.Phone{E164: e164, Region: "JP", Type: "mobile", Masked: otp.MaskE164(e164)}})
	return res, err, f.store.steps.Load() - before
}

// prefixHistory is how many entries the prefix's history holds.
func (f *memoFixture) prefixHistory(t *testing.T, prefix string) int {
	t.Helper()
	h, err := f.svc.History(t.Context(), otp.HistoryQuery{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return len(h)
}

// Once the store refused a send by the prefix limit, the next send to the
// prefix is refused alike (same limit, same RetryAt) with no store step
// and no history entry; a send to another prefix, a send after the hold
// and a send after an operator's reset go to the store.
func TestRefusalMemoRepeatsTheStoresPrefixRefusal(t *testing.T) {
	t.Parallel()
	for _, st := range memoStores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			cfg := noLimits()
			cfg.Limits.PerPrefix = 1
			f := newMemoFixture(t, st.open, cfg)
			if _, err, _ := f.send(t, "alice", "+819012340001", "192.0.2.1"); err != nil {
				t.Fatalf("the prefix's one send: %v", err)
			}
			window := t0.Truncate(time.Hour).Add(time.Hour)
			res, err, steps := f.send(t, "bot-1", "+819012340002", "192.0.2.2")
			wantRateLimit(t, err, otp.LimitPrefix, window)
			if res.Repeated || steps == 0 {
				t.Fatalf("the first refusal: repeated %v after %d store steps, want the store's", res.Repeated, steps)
			}
			entries := f.prefixHistory(t, "+81901234")
			for i := range 5 {
				res, err, steps := f.send(t, fmt.Sprint("bot-", i+2), fmt.Sprintf("+81901234%04d", i+3), fmt.Sprint("198.51.100.", i))
				wantRateLimit(t, err, otp.LimitPrefix, window)
				if !res.Repeated || steps != 0 {
					t.Fatalf("a held prefix's send: repeated %v after %d store steps, want a repeat with none", res.Repeated, steps)
				}
			}
			if n := f.prefixHistory(t, "+81901234"); n != entries {
				t.Errorf("the prefix's history went from %d to %d entries over 5 repeats, want none added", entries, n)
			}
			if _, err, steps := f.send(t, "carol", "+819099990001", "192.0.2.3"); err != nil || steps == 0 {
				t.Errorf("a send to another prefix: %v after %d store steps, want it sent by the store", err, steps)
			}
			f.clock.Advance(otp.RefusalHold)
			res, err, steps = f.send(t, "bot-9", "+819012349999", "192.0.2.9")
			wantRateLimit(t, err, otp.LimitPrefix, window)
			if res.Repeated || steps == 0 {
				t.Errorf("after the hold: repeated %v after %d store steps, want the store asked", res.Repeated, steps)
			}
			if err := f.svc.ResetLimit(t.Context(), otp.LimitPrefix, "+81901234"); err != nil {
				t.Fatal(err)
			}
			if _, err, steps := f.send(t, "dave", "+819012348888", "192.0.2.8"); err != nil || steps == 0 {
				t.Errorf("after the operator's reset: %v after %d store steps, want it sent by the store", err, steps)
			}
		})
	}
}

// A held refusal ends with the store's window when that comes before the
// hold: the first send of the next window is the store's to judge.
func TestRefusalMemoEndsWithTheStoresWindow(t *testing.T) {
	t.Parallel()
	cfg := noLimits()
	cfg.Limits.PerPhone = 1
	f := newMemoFixture(t, memoStores[0].open, cfg)
	window := t0.Truncate(time.Hour).Add(time.Hour)
	f.clock.Advance(window.Add(-2 * time.Second).Sub(t0))
	if _, err, _ := f.send(t, "alice", "+819012340001", ""); err != nil {
		t.Fatal(err)
	}
	_, err, _ := f.send(t, "bob", "+819012340001", "")
	wantRateLimit(t, err, otp.LimitPhone, window)
	f.clock.Advance(2 * time.Second)
	if res, err, steps := f.send(t, "bob", "+819012340001", ""); err != nil || res.Repeated || steps == 0 {
		t.Errorf("the next window's first send: %v, repeated %v, %d store steps; want it sent by the store", err, res.Repeated, steps)
	}
}

// A held limit refuses only the sends it counts: a send from another
// address is not refused, and while the store is down it fails closed
// (ErrStoreUnavailable, a 503) as before; a send from the held address is
// refused as the store refused it (a 429) during the outage.
func TestRefusalMemoDuringAnOutage(t *testing.T) {
	t.Parallel()
	cfg := noLimits()
	cfg.Limits.PerIP = 1
	f := newMemoFixture(t, memoStores[0].open, cfg)
	window := t0.Truncate(time.Hour).Add(time.Hour)
	if _, err, _ := f.send(t, "bot-1", "+819012340001", "192.0.2.66"); err != nil {
		t.Fatal(err)
	}
	_, err, _ := f.send(t, "bot-2", "+819012340002", "192.0.2.66")
	wantRateLimit(t, err, otp.LimitIP, window)
	f.store.down.Store(true)
	res, err, steps := f.send(t, "bot-3", "+819099990003", "192.0.2.66")
	wantRateLimit(t, err, otp.LimitIP, window)
	if !res.Repeated || steps != 0 {
		t.Errorf("a held address during the outage: repeated %v, %d store steps; want the held refusal", res.Repeated, steps)
	}
	if held, ok := f.svc.HeldAddressRefusal("192.0.2.66"); !ok || held.Limit != otp.LimitIP || !held.RetryAt.Equal(window) {
		t.Errorf("the address held without the number: %+v %v, want the ip limit until %s", held, ok, window)
	}
	if _, err, _ := f.send(t, "alice", "+819099990004", "192.0.2.1"); !errors.Is(err, otp.ErrStoreUnavailable) {
		t.Errorf("another address during the outage: %v, want ErrStoreUnavailable (fail closed)", err)
	}
	f.store.down.Store(false)
	if _, ok := f.svc.HeldAddressRefusal("192.0.2.1"); ok {
		t.Error("an address the store never refused is held")
	}
	if _, err, _ := f.send(t, "alice", "+819099990004", "192.0.2.1"); err != nil {
		t.Errorf("another address once the store is back: %v (an outage was held as a refusal)", err)
	}
}

// Once the store refused a send because the fraud guard blocked the
// number's prefix, the next send to the prefix is refused with the same
// scope and end without the store; an operator's unblock on this instance
// lets the next one through at once.
func TestRefusalMemoRepeatsTheFraudGuardsBlock(t *testing.T) {
	t.Parallel()
	for _, st := range memoStores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			cfg := breakerConfig(false, nil)
			f := newMemoFixture(t, st.open, cfg)
			for i := range cfg.Breaker.MinSends {
				if _, err, _ := f.send(t, fmt.Sprint("pump-", i), fmt.Sprintf("+44770090%04d", i), ""); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			_, first, steps := f.send(t, "pump-x", "+447700909999", "")
			var held *otp.BlockedError
			if !errors.As(first, &held) || steps == 0 {
				t.Fatalf("the send after the block: %v after %d store steps, want the store's *otp.BlockedError", first, steps)
			}
			res, err, steps := f.send(t, "victim", "+447700908888", "")
			var again *otp.BlockedError
			if !errors.As(err, &again) || *again != *held || !res.Repeated || steps != 0 {
				t.Fatalf("a send to the blocked prefix: %v, repeated %v, %d store steps; want %v repeated with none", err, res.Repeated, steps, held)
			}
			// A home number counts in none of the blocked scopes.
			if res, err, steps := f.send(t, "home", "+819012340001", ""); err != nil || res.Repeated || steps == 0 {
				t.Errorf("a send to a home number during the block: %v, repeated %v, %d store steps; want it sent by the store", err, res.Repeated, steps)
			}
			for _, target := range []string{"+44770090", "+447700", "GB"} {
				if _, err := f.svc.Unblock(t.Context(), target); err != nil && !errors.Is(err, otp.ErrNotBlocked) {
					t.Fatalf("unblock %s: %v", target, err)
				}
			}
			if _, err, steps := f.send(t, "victim", "+447700908888", ""); err != nil || steps == 0 {
				t.Errorf("after the unblocks: %v after %d store steps, want it sent by the store", err, steps)
			}
		})
	}
}
