package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// RunOnceStore is the conformance suite of otp.OnceStore, which makes a
// CAPTCHA answer single-use. newStore follows Run's rules. Expiry is each
// store's own test, since Redis expires keys by its own clock.
func RunOnceStore(t *testing.T, newStore func(t *testing.T) otp.OnceStore) {
	for _, tc := range onceCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

var onceCases = []struct {
	name string
	run  func(*testing.T, otp.OnceStore)
}{
	{"the first claim wins and a second is refused", onceFirstWins},
	{"each key is claimed apart", onceKeysApart},
	{"of concurrent claims exactly one wins", onceConcurrent},
	{"a cancelled context fails the claim and records nothing", onceCancelled},
}

func onceFirstWins(t *testing.T, s otp.OnceStore) {
	ctx := t.Context()
	if ok, err := s.ClaimOnce(ctx, "k", t0, time.Minute); err != nil || !ok {
		t.Fatalf("first claim: %v, %v; want true", ok, err)
	}
	if ok, err := s.ClaimOnce(ctx, "k", t0.Add(30*time.Second), time.Minute); err != nil || ok {
		t.Errorf("second claim: %v, %v; want false", ok, err)
	}
}

func onceKeysApart(t *testing.T, s otp.OnceStore) {
	for _, k := range []string{"a", "b", "A"} {
		if ok, err := s.ClaimOnce(t.Context(), k, t0, time.Minute); err != nil || !ok {
			t.Errorf("claim %q: %v, %v; want true", k, ok, err)
		}
	}
}

func onceConcurrent(t *testing.T, s otp.OnceStore) {
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if ok, err := s.ClaimOnce(t.Context(), "race", t0, time.Minute); err == nil && ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d of 16 concurrent claims won; want exactly 1", wins.Load())
	}
}

func onceCancelled(t *testing.T, s otp.OnceStore) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if ok, err := s.ClaimOnce(ctx, "k", t0, time.Minute); err == nil || ok {
		t.Errorf("claim with a cancelled context: %v, %v; want an error", ok, err)
	}
	if ok, err := s.ClaimOnce(t.Context(), "k", t0, time.Minute); err != nil || !ok {
		t.Errorf("claim after the cancelled one: %v, %v; want true (nothing recorded)", ok, err)
	}
}
