package caddymodule

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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
//
// The options are grouped in embedded structs by what they concern; JSON
// flattens embedded structs, so each option is a key of the handler itself.
type Handler struct {
	// Matchers for the requests that need a step-up. Empty: all requests.
	ProtectRaw caddyhttp.RawMatcherSets `json:"protect,omitempty" caddy:"namespace=http.matchers"`
	// Requests with their own max_age and a name for what a step-up there
	// confirms (routes.go); they need a step-up too.
	Routes []StepUpRoute `json:"routes,omitempty"`

	IdentityOptions
	ScopeOptions
	CodeOptions
	TokenOptions
	PhoneOptions
	MessageOptions
	PageOptions
	DeliveryOptions
	CaptchaOptions
	HistoryOptions
	BackoffOptions
	ReplayOptions
	FraudOptions

	// Where challenges and counters live. Default: memory.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=sms_stepup.stores inline_key=type"`
	// How SMS are sent. Default: console.
	GatewayRaw json.RawMessage `json:"gateway,omitempty" caddy:"namespace=sms_stepup.gateways inline_key=type"`

	// A named matcher from the Caddyfile, resolved by parseCaddyfile.
	namedMatcher      string
	namedMatcherToken caddyfile.Token
	// Where the Caddyfile wrote each option, by JSON name ("" for the
	// directive), so that Validate's errors can name the line.
	caddyfileAt map[string]caddyfile.Token

	protect caddyhttp.MatcherSets
	// protect compiled, when it is only plain path patterns (pathmatch.go).
	protectPaths *compiledPaths
	service      *otp.Service
	tokens       *otp.Tokens
	keys         *otp.Keys
	retired      []*otp.Keys
	policy       *otp.PhonePolicy
	phones       *phoneMemo // policy.Check from memory (phonememo.go)
	// phone_file's table, read again when the file changes.
	phoneFile *phoneFile
	sources   *phoneSources
	carrier   *otp.CarrierCheck // the lookup option's (lookup.go)
	store     otp.Store
	gateway   otp.Gateway
	pages     *pages.Set
	frames    *pageFrames // the send page's refusals, pre-rendered (render_frame.go)
	brand     pages.Brand
	events    *caddyevents.App
	ctx       caddy.Context
	logger    *zap.Logger
	clock     otp.Clock
	maxAge    time.Duration

	// The handler's scope (scope.go): the aud of its tokens and the scope
	// of its CSRF tokens; how errors name the handler; the service's name.
	audience     string
	scopeLabel   string
	serviceLabel string

	// How identity and session are read (handler.go, inputOf).
	identityIn placeholderInput
	sessionIn  placeholderInput
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

	// familiar and once keep what the CAPTCHA needs (captcha.go).
	familiar      otp.Familiarity
	once          otp.OnceStore
	captchaSecret string
	// replays keeps form POSTs for after the step-up (replay.go); nil when
	// the store can't.
	replays otp.ReplayStore
	// appTriggered are the requests whose upstream may ask for a step-up
	// (app_triggered.go).
	appTriggered caddyhttp.MatcherSets
}

// IdentityOptions are where the signed-in user, their session and their phone
// number come from.
type IdentityOptions struct {
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
	// provision and again when it changes (see phone_file_refresh). A row
	// that can't be parsed or whose number the policy refuses is skipped
	// and logged, and its identity gets no number; a file that can't be
	// read fails the load.
	PhoneFile string `json:"phone_file,omitempty"`
}

// ScopeOptions place the handler: where its pages live, which step-ups it
// shares, and where a request without identity goes.
type ScopeOptions struct {
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
}

// CodeOptions shape the one-time codes and how many tries they allow.
type CodeOptions struct {
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
}

// TokenOptions shape the step-up token: how long it lives, what the upstream
// learns of it, and the keys that sign it.
type TokenOptions struct {
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
}

// PhoneOptions decide which numbers may receive codes, who may enrol one,
// and how many codes may be sent.
type PhoneOptions struct {
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
	// How often phone_file is looked at for changes, at most: a change
	// is in use by the first step-up after it. At most 1h. Default: 10s.
	PhoneFileRefresh caddy.Duration `json:"phone_file_refresh,omitempty"`
	// Where to look numbers up in the application's own data: modules of
	// the sms_stepup.phone_sources namespace (sql, ldap, http), asked in
	// order after phone and phone_file and before enrolment. A source
	// that fails fails the request closed (503); only when none knows the
	// identity does enrolment take over. A number a source gives passes
	// the phone policy like any other, and can't be replaced by enrolling.
	PhoneSourcesRaw []json.RawMessage `json:"phone_sources,omitempty" caddy:"namespace=sms_stepup.phone_sources inline_key=type"`
	// How long the answers of the phone sources are kept in the store.
	PhoneSourceCache *PhoneSourceCacheConfig `json:"phone_source_cache,omitempty"`
	// The carrier check of numbers the metadata can't classify (lookup_config.go).
	Lookup *LookupConfig `json:"lookup,omitempty"`
}

// PhoneSourceCacheConfig is how long answers of the phone sources are
// kept, each from 1s to 1h: minutes, so that a number the application
// changes reaches the step-up soon. Failures are never kept.
type PhoneSourceCacheConfig struct {
	// A number found. Default: 5m.
	Found caddy.Duration `json:"found,omitempty"`
	// The news that no source knows the identity. Default: 1m.
	NotFound caddy.Duration `json:"not_found,omitempty"`
}

// MessageOptions shape the SMS.
type MessageOptions struct {
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
}

// PageOptions shape the plugin's pages.
type PageOptions struct {
	// How the pages look: the service's name, a logo (a path on this site
	// or a data: URL) and an accent colour.
	Brand *BrandConfig `json:"brand,omitempty"`
	// A directory of templates replacing the built-in pages by file name
	// (send.html, code.html, locked.html, error.html, unavailable.html,
	// layout.html). A template that fails to parse or render fails the
	// config load with the file and line.
	Templates string `json:"templates,omitempty"`
}

// DeliveryOptions are about delivery beyond the SMS: delivery reports and
// voice calls.
type DeliveryOptions struct {
	// This site's public base URL (https://app.example.com), where SMS
	// providers report delivery: each message gets an unguessable URL under
	// {receipts_url}{path_prefix}/receipt/. Default: no delivery reports.
	ReceiptsURL string `json:"receipts_url,omitempty"`
	// Voice calls allowed per challenge, where the gateway can call.
	// Default: 2.
	MaxCalls int `json:"max_calls,omitempty"`
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
