package caddymodule

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func TestFailoverGatewayCaddyfile(t *testing.T) {
	t.Parallel()
	var g FailoverGateway
	err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`failover {
		twilio {
			account_sid AC0123456789abcdef0123456789abcdef
			auth_token {env.TWILIO_TOKEN}
			from +15005550006
		}
		console
		failure_threshold 2
		open_for 1m
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if g.FailureThreshold != 2 || time.Duration(g.OpenFor) != time.Minute || len(g.GatewaysRaw) != 2 {
		t.Fatalf("parsed %+v", g)
	}
	var first, second map[string]any
	if err := json.Unmarshal(g.GatewaysRaw[0], &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(g.GatewaysRaw[1], &second); err != nil {
		t.Fatal(err)
	}
	if first["type"] != "twilio" || first["from"] != "+15005550006" || second["type"] != "console" {
		t.Fatalf("gateways in the wrong order or shape: %v %v", first, second)
	}

	for _, tc := range []struct{ name, input, err string }{
		{"an empty chain is refused", "failover {\n}", "expected at least one gateway"},
		{"an unknown gateway is named", "failover {\n\tcarrier_pigeon\n}", `unknown gateway "carrier_pigeon"`},
		{"a threshold out of range is refused", "failover {\n\tconsole\n\tfailure_threshold 0\n}", "failure_threshold"},
		{"a member's own mistake is reported with its line", "failover {\n\tconsole {\n\t\tinbox x\n\t}\n}", "Testfile:3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g FailoverGateway
			err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}

func TestFailoverGatewayProvision(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	t.Setenv("STEPUP_TEST_TWILIO_TOKEN", "0123456789abcdef0123456789abcdef")
	twilio := json.RawMessage(`{"type":"twilio","account_sid":"AC0123456789abcdef0123456789abcdef","auth_token":"{env.STEPUP_TEST_TWILIO_TOKEN}","messaging_service_sid":"MG0123456789abcdef0123456789abcdef","status_callback":true}`)
	console := json.RawMessage(`{"type":"console","outbox":"` + t.TempDir() + `/outbox"}`)

	t.Run("members load in order, and one that can't call makes a chain that can't", func(t *testing.T) {
		g := &FailoverGateway{GatewaysRaw: []json.RawMessage{twilio, console}}
		if err := g.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		caps := g.Capabilities()
		if caps.Voice != nil {
			t.Fatal("a Twilio gateway with only a messaging service can't place calls")
		}
		if caps.Receipts["twilio"] == nil {
			t.Fatal("the Twilio member asks for status callbacks, so it should take delivery reports")
		}
		if len(caps.Receipts) != 1 {
			t.Fatalf("receipts %v: the console gateway takes no delivery reports", caps.Receipts)
		}
		if h := otp.CheckHealth(t.Context(), "failover", g); len(h.Members) != 2 {
			t.Fatalf("health %+v: the chain's health should report each member", h)
		}
	})
	t.Run("the same gateway type twice is refused, since receipts route by type", func(t *testing.T) {
		g := &FailoverGateway{GatewaysRaw: []json.RawMessage{console, console}}
		if err := g.Provision(ctx); err == nil || !strings.Contains(err.Error(), "listed twice") {
			t.Fatalf("error %v", err)
		}
	})
}
