package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// pmCaddy is a provisioned MatchPath of patterns, as LoadModule leaves it,
// in one matcher set.
func pmCaddy(t testing.TB, patterns []string) (caddyhttp.MatchPath, caddyhttp.MatcherSets) {
	t.Helper()
	m := caddyhttp.MatchPath(slices.Clone(patterns))
	if err := m.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	return m, caddyhttp.MatcherSets{{m}}
}

// pmRequest is a request for path as Caddy's matchers see it: r.URL.Path,
// with a replacer in its context.
func pmRequest(path string) *http.Request {
	ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	return (&http.Request{Method: http.MethodGet, URL: &url.URL{Path: path}, Header: http.Header{}}).WithContext(ctx)
}

// The compiled matcher answers what Caddy's MatchPath answers; the cases
// name what each shows, and want is MatchPath's answer, checked as well.
func TestCompiledPathMatcher(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		patterns []string
		path     string
		want     bool
	}{
		{[]string{"/settings*"}, "/settings", true},
		{[]string{"/settings*"}, "/settingsX", true}, // a prefix, not a directory
		{[]string{"/settings*"}, "/Settings/Profile", true},
		{[]string{"/settings*"}, "/x/../settings", true},
		{[]string{"/settings*"}, "//settings", true},
		{[]string{"/settings*"}, "/./settings/", true},
		{[]string{"/settings*"}, "/public/settings", false},
		{[]string{"/settings*"}, "", false},
		{[]string{"/settings*"}, "settings", false},
		{[]string{"/Settings*"}, "/settings", true}, // patterns are lowered too
		{[]string{"/admin"}, "/ADMIN", true},
		{[]string{"/admin"}, "/admin/", false}, // the trailing slash is kept
		{[]string{"/admin"}, "/admin/.", true},
		{[]string{"/admin/"}, "/admin//", true},
		{[]string{"/admin"}, "/admin;x", false},
		{[]string{"/admin"}, `/x/..\admin`, false}, // "\" is a character outside Windows
		{[]string{"*.php"}, "/x/A.PHP", true},
		{[]string{"*.php"}, "/x/a.php/", false},
		{[]string{"*/admin/*"}, "/x/admin/y", true},
		{[]string{"*/admin/*"}, "/x/ADMIN", false},
		{[]string{"**"}, "", true},
		{[]string{"*"}, "", true},
		{[]string{"/a", "*"}, "/b", true},
		{[]string{"/a//b"}, "/a//b", true}, // a pattern with "//" keeps the path's
		{[]string{"/a//b"}, "/a/b", false},
		{[]string{"/a//b*", "/c*"}, "//c", true},
		{[]string{"/a/*/c"}, "/a/b/c", true},
		{[]string{"/a/*/c"}, "/a/b/d/c", false},
		{[]string{"/a/b*c*"}, "/a/bxcy", true},
		{[]string{"/a?"}, "/ab", true},
		{[]string{"/[ab]"}, "/B", true},
		{[]string{"/[a"}, "/[a", false},  // a bad pattern matches nothing
		{[]string{`/a\*`}, "/a*", false}, // one "*" at the end: a prefix test, "\" and all
		{[]string{`/a\*`}, `/a\x`, true},
		{[]string{`/a\?`}, "/a?", true}, // path.Match's escape
		{[]string{`/a\?`}, "/ab", false},
		{[]string{"/ſettings"}, "/ſettings", true},
		{[]string{"/ſettings"}, "/settings", false},
		{[]string{"/日本*"}, "/日本語", true},
		{[]string{"/ÄRGER"}, "/ärger", true},
		{[]string{"/a\xffb"}, "/A\xffB", true},
		{[]string{""}, "", false},
		{nil, "/", false},
	} {
		m, sets := pmCaddy(t, c.patterns)
		compiled := compilePaths(sets)
		if compiled == nil {
			t.Fatalf("%q did not compile", c.patterns)
		}
		if caddys, _ := m.MatchWithError(pmRequest(c.path)); caddys != c.want {
			t.Fatalf("Caddy's MatchPath %q on %q: %t, the case says %t", c.patterns, c.path, caddys, c.want)
		}
		if got := compiled.match(c.path); got != c.want {
			t.Errorf("compiled %q on %q: %t, want %t as MatchPath", c.patterns, c.path, got, c.want)
		}
	}
}

func TestLowerAndClean(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]bool{
		"/": true, "/settings": true, "/settings/": true, "/a.b/.c/..d/": true, "/v1/items:batch~x_y=z;1%2f": true, `/a\b`: true,
		"": false, "settings": false, "*": false, "//": false, "/a//b": false, "/a/./b": false, "/a/..": false,
		"/.": false, "/a/../": false, "/Settings": false, "/日本": false, "/a\xffb": false,
	} {
		if got := lowerAndClean(p); got != want {
			t.Errorf("lowerAndClean(%q) = %t, want %t", p, got, want)
		}
	}
}

// Sets that are not only plain path patterns stay Caddy's.
func TestCompilePathsLeavesTheRestToCaddy(t *testing.T) {
	t.Parallel()
	e := htNew(t, nil, nil)
	if e.h.protectPaths == nil {
		t.Fatal("protect /settings* was not compiled: the hot path still runs MatchPath")
	}
	for name, raw := range map[string]caddyhttp.RawMatcherSets{
		"a placeholder":             {{"path": json.RawMessage(`["/{http.request.host}/*"]`)}},
		"an escape":                 {{"path": json.RawMessage(`["/a%2Fb"]`)}},
		"a path and a method":       {{"path": json.RawMessage(`["/a*"]`), "method": json.RawMessage(`["POST"]`)}},
		"a path_regexp":             {{"path_regexp": json.RawMessage(`{"pattern": "^/a"}`)}},
		"a not":                     {{"not": json.RawMessage(`[{"path": ["/a*"]}]`)}},
		"a plain set and another":   {{"path": json.RawMessage(`["/a*"]`)}, {"method": json.RawMessage(`["POST"]`)}},
		"a plain path and a %-path": {{"path": json.RawMessage(`["/a*", "/b%20c"]`)}},
	} {
		e := htNew(t, nil, func(h *Handler) {
			h.ProtectRaw = raw
			h.Routes = []StepUpRoute{{MatchRaw: raw}}
		})
		if e.h.protectPaths != nil || e.h.Routes[0].paths != nil {
			t.Errorf("%s: compiled, want Caddy's matchers", name)
		}
	}
	e = htNew(t, nil, func(h *Handler) {
		h.Routes = []StepUpRoute{{MatchRaw: caddyhttp.RawMatcherSets{{"path": json.RawMessage(`["/account/payout*"]`)}, {"path": json.RawMessage(`["*.csv"]`)}}}}
	})
	if e.h.Routes[0].paths == nil {
		t.Error("a route of two plain path sets was not compiled")
	}
}

// FuzzCompiledPathMatchesCaddy: for random patterns (one a line) and a
// random path, the compiled matcher says what Caddy's MatchPath says, on
// the path and on every reading of it (SECURITY.md rule 28), whether the
// patterns are one path matcher or one set each; and it compiles exactly
// the patterns without "{" or "%".
func FuzzCompiledPathMatchesCaddy(f *testing.F) {
	patterns := []string{"/settings*", "/admin\n/admin/*\n/settings\n/settings/*", "*.php", "*/admin/*", "/a/*/c", "/a//b*\n/c*",
		"/Admin", "/ſettings", "/日本*", "*", "/x\n*", "**", "/a[b", `/a\*`, "", "/settings/", "/a?c", "/{http.request.host}*", "/a%2fb"}
	paths := []string{"/settings", "/x/..;/admin", "/;x/admin", "/.;/admin", "/x/..;/settings", "/x/..%5Cadmin", `/x/..\admin`,
		"/%C5%BFettings", "/settings/..%2F", "/ADMIN", "/Admin/", "/x/%2e%2e/admin", "/x/%252e%252e/admin", "/admin%3Bx",
		"/admin.", "/adm%C4%B1n", "/settingsX", "/docs/%E6%97%A5%E6%9C%AC", "//x", "/", "", "*", "/a\xffb", "/x/./../a.PHP/"}
	for i, p := range paths {
		f.Add(patterns[i%len(patterns)], p)
	}
	for i, p := range patterns[len(paths)%len(patterns):] {
		f.Add(p, paths[(i*7)%len(paths)])
	}
	f.Fuzz(func(t *testing.T, patternLines, path string) {
		list := strings.Split(patternLines, "\n")
		if len(list) > 8 || len(path) > 512 {
			return
		}
		m, sets := pmCaddy(t, list)
		compiled := compilePaths(sets)
		// Provision may rewrite the list (a "*" after the first pattern
		// overwrites it: ["%", "*"] becomes ["*", "*"]): what compiles is
		// what it left.
		plain := !slices.ContainsFunc(m, func(p string) bool { return strings.ContainsAny(p, "{%") })
		if (compiled != nil) != plain {
			t.Fatalf("patterns %q, provisioned %q: compiled %t, want %t", list, m, compiled != nil, plain)
		}
		if compiled == nil {
			return
		}
		var perPattern caddyhttp.MatcherSets
		for _, p := range list {
			_, set := pmCaddy(t, []string{p})
			perPattern = append(perPattern, set...)
		}
		// One set per pattern is provisioned pattern by pattern, so it
		// compiles only when every pattern written is plain.
		eachCompiled := compilePaths(perPattern)
		if eachPlain := !slices.ContainsFunc(list, func(p string) bool { return strings.ContainsAny(p, "{%") }); (eachCompiled != nil) != eachPlain {
			t.Fatalf("patterns %q as one set each: compiled %t, want %t", list, eachCompiled != nil, eachPlain)
		}
		r := pmRequest(path)
		var readings []string
		if escaped := r.URL.EscapedPath(); classifyPath(escaped) != pathPlain {
			readings = pathReadings(escaped)
		}
		for _, p := range append([]string{path}, readings...) {
			if lowerAndClean(p) && (strings.ToLower(p) != p || caddyhttp.CleanPath(p, true) != p || caddyhttp.CleanPath(p, false) != p) {
				t.Fatalf("lowerAndClean(%q), but lowering and cleaning change it", p)
			}
			want, _ := m.MatchWithError(pmRequest(p))
			if got := compiled.match(p); got != want {
				t.Fatalf("patterns %q on %q: compiled %t, MatchPath %t", list, p, got, want)
			}
			if eachCompiled == nil {
				continue
			}
			if got := eachCompiled.match(p); got != want {
				t.Fatalf("patterns %q as one set each on %q: compiled %t, MatchPath %t", list, p, got, want)
			}
		}
		h := &Handler{logger: zap.NewNop()}
		want, err := h.matchesReading(sets, nil, r, readings)
		if got, _ := h.matchesReading(sets, compiled, r, readings); err != nil || got != want {
			t.Fatalf("patterns %q on %q and its readings %q: compiled %t, Caddy's matchers %t (%v)", list, path, readings, got, want, err)
		}
	})
}

// BenchmarkProtectMatch is the protect check of the hot path alone
// (bench/Caddyfile's /settings*), on a plain path (no readings) and on an
// odd one (its readings too): Caddy's MatchPath against the compiled
// matcher, on the same request. It provisions no handler, so that it also
// runs under callgrind (bench/notes-17-hotpath2.md).
func BenchmarkProtectMatch(b *testing.B) {
	_, sets := pmCaddy(b, []string{"/settings*"})
	compiled := compilePaths(sets)
	h := &Handler{logger: zap.NewNop(), ScopeOptions: ScopeOptions{PathPrefix: DefaultPathPrefix}}
	for _, target := range []string{"/settings/profile", "/docs/%E6%97%A5%E6%9C%AC/%E8%A8%AD%E5%AE%9A;v=1"} {
		r := httptest.NewRequest(http.MethodGet, "https://example.com"+target, nil)
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
		caddyhttp.NewTestReplacer(r)
		readings, ok := h.rawPathReadings(r)
		if !ok {
			b.Fatalf("%s refused", target)
		}
		want := target == "/settings/profile"
		name := strings.Split(target, "/")[1]
		for _, c := range []struct {
			name  string
			paths *compiledPaths
		}{{"caddy", nil}, {"compiled", compiled}} {
			b.Run(c.name+"/"+name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if got, err := h.matchesReading(sets, c.paths, r, readings); got != want || err != nil {
						b.Fatalf("%s: matched %t (%v), want %t", target, got, err, want)
					}
				}
			})
		}
	}
}
