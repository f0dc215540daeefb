package source_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
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

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func keys(t *testing.T, root string) *otp.Keys {
	t.Helper()
	k, err := otp.DeriveKeys([]byte(strings.Repeat(root, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func memoryStore(t *testing.T) *memory.Store {
	s := memory.New(nil, time.Hour)
	t.Cleanup(func() { s.Close() })
	return s
}

type cacheEnv struct {
	clock *clock
	src   *fake
	cache *source.Cache
}

func newCacheEnv(t *testing.T, store otp.LookupCache, cfg source.CacheConfig) *cacheEnv {
	t.Helper()
	e := &cacheEnv{
		clock: &clock{now: t0},
		src:   &fake{name: "app-db", numbers: map[string]string{"alice": "+81 90-1234-5678"}},
	}
	cfg.Store, cfg.Clock = store, e.clock
	if cfg.Keys == nil {
		cfg.Keys = keys(t, "k")
	}
	var err error
	if e.cache, err = source.NewCache(mustChain(t, e.src), cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

// find looks identity up and reports whether the source was asked.
func (e *cacheEnv) find(t *testing.T, identity string) (source.Answer, bool) {
	t.Helper()
	before := e.src.calls()
	a, err := e.cache.Find(t.Context(), identity)
	if err != nil {
		t.Fatalf("Find(%q): %v", identity, err)
	}
	return a, e.src.calls() > before
}

func TestCacheKeepsAnswersForTheirLifetime(t *testing.T) {
	cases := []struct {
		name     string
		cfg      source.CacheConfig
		identity string
		ttl      time.Duration
	}{
		{"a number is kept 5 minutes by default", source.CacheConfig{}, "alice", 5 * time.Minute},
		{"no number is kept 1 minute by default", source.CacheConfig{}, "nobody", time.Minute},
		{"a number is kept as long as configured", source.CacheConfig{FoundTTL: 20 * time.Second}, "alice", 20 * time.Second},
		{"no number is kept as long as configured", source.CacheConfig{NotFoundTTL: 10 * time.Second}, "nobody", 10 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newCacheEnv(t, memoryStore(t), tc.cfg)
			first, asked := e.find(t, tc.identity)
			if !asked || first.Cached {
				t.Fatalf("first lookup: asked %v, answer %+v", asked, first)
			}
			e.clock.advance(tc.ttl - time.Second)
			again, asked := e.find(t, tc.identity)
			want := first
			want.Cached = true
			if asked || again != want {
				t.Errorf("within the lifetime: asked %v, answer %+v, want %+v from the cache", asked, again, want)
			}
			e.clock.advance(time.Second)
			if late, asked := e.find(t, tc.identity); !asked || late.Cached {
				t.Errorf("once the lifetime ended: asked %v, answer %+v; want the source asked again", asked, late)
			}
		})
	}
}

func TestCacheRefusesLifetimesOutOfRange(t *testing.T) {
	for _, cfg := range []source.CacheConfig{
		{FoundTTL: -time.Minute}, {FoundTTL: 500 * time.Millisecond}, {FoundTTL: 2 * time.Hour},
		{NotFoundTTL: -time.Second}, {NotFoundTTL: 25 * time.Hour},
	} {
		cfg.Store, cfg.Keys = memoryStore(t), keys(t, "k")
		_, err := source.NewCache(mustChain(t, &fake{name: "a"}), cfg)
		if err == nil || !strings.Contains(err.Error(), "expected a duration from 1s to 1h0m0s") {
			t.Errorf("found %s, not found %s: %v", cfg.FoundTTL, cfg.NotFoundTTL, err)
		}
	}
	if _, err := source.NewCache(mustChain(t, &fake{name: "a"}), source.CacheConfig{Keys: keys(t, "k")}); err == nil {
		t.Error("a cache with no store was accepted")
	}
}

func TestCacheNeverKeepsAFailure(t *testing.T) {
	e := newCacheEnv(t, memoryStore(t), source.CacheConfig{})
	e.src.fail(source.Fail("app-db", source.ErrUnavailable, context.DeadlineExceeded))
	if _, err := e.cache.Find(t.Context(), "alice"); !errors.Is(err, source.ErrUnavailable) {
		t.Fatalf("a failing source: %v", err)
	}
	e.src.fail(nil)
	if a, asked := e.find(t, "alice"); !asked || !a.Found {
		t.Errorf("after the source came back: asked %v, %+v; want it asked and the number found", asked, a)
	}
}

// brokenStore fails every read or write.
type brokenStore struct{ readFails bool }

func (b brokenStore) CachedLookup(context.Context, string, time.Time) ([]byte, bool, error) {
	if b.readFails {
		return nil, false, errors.New("connection refused")
	}
	return nil, false, nil
}

func (b brokenStore) CacheLookup(context.Context, string, []byte, time.Time, time.Duration) error {
	return errors.New("connection refused")
}

func TestCacheFailsClosedWhenTheStoreFails(t *testing.T) {
	for name, store := range map[string]brokenStore{
		"a store that cannot be read fails the lookup before any source is asked": {readFails: true},
		"a store that cannot be written fails the lookup":                         {},
	} {
		t.Run(name, func(t *testing.T) {
			e := newCacheEnv(t, store, source.CacheConfig{})
			a, err := e.cache.Find(t.Context(), "alice")
			if !errors.Is(err, otp.ErrStoreUnavailable) || a.Found {
				t.Errorf("answer %+v, error %v; want otp.ErrStoreUnavailable and no number", a, err)
			}
			if store.readFails && e.src.calls() != 0 {
				t.Error("the source was asked although the store could not be read")
			}
		})
	}
}

// swapStore is a memory store whose test can overwrite what it holds.
type swapStore struct {
	*memory.Store
	mu   sync.Mutex
	keys []string
}

func (s *swapStore) CacheLookup(ctx context.Context, key string, v []byte, now time.Time, ttl time.Duration) error {
	s.mu.Lock()
	s.keys = append(s.keys, key)
	s.mu.Unlock()
	return s.Store.CacheLookup(ctx, key, v, now, ttl)
}

// TestCacheIgnoresAnswersItDidNotSealForThatIdentity: someone who can write
// to the store copies admin's cached answer onto mallory's key, or plants
// a value of their own; neither opens, and mallory's lookup asks the source.
func TestCacheIgnoresAnswersItDidNotSealForThatIdentity(t *testing.T) {
	store := &swapStore{Store: memoryStore(t)}
	e := newCacheEnv(t, store, source.CacheConfig{})
	e.src.numbers["admin"] = "+81 90-0000-0001"
	if _, asked := e.find(t, "admin"); !asked {
		t.Fatal("admin's first lookup did not ask the source")
	}
	if _, asked := e.find(t, "mallory"); !asked {
		t.Fatal("mallory's first lookup did not ask the source")
	}
	ctx := t.Context()
	adminKey, malloryKey := store.keys[0], store.keys[1]
	adminSealed, _, _ := store.CachedLookup(ctx, adminKey, t0)
	for name, planted := range map[string][]byte{
		"admin's sealed answer": adminSealed,
		"a plain answer":        []byte(`{"f":true,"r":"+81 90-0000-0001","s":"app-db"}`),
		"a short value":         []byte("x"),
	} {
		t.Run(name+" under mallory's key is not believed", func(t *testing.T) {
			if err := store.Store.CacheLookup(ctx, malloryKey, planted, t0, time.Minute); err != nil {
				t.Fatal(err)
			}
			a, asked := e.find(t, "mallory")
			if a.Found || !asked {
				t.Errorf("asked %v, answer %+v; want the source asked and no number", asked, a)
			}
		})
	}
}

func TestCacheKeepsScopesAndKeysApart(t *testing.T) {
	store := memoryStore(t)
	clk := &clock{now: t0}
	mk := func(src *fake, k *otp.Keys) *source.Cache {
		c, err := source.NewCache(mustChain(t, src), source.CacheConfig{Store: store, Keys: k, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	appA := &fake{name: "app", fingerprint: "db-a", numbers: map[string]string{"alice": "+81 90-1234-5678"}}
	appB := &fake{name: "app", fingerprint: "db-b", numbers: map[string]string{"alice": "+81 80-9999-8888"}}
	k := keys(t, "k")
	if _, err := mk(appA, k).Find(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	got, err := mk(appB, k).Find(t.Context(), "alice")
	if err != nil || got.Raw != "+81 80-9999-8888" || got.Cached {
		t.Errorf("another database's alice: %+v, %v; want her own number, not the cached one", got, err)
	}
	rotated := &fake{name: "app", fingerprint: "db-a", numbers: map[string]string{"alice": "+81 90-1234-5678"}}
	if _, err := mk(rotated, keys(t, "r")).Find(t.Context(), "alice"); err != nil || rotated.calls() != 1 {
		t.Errorf("under another signing key the source was asked %d times (%v), want 1", rotated.calls(), err)
	}
}

// TestCacheSharedThroughRedisHoldsNoIdentityOrNumber: two instances share
// one Redis; the second reads what the first looked up, and a dump of
// Redis shows neither the identity nor any form of the number.
func TestCacheSharedThroughRedisHoldsNoIdentityOrNumber(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	k := keys(t, "k")
	const identity, number = "alice.example@corp.example", "+81 90-1234-5678"
	instance := func() (*source.Cache, *fake) {
		src := &fake{name: "app-db", numbers: map[string]string{identity: number}}
		c, err := source.NewCache(mustChain(t, src), source.CacheConfig{Store: redis.New(client, "shared:"), Keys: k})
		if err != nil {
			t.Fatal(err)
		}
		return c, src
	}
	first, _ := instance()
	if a, err := first.Find(t.Context(), identity); err != nil || a.Raw != number {
		t.Fatalf("first instance: %+v, %v", a, err)
	}
	second, secondSrc := instance()
	a, err := second.Find(t.Context(), identity)
	if err != nil || a.Raw != number || !a.Cached || a.Source != "app-db" || secondSrc.calls() != 0 {
		t.Errorf("second instance: %+v, %v, its source asked %d times; want the cached answer", a, err, secondSrc.calls())
	}

	ctx := t.Context()
	all, err := client.Keys(ctx, "*").Result()
	if err != nil || len(all) != 1 {
		t.Fatalf("keys %v, %v; want one", all, err)
	}
	ttl, _ := client.PTTL(ctx, all[0]).Result()
	if ttl <= 4*time.Minute || ttl > 5*time.Minute {
		t.Errorf("TTL %s, want just under 5m", ttl)
	}
	value, _ := client.Get(ctx, all[0]).Result()
	dump := all[0] + value
	for _, secret := range []string{identity, "alice", number, "9012345678", "12345678", "5678"} {
		if strings.Contains(dump, secret) {
			t.Errorf("Redis holds %q in clear: key %q", secret, all[0])
		}
	}
}
