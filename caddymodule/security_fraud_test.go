package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecurityRule37_BlockedPopulationGetsNoSMS: once the fraud guard has
// blocked a prefix, no number in it gets an SMS, whoever asks, from
// wherever, by whatever way in; and nothing a user does lifts the block: not
// typing a code sent before it, not another account, IP or number of the
// prefix, not the JSON API.
func TestSecurityRule37_BlockedPopulationGetsNoSMS(t *testing.T) {
	dir := t.TempDir()
	var phones strings.Builder
	for i := range 8 {
		fmt.Fprintf(&phones, "sr33-%d,+8190123460%02d\n", i, i)
	}
	phoneFile := filepath.Join(dir, "phones.csv")
	if err := os.WriteFile(phoneFile, []byte(phones.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	e := itStart(t, itSite{Key: itKey, FraudGuard: true, Phones: phoneFile, Options: "\t\tfraud_guard {\n\t\t\tmin_sends 3\n\t\t}"})
	first := e.browser("sr33-0")
	fgSend(t, first)
	code := itCodeRE.FindStringSubmatch(e.messages()[0].Body)[1]
	fgSend(t, e.browser("sr33-1"))
	fgSend(t, e.browser("sr33-2")) // the third unverified send sets the block
	sent := len(e.messages())

	// The first user types the code that was sent before the block: it
	// verifies (it is theirs), and it lifts nothing.
	resp, body := first.verify("/settings", code)
	itWantRedirect(t, "a code sent before the block", resp, body, "/settings")
	for i, who := range []*itBrowser{first, e.browser("sr33-3"), e.browser("sr33-4")} {
		who.header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", 10+i))
		resp, body := rlSend(who)
		itWantStatus(t, "a send into the blocked prefix", resp, body, http.StatusTooManyRequests)
	}
	if status, body := sr33APISend(t, e.browser("sr33-5")); status != http.StatusTooManyRequests || !strings.Contains(body, `"error":"number_blocked"`) {
		t.Errorf("a JSON send into the blocked prefix: %d %s", status, itShort(body))
	}
	call := e.browser("sr33-6")
	f := call.stepUpPage("/settings")
	resp, body = call.post("/_stepup/call", url.Values{"csrf": {f["csrf"]}, "r": {f["r"]}}, call.origin())
	if resp.StatusCode < 400 {
		t.Errorf("a call into the blocked prefix: %d %s", resp.StatusCode, itShort(body))
	}
	if n := len(e.messages()); n != sent {
		t.Fatalf("%d messages went to the blocked prefix after its block", n-sent)
	}
}

// sr33APISend asks for a code through the JSON API, with the CSRF token
// its state gives.
func sr33APISend(t *testing.T, b *itBrowser) (int, string) {
	t.Helper()
	_, state := b.get("/_stepup/api/state")
	var st struct{ CSRF string }
	if err := json.Unmarshal([]byte(state), &st); err != nil || st.CSRF == "" {
		t.Fatalf("state without a csrf: %s", itShort(state))
	}
	req, err := http.NewRequest(http.MethodPost, b.e.base+"/_stepup/api/send", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "X-CSRF-Token": st.CSRF, "Origin": b.e.base, "X-User": b.user} {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}
