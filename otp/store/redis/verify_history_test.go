package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
)

// namedGateway is codeGateway answering with a gateway's name.
type namedGateway struct{ codeGateway }

func (g *namedGateway) Send(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	_, _ = g.codeGateway.Send(ctx, m)
	return otp.Receipt{Gateway: "sms-a"}, nil
}

// TestAVerificationKeepsItsEntryInItsOwnRoundTrip: on one server the
// instance that sent a code verifies it in one round trip, its history
// entry kept in the verification's own script; another instance, which
// did not send it, takes the second step. The entries read the same
// either way: the outcome, the masked number, the prefix's list and the
// gateway (history_verify_ahead.go).
func TestAVerificationKeepsItsEntryInItsOwnRoundTrip(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	keys, err := otp.DeriveKeys([]byte(strings.Repeat("v", 32)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := otp.DefaultConfig()
	clock := &flowClock{now: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	gw := &namedGateway{}
	instance := func() (*otp.Service, *commandCounter) {
		client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
		t.Cleanup(func() { client.Close() })
		counter := &commandCounter{}
		if err := client.Ping(t.Context()).Err(); err != nil { // the connection's own commands, not counted
			t.Fatal(err)
		}
		client.AddHook(counter)
		svc, err := otp.NewService(cfg, redis.New(client, "vh:"), gw, keys, clock, nil)
		if err != nil {
			t.Fatal(err)
		}
		return svc, counter
	}
	a, aCount := instance()
	b, bCount := instance()
	const alice, e164 = "alice", "+819012345678"
	phone := otp.Phone{E164: e164, Region: "JP", Type: "mobile", Masked: otp.MaskE164(e164)}
	session := keys.SessionHash("session")
	sent, err := a.Send(t.Context(), otp.SendRequest{Subject: alice, SessionHash: session, Phone: phone})
	if err != nil {
		t.Fatal(err)
	}
	id := sent.Challenge.ID
	verify := func(svc *otp.Service, counter *commandCounter, code string, want otp.VerifyStatus, trips int64) {
		t.Helper()
		clock.Advance(time.Second)
		before := counter.n.Load()
		res, err := svc.Verify(t.Context(), otp.VerifyInput{Subject: alice, SessionHash: session, ChallengeID: id, Code: code})
		if err != nil || res.Status != want {
			t.Fatalf("verify %s: %v %v, want %v", code, res.Status, err, want)
		}
		if n := counter.n.Load() - before; n != trips {
			t.Errorf("verify %s (%v) took %d commands, want %d", code, want, n, trips)
		}
	}
	verify(b, bCount, "000000", otp.VerifyWrong, 2) // b sent nothing: the entry takes a step of its own
	verify(a, aCount, "000001", otp.VerifyWrong, 1)
	verify(a, aCount, gw.last(), otp.VerifyOK, 1)
	verify(a, aCount, gw.last(), otp.VerifyNotFound, 2) // an outcome not sealed ahead

	entries, err := a.History(t.Context(), otp.HistoryQuery{Identity: alice})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := []string{"no_challenge", "ok", "wrong_code", "wrong_code", "sent"}
	if len(entries) != len(outcomes) {
		t.Fatalf("%d entries, want %d: %+v", len(entries), len(outcomes), entries)
	}
	send := entries[len(entries)-1]
	if send.Gateway != "sms-a" || send.PrefixKey == "" || send.Phone != phone.Masked {
		t.Fatalf("the send's entry: %+v", send)
	}
	for i, e := range entries {
		if e.Outcome != outcomes[i] {
			t.Errorf("entry %d: outcome %q, want %q", i, e.Outcome, outcomes[i])
		}
		if i == len(entries)-1 || e.Outcome == "no_challenge" {
			continue
		}
		if e.Event != otp.HistoryVerify || e.Identity != alice || e.Phone != send.Phone || e.PrefixKey != send.PrefixKey ||
			e.Gateway != send.Gateway || e.Challenge != send.Challenge {
			t.Errorf("verification entry %d: %+v, want the number, list, gateway and challenge of the send %+v", i, e, send)
		}
	}
	byPrefix, err := a.History(t.Context(), otp.HistoryQuery{Prefix: "+81901234"})
	if err != nil {
		t.Fatal(err)
	}
	if len(byPrefix) != 4 { // the send and the three verifications that found the challenge
		t.Errorf("the prefix's list holds %d entries, want 4: %+v", len(byPrefix), byPrefix)
	}
}

// TestHistoryWithinOneMillisecondReadsInOrder: Redis orders a list by the
// millisecond, and entries within one by their sealed bytes, at random; the
// service reads them newest first by their own time. Eight identities each
// send, resend within the cooldown and type a wrong code in the same
// millisecond (the old order came out right for one in six).
func TestHistoryWithinOneMillisecondReadsInOrder(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	keys, err := otp.DeriveKeys([]byte(strings.Repeat("o", 32)))
	if err != nil {
		t.Fatal(err)
	}
	clock := &flowClock{now: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	svc, err := otp.NewService(otp.DefaultConfig(), redis.New(client, "ho:"), &namedGateway{}, keys, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		subject := "user-" + strings.Repeat("x", i)
		e164 := "+81901234567" + string(rune('0'+i))
		phone := otp.Phone{E164: e164, Region: "JP", Type: "mobile", Masked: otp.MaskE164(e164)}
		sent, err := svc.Send(t.Context(), otp.SendRequest{Subject: subject, Phone: phone})
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(100 * time.Microsecond)
		if _, err := svc.Send(t.Context(), otp.SendRequest{Subject: subject, Phone: phone, ResendID: sent.Challenge.ID}); err == nil {
			t.Fatal("a resend within the cooldown passed")
		}
		clock.Advance(100 * time.Microsecond)
		if _, err := svc.Verify(t.Context(), otp.VerifyInput{Subject: subject, ChallengeID: sent.Challenge.ID, Code: "000000"}); err != nil {
			t.Fatal(err)
		}
		entries, err := svc.History(t.Context(), otp.HistoryQuery{Identity: subject})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Outcome)
		}
		if strings.Join(got, " ") != "wrong_code refused sent" {
			t.Fatalf("%s's history reads %q, want the verification, the refused resend, the send", subject, got)
		}
	}
}
