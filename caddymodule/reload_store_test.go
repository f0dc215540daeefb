package caddymodule_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
)

// TestReloadKeepsStoreState builds up every kind of state a store keeps (a
// step-up made, a challenge in flight, a spent send limit, a lock-out, an
// enrolled number), reloads Caddy with a changed config, and checks that
// each is still in force. The memory store keeps its state in the process
// across a reload; the Redis store keeps it on the server, and here the
// reload also changes its connection settings, so the new config has a
// pool of its own while the old one's is closed.
func TestReloadKeepsStoreState(t *testing.T) {
	t.Run("on the memory store", func(t *testing.T) {
		rlReload(t, func(int) string { return "" })
	})
	t.Run("on Redis", func(t *testing.T) {
		srv := redistest.Start(t)
		rlReload(t, func(n int) string {
			timeout := []string{"1s", "2s"}[n]
			return "store redis redis://" + srv.Addr + " {\n\t\t\tkey_prefix rl:\n\t\t\tcommand_timeout " + timeout + "\n\t\t}"
		})
	})
}

// rlReload runs the test with storeLine(0) before the reload and
// storeLine(1) after ("" is a memory store of the test's own).
func rlReload(t *testing.T, storeLine func(config int) string) {
	const enrolled, enrolledMasked = "+819055556666", "+81 90-****-6666"
	site := itSite{
		Global:    "\tstorage file_system " + t.TempDir(),
		StoreLine: storeLine(0),
		// Four sends from the test's one IP address spend the IP limit.
		Options: "\t\tservice_name ReloadOne\n\t\tenroll\n\t\tfailure_budget 2\n\t\tlimits {\n\t\t\tip 4\n\t\t}",
	}
	e := itStart(t, site, "rl-quinn", "rl-rita", "rl-nina", "rl-mo")

	quinn := e.browser("rl-quinn")
	quinn.stepUp("/settings") // send 1
	rita := e.browser("rl-rita")
	ritaCode := rita.send("/settings") // send 2
	nina := e.browser("rl-nina")
	ninaCode := nina.send("/settings") // send 3
	ninaChallenge := nina.cookie("stepup_challenge")
	ninaCSRF := nina.stepUpPage("/settings")["csrf"]
	locked := false
	for range 2 {
		if resp, _ := nina.verify("/settings", itWrongCode(ninaCode)); resp.StatusCode == http.StatusTooManyRequests {
			locked = true
		}
	}
	if !locked {
		t.Fatal("two wrong codes with failure_budget 2 did not lock rl-nina out")
	}
	olive := e.browser("rl-olive")
	if resp, body := ieEnrol(t, e, olive, "090-5555-6666", enrolled); resp.StatusCode != http.StatusSeeOther { // send 4
		t.Fatalf("enrolment before the reload: %d %s", resp.StatusCode, itShort(body))
	}
	mo := e.browser("rl-mo")
	sent := len(e.messages())
	if resp, body := rlSend(mo); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a fifth send from one IP with limits ip 4, before the reload: %d %s", resp.StatusCode, itShort(body))
	}

	site = e.site
	site.StoreLine = storeLine(1)
	site.Options = strings.Replace(site.Options, "ReloadOne", "ReloadTwo", 1)
	e.load(site)
	if _, body := rita.get("/_stepup/?r=%2Fsettings"); !strings.Contains(body, "ReloadTwo") {
		t.Fatalf("the new config is not in use: page does not name ReloadTwo:\n%s", itShort(body))
	}

	t.Run("a step-up made before the reload still passes", func(t *testing.T) {
		quinn.wantUpstream("/settings")
	})
	t.Run("a code sent before the reload verifies after it", func(t *testing.T) {
		resp, body := rita.verify("/settings", ritaCode)
		itWantRedirect(t, "verify after the reload", resp, body, "/settings")
		rita.wantUpstream("/settings")
	})
	t.Run("an identity locked out before the reload stays locked out", func(t *testing.T) {
		if resp, body := nina.get("/_stepup/?r=%2Fsettings"); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("step-up page of a locked-out identity after the reload: %d, want 429\n%s", resp.StatusCode, itShort(body))
		}
		// The lock-out page dropped the challenge cookie; the challenge
		// lives on, so put it back to try its right code.
		nina.setCookie("stepup_challenge", ninaChallenge)
		resp, body := nina.post("/_stepup/verify", url.Values{"csrf": {ninaCSRF}, "r": {"/settings"}, "code": {ninaCode}}, nina.origin())
		if resp.StatusCode != http.StatusTooManyRequests || itSetCookie(resp, "stepup") != nil {
			t.Fatalf("the right code of a locked-out identity after the reload: %d, want 429 and no cookie\n%s", resp.StatusCode, itShort(body))
		}
		nina.wantStepUp("/settings")
	})
	t.Run("a send limit spent before the reload still refuses, and nothing is sent", func(t *testing.T) {
		if resp, body := rlSend(mo); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("send after the reload with the IP limit spent: %d %s", resp.StatusCode, itShort(body))
		}
		if n := len(e.messages()); n != sent {
			t.Fatalf("%d messages sent after the limit was spent, want none", n-sent)
		}
	})
	t.Run("a number enrolled before the reload is still bound", func(t *testing.T) {
		_, body := e.browser("rl-olive").get("/_stepup/?r=%2Fsettings")
		if strings.Contains(body, `name="phone"`) || !strings.Contains(html.UnescapeString(body), enrolledMasked) {
			t.Fatalf("the step-up page should offer the enrolled number %s, not the enrolment form:\n%s", enrolledMasked, itShort(body))
		}
	})
}

// rlSend asks for a code from the step-up page, whatever the answer.
func rlSend(b *itBrowser) (*http.Response, string) {
	b.t.Helper()
	f := b.stepUpPage("/settings")
	return b.post("/_stepup/send", url.Values{"csrf": {f["csrf"]}, "r": {f["r"]}}, b.origin())
}
