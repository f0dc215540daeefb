package source_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/sourcetest"
)

// fake is a PhoneSource with a fixed directory, or a fixed failure, that
// counts the lookups it is asked.
type fake struct {
	name        string
	fingerprint string
	numbers     map[string]string
	err         error

	mu    sync.Mutex
	asked []string
}

func (f *fake) Name() string        { return f.name }
func (f *fake) Fingerprint() string { return f.fingerprint }

func (f *fake) Lookup(_ context.Context, identity string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, identity)
	if f.err != nil {
		return "", false, f.err
	}
	n, ok := f.numbers[identity]
	return n, ok, nil
}

func (f *fake) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.asked)
}

func (f *fake) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func mustChain(t *testing.T, sources ...source.PhoneSource) *source.Chain {
	t.Helper()
	c, err := source.NewChain(sources...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChainAsksInOrderAndFailsClosed(t *testing.T) {
	down := source.Fail("app-db", source.ErrUnavailable, context.DeadlineExceeded)
	cases := []struct {
		name       string
		first      *fake
		identity   string
		want       source.Answer
		wantErr    error
		secondAsks int
	}{
		{
			name:     "the first source's number wins and the second is not asked",
			first:    &fake{name: "app-db", numbers: map[string]string{"alice": "+81 90-1234-5678"}},
			identity: "alice",
			want:     source.Answer{Raw: "+81 90-1234-5678", Found: true, Source: "app-db"},
		},
		{
			name:       "an identity the first does not know is asked of the second",
			first:      &fake{name: "app-db", numbers: map[string]string{}},
			identity:   "bob",
			want:       source.Answer{Raw: "+81 80-8765-4321", Found: true, Source: "directory"},
			secondAsks: 1,
		},
		{
			name:       "an identity no source knows is not found",
			first:      &fake{name: "app-db", numbers: map[string]string{}},
			identity:   "carol",
			want:       source.Answer{},
			secondAsks: 1,
		},
		{
			name:     "a first source that is down fails the lookup and the second is never asked",
			first:    &fake{name: "app-db", err: down},
			identity: "bob",
			wantErr:  source.ErrUnavailable,
		},
		{
			name:     "a first source that answers garbage fails the lookup and the second is never asked",
			first:    &fake{name: "app-db", err: source.Fail("app-db", source.ErrBadAnswer, errors.New("2 rows"))},
			identity: "bob",
			wantErr:  source.ErrBadAnswer,
		},
		{
			name:     "a plain error from a source is named after it and fails closed",
			first:    &fake{name: "app-db", err: errors.New("boom")},
			identity: "bob",
			wantErr:  source.ErrUnavailable,
		},
		{
			name:     "an identity with a NUL byte is refused before any source is asked",
			first:    &fake{name: "app-db", numbers: map[string]string{"bob": "+81 90-1111-2222"}},
			identity: "bob\x00",
			wantErr:  source.ErrInvalidIdentity,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			second := &fake{name: "directory", numbers: map[string]string{"bob": "+81 80-8765-4321"}}
			got, err := mustChain(t, tc.first, second).Find(t.Context(), tc.identity)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("answer %+v, want %+v", got, tc.want)
			}
			if n := second.calls(); n != tc.secondAsks {
				t.Errorf("the second source was asked %d times, want %d", n, tc.secondAsks)
			}
			var se *source.Error
			if err != nil && !errors.Is(err, source.ErrInvalidIdentity) && (!errors.As(err, &se) || se.Source != "app-db") {
				t.Errorf("error %v does not name the failing source app-db", err)
			}
			if errors.Is(err, source.ErrInvalidIdentity) && tc.first.calls() != 0 {
				t.Error("a refused identity reached a source")
			}
		})
	}
}

func TestChainRefusesNoSourcesAndTwoOfOneName(t *testing.T) {
	if _, err := source.NewChain(); err == nil || !strings.Contains(err.Error(), "at least one") {
		t.Errorf("no sources: %v", err)
	}
	_, err := source.NewChain(&fake{name: "sql"}, &fake{name: "sql"})
	if err == nil || !strings.Contains(err.Error(), `two are named "sql"`) {
		t.Errorf("two named sql: %v", err)
	}
}

// TestChainScopeFollowsWhatTheSourcesAsk: chains that would answer alike
// share a scope (and so cached answers); a different query, database or
// order does not.
func TestChainScopeFollowsWhatTheSourcesAsk(t *testing.T) {
	scope := func(sources ...source.PhoneSource) string { return mustChain(t, sources...).Scope() }
	a := scope(&fake{name: "sql", fingerprint: "db1"}, &fake{name: "ldap", fingerprint: "dir"})
	if b := scope(&fake{name: "sql", fingerprint: "db1"}, &fake{name: "ldap", fingerprint: "dir"}); a != b {
		t.Error("two chains of the same sources have different scopes")
	}
	for name, other := range map[string]string{
		"another database": scope(&fake{name: "sql", fingerprint: "db2"}, &fake{name: "ldap", fingerprint: "dir"}),
		"another order":    scope(&fake{name: "ldap", fingerprint: "dir"}, &fake{name: "sql", fingerprint: "db1"}),
		"one source fewer": scope(&fake{name: "sql", fingerprint: "db1"}),
	} {
		if other == a {
			t.Errorf("%s gives the same scope", name)
		}
	}
}

func TestCheckIdentity(t *testing.T) {
	for _, h := range sourcetest.HostileIdentities() {
		err := source.CheckIdentity(h.Identity)
		if h.Refused != errors.Is(err, source.ErrInvalidIdentity) {
			t.Errorf("%s: CheckIdentity = %v, refused should be %v", h.Name, err, h.Refused)
		}
		if err != nil && len(h.Identity) > 3 && strings.Contains(err.Error(), h.Identity[:4]) {
			t.Errorf("%s: the error repeats the identity: %v", h.Name, err)
		}
	}
	if err := source.CheckIdentity(strings.Repeat("a", source.MaxIdentityLength)); err != nil {
		t.Errorf("an identity of exactly %d bytes: %v", source.MaxIdentityLength, err)
	}
}
