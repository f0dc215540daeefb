// Package caddymodule is the Caddy glue of caddy-sms-stepup: the
// http.handlers.sms_stepup module, its Caddyfile directive, and the store and
// gateway guest modules. The rules live in package otp; this package turns
// requests into calls to it.
package caddymodule

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler puts an SMS one-time-code step-up in front of the routes it
// protects. A request to a protected route passes only with a valid step-up
// cookie for the same identity and session, fresh enough for the route;
// otherwise a browser is sent (303) to the plugin's own page under
// path_prefix, where the user asks for a code by SMS and types it in, and
// API clients get 401 with an RFC 9470 WWW-Authenticate challenge.
//
// The handler sees every request of its route so that its own pages under
// path_prefix are served whatever it protects; `protect` decides which of
// the other requests need a step-up (all of them when empty).
//
// On success, with upstream_headers, the handler tells the upstream who
// stepped up and when in the request headers X-Stepup-Identity,
// X-Stepup-Verified-At (RFC 3339), X-Stepup-Auth-Time (Unix seconds) and
// X-Stepup-Token; later handlers can read the same as the placeholders
// {http.sms_stepup.identity}, {http.sms_stepup.verified_at},
// {http.sms_stepup.auth_time} and {http.sms_stepup.token}. Request headers
// and trailers named X-Stepup-* are removed from every request first, so a
// client cannot forge them. With several sms_stepup handlers in one site,
// the first a request meets removes the client's; a later handler never
// removes or blanks what an earlier one set, and when two step a request
// up, each header and placeholder holds the value of the last that set it.
//
// The identity (and the phone number) must come from an authentication
// step the client cannot skip. When identity or phone reads a request
// header, which any client can send, the handler believes it only where
// headers_set_by says it comes from, checked on every request, and refuses
// other requests; it warns at start about every such header.
//
// An operator can revoke an identity's step-ups (`caddy sms-stepup
// revoke`): each instance reads an identity's revocation from the store at
// most once per revocation_refresh, so the hot path stays off the store.
type Handler struct {
	// Matchers for the requests that need a step-up. Empty: all requests.
	ProtectRaw caddyhttp.RawMatcherSets `json:"protect,omitempty" caddy:"namespace=http.matchers"`

	// A placeholder naming the signed-in user, such as
	// {http.auth.user.id}. Required. A request where it is empty is refused.
	Identity string `json:"identity,omitempty"`
	// What sets the request headers that identity and phone read, if they
	// read any: "forward_auth" (the default) believes them only when
	// forward_auth answered 2xx earlier in the same request, so it must come
	// before sms_stepup in the same route; "trusted_proxy" only on requests
	// from a peer in the server's trusted_proxies, a proxy that removes the
	// client's and sets its own. Other requests are refused with 401.
	HeadersSetBy string `json:"headers_set_by,omitempty"`
	// A placeholder for the application's own session, such as
	// {http.request.cookie.app_session}. Its keyed hash goes into the
	// token, so a step-up dies with the session. A request where it is
	// empty is refused (401, asking the user to sign in again).
	Session string `json:"session,omitempty"`
	// Instead of session: the name of the session cookie, read whole or,
	// where it was split (oauth2-proxy's _oauth2_proxy_0, _oauth2_proxy_1,
	// ...), as its numbered parts joined in order, up to the first one
	// missing and at most 16.
	SessionCookie string `json:"session_cookie,omitempty"`
	// A placeholder holding the user's phone number (e.g. a header set by
	// the identity provider).
	Phone string `json:"phone,omitempty"`
	// A CSV file of `identity,phone` lines (# starts a comment), read at
	// provision and on every config reload.
	PhoneFile string `json:"phone_file,omitempty"`
	// Where the plugin's pages live. Default: /_stepup.
	PathPrefix string `json:"path_prefix,omitempty"`
	// Handlers that share step-ups on purpose name one realm: a step-up
	// made on one passes the others (each still checks its own max_age).
	// Without one a handler takes only step-ups made on it, on its sites
	// and path_prefix. The handlers of a realm must share identity,
	// session, phone source, enroll settings, signing key and store; a
	// config where they don't is refused.
	Realm string `json:"realm,omitempty"`
	// The addresses of the handler's site, as the site block wrote them;
	// the Caddyfile adapter fills them in. With path_prefix they name the
	// handler's scope, and they name the service when service_name is
	// unset. Without them the scope is the server's listen addresses and
	// path_prefix. Two handlers of one config that would share a scope
	// without a realm are refused, unless their configs are the same.
	Sites []string `json:"sites,omitempty"`
	// Where to send a request without identity. Default: a 401 page.
	LoginURL string `json:"login_url,omitempty"`

	// Digits per code, 6 to 10. Default: 6.
	CodeLength int `json:"code_length,omitempty"`
	// How long a code lives, at most 10m. Default: 5m.
	CodeTTL caddy.Duration `json:"code_ttl,omitempty"`
	// Wrong codes allowed per challenge. Default: 5.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// The wait before a new code after the first; it doubles with each
	// further code (30s, 60s, 120s ...) up to 10m. Default: 30s.
	ResendCooldown caddy.Duration `json:"resend_cooldown,omitempty"`
	// Consecutive wrong codes per identity, across codes, before each
	// further one locks the identity out for a time that doubles from 30s
	// up to an hour; 100 in a row lock it until an operator unlocks it
	// (`caddy sms-stepup unlock`; see otp.HardLock). Default: 10.
	FailureBudget int `json:"failure_budget,omitempty"`
	// Lifetime of the step-up cookie. Default: 15m.
	TokenTTL caddy.Duration `json:"token_ttl,omitempty"`
	// How fresh a step-up must be for these routes. Default: token_ttl.
	MaxAge caddy.Duration `json:"max_age,omitempty"`
	// How long this instance trusts what it last read of an identity's
	// revocation (the not-before that `caddy sms-stepup revoke` sets)
	// before reading the store again: the longest a revocation takes to
	// reach this instance. At most 5m. Default (or 0): 10s.
	RevocationRefresh caddy.Duration `json:"revocation_refresh,omitempty"`
	// The X-Stepup-* request headers the handler sets for the upstream on
	// a valid step-up: any of "identity" (X-Stepup-Identity),
	// "verified_at" (X-Stepup-Verified-At, RFC 3339), "auth_time"
	// (X-Stepup-Auth-Time, Unix seconds) and "token" (X-Stepup-Token, the
	// step-up token, for an upstream that verifies it with EdDSA keys
	// against {path_prefix}/jwks.json), or "none". Each header costs the
	// proxy about 3% of a request. Default: none; the upstream never
	// knows.
	UpstreamHeaders []string `json:"upstream_headers,omitempty"`
	// HMAC key for tokens and code MACs, at least 32 bytes; placeholders
	// such as {env.STEPUP_SIGNING_KEY} are expanded. Default: a key
	// generated once and kept in Caddy's storage.
	SigningKey string `json:"signing_key,omitempty"`
	// Retired signing keys: step-up cookies they signed stay valid until
	// they expire, so rotating signing_key logs nobody out. Placeholders
	// are expanded.
	PreviousKeys []string `json:"previous_keys,omitempty"`
	// An Ed25519 private key (PKCS#8 PEM). With it tokens are EdDSA (and
	// only EdDSA), and their public keys are served at
	// {path_prefix}/jwks.json so the upstream can verify forwarded tokens.
	SigningKeyFile string `json:"signing_key_file,omitempty"`
	// Retired Ed25519 keys (PEM, private or public), verify only.
	PreviousKeyFiles []string `json:"previous_key_files,omitempty"`
	// Region for numbers written without +country. Default: JP.
	DefaultRegion string `json:"default_region,omitempty"`
	// Countries whose numbers may receive codes. Default: default_region.
	AllowCountries []string `json:"allow_countries,omitempty"`
	// Number types that may receive codes. Default: mobile and
	// fixed_line_or_mobile.
	AllowTypes []string `json:"allow_types,omitempty"`
	// E.164 prefixes taken as mobile where the numbering metadata does not
	// know them yet (Japan's +8160 always is).
	MobilePrefixes []string `json:"mobile_prefixes,omitempty"`
	// Files of E.164 numbers or prefixes, one a line (# comments): refused
	// whatever else the policy says, or let through despite their country or
	// type. Read at start and on every reload.
	DenyNumbers  string `json:"deny_numbers,omitempty"`
	AllowNumbers string `json:"allow_numbers,omitempty"`
	// Let an identity with no number from phone or phone_file enrol one,
	// proving it with a code; later step-ups use it. Changing it needs a
	// fresh step-up on the old number, which is told of the change.
	Enroll bool `json:"enroll,omitempty"`
	// How many identities one enrolled number may serve. Default: 1.
	MaxIdentitiesPerNumber int `json:"max_identities_per_number,omitempty"`
	// Send limits, counted in the store so they hold across instances.
	Limits *LimitsConfig `json:"limits,omitempty"`
	// Name shown on pages and in the SMS. Default: the host of the
	// first of sites ("Step-up" without one), never the request's Host
	// header.
	ServiceName string `json:"service_name,omitempty"`
	// SMS text per locale ("en", "ja"), as a text/template with
	// {{.Service}}, {{.Code}} and {{.Minutes}}. It must show the code.
	// Default: a short message with the "never share this code" warning.
	Messages map[string]string `json:"messages,omitempty"`
	// The most SMS segments a message may take (GSM-7: 160 characters, 153
	// per part; UCS-2, e.g. any Japanese: 70, 67 per part). A template that
	// can exceed it, with the longest code, fails at provision. Default: 1.
	MaxSegments int `json:"max_segments,omitempty"`
	// Host for WebOTP's last line "@host #code", which lets browsers fill in
	// the code. Must be the site's own host (or same-site). Default: none.
	WebOTPHost string `json:"webotp_host,omitempty"`

	// How the pages look: the service's name, a logo (a path on this site
	// or a data: URL) and an accent colour.
	Brand *BrandConfig `json:"brand,omitempty"`
	// A directory of templates replacing the built-in pages by file name
	// (send.html, code.html, locked.html, error.html, unavailable.html,
	// layout.html). A template that fails to parse or render fails the
	// config load with the file and line.
	Templates string `json:"templates,omitempty"`

	// This site's public base URL (https://app.example.com), where SMS
	// providers report delivery: each message gets an unguessable URL under
	// {receipts_url}{path_prefix}/receipt/. Default: no delivery reports.
	ReceiptsURL string `json:"receipts_url,omitempty"`
	// Voice calls allowed per challenge, where the gateway can call.
	// Default: 2.
	MaxCalls int `json:"max_calls,omitempty"`

	// Where challenges and counters live. Default: memory.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=sms_stepup.stores inline_key=type"`
	// How SMS are sent. Default: console.
	GatewayRaw json.RawMessage `json:"gateway,omitempty" caddy:"namespace=sms_stepup.gateways inline_key=type"`

	// A named matcher from the Caddyfile, resolved by parseCaddyfile.
	namedMatcher      string
	namedMatcherToken caddyfile.Token

	protect caddyhttp.MatcherSets
	service *otp.Service
	tokens  *otp.Tokens
	keys    *otp.Keys
	retired []*otp.Keys
	policy  *otp.PhonePolicy
	phones  map[string]otp.Phone
	store   otp.Store
	gateway otp.Gateway
	pages   *pages.Set
	brand   pages.Brand
	events  *caddyevents.App
	ctx     caddy.Context
	logger  *zap.Logger
	clock   otp.Clock
	maxAge  time.Duration

	// The handler's scope (scope.go): the aud of its tokens and the scope
	// of its CSRF tokens; how errors name the handler; the service's name.
	audience     string
	scopeLabel   string
	serviceLabel string

	// The keys of identity and session when each is a single placeholder.
	identityKey string
	sessionKey  string
	// The upstream headers to set, from UpstreamHeaders.
	upstream upstreamHeaders
	// What makes the request headers identity and phone read believable.
	trust headerTrust
	// session_cookie's numbered parts, and when the last warning that a
	// session came out empty was logged (Unix nanoseconds of h.clock).
	sessionParts  []string
	sessionWarned *atomic.Int64
	// The gateway's delivery-report parsers by gateway name (see
	// useGateway).
	receipts map[string]otp.ReceiptParser

	devCookieOnce *sync.Once
	// When the last warning that revocations can't be read was logged
	// (Unix nanoseconds of h.clock).
	revocationWarned *atomic.Int64
}

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
	}{{l.Phone, &out.PerPhone}, {l.Identity, &out.PerIdentity}, {l.IP, &out.PerIP}, {l.Prefix, &out.PerPrefix},
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

// BrandConfig is the brand block.
type BrandConfig struct {
	Name    string `json:"name,omitempty"`
	LogoURL string `json:"logo_url,omitempty"`
	Color   string `json:"color,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sms_stepup",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Defaults.
const (
	DefaultPathPrefix = "/_stepup"
	DefaultTokenTTL   = 15 * time.Minute
	tokenIssuer       = "caddy-sms-stepup"
)

// Provision sets up the handler. The handler has no Cleanup of its own:
// the store and gateway are guest modules, which Caddy cleans up with the
// config, even when Provision fails half way; the admin API's entry and
// the budget gauge drop the handler when the config's context ends.
func (h *Handler) Provision(ctx caddy.Context) error {
	config := ConfigFingerprint(h)     // of the config as given, before defaults are filled in
	defer registerLive(ctx, h, config) // for the admin API (live.go): only once Provision succeeded, until the config unloads
	h.logger = ctx.Logger()
	h.devCookieOnce = new(sync.Once)
	h.revocationWarned = new(atomic.Int64)
	if err := initMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := h.loadEvents(ctx); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if h.clock == nil {
		h.clock = otp.SystemClock{}
	}
	if h.PathPrefix == "" {
		h.PathPrefix = DefaultPathPrefix
	}
	h.PathPrefix = strings.TrimRight(h.PathPrefix, "/")
	h.provisionScope(ctx)
	h.identityKey, h.sessionKey = placeholderKey(h.Identity), placeholderKey(h.Session)
	if err := h.provisionTrust(); err != nil {
		return err
	}
	h.provisionSession()
	upstream, err := parseUpstreamHeaders(h.UpstreamHeaders)
	if err != nil {
		return err
	}
	h.upstream = upstream
	cfg := h.otpConfig()
	if err := cfg.Validate(); err != nil {
		return err
	}
	msgs, err := otp.NewMessages(otp.MessagesConfig{Templates: h.Messages, WebOTPHost: h.WebOTPHost})
	if err != nil {
		return err
	}
	maxSegments := h.MaxSegments
	if maxSegments == 0 {
		maxSegments = 1
	}
	if cfg.ServiceName, err = h.fitServiceName(msgs, cfg, maxSegments); err != nil {
		return err
	}
	cfg.Messages = msgs
	if h.TokenTTL == 0 {
		h.TokenTTL = caddy.Duration(DefaultTokenTTL)
	}
	// Every route checks freshness against its own max_age, not only the
	// cookie's expiry: a realm's cookie may come from a handler whose
	// tokens live longer (SECURITY.md rule 27).
	h.maxAge = time.Duration(cmp.Or(h.MaxAge, h.TokenTTL))

	if h.ProtectRaw != nil {
		mods, err := ctx.LoadModule(h, "ProtectRaw")
		if err != nil {
			return fmt.Errorf("load protect matchers: %w", err)
		}
		if err := h.protect.FromInterface(mods); err != nil {
			return fmt.Errorf("load protect matchers: %w", err)
		}
	}

	if h.Brand != nil {
		h.brand = pages.Brand{Name: h.Brand.Name, LogoURL: h.Brand.LogoURL, Color: h.Brand.Color}
		if err := pages.CheckBrand(h.brand); err != nil {
			return err
		}
	}
	if h.pages, err = pages.NewSet(h.Templates); err != nil {
		return err
	}

	pcfg := otp.PhonePolicyConfig{DefaultRegion: h.DefaultRegion, AllowCountries: h.AllowCountries,
		AllowTypes: h.AllowTypes, MobilePrefixes: h.MobilePrefixes}
	if h.DenyNumbers != "" {
		if pcfg.DenyNumbers, err = otp.LoadNumberList(h.DenyNumbers); err != nil {
			return fmt.Errorf("deny_numbers: %w", err)
		}
	}
	if h.AllowNumbers != "" {
		if pcfg.AllowNumbers, err = otp.LoadNumberList(h.AllowNumbers); err != nil {
			return fmt.Errorf("allow_numbers: %w", err)
		}
	}
	policy, err := otp.NewPhonePolicy(pcfg)
	if err != nil {
		return err
	}
	h.policy = policy
	if h.PhoneFile != "" {
		if h.phones, err = loadPhoneFile(h.PhoneFile, policy); err != nil {
			return err
		}
	}

	root, err := h.signingKey(ctx)
	if err != nil {
		return err
	}
	if h.keys, err = otp.DeriveKeys(root); err != nil {
		return fmt.Errorf("signing_key: %w", err)
	}
	tokenKeys := []*otp.Keys{h.keys}
	for i, raw := range h.PreviousKeys {
		key, err := caddy.NewReplacer().ReplaceOrErr(raw, true, true)
		if err != nil {
			return fmt.Errorf("previous_keys[%d]: %w", i, err)
		}
		k, err := otp.DeriveKeys([]byte(key))
		if err != nil {
			return fmt.Errorf("previous_keys[%d]: %w", i, err)
		}
		h.retired = append(h.retired, k)
		tokenKeys = append(tokenKeys, k)
	}
	edKeys, err := loadEdKeys(h.SigningKeyFile, h.PreviousKeyFiles)
	if err != nil {
		return err
	}
	if h.tokens, err = otp.NewTokens(otp.TokenConfig{
		Issuer:   tokenIssuer,
		Audience: h.audience,
		TTL:      time.Duration(h.TokenTTL),
		Keys:     tokenKeys,
		EdKeys:   edKeys,
		Clock:    h.clock,
	}); err != nil {
		return err
	}

	if err := h.joinLoad(ctx, config); err != nil {
		return err
	}
	if h.StoreRaw == nil {
		h.StoreRaw = json.RawMessage(`{"type":"memory"}`)
	}
	storeMod, err := ctx.LoadModule(h, "StoreRaw")
	if err != nil {
		return fmt.Errorf("load store: %w", err)
	}
	store, ok := storeMod.(otp.Store)
	if !ok {
		return fmt.Errorf("store module %T is not an otp.Store", storeMod)
	}
	h.store = store

	if err := h.loadGateway(ctx); err != nil {
		return err
	}
	if h.ReceiptsURL != "" {
		cfg.ReceiptBase = strings.TrimSuffix(h.ReceiptsURL, "/") + h.PathPrefix + "/receipt"
	}

	h.service, err = h.newService(cfg, store)
	if err != nil {
		return err
	}
	return watchBudget(ctx, h)
}

// otpConfig turns the handler's fields into verification rules, with
// defaults for what is unset.
func (h *Handler) otpConfig() otp.Config {
	cfg := otp.DefaultConfig()
	if h.CodeLength != 0 {
		cfg.CodeLength = h.CodeLength
	}
	if h.CodeTTL != 0 {
		cfg.CodeTTL = time.Duration(h.CodeTTL)
	}
	if h.MaxAttempts != 0 {
		cfg.MaxAttempts = h.MaxAttempts
	}
	cfg.ServiceName = cmp.Or(h.serviceLabel, h.ServiceName, cfg.ServiceName)
	if h.MaxCalls != 0 {
		cfg.MaxCalls = h.MaxCalls
	}
	if h.ResendCooldown != 0 {
		cfg.CooldownBase = time.Duration(h.ResendCooldown)
	}
	if h.FailureBudget != 0 {
		cfg.Failures.Budget = h.FailureBudget
	}
	cfg.Limits = h.Limits.sendLimits()
	cfg.RevocationRefresh = time.Duration(h.RevocationRefresh)
	return cfg
}

// Validate checks the configuration; it changes nothing.
func (h *Handler) Validate() error {
	if strings.TrimSpace(h.Identity) == "" {
		return errors.New("identity is required: a placeholder naming the signed-in user, e.g. {http.auth.user.id}")
	}
	if h.Phone == "" && h.PhoneFile == "" && !h.Enroll {
		return errors.New("no phone source: set phone <placeholder>, phone_file <path> or enroll")
	}
	if _, err := parseUpstreamHeaders(h.UpstreamHeaders); err != nil {
		return err
	}
	if _, err := parseHeadersSetBy(h.HeadersSetBy); err != nil {
		return err
	}
	if err := h.validateSession(); err != nil {
		return err
	}
	if err := h.validateScope(); err != nil {
		return err
	}
	if h.MaxIdentitiesPerNumber < 0 {
		return fmt.Errorf("max_identities_per_number %d: expected 1 or more", h.MaxIdentitiesPerNumber)
	}
	if !validPrefix(h.PathPrefix) {
		return fmt.Errorf("path_prefix %q: expected a plain path such as /_stepup", h.PathPrefix)
	}
	if h.TokenTTL < 0 || time.Duration(h.TokenTTL) > 24*time.Hour {
		return fmt.Errorf("token_ttl %s: expected more than 0 and at most 24h", time.Duration(h.TokenTTL))
	}
	if h.MaxAge < 0 || h.MaxAge > h.TokenTTL {
		return fmt.Errorf("max_age %s: expected at most token_ttl (%s)", time.Duration(h.MaxAge), time.Duration(h.TokenTTL))
	}
	if h.ReceiptsURL != "" {
		u, err := url.Parse(h.ReceiptsURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("receipts_url %q: expected this site's base URL such as https://app.example.com", h.ReceiptsURL)
		}
	}
	if h.LoginURL != "" && !strings.HasPrefix(h.LoginURL, "/") && !strings.HasPrefix(h.LoginURL, "https://") {
		return fmt.Errorf("login_url %q: expected a path or an https:// URL", h.LoginURL)
	}
	return h.otpConfig().Validate()
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	first := removeClientValues(r)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	readings, ok := h.rawPathReadings(r) // rawpath.go: what upstreams may make of the raw path
	if !ok {
		blankPlaceholders(repl, first)
		return h.refuseOddPath(w, r)
	}
	if underPrefix(r.URL.Path, h.PathPrefix) {
		blankPlaceholders(repl, first)
		return h.serveOwn(w, r)
	}
	if len(h.protect) > 0 {
		match, err := h.protects(r, readings)
		if err != nil || !match {
			blankPlaceholders(repl, first)
			if err != nil {
				return caddyhttp.Error(http.StatusInternalServerError, err)
			}
			return next.ServeHTTP(w, r)
		}
	}
	identity, session, err := h.signedIn(w, r, repl)
	if identity == "" {
		blankPlaceholders(repl, first)
		return err // refused
	}
	sessionHash := h.keys.SessionHash(session)
	if token := cookieValue(r, h.cookieName(r, tokenCookie)); token != "" {
		v, err := h.checkStepUp(r, token, identity, sessionHash, h.maxAge)
		if err == nil {
			// The hot path: a valid step-up. With upstream_headers the
			// upstream learns who stepped up and when from request headers
			// the handler sets itself (after removing any the client
			// sent), so no header_up is needed: any header_up makes
			// reverse_proxy copy every request header.
			h.setPlaceholders(repl, &v, token)
			h.setUpstreamHeaders(r.Header, &v, token)
			return next.ServeHTTP(w, r)
		}
		if errors.Is(err, errTokenRevoked) {
			h.setCookie(w, r, tokenCookie, "", -1, http.SameSiteLaxMode)
			h.audit(zapcore.InfoLevel, "step-up cookie refused: revoked by an operator", "token_revoked",
				zap.String("identity", identity), zap.String("reason", "not_before"), zap.String("client_ip", clientIP(r)))
		} else {
			h.logger.Debug("step-up cookie not accepted", zap.String("identity", identity), zap.String("reason", err.Error()))
		}
	}
	blankPlaceholders(repl, first)
	return h.challenge(w, r, repl, identity)
}

// errTokenRevoked: the token was valid, but an operator revoked the
// identity's step-ups made before it (`caddy sms-stepup revoke`).
var errTokenRevoked = errors.New("step-up token revoked")

// checkStepUp is every check a step-up cookie must pass: a valid token of
// this identity and session, no older than maxAge (0: its lifetime), and
// not revoked (errTokenRevoked). Whatever a step-up unlocks checks it
// through here.
func (h *Handler) checkStepUp(r *http.Request, token, identity, sessionHash string, maxAge time.Duration) (otp.Verified, error) {
	v, err := h.tokens.Check(token, identity, sessionHash, maxAge)
	if err != nil {
		return otp.Verified{}, err
	}
	if err := h.notRevoked(r, &v); err != nil {
		return otp.Verified{}, err
	}
	return v, nil
}

// notRevoked checks a verified token against its identity's not-before.
// The answer comes from memory, read from the store at most once per
// identity per revocation_refresh. When the store can't be read the last
// answer stands and the token passes (the hot path needs no store; a
// revocation takes effect within revocation_refresh once the store is
// back), with a warning at most
// once per refresh interval rather than one per request.
func (h *Handler) notRevoked(r *http.Request, v *otp.Verified) error {
	revoked, err := h.service.Revoked(r.Context(), v.Subject, v.AuthTime)
	if err != nil {
		h.warnRevocationsUnreadable(v.Subject, err)
	}
	if revoked {
		return errTokenRevoked
	}
	return nil
}

func (h *Handler) warnRevocationsUnreadable(identity string, err error) {
	now := h.clock.Now().UnixNano()
	last := h.revocationWarned.Load()
	if last != 0 && now-last < int64(h.service.Config().RevocationInterval()) && now >= last {
		return
	}
	if !h.revocationWarned.CompareAndSwap(last, now) {
		return // another request is logging it
	}
	h.logger.Warn("store unavailable: revocations can't be read, so valid step-up cookies still pass on what was last read; a revocation made meanwhile takes effect within revocation_refresh once the store is back (this warning repeats at most once per revocation_refresh)",
		zap.String("event", "revocations_unreadable"), zap.String("identity", identity), zap.Error(err))
}

// The placeholders of a step-up, for handlers after this one.
const (
	phIdentity   = "http.sms_stepup.identity"
	phVerifiedAt = "http.sms_stepup.verified_at"
	phAuthTime   = "http.sms_stepup.auth_time"
	phToken      = "http.sms_stepup.token"
)

// setPlaceholders sets the step-up placeholders to the token's values on
// the hot path, over any an earlier handler set (blankPlaceholders empties
// them where no handler steps the request up). The values were formatted
// when the token was first verified.
func (h *Handler) setPlaceholders(repl *caddy.Replacer, v *otp.Verified, token string) {
	repl.Set(phIdentity, v.Subject)
	repl.Set(phVerifiedAt, v.AuthTimeRFC3339)
	repl.Set(phAuthTime, v.AuthTimeUnix)
	repl.Set(phToken, token)
}

// upstreamHeaders is the set of X-Stepup-* headers the handler sets for the
// upstream on the hot path, one bit per header of upstreamHeaderNames.
type upstreamHeaders uint8

// The upstream headers, in canonical form, by option value. Whatever the
// client sent under X-Stepup-* was removed first (SECURITY.md rule 21), so
// the upstream can trust them.
var upstreamHeaderNames = [...]struct{ option, header string }{
	{"identity", "X-Stepup-Identity"},
	{"verified_at", "X-Stepup-Verified-At"},
	{"auth_time", "X-Stepup-Auth-Time"},
	{"token", "X-Stepup-Token"},
}

// parseUpstreamHeaders reads upstream_headers: empty is none.
func parseUpstreamHeaders(values []string) (upstreamHeaders, error) {
	if len(values) == 1 && values[0] == "none" {
		return 0, nil
	}
	var set upstreamHeaders
next:
	for _, v := range values {
		for i, n := range upstreamHeaderNames {
			if v == n.option {
				set |= 1 << i
				continue next
			}
		}
		return 0, fmt.Errorf("upstream_headers %q: expected identity, verified_at, auth_time and token, any of them, or none alone", v)
	}
	return set, nil
}

// setUpstreamHeaders sets the chosen X-Stepup-* request headers of a valid
// step-up. Each costs the proxy more than the rest of the hot path (Caddy
// copies, checks, logs and writes every header), hence none by default.
// The values share one fresh array, one
// allocation: a later handler may change a header's value in place, so the
// cached strings are never handed out in a shared slice.
func (h *Handler) setUpstreamHeaders(hdr http.Header, v *otp.Verified, token string) {
	set := h.upstream
	if set == 0 {
		return
	}
	vals := make([]string, bits.OnesCount8(uint8(set)))
	i := 0
	for b, n := range upstreamHeaderNames {
		if set&(1<<b) == 0 {
			continue
		}
		switch b {
		case 0:
			vals[i] = v.Subject
		case 1:
			vals[i] = v.AuthTimeRFC3339
		case 2:
			vals[i] = v.AuthTimeUnix
		case 3:
			vals[i] = token
		}
		hdr[n.header] = vals[i : i+1 : i+1]
		i++
	}
}

// identity is who the request's user is, from the identity placeholder.
func (h *Handler) identity(repl *caddy.Replacer) string {
	return resolve(repl, h.Identity, h.identityKey)
}

// resolve expands an option's placeholders. An option that is exactly one
// placeholder ("{http.auth.user.id}") has its key found at provision and
// is looked up directly, which spares parsing it on every request.
func resolve(repl *caddy.Replacer, expr, key string) string {
	if key != "" {
		s, _ := repl.GetString(key)
		return s
	}
	return repl.ReplaceAll(expr, "")
}

// placeholderKey is the key of expr when expr is exactly one placeholder
// and nothing else, else "".
func placeholderKey(expr string) string {
	if len(expr) < 3 || expr[0] != '{' || expr[len(expr)-1] != '}' {
		return ""
	}
	key := expr[1 : len(expr)-1]
	if strings.ContainsAny(key, "{}\\") {
		return ""
	}
	return key
}

// stepUpMaxAge is what a client is told the route demands.
func (h *Handler) stepUpMaxAge() time.Duration {
	if h.maxAge > 0 {
		return h.maxAge
	}
	return time.Duration(h.TokenTTL)
}

// challenge answers a protected request that has no valid step-up: API
// clients get 401 with an RFC 9470 challenge, browsers a 303 to the page.
// It reads the identity's state first, so that with the store down the
// answer is a 503 at once (fail closed) rather than a page that can't work.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, identity string) error {
	ctx, cancel := requestContext(r)
	defer cancel()
	if _, err := h.service.Identity(ctx, identity); err != nil {
		return h.unavailable(h.newVisit(w, r, repl, identity), err)
	}
	ret := "/"
	notice := ""
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		ret = requestPath(r)
	} else {
		// A form post without step-up can't be replayed after it; send the
		// user back to the page they posted from and tell them.
		ret = sameSiteReferer(r)
		notice = "resubmit"
	}
	stepURL := h.PathPrefix + "/?r=" + urlQueryEscape(ret)
	if notice != "" {
		stepURL += "&n=" + notice
	}
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		maxAge := int(h.stepUpMaxAge() / time.Second)
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_user_authentication", error_description="SMS step-up required", max_age="%d"`, maxAge))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		return json.NewEncoder(w).Encode(map[string]any{
			"error":             "insufficient_user_authentication",
			"error_description": "SMS step-up required",
			"max_age":           maxAge,
			"step_up_url":       stepURL,
			"state_url":         h.PathPrefix + "/api/state",
			"send_url":          h.PathPrefix + "/api/send",
			"verify_url":        h.PathPrefix + "/api/verify",
		})
	}
	http.Redirect(w, r, stepURL, http.StatusSeeOther)
	return nil
}

func (h *Handler) refuseNoIdentity(w http.ResponseWriter, r *http.Request) error {
	h.audit(zapcore.WarnLevel, "request without identity refused", "no_identity", zap.String("path", r.URL.Path), zap.String("client_ip", clientIP(r)))
	if h.LoginURL != "" && !wantsJSON(r) {
		http.Redirect(w, r, h.LoginURL, http.StatusSeeOther)
		return nil
	}
	return h.renderError(w, r, http.StatusUnauthorized, "no_identity")
}

// requestContext bounds the store and gateway calls of one request.
func requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
