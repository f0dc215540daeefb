package storetest

import (
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// RunBackoff is the conformance suite of the resend backoff's jitter: the
// store lengthens each send's cooldown by the thousandths the request
// carries, after doubling and capping it, and keeps the result as the
// identity's next send. newStore follows Run's rules.
func RunBackoff(t *testing.T, newStore func(t *testing.T) otp.Store) {
	for _, tc := range backoffCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newEnv(t, newStore))
		})
	}
}

var backoffCases = []struct {
	name string
	run  func(*testing.T, *env)
}{
	{"a send's jitter lengthens its cooldown by that many thousandths", jitterLengthensCooldown},
	{"the jitter comes after the doubling and the cap", jitterAfterDoublingAndCap},
	{"a jitter out of range is refused and changes nothing", jitterOutOfRangeRefused},
}

// issueJittered sends alice challenge id at now with jitter permille.
func (e *env) issueJittered(id string, now time.Time, permille int, max time.Duration) error {
	req := issueRequest(e.challenge(id, "111111", now), now)
	req.JitterPermille, req.CooldownMax = permille, max
	_, err := e.store.Issue(e.t.Context(), req)
	return err
}

func jitterLengthensCooldown(t *testing.T, e *env) {
	if err := e.issueJittered("c1", t0, 250, cooldownMax); err != nil {
		t.Fatal(err)
	}
	next := t0.Add(cooldownBase * 5 / 4) // 37.5s
	if st := e.identity(alice, t0); !st.NextSendAt.Equal(next) {
		t.Fatalf("next send after %s, want %s", st.NextSendAt.Sub(t0), next.Sub(t0))
	}
	err := e.issueJittered("c2", next.Add(-time.Millisecond), 0, cooldownMax)
	wantCooldown(t, err, next)
	if err := e.issueJittered("c3", next, 0, cooldownMax); err != nil {
		t.Fatalf("a send at the jittered next send: %v", err)
	}
}

func jitterAfterDoublingAndCap(t *testing.T, e *env) {
	now := t0
	for i, step := range []struct {
		permille int
		wait     time.Duration
	}{
		{0, 30 * time.Second},
		{500, 90 * time.Second},   // 60s, half of it again
		{1000, 120 * time.Second}, // 120s capped at 60s, doubled by the jitter
		{1, 60*time.Second + 60*time.Millisecond},
	} {
		if err := e.issueJittered("c"+string(rune('1'+i)), now, step.permille, time.Minute); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
		if st := e.identity(alice, now); !st.NextSendAt.Equal(now.Add(step.wait)) {
			t.Fatalf("send %d with jitter %d‰: next send after %s, want %s", i+1, step.permille, st.NextSendAt.Sub(now), step.wait)
		}
		now = now.Add(step.wait)
	}
}

func jitterOutOfRangeRefused(t *testing.T, e *env) {
	for _, permille := range []int{-1, 1001} {
		if err := e.issueJittered("c1", t0, permille, cooldownMax); err == nil {
			t.Errorf("jitter %d‰ was accepted", permille)
		}
	}
	e.gone(alice, "c1", t0)
	if st := e.identity(alice, t0); st.Sends != 0 || !st.NextSendAt.IsZero() {
		t.Fatalf("a refused send changed alice: %+v", st)
	}
}
