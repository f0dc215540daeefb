package otp_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// noLimits switches every send limit off, for tests that turn one on.
func noLimits() otp.Config {
	cfg := otp.DefaultConfig()
	cfg.Limits = otp.SendLimits{Window: time.Hour}
	return cfg
}

// sendAs sends a first code to phone for subject from ip.
func (f *fixture) sendAs(t *testing.T, subject, e164, ip string) error {
	t.Helper()
	_, err := f.svc.Send(t.Context(), otp.SendRequest{
		Subject: subject, Phone: otp.Phone{E164: e164, Region: "JP", Type: "mobile", Masked: otp.MaskE164(e164)}, ClientIP: ip,
	})
	return err
}

func wantRateLimit(t *testing.T, err error, limit string, retryAt time.Time) {
	t.Helper()
	var rl *otp.RateLimitError
	if !errors.As(err, &rl) || errors.Is(err, otp.ErrStoreUnavailable) {
		t.Fatalf("got %v, want a *otp.RateLimitError that is not a store failure", err)
	}
	if rl.Limit != limit || !rl.RetryAt.Equal(retryAt) {
		t.Fatalf("got %s limit until %s, want %s until %s", rl.Limit, rl.RetryAt, limit, retryAt)
	}
}

func TestServiceDailyBudgetStopsSendsBeforeTheGateway(t *testing.T) {
	t.Parallel()
	cfg := noLimits()
	cfg.Limits.DailyBudget = 3
	f := newFixture(t, cfg, nil)
	midnight := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	// Other identities, phones and addresses: only the budget is shared.
	for i := range 3 {
		if err := f.sendAs(t, fmt.Sprint("user-", i), fmt.Sprintf("+81901234%04d", i), fmt.Sprint("192.0.2.", i)); err != nil {
			t.Fatalf("send %d within the budget: %v", i+1, err)
		}
	}
	err := f.sendAs(t, "user-3", "+819012340003", "192.0.2.3")
	wantRateLimit(t, err, otp.LimitDailyBudget, midnight)
	if n := len(f.gateway.messages()); n != 3 {
		t.Fatalf("the gateway was called %d times, want 3: the spent budget must stop the send before it", n)
	}
	if st, err := f.svc.Identity(t.Context(), "user-3"); err != nil || st.Sends != 0 {
		t.Fatalf("identity of the refused send: %+v, %v; want no send counted", st, err)
	}

	t.Run("an operator's reset reopens the whole budget at once", func(t *testing.T) {
		if err := f.svc.ResetLimit(t.Context(), otp.LimitDailyBudget, ""); err != nil {
			t.Fatal(err)
		}
		for i := 3; i < 6; i++ {
			if err := f.sendAs(t, fmt.Sprint("user-", i), fmt.Sprintf("+81901234%04d", i), fmt.Sprint("192.0.2.", i)); err != nil {
				t.Fatalf("send %d after the reset: %v", i-2, err)
			}
		}
		wantRateLimit(t, f.sendAs(t, "user-6", "+819012340006", "192.0.2.6"), otp.LimitDailyBudget, midnight)
	})
	t.Run("the budget reopens at midnight UTC", func(t *testing.T) {
		f.clock.Advance(midnight.Add(-time.Second).Sub(f.clock.Now()))
		wantRateLimit(t, f.sendAs(t, "user-6", "+819012340006", "192.0.2.6"), otp.LimitDailyBudget, midnight)
		f.clock.Advance(time.Second)
		if err := f.sendAs(t, "user-6", "+819012340006", "192.0.2.6"); err != nil {
			t.Fatalf("send on the next day: %v", err)
		}
		if n := len(f.gateway.messages()); n != 7 {
			t.Fatalf("the gateway was called %d times, want 7", n)
		}
	})
}

func TestServiceSendLimits(t *testing.T) {
	t.Parallel()
	type send struct{ subject, e164, ip string }
	cases := []struct {
		name  string
		set   func(*otp.SendLimits)
		limit string
		nth   func(i int) send
	}{
		{"a third code to one phone within the hour is refused", func(l *otp.SendLimits) { l.PerPhone = 2 }, otp.LimitPhone,
			func(i int) send { return send{fmt.Sprint("user-", i), "+819012345678", fmt.Sprint("192.0.2.", i)} }},
		{"a third code from one address within the hour is refused", func(l *otp.SendLimits) { l.PerIP = 2 }, otp.LimitIP,
			func(i int) send { return send{fmt.Sprint("user-", i), fmt.Sprintf("+81901234%04d", i), "192.0.2.7"} }},
		{"a third code from one IPv6 /64 within the hour is refused", func(l *otp.SendLimits) { l.PerIP = 2 }, otp.LimitIP,
			func(i int) send {
				return send{fmt.Sprint("user-", i), fmt.Sprintf("+81901234%04d", i), fmt.Sprintf("2001:db8:7:7::%x", i+1)}
			}},
		{"a third code to one number prefix within the hour is refused", func(l *otp.SendLimits) { l.PerPrefix = 2 }, otp.LimitPrefix,
			func(i int) send {
				return send{fmt.Sprint("user-", i), fmt.Sprintf("+81901234%04d", i), fmt.Sprint("192.0.2.", i)}
			}},
		{"a third code to one country within the hour is refused", func(l *otp.SendLimits) { l.PerCountryHour = 2 }, otp.LimitCountry,
			func(i int) send {
				return send{fmt.Sprint("user-", i), fmt.Sprintf("+8190%04d1234", i), fmt.Sprint("192.0.2.", i)}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := noLimits()
			tc.set(&cfg.Limits)
			f := newFixture(t, cfg, nil)
			for i := range 2 {
				s := tc.nth(i)
				if err := f.sendAs(t, s.subject, s.e164, s.ip); err != nil {
					t.Fatalf("send %d: %v", i+1, err)
				}
			}
			s := tc.nth(2)
			wantRateLimit(t, f.sendAs(t, s.subject, s.e164, s.ip), tc.limit, t0.Add(time.Hour))
			if n := len(f.gateway.messages()); n != 2 {
				t.Fatalf("the gateway was called %d times, want 2", n)
			}
			f.clock.Advance(time.Hour)
			if err := f.sendAs(t, s.subject, s.e164, s.ip); err != nil {
				t.Fatalf("send in the next hour: %v", err)
			}
		})
	}
}

func TestServiceIdentityLimitCountsResends(t *testing.T) {
	t.Parallel()
	cfg := noLimits()
	cfg.Limits.PerIdentity = 2
	f := newFixture(t, cfg, nil)
	first := f.send(t, "")
	f.clock.Advance(30 * time.Second)
	f.send(t, first.Challenge.ID)
	f.clock.Advance(time.Minute)
	_, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: "alice", SessionHash: "session-a", Phone: alicePhone, ResendID: first.Challenge.ID})
	wantRateLimit(t, err, otp.LimitIdentity, t0.Add(time.Hour))
	if c, err := f.svc.Challenge(t.Context(), "alice", "session-a", first.Challenge.ID); err != nil || c.Sends != 2 {
		t.Fatalf("challenge after the refused resend: %+v, %v; want its 2 sends and its code unchanged", c, err)
	}
	wantVerify(t, f.verify(t, first.Challenge.ID, f.gateway.lastCode(t)), otp.VerifyOK)
}

func TestServiceEarlyResendsSpendNoAllowance(t *testing.T) {
	t.Parallel()
	cfg := noLimits()
	cfg.Limits.PerIdentity, cfg.Limits.PerPhone, cfg.Limits.DailyBudget = 2, 2, 2
	f := newFixture(t, cfg, nil)
	first := f.send(t, "")
	for range 5 {
		f.clock.Advance(time.Second)
		_, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: "alice", SessionHash: "session-a", Phone: alicePhone, ResendID: first.Challenge.ID})
		var cd *otp.CooldownError
		if !errors.As(err, &cd) {
			t.Fatalf("resend within the cooldown: got %v, want *otp.CooldownError", err)
		}
	}
	f.clock.Advance(30 * time.Second)
	if res := f.send(t, first.Challenge.ID); !res.Resent {
		t.Fatalf("resend after the cooldown: %+v", res)
	}
}

// limitFailingStore answers Issue, which counts the send limits, with err.
type limitFailingStore struct {
	otp.Store
	err error
}

func (s limitFailingStore) Issue(context.Context, otp.IssueRequest) (*otp.Challenge, error) {
	return nil, s.err
}

func TestServiceLimitErrors(t *testing.T) {
	t.Parallel()
	down := errors.New("dial tcp 10.0.0.7:6379: connect: connection refused")
	limited := &otp.RateLimitError{Limit: otp.LimitCountry, RetryAt: t0.Add(time.Hour)}
	cases := []struct {
		name        string
		err         error
		unavailable bool
	}{
		{"a store that cannot count sends is reported as unavailable", down, true},
		{"a rate-limit error from the store passes through as it is", limited, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, otp.DefaultConfig(), nil)
			svc, err := otp.NewService(otp.DefaultConfig(), limitFailingStore{f.store, tc.err}, f.gateway, f.keys, f.clock, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = svc.Send(t.Context(), otp.SendRequest{Subject: "alice", Phone: alicePhone})
			if !errors.Is(err, tc.err) || errors.Is(err, otp.ErrStoreUnavailable) != tc.unavailable {
				t.Fatalf("got %v, want %v (store unavailable: %t)", err, tc.err, tc.unavailable)
			}
			if n := len(f.gateway.messages()); n != 0 {
				t.Fatalf("the gateway was called %d times, want none", n)
			}
			if st, _ := f.store.Identity(t.Context(), "alice", f.clock.Now()); st.Sends != 0 {
				t.Fatalf("a challenge was issued: %+v", st)
			}
		})
	}
}

func TestServiceResetLimitRefusesUnknownNames(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	if err := f.svc.ResetLimit(t.Context(), "budget", ""); !errors.Is(err, otp.ErrLimitName) {
		t.Fatalf("got %v, want ErrLimitName", err)
	}
}

func TestServiceResetLimitNormalisesWhatItCounts(t *testing.T) {
	t.Parallel()
	cfg := noLimits()
	cfg.Limits.PerIP, cfg.Limits.PerCountryHour = 1, 2
	f := newFixture(t, cfg, nil)
	if err := f.sendAs(t, "user-0", "+819012340000", "2001:db8:7:7::1"); err != nil {
		t.Fatal(err)
	}
	wantRateLimit(t, f.sendAs(t, "user-1", "+819012340001", "2001:db8:7:7::2"), otp.LimitIP, t0.Add(time.Hour))
	// Another address of the same /64 names the same counter.
	if err := f.svc.ResetLimit(t.Context(), otp.LimitIP, "2001:db8:7:7::99"); err != nil {
		t.Fatal(err)
	}
	if err := f.sendAs(t, "user-1", "+819012340001", "2001:db8:7:7::2"); err != nil {
		t.Fatalf("send after resetting the address: %v", err)
	}
	wantRateLimit(t, f.sendAs(t, "user-2", "+819012340002", "192.0.2.2"), otp.LimitCountry, t0.Add(time.Hour))
	if err := f.svc.ResetLimit(t.Context(), otp.LimitCountry, "jp"); err != nil {
		t.Fatal(err)
	}
	if err := f.sendAs(t, "user-2", "+819012340002", "192.0.2.2"); err != nil {
		t.Fatalf("send after resetting the country: %v", err)
	}
}

func TestServiceBoundPhone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	bind := func(subject, sealedFor string) {
		t.Helper()
		sealed, err := f.keys.SealPhone(sealedFor, alicePhone.E164)
		if err != nil {
			t.Fatal(err)
		}
		err = f.store.BindPhone(t.Context(), otp.BindRequest{
			Subject: subject, PhoneHash: f.keys.PhoneHash(alicePhone.E164), PhoneSealed: sealed,
			PhoneMasked: alicePhone.Masked, MaxIdentitiesPerNumber: 2, Now: t0,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Run("a bound number comes back opened", func(t *testing.T) {
		bind("alice", "alice")
		ph, err := f.svc.BoundPhone(t.Context(), "alice")
		if err != nil || ph != (otp.Phone{E164: alicePhone.E164, Masked: alicePhone.Masked}) {
			t.Fatalf("got %+v, %v; want %s", ph, err, alicePhone.Masked)
		}
	})
	t.Run("an identity without a number gets ErrNoBoundPhone, not a store failure", func(t *testing.T) {
		_, err := f.svc.BoundPhone(t.Context(), "nobody")
		if !errors.Is(err, otp.ErrNoBoundPhone) || errors.Is(err, otp.ErrStoreUnavailable) {
			t.Fatalf("got %v, want ErrNoBoundPhone", err)
		}
	})
	t.Run("a number sealed for another identity does not open", func(t *testing.T) {
		bind("mallory", "alice")
		if ph, err := f.svc.BoundPhone(t.Context(), "mallory"); err == nil {
			t.Fatalf("got %+v, want an error", ph)
		}
	})
}
