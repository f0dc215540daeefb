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

func TestHistoryConformanceOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	storetest.RunHistory(t, func(t *testing.T) otp.HistoryStore { return redis.New(client, uniquePrefix()) })
}

func TestHistoryConformanceOnRedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	client := goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: cluster.Addrs})
	t.Cleanup(func() { client.Close() })
	storetest.RunHistory(t, func(t *testing.T) otp.HistoryStore { return redis.New(client, uniquePrefix()) })
}

// TestHistoryListExpiresInRedis checks that each list is a key of its own,
// hash-tagged, that Redis expires a retention after its latest entry.
func TestHistoryListExpiresInRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	store := redis.New(client, "h:")
	ctx := t.Context()
	rec := otp.HistoryRecord{Lists: []otp.HistoryList{{Key: "id-hash", Max: 5}, {Key: "prefix-hash", Max: 5}},
		At: time.Now(), Data: []byte("sealed"), Retention: 90 * time.Second}
	if err := store.AppendHistory(ctx, rec); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"h:hist:{id-hash}", "h:hist:{prefix-hash}"} {
		ttl, err := client.PTTL(ctx, key).Result()
		if err != nil || ttl <= 80*time.Second || ttl > 90*time.Second {
			t.Errorf("%s: TTL %s (%v), want just under 90s", key, ttl, err)
		}
	}
	if n, err := client.DBSize(ctx).Result(); err != nil || n != 2 {
		t.Errorf("%d keys (%v), want the two lists", n, err)
	}
}

func TestBackoffConformanceOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	storetest.RunBackoff(t, func(t *testing.T) otp.Store { return redis.New(client, uniquePrefix()) })
}

func TestBackoffConformanceOnRedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	client := goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: cluster.Addrs})
	t.Cleanup(func() { client.Close() })
	storetest.RunBackoff(t, func(t *testing.T) otp.Store { return redis.New(client, uniquePrefix()) })
}
