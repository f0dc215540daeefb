package caddymodule

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The methods in this file are all that the operator actions (package
// caddymodule/operator: `caddy sms-stepup` and the admin API) use of a
// provisioned handler, so that the request path keeps its fields to itself.

// Service is the handler's step-up service: the counters, limits,
// revocations and bound numbers in its store, and its gateway.
func (h *Handler) Service() *otp.Service { return h.service }

// Prefix is the handler's path_prefix as provisioned (the default filled
// in, no trailing slash): what names the handler to operators.
func (h *Handler) Prefix() string { return h.PathPrefix }

// Now is the time by the handler's clock.
func (h *Handler) Now() time.Time { return h.clock.Now() }

// CheckPhone reads raw as a number to send to, under the handler's phone
// policy, as a step-up would.
func (h *Handler) CheckPhone(raw string) (otp.Phone, error) { return h.policy.Check(raw) }

// ConfiguredPhone says where identity's number comes from when it has
// none enrolled: phone_file (with the number, masked), the phone
// placeholder (read per request), the phone sources (asked per request),
// or nowhere ("none").
func (h *Handler) ConfiguredPhone(identity string) (masked, source string) {
	p, listed, err := h.filePhone(identity)
	switch {
	case listed && err == nil:
		return p.Masked, "phone_file"
	case listed:
		return "", "phone_file (its row was skipped: see the log)"
	case h.Phone != "":
		return "", "phone placeholder " + h.Phone + " (read per request)"
	case h.sources != nil:
		return "", "phone sources (looked up per request)"
	}
	return "", "none"
}

// GatewayName names the handler's gateway module: console, failover ...
func (h *Handler) GatewayName() string { return moduleName(h.gateway) }

// GatewayHealth asks the gateway (each member of a failover) whether it
// works, without sending anything.
func (h *Handler) GatewayHealth(ctx context.Context) otp.GatewayHealth {
	return otp.CheckHealth(ctx, moduleName(h.gateway), h.gateway)
}

// PhoneSourceHealth asks each phone source, past the cache, whether it
// answers; nil when none is configured.
func (h *Handler) PhoneSourceHealth(ctx context.Context) []PhoneSourceHealth {
	if h.sources == nil {
		return nil
	}
	return h.sources.health(ctx)
}

// DescribeStore names the store's type and where it is, never with a
// password.
func (h *Handler) DescribeStore() (typ, addr string) {
	switch s := h.store.(type) {
	case *RedisStore:
		opts, err := s.options()
		if err != nil {
			return "redis", "(" + err.Error() + ")"
		}
		addr = strings.Join(opts.Addrs, ",")
		if opts.MasterName != "" {
			addr = "sentinel master " + opts.MasterName + " via " + addr
		}
		if len(opts.Addrs) == 1 && opts.MasterName == "" {
			addr += fmt.Sprintf(" db %d", opts.DB)
		}
		if opts.TLSConfig != nil {
			addr += " (tls)"
		}
		return "redis", addr
	case *MemoryStore:
		return "memory", "in-process (" + cmp.Or(s.Name, "default") + ")"
	}
	return fmt.Sprintf("%T", h.store), ""
}
