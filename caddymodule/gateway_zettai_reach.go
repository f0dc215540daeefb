package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/zettaireach"
)

func init() {
	caddy.RegisterModule(ZettaiReachGateway{})
}

// ZettaiReachGateway sends codes through 絶対リーチ!SMS's CommonMT API
// (POST https://sms-api.aossms.com/p5/api/mt.json), to Japanese mobile
// numbers only: any other number is refused before a request is made, so
// a failover goes on to its next gateway (an international provider).
// Each code is one request, never retried; the provider's specification
// says any responseCode but 0 means it did not accept the message, so
// those let a failover go on, while an HTTP error other than 429, 401 or
// 403 stops it, since the message may have been taken.
//
// With dlr, and the handler's receipts_url set, each message carries its
// receipt token as clientTag, and the provider's DLR push (set up with the
// provider, in JSON, to {receipts_url}{path_prefix}/receipt/zettai_reach/push)
// brings the delivery result back. The health check reads the contract's
// registered templates: it sends nothing.
//
// Placeholders such as {env.ZETTAI_REACH_TOKEN} are expanded when the
// config loads; one that is empty or unknown is an error.
//
// Caddyfile:
//
//	gateway zettai_reach {
//		token     <32-character access key>
//		client_id <contract client ID>
//		sms_code  <sender SMS code>
//		base_url  <url>
//		timeout   <duration>
//		rate      <sends a second, 1-600>
//		dlr
//	}
type ZettaiReachGateway struct {
	// The account's access key (token). Use a placeholder such as
	// {env.ZETTAI_REACH_TOKEN} rather than the key itself.
	Token string `json:"token,omitempty"`
	// The contract client ID (clientId), digits.
	ClientID string `json:"client_id,omitempty"`
	// The sender SMS code (smsCode), 5 or 6 characters.
	SMSCode string `json:"sms_code,omitempty"`
	// Replaces https://sms-api.aossms.com, for a test server.
	BaseURL string `json:"base_url,omitempty"`
	// Time-out of one request. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// The provider's DLR push is set up to this gateway's receipt address.
	DLR bool `json:"dlr,omitempty"`
	// Sends a second this instance makes at most. The provider takes 600
	// a second for the whole account: instances sharing a contract split
	// it. Default: 600.
	Rate int `json:"rate,omitempty"`

	otp.Gateway `json:"-"`
	zr          *zettaireach.Gateway
}

// CaddyModule returns the Caddy module information.
func (ZettaiReachGateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sms_stepup.gateways.zettai_reach",
		New: func() caddy.Module { return new(ZettaiReachGateway) },
	}
}

// Provision expands placeholders and sets the gateway up.
func (g *ZettaiReachGateway) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	cfg := zettaireach.Config{Timeout: time.Duration(g.Timeout), DLR: g.DLR, RatePerSecond: g.Rate}
	for _, f := range []struct {
		opt      string
		from     string
		to       *string
		optional bool
	}{
		{"token", g.Token, &cfg.Token, false},
		{"client_id", g.ClientID, &cfg.ClientID, false},
		{"sms_code", g.SMSCode, &cfg.SMSCode, false},
		{"base_url", g.BaseURL, &cfg.BaseURL, true},
	} {
		if f.optional && f.from == "" {
			continue
		}
		v, err := repl.ReplaceOrErr(f.from, true, true)
		if err != nil {
			return fmt.Errorf("zettai_reach gateway %s: %w", f.opt, err)
		}
		*f.to = v
	}
	zr, err := zettaireach.New(cfg)
	if err != nil {
		return fmt.Errorf("gateway %w", err)
	}
	g.zr, g.Gateway = zr, zr
	return nil
}

// Capabilities implements otp.CapabilityReporter: a health check, and
// delivery results with dlr.
func (g *ZettaiReachGateway) Capabilities() otp.Capabilities {
	if g.zr == nil {
		return otp.Capabilities{}
	}
	return g.zr.Capabilities()
}

// UnmarshalCaddyfile parses the zettai_reach gateway's block.
func (g *ZettaiReachGateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.Errf("gateway zettai_reach takes no argument, got %q: put the options in a block", d.Val())
	}
	for d.NextBlock(0) {
		var err error
		switch opt := d.Val(); opt {
		case "token":
			g.Token, err = oneArg(d)
		case "client_id":
			g.ClientID, err = oneArg(d)
		case "sms_code":
			g.SMSCode, err = oneArg(d)
		case "base_url":
			g.BaseURL, err = oneArg(d)
		case "timeout":
			g.Timeout, err = boundedDurationArg(d, time.Minute)
		case "rate":
			g.Rate, err = boundedIntArg(d, 1, zettaireach.MaxRate)
		case "dlr":
			if d.NextArg() {
				return d.Errf("dlr takes no value, got %q", d.Val())
			}
			g.DLR = true
		default:
			return d.Errf("unknown zettai_reach gateway option %q: expected token, client_id, sms_code, base_url, timeout, rate or dlr", opt)
		}
		if err != nil {
			return err
		}
	}
	if g.Token == "" || g.ClientID == "" || g.SMSCode == "" {
		return d.Errf("gateway zettai_reach: expected token, client_id and sms_code in its block")
	}
	return nil
}

var (
	_ caddy.Provisioner      = (*ZettaiReachGateway)(nil)
	_ caddyfile.Unmarshaler  = (*ZettaiReachGateway)(nil)
	_ otp.Gateway            = (*ZettaiReachGateway)(nil)
	_ otp.CapabilityReporter = (*ZettaiReachGateway)(nil)
)
