package caddymodule_test

// SECURITY.md rule 12 behind a proxy: the per-IP send limit counts Caddy's
// client IP, which behind trusted_proxies comes from X-Forwarded-For. A
// proxy that appends to the header (nginx's $proxy_add_x_forwarded_for)
// passes on whatever the client wrote to its left. Through a real Caddy,
// the limit holds with trusted_proxies_strict and is forged without it,
// which is why the start warns.

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
)

func TestPerIPLimitBehindAnAppendingProxy(t *testing.T) {
	c := siNewConfig(t)
	var rows strings.Builder
	for i := range 8 {
		fmt.Fprintf(&rows, "user%d,+8190111100%02d\n", i, i)
	}
	if err := os.WriteFile(c.phones, []byte(rows.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// The identity comes from the proxy too (headers_set_by trusted_proxy),
	// so every user is a request of the test's own, from 127.0.0.1.
	stepup := func(name string) string {
		return fmt.Sprintf("sms_stepup /settings* {\n%s\n}\nrespond \"ok\"",
			c.stepup(name, "identity {http.request.header.X-User}", "headers_set_by trusted_proxy", "limits {\n\tip 2\n}"))
	}
	strictPort, laxPort := siFreePort(t), siFreePort(t)
	strict := c.site("strict", strictPort, stepup("strict"))
	lax := c.site("lax", laxPort, stepup("lax"))
	marker := fmt.Sprintf("config-%d", itSeq.Add(1))
	c.site("main", itPorts.HTTP, "header X-It-Config "+marker+"\nrespond \"ok\"")
	c.global = fmt.Sprintf("\tservers 127.0.0.1:%d {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t\ttrusted_proxies_strict\n\t}\n"+
		"\tservers 127.0.0.1:%d {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}", strictPort, laxPort)
	c.load(marker)

	// send asks for a code for user as the appending proxy passes it on:
	// the client wrote forged, the proxy appended the address it saw.
	send := func(t *testing.T, e *itEnv, user, forged string) int {
		t.Helper()
		b := siIn(t, e).browser(user)
		b.header.Set("X-Forwarded-For", forged+", 198.51.100.7")
		f := b.stepUpPage("/settings")
		resp, _ := b.post("/_stepup/send", url.Values{"csrf": {f["csrf"]}, "r": {f["r"]}}, b.origin())
		return resp.StatusCode
	}
	sends := func(t *testing.T, e *itEnv, first int) []int {
		var got []int
		for i := first; i < first+3; i++ {
			got = append(got, send(t, e, fmt.Sprintf("user%d", i), fmt.Sprintf("203.0.113.%d", i)))
		}
		return got
	}

	t.Run("with trusted_proxies_strict the third user from one address is refused, whatever each wrote into X-Forwarded-For", func(t *testing.T) {
		got := sends(t, strict, 0)
		if want := []int{http.StatusSeeOther, http.StatusSeeOther, http.StatusTooManyRequests}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("sends answered %v, want %v", got, want)
		}
		if n := len(strict.messages()); n != 2 {
			t.Errorf("%d codes went out, want 2", n)
		}
	})

	t.Run("without trusted_proxies_strict each forged address counts as a client of its own: the limit is the client's to dodge", func(t *testing.T) {
		got := sends(t, lax, 4)
		if want := []int{http.StatusSeeOther, http.StatusSeeOther, http.StatusSeeOther}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("sends answered %v, want %v (if Caddy now reads from the right, the start-up warning is out of date)", got, want)
		}
	})

	t.Run("the start warns about the server without trusted_proxies_strict, once, and not about the strict one", func(t *testing.T) {
		var warned []string
		for _, m := range c.logEntries() {
			if msg, _ := m["msg"].(string); strings.Contains(msg, "without trusted_proxies_strict") {
				warned = append(warned, fmt.Sprint(m["listen"]))
			}
		}
		if want := fmt.Sprintf("[[127.0.0.1:%d]]", laxPort); fmt.Sprint(warned) != want {
			t.Errorf("warnings for the servers listening on %v, want %s", warned, want)
		}
	})
}
