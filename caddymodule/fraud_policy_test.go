package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// TestFraudGuardPolicyFromTheConfig: on by default with the default region
// as home, off when asked, and each setting where the breaker reads it.
func TestFraudGuardPolicyFromTheConfig(t *testing.T) {
	t.Parallel()
	h := new(Handler)
	p := h.breakerPolicy()
	def := otp.DefaultBreakerPolicy()
	if !p.On() || p.Home != "JP" || p.MinSends != def.MinSends || p.MinConversion != def.MinConversion || p.Window != def.Window ||
		p.Block != def.Block || p.MaxBlock != def.MaxBlock {
		t.Errorf("the default policy %+v, want the breaker's defaults, on, home JP", p)
	}
	if h.otpConfig().Breaker.Home != "JP" {
		t.Error("the service's config does not carry the fraud guard")
	}
	h.DefaultRegion = "us"
	if p := h.breakerPolicy(); p.Home != "US" {
		t.Errorf("home %q with default_region us, want US", p.Home)
	}
	h.FraudGuard = &FraudGuardConfig{Off: true}
	if h.breakerPolicy().On() {
		t.Error("fraud_guard off left it on")
	}
	h.FraudGuard = &FraudGuardConfig{Window: caddy.Duration(2 * time.Hour), MinSends: 25, MinConversion: 0.5, Block: caddy.Duration(30 * time.Hour / 10)}
	p = h.breakerPolicy()
	if p.Window != 2*time.Hour || p.MinSends != 25 || p.MinConversion != 0.5 || p.Block != 3*time.Hour || p.MaxBlock != 24*time.Hour {
		t.Errorf("policy %+v from %+v", p, *h.FraudGuard)
	}
	if err := h.breakerPolicy().Validate(); err != nil {
		t.Errorf("a valid fraud_guard: %v", err)
	}
}

func TestMaskedScopeNeverShowsAWholeNumber(t *testing.T) {
	t.Parallel()
	for scope, want := range map[string]string{
		"prefix:+44740012": "prefix:+44740012xxxx",
		"range:+447400":    "range:+447400xxxxxx",
		"country:GB":       "country:GB",
	} {
		if got := MaskedScope(scope); got != want {
			t.Errorf("MaskedScope(%q) = %q, want %q", scope, got, want)
		}
	}
}

// TestReadmeFraudGuardExampleAdapts: the README's fraud_guard block adapts
// and shows the defaults, so it can't drift from them.
func TestReadmeFraudGuardExampleAdapts(t *testing.T) {
	t.Parallel()
	block := readmeCaddyfileBlock(t, func(b string) bool { return strings.HasPrefix(strings.TrimSpace(b), "fraud_guard {") })
	if block == "" {
		t.Fatal("the README shows no fraud_guard block")
	}
	d := caddyfile.NewTestDispenser(block)
	d.Next()
	fg, err := parseFraudGuard(d, map[string]caddyfile.Token{})
	if err != nil {
		t.Fatalf("the README's fraud_guard block: %v\n%s", err, block)
	}
	h := new(Handler)
	h.FraudGuard = fg
	def := new(Handler).breakerPolicy()
	if got := h.breakerPolicy(); got.Window != def.Window || got.MinSends != def.MinSends || got.MinConversion != def.MinConversion ||
		got.Block != def.Block || got.MaxBlock != def.MaxBlock {
		t.Errorf("the README's block sets %+v, want the defaults %+v", got, def)
	}
}
