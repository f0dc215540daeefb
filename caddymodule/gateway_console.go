package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/console"
)

func init() {
	caddy.RegisterModule(ConsoleGateway{})
}

// ConsoleGateway sends no SMS: it is for development. Without an outbox it
// writes each message, code included, to Caddy's log, so you can walk the
// flow on one machine. With an outbox it appends one JSON line per message
// (time, to, body) to that file and logs neither the code nor the number.
//
// Caddyfile: `gateway console [{ outbox <file> }]`.
type ConsoleGateway struct {
	// File to append messages to, one JSON object per line.
	Outbox string `json:"outbox,omitempty"`

	otp.Gateway `json:"-"`
}

// CaddyModule returns the Caddy module information.
func (ConsoleGateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sms_stepup.gateways.console",
		New: func() caddy.Module { return new(ConsoleGateway) },
	}
}

// Provision sets the gateway up and warns that it sends nothing.
func (g *ConsoleGateway) Provision(ctx caddy.Context) error {
	logger := ctx.Logger()
	where := "Caddy's log (codes included)"
	if g.Outbox != "" {
		where = "the outbox file"
	}
	logger.Warn("!!! console SMS gateway: NO SMS IS SENT, messages go to "+where+"; for DEVELOPMENT ONLY, configure a real gateway in production !!!",
		zap.String("outbox", g.Outbox))
	g.Gateway = console.New(logger, g.Outbox, nil)
	return nil
}

// Capabilities implements otp.CapabilityReporter: a health check that is
// always ok, since nothing can be down; no calls, no delivery reports.
func (g *ConsoleGateway) Capabilities() otp.Capabilities {
	if g.Gateway == nil {
		return otp.Capabilities{}
	}
	return otp.CapabilitiesOf("console", g.Gateway)
}

// UnmarshalCaddyfile parses `console [{ outbox <file> }]`.
func (g *ConsoleGateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "outbox":
			if !d.NextArg() {
				return d.ArgErr()
			}
			g.Outbox = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unknown console gateway option %q: expected outbox", d.Val())
		}
	}
	return nil
}

var (
	_ caddy.Provisioner      = (*ConsoleGateway)(nil)
	_ caddyfile.Unmarshaler  = (*ConsoleGateway)(nil)
	_ otp.Gateway            = (*ConsoleGateway)(nil)
	_ otp.CapabilityReporter = (*ConsoleGateway)(nil)
)
