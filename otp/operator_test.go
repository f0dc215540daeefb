package otp_test

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

// operatorFixture is a service on a memory store whose not-before reads
// are counted (readCountingStore, in revocation_test.go).
type operatorFixture struct {
	svc     *otp.Service
	mem     *memory.Store
	store   *readCountingStore
	gateway *recordingGateway
	clock   *fakeClock
}

func newOperatorFixture(t *testing.T, cfg otp.Config) *operatorFixture {
	t.Helper()
	f := &operatorFixture{gateway: &recordingGateway{}, clock: newFakeClock()}
	f.mem = memory.New(f.clock, time.Hour)
	t.Cleanup(func() { f.mem.Close() })
	f.store = &readCountingStore{Store: f.mem, reads: map[string]int{}}
	svc, err := otp.NewService(cfg, f.store, f.gateway, mustKeys(t, rootKey), f.clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func (f *operatorFixture) send(t *testing.T, subject string) otp.SendResult {
	t.Helper()
	res, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: subject, SessionHash: "session-a", Phone: alicePhone, Locale: "en"})
	if err != nil {
		t.Fatalf("send to %s: %v", subject, err)
	}
	return res
}

func TestUnlockAndLockedList(t *testing.T) {
	t.Parallel()
	cfg := otp.DefaultConfig()
	cfg.Failures.Budget = 2
	f := newOperatorFixture(t, cfg)
	res := f.send(t, "alice")
	for range 2 {
		if _, err := f.svc.Verify(t.Context(), otp.VerifyInput{Subject: "alice", SessionHash: "session-a",
			ChallengeID: res.Challenge.ID, Code: "000000"}); err != nil {
			t.Fatal(err)
		}
	}
	locked, total, err := f.svc.Locked(t.Context(), 10)
	if err != nil || total != 1 || len(locked) != 1 || locked[0].Subject != "alice" || locked[0].Failures != 2 ||
		!locked[0].Until.Equal(t0.Add(cfg.Failures.DelayBase)) {
		t.Fatalf("locked: %+v, %d, %v; want alice with 2 failures until t0+%s", locked, total, err, cfg.Failures.DelayBase)
	}
	if err := f.svc.Unlock(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if locked, total, err := f.svc.Locked(t.Context(), 10); err != nil || total != 0 || len(locked) != 0 {
		t.Fatalf("locked after the unlock: %+v, %d, %v; want none", locked, total, err)
	}
	if st, err := f.svc.Identity(t.Context(), "alice"); err != nil || st.Locked(t0) || st.Failures != 0 || st.Sends != 1 {
		t.Fatalf("alice after the unlock: %+v, %v; want unlocked with no failures and her one send", st, err)
	}
	if err := f.svc.Unlock(t.Context(), ""); err == nil {
		t.Fatal("unlock of an empty identity succeeded")
	}
}

func TestResetNumberUnbindsAndReturnsTheMaskedNumber(t *testing.T) {
	t.Parallel()
	f := newOperatorFixture(t, otp.DefaultConfig())
	if err := f.svc.BindPhone(t.Context(), "alice", alicePhone, 1); err != nil {
		t.Fatal(err)
	}
	masked, err := f.svc.ResetNumber(t.Context(), "alice")
	if err != nil || masked != alicePhone.Masked {
		t.Fatalf("reset number: got %q, %v; want %q", masked, err, alicePhone.Masked)
	}
	if _, err := f.svc.BoundPhone(t.Context(), "alice"); !errors.Is(err, otp.ErrNoBoundPhone) {
		t.Fatalf("alice's number after the reset: %v, want ErrNoBoundPhone", err)
	}
	// The number is free for another identity, even with a cap of one.
	if err := f.svc.BindPhone(t.Context(), "bob", alicePhone, 1); err != nil {
		t.Fatalf("binding the freed number: %v", err)
	}
	if _, err := f.svc.ResetNumber(t.Context(), "alice"); !errors.Is(err, otp.ErrNoBoundPhone) || errors.Is(err, otp.ErrStoreUnavailable) {
		t.Fatalf("a second reset: %v, want ErrNoBoundPhone", err)
	}
	if _, err := f.svc.ResetNumber(t.Context(), ""); err == nil {
		t.Fatal("reset of an empty identity succeeded")
	}
}

func TestDailyBudgetReadsWithoutCounting(t *testing.T) {
	t.Parallel()
	cfg := noLimits()
	cfg.Limits.DailyBudget = 3
	f := newOperatorFixture(t, cfg)
	midnight := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	want := func(used, left int, resetAt time.Time) {
		t.Helper()
		for range 2 {
			b, err := f.svc.DailyBudget(t.Context())
			if err != nil || b.Max != 3 || b.Used != used || b.Left() != left || !b.ResetAt.Equal(resetAt) {
				t.Fatalf("daily budget: %+v (left %d), %v; want 3 with %d used, %d left, reset at %s",
					b, b.Left(), err, used, left, resetAt)
			}
		}
	}
	want(0, 3, midnight)
	f.send(t, "alice")
	f.send(t, "bob")
	want(2, 1, midnight)
	f.send(t, "carol")
	want(3, 0, midnight)
	if _, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: "dave", Phone: alicePhone}); err == nil {
		t.Fatal("a send past the budget succeeded")
	}
	want(3, 0, midnight)
	f.clock.Advance(midnight.Sub(t0))
	want(0, 3, midnight.Add(24*time.Hour))

	off := newOperatorFixture(t, noLimits())
	if b, err := off.svc.DailyBudget(t.Context()); err != nil || b != (otp.Budget{}) || b.Left() != 0 {
		t.Fatalf("no daily budget: %+v, %v; want the zero Budget", b, err)
	}
}
