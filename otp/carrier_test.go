package otp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

// stubCarrier answers from a table and counts its lookups.
type stubCarrier struct {
	types map[string]string
	fail  error
	calls int
}

func (s *stubCarrier) CarrierScope() string { return "stub" }

func (s *stubCarrier) LookUpCarrier(_ context.Context, e164 string) (otp.CarrierAnswer, error) {
	s.calls++
	if s.fail != nil {
		return otp.CarrierAnswer{}, s.fail
	}
	return otp.CarrierAnswer{Type: s.types[e164]}, nil
}

func carrierCheck(t *testing.T, lookup otp.CarrierLookup, clock otp.Clock, always bool) (*otp.CarrierCheck, *memory.Store) {
	t.Helper()
	keys, err := otp.DeriveKeys([]byte("carrier-test-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	store := memory.New(clock, time.Hour)
	t.Cleanup(func() { store.Close() })
	c, err := otp.NewCarrierCheck(otp.CarrierCheckConfig{Lookup: lookup, Store: store, Keys: keys, Clock: clock, Always: always})
	if err != nil {
		t.Fatal(err)
	}
	return c, store
}

func TestCarrierCheckMapsAnswersOntoThePolicy(t *testing.T) {
	t.Parallel()
	const us = "+12015550123"
	for _, tc := range []struct {
		answer     string
		allowTypes []string
		refused    bool
	}{
		{"mobile", nil, false},
		{"unknown", nil, false},
		{"voip", nil, true},
		{"voip", []string{"mobile", "fixed_line_or_mobile", "voip"}, false},
		{"fixed_line", nil, true},
		{"fixed_line", []string{"fixed_line_or_mobile", "fixed_line"}, false},
		{"premium_rate", []string{"fixed_line_or_mobile", "premium_rate"}, true},
		{"toll_free", []string{"fixed_line_or_mobile", "toll_free"}, true},
		{"shared_cost", nil, true},
		{"invalid", nil, true},
	} {
		policy := mustPolicy(t, otp.PhonePolicyConfig{DefaultRegion: "US", AllowTypes: tc.allowTypes})
		ph, err := policy.Check(us)
		if err != nil || ph.Type != "fixed_line_or_mobile" {
			t.Fatalf("%s: %v %+v", us, err, ph)
		}
		c, _ := carrierCheck(t, &stubCarrier{types: map[string]string{us: tc.answer}}, newFakeClock(), false)
		v, err := c.Check(context.Background(), policy, ph, otp.CarrierAsker{Identity: "alice"})
		var refusal *otp.PhoneRefusal
		if got := errors.As(err, &refusal); got != tc.refused || (err != nil && !got) {
			t.Errorf("%s with allow_types %v: refused=%v (%v), want %v", tc.answer, tc.allowTypes, got, err, tc.refused)
			continue
		}
		if tc.refused && (refusal.Reason != "carrier" || refusal.Type != tc.answer || refusal.Masked != ph.Masked) {
			t.Errorf("%s: refusal %+v", tc.answer, refusal)
		}
		if !v.Checked || v.Type != tc.answer {
			t.Errorf("%s: verdict %+v", tc.answer, v)
		}
	}
}

func TestCarrierCheckLooksUpOnlyWhatTheMetadataCantTell(t *testing.T) {
	t.Parallel()
	policy := mustPolicy(t, otp.PhonePolicyConfig{DefaultRegion: "JP", AllowCountries: []string{"JP", "US"}})
	jp, err := policy.Check("+819012345678")
	if err != nil {
		t.Fatal(err)
	}
	stub := &stubCarrier{types: map[string]string{"+819012345678": "voip"}}
	c, _ := carrierCheck(t, stub, newFakeClock(), false)
	if v, err := c.Check(context.Background(), policy, jp, otp.CarrierAsker{Identity: "alice"}); err != nil || v.Checked || stub.calls != 0 {
		t.Fatalf("a Japanese mobile number was looked up: %+v %v, %d calls", v, err, stub.calls)
	}
	always, _ := carrierCheck(t, stub, newFakeClock(), true)
	if _, err := always.Check(context.Background(), policy, jp, otp.CarrierAsker{Identity: "alice"}); !otp.IsPhoneRefusal(err) || stub.calls != 1 {
		t.Fatalf("with always, the number was not looked up and refused: %v, %d calls", err, stub.calls)
	}
	jp.AllowListed = true
	if _, err := always.Check(context.Background(), policy, jp, otp.CarrierAsker{Identity: "alice"}); err != nil || stub.calls != 1 {
		t.Fatalf("an allow-listed number was looked up: %v, %d calls", err, stub.calls)
	}
}

func TestCarrierCheckCachesAnswersNotFailures(t *testing.T) {
	t.Parallel()
	const us = "+12015550123"
	policy := mustPolicy(t, otp.PhonePolicyConfig{DefaultRegion: "US"})
	ph, _ := policy.Check(us)
	clock := newFakeClock()
	stub := &stubCarrier{fail: errors.New("timeout")}
	c, store := carrierCheck(t, stub, clock, false)
	ctx := context.Background()
	if _, err := c.Check(ctx, policy, ph, otp.CarrierAsker{Identity: "alice"}); !errors.Is(err, otp.ErrCarrierLookup) {
		t.Fatalf("a failed lookup: %v", err)
	}
	stub.fail, stub.types = nil, map[string]string{us: "mobile"}
	if v, err := c.Check(ctx, policy, ph, otp.CarrierAsker{Identity: "alice"}); err != nil || v.Cached || stub.calls != 2 {
		t.Fatalf("the failure was cached: %+v %v, %d calls", v, err, stub.calls)
	}
	stub.types[us] = "voip"
	clock.Advance(otp.DefaultCarrierTTL - time.Minute)
	if v, err := c.Check(ctx, policy, ph, otp.CarrierAsker{Identity: "alice"}); err != nil || !v.Cached || v.Type != "mobile" || stub.calls != 2 {
		t.Fatalf("the answer was not kept for 30 days: %+v %v, %d calls", v, err, stub.calls)
	}
	clock.Advance(2 * time.Minute)
	if _, err := c.Check(ctx, policy, ph, otp.CarrierAsker{Identity: "alice"}); !otp.IsPhoneRefusal(err) || stub.calls != 3 {
		t.Fatalf("the answer outlived its 30 days: %v, %d calls", err, stub.calls)
	}
	// The cache holds neither the number nor the answer in clear, and
	// nothing under the phone sources' keys.
	keys, _ := otp.DeriveKeys([]byte("carrier-test-key-0123456789abcdef"))
	if _, ok, _ := store.CachedLookup(ctx, keys.LookupKey("stub", us), clock.Now()); ok {
		t.Fatal("the answer is kept under a key a phone source chain could use")
	}
}

func TestCarrierCheckFailsClosedWhenTheStoreIsDown(t *testing.T) {
	t.Parallel()
	policy := mustPolicy(t, otp.PhonePolicyConfig{DefaultRegion: "US"})
	ph, _ := policy.Check("+12015550123")
	keys, _ := otp.DeriveKeys([]byte("carrier-test-key-0123456789abcdef"))
	stub := &stubCarrier{types: map[string]string{ph.E164: "mobile"}}
	c, err := otp.NewCarrierCheck(otp.CarrierCheckConfig{Lookup: stub, Store: downCache{}, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(context.Background(), policy, ph, otp.CarrierAsker{Identity: "alice"}); !errors.Is(err, otp.ErrStoreUnavailable) {
		t.Fatalf("store down: %v", err)
	}
}

type downCache struct{}

func (downCache) CachedLookup(context.Context, string, time.Time) ([]byte, bool, error) {
	return nil, false, errors.New("down")
}

func (downCache) CacheLookup(context.Context, string, []byte, time.Time, time.Duration) error {
	return errors.New("down")
}

func TestNewCarrierCheckRefusesACacheOutOfBounds(t *testing.T) {
	t.Parallel()
	keys, _ := otp.DeriveKeys([]byte("carrier-test-key-0123456789abcdef"))
	for _, ttl := range []time.Duration{time.Minute, 91 * 24 * time.Hour} {
		if _, err := otp.NewCarrierCheck(otp.CarrierCheckConfig{Lookup: &stubCarrier{}, Store: downCache{}, Keys: keys, TTL: ttl}); err == nil {
			t.Errorf("cache %s was accepted", ttl)
		}
	}
}
