package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// secRawServe serves one request to e's handler and reports whether it
// reached the next handler (the proxy) and with which request target.
func secRawServe(t *testing.T, e *htEnv, b *htBrowser, path string, extra ...string) (w *httptest.ResponseRecorder, reached bool, target string) {
	t.Helper()
	r := b.request(http.MethodGet, path, nil, extra...)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		reached, target = true, r.URL.RequestURI()
		return nil
	})
	w = httptest.NewRecorder()
	if err := e.h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("GET %s: handler error %v", path, err)
	}
	return w, reached, target
}

// TestSecurityRule28_ProtectionOnEveryReadingOfTheRawPath: Caddy matches on
// its decoded path, reverse_proxy sends the raw one, and the upstream reads
// that its own way. Every spelling that some upstream (Tomcat, Jetty,
// Spring, IIS, .NET) reads as /admin or /settings needs a step-up, under a
// path matcher and under a case-sensitive path_regexp, and once stepped up
// it is proxied as it came; ordinary paths are left alone; odd spellings of
// the plugin's own pages, and odd paths too long to read, get a 400.
func TestSecurityRule28_ProtectionOnEveryReadingOfTheRawPath(t *testing.T) {
	t.Parallel()
	hostile := []struct{ path, why string }{
		{"/x/..;/admin", "Tomcat drops ;parameters, then resolves .."},
		{"/;x/admin", "Tomcat drops the root segment's ;parameter"},
		{"/.;/admin", "Tomcat drops the ;parameter of a . segment"},
		{"/x/..;/settings", "Tomcat reads it as /settings"},
		{"/x/..%5Cadmin", `IIS and Tomcat with allowBackslash read %5C as /`},
		{`/x/..\admin`, `IIS and Tomcat with allowBackslash read \ as /`},
		{"/%C5%BFettings", "a case-insensitive server folds ſ to s"},
		{"/settings/..%2F", "a server that keeps %2F inside its segment reads a file under /settings"},
		{"/ADMIN", "IIS ignores case"},
		{"/Admin/", "IIS ignores case, with a trailing slash"},
		{"/x/%2e%2e/admin", "%2e%2e is .. once decoded"},
		{"/x/%252e%252e/admin", "a server that decodes twice finds .."},
		{"/admin%3Bx", "an encoded ; is a parameter once decoded"},
		{"/admin.", "Windows drops a trailing dot"},
		{"/adm%C4%B1n", ".NET upper-cases ı to I"},
	}
	ordinary := []string{"/settingsX", "/public/admin-guide", "/a;b", "/docs/a%20b", "/docs/%E6%97%A5%E6%9C%AC",
		"/public/Settings", "/adminx/", "/.well-known/security.txt"}
	matchers := []struct {
		name string
		set  caddyhttp.RawMatcherSets
	}{
		{"a path matcher", caddyhttp.RawMatcherSets{{"path": json.RawMessage(`["/admin","/admin/*","/settings","/settings/*"]`)}}},
		{"a case-sensitive path_regexp", caddyhttp.RawMatcherSets{{"path_regexp": json.RawMessage(`{"pattern":"^/(admin|settings)(/|$)"}`)}}},
	}
	for _, m := range matchers {
		e := htNew(t, nil, func(h *Handler) { h.ProtectRaw = m.set })
		stepped := secBrowser(t, e, "r28-alice")
		stepped.stepUp()
		for _, c := range hostile {
			t.Run(c.path+" needs a step-up under "+m.name+" ("+c.why+")", func(t *testing.T) {
				b := secBrowser(t, e, "r28-bob")
				w, reached, _ := secRawServe(t, e, b, c.path)
				if reached || w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/_stepup/?r=") {
					t.Errorf("browser without step-up: status %d, Location %q, reached the upstream %t; want a 303 to the step-up page",
						w.Code, w.Header().Get("Location"), reached)
				}
				w, reached, _ = secRawServe(t, e, b, c.path, "Accept: application/json")
				if reached || w.Code != http.StatusUnauthorized {
					t.Errorf("JSON client without step-up: status %d, reached the upstream %t; want 401", w.Code, reached)
				}
				w, reached, target := secRawServe(t, e, stepped, c.path)
				want := b.request(http.MethodGet, c.path, nil).URL.RequestURI()
				if !reached || target != want {
					t.Errorf("with a step-up: status %d, reached the upstream %t with %q; want it proxied as it came, %q", w.Code, reached, target, want)
				}
			})
		}
		for _, path := range ordinary {
			t.Run(path+" is left alone under "+m.name, func(t *testing.T) {
				b := secBrowser(t, e, "r28-carol")
				want := b.request(http.MethodGet, path, nil).URL.RequestURI()
				w, reached, target := secRawServe(t, e, b, path)
				if !reached || target != want {
					t.Errorf("status %d, reached the upstream %t with %q; want it proxied unchanged, %q", w.Code, reached, target, want)
				}
			})
		}
	}

	e := htNew(t, nil, nil)
	for _, path := range []string{"/_STEPUP/", "/_Stepup/send", "/x/..;/_stepup/", "/_stepup;x/", "/_stepup/..;/admin",
		"/_stepup%2Fsend", "/_stepup/%2e%2e/settings", `/x/..\_stepup/`, "/%5Fstepup/./"} {
		t.Run(path+" spells the plugin's own pages oddly: 400, nothing sent", func(t *testing.T) {
			b := secBrowser(t, e, "r28-dave")
			before := len(e.messages())
			w, reached, _ := secRawServe(t, e, b, path, "Accept-Language: ja")
			if reached || w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "このアドレスは") {
				t.Errorf("browser: status %d, reached the upstream %t; want 400 with the Japanese page:\n%s", w.Code, reached, w.Body.String())
			}
			w, reached, _ = secRawServe(t, e, b, path, "Accept: application/json")
			if reached || w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"error":"odd_path"`) {
				t.Errorf("JSON client: status %d, reached the upstream %t; want 400 with error odd_path:\n%s", w.Code, reached, w.Body.String())
			}
			if n := len(e.messages()); n != before {
				t.Errorf("%d SMS sent", n-before)
			}
		})
	}
	t.Run("the plugin's own page spelled plainly still opens", func(t *testing.T) {
		w, reached, _ := secRawServe(t, e, secBrowser(t, e, "r28-dave"), "/_stepup/?r=%2Fsettings")
		if reached || w.Code != http.StatusOK {
			t.Errorf("status %d, reached the upstream %t; want the step-up page", w.Code, reached)
		}
	})
	t.Run("an odd path longer than 8 KiB is refused rather than read 40 ways", func(t *testing.T) {
		w, reached, _ := secRawServe(t, e, secBrowser(t, e, "r28-erin"), "/public/a;"+strings.Repeat("x", maxReadPath))
		if reached || w.Code != http.StatusBadRequest {
			t.Errorf("status %d, reached the upstream %t; want 400", w.Code, reached)
		}
	})
	t.Run("a plain path longer than 8 KiB is left alone", func(t *testing.T) {
		w, reached, _ := secRawServe(t, e, secBrowser(t, e, "r28-erin"), "/public/"+strings.Repeat("x", maxReadPath))
		if !reached {
			t.Errorf("status %d: a long plain path did not reach the upstream", w.Code)
		}
	})
}
