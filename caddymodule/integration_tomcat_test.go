package caddymodule_test

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/tomcattest"
)

// tcCaddyfile puts the plugin in front of a real Tomcat, protecting the
// paths its /admin/* and /settings/* servlets serve, as an operator would.
var tcCaddyfile = template.Must(template.New("Caddyfile").Parse(`{
	admin localhost:{{.Ports.Admin}}
	persist_config off
	http_port {{.Ports.HTTP}}
	https_port {{.Ports.HTTPS}}
	skip_install_trust
	grace_period 1ns
	default_bind 127.0.0.1
	servers {
		trusted_proxies static 127.0.0.1/32
	}
}

http://localhost:{{.Ports.HTTP}} {
	header X-It-Config {{.Marker}}
	sms_stepup /admin /admin/* /settings /settings/* {
		# The test client stands for a proxy in front that signs users in
		# and sets X-User.
		identity {http.request.header.X-User}
		headers_set_by trusted_proxy
		phone_file {{.Phones}}
		signing_key {{.Key}}
		store memory {{.Store}}
		gateway console {
			outbox {{.Outbox}}
		}
		upstream_headers identity
	}
	reverse_proxy {{.Tomcat}}
}
`))

// tcGet sends target byte for byte (Go's client would write a "\" as
// %5C) to base, as user when not empty.
func tcGet(t *testing.T, client *http.Client, base, user, target string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = target
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestTomcatUpstreamNeedsAStepUpForEveryReading runs real Caddy in front of
// a real Tomcat 10.1 (SECURITY.md rule 28). Each spelling below is served
// by Tomcat's /admin/* or /settings/* servlet when sent to Tomcat directly
// (checked first, so the test proves something); through the plugin each
// needs a step-up, and with one the servlet answers for the identity that
// stepped up. Spellings Tomcat itself refuses or serves elsewhere need a
// step-up all the same, since another upstream may read them as /admin.
func TestTomcatUpstreamNeedsAStepUpForEveryReading(t *testing.T) {
	itFreePorts(t)
	for _, c := range []struct {
		name           string
		allowBackslash bool
		served         map[string]string // path -> the servlet Tomcat serves it with
		stepUpOnly     []string
	}{
		{"on Tomcat's defaults", false, map[string]string{
			"/x/..;/admin":    "admin",
			"/;x/admin":       "admin",
			"/.;/admin":       "admin",
			"/x/..;/settings": "settings",
			"/x/%2e%2e/admin": "admin",
			"/admin;x=1":      "admin",
		}, []string{"/%C5%BFettings", "/settings/..%2F", "/ADMIN", "/Admin/", "/x/..%5Cadmin"}},
		{"with allowBackslash", true, map[string]string{
			"/x/..%5Cadmin":    "admin",
			`/x/..\admin`:      "admin",
			"/x/..%5csettings": "settings",
		}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			tomcat := tomcattest.Start(t, tomcattest.Options{AllowBackslash: c.allowBackslash})
			e := tcStart(t, tomcat.Addr, "tc-alice", "tc-mallory")

			for path, servlet := range c.served {
				// Sent as Caddy proxies it: Go's server takes a raw "\"
				// and reverse_proxy writes it as %5C (Tomcat refuses a
				// raw one).
				u, err := url.Parse(path)
				if err != nil {
					t.Fatal(err)
				}
				if _, body := tcGet(t, http.DefaultClient, tomcat.URL, "", u.EscapedPath()); !strings.HasPrefix(body, "servlet="+servlet+" ") {
					t.Fatalf("Tomcat asked directly for %s answered %q, not with its %s servlet: this test would prove nothing", u.EscapedPath(), itShort(body), servlet)
				}
			}

			mallory := e.browser("tc-mallory")
			for _, path := range append(c.stepUpOnly, slices.Collect(maps.Keys(c.served))...) {
				resp, body := tcGet(t, mallory.client, e.base, mallory.user, path)
				if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/_stepup/?r=") || strings.Contains(body, "servlet=") {
					t.Errorf("GET %s without a step-up: %d, Location %q, body %q; want a 303 to the step-up page", path, resp.StatusCode, resp.Header.Get("Location"), itShort(body))
				}
			}

			alice := e.browser("tc-alice")
			alice.stepUp("/admin")
			for path, servlet := range c.served {
				want := "servlet=" + servlet + " path=/" + servlet + " identity=tc-alice"
				if resp, body := tcGet(t, alice.client, e.base, alice.user, path); resp.StatusCode != http.StatusOK || body != want {
					t.Errorf("GET %s with a step-up: %d %q, want 200 %q", path, resp.StatusCode, itShort(body), want)
				}
			}

			for _, path := range []string{"/a;b", "/public/admin-guide", "/settingsX"} {
				resp, body := tcGet(t, mallory.client, e.base, mallory.user, path)
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "servlet=default ") {
					t.Errorf("GET %s (not protected): %d %q, want Tomcat's default servlet without a step-up", path, resp.StatusCode, itShort(body))
				}
			}
		})
	}
}

// tcStart loads a config proxying to the Tomcat at addr, for identities
// that all have itNumber.
func tcStart(t *testing.T, addr string, identities ...string) *itEnv {
	t.Helper()
	dir := t.TempDir()
	phones := filepath.Join(dir, "phones.csv")
	var lines strings.Builder
	for _, id := range identities {
		fmt.Fprintf(&lines, "%s,%s\n", id, itNumber)
	}
	if err := os.WriteFile(phones, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &itEnv{
		t:      t,
		tc:     caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: itPorts.Admin}),
		outbox: filepath.Join(dir, "outbox.jsonl"),
		base:   fmt.Sprintf("http://localhost:%d", itPorts.HTTP),
	}
	marker := fmt.Sprintf("config-%d", itSeq.Add(1))
	var cfg strings.Builder
	if err := tcCaddyfile.Execute(&cfg, map[string]any{
		"Ports": &itPorts, "Marker": marker, "Phones": phones, "Key": itKey,
		"Store": fmt.Sprintf("tc-%d-%d", os.Getpid(), itSeq.Add(1)), "Outbox": e.outbox, "Tomcat": addr,
	}); err != nil {
		t.Fatal(err)
	}
	e.tc.InitServer(cfg.String(), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	e.awaitConfig(marker)
	return e
}
