package redis_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
)

// TestLimitCountersPruneEndedWindows: raising a counter drops the windows
// that have ended and keeps the key until its last window ends, counting
// a counter named twice in one request twice. (limitFunctions read each
// counter's field names once, in the check, and prune by them.)
func TestLimitCountersPruneEndedWindows(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	ctx := context.Background()
	prefix := uniquePrefix()
	s := redis.New(client, prefix)
	minute := otp.LimitCheck{Name: "phone", Key: "k1", Max: 10, Window: time.Minute}
	hour := otp.LimitCheck{Name: "ip", Key: "k2", Max: 10, Window: time.Hour}
	t0 := time.Date(2026, 12, 4, 10, 0, 30, 0, time.UTC)
	for _, at := range []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Minute)} {
		res, err := s.Limit(ctx, otp.LimitRequest{Now: at, Checks: []otp.LimitCheck{minute, hour, minute}})
		if err != nil || !res.Allowed {
			t.Fatalf("at %s: %+v, %v", at, res, err)
		}
	}
	now := t0.Add(2 * time.Minute)
	for _, tc := range []struct {
		c    otp.LimitCheck
		want string // the one field left and its count
	}{{minute, "2"}, {hour, "3"}} {
		keys, err := client.Keys(ctx, prefix+"lim:"+tc.c.Name+":*").Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("%s: keys %v, %v", tc.c.Name, keys, err)
		}
		all, err := client.HGetAll(ctx, keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		start, end := tc.c.Bounds(now)
		field := strconv.FormatInt(start.UnixMilli(), 10) + ":" + strconv.FormatInt(end.UnixMilli(), 10)
		if len(all) != 1 || all[field] != tc.want {
			t.Errorf("%s: the counter holds %v, want only %s = %s", tc.c.Name, all, field, tc.want)
		}
		// The key's TTL is set relative to the caller's clock: it runs to
		// the window's end from now.
		ttl, err := client.PTTL(ctx, keys[0]).Result()
		if err != nil || ttl <= 0 || ttl > end.Sub(now) {
			t.Errorf("%s: TTL %s, %v; want at most %s", tc.c.Name, ttl, err, end.Sub(now))
		}
	}
}
