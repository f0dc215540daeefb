package caddymodule

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestMessageTemplatesAreCheckedAtProvision: a template that could take
// more SMS segments than allowed fails the config load, naming the locale
// and the count, instead of costing double on every send.
func TestMessageTemplatesAreCheckedAtProvision(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("確認", 31) + "{{.Code}}"
	for _, tc := range []struct {
		name string
		h    Handler
		err  string
	}{
		{"a Japanese template over 70 characters with max_segments 1 is refused",
			Handler{MessageOptions: MessageOptions{Messages: map[string]string{"ja": long}}}, "message ja is 72 UCS-2 characters, 2 SMS segments"},
		{"a template without the code is refused",
			Handler{MessageOptions: MessageOptions{Messages: map[string]string{"en": "Hello from {{.Service}}"}}}, "must show the code"},
		{"a WebOTP line that pushes Japanese past one segment is refused",
			Handler{MessageOptions: MessageOptions{WebOTPHost: "a-rather-long-host-name.example.com", ServiceName: "Example Corporation"}}, "more than max_segments 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := tc.h
			h.Identity, h.Phone, h.SigningKey = "{http.auth.user.id}", "{http.request.header.X-Phone}", strings.Repeat("k", 32)
			h.CodeLength = 10
			err := h.Provision(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("provision error %v, want %q", err, tc.err)
			}
		})
	}
	t.Run("the same Japanese template passes with max_segments 2", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		defer cancel()
		h := Handler{
			IdentityOptions: IdentityOptions{Identity: "{http.auth.user.id}", Phone: "{http.request.header.X-Phone}"},
			TokenOptions:    TokenOptions{SigningKey: strings.Repeat("k", 32)},
			MessageOptions:  MessageOptions{Messages: map[string]string{"ja": long}, MaxSegments: 2},
			CodeOptions:     CodeOptions{CodeLength: 10},
			StoreRaw:        []byte(`{"type":"memory","name":"messages-test"}`),
			GatewayRaw:      []byte(`{"type":"console","outbox":"` + t.TempDir() + `/o"}`),
		}
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
