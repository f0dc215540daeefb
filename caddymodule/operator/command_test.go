package operator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	// The Caddyfile adapter, file storage and the rest a config names.
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/spf13/cobra"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// opEnv is a Caddyfile in a temporary directory for the operator commands:
// console gateway with an outbox, JSON logs in a file, Caddy's storage in
// the directory.
type opEnv struct {
	dir, config, outbox, logFile string
}

const opSigningKey = "operator-test-signing-key-0123456789abcdefgh"

// newOpEnv writes a Caddyfile whose handler uses store (the text after
// `store`) and signing_key key ("" for none), and the console gateway.
func newOpEnv(t *testing.T, store, key string) *opEnv {
	t.Helper()
	return newOpEnvGateway(t, store, key, "console {\n\t\t\toutbox DIR/outbox.jsonl\n\t\t}")
}

// newOpEnvGateway is newOpEnv with another gateway (the text after
// `gateway`; DIR is the directory).
func newOpEnvGateway(t *testing.T, store, key, gateway string) *opEnv {
	t.Helper()
	dir := t.TempDir()
	e := &opEnv{dir: dir, config: filepath.Join(dir, "Caddyfile"), outbox: filepath.Join(dir, "outbox.jsonl"), logFile: filepath.Join(dir, "caddy.log")}
	signing := ""
	if key != "" {
		signing = "signing_key " + key
	}
	caddyfile := strings.NewReplacer("GATEWAY", gateway, "STORE", store, "SIGNING", signing).Replace(`{
	admin off
	persist_config off
	storage file_system DIR/storage
	log {
		output file DIR/caddy.log
		format json
	}
}

http://app.example.com {
	sms_stepup /settings* {
		identity {http.auth.user.id}
		enroll
		SIGNING
		failure_budget 2
		daily_budget 50
		store STORE
		gateway GATEWAY
	}
	respond "app"
}
`)
	caddyfile = strings.ReplaceAll(caddyfile, "DIR", dir)
	if err := os.WriteFile(e.config, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// runOperator runs `caddy sms-stepup args...` in-process and returns what
// it printed on stdout and stderr.
func runOperator(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := &cobra.Command{Use: "caddy", SilenceUsage: true}
	cmd := &cobra.Command{Use: "sms-stepup", Short: operatorShort, Long: operatorLong}
	Commands(cmd)
	root.AddCommand(cmd)
	root.SetArgs(append([]string{"sms-stepup"}, args...))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

func (e *opEnv) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return runOperator(t, append(args, "--config", e.config)...)
}

// mustRun runs a command that must succeed and returns its stdout.
func (e *opEnv) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := e.run(t, args...)
	if err != nil {
		t.Fatalf("sms-stepup %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// server provisions the config's handler as a Caddy instance would, on its
// own, to set up state and to check what the commands did.
func (e *opEnv) server(t *testing.T) *caddymodule.Handler {
	t.Helper()
	raw, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(raw, map[string]any{"filename": e.config})
	if err != nil {
		t.Fatal(err)
	}
	refs, err := findHandlers(cfgJSON)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	mod, err := ctx.LoadModuleByID("http.handlers.sms_stepup", refs[0].raw)
	if err != nil {
		t.Fatal(err)
	}
	return mod.(*caddymodule.Handler)
}

// outbox returns the messages the console gateway wrote.
func (e *opEnv) outboxLines(t *testing.T) []map[string]any {
	t.Helper()
	return jsonLines(t, e.outbox)
}

// audit returns the operator audit entries in Caddy's log.
func (e *opEnv) audit(t *testing.T, event string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range jsonLines(t, e.logFile) {
		if l["logger"] == "sms_stepup.operator" && l["event"] == event {
			out = append(out, l)
		}
	}
	return out
}

func jsonLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: line %q is not JSON: %v", path, sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// phone is a number as the handler's policy reads it.
func phone(t *testing.T, h *caddymodule.Handler, raw string) otp.Phone {
	t.Helper()
	p, err := h.CheckPhone(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var sixDigits = regexp.MustCompile(`\b[0-9]{6}\b`)

// lockOut sends identity a code and types two wrong ones, which the
// config's failure_budget of 2 turns into a lock-out.
func (e *opEnv) lockOut(t *testing.T, h *caddymodule.Handler, identity, e164 string) {
	t.Helper()
	ctx := t.Context()
	res, err := h.Service().Send(ctx, otp.SendRequest{Subject: identity, Phone: phone(t, h, e164), Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	lines := e.outboxLines(t)
	code := sixDigits.FindString(lines[len(lines)-1]["body"].(string))
	n, _ := strconv.Atoi(code)
	wrong := strconv.Itoa(100000 + (n+1)%900000)
	for range 2 {
		if _, err := h.Service().Verify(ctx, otp.VerifyInput{Subject: identity, ChallengeID: res.Challenge.ID, Code: wrong}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := h.Service().Identity(ctx, identity)
	if err != nil || !st.Locked(time.Now()) {
		t.Fatalf("%s after two wrong codes: %+v, %v; want locked out", identity, st, err)
	}
}

// TestOperatorCommandsOnRedis runs each command against a real Redis and
// checks, through a separately provisioned handler (another Caddy instance
// on the same store), that it did what it says.
func TestOperatorCommandsOnRedis(t *testing.T) {
	t.Setenv("USER", "ops-tester")
	r := redistest.Start(t)
	e := newOpEnv(t, "redis redis://"+r.Addr+"/0", opSigningKey)
	h := e.server(t)
	ctx := t.Context()

	t.Run("status shows the store, the budget, the locked identity and the gateway", func(t *testing.T) {
		e.lockOut(t, h, "dave", "+819011110001")
		out := e.mustRun(t, "status")
		for _, want := range []string{
			"store         redis " + r.Addr + " db 0: reachable",
			"1 used, 49 left of 50; resets ",
			"1 identity locked out",
			"dave  2 wrong codes, until ",
			"console: ok",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		var st operatorStatus
		if err := json.Unmarshal([]byte(e.mustRun(t, "status", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		if !st.Store.Reachable || st.Budget == nil || st.Budget.Used != 1 || st.Budget.Max != 50 || st.Locked == nil ||
			st.Locked.Total != 1 || st.Locked.First[0].Identity != "dave" || st.Gateway.Status != otp.HealthOK {
			t.Fatalf("status --json: %+v", st)
		}
	})

	t.Run("unlock ends a lock-out made by wrong codes", func(t *testing.T) {
		e.lockOut(t, h, "alice", "+819011110002")
		out := e.mustRun(t, "unlock", "alice")
		if !strings.Contains(out, "unlocked alice") {
			t.Errorf("output %q", out)
		}
		st, err := h.Service().Identity(ctx, "alice")
		if err != nil || st.Locked(time.Now()) || st.Failures != 0 {
			t.Fatalf("alice after unlock: %+v, %v; want no lock-out and no failures", st, err)
		}
		a := e.audit(t, "operator_unlock")
		if len(a) != 1 || a[0]["identity"] != "alice" || a[0]["operator"] != "ops-tester" || a[0]["result"] != "ok" {
			t.Fatalf("audit entries %v, want one for alice by ops-tester", a)
		}
	})

	t.Run("status names the hard lock after 100 wrong codes in a row, and unlock lifts it", func(t *testing.T) {
		now := time.Now()
		c := otp.Challenge{ID: "hard1", Subject: "heidi", PhoneHash: "p", PhoneMasked: "m", CodeMAC: make([]byte, 32),
			CreatedAt: now, SentAt: now, ExpiresAt: now.Add(time.Minute), MaxAttempts: 5}
		store := sharedRedisStore(t, r.Addr)
		if _, err := store.Issue(ctx, otp.IssueRequest{Challenge: c, Now: now, MaxSends: 1, CooldownBase: time.Second,
			CooldownMax: time.Second, SendWindow: time.Hour}); err != nil {
			t.Fatal(err)
		}
		hard := otp.FailurePolicy{Budget: 1, DelayBase: time.Second, DelayMax: time.Second, HardLimit: 1, Window: time.Hour}
		wrong := bytes.Repeat([]byte{1}, 32)
		// The store keeps the identity of a lock-out only as the service
		// sealed it.
		sealed, err := h.Service().Keys().SealSubject("heidi")
		if err != nil {
			t.Fatal(err)
		}
		if res, err := store.Verify(ctx, otp.VerifyRequest{Subject: "heidi", ChallengeID: "hard1", CodeMAC: wrong, Now: now, Failures: hard,
			SealedSubject: sealed}); err != nil || !otp.IsHardLock(res.LockedUntil, now) {
			t.Fatalf("verify: %+v, %v; want the hard lock", res, err)
		}
		if out := e.mustRun(t, "status"); !strings.Contains(out, "heidi  1 wrong codes, until unlocked (caddy sms-stepup unlock heidi)") {
			t.Errorf("status does not name the hard lock:\n%s", out)
		}
		if out := e.mustRun(t, "status", "heidi"); !strings.Contains(out, "an operator unlocks it") {
			t.Errorf("status heidi does not name the hard lock:\n%s", out)
		}
		var st operatorStatus
		if err := json.Unmarshal([]byte(e.mustRun(t, "status", "--json", "--locked", "1000")), &st); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, l := range st.Locked.First {
			found = found || (l.Identity == "heidi" && l.UntilUnlocked)
		}
		if !found {
			t.Errorf("status --json: %+v, want heidi with until_unlocked", st.Locked)
		}
		e.mustRun(t, "unlock", "heidi")
		if st, err := h.Service().Identity(ctx, "heidi"); err != nil || st.Locked(time.Now()) {
			t.Fatalf("heidi after unlock: %+v, %v", st, err)
		}
	})

	t.Run("revoke sets a not-before that revokes older step-ups", func(t *testing.T) {
		before := time.Now().Add(-time.Second)
		out := e.mustRun(t, "revoke", "bob")
		if !strings.Contains(out, "revoked bob: step-ups authenticated before ") || !strings.Contains(out, "within 10s") {
			t.Errorf("output %q", out)
		}
		nb, err := h.Service().NotBefore(ctx, "bob")
		if err != nil || nb.IsZero() || !strings.Contains(out, nb.UTC().Format(rfc3339Milli)) {
			t.Fatalf("not-before %s (%v); want it set, and printed in %q", nb, err, out)
		}
		if revoked, err := h.Service().Revoked(ctx, "bob", before); err != nil || !revoked {
			t.Fatalf("a step-up before the revocation: revoked %v, %v; want revoked", revoked, err)
		}
		if revoked, _ := h.Service().Revoked(ctx, "bob", nb.Add(time.Second)); revoked {
			t.Fatal("a step-up after the revocation is revoked too")
		}
		if a := e.audit(t, "operator_revoke"); len(a) != 1 || a[0]["identity"] != "bob" {
			t.Fatalf("audit entries %v", a)
		}
	})

	t.Run("reset-number unbinds and prints the masked number only", func(t *testing.T) {
		if err := h.Service().BindPhone(ctx, "carol", phone(t, h, "+819012345678"), 1); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := e.run(t, "reset-number", "carol")
		if err != nil || !strings.Contains(out, "+81 90-****-5678 is no longer bound") {
			t.Fatalf("reset-number: %v\n%s%s", err, out, errOut)
		}
		if strings.Contains(out+errOut, "12345678") {
			t.Fatalf("the full number shows: %s%s", out, errOut)
		}
		if _, err := h.Service().BoundPhone(ctx, "carol"); !errors.Is(err, otp.ErrNoBoundPhone) {
			t.Fatalf("carol's number after the reset: %v, want none", err)
		}
		a := e.audit(t, "operator_reset_number")
		if len(a) != 1 || a[0]["phone"] != "+81 90-****-5678" || a[0]["identity"] != "carol" {
			t.Fatalf("audit entries %v", a)
		}
		if _, _, err := e.run(t, "reset-number", "carol"); err == nil || !strings.Contains(err.Error(), "no enrolled number") {
			t.Fatalf("a second reset: %v, want no enrolled number", err)
		}
	})

	t.Run("send-test sends exactly one message, with no code, counted in the budget", func(t *testing.T) {
		sent := len(e.outboxLines(t))
		budget, err := h.Service().DailyBudget(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := e.mustRun(t, "send-test", "--to", "090-2222-3333", "--locale", "ja")
		if !strings.Contains(out, "sent a test message to +81 90-****-3333 through console") || strings.Contains(out, "22223333") {
			t.Errorf("output %q", out)
		}
		lines := e.outboxLines(t)
		if len(lines) != sent+1 {
			t.Fatalf("%d messages in the outbox, want %d", len(lines), sent+1)
		}
		m := lines[len(lines)-1]
		if m["to"] != "+819022223333" || m["locale"] != "ja" || regexp.MustCompile(`[0-9]{4}`).MatchString(m["body"].(string)) {
			t.Fatalf("message %v: want one to +819022223333 in Japanese, with no code", m)
		}
		after, err := h.Service().DailyBudget(ctx)
		if err != nil || after.Used != budget.Used+1 {
			t.Fatalf("budget %+v after the test message, was %+v: want one more used", after, budget)
		}
		a := e.audit(t, "operator_send_test")
		if len(a) != 1 || a[0]["phone"] != "+81 90-****-3333" || a[0]["gateway"] != "console" {
			t.Fatalf("audit entries %v", a)
		}
	})

	t.Run("send-test refuses an IP phone (050) with the policy's reason", func(t *testing.T) {
		sent := len(e.outboxLines(t))
		_, errOut, err := e.run(t, "send-test", "--to", "050-1234-5678")
		if err == nil || !strings.Contains(err.Error(), "numbers of type voip are not accepted") || !strings.Contains(errOut, "+81 50-****-5678") {
			t.Fatalf("050: %v\n%s", err, errOut)
		}
		if n := len(e.outboxLines(t)); n != sent {
			t.Fatalf("%d messages in the outbox after a refusal, want %d", n, sent)
		}
	})

	t.Run("reset-budget zeroes today's counter", func(t *testing.T) {
		before, err := h.Service().DailyBudget(ctx)
		if err != nil || before.Used == 0 {
			t.Fatalf("budget before: %+v, %v; the earlier sends should have used some", before, err)
		}
		out := e.mustRun(t, "reset-budget")
		if !strings.Contains(out, "daily budget reset: "+strconv.Itoa(before.Used)+" of 50 were used today") {
			t.Errorf("output %q", out)
		}
		if after, err := h.Service().DailyBudget(ctx); err != nil || after.Used != 0 {
			t.Fatalf("budget after the reset: %+v, %v; want 0 used", after, err)
		}
		if a := e.audit(t, "operator_reset_budget"); len(a) != 1 || a[0]["used_before"] != float64(before.Used) {
			t.Fatalf("audit entries %v", a)
		}
	})

	t.Run("--json prints a change's result as the admin API answers it", func(t *testing.T) {
		var res struct {
			Identity          string    `json:"identity"`
			NotBefore         time.Time `json:"not_before"`
			RevocationRefresh string    `json:"revocation_refresh"`
		}
		if err := json.Unmarshal([]byte(e.mustRun(t, "revoke", "grace", "--json")), &res); err != nil {
			t.Fatal(err)
		}
		nb, err := h.Service().NotBefore(ctx, "grace")
		if err != nil || res.Identity != "grace" || !res.NotBefore.Equal(nb) || res.RevocationRefresh != "10s" {
			t.Fatalf("revoke --json: %+v; want grace, the stored not-before %s, 10s (%v)", res, nb, err)
		}
	})

	t.Run("status of one identity shows its counters, number and not-before", func(t *testing.T) {
		e.lockOut(t, h, "erin", "+819011110005")
		if err := h.Service().BindPhone(ctx, "erin", phone(t, h, "+819011110005"), 1); err != nil {
			t.Fatal(err)
		}
		out := e.mustRun(t, "status", "erin")
		for _, want := range []string{"wrong codes   2 in a row", "locked until  20", "codes sent    1 recently", "+81 90-****-0005 (enrolled)", "not before    none"} {
			if !strings.Contains(out, want) {
				t.Errorf("status erin lacks %q:\n%s", want, out)
			}
		}
		out = e.mustRun(t, "status", "bob")
		if !strings.Contains(out, "not before    20") || !strings.Contains(out, "locked until  not locked") {
			t.Errorf("status bob:\n%s", out)
		}
	})

	t.Run("no audit entry carries a full number or a code", func(t *testing.T) {
		raw, err := os.ReadFile(e.logFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, full := range []string{"819012345678", "819022223333", "9011110005"} {
			if strings.Contains(string(raw), full) {
				t.Errorf("the log shows the full number %s", full)
			}
		}
		for _, l := range jsonLines(t, e.logFile) {
			if l["logger"] == "sms_stepup.operator" && sixDigits.MatchString(l["msg"].(string)) {
				t.Errorf("audit entry %v looks like it carries a code", l)
			}
		}
	})
}

func TestOperatorStoreUnreachable(t *testing.T) {
	closed := redistest.FreePort(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		// Accept and never answer, as a hung Redis.
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	for _, tc := range []struct {
		name, store, addr string
	}{
		{"a closed port", "redis redis://127.0.0.1:" + strconv.Itoa(closed) + "/0", "127.0.0.1:" + strconv.Itoa(closed)},
		{"a server that never answers", "redis {\n\t\t\turl redis://" + silent.Addr().String() + "/0\n\t\t\tcommand_timeout 200ms\n\t\t\tdial_timeout 200ms\n\t\t}", silent.Addr().String()},
	} {
		t.Run(tc.name+" gives one clear line naming it", func(t *testing.T) {
			e := newOpEnv(t, tc.store, opSigningKey)
			for _, args := range [][]string{{"unlock", "alice"}, {"revoke", "alice"}, {"reset-budget"}, {"send-test", "--to", "09012345678"}, {"status"}} {
				out, errOut, err := e.run(t, args...)
				if err == nil {
					t.Fatalf("%v: no error\n%s", args, out)
				}
				msg := err.Error()
				if !strings.Contains(msg, "store redis at "+tc.addr) || !strings.Contains(msg, "unreachable") || strings.Contains(msg, "\n") {
					t.Errorf("%v: error %q, want one line naming the store at %s", args, msg, tc.addr)
				}
				if !strings.Contains(errOut, "Error: store redis at "+tc.addr) || strings.Contains(errOut, "goroutine") {
					t.Errorf("%v: stderr %q", args, errOut)
				}
			}
			if n := len(e.outboxLines(t)); n != 0 {
				t.Fatalf("%d messages sent with the store down, want 0", n)
			}
		})
	}
}

// TestOperatorMemoryStoreNeedsTheRunningCaddy: with the memory store the
// commands go to the running Caddy's admin endpoint (admin_test.go runs
// them against one); without one there they say what to do.
func TestOperatorMemoryStoreNeedsTheRunningCaddy(t *testing.T) {
	commands := [][]string{{"unlock", "alice"}, {"revoke", "alice"}, {"reset-number", "alice"}, {"reset-budget"}, {"status"}, {"status", "alice"}, {"send-test", "--to", "09012345678"}}
	t.Run("a config with the admin endpoint off", func(t *testing.T) {
		e := newOpEnv(t, "memory", opSigningKey)
		for _, args := range commands {
			_, _, err := e.run(t, args...)
			if err == nil || !strings.Contains(err.Error(), "handler #0 (/_stepup on app.example.com) uses the in-process memory store, which lives inside the running Caddy, and "+e.config+" turns Caddy's admin endpoint off (admin off)") ||
				!strings.Contains(err.Error(), "or use `store redis`") {
				t.Fatalf("%v: %v, want the admin endpoint's absence explained", args, err)
			}
		}
	})
	closed := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	t.Run("no Caddy at the config's admin address", func(t *testing.T) {
		e := newOpEnv(t, "memory", opSigningKey)
		raw, err := os.ReadFile(e.config)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.config, bytes.Replace(raw, []byte("admin off"), []byte("admin "+closed), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range commands {
			out, errOut, err := e.run(t, args...)
			if err == nil || !strings.HasPrefix(err.Error(), "no running Caddy answered at "+closed+" (") ||
				!strings.HasSuffix(err.Error(), "; the memory store of handler #0 (/_stepup on app.example.com) lives inside it: start Caddy, or use `store redis`") {
				t.Fatalf("%v: %v, want no running Caddy at %s explained", args, err, closed)
			}
			if out != "" || !strings.HasPrefix(errOut, "Error: no running Caddy answered at ") || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("%v: stdout %q, stderr %q: want one error line", args, out, errOut)
			}
		}
	})
	t.Run("--address names the admin endpoint whatever the config says", func(t *testing.T) {
		e := newOpEnv(t, "memory", opSigningKey)
		_, _, err := e.run(t, "unlock", "alice", "--address", closed)
		if err == nil || !strings.HasPrefix(err.Error(), "no running Caddy answered at "+closed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a Caddy there without the plugin's admin API", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		defer srv.Close()
		e := newOpEnv(t, "memory", opSigningKey)
		addr := strings.TrimPrefix(srv.URL, "http://")
		_, _, err := e.run(t, "unlock", "alice", "--address", addr)
		if err == nil || err.Error() != "the Caddy at "+addr+" has no sms_stepup admin API (HTTP 404 for /sms-stepup/unlock): it runs without this plugin, or an older version of it; run the Caddy built with it" {
			t.Fatalf("got %v", err)
		}
	})
}

func TestOperatorWithoutSigningKeyNeverInventsOne(t *testing.T) {
	r := redistest.Start(t)
	e := newOpEnv(t, "redis redis://"+r.Addr+"/0", "")
	_, _, err := e.run(t, "reset-budget")
	if err == nil || !strings.Contains(err.Error(), "has no signing_key and Caddy's storage at "+filepath.Join(e.dir, "storage")+" holds no generated one") {
		t.Fatalf("no key anywhere: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "storage", "sms_stepup", "signing_key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the command wrote a signing key into storage: %v", err)
	}

	// Once the server has generated one, the commands use it: the budget
	// the server counted is the one they see.
	srv := newStorageKeyServer(t, e, r.Addr)
	if _, err := srv.Service().SendTest(t.Context(), phone(t, srv, "+819033334444"), "en"); err != nil {
		t.Fatal(err)
	}
	if out := e.mustRun(t, "status"); !strings.Contains(out, "1 used, 49 left of 50") {
		t.Fatalf("status with the generated key:\n%s", out)
	}
}

// newStorageKeyServer provisions the handler with the config's storage, as
// a server without signing_key does, which generates a key into it.
func newStorageKeyServer(t *testing.T, e *opEnv, redisAddr string) *caddymodule.Handler {
	t.Helper()
	storage := json.RawMessage(`{"module":"file_system","root":` + strconv.Quote(filepath.Join(e.dir, "storage")) + `}`)
	base, err := caddy.ProvisionContext(&caddy.Config{StorageRaw: storage})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(base)
	t.Cleanup(cancel)
	raw := `{"identity":"{http.auth.user.id}","enroll":true,"limits":{"daily_budget":50},"store":{"type":"redis","url":"redis://` + redisAddr + `/0"},"gateway":{"type":"console","outbox":` + strconv.Quote(e.outbox) + `}}`
	mod, err := ctx.LoadModuleByID("http.handlers.sms_stepup", json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "storage", "sms_stepup", "signing_key")); err != nil {
		t.Fatalf("the server generated no key into storage: %v", err)
	}
	return mod.(*caddymodule.Handler)
}

func TestOperatorHandlerChoice(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "caddy.json")
	handler := func(prefix, store string) string {
		return `{"handler":"sms_stepup","identity":"{http.auth.user.id}","enroll":true,"signing_key":"` + opSigningKey + `","path_prefix":"` + prefix + `","store":` + store + `}`
	}
	closed := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	cfg := `{"admin":{"listen":"` + closed + `"},"apps":{"http":{"servers":{"b":{"listen":[":8443"],"routes":[
		{"handle":[` + handler("/_other", `{"type":"memory"}`) + `]}]},
		"a":{"listen":[":8080"],"routes":[
		{"match":[{"host":["app.example.com"]}],"handle":[{"handler":"subroute","routes":[
			{"match":[{"path":["/admin*"]}],"handle":[{"handler":"subroute","routes":[{"handle":[` + handler("/_stepup", `{"type":"redis","url":"redis://:hunter2@10.0.0.5:6379/0"}`) + `]}]}]}]}]},
		{"match":[{"host":["b.example.com"]}],"handle":[` + handler("/_stepup", `{"type":"memory"}`) + `]}]}}}}}`
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runOperator(t, "status", "--config", config)
	if err == nil {
		t.Fatal("several handlers and no --handler: no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"has 3 sms_stepup handlers; choose one with --handler",
		"0  /_stepup  app.example.com  server a  store redis redis://10.0.0.5:6379/0",
		"1  /_stepup  b.example.com    server a  store memory",
		"2  /_other   any host         server b  store memory",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the list lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("the list shows the Redis password:\n%s", msg)
	}
	for _, tc := range []struct{ pick, err string }{
		{"2", "no running Caddy answered at " + closed + " (connect: connection refused); the memory store of handler #2 (/_other) lives inside it"},
		{"/_other", "the memory store of handler #2 (/_other) lives inside it"},
		{"1", "the memory store of handler #1 (/_stepup on b.example.com) lives inside it"},
		{"/_stepup", "2 handlers have that path_prefix; choose one by number"},
		{"/_nope", "no sms_stepup handler has that path_prefix"},
		{"7", "expected a number from 0 to 2"},
	} {
		_, _, err := runOperator(t, "status", "--config", config, "--handler", tc.pick)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("--handler %s: %v, want %q", tc.pick, err, tc.err)
		}
	}
}

func TestOperatorHelp(t *testing.T) {
	out, _, err := runOperator(t, "--help")
	if err != nil || !strings.Contains(out, "Operator commands for the sms_stepup handler") {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, tc := range []struct{ sub, want string }{
		{"unlock", "caddy sms-stepup unlock alice"},
		{"revoke", "revocation refresh"},
		{"reset-number", "prints the old number masked"},
		{"reset-budget", "back to zero"},
		{"status", "--json"},
		{"send-test", "--to <number>"},
		{"keygen", "--ed25519"},
	} {
		out, _, err := runOperator(t, tc.sub, "--help")
		if err != nil || !strings.Contains(out, tc.want) || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--config") {
			t.Errorf("%s --help: %v, want help with %q, examples and the config flag:\n%s", tc.sub, err, tc.want, out)
		}
	}
	if _, _, err := runOperator(t, "unlock"); err == nil || !strings.Contains(err.Error(), "expected one identity: caddy sms-stepup unlock <identity>") {
		t.Errorf("unlock without identity: %v", err)
	}
	if _, _, err := runOperator(t, "status", " "); err == nil || err.Error() != "expected at most one identity: caddy sms-stepup status [<identity>]" {
		t.Errorf("status with a blank identity: %v", err)
	}
}

func TestOperatorKeygen(t *testing.T) {
	t.Run("the HMAC key is one the handler accepts, with the kid printed", func(t *testing.T) {
		out, errOut, err := runOperator(t, "keygen")
		if err != nil {
			t.Fatal(err)
		}
		key := strings.TrimSpace(out)
		if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 32 || strings.Count(out, "\n") != 1 {
			t.Fatalf("keygen printed %q: want 32 bytes in base64 on one line", out)
		}
		h := provisionHandlerJSON(t, `{"identity":"{http.auth.user.id}","enroll":true,"signing_key":"`+key+`"}`)
		if !strings.Contains(errOut, "kid "+h.Service().Keys().ID) {
			t.Fatalf("stderr %q, want the handler's kid %s", errOut, h.Service().Keys().ID)
		}
		again, _, _ := runOperator(t, "keygen")
		if again == out {
			t.Fatal("two keys are the same")
		}
	})
	t.Run("the Ed25519 key is a 0600 PEM file signing_key_file accepts", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "stepup.pem")
		out, _, err := runOperator(t, "keygen", "--ed25519", "--out", path)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
		}
		kid, err := edKeyID(path)
		if err != nil || !strings.Contains(out, "kid "+kid) {
			t.Fatalf("key file: %v; output %q, want kid %s", err, out, kid)
		}
		provisionHandlerJSON(t, `{"identity":"{http.auth.user.id}","enroll":true,"signing_key":"`+opSigningKey+`","signing_key_file":`+strconv.Quote(path)+`}`)
		before, _ := os.ReadFile(path)
		if _, _, err := runOperator(t, "keygen", "--ed25519", "--out", path); err == nil || !strings.Contains(err.Error(), "never overwrites") {
			t.Fatalf("keygen over an existing file: %v", err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Fatal("the existing key file changed")
		}
	})
	t.Run("--ed25519 needs --out", func(t *testing.T) {
		if _, _, err := runOperator(t, "keygen", "--ed25519"); err == nil || !strings.Contains(err.Error(), "needs --out") {
			t.Fatalf("got %v", err)
		}
	})
}

// edKeyID reads an Ed25519 private key in PKCS#8 PEM, as signing_key_file
// takes it, and returns its kid.
func edKeyID(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	block, rest := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return "", errors.New("not one PEM block of type PRIVATE KEY")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", err
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return "", fmt.Errorf("a %T, not an Ed25519 key", key)
	}
	return otp.NewEdKey(priv.Public().(ed25519.PublicKey), priv).ID, nil
}

// sharedRedisStore is a store on the Redis at addr, as another instance
// sharing it has, to set up state the handler's service can't make.
func sharedRedisStore(t *testing.T, addr string) otp.Store {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	mod, err := ctx.LoadModuleByID("sms_stepup.stores.redis", json.RawMessage(`{"url":"redis://`+addr+`/0"}`))
	if err != nil {
		t.Fatal(err)
	}
	return mod.(otp.Store)
}

// provisionHandlerJSON provisions a handler from its JSON, memory store.
func provisionHandlerJSON(t *testing.T, raw string) *caddymodule.Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	mod, err := ctx.LoadModuleByID("http.handlers.sms_stepup", json.RawMessage(raw))
	if err != nil {
		t.Fatalf("the handler refused the key: %v", err)
	}
	return mod.(*caddymodule.Handler)
}

// TestOperatorCommandInCaddyBinary builds cmd/caddy and runs the command
// through it, to prove it is registered and exits non-zero on failure.
func TestOperatorCommandInCaddyBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Caddy")
	}
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "caddy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	build.Dir = filepath.Dir(strings.TrimSpace(string(root)))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build caddy: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "sms-stepup", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "reset-number") || !strings.Contains(string(out), "send-test") {
		t.Fatalf("caddy sms-stepup --help: %v\n%s", err, out)
	}
	closed := redistest.FreePort(t)
	e := newOpEnv(t, "redis redis://127.0.0.1:"+strconv.Itoa(closed)+"/0", opSigningKey)
	cmd := exec.Command(bin, "sms-stepup", "unlock", "alice", "--config", e.config)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("unlock with the store down: %v, want a non-zero exit\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Error: store redis at 127.0.0.1:"+strconv.Itoa(closed)+" db 0 is unreachable") ||
		strings.Contains(stderr.String(), "goroutine") || stdout.Len() != 0 {
		t.Fatalf("stderr %q, stdout %q: want one clear error line", stderr.String(), stdout.String())
	}
}

// TestOperatorStatusGatewayHealth: status asks each gateway of a failover
// for its health without sending anything, and shows it.
func TestOperatorStatusGatewayHealth(t *testing.T) {
	r := redistest.Start(t)
	var kannelHits, twilioHits atomic.Int64
	kannel := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		kannelHits.Add(1)
		if req.URL.Query().Has("to") || req.URL.Query().Has("text") {
			t.Errorf("the Kannel health check asked to send: %s", req.URL.RawQuery)
		}
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "Missing receiver number, rejected")
	}))
	defer kannel.Close()
	twilio := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		twilioHits.Add(1)
		if req.Method != http.MethodGet || req.URL.Path != "/2010-04-01/Accounts/AC00000000000000000000000000000001.json" {
			t.Errorf("the Twilio health check did %s %s", req.Method, req.URL.Path)
		}
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"code":20003,"message":"Authenticate","status":401}`)
	}))
	defer twilio.Close()
	gateway := "failover {\n\t\t\tkannel {\n\t\t\t\turl " + kannel.URL + "/cgi-bin/sendsms\n\t\t\t\tusername u\n\t\t\t\tpassword p\n\t\t\t}\n" +
		"\t\t\ttwilio {\n\t\t\t\taccount_sid AC00000000000000000000000000000001\n\t\t\t\tauth_token secret-token\n\t\t\t\tfrom +12025550100\n\t\t\t\tbase_url " + twilio.URL + "\n\t\t\t}\n" +
		"\t\t\thttp {\n\t\t\t\turl https://sms.example.net/send\n\t\t\t\tbody `{{json .Text}}`\n\t\t\t}\n\t\t}"
	e := newOpEnvGateway(t, "redis redis://"+r.Addr+"/0", opSigningKey, gateway)
	out := e.mustRun(t, "status")
	for _, want := range []string{
		"gateway       failover: ok",
		"kannel: ok",
		"twilio: down (twilio: Twilio refused the account SID and auth token (HTTP 401: Authenticate, code 20003))",
		"http: unknown (this gateway has no check that sends nothing)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret-token") {
		t.Errorf("status shows the auth token:\n%s", out)
	}
	if kannelHits.Load() != 1 || twilioHits.Load() != 1 {
		t.Errorf("Kannel was asked %d times and Twilio %d, want once each", kannelHits.Load(), twilioHits.Load())
	}
}

func TestOperatorUnsetPlaceholderSaysWhatToDo(t *testing.T) {
	e := newOpEnv(t, "redis redis://127.0.0.1:1/0", "{env.STEPUP_OPERATOR_TEST_UNSET_KEY}")
	_, _, err := e.run(t, "status")
	if err == nil || !strings.Contains(err.Error(), "is the variable set?") || !strings.Contains(err.Error(), "run them with the server's environment") {
		t.Fatalf("got %v, want the unset placeholder named and the server's environment asked for", err)
	}
}
