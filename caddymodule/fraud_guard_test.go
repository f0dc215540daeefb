package caddymodule_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// These tests run the fraud guard, with its defaults, in a real Caddy: a
// run of unverified sends to one number range is blocked after min_sends
// (10), the user is told the number can't receive codes (in English and
// Japanese), the block is audited and counted, `status` lists it, and
// `unblock` lifts it.

// fgNumbers are numbers of one prefix (+81901234) and range (+819012).
func fgNumber(i int) string { return fmt.Sprintf("+8190123450%02d", i) }

func TestFraudGuardBlocksAnUnverifiedRangeOnMemory(t *testing.T) {
	fgFlow(t, "")
}

func TestFraudGuardBlocksAnUnverifiedRangeOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	fgFlow(t, "store redis redis://"+srv.Addr+" {\n\t\t\tkey_prefix fg:\n\t\t}")
}

func fgFlow(t *testing.T, storeLine string) {
	t.Setenv("USER", "fg-ops")
	dir := t.TempDir()
	var phones strings.Builder
	for i := range 12 {
		fmt.Fprintf(&phones, "fg-%d,%s\n", i, fgNumber(i))
	}
	phoneFile := filepath.Join(dir, "phones.csv")
	if err := os.WriteFile(phoneFile, []byte(phones.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "caddy.log")
	e := itStart(t, itSite{Key: itKey, FraudGuard: true, Phones: phoneFile, StoreLine: storeLine,
		Global: "\tlog {\n\t\toutput file " + logFile + "\n\t\tformat json\n\t}"})
	a := &adEnv{itEnv: e, logFile: logFile}
	a.config = a.writeConfig(e.site)
	blocksBefore := fgMetric(t, `caddy_sms_stepup_fraud_guard_blocks_total{kind="prefix"}`)
	refusedBefore := fgMetric(t, `caddy_sms_stepup_fraud_guard_refused_total{kind="prefix"}`)

	// Ten sends, none verified: each goes out, and the tenth blocks the
	// prefix and the range.
	for i := range 10 {
		fgSend(t, e.browser(fmt.Sprintf("fg-%d", i)))
	}
	sent := len(e.messages())
	late := e.browser("fg-10")
	resp, body := rlSend(late)
	itWantStatus(t, "the eleventh send to the range", resp, body, http.StatusTooManyRequests)
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 3000 || n > 3600 {
		t.Errorf("Retry-After %q, want about an hour (the first block)", resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(body, "receive codes right now") {
		t.Errorf("the refused send's page does not say the number can't receive codes right now:\n%s", itShort(body))
	}
	if len(e.messages()) != sent {
		t.Fatal("a send the fraud guard refused reached the gateway")
	}
	f := late.stepUpPage("/settings")
	resp, body = late.post("/_stepup/send?lang=ja", map[string][]string{"csrf": {f["csrf"]}, "r": {f["r"]}}, late.origin(), "Accept-Language: ja")
	itWantStatus(t, "a refused send in Japanese", resp, body, http.StatusTooManyRequests)
	if !strings.Contains(body, "現在コードを送信できません") {
		t.Errorf("the Japanese page does not say the number can't receive codes:\n%s", itShort(body))
	}
	if got := fgMetric(t, `caddy_sms_stepup_fraud_guard_blocks_total{kind="prefix"}`); got != blocksBefore+1 {
		t.Errorf("fraud_guard_blocks_total{prefix} went from %v to %v, want one more", blocksBefore, got)
	}
	if got := fgMetric(t, `caddy_sms_stepup_fraud_guard_refused_total{kind="prefix"}`); got < refusedBefore+2 {
		t.Errorf("fraud_guard_refused_total{prefix} went from %v to %v, want two more", refusedBefore, got)
	}
	fgWantAudit(t, logFile)

	out := a.mustRun(t, "status")
	for _, want := range []string{"on, 2 blocks in force", "prefix:+81901234xxxx", "range:+819012xxxxxx"} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not say %q:\n%s", want, out)
		}
	}
	if out := a.mustRun(t, "unblock", "+81901234xxxx"); !strings.Contains(out, "lifted prefix:+81901234xxxx") ||
		!strings.Contains(out, "still blocked: range:+819012xxxxxx until ") || !strings.Contains(out, "(caddy sms-stepup unblock +819012)") {
		t.Errorf("unblock of the prefix does not say the range still blocks it: %s", out)
	}
	if _, _, err := a.run(t, "unblock", "+8190123"); err == nil || !strings.Contains(err.Error(), "no fraud guard block on +8190123 itself; it is covered by range:+819012xxxxxx") {
		t.Errorf("an unblock of a prefix only a range blocks: %v, want the range named", err)
	}
	if resp, body := rlSend(late); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("with the range still blocked, a send got %d %s", resp.StatusCode, itShort(body))
	}
	a.mustRun(t, "unblock", "+819012")
	if out := a.mustRun(t, "status"); !strings.Contains(out, "on, 0 blocks in force") {
		t.Errorf("status after unblocking both:\n%s", out)
	}
	if _, _, err := a.run(t, "unblock", "+819012"); err == nil || !strings.Contains(err.Error(), "no fraud guard block on +819012") {
		t.Errorf("a second unblock: %v, want no block", err)
	}
	if storeLine != "" {
		fgRunningInstanceUnblocks(t)
	}
	fgSend(t, late)
	if audits := a.audit(t, "operator_unblock"); len(audits) != 4 || audits[0]["target"] != "+81901234" || audits[1]["result"] != "failed" {
		t.Errorf("operator_unblock audit entries: %v", audits)
	}
}

// fgRunningInstanceUnblocks runs the unblocks on the running Caddy's own
// service as well. On a shared store the command acted from here, as
// another instance would: the running Caddy repeats the store's refusals
// it holds until its hold ends (otp.RefusalHold, otp/refusal_memo.go), and
// hears of an unblock made elsewhere only then; its own unblock (what the
// admin API runs) drops them at once, as this does, without a second audit
// entry. The store's blocks are lifted already: the service answers
// ErrNotBlocked, and forgets what it held all the same.
func fgRunningInstanceUnblocks(t *testing.T) {
	t.Helper()
	entry, _, err := caddymodule.FindLive("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer entry.Release()
	for _, target := range []string{"+81901234", "+819012"} {
		if _, err := entry.Handler().Service().Unblock(t.Context(), target); !errors.Is(err, otp.ErrNotBlocked) {
			t.Fatalf("the running instance's unblock of %s after the command's: %v, want ErrNotBlocked", target, err)
		}
	}
}

// fgSend asks for a code, which must go out to b's own number.
func fgSend(t *testing.T, b *itBrowser) {
	t.Helper()
	before := len(b.e.messages())
	resp, body := rlSend(b)
	itWantStatus(t, "send", resp, body, http.StatusSeeOther)
	if n := len(b.e.messages()); n != before+1 {
		t.Fatalf("send wrote %d messages, want 1", n-before)
	}
}

// fgWantAudit checks the log: the block and the refusals are audited with
// the population masked, and no number is written whole.
func fgWantAudit(t *testing.T, logFile string) {
	t.Helper()
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	log := string(raw)
	for _, want := range []string{`"event":"fraud_guard_block"`, `"scope":"prefix:+81901234xxxx"`, `"scope":"range:+819012xxxxxx"`,
		`"event":"send_refused"`, `"reason":"fraud_guard"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	if strings.Contains(log, "8190123450") {
		t.Error("the log holds a whole number")
	}
}

// fgMetric reads one sample from the admin endpoint's /metrics (0 when it
// is not there yet).
func fgMetric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", itPorts.Admin))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}
