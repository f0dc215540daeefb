package console_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/console"
)

func TestConsoleHealthIsAlwaysOK(t *testing.T) {
	t.Parallel()
	for _, g := range []*console.Gateway{console.New(nil, "", nil), console.New(nil, filepath.Join(t.TempDir(), "outbox.jsonl"), nil)} {
		if h := otp.CheckHealth(t.Context(), "console", g); h.Status != otp.HealthOK {
			t.Fatalf("console health %+v, want ok", h)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := console.New(nil, "", nil).Health(ctx); err == nil {
		t.Fatal("a cancelled check reported healthy")
	}
}
