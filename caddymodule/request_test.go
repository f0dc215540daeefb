package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// cfReturnPaths are the SafeReturnPath cases, also the fuzz seed corpus.
var cfReturnPaths = []struct {
	name string
	raw  string
	ok   bool
}{
	{"the root", "/", true},
	{"a page", "/settings", true},
	{"a path with a query", "/a/b?x=1&y=2", true},
	{"percent-encoded UTF-8", "/%E3%81%82", true},
	{"a query that holds a URL stays a query", "/a?next=//evil.com", true},
	{"a fragment", "/a#top", true},
	{"exactly 2048 bytes", "/" + strings.Repeat("a", 2047), true},

	{"empty", "", false},
	{"relative without a slash", "settings", false},
	{"scheme-relative URL", "//evil.com", false},
	{"slash backslash", "/\\evil.com", false},
	{"two backslashes", "\\\\evil", false},
	{"absolute URL", "https://evil.com", false},
	{"scheme without slashes", "https:evil.com", false},
	{"javascript URL", "javascript:alert(1)", false},
	{"encoded slashes only", "%2F%2Fevil.com", false},
	{"one encoded slash after the first", "/%2Fevil.com", false},
	{"two encoded slashes after the first", "/%2F%2Fevil.com", false},
	{"lower-case encoded slash", "/%2fevil.com", false},
	{"encoded backslash", "/%5Cevil.com", false},
	{"encoded backslash later in the path", "/a/%5C/evil.com", false},
	{"raw CR LF", "/a\r\nSet-Cookie:x", false},
	{"encoded CR LF", "/a%0d%0aSet-Cookie:x", false},
	{"raw tab, which browsers drop", "/\tx", false},
	{"tab between slashes", "/\t/evil.com", false},
	{"encoded tab", "/%09/evil.com", false},
	{"DEL", "/a\x7f", false},
	{"NUL", "/a\x00", false},
	{"encoded NUL", "/a%00", false},
	{"a bad percent escape", "/a%zz", false},
	{"a cut percent escape", "/a%", false},
	{"2049 bytes", "/" + strings.Repeat("a", 2048), false},
	{"3001 bytes", "/" + strings.Repeat("a", 3000), false},
}

func TestSafeReturnPath(t *testing.T) {
	t.Parallel()
	for _, tt := range cfReturnPaths {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := SafeReturnPath(tt.raw)
			if ok != tt.ok {
				t.Fatalf("SafeReturnPath(%q) accepted = %v, want %v", tt.raw, ok, tt.ok)
			}
			want := ""
			if tt.ok {
				want = tt.raw // accepted as written, never repaired
			}
			if got != want {
				t.Errorf("SafeReturnPath(%q) = %q, want %q", tt.raw, got, want)
			}
			if wantRet := cfOr(want, "/"); returnPath(tt.raw) != wantRet {
				t.Errorf("returnPath(%q) = %q, want %q", tt.raw, returnPath(tt.raw), wantRet)
			}
		})
	}
}

func cfOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func FuzzSafeReturnPath(f *testing.F) {
	for _, tt := range cfReturnPaths {
		f.Add(tt.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := SafeReturnPath(raw)
		if !ok {
			if got != "" {
				t.Fatalf("SafeReturnPath(%q) refused but returned %q", raw, got)
			}
			return
		}
		if got != raw {
			t.Fatalf("SafeReturnPath(%q) = %q: an accepted path must come back unchanged", raw, got)
		}
		cfCheckSameSitePath(t, got)
		decoded, err := url.PathUnescape(got)
		if err != nil {
			t.Fatalf("SafeReturnPath accepted %q, which does not percent-decode: %v", got, err)
		}
		cfCheckSameSitePath(t, decoded)
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("SafeReturnPath accepted %q, which url.Parse refuses: %v", got, err)
		}
		if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
			t.Fatalf("SafeReturnPath accepted %q, which parses with scheme %q, host %q", got, u.Scheme, u.Host)
		}
	})
}

// cfCheckSameSitePath fails unless p starts with exactly one slash and has
// no control character or backslash anywhere.
func cfCheckSameSitePath(t *testing.T, p string) {
	t.Helper()
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		t.Fatalf("accepted %q does not start with a single slash", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			t.Fatalf("accepted %q holds byte %#x at %d", p, c, i)
		}
	}
}

func TestCookieValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cookies []string // one Cookie header each
		want    string
	}{
		{"the only cookie", []string{"__Host-stepup=tok"}, "tok"},
		{"among others, with spaces", []string{"a=1;  __Host-stepup=tok ; b=2"}, "tok"},
		{"no space after semicolons", []string{"a=1;__Host-stepup=tok;b=2"}, "tok"},
		{"in a second Cookie header", []string{"a=1; b=2", "__Host-stepup=tok"}, "tok"},
		{"after a longer name that starts with it", []string{"__Host-stepup_csrf=csrf; __Host-stepup=tok"}, "tok"},
		{"only a longer name that starts with it", []string{"__Host-stepup_csrf=csrf"}, ""},
		{"only a name that ends with it", []string{"x__Host-stepup=evil"}, ""},
		{"the name without its prefix", []string{"stepup=tok"}, ""},
		{"the name in another case", []string{"__host-stepup=tok"}, ""},
		{"the name as a value", []string{"a=__Host-stepup=tok"}, ""},
		{"the name without a value", []string{"__Host-stepup"}, ""},
		{"an empty value", []string{"__Host-stepup="}, ""},
		{"the first of two wins", []string{"__Host-stepup=first; __Host-stepup=second"}, "first"},
		{"a value holding =", []string{"__Host-stepup=a=b"}, "a=b"},
		{"no Cookie header", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, c := range tt.cookies {
				r.Header.Add("Cookie", c)
			}
			if got := cookieValue(r, "__Host-stepup"); got != tt.want {
				t.Errorf("cookieValue(%q) = %q, want %q", tt.cookies, got, tt.want)
			}
		})
	}
}

func TestStripStepupHeadersRemovesOnlyStepupHeaders(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("X-Stepup-Identity", "mallory")
	h.Set("x-stepup-foo", "1") // canonicalised to X-Stepup-Foo
	h["x-stepup-verified-at"] = []string{"2000-01-01T00:00:00Z"}
	h["X-STEPUP-AUTH-TIME"] = []string{"0"}
	h.Set("X-Stepup", "kept: not the X-Stepup- prefix")
	h.Set("X-Stepupx-Foo", "kept")
	h.Set("Stepup-Identity", "kept")
	h.Set("Authorization", "Basic kept")
	h.Set("X-Forwarded-For", "192.0.2.1")

	stripStepupHeaders(h)

	var got []string
	for name := range h {
		got = append(got, name)
	}
	slices.Sort(got)
	want := []string{"Authorization", "Stepup-Identity", "X-Forwarded-For", "X-Stepup", "X-Stepupx-Foo"}
	if !slices.Equal(got, want) {
		t.Errorf("headers left %q, want %q", got, want)
	}
}

func TestUnderPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		want bool
	}{
		{"/_stepup", true},
		{"/_stepup/", true},
		{"/_stepup/send", true},
		{"/_stepupx", false},
		{"/_stepup.css", false},
		{"/_step", false},
		{"/", false},
		{"/app/_stepup", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := underPrefix(tt.path, "/_stepup"); got != tt.want {
			t.Errorf("underPrefix(%q, /_stepup) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestWantsJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers map[string]string
		want    bool
	}{
		{"Accept application/json", map[string]string{"Accept": "application/json"}, true},
		{"Accept json among others", map[string]string{"Accept": "application/json, */*;q=0.8"}, true},
		{"an XHR header", map[string]string{"X-Requested-With": "XMLHttpRequest"}, true},
		{"an XHR header beats an HTML Accept", map[string]string{"X-Requested-With": "XMLHttpRequest", "Accept": "text/html"}, true},
		{"fetch in cors mode", map[string]string{"Sec-Fetch-Mode": "cors", "Accept": "*/*"}, true},
		{"fetch in same-origin mode", map[string]string{"Sec-Fetch-Mode": "same-origin"}, true},
		{"a browser navigating", map[string]string{
			"Accept":         "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
			"Sec-Fetch-Mode": "navigate",
		}, false},
		{"an old browser navigating", map[string]string{"Accept": "text/html,*/*;q=0.8"}, false},
		{"HTML wins over JSON in one Accept", map[string]string{"Accept": "text/html, application/json"}, false},
		{"curl's */*", map[string]string{"Accept": "*/*"}, false},
		{"no headers", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/settings", nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			if got := wantsJSON(r); got != tt.want {
				t.Errorf("wantsJSON(%v) = %v, want %v", tt.headers, got, tt.want)
			}
		})
	}
}

func TestOriginOK(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		origin  string
		fetchTo string // Sec-Fetch-Site
		want    bool
		plain   bool // the request came over plain http (a TLS-terminating proxy in front, or development)
	}{
		{"an http origin posting to our https site", "http://app.example.com", "", false, false},
		{"an http origin over plain http (TLS ends at a proxy)", "http://app.example.com", "", true, true},
		{"an https origin over plain http (TLS ends at a proxy)", "https://app.example.com", "", true, true},
		{"same host, and the browser says cross-site", "https://app.example.com", "cross-site", false, false},
		{"same host, and the browser says same-origin", "https://app.example.com", "same-origin", true, false},
		{"another scheme", "ftp://app.example.com", "", false, false},
		{"same host", "https://app.example.com", "", true, false},
		{"same host in another case", "https://APP.example.com", "", true, false},
		{"another host", "https://evil.example", "", false, false},
		{"a host that ends with ours", "https://app.example.com.evil.example", "", false, false},
		{"same host, another port", "https://app.example.com:8443", "", false, false},
		{"the opaque origin null", "null", "", false, false},
		{"null from our own page under no-referrer, and the browser says same-origin", "null", "same-origin", true, false},
		{"null, and the browser says same-site but not same-origin", "null", "same-site", false, false},
		{"null, and the browser says cross-site", "null", "cross-site", false, false},
		{"not a URL", "%zz", "", false, false},
		{"missing, and the browser says cross-site", "", "cross-site", false, false},
		{"missing, and the browser says same-origin", "", "same-origin", true, false},
		{"missing entirely", "", "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "https://app.example.com/_stepup/send", nil)
			if tt.plain {
				r = httptest.NewRequest(http.MethodPost, "http://app.example.com/_stepup/send", nil)
			}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.fetchTo != "" {
				r.Header.Set("Sec-Fetch-Site", tt.fetchTo)
			}
			if got := originOK(r); got != tt.want {
				t.Errorf("originOK(Origin %q, Sec-Fetch-Site %q) = %v, want %v", tt.origin, tt.fetchTo, got, tt.want)
			}
		})
	}
}

func TestIsLoopbackHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LOCALHOST", true},
		{"localhost:8080", true},
		{"app.localhost", true},
		{"app.localhost:8080", true},
		{"127.0.0.1:1", true},
		{"127.0.0.2", true},
		{"[::1]:80", true},
		{"[::1]", true},
		{"::1", true},
		{"example.com", false},
		{"localhost.example.com", false},
		{"mylocalhost", false},
		{"10.0.0.1", false},
		{"0.0.0.0:80", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isLoopbackHost(tt.host); got != tt.want {
			t.Errorf("isLoopbackHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestSameSiteReferer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		referer string
		want    string
	}{
		{"a page of this site", "https://app.example.com/settings?tab=2", "/settings?tab=2"},
		{"this site in another case", "https://App.Example.com/settings", "/settings"},
		{"this site's root", "https://app.example.com", "/"},
		{"another site", "https://evil.example/settings", "/"},
		{"this site on another port", "https://app.example.com:8443/settings", "/"},
		{"no Referer", "", "/"},
		{"a javascript URL", "javascript:alert(1)", "/"},
		{"a path that turns scheme-relative", "https://app.example.com//evil.example/x", "/"},
		{"an encoded CR LF", "https://app.example.com/a%0d%0aSet-Cookie:x", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "https://app.example.com/settings", nil)
			if tt.referer != "" {
				r.Header.Set("Referer", tt.referer)
			}
			if got := sameSiteReferer(r); got != tt.want {
				t.Errorf("sameSiteReferer(Referer %q) = %q, want %q", tt.referer, got, tt.want)
			}
		})
	}
}

func TestReturnPathOfProtectedRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		target string
		want   string
	}{
		{"https://app.example.com/settings?tab=2", "/settings?tab=2"},
		{"https://app.example.com/", "/"},
		{"https://app.example.com/%2F%2Fevil.example", "/"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, tt.target, nil)
		if got := requestPath(r); got != tt.want {
			t.Errorf("requestPath(%s) = %q, want %q", tt.target, got, tt.want)
		}
	}
}

// The names stripStepupHeaders removes: X-Stepup-* in any case, with "_"
// or "." standing for a "-" (SECURITY.md rule 21), and nothing else.
func TestStepupHeaderNames(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Stepup-Identity": true, "x-stepup-token": true, "X-STEPUP-ADMIN": true, "X_Stepup_Identity": true,
		"x_stepup_verified_at": true, "X.Stepup.Auth.Time": true, "X-Stepup_Identity": true, "X_stepup-": true,
		"X-Stepup": false, "X-Stepupx": false, "X-Step-up-Identity": false, "Y-Stepup-Identity": false,
		"X\rStepup-Identity": false, "X-Stepup\x0dIdentity": false, "XX-Stepup-Identity": false, "": false,
	} {
		if got := stepupHeaderName(name); got != want {
			t.Errorf("stepupHeaderName(%q) = %v, want %v", name, got, want)
		}
	}
}
