package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// A send's history entry sealed ahead and kept in the send's own step
// (otp.ResultIssuer, IssueRequest.History), and the challenge a refused
// resend shows (IssueResult.Shown). A store that is no ResultIssuer and
// HistoryStore skips these.

// aheadStore is the env's store as a ResultIssuer and HistoryStore.
func aheadStore(t *testing.T, e *env) (otp.ResultIssuer, otp.HistoryStore) {
	t.Helper()
	ri, ok := e.store.(otp.ResultIssuer)
	hs, hok := e.store.(otp.HistoryStore)
	if !ok || !hok {
		t.Skipf("%T keeps no history in its issue", e.store)
	}
	return ri, hs
}

// aheadLists are alice's and the prefix's history lists.
var aheadLists = []otp.HistoryList{{Key: "alice's list", Max: 10}, {Key: "the prefix's list", Max: 10}}

// aheadRecord is an entry sealed ahead for alice's challenge id, through gateway.
func aheadRecord(id, data, gateway string, at time.Time) *otp.HistoryRecord {
	return &otp.HistoryRecord{Lists: aheadLists, At: at, Data: []byte(data), Retention: time.Hour,
		Sent: &otp.SentGateway{Subject: alice, ChallengeID: id, Gateway: gateway}}
}

// wantLists checks that both lists hold exactly data, newest first.
func wantLists(t *testing.T, hs otp.HistoryStore, now time.Time, data ...string) {
	t.Helper()
	for _, l := range aheadLists {
		items, err := hs.History(t.Context(), l.Key, time.Time{}, now, time.Hour, 100)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]string, len(items))
		for i, it := range items {
			got[i] = string(it.Data)
		}
		if len(got) != len(data) || (len(got) > 0 && got[0] != data[0]) || (len(got) > 1 && got[1] != data[1]) {
			t.Errorf("list %q holds %q, want %q", l.Key, got, data)
		}
	}
}

func sendKeepsEntryAhead(t *testing.T, e *env) {
	ri, hs := aheadStore(t, e)
	req := issueRequest(e.challenge("c1", "123456", t0), t0)
	req.History = aheadRecord("c1", "sent via gw-a", "gw-a", t0)
	res, err := ri.IssueFull(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.HistoryKept || res.Challenge == nil || res.Challenge.ID != "c1" {
		t.Fatalf("issue: kept %v, challenge %+v; want the entry kept with c1", res.HistoryKept, res.Challenge)
	}
	wantLists(t, hs, t0, "sent via gw-a")
	if v := e.verify("c1", "000000", t0.Add(time.Second)); v.Gateway != "gw-a" {
		t.Errorf("the verification names gateway %q, want the one the entry sealed ahead named, gw-a", v.Gateway)
	}
	// The same request without IssueFull keeps nothing.
	req2 := issueRequest(e.challenge("c2", "123456", t0), t0)
	req2.Challenge.Subject = bob
	req2.History = aheadRecord("c2", "not kept", "gw-a", t0)
	if _, err := e.store.Issue(t.Context(), req2); err != nil {
		t.Fatal(err)
	}
	wantLists(t, hs, t0, "sent via gw-a")
}

func refusedSendKeepsNoEntryAhead(t *testing.T, e *env) {
	ri, hs := aheadStore(t, e)
	e.issue("c1", "111111", t0)
	now := t0.Add(time.Second)
	req := e.resendRequest("c1", "222222", now)
	req.History = aheadRecord("c1", "a refused send", "gw-a", now)
	res, err := ri.IssueFull(t.Context(), req)
	var cd *otp.CooldownError
	if !errors.As(err, &cd) || res.HistoryKept {
		t.Fatalf("a resend within the cooldown: %v, kept %v; want a cooldown refusal keeping nothing", err, res.HistoryKept)
	}
	wantLists(t, hs, now)
	// With the cooldown's own entry, that one is kept, and only that.
	req.CooldownHistory = []byte("refused: cooldown")
	if res, err = ri.IssueFull(t.Context(), req); !errors.As(err, &cd) || !res.HistoryKept {
		t.Fatalf("a resend within the cooldown with its entry: %v, kept %v; want a cooldown refusal keeping it", err, res.HistoryKept)
	}
	wantLists(t, hs, now, "refused: cooldown")
	// Another refusal keeps neither.
	other := issueRequest(e.challenge("c2", "333333", now), now)
	other.Challenge.Subject, other.Resend = bob, true
	other.History, other.CooldownHistory = aheadRecord("c2", "sent", "gw-a", now), []byte("refused: cooldown, again")
	if res, err = ri.IssueFull(t.Context(), other); !errors.Is(err, otp.ErrChallengeNotFound) || res.HistoryKept {
		t.Fatalf("a resend of a challenge never made: %v, kept %v; want not found, keeping nothing", err, res.HistoryKept)
	}
	wantLists(t, hs, now, "refused: cooldown")
	if v := e.verify("c1", "000000", now.Add(time.Second)); v.Gateway != "" {
		t.Errorf("the refused send noted gateway %q on the challenge, want none", v.Gateway)
	}
}

func fallbackKeepsNoEntryAhead(t *testing.T, e *env) {
	ri, hs := aheadStore(t, e)
	req := e.resendRequest("gone", "123456", t0)
	req.FallbackID, req.FallbackMAC = "fresh", e.mac("fresh", "123456")
	req.History = aheadRecord("gone", "names the gone challenge", "gw-a", t0)
	res, err := ri.IssueFull(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Challenge.ID != "fresh" || res.HistoryKept {
		t.Fatalf("a resend of a gone challenge: challenge %s, kept %v; want its fallback, the entry not kept", res.Challenge.ID, res.HistoryKept)
	}
	wantLists(t, hs, t0)
}

func entryReplacesTheOneAhead(t *testing.T, e *env) {
	ri, hs := aheadStore(t, e)
	req := issueRequest(e.challenge("c1", "123456", t0), t0)
	req.History = aheadRecord("c1", "sent via gw-a", "gw-a", t0)
	if _, err := ri.IssueFull(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Second)
	if err := hs.AppendHistory(t.Context(), otp.HistoryRecord{Lists: aheadLists, At: at, Data: []byte("failed"), Retention: time.Hour,
		Sent: &otp.SentGateway{Subject: alice, ChallengeID: "c1"}, Replaces: []byte("sent via gw-a")}); err != nil {
		t.Fatal(err)
	}
	wantLists(t, hs, at, "failed")
	if v := e.verify("c1", "000000", at); v.Gateway != "" {
		t.Errorf("after a failed send the verification names gateway %q, want none", v.Gateway)
	}
	if err := hs.AppendHistory(t.Context(), otp.HistoryRecord{Lists: aheadLists, At: at.Add(time.Second), Data: []byte("sent via gw-b"), Retention: time.Hour,
		Sent: &otp.SentGateway{Subject: alice, ChallengeID: "c1", Gateway: "gw-b"}, Replaces: []byte("not in the lists")}); err != nil {
		t.Fatal(err)
	}
	wantLists(t, hs, at.Add(time.Second), "sent via gw-b", "failed")
	if v := e.verify("c1", "000000", at.Add(time.Second)); v.Gateway != "gw-b" {
		t.Errorf("the verification names gateway %q, want the corrected one, gw-b", v.Gateway)
	}
}

func refusedResendShowsItsChallenge(t *testing.T, e *env) {
	ri, _ := aheadStore(t, e)
	e.issue("c1", "111111", t0)
	now := t0.Add(time.Second)
	want := e.live("c1", now)
	res, err := ri.IssueFull(t.Context(), e.resendRequest("c1", "222222", now))
	var cd *otp.CooldownError
	if !errors.As(err, &cd) {
		t.Fatalf("a resend within the cooldown: %v, want a cooldown refusal", err)
	}
	if !res.ShownRead || res.Shown == nil || res.Shown.ID != "c1" || res.Shown.PhoneMasked != want.PhoneMasked ||
		!res.Shown.ExpiresAt.Equal(want.ExpiresAt) || res.Shown.Sends != want.Sends || res.Shown.SessionHash != want.SessionHash ||
		res.Shown.Remaining() != want.Remaining() {
		t.Errorf("the refusal shows %+v (read %v), want what Challenge reads: %+v", res.Shown, res.ShownRead, want)
	}
	res, _ = ri.IssueFull(t.Context(), e.resendRequest("never-made", "222222", now))
	if !res.ShownRead || res.Shown != nil {
		t.Errorf("a refused resend of a challenge never made shows %+v (read %v), want none, read", res.Shown, res.ShownRead)
	}
	res, _ = ri.IssueFull(t.Context(), issueRequest(e.challenge("c2", "333333", now), now))
	if res.ShownRead || res.Shown != nil {
		t.Errorf("a refused first send shows %+v (read %v), want nothing read", res.Shown, res.ShownRead)
	}
}
