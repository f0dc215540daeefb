package memory_test

import (
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

func TestOnceStoreConformance(t *testing.T) {
	storetest.RunOnceStore(t, func(t *testing.T) otp.OnceStore {
		s := memory.New(&clock{now: t0}, time.Hour)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestClaimExpires: a claim holds until its lifetime ends, and the key can
// be claimed again from then on.
func TestClaimExpires(t *testing.T) {
	s := memory.New(&clock{now: t0}, time.Hour)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	if ok, err := s.ClaimOnce(ctx, "k", t0, time.Minute); err != nil || !ok {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	if ok, _ := s.ClaimOnce(ctx, "k", t0.Add(time.Minute-time.Nanosecond), time.Minute); ok {
		t.Error("claimed again before the first claim's lifetime ended")
	}
	if ok, err := s.ClaimOnce(ctx, "k", t0.Add(time.Minute), time.Minute); err != nil || !ok {
		t.Errorf("claim after expiry: %v, %v; want true", ok, err)
	}
}
