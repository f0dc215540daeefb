package caddymodule_test

// SECURITY.md rule 29 (the identity comes from a step the client cannot
// skip; a configured session that comes out empty fails closed; client-sent
// X-Stepup-* is removed from headers and trailers), and rule 21 with two
// sms_stepup handlers in one site. Each test runs a real Caddy (caddytest,
// in this process, one config at a time like the other integration tests),
// a stand-in for oauth2-proxy's /oauth2/auth and an upstream that records
// the headers and trailers it receives.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/crypto/bcrypt"
)

const (
	siAliceNumber  = itNumber // the signed-in user's phone
	siVictimNumber = "+819087654321"
	siVictimMasked = "+81 90-****-4321"
)

// siSeen is what the recording upstream received.
type siSeen struct {
	Header  http.Header `json:"header"`
	Trailer http.Header `json:"trailer"`
	Body    string      `json:"body"`
}

// siRecorder is an upstream that reads each request's body to its end (so
// that its trailers arrive) and answers 200 with what it received, as JSON.
func siRecorder(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(siSeen{Header: r.Header, Trailer: r.Trailer, Body: string(body)})
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// siAuth stands in for oauth2-proxy's /oauth2/auth: 202 with the user in
// X-Auth-Request-User for a request with the session cookie
// _oauth2_proxy=session-of-<user>, 401 for any other. A user named
// nameless-* is answered 202 with the e-mail only, as a provider answers
// for a service account or a user without the claim.
func siAuth(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("_oauth2_proxy")
		user, ok := "", false
		if err == nil {
			user, ok = strings.CutPrefix(c.Value, "session-of-")
		}
		if r.URL.Path != "/oauth2/auth" || !ok || user == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if !strings.HasPrefix(user, "nameless-") {
			w.Header().Set("X-Auth-Request-User", user)
		}
		w.Header().Set("X-Auth-Request-Email", user+"@example.com")
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// siPortsGiven are the ports siFreePort has handed out in this process.
var siPortsGiven = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// siFreePort is a loopback port nothing listens on, and one it has not
// handed out before nor itFreePorts picked: the system may give a port
// just closed again, and two sites on one port make the config ambiguous.
func siFreePort(t *testing.T) int {
	t.Helper()
	siPortsGiven.Lock()
	defer siPortsGiven.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !siPortsGiven.m[port] && !slices.Contains([]int{itPorts.Admin, itPorts.HTTP, itPorts.HTTPS, itPorts.Upstream}, port) {
			siPortsGiven.m[port] = true
			return port
		}
	}
	t.Fatal("no free port that was not handed out before")
	return 0
}

// siConfig builds one Caddy config of several sites, each an sms_stepup
// set-up with its own store and outbox, sharing the phone file and the
// signing key.
type siConfig struct {
	t      *testing.T
	dir    string
	phones string
	log    string
	global string
	sites  strings.Builder
	envs   map[string]*itEnv
}

func siNewConfig(t *testing.T) *siConfig {
	t.Helper()
	itFreePorts(t)
	dir := t.TempDir()
	c := &siConfig{t: t, dir: dir, phones: filepath.Join(dir, "phones.csv"), log: filepath.Join(dir, "caddy.log"), envs: map[string]*itEnv{}}
	lines := "alice," + siAliceNumber + "\nvictim," + siVictimNumber + "\n"
	if err := os.WriteFile(c.phones, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// stepup is the body of an sms_stepup block for the site name, with extra
// options.
func (c *siConfig) stepup(name string, extra ...string) string {
	lines := []string{
		"phone_file " + c.phones,
		"signing_key " + itKey,
		"gateway console {\n\toutbox " + filepath.Join(c.dir, name+".jsonl") + "\n}",
	}
	if !slices.ContainsFunc(extra, func(l string) bool { return strings.HasPrefix(l, "store ") }) {
		lines = append(lines, fmt.Sprintf("store memory si-%s-%d-%d", name, os.Getpid(), itSeq.Add(1)))
	}
	return strings.Join(append(extra, lines...), "\n")
}

// site adds a site on port (a fresh one when 0) named name, whose body is
// body, and returns the environment its browsers use.
func (c *siConfig) site(name string, port int, body string) *itEnv {
	if port == 0 {
		port = siFreePort(c.t)
	}
	fmt.Fprintf(&c.sites, "\nhttp://localhost:%d {\n%s\n}\n", port, body)
	e := &itEnv{t: c.t, outbox: filepath.Join(c.dir, name+".jsonl"), base: fmt.Sprintf("http://localhost:%d", port)}
	c.envs[name] = e
	return e
}

// load loads the config, waiting until the site on itPorts.HTTP (which
// must send the X-It-Config header marker) answers with it.
func (c *siConfig) load(marker string) {
	c.t.Helper()
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
	http_port %d
	https_port %d
	skip_install_trust
	grace_period 1ns
	default_bind 127.0.0.1
	log {
		output file %s
		format json
	}
%s
}
`, itPorts.Admin, itPorts.HTTP, itPorts.HTTPS, c.log, c.global) + c.sites.String()
	tc := caddytest.NewTester(c.t).WithDefaultOverrides(caddytest.Config{AdminPort: itPorts.Admin})
	tc.InitServer(cfg, "caddyfile")
	if c.t.Failed() {
		c.t.FailNow()
	}
	for _, e := range c.envs {
		e.tc = tc
	}
	main := &itEnv{t: c.t, tc: tc, base: fmt.Sprintf("http://localhost:%d", itPorts.HTTP)}
	main.awaitConfig(marker)
}

// logEntries are the JSON lines of Caddy's log so far.
func (c *siConfig) logEntries() []map[string]any {
	c.t.Helper()
	raw, err := os.ReadFile(c.log)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// siIn is e for subtest t.
func siIn(t *testing.T, e *itEnv) *itEnv {
	c := *e
	c.t = t
	return &c
}

// siBasic returns a basic_auth block for alice with password pw.
func siBasic(t *testing.T, pw string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("basic_auth {\n\talice %s\n}", hash)
}

// siRefusesWithoutACode asserts that b gets 401 with the error key on a
// protected page (browser and JSON), on the step-up page (which must not
// show where a code would go) and on a send, and that no code went out.
func siRefusesWithoutACode(t *testing.T, b *itBrowser, key string) {
	t.Helper()
	resp, body := b.get("/settings")
	itWantStatus(t, "a protected page", resp, body, http.StatusUnauthorized)
	resp, body = b.get("/settings", "Accept: application/json")
	itWantStatus(t, "a protected page asked for JSON", resp, body, http.StatusUnauthorized)
	if !strings.Contains(body, `"error":"`+key+`"`) {
		t.Errorf("JSON refusal %s: want error %q", itShort(body), key)
	}
	resp, body = b.get("/_stepup/?r=%2Fsettings")
	itWantStatus(t, "the step-up page", resp, body, http.StatusUnauthorized)
	if strings.Contains(body, "****") {
		t.Errorf("the refused step-up page shows a masked number:\n%s", itShort(body))
	}
	resp, body = b.post("/_stepup/send", url.Values{"csrf": {"any"}, "r": {"/settings"}}, b.origin())
	itWantStatus(t, "a send", resp, body, http.StatusUnauthorized)
	if msgs := b.e.messages(); len(msgs) != 0 {
		t.Fatalf("%d codes went out, the first to %s", len(msgs), msgs[0].To)
	}
}

// siGet asks the site for path and returns the recording upstream's record.
func siGet(t *testing.T, b *itBrowser, path string, extra ...string) siSeen {
	t.Helper()
	resp, body := b.get(path, extra...)
	itWantStatus(t, "GET "+path, resp, body, http.StatusOK)
	var seen siSeen
	if err := json.Unmarshal([]byte(body), &seen); err != nil {
		t.Fatalf("GET %s: %q is not the upstream's record: %v", path, itShort(body), err)
	}
	return seen
}

// siStepupFields are the fields of h (headers or trailers) named X-Stepup-*
// in any case.
func siStepupFields(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-stepup-") {
			out[k] = v
		}
	}
	return out
}

func TestSecurityRule29_IdentityFromAStepTheClientCannotSkip(t *testing.T) {
	auth, upstream := siAuth(t), siRecorder(t)
	c := siNewConfig(t)
	forwardAuth := func(copied string) string {
		return fmt.Sprintf("forward_auth %s {\n\turi /oauth2/auth\n\tcopy_headers %s\n}", auth, copied)
	}
	oauth2 := fmt.Sprintf("handle /oauth2/* {\n\treverse_proxy %s\n}", auth)

	// oauth2-proxy's recipe with sms_stepup added at site level: the
	// directive order runs it before the handle block's forward_auth.
	unsafe := c.site("unsafe", 0, fmt.Sprintf("sms_stepup /settings* {\n%s\n}\n%s\nhandle {\n%s\nreverse_proxy %s\n}",
		c.stepup("unsafe", "identity {http.request.header.X-Auth-Request-User}"), oauth2, forwardAuth("X-Auth-Request-User X-Auth-Request-Email"), upstream))
	// The safe order: sms_stepup in forward_auth's route, after it.
	safe := c.site("safe", 0, fmt.Sprintf("%s\nhandle {\n%s\nsms_stepup /settings* {\n%s\n}\nreverse_proxy %s\n}",
		oauth2, forwardAuth("X-Auth-Request-User X-Auth-Request-Email"),
		c.stepup("safe", "identity {http.request.header.X-Auth-Request-User}", "upstream_headers identity"), upstream))
	// The safe order, but copy_headers forgets the header identity reads.
	uncopied := c.site("uncopied", 0, fmt.Sprintf("%s\nsms_stepup /settings* {\n%s\n}\nreverse_proxy %s",
		forwardAuth("X-Auth-Request-Email"), c.stepup("uncopied", "identity {http.request.header.X-Auth-Request-User}"), upstream))
	// No authentication at all.
	noAuth := c.site("noauth", 0, fmt.Sprintf("sms_stepup /settings* {\n%s\n}\nreverse_proxy %s",
		c.stepup("noauth", "identity {http.request.header.X-User}", "phone {http.request.header.X-Phone}"), upstream))
	// headers_set_by trusted_proxy on a server whose trusted_proxies do
	// not include the client, and on one whose do.
	untrustedPeer := c.site("untrustedpeer", 0, fmt.Sprintf("sms_stepup /settings* {\n%s\n}\nreverse_proxy %s",
		c.stepup("untrustedpeer", "identity {http.request.header.X-User}", "headers_set_by trusted_proxy"), upstream))
	trustedPort := siFreePort(t)
	trustedPeer := c.site("trustedpeer", trustedPort, fmt.Sprintf("sms_stepup /settings* {\n%s\n}\nreverse_proxy %s",
		c.stepup("trustedpeer", "identity {http.request.header.X-User}", "headers_set_by trusted_proxy"), upstream))
	c.global = fmt.Sprintf("\tservers 127.0.0.1:%d {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n\tservers {\n\t\ttrusted_proxies static 192.0.2.0/24\n\t}", trustedPort)
	// Sessions: a session cookie, and oauth2-proxy's, which it splits.
	session := c.site("session", 0, fmt.Sprintf("%s\nsms_stepup /settings* {\n%s\n}\nreverse_proxy %s",
		siBasic(t, "pw-session"), c.stepup("session", "identity {http.auth.user.id}", "session {http.request.cookie.app_session}"), upstream))
	split := c.site("split", 0, fmt.Sprintf("%s\nsms_stepup /settings* {\n%s\n}\nreverse_proxy %s",
		siBasic(t, "pw-split"), c.stepup("split", "identity {http.auth.user.id}", "session_cookie _oauth2_proxy"), upstream))
	// Trailers, on the port awaitConfig watches.
	marker := fmt.Sprintf("config-%d", itSeq.Add(1))
	c.site("trailers", itPorts.HTTP, fmt.Sprintf("header X-It-Config %s\nsms_stepup /settings* {\n%s\n}\nreverse_proxy %s",
		marker, c.stepup("trailers", "identity {http.auth.user.id}"), upstream))
	c.load(marker)

	t.Run("a forged X-Auth-Request-User gets no code to the victim when sms_stepup runs before forward_auth", func(t *testing.T) {
		b := siIn(t, unsafe).browser("")
		b.header.Set("X-Auth-Request-User", "victim")
		siRefusesWithoutACode(t, b, "untrusted_identity")
		found := false
		for _, m := range c.logEntries() {
			found = found || (m["event"] == "untrusted_identity" && m["claimed_identity"] == "victim" && m["reason"] == "forward_auth_not_before")
		}
		if !found {
			t.Error("no untrusted_identity audit entry names the claimed identity and the reason")
		}
	})

	t.Run("a signed-in user is refused too when sms_stepup runs before forward_auth, rather than trusted by luck", func(t *testing.T) {
		b := siIn(t, unsafe).browser("")
		b.setCookie("_oauth2_proxy", "session-of-alice")
		b.header.Set("X-Auth-Request-User", "alice")
		siRefusesWithoutACode(t, b, "untrusted_identity")
	})

	t.Run("forward_auth before sms_stepup in one route steps up the signed-in user, whatever header the client forges", func(t *testing.T) {
		e := siIn(t, safe)
		b := e.browser("")
		b.setCookie("_oauth2_proxy", "session-of-alice")
		b.header.Set("X-Auth-Request-User", "victim")
		b.stepUp("/settings") // the code goes to alice's number (lastCode checks)
		seen := siGet(t, b, "/settings")
		if got := seen.Header.Values("X-Stepup-Identity"); len(got) != 1 || got[0] != "alice" {
			t.Errorf("the upstream got X-Stepup-Identity %q, want alice", got)
		}
		if got := seen.Header.Values("X-Auth-Request-User"); len(got) != 1 || got[0] != "alice" {
			t.Errorf("the upstream got X-Auth-Request-User %q, want forward_auth's alice", got)
		}
	})

	t.Run("without a session the auth service refuses and sms_stepup never answers", func(t *testing.T) {
		e := siIn(t, safe)
		before := len(e.messages())
		b := e.browser("")
		b.header.Set("X-Auth-Request-User", "victim")
		resp, body := b.get("/_stepup/?r=%2Fsettings")
		itWantStatus(t, "the step-up page", resp, body, http.StatusUnauthorized)
		if strings.Contains(body, siVictimMasked) {
			t.Error("the page shows the victim's masked number")
		}
		resp, body = b.post("/_stepup/send", url.Values{"csrf": {"any"}, "r": {"/settings"}}, b.origin())
		itWantStatus(t, "a send", resp, body, http.StatusUnauthorized)
		if n := len(e.messages()); n != before {
			t.Errorf("%d codes went out", n-before)
		}
	})

	t.Run("a forged header that forward_auth does not copy is refused when the auth answer names another user", func(t *testing.T) {
		b := siIn(t, uncopied).browser("")
		b.setCookie("_oauth2_proxy", "session-of-alice")
		b.header.Set("X-Auth-Request-User", "victim")
		siRefusesWithoutACode(t, b, "untrusted_identity")
	})

	t.Run("an identity and a phone from raw headers with no authentication are refused", func(t *testing.T) {
		b := siIn(t, noAuth).browser("victim") // sends X-User: victim
		b.header.Set("X-Phone", "+819011112222")
		siRefusesWithoutACode(t, b, "untrusted_identity")
	})

	t.Run("headers_set_by trusted_proxy refuses a peer outside trusted_proxies", func(t *testing.T) {
		siRefusesWithoutACode(t, siIn(t, untrustedPeer).browser("victim"), "untrusted_identity")
	})

	t.Run("headers_set_by trusted_proxy believes a peer in trusted_proxies", func(t *testing.T) {
		b := siIn(t, trustedPeer).browser("alice")
		b.stepUp("/settings")
		siGet(t, b, "/settings")
	})

	t.Run("the start-up log warns of every request header identity and phone read, naming the fix", func(t *testing.T) {
		want := map[string]string{ // header: what the warning must say
			"X-Auth-Request-User": "copy_headers X-Auth-Request-User",
			"X-Phone":             "forward_auth",
			"X-User":              "trusted_proxies",
		}
		for _, m := range c.logEntries() {
			header, _ := m["header"].(string)
			msg, _ := m["msg"].(string)
			if m["level"] != "warn" || m["logger"] != "http.handlers.sms_stepup" || want[header] == "" {
				continue
			}
			if strings.Contains(msg, "any client can send") && strings.Contains(msg, want[header]) && strings.Contains(msg, "refused") {
				delete(want, header)
			}
		}
		for header, says := range want {
			t.Errorf("no start-up warning about %s that says %q", header, says)
		}
	})

	t.Run("a configured session that is absent refuses the step-up and sends no code", func(t *testing.T) {
		b := siIn(t, session).browser("")
		b.basic = []string{"alice", "pw-session"}
		siRefusesWithoutACode(t, b, "session_missing")
		resp, body := b.get("/settings")
		if !strings.Contains(body, "Sign in again") {
			t.Errorf("the refusal (%d) does not ask to sign in again:\n%s", resp.StatusCode, itShort(body))
		}
	})

	t.Run("a step-up does not pass once its session cookie is gone", func(t *testing.T) {
		b := siIn(t, session).browser("")
		b.basic = []string{"alice", "pw-session"}
		b.setCookie("app_session", "s-1")
		b.stepUp("/settings")
		siGet(t, b, "/settings")
		u, _ := url.Parse(b.e.base)
		b.jar.SetCookies(u, []*http.Cookie{{Name: "app_session", Path: "/", MaxAge: -1}})
		resp, body := b.get("/settings")
		itWantStatus(t, "the protected page without the session cookie", resp, body, http.StatusUnauthorized)
	})

	t.Run("a session split into _oauth2_proxy_0 and _oauth2_proxy_1 is bound whole through session_cookie", func(t *testing.T) {
		b := siIn(t, split).browser("")
		b.basic = []string{"alice", "pw-split"}
		b.setCookie("_oauth2_proxy_0", "first-half")
		b.setCookie("_oauth2_proxy_1", "second-half")
		b.stepUp("/settings")
		siGet(t, b, "/settings")
		b.setCookie("_oauth2_proxy_1", "another-second-half")
		b.wantStepUp("/settings")
		b.setCookie("_oauth2_proxy_1", "second-half")
		siGet(t, b, "/settings")
	})

	t.Run("a split session without its first part is no session", func(t *testing.T) {
		b := siIn(t, split).browser("")
		b.basic = []string{"alice", "pw-split"}
		b.setCookie("_oauth2_proxy_1", "second-half")
		resp, body := b.get("/settings")
		itWantStatus(t, "a protected page", resp, body, http.StatusUnauthorized)
	})

	for _, tc := range []struct {
		name     string
		head     []string // extra request headers
		trailers []string
	}{
		{"a declared X-Stepup-Identity trailer", []string{"Trailer: X-Stepup-Identity"}, []string{"X-Stepup-Identity: mallory"}},
		{"an undeclared x-stepup-identity trailer after a declared one", []string{"Trailer: X-Checksum"}, []string{"X-Checksum: sum-1", "x-stepup-identity: mallory"}},
		{"a declared X-STEPUP-TOKEN trailer in capitals", []string{"Trailer: X-STEPUP-TOKEN"}, []string{"X-STEPUP-TOKEN: forged.token.value"}},
		{"an X-Stepup-Verified-At trailer with no Trailer header", nil, []string{"X-Stepup-Verified-At: 2099-01-01T00:00:00Z"}},
	} {
		t.Run(tc.name+" never reaches the upstream", func(t *testing.T) {
			seen := siChunked(t, itPorts.HTTP, tc.head, "hello", tc.trailers)
			if f := siStepupFields(seen.Header); len(f) != 0 {
				t.Errorf("the upstream got the headers %v", f)
			}
			if f := siStepupFields(seen.Trailer); len(f) != 0 {
				t.Errorf("the upstream got the trailers %v", f)
			}
			if seen.Body != "hello" {
				t.Errorf("the upstream got the body %q", seen.Body)
			}
			// The upstream does receive the trailers it may: the check above
			// looks where a forged one would be.
			if strings.Contains(strings.Join(tc.trailers, ""), "X-Checksum") && seen.Trailer.Get("X-Checksum") != "sum-1" {
				t.Errorf("the upstream got the trailers %v, without X-Checksum", seen.Trailer)
			}
		})
	}
}

// siChunked posts body in chunks, then the trailers, to /public on port,
// over a connection of its own, and returns what the upstream received.
func siChunked(t *testing.T, port int, head []string, body string, trailers []string) siSeen {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var req strings.Builder
	fmt.Fprintf(&req, "POST /public HTTP/1.1\r\nHost: localhost:%d\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n", port)
	for _, h := range head {
		req.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&req, "\r\n%x\r\n%s\r\n0\r\n", len(body), body)
	for _, tr := range trailers {
		req.WriteString(tr + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var seen siSeen
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &seen) != nil {
		t.Fatalf("POST /public: %d %s", resp.StatusCode, itShort(string(raw)))
	}
	return seen
}

// TestTwoStepupHandlersInOneSiteLeaveEachOthersValuesAlone: a later handler
// neither strips the X-Stepup-* headers an earlier one set nor blanks its
// placeholders, whichever of them steps the request up; the client's are
// removed all the same; when both step a request up there is one value per
// header, the last set.
func TestTwoStepupHandlersInOneSiteLeaveEachOthersValuesAlone(t *testing.T) {
	upstream := siRecorder(t)
	c := siNewConfig(t)
	marker := fmt.Sprintf("config-%d", itSeq.Add(1))
	// One realm, so the second handler takes the first's step-ups; a realm
	// shares its store.
	realmStore := fmt.Sprintf("store memory si-two-%d-%d", os.Getpid(), itSeq.Add(1))
	e := c.site("two", itPorts.HTTP, fmt.Sprintf(`header X-It-Config %s
%s
sms_stepup /admin* {
%s
}
sms_stepup /billing* /admin/billing* {
%s
}
reverse_proxy %s {
	header_up X-Ph-Identity {http.sms_stepup.identity}
	header_up X-Ph-Verified-At {http.sms_stepup.verified_at}
}`, marker, siBasic(t, "pw-two"),
		c.stepup("two", "identity {http.auth.user.id}", "realm two", realmStore, "upstream_headers identity verified_at"),
		c.stepup("two-billing", "identity {http.auth.user.id}", "realm two", realmStore, "path_prefix /_stepup_billing", "upstream_headers identity"),
		upstream))
	c.load(marker)
	b := e.browser("")
	b.basic = []string{"alice", "pw-two"}
	b.stepUp("/admin/users") // at the first handler; the second takes its token too (same realm)

	// want checks one header the upstream got: value, or "*" for one
	// non-empty value, or "" for none (or one empty, as header_up sends an
	// empty placeholder).
	want := func(t *testing.T, seen siSeen, header, value string) {
		t.Helper()
		got := seen.Header.Values(header)
		var ok bool
		switch value {
		case "":
			ok = len(got) == 0 || (len(got) == 1 && got[0] == "")
		case "*":
			ok = len(got) == 1 && got[0] != ""
		default:
			ok = len(got) == 1 && got[0] == value
		}
		if !ok {
			t.Errorf("the upstream got %s %q, want %q", header, got, value)
		}
	}
	t.Run("the first handler's step-up reaches the upstream past a second that does not step the route up", func(t *testing.T) {
		seen := siGet(t, b, "/admin/users", "X-Stepup-Identity: mallory")
		want(t, seen, "X-Stepup-Identity", "alice")
		want(t, seen, "X-Stepup-Verified-At", "*")
		want(t, seen, "X-Ph-Identity", "alice")
		want(t, seen, "X-Ph-Verified-At", "*")
	})
	t.Run("the second handler's step-up reaches the upstream past a first that does not step the route up", func(t *testing.T) {
		seen := siGet(t, b, "/billing/invoices", "X-Stepup-Identity: mallory", "X-Stepup-Verified-At: 2099-01-01T00:00:00Z")
		want(t, seen, "X-Stepup-Identity", "alice")
		want(t, seen, "X-Stepup-Verified-At", "") // the second sets only identity
		want(t, seen, "X-Ph-Identity", "alice")
		want(t, seen, "X-Ph-Verified-At", "*")
	})
	t.Run("a route both step up gets one value per header, the first's verified_at kept", func(t *testing.T) {
		seen := siGet(t, b, "/admin/billing/cards", "X-Stepup-Identity: mallory")
		want(t, seen, "X-Stepup-Identity", "alice")
		want(t, seen, "X-Stepup-Verified-At", "*")
		want(t, seen, "X-Ph-Identity", "alice")
	})
	t.Run("a route neither steps up gets none of the client's X-Stepup-* and empty placeholders", func(t *testing.T) {
		seen := siGet(t, b, "/public", "X-Stepup-Identity: mallory", "x-stepup-token: forged")
		if f := siStepupFields(seen.Header); len(f) != 0 {
			t.Errorf("the upstream got %v", f)
		}
		want(t, seen, "X-Ph-Identity", "")
		want(t, seen, "X-Ph-Verified-At", "")
	})
}
