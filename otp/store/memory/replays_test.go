package memory_test

import (
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

func TestReplayStoreConformance(t *testing.T) {
	storetest.RunReplayStore(t, func(t *testing.T) otp.ReplayStore {
		s := memory.New(&clock{now: t0}, time.Hour)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestReplayExpires moves the time each call is given: a kept form is there
// until its lifetime ends and gone from then on, and the sweeper drops it.
func TestReplayExpires(t *testing.T) {
	s := memory.New(&clock{now: t0}, time.Hour)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	if err := s.KeepReplay(ctx, "k", []byte("v"), t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.PeekReplay(ctx, "k", t0.Add(time.Minute-time.Nanosecond)); !ok {
		t.Error("the form was gone before its lifetime ended")
	}
	if _, ok, _ := s.TakeReplay(ctx, "k", t0.Add(time.Minute)); ok {
		t.Error("the form outlived its lifetime")
	}
	s.Sweep(t0.Add(time.Minute))
	if _, ok, _ := s.PeekReplay(ctx, "k", t0); ok {
		t.Error("the sweeper kept an expired form")
	}
}
