package failover

import (
	"context"
	"fmt"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// HealthReport checks each member in turn (see otp.CheckHealth): a member
// without a check that sends nothing is "unknown". A member whose circuit
// is open says so in its error.
func (g *Gateway) HealthReport(ctx context.Context) []otp.GatewayHealth {
	open := g.State(g.cfg.Clock.Now())
	out := make([]otp.GatewayHealth, 0, len(g.members))
	for _, mb := range g.members {
		h := otp.CheckHealth(ctx, mb.Name, mb.Gateway)
		if open[mb.Name] {
			note := "circuit open: skipped after repeated failures"
			if h.Error != "" {
				note += "; " + h.Error
			}
			h.Error = note
		}
		out = append(out, h)
	}
	return out
}

// Health is nil when any member is healthy, since a message can then still
// go out; otherwise it names each member's state.
func (g *Gateway) Health(ctx context.Context) error {
	report := g.HealthReport(ctx)
	switch otp.CombinedHealth(report) {
	case otp.HealthOK:
		return nil
	case otp.HealthDown:
		return fmt.Errorf("failover: every gateway is down: %s", summary(report))
	}
	return fmt.Errorf("%w: failover: no gateway known healthy: %s", otp.ErrHealthUnknown, summary(report))
}

func summary(report []otp.GatewayHealth) string {
	s := ""
	for i, h := range report {
		if i > 0 {
			s += "; "
		}
		s += h.Gateway + " " + string(h.Status)
		if h.Error != "" {
			s += " (" + h.Error + ")"
		}
	}
	return s
}

var (
	_ otp.HealthChecker  = (*Gateway)(nil)
	_ otp.HealthReporter = (*Gateway)(nil)
)
