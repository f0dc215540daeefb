package memory_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

var t0 = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

// clock is a settable otp.Clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func TestStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) otp.Store {
		s := memory.New(&clock{now: t0}, time.Hour)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// fill gives alice a challenge that expires at t0+5m, a send counted until
// t0+1h and one failure counted until t0+24h.
func fill(t *testing.T, s *memory.Store) {
	t.Helper()
	_, err := s.Issue(t.Context(), otp.IssueRequest{
		Challenge: otp.Challenge{
			ID: "c1", Subject: "alice", CodeMAC: []byte("mac"),
			CreatedAt: t0, SentAt: t0, ExpiresAt: t0.Add(5 * time.Minute), MaxAttempts: 5,
		},
		Now: t0, MaxSends: 5, CooldownBase: 30 * time.Second, CooldownMax: time.Minute, SendWindow: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Verify(t.Context(), otp.VerifyRequest{
		Subject: "alice", ChallengeID: "c1", CodeMAC: []byte("wrong"), Now: t0,
		Failures: otp.FailurePolicy{Budget: 10, DelayBase: time.Second, DelayMax: time.Minute, HardLimit: 100, Window: 24 * time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func wantLen(t *testing.T, s *memory.Store, identities, challenges int) {
	t.Helper()
	if i, c := s.Len(); i != identities || c != challenges {
		t.Fatalf("Len: got %d identities and %d challenges, want %d and %d", i, c, identities, challenges)
	}
}

func TestSweep(t *testing.T) {
	t.Parallel()
	s := memory.New(&clock{now: t0}, time.Hour)
	t.Cleanup(func() { s.Close() })
	fill(t, s)
	wantLen(t, s, 1, 1)

	steps := []struct {
		name                   string
		at                     time.Time
		identities, challenges int
	}{
		{"nothing is dropped before anything expires", t0.Add(5*time.Minute - time.Second), 1, 1},
		{"the challenge is dropped when it expires", t0.Add(5 * time.Minute), 1, 0},
		{"the identity stays while its failures are remembered", t0.Add(2 * time.Hour), 1, 0},
		{"the identity is dropped once its counters expire", t0.Add(24 * time.Hour), 0, 0},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			s.Sweep(step.at)
			wantLen(t, s, step.identities, step.challenges)
		})
	}
}

func TestSweeperUsesTheClock(t *testing.T) {
	t.Parallel()
	// Inside the bubble the ticker runs on fake time, so the sleep below
	// returns at once, after the sweeper's tick.
	synctest.Test(t, func(t *testing.T) {
		c := &clock{now: t0}
		s := memory.New(c, time.Minute)
		defer s.Close()
		fill(t, s)

		time.Sleep(time.Minute)
		synctest.Wait()
		wantLen(t, s, 1, 1)

		c.Set(t0.Add(24 * time.Hour))
		time.Sleep(time.Minute)
		synctest.Wait()
		wantLen(t, s, 0, 0)
	})
}

func TestCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	s := memory.New(nil, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A timing difference cannot be measured reliably in a unit test, so rule 9
// is checked in the source: Verify compares MACs with crypto/subtle and
// never with a comparison that stops at the first differing byte.
func TestVerifyComparesInConstantTime(t *testing.T) {
	t.Parallel()
	calls := callsIn(t, "memory.go", "Verify")
	if !calls["subtle.ConstantTimeCompare"] {
		t.Error("Verify does not call subtle.ConstantTimeCompare")
	}
	for _, leaky := range []string{"bytes.Equal", "bytes.Compare", "reflect.DeepEqual"} {
		if calls[leaky] {
			t.Errorf("Verify calls %s, which is not constant-time", leaky)
		}
	}
}

// callsIn returns the package-qualified calls (as "pkg.Func") made in the
// function or method name of file.
func callsIn(t *testing.T, file, name string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]bool{}
	found := false
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != name {
			continue
		}
		found = true
		ast.Inspect(fn, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if pkg, ok := sel.X.(*ast.Ident); ok {
					calls[pkg.Name+"."+sel.Sel.Name] = true
				}
			}
			return true
		})
	}
	if !found {
		t.Fatalf("no function %s in %s", name, file)
	}
	return calls
}

func TestSweepDropsEndedLimitWindowsAndKeepsBindings(t *testing.T) {
	t.Parallel()
	s := memory.New(&clock{now: t0}, time.Hour)
	t.Cleanup(func() { s.Close() })
	checks := []otp.LimitCheck{
		{Name: "phone", Key: "k", Max: 5, Window: time.Hour},
		{Name: "daily_budget", Key: "all", Max: 5, Window: 24 * time.Hour},
	}
	if res, err := s.Limit(t.Context(), otp.LimitRequest{Now: t0, Checks: checks}); err != nil || !res.Allowed {
		t.Fatalf("limit: %+v, %v", res, err)
	}
	if err := s.BindPhone(t.Context(), otp.BindRequest{Subject: "alice", PhoneHash: "ph", PhoneSealed: []byte("sealed"),
		MaxIdentitiesPerNumber: 1, Now: t0}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		at      time.Time
		windows int
	}{
		{"nothing is dropped before a window ends", t0.Add(59 * time.Minute), 2},
		{"the hourly window is dropped when it ends", t0.Add(time.Hour), 1},
		{"the daily window is dropped at midnight UTC", time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC), 0},
		{"a binding outlives every sweep", t0.Add(365 * 24 * time.Hour), 0},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			s.Sweep(step.at)
			if got := s.LimitWindows(); got != step.windows {
				t.Fatalf("%d limit windows held, want %d", got, step.windows)
			}
			if b, err := s.BoundPhone(t.Context(), "alice"); err != nil || b.PhoneHash != "ph" {
				t.Fatalf("binding after the sweep: %+v, %v", b, err)
			}
		})
	}
}

// issueFor gives subject a challenge id made at now with mac.
func issueFor(t *testing.T, s *memory.Store, subject, id string, mac []byte, now time.Time) (*otp.Challenge, error) {
	t.Helper()
	return s.Issue(t.Context(), otp.IssueRequest{
		Challenge: otp.Challenge{
			ID: id, Subject: subject, SessionHash: "sess", PhoneHash: "ph", PhoneMasked: "+81 90-****-5678", CodeMAC: mac,
			CreatedAt: now, SentAt: now, ExpiresAt: now.Add(5 * time.Minute), MaxAttempts: 5,
		},
		Now: now, MaxSends: 5, SendWindow: time.Hour,
	})
}

func TestACodeMACLongerThanAnHMACSHA256IsRefused(t *testing.T) {
	t.Parallel()
	s := memory.New(&clock{now: t0}, time.Hour)
	t.Cleanup(func() { s.Close() })
	_, err := issueFor(t, s, "alice", "c1", make([]byte, 33), t0)
	if err == nil || !strings.Contains(err.Error(), "expected at most 32") {
		t.Fatalf("issue with a 33-byte MAC: %v, want an error naming the 32-byte maximum", err)
	}
	wantLen(t, s, 0, 0)
	if _, err := issueFor(t, s, "alice", "c1", make([]byte, 32), t0); err != nil {
		t.Fatalf("issue with a 32-byte MAC: %v", err)
	}
}

// The store keeps times as Unix nanoseconds; what comes back must be the
// same instants, in the location of the request's now, and unset times
// must come back as the zero time.
func TestTimesComeBackExactly(t *testing.T) {
	t.Parallel()
	tokyo := time.FixedZone("JST", 9*60*60)
	now := time.Date(2026, 4, 1, 18, 0, 0, 123456789, tokyo)
	s := memory.New(&clock{now: now}, time.Hour)
	t.Cleanup(func() { s.Close() })
	if _, err := issueFor(t, s, "alice", "c1", []byte("mac"), now); err != nil {
		t.Fatal(err)
	}
	c, err := s.Challenge(t.Context(), "alice", "c1", now)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]time.Time{"created": c.CreatedAt, "sent": c.SentAt, "expires": c.ExpiresAt.Add(-5 * time.Minute)} {
		if got != now {
			t.Errorf("%s: got %v, want %v", name, got, now)
		}
	}
	st, err := s.Identity(t.Context(), "alice", now)
	if err != nil {
		t.Fatal(err)
	}
	if !st.LockedUntil.IsZero() || st.NextSendAt != now {
		t.Errorf("identity: locked until %v (want zero), next send %v (want %v)", st.LockedUntil, st.NextSendAt, now)
	}
	// A lock-out past what int64 nanoseconds reach (2262) still locks.
	long := 290 * 365 * 24 * time.Hour
	far := otp.FailurePolicy{Budget: 0, DelayBase: long, DelayMax: long, HardLimit: 100, Window: long}
	res, err := s.Verify(t.Context(), otp.VerifyRequest{Subject: "alice", ChallengeID: "c1", SessionHash: "sess", CodeMAC: []byte("bad"), Now: now, Failures: far})
	if err != nil || res.LockedUntil.Year() < 2262 {
		t.Fatalf("verify: %+v, %v; want a lock-out past 2262", res, err)
	}
	if st, _ := s.Identity(t.Context(), "alice", now.Add(200*365*24*time.Hour)); !st.Locked(now.Add(200 * 365 * 24 * time.Hour)) {
		t.Fatalf("200 years on: %+v, want still locked", st)
	}
}

// An identity keeps its first challenge next to its counters and any more
// in a slice; each must stay reachable as others come and go.
func TestManyChallengesOfOneIdentity(t *testing.T) {
	t.Parallel()
	s := memory.New(&clock{now: t0}, time.Hour)
	t.Cleanup(func() { s.Close() })
	ids := []string{"c0", "c1", "c2", "c3", "c4"}
	for i, id := range ids {
		if _, err := issueFor(t, s, "alice", id, []byte(id), t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	wantLen(t, s, 1, 5)
	res, err := s.Verify(t.Context(), otp.VerifyRequest{Subject: "alice", ChallengeID: "c1", SessionHash: "sess", CodeMAC: []byte("c1"), Now: t0.Add(5 * time.Minute)})
	if err != nil || res.Status != otp.VerifyOK {
		t.Fatalf("verify c1: %+v, %v", res, err)
	}
	// c0 expired at t0+5m; c1 is consumed; the rest remain, each with its
	// own MAC.
	at := t0.Add(5 * time.Minute)
	for _, id := range []string{"c0", "c1"} {
		if _, err := s.Challenge(t.Context(), "alice", id, at); err != otp.ErrChallengeNotFound {
			t.Errorf("challenge %s: %v, want ErrChallengeNotFound", id, err)
		}
	}
	for _, id := range []string{"c2", "c3", "c4"} {
		c, err := s.Challenge(t.Context(), "alice", id, at)
		if err != nil || c.ID != id || string(c.CodeMAC) != id {
			t.Errorf("challenge %s: %+v, %v", id, c, err)
		}
	}
	// A new challenge under an id held already replaces it.
	if _, err := issueFor(t, s, "alice", "c3", []byte("new"), at); err != nil {
		t.Fatal(err)
	}
	wantLen(t, s, 1, 3)
	if c, err := s.Challenge(t.Context(), "alice", "c3", at); err != nil || string(c.CodeMAC) != "new" || c.Sends != 1 {
		t.Fatalf("replaced c3: %+v, %v", c, err)
	}
}

// Identities on different shards are served in parallel while the sweeper
// runs; under -race this checks every path takes its shard's lock.
func TestIdentitiesInParallelWithTheSweeper(t *testing.T) {
	t.Parallel()
	s := memory.New(&clock{now: t0}, time.Hour)
	t.Cleanup(func() { s.Close() })
	const identities = 64
	var wg sync.WaitGroup
	for i := range identities {
		wg.Go(func() {
			subject := fmt.Sprint("user-", i)
			for round := range 20 {
				id := fmt.Sprint("c", round)
				if _, err := issueFor(t, s, subject, id, []byte(id), t0); err != nil {
					t.Error(err)
					return
				}
				res, err := s.Verify(t.Context(), otp.VerifyRequest{Subject: subject, ChallengeID: id, SessionHash: "sess", CodeMAC: []byte(id), Now: t0})
				if err != nil || res.Status != otp.VerifyOK {
					t.Errorf("verify %s of %s: %+v, %v", id, subject, res, err)
					return
				}
			}
			if _, err := issueFor(t, s, subject, "last", []byte("last"), t0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			s.Sweep(t0)
			s.Len()
		}
	})
	wg.Wait()
	wantLen(t, s, identities, identities)
}

func TestLookupCacheConformance(t *testing.T) {
	storetest.RunLookupCache(t, func(t *testing.T) otp.LookupCache {
		s := memory.New(&clock{now: t0}, time.Hour)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestLookupCacheExpires moves the time each call is given: an answer is
// there until its lifetime ends and gone from then on, and the sweeper
// drops it.
func TestLookupCacheExpires(t *testing.T) {
	s := memory.New(&clock{now: t0}, time.Hour)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	if err := s.CacheLookup(ctx, "k", []byte("v"), t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.CachedLookup(ctx, "k", t0.Add(time.Minute-time.Nanosecond)); !ok {
		t.Error("the answer was gone before its lifetime ended")
	}
	if _, ok, _ := s.CachedLookup(ctx, "k", t0.Add(time.Minute)); ok {
		t.Error("the answer outlived its lifetime")
	}
	s.Sweep(t0.Add(time.Minute))
	if _, ok, _ := s.CachedLookup(ctx, "k", t0); ok {
		t.Error("the sweeper kept an expired answer")
	}
}
