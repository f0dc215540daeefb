package otp_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// historyLine is one entry in short: event/outcome[/reason] phone challenge.
func historyLine(e otp.HistoryEntry) string {
	s := e.Event + "/" + e.Outcome
	if e.Reason != "" {
		s += "/" + e.Reason
	}
	return s + " " + e.Phone
}

func historyOf(t *testing.T, f *fixture, q otp.HistoryQuery) []string {
	t.Helper()
	entries, err := f.svc.History(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, historyLine(e))
	}
	return out
}

// TestServiceHistoryRecordsSendsAndVerifications sends, is refused by the
// cooldown, types a wrong code and the right one, and reads the history of
// the identity and of the number's prefix: every step, newest first, with
// the number masked, never in full and never with the code.
func TestServiceHistoryRecordsSendsAndVerifications(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	res := f.send(t, "")
	code := f.gateway.lastCode(t)
	f.clock.Advance(time.Second)
	if _, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: "alice", SessionHash: "session-a", Phone: alicePhone, ResendID: res.Challenge.ID}); err == nil {
		t.Fatal("a resend within the cooldown passed")
	}
	f.clock.Advance(time.Second)
	wrong := fmt.Sprintf("%06d", (int(code[5]-'0')+1)%10)
	wantVerify(t, f.verify(t, res.Challenge.ID, wrong), otp.VerifyWrong)
	f.clock.Advance(time.Second)
	wantVerify(t, f.verify(t, res.Challenge.ID, code), otp.VerifyOK)

	want := []string{
		"verify/ok +81 90-****-5678", "verify/wrong_code +81 90-****-5678",
		"send/refused/cooldown +81 90-****-5678", "send/sent +81 90-****-5678",
	}
	if got := historyOf(t, f, otp.HistoryQuery{Identity: "alice"}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alice's history:\n%q\nwant\n%q", got, want)
	}
	if got := historyOf(t, f, otp.HistoryQuery{Prefix: "+81901234"}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the prefix's history:\n%q\nwant\n%q", got, want)
	}
	entries, _ := f.svc.History(t.Context(), otp.HistoryQuery{Identity: "alice"})
	last := entries[len(entries)-1]
	if last.Gateway != "recording" || last.Challenge != res.Challenge.ID[:8] || !last.At.Equal(t0) || last.Identity != "alice" {
		t.Errorf("the send's entry: %+v", last)
	}
	for _, e := range entries {
		if s := fmt.Sprintf("%+v", e); strings.Contains(s, alicePhone.E164) || strings.Contains(s, "12345678") || strings.Contains(s, code) {
			t.Errorf("an entry holds the full number or the code: %s", s)
		}
	}
	if got := historyOf(t, f, otp.HistoryQuery{Identity: "bob"}); len(got) != 0 {
		t.Errorf("bob's history: %q, want none", got)
	}
	if got := historyOf(t, f, otp.HistoryQuery{Identity: "alice", Since: t0.Add(2 * time.Second)}); len(got) != 2 {
		t.Errorf("alice's history of the last seconds: %q, want the two verifications", got)
	}
}

// TestServiceHistoryRecordsGatewayFailures checks a send the gateway
// refuses is recorded as failed.
func TestServiceHistoryRecordsGatewayFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	f.gateway.err = errors.New("provider down")
	if _, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: "alice", SessionHash: "s", Phone: alicePhone}); !errors.Is(err, otp.ErrSendFailed) {
		t.Fatalf("send: %v, want a send failure", err)
	}
	if got := historyOf(t, f, otp.HistoryQuery{Identity: "alice"}); fmt.Sprint(got) != "[send/failed/gateway +81 90-****-5678]" {
		t.Errorf("history %q", got)
	}
}

// TestServiceHistoryQueries checks the queries refused, and that history
// off answers ErrNoHistory and keeps nothing.
func TestServiceHistoryQueries(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	for _, q := range []otp.HistoryQuery{{}, {Identity: "alice", Prefix: "+8190"}, {Prefix: "819012"}, {Prefix: "+81 90"}, {Prefix: "+0123"}} {
		if _, err := f.svc.History(t.Context(), q); err == nil {
			t.Errorf("query %+v was accepted", q)
		}
	}
	cfg := otp.DefaultConfig()
	cfg.History.Retention = 0
	off := newFixture(t, cfg, nil)
	off.send(t, "")
	if _, err := off.svc.History(t.Context(), otp.HistoryQuery{Identity: "alice"}); !errors.Is(err, otp.ErrNoHistory) {
		t.Errorf("history off: %v, want ErrNoHistory", err)
	}
	if lists, _ := off.store.HistoryLen(); lists != 0 {
		t.Errorf("history off kept %d lists", lists)
	}
	cfg.History = otp.HistoryPolicy{Retention: time.Hour}
	if err := cfg.Validate(); err == nil {
		t.Error("a history without a max per list was accepted")
	}
}
