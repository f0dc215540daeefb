package caddymodule

import (
	"encoding/json"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// parseReplayOption reads replay, replay_max_body and app_triggered:
//
//	replay          off
//	replay_max_body <size: 65536, 64KiB, 1MiB ...>
//	app_triggered   <path>...
//	app_triggered   {
//		<matcher> <args...>
//		...
//	}
//
// app_triggered takes path patterns, or a block of Caddy's request
// matchers (path, method, header, query, expression ...), all of which
// must match, as in a named matcher; several app_triggered lines add up.
func (h *Handler) parseReplayOption(d *caddyfile.Dispenser, opt string) error {
	switch opt {
	case "replay":
		v, err := oneArg(d)
		h.Replay = v
		return err
	case "replay_max_body":
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		n, err := parseSize(v)
		if err != nil {
			return d.Errf("replay_max_body %v", err)
		}
		h.ReplayMaxBody = n
		return nil
	}
	set, err := parseAppTriggered(d)
	if err != nil {
		return err
	}
	h.AppTriggeredRaw = append(h.AppTriggeredRaw, set)
	return nil
}

func parseAppTriggered(d *caddyfile.Dispenser) (matcherSetJSON, error) {
	paths := d.RemainingArgs()
	if len(paths) > 0 {
		for _, p := range paths {
			if !strings.HasPrefix(p, "/") {
				return nil, d.Errf("app_triggered %q: expected path patterns starting with /, or a block of matchers such as app_triggered { path /account/* }", p)
			}
		}
		if d.NextBlock(d.Nesting()) {
			return nil, d.Errf("app_triggered: expected path patterns or a block of matchers, not both")
		}
		return matcherSetJSON{"path": caddyconfig.JSON(caddyhttp.MatchPath(paths), nil)}, nil
	}
	set, err := caddyhttp.ParseCaddyfileNestedMatcherSet(d)
	if err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return nil, d.Errf("app_triggered: expected path patterns or a block of matchers, such as app_triggered /account/* or app_triggered { path /account/*; method POST }")
	}
	return set, nil
}

// matcherSetJSON is one matcher set as JSON, as RawMatcherSets holds.
type matcherSetJSON = map[string]json.RawMessage
