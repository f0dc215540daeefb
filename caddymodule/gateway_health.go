package caddymodule

import (
	"context"
	"errors"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The gateway modules pass health checks (otp.HealthChecker) through to the
// gateways they wrap, for `caddy sms-stepup status` and the failover's
// report of each member. The http gateway has none: it cannot tell whether
// an arbitrary provider is up without sending, so its health is "unknown".

var errNotProvisioned = errors.New("gateway not provisioned")

// Health implements otp.HealthChecker.
func (g *ConsoleGateway) Health(ctx context.Context) error {
	hc, ok := g.Gateway.(otp.HealthChecker)
	if !ok {
		return errNotProvisioned
	}
	return hc.Health(ctx)
}

// Health implements otp.HealthChecker: a sendsms request without a
// receiver, which Kannel refuses without sending anything.
func (g *KannelGateway) Health(ctx context.Context) error {
	if g.kn == nil {
		return errNotProvisioned
	}
	return g.kn.Health(ctx)
}

// Health implements otp.HealthChecker: a read of the Twilio account.
func (g *TwilioGateway) Health(ctx context.Context) error {
	if g.tw == nil {
		return errNotProvisioned
	}
	return g.tw.Health(ctx)
}

// Health implements otp.HealthChecker: nil when any member is healthy.
func (g *FailoverGateway) Health(ctx context.Context) error {
	if g.chain == nil {
		return errNotProvisioned
	}
	return g.chain.Health(ctx)
}

// HealthReport implements otp.HealthReporter: each member's health.
func (g *FailoverGateway) HealthReport(ctx context.Context) []otp.GatewayHealth {
	if g.chain == nil {
		return nil
	}
	return g.chain.HealthReport(ctx)
}

var (
	_ otp.HealthChecker  = (*ConsoleGateway)(nil)
	_ otp.HealthChecker  = (*KannelGateway)(nil)
	_ otp.HealthChecker  = (*TwilioGateway)(nil)
	_ otp.HealthReporter = (*FailoverGateway)(nil)
)
