package otp_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

// Paid lookups are capped per identity, per address and per day before
// they are made; cached answers cost nothing and count nothing.
func TestCarrierCheckCapsPaidLookups(t *testing.T) {
	t.Parallel()
	policy := mustPolicy(t, otp.PhonePolicyConfig{DefaultRegion: "US"})
	keys, _ := otp.DeriveKeys([]byte("carrier-test-key-0123456789abcdef"))
	clock := newFakeClock()
	store := memory.New(clock, time.Hour)
	t.Cleanup(func() { store.Close() })
	stub := &stubCarrier{types: map[string]string{}}
	c, err := otp.NewCarrierCheck(otp.CarrierCheckConfig{Lookup: stub, Store: store, Keys: keys, Clock: clock,
		Limiter: store, Limits: otp.CarrierLimits{PerIdentity: 2, PerIP: 3, Daily: 4}})
	if err != nil {
		t.Fatal(err)
	}
	number := func(i int) otp.Phone {
		e164 := fmt.Sprintf("+1201555%04d", 100+i)
		stub.types[e164] = "mobile"
		ph, err := policy.Check(e164)
		if err != nil {
			t.Fatal(err)
		}
		return ph
	}
	ctx := context.Background()
	check := func(ph otp.Phone, identity, ip string) error {
		_, err := c.Check(ctx, policy, ph, otp.CarrierAsker{Identity: identity, ClientIP: ip})
		return err
	}
	refusedBy := func(err error, limit string) bool {
		var rl *otp.RateLimitError
		return errors.Is(err, otp.ErrCarrierLookup) && errors.As(err, &rl) && rl.Limit == limit
	}
	for i := 0; i < 2; i++ {
		if err := check(number(i), "mallory", "192.0.2.1"); err != nil {
			t.Fatalf("lookup %d: %v", i, err)
		}
	}
	if err := check(number(2), "mallory", "192.0.2.1"); !refusedBy(err, otp.LimitLookupIdentity) {
		t.Fatalf("a third new number for one identity in an hour: %v", err)
	}
	if err := check(number(0), "mallory", "192.0.2.1"); err != nil {
		t.Fatalf("a cached answer is refused by the cap: %v", err)
	}
	if err := check(number(3), "trudy", "192.0.2.1"); err != nil {
		t.Fatalf("another identity: %v", err)
	}
	if err := check(number(4), "oscar", "192.0.2.1"); !refusedBy(err, otp.LimitLookupIP) {
		t.Fatalf("a fourth lookup from one address: %v", err)
	}
	if err := check(number(5), "oscar", "198.51.100.7"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	if err := check(number(6), "peggy", "203.0.113.9"); !refusedBy(err, otp.LimitLookupDaily) {
		t.Fatalf("a fifth lookup in a day: %v", err)
	}
	if stub.calls != 4 {
		t.Fatalf("the carrier database was asked %d times, expected the 4 the caps let through", stub.calls)
	}
	clock.Advance(25 * time.Hour)
	if err := check(number(7), "peggy", "203.0.113.9"); err != nil {
		t.Fatalf("the next day: %v", err)
	}
}

func TestCarrierLimitsRefuseNegativeCaps(t *testing.T) {
	t.Parallel()
	keys, _ := otp.DeriveKeys([]byte("carrier-test-key-0123456789abcdef"))
	_, err := otp.NewCarrierCheck(otp.CarrierCheckConfig{Lookup: &stubCarrier{}, Store: downCache{}, Keys: keys,
		Limits: otp.CarrierLimits{PerIP: -1}})
	if err == nil {
		t.Fatal("a negative cap was accepted")
	}
}
