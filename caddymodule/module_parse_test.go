package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// checkCaddyfileModule parses input into m, a fresh guest module, and
// checks what a row of a module's Caddyfile table test expects: the
// module's JSON (want), or an error containing wantErr.
func checkCaddyfileModule(t *testing.T, m caddyfile.Unmarshaler, input, want, wantErr string) {
	t.Helper()
	err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want one containing %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
