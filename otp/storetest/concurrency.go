package storetest

// The cases where requests race: parallel guesses, correct codes and resends.

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// parallel runs f(i) for i in [0, n) on n goroutines released together.
func parallel(n int, f func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

func parallelWrongGuesses(t *testing.T, e *env) {
	const guesses = 200
	e.issue("c1", "000000", t0)
	results := make([]otp.VerifyResult, guesses)
	errs := make([]error, guesses)
	parallel(guesses, func(i int) {
		code := fmt.Sprintf("%06d", i+1)
		results[i], errs[i] = e.store.Verify(t.Context(), otp.VerifyRequest{
			Subject: alice, ChallengeID: "c1", SessionHash: sessionA,
			CodeMAC: e.mac("c1", code), Now: t0, Failures: failures,
		})
	})
	count := map[otp.VerifyStatus]int{}
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("guess %d: %v", i, errs[i])
		}
		count[res.Status]++
	}
	if count[otp.VerifyWrong] != maxAttempts-1 || count[otp.VerifyExhausted] < 1 ||
		count[otp.VerifyWrong]+count[otp.VerifyExhausted]+count[otp.VerifyNotFound] != guesses {
		t.Fatalf("statuses %v: want %d wrong_code, at least one attempts_exhausted, and the rest no_challenge or attempts_exhausted",
			count, maxAttempts-1)
	}
	wantFailures(t, e, t0, maxAttempts)
}

func parallelCorrectCodes(t *testing.T, e *env) {
	const rounds, submissions = 20, 8
	for r := range rounds {
		// A subject per round, so no cooldown stands between rounds.
		subject := fmt.Sprintf("user-%d", r)
		c := e.challenge("c1", "111111", t0)
		c.Subject = subject
		if _, err := e.store.Issue(t.Context(), issueRequest(c, t0)); err != nil {
			t.Fatal(err)
		}
		results := make([]otp.VerifyResult, submissions)
		errs := make([]error, submissions)
		parallel(submissions, func(i int) {
			results[i], errs[i] = e.store.Verify(t.Context(), otp.VerifyRequest{
				Subject: subject, ChallengeID: "c1", SessionHash: sessionA,
				CodeMAC: e.mac("c1", "111111"), Now: t0, Failures: failures,
			})
		})
		ok := 0
		for i, res := range results {
			switch {
			case errs[i] != nil:
				t.Fatalf("round %d submission %d: %v", r, i, errs[i])
			case res.Status == otp.VerifyOK:
				ok++
			case res.Status != otp.VerifyNotFound:
				t.Fatalf("round %d submission %d: got %s, want ok or no_challenge", r, i, res.Status)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of %d parallel correct codes verified, want exactly 1", r, ok, submissions)
		}
	}
}

func parallelResends(t *testing.T, e *env) {
	const resends = 50
	e.issue("c1", "000000", t0)
	now := t0.Add(cooldownBase)
	issued := make([]*otp.Challenge, resends)
	errs := make([]error, resends)
	parallel(resends, func(i int) {
		issued[i], errs[i] = e.store.Issue(t.Context(), e.resendRequest("c1", fmt.Sprintf("%06d", i+1), now))
	})
	winner := -1
	for i, err := range errs {
		var cd *otp.CooldownError
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("resends %d and %d both passed the cooldown", winner, i)
		case err == nil:
			winner = i
		case !errors.As(err, &cd):
			t.Fatalf("resend %d: got %v, want success or *otp.CooldownError", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no resend passed the cooldown")
	}
	if st := e.identity(alice, now); st.Sends != 2 {
		t.Fatalf("identity sends: got %d, want 2", st.Sends)
	}
	if c := e.live("c1", now); c.Sends != 2 || !bytes.Equal(c.CodeMAC, issued[winner].CodeMAC) {
		t.Fatalf("stored challenge %+v does not hold the winning code", c)
	}
	wantStatus(t, e.verify("c1", fmt.Sprintf("%06d", winner+1), now), otp.VerifyOK)
}
