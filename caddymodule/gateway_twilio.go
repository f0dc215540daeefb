package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/twilio"
)

func init() {
	caddy.RegisterModule(TwilioGateway{})
}

// TwilioGateway sends codes as SMS through Twilio's Programmable Messaging
// API, and can read them out in a voice call. Each code is one request to
// Twilio, never retried: when Twilio cannot be reached the next gateway of a
// failover may be tried, but when the request left and no answer came back,
// or Twilio answered with a server error, nothing more is tried, because
// Twilio may have taken the message and a second gateway would send a
// second SMS.
//
// The sender is either a Twilio number (from) or a messaging service
// (messaging_service_sid), not both. Voice calls need from.
//
// With status_callback, and the handler's receipts_url set, Twilio reports
// delivery to the plugin's receipt URL, and each report is checked against
// its X-Twilio-Signature, made with the auth token.
//
// Placeholders such as {env.TWILIO_AUTH_TOKEN} are expanded when the
// config loads; one that is empty or unknown is an error, so a missing
// secret stops Caddy from starting instead of failing every send.
//
// Caddyfile:
//
//	gateway twilio {
//		account_sid           <AC...>
//		auth_token            <token>
//		from                  <E.164 number or sender id>
//		messaging_service_sid <MG...>
//		base_url              <url>
//		timeout               <duration>
//		status_callback
//	}
type TwilioGateway struct {
	// The account SID, "AC" followed by 32 hex digits.
	AccountSID string `json:"account_sid,omitempty"`
	// The account's auth token. Use a placeholder such as
	// {env.TWILIO_AUTH_TOKEN} rather than the token itself.
	AuthToken string `json:"auth_token,omitempty"`
	// The Twilio number (E.164) or alphanumeric sender id to send from.
	From string `json:"from,omitempty"`
	// A messaging service ("MG...") to send through instead of from.
	MessagingServiceSID string `json:"messaging_service_sid,omitempty"`
	// Replaces https://api.twilio.com, for a regional edge or a test server.
	BaseURL string `json:"base_url,omitempty"`
	// Time-out of one request to Twilio. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Ask Twilio for delivery reports.
	StatusCallback bool `json:"status_callback,omitempty"`

	otp.Gateway `json:"-"`
	tw          *twilio.Gateway
}

// CaddyModule returns the Caddy module information.
func (TwilioGateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sms_stepup.gateways.twilio",
		New: func() caddy.Module { return new(TwilioGateway) },
	}
}

// Provision expands placeholders and sets the gateway up.
func (g *TwilioGateway) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	cfg := twilio.Config{Timeout: time.Duration(g.Timeout), StatusCallback: g.StatusCallback}
	for _, f := range []struct {
		opt      string
		from     string
		to       *string
		optional bool
	}{
		{"account_sid", g.AccountSID, &cfg.AccountSID, false},
		{"auth_token", g.AuthToken, &cfg.AuthToken, false},
		{"from", g.From, &cfg.From, true},
		{"messaging_service_sid", g.MessagingServiceSID, &cfg.MessagingServiceSID, true},
		{"base_url", g.BaseURL, &cfg.BaseURL, true},
	} {
		if f.optional && f.from == "" {
			continue
		}
		v, err := repl.ReplaceOrErr(f.from, true, true)
		if err != nil {
			return fmt.Errorf("twilio gateway %s: %w", f.opt, err)
		}
		*f.to = v
	}
	tw, err := twilio.New(cfg)
	if err != nil {
		return fmt.Errorf("gateway %w", err)
	}
	g.tw, g.Gateway = tw, tw
	return nil
}

// Capabilities implements otp.CapabilityReporter: calls with a from number
// (a messaging service can't place them), delivery reports with
// status_callback, and a health check (a read of the account).
func (g *TwilioGateway) Capabilities() otp.Capabilities {
	if g.tw == nil {
		return otp.Capabilities{}
	}
	return g.tw.Capabilities()
}

// UnmarshalCaddyfile parses the twilio gateway's block.
func (g *TwilioGateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.Errf("gateway twilio takes no argument, got %q: put the options in a block", d.Val())
	}
	for d.NextBlock(0) {
		var err error
		switch opt := d.Val(); opt {
		case "account_sid":
			g.AccountSID, err = oneArg(d)
		case "auth_token":
			g.AuthToken, err = oneArg(d)
		case "from":
			g.From, err = oneArg(d)
		case "messaging_service_sid":
			g.MessagingServiceSID, err = oneArg(d)
		case "base_url":
			g.BaseURL, err = oneArg(d)
		case "timeout":
			g.Timeout, err = boundedDurationArg(d, time.Minute)
		case "status_callback":
			if d.NextArg() {
				return d.Errf("status_callback takes no value, got %q", d.Val())
			}
			g.StatusCallback = true
		default:
			return d.Errf("unknown twilio gateway option %q: expected account_sid, auth_token, from, messaging_service_sid, base_url, timeout or status_callback", opt)
		}
		if err != nil {
			return err
		}
	}
	if g.AccountSID == "" || g.AuthToken == "" {
		return d.Errf("gateway twilio: expected account_sid and auth_token in its block")
	}
	if (g.From == "") == (g.MessagingServiceSID == "") {
		return d.Errf("gateway twilio: expected exactly one of from and messaging_service_sid")
	}
	return nil
}

var (
	_ caddy.Provisioner      = (*TwilioGateway)(nil)
	_ caddyfile.Unmarshaler  = (*TwilioGateway)(nil)
	_ otp.Gateway            = (*TwilioGateway)(nil)
	_ otp.CapabilityReporter = (*TwilioGateway)(nil)
)
