package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/failover"
)

func init() {
	caddy.RegisterModule(FailoverGateway{})
}

// FailoverGateway sends through the first of its gateways that takes the
// message. A gateway that fails failure_threshold times in a row is skipped
// for open_for, then given one trial message (a circuit breaker).
//
// It never sends two SMS for one click: it moves to the next gateway only
// when the failed one surely did not accept the message (it could not be
// reached, or answered that it did not take it). When a provider refuses the
// number, or when the request left but no answer came back (the provider
// may have accepted it), nothing more is tried and the user is told the
// code could not be sent.
//
// The chain reads codes out in calls when any of its gateways can, through
// the first that can and is up, and takes the delivery reports of each
// gateway that asks for them, at that gateway's own receipt URL.
//
// Caddyfile:
//
//	gateway failover {
//		kannel { ... }
//		twilio { ... }
//		failure_threshold 3
//		open_for          30s
//	}
type FailoverGateway struct {
	// The gateways, in the order they are tried.
	GatewaysRaw []json.RawMessage `json:"gateways,omitempty" caddy:"namespace=sms_stepup.gateways inline_key=type"`
	// Consecutive failures that open a gateway's circuit. Default: 3.
	FailureThreshold int `json:"failure_threshold,omitempty"`
	// How long an open circuit skips its gateway. Default: 30s.
	OpenFor caddy.Duration `json:"open_for,omitempty"`

	chain *failover.Gateway
}

// CaddyModule returns the Caddy module information.
func (FailoverGateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sms_stepup.gateways.failover",
		New: func() caddy.Module { return new(FailoverGateway) },
	}
}

// Provision loads the member gateways.
func (g *FailoverGateway) Provision(ctx caddy.Context) error {
	if len(g.GatewaysRaw) == 0 {
		return fmt.Errorf("failover: expected at least one gateway")
	}
	mods, err := ctx.LoadModule(g, "GatewaysRaw")
	if err != nil {
		return fmt.Errorf("failover: %w", err)
	}
	var members []failover.Member
	seen := map[string]bool{}
	for i, m := range mods.([]any) {
		gw, ok := m.(otp.Gateway)
		if !ok {
			return fmt.Errorf("failover: gateway %d (%T) is not a gateway", i, m)
		}
		name := string(m.(caddy.Module).CaddyModule().ID.Name())
		if seen[name] {
			// Delivery receipts are routed by gateway name.
			return fmt.Errorf("failover: gateway %q is listed twice; use one of each type", name)
		}
		seen[name] = true
		members = append(members, failover.Member{Name: name, Gateway: gw})
	}
	g.chain, err = failover.New(failover.Config{FailureThreshold: g.FailureThreshold, OpenFor: time.Duration(g.OpenFor)}, members...)
	return err
}

// Send implements otp.Gateway.
func (g *FailoverGateway) Send(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	return g.chain.Send(ctx, m)
}

// Capabilities implements otp.CapabilityReporter: calls when any member can
// call, the delivery reports of every member that takes them, and each
// member's health.
func (g *FailoverGateway) Capabilities() otp.Capabilities {
	if g.chain == nil {
		return otp.Capabilities{}
	}
	return g.chain.Capabilities()
}

// UnmarshalCaddyfile parses the failover block: one gateway per line, in
// order, plus the circuit breaker's options.
func (g *FailoverGateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch name := d.Val(); name {
		case "failure_threshold":
			g.FailureThreshold, err = boundedIntArg(d, 1, 100)
		case "open_for":
			g.OpenFor, err = boundedDurationArg(d, time.Hour)
		default:
			if _, merr := caddy.GetModule("sms_stepup.gateways." + name); merr != nil {
				return d.Errf("failover: unknown gateway %q: expected a gateway (console, kannel, twilio, http), failure_threshold or open_for", name)
			}
			unm, uerr := caddyfile.UnmarshalModule(d, "sms_stepup.gateways."+name)
			if uerr != nil {
				return uerr
			}
			g.GatewaysRaw = append(g.GatewaysRaw, caddyconfig.JSONModuleObject(unm, "type", name, nil))
		}
		if err != nil {
			return err
		}
	}
	if len(g.GatewaysRaw) == 0 {
		return d.Errf("gateway failover: expected at least one gateway in its block")
	}
	return nil
}

var (
	_ caddy.Provisioner      = (*FailoverGateway)(nil)
	_ caddyfile.Unmarshaler  = (*FailoverGateway)(nil)
	_ otp.Gateway            = (*FailoverGateway)(nil)
	_ otp.CapabilityReporter = (*FailoverGateway)(nil)
)
