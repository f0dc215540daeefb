package pages

import (
	"maps"
	"strings"
	"sync"
)

// Filling a language's messages for a page (issue 17: a refused send
// rendered its page again, and building the messages was a seventh of its
// CPU). Only messages that hold a {field} are filled, in one pass each,
// with no strings.Replacer built per page; the output is what
// strings.NewReplacer(args...).Replace gave.

// fielded lists, by language, the keys whose message holds a "{": the only
// ones a {name} argument can change. Made on first use, after init has
// merged every catalog.
var fielded = sync.OnceValue(func() map[string][]string {
	out := make(map[string][]string, len(catalogs))
	for lang, c := range catalogs {
		for k, v := range c {
			if strings.Contains(v, "{") {
				out[lang] = append(out[lang], k)
			}
		}
	}
	return out
})

// Catalog returns the messages of lang (English when lang has none), with
// {name} fields filled from args (name, value, name, value ...). It returns
// a fresh map the caller may keep.
func Catalog(lang string, args ...string) map[string]string {
	c, ok := catalogs[lang]
	if !ok {
		lang, c = "en", catalogs["en"]
	}
	out := maps.Clone(c)
	if len(args) == 0 {
		return out
	}
	if !bracedFields(args) {
		r := strings.NewReplacer(args...)
		for k, v := range out {
			out[k] = r.Replace(v)
		}
		return out
	}
	for _, k := range fielded()[lang] {
		out[k] = fillFields(out[k], args)
	}
	return out
}

// bracedFields reports whether every name in args starts with "{", so
// that messages without one need no look.
func bracedFields(args []string) bool {
	for i := 0; i < len(args); i += 2 {
		if !strings.HasPrefix(args[i], "{") {
			return false
		}
	}
	return true
}

// fillFields is strings.NewReplacer(args...).Replace(s) without building the
// Replacer: left to right, no overlaps, the first name in args order that
// matches at a position wins. Names must not be empty (the Replacer's
// empty match is not needed by any caller and falls back to it).
func fillFields(s string, args []string) string {
	if len(args)%2 == 1 {
		panic("pages: odd argument count")
	}
	for i := 0; i < len(args); i += 2 {
		if args[i] == "" {
			return strings.NewReplacer(args...).Replace(s)
		}
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		j := matchAt(s[i:], args)
		if j < 0 {
			i++
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(s) + 16)
		}
		b.WriteString(s[last:i])
		b.WriteString(args[j+1])
		i += len(args[j])
		last = i
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// matchAt is the index in args of the first name s starts with, or -1.
func matchAt(s string, args []string) int {
	for j := 0; j < len(args); j += 2 {
		if strings.HasPrefix(s, args[j]) {
			return j
		}
	}
	return -1
}
