package caddymodule

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
)

// TestReadmeStripsThePluginCookiesOnTheWayUp adapts the README's
// header_up example with Caddy's own adapter and applies the header
// operations it yields, through Caddy's header module, to the Cookie
// headers a browser sends: the app's cookies must arrive as they were and
// none of the plugin's.
func TestReadmeStripsThePluginCookiesOnTheWayUp(t *testing.T) {
	t.Parallel()
	ops := readmeHeaderUp(t, "header_up Cookie")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	if err := ops.Provision(ctx); err != nil {
		t.Fatalf("the README's header_up does not provision: %v", err)
	}
	for _, c := range []struct{ sent, want []string }{
		{[]string{"session=abc; __Host-stepup=eyJ.x.y; theme=dark"}, []string{"session=abc; theme=dark"}},
		{[]string{"__Host-stepup=eyJ.x.y; session=abc"}, []string{"session=abc"}},
		{[]string{"session=abc; __Host-stepup_csrf=c1; __Host-stepup_challenge=ch; __Host-stepup=t"}, []string{"session=abc;"}},
		// HTTP/2 may send each cookie as a header line of its own.
		{[]string{"session=abc", "__Host-stepup=t", "__Host-stepup_csrf=c1"}, []string{"session=abc", "", ""}},
		{[]string{"session=abc; stepup_note=kept"}, []string{"session=abc; stepup_note=kept"}},
	} {
		hdr := http.Header{"Cookie": append([]string(nil), c.sent...)}
		ops.ApplyTo(hdr, caddy.NewReplacer())
		got := hdr["Cookie"]
		if len(got) != len(c.want) {
			t.Errorf("Cookie %q became %q, want %q", c.sent, got, c.want)
			continue
		}
		for i := range got {
			if strings.TrimSpace(got[i]) != c.want[i] {
				t.Errorf("Cookie %q became %q, want %q", c.sent, got, c.want)
				break
			}
		}
		for _, v := range got {
			if strings.Contains(v, "__Host-stepup") {
				t.Errorf("Cookie %q still carries a plugin cookie upstream: %q", c.sent, v)
			}
		}
	}
}

// readmeHeaderUp adapts the README's caddyfile block holding marker and
// returns the request header operations of its reverse_proxy.
func readmeHeaderUp(t *testing.T, marker string) *headers.HeaderOps {
	t.Helper()
	block := readmeCaddyfileBlock(t, func(b string) bool { return strings.Contains(b, marker) })
	if block == "" {
		t.Fatalf("the README has no caddyfile block with %q", marker)
	}
	site := "example.com {\n\t" + strings.ReplaceAll(strings.TrimRight(block, "\n"), "\n", "\n\t") + "\n}\n"
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site), map[string]any{"filename": "README.md"})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("the README's example does not adapt: %v %v\n%s", err, warnings, block)
	}
	var found *headers.HeaderOps
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "reverse_proxy" {
				raw, _ := json.Marshal(v["headers"].(map[string]any)["request"])
				found = new(headers.HeaderOps)
				if err := json.Unmarshal(raw, found); err != nil {
					t.Fatal(err)
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	walk(cfg)
	if found == nil {
		t.Fatalf("the README's example has no reverse_proxy with header_up:\n%s", out)
	}
	return found
}
