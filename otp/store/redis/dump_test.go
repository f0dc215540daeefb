package redis_test

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
)

// flowClock is a clock the test moves.
type flowClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *flowClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *flowClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// codeGateway keeps the codes it is asked to send.
type codeGateway struct {
	mu    sync.Mutex
	codes []string
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

func (g *codeGateway) Send(_ context.Context, m otp.Message) (otp.Receipt, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.codes = append(g.codes, sixDigits.FindString(m.Body))
	return otp.Receipt{}, nil
}

func (g *codeGateway) last() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.codes[len(g.codes)-1]
}

// TestFullFlowDumpNamesNoIdentityAndExpiresAllButTheDurableKeys runs every
// kind of write the service makes through a real Redis (sends and a resend
// counted against all six limits, wrong codes up to a lock-out, a correct
// code, an enrolment, a revocation, an operator's test message) and then
// reads back every key and value: no identity, number, address, session or
// code appears in clear (issue 13, "Redis never sees an identity in
// clear"); the bindings, number indexes and not-befores are the only keys
// without a TTL, as the README says; and the operator's list still names
// the locked-out identity.
func TestFullFlowDumpNamesNoIdentityAndExpiresAllButTheDurableKeys(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	keys, err := otp.DeriveKeys([]byte(strings.Repeat("f", 32)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := otp.DefaultConfig()
	cfg.Failures.Budget = 2
	// The fraud guard on, as caddymodule has it by default: its send
	// records hold a number's prefix in clear, all but the last 4 digits
	// the masked form shows, so no key may hold the masked form in clear.
	cfg.Breaker = otp.DefaultBreakerPolicy()
	clock := &flowClock{now: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	gw := &codeGateway{}
	// Codes from a seeded source, so that whether one happens to appear in
	// a timestamp is the same on every run.
	svc, err := otp.NewService(cfg, redis.New(client, "flow:"), gw, keys, clock, mrand.NewChaCha8([32]byte{13}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const (
		alice   = "alice@example.com"
		mallory = "mallory@example.com"
		e164    = "+819012345678"
		other   = "+819087654321"
		ip      = "198.51.100.23"
		session = "app-session-cookie-4242"
	)
	phone := func(n string) otp.Phone {
		return otp.Phone{E164: n, Region: "JP", Type: "mobile", Masked: otp.MaskE164(n)}
	}
	sessionHash := keys.SessionHash(session)
	send := func(subject, number, resend string) *otp.Challenge {
		t.Helper()
		res, err := svc.Send(ctx, otp.SendRequest{Subject: subject, SessionHash: sessionHash, Phone: phone(number),
			ResendID: resend, ClientIP: ip})
		if err != nil {
			t.Fatalf("send to %s: %v", subject, err)
		}
		return res.Challenge
	}
	verify := func(subject, id, code string) otp.VerifyResult {
		t.Helper()
		res, err := svc.Verify(ctx, otp.VerifyInput{Subject: subject, SessionHash: sessionHash, ChallengeID: id, Code: code})
		if err != nil {
			t.Fatalf("verify for %s: %v", subject, err)
		}
		return res
	}

	c := send(alice, e164, "")
	verify(alice, c.ID, "000000")
	clock.Advance(cfg.CooldownBase)
	c = send(alice, e164, c.ID)
	codes := []string{gw.last()}
	if res := verify(alice, c.ID, gw.last()); res.Status != otp.VerifyOK {
		t.Fatalf("alice's correct code: %s", res.Status)
	}
	if err := svc.BindPhone(ctx, alice, phone(e164), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Revoke(ctx, alice); err != nil {
		t.Fatal(err)
	}
	m := send(mallory, other, "")
	codes = append(codes, gw.last())
	for range cfg.Failures.Budget {
		verify(mallory, m.ID, "000000")
	}
	if _, err := svc.SendTest(ctx, phone(other), "en"); err != nil {
		t.Fatal(err)
	}
	locked, _, err := svc.Locked(ctx, -1)
	if err != nil || len(locked) != 1 || locked[0].Subject != mallory {
		t.Fatalf("locked list %+v, %v; want %s by name", locked, err, mallory)
	}

	all, err := client.Keys(ctx, "flow:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, k := range all {
		kind, durable := keyKind(k)
		kinds[kind]++
		ttl, err := client.PTTL(ctx, k).Result()
		switch {
		case err != nil:
			t.Fatal(err)
		case durable && ttl != -1:
			t.Errorf("%s key %s has TTL %s, want none: it is durable", kind, k, ttl)
		case !durable && ttl <= 0:
			t.Errorf("%s key %s has no TTL (%s)", kind, k, ttl)
		}
		dump := dumpKey(t, client, k)
		for _, secret := range append([]string{alice, mallory, "alice", "mallory", e164, other, "9012345678",
			"9087654321", "90123456", ip, session, "****", "-5678", "-4321"}, codes...) {
			if strings.Contains(dump, secret) {
				t.Errorf("key %s holds %q in clear: %q", k, secret, dump)
			}
		}
	}
	for _, kind := range []string{"identity", "challenge", "not-before", "binding", "number index", "limit", "history", "fraud guard"} {
		if kinds[kind] == 0 {
			t.Errorf("no %s key in %q: the flow did not write what it should", kind, all)
		}
	}
}

// keyKind names what a key of the flow holds, and whether it is one of the
// keys kept without a TTL.
func keyKind(k string) (kind string, durable bool) {
	switch {
	case strings.HasSuffix(k, ":id"):
		return "identity", false
	case strings.Contains(k, ":ch:"):
		return "challenge", false
	case strings.HasPrefix(k, "flow:lim:"):
		return "limit", false
	case strings.HasSuffix(k, ":nb"):
		return "not-before", true
	case strings.HasSuffix(k, ":bind"):
		return "binding", true
	case strings.HasPrefix(k, "flow:num:"):
		return "number index", true
	case strings.HasPrefix(k, "flow:hist:"):
		return "history", false
	case strings.Contains(k, "brk:{brk}:"):
		return "fraud guard", false
	}
	return "unknown " + k, false
}

// dumpKey is a key's name and everything it holds, as one string.
func dumpKey(t *testing.T, client goredis.UniversalClient, k string) string {
	t.Helper()
	ctx := t.Context()
	typ, err := client.Type(ctx, k).Result()
	if err != nil {
		t.Fatal(err)
	}
	dump := k
	switch typ {
	case "hash":
		m, err := client.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range m {
			dump += " " + f + "=" + v
		}
	case "string":
		v, err := client.Get(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		dump += " " + v
	case "zset":
		members, err := client.ZRangeWithScores(ctx, k, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			dump += fmt.Sprintf(" %v=%v", m.Member, m.Score)
		}
	default:
		t.Errorf("key %s is a %s, which the store never writes", k, typ)
	}
	return dump
}
