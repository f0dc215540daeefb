package memory_test

import (
	"go/ast"
	"go/parser"
	"go/token"
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
