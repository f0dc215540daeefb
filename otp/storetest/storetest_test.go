package storetest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

// brokenEnv names the broken store a child process runs the suite against.
const brokenEnv = "STORETEST_BROKEN_STORE"

// A suite that cannot fail proves nothing. Each case breaks one rule in a
// wrapper around the memory store and expects the subtest guarding that
// rule to fail; the intact store must pass. The suite runs in a child
// process (this test binary, this test, with brokenEnv set) because a
// failing *testing.T cannot be observed from inside the same test run.
func TestSuiteCatchesBrokenStores(t *testing.T) {
	if name, ok := os.LookupEnv(brokenEnv); ok {
		storetest.Run(t, func(t *testing.T) otp.Store { return brokenStore(t, name) })
		return
	}
	t.Parallel()
	cases := []struct {
		name   string
		broken string
		fails  []string
	}{
		{"an intact store passes", "", nil},
		{"a store that accepts a used code again fails", "replay",
			[]string{"a correct code verifies once and consumes the challenge"}},
		{"a store that keeps the old code after a resend fails", "old-code",
			[]string{"a resend replaces the code and keeps the attempt count"}},
		{"a store that ignores the session fails", "session-blind",
			[]string{"a code from another session is not found and nothing is counted"}},
		{"a store without a cooldown fails", "no-cooldown",
			[]string{"the cooldown after each send doubles from 30 seconds up to its cap",
				"parallel resends let exactly one through the cooldown"}},
		{"a store that never locks fails", "no-lock",
			[]string{"the lock-out grows from 30 seconds and is capped at an hour",
				"a locked identity can neither verify nor get a new code",
				"no more than the hard limit of consecutive failures is ever evaluated"}},
		{"a store that lets codes outlive their lifetime fails", "no-expiry",
			[]string{"an expired challenge is not found and nothing is counted",
				"a challenge lives until just before it expires"}},
		{"a store without a send limit fails", "no-send-limit",
			[]string{"a resend past the send limit is refused"}},
		{"a store without an attempt limit fails", "no-attempt-limit",
			[]string{"a challenge dies after its last attempt even for the right code",
				"200 parallel wrong guesses evaluate exactly the 5 attempts allowed"}},
		{"a store that lets sends past a limit's max fails", "limit-blind",
			[]string{"a limit counts sends up to its max and refuses until its window ends",
				"200 concurrent sends against a max of 10 allow exactly 10"}},
		{"a store that counts refused sends against earlier checks fails", "no-refund",
			[]string{"a send refused by a later check costs the earlier checks nothing",
				"concurrent sends refused by a later check leave the earlier one as if they never came"}},
		{"a store whose windows never end fails", "endless-window",
			[]string{"a new window allows sends again",
				"the daily budget runs from midnight to midnight UTC"}},
		{"a store whose reset does nothing fails", "no-reset",
			[]string{"a reset clears every window of its counter and no other"}},
		{"a store that counts a send's limits apart from the rest of the send fails", "limits-apart",
			[]string{"a send refused by the cooldown counts against no limit",
				"a send refused by a lock-out counts against no limit",
				"a resend refused by its challenge counts against no limit",
				"50 concurrent sends of one identity pass its cooldown once and count once"}},
		{"a store that issues before it counts the limits fails", "issue-before-limits",
			[]string{"a send refused by a limit makes no challenge, starts no cooldown and counts against no other limit",
				"a resend refused by a limit keeps the old code and its cooldown"}},
		{"a store that ignores a send's limits fails", "limits-ignored",
			[]string{"a send counts against every limit it names",
				"200 concurrent sends of different identities pass a limit of 10 exactly 10 times"}},
		{"a store that ignores a resend's fallback fails", "no-fallback",
			[]string{"a resend of a gone challenge makes its fallback in the same step"}},
		{"a store that drops what it cannot keep from a send fails", "lax-send",
			[]string{"an invalid send is refused and changes nothing"}},
		{"a store that lets a number vouch for any number of identities fails", "number-blind",
			[]string{"a number bound to as many identities as allowed refuses another and changes nothing",
				"concurrent binds of one number by 50 identities with a max of 1 let exactly one win"}},
		{"a store that keeps a number held after it is unbound fails", "sticky-number",
			[]string{"rebinding replaces the number and frees the old one",
				"unbinding removes the binding and frees the number",
				"concurrent rebinds of one identity leave exactly its final number held"}},
		{"a store whose revocation kills no challenge fails", "revoke-blind",
			[]string{"a revocation kills the identity's challenges in flight and no one else's",
				"a not-before only moves forward"}},
		{"a store whose not-before moves back fails", "revoke-backwards",
			[]string{"a not-before only moves forward"}},
		{"a store whose unlock does nothing fails", "unlock-noop",
			[]string{"an unlock lets a locked identity verify again and keeps its sends and cooldown",
				"the locked list holds exactly the identities locked out with the latest end first"}},
		{"a store whose unlock also forgets the sends and the cooldown fails", "unlock-resets-sends",
			[]string{"an unlock lets a locked identity verify again and keeps its sends and cooldown"}},
		{"a store whose locked list counts only what it returns fails", "locked-miscounted",
			[]string{"the locked list holds exactly the identities locked out with the latest end first"}},
		{"a store that lists lock-outs that have ended fails", "locked-stale",
			[]string{"the locked list holds exactly the identities locked out with the latest end first"}},
		{"a store that counts a send when a counter is read fails", "limit-count-counts",
			[]string{"a limit count reads a window's sends without counting"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkSuiteAgainst(t, "TestSuiteCatchesBrokenStores", tc.broken, tc.fails)
		})
	}
}

// checkSuiteAgainst runs suiteTest again in a child process with the store
// broken as broken says ("" for intact): an intact store must pass it
// whole, a broken one must fail it, in at least the named cases.
func checkSuiteAgainst(t *testing.T, suiteTest, broken string, fails []string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+suiteTest+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), brokenEnv+"="+broken)
	out, err := cmd.CombinedOutput()
	if fails == nil {
		if err != nil || !bytes.Contains(out, []byte("--- PASS: "+suiteTest)) {
			t.Fatalf("the intact store failed the suite: %v\n%s", err, out)
		}
		return
	}
	if err == nil {
		t.Fatalf("the suite passed a %s store:\n%s", broken, out)
	}
	for _, name := range fails {
		if !bytes.Contains(out, []byte("--- FAIL: "+suiteTest+"/"+strings.ReplaceAll(name, " ", "_"))) {
			t.Errorf("%q did not fail for a %s store:\n%s", name, broken, out)
		}
	}
}

// brokenStore returns a memory store, wrapped to break the rule name says
// (the intact store for "").
func brokenStore(t *testing.T, name string) otp.Store {
	m := memory.New(nil, time.Hour)
	t.Cleanup(func() { m.Close() })
	switch name {
	case "":
		return m
	case "replay":
		return &replayStore{Store: m, used: map[string][]byte{}}
	case "old-code":
		return &oldCodeStore{Store: m, old: map[string][][]byte{}}
	case "session-blind":
		return sessionBlindStore{m}
	case "no-cooldown", "no-expiry", "no-send-limit", "no-attempt-limit":
		return issueChangingStore{m, name}
	case "no-lock":
		return noLockStore{m}
	case "limit-blind", "no-refund", "endless-window", "no-reset":
		return limitChangingStore{m, name}
	case "limits-apart", "issue-before-limits", "limits-ignored", "no-fallback", "lax-send":
		return sendChangingStore{m, name}
	case "number-blind":
		return numberBlindStore{m}
	case "sticky-number":
		return stickyNumberStore{m}
	case "revoke-blind", "revoke-backwards":
		return &revocationKeepingStore{Store: m, how: name, nb: map[string]time.Time{}}
	case "unlock-noop", "locked-miscounted", "locked-stale":
		return operatorChangingStore{m, name}
	case "unlock-resets-sends":
		return &sendsForgettingStore{Store: m, last: map[string]otp.Challenge{}}
	case "limit-count-counts":
		return countingReadStore{m}
	}
	t.Fatalf("unknown broken store %q", name)
	return nil
}

// replayStore answers ok again for a code that already verified.
type replayStore struct {
	otp.Store
	mu   sync.Mutex
	used map[string][]byte
}

func (s *replayStore) Verify(ctx context.Context, req otp.VerifyRequest) (otp.VerifyResult, error) {
	res, err := s.Store.Verify(ctx, req)
	s.mu.Lock()
	defer s.mu.Unlock()
	key := req.Subject + "\x00" + req.ChallengeID
	switch {
	case err == nil && res.Status == otp.VerifyOK:
		s.used[key] = req.CodeMAC
	case err == nil && res.Status == otp.VerifyNotFound && bytes.Equal(s.used[key], req.CodeMAC):
		res.Status = otp.VerifyOK
	}
	return res, err
}

// oldCodeStore still accepts the codes a resend replaced.
type oldCodeStore struct {
	otp.Store
	mu  sync.Mutex
	old map[string][][]byte
}

func (s *oldCodeStore) Issue(ctx context.Context, req otp.IssueRequest) (*otp.Challenge, error) {
	before, _ := s.Store.Challenge(ctx, req.Challenge.Subject, req.Challenge.ID, req.Now)
	c, err := s.Store.Issue(ctx, req)
	if err == nil && req.Resend && before != nil {
		s.mu.Lock()
		s.old[c.ID] = append(s.old[c.ID], before.CodeMAC)
		s.mu.Unlock()
	}
	return c, err
}

func (s *oldCodeStore) Verify(ctx context.Context, req otp.VerifyRequest) (otp.VerifyResult, error) {
	s.mu.Lock()
	old := s.old[req.ChallengeID]
	s.mu.Unlock()
	for _, mac := range old {
		if bytes.Equal(mac, req.CodeMAC) {
			if c, err := s.Store.Challenge(ctx, req.Subject, req.ChallengeID, req.Now); err == nil {
				req.CodeMAC = c.CodeMAC
			}
		}
	}
	return s.Store.Verify(ctx, req)
}

// sessionBlindStore verifies a code from any session.
type sessionBlindStore struct{ otp.Store }

func (s sessionBlindStore) Verify(ctx context.Context, req otp.VerifyRequest) (otp.VerifyResult, error) {
	if c, err := s.Store.Challenge(ctx, req.Subject, req.ChallengeID, req.Now); err == nil {
		req.SessionHash = c.SessionHash
	}
	return s.Store.Verify(ctx, req)
}

// noLockStore ignores the failure policy's budget and hard limit.
type noLockStore struct{ otp.Store }

func (s noLockStore) Verify(ctx context.Context, req otp.VerifyRequest) (otp.VerifyResult, error) {
	req.Failures.Budget, req.Failures.HardLimit = 1000, 1000
	return s.Store.Verify(ctx, req)
}

// issueChangingStore bends one limit of each issue request.
type issueChangingStore struct {
	otp.Store
	how string
}

func (s issueChangingStore) Issue(ctx context.Context, req otp.IssueRequest) (*otp.Challenge, error) {
	switch s.how {
	case "no-cooldown":
		req.CooldownBase, req.CooldownMax = 0, 0
	case "no-expiry":
		req.Challenge.ExpiresAt = req.Challenge.ExpiresAt.Add(24 * time.Hour)
	case "no-send-limit":
		req.MaxSends = 1000
	case "no-attempt-limit":
		req.Challenge.MaxAttempts = 1000
	}
	return s.Store.Issue(ctx, req)
}

// limitChangingStore breaks one rule of the send limits.
type limitChangingStore struct {
	otp.Store
	how string
}

func (s limitChangingStore) Limit(ctx context.Context, req otp.LimitRequest) (otp.LimitResult, error) {
	checks := slices.Clone(req.Checks)
	for i := range checks {
		switch s.how {
		case "limit-blind":
			checks[i].Max += 5
		case "endless-window":
			checks[i].Window *= 1000
		}
	}
	if s.how != "no-refund" {
		return s.Store.Limit(ctx, otp.LimitRequest{Now: req.Now, Checks: checks})
	}
	// One check at a time: what an earlier check counted stays counted.
	for _, c := range checks {
		res, err := s.Store.Limit(ctx, otp.LimitRequest{Now: req.Now, Checks: []otp.LimitCheck{c}})
		if err != nil || !res.Allowed {
			return res, err
		}
	}
	return otp.LimitResult{Allowed: true}, nil
}

func (s limitChangingStore) ResetLimit(ctx context.Context, name, key string) error {
	if s.how == "no-reset" {
		return nil
	}
	return s.Store.ResetLimit(ctx, name, key)
}

// sendChangingStore breaks the one step of a send: it counts the limits
// apart from the issue, before it ("limits-apart") or after it
// ("issue-before-limits"), or not at all ("limits-ignored"); or it drops a
// resend's fallback ("no-fallback"), or the parts of a send it cannot keep
// instead of refusing it ("lax-send").
type sendChangingStore struct {
	otp.Store
	how string
}

func (s sendChangingStore) Issue(ctx context.Context, req otp.IssueRequest) (*otp.Challenge, error) {
	limits := req.Limits
	req.Limits = nil
	switch s.how {
	case "limits-apart":
		if err := s.count(ctx, req.Now, limits); err != nil {
			return nil, err
		}
		return s.Store.Issue(ctx, req)
	case "issue-before-limits":
		c, err := s.Store.Issue(ctx, req)
		if err != nil {
			return nil, err
		}
		return c, s.count(ctx, req.Now, limits)
	case "limits-ignored":
		return s.Store.Issue(ctx, req)
	case "no-fallback":
		req.FallbackID, req.FallbackMAC = "", nil
	case "lax-send":
		limits = slices.DeleteFunc(limits, func(c otp.LimitCheck) bool { return c.Validate() != nil })
		if !req.Resend {
			req.FallbackID, req.FallbackMAC = "", nil
		}
	}
	req.Limits = limits
	return s.Store.Issue(ctx, req)
}

// count counts a send against limits with Limit, as the RateLimitError
// Issue would return.
func (s sendChangingStore) count(ctx context.Context, now time.Time, limits []otp.LimitCheck) error {
	res, err := s.Store.Limit(ctx, otp.LimitRequest{Now: now, Checks: limits})
	if err != nil || res.Allowed {
		return err
	}
	return &otp.RateLimitError{Limit: res.Refused, RetryAt: res.RetryAt}
}

// numberBlindStore ignores the cap on identities per number.
type numberBlindStore struct{ otp.Store }

func (s numberBlindStore) BindPhone(ctx context.Context, req otp.BindRequest) error {
	req.MaxIdentitiesPerNumber = 1000
	return s.Store.BindPhone(ctx, req)
}

// stickyNumberStore keeps an identity's old number held, by a shadow
// identity, when it binds another or unbinds.
type stickyNumberStore struct{ otp.Store }

func (s stickyNumberStore) hold(ctx context.Context, subject string) {
	if old, err := s.Store.BoundPhone(ctx, subject); err == nil {
		s.Store.BindPhone(ctx, otp.BindRequest{
			Subject: "shadow of " + subject + " " + old.PhoneHash, PhoneHash: old.PhoneHash, PhoneSealed: old.PhoneSealed,
			MaxIdentitiesPerNumber: 1000, Now: old.BoundAt,
		})
	}
}

func (s stickyNumberStore) BindPhone(ctx context.Context, req otp.BindRequest) error {
	s.hold(ctx, req.Subject)
	return s.Store.BindPhone(ctx, req)
}

func (s stickyNumberStore) UnbindPhone(ctx context.Context, subject string) error {
	s.hold(ctx, subject)
	return s.Store.UnbindPhone(ctx, subject)
}

// revocationKeepingStore keeps not-before times itself, out of the store's
// reach: "revoke-blind" moves them forward but kills no challenge;
// "revoke-backwards" also hands them to the store but lets a later
// revocation move one back.
type revocationKeepingStore struct {
	otp.Store
	how string
	mu  sync.Mutex
	nb  map[string]time.Time
}

func (s *revocationKeepingStore) Revoke(ctx context.Context, subject string, notBefore time.Time) error {
	if s.how == "revoke-backwards" {
		if err := s.Store.Revoke(ctx, subject, notBefore); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.how == "revoke-backwards" || notBefore.After(s.nb[subject]) {
		s.nb[subject] = notBefore
	}
	return nil
}

func (s *revocationKeepingStore) NotBefore(ctx context.Context, subject string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nb[subject], nil
}

// operatorChangingStore breaks one operator action: an unlock that does
// nothing, a locked list whose total counts only what it returns, or one
// that still lists lock-outs ended in the last ten minutes.
type operatorChangingStore struct {
	otp.Store
	how string
}

func (s operatorChangingStore) Unlock(ctx context.Context, subject string) error {
	if s.how == "unlock-noop" {
		return nil
	}
	return s.Store.Unlock(ctx, subject)
}

func (s operatorChangingStore) Locked(ctx context.Context, now time.Time, max int) ([]otp.LockedIdentity, int, error) {
	switch s.how {
	case "locked-miscounted":
		l, _, err := s.Store.Locked(ctx, now, max)
		return l, len(l), err
	case "locked-stale":
		return s.Store.Locked(ctx, now.Add(-10*time.Minute), max)
	}
	return s.Store.Locked(ctx, now, max)
}

// sendsForgettingStore's unlock also forgets the identity's sends and
// cooldown, as a correct code does: it spends the right code of the last
// challenge issued to the identity.
type sendsForgettingStore struct {
	otp.Store
	mu   sync.Mutex
	last map[string]otp.Challenge
}

func (s *sendsForgettingStore) Issue(ctx context.Context, req otp.IssueRequest) (*otp.Challenge, error) {
	c, err := s.Store.Issue(ctx, req)
	if err == nil {
		s.mu.Lock()
		s.last[req.Challenge.Subject] = req.Challenge
		s.mu.Unlock()
	}
	return c, err
}

func (s *sendsForgettingStore) Unlock(ctx context.Context, subject string) error {
	if err := s.Store.Unlock(ctx, subject); err != nil {
		return err
	}
	s.mu.Lock()
	c, ok := s.last[subject]
	s.mu.Unlock()
	if ok {
		_, err := s.Store.Verify(ctx, otp.VerifyRequest{Subject: subject, ChallengeID: c.ID, SessionHash: c.SessionHash,
			CodeMAC: c.CodeMAC, Now: c.SentAt, Failures: otp.DefaultConfig().Failures})
		return err
	}
	return nil
}

// countingReadStore counts a send each time a counter is read.
type countingReadStore struct{ otp.Store }

func (s countingReadStore) LimitCount(ctx context.Context, check otp.LimitCheck, now time.Time) (int, error) {
	n, err := s.Store.LimitCount(ctx, check, now)
	if err != nil {
		return 0, err
	}
	_, err = s.Store.Limit(ctx, otp.LimitRequest{Now: now, Checks: []otp.LimitCheck{check}})
	return n, err
}
