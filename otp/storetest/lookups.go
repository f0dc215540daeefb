package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// RunLookupCache is the conformance suite of otp.LookupCache, the part of a
// store that keeps phone-source answers. newCache follows Run's rules: a
// fresh, unshared cache per call. Expiry is each store's own test, since
// Redis expires keys by its own clock rather than by the now it is given.
func RunLookupCache(t *testing.T, newCache func(t *testing.T) otp.LookupCache) {
	for _, tc := range lookupCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newCache(t))
		})
	}
}

var lookupCases = []struct {
	name string
	run  func(*testing.T, otp.LookupCache)
}{
	{"a key never written is not found", lookupKeyNeverWritten},
	{"a value is read back byte for byte", lookupReadBack},
	{"a second write replaces the first", lookupReplaced},
	{"each key keeps its own value", lookupKeysApart},
	{"a cancelled context fails the read and the write", lookupCancelled},
}

// binaryValue holds every byte value, as a sealed answer may.
func binaryValue() []byte {
	v := make([]byte, 256)
	for i := range v {
		v[i] = byte(i)
	}
	return v
}

func lookupKeyNeverWritten(t *testing.T, c otp.LookupCache) {
	if v, ok, err := c.CachedLookup(t.Context(), "never", t0); err != nil || ok || v != nil {
		t.Errorf("CachedLookup of a key never written: %q, %v, %v; want nothing", v, ok, err)
	}
}

func lookupReadBack(t *testing.T, c otp.LookupCache) {
	want := binaryValue()
	if err := c.CacheLookup(t.Context(), "k", want, t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.CachedLookup(t.Context(), "k", t0.Add(59*time.Second))
	if err != nil || !ok || !bytes.Equal(got, want) {
		t.Fatalf("CachedLookup: %q, %v, %v; want the value written", got, ok, err)
	}
	// The caller may reuse what it read; the store's copy must not change.
	got[0] = 'x'
	again, _, _ := c.CachedLookup(t.Context(), "k", t0)
	if !bytes.Equal(again, want) {
		t.Errorf("the stored value changed with the slice a reader was given: %q", again)
	}
}

func lookupReplaced(t *testing.T, c otp.LookupCache) {
	ctx := t.Context()
	if err := c.CacheLookup(ctx, "k", []byte("first"), t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.CacheLookup(ctx, "k", []byte("second"), t0, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := c.CachedLookup(ctx, "k", t0); err != nil || !ok || string(got) != "second" {
		t.Errorf("CachedLookup: %q, %v, %v; want second", got, ok, err)
	}
}

func lookupKeysApart(t *testing.T, c otp.LookupCache) {
	ctx := t.Context()
	for _, k := range []string{"a", "b", "A"} {
		if err := c.CacheLookup(ctx, k, []byte("value of "+k), t0, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"a", "b", "A"} {
		if got, ok, err := c.CachedLookup(ctx, k, t0); err != nil || !ok || string(got) != "value of "+k {
			t.Errorf("CachedLookup(%q): %q, %v, %v", k, got, ok, err)
		}
	}
}

func lookupCancelled(t *testing.T, c otp.LookupCache) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.CacheLookup(ctx, "k", []byte("v"), t0, time.Minute); err == nil {
		t.Error("CacheLookup with a cancelled context succeeded")
	}
	if _, ok, err := c.CachedLookup(ctx, "k", t0); err == nil || ok {
		t.Errorf("CachedLookup with a cancelled context: %v, %v; want an error", ok, err)
	}
	if _, ok, _ := c.CachedLookup(t.Context(), "k", t0); ok {
		t.Error("a write with a cancelled context was kept")
	}
}
