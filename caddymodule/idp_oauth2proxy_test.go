package caddymodule_test

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/oauth2proxytest"
)

// opGlobal is what the test puts before examples/oauth2-proxy.Caddyfile:
// the ports of this test binary's Caddy, on plain http.
const opGlobal = `{
	admin localhost:%d
	persist_config off
	http_port %d
	https_port %d
	skip_install_trust
	grace_period 1ns
	default_bind 127.0.0.1
}

`

// The users of the test, each a `sub` at the provider; phones.csv gives
// each itNumber.
var (
	opAlice = &mockoidc.MockUser{Subject: "op-alice-sub", Email: "alice@example.com", EmailVerified: true}
	opBob   = &mockoidc.MockUser{Subject: "op-bob-sub", Email: "bob@example.com", EmailVerified: true}
)

// TestOAuth2ProxyExample runs examples/oauth2-proxy.Caddyfile and
// examples/oauth2-proxy.cfg as written (only addresses, paths, secrets and
// the store's name changed, and a header added that tells this config from
// the last) with a real oauth2-proxy, an OIDC provider and a
// small app: users sign in through the provider, step up by SMS, and reach
// the app; a step-up ends with the sign-in it was made in, whether the
// session cookie is whole or split.
func TestOAuth2ProxyExample(t *testing.T) {
	itFreePorts(t)
	t.Setenv("STEPUP_SIGNING_KEY", itKey) // the example reads {env.STEPUP_SIGNING_KEY}
	idp := oauth2proxytest.StartProvider(t)
	base := fmt.Sprintf("http://localhost:%d", itPorts.HTTP)
	proxy := oauth2proxytest.Start(t, oauth2proxytest.Options{Config: "../examples/oauth2-proxy.cfg", Provider: idp, Site: base})
	app := opApp(t)
	carol := &mockoidc.MockUser{Subject: "op-carol-sub", Email: "carol@example.com", EmailVerified: true, Address: oauth2proxytest.LargeClaim(t)}
	e := opStart(t, proxy.Addr, app.Listener.Addr().String(), opAlice.Subject, opBob.Subject, carol.Subject)
	defer func() {
		if t.Failed() {
			t.Logf("oauth2-proxy's log:\n%s", proxy.Output())
		}
	}()

	b := e.browser("")
	// The later cases use alice's step-up from the first.
	var aliceSession, aliceStepUp string
	if !t.Run("a user signs in through the provider, steps up and reaches the app", func(t *testing.T) {
		resp, body := opSignIn(t, b, idp, opAlice, "/settings")
		itWantStatus(t, "after sign-in", resp, body, http.StatusOK)
		if resp.Request.URL.Path != "/_stepup/" || resp.Request.URL.Query().Get("r") != "/settings" || !strings.Contains(html.UnescapeString(body), itMasked) {
			t.Fatalf("after sign-in: at %s, want the step-up page for /settings showing %s", resp.Request.URL, itMasked)
		}
		aliceSession = b.cookie("_oauth2_proxy")
		aliceStepUp = opStepUp(t, b, "/settings")
		opWantApp(t, b, "/settings", opAlice)
	}) {
		return
	}

	t.Run("signing in again, as the same user, ends the step-up of the last sign-in", func(t *testing.T) {
		opSignOut(t, b)
		b.setCookie("stepup", aliceStepUp)
		if resp, body := b.get("/settings"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/oauth2/sign_in?") {
			t.Fatalf("signed out, with the step-up cookie: %d, Location %q, %q; want a 302 to sign in", resp.StatusCode, resp.Header.Get("Location"), itShort(body))
		}
		resp, body := opSignIn(t, b, idp, opAlice, "/settings")
		if b.cookie("_oauth2_proxy") == aliceSession || b.cookie("_oauth2_proxy") == "" {
			t.Fatal("the new sign-in has the old session cookie (or none): this test would prove nothing")
		}
		if resp.Request.URL.Path != "/_stepup/" || strings.Contains(body, "app path=") {
			t.Fatalf("after signing in again with the last sign-in's step-up: at %s, %q; want the step-up page", resp.Request.URL, itShort(body))
		}
	})

	t.Run("another user signing in where the first user stepped up can't use that step-up", func(t *testing.T) {
		c := e.browser("")
		c.setCookie("stepup", aliceStepUp)
		resp, body := opSignIn(t, c, idp, opBob, "/settings")
		if resp.Request.URL.Path != "/_stepup/" || strings.Contains(body, "app path=") {
			t.Fatalf("bob with alice's step-up: at %s, %q; want the step-up page", resp.Request.URL, itShort(body))
		}
		opStepUp(t, c, "/settings")
		opWantApp(t, c, "/settings", opBob)
	})

	t.Run("a session split into _oauth2_proxy_0, _1, ... binds the step-up too", func(t *testing.T) {
		c := e.browser("")
		opSignIn(t, c, idp, carol, "/settings")
		if c.cookie("_oauth2_proxy_0") == "" || c.cookie("_oauth2_proxy_1") == "" || c.cookie("_oauth2_proxy") != "" {
			t.Fatal("carol's session cookie is not split: this test would prove nothing")
		}
		first := c.cookie("_oauth2_proxy_0") + c.cookie("_oauth2_proxy_1")
		carolStepUp := opStepUp(t, c, "/settings")
		opWantApp(t, c, "/settings", carol)

		opSignOut(t, c)
		c.setCookie("stepup", carolStepUp)
		resp, body := opSignIn(t, c, idp, carol, "/settings")
		if c.cookie("_oauth2_proxy_0")+c.cookie("_oauth2_proxy_1") == first {
			t.Fatal("the new sign-in has the old session cookies: this test would prove nothing")
		}
		if resp.Request.URL.Path != "/_stepup/" || strings.Contains(body, "app path=") {
			t.Fatalf("carol signed in again with the last sign-in's step-up: at %s, %q; want the step-up page", resp.Request.URL, itShort(body))
		}
	})
}

// opApp is the app behind the example: it echoes what it was told.
func opApp(t *testing.T) *httptest.Server {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app path=%s user=%s email=%s stepup=%s", r.URL.Path,
			r.Header.Get("X-Auth-Request-User"), r.Header.Get("X-Auth-Request-Email"), r.Header.Get("X-Stepup-Identity"))
	}))
	t.Cleanup(app.Close)
	return app
}

// opStart loads examples/oauth2-proxy.Caddyfile with oauth2-proxy at
// proxy, the app at app, and each identity's number itNumber.
func opStart(t *testing.T, proxy, app string, identities ...string) *itEnv {
	t.Helper()
	example, err := os.ReadFile("../examples/oauth2-proxy.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
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
	cfg := string(example)
	for _, r := range []struct{ old, new string }{
		{"app.example.com {", e.base + " {\n\theader X-It-Config " + marker},
		{"127.0.0.1:4180", proxy},
		{"127.0.0.1:8080", app},
		{"/etc/caddy/phones.csv", phones},
		{"/var/log/caddy/sms-outbox.jsonl", e.outbox},
		{"store memory\n", fmt.Sprintf("store memory op-%d-%d\n", os.Getpid(), itSeq.Add(1))},
	} {
		if !strings.Contains(cfg, r.old) {
			t.Fatalf("examples/oauth2-proxy.Caddyfile has no %q to change for the test", r.old)
		}
		cfg = strings.ReplaceAll(cfg, r.old, r.new)
	}
	e.tc.InitServer(fmt.Sprintf(opGlobal, itPorts.Admin, itPorts.HTTP, itPorts.HTTPS)+cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	e.awaitConfig(marker)
	return e
}

// opSignIn signs user in at the provider, starting from path on the site
// and following every redirect as a browser would: Caddy sends the browser
// to oauth2-proxy's sign-in, oauth2-proxy to the provider, the provider
// back to oauth2-proxy's callback, and that back to path. It checks that
// the browser went that way and returns the last response.
func opSignIn(t *testing.T, b *itBrowser, idp *oauth2proxytest.Provider, user *mockoidc.MockUser, path string) (*http.Response, string) {
	t.Helper()
	idp.QueueUser(user)
	var visited []string
	client := *b.client
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		visited = append(visited, req.URL.Path)
		if len(via) > 10 {
			return fmt.Errorf("more than 10 redirects: %v", visited)
		}
		return nil
	}
	resp, err := client.Get(b.e.base + path)
	if err != nil {
		t.Fatalf("sign-in from %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !opInOrder(visited, "/oauth2/sign_in", "/oidc/authorize", "/oauth2/callback", path) {
		t.Fatalf("sign-in went %v, not through oauth2-proxy's sign-in, the provider, the callback and back to %s", visited, path)
	}
	return resp, string(body)
}

// opInOrder reports whether visited has each of paths, in that order.
func opInOrder(visited []string, paths ...string) bool {
	for _, v := range visited {
		if len(paths) > 0 && v == paths[0] {
			paths = paths[1:]
		}
	}
	return len(paths) == 0
}

// opSignOut signs out at oauth2-proxy, which clears its session cookie.
func opSignOut(t *testing.T, b *itBrowser) {
	t.Helper()
	resp, body := b.get("/oauth2/sign_out")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("sign-out: %d %q, want 302", resp.StatusCode, itShort(body))
	}
	if b.cookie("_oauth2_proxy") != "" || b.cookie("_oauth2_proxy_0") != "" {
		t.Fatal("sign-out left the session cookie")
	}
}

// opStepUp sends and verifies a code from the step-up page for path, and
// returns the step-up cookie.
func opStepUp(t *testing.T, b *itBrowser, path string) string {
	t.Helper()
	code := b.send(path)
	resp, body := b.verify(path, code)
	itWantRedirect(t, "verify", resp, body, path)
	token := b.cookie("stepup")
	if token == "" {
		t.Fatal("verify set no step-up cookie")
	}
	return token
}

// opWantApp asserts that path reaches the app as user, with the headers
// oauth2-proxy and the plugin set.
func opWantApp(t *testing.T, b *itBrowser, path string, user *mockoidc.MockUser) {
	t.Helper()
	resp, body := b.get(path)
	want := fmt.Sprintf("app path=%s user=%s email=%s stepup=%s", path, user.Subject, user.Email, user.Subject)
	if resp.StatusCode != http.StatusOK || body != want {
		t.Fatalf("GET %s: %d %q, want 200 %q", path, resp.StatusCode, itShort(body), want)
	}
}
