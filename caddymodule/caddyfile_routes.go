package caddymodule

import (
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// parseRoute reads one route of the sms_stepup block:
//
//	route <path>... {
//		max_age <duration>
//		action  "<en>" "<ja>"
//	}
//
// It records where the route and its options were written (routes.N,
// routes.N.max_age, routes.N.action), so that Validate's errors about
// them point at their line.
func parseRoute(d *caddyfile.Dispenser, at map[string]caddyfile.Token, index int) (StepUpRoute, error) {
	var rt StepUpRoute
	name := fmt.Sprintf("routes.%d", index)
	at[name] = d.Token()
	paths := d.RemainingArgs()
	if len(paths) == 0 {
		return rt, d.Errf("route: expected one or more path patterns starting with /, such as route /account/payout* { ... }")
	}
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") {
			return rt, d.Errf("route %q: expected path patterns starting with /, such as /account/payout*", p)
		}
	}
	rt.MatchRaw = caddyhttp.RawMatcherSets{{"path": caddyconfig.JSON(caddyhttp.MatchPath(paths), nil)}}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		at[name+"."+sub] = d.Token()
		switch sub {
		case "max_age":
			var err error
			if rt.MaxAge, err = durationArg(d, "max_age"); err != nil {
				return rt, err
			}
		case "action":
			args := d.RemainingArgs()
			if len(args) != len(otp.Locales) {
				return rt, d.Errf(`action: expected the text in English and in Japanese, such as action "change your payout account" "振込先の変更"`)
			}
			rt.Action = otp.Action{}
			for i, locale := range otp.Locales {
				rt.Action[locale] = args[i]
			}
		default:
			return rt, d.Errf("unknown route option %q: expected max_age or action", sub)
		}
	}
	return rt, nil
}
