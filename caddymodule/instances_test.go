package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
	redisstore "github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/redis"
)

// TestInstancesShareRedis runs two real Caddy processes (built from
// cmd/caddy) with one signing key on one Redis, as operators run several
// instances behind a load balancer, and walks the flow across them. A
// revocation made on the store reaches both. Then it kills and freezes
// Redis under them: both fail closed and recover alone.
func TestInstancesShareRedis(t *testing.T) {
	redistest.Require(t, "redis-server", "redis-cli", "go")
	caddyBin := miBuildCaddy(t)

	t.Run("on one Redis server", func(t *testing.T) {
		srv := redistest.Start(t)
		a, b := miStartPair(t, caddyBin, "url redis://"+srv.Addr)
		miCrossInstanceFlow(t, a, b)
		miAttemptsCountedOnce(t, a, b)
		miRevocation(t, a, b, srv)
		miFailClosed(t, a, b, srv)
	})
	t.Run("on one Redis server, with A killed by SIGKILL mid-flow", func(t *testing.T) {
		srv := redistest.Start(t)
		a, b := miStartPair(t, caddyBin, "url redis://"+srv.Addr)
		miKilledMidFlow(t, a, b)
	})
	t.Run("on a three-master Redis Cluster", func(t *testing.T) {
		cluster := redistest.StartCluster(t)
		a, b := miStartPair(t, caddyBin, "addresses "+strings.Join(cluster.Addrs, " "))
		miCrossInstanceFlow(t, a, b)
		miAttemptsCountedOnce(t, a, b)
	})
}

// miBuildCaddy builds this repository's Caddy once for the test.
func miBuildCaddy(t *testing.T) string {
	t.Helper()
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build caddy: %v\n%s", err, out)
	}
	return bin
}

type miInstance struct {
	name   string
	base   string
	outbox string
	proc   *testproc.Process
}

const miCaddyfile = `{
	admin localhost:{{admin}}
	persist_config off
	http_port {{http}}
	https_port {{https}}
	skip_install_trust
	grace_period 1ns
	default_bind 127.0.0.1
	# The test client stands for a proxy in front of Caddy that sets X-User
	# (headers_set_by trusted_proxy).
	servers {
		trusted_proxies static 127.0.0.1/32
	}
	storage file_system {{dir}}/storage
}

http://localhost:{{http}} {
	sms_stepup /private* {
		identity {http.request.header.X-User}
		headers_set_by trusted_proxy
		# Behind a load balancer the instances would serve one site
		# address; here each has a port of its own, so they share their
		# step-ups through a realm.
		realm instances
		phone_file {{dir}}/phones.csv
		signing_key "shared-signing-key-for-both-instances-0123456789"
		revocation_refresh 1s
{{options}}
		store redis {
			{{redis}}
			key_prefix mi:
			dial_timeout 300ms
			command_timeout 300ms
		}
		gateway console {
			outbox {{dir}}/outbox.jsonl
		}
	}
	respond "upstream saw {http.sms_stepup.identity}" 200
}
`

func miStartPair(t *testing.T, bin, redisLine string) (*miInstance, *miInstance) {
	t.Helper()
	return miStart(t, bin, "A", redisLine), miStart(t, bin, "B", redisLine)
}

func miStart(t *testing.T, bin, name, redisLine string) *miInstance {
	t.Helper()
	return miStartWith(t, bin, name, redisLine, "")
}

// miStartWith starts an instance with extra sms_stepup options.
func miStartWith(t *testing.T, bin, name, redisLine, options string) *miInstance {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "phones.csv"), []byte("alice,+819012345678\nbob,+818012345678\ncarol,+819011112222\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpPort := redistest.FreePort(t)
	cf := strings.NewReplacer(
		"{{admin}}", fmt.Sprint(redistest.FreePort(t)), "{{http}}", fmt.Sprint(httpPort),
		"{{https}}", fmt.Sprint(redistest.FreePort(t)), "{{dir}}", dir, "{{redis}}", redisLine, "{{options}}", options,
	).Replace(miCaddyfile)
	cfPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfPath, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfPath, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config")
	proc, err := testproc.Start(cmd, "serving initial configuration", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Stop()
		if t.Failed() {
			t.Logf("caddy %s output:\n%s", name, proc.Output())
		}
	})
	return &miInstance{name: name, base: fmt.Sprintf("http://localhost:%d", httpPort), outbox: filepath.Join(dir, "outbox.jsonl"), proc: proc}
}

// miBrowser is one person's browser: one cookie jar for both instances
// (cookies do not tell ports apart), never following redirects.
type miBrowser struct {
	t      *testing.T
	user   string
	accept string
	lang   string
	c      *http.Client
}

func miNewBrowser(t *testing.T, user string) *miBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &miBrowser{t: t, user: user, accept: "text/html", c: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second, // a request may wait out a failover on a busy CI machine: correctness, not latency, is tested here
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *miBrowser) do(method, target string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("X-User", b.user)
	req.Header.Set("Accept", b.accept)
	if b.lang != "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), resp.Header
}

var miCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf loads the step-up page on inst and returns the form's token.
func (b *miBrowser) csrf(inst *miInstance) string {
	b.t.Helper()
	status, page, _ := b.do("GET", inst.base+"/_stepup/?r=%2Fprivate", nil)
	m := miCSRF.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil {
		b.t.Fatalf("step-up page on %s: %d\n%s", inst.name, status, page)
	}
	return m[1]
}

func (b *miBrowser) send(inst *miInstance, csrf string) int {
	status, _, _ := b.do("POST", inst.base+"/_stepup/send", url.Values{"csrf": {csrf}, "r": {"/private"}})
	return status
}

func (b *miBrowser) verify(inst *miInstance, csrf, code string) (int, string, http.Header) {
	return b.do("POST", inst.base+"/_stepup/verify", url.Values{"csrf": {csrf}, "r": {"/private"}, "code": {code}})
}

var miCode = regexp.MustCompile(`code: (\d{6})`)

// lastCode reads the newest message for to from inst's outbox.
func (inst *miInstance) lastCode(t *testing.T, to string) (code string, count int) {
	t.Helper()
	data, err := os.ReadFile(inst.outbox)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0
	}
	if err != nil {
		t.Fatalf("outbox of %s: %v", inst.name, err)
	}
	// Only whole lines: another user's send may be appending one as this
	// reads (the line of a send that has answered is always whole).
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	for line := range bytes.Lines(data) {
		var m struct{ To, Body string }
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		if m.To == to {
			count++
			if c := miCode.FindStringSubmatch(m.Body); c != nil {
				code = c[1]
			}
		}
	}
	return code, count
}

func miCrossInstanceFlow(t *testing.T, a, b *miInstance) {
	t.Run("a challenge started on A verifies on B, and B's cookie passes on A", func(t *testing.T) {
		br := miNewBrowser(t, "alice")
		if status, _, hdr := br.do("GET", a.base+"/private", nil); status != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), "/_stepup/") {
			t.Fatalf("protected page on A without cookie: %d %q", status, hdr.Get("Location"))
		}
		csrf := br.csrf(a)
		if status := br.send(a, csrf); status != http.StatusSeeOther {
			t.Fatalf("send on A: %d", status)
		}
		code, _ := a.lastCode(t, "+819012345678")
		status, _, hdr := br.verify(b, br.csrf(b), code)
		if status != http.StatusSeeOther || hdr.Get("Location") != "/private" {
			t.Fatalf("verify on B of A's code: %d %q", status, hdr.Get("Location"))
		}
		status, body, _ := br.do("GET", a.base+"/private", nil)
		if status != http.StatusOK || !strings.Contains(body, "upstream saw alice") {
			t.Fatalf("A with B's cookie: %d %q", status, body)
		}
	})
}

// miKilledMidFlow kills A between the send and the verify, as a crash or
// an OOM kill would, with nothing flushed or closed: the challenge lives in
// Redis, so B verifies it, and the code still works only once.
func miKilledMidFlow(t *testing.T, a, b *miInstance) {
	t.Run("a challenge started on A verifies on B after A is killed with SIGKILL", func(t *testing.T) {
		br := miNewBrowser(t, "alice")
		csrf := br.csrf(a)
		if status := br.send(a, csrf); status != http.StatusSeeOther {
			t.Fatalf("send on A: %d", status)
		}
		code, _ := a.lastCode(t, "+819012345678")
		a.proc.Stop() // SIGKILL, then wait for the exit
		if _, err := http.Get(a.base + "/"); err == nil {
			t.Fatal("A still answers after SIGKILL")
		}
		bCSRF := br.csrf(b)
		// A second browser with the same challenge and CSRF cookies, to
		// try the code again once it is used.
		replay := miNewBrowser(t, "alice")
		jarURL := &url.URL{Scheme: "http", Host: "localhost"}
		replay.c.Jar.SetCookies(jarURL, br.c.Jar.Cookies(jarURL))
		status, _, hdr := br.verify(b, bCSRF, code)
		if status != http.StatusSeeOther || hdr.Get("Location") != "/private" {
			t.Fatalf("verify on B of the code A sent before it was killed: %d %q", status, hdr.Get("Location"))
		}
		if status, body, _ := br.do("GET", b.base+"/private", nil); status != http.StatusOK || !strings.Contains(body, "upstream saw alice") {
			t.Fatalf("B with the cookie it just set: %d %q", status, body)
		}
		if status, body, _ := replay.verify(b, bCSRF, code); status != http.StatusUnprocessableEntity {
			t.Fatalf("the same code a second time on B: %d, want 422\n%s", status, body)
		}
	})
}

func miAttemptsCountedOnce(t *testing.T, a, b *miInstance) {
	t.Run("wrong codes on A and B count against one budget of five", func(t *testing.T) {
		br := miNewBrowser(t, "bob")
		csrf := br.csrf(a)
		if status := br.send(a, csrf); status != http.StatusSeeOther {
			t.Fatalf("send on A: %d", status)
		}
		code, _ := a.lastCode(t, "+818012345678")
		wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
		for i, inst := range []*miInstance{a, b, a, b} {
			status, body, _ := br.verify(inst, csrf, wrong)
			want := fmt.Sprintf("%d attempts left", 4-i)
			if 4-i == 1 {
				want = "1 attempt left"
			}
			if status != http.StatusUnprocessableEntity || !strings.Contains(body, want) {
				t.Fatalf("wrong code %d on %s: %d, want %d attempts left in\n%s", i+1, inst.name, status, 4-i, body)
			}
		}
		status, body, _ := br.verify(b, csrf, wrong)
		if status != http.StatusUnprocessableEntity || !strings.Contains(body, "can no longer be used") {
			t.Fatalf("fifth wrong code on B: %d\n%s", status, body)
		}
		if status, _, _ := br.verify(a, csrf, code); status == http.StatusSeeOther {
			t.Fatal("the right code worked on A after five wrong ones across A and B")
		}
	})
}

// miRevocation: a revocation written to the store (as `caddy sms-stepup
// revoke` or another instance would) makes B refuse a cookie minted on A
// within B's revocation_refresh (1s), and A too.
func miRevocation(t *testing.T, a, b *miInstance, srv *redistest.Server) {
	t.Run("a revocation on the store makes B refuse A's cookie within revocation_refresh", func(t *testing.T) {
		br := miNewBrowser(t, "carol")
		csrf := br.csrf(a)
		if status := br.send(a, csrf); status != http.StatusSeeOther {
			t.Fatalf("send on A: %d", status)
		}
		code, _ := a.lastCode(t, "+819011112222")
		if status, _, _ := br.verify(a, csrf, code); status != http.StatusSeeOther {
			t.Fatalf("verify on A: %d", status)
		}
		cookies := br.c.Jar.Cookies(&url.URL{Scheme: "http", Host: "localhost"})
		for _, inst := range []*miInstance{b, a} {
			if status, body, _ := br.do("GET", inst.base+"/private", nil); status != http.StatusOK || !strings.Contains(body, "upstream saw carol") {
				t.Fatalf("%s with A's cookie before the revocation: %d %q", inst.name, status, body)
			}
		}

		client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
		defer client.Close()
		revokedAt := time.Now()
		if err := redisstore.New(client, "mi:").Revoke(context.Background(), "carol", revokedAt); err != nil {
			t.Fatal(err)
		}

		for _, inst := range []*miInstance{b, a} {
			br.c.Jar.SetCookies(&url.URL{Scheme: "http", Host: "localhost"}, cookies)
			// Poll: each instance answers from memory until its next read
			// of the store, at most revocation_refresh (1s) after its last.
			deadline := revokedAt.Add(5 * time.Second)
			for {
				status, body, hdr := br.do("GET", inst.base+"/private", nil)
				if status == http.StatusSeeOther {
					if !strings.HasPrefix(hdr.Get("Location"), "/_stepup/") || !strings.Contains(strings.Join(hdr.Values("Set-Cookie"), "\n"), "stepup=;") {
						t.Fatalf("%s refused the revoked cookie with Location %q, Set-Cookie %q: want the step-up page and the cookie cleared",
							inst.name, hdr.Get("Location"), hdr.Values("Set-Cookie"))
					}
					break
				}
				if status != http.StatusOK || !strings.Contains(body, "upstream saw carol") {
					t.Fatalf("%s with the revoked cookie: %d %q", inst.name, status, body)
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s still passes the revoked cookie %s after the revocation (revocation_refresh 1s)", inst.name, time.Since(revokedAt).Round(time.Millisecond))
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("%s refused the revoked cookie %s after the revocation", inst.name, time.Since(revokedAt).Round(time.Millisecond))
		}
		api := miNewBrowser(t, "carol")
		api.accept = "application/json"
		api.c.Jar.SetCookies(&url.URL{Scheme: "http", Host: "localhost"}, cookies)
		if status, _, hdr := api.do("GET", b.base+"/private", nil); status != http.StatusUnauthorized ||
			!strings.Contains(hdr.Get("WWW-Authenticate"), "insufficient_user_authentication") {
			t.Errorf("JSON client with the revoked cookie on B: %d, WWW-Authenticate %q", status, hdr.Get("WWW-Authenticate"))
		}
	})
}

func miFailClosed(t *testing.T, a, b *miInstance, srv *redistest.Server) {
	t.Run("with Redis killed both fail closed, a valid cookie still passes, and they recover alone", func(t *testing.T) {
		stepped := miNewBrowser(t, "alice")
		csrf := stepped.csrf(a)
		stepped.send(a, csrf)
		code, _ := a.lastCode(t, "+819012345678")
		if status, _, _ := stepped.verify(a, csrf, code); status != http.StatusSeeOther {
			t.Fatalf("step-up before the outage: %d", status)
		}
		fresh := miNewBrowser(t, "bob")
		freshCSRF := fresh.csrf(b)
		_, sentBefore := b.lastCode(t, "+818012345678")

		srv.Stop()
		for _, inst := range []*miInstance{a, b} {
			if status, body, _ := fresh.do("GET", inst.base+"/private", nil); status != http.StatusServiceUnavailable || strings.Contains(body, "upstream") {
				t.Errorf("protected page on %s with Redis down: %d %q", inst.name, status, body)
			}
			if status := fresh.send(inst, freshCSRF); status != http.StatusServiceUnavailable {
				t.Errorf("send on %s with Redis down: %d", inst.name, status)
			}
			if status, body, _ := stepped.do("GET", inst.base+"/private", nil); status != http.StatusOK || !strings.Contains(body, "upstream saw alice") {
				t.Errorf("valid cookie on %s with Redis down: %d %q", inst.name, status, body)
			}
		}
		api := miNewBrowser(t, "bob")
		api.accept = "application/json"
		if status, body, hdr := api.do("GET", a.base+"/private", nil); status != http.StatusServiceUnavailable ||
			!strings.HasPrefix(hdr.Get("Content-Type"), "application/json") || !strings.Contains(body, `"error":"unavailable"`) {
			t.Errorf("API client with Redis down: %d %q %q", status, hdr.Get("Content-Type"), body)
		}
		if _, sent := b.lastCode(t, "+818012345678"); sent != sentBefore {
			t.Errorf("an SMS went out while Redis was down (%d before, %d after)", sentBefore, sent)
		}
		if status, _, _ := fresh.do("GET", a.base+"/_stepup/?r=%2Fprivate", nil); status != http.StatusServiceUnavailable {
			t.Errorf("step-up page with Redis down: %d", status)
		}

		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		if status := fresh.send(b, fresh.csrf(b)); status != http.StatusSeeOther {
			t.Fatalf("send on B after Redis came back: %d", status)
		}
	})
	t.Run("with Redis frozen requests fail closed within the command timeout", func(t *testing.T) {
		br := miNewBrowser(t, "alice")
		csrf := br.csrf(a)
		if err := srv.Pause(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := srv.Resume(); err != nil {
				t.Fatal(err)
			}
		}()
		// The browser's own time-out (5 s) would fail the test if the
		// plugin waited on Redis instead of giving up after 300 ms.
		if status, body, _ := br.do("GET", a.base+"/private", nil); status != http.StatusServiceUnavailable {
			t.Errorf("protected page with Redis frozen: %d %q", status, body)
		}
		if status := br.send(a, csrf); status != http.StatusServiceUnavailable {
			t.Errorf("send with Redis frozen: %d", status)
		}
	})
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
