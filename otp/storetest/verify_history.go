package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// A verification's history entry sealed ahead and kept in the verification's
// own step (VerifyRequest.History). A store keeps it only where it keeps a
// send's entry in the send's step (ResultIssuer.KeepsHistoryInIssue); any
// other store must keep nothing of it and say so.

// prefixList is the history list alice's challenges name in these cases.
const prefixList = "the prefix's list"

// verifyAhead is alice's verification of id at now sealed ahead, for a
// challenge through gateway: each outcome's entry names it.
func verifyAhead(id, gateway string, now time.Time) *otp.VerifyHistory {
	return &otp.VerifyHistory{Lists: aheadLists, At: now, Retention: time.Hour,
		PhoneHash: phoneA, HistoryKey: prefixList, Gateway: gateway,
		OK: []byte(id + " ok"), Wrong: []byte(id + " wrong"), Exhausted: []byte(id + " exhausted")}
}

// listed is what each of alice's two lists holds, oldest first; both must
// hold the same.
func listed(t *testing.T, hs otp.HistoryStore, now time.Time) []string {
	t.Helper()
	var first []string
	for i, l := range aheadLists {
		items, err := hs.History(t.Context(), l.Key, time.Time{}, now, time.Hour, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range items {
			got = append(got, string(it.Data))
		}
		slices.Reverse(got)
		if i == 0 {
			first = got
		} else if !slices.Equal(got, first) {
			t.Fatalf("list %q holds %q, the identity's %q", l.Key, got, first)
		}
	}
	return first
}

func verifyKeepsEntryAhead(t *testing.T, e *env) {
	ri, hs := aheadStore(t, e)
	keeps := ri.KeepsHistoryInIssue()
	c := e.challenge("c1", "123456", t0)
	c.HistoryKey = prefixList
	req := issueRequest(c, t0)
	req.History = aheadRecord("c1", "c1 sent", "gw-a", t0)
	issued, err := ri.IssueFull(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	at := t0
	verify := func(id, code, gateway string) otp.VerifyResult {
		t.Helper()
		at = at.Add(time.Second)
		res, err := e.store.Verify(t.Context(), otp.VerifyRequest{Subject: alice, ChallengeID: id, SessionHash: sessionA,
			CodeMAC: e.mac(id, code), Now: at, Failures: failures, SealedSubject: sealed(alice), History: verifyAhead(id, gateway, at)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	var want []string
	if issued.HistoryKept { // in the send's step, or one after it
		want = append(want, "c1 sent")
	}
	steps := []struct {
		name, id, code, gateway string
		status                  otp.VerifyStatus
		kept                    string // the entry the step keeps where the store keeps any
	}{
		{"a wrong code", "c1", "000000", "gw-a", otp.VerifyWrong, "c1 wrong"},
		{"a wrong code sealed for another gateway", "c1", "000001", "gw-b", otp.VerifyWrong, ""},
		{"the right code", "c1", "123456", "gw-a", otp.VerifyOK, "c1 ok"},
		{"the same code again", "c1", "123456", "gw-a", otp.VerifyNotFound, ""},
	}
	for _, s := range steps {
		res := verify(s.id, s.code, s.gateway)
		if res.Status != s.status {
			t.Fatalf("%s: %v, want %v", s.name, res.Status, s.status)
		}
		if wantKept := keeps && s.kept != ""; res.HistoryKept != wantKept {
			t.Fatalf("%s: kept %v, want %v", s.name, res.HistoryKept, wantKept)
		}
		if res.HistoryKept {
			want = append(want, s.kept)
		}
		if got := listed(t, hs, at); !slices.Equal(got, want) {
			t.Fatalf("after %s the lists hold %q, want %q", s.name, got, want)
		}
	}
	// The last wrong code of a challenge keeps the entry of attempts
	// used up.
	c2 := e.challenge("c2", "123456", at)
	c2.HistoryKey, c2.MaxAttempts = prefixList, 1
	req = issueRequest(c2, at)
	req.History = aheadRecord("c2", "c2 sent", "gw-a", at)
	if issued, err = ri.IssueFull(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if issued.HistoryKept {
		want = append(want, "c2 sent")
	}
	if res := verify("c2", "000000", "gw-a"); res.Status != otp.VerifyExhausted || res.HistoryKept != keeps {
		t.Fatalf("the last wrong code: %v, kept %v; want attempts used up, kept %v", res.Status, res.HistoryKept, keeps)
	}
	if keeps {
		want = append(want, "c2 exhausted")
	}
	if got := listed(t, hs, at); !slices.Equal(got, want) {
		t.Fatalf("after the last wrong code the lists hold %q, want %q", got, want)
	}
}
