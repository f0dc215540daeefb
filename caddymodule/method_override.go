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

// overrideHeaders are the request headers by which frameworks take a
// method override, in lower case. As for X-Stepup-* (rule 21), "_" or "."
// may stand for "-": CGI, FastCGI and PHP upstreams (Symfony reads
// HTTP_X_HTTP_METHOD_OVERRIDE) read them alike, where the operator lets
// such names through Caddy.
var overrideHeaders = []string{"x-http-method-override", "x-http-method", "x-method-override"}

// overrideHeader reports whether name is one of overrideHeaders.
func overrideHeader(name string) bool {
	for _, want := range overrideHeaders {
		if len(name) == len(want) && sameHeaderName(name, want) {
			return true
		}
	}
	return false
}

// sameHeaderName compares name with want (lower case, "-") in any case,
// with "_" or "." for "-".
func sameHeaderName(name, want string) bool {
	for i := 0; i < len(want); i++ {
		c := name[i]
		if c == '_' || c == '.' {
			c = '-'
		} else {
			c |= 0x20 // ASCII lower case; "-" stays
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

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
	for name, values := range r.Header {
		if overrideHeader(name) {
			add(values)
		}
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
