package caddymodule

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestClientIPSourceWarnsOncePerServerAndLoad: a server that trusts
// proxies without trusted_proxies_strict takes the client IP from the
// left of X-Forwarded-For, which the client writes (rule 12); the start
// says so once per server and config load, naming what to set.
// TestPerIPLimitBehindAnAppendingProxy shows the limit through a real
// Caddy.
func TestClientIPSourceWarnsOncePerServerAndLoad(t *testing.T) {
	t.Parallel()
	ranges := json.RawMessage(`{"source":"static","ranges":["10.0.0.0/8"]}`)
	lax := &caddyhttp.Server{Listen: []string{":443"}, TrustedProxiesRaw: ranges}
	strict := &caddyhttp.Server{Listen: []string{":8443"}, TrustedProxiesRaw: ranges, TrustedProxiesStrict: 1}
	untrusting := &caddyhttp.Server{Listen: []string{":80"}}
	core, logs := observer.New(zap.WarnLevel)
	provision := func(ctx caddy.Context, srv *caddyhttp.Server) {
		h := &Handler{logger: zap.New(core)}
		h.warnClientIPSource(ctx.WithValue(caddyhttp.ServerCtxKey, srv))
	}
	load, unload := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer unload()
	for _, srv := range []*caddyhttp.Server{lax, lax, strict, untrusting, lax} {
		provision(load, srv)
	}
	warnings := logs.FilterMessageSnippet("trusted_proxies_strict").All()
	if len(warnings) != 1 {
		t.Fatalf("three handlers on the lax server, one on a strict one and one on a server without trusted_proxies: %d warnings, want 1", len(warnings))
	}
	w := warnings[0]
	for _, want := range []string{"X-Forwarded-For", "limits { ip }", "add trusted_proxies_strict", "appends"} {
		if !strings.Contains(w.Message, want) {
			t.Errorf("the warning does not say %q:\n%s", want, w.Message)
		}
	}
	if listen, _ := w.ContextMap()["listen"].([]any); len(listen) != 1 || listen[0] != ":443" {
		t.Errorf("the warning names the servers %v, want [:443]", w.ContextMap()["listen"])
	}

	custom := &caddyhttp.Server{Listen: []string{":9443"}, TrustedProxiesRaw: ranges, ClientIPHeaders: []string{"CF-Connecting-IP", "X-Real-IP"}}
	provision(load, custom)
	if got := logs.FilterMessageSnippet("left-most address of CF-Connecting-IP, X-Real-IP").Len(); got != 1 {
		t.Errorf("a server with client_ip_headers: %d warnings naming its headers, want 1", got)
	}

	reload, unloadNew := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer unloadNew()
	provision(reload, lax)
	if got := logs.FilterMessageSnippet("trusted_proxies_strict").Len(); got != 3 {
		t.Errorf("after another config load: %d warnings in all, want 3", got)
	}
}

// TestReadmeBehindAProxyExampleAdapts adapts the README's "Behind a proxy"
// Caddyfile, so the README can't show one that fails to load, and checks
// that it sets what the section says it does.
func TestReadmeBehindAProxyExampleAdapts(t *testing.T) {
	t.Parallel()
	block := readmeCaddyfileBlock(t, func(b string) bool { return strings.Contains(b, "trusted_proxies_strict") })
	if block == "" {
		t.Fatal("the README has no caddyfile block with trusted_proxies_strict")
	}
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(block), map[string]any{"filename": "README.md"})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("the README's example does not adapt: %v %v\n%s", err, warnings, block)
	}
	for _, want := range []string{`"trusted_proxies_strict":1`, `"trusted_proxies":{"ranges":["10.0.0.0/8"],"source":"static"}`, `"handler":"sms_stepup"`, `"limits":{"ip":20}`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the adapted config lacks %s:\n%s", want, out)
		}
	}
}
