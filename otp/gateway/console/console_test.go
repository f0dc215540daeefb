package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/console"
)

const (
	number = "+819012345678"
	code   = "739214"
)

type fixedClock struct{ now time.Time }

func (c fixedClock) Now() time.Time { return c.now }

var sentAt = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

func message(ref string) otp.Message {
	return otp.Message{
		To:     number,
		Body:   "Example code: " + code + "\nIt expires in 5 min.\n\n@example.com #" + code,
		Locale: "en",
		Ref:    ref,
	}
}

// logged renders every entry the observer saw, message and fields, as text.
func logged(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintf(&b, "%s %v\n", e.Message, e.ContextMap())
	}
	return b.String()
}

func TestOutbox(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	outbox := filepath.Join(t.TempDir(), "outbox.jsonl")
	g := console.New(zap.New(core), outbox, fixedClock{sentAt})

	for _, ref := range []string{"challenge-1", "challenge-2"} {
		r, err := g.Send(t.Context(), message(ref))
		if err != nil {
			t.Fatal(err)
		}
		if r.Gateway != "console" {
			t.Fatalf("receipt %+v", r)
		}
	}

	f, err := os.Open(outbox)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []console.OutboxLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l console.OutboxLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	t.Run("each message is one JSON line with its number and body", func(t *testing.T) {
		if len(lines) != 2 {
			t.Fatalf("%d lines, want 2", len(lines))
		}
		for i, l := range lines {
			want := message(fmt.Sprintf("challenge-%d", i+1))
			if l.To != want.To || l.Body != want.Body || l.Locale != "en" || l.Ref != want.Ref || !l.Time.Equal(sentAt) {
				t.Fatalf("line %d: %+v, want %+v at %s", i, l, want, sentAt)
			}
		}
	})
	t.Run("the outbox is readable by its owner only", func(t *testing.T) {
		st, err := os.Stat(outbox)
		if err != nil {
			t.Fatal(err)
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			t.Fatalf("outbox mode %o is open to others", perm)
		}
	})
	t.Run("the log holds neither the code nor the number", func(t *testing.T) {
		text := logged(logs)
		if logs.Len() != 2 {
			t.Fatalf("%d log entries, want one per message:\n%s", logs.Len(), text)
		}
		for _, secret := range []string{code, number, "12345678", "5678"} {
			if strings.Contains(text, secret) {
				t.Fatalf("the log holds %q:\n%s", secret, text)
			}
		}
	})
}

func TestLogMode(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	g := console.New(zap.New(core), "", nil)
	if _, err := g.Send(t.Context(), message("challenge-1")); err != nil {
		t.Fatal(err)
	}
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d log entries, want 1", len(entries))
	}
	e := entries[0]
	if e.Level != zapcore.WarnLevel {
		t.Errorf("level %s, want warn: the code is in the log", e.Level)
	}
	fields := e.ContextMap()
	t.Run("the number is masked", func(t *testing.T) {
		if to := fields["to"]; to != otp.MaskE164(number) {
			t.Fatalf("to %v, want %s", to, otp.MaskE164(number))
		}
		if text := logged(logs); strings.Contains(text, number) || strings.Contains(text, "12345678") {
			t.Fatalf("the log holds the full number:\n%s", text)
		}
	})
	t.Run("the body is there for the developer", func(t *testing.T) {
		if body, _ := fields["body"].(string); !strings.Contains(body, code) {
			t.Fatalf("body %q lacks the code", body)
		}
	})
}

func TestSendFailures(t *testing.T) {
	t.Parallel()
	t.Run("a cancelled context sends nothing", func(t *testing.T) {
		t.Parallel()
		outbox := filepath.Join(t.TempDir(), "outbox.jsonl")
		g := console.New(nil, outbox, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := g.Send(ctx, message("challenge-1")); err == nil {
			t.Fatal("send with a cancelled context succeeded")
		}
		if _, err := os.Stat(outbox); !os.IsNotExist(err) {
			t.Fatalf("the outbox was written: %v", err)
		}
	})
	t.Run("an outbox that cannot be opened is an error", func(t *testing.T) {
		t.Parallel()
		g := console.New(nil, filepath.Join(t.TempDir(), "missing", "outbox.jsonl"), nil)
		if _, err := g.Send(t.Context(), message("challenge-1")); err == nil || !strings.Contains(err.Error(), "open outbox") {
			t.Fatalf("got %v, want an open outbox error", err)
		}
	})
}
