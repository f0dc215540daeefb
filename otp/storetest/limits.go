package storetest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The send-limit cases (SECURITY.md rule 12). t0 is 09:00 UTC, so an hourly
// window runs until 10:00 and a daily one until 00:00 UTC the next day.

func check(name, key string, max int, window time.Duration) otp.LimitCheck {
	return otp.LimitCheck{Name: name, Key: key, Max: max, Window: window}
}

func (e *env) limit(now time.Time, checks ...otp.LimitCheck) otp.LimitResult {
	e.t.Helper()
	res, err := e.store.Limit(e.t.Context(), otp.LimitRequest{Now: now, Checks: checks})
	if err != nil {
		e.t.Fatalf("limit at %s: %v", now.Sub(t0), err)
	}
	return res
}

// wantAllowed counts n sends, each of which must be allowed.
func (e *env) wantAllowed(n int, now time.Time, checks ...otp.LimitCheck) {
	e.t.Helper()
	for i := range n {
		if res := e.limit(now, checks...); !res.Allowed {
			e.t.Fatalf("send %d of %d at %s: refused by %s, want allowed", i+1, n, now.Sub(t0), res.Refused)
		}
	}
}

func (e *env) wantRefused(now time.Time, by string, retryAt time.Time, checks ...otp.LimitCheck) {
	e.t.Helper()
	res := e.limit(now, checks...)
	if res.Allowed || res.Refused != by || !res.RetryAt.Equal(retryAt) {
		e.t.Fatalf("at %s: got %+v, want refused by %s until %s", now.Sub(t0), res, by, retryAt.Sub(t0))
	}
}

func limitCountsUpToMax(t *testing.T, e *env) {
	phone := check("phone", "k1", 3, time.Hour)
	now := t0.Add(10 * time.Minute)
	e.wantAllowed(3, now, phone)
	end := t0.Add(time.Hour)
	e.wantRefused(now, "phone", end, phone)
	e.wantRefused(end.Add(-time.Second), "phone", end, phone)
}

func newWindowAllowsAgain(t *testing.T, e *env) {
	phone := check("phone", "k1", 2, time.Hour)
	e.wantAllowed(2, t0, phone)
	e.wantRefused(t0, "phone", t0.Add(time.Hour), phone)
	next := t0.Add(time.Hour)
	e.wantAllowed(2, next, phone)
	e.wantRefused(next, "phone", next.Add(time.Hour), phone)
}

func dailyBudgetRunsMidnightToMidnight(t *testing.T, e *env) {
	budget := check("daily_budget", "all", 2, 24*time.Hour)
	midnight := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	e.wantAllowed(2, t0, budget)
	e.wantRefused(t0, "daily_budget", midnight, budget)
	e.wantRefused(midnight.Add(-time.Second), "daily_budget", midnight, budget)
	e.wantAllowed(2, midnight, budget)
}

func countersAreKeptApart(t *testing.T, e *env) {
	e.wantAllowed(1, t0, check("phone", "k1", 1, time.Hour))
	e.wantRefused(t0, "phone", t0.Add(time.Hour), check("phone", "k1", 1, time.Hour))
	// Another key, another name, another window length: other counters.
	e.wantAllowed(1, t0, check("phone", "k2", 1, time.Hour))
	e.wantAllowed(1, t0, check("identity", "k1", 1, time.Hour))
	e.wantAllowed(1, t0, check("phone", "k1", 1, 2*time.Hour))
}

func firstRefusingCheckIsNamed(t *testing.T, e *env) {
	ip := check("ip", "k1", 1, time.Hour)
	budget := check("daily_budget", "all", 1, 24*time.Hour)
	e.wantAllowed(1, t0, ip, budget)
	e.wantRefused(t0, "ip", t0.Add(time.Hour), ip, budget)
	e.wantRefused(t0, "daily_budget", time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC), budget, ip)
	e.wantRefused(t0, "daily_budget", time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC), check("ip", "k2", 1, time.Hour), budget)
}

func refusedSendCostsNothing(t *testing.T, e *env) {
	phone := check("phone", "k1", 3, time.Hour)
	identity := check("identity", "k1", 3, time.Hour)
	budget := check("daily_budget", "all", 1, 24*time.Hour)
	e.wantAllowed(1, t0, budget)
	for range 5 {
		e.wantRefused(t0, "daily_budget", time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC), phone, identity, budget)
	}
	// Had the refused sends counted, the phone and the identity would be
	// spent; each still has all three.
	e.wantAllowed(3, t0, phone)
	e.wantRefused(t0, "phone", t0.Add(time.Hour), phone)
	e.wantAllowed(3, t0, identity)
}

func resetClearsEveryWindow(t *testing.T, e *env) {
	hourly := check("phone", "k1", 1, time.Hour)
	daily := check("phone", "k1", 1, 24*time.Hour)
	other := check("phone", "k2", 1, time.Hour)
	e.wantAllowed(1, t0, hourly)
	e.wantAllowed(1, t0, daily)
	e.wantAllowed(1, t0, other)
	if err := e.store.ResetLimit(t.Context(), "phone", "k1"); err != nil {
		t.Fatal(err)
	}
	e.wantAllowed(1, t0, hourly)
	e.wantAllowed(1, t0, daily)
	e.wantRefused(t0, "phone", t0.Add(time.Hour), other)
	if err := e.store.ResetLimit(t.Context(), "phone", "never-counted"); err != nil {
		t.Fatalf("resetting a counter that never counted: %v", err)
	}
}

func invalidLimitRequestRefused(t *testing.T, e *env) {
	good := check("phone", "k1", 1, time.Hour)
	bad := map[string]otp.LimitCheck{
		"max 0":            check("phone", "k1", 0, time.Hour),
		"no name":          check("", "k1", 1, time.Hour),
		"a brace":          check("ph{one}", "k1", 1, time.Hour),
		"no key":           check("phone", "", 1, time.Hour),
		"no window":        check("phone", "k1", 1, 0),
		"a partial second": check("phone", "k1", 1, time.Hour+time.Microsecond),
	}
	for what, c := range bad {
		if res, err := e.store.Limit(t.Context(), otp.LimitRequest{Now: t0, Checks: []otp.LimitCheck{good, c}}); err == nil {
			t.Errorf("a check with %s: got %+v, want an error", what, res)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.store.Limit(ctx, otp.LimitRequest{Now: t0, Checks: []otp.LimitCheck{good}}); err == nil {
		t.Error("a cancelled context: got no error")
	}
	e.wantAllowed(1, t0, good)
	e.wantRefused(t0, "phone", t0.Add(time.Hour), good)
}

// concurrentSends runs n sends of checks at once and returns how many were
// allowed.
func (e *env) concurrentSends(n int, checks ...otp.LimitCheck) int {
	e.t.Helper()
	var allowed, failed atomic.Int64
	parallel(n, func(int) {
		res, err := e.store.Limit(e.t.Context(), otp.LimitRequest{Now: t0, Checks: checks})
		switch {
		case err != nil:
			failed.Add(1)
		case res.Allowed:
			allowed.Add(1)
		}
	})
	if failed.Load() > 0 {
		e.t.Fatalf("%d of %d concurrent sends failed", failed.Load(), n)
	}
	return int(allowed.Load())
}

func concurrentSendsAllowExactlyMax(t *testing.T, e *env) {
	if got := e.concurrentSends(200, check("phone", "k1", 10, time.Hour)); got != 10 {
		t.Fatalf("%d of 200 concurrent sends allowed, want exactly 10", got)
	}
}

func concurrentRefusalsAreRefunded(t *testing.T, e *env) {
	wide := check("ip", "k1", 1000, time.Hour)
	narrow := check("daily_budget", "all", 10, 24*time.Hour)
	if got := e.concurrentSends(200, wide, narrow); got != 10 {
		t.Fatalf("%d of 200 concurrent sends allowed, want exactly 10", got)
	}
	// The wide counter holds the 10 allowed sends and none of the 190
	// refused ones: with a max of 11 it takes exactly one more.
	wide.Max = 11
	e.wantAllowed(1, t0, wide)
	e.wantRefused(t0, "ip", t0.Add(time.Hour), wide)
}
