package storetest

import (
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The cases of BreakerStats, the read-only view of the breaker's counts.

func (e *breakerEnv) stats(now time.Time, scopes ...string) []otp.BreakerTally {
	e.t.Helper()
	ts, err := e.store.BreakerStats(e.t.Context(), scopes, now, breakerPolicy)
	if err != nil {
		e.t.Fatalf("BreakerStats at %s: %v", now.Sub(t0), err)
	}
	if len(ts) != len(scopes) {
		e.t.Fatalf("BreakerStats of %d scopes returned %d tallies", len(scopes), len(ts))
	}
	return ts
}

func breakerStatsReadTheWindow(t *testing.T, e *breakerEnv) {
	var refs []string
	for i := 0; i < 4; i++ {
		ref, _ := e.send(t0.Add(time.Duration(i)*time.Second), scopeP, scopeR)
		refs = append(refs, ref)
	}
	e.convert(refs[0], t0.Add(10*time.Second))
	e.send(t0.Add(20*time.Second), scopeR)
	e.send(t0.Add(21*time.Second), scopeR)
	const unknown = "prefix:+1555000"
	want := []otp.BreakerTally{
		{Scope: scopeP, Sends: 4, Conversions: 1},
		{Scope: scopeR, Sends: 6, Conversions: 1},
		{Scope: unknown},
	}
	for _, at := range []time.Duration{time.Minute, time.Minute, 50 * time.Minute} {
		got := e.stats(t0.Add(at), scopeP, scopeR, unknown)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("stats at %s: %+v; want %+v", at, got, want)
			}
		}
	}
	// An hour and a bucket later everything has slid out.
	for _, ts := range e.stats(t0.Add(time.Hour+10*time.Minute), scopeP, scopeR) {
		if ts.Sends != 0 || ts.Conversions != 0 {
			t.Fatalf("stats after the window: %+v; want none", ts)
		}
	}
}

func breakerStatsOnlyRead(t *testing.T, e *breakerEnv) {
	for i := 0; i < 20; i++ {
		e.stats(t0.Add(time.Duration(i)*time.Millisecond), scopeR)
	}
	if n := e.sendsUntilBlocked(t0, scopeR); n != 10 {
		t.Fatalf("blocked after %d sends following 20 reads; want 10 (a read counted?)", n)
	}
	at := t0.Add(time.Minute)
	if ts := e.stats(at, scopeR); ts[0].Sends != 10 || ts[0].Conversions != 0 {
		t.Fatalf("stats of the blocked range: %+v; want 10 sends, 0 conversions", ts[0])
	}
	if _, ok := e.blocked(scopeR, at); !ok {
		t.Fatal("a read lifted the block")
	}
}
