package redis_test

import (
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

func TestLookupCacheConformanceOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	storetest.RunLookupCache(t, func(t *testing.T) otp.LookupCache { return redis.New(client, uniquePrefix()) })
}

// TestLookupCacheKeyExpiresInRedis checks that Redis itself expires an
// answer (its own clock, not the now the call passes), and that the key
// holds only what it was given under the store's prefix.
func TestLookupCacheKeyExpiresInRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	store := redis.New(client, "lk:")
	ctx := t.Context()
	if err := store.CacheLookup(ctx, "hashed-key", []byte("sealed"), time.Unix(0, 0), 90*time.Second); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil || len(keys) != 1 || keys[0] != "lk:lookup:hashed-key" {
		t.Fatalf("keys %v, %v; want only lk:lookup:hashed-key", keys, err)
	}
	ttl, err := client.PTTL(ctx, keys[0]).Result()
	if err != nil || ttl <= 80*time.Second || ttl > 90*time.Second {
		t.Errorf("TTL %s (%v), want just under 90s", ttl, err)
	}
	if err := store.CacheLookup(ctx, "k", []byte("v"), time.Unix(0, 0), 0); err == nil {
		t.Error("a lifetime of 0 (a key that never expires) was accepted")
	}
}
