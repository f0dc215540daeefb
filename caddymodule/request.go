package caddymodule

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// stripStepupHeaders removes X-Stepup-* request headers: only this plugin
// may speak for a step-up, and the client must not forge it (SECURITY.md
// rule 21). X_Stepup_* and X.Stepup.* go too: CGI, FastCGI and PHP
// upstreams read "_", "." and "-" in a name alike, and Caddy drops such
// names only where the operator has not let them through
// (expected_underscore_headers, expected_dot_headers).
func stripStepupHeaders(h http.Header) {
	for name := range h {
		if stepupHeaderName(name) {
			delete(h, name)
		}
	}
}

// stepupHeaderName reports whether name starts with "X-Stepup-" in any
// case, with "_" or "." for either "-".
func stepupHeaderName(name string) bool {
	const prefix = "x-stepup-"
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i] | 0x20 // ASCII lower case; "-" (0x2d) stays
		if prefix[i] == '-' {
			c = name[i]
			if c == '_' || c == '.' {
				c = '-'
			}
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// underPrefix reports whether path is prefix or below it.
func underPrefix(path, prefix string) bool {
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}

// cookieValue finds a cookie without parsing every cookie of the request,
// since this runs on every protected request.
func cookieValue(r *http.Request, name string) string {
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if len(part) > len(name) && part[len(name)] == '=' && part[:len(name)] == name {
				return part[len(name)+1:]
			}
		}
	}
	return ""
}

// wantsJSON tells API clients (fetch, XHR, JSON Accept) from browsers
// navigating: the former get 401 and JSON, never a redirect.
func wantsJSON(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") != "" {
		return true
	}
	accept := r.Header.Get("Accept")
	if strings.Contains(accept, "text/html") {
		return false
	}
	if strings.Contains(accept, "application/json") {
		return true
	}
	mode := r.Header.Get("Sec-Fetch-Mode")
	return mode != "" && mode != "navigate"
}

// SafeReturnPath accepts only a same-site relative path: one leading slash,
// no scheme or host, no backslash, no control characters, and nothing that
// turns into "//" once percent-decoded. Anything else is refused, never
// repaired.
func SafeReturnPath(raw string) (string, bool) {
	if raw == "" || len(raw) > 2048 || raw[0] != '/' {
		return "", false
	}
	if len(raw) > 1 && (raw[1] == '/' || raw[1] == '\\') {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	decoded, err := url.PathUnescape(raw)
	if err != nil {
		return "", false
	}
	if len(decoded) > 1 && (decoded[1] == '/' || decoded[1] == '\\') {
		return "", false
	}
	for i := 0; i < len(decoded); i++ {
		if c := decoded[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	return raw, true
}

// returnPath is raw if it is safe, else "/".
func returnPath(raw string) string {
	if p, ok := SafeReturnPath(raw); ok {
		return p
	}
	return "/"
}

// requestPath is where a browser should come back to after the step-up.
func requestPath(r *http.Request) string {
	return returnPath(r.URL.RequestURI())
}

// sameSiteReferer is the path of the page a form was posted from, when it
// was this site.
func sameSiteReferer(r *http.Request) string {
	ref, err := url.Parse(r.Header.Get("Referer"))
	if err != nil || !strings.EqualFold(ref.Host, r.Host) {
		return "/"
	}
	return returnPath(ref.RequestURI())
}

// originOK checks the Origin of a POST (SECURITY.md 20): same host, or
// absent from a client that did not say it was cross-site. Under the pages'
// Referrer-Policy: no-referrer, browsers post our own forms with Origin
// "null"; that passes only when Sec-Fetch-Site, which browsers set
// whatever the referrer policy, says the form was same-origin. A browser
// that says cross-site is refused whatever the Origin, and so is a plain
// http Origin posting to a request Caddy took over TLS (a page on the
// http:// site is another origin). Behind a proxy that terminates TLS,
// Caddy sees plain http and the scheme is not compared: the host is.
func originOK(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	site := r.Header.Get("Sec-Fetch-Site")
	switch origin {
	case "":
		return site != "cross-site"
	case "null":
		return site == "same-origin"
	}
	if site == "cross-site" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && r.TLS == nil:
	default:
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// isLoopbackHost reports whether a Host header names this machine.
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
