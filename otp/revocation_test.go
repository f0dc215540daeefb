package otp_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

// readCountingStore counts the not-before reads per identity, and fails
// them (and revocations) while failing is set, as a store that cannot be
// reached.
type readCountingStore struct {
	otp.Store
	mu      sync.Mutex
	reads   map[string]int
	failing bool
}

var errUnreachable = errors.New("dial tcp 127.0.0.1:6379: connection refused")

func (s *readCountingStore) NotBefore(ctx context.Context, subject string) (time.Time, error) {
	s.mu.Lock()
	s.reads[subject]++
	failing := s.failing
	s.mu.Unlock()
	if failing {
		return time.Time{}, errUnreachable
	}
	return s.Store.NotBefore(ctx, subject)
}

func (s *readCountingStore) Revoke(ctx context.Context, subject string, notBefore time.Time) error {
	s.mu.Lock()
	failing := s.failing
	s.mu.Unlock()
	if failing {
		return errUnreachable
	}
	return s.Store.Revoke(ctx, subject, notBefore)
}

func (s *readCountingStore) readsOf(subject string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[subject]
}

func (s *readCountingStore) fail(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing = on
}

// wantRevoked asks whether subject's token authenticated at authTime is
// revoked, and fails unless the answer is want with no error.
func (f *operatorFixture) wantRevoked(t *testing.T, subject string, authTime time.Time, want bool) {
	t.Helper()
	got, err := f.svc.Revoked(t.Context(), subject, authTime)
	if err != nil || got != want {
		t.Fatalf("revoked(%s, auth at t0+%s) at t0+%s: got %t, %v; want %t", subject, authTime.Sub(t0),
			f.clock.Now().Sub(t0), got, err, want)
	}
}

func TestRevokeRevokesTokensAuthenticatedBeforeIt(t *testing.T) {
	t.Parallel()
	f := newOperatorFixture(t, otp.DefaultConfig())
	f.wantRevoked(t, "alice", t0, false)

	f.clock.Advance(time.Minute)
	nb, err := f.svc.Revoke(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !nb.Equal(t0.Add(time.Minute)) {
		t.Fatalf("revoke set the not-before at t0+%s, want now (t0+1m)", nb.Sub(t0))
	}
	f.wantRevoked(t, "alice", t0, true)
	f.wantRevoked(t, "alice", nb.Add(-time.Second), true)
	f.wantRevoked(t, "alice", nb, false)
	f.wantRevoked(t, "alice", nb.Add(time.Second), false)
	f.wantRevoked(t, "bob", t0, false)
	if got, err := f.svc.NotBefore(t.Context(), "alice"); err != nil || !got.Equal(nb) {
		t.Fatalf("not before: got t0+%s, %v; want t0+1m", got.Sub(t0), err)
	}

	if _, err := f.svc.Revoke(t.Context(), ""); err == nil {
		t.Fatal("revoke of an empty identity succeeded")
	}
}

// TestRevokeSplitsASecond: a token's auth time and a revocation's
// not-before are compared at one precision, so within one second a step-up
// verified after the revocation counts and one verified before it does
// not, through the token's own claims as the hot path reads them.
func TestRevokeSplitsASecond(t *testing.T) {
	t.Parallel()
	f := newOperatorFixture(t, otp.DefaultConfig())
	tokens := newTokens(t, f.clock, mustKeys(t, rootKey))
	setClock := func(at time.Duration) { f.clock.Advance(t0.Add(at).Sub(f.clock.Now())) }
	authAt := func(at time.Duration) time.Time {
		t.Helper()
		setClock(at)
		tok := issue(t, tokens, "alice", "", f.clock.Now())
		v, err := tokens.Check(tok, "alice", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		return v.AuthTime
	}
	before := authAt(time.Minute + 100*time.Millisecond)
	setClock(time.Minute + 300*time.Millisecond)
	nb, err := f.svc.Revoke(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !nb.Equal(t0.Add(time.Minute + 300*time.Millisecond)) {
		t.Fatalf("revoke at t0+1m300ms set the not-before at t0+%s", nb.Sub(t0))
	}
	atOnce := authAt(time.Minute + 300*time.Millisecond)
	after := authAt(time.Minute + 700*time.Millisecond)
	f.wantRevoked(t, "alice", before, true)
	f.wantRevoked(t, "alice", atOnce, false)
	f.wantRevoked(t, "alice", after, false)

	// A revocation within a millisecond takes effect at the next whole
	// one: a step-up of that millisecond is before it, never after.
	setClock(2*time.Minute + 500*time.Microsecond)
	if _, err := f.svc.Revoke(t.Context(), "bob"); err != nil {
		t.Fatal(err)
	}
	f.wantRevoked(t, "bob", t0.Add(2*time.Minute), true)
	f.wantRevoked(t, "bob", t0.Add(2*time.Minute+time.Millisecond), false)
	if !otp.Revokes(t0.Add(time.Second+time.Microsecond), t0.Add(time.Second)) || otp.Revokes(t0.Add(time.Second+time.Microsecond), t0.Add(time.Second+time.Millisecond)) {
		t.Error("Revokes does not round the not-before up to the millisecond")
	}
}

func TestRevokeKillsTheChallengeInFlight(t *testing.T) {
	t.Parallel()
	f := newOperatorFixture(t, otp.DefaultConfig())
	res := f.send(t, "alice")
	code := f.gateway.lastCode(t)
	f.clock.Advance(time.Second)
	if _, err := f.svc.Revoke(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Verify(t.Context(), otp.VerifyInput{Subject: "alice", SessionHash: "session-a", ChallengeID: res.Challenge.ID, Code: code})
	if err != nil || got.Status != otp.VerifyNotFound {
		t.Fatalf("the right code after a revocation: got %s, %v; want no_challenge", got.Status, err)
	}
}

func TestRevokedReadsTheStoreOncePerIdentityPerRefresh(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		refresh time.Duration
		want    time.Duration
	}{
		{"a refresh of 30s", 30 * time.Second, 30 * time.Second},
		{"the default refresh", 0, otp.DefaultRevocationRefresh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := otp.DefaultConfig()
			cfg.RevocationRefresh = tc.refresh
			f := newOperatorFixture(t, cfg)
			for range 5 {
				f.wantRevoked(t, "alice", t0, false)
			}
			if n := f.store.readsOf("alice"); n != 1 {
				t.Fatalf("5 questions read the store %d times, want once", n)
			}
			f.clock.Advance(tc.want - time.Millisecond)
			f.wantRevoked(t, "alice", t0, false)
			if n := f.store.readsOf("alice"); n != 1 {
				t.Fatalf("within the refresh interval the store was read %d times, want once", n)
			}
			f.wantRevoked(t, "bob", t0, false)
			if n := f.store.readsOf("bob"); n != 1 {
				t.Fatalf("another identity was read %d times, want once", n)
			}
			f.clock.Advance(time.Millisecond)
			f.wantRevoked(t, "alice", t0, false)
			f.wantRevoked(t, "alice", t0, false)
			if n := f.store.readsOf("alice"); n != 2 {
				t.Fatalf("once the refresh interval passed the store was read %d times in all, want twice", n)
			}
		})
	}
}

func TestRevocationByAnotherInstanceArrivesWithTheRefresh(t *testing.T) {
	t.Parallel()
	cfg := otp.DefaultConfig()
	cfg.RevocationRefresh = 30 * time.Second
	f := newOperatorFixture(t, cfg)
	f.wantRevoked(t, "alice", t0, false)

	// Another instance sharing the store revokes 5 s later.
	f.clock.Advance(5 * time.Second)
	if err := f.mem.Revoke(t.Context(), "alice", f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(25*time.Second - time.Millisecond)
	f.wantRevoked(t, "alice", t0, false)
	f.clock.Advance(time.Millisecond)
	f.wantRevoked(t, "alice", t0, true)
	f.wantRevoked(t, "alice", t0.Add(6*time.Second), false)
}

func TestRevokedKeepsTheLastAnswerWhileTheStoreIsDown(t *testing.T) {
	t.Parallel()
	cfg := otp.DefaultConfig()
	cfg.RevocationRefresh = 30 * time.Second
	f := newOperatorFixture(t, cfg)
	f.clock.Advance(time.Minute)
	nb, err := f.svc.Revoke(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}

	f.store.fail(true)
	f.clock.Advance(time.Minute)
	for _, q := range []struct {
		subject  string
		authTime time.Time
		want     bool
	}{
		{"alice", t0, true},
		{"bob", t0, false},
	} {
		got, err := f.svc.Revoked(t.Context(), q.subject, q.authTime)
		if got != q.want || !errors.Is(err, otp.ErrStoreUnavailable) || !errors.Is(err, errUnreachable) {
			t.Fatalf("revoked(%s, t0+%s) with the store down: got %t, %v; want %t and an error wrapping ErrStoreUnavailable",
				q.subject, q.authTime.Sub(t0), got, err, q.want)
		}
	}
	// Until the refresh interval has passed again, the same answers come
	// from memory, without a trip to the store that is down.
	reads := f.store.readsOf("alice") + f.store.readsOf("bob")
	f.clock.Advance(cfg.RevocationRefresh - time.Millisecond)
	f.wantRevoked(t, "alice", t0, true)
	f.wantRevoked(t, "alice", nb.Add(time.Second), false)
	f.wantRevoked(t, "bob", t0, false)
	if n := f.store.readsOf("alice") + f.store.readsOf("bob"); n != reads {
		t.Fatalf("the store that is down was tried %d more times within the refresh interval, want none", n-reads)
	}

	// A revocation that did not reach the store is not claimed.
	if _, err := f.svc.Revoke(t.Context(), "carol"); !errors.Is(err, otp.ErrStoreUnavailable) {
		t.Fatalf("revoke with the store down: got %v, want ErrStoreUnavailable", err)
	}
	if got, err := f.svc.Revoked(t.Context(), "carol", t0); got || !errors.Is(err, otp.ErrStoreUnavailable) {
		t.Fatalf("revoked(carol) after a failed revocation: got %t, %v; want false and ErrStoreUnavailable", got, err)
	}

	// Meanwhile another instance revoked bob; once the store is back, the
	// next read sees it, within the refresh interval.
	if err := f.mem.Revoke(t.Context(), "bob", f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.store.fail(false)
	f.clock.Advance(time.Millisecond)
	f.wantRevoked(t, "bob", t0, true)
	f.wantRevoked(t, "alice", t0, true)
}

// TestRevokedUnderConcurrentQuestions asks about one identity from many
// goroutines as its cache entry goes stale: one of them reads the store,
// and all answer.
func TestRevokedUnderConcurrentQuestions(t *testing.T) {
	t.Parallel()
	f := newOperatorFixture(t, otp.DefaultConfig())
	if _, err := f.svc.Revoke(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(otp.DefaultRevocationRefresh)
	var wg sync.WaitGroup
	answers := make([]bool, 50)
	errs := make([]error, 50)
	for i := range answers {
		wg.Go(func() { answers[i], errs[i] = f.svc.Revoked(t.Context(), "alice", t0.Add(-time.Second)) })
	}
	wg.Wait()
	for i := range answers {
		if !answers[i] || errs[i] != nil {
			t.Fatalf("question %d: %t, %v; want revoked", i, answers[i], errs[i])
		}
	}
	if n := f.store.readsOf("alice"); n != 1 {
		t.Fatalf("50 concurrent questions on a stale entry read the store %d times, want once", n)
	}
}

func TestConfigRevocationRefresh(t *testing.T) {
	t.Parallel()
	store := memory.New(nil, time.Hour)
	t.Cleanup(func() { store.Close() })
	for _, tc := range []struct {
		refresh time.Duration
		ok      bool
	}{
		{0, true},
		{time.Second, true},
		{otp.MaxRevocationRefresh, true},
		{-time.Nanosecond, false},
		{-time.Second, false},
		{otp.MaxRevocationRefresh + time.Nanosecond, false},
		{time.Hour, false},
	} {
		cfg := otp.DefaultConfig()
		cfg.RevocationRefresh = tc.refresh
		err := cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("revocation refresh %s: got %v, want ok %t", tc.refresh, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "revocation_refresh") {
			t.Errorf("revocation refresh %s: the error %q does not name the setting", tc.refresh, err)
		}
		if !tc.ok {
			if _, err := otp.NewService(cfg, store, &recordingGateway{}, mustKeys(t, rootKey), nil, nil); err == nil {
				t.Errorf("a service was built with a revocation refresh of %s", tc.refresh)
			}
		}
	}
}
