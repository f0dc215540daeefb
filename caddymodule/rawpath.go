package caddymodule

import (
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Caddy's matchers read r.URL.Path, but reverse_proxy sends the raw path,
// and upstreams read it their own way (SECURITY.md rule 28): Tomcat, Jetty
// and Spring drop ";parameters" from each segment before they resolve "."
// and ".." (so /x/..;/admin is /admin to them), IIS and .NET take "\" for
// "/" and ignore case, some decode twice, some leave %2F inside a segment.
// So a request is protected when any of those readings of its raw path is:
// its matchers are run once more for each distinct reading. Only paths that
// some upstream could read differently from Caddy pay for it; the rest
// (lower-case ASCII letters, digits and punctuation other than ";", with no
// "." or ".." segment and no "//") are checked once, as before.
//
// A request that only a reading protects needs a step-up, and with one it
// is proxied as it came: it is not refused, since URLs with ;jsessionid=...
// are what Java applications write themselves. Refused with a 400 are the
// paths nobody writes by accident: a reading of the plugin's own path_prefix
// spelled other than plainly (its pages answer only to their plain
// spelling), and odd paths longer than maxReadPath, whose readings would
// cost too much to compute.

// maxReadPath bounds the raw paths whose readings are computed: longer than
// what Tomcat (8 KiB request line) or IIS (4 KiB URL) accept by default.
const maxReadPath = 8 << 10

// pathKind sorts raw paths by how differently upstreams may read them.
type pathKind uint8

const (
	// Every upstream reads it as Caddy does.
	pathPlain pathKind = iota
	// Plain but for ASCII capitals: a case-insensitive upstream reads it
	// in lower case.
	pathCased
	// ";", "\", "%", "//", a segment ending in "." (such as "." and "..",
	// or "admin." which Windows reads as "admin"), or anything else outside
	// the plain characters.
	pathOdd
)

// classifyPath tells plain paths from the rest without allocating, since it
// runs on every request.
func classifyPath(escaped string) pathKind {
	kind := pathPlain
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case 'A' <= c && c <= 'Z':
			kind = pathCased
		case c == '/':
			if i+1 < len(escaped) && escaped[i+1] == '/' {
				return pathOdd
			}
		case c == '.':
			if i+1 == len(escaped) || escaped[i+1] == '/' {
				return pathOdd
			}
		case strings.IndexByte("-_~!$&'()*+,=:@", c) >= 0:
		default:
			return pathOdd
		}
	}
	return kind
}

// pathReadings returns the distinct paths that upstreams may make of a raw
// (escaped) path, each with "." and ".." resolved and "//" merged: every
// combination of ";parameters" dropped or kept, "\" and %5C read as "/"
// (with Windows' trailing dots and spaces dropped) or not, percent-decoded
// zero, one or two times with %2F either splitting its segment or staying
// inside it (written %2F), and Unicode simple case folding or none. It is a
// pure function of its input, so it can be fuzzed; a path that does not
// start with "/" (such as "*") has no readings.
func pathReadings(escaped string) []string {
	if !strings.HasPrefix(escaped, "/") {
		return nil
	}
	var out []string
	// Most combinations give the same path before resolving and folding,
	// which cost the most: each distinct one is finished once.
	type prepared struct {
		p       string
		windows bool
	}
	var seen []prepared
	add := func(p string, windows bool) {
		if slices.Contains(seen, prepared{p, windows}) {
			return
		}
		seen = append(seen, prepared{p, windows})
		p = resolveDots(p, windows)
		for _, q := range [2]string{p, foldPath(p)} {
			if !slices.Contains(out, q) {
				out = append(out, q)
			}
		}
	}
	for _, windows := range [2]bool{false, true} {
		for _, params := range [2]bool{false, true} {
			prep := func(p string) string {
				if windows {
					p = backslashesAsSlashes(p)
				}
				if params {
					p = dropParams(p)
				}
				return p
			}
			raw := prep(escaped)
			add(raw, windows)
			for _, keepSlash := range [2]bool{true, false} {
				once := prep(unescapePath(raw, keepSlash))
				add(once, windows)
				add(prep(unescapePath(once, keepSlash)), windows)
			}
		}
	}
	return out
}

// backslashesAsSlashes turns the spellings of "\" that IIS, .NET and
// Tomcat (with allowBackslash) take for "/" into "/".
func backslashesAsSlashes(p string) string {
	if !strings.Contains(p, `\`) && !strings.Contains(p, "%5C") && !strings.Contains(p, "%5c") {
		return p
	}
	return backslashes.Replace(p)
}

var backslashes = strings.NewReplacer(`\`, "/", "%5C", "/", "%5c", "/")

// dropParams removes from each segment its ";" and what follows, as
// Tomcat, Jetty and Spring do.
func dropParams(p string) string {
	if !strings.Contains(p, ";") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for {
		i := strings.IndexByte(p, ';')
		if i < 0 {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:i])
		j := strings.IndexByte(p[i:], '/')
		if j < 0 {
			return b.String()
		}
		p = p[i+j:]
	}
}

// unescapePath decodes %XX escapes, leaving malformed ones as they are (as
// lenient servers do). With keepSlash an encoded "/" stays %2F, part of its
// segment, as Tomcat and others read it.
func unescapePath(p string, keepSlash bool) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			c := unhex(p[i+1])<<4 | unhex(p[i+2])
			if !(keepSlash && c == '/') {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// resolveDots removes "." and empty segments and applies "..", keeping a
// trailing "/" as Caddy's own path cleaning does. On Windows a segment's
// trailing dots and spaces are dropped ("admin." and "admin " are "admin").
func resolveDots(p string, windows bool) string {
	if clean(p, windows) {
		return p
	}
	segs := strings.Split(p, "/")
	out := segs[:0]
	for _, s := range segs {
		if windows {
			s = strings.TrimRight(s, " ")
			if s != "." && s != ".." {
				s = strings.TrimRight(s, ". ")
			}
		}
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	resolved := "/" + strings.Join(out, "/")
	if len(out) > 0 && strings.HasSuffix(p, "/") {
		resolved += "/"
	}
	return resolved
}

// clean reports whether resolveDots would leave p as it is: no "//" and no
// segment ending in "." (nor, on Windows, in " ").
func clean(p string, windows bool) bool {
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		// A segment ends before i.
		switch p[i-1] {
		case '/':
			if i < len(p) {
				return false
			}
		case '.':
			return false
		case ' ':
			if windows {
				return false
			}
		}
	}
	return true
}

// foldPath maps each character to one representative of the characters a
// case-insensitive server may take for it, in lower case: "S", "s" and "ſ"
// all become "s"; "K", "k" and the Kelvin sign "k"; "I", "i" and "ı" "i".
// Bytes that are not UTF-8 stay as they are.
func foldPath(p string) string {
	i := strings.IndexFunc(p, func(r rune) bool { return foldRune(r) != r })
	if i < 0 {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	b.WriteString(p[:i])
	for i < len(p) {
		r, size := utf8.DecodeRuneInString(p[i:])
		if f := foldRune(r); f != r {
			b.WriteRune(f)
		} else {
			b.WriteString(p[i : i+size])
		}
		i += size
	}
	return b.String()
}

// foldRune is the smallest rune of the simple folding orbit (what
// strings.EqualFold takes for equal) of r's upper case, in lower case.
// Upper-casing first also joins what .NET's OrdinalIgnoreCase and Windows
// file names join: "ı" upper-cases to "I".
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		return unicode.ToLower(r)
	}
	least := unicode.ToUpper(r)
	for f := unicode.SimpleFold(least); f != least; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return unicode.ToLower(least)
}

// rawPathReadings returns the readings of the request's raw path that its
// matchers must also be run on (none for a plain path), or ok false when
// the request must be refused: an odd spelling of the plugin's own
// path_prefix, or an odd path too long to read.
func (h *Handler) rawPathReadings(r *http.Request) (readings []string, ok bool) {
	escaped := r.URL.EscapedPath()
	kind := classifyPath(escaped)
	switch {
	case kind == pathPlain:
		return nil, true
	case underPrefix(r.URL.Path, h.PathPrefix):
		// The plugin's own pages; capitals may be part of a receipt's token.
		return nil, kind == pathCased
	case len(escaped) > maxReadPath:
		return nil, false
	}
	readings = pathReadings(escaped)
	prefix := foldPath(h.PathPrefix)
	for _, p := range readings {
		if underPrefix(foldPath(p), prefix) {
			return nil, false
		}
	}
	return readings, true
}

// refuseOddPath answers a request rawPathReadings refused: 400 with a page
// in the user's language (JSON for API clients).
func (h *Handler) refuseOddPath(w http.ResponseWriter, r *http.Request) error {
	path := r.URL.EscapedPath()
	if len(path) > 256 {
		path = path[:256] + "..."
	}
	h.audit(zapcore.WarnLevel, "request refused: its path can be read as this plugin's own pages or is too long to read", "odd_path",
		zap.String("path", path), zap.String("client_ip", clientIP(r)))
	return h.renderError(w, r, http.StatusBadRequest, "odd_path")
}
