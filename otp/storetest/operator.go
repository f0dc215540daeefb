package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The operator cases (issue 7): a revocation (the per-identity "not before"
// of SECURITY.md rule 15), an unlock, the list of lock-outs, and reading a
// send counter without counting.

// challengeOf is subject's challenge in session A to phone A, made at now.
func (e *env) challengeOf(subject, id, code string, now time.Time) otp.Challenge {
	c := e.challenge(id, code, now)
	c.Subject = subject
	return c
}

func (e *env) issueOf(subject, id, code string, now time.Time) {
	e.t.Helper()
	if _, err := e.store.Issue(e.t.Context(), issueRequest(e.challengeOf(subject, id, code, now), now)); err != nil {
		e.t.Fatalf("issue %s of %s at %s: %v", id, subject, now.Sub(t0), err)
	}
}

func (e *env) revoke(subject string, notBefore time.Time) {
	e.t.Helper()
	if err := e.store.Revoke(e.t.Context(), subject, notBefore); err != nil {
		e.t.Fatalf("revoke %s at %s: %v", subject, notBefore.Sub(t0), err)
	}
}

func (e *env) unlock(subject string) {
	e.t.Helper()
	if err := e.store.Unlock(e.t.Context(), subject); err != nil {
		e.t.Fatalf("unlock %s: %v", subject, err)
	}
}

func (e *env) wantNotBefore(subject string, want time.Time) {
	e.t.Helper()
	got, err := e.store.NotBefore(e.t.Context(), subject)
	switch {
	case err != nil:
		e.t.Fatalf("not before of %s: %v", subject, err)
	case want.IsZero() && !got.IsZero():
		e.t.Fatalf("not before of %s: got %s after t0, want none", subject, got.Sub(t0))
	case !want.IsZero() && !got.Equal(want):
		e.t.Fatalf("not before of %s: got %s after t0 (zero: %t), want %s", subject, got.Sub(t0), got.IsZero(), want.Sub(t0))
	}
}

func revocationKillsChallengesInFlight(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	e.issueOf(bob, "b1", "222222", t0)
	nb := t0.Add(10 * time.Second)
	e.revoke(alice, nb)

	e.gone(alice, "c1", nb)
	now := t0.Add(cooldownBase)
	if _, err := e.resend("c1", "333333", now); !errors.Is(err, otp.ErrChallengeNotFound) {
		t.Fatalf("resend of a revoked challenge: got %v, want ErrChallengeNotFound", err)
	}
	if st := e.identity(alice, now); st.Sends != 1 {
		t.Fatalf("the refused resend changed the identity's sends to %d, want 1", st.Sends)
	}
	wantStatus(t, e.verify("c1", "111111", nb), otp.VerifyNotFound)
	wantFailures(t, e, nb, 0)

	// Another identity's challenge is untouched.
	wantStatus(t, e.verifyAs(bob, sessionA, "b1", "222222", nb, failures), otp.VerifyOK)
}

func challengeAfterRevocationLives(t *testing.T, e *env) {
	e.revoke(alice, t0)
	now := t0.Add(time.Second)
	e.issue("c1", "111111", now)
	e.live("c1", now)
	later := now.Add(cooldownBase)
	if _, err := e.resend("c1", "222222", later); err != nil {
		t.Fatalf("resend of a challenge made after the revocation: %v", err)
	}
	wantStatus(t, e.verify("c1", "222222", later), otp.VerifyOK)
}

func notBeforeOnlyMovesForward(t *testing.T, e *env) {
	e.wantNotBefore(alice, time.Time{})
	t1 := t0.Add(time.Hour)
	e.revoke(alice, t1)
	e.wantNotBefore(alice, t1)
	e.revoke(alice, t0)
	e.wantNotBefore(alice, t1)

	// An earlier revocation does not reach back past the later one to the
	// challenges made since.
	made := t1.Add(time.Second)
	e.issue("c1", "111111", made)
	e.revoke(alice, t1.Add(-time.Minute))
	e.wantNotBefore(alice, t1)
	e.live("c1", made)

	t2 := made.Add(time.Minute)
	e.revoke(alice, t2)
	e.wantNotBefore(alice, t2)
	e.gone(alice, "c1", t2)
	e.wantNotBefore(bob, time.Time{})
}

func revocationOutlivesIdleness(t *testing.T, e *env) {
	e.revoke(alice, t0)
	later := t0.Add(365 * 24 * time.Hour)
	// A store that sweeps what has expired gets its chance to drop it.
	if s, ok := e.store.(interface{ Sweep(time.Time) }); ok {
		s.Sweep(later)
	}
	e.wantNotBefore(alice, t0)

	// Nor does the identity's activity, which rewrites and then drops its
	// counters, take the revocation with it.
	e.issue("c1", "111111", later)
	wantStatus(t, e.verify("c1", "111111", later), otp.VerifyOK)
	if s, ok := e.store.(interface{ Sweep(time.Time) }); ok {
		s.Sweep(later.Add(48 * time.Hour))
	}
	e.wantNotBefore(alice, t0)
}

func revokeRacesVerify(t *testing.T, e *env) {
	const rounds, submissions = 20, 8
	for r := range rounds {
		// A subject per round, so no cooldown stands between rounds.
		subject := fmt.Sprintf("user-%d", r)
		e.issueOf(subject, "c1", "111111", t0)
		nb := t0.Add(time.Second)
		var revoked atomic.Bool
		results := make([]otp.VerifyResult, submissions+1)
		errs := make([]error, submissions+1)
		late := make([]bool, submissions+1)
		parallel(submissions+1, func(i int) {
			if i == 0 {
				errs[0] = e.store.Revoke(t.Context(), subject, nb)
				revoked.Store(true)
				return
			}
			late[i] = revoked.Load()
			results[i], errs[i] = e.store.Verify(t.Context(), otp.VerifyRequest{
				Subject: subject, ChallengeID: "c1", SessionHash: sessionA,
				CodeMAC: e.mac("c1", "111111"), Now: nb, Failures: failures,
			})
		})
		if errs[0] != nil {
			t.Fatalf("round %d: revoke: %v", r, errs[0])
		}
		ok := 0
		for i := 1; i <= submissions; i++ {
			switch {
			case errs[i] != nil:
				t.Fatalf("round %d submission %d: %v", r, i, errs[i])
			case results[i].Status == otp.VerifyOK && late[i]:
				t.Fatalf("round %d submission %d: verified though it began after the revocation had returned", r, i)
			case results[i].Status == otp.VerifyOK:
				ok++
			case results[i].Status != otp.VerifyNotFound:
				t.Fatalf("round %d submission %d: got %s, want ok or no_challenge", r, i, results[i].Status)
			}
		}
		if ok > 1 {
			t.Fatalf("round %d: %d submissions verified, want at most 1", r, ok)
		}
		res, err := e.store.Verify(t.Context(), otp.VerifyRequest{
			Subject: subject, ChallengeID: "c1", SessionHash: sessionA,
			CodeMAC: e.mac("c1", "111111"), Now: nb, Failures: failures,
		})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, res, otp.VerifyNotFound)
		e.wantNotBefore(subject, nb)
	}
}

func unlockKeepsSends(t *testing.T, e *env) {
	// Unlocking an identity the store does not know changes nothing.
	e.unlock(bob)
	if st := e.identity(bob, t0); st != (otp.IdentityState{}) {
		t.Fatalf("bob after an unlock: %+v, want zero", st)
	}

	p := otp.FailurePolicy{Budget: 3, DelayBase: 10 * time.Minute, DelayMax: time.Hour, HardLimit: 100, Window: 24 * time.Hour}
	e.issue("c1", "111111", t0)
	var res otp.VerifyResult
	for range 3 {
		res = e.verifyAs(alice, sessionA, "c1", "999999", t0, p)
	}
	if until := t0.Add(10 * time.Minute); !res.LockedUntil.Equal(until) {
		t.Fatalf("third failure: %s, want locked for 10m", lockedFor(res.LockedUntil, t0))
	}
	now := t0.Add(time.Second)
	wantStatus(t, e.verifyAs(alice, sessionA, "c1", "111111", now, p), otp.VerifyLocked)

	e.unlock(alice)
	st := e.identity(alice, now)
	if st.Locked(now) || st.Failures != 0 {
		t.Fatalf("after the unlock: %+v, want unlocked with no failures", st)
	}
	if next := t0.Add(cooldownBase); st.Sends != 1 || !st.NextSendAt.Equal(next) {
		t.Fatalf("after the unlock: %d sends, next send at %s; want 1 and %s as before", st.Sends, st.NextSendAt.Sub(t0), next.Sub(t0))
	}
	_, err := e.store.Issue(t.Context(), issueRequest(e.challenge("c2", "222222", now), now))
	wantCooldown(t, err, t0.Add(cooldownBase))

	// The failure count starts afresh and the live challenge verifies.
	res = e.verifyAs(alice, sessionA, "c1", "999999", now, p)
	wantStatus(t, res, otp.VerifyWrong)
	if res.Failures != 1 || res.LockedUntil.After(now) {
		t.Fatalf("first failure after the unlock: %+v, want 1 failure and no lock-out", res)
	}
	wantStatus(t, e.verifyAs(alice, sessionA, "c1", "111111", now, p), otp.VerifyOK)
}

func (e *env) wantLocked(now time.Time, max int, want []otp.LockedIdentity, total int) {
	e.t.Helper()
	got, n, err := e.store.Locked(e.t.Context(), now, max)
	if err != nil {
		e.t.Fatalf("locked at %s: %v", now.Sub(t0), err)
	}
	same := len(got) == len(want) && n == total
	for i := 0; same && i < len(got); i++ {
		same = named(got[i], want[i].Subject) && got[i].Failures == want[i].Failures && got[i].Until.Equal(want[i].Until)
	}
	if !same {
		e.t.Fatalf("locked at %s, max %d:\n got %d in all: %s\nwant %d in all: %s",
			now.Sub(t0), max, n, describeLocked(got), total, describeLocked(want))
	}
}

// sealed stands for otp.Keys.SealSubject in the suite: opaque bytes that
// only the suite knows how to read back.
func sealed(subject string) []byte { return []byte("sealed " + subject) }

// named reports whether a listed lock-out names subject, in clear or by the
// sealed name its verification gave the store.
func named(l otp.LockedIdentity, subject string) bool {
	if l.Subject != "" {
		return l.Subject == subject
	}
	return bytes.Equal(l.SealedSubject, sealed(subject))
}

func describeLocked(l []otp.LockedIdentity) string {
	s := "["
	for i, id := range l {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q/%q (%d failures, until t0+%s)", id.Subject, id.SealedSubject, id.Failures, id.Until.Sub(t0))
	}
	return s + "]"
}

func lockedListsTheLocked(t *testing.T, e *env) {
	const (
		carol = "carol@example.com"
		dave  = "dave {with braces}, spaces and * [glob] chars"
		erin  = "erin"
	)
	for _, l := range []struct {
		subject string
		budget  int
		delay   time.Duration
	}{
		{carol, 1, 3 * time.Minute},
		{dave, 2, 5 * time.Minute},
		{erin, 1, time.Minute},
		{bob, failures.Budget, failures.DelayBase},
	} {
		e.issueOf(l.subject, "c1", "111111", t0)
		p := otp.FailurePolicy{Budget: l.budget, DelayBase: l.delay, DelayMax: time.Hour, HardLimit: 100, Window: 24 * time.Hour}
		for range min(l.budget, 2) {
			e.verifyAs(l.subject, sessionA, "c1", "999999", t0, p)
		}
	}
	// Alice has a challenge and a send, and no failure.
	e.issue("c1", "111111", t0)

	want := []otp.LockedIdentity{
		{Subject: dave, Failures: 2, Until: t0.Add(5 * time.Minute)},
		{Subject: carol, Failures: 1, Until: t0.Add(3 * time.Minute)},
		{Subject: erin, Failures: 1, Until: t0.Add(time.Minute)},
	}
	e.wantLocked(t0, -1, want, 3)
	e.wantLocked(t0, 2, want[:2], 3)
	e.wantLocked(t0, 0, nil, 3)
	e.wantLocked(t0.Add(2*time.Minute), -1, want[:2], 2)
	e.wantLocked(t0.Add(5*time.Minute), -1, nil, 0)

	e.unlock(carol)
	e.wantLocked(t0, -1, []otp.LockedIdentity{want[0], want[2]}, 2)
}

func (e *env) wantCount(c otp.LimitCheck, now time.Time, want int) {
	e.t.Helper()
	got, err := e.store.LimitCount(e.t.Context(), c, now)
	if err != nil {
		e.t.Fatalf("limit count %s at %s: %v", c.Name, now.Sub(t0), err)
	}
	if got != want {
		e.t.Fatalf("limit count %s/%s at %s: got %d, want %d", c.Name, c.Key, now.Sub(t0), got, want)
	}
}

func limitCountReadsWithoutCounting(t *testing.T, e *env) {
	phone := check("phone", "k1", 3, time.Hour)
	now := t0.Add(10 * time.Minute)
	e.wantCount(phone, now, 0)
	e.wantCount(phone, now, 0)
	for i := 1; i <= 3; i++ {
		e.wantAllowed(1, now, phone)
		e.wantCount(phone, now, i)
	}
	end := t0.Add(time.Hour)
	e.wantRefused(now, "phone", end, phone)
	e.wantCount(phone, now, 3)

	// A send refused by a later check leaves the earlier one's count as it
	// was.
	other := check("phone", "k2", 5, time.Hour)
	e.wantRefused(now, "phone", end, other, phone)
	e.wantCount(other, now, 0)

	// Each window reads its own count.
	e.wantCount(phone, end.Add(-time.Millisecond), 3)
	e.wantCount(phone, end, 0)
	e.wantAllowed(1, end, phone)
	e.wantCount(phone, end, 1)

	budget := check(otp.LimitDailyBudget, "all", 100, 24*time.Hour)
	e.wantAllowed(2, now, budget)
	midnight := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	e.wantCount(budget, midnight.Add(-time.Second), 2)
	e.wantCount(budget, midnight, 0)

	if err := e.store.ResetLimit(t.Context(), phone.Name, phone.Key); err != nil {
		t.Fatal(err)
	}
	e.wantCount(phone, end, 0)

	// A check no store can keep is an error, never a panic (a zero window
	// would divide by zero finding its bounds).
	for _, bad := range []otp.LimitCheck{
		check("phone", "k1", 3, 0),
		check("phone", "k1", 3, time.Microsecond),
		check("phone", "", 3, time.Hour),
		check("Phone!", "k1", 3, time.Hour),
	} {
		if n, err := e.store.LimitCount(t.Context(), bad, now); err == nil {
			t.Errorf("limit count of %+v: got %d and no error, want an error", bad, n)
		}
	}
}
