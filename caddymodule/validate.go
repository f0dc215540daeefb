package caddymodule

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// optionError is a value Validate refuses, with the option it concerns
// (its JSON name, limits.* and brand.* for the nested ones), so that the
// Caddyfile adapter can point at the option's line. The message is the
// same for a JSON config and a Caddyfile.
type optionError struct {
	option string
	err    error
}

func (e *optionError) Error() string { return e.err.Error() }
func (e *optionError) Unwrap() error { return e.err }

// onOption marks err (if any) as concerning option.
func onOption(option string, err error) error {
	if err == nil {
		return nil
	}
	return &optionError{option: option, err: err}
}

func optionErrorf(option, format string, args ...any) error {
	return &optionError{option: option, err: fmt.Errorf(format, args...)}
}

// Validate checks the configuration as given, before or after Provision
// fills in the defaults; it changes nothing. Every range and every rule
// between options lives here, so a JSON config and a Caddyfile get the
// same checks and the same messages.
func (h *Handler) Validate() error {
	for _, check := range []func() error{
		h.validateSources, h.validatePlaces, h.validateNumbers, h.validateDurations, h.validateTokenUse, h.validateBrand, h.validateRoutes, h.validateLookup, h.validateCaptcha, h.validateReplay, h.validateFraudGuard,
		h.validateHistory, h.validateBackoff,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	// otp's own rules, for what the options above can't break alone.
	return h.otpConfig().Validate()
}

// validateSources checks where identity, session and phone come from.
func (h *Handler) validateSources() error {
	if strings.TrimSpace(h.Identity) == "" {
		return optionErrorf("identity", "identity is required: a placeholder naming the signed-in user, e.g. identity {http.auth.user.id}")
	}
	sources := len(h.PhoneSourcesRaw) > 0 || h.sources != nil // Provision loads the modules, which drops their JSON
	if h.Phone == "" && h.PhoneFile == "" && !sources && !h.Enroll {
		return optionErrorf("phone", "no phone source: expected phone <placeholder>, phone_file <path>, phone_source <sql|ldap|http> or enroll")
	}
	if h.PhoneSourceCache != nil && !sources {
		return optionErrorf("phone_source_cache", "phone_source_cache: expected at least one phone_source whose answers it keeps")
	}
	if _, err := parseHeadersSetBy(h.HeadersSetBy); err != nil {
		return onOption("headers_set_by", err)
	}
	return onOption("session_cookie", h.validateSession())
}

// validatePlaces checks the paths and URLs, and realm and sites.
func (h *Handler) validatePlaces() error {
	if h.PathPrefix != "" && !validPrefix(h.PathPrefix) {
		return optionErrorf("path_prefix", "path_prefix %q: expected a plain path such as /_stepup", h.PathPrefix)
	}
	if h.LoginURL != "" && !strings.HasPrefix(h.LoginURL, "/") && !strings.HasPrefix(h.LoginURL, "https://") {
		return optionErrorf("login_url", "login_url %q: expected a path or an https:// URL", h.LoginURL)
	}
	if h.ReceiptsURL != "" {
		u, err := url.Parse(h.ReceiptsURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return optionErrorf("receipts_url", "receipts_url %q: expected this site's base URL such as https://app.example.com", h.ReceiptsURL)
		}
	}
	return h.validateScope()
}

// intRange is the range of a whole-number option. An unset option (0)
// takes its default, except in limits, where 0 switches a limit off.
type intRange struct {
	option   string
	min, max int
}

var intRanges = []intRange{
	{"code_length", otp.MinCodeLength, otp.MaxCodeLength},
	{"max_attempts", 1, 10},
	{"failure_budget", 1, 100},
	{"max_identities_per_number", 1, 1000},
	{"max_segments", 1, 10},
	{"max_calls", 1, 5},
	{"fraud_guard.min_sends", 1, maxFraudMinSends},
}

// maxLimit is the most any limit may count.
const maxLimit = 100000000

// rangeOf is the range of a whole-number option; ok is false for an
// option that has none.
func rangeOf(option string) (intRange, bool) {
	for _, r := range intRanges {
		if r.option == option {
			return r, true
		}
	}
	if strings.HasPrefix(option, "limits.") {
		return intRange{option, 0, maxLimit}, true
	}
	return intRange{}, false
}

func (r intRange) check(n int) error {
	if n < r.min || n > r.max {
		return optionErrorf(r.option, "%s %d: expected a whole number from %d to %d", r.option, n, r.min, r.max)
	}
	return nil
}

// intValue is a whole-number option and its value (nil: unset).
type intValue struct {
	option string
	n      *int
}

// intValues are the whole-number options and their values.
func (h *Handler) intValues() []intValue {
	v := []intValue{
		{"code_length", &h.CodeLength}, {"max_attempts", &h.MaxAttempts}, {"failure_budget", &h.FailureBudget},
		{"max_identities_per_number", &h.MaxIdentitiesPerNumber}, {"max_segments", &h.MaxSegments}, {"max_calls", &h.MaxCalls},
	}
	if l := h.Limits; l != nil {
		v = append(v, []intValue{{"limits.phone", l.Phone}, {"limits.identity", l.Identity}, {"limits.ip", l.IP}, {"limits.device", l.Device}, {"limits.prefix", l.Prefix},
			{"limits.country", l.Country}, {"limits.daily_budget", l.DailyBudget}}...)
	}
	return append(v, h.fraudIntValues()...)
}

// validateNumbers checks every whole-number option that is set.
func (h *Handler) validateNumbers() error {
	for _, v := range h.intValues() {
		r, _ := rangeOf(v.option)
		limit := strings.HasPrefix(v.option, "limits.")
		if v.n == nil || (*v.n == 0 && !limit) {
			continue // unset: the default
		}
		if err := r.check(*v.n); err != nil {
			return err
		}
	}
	return nil
}

// durationRange is the range of a duration option; unset (0) is its
// default.
type durationRange struct {
	option   string
	min, max time.Duration // min 0: more than 0
}

var durationRanges = []durationRange{
	{"code_ttl", 0, otp.MaxCodeTTL},
	{"resend_cooldown", 0, otp.DefaultConfig().CooldownMax},
	{"token_ttl", 0, 24 * time.Hour},
	{"max_age", 0, 24 * time.Hour},
	{"limits.window", time.Minute, 24 * time.Hour},
	{"phone_file_refresh", 0, maxPhoneFileRefresh},
	{"phone_source_cache.found", time.Second, source.MaxCacheTTL},
	{"phone_source_cache.not_found", time.Second, source.MaxCacheTTL},
	{"fraud_guard.window", time.Minute, 24 * time.Hour},
	{"fraud_guard.block", time.Minute, 24 * time.Hour},
	{"fraud_guard.max_block", time.Minute, maxFraudMaxBlock},
}

func durationRangeOf(option string) (durationRange, bool) {
	for _, r := range durationRanges {
		if r.option == option {
			return r, true
		}
	}
	return durationRange{}, false
}

func (r durationRange) check(d time.Duration) error {
	switch {
	case r.min == 0 && (d <= 0 || d > r.max):
		return optionErrorf(r.option, "%s %s: expected a duration such as 5m, more than 0 and at most %s", r.option, shortDuration(d), shortDuration(r.max))
	case r.min > 0 && (d < r.min || d > r.max):
		return optionErrorf(r.option, "%s %s: expected a duration such as 5m, from %s to %s", r.option, shortDuration(d), shortDuration(r.min), shortDuration(r.max))
	}
	return nil
}

// validateDurations checks every duration option that is set.
func (h *Handler) validateDurations() error {
	values := map[string]caddy.Duration{"code_ttl": h.CodeTTL, "resend_cooldown": h.ResendCooldown, "token_ttl": h.TokenTTL, "max_age": h.MaxAge}
	if h.Limits != nil {
		values["limits.window"] = h.Limits.Window
	}
	values["phone_file_refresh"] = h.PhoneFileRefresh
	if h.PhoneFileRefresh != 0 && h.PhoneFile == "" {
		return optionErrorf("phone_file_refresh", "phone_file_refresh: expected phone_file too; it says how often that file is looked at for changes")
	}
	if c := h.PhoneSourceCache; c != nil {
		values["phone_source_cache.found"], values["phone_source_cache.not_found"] = c.Found, c.NotFound
	}
	h.fraudDurations(values)
	for _, r := range durationRanges {
		if d := values[r.option]; d != 0 {
			if err := r.check(time.Duration(d)); err != nil {
				return err
			}
		}
	}
	if r := time.Duration(h.RevocationRefresh); r < 0 || r > otp.MaxRevocationRefresh {
		return optionErrorf("revocation_refresh", "revocation_refresh %s: expected a duration such as 10s, from 0 (the default, %s) to %s",
			shortDuration(r), shortDuration(otp.DefaultRevocationRefresh), shortDuration(otp.MaxRevocationRefresh))
	}
	return nil
}

// validateTokenUse checks what the token is checked against and what the
// upstream learns of it.
func (h *Handler) validateTokenUse() error {
	// The token_ttl max_age is held to: as given, or the default.
	ttl := cmp.Or(time.Duration(h.TokenTTL), DefaultTokenTTL)
	if maxAge := time.Duration(h.MaxAge); maxAge > ttl {
		return optionErrorf("max_age", "max_age %s: expected at most token_ttl (%s)", shortDuration(maxAge), shortDuration(ttl))
	}
	_, err := parseUpstreamHeaders(h.UpstreamHeaders)
	return onOption("upstream_headers", err)
}

// validateBrand checks the brand block's logo and colour.
func (h *Handler) validateBrand() error {
	if h.Brand == nil {
		return nil
	}
	if err := pages.CheckBrand(pages.Brand{LogoURL: h.Brand.LogoURL}); err != nil {
		return onOption("brand.logo_url", err)
	}
	if pages.CheckBrand(pages.Brand{Color: h.Brand.Color}) != nil {
		return optionErrorf("brand.color", `brand color %q: expected 3 or 6 hex digits after #, such as "#1a56db" (in a Caddyfile also 1a56db)`, h.Brand.Color)
	}
	return nil
}

// shortDuration writes d as an operator would: 10m rather than 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// optionOf is the option err concerns, or "".
func optionOf(err error) string {
	var oe *optionError
	if errors.As(err, &oe) {
		return oe.option
	}
	return ""
}
