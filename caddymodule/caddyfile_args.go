package caddymodule

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The readers of option arguments the Caddyfile adapter and the guest
// modules (gateways, stores, phone sources) share.

// oneArg reads exactly one argument of the current option.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	opt := d.Val()
	if !d.NextArg() {
		return "", d.Errf("%s: expected one value", opt)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.Errf("%s: expected one value, got another: %q", opt, d.Val())
	}
	return v, nil
}

// intArg reads a whole number for option (its JSON name). Its range is
// Validate's to check, but for 0: in JSON 0 is an option left unset, so a
// Caddyfile that writes 0 where 0 means "the default" is refused here,
// with the message Validate gives for a value out of range.
func intArg(d *caddyfile.Dispenser, option string) (int, error) {
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	r, _ := rangeOf(option)
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, d.Errf("%s %q: expected a whole number from %d to %d", option, s, r.min, r.max)
	}
	if n == 0 && r.min > 0 {
		return 0, d.WrapErr(r.check(0))
	}
	return n, nil
}

// durationArg reads a duration for option (its JSON name). As with
// intArg, its range is Validate's to check but for 0 where 0 means "the
// default" (every duration option but revocation_refresh).
func durationArg(d *caddyfile.Dispenser, option string) (caddy.Duration, error) {
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, d.Errf("%s %q: expected a duration such as 5m", option, s)
	}
	if r, ok := durationRangeOf(option); ok && dur == 0 {
		return 0, d.WrapErr(r.check(0))
	}
	return caddy.Duration(dur), nil
}

// guestModule parses `<option> <name> [args] [{ block }]` into the JSON of
// module <namespace>.<name>, with its name under "type".
func guestModule(d *caddyfile.Dispenser, namespace, opt, example string) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.Errf("%s: expected a module name such as %s", opt, example)
	}
	name := d.Val()
	if _, err := caddy.GetModule(namespace + "." + name); err != nil {
		return nil, d.Errf("%s %q: no such module (is it compiled in?); expected e.g. %s", opt, name, example)
	}
	unm, err := caddyfile.UnmarshalModule(d, namespace+"."+name)
	if err != nil {
		return nil, err
	}
	return caddyconfig.JSONModuleObject(unm, "type", name, nil), nil
}

// validPrefix accepts a plain path below the root: /_stepup, /auth/stepup.
// "/" or "//" would put the plugin's pages over the whole site.
func validPrefix(p string) bool {
	p = strings.TrimRight(p, "/")
	return strings.HasPrefix(p, "/") && len(p) > 1 && !strings.Contains(p, "//") && !strings.ContainsAny(p, "*?#{} \\")
}

// boundedIntArg reads a whole number from min to max, for the guest
// modules (gateways, stores), which check their options as they parse.
func boundedIntArg(d *caddyfile.Dispenser, min, max int) (int, error) {
	opt := d.Val()
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, d.Errf("%s %q: expected a whole number from %d to %d", opt, s, min, max)
	}
	return n, nil
}

// boundedDurationArg reads a duration more than 0 and at most max, for the
// guest modules.
func boundedDurationArg(d *caddyfile.Dispenser, max time.Duration) (caddy.Duration, error) {
	opt := d.Val()
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 || dur > max {
		return 0, d.Errf("%s %q: expected a duration such as 5m, more than 0 and at most %s", opt, s, max)
	}
	return caddy.Duration(dur), nil
}
