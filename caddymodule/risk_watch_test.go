package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func (s *htStore) BreakerStats(ctx context.Context, scopes []string, now time.Time, p otp.BreakerPolicy) ([]otp.BreakerTally, error) {
	if s.breakerDown.Load() {
		return nil, htErrDown
	}
	return s.BreakerStore.BreakerStats(ctx, scopes, now, p)
}

// watchFamiliar makes b's device and address familiar to its identity (a
// send with the CAPTCHA answered, the code verified) and lets the hour
// after that send pass, so that no other risk signal fires: its next send
// page carries no challenge.
func watchFamiliar(t *testing.T, e *htEnv, b *htBrowser) {
	t.Helper()
	if w, body := capSend(b, capPow(t, capPage(b))); w.Code != http.StatusSeeOther {
		t.Fatalf("first send: %d\n%s", w.Code, body)
	}
	if w, _ := b.verify(e.lastCode()); w.Code != http.StatusSeeOther {
		t.Fatalf("verify: %d", w.Code)
	}
	e.clock.Add(61 * time.Minute)
	if token := capPage(b); token != "" {
		t.Fatalf("a familiar device and address an hour after the last send: challenge %q", token)
	}
}

// watchPump counts 5 unverified sends in the populations of e164 as a
// pumping run to it would: with the one verified send of watchFamiliar,
// 6 sends and 1 conversion, at least half of min_sends (10) and below
// min_conversion (20%), so the fraud guard watches them (and does not
// block them yet).
func watchPump(t *testing.T, e *htEnv, e164 string) {
	t.Helper()
	phone, err := e.h.policy.Check(e164)
	if err != nil {
		t.Fatal(err)
	}
	p := e.h.service.Config().Breaker
	for i := range 5 {
		res, err := e.store.BreakerCount(t.Context(), otp.BreakerCountRequest{
			Ref: fmt.Sprint("pump-", i), Scopes: p.Scopes(phone), Now: e.clock.Now(), RefTTL: time.Minute, Policy: p,
		})
		if err != nil || res.Blocked != nil || len(res.NewBlocks) > 0 {
			t.Fatalf("pumped send %d: %+v, %v; want counted without a block", i, res, err)
		}
	}
}

// TestCaptchaWatchedPrefix: with captcha_when risky, a send from a familiar
// device and address to a number whose range the fraud guard is watching
// needs a CAPTCHA (one signal: the base difficulty); the same send when
// another range is watched needs none.
func TestCaptchaWatchedPrefix(t *testing.T) {
	t.Parallel()
	t.Run("the number's range is watched", func(t *testing.T) {
		t.Parallel()
		e := capNew(t, "risky", nil)
		b := e.browser("watch-alice")
		watchFamiliar(t, e, b)
		watchPump(t, e, htNumber)
		token := capPage(b)
		if token == "" {
			t.Fatal("a send to a watched range: the page has no challenge")
		}
		if d := capDifficultyOf(t, token); d != capDifficulty {
			t.Errorf("one risk signal (watched prefix): difficulty %d, want %d", d, capDifficulty)
		}
		sent := len(e.messages())
		if w, body := capSend(b, nil); w.Code != http.StatusForbidden || capChallenge(body) == "" {
			t.Fatalf("a send to a watched range without an answer: %d, want 403 with a challenge\n%s", w.Code, body)
		}
		if n := len(e.messages()); n != sent {
			t.Fatalf("%d SMS went out without an answer", n-sent)
		}
		if w, body := capSend(b, capPow(t, token)); w.Code != http.StatusSeeOther {
			t.Fatalf("a send to a watched range with the answer: %d\n%s", w.Code, body)
		}
		// The code page's challenge (for a resend) counts the watch too:
		// repeat_send and watched_prefix, so its answer is taken (after
		// the resend cooldown).
		e.clock.Add(2 * time.Minute)
		resend := capPage(b)
		if d := capDifficultyOf(t, resend); d != capDifficulty+2 {
			t.Errorf("code page, two risk signals (repeat send, watched prefix): difficulty %d, want %d", d, capDifficulty+2)
		}
		if w, body := capSend(b, capPow(t, resend)); w.Code != http.StatusSeeOther {
			t.Fatalf("a resend with the code page's answer: %d\n%s", w.Code, body)
		}
	})
	t.Run("another range is watched", func(t *testing.T) {
		t.Parallel()
		e := capNew(t, "risky", nil)
		b := e.browser("watch-bob")
		watchFamiliar(t, e, b)
		watchPump(t, e, "+819099995678")
		watchPump(t, e, "+818011112222")
		if token := capPage(b); token != "" {
			t.Fatalf("a send to an unwatched range: challenge %q", token)
		}
		if w, body := capSend(b, nil); w.Code != http.StatusSeeOther {
			t.Fatalf("a familiar send to an unwatched range without an answer: %d\n%s", w.Code, body)
		}
	})
}

// TestCaptchaWatchedPrefixFailsClosed: when the fraud guard's counts can't
// be read, the number is taken as watched (a CAPTCHA is needed) and the
// store error is audited.
func TestCaptchaWatchedPrefixFailsClosed(t *testing.T) {
	t.Parallel()
	e := capNew(t, "risky", nil)
	b := e.browser("watch-carol")
	watchFamiliar(t, e, b)
	core, logs := observer.New(zap.InfoLevel)
	e.h.logger = zap.New(core)
	e.store.breakerDown.Store(true)
	if token := capPage(b); token == "" {
		t.Fatal("the fraud guard's counts unreadable: the page has no challenge")
	}
	if w, body := capSend(b, nil); w.Code != http.StatusForbidden {
		t.Fatalf("the fraud guard's counts unreadable, no answer: %d, want 403\n%s", w.Code, body)
	}
	audited := logs.FilterField(zap.String("event", "store_unavailable")).FilterField(zap.String("signal", riskWatchedPrefix)).All()
	if len(audited) == 0 {
		t.Fatalf("no store_unavailable audit of the unreadable counts; logs: %v", logs.All())
	}
	for _, l := range audited {
		if l.ContextMap()["phone"] == htNumber {
			t.Errorf("the audit logs the full number: %v", l.ContextMap())
		}
	}
}
