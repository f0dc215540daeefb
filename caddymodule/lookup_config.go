package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/carrier"
)

// LookupConfig is the carrier check (キャリア判定): before the first code
// goes to a number the numbering plan can't classify (fixed_line_or_mobile,
// e.g. every +1 number), or to every number with always, a carrier
// database says what line it is, and the phone policy judges that: VoIP
// only where allow_types has voip, a landline only where it has
// fixed_line, premium, toll-free and shared-cost numbers never. Answers
// are kept in the store, sealed, for cache (30 days). A lookup that fails
// refuses the enrolment of a new number but never keeps a code from a
// number already bound or given by the operator (lookup.go).
type LookupConfig struct {
	// twilio (Twilio Lookup v2, Line Type Intelligence) or http (an
	// operator's own service).
	Provider string `json:"provider"`
	// twilio: the account and its token (placeholders such as
	// {env.TWILIO_AUTH_TOKEN} are expanded), and for tests another base
	// URL than https://lookups.twilio.com.
	AccountSID string `json:"account_sid,omitempty"`
	AuthToken  string `json:"auth_token,omitempty"`
	BaseURL    string `json:"base_url,omitempty"`
	// http: where to POST {"number":"+1..."}, the dotted path of the line
	// type in the JSON answer, and a header with the service's secret
	// (its value's placeholders are expanded).
	URL         string `json:"url,omitempty"`
	Field       string `json:"field,omitempty"`
	HeaderName  string `json:"header_name,omitempty"`
	HeaderValue string `json:"header_value,omitempty"`
	// Look every number up, not only those the metadata can't classify.
	Always bool `json:"always,omitempty"`
	// How long an answer is kept, 1h to 2160h (90 days). Default: 720h.
	Cache caddy.Duration `json:"cache,omitempty"`
	// How long one lookup may take, 1s to 30s. Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Caps on the lookups that reach the carrier database (each costs
	// money; cached answers count nothing): per identity and per client
	// address an hour, and all together per UTC day. Unset: 5, 20 and
	// 1000 (otp.DefaultCarrierLimits); 0 switches a cap off.
	MaxPerIdentity *int `json:"max_per_identity,omitempty"`
	MaxPerIP       *int `json:"max_per_ip,omitempty"`
	DailyBudget    *int `json:"daily_budget,omitempty"`
}

// limits are the caps on paid lookups, the defaults where unset.
func (l *LookupConfig) limits() otp.CarrierLimits {
	out := otp.DefaultCarrierLimits()
	for _, v := range []struct {
		set *int
		to  *int
	}{{l.MaxPerIdentity, &out.PerIdentity}, {l.MaxPerIP, &out.PerIP}, {l.DailyBudget, &out.Daily}} {
		if v.set != nil {
			*v.to = *v.set
		}
	}
	return out
}

// validateLookup checks the lookup block's shape; provisionLookup builds it.
func (h *Handler) validateLookup() error {
	l := h.Lookup
	if l == nil {
		return nil
	}
	foreign := ""
	switch l.Provider {
	case "twilio":
		if l.AccountSID == "" || l.AuthToken == "" {
			return optionErrorf("lookup", "lookup twilio: expected account_sid and auth_token in its block")
		}
		if l.URL != "" || l.Field != "" || l.HeaderName != "" {
			foreign = "url, field and header are for lookup http"
		}
	case "http":
		if l.URL == "" || l.Field == "" {
			return optionErrorf("lookup", "lookup http: expected url and field in its block")
		}
		if l.AccountSID != "" || l.AuthToken != "" || l.BaseURL != "" {
			foreign = "account_sid, auth_token and base_url are for lookup twilio"
		}
	default:
		return optionErrorf("lookup", "lookup %q: expected twilio or http", l.Provider)
	}
	if foreign != "" {
		return optionErrorf("lookup", "lookup %s: %s", l.Provider, foreign)
	}
	if c := time.Duration(l.Cache); c != 0 && (c < otp.MinCarrierTTL || c > otp.MaxCarrierTTL) {
		return optionErrorf("lookup.cache", "lookup cache %s: expected a duration from 1h to 2160h (90 days)", c)
	}
	if t := time.Duration(l.Timeout); t != 0 && (t < time.Second || t > 30*time.Second) {
		return optionErrorf("lookup.timeout", "lookup timeout %s: expected a duration from 1s to 30s", t)
	}
	for _, c := range []struct {
		name string
		n    *int
	}{{"max_per_identity", l.MaxPerIdentity}, {"max_per_ip", l.MaxPerIP}, {"daily_budget", l.DailyBudget}} {
		if c.n != nil && *c.n < 0 {
			return optionErrorf("lookup."+c.name, "lookup %s %d: expected 0 (no cap) or more", c.name, *c.n)
		}
	}
	return nil
}

// provisionLookup builds the carrier check, after the store and the keys.
func (h *Handler) provisionLookup(p *provisioning) error {
	l := h.Lookup
	if l == nil {
		return nil
	}
	if err := initLookupMetrics(p.ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("lookup: metrics: %w", err)
	}
	repl := caddy.NewReplacer()
	var lookup otp.CarrierLookup
	var err error
	switch l.Provider {
	case "twilio":
		token, rerr := repl.ReplaceOrErr(l.AuthToken, true, true)
		if rerr != nil {
			return onOption("lookup.auth_token", fmt.Errorf("lookup auth_token: %w", rerr))
		}
		lookup, err = carrier.NewTwilio(carrier.TwilioConfig{AccountSID: l.AccountSID, AuthToken: token,
			BaseURL: l.BaseURL, Timeout: time.Duration(l.Timeout)})
	default:
		value, rerr := repl.ReplaceOrErr(l.HeaderValue, true, true)
		if rerr != nil {
			return onOption("lookup.header", fmt.Errorf("lookup header: %w", rerr))
		}
		lookup, err = carrier.NewHTTP(carrier.HTTPConfig{URL: l.URL, Field: l.Field, HeaderName: l.HeaderName,
			HeaderValue: value, Timeout: time.Duration(l.Timeout)})
	}
	if err != nil {
		return onOption("lookup", err)
	}
	store, err := lookupCacheOf(h.store)
	if err != nil {
		return onOption("lookup", err)
	}
	h.carrier, err = otp.NewCarrierCheck(otp.CarrierCheckConfig{Lookup: lookup, Store: store, Keys: h.keys,
		Clock: h.clock, TTL: time.Duration(l.Cache), Always: l.Always, Limiter: h.store, Limits: l.limits()})
	return onOption("lookup", err)
}
