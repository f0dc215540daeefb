package caddymodule

import (
	"path"
	"runtime"
	"strings"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Caddy's path matcher (caddyhttp.MatchPath) does, for every pattern of
// every request: lower-case the path, look for placeholders, "//" and "%"
// in the pattern, clean the path, and count the pattern's "*"s. The handler
// runs protect and each route on the request and on every reading of its
// raw path (SECURITY.md rule 28), so that work is the largest part of the
// hot path. A matcher list that is nothing but path patterns without
// placeholders or "%" escapes is compiled at provision instead: the path is
// lowered and cleaned once per request (twice if a pattern keeps "//"), and
// each pattern is the one comparison MatchPath would pick for it. The
// answer is MatchPath's for every path (FuzzCompiledPathMatchesCaddy).
// Anything else keeps Caddy's matchers, and so does a Windows build, where
// MatchPath also rewrites "\" and trailing dots.

// pathTest is the comparison MatchPath makes for one pattern.
type pathTest uint8

const (
	// No wildcard: path.Match is equality.
	pathEqual pathTest = iota
	// "prefix*", with no other "*".
	pathPrefix
	// "*suffix", with no other "*".
	pathSuffix
	// "*middle*", with no other "*".
	pathContains
	// Any other glob: path.Match, as MatchPath calls it.
	pathGlob
)

// pathPattern is one compiled pattern of a path matcher.
type pathPattern struct {
	test pathTest
	// The pattern without the "*"s its test stands for (the whole
	// pattern for pathEqual and pathGlob), lower case, as MatchPath's
	// Provision left it.
	text string
	// A pattern with "//" is matched against the path with its doubled
	// slashes kept, as MatchPath does.
	keepSlashes bool
}

// compiledPaths answers what a list of path matchers answers: whether any
// pattern matches.
type compiledPaths struct {
	// A "*" pattern: every request matches.
	all      bool
	patterns []pathPattern
}

// compilePaths compiles sets when every set is exactly one path matcher
// whose patterns have no placeholder and no "%", or returns nil: such sets
// are left to Caddy. The matchers must be provisioned (LoadModule does it),
// which lower-cases their patterns.
func compilePaths(sets caddyhttp.MatcherSets) *compiledPaths {
	if runtime.GOOS == "windows" || len(sets) == 0 {
		return nil
	}
	c := &compiledPaths{}
	for _, set := range sets {
		if len(set) != 1 {
			return nil
		}
		var patterns caddyhttp.MatchPath
		switch m := set[0].(type) {
		case caddyhttp.MatchPath:
			patterns = m
		case *caddyhttp.MatchPath:
			if m == nil {
				return nil
			}
			patterns = *m
		default:
			return nil
		}
		for _, p := range patterns {
			if strings.ContainsAny(p, "{%") {
				return nil
			}
			if p == "*" {
				c.all = true
				continue
			}
			c.patterns = append(c.patterns, compilePattern(p))
		}
	}
	return c
}

// compilePattern picks the test MatchPath makes for p, in its order: a
// "*" at both ends and nowhere else is a substring test, a single "*" at
// one end a suffix or prefix test, and anything else path.Match.
func compilePattern(p string) pathPattern {
	keep := strings.Contains(p, "//")
	stars := strings.Count(p, "*")
	switch {
	case stars == 2 && strings.HasPrefix(p, "*") && strings.HasSuffix(p, "*"):
		return pathPattern{pathContains, p[1 : len(p)-1], keep}
	case stars == 1 && strings.HasPrefix(p, "*"):
		return pathPattern{pathSuffix, p[1:], keep}
	case stars == 1 && strings.HasSuffix(p, "*"):
		return pathPattern{pathPrefix, p[:len(p)-1], keep}
	case !strings.ContainsAny(p, `*?[\`):
		return pathPattern{pathEqual, p, keep}
	}
	return pathPattern{pathGlob, p, keep}
}

// match reports whether a request whose r.URL.Path is p matches, as
// MatchPath would: the path in lower case, cleaned (caddyhttp.CleanPath,
// which keeps a trailing slash), then each pattern's test.
func (c *compiledPaths) match(p string) bool {
	if c.all {
		return true
	}
	var lower, merged, kept string
	if lowerAndClean(p) {
		lower, merged, kept = p, p, p
	} else {
		lower = strings.ToLower(p)
		merged = caddyhttp.CleanPath(lower, true)
	}
	for _, pt := range c.patterns {
		cleaned := merged
		if pt.keepSlashes {
			if kept == "" {
				kept = caddyhttp.CleanPath(lower, false) // never "": it cleans "" to "."
			}
			cleaned = kept
		}
		if pt.matches(cleaned) {
			return true
		}
	}
	return false
}

// lowerAndClean reports whether lowering and cleaning would leave p as it
// is: a path from "/" in ASCII without capitals, with no "//" and no "."
// or ".." segment. Most requests' paths are, and this one look at each byte
// costs a third of lowering and cleaning them.
func lowerAndClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		switch pathByteKinds[p[i]] {
		case pathByteOrdinary:
		case pathByteSlash:
			if p[i-1] == '/' {
				return false
			}
		case pathByteDot:
			if p[i-1] == '/' {
				if segment, _, _ := strings.Cut(p[i:], "/"); segment == "." || segment == ".." {
					return false
				}
			}
		default:
			return false
		}
	}
	return true
}

const (
	pathByteOrdinary uint8 = iota
	pathByteSlash
	pathByteDot
	// A capital, which lowering changes, or a byte of UTF-8 beyond ASCII,
	// which it may.
	pathByteChanges
)

// pathByteKinds sorts bytes for lowerAndClean.
var pathByteKinds = func() (kinds [256]uint8) {
	for c := range kinds {
		switch {
		case c == '/':
			kinds[c] = pathByteSlash
		case c == '.':
			kinds[c] = pathByteDot
		case 'A' <= c && c <= 'Z', c >= utf8.RuneSelf:
			kinds[c] = pathByteChanges
		}
	}
	return kinds
}()

func (pt pathPattern) matches(cleaned string) bool {
	switch pt.test {
	case pathEqual:
		return cleaned == pt.text
	case pathPrefix:
		return strings.HasPrefix(cleaned, pt.text)
	case pathSuffix:
		return strings.HasSuffix(cleaned, pt.text)
	case pathContains:
		return strings.Contains(cleaned, pt.text)
	}
	matched, _ := path.Match(pt.text, cleaned) // MatchPath ignores a bad pattern's error too
	return matched
}
