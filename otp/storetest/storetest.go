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
	"errors"
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
	{"a verification returns the masked number and history list of its challenge", verifyReturnsWhereTheCodeWent},

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

	// A send's history entry in the send's own step, and the challenge a
	// refused resend shows (issue 17).
	{"a send's entry sealed ahead is kept with the send and notes its gateway", sendKeepsEntryAhead},
	{"a refused send keeps only the cooldown's entry sealed ahead, and notes no gateway", refusedSendKeepsNoEntryAhead},
	{"a resend that takes its fallback keeps no entry sealed for the gone challenge", fallbackKeepsNoEntryAhead},
	{"an entry that replaces the one sealed ahead takes its place and notes its gateway", entryReplacesTheOneAhead},
	{"a resend refused by the cooldown shows its challenge as Challenge reads it", refusedResendShowsItsChallenge},
	{"a verification keeps the entry sealed ahead for its outcome, only for the challenge it was sealed for", verifyKeepsEntryAhead},
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
