package caddymodule_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestAdminHistoryOnMemoryStore steps a user up through a running Caddy
// (memory store) with a wrong code first, then reads the history through
// the admin API, by identity and by number prefix, as text and as JSON:
// the send and both verifications, the number masked, never in full.
func TestAdminHistoryOnMemoryStore(t *testing.T) {
	a := adStart(t, "\t\thistory_max 50", "hist-alice", "hist-bob")
	b := a.in(t).browser("hist-alice")
	b.wantStepUp("/settings")
	code := b.send("/settings")
	csrf := b.stepUpPage("/settings")["csrf"]
	adVerify(b, csrf, itWrongCode(code))
	resp, body := b.verify("/settings", code)
	itWantRedirect(t, "the right code", resp, body, "/settings")

	out := a.mustRun(t, "history", "hist-alice")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "history of hist-alice since ") || !strings.HasSuffix(lines[0], "newest first: 3 entries") {
		t.Fatalf("history hist-alice:\n%s", out)
	}
	for i, want := range []string{
		`verify\s+ok\s+\+81 90-\*\*\*\*-5678\s+challenge \S{8}\s+via console`,
		`verify\s+wrong_code\s+\+81 90-\*\*\*\*-5678\s+challenge \S{8}`,
		`send\s+sent\s+\+81 90-\*\*\*\*-5678\s+challenge \S{8}\s+via console`,
	} {
		if !regexp.MustCompile(`^20\S+Z\s+` + want).MatchString(lines[i+1]) {
			t.Errorf("line %d %q, want %s", i+1, lines[i+1], want)
		}
	}
	raw := a.mustRun(t, "history", "--prefix", "+81901234", "--since", "1h", "--json")
	var res struct {
		Prefix  string
		Entries []struct{ Event, Outcome, Identity, Phone string }
	}
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatal(err)
	}
	if res.Prefix != "+81901234" || len(res.Entries) != 3 || res.Entries[2].Event != "send" || res.Entries[2].Identity != "hist-alice" ||
		res.Entries[0].Outcome != "ok" || res.Entries[2].Phone != itMasked {
		t.Fatalf("history --prefix --json: %s", raw)
	}
	if strings.Contains(out+raw, "9012345678") || strings.Contains(out+raw, code) {
		t.Errorf("the history shows the full number or the code:\n%s\n%s", out, raw)
	}
	if out := a.mustRun(t, "history", "hist-bob"); !strings.HasSuffix(out, "newest first: 0 entries\n") {
		t.Errorf("history hist-bob: %q", out)
	}
	for _, args := range [][]string{{"history"}, {"history", "hist-alice", "--prefix", "+81901234"}, {"history", "--prefix", "819012"}} {
		if _, _, err := a.run(t, args...); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
}
