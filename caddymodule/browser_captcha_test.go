package caddymodule_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/browsertest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

// brCaptchaCaddyfile is brCaddyfile's site with captcha pow, always, so
// every send needs the page's proof of work.
const brCaptchaCaddyfile = `{
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
	sms_stepup /settings* {
		identity {http.request.cookie.test_user}
		phone_file {{dir}}/phones.csv
		signing_key "browser-test-signing-key-0123456789abcdef"
		service_name Example
		captcha pow {
			difficulty 12
		}
		captcha_when always
		gateway console {
			outbox {{dir}}/outbox.jsonl
		}
	}
	handle /login {
		header Set-Cookie "test_user={http.request.uri.query.u}; Path=/; SameSite=Lax; HttpOnly"
		respond "signed in as {http.request.uri.query.u}" 200
	}
	handle /settings {
		header Content-Type "text/html; charset=utf-8"
		respond "<!doctype html><html lang=en><title>Settings</title><h1>Settings</h1></html>" 200
	}
}
`

// TestBrowserCaptchaPow: in a real Chromium, the send page's script
// solves the proof of work under the page's CSP, enables the button, and
// the send goes through; then the code finishes the step-up.
func TestBrowserCaptchaPow(t *testing.T) {
	browsertest.Require(t)
	redistest.Require(t, "go")
	srv := brCaptchaStart(t, brBuild(t))
	browser := browsertest.Start(t)

	for _, tc := range []struct{ lang, accept, working string }{
		{"en", "en", "Ready: you can send the code."},
		{"ja", "ja", "確認が完了しました。コードを送信できます。"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			user := map[string]string{"en": "alice", "ja": "bob"}[tc.lang]
			b := brOpen(t, browser, srv.base, user, browsertest.AcceptLanguage(tc.accept))
			b.visit("/settings")
			if b.attr("#send", "data-captcha") == "" {
				t.Fatal("the send button has no data-captcha: the page's CAPTCHA script did not run")
			}
			b.do(chromedp.WaitVisible(`#send[data-captcha="solved"]`))
			b.wantText("#captcha-status", tc.working)
			if nonce := brEval[string](b, `document.getElementById("captcha-pow").value`); nonce == "" {
				t.Fatal("the script left no nonce in the form")
			}
			b.screenshot("captcha-" + tc.lang)
			b.sendCode()
			b.typeCode(srv.code(t, map[string]string{"en": "+819012340001", "ja": "+819012340002"}[tc.lang]))
			if status := b.submit(chromedp.Click(chromedp.ID("confirm"))); status != http.StatusOK {
				t.Fatalf("the right code: %d", status)
			}
			b.wantText("h1", "Settings")
		})
	}
}

func brCaptchaStart(t *testing.T, bin string) *brServer {
	t.Helper()
	dir := t.TempDir()
	phones := "alice,+819012340001\nbob,+819012340002\n"
	if err := os.WriteFile(filepath.Join(dir, "phones.csv"), []byte(phones), 0o600); err != nil {
		t.Fatal(err)
	}
	httpPort := redistest.FreePort(t)
	cf := strings.NewReplacer(
		"{{admin}}", fmt.Sprint(redistest.FreePort(t)), "{{http}}", fmt.Sprint(httpPort),
		"{{https}}", fmt.Sprint(redistest.FreePort(t)), "{{dir}}", dir,
	).Replace(brCaptchaCaddyfile)
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
	return &brServer{base: fmt.Sprintf("http://localhost:%d", httpPort), outbox: filepath.Join(dir, "outbox.jsonl")}
}
