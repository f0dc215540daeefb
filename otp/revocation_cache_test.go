package otp_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// TestFullRevocationCacheKeepsKnownRevocations fills the revocation cache
// past its bound with identities that have no revocation, then takes the
// store down: the one revoked identity must still be refused from memory,
// and the cache must have stayed at its bound. A cache that starts over
// when full (as it once did) forgets the revocation and, with the store
// down, lets that identity's old cookies pass.
func TestFullRevocationCacheKeepsKnownRevocations(t *testing.T) {
	t.Parallel()
	cfg := otp.DefaultConfig()
	cfg.RevocationRefresh = time.Minute
	f := newOperatorFixture(t, cfg)
	f.clock.Advance(time.Minute)
	if _, err := f.svc.Revoke(t.Context(), "mallory"); err != nil {
		t.Fatal(err)
	}
	for i := range otp.MaxRevocationCache + 1000 {
		if _, err := f.svc.Revoked(t.Context(), "user-"+strconv.Itoa(i), t0); err != nil {
			t.Fatal(err)
		}
		if n := f.svc.RevocationCacheLen(); n > otp.MaxRevocationCache {
			t.Fatalf("revocation cache holds %d identities, bound %d", n, otp.MaxRevocationCache)
		}
	}
	if n := f.svc.RevocationCacheLen(); n != otp.MaxRevocationCache {
		t.Fatalf("a full revocation cache holds %d identities after more arrived, want it to stay at %d",
			n, otp.MaxRevocationCache)
	}

	f.store.fail(true)
	got, err := f.svc.Revoked(t.Context(), "mallory", t0)
	if !got {
		t.Fatalf("a revoked identity passes with the store down after the cache filled (err %v)", err)
	}
	if err != nil && !errors.Is(err, otp.ErrStoreUnavailable) {
		t.Fatalf("revoked(mallory): unexpected error %v", err)
	}
}
