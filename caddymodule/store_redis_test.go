package caddymodule

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func TestRedisStoreCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, input string
		want        RedisStore
		err         string
	}{
		{name: "a URL as the argument is enough", input: `redis redis://127.0.0.1:6379/2`,
			want: RedisStore{URL: "redis://127.0.0.1:6379/2"}},
		{name: "every option in a block is read", input: `redis {
				url {env.REDIS_URL}
				master_name mymaster
				username caddy
				password {env.REDIS_PASS}
				db 3
				tls
				key_prefix app1:
				dial_timeout 2s
				command_timeout 500ms
			}`,
			want: RedisStore{URL: "{env.REDIS_URL}", MasterName: "mymaster", Username: "caddy", Password: "{env.REDIS_PASS}",
				DB: 3, TLS: true, KeyPrefix: "app1:", DialTimeout: caddy.Duration(2 * time.Second), CommandTimeout: caddy.Duration(500 * time.Millisecond)}},
		{name: "several addresses make a cluster", input: `redis {
				addresses 10.0.0.1:6379 10.0.0.2:6379 10.0.0.3:6379
			}`,
			want: RedisStore{Addresses: []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"}}},
		{name: "no server at all is refused", input: `redis`, err: "expected a url"},
		{name: "an unknown option is refused with the list of options", input: "redis {\n\tpasswd x\n}", err: `unknown redis store option "passwd"`},
		{name: "a negative db is refused", input: "redis redis://h:1 {\n\tdb -1\n}", err: `db "-1": expected a database number`},
		{name: "a command timeout that is not a duration is refused", input: "redis redis://h:1 {\n\tcommand_timeout soon\n}", err: "command_timeout"},
		{name: "wait_replicas is read", input: "redis {\n\taddresses s1:26379 s2:26379\n\tmaster_name m\n\twait_replicas 2\n}",
			want: RedisStore{Addresses: []string{"s1:26379", "s2:26379"}, MasterName: "m", WaitReplicas: intPtr(2)}},
		{name: "a negative wait_replicas is refused", input: "redis redis://h:1 {\n\twait_replicas -1\n}", err: `wait_replicas "-1": expected a number of replicas from 0 to 16`},
		{name: "tls takes no value", input: "redis redis://h:1 {\n\ttls yes\n}", err: "wrong argument count"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got RedisStore
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.URL != tc.want.URL || got.MasterName != tc.want.MasterName || got.Username != tc.want.Username ||
				got.Password != tc.want.Password || got.DB != tc.want.DB || got.TLS != tc.want.TLS || got.KeyPrefix != tc.want.KeyPrefix ||
				got.DialTimeout != tc.want.DialTimeout || got.CommandTimeout != tc.want.CommandTimeout ||
				strings.Join(got.Addresses, ",") != strings.Join(tc.want.Addresses, ",") ||
				(got.WaitReplicas == nil) != (tc.want.WaitReplicas == nil) || (got.WaitReplicas != nil && *got.WaitReplicas != *tc.want.WaitReplicas) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func intPtr(n int) *int { return &n }

// TestRedisStoreWaitsForAReplicaUnderSentinel: the default waits under
// Sentinel only, and an explicit 0 switches it off.
func TestRedisStoreWaitsForAReplicaUnderSentinel(t *testing.T) {
	for _, tc := range []struct {
		s    RedisStore
		want int
	}{
		{RedisStore{URL: "redis://h:1"}, 0},
		{RedisStore{Addresses: []string{"a:1", "b:2"}}, 0},
		{RedisStore{Addresses: []string{"a:1"}, MasterName: "m"}, 1},
		{RedisStore{Addresses: []string{"a:1"}, MasterName: "m", WaitReplicas: intPtr(0)}, 0},
		{RedisStore{URL: "redis://h:1", WaitReplicas: intPtr(2)}, 2},
	} {
		if got := tc.s.waitReplicas(); got != tc.want {
			t.Errorf("%+v: waits for %d replicas, want %d", tc.s, got, tc.want)
		}
	}
}

func TestRedisStoreOptions(t *testing.T) {
	t.Setenv("STEPUP_TEST_REDIS_PASS", "s3cret")
	s := RedisStore{URL: "redis://:urlpass@127.0.0.1:6390/4", Password: "{env.STEPUP_TEST_REDIS_PASS}", CommandTimeout: caddy.Duration(300 * time.Millisecond)}
	opts, err := s.options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Password != "s3cret" {
		t.Errorf("password placeholder not expanded, or the URL's won: %q", opts.Password)
	}
	if len(opts.Addrs) != 1 || opts.Addrs[0] != "127.0.0.1:6390" || opts.DB != 4 {
		t.Errorf("URL not applied: %v db %d", opts.Addrs, opts.DB)
	}
	if opts.ReadTimeout != 300*time.Millisecond || opts.WriteTimeout != 300*time.Millisecond {
		t.Errorf("command timeout not applied: %v %v", opts.ReadTimeout, opts.WriteTimeout)
	}
	if opts.MaxRetries != -1 {
		t.Errorf("retries must be off so a script never runs twice, got %d", opts.MaxRetries)
	}
	s = RedisStore{URL: "redis://127.0.0.1:1", Addresses: []string{"a:1", "b:2", "c:3"}}
	if opts, err = s.options(); err != nil || strings.Join(opts.Addrs, ",") != "a:1,b:2,c:3" {
		t.Errorf("addresses should replace the URL's address: %v %v", opts.Addrs, err)
	}
	if _, err := (&RedisStore{Addresses: []string{"a:1", "b:2", "c:3"}, WaitReplicas: intPtr(1)}).options(); err == nil ||
		!strings.Contains(err.Error(), "wait_replicas 1: expected 0 on a Cluster") {
		t.Errorf("wait_replicas on a Cluster should be refused, got %v", err)
	}
	if _, err := (&RedisStore{}).options(); err == nil {
		t.Error("a store with no server should be refused")
	}
	if _, err := (&RedisStore{URL: "redis://127.0.0.1:1", Password: "{env.STEPUP_TEST_UNSET_REDIS_PASSWORD}"}).options(); err == nil {
		t.Error("an unset password placeholder should be refused, not sent as an empty password")
	}
}

// TestRedisStoreSharesAndReleasesItsPool provisions and cleans up the store
// twenty times, overlapping as a config reload does, and checks the
// connection pool is shared while in use and closed after: no goroutines
// and no server connections left behind.
func TestRedisStoreSharesAndReleasesItsPool(t *testing.T) {
	srv := redistest.Start(t)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { admin.Close() })
	ctx := context.Background()
	clients := func() int {
		list, err := admin.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(list, "\n")
	}
	// The server drops a closed connection from CLIENT LIST a moment after
	// the client closes it; wait for that, within a deadline.
	settle := func(want int) int {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := clients()
			if n == want || time.Now().After(deadline) {
				return n
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	baseClients := clients()
	baseGoroutines := redisGoroutines()

	cctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	provision := func() *RedisStore {
		s := &RedisStore{URL: "redis://" + srv.Addr, KeyPrefix: "pool:"}
		if err := s.Provision(cctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Identity(ctx, "x", time.Now()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	old := provision()
	for i := 0; i < 20; i++ {
		next := provision()
		if err := old.Cleanup(); err != nil {
			t.Fatal(err)
		}
		old = next
	}
	if got := clients() - baseClients; got > 2 {
		t.Errorf("%d server connections while one config holds the pool; reloads should share it", got)
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := settle(baseClients) - baseClients; got != 0 {
		t.Errorf("%d server connections left after the last cleanup", got)
	}
	if n := redisGoroutines(); n > baseGoroutines {
		t.Errorf("%d go-redis goroutines after 20 reloads, %d before", n, baseGoroutines)
	}
}

// redisGoroutines counts goroutines running go-redis code, so the count is
// not disturbed by what other tests leave running in the process.
func redisGoroutines() int {
	buf := make([]byte, 1<<22)
	n := runtime.Stack(buf, true)
	count := 0
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "github.com/redis/go-redis") {
			count++
		}
	}
	return count
}

var _ otp.Store = (*RedisStore)(nil)
