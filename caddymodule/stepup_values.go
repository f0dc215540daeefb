package caddymodule

import (
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The X-Stepup-* request headers and {http.sms_stepup.*} placeholders of
// one request, which several sms_stepup handlers of one site share
// (SECURITY.md rules 21 and 29). The first handler a request meets removes
// whatever the client sent under those names, from the headers and from the
// trailers; later handlers leave alone what an earlier one set. A handler
// that steps the request up sets its values over any earlier handler's, so
// when two step it up, each header and placeholder holds the value of the
// last handler that set it.

// clientValuesRemovedVar marks a request whose client-sent X-Stepup-*
// fields the first handler removed. Vars are the server's: no client can
// set one.
const clientValuesRemovedVar = "sms_stepup.client_values_removed"

// removeClientValues removes the X-Stepup-* fields the client sent, once
// per request, and reports whether this handler is the first of the request
// (which then owns setting the placeholders, to empty when it does not step
// the request up).
func removeClientValues(r *http.Request) (first bool) {
	// caddyhttp.GetVar then SetVar would walk the context chain twice.
	// Without Caddy's vars (no caddyhttp server) every handler strips,
	// which is what GetVar and SetVar amounted to there.
	vars, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	if done, _ := vars[clientValuesRemovedVar].(bool); done {
		return false
	}
	if vars != nil {
		vars[clientValuesRemovedVar] = true
	}
	stripStepupHeaders(r.Header)
	if r.Trailer != nil {
		// Declared trailers are keys without values until the body is read
		// to its end, after this handler ran; only then does net/http fill
		// them in (over HTTP/1 with every field the client sends, declared
		// or not), and reverse_proxy forwards what it finds at that moment.
		// So they are removed now, and again at the end of the body. A
		// request that declared none has no map to fill: what its body ends
		// with never reaches the handlers.
		stripStepupHeaders(r.Trailer)
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &trailerGuard{ReadCloser: r.Body, trailer: r.Trailer}
		}
	}
	return true
}

// trailerGuard removes X-Stepup-* trailers once its body reaches the end,
// where net/http has just added the trailers, before a reader of the body
// (reverse_proxy copying them to the upstream) sees them.
type trailerGuard struct {
	io.ReadCloser
	trailer http.Header
}

func (g *trailerGuard) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err == io.EOF {
		stripStepupHeaders(g.trailer)
	}
	return n, err
}

// blankPlaceholders sets the step-up placeholders empty when this handler
// is the request's first and does not step it up: header_up keeps an unset
// placeholder's text, which would reach the upstream as a non-empty
// X-Stepup-Identity. A later handler that does not step the request up
// leaves an earlier one's values.
func blankPlaceholders(repl *caddy.Replacer, first bool) {
	if !first {
		return
	}
	repl.Set(phIdentity, "")
	repl.Set(phVerifiedAt, "")
	repl.Set(phAuthTime, "")
	repl.Set(phToken, "")
}
