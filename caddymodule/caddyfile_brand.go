package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// parseBrand reads the brand block:
//
//	brand {
//		name     <name>
//		logo_url </path or data: URL>
//		color    <rrggbb or "#rrggbb">
//	}
//
// at records where each of its options was written (brand.name ...).
func parseBrand(d *caddyfile.Dispenser, at map[string]caddyfile.Token) (*BrandConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	b := new(BrandConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		sub := d.Val()
		at["brand."+sub] = d.Token()
		switch sub {
		case "name":
			b.Name, err = oneArg(d)
		case "logo_url":
			b.LogoURL, err = oneArg(d)
		case "color":
			b.Color, err = brandColor(d)
		default:
			return nil, d.Errf("unknown brand option %q: expected name, logo_url or color", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// brandColor reads the accent colour as #rgb or #rrggbb. In a Caddyfile an
// unquoted # starts a comment, so `color #1a56db` arrives with no value:
// the digits alone (1a56db) are taken as the colour, a quoted "#1a56db" as
// written, and a missing value is explained rather than reported as a bare
// argument count.
func brandColor(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.Errf(`brand color: no value; a # outside quotes starts a comment in a Caddyfile, so write the colour without it (color 1a56db) or quote it (color "#1a56db")`)
	}
	raw := d.Val()
	if d.NextArg() {
		return "", d.Errf("brand color: expected one value, got another: %q", d.Val())
	}
	if !strings.HasPrefix(raw, "#") {
		return "#" + raw, nil
	}
	return raw, nil
}
