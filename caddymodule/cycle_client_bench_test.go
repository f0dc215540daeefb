package caddymodule_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The cycle benchmarks' clients share the machine's two cores with Caddy
// and redis-server, so what they spend is taken from the servers'
// rate: they keep cookies in a jar for their one host, and find the CSRF
// token and the code by index rather than by regular expression. Both
// trees are measured with the same clients.

// cbJar is a cookie jar for one host whose cookies all have Path=/ (the
// plugin's, rule 16): by name, a cookie with Max-Age < 0 or an expiry
// passed deleting its name. net/http/cookiejar's domain and path rules
// and sorting are for a browser's many sites.
type cbJar struct {
	mu sync.Mutex
	by map[string]string
}

func (j *cbJar) SetCookies(_ *url.URL, cookies []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range cookies {
		if c.MaxAge < 0 || !c.Expires.IsZero() && c.Expires.Before(time.Now()) {
			delete(j.by, c.Name)
			continue
		}
		if j.by == nil {
			j.by = map[string]string{}
		}
		j.by[c.Name] = c.Value
	}
}

func (j *cbJar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]*http.Cookie, 0, len(j.by))
	for name, value := range j.by {
		out = append(out, &http.Cookie{Name: name, Value: value})
	}
	return out
}

// cbAfter is what follows marker in s up to the first of the bytes in
// stop (or the end), and whether marker is there at all.
func cbAfter(s, marker, stop string) (string, bool) {
	_, rest, ok := strings.Cut(s, marker)
	if !ok {
		return "", false
	}
	if i := strings.IndexAny(rest, stop); i >= 0 {
		rest = rest[:i]
	}
	return rest, true
}

// cbCSRFOf is the page's CSRF token (its form's csrf field).
func cbCSRFOf(page string) (string, bool) {
	v, ok := cbAfter(page, `name="csrf" value="`, `"`)
	return v, ok && v != ""
}

// cbCodeOf is the 6-digit code in an SMS body ("... code: 123456\n...").
func cbCodeOf(body string) (string, bool) {
	v, ok := cbAfter(body, "code: ", "\n ")
	if !ok || len(v) != 6 || strings.Trim(v, "0123456789") != "" {
		return "", false
	}
	return v, true
}
