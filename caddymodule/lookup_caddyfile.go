package caddymodule

import "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

// parseLookup reads the lookup block, recording where each of its options
// was written in at (lookup.url ...):
//
//	lookup twilio {
//		account_sid <AC...>
//		auth_token  <token or placeholder>
//		base_url    <url, for tests>
//		always
//		cache       <duration, default 720h>
//		timeout     <duration, default 5s>
//	}
//	lookup http {
//		url     <https://...>
//		field   <dotted.path>
//		header  <name> <value or placeholder>
//		always | cache | timeout as above
//	}
func parseLookup(d *caddyfile.Dispenser, at map[string]caddyfile.Token) (*LookupConfig, error) {
	if !d.NextArg() {
		return nil, d.Errf("lookup: expected twilio or http, then a block")
	}
	l := &LookupConfig{Provider: d.Val()}
	if d.NextArg() {
		return nil, d.Errf("lookup: expected one provider (twilio or http), got another: %q", d.Val())
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		at["lookup."+sub] = d.Token()
		var err error
		switch sub {
		case "account_sid":
			l.AccountSID, err = oneArg(d)
		case "auth_token":
			l.AuthToken, err = oneArg(d)
		case "base_url":
			l.BaseURL, err = oneArg(d)
		case "url":
			l.URL, err = oneArg(d)
		case "field":
			l.Field, err = oneArg(d)
		case "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.Errf("lookup header: expected a name and a value, such as header X-Api-Key {env.LOOKUP_KEY}")
			}
			l.HeaderName, l.HeaderValue = args[0], args[1]
		case "always":
			if d.NextArg() {
				return nil, d.Errf("lookup always: takes no value, got %q", d.Val())
			}
			l.Always = true
		case "cache":
			l.Cache, err = durationArg(d, "lookup.cache")
		case "timeout":
			l.Timeout, err = durationArg(d, "lookup.timeout")
		default:
			return nil, d.Errf("unknown lookup option %q: expected account_sid, auth_token, base_url (twilio), url, field, header (http), always, cache or timeout", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}
