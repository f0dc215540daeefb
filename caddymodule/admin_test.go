package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/spf13/cobra"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule/operator"
)

// These tests run the operator commands (`caddy sms-stepup ...`, in-process,
// from package caddymodule/operator) against the Caddy of
// integration_test.go, whose handler keeps its state in the memory store:
// the commands reach it through the admin API (admin.api.sms_stepup), at
// the admin address of the config they read.

// adEnv is a running config and the same Caddyfile in a file, for the
// command line, with Caddy's log in a file for the audit entries.
type adEnv struct {
	*itEnv
	config  string
	logFile string
}

func adStart(t *testing.T, options string, identities ...string) *adEnv {
	t.Helper()
	t.Setenv("USER", "adm-ops")
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	e := itStart(t, itSite{
		Key:     itKey,
		Global:  "\tlog {\n\t\toutput file " + logFile + "\n\t\tformat json\n\t}",
		Options: options,
	}, identities...)
	a := &adEnv{itEnv: e, logFile: logFile}
	a.config = a.writeConfig(e.site)
	return a
}

// in is the running config's environment for test (or subtest) t, whose
// failures its browsers report.
func (a *adEnv) in(t *testing.T) *itEnv {
	e := *a.itEnv
	e.t = t
	return &e
}

// writeConfig writes the Caddyfile of site, as loaded, to a new file.
func (a *adEnv) writeConfig(site itSite) string {
	a.t.Helper()
	var b strings.Builder
	if err := itCaddyfile.Execute(&b, site); err != nil {
		a.t.Fatal(err)
	}
	return adWrite(a.t, b.String())
}

func adWrite(t *testing.T, caddyfile string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// adRunCommand runs `caddy sms-stepup args...` in-process and returns what
// it printed on stdout and stderr.
func adRunCommand(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := &cobra.Command{Use: "caddy", SilenceUsage: true}
	cmd := &cobra.Command{Use: "sms-stepup"}
	operator.Commands(cmd)
	root.AddCommand(cmd)
	root.SetArgs(append([]string{"sms-stepup"}, args...))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

func (a *adEnv) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return adRunCommand(t, append(args, "--config", a.config)...)
}

func (a *adEnv) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := a.run(t, args...)
	if err != nil {
		t.Fatalf("sms-stepup %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	if errOut != "" {
		t.Fatalf("sms-stepup %s wrote to stderr: %s", strings.Join(args, " "), errOut)
	}
	return out
}

// audit returns the operator audit entries of event in the running Caddy's
// log.
func (a *adEnv) audit(t *testing.T, event string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(a.logFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["logger"] == "sms_stepup.operator" && m["event"] == event {
			out = append(out, m)
		}
	}
	return out
}

// status is `status --json`.
func (a *adEnv) status(t *testing.T) adStatus {
	t.Helper()
	var st adStatus
	if err := json.Unmarshal([]byte(a.mustRun(t, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

type adStatus struct {
	Handler string `json:"handler"`
	Store   struct {
		Type, Address string
		Reachable     bool
	} `json:"store"`
	Budget struct {
		Max, Used, Left int
	} `json:"daily_budget"`
	Locked struct {
		Total int `json:"total"`
		First []struct {
			Identity string `json:"identity"`
			Failures int    `json:"failures"`
		} `json:"first"`
	} `json:"locked"`
}

// adAdmin sends a request straight to the admin endpoint and returns the
// response and its body decoded as a JSON object.
func adAdmin(t *testing.T, method, path, contentType, body string, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://localhost:%d%s", itPorts.Admin, path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: %d, body %q is not a JSON object", method, path, resp.StatusCode, raw)
	}
	return resp, m
}

// adVerify posts code with a CSRF token from an earlier page (the page
// itself is the lock-out page while the identity is locked).
func adVerify(b *itBrowser, csrf, code string) *http.Response {
	b.t.Helper()
	resp, _ := b.post("/_stepup/verify", url.Values{"csrf": {csrf}, "r": {"/settings"}, "code": {code}}, b.origin())
	return resp
}

func TestAdminOperatorCommandsOnMemoryStore(t *testing.T) {
	a := adStart(t, "\t\tenroll\n\t\tfailure_budget 2\n\t\tdaily_budget 50", "adm-alice", "adm-bob")
	storeLine := "store         memory in-process (" + a.site.Store + "): reachable"

	t.Run("a lock-out by wrong codes shows in status, and unlock ends it: the right code then verifies", func(t *testing.T) {
		b := a.in(t).browser("adm-alice")
		b.wantStepUp("/settings")
		code := b.send("/settings")
		csrf := b.stepUpPage("/settings")["csrf"]
		challenge := b.cookie("stepup_challenge")
		wrong := itWrongCode(code)
		locked := false
		for range 2 {
			if resp := adVerify(b, csrf, wrong); resp.StatusCode == http.StatusTooManyRequests {
				locked = true
			}
		}
		if !locked {
			t.Fatal("two wrong codes with failure_budget 2 did not lock adm-alice out")
		}
		// The lock-out page drops the challenge cookie; the challenge
		// itself lives on, so put the cookie back to try its code.
		b.setCookie("stepup_challenge", challenge)
		if resp := adVerify(b, csrf, code); resp.StatusCode != http.StatusTooManyRequests || itSetCookie(resp, "stepup") != nil {
			t.Fatalf("the right code while locked out: %d, want 429 and no cookie", resp.StatusCode)
		}

		out := a.mustRun(t, "status")
		for _, want := range []string{storeLine, "1 used, 49 left of 50; resets ", "1 identity locked out", "adm-alice  2 wrong codes, until ", "console: ok"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		st := a.status(t)
		if st.Handler != "/_stepup" || !st.Store.Reachable || st.Store.Type != "memory" || st.Budget.Used != 1 || st.Budget.Max != 50 ||
			st.Locked.Total != 1 || st.Locked.First[0].Identity != "adm-alice" || st.Locked.First[0].Failures != 2 {
			t.Fatalf("status --json: %+v", st)
		}
		out = a.mustRun(t, "status", "adm-alice")
		for _, want := range []string{"wrong codes   2 in a row", "locked until  20", "codes sent    1 recently", "+81 90-****-5678 (phone_file)"} {
			if !strings.Contains(out, want) {
				t.Errorf("status adm-alice lacks %q:\n%s", want, out)
			}
		}

		out = a.mustRun(t, "unlock", "adm-alice")
		if out != "unlocked adm-alice: wrong-code count and lock-out cleared\n" {
			t.Errorf("unlock printed %q", out)
		}
		b.setCookie("stepup_challenge", challenge)
		resp, body := b.verify("/settings", code)
		itWantRedirect(t, "the right code after unlock", resp, body, "/settings")
		b.wantUpstream("/settings")

		e := a.audit(t, "operator_unlock")
		if len(e) != 1 || e[0]["identity"] != "adm-alice" || e[0]["operator"] != "adm-ops" || e[0]["via"] != "admin_api" ||
			e[0]["result"] != "ok" || e[0]["handler"] != "/_stepup" || e[0]["client_ip"] == nil {
			t.Fatalf("audit entries %v, want one for adm-alice by adm-ops via admin_api", e)
		}
	})

	t.Run("revoke stops the cookie a user already has, on the running Caddy at once", func(t *testing.T) {
		b := a.in(t).browser("adm-bob")
		b.stepUp("/settings")
		b.wantUpstream("/settings")
		out := a.mustRun(t, "revoke", "adm-bob")
		if !regexp.MustCompile(`^revoked adm-bob: step-ups authenticated before 20\S+Z no longer pass; every instance sharing the store applies it within 10s\n$`).MatchString(out) {
			t.Errorf("revoke printed %q", out)
		}
		// The running handler's own service made the revocation, so it
		// knows it without waiting for its revocation refresh.
		b.wantStepUp("/settings")
		if e := a.audit(t, "operator_revoke"); len(e) != 1 || e[0]["identity"] != "adm-bob" || e[0]["via"] != "admin_api" {
			t.Fatalf("audit entries %v", e)
		}
		if out := a.mustRun(t, "status", "adm-bob"); !strings.Contains(out, "not before    20") {
			t.Errorf("status adm-bob shows no not-before:\n%s", out)
		}
	})

	t.Run("reset-number unbinds an enrolled number, and the user enrols again", func(t *testing.T) {
		e := a.in(t)
		b := e.browser("adm-carol")
		if resp, body := ieEnrol(t, e, b, "090-5555-7777", "+819055557777"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("enrol: %d %s", resp.StatusCode, itShort(body))
		}
		out, errOut, err := a.run(t, "reset-number", "adm-carol")
		if err != nil || out != "reset the number of adm-carol: +81 90-****-7777 is no longer bound; the next step-up enrols a number\n" {
			t.Fatalf("reset-number: %v\n%s%s", err, out, errOut)
		}
		if _, body := b.get("/_stepup/?r=%2Fsettings"); !strings.Contains(body, `name="phone"`) {
			t.Fatalf("after the reset the step-up page does not ask for a number:\n%s", itShort(body))
		}
		if e := a.audit(t, "operator_reset_number"); len(e) != 1 || e[0]["phone"] != "+81 90-****-7777" || e[0]["via"] != "admin_api" {
			t.Fatalf("audit entries %v", e)
		}
		_, _, err = a.run(t, "reset-number", "adm-carol")
		if err == nil || err.Error() != "adm-carol has no enrolled number in the store: nothing to reset" {
			t.Fatalf("a second reset: %v, want the redis path's message", err)
		}
	})

	t.Run("send-test sends one message with no code through the running Caddy's gateway", func(t *testing.T) {
		e := a.in(t)
		sent := len(e.messages())
		out := a.mustRun(t, "send-test", "--to", "090-2222-3333")
		if !strings.HasPrefix(out, "sent a test message to +81 90-****-3333 through console: accepted (message id: ") {
			t.Errorf("send-test printed %q", out)
		}
		msgs := e.messages()
		if len(msgs) != sent+1 || msgs[len(msgs)-1].To != "+819022223333" || regexp.MustCompile(`[0-9]{4}`).MatchString(msgs[len(msgs)-1].Body) {
			t.Fatalf("outbox after send-test: %d new, last %+v; want one to +819022223333 with no code", len(msgs)-sent, msgs[len(msgs)-1])
		}
		_, _, err := a.run(t, "send-test", "--to", "050-1234-5678")
		if err == nil || err.Error() != "the phone policy refuses +81 50-****-5678: numbers of type voip are not accepted" {
			t.Fatalf("send-test to an IP phone: %v", err)
		}
	})

	t.Run("reset-budget zeroes the running Caddy's count", func(t *testing.T) {
		before := a.status(t).Budget
		if before.Used < 4 {
			t.Fatalf("budget before: %+v; the sends so far should show", before)
		}
		out := a.mustRun(t, "reset-budget")
		if want := fmt.Sprintf("daily budget reset: %d of 50 were used today; now 0 used, 50 left\n", before.Used); out != want {
			t.Errorf("reset-budget printed %q, want %q", out, want)
		}
		if after := a.status(t).Budget; after.Used != 0 || after.Left != 50 {
			t.Fatalf("budget after the reset: %+v", after)
		}
		if e := a.audit(t, "operator_reset_budget"); len(e) != 1 || e[0]["used_before"] != float64(before.Used) || e[0]["via"] != "admin_api" {
			t.Fatalf("audit entries %v", e)
		}
	})

	t.Run("the admin API answers bad requests with a clear 4xx JSON error", func(t *testing.T) {
		const js = "application/json"
		for _, tc := range []struct {
			name, method, path, ctype, body string
			header                          []string
			status                          int
			allow, want                     string
		}{
			{"an unknown handler", "POST", "/sms-stepup/unlock", js, `{"handler":"/_nope","identity":"x"}`, nil, 404, "",
				"no running sms_stepup handler has path_prefix /_nope; the running ones have /_stepup"},
			{"a GET to a POST route", "GET", "/sms-stepup/unlock", "", "", nil, 405, "POST", "unlock changes state, so it takes POST only"},
			{"a POST to status", "POST", "/sms-stepup/status", js, `{}`, nil, 405, "GET", "status takes GET only"},
			{"no identity", "POST", "/sms-stepup/revoke", js, `{}`, nil, 400, "", `revoke needs identity, e.g. {"identity": "alice"}`},
			{"bad JSON", "POST", "/sms-stepup/unlock", js, `{"identity":`, nil, 400, "", "bad JSON body"},
			{"a misspelt field", "POST", "/sms-stepup/unlock", js, `{"identiy":"adm-alice"}`, nil, 400, "", `unknown field "identiy"`},
			{"no JSON content type", "POST", "/sms-stepup/unlock", "application/x-www-form-urlencoded", `identity=adm-alice`, nil, 415, "", "expected application/json"},
			{"an unknown route", "GET", "/sms-stepup/nope", "", "", nil, 404, "", "no such sms_stepup admin route"},
			{"a bad locale", "POST", "/sms-stepup/send-test", js, `{"to":"090-2222-3333","locale":"fr"}`, nil, 400, "", `locale "fr": expected en or ja`},
			{"another site's origin (Caddy's own check)", "POST", "/sms-stepup/unlock", js, `{"identity":"adm-alice"}`, []string{"Origin: http://evil.example"}, 403, "", "not allowed"},
		} {
			resp, m := adAdmin(t, tc.method, tc.path, tc.ctype, tc.body, tc.header...)
			msg, _ := m["error"].(string)
			if resp.StatusCode != tc.status || !strings.Contains(msg, tc.want) || resp.Header.Get("Allow") != tc.allow {
				t.Errorf("%s: %d %q (Allow %q), want %d with %q (Allow %q)", tc.name, resp.StatusCode, msg, resp.Header.Get("Allow"), tc.status, tc.want, tc.allow)
			}
		}
		if n := len(a.audit(t, "operator_unlock")); n != 1 {
			t.Errorf("%d unlock audit entries after the refused requests, want still 1", n)
		}
		resp, m := adAdmin(t, "GET", "/sms-stepup/status?handler=/_stepup", "", "")
		if result, _ := m["result"].(map[string]any); resp.StatusCode != 200 || m["handler"] != "/_stepup" || result["handler"] != "/_stepup" || m["config_matches"] != nil {
			t.Fatalf("status without a fingerprint: %d %v", resp.StatusCode, m)
		}
	})

	t.Run("a config whose handler the running Caddy lacks gets a clear error naming what runs", func(t *testing.T) {
		raw, err := os.ReadFile(a.config)
		if err != nil {
			t.Fatal(err)
		}
		other := adWrite(t, strings.Replace(string(raw), "\t\tenroll\n", "\t\tenroll\n\t\tpath_prefix /_elsewhere\n", 1))
		_, _, err = adRunCommand(t, "unlock", "adm-alice", "--config", other)
		if err == nil || err.Error() != "no running sms_stepup handler has path_prefix /_elsewhere; the running ones have /_stepup" {
			t.Fatalf("got %v", err)
		}
	})
}

// TestAdminAfterAReload: after a reload the new config's handler acts,
// and the unloaded one never does, though the old config names it exactly.
func TestAdminAfterAReload(t *testing.T) {
	a := adStart(t, "", "adm-dora")
	oldConfig := a.config
	site := a.site
	site.Store = a.site.Store + "-reloaded"
	a.load(site)
	a.config = a.writeConfig(a.site)
	if out := a.mustRun(t, "status"); !strings.Contains(out, "memory in-process ("+site.Store+")") {
		t.Fatalf("status with the new config:\n%s", out)
	}
	out, errOut, err := adRunCommand(t, "status", "--config", oldConfig)
	if err != nil || !strings.Contains(out, "memory in-process ("+site.Store+")") {
		t.Fatalf("status with the old config: %v\n%s", err, out)
	}
	if !strings.Contains(errOut, "note: the running Caddy's handler /_stepup was not loaded from the config in "+oldConfig) {
		t.Errorf("stderr %q, want a note that the running config differs", errOut)
	}
}

// TestAdminHandlersSharingAPathPrefix: two sites whose handlers share a
// path_prefix; the fingerprint of the config the command reads picks the
// one chosen with --handler, and a request without one is refused.
func TestAdminHandlersSharingAPathPrefix(t *testing.T) {
	itFreePorts(t)
	dir := t.TempDir()
	phones := filepath.Join(dir, "phones.csv")
	if err := os.WriteFile(phones, []byte("adm-two,"+itNumber+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("config-%d", itSeq.Add(1))
	stores := []string{fmt.Sprintf("adm-two-%d-a", os.Getpid()), fmt.Sprintf("adm-two-%d-b", os.Getpid())}
	site := func(host, store, body string) string {
		return fmt.Sprintf(`
http://%s:%d {
	header X-It-Config %s
	sms_stepup /settings* {
		identity {http.request.header.X-User}
		headers_set_by trusted_proxy
		phone_file %s
		signing_key %s
		store memory %s
		gateway console {
			outbox %s
		}
	}
	respond %q
}
`, host, itPorts.HTTP, marker, phones, itKey, store, filepath.Join(dir, "outbox.jsonl"), body)
	}
	caddyfile := fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
	http_port %d
	https_port %d
	skip_install_trust
	grace_period 1ns
	default_bind 127.0.0.1
	# The test client stands for a proxy in front of Caddy that sets X-User
	# (headers_set_by trusted_proxy).
	servers {
		trusted_proxies static 127.0.0.1/32
	}
}
`, itPorts.Admin, itPorts.HTTP, itPorts.HTTPS) + site("localhost", stores[0], "a") + site("127.0.0.1", stores[1], "b")
	e := &itEnv{t: t, tc: caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: itPorts.Admin}), outbox: filepath.Join(dir, "outbox.jsonl"), base: fmt.Sprintf("http://localhost:%d", itPorts.HTTP)}
	e.tc.InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	e.awaitConfig(marker)
	config := adWrite(t, caddyfile)

	seen := map[string]bool{}
	for _, n := range []string{"0", "1"} {
		out, errOut, err := adRunCommand(t, "status", "--config", config, "--handler", n)
		if err != nil || errOut != "" {
			t.Fatalf("status --handler %s: %v\n%s%s", n, err, out, errOut)
		}
		for _, s := range stores {
			if strings.Contains(out, "memory in-process ("+s+")") {
				seen[s] = true
			}
		}
	}
	if len(seen) != 2 {
		t.Fatalf("--handler 0 and 1 reached stores %v, want both %v", seen, stores)
	}
	resp, m := adAdmin(t, "GET", "/sms-stepup/status?handler=/_stepup", "", "")
	if msg, _ := m["error"].(string); resp.StatusCode != http.StatusConflict || !strings.Contains(msg, "2 running sms_stepup handlers have path_prefix /_stepup") {
		t.Fatalf("status without a fingerprint: %d %v, want 409", resp.StatusCode, m)
	}
}
