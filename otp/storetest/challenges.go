package storetest

// The cases on a challenge's life: issue, read back, resend and its cooldown.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

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
