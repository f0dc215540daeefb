package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/kannel"
)

func init() {
	caddy.RegisterModule(KannelGateway{})
}

// KannelGateway sends codes as SMS through Kannel (https://www.kannel.org),
// the open-source SMS gateway, with one GET to smsbox's sendsms interface
// per code. A text outside the GSM 7-bit alphabet, which includes any
// Japanese, is sent as UCS-2.
//
// Kannel answers 202 once bearerbox has queued the message. A wrong
// password, a message Kannel did not queue (its 403, 500 and 503 answers) or
// an unreachable Kannel means the message surely did not go, so the next
// gateway of a failover may be tried. A number Kannel refuses is refused for
// good. A request that left without an answer, or met a proxy's 502 or 504,
// may have been queued, so nothing more is tried rather than risk a second
// SMS.
//
// With dlr, Kannel reports how far each message got (queued, sent to the
// SMSC, delivered, failed) by calling the plugin's receipt URL.
//
// Placeholders such as {env.KANNEL_PASSWORD} or {file./run/secrets/kannel}
// are expanded in url, username, password and from when the config loads;
// one that is empty or unknown is an error, so a missing secret stops Caddy
// from starting instead of failing every send.
//
// Caddyfile:
//
//	gateway kannel {
//		url      <smsbox sendsms URL, such as http://127.0.0.1:13013/cgi-bin/sendsms>
//		username <sendsms-user username>
//		password <sendsms-user password>
//		from     <sender>
//		dlr
//		timeout  10s
//	}
//
// url, username and password are required. In Kannel's sendsms-user group,
// set concatenation = true and max-messages to 2 or more: a Japanese text
// longer than 70 characters needs two SMS, and with the default of one
// Kannel cuts it short. smsbox writes each text, code included, to its log
// at log-level 1 (info) and to its access-log: run it at log-level 2 or
// above, or keep those logs as secret as the codes.
type KannelGateway struct {
	// smsbox's sendsms address, such as
	// http://127.0.0.1:13013/cgi-bin/sendsms.
	URL string `json:"url,omitempty"`
	// The sendsms-user group's username.
	Username string `json:"username,omitempty"`
	// The sendsms-user group's password. Use a placeholder such as
	// {env.KANNEL_PASSWORD} rather than the password itself.
	Password string `json:"password,omitempty"`
	// The sender shown on the phone. Default: Kannel's default-sender or
	// global-sender.
	From string `json:"from,omitempty"`
	// Ask Kannel for delivery reports.
	DLR bool `json:"dlr,omitempty"`
	// Time-out of one request to Kannel. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	otp.Gateway `json:"-"`
	kn          *kannel.Gateway
}

// CaddyModule returns the Caddy module information.
func (KannelGateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sms_stepup.gateways.kannel",
		New: func() caddy.Module { return new(KannelGateway) },
	}
}

// Provision expands placeholders and sets the gateway up.
func (g *KannelGateway) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	cfg := kannel.Config{DLR: g.DLR, Timeout: time.Duration(g.Timeout)}
	for _, f := range []struct {
		opt  string
		from string
		to   *string
	}{
		{"url", g.URL, &cfg.URL},
		{"username", g.Username, &cfg.Username},
		{"password", g.Password, &cfg.Password},
		{"from", g.From, &cfg.From},
	} {
		if f.from == "" {
			// kannel.New says which of the required ones is missing.
			continue
		}
		v, err := repl.ReplaceOrErr(f.from, true, true)
		if err != nil {
			return fmt.Errorf("kannel gateway %s: %w", f.opt, err)
		}
		*f.to = v
	}
	kn, err := kannel.New(cfg)
	if err != nil {
		return fmt.Errorf("gateway %w", err)
	}
	g.kn, g.Gateway = kn, kn
	return nil
}

// Capabilities implements otp.CapabilityReporter: delivery reports with
// dlr, and a health check (a sendsms request without a receiver, which
// Kannel refuses without sending anything).
func (g *KannelGateway) Capabilities() otp.Capabilities {
	if g.kn == nil {
		return otp.Capabilities{}
	}
	return g.kn.Capabilities()
}

// UnmarshalCaddyfile parses the kannel gateway's block.
func (g *KannelGateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.Errf("gateway kannel takes no argument, got %q: put url and the other options in a block", d.Val())
	}
	for d.NextBlock(0) {
		var err error
		switch opt := d.Val(); opt {
		case "url":
			g.URL, err = oneArg(d)
		case "username":
			g.Username, err = oneArg(d)
		case "password":
			g.Password, err = oneArg(d)
		case "from":
			g.From, err = oneArg(d)
		case "dlr":
			if d.NextArg() {
				return d.Errf("dlr takes no value, got %q", d.Val())
			}
			g.DLR = true
		case "timeout":
			g.Timeout, err = boundedDurationArg(d, time.Minute)
		default:
			return d.Errf("unknown kannel gateway option %q: expected url, username, password, from, dlr or timeout", opt)
		}
		if err != nil {
			return err
		}
	}
	if g.URL == "" || g.Username == "" || g.Password == "" {
		return d.Errf("gateway kannel: expected url, username and password in its block")
	}
	return nil
}

var (
	_ caddy.Provisioner      = (*KannelGateway)(nil)
	_ caddyfile.Unmarshaler  = (*KannelGateway)(nil)
	_ otp.Gateway            = (*KannelGateway)(nil)
	_ otp.CapabilityReporter = (*KannelGateway)(nil)
)
