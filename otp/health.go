package otp

import (
	"context"
	"errors"
)

// HealthChecker is a gateway that can tell whether its provider is up, and
// takes its credentials, without sending anything: an operator's `status`
// calls it. A gateway that cannot check without sending a message does not
// implement it (or answers ErrHealthUnknown), and its health is "unknown".
type HealthChecker interface {
	Health(ctx context.Context) error
}

// HealthReporter is a gateway made of other gateways (failover), which
// reports the health of each.
type HealthReporter interface {
	HealthReport(ctx context.Context) []GatewayHealth
}

// ErrHealthUnknown says a gateway cannot tell its health without sending a
// message.
var ErrHealthUnknown = errors.New("this gateway has no check that sends nothing")

// HealthStatus is a gateway's health as an operator sees it.
type HealthStatus string

// The health statuses.
const (
	HealthOK      HealthStatus = "ok"
	HealthDown    HealthStatus = "down"
	HealthUnknown HealthStatus = "unknown"
)

// GatewayHealth is one gateway's health, and its members' for a gateway
// made of others.
type GatewayHealth struct {
	Gateway string       `json:"gateway"`
	Status  HealthStatus `json:"status"`
	// Error says why the gateway is down (or unknown); it never carries a
	// secret, since gateway errors name the host only.
	Error   string          `json:"error,omitempty"`
	Members []GatewayHealth `json:"members,omitempty"`
}

// CheckHealth asks gw, named name, for its health: through the health
// capability it reports, when it is a CapabilityReporter. A gateway made of
// others is ok when any member is (a message can still go out), down when
// every member is, and unknown otherwise.
func CheckHealth(ctx context.Context, name string, gw any) GatewayHealth {
	out := GatewayHealth{Gateway: name, Status: HealthUnknown}
	if r, ok := gw.(CapabilityReporter); ok {
		// A wrapper has no Health method of its own; what it wraps may.
		gw = r.Capabilities().Health
	}
	switch g := gw.(type) {
	case HealthReporter:
		out.Members = g.HealthReport(ctx)
		out.Status = CombinedHealth(out.Members)
	case HealthChecker:
		err := g.Health(ctx)
		switch {
		case err == nil:
			out.Status = HealthOK
		case errors.Is(err, ErrHealthUnknown):
			out.Error = err.Error()
		default:
			out.Status, out.Error = HealthDown, err.Error()
		}
	default:
		out.Error = ErrHealthUnknown.Error()
	}
	return out
}

// CombinedHealth is the health of a chain of gateways: ok when any member
// is ok, down when every member is down, unknown otherwise.
func CombinedHealth(members []GatewayHealth) HealthStatus {
	down := 0
	for _, m := range members {
		switch m.Status {
		case HealthOK:
			return HealthOK
		case HealthDown:
			down++
		}
	}
	if len(members) > 0 && down == len(members) {
		return HealthDown
	}
	return HealthUnknown
}
