package caddymodule

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// StepUpRoute is a group of requests with its own freshness and its own
// name for what a step-up there confirms (PSD2's dynamic linking: a code
// that names its action is harder to phish). The requests it matches need
// a step-up, whatever protect says.
//
// Where several requirements apply to one request (the handler's own
// max_age on what protect matches, or on everything when protect is empty,
// and each matching route's, on any reading of the raw path), the strictest
// max_age decides. The action shown and sent is that of the strictest
// matching route that names one; of two equally strict, the one written
// first.
type StepUpRoute struct {
	// The requests of the route.
	MatchRaw caddyhttp.RawMatcherSets `json:"match,omitempty" caddy:"namespace=http.matchers"`
	// How fresh a step-up must be here, at most token_ttl. Default: the
	// handler's max_age.
	MaxAge caddy.Duration `json:"max_age,omitempty"`
	// What a step-up here confirms, by locale: "en" and "ja" both, each a
	// phrase that follows "Confirm it's you to" ("change your payout
	// account") or precedes "のためのご本人確認" ("振込先の変更"). It is
	// shown on the pages and named in the SMS, which must still fit
	// max_segments with it.
	Action otp.Action `json:"action,omitempty"`

	match caddyhttp.MatcherSets
	// match compiled, when it is only plain path patterns (pathmatch.go).
	paths  *compiledPaths
	maxAge time.Duration
}

// maxActionRunes bounds an action's text before the SMS budget does: a
// phrase, not a paragraph.
const maxActionRunes = 60

// validateRoutes checks each route: a matcher, a max_age within token_ttl,
// an action in every locale that fits the SMS.
func (h *Handler) validateRoutes() error {
	ttl := cmp.Or(time.Duration(h.TokenTTL), DefaultTokenTTL)
	for i := range h.Routes {
		rt := &h.Routes[i]
		at := fmt.Sprintf("routes.%d", i)
		if len(rt.MatchRaw) == 0 && rt.match == nil { // Provision loads the matchers, which drops their JSON
			return optionErrorf(at, "route %d: expected a matcher (match), such as the paths in route /account/payout* { ... }", i)
		}
		if d := time.Duration(rt.MaxAge); d < 0 || d > ttl {
			return optionErrorf(at+".max_age", "route max_age %s: expected a duration such as 2m, more than 0 and at most token_ttl (%s)", shortDuration(d), shortDuration(ttl))
		}
		if rt.Action != nil {
			if err := h.validateAction(rt.Action); err != nil {
				return onOption(at+".action", err)
			}
		}
	}
	return nil
}

// validateAction checks one action's texts, and that the SMS naming it
// fits max_segments with the shortest service name the handler may fall
// back to (the full check, with the site's name, is at provision).
func (h *Handler) validateAction(a otp.Action) error {
	for locale := range a {
		if !isLocale(locale) {
			return fmt.Errorf("route action %q: no such locale, expected %s", locale, strings.Join(otp.Locales, " and "))
		}
	}
	for _, locale := range otp.Locales {
		text := a[locale]
		if strings.TrimSpace(text) == "" {
			return fmt.Errorf("route action: expected a text for each of %s, as in action \"change your payout account\" \"振込先の変更\"", strings.Join(otp.Locales, " and "))
		}
		if strings.ContainsFunc(text, unicode.IsControl) || len([]rune(text)) > maxActionRunes {
			return fmt.Errorf("route action %q: expected one line of at most %d characters", text, maxActionRunes)
		}
	}
	msgs, err := otp.NewMessages(otp.MessagesConfig{Templates: h.Messages, WebOTPHost: h.WebOTPHost})
	if err != nil {
		return nil // the messages' own error, reported at provision
	}
	cfg := h.otpConfig()
	return msgs.CheckSegments(cmp.Or(h.ServiceName, neutralServiceName), cfg.CodeLength, cfg.CodeTTL, cmp.Or(h.MaxSegments, 1), a)
}

func isLocale(s string) bool {
	for _, l := range otp.Locales {
		if l == s {
			return true
		}
	}
	return false
}

// actions are the routes' actions, for the SMS budget check.
func (h *Handler) actions() []otp.Action {
	var out []otp.Action
	for _, rt := range h.Routes {
		if rt.Action != nil {
			out = append(out, rt.Action)
		}
	}
	return out
}

// provisionRoutes loads each route's matchers and settles its max_age;
// after provisionMessages, which settles the handler's.
func (h *Handler) provisionRoutes(p *provisioning) error {
	for i := range h.Routes {
		rt := &h.Routes[i]
		if rt.MatchRaw != nil {
			mods, err := p.ctx.LoadModule(rt, "MatchRaw")
			if err != nil {
				return fmt.Errorf("route %d: %w", i, err)
			}
			if err := rt.match.FromInterface(mods); err != nil {
				return fmt.Errorf("route %d: %w", i, err)
			}
		}
		rt.paths = compilePaths(rt.match)
		rt.maxAge = cmp.Or(time.Duration(rt.MaxAge), h.maxAge)
	}
	return nil
}

// requirement is what a request needs: whether a step-up at all, how fresh
// (the strictest max_age that applies), and which route names the action.
type requirement struct {
	need   bool
	maxAge time.Duration
	action otp.Action
}

// requirementOf works out what r needs from protect and the routes, each
// run on the request and on every reading of its raw path (rawpath.go), so
// that no reading escapes a stricter route.
func (h *Handler) requirementOf(r *http.Request, readings []string) (requirement, error) {
	var req requirement
	if len(h.protect) == 0 {
		req = requirement{need: true, maxAge: h.maxAge}
	} else if match, err := h.protects(r, readings); err != nil || match {
		req = requirement{need: match, maxAge: h.maxAge}
		if err != nil {
			return req, err
		}
	}
	if len(h.Routes) == 0 {
		return req, nil
	}
	return h.routesOf(r, readings, req)
}

// routesOf tightens req by every route that matches r or a reading.
func (h *Handler) routesOf(r *http.Request, readings []string, req requirement) (requirement, error) {
	actionAge := time.Duration(0)
	for i := range h.Routes {
		rt := &h.Routes[i]
		match, err := h.matchesReading(rt.match, rt.paths, r, readings) // SECURITY.md rule 28: every reading
		if err != nil {
			return requirement{need: true, maxAge: req.maxAge}, err
		}
		if !match {
			continue
		}
		if !req.need || rt.maxAge < req.maxAge {
			req.maxAge = rt.maxAge
		}
		req.need = true
		if rt.Action != nil && (req.action == nil || rt.maxAge < actionAge) {
			req.action, actionAge = rt.Action, rt.maxAge
		}
	}
	return req, nil
}

// actionText is what the step-up of a visit to the plugin's pages
// confirms, in its language: the action of the route the user goes back
// to, worked out here from the return path as a GET to it (never from
// text the client sends, so editing the return path can only name the
// route it really leads to), or "".
func (h *Handler) actionText(v *visit) string {
	if len(h.Routes) == 0 {
		return ""
	}
	u, err := url.Parse(v.ret)
	if err != nil {
		return ""
	}
	back := readingRequest(v.r)
	back.Method = http.MethodGet
	back.URL.Path, back.URL.RawPath, back.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
	var readings []string
	if escaped := back.URL.EscapedPath(); classifyPath(escaped) != pathPlain && len(escaped) <= maxReadPath {
		readings = pathReadings(escaped)
	}
	req, err := h.routesOf(back, readings, requirement{})
	if err != nil || req.action == nil {
		return ""
	}
	return req.action[v.lang]
}
