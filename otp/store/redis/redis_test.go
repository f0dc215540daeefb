package redis_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

var prefixes atomic.Int64

// uniquePrefix keeps each conformance test's keys apart on a shared server.
func uniquePrefix() string {
	return "t" + strconv.FormatInt(prefixes.Add(1), 10) + ":"
}

func TestConformanceOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	storetest.Run(t, func(t *testing.T) otp.Store { return redis.New(client, uniquePrefix()) })
}

func TestConformanceOnRedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	client := goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: cluster.Addrs})
	t.Cleanup(func() { client.Close() })
	if _, ok := client.(*goredis.ClusterClient); !ok {
		t.Fatalf("three addresses should give a cluster client, got %T", client)
	}
	storetest.Run(t, func(t *testing.T) otp.Store { return redis.New(client, uniquePrefix()) })
}

// TestKeyDumpHoldsNoSecrets issues a challenge and a wrong attempt, then
// reads every key and value back: no code, no full number, no identity in
// clear, and every key has a TTL.
func TestKeyDumpHoldsNoSecrets(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	keys, err := otp.DeriveKeys([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	store := redis.New(client, "dump:")
	const (
		identity = "alice@example.com"
		e164     = "+819012345678"
		code     = "482915"
	)
	now := time.Unix(1_800_000_000, 0)
	ctx := context.Background()
	c := otp.Challenge{
		ID: "chal1", Subject: identity, PhoneHash: keys.PhoneHash(e164), PhoneMasked: "+81 90-****-5678",
		CodeMAC: keys.CodeMAC("chal1", code), CreatedAt: now, SentAt: now, ExpiresAt: now.Add(5 * time.Minute), MaxAttempts: 5,
	}
	cfg := otp.DefaultConfig()
	if _, err := store.Issue(ctx, otp.IssueRequest{Challenge: c, Now: now, MaxSends: 5, CooldownBase: cfg.CooldownBase,
		CooldownMax: cfg.CooldownMax, SendWindow: cfg.SendWindow}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Verify(ctx, otp.VerifyRequest{Subject: identity, ChallengeID: "chal1", CodeMAC: keys.CodeMAC("chal1", "000000"),
		Now: now, Failures: cfg.Failures}); err != nil {
		t.Fatal(err)
	}
	all, err := client.Keys(ctx, "dump:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("expected an identity key and a challenge key, got %q", all)
	}
	for _, k := range all {
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 {
			t.Errorf("key %s has no TTL (%v, %v)", k, ttl, err)
		}
		dump := k
		m, err := client.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range m {
			dump += " " + f + "=" + v
		}
		for _, secret := range []string{code, e164, "9012345678", identity} {
			if strings.Contains(dump, secret) {
				t.Errorf("key %s holds %q in clear: %q", k, secret, dump)
			}
		}
	}
}

// TestUnreachableRedisFailsFast shows a stopped server gives an error (which
// the service turns into ErrStoreUnavailable), not a hang and not a pass.
func TestUnreachableRedisFailsFast(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	store := redis.New(client, "down:")
	srv.Stop()
	ctx := context.Background()
	now := time.Now()
	_, err := store.Verify(ctx, otp.VerifyRequest{Subject: "a", ChallengeID: "x", CodeMAC: []byte("m"), Now: now, Failures: otp.DefaultConfig().Failures})
	if err == nil {
		t.Fatal("verify against a stopped server should fail")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Identity(ctx, "a", now); err != nil {
		t.Fatalf("after restart the same client should work again: %v", err)
	}
}

// TestLimitAndBindingKeys counts sends and binds a number, then reads every
// key back: every limit key has a TTL no longer than its window, bindings and
// number indexes persist, and nothing names the number, the identity or the
// address in clear.
func TestLimitAndBindingKeys(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	keys, err := otp.DeriveKeys([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	store := redis.New(client, "keys:")
	const (
		identity = "alice@example.com"
		e164     = "+819012345678"
		ip       = "198.51.100.23"
	)
	ctx := t.Context()
	now := time.Date(2026, 4, 1, 9, 30, 0, 0, time.UTC)
	phone := otp.Phone{E164: e164, Region: "JP", Type: "mobile"}
	checks := otp.DefaultSendLimits().Checks(keys, phone, identity, ip)
	if res, err := store.Limit(ctx, otp.LimitRequest{Now: now, Checks: checks}); err != nil || !res.Allowed {
		t.Fatalf("limit: %+v, %v", res, err)
	}
	// A refused send whose counts are refunded leaves no key without a TTL.
	refused := append(otp.DefaultSendLimits().Checks(keys, phone, "bob", "198.51.100.24"),
		otp.LimitCheck{Name: "full", Key: "x", Max: 1, Window: time.Hour})
	if _, err := store.Limit(ctx, otp.LimitRequest{Now: now, Checks: refused[len(refused)-1:]}); err != nil {
		t.Fatal(err)
	}
	if res, err := store.Limit(ctx, otp.LimitRequest{Now: now, Checks: refused}); err != nil || res.Refused != "full" {
		t.Fatalf("limit: %+v, %v; want refused by full", res, err)
	}
	sealed, err := keys.SealPhone(identity, e164)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.BindPhone(ctx, otp.BindRequest{Subject: identity, PhoneHash: keys.PhoneHash(e164), PhoneSealed: sealed,
		PhoneMasked: otp.MaskE164(e164), MaxIdentitiesPerNumber: 1, Now: now}); err != nil {
		t.Fatal(err)
	}

	all, err := client.Keys(ctx, "keys:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var limits, persistent int
	for _, k := range all {
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(k, "keys:lim:"):
			limits++
			max := time.Hour
			if strings.HasPrefix(k, "keys:lim:daily_budget:") {
				max = 24 * time.Hour
			}
			if ttl <= 0 || ttl > max {
				t.Errorf("limit key %s has TTL %s, want more than 0 and at most %s", k, ttl, max)
			}
		case strings.HasSuffix(k, ":bind") || strings.HasPrefix(k, "keys:num:"):
			persistent++
			if ttl != -1 {
				t.Errorf("binding key %s has TTL %s, want none", k, ttl)
			}
		default:
			t.Errorf("unexpected key %s", k)
		}
		dump := k
		m, err := client.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range m {
			dump += " " + f + "=" + v
		}
		for _, secret := range []string{e164, "9012345678", "90123456", identity, "alice", ip} {
			if strings.Contains(dump, secret) {
				t.Errorf("key %s holds %q in clear: %q", k, secret, dump)
			}
		}
	}
	// Six counters of alice's send plus the full one; bob's refunded
	// counters are gone. One binding and one number index.
	if limits != 7 || persistent != 2 {
		t.Fatalf("got %d limit keys and %d binding keys in %q, want 7 and 2", limits, persistent, all)
	}
}

// TestOperatorKeys checks what scripts.go promises of the operator's keys: a
// revocation has no TTL and holds nothing but a time; the subject is in the
// identity record only while it is locked out, and only sealed; an unlock shortens the
// record's TTL to the send window (or drops it when the sends are no longer
// counted); and an identity locked out by an older version, with no subject
// in its record, is still listed.
func TestOperatorKeys(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	store := redis.New(client, "ops:")
	ctx := t.Context()
	keys, err := otp.DeriveKeys([]byte(strings.Repeat("o", 32)))
	if err != nil {
		t.Fatal(err)
	}
	const (
		alice = "alice@example.com"
		bob   = "bob@example.com"
	)
	now := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	cfg := otp.DefaultConfig()
	lockAfterOne := otp.FailurePolicy{Budget: 1, DelayBase: time.Minute, DelayMax: time.Hour, HardLimit: 100, Window: 24 * time.Hour}
	// issue gives subject a challenge at at, counting a send for an hour.
	issue := func(subject string, at time.Time) {
		t.Helper()
		c := otp.Challenge{ID: "c1", Subject: subject, CodeMAC: []byte("mac"), CreatedAt: at, SentAt: at,
			ExpiresAt: at.Add(3 * time.Hour), MaxAttempts: 5}
		if _, err := store.Issue(ctx, otp.IssueRequest{Challenge: c, Now: at, MaxSends: 5, CooldownBase: cfg.CooldownBase,
			CooldownMax: cfg.CooldownMax, SendWindow: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	wrong := func(subject string, at time.Time) {
		t.Helper()
		sealed, err := keys.SealSubject(subject)
		if err != nil {
			t.Fatal(err)
		}
		res, err := store.Verify(ctx, otp.VerifyRequest{Subject: subject, ChallengeID: "c1", CodeMAC: []byte("wrong"),
			Now: at, Failures: lockAfterOne, SealedSubject: sealed})
		if err != nil || !res.LockedUntil.After(at) {
			t.Fatalf("wrong code for %s: %+v, %v; want a lock-out", subject, res, err)
		}
	}
	// record returns the one key of the given suffix and its fields.
	record := func(suffix string) (string, map[string]string, time.Duration) {
		t.Helper()
		keys, err := client.Keys(ctx, "ops:*"+suffix).Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys *%s: %q, %v; want one", suffix, keys, err)
		}
		m, err := client.HGetAll(ctx, keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		ttl, err := client.PTTL(ctx, keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		return keys[0], m, ttl
	}

	if err := store.Revoke(ctx, alice, now); err != nil {
		t.Fatal(err)
	}
	nbKeys, err := client.Keys(ctx, "ops:*:nb").Result()
	if err != nil || len(nbKeys) != 1 {
		t.Fatalf("not-before keys: %q, %v; want one", nbKeys, err)
	}
	if ttl, err := client.PTTL(ctx, nbKeys[0]).Result(); err != nil || ttl != -1 {
		t.Fatalf("not-before key %s: TTL %s (%v), want none", nbKeys[0], ttl, err)
	}
	if v, err := client.Get(ctx, nbKeys[0]).Result(); err != nil || v != strconv.FormatInt(now.UnixMilli(), 10) {
		t.Fatalf("not-before key holds %q (%v), want the time in milliseconds", v, err)
	}

	at := now.Add(time.Second)
	issue(alice, at)
	if _, m, _ := record(":id"); m["sub"] != "" || m["ssub"] != "" {
		t.Fatalf("an identity that is not locked out names its subject: %v", m)
	}
	wrong(alice, at)
	key, m, ttl := record(":id")
	if sub, err := keys.OpenSubject([]byte(m["ssub"])); err != nil || sub != alice || m["sub"] != "" {
		t.Fatalf("a locked-out identity's record %v does not name %s sealed, and only sealed (%q, %v)", m, alice, sub, err)
	}
	if ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("locked-out identity's TTL %s, want the failure window of 24h", ttl)
	}
	if err := store.Unlock(ctx, alice); err != nil {
		t.Fatal(err)
	}
	_, m, ttl = record(":id")
	if m["ssub"] != "" || m["failures"] != "0" || m["locked"] != "0" || m["sends"] != "1" {
		t.Fatalf("after the unlock the record is %v, want no subject, no failures, no lock-out and one send", m)
	}
	if ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("after the unlock the TTL is %s, want the send window of 1h", ttl)
	}

	// Bob's sends are no longer counted when he is locked out, so an
	// unlock leaves nothing to keep.
	issue(bob, now)
	wrong(bob, now.Add(2*time.Hour))
	if n, err := client.Exists(ctx, key).Result(); err != nil || n != 1 {
		t.Fatalf("alice's record went: %d, %v", n, err)
	}
	if err := store.Unlock(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if keys, err := client.Keys(ctx, "ops:*:id").Result(); err != nil || len(keys) != 1 || keys[0] != key {
		t.Fatalf("identity keys after bob's unlock: %q, %v; want only alice's", keys, err)
	}

	// A record of an older version: locked, with no subject. Beside it, a
	// key of another prefix and a challenge key that ends like an identity
	// key, neither of which is listed.
	until := now.Add(time.Hour)
	legacy := map[string]any{"failures": 12, "fail_exp": now.Add(24 * time.Hour).UnixMilli(), "locked": until.UnixMilli(),
		"sends": 0, "send_exp": 0, "next_send": 0}
	for _, k := range []string{"ops:{0123456789abcdef01234567}:id", "ops2:{0123456789abcdef01234567}:id",
		"ops:{0123456789abcdef01234567}:ch:x}:id"} {
		if err := client.HSet(ctx, k, legacy).Err(); err != nil {
			t.Fatal(err)
		}
	}
	locked, total, err := store.Locked(ctx, now, -1)
	if err != nil || total != 1 || len(locked) != 1 {
		t.Fatalf("locked: %+v, %d, %v; want the one legacy record", locked, total, err)
	}
	if got := locked[0]; got.Subject != "" || got.Failures != 12 || !got.Until.Equal(until) {
		t.Fatalf("legacy record listed as %+v, want no subject, 12 failures, until %s", got, until)
	}
}

// TestNotBeforeRoundsUp shows a revocation half way through a millisecond
// is kept as the next one, so a challenge made earlier in the same
// millisecond is gone too.
func TestNotBeforeRoundsUp(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	store := redis.New(client, "ms:")
	ctx := t.Context()
	now := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	c := otp.Challenge{ID: "c1", Subject: "carol", CodeMAC: []byte("mac"), CreatedAt: now, SentAt: now,
		ExpiresAt: now.Add(5 * time.Minute), MaxAttempts: 5}
	if _, err := store.Issue(ctx, otp.IssueRequest{Challenge: c, Now: now, MaxSends: 5, CooldownBase: time.Second,
		CooldownMax: time.Second, SendWindow: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := store.Revoke(ctx, "carol", now.Add(500*time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	if nb, err := store.NotBefore(ctx, "carol"); err != nil || !nb.Equal(now.Add(time.Millisecond)) {
		t.Fatalf("not before: %s after the challenge, %v; want 1ms after", nb.Sub(now), err)
	}
	if _, err := store.Challenge(ctx, "carol", "c1", now); !errors.Is(err, otp.ErrChallengeNotFound) {
		t.Fatalf("a challenge made in the revocation's millisecond but before it: %v, want ErrChallengeNotFound", err)
	}
}
