package caddymodule_test

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// These tests run the plugin inside a real Caddy (caddytest starts one in
// this process, once). Every test loads its own config into that Caddy, so
// they run one after the other; each uses its own memory store name and its
// own identities, because memory stores are shared process-wide by name.

const (
	itNumber  = "+819012345678"
	itMasked  = "+81 90-****-5678"
	itKey     = "integration-test-signing-key-0123456789abcdef"
	itIssuer  = "caddy-sms-stepup"
	itUpRoute = "upstream id="
)

// itPortSet is the ports of the one Caddy of this test binary, picked once.
type itPortSet struct {
	once                         sync.Once
	Admin, HTTP, HTTPS, Upstream int
	err                          error
}

var itPorts itPortSet

func itFreePorts(t *testing.T) {
	t.Helper()
	itPorts.once.Do(func() {
		var ls []net.Listener
		defer func() {
			for _, l := range ls {
				l.Close()
			}
		}()
		ports := make([]int, 4)
		for i := range ports {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				itPorts.err = err
				return
			}
			ls = append(ls, l)
			ports[i] = l.Addr().(*net.TCPAddr).Port
		}
		itPorts.Admin, itPorts.HTTP, itPorts.HTTPS, itPorts.Upstream = ports[0], ports[1], ports[2], ports[3]
	})
	if itPorts.err != nil {
		t.Fatalf("pick free ports: %v", itPorts.err)
	}
}

var itSeq atomic.Int64

// itSite is one test's Caddy config: a site on localhost whose
// /settings* and /account* need a step-up, in front of an upstream that
// echoes what it was told.
type itSite struct {
	Global   string // extra global options
	Before   string // site directives before sms_stepup (basic_auth, matchers)
	Args     string // what sms_stepup protects
	Identity string
	Options  string // extra sms_stepup options
	Key      string // signing_key; empty: the key kept in Caddy's storage
	Store    string
	Outbox   string
	Phones   string
	Marker   string // sent back as X-It-Config, to tell this config from the last
	Ports    *itPortSet

	// StoreLine, when set, replaces "store memory <Store>" (a redis store).
	StoreLine string
	// FraudGuard keeps the fraud guard on (Options may set it); without
	// it the tests, which send many unverified codes to one number, turn
	// it off.
	FraudGuard bool
}

var itCaddyfile = template.Must(template.New("Caddyfile").Parse(`{
	admin localhost:{{.Ports.Admin}}
	persist_config off
	http_port {{.Ports.HTTP}}
	https_port {{.Ports.HTTPS}}
	skip_install_trust
	grace_period 1ns
	default_bind 127.0.0.1
	# The test client stands for a proxy in front of Caddy that sets X-User
	# (headers_set_by trusted_proxy).
	servers {
		trusted_proxies static 127.0.0.1/32
	}
{{.Global}}
}

http://localhost:{{.Ports.HTTP}} {
	header X-It-Config {{.Marker}}
{{.Before}}
	sms_stepup {{.Args}} {
		identity {{.Identity}}
		headers_set_by trusted_proxy
		phone_file {{.Phones}}
{{- if .Key}}
		signing_key {{.Key}}
{{- end}}
{{- if .StoreLine}}
		{{.StoreLine}}
{{- else}}
		store memory {{.Store}}
{{- end}}
		gateway console {
			outbox {{.Outbox}}
		}
		# The tests send many codes to the same few numbers.
		limits {
			phone 1000
			prefix 1000
		}
{{- if not .FraudGuard}}
		# ... and leave many of them unverified, which is what the fraud
		# guard blocks; fraud_guard_test.go tests it with it on.
		fraud_guard off
{{- end}}
{{.Options}}
	}
	reverse_proxy 127.0.0.1:{{.Ports.Upstream}} {
		header_up X-Stepup-Identity {http.sms_stepup.identity}
		header_up X-Stepup-Verified-At {http.sms_stepup.verified_at}
	}
}

:{{.Ports.Upstream}} {
	bind 127.0.0.1
	respond "upstream id={http.request.header.X-Stepup-Identity} forged={http.request.header.X-Stepup-Forged} verified={http.request.header.X-Stepup-Verified-At}" 200
}
`))

// itEnv is one test's running config and its files.
type itEnv struct {
	t      *testing.T
	tc     *caddytest.Tester
	site   itSite
	outbox string
	base   string
}

// itStart writes the phone file (identity -> number), loads the config and
// returns the test's environment. Unset fields get defaults.
func itStart(t *testing.T, site itSite, identities ...string) *itEnv {
	t.Helper()
	itFreePorts(t)
	dir := t.TempDir()
	site.Ports = &itPorts
	if site.Args == "" {
		site.Args = "/settings* /account*"
	}
	if site.Identity == "" {
		site.Identity = "{http.request.header.X-User}"
	}
	if site.Store == "" {
		site.Store = fmt.Sprintf("it-%d-%d", os.Getpid(), itSeq.Add(1))
	}
	if site.Outbox == "" {
		site.Outbox = filepath.Join(dir, "outbox.jsonl")
	}
	if site.Phones == "" {
		site.Phones = filepath.Join(dir, "phones.csv")
		var b strings.Builder
		for _, id := range identities {
			fmt.Fprintf(&b, "%s,%s\n", id, itNumber)
		}
		if err := os.WriteFile(site.Phones, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := &itEnv{
		t:      t,
		tc:     caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: itPorts.Admin}),
		site:   site,
		outbox: site.Outbox,
		base:   fmt.Sprintf("http://localhost:%d", itPorts.HTTP),
	}
	e.load(site)
	return e
}

// load (re)loads the Caddyfile of site.
func (e *itEnv) load(site itSite) {
	e.t.Helper()
	site.Marker = fmt.Sprintf("config-%d", itSeq.Add(1))
	var b strings.Builder
	if err := itCaddyfile.Execute(&b, site); err != nil {
		e.t.Fatal(err)
	}
	e.tc.InitServer(b.String(), "caddyfile")
	if e.t.Failed() {
		e.t.FailNow()
	}
	e.site = site
	e.awaitConfig(site.Marker)
}

// awaitConfig waits until the site answers with the marker of the config
// just loaded, on several fresh connections in a row: caddytest only checks
// the admin API, and Caddy stops the old servers in the background, so for
// a moment an old server may still accept a connection and then drop it.
func (e *itEnv) awaitConfig(marker string) {
	e.t.Helper()
	client := e.browser("").client
	client.Transport.(*http.Transport).DisableKeepAlives = true
	deadline := time.Now().Add(10 * time.Second)
	for inARow := 0; inARow < 5; {
		if time.Now().After(deadline) {
			e.t.Fatalf("the site never answered steadily with config %s", marker)
		}
		resp, err := client.Get(e.base + "/")
		if err != nil {
			inARow = 0
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get("X-It-Config") == marker {
			inARow++
		} else {
			inARow = 0
		}
	}
}

// itMessage is one line of the console gateway's outbox.
type itMessage struct {
	To   string `json:"to"`
	Body string `json:"body"`
}

func (e *itEnv) messages() []itMessage {
	e.t.Helper()
	f, err := os.Open(e.outbox)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	var out []itMessage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m itMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			e.t.Fatalf("outbox line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

var itCodeRE = regexp.MustCompile(`code: (\d{6})\n`)

// lastCode is the code of the newest message, which must go to itNumber.
func (e *itEnv) lastCode() string {
	e.t.Helper()
	msgs := e.messages()
	if len(msgs) == 0 {
		e.t.Fatal("outbox is empty: no code was sent")
	}
	m := msgs[len(msgs)-1]
	if m.To != itNumber {
		e.t.Fatalf("message went to %q, want %q", m.To, itNumber)
	}
	sub := itCodeRE.FindStringSubmatch(m.Body)
	if sub == nil {
		e.t.Fatalf("no 6-digit code in message %q", m.Body)
	}
	return sub[1]
}

// itBrowser is one client with its own cookie jar that sees every redirect.
type itBrowser struct {
	t      *testing.T
	e      *itEnv
	jar    *cookiejar.Jar
	client *http.Client
	user   string      // sent as X-User when set
	basic  []string    // user, password for basic_auth
	header http.Header // sent with every request
}

func (e *itEnv) browser(user string) *itBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		// localhost may resolve to ::1 first; Caddy listens on 127.0.0.1.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		},
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &itBrowser{
		t:   e.t,
		e:   e,
		jar: jar,
		client: &http.Client{
			Jar:           jar,
			Transport:     tr,
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		user:   user,
		header: http.Header{},
	}
}

// do sends a request; form (when not nil) makes it a form POST. extra are
// "Name: value" headers. The body is read and closed.
func (b *itBrowser) do(method, target string, form url.Values, extra ...string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.base+target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range b.header {
		req.Header[k] = vs
	}
	if b.user != "" {
		req.Header.Set("X-User", b.user)
	}
	if b.basic != nil {
		req.SetBasicAuth(b.basic[0], b.basic[1])
	}
	for _, h := range extra {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	resp, err := b.client.Do(req)
	if err != nil && itDropped(err) {
		// An old server, stopping after a reload, took the connection and
		// closed it unread: send the request again, once.
		b.t.Logf("%s %s: %v; sending it again", method, target, err)
		if form != nil {
			req.Body = io.NopCloser(strings.NewReader(form.Encode()))
		}
		resp, err = b.client.Do(req)
	}
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, string(data)
}

// itDropped reports whether a request failed because the connection was
// closed before any response.
func itDropped(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func (b *itBrowser) get(target string, extra ...string) (*http.Response, string) {
	b.t.Helper()
	return b.do(http.MethodGet, target, nil, extra...)
}

func (b *itBrowser) post(target string, form url.Values, extra ...string) (*http.Response, string) {
	b.t.Helper()
	return b.do(http.MethodPost, target, form, extra...)
}

// cookie is the value of a cookie in the jar ("" if none).
func (b *itBrowser) cookie(name string) string {
	u, _ := url.Parse(b.e.base)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *itBrowser) setCookie(name, value string) {
	u, _ := url.Parse(b.e.base)
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

func (b *itBrowser) origin() string { return "Origin: " + b.e.base }

var itFieldRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)

// fields are the hidden fields of a page, unescaped.
func itFields(page string) map[string]string {
	out := map[string]string{}
	for _, m := range itFieldRE.FindAllStringSubmatch(page, -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

func itWantStatus(t *testing.T, what string, resp *http.Response, body string, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s: status %d, want %d; body:\n%s", what, resp.StatusCode, want, itShort(body))
	}
}

func itWantRedirect(t *testing.T, what string, resp *http.Response, body, location string) {
	t.Helper()
	itWantStatus(t, what, resp, body, http.StatusSeeOther)
	if got := resp.Header.Get("Location"); got != location {
		t.Fatalf("%s: Location %q, want %q", what, got, location)
	}
}

func itShort(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "..."
	}
	return s
}

// setCookie finds a Set-Cookie of the response by name.
func itSetCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// stepUpPage opens the step-up page for ret and returns its hidden fields.
func (b *itBrowser) stepUpPage(ret string) map[string]string {
	b.t.Helper()
	resp, body := b.get("/_stepup/?r=" + url.QueryEscape(ret))
	itWantStatus(b.t, "step-up page", resp, body, http.StatusOK)
	f := itFields(body)
	if f["csrf"] == "" {
		b.t.Fatalf("step-up page has no csrf field:\n%s", itShort(body))
	}
	return f
}

// send asks for a code from the page for ret and returns the code.
func (b *itBrowser) send(ret string) string {
	b.t.Helper()
	f := b.stepUpPage(ret)
	before := len(b.e.messages())
	resp, body := b.post("/_stepup/send", url.Values{"csrf": {f["csrf"]}, "r": {f["r"]}}, b.origin())
	itWantStatus(b.t, "send", resp, body, http.StatusSeeOther)
	if n := len(b.e.messages()); n != before+1 {
		b.t.Fatalf("send wrote %d messages, want 1", n-before)
	}
	return b.e.lastCode()
}

// verify posts a code from the code page for ret.
func (b *itBrowser) verify(ret, code string) (*http.Response, string) {
	b.t.Helper()
	f := b.stepUpPage(ret)
	return b.post("/_stepup/verify", url.Values{"csrf": {f["csrf"]}, "r": {f["r"]}, "code": {code}}, b.origin())
}

// stepUp walks the whole flow for path and returns the step-up token.
func (b *itBrowser) stepUp(path string) string {
	b.t.Helper()
	resp, body := b.get(path)
	itWantRedirect(b.t, "protected "+path, resp, body, "/_stepup/?r="+url.QueryEscape(path))
	code := b.send(path)
	resp, body = b.verify(path, code)
	itWantRedirect(b.t, "verify", resp, body, path)
	c := itSetCookie(resp, "stepup")
	if c == nil || c.Value == "" {
		b.t.Fatalf("verify set no step-up cookie; Set-Cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	return c.Value
}

// wantUpstream asserts that path reached the upstream and returns the
// upstream's echo.
func (b *itBrowser) wantUpstream(path string, extra ...string) string {
	b.t.Helper()
	resp, body := b.get(path, extra...)
	itWantStatus(b.t, "GET "+path, resp, body, http.StatusOK)
	if !strings.HasPrefix(body, itUpRoute) {
		b.t.Fatalf("GET %s: body %q is not the upstream's", path, itShort(body))
	}
	return body
}

// wantStepUp asserts that path is sent to the step-up page.
func (b *itBrowser) wantStepUp(path string, extra ...string) {
	b.t.Helper()
	resp, body := b.get(path, extra...)
	itWantRedirect(b.t, "GET "+path, resp, body, "/_stepup/?r="+url.QueryEscape(path))
	if strings.Contains(body, itUpRoute) {
		b.t.Fatalf("GET %s reached the upstream", path)
	}
}

func itWrongCode(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+1)%1000000)
}

func TestIntegration(t *testing.T) {
	t.Run("a protected page needs an SMS code and then reaches the upstream with the identity", func(t *testing.T) {
		hash, err := bcrypt.GenerateFromPassword([]byte("pw-happy"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		e := itStart(t, itSite{
			Before:   fmt.Sprintf("\tbasic_auth {\n\t\talice-happy %s\n\t}", hash),
			Identity: "{http.auth.user.id}",
			Key:      itKey,
		}, "alice-happy")
		b := e.browser("")
		b.basic = []string{"alice-happy", "pw-happy"}

		resp, body := b.get("/settings")
		itWantRedirect(t, "protected page", resp, body, "/_stepup/?r=%2Fsettings")

		resp, body = b.get("/_stepup/?r=%2Fsettings")
		itWantStatus(t, "step-up page", resp, body, http.StatusOK)
		page := html.UnescapeString(body)
		if !strings.Contains(page, itMasked) {
			t.Errorf("page does not show the masked number %s", itMasked)
		}
		if strings.Contains(page, "9012345678") {
			t.Error("page shows the full number")
		}
		f := itFields(body)
		if f["csrf"] == "" || f["r"] != "/settings" {
			t.Fatalf("page fields %v: want a csrf token and r=/settings", f)
		}
		for name, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("%s: %q, want %q", name, got, want)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("Content-Security-Policy %q", csp)
		}
		if b.cookie("stepup_csrf") == "" {
			t.Error("the page set no stepup_csrf cookie")
		}

		resp, body = b.get("/_stepup/send?r=%2Fsettings")
		itWantRedirect(t, "GET send", resp, body, "/_stepup/?r=%2Fsettings")
		if n := len(e.messages()); n != 0 {
			t.Fatalf("GET /_stepup/send wrote %d messages, want none", n)
		}

		resp, body = b.post("/_stepup/send", url.Values{"csrf": {f["csrf"]}, "r": {f["r"]}}, b.origin())
		itWantRedirect(t, "send", resp, body, "/_stepup/?r=%2Fsettings&m=sent&lang=en")
		msgs := e.messages()
		if len(msgs) != 1 {
			t.Fatalf("outbox has %d messages, want 1", len(msgs))
		}
		if msgs[0].To != itNumber {
			t.Errorf("message to %q, want %q", msgs[0].To, itNumber)
		}
		code := e.lastCode()
		ch := itSetCookie(resp, "stepup_challenge")
		if ch == nil || ch.Value == "" || !ch.HttpOnly || ch.SameSite != http.SameSiteStrictMode {
			t.Errorf("challenge cookie %+v: want a value, HttpOnly, SameSite=Strict", ch)
		}

		resp, body = b.get(resp.Header.Get("Location"))
		itWantStatus(t, "code page", resp, body, http.StatusOK)
		if !strings.Contains(body, `name="code"`) || !strings.Contains(body, `autocomplete="one-time-code"`) {
			t.Fatalf("code page has no one-time-code input:\n%s", itShort(body))
		}
		if !strings.Contains(body, "Code sent.") {
			t.Error("code page does not say the code was sent")
		}
		f = itFields(body)

		resp, body = b.post("/_stepup/verify", url.Values{"csrf": {f["csrf"]}, "r": {f["r"]}, "code": {code}}, b.origin())
		itWantRedirect(t, "verify", resp, body, "/settings")
		c := itSetCookie(resp, "stepup")
		switch {
		case c == nil:
			t.Fatalf("no stepup cookie; Set-Cookie: %q", resp.Header.Values("Set-Cookie"))
		case !c.HttpOnly, c.SameSite != http.SameSiteLaxMode, c.Path != "/", c.MaxAge != 900, c.Secure, c.Domain != "":
			t.Errorf("stepup cookie %q: want HttpOnly, SameSite=Lax, Path=/, Max-Age=900, no Secure, no Domain", c.Raw)
		}
		if ch := itSetCookie(resp, "stepup_challenge"); ch == nil || ch.MaxAge >= 0 {
			t.Errorf("verify did not delete the challenge cookie: %+v", ch)
		}

		echo := b.wantUpstream("/settings", "X-Stepup-Identity: mallory", "X-Stepup-Forged: mallory")
		if !strings.Contains(echo, "id=alice-happy ") {
			t.Errorf("upstream saw %q: want id=alice-happy", echo)
		}
		if !strings.Contains(echo, "forged= ") || strings.Contains(echo, "mallory") {
			t.Errorf("upstream saw %q: a client's X-Stepup-* header got through", echo)
		}
		if !regexp.MustCompile(`verified=\d{4}-\d\d-\d\dT`).MatchString(echo) {
			t.Errorf("upstream saw %q: want verified=<RFC 3339 time>", echo)
		}
	})

	t.Run("metrics of a flow appear on the admin endpoint", func(t *testing.T) {
		e := itStart(t, itSite{Key: itKey}, "mia-metrics")
		b := e.browser("mia-metrics")
		code := b.send("/settings")
		b.verify("/settings", itWrongCode(code))
		if resp, body := b.verify("/settings", code); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("verify: %d %s", resp.StatusCode, itShort(body))
		}
		resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", itPorts.Admin))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		metrics := string(raw)
		for _, want := range []string{
			`caddy_sms_stepup_sends_total{gateway="console",result="sent"}`,
			`caddy_sms_stepup_verifications_total{result="ok"}`,
			`caddy_sms_stepup_verifications_total{result="wrong_code"}`,
			`caddy_sms_stepup_gateway_latency_seconds_count{channel="sms",gateway="console"}`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if strings.Contains(metrics, "mia-metrics") || strings.Contains(metrics, "9012345678") {
			t.Error("a metric label carries an identity or a number")
		}
	})

	t.Run("unprotected routes pass untouched, without a redirect or a cookie", func(t *testing.T) {
		e := itStart(t, itSite{Key: itKey}, "carol-open")
		b := e.browser("carol-open")
		for _, path := range []string{"/", "/public", "/settingsx/../public", "/set", "/account-x/../public"} {
			resp, body := b.get(path, "X-Stepup-Forged: mallory")
			itWantStatus(t, "GET "+path, resp, body, http.StatusOK)
			if !strings.HasPrefix(body, itUpRoute) {
				t.Errorf("GET %s: body %q is not the upstream's", path, body)
			}
			if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("GET %s set cookies %q", path, sc)
			}
			if strings.Contains(body, "mallory") {
				t.Errorf("GET %s: a client's X-Stepup-* header reached the upstream: %q", path, body)
			}
			if !strings.Contains(body, "id= ") {
				t.Errorf("GET %s: the upstream's X-Stepup-Identity should be empty (no step-up, and never the placeholder's text): %q", path, body)
			}
		}
		// A positive control: the same config does protect /settings.
		b.wantStepUp("/settings")
	})

	t.Run("five wrong codes kill the challenge and the right code no longer works", func(t *testing.T) {
		e := itStart(t, itSite{Key: itKey}, "dave-wrong")
		b := e.browser("dave-wrong")
		code := b.send("/settings")
		challenge := b.cookie("stepup_challenge")
		wrong := itWrongCode(code)
		for left := 4; left >= 1; left-- {
			resp, body := b.verify("/settings", wrong)
			itWantStatus(t, "wrong code", resp, body, http.StatusUnprocessableEntity)
			want := fmt.Sprintf("%d attempts left", left)
			if left == 1 {
				want = "1 attempt left"
			}
			if !strings.Contains(body, want) {
				t.Fatalf("wrong code page does not say %q:\n%s", want, itShort(body))
			}
			if itSetCookie(resp, "stepup") != nil {
				t.Fatal("a wrong code set a step-up cookie")
			}
		}
		resp, body := b.verify("/settings", wrong)
		itWantStatus(t, "fifth wrong code", resp, body, http.StatusUnprocessableEntity)
		if !strings.Contains(body, "can no longer be used") {
			t.Fatalf("fifth wrong code: page does not say the code is dead:\n%s", itShort(body))
		}
		// The right code, even with the old challenge cookie put back.
		b.setCookie("stepup_challenge", challenge)
		resp, body = b.verify("/settings", code)
		itWantStatus(t, "right code after the lock-out", resp, body, http.StatusUnprocessableEntity)
		if itSetCookie(resp, "stepup") != nil {
			t.Fatal("the right code worked on a dead challenge")
		}
		b.wantStepUp("/settings")
	})

	t.Run("a code works only once", func(t *testing.T) {
		e := itStart(t, itSite{Key: itKey}, "erin-replay")
		b := e.browser("erin-replay")
		code := b.send("/settings")
		challenge := b.cookie("stepup_challenge")
		resp, body := b.verify("/settings", code)
		itWantRedirect(t, "first verify", resp, body, "/settings")

		replay := e.browser("erin-replay")
		replay.setCookie("stepup_challenge", challenge)
		resp, body = replay.verify("/settings", code)
		itWantStatus(t, "replayed code", resp, body, http.StatusUnprocessableEntity)
		if itSetCookie(resp, "stepup") != nil {
			t.Fatal("a replayed code set a step-up cookie")
		}
		replay.wantStepUp("/settings")
	})

	t.Run("parallel correct submissions yield exactly one step-up", func(t *testing.T) {
		e := itStart(t, itSite{Key: itKey}, "fay-race")
		b := e.browser("fay-race")
		code := b.send("/settings")
		f := b.stepUpPage("/settings")
		cookies := "stepup_csrf=" + b.cookie("stepup_csrf") + "; stepup_challenge=" + b.cookie("stepup_challenge")
		form := url.Values{"csrf": {f["csrf"]}, "r": {"/settings"}, "code": {code}}.Encode()
		const n = 16
		var wg sync.WaitGroup
		var ok, refused atomic.Int32
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, e.base+"/_stepup/verify", strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-User", "fay-race")
				req.Header.Set("Cookie", cookies)
				resp, err := b.client.Transport.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusSeeOther && itSetCookie(resp, "stepup") != nil:
					ok.Add(1)
				case resp.StatusCode == http.StatusUnprocessableEntity:
					refused.Add(1)
				default:
					t.Errorf("verify: status %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || refused.Load() != n-1 {
			t.Fatalf("%d step-ups and %d refusals from %d parallel correct submissions, want 1 and %d", ok.Load(), refused.Load(), n, n-1)
		}
	})

	t.Run("an immediate second send is refused with a cooldown and sends nothing", func(t *testing.T) {
		e := itStart(t, itSite{Key: itKey}, "gus-resend")
		b := e.browser("gus-resend")
		b.send("/settings")
		f := b.stepUpPage("/settings")
		resp, body := b.post("/_stepup/send", url.Values{"csrf": {f["csrf"]}, "r": {f["r"]}, "resend": {"1"}}, b.origin())
		itWantStatus(t, "second send", resp, body, http.StatusTooManyRequests)
		if !regexp.MustCompile(`Please wait \d+ seconds`).MatchString(body) {
			t.Errorf("second send: no cooldown message:\n%s", itShort(body))
		}
		if n := len(e.messages()); n != 1 {
			t.Fatalf("outbox has %d messages after a refused resend, want 1", n)
		}
	})

	t.Run("a form post without the right CSRF token or from another origin is refused", func(t *testing.T) {
		e := itStart(t, itSite{Key: itKey}, "hana-csrf")
		b := e.browser("hana-csrf")
		f := b.stepUpPage("/settings")
		good := f["csrf"]
		bad := "A" + good[1:]
		if bad == good {
			bad = "B" + good[1:]
		}
		stranger := e.browser("hana-csrf") // has the token but not the nonce cookie
		cases := []struct {
			name  string
			b     *itBrowser
			path  string
			form  url.Values
			extra []string
		}{
			{"no token", b, "/_stepup/send", url.Values{"r": {"/settings"}}, nil},
			{"a wrong token", b, "/_stepup/send", url.Values{"csrf": {bad}, "r": {"/settings"}}, nil},
			{"another origin", b, "/_stepup/send", url.Values{"csrf": {good}, "r": {"/settings"}}, []string{"Origin: https://evil.example"}},
			{"a cross-site fetch without Origin", b, "/_stepup/send", url.Values{"csrf": {good}, "r": {"/settings"}}, []string{"Sec-Fetch-Site: cross-site"}},
			{"a token without its nonce cookie", stranger, "/_stepup/send", url.Values{"csrf": {good}, "r": {"/settings"}}, nil},
			{"verify without a token", b, "/_stepup/verify", url.Values{"r": {"/settings"}, "code": {"123456"}}, nil},
		}
		for _, c := range cases {
			resp, body := c.b.post(c.path, c.form, c.extra...)
			itWantStatus(t, c.name, resp, body, http.StatusForbidden)
			if n := len(e.messages()); n != 0 {
				t.Fatalf("%s: outbox has %d messages, want none", c.name, n)
			}
		}
		// The same request with the right token and origin goes through.
		resp, body := b.post("/_stepup/send", url.Values{"csrf": {good}, "r": {"/settings"}}, b.origin())
		itWantStatus(t, "good token", resp, body, http.StatusSeeOther)
		if n := len(e.messages()); n != 1 {
			t.Fatalf("good token: outbox has %d messages, want 1", n)
		}
	})

	t.Run("return paths that leave the site become /", func(t *testing.T) {
		hostile := []string{
			"//evil.com",
			`/\evil.com`,
			"https://evil.com",
			"%2F%2Fevil.com",
			"/%2F%2Fevil.com",
			"/%2Fevil.com",
			"javascript:alert(1)",
			"/%0d%0aSet-Cookie:x",
			"/\r\nSet-Cookie:x",
		}
		var ids []string
		for i := range hostile {
			ids = append(ids, fmt.Sprintf("ivan-ret-%d", i))
		}
		ids = append(ids, "ivan-ret-ok")
		e := itStart(t, itSite{Key: itKey}, ids...)
		for i, r := range hostile {
			b := e.browser(ids[i])
			resp, body := b.get("/_stepup/?r=" + url.QueryEscape(r))
			itWantStatus(t, fmt.Sprintf("page for r=%q", r), resp, body, http.StatusOK)
			if f := itFields(body); f["r"] != "/" {
				t.Errorf("r=%q: hidden r is %q, want /", r, f["r"])
			}
			if page := html.UnescapeString(body); strings.Contains(page, "evil") || strings.Contains(page, "javascript:") || strings.Contains(page, "Set-Cookie") {
				t.Errorf("r=%q: the page carries the hostile value", r)
			}
			f := itFields(body)
			resp, body = b.post("/_stepup/send", url.Values{"csrf": {f["csrf"]}, "r": {r}}, b.origin())
			itWantRedirect(t, fmt.Sprintf("send with r=%q", r), resp, body, "/_stepup/?r=%2F&m=sent&lang=en")
			code := e.lastCode()
			resp, body = b.post("/_stepup/verify", url.Values{"csrf": {f["csrf"]}, "r": {r}, "code": {code}}, b.origin())
			itWantRedirect(t, fmt.Sprintf("verify with r=%q", r), resp, body, "/")
			if len(resp.Header.Values("X")) != 0 || itSetCookie(resp, "x") != nil {
				t.Errorf("r=%q: a header was injected", r)
			}
		}
		// A same-site path with a query is kept as it is.
		b := e.browser("ivan-ret-ok")
		code := b.send("/account?tab=phone")
		resp, body := b.verify("/account?tab=phone", code)
		itWantRedirect(t, "verify with a same-site path", resp, body, "/account?tab=phone")
	})

	t.Run("a step-up cookie passes only for its identity and untouched", func(t *testing.T) {
		e := itStart(t, itSite{Key: itKey}, "judy-token", "karl-token")
		judy := e.browser("judy-token")
		token := judy.stepUp("/settings")
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q is not a JWS", token)
		}
		var hdr map[string]any
		raw, err := base64.RawURLEncoding.DecodeString(parts[0])
		if err != nil || json.Unmarshal(raw, &hdr) != nil {
			t.Fatalf("token header %q: %v", parts[0], err)
		}
		if hdr["alg"] != "HS256" || hdr["typ"] != otp.TokenType || hdr["kid"] == "" {
			t.Fatalf("token header %v: want alg HS256, typ %s and a kid", hdr, otp.TokenType)
		}
		enc := func(v any) string {
			b, _ := json.Marshal(v)
			return base64.RawURLEncoding.EncodeToString(b)
		}
		sign := func(key []byte, signingInput string) string {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(signingInput))
			return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
		}
		var claims map[string]any
		raw, _ = base64.RawURLEncoding.DecodeString(parts[1])
		if err := json.Unmarshal(raw, &claims); err != nil {
			t.Fatal(err)
		}
		claims["sub"] = "karl-token"
		asKarl := enc(claims)

		flipped := []byte(parts[1])
		mid := len(flipped) / 2
		if flipped[mid] == 'A' {
			flipped[mid] = 'B'
		} else {
			flipped[mid] = 'A'
		}
		otherKeys, err := otp.DeriveKeys([]byte("another-signing-key-0123456789abcdefghij"))
		if err != nil {
			t.Fatal(err)
		}
		otherTokens, err := otp.NewTokens(otp.TokenConfig{Issuer: itIssuer, Audience: itIssuer, TTL: 15 * time.Minute, Keys: []*otp.Keys{otherKeys}})
		if err != nil {
			t.Fatal(err)
		}
		otherSigned, err := otherTokens.Issue("judy-token", "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		noneHdr := enc(map[string]any{"alg": "none", "typ": otp.TokenType, "kid": hdr["kid"]})

		cases := []struct {
			name, user, token string
		}{
			{"identity A's cookie presented by identity B", "karl-token", token},
			{"a payload with one character changed", "judy-token", parts[0] + "." + string(flipped) + "." + parts[2]},
			{"a payload re-encoded for identity B with A's signature", "karl-token", parts[0] + "." + asKarl + "." + parts[2]},
			{"alg none with an empty signature", "judy-token", noneHdr + "." + parts[1] + "."},
			{"alg none for identity B", "karl-token", noneHdr + "." + asKarl + "."},
			{"a token of another key with its own kid", "judy-token", otherSigned},
			{"the right kid signed with another key", "judy-token", parts[0] + "." + parts[1] + "." + sign([]byte("another-signing-key-0123456789abcdefghij"), parts[0]+"."+parts[1])},
			{"no signature", "judy-token", parts[0] + "." + parts[1] + "."},
		}
		for _, c := range cases {
			b := e.browser(c.user)
			b.setCookie("stepup", c.token)
			b.wantStepUp("/settings")
		}
		// A positive control: the genuine cookie in a fresh browser passes.
		fresh := e.browser("judy-token")
		fresh.setCookie("stepup", token)
		if echo := fresh.wantUpstream("/settings"); !strings.Contains(echo, "id=judy-token ") {
			t.Errorf("upstream saw %q", echo)
		}
	})

	t.Run("a step-up is bound to the application session", func(t *testing.T) {
		e := itStart(t, itSite{Key: itKey, Options: "\t\tsession {http.request.cookie.app_session}"}, "liam-session")
		b := e.browser("liam-session")
		b.setCookie("app_session", "session-A")
		b.stepUp("/settings")
		b.wantUpstream("/settings")
		b.setCookie("app_session", "session-B")
		b.wantStepUp("/settings")
		b.setCookie("app_session", "session-A")
		b.wantUpstream("/settings")
	})

	t.Run("JSON clients get 401 with an RFC 9470 challenge, never a redirect", func(t *testing.T) {
		e := itStart(t, itSite{Key: itKey}, "mia-json")
		b := e.browser("mia-json")
		for _, h := range []string{"Accept: application/json", "X-Requested-With: XMLHttpRequest", "Sec-Fetch-Mode: cors"} {
			resp, body := b.get("/settings", h)
			itWantStatus(t, h, resp, body, http.StatusUnauthorized)
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("%s: Location %q", h, loc)
			}
			wa := resp.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(wa, `Bearer error="insufficient_user_authentication"`) || !strings.Contains(wa, `max_age="900"`) {
				t.Errorf("%s: WWW-Authenticate %q", h, wa)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s: Content-Type %q", h, ct)
			}
			var doc struct {
				Error  string `json:"error"`
				MaxAge int    `json:"max_age"`
				URL    string `json:"step_up_url"`
			}
			if err := json.Unmarshal([]byte(body), &doc); err != nil {
				t.Fatalf("%s: body %q: %v", h, body, err)
			}
			if doc.Error != "insufficient_user_authentication" || doc.MaxAge != 900 || doc.URL != "/_stepup/?r=%2Fsettings" {
				t.Errorf("%s: body %+v", h, doc)
			}
		}
		// A browser navigating is still redirected.
		b.wantStepUp("/settings", "Accept: text/html,application/xhtml+xml,application/json;q=0.9")
	})

	t.Run("a request without identity gets 401 and never reaches the upstream", func(t *testing.T) {
		e := itStart(t, itSite{Key: itKey}, "nina-none")
		b := e.browser("")
		for _, path := range []string{"/settings", "/_stepup/?r=%2Fsettings"} {
			resp, body := b.get(path)
			itWantStatus(t, "GET "+path, resp, body, http.StatusUnauthorized)
			if strings.Contains(body, itUpRoute) {
				t.Fatalf("GET %s reached the upstream", path)
			}
			if !strings.Contains(body, "You need to sign in") {
				t.Errorf("GET %s: page does not ask to sign in:\n%s", path, itShort(body))
			}
		}
		resp, body := b.post("/_stepup/send", url.Values{"r": {"/settings"}})
		itWantStatus(t, "send without identity", resp, body, http.StatusUnauthorized)
		if n := len(e.messages()); n != 0 {
			t.Fatalf("outbox has %d messages, want none", n)
		}
		resp, body = b.get("/settings", "Accept: application/json")
		itWantStatus(t, "JSON without identity", resp, body, http.StatusUnauthorized)
		if !strings.Contains(body, `"error"`) {
			t.Errorf("JSON without identity: body %q", body)
		}
	})

	t.Run("a named matcher protects what it matches and the pages still work", func(t *testing.T) {
		e := itStart(t, itSite{
			Key:    itKey,
			Before: "\t@sensitive {\n\t\tpath /admin/*\n\t\tmethod GET POST\n\t}",
			Args:   "@sensitive",
		}, "olga-matcher")
		b := e.browser("olga-matcher")
		b.wantUpstream("/settings")
		b.wantUpstream("/public")
		b.stepUp("/admin/users")
		if echo := b.wantUpstream("/admin/users"); !strings.Contains(echo, "id=olga-matcher ") {
			t.Errorf("upstream saw %q", echo)
		}
	})

	t.Run("a JSON config protects its routes and serves the pages", func(t *testing.T) {
		itFreePorts(t)
		dir := t.TempDir()
		phones := filepath.Join(dir, "phones.csv")
		if err := os.WriteFile(phones, []byte("pia-json,"+itNumber+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		outbox := filepath.Join(dir, "outbox.jsonl")
		marker := fmt.Sprintf("config-%d", itSeq.Add(1))
		cfg := map[string]any{
			"admin": map[string]any{"listen": fmt.Sprintf("localhost:%d", itPorts.Admin), "config": map[string]any{"persist": false}},
			"apps": map[string]any{
				"http": map[string]any{
					"http_port":    itPorts.HTTP,
					"https_port":   itPorts.HTTPS,
					"grace_period": 1,
					"servers": map[string]any{
						"site": map[string]any{
							"listen":          []string{fmt.Sprintf("127.0.0.1:%d", itPorts.HTTP)},
							"automatic_https": map[string]any{"disable": true},
							"trusted_proxies": map[string]any{"source": "static", "ranges": []string{"127.0.0.1/32"}},
							"routes": []any{map[string]any{
								"handle": []any{
									map[string]any{"handler": "headers", "response": map[string]any{"set": map[string]any{"X-It-Config": []string{marker}}}},
									map[string]any{
										"handler":        "sms_stepup",
										"protect":        []any{map[string]any{"path": []string{"/settings*"}}},
										"identity":       "{http.request.header.X-User}",
										"headers_set_by": "trusted_proxy",
										"phone_file":     phones,
										"signing_key":    itKey,
										"store":          map[string]any{"type": "memory", "name": fmt.Sprintf("it-json-%d", itSeq.Add(1))},
										"gateway":        map[string]any{"type": "console", "outbox": outbox},
									},
									map[string]any{
										"handler":   "reverse_proxy",
										"upstreams": []any{map[string]any{"dial": fmt.Sprintf("127.0.0.1:%d", itPorts.Upstream)}},
										"headers": map[string]any{"request": map[string]any{"set": map[string]any{
											"X-Stepup-Identity": []string{"{http.sms_stepup.identity}"},
										}}},
									},
								},
							}},
						},
						"upstream": map[string]any{
							"listen":          []string{fmt.Sprintf("127.0.0.1:%d", itPorts.Upstream)},
							"automatic_https": map[string]any{"disable": true},
							"routes": []any{map[string]any{"handle": []any{map[string]any{
								"handler":     "static_response",
								"status_code": 200,
								"body":        "upstream id={http.request.header.X-Stepup-Identity} forged={http.request.header.X-Stepup-Forged}",
							}}}},
						},
					},
				},
			},
		}
		raw, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e := &itEnv{
			t:      t,
			tc:     caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: itPorts.Admin}),
			outbox: outbox,
			base:   fmt.Sprintf("http://localhost:%d", itPorts.HTTP),
		}
		e.tc.InitServer(string(raw), "json")
		if t.Failed() {
			t.FailNow()
		}
		e.awaitConfig(marker)
		b := e.browser("pia-json")
		b.wantUpstream("/public")
		b.stepUp("/settings/profile")
		if echo := b.wantUpstream("/settings/profile", "X-Stepup-Identity: mallory"); !strings.Contains(echo, "id=pia-json ") {
			t.Errorf("upstream saw %q", echo)
		}
	})

	t.Run("a config reload keeps challenges in flight and step-ups already made", func(t *testing.T) {
		storage := t.TempDir()
		site := itSite{
			Global:  "\tstorage file_system " + storage,
			Options: "\t\tservice_name ReloadOne",
		}
		e := itStart(t, site, "quinn-before", "rita-during")
		quinn := e.browser("quinn-before")
		quinn.stepUp("/settings")
		rita := e.browser("rita-during")
		code := rita.send("/settings")
		if _, err := os.Stat(filepath.Join(storage, "sms_stepup", "signing_key")); err != nil {
			t.Fatalf("no signing key kept in Caddy's storage: %v", err)
		}

		site = e.site
		site.Options = "\t\tservice_name ReloadTwo"
		e.load(site)
		_, body := rita.get("/_stepup/?r=%2Fsettings")
		if !strings.Contains(body, "ReloadTwo") {
			t.Fatalf("the new config is not in use: page does not name ReloadTwo:\n%s", itShort(body))
		}

		quinn.wantUpstream("/settings")
		resp, body := rita.verify("/settings", code)
		itWantRedirect(t, "verify after the reload", resp, body, "/settings")
		rita.wantUpstream("/settings")
	})

	t.Run("logs name each send with a masked number and never carry the code", func(t *testing.T) {
		dir := t.TempDir()
		logFile := filepath.Join(dir, "caddy.log")
		accessLog := filepath.Join(dir, "access.log")
		e := itStart(t, itSite{
			Key:    itKey,
			Global: fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tformat json\n\t\tlevel DEBUG\n\t}", logFile),
			Before: fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tformat json\n\t}", accessLog),
		}, "sam-logs")
		b := e.browser("sam-logs")
		token := b.stepUp("/settings")
		code := e.lastCode()
		b.wantUpstream("/settings")

		var sent, verified int
		for _, file := range []string{logFile, accessLog} {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) == 0 {
				t.Fatalf("%s is empty", file)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				for _, secret := range []string{code, token, "9012345678", "90-1234-5678"} {
					if strings.Contains(line, secret) {
						t.Errorf("%s: a line carries %q: %s", filepath.Base(file), secret, line)
					}
				}
				var entry map[string]any
				if err := json.Unmarshal([]byte(line), &entry); err != nil {
					t.Fatalf("%s: not JSON: %s", file, line)
				}
				switch entry["msg"] {
				case "code sent":
					sent++
					if entry["phone"] != itMasked || entry["event"] != "send" || entry["identity"] != "sam-logs" {
						t.Errorf("code sent entry %v: want phone %s, event send, identity sam-logs", entry, itMasked)
					}
				case "step-up verified":
					verified++
				}
			}
		}
		if sent != 1 || verified != 1 {
			t.Errorf("logs have %d \"code sent\" and %d \"step-up verified\" entries, want 1 and 1", sent, verified)
		}
	})
}
