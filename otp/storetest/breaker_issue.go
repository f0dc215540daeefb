package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The breaker's part of a send and of a verification (issue 17): the
// store decides and counts it in the same step as the send itself
// (IssueGuarded), and counts a verified code's conversion with the
// verification (VerifyRequest.BreakerConvert). Both need a store that is
// an otp.Store too; a BreakerStore that is not one skips them.

// guardLimit is a send limit the guarded sends count against, far from
// its max: what a refused send must leave as it was.
var guardLimit = otp.LimitCheck{Name: "prefix", Key: "guard-limit", Max: 1000, Window: time.Hour}

// issuer is the store as an otp.Store.
func (e *breakerEnv) issuer() otp.Store {
	e.t.Helper()
	st, ok := e.store.(otp.Store)
	if !ok {
		e.t.Skipf("%T is no otp.Store", e.store)
	}
	return st
}

// guardedRequest is a first send of subject's challenge id at now, counted
// in the breaker's scopes and against guardLimit.
func guardedRequest(subject, id string, now time.Time, scopes ...string) otp.IssueRequest {
	req := issueRequest(otp.Challenge{
		ID: id, Subject: subject, SessionHash: sessionA, PhoneHash: phoneA, PhoneMasked: maskedA,
		CodeMAC: []byte("mac-of-" + id), CreatedAt: now, SentAt: now, ExpiresAt: now.Add(codeTTL), MaxAttempts: maxAttempts,
	}, now)
	req.Limits = []otp.LimitCheck{guardLimit}
	req.Breaker = &otp.IssueBreaker{Scopes: scopes, Policy: breakerPolicy, RefTTL: codeTTL}
	return req
}

func breakerGuardedIssue(t *testing.T, e *breakerEnv) {
	st := e.issuer()
	for i := 1; i <= 10; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		res, err := e.store.IssueGuarded(t.Context(), guardedRequest(fmt.Sprint("user-", i), fmt.Sprint("ch-", i), now, scopeP, scopeR))
		if err != nil || res.Challenge == nil || res.Challenge.ID != fmt.Sprint("ch-", i) {
			t.Fatalf("guarded send %d: %+v, %v", i, res, err)
		}
		switch {
		case i < 10 && len(res.NewBlocks) > 0:
			t.Fatalf("guarded send %d of 10 set blocks %+v", i, res.NewBlocks)
		case i == 10 && (len(res.NewBlocks) != 2 || res.NewBlocks[0].Scope != scopeP || res.NewBlocks[1].Scope != scopeR || res.NewBlocks[0].Sends != 10):
			t.Fatalf("the 10th unconverted guarded send set blocks %+v; want the prefix and the range, at 10 sends", res.NewBlocks)
		}
	}
	if _, ok := e.blocked(scopeR, t0.Add(11*time.Second)); !ok {
		t.Fatal("the range is not blocked after the guarded sends")
	}
	at := t0.Add(12 * time.Second)
	res, err := e.store.IssueGuarded(t.Context(), guardedRequest("user-11", "ch-11", at, scopeR))
	var bl *otp.BlockedError
	if !errors.As(err, &bl) || bl.Scope != scopeR || !bl.Until.After(at) || res.Challenge != nil {
		t.Fatalf("a guarded send to a blocked range: %+v, %v; want *BlockedError naming the range", res, err)
	}
	// Refused before anything was counted: no challenge, no send, no
	// cooldown, no count in the limit.
	if _, err := st.Challenge(t.Context(), "user-11", "ch-11", at); !errors.Is(err, otp.ErrChallengeNotFound) {
		t.Errorf("the refused send left a challenge: %v", err)
	}
	if id, err := st.Identity(t.Context(), "user-11", at); err != nil || id.Sends != 0 || !id.NextSendAt.IsZero() {
		t.Errorf("the refused send counted for its identity: %+v, %v", id, err)
	}
	if n, err := st.LimitCount(t.Context(), guardLimit, at); err != nil || n != 10 {
		t.Errorf("the limit counted %d sends (%v); want the 10 that passed", n, err)
	}
	tally, err := e.store.BreakerStats(t.Context(), []string{scopeR}, at, breakerPolicy)
	if err != nil || len(tally) != 1 || tally[0].Sends != 10 {
		t.Errorf("the range's window: %+v, %v; want the 10 sends that passed", tally, err)
	}
}

func breakerVerifyConverts(t *testing.T, e *breakerEnv) {
	st := e.issuer()
	verify := func(subject, id string, mac []byte, now time.Time, convert bool) otp.VerifyStatus {
		t.Helper()
		res, err := st.Verify(t.Context(), otp.VerifyRequest{Subject: subject, ChallengeID: id, SessionHash: sessionA,
			CodeMAC: mac, Now: now, Failures: failures, SealedSubject: sealed(subject), BreakerConvert: convert})
		if err != nil {
			t.Fatal(err)
		}
		return res.Status
	}
	conversions := func(now time.Time) int {
		t.Helper()
		tally, err := e.store.BreakerStats(t.Context(), []string{scopeP}, now, breakerPolicy)
		if err != nil || len(tally) != 1 {
			t.Fatalf("stats: %+v, %v", tally, err)
		}
		return tally[0].Conversions
	}
	now := t0.Add(time.Second)
	for _, subject := range []string{alice, bob} {
		if _, err := e.store.IssueGuarded(t.Context(), guardedRequest(subject, "ch-"+subject, now, scopeP)); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Second)
	if s := verify(alice, "ch-"+alice, []byte("a wrong mac"), now, true); s != otp.VerifyWrong {
		t.Fatalf("a wrong code: %v", s)
	}
	if n := conversions(now); n != 0 {
		t.Fatalf("a wrong code converted %d sends", n)
	}
	if s := verify(alice, "ch-"+alice, []byte("mac-of-ch-"+alice), now, true); s != otp.VerifyOK {
		t.Fatalf("the right code: %v", s)
	}
	if n := conversions(now); n != 1 {
		t.Fatalf("a verified code with BreakerConvert converted %d sends; want its 1", n)
	}
	if s := verify(bob, "ch-"+bob, []byte("mac-of-ch-"+bob), now, false); s != otp.VerifyOK {
		t.Fatalf("bob's right code: %v", s)
	}
	if n := conversions(now); n != 1 {
		t.Fatalf("a verified code without BreakerConvert converted a send (%d in all)", n)
	}
}

// verifyReturnsWhereTheCodeWent: a verification hands back the masked
// number and history list the challenge was issued with, so the service
// writes its history entry without reading the history first.
func verifyReturnsWhereTheCodeWent(t *testing.T, e *env) {
	c := e.challenge("c1", "123456", t0)
	c.HistoryKey = "history-list-of-the-prefix"
	if _, err := e.store.Issue(t.Context(), issueRequest(c, t0)); err != nil {
		t.Fatal(err)
	}
	if got := e.live("c1", t0); got.HistoryKey != c.HistoryKey {
		t.Errorf("the challenge reads back with history list %q, want %q", got.HistoryKey, c.HistoryKey)
	}
	for _, code := range []string{"000000", "123456"} {
		res := e.verify("c1", code, t0.Add(time.Second))
		if res.PhoneHash != phoneA || res.PhoneMasked != maskedA || res.HistoryKey != c.HistoryKey {
			t.Errorf("verify %s (%v): phone %q masked %q, history list %q; want %q, %q, %q", code, res.Status,
				res.PhoneHash, res.PhoneMasked, res.HistoryKey, phoneA, maskedA, c.HistoryKey)
		}
	}
	if hs, ok := e.store.(otp.HistoryStore); ok {
		// A send's history entry notes its gateway on the challenge.
		c2 := e.challenge("c2", "654321", t0)
		c2.Subject = bob
		req := issueRequest(c2, t0)
		if _, err := e.store.Issue(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		if err := hs.AppendHistory(t.Context(), otp.HistoryRecord{Lists: []otp.HistoryList{{Key: "bob's list", Max: 10}},
			At: t0, Data: []byte("sealed"), Retention: time.Hour, Sent: &otp.SentGateway{Subject: bob, ChallengeID: "c2", Gateway: "console"}}); err != nil {
			t.Fatal(err)
		}
		if res := e.verifyAs(bob, sessionA, "c2", "000000", t0.Add(time.Second), failures); res.Gateway != "console" {
			t.Errorf("bob's verification: gateway %q, want the one the send's history noted, console", res.Gateway)
		}
	}
	if res := e.verify("c1", "123456", t0.Add(2*time.Second)); res.Status != otp.VerifyNotFound || res.PhoneHash != "" || res.PhoneMasked != "" || res.HistoryKey != "" {
		t.Errorf("a used challenge: %+v; want not found, naming nothing", res)
	}
}
