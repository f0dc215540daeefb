// Package operator is what operators do to a running sms_stepup handler:
// unlock an identity, revoke its step-ups, reset its number or the daily
// budget, send a test message, read the status. Each action is one entry
// of the table in actions.go, from which both ways in are made: the
// subcommands of `caddy sms-stepup` (command.go) and the routes of the
// admin API under /sms-stepup/ (admin.go), with the same checks of what
// they are given and the same audit entries.
//
// The actions see a handler only through the Handler interface; the
// request path (package caddymodule) knows nothing of them but the
// registry through which the admin API finds the running handler.
package operator

import (
	"context"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// Handler is what the actions use of a provisioned sms_stepup handler.
type Handler interface {
	// Service is the handler's step-up service: the counters, limits,
	// revocations and bound numbers in its store, and its gateway.
	Service() *otp.Service
	// Prefix is the handler's path_prefix, which names it to operators.
	Prefix() string
	// Now is the time by the handler's clock.
	Now() time.Time
	// CheckPhone reads a number under the handler's phone policy.
	CheckPhone(raw string) (otp.Phone, error)
	// ConfiguredPhone says where identity's number comes from when none
	// is enrolled, with the number masked if the config holds it.
	ConfiguredPhone(identity string) (masked, source string)
	// GatewayName names the gateway module.
	GatewayName() string
	// GatewayHealth asks the gateway whether it works, sending nothing.
	GatewayHealth(ctx context.Context) otp.GatewayHealth
	// PhoneSourceHealth asks each phone source whether it answers (a
	// lookup of a sentinel identity, past the cache); nil without any.
	PhoneSourceHealth(ctx context.Context) []caddymodule.PhoneSourceHealth
	// DescribeStore names the store's type and where it is, without a
	// password.
	DescribeStore() (typ, addr string)
}

// Interface guard.
var _ Handler = (*caddymodule.Handler)(nil)
