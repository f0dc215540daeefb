package caddymodule_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/browsertest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

// TestBrowserStepUp walks the step-up pages in a real headless Chromium
// against a real Caddy built from cmd/caddy: from the protected page through
// the send and code pages back to it, in English and Japanese, with the
// resend countdown, wrong codes and the lock-out. Each step is saved as a
// screenshot in $STEPUP_ARTIFACTS (or a temporary directory).
func TestBrowserStepUp(t *testing.T) {
	browsertest.Require(t)
	redistest.Require(t, "go")
	srv := brStart(t, brBuild(t))
	// One browser; each subtest is a different person in a tab of its
	// own, with its own cookies.
	browser := browsertest.Start(t)

	t.Run("an English speaker goes from the protected page through the code page back to it", func(t *testing.T) {
		t.Parallel()
		b := brOpen(t, browser, srv.base, "alice", browsertest.AcceptLanguage("en-US,en;q=0.9"))
		b.visit("/settings")
		if loc := b.location(); !strings.HasPrefix(loc, srv.base+"/_stepup/") {
			t.Fatalf("the protected page led to %s, want the step-up page", loc)
		}
		b.wantText("h1", "Confirm it's you")
		b.wantText("#dest", "+81 90-****-0001")
		b.wantText("#send", "Send code")
		if lang := b.attr("html", "lang"); lang != "en" {
			t.Errorf("html lang %q, want en", lang)
		}
		b.screenshot("en-1-send")

		b.sendCode()
		b.wantText("#msg", "Code sent.")
		b.wantText("label[for=code]", "6-digit code")
		b.wantText("#lead", "We sent a code by SMS to +81\u00a090\u2011****\u20110001. Enter it below.")
		b.wantCodeField()
		wait := b.text("#resend-wait")
		if !regexp.MustCompile(`^You can ask for a new code in \d+ seconds\.$`).MatchString(wait) {
			t.Errorf("resend countdown reads %q", wait)
		}
		b.wantCountdownRuns(wait)
		b.screenshot("en-2-code")

		code := srv.code(t, "+819012340001")
		b.typeCode(brWrong(code))
		if status := b.submit(chromedp.Click(chromedp.ID("confirm"))); status != http.StatusUnprocessableEntity {
			t.Errorf("a wrong code: %d, want 422", status)
		}
		b.wantAlert("That code is not right. 4 attempts left.")
		if focused := brEval[string](b, `document.activeElement.id`); focused != "code" {
			t.Errorf("after a wrong code the focus is on %q, want the code field", focused)
		}
		b.screenshot("en-3-wrong")

		b.typeCode(code)
		if status := b.submit(chromedp.Click(chromedp.ID("confirm"))); status != http.StatusOK {
			t.Errorf("the right code: the protected page answered %d", status)
		}
		if loc := b.location(); loc != srv.base+"/settings" {
			t.Errorf("after the right code the browser is at %s, want /settings", loc)
		}
		b.wantText("h1", "Settings")
		b.screenshot("en-4-settings")
	})

	t.Run("a Japanese speaker sees every step in Japanese", func(t *testing.T) {
		t.Parallel()
		b := brOpen(t, browser, srv.base, "bob", browsertest.AcceptLanguage("ja,en-US;q=0.8"))
		b.visit("/settings")
		b.wantText("h1", "ご本人確認")
		b.wantText("#send", "コードを送信")
		b.wantText("#dest", "+81 90-****-0002")
		if lang := b.attr("html", "lang"); lang != "ja" {
			t.Errorf("html lang %q, want ja", lang)
		}
		b.screenshot("ja-1-send")

		b.sendCode()
		b.wantText("#msg", "確認コードを送信しました。")
		b.wantText("label[for=code]", "6桁の確認コード")
		b.wantText("#confirm", "確認する")
		b.wantCodeField()
		wait := b.text("#resend-wait")
		if !regexp.MustCompile(`^新しいコードは\d+秒後に送信できます。$`).MatchString(wait) {
			t.Errorf("resend countdown reads %q", wait)
		}
		b.wantCountdownRuns(wait)
		b.screenshot("ja-2-code")

		code := srv.code(t, "+819012340002")
		if !strings.Contains(srv.lastBody(t, "+819012340002"), "確認コード") {
			t.Errorf("the SMS is not in Japanese: %q", srv.lastBody(t, "+819012340002"))
		}
		b.typeCode(brWrong(code))
		b.submit(chromedp.Click(chromedp.ID("confirm")))
		b.wantAlert("確認コードが正しくありません。あと4回入力できます。")
		b.screenshot("ja-3-wrong")

		b.typeCode(code)
		b.submit(chromedp.Click(chromedp.ID("confirm")))
		b.wantText("h1", "Settings")
	})

	t.Run("the resend button waits out a countdown that matches the server's cooldown", func(t *testing.T) {
		t.Parallel()
		b := brOpen(t, browser, srv.base, "carol", browsertest.AcceptLanguage("en"))
		b.visit("/settings")
		b.sendCode()
		if !brEval[bool](b, `document.getElementById("resend").disabled`) {
			t.Error("the resend button is enabled right after a send")
		}
		// The server renders its remaining cooldown (30 s and up to 25%
		// of jitter, less the time since the send) and the page's script
		// counts down from it.
		retry := brSeconds(t, b.attr("#resend", "data-retry"))
		if retry < 25 || retry > 38 {
			t.Errorf("the page was told to wait %d s, want 30 to 38 (30 s and its jitter)", retry)
		}
		first := brSeconds(t, b.text("#resend-wait"))
		if first > retry {
			t.Errorf("the countdown reads %d s, more than the %d s the server said", first, retry)
		}
		next := brSeconds(t, b.wantCountdownRuns(b.text("#resend-wait")))
		if next >= first {
			t.Errorf("the countdown went from %d s to %d s", first, next)
		}
		if !brEval[bool](b, `document.getElementById("resend").disabled`) {
			t.Error("the resend button is enabled while the countdown runs")
		}
		b.screenshot("resend-countdown")

		// Waiting 30 s is too slow for a test: ask anyway, as a script
		// that enables the button would. The server refuses, sends
		// nothing, and its count is never above the page's: the button
		// must not come back before a resend can work.
		b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("resend").disabled = false`))
		if status := b.submit(chromedp.Click(chromedp.ID("resend"))); status != http.StatusTooManyRequests {
			t.Errorf("an early resend: %d, want 429", status)
		}
		m := regexp.MustCompile(`^A code was sent a moment ago\. Please wait (\d+) seconds? before asking for another\.$`).FindStringSubmatch(b.text("#msg"))
		if m == nil {
			t.Fatalf("early resend message: %q", b.text("#msg"))
		}
		server, _ := strconv.Atoi(m[1])
		t.Logf("the page counted down to %d s; the server then said %d s", next, server)
		if server > next {
			t.Errorf("the server asks to wait %d s, but the page had counted down to %d s", server, next)
		}
		if !brEval[bool](b, `document.getElementById("resend").disabled`) {
			t.Error("the resend button is enabled after the server refused an early resend")
		}
		if again := brSeconds(t, b.attr("#resend", "data-retry")); again != server {
			t.Errorf("the page restarts its countdown at %d s, the server said %d s", again, server)
		}
		if n := srv.count(t, "+819012340003"); n != 1 {
			t.Errorf("%d SMS sent, want 1: the early resend must send nothing", n)
		}
	})

	t.Run("five wrong codes use the code up", func(t *testing.T) {
		t.Parallel()
		b := brOpen(t, browser, srv.base, "dave", browsertest.AcceptLanguage("en"))
		b.visit("/settings")
		b.sendCode()
		wrong := brWrong(srv.code(t, "+819012340004"))
		for left := 4; left >= 1; left-- {
			b.typeCode(wrong)
			b.submit(chromedp.Click(chromedp.ID("confirm")))
			b.wantAlertMatch(fmt.Sprintf(`^That code is not right\. %d attempts? left\.$`, left))
		}
		b.typeCode(wrong)
		b.submit(chromedp.Click(chromedp.ID("confirm")))
		b.wantAlert("This code can no longer be used. Ask for a new code.")
		b.wantText("#send", "Send code")
		b.screenshot("en-code-used-up")
	})

	t.Run("ten wrong codes lock the identity out", func(t *testing.T) {
		t.Parallel()
		// On the site with max_attempts 10 one code can take all ten
		// failures the identity may have before the lock-out.
		b := brOpen(t, browser, srv.lockBase, "frank", browsertest.AcceptLanguage("en"))
		b.visit("/settings")
		b.sendCode()
		wrong := brWrong(srv.code(t, "+819012340006"))
		for left := 9; left >= 1; left-- {
			b.typeCode(wrong)
			b.submit(chromedp.Click(chromedp.ID("confirm")))
			b.wantAlertMatch(fmt.Sprintf(`^That code is not right\. %d attempts? left\.$`, left))
		}
		b.typeCode(wrong)
		if status := b.submit(chromedp.Click(chromedp.ID("confirm"))); status != http.StatusTooManyRequests {
			t.Errorf("the tenth wrong code: %d, want 429", status)
		}
		b.wantText("h1", "Too many wrong codes")
		b.wantTextMatch("[role=alert]", `^For your safety, confirming by SMS is paused for this account\. Try again in \d+ minutes?\.$`)
		b.screenshot("locked")

		// Coming back to the protected page shows the lock, not a new code.
		if status := b.visit("/settings"); status != http.StatusTooManyRequests {
			t.Errorf("the protected page while locked: %d, want 429", status)
		}
		b.wantText("h1", "Too many wrong codes")
		if n := brEval[int](b, `document.querySelectorAll("#send, #code").length`); n != 0 {
			t.Error("the locked page offers to send or enter a code")
		}
	})

	t.Run("on a desktop screen the language link switches to the other language", func(t *testing.T) {
		t.Parallel()
		b := brOpen(t, browser, srv.base, "erin", browsertest.AcceptLanguage("en"), browsertest.Desktop())
		b.visit("/settings")
		// The card keeps a readable measure in the middle of a wide screen.
		card := brEval[[]float64](b, `(() => { const r = document.querySelector(".card").getBoundingClientRect(); return [r.left, r.width, innerWidth - r.right]; })()`)
		if card[1] > 448 || card[0]-card[2] > 1 || card[2]-card[0] > 1 {
			t.Errorf("the card is %.0f px wide with %.0f px left and %.0f px right of it, want at most 448 px, centred", card[1], card[0], card[2])
		}
		b.screenshot("desktop-en-send")
		link := `a[hreflang=ja]`
		b.wantText(link, "日本語")
		if lang := b.attr(link, "lang"); lang != "ja" {
			t.Errorf("the link to Japanese has lang %q, want ja", lang)
		}
		b.submit(chromedp.Click(chromedp.CSS(link)))
		b.wantText("h1", "ご本人確認")
		b.wantText("#send", "コードを送信")
		if lang := b.attr("html", "lang"); lang != "ja" {
			t.Errorf("html lang %q after the switch, want ja", lang)
		}
		b.screenshot("switch-ja")
		b.submit(chromedp.Click(chromedp.CSS(`a[hreflang=en]`)))
		b.wantText("h1", "Confirm it's you")
	})

	t.Run("the language picked with the link stays after sending the code", func(t *testing.T) {
		t.Parallel()
		b := brOpen(t, browser, srv.base, "heidi", browsertest.AcceptLanguage("en"))
		b.visit("/settings")
		b.submit(chromedp.Click(chromedp.CSS(`a[hreflang=ja]`)))
		b.sendCode()
		b.wantText("label[for=code]", "6桁の確認コード")
		if lang := b.attr("html", "lang"); lang != "ja" {
			t.Errorf("the code page after a send from the Japanese page is in %q, want ja", lang)
		}
		if body := srv.lastBody(t, "+819012340008"); !strings.Contains(body, "確認コード") {
			t.Errorf("the SMS is not in the language the person picked: %q", body)
		}
	})

	t.Run("without JavaScript the forms still get a person through", func(t *testing.T) {
		t.Parallel()
		b := brOpen(t, browser, srv.base, "grace", browsertest.AcceptLanguage("en"))
		b.do(chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
			_, err := cdp.Call(ctx, tab, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
		b.visit("/settings")
		b.sendCode()
		// 30 s and up to 25% of jitter, said in words without the script.
		if wait := b.text("#resend-wait"); !strings.HasPrefix(wait, "You can ask for a new code in ") || brSeconds(t, wait) < 30 || brSeconds(t, wait) > 38 {
			t.Errorf("#resend-wait reads %q, want a wait of 30 to 38 seconds", wait)
		}
		b.typeCode(srv.code(t, "+819012340007"))
		b.submit(chromedp.Click(chromedp.ID("confirm")))
		b.wantText("h1", "Settings")
	})
}

// brBuild builds this repository's Caddy once for the test binary run.
func brBuild(t *testing.T) string {
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

// brServer is one Caddy with two sites: base with the default rules, and
// lockBase with max_attempts 10.
type brServer struct {
	base     string
	lockBase string
	outbox   string
}

// brCaddyfile signs people in with /login?u=<name>, which sets the cookie
// the plugin takes the identity from, and protects /settings.
const brCaddyfile = `{
	admin localhost:{{admin}}
	persist_config off
	http_port {{http}}
	https_port {{https}}
	skip_install_trust
	grace_period 1ns
	default_bind 127.0.0.1
	storage file_system {{dir}}/storage
}

(site) {
	sms_stepup /settings* {
		identity {http.request.cookie.test_user}
		phone_file {{dir}}/phones.csv
		signing_key "browser-test-signing-key-0123456789abcdef"
		service_name Example
		max_attempts {args[0]}
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
		respond "<!doctype html><html lang=en><title>Settings</title><h1>Settings</h1><p>Signed in as {http.sms_stepup.identity}.</p></html>" 200
	}
}

http://localhost:{{http}} {
	import site 5
}

http://localhost:{{lock}} {
	import site 10
}
`

func brStart(t *testing.T, bin string) *brServer {
	t.Helper()
	dir := t.TempDir()
	var phones strings.Builder
	for i, user := range []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"} {
		fmt.Fprintf(&phones, "%s,+81901234%04d\n", user, i+1)
	}
	if err := os.WriteFile(filepath.Join(dir, "phones.csv"), []byte(phones.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	httpPort, lockPort := redistest.FreePort(t), redistest.FreePort(t)
	cf := strings.NewReplacer(
		"{{admin}}", fmt.Sprint(redistest.FreePort(t)), "{{http}}", fmt.Sprint(httpPort),
		"{{https}}", fmt.Sprint(redistest.FreePort(t)), "{{lock}}", fmt.Sprint(lockPort), "{{dir}}", dir,
	).Replace(brCaddyfile)
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
	return &brServer{
		base:     fmt.Sprintf("http://localhost:%d", httpPort),
		lockBase: fmt.Sprintf("http://localhost:%d", lockPort),
		outbox:   filepath.Join(dir, "outbox.jsonl"),
	}
}

type brMessage struct{ To, Body string }

// messages reads the console gateway's outbox: what was sent to to.
func (s *brServer) messages(t *testing.T, to string) []brMessage {
	t.Helper()
	f, err := os.Open(s.outbox)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("outbox: %v", err)
	}
	defer f.Close()
	var out []brMessage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m brMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("outbox line %q: %v", sc.Text(), err)
		}
		if m.To == to {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("outbox: %v", err)
	}
	return out
}

func (s *brServer) count(t *testing.T, to string) int { return len(s.messages(t, to)) }

func (s *brServer) lastBody(t *testing.T, to string) string {
	t.Helper()
	msgs := s.messages(t, to)
	if len(msgs) == 0 {
		t.Fatalf("no SMS sent to %s", to)
	}
	return msgs[len(msgs)-1].Body
}

var brCode = regexp.MustCompile(`(?:code|コード): (\d{6})`)

// code is the code in the newest SMS to to. The gateway writes it before
// the send answers, so it is there once the code page shows.
func (s *brServer) code(t *testing.T, to string) string {
	t.Helper()
	body := s.lastBody(t, to)
	m := brCode.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no code in the SMS to %s: %q", to, body)
	}
	return m[1]
}

// brWrong is a code that is not code.
func brWrong(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+1)%1000000)
}

var brSecondsRe = regexp.MustCompile(`(\d+)`)

func brSeconds(t *testing.T, s string) int {
	t.Helper()
	m := brSecondsRe.FindString(s)
	if m == "" {
		t.Fatalf("no number of seconds in %q", s)
	}
	n, _ := strconv.Atoi(m)
	return n
}

// brBrowser is one person in one browser, signed in to one site.
type brBrowser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// brOpen opens a tab for the test and signs user in on base.
func brOpen(t *testing.T, browser *browsertest.Browser, base, user string, opts ...browsertest.Option) *brBrowser {
	t.Helper()
	b := &brBrowser{t: t, ctx: browser.Tab(t, opts...), base: base}
	if status := b.visit("/login?u=" + user); status != http.StatusOK {
		t.Fatalf("sign in as %s: %d", user, status)
	}
	return b
}

// Each step has its own deadline, so a missing element fails the test in
// seconds instead of at the browser's time-out.
const (
	brQueryTimeout = 5 * time.Second
	brLoadTimeout  = 10 * time.Second
)

func (b *brBrowser) step(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, d)
}

func (b *brBrowser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step(brQueryTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// visit loads path on the browser's site and returns the final status.
func (b *brBrowser) visit(path string) int {
	b.t.Helper()
	ctx, cancel := b.step(brLoadTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.base+path))
	if err != nil {
		b.t.Fatalf("visit %s: %v", path, err)
	}
	return int(resp.Status)
}

// submit runs actions that load a new page (a click on a submit button or
// a link), waits for it and returns its status.
func (b *brBrowser) submit(actions ...chromedp.Action[chromedp.Void]) int {
	b.t.Helper()
	ctx, cancel := b.step(brLoadTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		b.t.Fatalf("submit: %v", err)
	}
	return int(resp.Status)
}

func (b *brBrowser) location() string {
	b.t.Helper()
	ctx, cancel := b.step(brQueryTimeout)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

// text is the visible text of the first element sel matches.
func (b *brBrowser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := b.step(brQueryTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *brBrowser) attr(sel, name string) string {
	b.t.Helper()
	ctx, cancel := b.step(brQueryTimeout)
	defer cancel()
	a, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		b.t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	return a.Value
}

func (b *brBrowser) wantText(sel, want string) {
	b.t.Helper()
	if got := b.text(sel); got != want {
		b.t.Errorf("%s reads %q, want %q", sel, got, want)
	}
}

func (b *brBrowser) wantTextMatch(sel, pattern string) {
	b.t.Helper()
	if got := b.text(sel); !regexp.MustCompile(pattern).MatchString(got) {
		b.t.Errorf("%s reads %q, want a match for %s", sel, got, pattern)
	}
}

// wantAlert checks the page's message is an error announced to screen
// readers and says want.
func (b *brBrowser) wantAlert(want string) {
	b.t.Helper()
	b.wantText("#msg", want)
	if role := b.attr("#msg", "role"); role != "alert" {
		b.t.Errorf("#msg has role %q, want alert", role)
	}
}

func (b *brBrowser) wantAlertMatch(pattern string) {
	b.t.Helper()
	b.wantTextMatch("#msg", pattern)
	if role := b.attr("#msg", "role"); role != "alert" {
		b.t.Errorf("#msg has role %q, want alert", role)
	}
}

// wantCodeField checks the code field is focused and tells phones to offer
// the code from the SMS on a numeric keypad.
func (b *brBrowser) wantCodeField() {
	b.t.Helper()
	if focused := brEval[string](b, `document.activeElement.id`); focused != "code" {
		b.t.Errorf("the focus is on %q, want the code field", focused)
	}
	ctx, cancel := b.step(brQueryTimeout)
	defer cancel()
	attrs, err := chromedp.Run(ctx, chromedp.Attributes(chromedp.ID("code")))
	if err != nil {
		b.t.Fatal(err)
	}
	for name, want := range map[string]string{"autocomplete": "one-time-code", "inputmode": "numeric", "name": "code"} {
		if attrs[name] != want {
			b.t.Errorf("code field %s=%q, want %q", name, attrs[name], want)
		}
	}
}

// wantCountdownRuns waits (at most 3 s) until the resend countdown no
// longer reads from, and returns what it reads then.
func (b *brBrowser) wantCountdownRuns(from string) string {
	b.t.Helper()
	ctx, cancel := b.step(brQueryTimeout)
	defer cancel()
	next, err := chromedp.Run(ctx, chromedp.PollFunction[string](
		`(from) => { const s = document.getElementById("resend-wait").textContent.trim(); return s !== from ? s : false; }`,
		chromedp.WithPollingArgs(from), chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(3*time.Second)))
	if err != nil {
		b.t.Fatalf("the resend countdown stayed at %q: %v", from, err)
	}
	return next
}

// typeCode replaces what the code field holds with code, as a person
// typing it would.
func (b *brBrowser) typeCode(code string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("code").value = ""`), chromedp.SendKeys(chromedp.ID("code"), code))
}

// sendCode presses the send button and expects the code page.
func (b *brBrowser) sendCode() {
	b.t.Helper()
	if status := b.submit(chromedp.Click(chromedp.ID("send"))); status != http.StatusOK {
		b.t.Fatalf("send: %d, want the code page; the page says %q", status, b.text("[role=alert]"))
	}
}

func (b *brBrowser) screenshot(name string) {
	b.t.Helper()
	browsertest.Screenshot(b.t, b.ctx, name)
}

func brEval[T any](b *brBrowser, expr string) T {
	b.t.Helper()
	ctx, cancel := b.step(brQueryTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}
