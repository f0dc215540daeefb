// Package storetest is the conformance suite of otp.Store. Every store (in
// memory, Redis, Redis Cluster) runs the same Run from its own test, so the
// rules of SECURITY.md that live in the store (codes replaced on resend, one
// use per code, attempts and failures counted atomically, growing cooldowns
// and lock-outs, send limits, one number per identity) are checked once and
// hold for all of them.
//
// Time is never slept through: every request carries its own Now, so the
// suite moves time by passing later instants.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// t0 is whole seconds in UTC, so stores that keep times at millisecond or
// second precision compare equal.
var t0 = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

const (
	alice    = "alice"
	bob      = "bob"
	sessionA = "session-hash-a"
	sessionB = "session-hash-b"
	phoneA   = "phone-hash-a"
	phoneB   = "phone-hash-b"
	maskedA  = "+81 90-****-5678"

	codeTTL      = 5 * time.Minute
	maxAttempts  = 5
	cooldownBase = 30 * time.Second
	cooldownMax  = 10 * time.Minute
	sendWindow   = time.Hour
)

// failures is the policy of SECURITY.md rule 7: 10 free failures, then
// delays from 30 s doubling up to 1 h, and a hard stop at 100.
var failures = otp.FailurePolicy{
	Budget:    10,
	DelayBase: 30 * time.Second,
	DelayMax:  time.Hour,
	HardLimit: 100,
	Window:    24 * time.Hour,
}

// Run runs the suite against stores made by newStore. newStore is called once
// per subtest, from subtests that run in parallel, and must return a store
// that shares no state with any other it returned (for Redis: a fresh key
// prefix or database). It should register the store's clean-up with
// t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) otp.Store) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newEnv(t, newStore))
		})
	}
}

var cases = []struct {
	name string
	run  func(*testing.T, *env)
}{
	// Challenges.
	{"an issued challenge is read back with its code MAC and never the code", issuedChallengeIsReadBack},
	{"a challenge lives until just before it expires", challengeLivesUntilExpiry},
	{"a challenge is invisible to another identity", challengeInvisibleToOthers},
	{"an identity never seen has zero counters", unknownIdentityIsZero},
	{"a cancelled context fails the operation and changes nothing", cancelledContextChangesNothing},

	// Resends (rule 4).
	{"a resend replaces the code and keeps the attempt count", resendReplacesCode},
	{"a resend restarts the code's lifetime", resendRestartsLifetime},
	{"a resend from another session is refused and changes nothing", resendFromOtherSessionRefused},
	{"a resend to another phone is refused and changes nothing", resendToOtherPhoneRefused},
	{"a resend of an unknown challenge is refused", resendOfUnknownRefused},
	{"a resend of another identity's challenge is refused", resendOfOthersRefused},
	{"a resend past the send limit is refused", resendPastLimitRefused},

	// Cooldowns (rule 12).
	{"the cooldown after each send doubles from 30 seconds up to its cap", cooldownDoubles},
	{"a send within the cooldown is refused with the time to retry and changes nothing", sendWithinCooldownRefused},
	{"the cooldown starts again from its base once the send window has passed", cooldownResetsAfterWindow},

	// Verification (rules 5, 6, 7).
	{"a correct code verifies once and consumes the challenge", correctCodeVerifiesOnce},
	{"a wrong code is counted and reports the attempts left", wrongCodeIsCounted},
	{"a challenge dies after its last attempt even for the right code", challengeDiesAfterLastAttempt},
	{"a code MAC that differs from the stored one in any byte or its length is wrong", nearMissIsWrong},
	{"an expired challenge is not found and nothing is counted", expiredChallengeNotCounted},
	{"a code from another session is not found and nothing is counted", otherSessionNotCounted},
	{"a code for another identity's challenge is not found and nothing is counted", otherIdentityNotCounted},

	// Failures per identity (rule 7).
	{"failures count across challenges and a new code does not reset them", failuresSurviveNewCode},
	{"the lock-out grows from 30 seconds and is capped at an hour", lockOutGrows},
	{"a locked identity can neither verify nor get a new code", lockedIdentityIsRefused},
	{"a correct code resets the failure count", correctCodeResetsFailures},
	{"no more than the hard limit of consecutive failures is ever evaluated", hardLimitStopsFailures},

	// Delivery reports and calls (issue 4).
	{"a delivery report is recorded and never downgraded by a later one", deliveryNeverDowngrades},
	{"a resend clears the delivery status of the old code", resendClearsDelivery},
	{"a report for a gone challenge is dropped", deliveryForGoneChallengeDropped},
	{"calls count against their own limit", callsHaveTheirOwnLimit},

	// Atomicity (rules 5 and 8).
	{"200 parallel wrong guesses evaluate exactly the 5 attempts allowed", parallelWrongGuesses},
	{"parallel submissions of the correct code verify exactly once", parallelCorrectCodes},
	{"parallel resends let exactly one through the cooldown", parallelResends},

	// Send limits (rule 12, issue 5).
	{"a limit counts sends up to its max and refuses until its window ends", limitCountsUpToMax},
	{"a new window allows sends again", newWindowAllowsAgain},
	{"the daily budget runs from midnight to midnight UTC", dailyBudgetRunsMidnightToMidnight},
	{"counters of other names, keys or windows are kept apart", countersAreKeptApart},
	{"a refusal names the first full check in request order", firstRefusingCheckIsNamed},
	{"a send refused by a later check costs the earlier checks nothing", refusedSendCostsNothing},
	{"a reset clears every window of its counter and no other", resetClearsEveryWindow},
	{"an invalid limit request is refused and counts nothing", invalidLimitRequestRefused},
	{"200 concurrent sends against a max of 10 allow exactly 10", concurrentSendsAllowExactlyMax},
	{"concurrent sends refused by a later check leave the earlier one as if they never came", concurrentRefusalsAreRefunded},

	// One send, decided and counted in one step (rule 12, issue 13).
	{"a send counts against every limit it names", sendCountsAgainstEveryLimit},
	{"a send refused by a limit makes no challenge, starts no cooldown and counts against no other limit", limitRefusalChangesNothing},
	{"a resend refused by a limit keeps the old code and its cooldown", limitRefusalKeepsTheOldCode},
	{"a send refused by the cooldown counts against no limit", cooldownRefusalCountsNothing},
	{"a send refused by a lock-out counts against no limit", lockedRefusalCountsNothing},
	{"a resend refused by its challenge counts against no limit", challengeRefusalCountsNothing},
	{"a resend of a gone challenge makes its fallback in the same step", resendOfGoneChallengeTakesFallback},
	{"50 concurrent sends of one identity pass its cooldown once and count once", concurrentSendsOfOneIdentityCountOnce},
	{"200 concurrent sends of different identities pass a limit of 10 exactly 10 times", concurrentSendsPassALimitExactlyMaxTimes},
	{"an invalid send is refused and changes nothing", invalidSendChangesNothing},

	// Phone bindings (rule 13, issue 5).
	{"a bound phone is read back as it was bound", boundPhoneIsReadBack},
	{"an identity that never bound a phone has none", unboundIdentityHasNone},
	{"rebinding replaces the number and frees the old one", rebindFreesOldNumber},
	{"rebinding the same number is not refused as taken", rebindSameNumber},
	{"a number bound to as many identities as allowed refuses another and changes nothing", numberTakenChangesNothing},
	{"unbinding removes the binding and frees the number", unbindFreesNumber},
	{"an invalid bind request is refused and binds nothing", invalidBindRefused},
	{"concurrent binds of one number by 50 identities with a max of 1 let exactly one win", concurrentBindsOneWinner},
	{"concurrent rebinds of one identity leave exactly its final number held", concurrentRebindsOneIdentity},

	// Operator actions (rule 15, issue 7).
	{"a revocation kills the identity's challenges in flight and no one else's", revocationKillsChallengesInFlight},
	{"a challenge made after a revocation lives", challengeAfterRevocationLives},
	{"a not-before only moves forward", notBeforeOnlyMovesForward},
	{"a revocation outlives a year without activity", revocationOutlivesIdleness},
	{"a correct code racing a revocation verifies before it or not at all", revokeRacesVerify},
	{"an unlock lets a locked identity verify again and keeps its sends and cooldown", unlockKeepsSends},
	{"the locked list holds exactly the identities locked out with the latest end first", lockedListsTheLocked},
	{"a limit count reads a window's sends without counting", limitCountReadsWithoutCounting},
}

type env struct {
	t     *testing.T
	store otp.Store
	keys  *otp.Keys
}

func newEnv(t *testing.T, newStore func(*testing.T) otp.Store) *env {
	keys, err := otp.DeriveKeys([]byte("storetest root key, 32 bytes or more"))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: newStore(t), keys: keys}
}

func (e *env) mac(id, code string) []byte { return e.keys.CodeMAC(id, code) }

// challenge is alice's challenge in session A to phone A, made at now.
func (e *env) challenge(id, code string, now time.Time) otp.Challenge {
	return otp.Challenge{
		ID:          id,
		Subject:     alice,
		SessionHash: sessionA,
		PhoneHash:   phoneA,
		PhoneMasked: maskedA,
		CodeMAC:     e.mac(id, code),
		CreatedAt:   now,
		SentAt:      now,
		ExpiresAt:   now.Add(codeTTL),
		MaxAttempts: maxAttempts,
	}
}

func issueRequest(c otp.Challenge, now time.Time) otp.IssueRequest {
	return otp.IssueRequest{
		Challenge:    c,
		Now:          now,
		MaxSends:     5,
		CooldownBase: cooldownBase,
		CooldownMax:  cooldownMax,
		SendWindow:   sendWindow,
	}
}

// resendRequest puts code into alice's challenge id, sent at now.
func (e *env) resendRequest(id, code string, now time.Time) otp.IssueRequest {
	req := issueRequest(e.challenge(id, code, now), now)
	req.Resend = true
	return req
}

// issue creates alice's challenge id with code at now and fails the test if
// the store refuses.
func (e *env) issue(id, code string, now time.Time) *otp.Challenge {
	e.t.Helper()
	c, err := e.store.Issue(e.t.Context(), issueRequest(e.challenge(id, code, now), now))
	if err != nil {
		e.t.Fatalf("issue %s at %s: %v", id, now.Sub(t0), err)
	}
	return c
}

func (e *env) resend(id, code string, now time.Time) (*otp.Challenge, error) {
	return e.store.Issue(e.t.Context(), e.resendRequest(id, code, now))
}

func (e *env) verifyAs(subject, session, id, code string, now time.Time, p otp.FailurePolicy) otp.VerifyResult {
	e.t.Helper()
	res, err := e.store.Verify(e.t.Context(), otp.VerifyRequest{
		Subject:       subject,
		ChallengeID:   id,
		SessionHash:   session,
		CodeMAC:       e.mac(id, code),
		Now:           now,
		Failures:      p,
		SealedSubject: sealed(subject),
	})
	if err != nil {
		e.t.Fatalf("verify %s at %s: %v", id, now.Sub(t0), err)
	}
	return res
}

// verify submits code for alice's challenge id in session A.
func (e *env) verify(id, code string, now time.Time) otp.VerifyResult {
	e.t.Helper()
	return e.verifyAs(alice, sessionA, id, code, now, failures)
}

func (e *env) identity(subject string, now time.Time) otp.IdentityState {
	e.t.Helper()
	st, err := e.store.Identity(e.t.Context(), subject, now)
	if err != nil {
		e.t.Fatalf("identity %s: %v", subject, err)
	}
	return st
}

// live returns alice's challenge id, failing the test if it is gone.
func (e *env) live(id string, now time.Time) *otp.Challenge {
	e.t.Helper()
	c, err := e.store.Challenge(e.t.Context(), alice, id, now)
	if err != nil {
		e.t.Fatalf("challenge %s at %s: %v", id, now.Sub(t0), err)
	}
	return c
}

// gone fails the test unless subject's challenge id is not found.
func (e *env) gone(subject, id string, now time.Time) {
	e.t.Helper()
	c, err := e.store.Challenge(e.t.Context(), subject, id, now)
	if !errors.Is(err, otp.ErrChallengeNotFound) {
		e.t.Fatalf("challenge %s of %s at %s: got %+v, %v; want ErrChallengeNotFound", id, subject, now.Sub(t0), c, err)
	}
}

// nextSend returns the first instant at or after now when alice may be sent
// a code: past both her lock-out and her cooldown.
func (e *env) nextSend(now time.Time) time.Time {
	e.t.Helper()
	st := e.identity(alice, now)
	if now.Before(st.LockedUntil) {
		now = st.LockedUntil
	}
	if now.Before(st.NextSendAt) {
		now = st.NextSendAt
	}
	return now
}

func wantStatus(t *testing.T, res otp.VerifyResult, want otp.VerifyStatus) {
	t.Helper()
	if res.Status != want {
		t.Fatalf("verify: got %s (%+v), want %s", res.Status, res, want)
	}
}

func wantFailures(t *testing.T, e *env, now time.Time, want int) {
	t.Helper()
	if got := e.identity(alice, now).Failures; got != want {
		t.Fatalf("identity failures: got %d, want %d", got, want)
	}
}

// lockedFor describes a lock-out as seen at now.
func lockedFor(until, now time.Time) string {
	if !until.After(now) {
		return "not locked"
	}
	return "locked for " + until.Sub(now).String()
}

func wantCooldown(t *testing.T, err error, retryAt time.Time) {
	t.Helper()
	var cd *otp.CooldownError
	if !errors.As(err, &cd) {
		t.Fatalf("got %v, want *otp.CooldownError", err)
	}
	if !cd.RetryAt.Equal(retryAt) {
		t.Fatalf("cooldown retry at %s, want %s", cd.RetryAt.Sub(t0), retryAt.Sub(t0))
	}
}

func issuedChallengeIsReadBack(t *testing.T, e *env) {
	const code = "482913"
	req := issueRequest(e.challenge("c1", code, t0), t0)
	got, err := e.store.Issue(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	// The store keeps its own copy: changing what went in or came out
	// changes nothing stored.
	req.Challenge.CodeMAC[0] ^= 0xff
	got.CodeMAC[0] ^= 0xff

	read := e.live("c1", t0.Add(time.Second))
	want := e.challenge("c1", code, t0)
	want.Sends = 1
	if err := sameChallenge(read, &want); err != nil {
		t.Fatal(err)
	}
	if got.Sends != 1 || got.Attempts != 0 {
		t.Fatalf("issued challenge: sends %d attempts %d, want 1 and 0", got.Sends, got.Attempts)
	}
	stored, err := json.Marshal(read)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored), code) {
		t.Fatalf("the stored challenge holds the code: %s", stored)
	}
	if bytes.Contains(read.CodeMAC, []byte(code)) {
		t.Fatal("the stored MAC holds the code")
	}
}

func sameChallenge(got, want *otp.Challenge) error {
	switch {
	case got.ID != want.ID, got.Subject != want.Subject, got.SessionHash != want.SessionHash,
		got.PhoneHash != want.PhoneHash, got.PhoneMasked != want.PhoneMasked:
		return fmt.Errorf("names differ:\n got %+v\nwant %+v", got, want)
	case !bytes.Equal(got.CodeMAC, want.CodeMAC):
		return fmt.Errorf("code MAC: got %x, want %x", got.CodeMAC, want.CodeMAC)
	case !got.CreatedAt.Equal(want.CreatedAt), !got.SentAt.Equal(want.SentAt), !got.ExpiresAt.Equal(want.ExpiresAt):
		return fmt.Errorf("times differ:\n got %+v\nwant %+v", got, want)
	case got.Sends != want.Sends, got.Attempts != want.Attempts, got.MaxAttempts != want.MaxAttempts:
		return fmt.Errorf("counts differ:\n got %+v\nwant %+v", got, want)
	}
	return nil
}

func challengeLivesUntilExpiry(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	e.live("c1", t0.Add(codeTTL-time.Second))
	e.gone(alice, "c1", t0.Add(codeTTL))
}

func challengeInvisibleToOthers(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	e.gone(bob, "c1", t0)
	e.gone(alice, "no-such-challenge", t0)
}

func unknownIdentityIsZero(t *testing.T, e *env) {
	if st := e.identity(bob, t0); st != (otp.IdentityState{}) {
		t.Fatalf("got %+v, want zero", st)
	}
}

func cancelledContextChangesNothing(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.store.Issue(ctx, issueRequest(e.challenge("c0", "111111", t0), t0)); err == nil {
		t.Fatal("issue with a cancelled context succeeded")
	}
	e.gone(alice, "c0", t0)

	e.issue("c1", "222222", t0)
	_, err := e.store.Verify(ctx, otp.VerifyRequest{
		Subject: alice, ChallengeID: "c1", SessionHash: sessionA,
		CodeMAC: e.mac("c1", "222222"), Now: t0, Failures: failures,
	})
	if err == nil {
		t.Fatal("verify with a cancelled context succeeded")
	}
	wantStatus(t, e.verify("c1", "222222", t0), otp.VerifyOK)
}

func resendReplacesCode(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	wantStatus(t, e.verify("c1", "999999", t0), otp.VerifyWrong)

	now := t0.Add(cooldownBase)
	c, err := e.resend("c1", "222222", now)
	if err != nil {
		t.Fatalf("resend: %v", err)
	}
	if c.ID != "c1" || c.Sends != 2 || c.Attempts != 1 || !bytes.Equal(c.CodeMAC, e.mac("c1", "222222")) {
		t.Fatalf("resent challenge: got %+v, want c1 with 2 sends, 1 attempt and the new MAC", c)
	}

	res := e.verify("c1", "111111", now)
	wantStatus(t, res, otp.VerifyWrong)
	if res.Remaining != maxAttempts-2 {
		t.Fatalf("remaining after the old code: got %d, want %d (the resend kept the count)", res.Remaining, maxAttempts-2)
	}
	wantStatus(t, e.verify("c1", "222222", now), otp.VerifyOK)
}

func resendRestartsLifetime(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	now := t0.Add(4 * time.Minute)
	if _, err := e.resend("c1", "222222", now); err != nil {
		t.Fatalf("resend: %v", err)
	}
	later := t0.Add(codeTTL + time.Minute)
	if got := e.live("c1", later); !got.ExpiresAt.Equal(now.Add(codeTTL)) {
		t.Fatalf("expires at %s, want %s", got.ExpiresAt.Sub(t0), now.Add(codeTTL).Sub(t0))
	}
	wantStatus(t, e.verify("c1", "222222", later), otp.VerifyOK)
}

// refusedResend checks that a refused resend left the challenge, its code
// and the identity's cooldown as they were.
func refusedResend(t *testing.T, e *env, req otp.IssueRequest) {
	t.Helper()
	e.issue("c1", "111111", t0)
	before := e.identity(alice, t0)
	now := t0.Add(cooldownBase)
	if c, err := e.store.Issue(t.Context(), req); !errors.Is(err, otp.ErrChallengeNotFound) {
		t.Fatalf("resend: got %+v, %v; want ErrChallengeNotFound", c, err)
	}
	if after := e.identity(alice, now); after.Sends != before.Sends || !after.NextSendAt.Equal(before.NextSendAt) {
		t.Fatalf("identity changed: before %+v, after %+v", before, after)
	}
	if c := e.live("c1", now); c.Sends != 1 || !bytes.Equal(c.CodeMAC, e.mac("c1", "111111")) {
		t.Fatalf("challenge changed: %+v", c)
	}
	wantStatus(t, e.verify("c1", "111111", now), otp.VerifyOK)
}

func resendFromOtherSessionRefused(t *testing.T, e *env) {
	req := e.resendRequest("c1", "222222", t0.Add(cooldownBase))
	req.Challenge.SessionHash = sessionB
	refusedResend(t, e, req)
}

func resendToOtherPhoneRefused(t *testing.T, e *env) {
	req := e.resendRequest("c1", "222222", t0.Add(cooldownBase))
	req.Challenge.PhoneHash = phoneB
	refusedResend(t, e, req)
}

func resendOfUnknownRefused(t *testing.T, e *env) {
	refusedResend(t, e, e.resendRequest("c9", "222222", t0.Add(cooldownBase)))
}

func resendOfOthersRefused(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	req := e.resendRequest("c1", "222222", t0.Add(cooldownBase))
	req.Challenge.Subject = bob
	if c, err := e.store.Issue(t.Context(), req); !errors.Is(err, otp.ErrChallengeNotFound) {
		t.Fatalf("bob's resend of alice's challenge: got %+v, %v; want ErrChallengeNotFound", c, err)
	}
	wantStatus(t, e.verify("c1", "111111", t0.Add(cooldownBase)), otp.VerifyOK)
}

func resendPastLimitRefused(t *testing.T, e *env) {
	// A cooldown capped at a minute keeps every resend within the code's
	// lifetime.
	resend := func(code string, now time.Time) (*otp.Challenge, error) {
		req := e.resendRequest("c1", code, now)
		req.CooldownMax = time.Minute
		return e.store.Issue(t.Context(), req)
	}
	e.issue("c1", "000000", t0)
	now := t0
	for i := 2; i <= 5; i++ {
		now = e.nextSend(now)
		if _, err := resend(fmt.Sprintf("%06d", i), now); err != nil {
			t.Fatalf("send %d of 5: %v", i, err)
		}
	}
	now = e.nextSend(now)
	if c, err := resend("666666", now); !errors.Is(err, otp.ErrSendLimit) {
		t.Fatalf("send 6 of 5: got %+v, %v; want ErrSendLimit", c, err)
	}
	wantStatus(t, e.verify("c1", "000005", now), otp.VerifyOK)
}

func cooldownDoubles(t *testing.T, e *env) {
	waits := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	now := t0
	for i, wait := range waits {
		id := fmt.Sprintf("c%d", i)
		e.issue(id, "111111", now)
		next := now.Add(wait)
		if st := e.identity(alice, now); !st.NextSendAt.Equal(next) {
			t.Fatalf("after send %d: next send at %s, want %s", i+1, st.NextSendAt.Sub(now), wait)
		}
		_, err := e.store.Issue(t.Context(), issueRequest(e.challenge("early", "222222", next.Add(-time.Second)), next.Add(-time.Second)))
		wantCooldown(t, err, next)
		now = next
	}
}

func sendWithinCooldownRefused(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	now := t0.Add(cooldownBase - time.Second)

	_, err := e.store.Issue(t.Context(), issueRequest(e.challenge("c2", "222222", now), now))
	wantCooldown(t, err, t0.Add(cooldownBase))
	e.gone(alice, "c2", now)

	_, err = e.resend("c1", "333333", now)
	wantCooldown(t, err, t0.Add(cooldownBase))
	if st := e.identity(alice, now); st.Sends != 1 || !st.NextSendAt.Equal(t0.Add(cooldownBase)) {
		t.Fatalf("refused sends were counted: %+v", st)
	}
	wantStatus(t, e.verify("c1", "111111", now), otp.VerifyOK)
}

func cooldownResetsAfterWindow(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	now := t0.Add(cooldownBase)
	e.issue("c2", "222222", now)
	if st := e.identity(alice, now); !st.NextSendAt.Equal(now.Add(2 * cooldownBase)) {
		t.Fatalf("second cooldown: next send at %s, want %s", st.NextSendAt.Sub(now), 2*cooldownBase)
	}
	now = now.Add(sendWindow)
	e.issue("c3", "333333", now)
	if st := e.identity(alice, now); st.Sends != 1 || !st.NextSendAt.Equal(now.Add(cooldownBase)) {
		t.Fatalf("after a quiet window: %+v, want 1 send and a %s cooldown", st, cooldownBase)
	}
}

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

func (e *env) deliver(id string, st otp.DeliveryStatus, now time.Time) {
	e.t.Helper()
	if err := e.store.SetDelivery(e.t.Context(), alice, id, st, now); err != nil {
		e.t.Fatalf("set delivery %s: %v", st, err)
	}
}

func deliveryNeverDowngrades(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	if got := e.live("c1", t0).Delivery; got != "" {
		t.Fatalf("a new challenge has delivery %q", got)
	}
	for _, step := range []struct {
		report, want otp.DeliveryStatus
	}{
		{otp.DeliveryQueued, otp.DeliveryQueued},
		{otp.DeliverySent, otp.DeliverySent},
		{otp.DeliveryQueued, otp.DeliverySent},
		{otp.DeliveryDelivered, otp.DeliveryDelivered},
		{otp.DeliverySent, otp.DeliveryDelivered},
	} {
		e.deliver("c1", step.report, t0)
		if got := e.live("c1", t0).Delivery; got != step.want {
			t.Fatalf("after %q the status is %q, want %q", step.report, got, step.want)
		}
	}
}

func resendClearsDelivery(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	e.deliver("c1", otp.DeliveryFailed, t0)
	if _, err := e.resend("c1", "222222", t0.Add(cooldownBase)); err != nil {
		t.Fatal(err)
	}
	if got := e.live("c1", t0.Add(cooldownBase)).Delivery; got != "" {
		t.Fatalf("the new code inherited the old one's status %q", got)
	}
}

func deliveryForGoneChallengeDropped(t *testing.T, e *env) {
	e.deliver("never-made", otp.DeliveryDelivered, t0)
	e.gone(alice, "never-made", t0)
	e.issue("c1", "111111", t0)
	if got := e.verify("c1", "111111", t0); got.Status != otp.VerifyOK {
		t.Fatalf("verify %v", got.Status)
	}
	e.deliver("c1", otp.DeliveryDelivered, t0)
	e.gone(alice, "c1", t0)
}

func callsHaveTheirOwnLimit(t *testing.T, e *env) {
	e.issue("c1", "111111", t0)
	now, sends := t0, 1
	call := func(code string) (*otp.Challenge, error) {
		now = now.Add(otp.Cooldown(sends, cooldownBase, cooldownMax))
		sends++
		req := e.resendRequest("c1", code, now)
		req.Voice, req.MaxCalls = true, 2
		return e.store.Issue(e.t.Context(), req)
	}
	for i, code := range []string{"222222", "333333"} {
		c, err := call(code)
		if err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		if c.Calls != i+1 || c.Sends != i+2 {
			t.Fatalf("after call %d: calls %d sends %d", i+1, c.Calls, c.Sends)
		}
	}
	if _, err := call("444444"); !errors.Is(err, otp.ErrCallLimit) {
		t.Fatalf("a third call: %v, want ErrCallLimit", err)
	}
	if got := e.verify("c1", "333333", now); got.Status != otp.VerifyOK {
		t.Fatalf("the refused call changed the code: %v", got.Status)
	}
}
