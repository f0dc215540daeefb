package caddymodule

import (
	"net/http"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// Method override (SECURITY.md rule 28). Many upstream frameworks let a
// request stand for another method: ASP.NET, JAX-RS and Spring filters,
// Express's method-override and others take a header such as
// X-HTTP-Method-Override, some a _method query parameter. A protect or
// route matcher that names methods (method DELETE) would look at the
// request's own method, POST, while the upstream acts on the one it
// claims. So, like the readings of the raw path, a request is also
// matched as each method it claims, and needs a step-up if any of them
// would. A _method field in a form body (Rails, Laravel, Spring's
// HiddenHttpMethodFilter) is not read: protect such routes by path, or
// protect POST to them as well (README "Protecting by method").

// overrideHeaders are the request headers, in canonical form, by which
// frameworks take a method override.
var overrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// claimedMethods lists the methods r claims besides its own, upper case,
// each once; nil for almost every request.
func claimedMethods(r *http.Request) []string {
	var out []string
	add := func(values []string) {
		for _, v := range values {
			for part := range strings.SplitSeq(v, ",") {
				m := strings.ToUpper(strings.TrimSpace(part))
				if m != "" && m != r.Method && !slices.Contains(out, m) {
					out = append(out, m)
				}
			}
		}
	}
	for _, name := range overrideHeaders {
		add(r.Header[name])
	}
	// A key may be percent-encoded (%5Fmethod), which upstreams decode.
	if q := r.URL.RawQuery; strings.Contains(q, "_method") || strings.IndexByte(q, '%') >= 0 {
		add(r.URL.Query()["_method"])
	}
	return out
}

// logMethodMatched notes that a claimed method, not the request's own,
// made a matcher match.
func (h *Handler) logMethodMatched(r *http.Request, method string) {
	h.logger.Debug("matched by the method the request claims", zap.String("method", r.Method), zap.String("claimed", logSafe(method)), zap.String("path", logSafe(r.URL.EscapedPath())))
}
