package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestClassifyPath(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		path string
		want pathKind
	}{
		{"/", pathPlain},
		{"/settings", pathPlain},
		{"/settings/", pathPlain},
		{"/public/admin-guide", pathPlain},
		{"/static/app.min.js", pathPlain},
		{"/.well-known/acme-challenge/x", pathPlain},
		{"/v1/items:batch~x_y=z,1+2&3@4!$'()*", pathPlain},
		{"", pathPlain},
		{"/Settings", pathCased},
		{"/ADMIN/", pathCased},
		{"/a;b", pathOdd},
		{`/x/..\admin`, pathOdd},
		{"/x/..%5Cadmin", pathOdd},
		{"/%20", pathOdd},
		{"/%E6%97%A5", pathOdd},
		{"/日本", pathOdd},
		{"/x/../admin", pathOdd},
		{"/x/./admin", pathOdd},
		{"/x/..", pathOdd},
		{"/.", pathOdd},
		{"/admin.", pathOdd},
		{"/admin./x", pathOdd},
		{"//admin", pathOdd},
		{"/a//b", pathOdd},
		{"/a b", pathOdd},
		{"*", pathPlain}, // OPTIONS *: no path to read
		{"/a\x00b", pathOdd},
	} {
		if got := classifyPath(c.path); got != c.want {
			t.Errorf("classifyPath(%q) = %d, want %d", c.path, got, c.want)
		}
	}
}

// TestPathReadings: each raw path is read as each upstream would, and the
// readings hold what Tomcat, IIS and the rest make of it.
func TestPathReadings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, path string
		want       []string // among the readings
		notUnder   string   // no reading may leave this directory
	}{
		{"a ;parameter on a .. segment is dropped before .. is resolved", "/x/..;/admin", []string{"/admin", "/x/..;/admin"}, ""},
		{"a ;parameter on the root's segment is dropped", "/;x/admin", []string{"/admin"}, ""},
		{"a ;parameter on a . segment is dropped", "/.;/admin", []string{"/admin"}, ""},
		{"%5C is a / to Windows", "/x/..%5Cadmin", []string{"/admin", `/x/..\admin`}, ""},
		{`a raw \ is a / to Windows`, `/x/..\admin`, []string{"/admin"}, ""},
		{"ſ folds to s", "/%C5%BFettings", []string{"/settings", "/ſettings"}, ""},
		{"the Kelvin sign folds to k", "/%E2%84%AAey", []string{"/key"}, ""},
		{"dotless ı is I to .NET", "/adm%C4%B1n", []string{"/admin"}, ""},
		{"%2F kept inside its segment stays under /settings", "/settings/..%2F", []string{"/settings/..%2F", "/"}, ""},
		{"encoded dots are dot segments once decoded", "/x/%2e%2e/admin", []string{"/admin"}, ""},
		{"double-encoded dots are dot segments when decoded twice", "/x/%252e%252e/admin", []string{"/admin", "/x/%2e%2e/admin"}, ""},
		{"double-encoded slashes split when decoded twice", "/x/..%252Fadmin", []string{"/admin"}, ""},
		{"an encoded ; is dropped once decoded", "/admin%3Bx", []string{"/admin"}, ""},
		{"Windows drops a segment's trailing dots", "/admin.", []string{"/admin", "/admin."}, ""},
		{"Windows drops a segment's trailing spaces", "/admin%20%20/x", []string{"/admin/x"}, ""},
		{"upper case folds", "/ADMIN", []string{"/admin", "/ADMIN"}, ""},
		{"a trailing slash is kept", "/Admin/", []string{"/admin/", "/Admin/"}, ""},
		{"doubled slashes merge", "//admin", []string{"/admin"}, ""},
		{".. never climbs above the root", "/../../admin", []string{"/admin"}, ""},
		{"a malformed escape stays as it is", "/a%zz%4", []string{"/a%zz%4"}, ""},
		{"Japanese stays under its directory", "/docs/%E6%97%A5%E6%9C%AC", []string{"/docs/日本"}, "/docs/"},
		{"a space stays under its directory", "/docs/a%20b", []string{"/docs/a b"}, "/docs/"},
		{"a ;parameter on an ordinary path", "/a;b", []string{"/a", "/a;b"}, "/a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := pathReadings(c.path)
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("pathReadings(%q) = %q, want %q among them", c.path, got, w)
				}
			}
			for _, r := range got {
				if c.notUnder != "" && !strings.HasPrefix(r, c.notUnder) {
					t.Errorf("pathReadings(%q) has %q, outside %s", c.path, r, c.notUnder)
				}
			}
		})
	}
	if got := pathReadings("*"); got != nil {
		t.Errorf(`pathReadings("*") = %q, want none`, got)
	}
}

func TestResolveDots(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in      string
		windows bool
		want    string
	}{
		{"/", false, "/"},
		{"/a/b", false, "/a/b"},
		{"/a/b/", false, "/a/b/"},
		{"/a/./b", false, "/a/b"},
		{"/a/../b", false, "/b"},
		{"/a/..", false, "/"},
		{"/../..", false, "/"},
		{"/a//b", false, "/a/b"},
		{"//", false, "/"},
		{"/a.", false, "/a."},
		{"/a.", true, "/a"},
		{"/a. . /b", true, "/a/b"},
		{"/a /", true, "/a/"},
		{"/a /", false, "/a /"},
		{"/x/.. /a", true, "/a"},
		{"/x/.../a", true, "/x/a"},
		{"/.hidden/a.b", true, "/.hidden/a.b"},
	} {
		if got := resolveDots(c.in, c.windows); got != c.want {
			t.Errorf("resolveDots(%q, windows %t) = %q, want %q", c.in, c.windows, got, c.want)
		}
	}
}

func TestFoldPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/settings":      "/settings",
		"/SETTINGS":      "/settings",
		"/ſettings":      "/settings",
		"/\u212aey":      "/key",
		"/ADMİN":         "/admin",
		"/admın":         "/admin",
		"/ÉTÉ":           "/été",
		"/日本":            "/日本",
		"/a\xffB":        "/a\xffb",
		"/µ":             "/µ",
		"/\u039c/\u03bc": "/µ/µ",
	} {
		if got := foldPath(in); got != want {
			t.Errorf("foldPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzPathReadings holds the readings to what the handler relies on:
// every reading is a clean absolute path, they are few and distinct, and a
// path classifyPath calls plain has no reading but itself (so skipping
// readings for plain paths loses nothing), a cased one only its lower case.
func FuzzPathReadings(f *testing.F) {
	for _, s := range []string{"/x/..;/admin", "/;x/admin", "/x/..%5Cadmin", `/x/..\admin`, "/%C5%BFettings",
		"/settings/..%2F", "/x/%252e%252e/admin", "/Admin/", "/admin.", "/docs/%E6%97%A5", "/a;b", "//x", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got := pathReadings(path)
		if !strings.HasPrefix(path, "/") {
			if got != nil {
				t.Fatalf("pathReadings(%q) = %q, want none for a path not starting with /", path, got)
			}
			return
		}
		if len(got) == 0 || len(got) > 40 {
			t.Fatalf("pathReadings(%q) gave %d readings", path, len(got))
		}
		for i, r := range got {
			if !strings.HasPrefix(r, "/") || strings.Contains(r, "//") || slices.Contains(strings.Split(r, "/"), "..") ||
				slices.Contains(strings.Split(r, "/"), ".") {
				t.Fatalf("pathReadings(%q) has %q, not a clean absolute path", path, r)
			}
			if slices.Contains(got[:i], r) {
				t.Fatalf("pathReadings(%q) has %q twice", path, r)
			}
		}
		for _, windows := range []bool{false, true} {
			r := resolveDots(path, windows)
			if again := resolveDots(r, windows); again != r {
				t.Fatalf("resolveDots(%q, %t) = %q, and again %q", path, windows, r, again)
			}
			for _, seg := range strings.Split(r, "/")[1:] {
				if windows && seg != "" && strings.TrimRight(seg, ". ") != seg {
					t.Fatalf("resolveDots(%q, windows) = %q keeps a trailing dot or space", path, r)
				}
			}
		}
		switch classifyPath(path) {
		case pathPlain:
			if !slices.Equal(got, []string{path}) {
				t.Fatalf("plain path %q has readings %q", path, got)
			}
		case pathCased:
			if want := []string{path, strings.ToLower(path)}; !slices.Equal(got, want) {
				t.Fatalf("cased path %q has readings %q, want %q", path, got, want)
			}
		}
	})
}

// TestReadingsAreMatchedOnACopy: a matcher run on a reading sees the
// reading through its placeholders, and leaves the request that goes on as
// it was: its path, its vars and its placeholders.
func TestReadingsAreMatchedOnACopy(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, func(h *Handler) {
		h.ProtectRaw = caddyhttp.RawMatcherSets{
			{"vars": json.RawMessage(`{"{http.request.uri.path}": ["/admin"]}`)},
			{"path_regexp": json.RawMessage(`{"name": "p", "pattern": "^/(settings)$"}`)},
		}
	})
	stepped := e.browser("alice")
	stepped.stepUp()
	for _, path := range []string{"/x/..;/admin", "/x/..;/settings"} {
		r := stepped.request(http.MethodGet, path, nil)
		start := time.Unix(1, 0)
		caddyhttp.SetVar(r.Context(), "start_time", start)
		var seen *http.Request
		next := caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
			seen = r
			return nil
		})
		if err := e.h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil || seen == nil {
			t.Fatalf("%s with a step-up: err %v, reached the next handler %t", path, err, seen != nil)
		}
		repl := seen.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if got, _ := repl.GetString("http.request.uri.path"); got != path || seen.URL.Path != path {
			t.Errorf("%s: the next handler sees the path %q (placeholder %q)", path, seen.URL.Path, got)
		}
		if got, ok := repl.GetString("http.regexp.p.1"); ok && got != "" {
			t.Errorf("%s: the reading's path_regexp capture leaked: {http.regexp.p.1} = %q", path, got)
		}
		if got := caddyhttp.GetVar(seen.Context(), "start_time"); got != start {
			t.Errorf("%s: start_time became %v", path, got)
		}
	}
	w, _ := e.browser("bob").get("/x/..;/admin")
	if w.Code != http.StatusSeeOther {
		t.Errorf("/x/..;/admin without a step-up under a vars matcher on {http.request.uri.path}: %d, want 303", w.Code)
	}
}

// BenchmarkServeHTTPOddPath is an unprotected path that must be read
// every way (Japanese, percent-encoded): what such a path costs.
func BenchmarkServeHTTPOddPath(b *testing.B) {
	e := htNew(b, nil, nil)
	br := e.browser("alice")
	htBench(b, e, func() *http.Request {
		return br.request(http.MethodGet, "/docs/%E6%97%A5%E6%9C%AC/%E8%A8%AD%E5%AE%9A;v=1", nil)
	})
}
