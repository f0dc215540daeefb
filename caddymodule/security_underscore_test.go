package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/fcgi"
	"strings"
	"testing"
)

// siFastCGI is a FastCGI application on a free loopback port that answers
// every request with the request headers it was given, as JSON (siSeen).
// A FastCGI (or CGI, WSGI, Rack) application reads headers from
// HTTP_* variables, where Caddy's fastcgi transport writes both "-" and
// "_" in a header name as "_".
func siFastCGI(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go fcgi.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(siSeen{Header: r.Header})
	}))
	return l.Addr().String()
}

// SECURITY.md rule 21 through a real Caddy to a FastCGI upstream (the
// php_fastcgi set-up): a client's X_Stepup_* or X.Stepup.* header arrives
// there as the same HTTP_X_STEPUP_* variable as the plugin's X-Stepup-*,
// so the client would speak for the step-up (Puma's CVE-2024-45614 is this
// attack on X-Forwarded-For). Caddy drops such names by default, but not
// those an operator lets through for the application
// (expected_underscore_headers, expected_dot_headers, here "x_*" and
// "x.*"): the plugin removes them itself.
func TestUnderscoreSpellingsCannotForgeStepupHeaders(t *testing.T) {
	upstream := siFastCGI(t)
	c := siNewConfig(t)
	c.global = "\tservers {\n\t\texpected_underscore_headers x_*\n\t\texpected_dot_headers x.*\n\t}"
	marker := fmt.Sprintf("config-%d", itSeq.Add(1))
	e := c.site("fcgi", itPorts.HTTP, fmt.Sprintf(`header X-It-Config %s
%s
sms_stepup /admin* {
%s
}
reverse_proxy %s {
	transport fastcgi
}`, marker, siBasic(t, "pw-fcgi"), c.stepup("fcgi", "identity {http.auth.user.id}", "upstream_headers identity"), upstream))
	c.load(marker)
	b := e.browser("")
	b.basic = []string{"alice", "pw-fcgi"}
	b.stepUp("/admin/users")

	seen := siGet(t, b, "/public", "X_Custom_Header: kept")
	if got := seen.Header.Get("X-Custom-Header"); got != "kept" {
		t.Fatalf("the allowlist let no underscore header through (got %q): the test shows nothing", got)
	}
	forged := []string{"X_Stepup_Identity: mallory", "X_Stepup_Verified_At: 2099-01-01T00:00:00Z",
		"x_stepup_token: forged", "X.Stepup.Auth.Time: 4102444800", "X_STEPUP_ADMIN: true"}
	for _, path := range []string{"/admin/users", "/public"} {
		for range 8 { // Caddy writes the variables from a map: a forged value would win some of the time
			seen := siGet(t, b, path, forged...)
			for name, values := range seen.Header {
				if !strings.HasPrefix(strings.ToLower(name), "x-stepup-") {
					continue
				}
				if name != "X-Stepup-Identity" || len(values) != 1 || values[0] != "alice" || path != "/admin/users" {
					t.Fatalf("GET %s: the FastCGI upstream got %s %q, a value the client sent", path, name, values)
				}
			}
		}
	}
}
