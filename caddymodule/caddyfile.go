package caddymodule

import (
	"encoding/json"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterDirective("sms_stepup", parseCaddyfile)
	// After basic_auth and forward_auth, which set the identity, and before
	// reverse_proxy: users write no `order`.
	httpcaddyfile.RegisterDirectiveOrder("sms_stepup", httpcaddyfile.After, "forward_auth")
}

// parseCaddyfile sets up the handler from Caddyfile tokens:
//
//	sms_stepup [<path>... | <@matcher>] {
//		identity       <placeholder>
//		headers_set_by forward_auth | trusted_proxy
//		session        <placeholder>
//		session_cookie <name>
//		phone          <placeholder>
//		phone_file     <path>
//		phone_file_refresh <duration, at most 1h>
//		phone_source   sql | ldap | http { ... }
//		phone_source_cache {
//			found     <duration, default 5m>
//			not_found <duration, default 1m>
//		}
//		lookup twilio | http { ... }   (lookup_caddyfile.go)
//		enroll
//		max_identities_per_number <n>
//		path_prefix    <path>
//		realm          <name>
//		login_url      <url>
//		code_length    <6-10>
//		code_ttl       <duration, at most 10m>
//		max_attempts   <1-10>
//		resend_cooldown <duration, at most 10m>
//		failure_budget <1-100>
//		token_ttl      <duration>
//		max_age        <duration>
//		route <path>... {
//			max_age <duration, at most token_ttl>
//			action  "<en>" "<ja>"
//		}
//		revocation_refresh <duration, at most 5m>
//		upstream_headers identity | verified_at | auth_time | token ... | none
//		signing_key    <key or placeholder>
//		previous_keys  <key>...
//		signing_key_file   <ed25519.pem>
//		previous_key_files <pem>...
//		default_region <country>
//		allow_countries <country>...
//		allow_types    <type>...
//		mobile_prefixes <+prefix>...
//		deny_numbers   <file>
//		allow_numbers  <file>
//		limits {
//			phone | identity | ip | prefix | country | daily_budget <n>
//			window <duration>
//		}
//		daily_budget   <n>
//		service_name   <name>
//		message        <locale> <template>
//		max_segments   <n>
//		webotp_host    <host>
//		receipts_url   <https://this.site>
//		max_calls      <n>
//		fraud_guard off | {
//			window         <duration, default 1h>
//			min_sends      <n, default 10>
//			min_conversion <share, default 0.2>
//			block          <duration, default 1h, doubling>
//			max_block      <duration, default 24h>
//		}
//		brand {
//			name     <name>
//			logo_url </path or data: URL>
//			color    <rrggbb or "#rrggbb">
//		}
//		templates      <dir>
//		replay         off
//		replay_max_body <size, at most 1MiB, default 64KiB>
//		app_triggered  <path>... | { <matcher> ... }
//		store          <module> [...]
//		gateway        <module> [...]
//	}
//
// Unlike most directives, the paths or matcher name what needs a step-up;
// they do not wrap the handler, because the plugin's own pages under
// path_prefix must be reachable whatever is protected.
//
// identity must come from an authentication step the client cannot skip:
// {http.auth.user.id} after basic_auth, or a header that forward_auth
// copies, with forward_auth before sms_stepup in the same route (both at
// site level, or both in one handle block; the directive order puts
// sms_stepup after forward_auth). A request header read by identity or
// phone is believed only where headers_set_by says it comes from, checked
// on every request: forward_auth (the default) when forward_auth answered
// earlier in the same request, trusted_proxy when the request comes from a
// proxy in the server's trusted_proxies. Other requests are refused.
//
// phone_source looks numbers up in the application's own database (sql),
// directory (ldap) or API (http); each module's documentation gives its
// block. Several are asked in order, after phone and phone_file and before
// enrolment; a source that fails fails the request closed with the 503
// page. phone_source_cache says how long their answers are kept in the
// store.
//
// Each route names requests with their own freshness and what a step-up
// there confirms: its paths need a step-up too, the strictest max_age that
// applies to a request decides, and its action (English, then Japanese)
// is shown on the pages and named in the SMS, which must still fit
// max_segments (see StepUpRoute).
//
// session_cookie <name> binds the step-up to the application's session
// cookie read whole, or from its numbered parts name_0, name_1, ... where
// it was split (oauth2-proxy splits large ones). A configured session that
// comes out empty refuses the step-up.
//
// A step-up is good only for the handler that made it: the adapter writes
// the site block's addresses into the handler (its "sites"), and with
// path_prefix they name its scope, which its tokens carry. Handlers that
// are to share step-ups, say across sites of one application, name the
// same realm, and must then take the identity and the phone number from
// the same source, with the same signing key and store. The site's first
// address also names the service when service_name is unset.
func parseCaddyfile(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	handler := new(Handler)
	if err := handler.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	handler.Sites = siteAddresses(h)
	// The same checks as a JSON config gets, pointing at the line.
	if err := handler.validateCaddyfile(); err != nil {
		return nil, err
	}
	if handler.namedMatcher != "" {
		// The matcher's own token, not re-lexed text: re-lexing an argument
		// that holds quotes or "<<" could end the process.
		mh := h.WithDispenser(caddyfile.NewDispenser([]caddyfile.Token{handler.namedMatcherToken}))
		set, ok, err := mh.MatcherToken()
		if err != nil {
			return nil, h.Errf("sms_stepup: %v", err)
		}
		if ok && set != nil {
			handler.ProtectRaw = caddyhttp.RawMatcherSets{set}
		}
	}
	return h.NewRoute(nil, handler), nil
}

var blockOptions = []string{"identity", "headers_set_by", "session", "session_cookie", "phone", "phone_file", "phone_file_refresh", "phone_source", "phone_source_cache", "lookup", "enroll", "max_identities_per_number", "path_prefix", "realm", "login_url",
	"code_length", "code_ttl", "max_attempts", "resend_cooldown", "failure_budget", "token_ttl", "max_age", "route", "revocation_refresh", "upstream_headers", "signing_key", "previous_keys",
	"signing_key_file", "previous_key_files", "default_region",
	"allow_countries", "allow_types", "mobile_prefixes", "deny_numbers", "allow_numbers", "limits", "daily_budget", "service_name", "message", "max_segments", "webotp_host", "receipts_url", "max_calls", "fraud_guard", "brand", "templates", "captcha", "captcha_when", "store", "gateway",
	"history_retention", "history_max", "resend_backoff",
	"replay", "replay_max_body", "app_triggered"}

// UnmarshalCaddyfile parses the sms_stepup directive (see parseCaddyfile).
// A named matcher is kept by name and resolved by parseCaddyfile, which
// knows the site's matcher definitions. It only parses: what a value may
// be is Validate's to say (validateCaddyfile), as for a JSON config; it
// records where each option was written, for those errors.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	h.caddyfileAt = map[string]caddyfile.Token{"": d.Token()}
	var paths []string
	for d.NextArg() {
		arg := d.Val()
		switch {
		case arg == "*":
		case strings.HasPrefix(arg, "/"):
			if h.namedMatcher != "" {
				return d.Errf("sms_stepup: use path patterns or one named matcher, not both")
			}
			paths = append(paths, arg)
		case strings.HasPrefix(arg, "@"):
			if h.namedMatcher != "" || len(paths) > 0 {
				return d.Errf("sms_stepup: use path patterns or one named matcher, not both")
			}
			if strings.ContainsAny(arg, " \t\r\n\"'`<>{}") {
				return d.Errf("sms_stepup: %q is not a matcher name: expected @name", arg)
			}
			h.namedMatcher, h.namedMatcherToken = arg, d.Token()
		default:
			return d.Errf("sms_stepup: unexpected argument %q: expected path patterns starting with /, one named matcher (@name), or none", arg)
		}
	}
	if len(paths) > 0 {
		h.ProtectRaw = caddyhttp.RawMatcherSets{{"path": caddyconfig.JSON(caddyhttp.MatchPath(paths), nil)}}
	}
	for d.NextBlock(0) {
		opt := d.Val()
		h.caddyfileAt[jsonOption(opt)] = d.Token()
		var err error
		switch opt {
		case "identity":
			h.Identity, err = oneArg(d)
		case "headers_set_by":
			h.HeadersSetBy, err = oneArg(d)
		case "session":
			h.Session, err = oneArg(d)
		case "session_cookie":
			h.SessionCookie, err = oneArg(d)
		case "phone":
			h.Phone, err = oneArg(d)
		case "phone_file":
			h.PhoneFile, err = oneArg(d)
		case "phone_file_refresh":
			h.PhoneFileRefresh, err = durationArg(d, opt)
		case "phone_source":
			var raw json.RawMessage
			raw, err = guestModule(d, "sms_stepup.phone_sources", "phone_source", "sql")
			h.PhoneSourcesRaw = append(h.PhoneSourcesRaw, raw)
		case "phone_source_cache":
			h.PhoneSourceCache, err = parsePhoneSourceCache(d, h.caddyfileAt)
		case "lookup":
			h.Lookup, err = parseLookup(d, h.caddyfileAt)
		case "enroll":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Enroll = true
		case "max_identities_per_number":
			h.MaxIdentitiesPerNumber, err = intArg(d, opt)
		case "path_prefix":
			h.PathPrefix, err = oneArg(d)
		case "realm":
			h.Realm, err = oneArg(d)
		case "login_url":
			h.LoginURL, err = oneArg(d)
		case "code_length":
			h.CodeLength, err = intArg(d, opt)
		case "max_attempts":
			h.MaxAttempts, err = intArg(d, opt)
		case "resend_cooldown":
			h.ResendCooldown, err = durationArg(d, opt)
		case "failure_budget":
			h.FailureBudget, err = intArg(d, opt)
		case "code_ttl":
			h.CodeTTL, err = durationArg(d, opt)
		case "token_ttl":
			h.TokenTTL, err = durationArg(d, opt)
		case "max_age":
			h.MaxAge, err = durationArg(d, opt)
		case "route":
			var rt StepUpRoute
			rt, err = parseRoute(d, h.caddyfileAt, len(h.Routes))
			h.Routes = append(h.Routes, rt)
		case "revocation_refresh":
			h.RevocationRefresh, err = durationArg(d, opt)
		case "upstream_headers":
			h.UpstreamHeaders = d.RemainingArgs()
			if len(h.UpstreamHeaders) == 0 {
				return d.Errf("upstream_headers: expected identity, verified_at, auth_time and token, any of them, or none")
			}
		case "signing_key":
			h.SigningKey, err = oneArg(d)
		case "previous_keys", "previous_key_files":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("%s: expected one or more keys", opt)
			}
			if opt == "previous_keys" {
				h.PreviousKeys = append(h.PreviousKeys, args...)
			} else {
				h.PreviousKeyFiles = append(h.PreviousKeyFiles, args...)
			}
		case "signing_key_file":
			h.SigningKeyFile, err = oneArg(d)
		case "default_region":
			h.DefaultRegion, err = oneArg(d)
		case "allow_countries":
			h.AllowCountries = d.RemainingArgs()
			if len(h.AllowCountries) == 0 {
				return d.Errf("allow_countries: expected one or more country codes such as JP US")
			}
		case "allow_types", "mobile_prefixes":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("%s: expected one or more values", opt)
			}
			if opt == "allow_types" {
				h.AllowTypes = args
			} else {
				h.MobilePrefixes = args
			}
		case "deny_numbers":
			h.DenyNumbers, err = oneArg(d)
		case "allow_numbers":
			h.AllowNumbers, err = oneArg(d)
		case "daily_budget":
			if h.Limits == nil {
				h.Limits = new(LimitsConfig)
			}
			var n int
			n, err = intArg(d, "limits.daily_budget")
			h.Limits.DailyBudget = &n
		case "limits":
			if d.NextArg() {
				return d.ArgErr()
			}
			if h.Limits == nil {
				h.Limits = new(LimitsConfig)
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				sub := d.Val()
				h.caddyfileAt["limits."+sub] = d.Token()
				if sub == "window" {
					if h.Limits.Window, err = durationArg(d, "limits.window"); err != nil {
						return err
					}
					continue
				}
				n, err := intArg(d, "limits."+sub)
				if err != nil {
					return err
				}
				switch sub {
				case "phone":
					h.Limits.Phone = &n
				case "identity":
					h.Limits.Identity = &n
				case "ip":
					h.Limits.IP = &n
				case "device":
					h.Limits.Device = &n
				case "prefix":
					h.Limits.Prefix = &n
				case "country":
					h.Limits.Country = &n
				case "daily_budget":
					h.Limits.DailyBudget = &n
				default:
					return d.Errf("unknown limit %q: expected phone, identity, ip, device, prefix, country, daily_budget or window", sub)
				}
			}
		case "service_name":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.ServiceName = strings.Join(args, " ")
		case "message":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("message: expected a locale (en or ja) and a template, e.g. message en \"{{.Code}} is your code\"")
			}
			if h.Messages == nil {
				h.Messages = make(map[string]string)
			}
			h.Messages[args[0]] = args[1]
		case "max_segments":
			h.MaxSegments, err = intArg(d, opt)
		case "webotp_host":
			h.WebOTPHost, err = oneArg(d)
		case "receipts_url":
			h.ReceiptsURL, err = oneArg(d)
		case "max_calls":
			h.MaxCalls, err = intArg(d, opt)
		case "fraud_guard":
			h.FraudGuard, err = parseFraudGuard(d, h.caddyfileAt)
		case "templates":
			h.Templates, err = oneArg(d)
		case "brand":
			h.Brand, err = parseBrand(d, h.caddyfileAt)
		case "captcha", "captcha_when":
			err = h.parseCaptchaOption(d, opt)
		case "replay", "replay_max_body", "app_triggered":
			err = h.parseReplayOption(d, opt) // caddyfile_replay.go
		case "store":
			h.StoreRaw, err = guestModule(d, "sms_stepup.stores", "store", "memory")
		case "gateway":
			h.GatewayRaw, err = guestModule(d, "sms_stepup.gateways", "gateway", "console")
		case "history_retention", "history_max":
			err = h.parseHistoryOption(d, opt)
		case "resend_backoff":
			err = h.parseResendBackoff(d)
		default:
			return d.Errf("unknown sms_stepup option %q: expected one of %s", opt, strings.Join(blockOptions, ", "))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
