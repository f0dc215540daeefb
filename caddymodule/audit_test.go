package caddymodule

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// auEvents records the Caddy events the handler emits.
type auEvents struct {
	mu    sync.Mutex
	names []string
}

func (r *auEvents) Handle(_ context.Context, e caddy.Event) error {
	r.mu.Lock()
	r.names = append(r.names, e.Name())
	r.mu.Unlock()
	return nil
}

// TestAuditTrailMetricsAndEvents walks a flow with one wrong code and
// checks the three records of it: the log reads as a story without a code
// or a full number, the metrics count each step once, and every step is a
// Caddy event. Not parallel: the metrics are process-wide.
func TestAuditTrailMetricsAndEvents(t *testing.T) {
	e := htNew(t, nil, nil)
	core, logs := observer.New(zap.DebugLevel)
	e.h.logger = zap.New(core)
	// The bare context of htNew has no events app; give the handler one.
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	app := new(caddyevents.App)
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	rec := &auEvents{}
	if err := app.Subscribe(&caddyevents.Subscription{Handlers: []caddyevents.Handler{rec}}); err != nil {
		t.Fatal(err)
	}
	e.h.events, e.h.ctx = app, ctx
	sentBefore := testutil.ToFloat64(metrics.sends.WithLabelValues("console", "sent"))
	okBefore := testutil.ToFloat64(metrics.verifications.WithLabelValues("ok"))
	wrongBefore := testutil.ToFloat64(metrics.verifications.WithLabelValues("wrong_code"))

	b := e.browser("audit-alice")
	code := b.send()
	b.verify(htWrong(code))
	if w, _ := b.verify(code); w.Code != 303 {
		t.Fatalf("verify: %d", w.Code)
	}

	var story []string
	for _, entry := range logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			s := strings.ReplaceAll(fmt.Sprint(v), " ", "")
			if strings.Contains(s, code) && k != "challenge" {
				t.Errorf("log entry %q field %s holds the code", entry.Message, k)
			}
			if strings.Contains(s, "9012345678") {
				t.Errorf("log entry %q field %s holds the full number", entry.Message, k)
			}
		}
		if ev, ok := entry.ContextMap()["event"]; ok {
			story = append(story, ev.(string)+": "+line)
		}
	}
	want := []string{"send: code sent", "verify: verify failed: wrong code", "verify: step-up verified"}
	if strings.Join(story, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the audit trail reads\n%s\nwant\n%s", strings.Join(story, "\n"), strings.Join(want, "\n"))
	}
	for _, entry := range logs.All() {
		if entry.ContextMap()["event"] == "send" {
			m := entry.ContextMap()
			if m["identity"] != "audit-alice" || m["phone"] != "+81 90-****-5678" || m["client_ip"] != "192.0.2.10" || m["challenge"] == "" {
				t.Errorf("the send entry lacks who, where and which: %v", m)
			}
		}
	}

	if d := testutil.ToFloat64(metrics.sends.WithLabelValues("console", "sent")) - sentBefore; d != 1 {
		t.Errorf("sends_total{console,sent} grew by %v, want 1", d)
	}
	if d := testutil.ToFloat64(metrics.verifications.WithLabelValues("wrong_code")) - wrongBefore; d != 1 {
		t.Errorf("verifications_total{wrong_code} grew by %v, want 1", d)
	}
	if d := testutil.ToFloat64(metrics.verifications.WithLabelValues("ok")) - okBefore; d != 1 {
		t.Errorf("verifications_total{ok} grew by %v, want 1", d)
	}
	rec.mu.Lock()
	got := strings.Join(rec.names, ",")
	rec.mu.Unlock()
	if got != "sms_stepup_send,sms_stepup_verify,sms_stepup_verify" {
		t.Errorf("Caddy events %q", got)
	}
}

func TestLogSafe(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"alice":                   "alice",
		"山田太郎":                    "山田太郎",
		"evil\u202eadmin":         `evil\u202eadmin`,
		"a\u2066b\u2069c":         `a\u2066b\u2069c`,
		"next\u0085line":          `next\u0085line`,
		"para\u2029graph\u2028":   `para\u2029graph\u2028`,
		"\u200fmark\u061c":        `\u200fmark\u061c`,
		"keeps é, ß and 😀 intact": "keeps é, ß and 😀 intact",
	} {
		if got := logSafe(in); got != want {
			t.Errorf("logSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// An identity with a bidi override or a C1 control, as a client may bring
// it, is written to the log escaped: a log viewer shows what it is rather
// than acting on it (SECURITY.md rule 23).
func TestAuditEscapesBidiAndC1(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	var buf strings.Builder
	var mu sync.Mutex
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	e.h.logger = zap.New(zapcore.NewCore(enc, zapcore.AddSync(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})), zap.DebugLevel))
	b := e.browser("mallory\u202egnp.exe\u0085")
	b.send()
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, `"event":"send"`) {
		t.Fatalf("no send event in the log:\n%s", out)
	}
	if strings.ContainsRune(out, '\u202e') || strings.ContainsRune(out, '\u0085') {
		t.Fatalf("the log holds a raw bidi override or C1 control:\n%s", out)
	}
	if !strings.Contains(out, `mallory\\u202egnp.exe\\u0085`) {
		t.Fatalf("the identity is not in the log, escaped:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
