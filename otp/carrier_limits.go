package otp

import (
	"context"
	"fmt"
	"time"
)

// A carrier lookup costs money on every cache miss, before any send limit
// is counted: a signed-in attacker who enrols one fresh +1 number after
// another would spend the lookup account without a single SMS going out.
// So lookups that reach the carrier database are capped of their own, per
// identity, per client address (IPv6 by its /64) and per UTC day, in the
// store like the send limits, so the caps hold across instances.

// The names of the lookup caps, as they appear in RateLimitError.Limit,
// logs and metrics.
const (
	LimitLookupIdentity = "lookup_identity"
	LimitLookupIP       = "lookup_ip"
	LimitLookupDaily    = "lookup_daily"
)

// CarrierLimits caps paid lookups. A zero count switches its cap off.
type CarrierLimits struct {
	// PerIdentity and PerIP count per hour.
	PerIdentity int
	PerIP       int
	// Daily counts every lookup together per UTC day.
	Daily int
}

// DefaultCarrierLimits allow a person a few numbers an hour and cap a
// day's lookups well below what a month of a carrier database costs: 5
// lookups an hour for one identity, 20 from one address, 1,000 a day.
func DefaultCarrierLimits() CarrierLimits {
	return CarrierLimits{PerIdentity: 5, PerIP: 20, Daily: 1000}
}

// Validate reports a negative cap.
func (l CarrierLimits) Validate() error {
	for _, v := range []struct {
		name string
		n    int
	}{{"max_per_identity", l.PerIdentity}, {"max_per_ip", l.PerIP}, {"daily_budget", l.Daily}} {
		if v.n < 0 {
			return fmt.Errorf("lookup %s %d: expected 0 (off) or more", v.name, v.n)
		}
	}
	return nil
}

// CarrierAsker is who a lookup is made for: the identity and the client's
// address (empty when unknown, and then not counted by address).
type CarrierAsker struct {
	Identity string
	ClientIP string
}

// Limiter counts against limits in the store (Store.Limit).
type Limiter interface {
	Limit(ctx context.Context, req LimitRequest) (LimitResult, error)
}

func (l CarrierLimits) checks(keys *Keys, who CarrierAsker) []LimitCheck {
	out := make([]LimitCheck, 0, 3)
	add := func(name, kind, value string, max int, window time.Duration) {
		if max > 0 {
			out = append(out, LimitCheck{Name: name, Key: keys.LimitKey(name, limitValue(kind, value)), Max: max, Window: window})
		}
	}
	add(LimitLookupIdentity, LimitIdentity, who.Identity, l.PerIdentity, time.Hour)
	if who.ClientIP != "" {
		add(LimitLookupIP, LimitIP, who.ClientIP, l.PerIP, time.Hour)
	}
	add(LimitLookupDaily, LimitDailyBudget, "", l.Daily, 24*time.Hour)
	return out
}

// countLookup counts one paid lookup against the caps, before it is made.
// A refusal is a *RateLimitError wrapped in ErrCarrierLookup: for the
// flows it is a lookup that could not be made, which refuses a new number
// and leaves a bound one its code.
func (c *CarrierCheck) countLookup(ctx context.Context, who CarrierAsker, now time.Time) error {
	checks := c.cfg.Limits.checks(c.cfg.Keys, who)
	if c.cfg.Limiter == nil || len(checks) == 0 {
		return nil
	}
	res, err := c.cfg.Limiter.Limit(ctx, LimitRequest{Now: now, Checks: checks})
	if err != nil {
		return fmt.Errorf("%w: count carrier lookup: %w", ErrStoreUnavailable, err)
	}
	if !res.Allowed {
		return fmt.Errorf("%w: %w", ErrCarrierLookup, &RateLimitError{Limit: res.Refused, RetryAt: res.RetryAt})
	}
	return nil
}
