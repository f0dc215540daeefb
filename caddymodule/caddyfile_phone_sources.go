package caddymodule

import "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

// parsePhoneSourceCache reads the phone_source_cache block, recording
// where each option was written in at.
func parsePhoneSourceCache(d *caddyfile.Dispenser, at map[string]caddyfile.Token) (*PhoneSourceCacheConfig, error) {
	if d.NextArg() {
		return nil, d.Errf("phone_source_cache takes no argument, got %q: put found and not_found in a block", d.Val())
	}
	c := new(PhoneSourceCacheConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		option := "phone_source_cache." + sub
		at[option] = d.Token()
		var err error
		switch sub {
		case "found":
			c.Found, err = durationArg(d, option)
		case "not_found":
			c.NotFound, err = durationArg(d, option)
		default:
			return nil, d.Errf("unknown phone_source_cache option %q: expected found or not_found", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}
