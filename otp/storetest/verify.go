package storetest

// The cases on checking a code: attempts, failures per identity and lock-outs.

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func correctCodeVerifiesOnce(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	wantStatus(t, e.verify("c1", "111111", t0), otp.VerifyOK)
	wantStatus(t, e.verify("c1", "111111", t0), otp.VerifyNotFound)
	e.gone(alice, "c1", t0)
	wantFailures(t, e, t0, 0)
}

func wrongCodeIsCounted(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	for i := 1; i <= 2; i++ {
		res := e.verify("c1", "999999", t0)
		wantStatus(t, res, otp.VerifyWrong)
		if res.Remaining != maxAttempts-i || res.Failures != i {
			t.Fatalf("wrong code %d: remaining %d failures %d, want %d and %d", i, res.Remaining, res.Failures, maxAttempts-i, i)
		}
	}
	if c := e.live("c1", t0); c.Attempts != 2 {
		t.Fatalf("attempts: got %d, want 2", c.Attempts)
	}
	wantFailures(t, e, t0, 2)
}

func challengeDiesAfterLastAttempt(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	for i := 1; i < maxAttempts; i++ {
		wantStatus(t, e.verify("c1", "999999", t0), otp.VerifyWrong)
	}
	res := e.verify("c1", "999999", t0)
	wantStatus(t, res, otp.VerifyExhausted)
	if res.Remaining != 0 || res.Failures != maxAttempts {
		t.Fatalf("last attempt: got %+v, want 0 remaining and %d failures", res, maxAttempts)
	}
	res = e.verify("c1", "111111", t0)
	if res.Status != otp.VerifyNotFound && res.Status != otp.VerifyExhausted {
		t.Fatalf("right code after the last attempt: got %s, want no_challenge or attempts_exhausted", res.Status)
	}
	e.gone(alice, "c1", t0)
	wantFailures(t, e, t0, maxAttempts)
}

func nearMissIsWrong(t *testing.T, e *env) {
	right := e.mac("c1", "111111")
	lastByte := bytes.Clone(right)
	lastByte[len(lastByte)-1] ^= 1
	misses := map[string][]byte{
		"last byte": lastByte,
		"truncated": right[:len(right)/2],
		"extended":  append(bytes.Clone(right), 0),
		"empty":     nil,
	}
	e.issue("c1", "111111", t0)
	for name, mac := range misses {
		res, err := e.store.Verify(t.Context(), otp.VerifyRequest{
			Subject: alice, ChallengeID: "c1", SessionHash: sessionA, CodeMAC: mac, Now: t0, Failures: failures,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status == otp.VerifyOK {
			t.Fatalf("a %s MAC verified", name)
		}
	}
	wantFailures(t, e, t0, len(misses))
}

func expiredChallengeNotCounted(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	late := t0.Add(codeTTL)
	wantStatus(t, e.verify("c1", "999999", late), otp.VerifyNotFound)
	wantStatus(t, e.verify("c1", "111111", late), otp.VerifyNotFound)
	wantFailures(t, e, late, 0)
}

func otherSessionNotCounted(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	wantStatus(t, e.verifyAs(alice, sessionB, "c1", "111111", t0, failures), otp.VerifyNotFound)
	wantStatus(t, e.verifyAs(alice, sessionB, "c1", "999999", t0, failures), otp.VerifyNotFound)
	wantStatus(t, e.verifyAs(alice, "", "c1", "111111", t0, failures), otp.VerifyNotFound)
	if c := e.live("c1", t0); c.Attempts != 0 {
		t.Fatalf("attempts: got %d, want 0", c.Attempts)
	}
	wantFailures(t, e, t0, 0)
	wantStatus(t, e.verify("c1", "111111", t0), otp.VerifyOK)
}

func otherIdentityNotCounted(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	wantStatus(t, e.verifyAs(bob, sessionA, "c1", "111111", t0, failures), otp.VerifyNotFound)
	wantStatus(t, e.verifyAs(bob, sessionA, "c1", "999999", t0, failures), otp.VerifyNotFound)
	if c := e.live("c1", t0); c.Attempts != 0 {
		t.Fatalf("attempts: got %d, want 0", c.Attempts)
	}
	wantFailures(t, e, t0, 0)
	wantStatus(t, e.verify("c1", "111111", t0), otp.VerifyOK)
}

func failuresSurviveNewCode(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	wantStatus(t, e.verify("c1", "999999", t0), otp.VerifyWrong)
	wantStatus(t, e.verify("c1", "999999", t0), otp.VerifyWrong)

	now := e.nextSend(t0)
	e.issue("c2", "222222", now)
	wantFailures(t, e, now, 2)
	if res := e.verify("c2", "999999", now); res.Failures != 3 {
		t.Fatalf("first wrong code on the new challenge: failures %d, want 3", res.Failures)
	}

	now = e.nextSend(now)
	if _, err := e.resend("c2", "333333", now); err != nil {
		t.Fatal(err)
	}
	wantFailures(t, e, now, 3)
}

func lockOutGrows(t *testing.T, e *env) {
	p := otp.FailurePolicy{Budget: 3, DelayBase: 30 * time.Second, DelayMax: time.Hour, HardLimit: 100, Window: 24 * time.Hour}
	locks := []time.Duration{0, 0, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute,
		8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}

	// One long-lived challenge with room for every attempt, so only the
	// identity's lock-out is measured.
	c := e.challenge("c1", "111111", t0)
	c.MaxAttempts = len(locks) + 1
	c.ExpiresAt = t0.Add(48 * time.Hour)
	if _, err := e.store.Issue(t.Context(), issueRequest(c, t0)); err != nil {
		t.Fatal(err)
	}

	now := t0
	for i, lock := range locks {
		res := e.verifyAs(alice, sessionA, "c1", "999999", now, p)
		wantStatus(t, res, otp.VerifyWrong)
		if lock == 0 {
			if res.LockedUntil.After(now) {
				t.Fatalf("failure %d is within the budget but locked for %s", i+1, res.LockedUntil.Sub(now))
			}
			continue
		}
		if got := res.LockedUntil.Sub(now); got != lock {
			t.Fatalf("failure %d: %s, want locked for %s", i+1, lockedFor(res.LockedUntil, now), lock)
		}
		almost := res.LockedUntil.Add(-time.Second)
		wantStatus(t, e.verifyAs(alice, sessionA, "c1", "111111", almost, p), otp.VerifyLocked)
		now = res.LockedUntil
	}
	wantFailures(t, e, now, len(locks))
	wantStatus(t, e.verifyAs(alice, sessionA, "c1", "111111", now, p), otp.VerifyOK)
}

func lockedIdentityIsRefused(t *testing.T, e *env) {
	p := otp.FailurePolicy{Budget: 3, DelayBase: 30 * time.Second, DelayMax: time.Hour, HardLimit: 100, Window: 24 * time.Hour}
	e.issue("c1", "111111", t0)
	var res otp.VerifyResult
	for range 3 {
		res = e.verifyAs(alice, sessionA, "c1", "999999", t0, p)
	}
	until := t0.Add(30 * time.Second)
	if !res.LockedUntil.Equal(until) {
		t.Fatalf("third failure: %s, want locked for 30s", lockedFor(res.LockedUntil, t0))
	}

	now := t0.Add(10 * time.Second)
	res = e.verifyAs(alice, sessionA, "c1", "111111", now, p)
	wantStatus(t, res, otp.VerifyLocked)
	if !res.LockedUntil.Equal(until) {
		t.Fatalf("locked verify: %s, want locked until 30s after the third failure", lockedFor(res.LockedUntil, now))
	}
	if st := e.identity(alice, now); !st.Locked(now) || st.Failures != 3 {
		t.Fatalf("identity while locked: %+v, want locked with 3 failures", st)
	}

	_, err := e.store.Issue(t.Context(), issueRequest(e.challenge("c2", "222222", now), now))
	var locked *otp.LockedError
	if !errors.As(err, &locked) || !locked.Until.Equal(until) {
		t.Fatalf("issue while locked: got %v, want *otp.LockedError until %s", err, until.Sub(t0))
	}
	e.gone(alice, "c2", now)
	_, err = e.resend("c1", "333333", now)
	if !errors.As(err, &locked) {
		t.Fatalf("resend while locked: got %v, want *otp.LockedError", err)
	}

	// Nothing was compared or counted while locked: the right code still
	// works once the lock-out ends, on its fourth attempt.
	if c := e.live("c1", now); c.Attempts != 3 {
		t.Fatalf("attempts while locked: got %d, want 3", c.Attempts)
	}
	wantStatus(t, e.verifyAs(alice, sessionA, "c1", "111111", until, p), otp.VerifyOK)
}

func correctCodeResetsFailures(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	wantStatus(t, e.verify("c1", "999999", t0), otp.VerifyWrong)
	wantStatus(t, e.verify("c1", "999999", t0), otp.VerifyWrong)
	wantStatus(t, e.verify("c1", "111111", t0), otp.VerifyOK)
	wantFailures(t, e, t0, 0)

	now := e.nextSend(t0)
	e.issue("c2", "222222", now)
	if res := e.verify("c2", "999999", now); res.Failures != 1 {
		t.Fatalf("first failure after a success: failures %d, want 1", res.Failures)
	}
}

func hardLimitStopsFailures(t *testing.T, e *env) {
	// Three attempts per challenge, so the hundredth failure is the first on
	// a fresh challenge and that challenge is still live when the identity
	// locks; and a long life, so lock-outs do not outlast it.
	now := t0
	id := ""
	evaluated := 0
	for evaluated < failures.HardLimit {
		if id == "" {
			now = e.nextSend(now)
			id = fmt.Sprintf("c%d", evaluated)
			c := e.challenge(id, "111111", now)
			c.MaxAttempts = 3
			c.ExpiresAt = now.Add(30 * 24 * time.Hour)
			if _, err := e.store.Issue(t.Context(), issueRequest(c, now)); err != nil {
				t.Fatalf("issue after %d failures: %v", evaluated, err)
			}
		}
		res := e.verify(id, "999999", now)
		switch res.Status {
		case otp.VerifyWrong:
		case otp.VerifyExhausted:
			id = ""
		default:
			t.Fatalf("failure %d: got %s (%+v), want a counted wrong code", evaluated+1, res.Status, res)
		}
		evaluated++
		if res.Failures != evaluated {
			t.Fatalf("failure %d: identity failures %d", evaluated, res.Failures)
		}
		if evaluated < failures.HardLimit {
			if d := res.LockedUntil.Sub(now); d > failures.DelayMax {
				t.Fatalf("failure %d: locked for %s, more than %s", evaluated, d, failures.DelayMax)
			}
			if res.LockedUntil.After(now) {
				now = res.LockedUntil
			}
			continue
		}
		if got := res.LockedUntil.Sub(now); got != otp.HardLock {
			t.Fatalf("failure %d: %s, want the hard lock (%s, until an operator unlocks)", evaluated, lockedFor(res.LockedUntil, now), otp.HardLock)
		}
	}
	if id == "" {
		t.Fatal("the hundredth failure exhausted its challenge; the test wants it live")
	}

	// Waiting buys nothing: a quiet window, or a year, later the identity
	// is still locked with its count, so a 101st failure is never
	// evaluated (SECURITY.md rule 7; NIST SP 800-63B 3.2.2).
	end := now.Add(otp.HardLock)
	for _, later := range []time.Time{now.Add(failures.Window), now.Add(failures.Window + time.Second), now.Add(365 * 24 * time.Hour)} {
		wantStatus(t, e.verify(id, "111111", later), otp.VerifyLocked)
		_, err := e.store.Issue(t.Context(), issueRequest(e.challenge("late", "222222", later), later))
		var locked *otp.LockedError
		if !errors.As(err, &locked) || !locked.Until.Equal(end) {
			t.Fatalf("issue %s after the hard limit: got %v, want *otp.LockedError until the hard lock ends", later.Sub(now), err)
		}
		wantFailures(t, e, later, failures.HardLimit)
	}
	if s, ok := e.store.(interface{ Sweep(time.Time) }); ok {
		s.Sweep(now.Add(365 * 24 * time.Hour))
		wantFailures(t, e, now.Add(365*24*time.Hour), failures.HardLimit)
	}

	// Only an operator's unlock lifts it.
	if err := e.store.Unlock(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	later := now.Add(failures.Window + time.Minute)
	if st := e.identity(alice, later); st.Locked(later) || st.Failures != 0 {
		t.Fatalf("after an unlock: %+v, want unlocked with no failures", st)
	}
}
