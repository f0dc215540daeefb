package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The cases of one send (issue 13): Issue decides the identity's lock-out,
// its cooldown, the challenge's own caps and every send limit together, and
// a send that any of them refuses counts against nothing and changes
// nothing.

// sendLimits are the limits the send cases count against: generous, so
// only the case's own refusal refuses.
func sendLimits() []otp.LimitCheck {
	return []otp.LimitCheck{
		check("phone", "k1", 100, time.Hour),
		check("identity", "k1", 100, time.Hour),
		check("daily_budget", "all", 100, 24*time.Hour),
	}
}

// sendAs issues subject a new challenge id at now, counted against limits.
func (e *env) sendAs(subject, id, code string, now time.Time, limits ...otp.LimitCheck) (*otp.Challenge, error) {
	req := issueRequest(e.challengeOf(subject, id, code, now), now)
	req.Limits = limits
	return e.store.Issue(e.t.Context(), req)
}

// resendWith puts code into alice's challenge id at now, counted against
// limits.
func (e *env) resendWith(id, code string, now time.Time, limits ...otp.LimitCheck) (*otp.Challenge, error) {
	req := e.resendRequest(id, code, now)
	req.Limits = limits
	return e.store.Issue(e.t.Context(), req)
}

// wantCounts fails the test unless every limit has counted n sends at now.
func (e *env) wantCounts(now time.Time, n int, limits ...otp.LimitCheck) {
	e.t.Helper()
	for _, l := range limits {
		e.wantCount(l, now, n)
	}
}

func wantRateLimited(t *testing.T, err error, limit string, retryAt time.Time) {
	t.Helper()
	var rl *otp.RateLimitError
	if !errors.As(err, &rl) || rl.Limit != limit || !rl.RetryAt.Equal(retryAt) {
		t.Fatalf("got %v, want *otp.RateLimitError of the %s limit until %s", err, limit, retryAt.Sub(t0))
	}
}

func sendCountsAgainstEveryLimit(t *testing.T, e *env) {
	limits := sendLimits()
	if _, err := e.sendAs(alice, "c1", "111111", t0, limits...); err != nil {
		t.Fatal(err)
	}
	e.wantCounts(t0, 1, limits...)
	e.live("c1", t0)
}

func limitRefusalChangesNothing(t *testing.T, e *env) {
	phone := check("phone", "k1", 1, time.Hour)
	others := sendLimits()[1:]
	if _, err := e.sendAs(bob, "b1", "111111", t0, phone); err != nil {
		t.Fatal(err)
	}
	_, err := e.sendAs(alice, "c1", "222222", t0, append(others, phone)...)
	wantRateLimited(t, err, "phone", t0.Add(time.Hour))
	e.gone(alice, "c1", t0)
	if st := e.identity(alice, t0); st.Sends != 0 || !st.NextSendAt.IsZero() {
		t.Fatalf("identity after a refused send: %+v, want no send and no cooldown", st)
	}
	e.wantCounts(t0, 0, others...)
	e.wantCounts(t0, 1, phone)
}

func limitRefusalKeepsTheOldCode(t *testing.T, e *env) {
	full := check("daily_budget", "all", 1, 24*time.Hour)
	e.issue("c1", "111111", t0)
	if _, err := e.sendAs(bob, "b1", "222222", t0, full); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(cooldownBase)
	_, err := e.resendWith("c1", "333333", now, full)
	wantRateLimited(t, err, "daily_budget", time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC))
	if c := e.live("c1", now); c.Sends != 1 {
		t.Fatalf("challenge after a refused resend: %d sends, want 1", c.Sends)
	}
	if st := e.identity(alice, now); st.Sends != 1 || st.NextSendAt.After(now) {
		t.Fatalf("identity after a refused resend: %+v, want the first send only, its cooldown over", st)
	}
	wantStatus(t, e.verify("c1", "333333", now), otp.VerifyWrong)
	wantStatus(t, e.verify("c1", "111111", now), otp.VerifyOK)
}

func cooldownRefusalCountsNothing(t *testing.T, e *env) {
	limits := sendLimits()
	if _, err := e.sendAs(alice, "c1", "111111", t0, limits...); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Second)
	_, err := e.sendAs(alice, "c2", "222222", now, limits...)
	wantCooldown(t, err, t0.Add(cooldownBase))
	_, err = e.resendWith("c1", "333333", now, limits...)
	wantCooldown(t, err, t0.Add(cooldownBase))
	e.gone(alice, "c2", now)
	e.wantCounts(now, 1, limits...)
}

func lockedRefusalCountsNothing(t *testing.T, e *env) {
	lockAtOnce := otp.FailurePolicy{Budget: 1, DelayBase: time.Hour, DelayMax: time.Hour, HardLimit: 100, Window: 24 * time.Hour}
	e.issue("c1", "111111", t0)
	wantStatus(t, e.verifyAs(alice, sessionA, "c1", "999999", t0, lockAtOnce), otp.VerifyWrong)
	limits := sendLimits()
	now := t0.Add(cooldownBase)
	_, err := e.sendAs(alice, "c2", "222222", now, limits...)
	var locked *otp.LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("send while locked out: got %v, want *otp.LockedError", err)
	}
	e.wantCounts(now, 0, limits...)
}

func challengeRefusalCountsNothing(t *testing.T, e *env) {
	limits := sendLimits()
	e.issue("c1", "111111", t0)
	now := t0.Add(cooldownBase)
	spent := e.resendRequest("c1", "222222", now)
	spent.MaxSends, spent.Limits = 1, limits
	if _, err := e.store.Issue(t.Context(), spent); !errors.Is(err, otp.ErrSendLimit) {
		t.Fatalf("a second code where one is the most: got %v, want ErrSendLimit", err)
	}
	if _, err := e.resendWith("never-made", "333333", now, limits...); !errors.Is(err, otp.ErrChallengeNotFound) {
		t.Fatalf("a resend of no challenge: got %v, want ErrChallengeNotFound", err)
	}
	e.wantCounts(now, 0, limits...)
}

func resendOfGoneChallengeTakesFallback(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	// Alive: the resend puts its code in c1 and the fallback is not made.
	now := t0.Add(cooldownBase)
	req := e.resendRequest("c1", "222222", now)
	req.FallbackID, req.FallbackMAC = "f1", e.mac("f1", "222222")
	if c, err := e.store.Issue(t.Context(), req); err != nil || c.ID != "c1" || c.Sends != 2 {
		t.Fatalf("resend of a live challenge with a fallback: %+v, %v; want c1 with 2 sends", c, err)
	}
	e.gone(alice, "f1", now)
	// Gone: the same step makes the fallback instead, counting the send.
	now = e.nextSend(now.Add(codeTTL))
	limits := sendLimits()
	req = e.resendRequest("c1", "333333", now)
	req.FallbackID, req.FallbackMAC, req.Limits = "f2", e.mac("f2", "333333"), limits
	c, err := e.store.Issue(t.Context(), req)
	if err != nil || c.ID != "f2" || c.Sends != 1 || c.Attempts != 0 {
		t.Fatalf("resend of an expired challenge with a fallback: %+v, %v; want a new f2 with 1 send", c, err)
	}
	e.wantCounts(now, 1, limits...)
	e.gone(alice, "c1", now)
	wantStatus(t, e.verify("f2", "333333", now), otp.VerifyOK)
}

func concurrentSendsOfOneIdentityCountOnce(t *testing.T, e *env) {
	const sends = 50
	limits := sendLimits()
	var passed, cooled atomic.Int64
	parallel(sends, func(i int) {
		_, err := e.sendAs(alice, fmt.Sprint("c", i), "111111", t0, limits...)
		var cd *otp.CooldownError
		switch {
		case err == nil:
			passed.Add(1)
		case errors.As(err, &cd):
			cooled.Add(1)
		default:
			t.Errorf("send %d: %v", i, err)
		}
	})
	if passed.Load() != 1 || cooled.Load() != sends-1 {
		t.Fatalf("%d sends passed and %d met the cooldown, want 1 and %d", passed.Load(), cooled.Load(), sends-1)
	}
	e.wantCounts(t0, 1, limits...)
}

func concurrentSendsPassALimitExactlyMaxTimes(t *testing.T, e *env) {
	const sends, max = 200, 10
	wide := check("ip", "k1", 1000, time.Hour)
	narrow := check("daily_budget", "all", max, 24*time.Hour)
	var passed atomic.Int64
	parallel(sends, func(i int) {
		_, err := e.sendAs(fmt.Sprint("user-", i), "c1", "111111", t0, wide, narrow)
		var rl *otp.RateLimitError
		switch {
		case err == nil:
			passed.Add(1)
		case !errors.As(err, &rl) || rl.Limit != "daily_budget":
			t.Errorf("send %d: got %v, want success or the daily budget's refusal", i, err)
		}
	})
	if passed.Load() != max {
		t.Fatalf("%d of %d concurrent sends passed a limit of %d", passed.Load(), sends, max)
	}
	e.wantCounts(t0, max, wide, narrow)
}

func invalidSendChangesNothing(t *testing.T, e *env) {
	good := check("phone", "k1", 5, time.Hour)
	bad := check("phone", "", 5, time.Hour)
	if c, err := e.sendAs(alice, "c1", "111111", t0, good, bad); err == nil {
		t.Fatalf("a send with a limit without a key: got %+v, want an error", c)
	}
	req := issueRequest(e.challenge("c1", "111111", t0), t0)
	req.FallbackID, req.FallbackMAC = "f1", e.mac("f1", "111111")
	if c, err := e.store.Issue(t.Context(), req); err == nil {
		t.Fatalf("a first send with a fallback: got %+v, want an error", c)
	}
	e.gone(alice, "c1", t0)
	e.gone(alice, "f1", t0)
	e.wantCounts(t0, 0, good)
	if st := e.identity(alice, t0); st.Sends != 0 {
		t.Fatalf("identity after refused sends: %+v, want no send", st)
	}
}
