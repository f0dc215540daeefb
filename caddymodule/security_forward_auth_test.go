package caddymodule_test

// SECURITY.md rule 29 when the auth service answers 2xx without the header
// identity reads (a service account, a user without the claim) and the
// client sends that header itself: through a real Caddy, with the stand-in
// for oauth2-proxy's /oauth2/auth of security_identity_test.go, once
// through Caddy's forward_auth and once through a copy that, as Caddy 2.10
// adapted copy_headers, leaves the client's header when the answer lacks
// it.

import (
	"fmt"
	"testing"
)

func TestForwardAuthAnswerWithoutTheHeader(t *testing.T) {
	auth, upstream := siAuth(t), siRecorder(t)
	c := siNewConfig(t)
	forwardAuth := func(copied string) string {
		return fmt.Sprintf("forward_auth %s {\n\turi /oauth2/auth\n\tcopy_headers %s\n}", auth, copied)
	}
	// The safe order, for sessions the auth service answers without the
	// header: Caddy's forward_auth removes the client's copy first.
	omitting := c.site("omitting", 0, fmt.Sprintf("%s\nsms_stepup /settings* {\n%s\n}\nreverse_proxy %s",
		forwardAuth("X-Auth-Request-User X-Auth-Request-Email"), c.stepup("omitting", "identity {http.request.header.X-Auth-Request-User}"), upstream))
	// forward_auth written out by hand as Caddy 2.10 adapted copy_headers
	// (before GHSA-7r4p-vjf4-gxv4): the header is set only when the answer
	// has it, and the client's is left otherwise.
	handwritten := c.site("handwritten", 0, fmt.Sprintf(`route {
	reverse_proxy %s {
		method GET
		rewrite /oauth2/auth
		@good status 2xx
		handle_response @good {
			@answered not vars {http.reverse_proxy.header.X-Auth-Request-User} ""
			request_header @answered X-Auth-Request-User {http.reverse_proxy.header.X-Auth-Request-User}
		}
	}
	sms_stepup /settings* {
%s
	}
	reverse_proxy %s
}`, auth, c.stepup("handwritten", "identity {http.request.header.X-Auth-Request-User}", "upstream_headers identity"), upstream))
	marker := fmt.Sprintf("config-%d", itSeq.Add(1))
	c.site("main", itPorts.HTTP, "header X-It-Config "+marker+"\nrespond \"ok\"")
	c.load(marker)

	t.Run("a header the auth answer omits and the client forges is removed by Caddy's forward_auth: no identity, no code", func(t *testing.T) {
		b := siIn(t, omitting).browser("")
		b.setCookie("_oauth2_proxy", "session-of-nameless-bob")
		b.header.Set("X-Auth-Request-User", "victim")
		siRefusesWithoutACode(t, b, "no_identity")
	})

	t.Run("a header the auth answer omits and the client forges is refused where the copy leaves the client's", func(t *testing.T) {
		b := siIn(t, handwritten).browser("")
		b.setCookie("_oauth2_proxy", "session-of-nameless-bob")
		b.header.Set("X-Auth-Request-User", "victim")
		siRefusesWithoutACode(t, b, "untrusted_identity")
		found := false
		for _, m := range c.logEntries() {
			found = found || (m["event"] == "untrusted_identity" && m["claimed_identity"] == "victim" && m["reason"] == "header_not_in_forward_auth_answer")
		}
		if !found {
			t.Error("no untrusted_identity audit entry names the claimed identity and the reason header_not_in_forward_auth_answer")
		}
	})

	t.Run("where the copy leaves the client's, a user the auth answer names still steps up, whatever header the client forges", func(t *testing.T) {
		b := siIn(t, handwritten).browser("")
		b.setCookie("_oauth2_proxy", "session-of-alice")
		b.header.Set("X-Auth-Request-User", "victim")
		b.stepUp("/settings")
		seen := siGet(t, b, "/settings")
		if got := seen.Header.Values("X-Stepup-Identity"); len(got) != 1 || got[0] != "alice" {
			t.Errorf("the upstream got X-Stepup-Identity %q, want alice", got)
		}
	})
}
