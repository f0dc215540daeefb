package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

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
//		max_per_identity <n, default 5 an hour; 0: no cap>
//		max_per_ip       <n, default 20 an hour; 0: no cap>
//		daily_budget     <n, default 1000 a UTC day; 0: no cap>
//	}
//	lookup http {
//		url     <https://...>
//		field   <dotted.path>
//		header  <name> <value or placeholder>
//		always | cache | timeout | max_per_* | daily_budget as above
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
		case "max_per_identity":
			l.MaxPerIdentity, err = lookupCapArg(d, sub)
		case "max_per_ip":
			l.MaxPerIP, err = lookupCapArg(d, sub)
		case "daily_budget":
			l.DailyBudget, err = lookupCapArg(d, sub)
		default:
			return nil, d.Errf("unknown lookup option %q: expected account_sid, auth_token, base_url (twilio), url, field, header (http), always, cache, timeout, max_per_identity, max_per_ip or daily_budget", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}

// lookupCapArg reads a cap on paid lookups: a whole number, 0 for none.
func lookupCapArg(d *caddyfile.Dispenser, option string) (*int, error) {
	s, err := oneArg(d)
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return nil, d.Errf("lookup %s %q: expected a whole number, 0 for no cap", option, s)
	}
	return &n, nil
}
