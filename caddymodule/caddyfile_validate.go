package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// jsonOption is the JSON name of a Caddyfile option: the name Validate's
// errors give the option they concern.
func jsonOption(opt string) string {
	switch opt {
	case "message":
		return "messages"
	case "daily_budget":
		return "limits.daily_budget"
	case "phone_source":
		return "phone_sources"
	}
	return opt
}

// validateCaddyfile runs Validate on a parsed directive and points its
// error at the line of the option it concerns, or at the directive's when
// it concerns none written there (a missing identity, the sites). The
// message is Validate's, so a JSON config and a Caddyfile read alike.
func (h *Handler) validateCaddyfile() error {
	err := h.Validate()
	if err == nil {
		return nil
	}
	option := optionOf(err)
	tok, ok := h.caddyfileAt[option]
	if !ok {
		// A nested option (limits.phone) that was not written itself: its
		// block, else the directive.
		block, _, _ := strings.Cut(option, ".")
		if tok, ok = h.caddyfileAt[block]; !ok {
			tok = h.caddyfileAt[""]
		}
	}
	// A dispenser on the token words the position as Caddy's own
	// Caddyfile errors do, import chain included.
	d := caddyfile.NewDispenser([]caddyfile.Token{tok})
	d.Next()
	return d.WrapErr(err)
}
