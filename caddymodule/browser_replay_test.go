package caddymodule_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/browsertest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

// brReplayCaddyfile proxies to a Go application whose password form posts
// to /settings/password; only POSTs there need a step-up, so the user opens
// the form without one, as after a step-up that expired.
const brReplayCaddyfile = `{
	admin localhost:{{admin}}
	persist_config off
	http_port {{http}}
	https_port {{https}}
	skip_install_trust
	grace_period 1ns
	default_bind 127.0.0.1
	storage file_system {{dir}}/storage
}

http://localhost:{{http}} {
	@change {
		method POST
		path /settings*
	}
	sms_stepup @change {
		identity {http.request.cookie.test_user}
		phone_file {{dir}}/phones.csv
		signing_key "browser-test-signing-key-0123456789abcdef"
		service_name Example
		gateway console {
			outbox {{dir}}/outbox.jsonl
		}
	}
	handle /login {
		header Set-Cookie "test_user={http.request.uri.query.u}; Path=/; SameSite=Lax; HttpOnly"
		respond "signed in as {http.request.uri.query.u}" 200
	}
	reverse_proxy {{upstream}}
}
`

// brPasswordApp is the application: the form, and the posts it received.
type brPasswordApp struct {
	mu    sync.Mutex
	posts []url.Values
}

func (a *brPasswordApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodGet {
		io.WriteString(w, `<!doctype html><html lang=en><title>Password</title><form method=post action="/settings/password?from=form">`+
			`<input type=hidden name=csrf_app value="app-csrf-42"><input id=password name=password type=password>`+
			`<button id=save type=submit>Save</button></form></html>`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	a.mu.Lock()
	a.posts = append(a.posts, form)
	a.mu.Unlock()
	fmt.Fprintf(w, `<!doctype html><html lang=en><title>Saved</title><p id=saved>saved %s</p></html>`, r.URL.RequestURI())
}

// TestBrowserKeptFormIsSentOnceAfterTheStepUp: in a real Chromium through
// a real Caddy, a user posts a password change without a valid step-up,
// steps up with the code from the console gateway, and the application
// receives the POST exactly once with the original fields.
func TestBrowserKeptFormIsSentOnceAfterTheStepUp(t *testing.T) {
	browsertest.Require(t)
	redistest.Require(t, "go")
	app := &brPasswordApp{}
	upstream := httptest.NewServer(app)
	t.Cleanup(upstream.Close)
	bin := brBuild(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "phones.csv"), []byte("alice,+819012340001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpPort := redistest.FreePort(t)
	cf := strings.NewReplacer("{{admin}}", fmt.Sprint(redistest.FreePort(t)), "{{http}}", fmt.Sprint(httpPort),
		"{{https}}", fmt.Sprint(redistest.FreePort(t)), "{{dir}}", dir, "{{upstream}}", upstream.URL).Replace(brReplayCaddyfile)
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
			t.Logf("caddy output:\n%s", proc.Output())
		}
	})
	srv := &brServer{base: fmt.Sprintf("http://localhost:%d", httpPort), outbox: filepath.Join(dir, "outbox.jsonl")}

	b := brOpen(t, browsertest.Start(t), srv.base, "alice", browsertest.AcceptLanguage("en-US,en;q=0.9"))
	b.visit("/settings/password")
	b.do(chromedp.SendKeys(chromedp.ID("password"), "n3w s3cret & more"))
	b.submit(chromedp.Click(chromedp.ID("save")))
	if loc := b.location(); !strings.HasPrefix(loc, srv.base+"/_stepup/") {
		t.Fatalf("the form led to %s, want the step-up page", loc)
	}
	b.wantText("#msg", "Your form is kept. It will be sent after you confirm it's you.")
	b.sendCode()
	b.typeCode(srv.code(t, "+819012340001"))
	b.submit(chromedp.Click(chromedp.ID("confirm")))
	// The resume page submits the form by itself.
	ctx, cancel := b.step(brLoadTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitVisible(chromedp.ID("saved"))); err != nil {
		t.Fatalf("the application's answer never showed (%v); the page says %q", err, b.text("body"))
	}
	b.wantText("#saved", "saved /settings/password?from=form")
	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.posts) != 1 || app.posts[0].Get("password") != "n3w s3cret & more" || app.posts[0].Get("csrf_app") != "app-csrf-42" || len(app.posts[0]) != 2 {
		t.Fatalf("the application received %v, want the original form once", app.posts)
	}
}
