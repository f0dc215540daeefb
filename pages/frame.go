package pages

import (
	"bytes"
	"fmt"
	"strings"
)

// A Frame is a page rendered once with markers in the places of its
// per-request values (the CSRF token, the CSP nonce, the message ...), so
// that the page can be written again for another request without
// executing the template: the fixed text between the markers is kept, and
// each request's values are escaped and put where the markers were. A
// refusal under a bot flood costs a copy instead of a template run
// (issue 17).
//
// NewFrame checks, when it builds a frame, that splicing escaped values
// gives the bytes the template gives for the same values; a page that puts
// a value anywhere its escaping differs (a script, a style, a URL for an
// Escaped value) gets no frame, and the caller renders the template.
type Frame struct {
	parts []string // the fixed text: one more than slots
	slots []int    // which value goes after parts[i]
	kinds []Splice
	size  int // the bytes of parts, for sizing the output
}

// Splice is how a frame's value is escaped when it is put in.
type Splice int

const (
	// Escaped values sit in the page's text or in a quoted attribute
	// that is not a URL, and are escaped as html/template escapes a
	// string there.
	Escaped Splice = iota
	// QueryEscaped values sit inside a URL attribute's query and must
	// already be query-escaped (url.QueryEscape's bytes: letters,
	// digits, -._~+ and %XX); anything else is refused.
	QueryEscaped
	// Digits values are a positive whole number in decimal, for an int
	// field (fill parses them): markers and probes are numbers too, and
	// anything but decimal digits is refused.
	Digits
)

// NewFrame renders page name with the data fill builds from markers, one
// per kind, and keeps the page's fixed text. fill must build the same
// Data for any values (branches of the template may depend on the values
// only through their being non-empty): a frame is used only with
// non-empty values.
func (s *Set) NewFrame(name string, kinds []Splice, fill func(values []string) Data) (*Frame, error) {
	markers := make([]string, len(kinds))
	for i, k := range kinds {
		markers[i] = fmt.Sprintf("stepupframeslot%dx", i)
		if k == Digits {
			markers[i] = fmt.Sprintf("9%08d", 31415926+i)
		}
	}
	var page bytes.Buffer
	if err := s.Render(&page, name, fill(markers)); err != nil {
		return nil, err
	}
	f := &Frame{kinds: kinds}
	rest := page.String()
	for {
		at, slot := -1, -1
		for i, m := range markers {
			if j := strings.Index(rest, m); j >= 0 && (at < 0 || j < at) {
				at, slot = j, i
			}
		}
		if at < 0 {
			break
		}
		f.parts = append(f.parts, rest[:at])
		f.slots = append(f.slots, slot)
		rest = rest[at+len(markers[slot]):]
	}
	f.parts = append(f.parts, rest)
	for _, p := range f.parts {
		f.size += len(p)
	}
	if err := f.check(s, name, fill); err != nil {
		return nil, err
	}
	return f, nil
}

// check renders the page with values that escaping changes and compares
// it with the frame's splice of the same values.
func (f *Frame) check(s *Set, name string, fill func([]string) Data) error {
	probes := make([]string, len(f.kinds))
	for i, k := range f.kinds {
		probes[i] = fmt.Sprintf("<b%d>&'\"+ -\x00\u00e9", i)
		switch k {
		case QueryEscaped:
			probes[i] = fmt.Sprintf("q%d%%2F+~._-", i)
		case Digits:
			probes[i] = fmt.Sprint(271828 + i)
		}
	}
	var want bytes.Buffer
	if err := s.Render(&want, name, fill(probes)); err != nil {
		return err
	}
	got, ok := f.Append(nil, probes)
	if !ok || !bytes.Equal(got, want.Bytes()) {
		return fmt.Errorf("page %s: a value is not where its escaping is plain HTML; no frame", name)
	}
	return nil
}

// Append appends the page with values (one per kind, as in NewFrame) to
// dst. It returns false, and dst as it was, when a QueryEscaped value is
// not query-escaped or a Digits value not digits.
func (f *Frame) Append(dst []byte, values []string) ([]byte, bool) {
	grow := f.size
	for i, k := range f.kinds {
		if k == QueryEscaped && !queryEscaped(values[i]) || k == Digits && !digits(values[i]) {
			return dst, false
		}
		grow += 2 * len(values[i])
	}
	if cap(dst)-len(dst) < grow {
		dst = append(make([]byte, 0, len(dst)+grow), dst...)
	}
	for i, slot := range f.slots {
		dst = append(dst, f.parts[i]...)
		dst = appendEscaped(dst, values[slot])
	}
	return append(dst, f.parts[len(f.parts)-1]...), true
}

// appendEscaped appends s escaped as html/template escapes a string in
// text and in quoted attributes (its htmlReplacementTable): NUL, the
// quotes, &, +, < and >. Every other byte, UTF-8 or not, is kept.
func appendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		var r string
		switch s[i] {
		case 0:
			r = "\uFFFD"
		case '"':
			r = "&#34;"
		case '&':
			r = "&amp;"
		case '\'':
			r = "&#39;"
		case '+':
			r = "&#43;"
		case '<':
			r = "&lt;"
		case '>':
			r = "&gt;"
		default:
			continue
		}
		dst = append(append(dst, s[start:i]...), r...)
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// queryEscaped says whether s holds only what url.QueryEscape writes,
// which html/template's URL normaliser keeps as it is.
func queryEscaped(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+':
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// digits says whether s is one or more decimal digits.
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
