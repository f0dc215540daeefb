package caddymodule

import (
	"encoding/json"
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The handler's gateway is the module its config names. What the gateway
// can do besides sending (calls, delivery reports, a health check) is found
// here once, at provision, from the module itself (see otp.Capabilities),
// and kept in typed fields: the service's voice capability and the
// handler's receipt parsers.

// loadGateway loads the configured gateway module, console when none is
// configured.
func (h *Handler) loadGateway(ctx caddy.Context) error {
	if h.GatewayRaw == nil {
		h.GatewayRaw = json.RawMessage(`{"type":"console"}`)
	}
	mod, err := ctx.LoadModule(h, "GatewayRaw")
	if err != nil {
		return fmt.Errorf("load gateway: %w", err)
	}
	gw, ok := mod.(otp.Gateway)
	if !ok {
		return fmt.Errorf("gateway module %T is not an otp.Gateway: expected a module of the sms_stepup.gateways namespace", mod)
	}
	h.useGateway(gw)
	return nil
}

// useGateway makes gw the handler's gateway, and routes the delivery
// reports it takes to it.
func (h *Handler) useGateway(gw otp.Gateway) {
	h.gateway = gw
	h.receipts = otp.CapabilitiesOf(moduleName(gw), gw).Receipts
}

// newService is the service that sends through the handler's gateway, with
// its latency measured.
func (h *Handler) newService(cfg otp.Config, store otp.Store) (*otp.Service, error) {
	return otp.NewService(cfg, store, newTimedGateway(moduleName(h.gateway), h.gateway), h.keys, h.clock, nil)
}
