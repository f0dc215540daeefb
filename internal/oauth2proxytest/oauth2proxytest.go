// Package oauth2proxytest starts a real oauth2-proxy for tests, signing
// users in through an OpenID Connect provider that runs in the test process
// (github.com/oauth2-proxy/mockoidc), each on a free loopback port, stopped
// when the test ends.
//
// oauth2-proxy is built once with `go install` into the user cache
// directory, so later runs start at once (scripts/deps builds it ahead).
// When it is missing and can't be built (no Go module proxy, say) the test
// is skipped, except under CI=true, where a missing component is a failure.
package oauth2proxytest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

// The oauth2-proxy the tests run. scripts/deps builds the same version into
// the same directory; change both together.
const (
	Module  = "github.com/oauth2-proxy/oauth2-proxy/v7"
	Version = "v7.15.6"
)

// Provider is an OpenID Connect provider running in the test process. It
// approves every sign-in at once, as mockoidc.DefaultUser unless a test
// queued another user with QueueUser for the next sign-in.
type Provider struct {
	*mockoidc.MockOIDC
}

// StartProvider runs an OIDC provider on a free loopback port until the
// test ends. Its issuer URL is Issuer(): http://127.0.0.1:port/oidc.
func StartProvider(t testing.TB) *Provider {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return &Provider{m}
}

// LargeClaim is a claim value (say a MockUser's Address) that makes the
// session too large for one cookie, so oauth2-proxy splits it into
// _oauth2_proxy_0, _oauth2_proxy_1, ... It is random, since oauth2-proxy
// compresses the session: a long repeated string would still fit.
func LargeClaim(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4<<10)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Options say how to run oauth2-proxy.
type Options struct {
	// Config is the path of an oauth2-proxy config file, run as written
	// except for what the fields below set.
	Config string
	// Provider is the OIDC provider users sign in with.
	Provider *Provider
	// Site is the base URL browsers reach oauth2-proxy's /oauth2/ pages
	// through (a Caddy site, say http://localhost:8080): the OIDC callback
	// is Site/oauth2/callback, and redirects after sign-in may go to its
	// host:port. An http:// Site makes the session cookie non-Secure.
	// Empty, browsers talk to oauth2-proxy directly.
	Site string
}

// Proxy is a running oauth2-proxy.
type Proxy struct {
	// Addr is host:port on loopback; URL is http://Addr.
	Addr, URL string
	// proc is the process, for its log when a test fails.
	proc *testproc.Process
}

// Start runs oauth2-proxy with a copy of the config file in a temporary
// directory, listening on a free loopback port, and returns once it
// answers. It is stopped at the test's cleanup.
//
// The provider's client secret and a fresh cookie secret are passed in the
// environment (OAUTH2_PROXY_CLIENT_SECRET, OAUTH2_PROXY_COOKIE_SECRET), as
// examples/oauth2-proxy.cfg tells operators to pass them; addresses are
// flags, which take precedence over the config file.
func Start(t testing.TB, opts Options) *Proxy {
	t.Helper()
	bin := Binary(t)
	config := copyConfig(t, opts.Config)
	port := freePort(t)
	p := &Proxy{Addr: "127.0.0.1:" + strconv.Itoa(port)}
	p.URL = "http://" + p.Addr
	if opts.Site == "" {
		opts.Site = p.URL
	}
	site, err := url.Parse(opts.Site)
	if err != nil || site.Host == "" {
		t.Fatalf("oauth2proxytest: Site %q: expected a base URL such as http://localhost:8080", opts.Site)
	}

	cmd := exec.Command(bin, "--config", config,
		"--http-address", p.Addr,
		"--oidc-issuer-url", opts.Provider.Issuer(),
		"--client-id", opts.Provider.ClientID,
		"--redirect-url", opts.Site+"/oauth2/callback",
		"--whitelist-domain", site.Host,
		"--cookie-secure="+strconv.FormatBool(site.Scheme == "https"),
	)
	cmd.Env = append(os.Environ(),
		"OAUTH2_PROXY_CLIENT_SECRET="+opts.Provider.ClientSecret,
		"OAUTH2_PROXY_COOKIE_SECRET="+cookieSecret(t),
	)
	// Its last line before serving; it prints none once it serves.
	proc, err := testproc.Start(cmd, "Cookie settings:", 30*time.Second)
	if err != nil {
		t.Fatalf("oauth2-proxy on %s: %v", p.Addr, err)
	}
	p.proc = proc
	t.Cleanup(proc.Stop)
	if err := p.awaitPing(30 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, proc.Output())
	}
	return p
}

// Output is everything oauth2-proxy printed so far, for a failing test.
func (p *Proxy) Output() string { return p.proc.Output() }

// awaitPing polls /ping until it answers 200: the cookie settings are
// printed before the socket is bound.
func (p *Proxy) awaitPing(within time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(within)
	for {
		resp, err := client.Get(p.URL + "/ping")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("oauth2-proxy on %s did not answer /ping within %s: %w", p.Addr, within, err)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// copyConfig copies the config file into the test's temporary directory,
// so the process reads a file the test owns.
func copyConfig(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("oauth2proxytest: config: %v", err)
	}
	copied := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(copied, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return copied
}

// cookieSecret is 32 random bytes, URL-safe base64: what oauth2-proxy
// takes as an AES-256 key.
func cookieSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.URLEncoding.EncodeToString(b)
}

// buildOnce keeps the test binary's parallel tests from building twice.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

// Binary is the path of the oauth2-proxy binary, built into the cache when
// it is not there. It skips the test (fails it under CI=true) when it can't
// be built.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { buildOnce.path, buildOnce.err = build() })
	if buildOnce.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("oauth2-proxy %s: %v: CI must build it (scripts/deps)", Version, buildOnce.err)
		}
		t.Skipf("oauth2-proxy %s: %v; run `make deps` to build it", Version, buildOnce.err)
	}
	return buildOnce.path
}

// CacheDir is where the binary is kept: under the user cache directory,
// named for the version, so an upgrade builds anew.
func CacheDir() string {
	root, err := os.UserCacheDir()
	if err != nil {
		root = os.TempDir()
	}
	return filepath.Join(root, "caddy-sms-stepup", "oauth2-proxy-"+Version)
}

// build returns the cached binary, or builds it with go install into a
// directory of its own and renames it into place, so another test binary
// building at the same time never runs half a file.
func build() (string, error) {
	dir := CacheDir()
	bin := filepath.Join(dir, "oauth2-proxy")
	if info, err := os.Stat(bin); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
		return bin, nil
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("not built, and no go command to build it: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(goTool, "install", Module+"@"+Version)
	// Outside any module, and without the caller's GOFLAGS (-mod=...),
	// which go install of a versioned module refuses.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %v\n%s", Module, Version, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "oauth2-proxy"), bin); err != nil {
		return "", err
	}
	return bin, nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
