package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestExamplesAdapt keeps every example Caddyfile in examples/ valid: each
// adapts without error or warning and configures the sms_stepup handler.
func TestExamplesAdapt(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../examples/*.Caddyfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example Caddyfiles found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f)+" adapts cleanly", func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(body, map[string]any{"filename": f})
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) > 0 {
				t.Fatalf("warnings: %v", warnings)
			}
			if !strings.Contains(string(out), `"handler":"sms_stepup"`) {
				t.Fatal("no sms_stepup handler in the adapted config")
			}
		})
	}
}
