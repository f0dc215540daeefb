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

func TestReplayStoreConformanceOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	storetest.RunReplayStore(t, func(t *testing.T) otp.ReplayStore { return redis.New(client, uniquePrefix()) })
}

func TestReplayStoreConformanceOnRedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	client := goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: cluster.Addrs})
	t.Cleanup(func() { client.Close() })
	storetest.RunReplayStore(t, func(t *testing.T) otp.ReplayStore { return redis.New(client, uniquePrefix()) })
}

// TestReplayKeyExpiresInRedis checks that Redis itself expires a kept form
// and that the key is the store's prefix and the hashed key only.
func TestReplayKeyExpiresInRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	store := redis.New(client, "rp:")
	ctx := t.Context()
	if err := store.KeepReplay(ctx, "hashed-id", []byte("sealed"), time.Unix(0, 0), 90*time.Second); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil || len(keys) != 1 || keys[0] != "rp:replay:hashed-id" {
		t.Fatalf("keys %v, %v; want only rp:replay:hashed-id", keys, err)
	}
	ttl, err := client.PTTL(ctx, keys[0]).Result()
	if err != nil || ttl <= 80*time.Second || ttl > 90*time.Second {
		t.Errorf("TTL %s (%v), want just under 90s", ttl, err)
	}
	if err := store.KeepReplay(ctx, "k", []byte("v"), time.Unix(0, 0), 0); err == nil {
		t.Error("a lifetime of 0 (a key that never expires) was accepted")
	}
}
