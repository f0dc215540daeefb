package otp_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// constantRandom reads as an endless run of b: codes, ids and jitter all
// come from it, so a test knows the jitter each send draws.
func constantRandom(b byte) io.Reader {
	return &repeatReader{b}
}

type repeatReader struct{ b byte }

func (r *repeatReader) Read(p []byte) (int, error) {
	copy(p, bytes.Repeat([]byte{r.b}, len(p)))
	return len(p), nil
}

// TestServiceResendBackoffWithJitter: with resend jitter 0.25 each wait
// grows by doubling and is lengthened by the jitter drawn from the
// service's random source at the send; the refusal says the exact wait.
func TestServiceResendBackoffWithJitter(t *testing.T) {
	t.Parallel()
	cfg := otp.DefaultConfig()
	cfg.CooldownJitter = 0.25
	// Each draw of a jitter from 0 to 250 thousandths reads one byte: 100.
	f := newFixture(t, cfg, constantRandom(100))
	first := f.send(t, "")
	st, err := f.svc.Identity(t.Context(), "alice")
	if err != nil || !st.NextSendAt.Equal(t0.Add(33*time.Second)) {
		t.Fatalf("after the first send: next at %s, %v; want 30s + 10%%", st.NextSendAt.Sub(t0), err)
	}
	f.clock.Advance(32 * time.Second)
	_, err = f.svc.Send(t.Context(), otp.SendRequest{Subject: "alice", SessionHash: "session-a", Phone: alicePhone, ResendID: first.Challenge.ID})
	var cd *otp.CooldownError
	if !errors.As(err, &cd) || !cd.RetryAt.Equal(t0.Add(33*time.Second)) {
		t.Fatalf("a resend at 32s: %v, want a cooldown until 33s", err)
	}
	f.clock.Advance(time.Second)
	f.send(t, first.Challenge.ID)
	if st, _ := f.svc.Identity(t.Context(), "alice"); !st.NextSendAt.Equal(t0.Add(33*time.Second + 66*time.Second)) {
		t.Fatalf("after the second send: next in %s, want 60s + 10%%", st.NextSendAt.Sub(t0.Add(33*time.Second)))
	}
}

// TestServiceJitterIsDrawnForEachSend sends to many identities through
// crypto/rand: each cooldown lies within 30s and 30s + 25%, and they differ,
// so a script cannot know the next one.
func TestServiceJitterIsDrawnForEachSend(t *testing.T) {
	t.Parallel()
	cfg := otp.DefaultConfig()
	cfg.CooldownJitter = 0.25
	cfg.Limits = otp.SendLimits{} // one number for every identity
	f := newFixture(t, cfg, rand.Reader)
	waits := map[time.Duration]bool{}
	for i := range 60 {
		subject := "user" + string(rune('A'+i%26)) + string(rune('a'+i/26))
		if _, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: subject, SessionHash: "s", Phone: alicePhone}); err != nil {
			t.Fatal(err)
		}
		st, _ := f.svc.Identity(t.Context(), subject)
		w := st.NextSendAt.Sub(t0)
		if w < 30*time.Second || w > 37500*time.Millisecond {
			t.Fatalf("cooldown %s, want 30s to 37.5s", w)
		}
		waits[w] = true
	}
	if len(waits) < 20 {
		t.Errorf("60 sends drew only %d different cooldowns", len(waits))
	}
}

// TestJitteredCooldownGrowsAndCaps: 30s, 60s, 2m, 4m ... up to the cap, and
// the jitter on top, in whole milliseconds.
func TestJitteredCooldownGrowsAndCaps(t *testing.T) {
	t.Parallel()
	base, max := 30*time.Second, 10*time.Minute
	for _, tc := range []struct {
		n, permille int
		want        time.Duration
	}{
		{1, 0, 30 * time.Second}, {2, 0, time.Minute}, {3, 0, 2 * time.Minute}, {4, 0, 4 * time.Minute}, {6, 0, 10 * time.Minute},
		{1, 250, 37500 * time.Millisecond}, {3, 125, 135 * time.Second}, {9, 1000, 20 * time.Minute}, {1, 1, 30030 * time.Millisecond},
	} {
		if got := otp.JitteredCooldown(tc.n, base, max, tc.permille); got != tc.want {
			t.Errorf("send %d, jitter %d‰: %s, want %s", tc.n, tc.permille, got, tc.want)
		}
	}
}

func TestCooldownJitterIsValidated(t *testing.T) {
	t.Parallel()
	for _, j := range []float64{-0.01, 1.01} {
		cfg := otp.DefaultConfig()
		cfg.CooldownJitter = j
		if err := cfg.Validate(); err == nil {
			t.Errorf("jitter %g accepted", j)
		}
	}
}
