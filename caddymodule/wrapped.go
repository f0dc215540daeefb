package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// The handler decides protection for the requests it sees, on every
// reading of their path and every method they claim (rule 28). Inside a
// block with a matcher (handle /settings* { sms_stepup ... }), the
// requests that matcher does not match go elsewhere unchecked, and those
// are exactly the other readings and methods an upstream may serve as the
// protected resource. The handler can see that at load when the block is
// a subroute (handle, route, handle_path): the route of each subroute
// above it being provisioned is the one that holds it. It warns rather
// than refuses, as a block may rightly hold only one application.

// warnIfWrapped warns when a route with a matcher holds the handler.
func (h *Handler) warnIfWrapped(ctx caddy.Context) {
	if !wrappedByMatcher(ctx) {
		return
	}
	h.logger.Warn("sms_stepup is inside a block with a matcher (such as handle /settings* { ... }): requests that matcher does not match never reach it, "+
		"among them other spellings of the protected paths that the upstream may serve as the same resource (/x/..;/settings, /Settings, /%73ettings) and other methods, "+
		"and its own pages under path_prefix work only where the matcher matches them; put sms_stepup where every request to the application passes it "+
		"and name what needs a step-up in its own arguments (sms_stepup /settings* { ... }), which are checked on every such reading (README: Shapes that leave a way round)",
		zap.String("handler", h.scopeLabel))
}

// wrappedByMatcher says whether a route with a matcher, in any subroute
// above the handler being provisioned, holds it. The server's own routes
// (a site's host matcher) are not looked at.
func wrappedByMatcher(ctx caddy.Context) bool {
	for _, m := range ctx.Modules() {
		sr, ok := m.(*caddyhttp.Subroute)
		if !ok {
			continue
		}
		for _, r := range sr.Routes {
			if r.HandlersRaw != nil { // the route being provisioned
				if len(r.MatcherSets) > 0 {
					return true
				}
				break
			}
		}
	}
	return false
}
