package otp_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

// aheadStore is a memory store that asks for a send's history entry sealed
// ahead, as one Redis server does (it saves a round trip there), and counts
// the entries written after a send's own step.
type aheadStore struct {
	*memory.Store
	appends atomic.Int32
}

func (s *aheadStore) KeepsHistoryInIssue() bool { return true }

func (s *aheadStore) AppendHistory(ctx context.Context, rec otp.HistoryRecord) error {
	s.appends.Add(1)
	return s.Store.AppendHistory(ctx, rec)
}

// namedGateway answers with the gateway name it is set to, or err.
type namedGateway struct {
	mu   sync.Mutex
	name string
	err  error
}

func (g *namedGateway) Send(context.Context, otp.Message) (otp.Receipt, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return otp.Receipt{Gateway: g.name}, g.err
}

func (g *namedGateway) set(name string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.name, g.err = name, err
}

func newAheadFixture(t *testing.T) (*otp.Service, *aheadStore, *namedGateway, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	store := &aheadStore{Store: memory.New(clock, time.Hour)}
	t.Cleanup(func() { store.Close() })
	gw := &namedGateway{name: "gw-a"}
	svc, err := otp.NewService(otp.DefaultConfig(), store, gw, mustKeys(t, rootKey), clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc, store, gw, clock
}

// aheadHistory is alice's history as event/outcome[/reason]@gateway.
func aheadHistory(t *testing.T, svc *otp.Service) []string {
	t.Helper()
	entries, err := svc.History(t.Context(), otp.HistoryQuery{Identity: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		s := e.Event + "/" + e.Outcome
		if e.Reason != "" {
			s += "/" + e.Reason
		}
		out = append(out, s+"@"+e.Gateway)
	}
	return out
}

// TestSendEntrySealedAhead checks a send's history entry where the store
// keeps it in the send's own step: a send through the gateway that took
// the latest writes nothing after the gateway; the first send (no gateway
// known yet), a failover to another gateway and a failed send each put
// the true entry in the place of the one sealed ahead, and the challenge's
// gateway that the verification names is the true one. A send the
// cooldown refuses leaves only its refusal, kept in the same step.
func TestSendEntrySealedAhead(t *testing.T) {
	t.Parallel()
	svc, store, gw, clock := newAheadFixture(t)
	send := func(subject, resend string) (otp.SendResult, error) {
		return svc.Send(t.Context(), otp.SendRequest{Subject: subject, SessionHash: "s", Phone: alicePhone, ResendID: resend})
	}
	step := func(what string, wantAppends int32, want ...string) {
		t.Helper()
		if n := store.appends.Swap(0); n != wantAppends {
			t.Errorf("%s: %d entries written after the send's step, want %d", what, n, wantAppends)
		}
		if got := aheadHistory(t, svc); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: history %q, want %q", what, got, want)
		}
	}
	// The first send: no gateway known ahead, so one correction.
	res, err := send("alice", "")
	if err != nil {
		t.Fatal(err)
	}
	step("the first send", 1, "send/sent@gw-a")

	clock.Advance(time.Second)
	if _, err := send("alice", res.Challenge.ID); err == nil {
		t.Fatal("a resend within the cooldown passed")
	}
	step("a resend the cooldown refused", 0, "send/refused/cooldown@", "send/sent@gw-a")

	clock.Advance(time.Minute)
	if _, err := send("alice", res.Challenge.ID); err != nil {
		t.Fatal(err)
	}
	step("a send through the gateway predicted", 0, "send/sent@gw-a", "send/refused/cooldown@", "send/sent@gw-a")

	clock.Advance(5 * time.Minute)
	gw.set("gw-b", nil)
	res, err = send("alice", res.Challenge.ID)
	if err != nil {
		t.Fatal(err)
	}
	step("a failover to another gateway", 1, "send/sent@gw-b", "send/sent@gw-a", "send/refused/cooldown@", "send/sent@gw-a")
	if v, _ := svc.Verify(t.Context(), otp.VerifyInput{Subject: "alice", SessionHash: "s", ChallengeID: res.Challenge.ID, Code: "000000"}); v.Gateway != "gw-b" {
		t.Errorf("after a failover the challenge names gateway %q, want gw-b", v.Gateway)
	}
	store.appends.Swap(0)

	clock.Advance(10 * time.Minute)
	gw.set("", errors.New("provider down"))
	res, err = send("alice", res.Challenge.ID)
	if !errors.Is(err, otp.ErrSendFailed) {
		t.Fatalf("send: %v, want a send failure", err)
	}
	if n := store.appends.Swap(0); n != 1 {
		t.Errorf("a failed send: %d entries written after the send's step, want the one correction", n)
	}
	if got := aheadHistory(t, svc); len(got) == 0 || got[0] != "send/failed/gateway@" {
		t.Errorf("a failed send: history %q, want it listed first as failed, with no gateway, and nothing saying sent", got)
	}
	if v, _ := svc.Verify(t.Context(), otp.VerifyInput{Subject: "alice", SessionHash: "s", ChallengeID: res.Challenge.ID, Code: "000000"}); v.Gateway != "" {
		t.Errorf("after a failed send the challenge names gateway %q, want none", v.Gateway)
	}
}

// TestRefusedResendShowsItsChallenge checks that a resend the cooldown
// refuses returns its challenge as Challenge reads it, and none of another
// session.
func TestRefusedResendShowsItsChallenge(t *testing.T) {
	t.Parallel()
	svc, _, _, clock := newAheadFixture(t)
	res, err := svc.Send(t.Context(), otp.SendRequest{Subject: "alice", SessionHash: "s", Phone: alicePhone})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	refused, err := svc.Send(t.Context(), otp.SendRequest{Subject: "alice", SessionHash: "s", Phone: alicePhone, ResendID: res.Challenge.ID})
	var cd *otp.CooldownError
	if !errors.As(err, &cd) {
		t.Fatalf("a resend within the cooldown: %v", err)
	}
	want, err := svc.Challenge(t.Context(), "alice", "s", res.Challenge.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !refused.ShownRead || refused.Shown == nil || refused.Shown.ID != want.ID || refused.Shown.PhoneMasked != want.PhoneMasked || !refused.Shown.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("the refusal shows %+v (read %v), want %+v", refused.Shown, refused.ShownRead, want)
	}
	other, _ := svc.Send(t.Context(), otp.SendRequest{Subject: "alice", SessionHash: "other", Phone: alicePhone, ResendID: res.Challenge.ID})
	if !other.ShownRead || other.Shown != nil {
		t.Errorf("another session's refused resend shows %+v (read %v), want none", other.Shown, other.ShownRead)
	}
}
