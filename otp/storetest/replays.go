package storetest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// RunReplayStore is the conformance suite of otp.ReplayStore, the part of
// a store that keeps form POSTs waiting for a step-up (SECURITY.md rule
// 33). newStore follows Run's rules: a fresh, unshared store per call.
// Expiry is each store's own test, as for RunLookupCache.
func RunReplayStore(t *testing.T, newStore func(t *testing.T) otp.ReplayStore) {
	for _, tc := range replayCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

var replayCases = []struct {
	name string
	run  func(*testing.T, otp.ReplayStore)
}{
	{"a key never kept is neither peeked nor taken", replayNeverKept},
	{"a kept form is peeked byte for byte and stays", replayPeekStays},
	{"a kept form is taken once", replayTakenOnce},
	{"of concurrent takes exactly one gets the form", replayConcurrentTakes},
	{"each key keeps its own form", replayKeysApart},
	{"a cancelled context fails and keeps nothing", replayCancelled},
}

func replayNeverKept(t *testing.T, s otp.ReplayStore) {
	if v, ok, err := s.PeekReplay(t.Context(), "never", t0); err != nil || ok || v != nil {
		t.Errorf("PeekReplay of a key never kept: %q, %v, %v; want nothing", v, ok, err)
	}
	if v, ok, err := s.TakeReplay(t.Context(), "never", t0); err != nil || ok || v != nil {
		t.Errorf("TakeReplay of a key never kept: %q, %v, %v; want nothing", v, ok, err)
	}
}

func replayPeekStays(t *testing.T, s otp.ReplayStore) {
	want := binaryValue()
	if err := s.KeepReplay(t.Context(), "k", want, t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, ok, err := s.PeekReplay(t.Context(), "k", t0.Add(59*time.Second))
		if err != nil || !ok || !bytes.Equal(got, want) {
			t.Fatalf("PeekReplay: %q, %v, %v; want the form kept", got, ok, err)
		}
		got[0] = 'x' // the store's copy must not change with the reader's
	}
	if got, ok, _ := s.TakeReplay(t.Context(), "k", t0); !ok || !bytes.Equal(got, want) {
		t.Errorf("TakeReplay after two peeks: %q, %v; want the form kept", got, ok)
	}
}

func replayTakenOnce(t *testing.T, s otp.ReplayStore) {
	ctx := t.Context()
	if err := s.KeepReplay(ctx, "k", []byte("form"), t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.TakeReplay(ctx, "k", t0); err != nil || !ok || string(got) != "form" {
		t.Fatalf("first TakeReplay: %q, %v, %v; want the form", got, ok, err)
	}
	if got, ok, err := s.TakeReplay(ctx, "k", t0); err != nil || ok {
		t.Errorf("second TakeReplay: %q, %v, %v; want nothing", got, ok, err)
	}
	if _, ok, _ := s.PeekReplay(ctx, "k", t0); ok {
		t.Error("a taken form can still be peeked")
	}
}

func replayConcurrentTakes(t *testing.T, s otp.ReplayStore) {
	ctx := t.Context()
	if err := s.KeepReplay(ctx, "k", []byte("form"), t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	const takers = 16
	var wg sync.WaitGroup
	got := make(chan bool, takers)
	for range takers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := s.TakeReplay(ctx, "k", t0)
			if err != nil {
				t.Error(err)
			}
			got <- ok
		}()
	}
	wg.Wait()
	close(got)
	n := 0
	for ok := range got {
		if ok {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d of %d concurrent takes got the form; want exactly 1", n, takers)
	}
}

func replayKeysApart(t *testing.T, s otp.ReplayStore) {
	ctx := t.Context()
	for _, k := range []string{"a", "b", "A"} {
		if err := s.KeepReplay(ctx, k, []byte("form of "+k), t0, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := s.TakeReplay(ctx, "a", t0); !ok {
		t.Fatal("TakeReplay(a) found nothing")
	}
	for _, k := range []string{"b", "A"} {
		if got, ok, err := s.PeekReplay(ctx, k, t0); err != nil || !ok || string(got) != "form of "+k {
			t.Errorf("PeekReplay(%q) after taking a: %q, %v, %v", k, got, ok, err)
		}
	}
}

func replayCancelled(t *testing.T, s otp.ReplayStore) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.KeepReplay(ctx, "k", []byte("v"), t0, time.Minute); err == nil {
		t.Error("KeepReplay with a cancelled context succeeded")
	}
	if _, ok, err := s.TakeReplay(ctx, "k", t0); err == nil || ok {
		t.Errorf("TakeReplay with a cancelled context: %v, %v; want an error", ok, err)
	}
	if _, ok, _ := s.PeekReplay(t.Context(), "k", t0); ok {
		t.Error("a write with a cancelled context was kept")
	}
}
