package caddymodule

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Whether a request can be believed about who it is from (SECURITY.md
// rule 29).
//
// identity and phone are placeholders. Most name what a handler before this
// one established, such as {http.auth.user.id} after basic_auth. A request
// header such as {http.request.header.X-Auth-Request-User} is different: any
// client can send one, and it names the user only when something the client
// can neither skip nor imitate removed the client's and set its own. Caddy
// lets the handler tell, on each request, one of two such things, and
// headers_set_by names which one the operator relies on:
//
//   - forward_auth (the default): forward_auth answered 2xx earlier in this
//     request. It copies the identity provider's headers in a handle_response
//     route and runs the rest of its route inside that route, so sms_stepup
//     sees the answer only when it comes after forward_auth in the same
//     route. At site level with forward_auth inside handle { } (the shape of
//     oauth2-proxy's own Caddy recipe) sms_stepup runs first, and every
//     request is refused rather than stepped up under a name the client chose.
//   - trusted_proxy: the direct peer is in the server's trusted_proxies: a
//     proxy in front of Caddy that removes the header from what clients send
//     and sets it itself.

// headersSetBy is the value of headers_set_by.
type headersSetBy uint8

const (
	setByForwardAuth headersSetBy = iota
	setByTrustedProxy
)

func parseHeadersSetBy(s string) (headersSetBy, error) {
	switch s {
	case "", "forward_auth":
		return setByForwardAuth, nil
	case "trusted_proxy":
		return setByTrustedProxy, nil
	}
	return 0, fmt.Errorf("headers_set_by %q: expected forward_auth (the default: forward_auth answered earlier in the same request) or trusted_proxy (the request comes from a proxy in the server's trusted_proxies)", s)
}

// headerTrust is what a request must show before the handler believes the
// request headers that identity and phone read.
type headerTrust struct {
	by headersSetBy
	// The request headers read, in canonical form, and for each the
	// placeholder of the header of the same name in forward_auth's answer.
	headers  []string
	answered []string
	// The headers, for log lines.
	names string
}

// forwardAuthAnswering is the context key under which reverse_proxy (and so
// forward_auth) hands its answer to the handle_response routes it runs.
// Caddy does not export it; if it ever changes, the safe order stops
// working (every request refused, never one let through), and
// TestSecurityRule29_IdentityFromAStepTheClientCannotSkip fails.
const forwardAuthAnswering = caddy.CtxKey("reverse_proxy_handle_response_context")

// The prefixes of placeholders that read what the client sent.
const requestHeaderPrefix = "http.request.header."

var clientSentPrefixes = []string{"http.request.cookie.", "http.request.uri", "http.request.orig_uri", "http.request.body", "http.request.host"}

// provisionTrust finds the request headers identity and phone read, and
// warns at start about each placeholder of theirs that the client can set.
func (h *Handler) provisionTrust() error {
	by, err := parseHeadersSetBy(h.HeadersSetBy)
	if err != nil {
		return err
	}
	h.trust = headerTrust{by: by}
	for _, in := range []struct{ option, expr string }{{"identity", h.Identity}, {"phone", h.Phone}} {
		for _, key := range placeholderKeys(in.expr) {
			if name, ok := strings.CutPrefix(key, requestHeaderPrefix); ok {
				h.trust.add(textproto.CanonicalMIMEHeaderKey(name))
				h.warnHeaderInput(in.option, textproto.CanonicalMIMEHeaderKey(name))
				continue
			}
			for _, prefix := range clientSentPrefixes {
				if strings.HasPrefix(key, prefix) {
					h.logger.Warn(in.option+" reads {"+key+"}, which any client can set to any value: use it for development only, and in production take the "+in.option+" from an authentication step the client cannot skip ({http.auth.user.id} after basic_auth, or a header forward_auth copies)",
						zap.String("option", in.option), zap.String("placeholder", key))
					break
				}
			}
		}
	}
	h.trust.names = strings.Join(h.trust.headers, ", ")
	return nil
}

func (t *headerTrust) add(header string) {
	for _, have := range t.headers {
		if have == header {
			return
		}
	}
	t.headers = append(t.headers, header)
	t.answered = append(t.answered, "http.reverse_proxy.header."+header)
}

// warnHeaderInput says at start that option reads a request header, what
// makes the handler believe it, and how to set it up safely.
func (h *Handler) warnHeaderInput(option, header string) {
	msg := option + " reads the request header " + header + ", which any client can send. "
	if h.trust.by == setByTrustedProxy {
		msg += "It is believed only on requests from a proxy in this server's trusted_proxies (headers_set_by trusted_proxy), and that proxy must remove " + header + " from what clients send and set it itself; requests from any other peer are refused."
	} else {
		msg += "It is believed only when forward_auth answered earlier in the same request (headers_set_by forward_auth, the default); other requests are refused. Put forward_auth and sms_stepup in the same route, forward_auth first (both at site level, or both inside one handle block), with copy_headers " + header +
			". sms_stepup at site level with forward_auth inside handle { } runs before forward_auth and refuses every request. Behind a proxy that sets the header, list it in trusted_proxies and set headers_set_by trusted_proxy."
	}
	h.logger.Warn(msg, zap.String("option", option), zap.String("header", header), zap.String("headers_set_by", h.trust.by.String()))
}

func (b headersSetBy) String() string {
	if b == setByTrustedProxy {
		return "trusted_proxy"
	}
	return "forward_auth"
}

// untrustedHeaders says why the request headers that identity and phone
// read can't be believed on r, or "" when they can or none is read.
func (h *Handler) untrustedHeaders(r *http.Request, repl *caddy.Replacer) string {
	t := &h.trust
	if len(t.headers) == 0 {
		return ""
	}
	if t.by == setByTrustedProxy {
		if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); !trusted {
			return "peer_not_in_trusted_proxies"
		}
		return ""
	}
	if r.Context().Value(forwardAuthAnswering) == nil {
		return "forward_auth_not_before"
	}
	if status, _ := repl.Get("http.reverse_proxy.status_code"); !is2xx(status) {
		return "forward_auth_not_before"
	}
	// forward_auth replaces only the headers its copy_headers names. Where
	// its answer carries the header under the same name, the request's
	// must be that answer, not what the client sent. Where the answer
	// lacks it, the request must lack it too: from Caddy 2.10.0 (its pull
	// request 6608) until the fix of GHSA-7r4p-vjf4-gxv4 (7545),
	// forward_auth copied a header only when the answer had it and left
	// the client's otherwise, and a JSON config adapted by such a Caddy,
	// or a handle_response written by hand, still does.
	for i, key := range t.answered {
		sent, inRequest := r.Header[t.headers[i]]
		answer, answered := repl.GetString(key)
		switch {
		case !answered && inRequest:
			return "header_not_in_forward_auth_answer"
		case answered && answer != strings.Join(sent, ","):
			return "header_not_copied_by_forward_auth"
		}
	}
	return ""
}

func is2xx(status any) bool {
	code, ok := status.(int)
	return ok && code >= 200 && code < 300
}

// signedIn is who r is from: the identity, and the session when one is
// configured. When r can't tell (no identity, identity or phone headers it
// can't be believed about, a configured session that came out empty), it
// answers r itself with a refusal and returns "" and that answer's error.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer) (identity, session string, err error) {
	if reason := h.untrustedHeaders(r, repl); reason != "" {
		return "", "", h.refuseUntrusted(w, r, repl, reason)
	}
	if identity = h.identity(r, repl); identity == "" {
		return "", "", h.refuseNoIdentity(w, r)
	}
	session, ok := h.session(r, repl)
	if !ok {
		return "", "", h.refuseNoSession(w, r, identity)
	}
	return identity, session, nil
}

// refuseUntrusted answers a request whose identity or phone header nothing
// trusted set: 401, never a page that shows a number or sends a code. The
// claimed identity is logged, escaped, as it names whom a forgery aimed at.
func (h *Handler) refuseUntrusted(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, reason string) error {
	h.audit(zapcore.WarnLevel, "request refused: its identity or phone header was not set by "+h.trust.by.String()+" in this request, so it may be the client's own", "untrusted_identity",
		zap.String("reason", reason), zap.String("headers", h.trust.names), zap.String("claimed_identity", h.identity(r, repl)),
		zap.String("path", r.URL.Path), zap.String("client_ip", clientIP(r)))
	return h.renderError(w, r, http.StatusUnauthorized, "untrusted_identity")
}

// placeholderKeys lists the keys of the placeholders in expr, such as
// "http.auth.user.id" in "{http.auth.user.id}". A brace escaped with a
// backslash opens none.
func placeholderKeys(expr string) []string {
	var keys []string
	for {
		open := strings.IndexByte(expr, '{')
		if open < 0 {
			return keys
		}
		if open > 0 && expr[open-1] == '\\' {
			expr = expr[open+1:]
			continue
		}
		end := strings.IndexByte(expr[open+1:], '}')
		if end < 0 {
			return keys
		}
		keys = append(keys, expr[open+1:open+1+end])
		expr = expr[open+2+end:]
	}
}
