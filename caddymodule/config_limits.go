package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// LimitsConfig sets the send limits; an unset field keeps its default,
// 0 switches that limit off.
type LimitsConfig struct {
	// Codes per phone number per window. Default: 5.
	Phone *int `json:"phone,omitempty"`
	// Codes per identity per window. Default: 10.
	Identity *int `json:"identity,omitempty"`
	// Codes per client IP (Caddy's client IP, which honours
	// trusted_proxies; an IPv6 client by its /64) per window. Default: 20.
	IP *int `json:"ip,omitempty"`
	// Device is the most codes sent from one browser (its signed device
	// cookie) per window. Off unless set.
	Device *int `json:"device,omitempty"`
	// Codes per number prefix (all but the last 4 digits) per window: SMS
	// pumping walks through a range. Default: 20.
	Prefix *int `json:"prefix,omitempty"`
	// Codes per destination country per hour. Default: 500.
	Country *int `json:"country,omitempty"`
	// Codes per UTC day in all. Once spent, every send is refused until
	// midnight UTC or an operator's reset. Default: 10000.
	DailyBudget *int `json:"daily_budget,omitempty"`
	// The window of the first four. Default: 1h.
	Window caddy.Duration `json:"window,omitempty"`
}

// sendLimits applies the configuration to the defaults.
func (l *LimitsConfig) sendLimits() otp.SendLimits {
	out := otp.DefaultSendLimits()
	if l == nil {
		return out
	}
	for _, f := range []struct {
		v   *int
		dst *int
	}{{l.Phone, &out.PerPhone}, {l.Identity, &out.PerIdentity}, {l.IP, &out.PerIP}, {l.Device, &out.PerDevice}, {l.Prefix, &out.PerPrefix},
		{l.Country, &out.PerCountryHour}, {l.DailyBudget, &out.DailyBudget}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	if l.Window != 0 {
		out.Window = time.Duration(l.Window)
	}
	return out
}
