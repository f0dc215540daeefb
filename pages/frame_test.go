package pages

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// frFill is a send page's data with values in the fields a refusal's
// frame splices: nonce, CSRF token, message, masked number, return path
// and its query-escaped copy in the other language's link.
func frFill(lang string) func([]string) Data {
	return func(v []string) Data {
		d := SampleData(lang)
		d.Nonce, d.CSRF, d.Message, d.Masked, d.Return = v[0], v[1], v[2], v[3], v[4]
		d.OtherURL = "/_stepup/?r=" + v[5] + "&lang=ja"
		d.Delivery, d.CanCall = "", false
		return d
	}
}

var frKinds = []Splice{Escaped, Escaped, Escaped, Escaped, Escaped, QueryEscaped}

// A frame writes what the template writes, for values escaping changes
// and values it leaves alone, in both languages.
func TestFrameWritesWhatTheTemplateWrites(t *testing.T) {
	for _, lang := range []string{"en", "ja"} {
		fill := frFill(lang)
		f, err := Default.NewFrame(Send, frKinds, fill)
		if err != nil {
			t.Fatal(err)
		}
		for _, values := range [][]string{
			{"n0nce", "tok.en-_", "That code is not right.", "+81 90-****-5678", "/settings", "%2Fsettings"},
			{"<>", "\"'&+", "<script>alert(1)</script>\x00", "\xff\xfe é 日本", "/a b?x=1&y=<'\">", "%2Fa+b%3Fx%3D1"},
		} {
			var want bytes.Buffer
			if err := Default.Render(&want, Send, fill(values)); err != nil {
				t.Fatal(err)
			}
			got, ok := f.Append([]byte("kept:"), values)
			if !ok || string(got) != "kept:"+want.String() {
				t.Fatalf("%s %q: the frame wrote\n%s\nthe template\n%s", lang, values, got, want.String())
			}
		}
	}
}

// A value that is not query-escaped is refused where the frame needs one,
// and nothing is written.
func TestFrameRefusesAQueryValueNotEscaped(t *testing.T) {
	f, err := Default.NewFrame(Send, frKinds, frFill("en"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"/settings", "a b", "%2", "%zz", "<", "\"", "a&b"} {
		if out, ok := f.Append([]byte("x"), []string{"n", "c", "m", "p", "/", q}); ok || string(out) != "x" {
			t.Errorf("query value %q: written (%v, %q)", q, ok, out)
		}
	}
	if _, ok := f.Append(nil, []string{"n", "c", "m", "p", "/", "%2Fa%3d+b-._~"}); !ok {
		t.Error("a query-escaped value is refused")
	}
}

// A page that puts a value where HTML escaping is not the template's (a
// script, a URL) gets no frame: its pages come from the template.
func TestFrameRefusesAValueOutsideHTMLText(t *testing.T) {
	for name, page := range map[string]string{
		"script": `{{template "top" .}}<script nonce="{{.Nonce}}">var t = "{{.CSRF}}";</script><p>{{.Message}}</p>{{template "bottom" .}}`,
		"url":    `{{template "top" .}}<a href="/x?m={{.Message}}">x</a>{{template "bottom" .}}`,
		"branch": `{{template "top" .}}{{if eq .Message "<b2>&'\"+ -\x00\u00e9"}}probe{{end}}<p>{{.Message}}</p>{{template "bottom" .}}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "send.html"), []byte(page), 0o600); err != nil {
			t.Fatal(err)
		}
		set, err := NewSet(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := set.NewFrame(Send, frKinds, frFill("en")); err == nil || !strings.Contains(err.Error(), "no frame") {
			t.Errorf("%s: a frame for a value outside HTML text (error %v)", name, err)
		}
	}
}

// The escaping is html/template's for text and quoted attributes, for
// every byte.
func TestFrameEscapesAsTheTemplate(t *testing.T) {
	var all strings.Builder
	for c := range 256 {
		all.WriteByte(byte(c))
	}
	all.WriteString("é日本\U0001F600")
	f, err := Default.NewFrame(Send, frKinds, frFill("ja"))
	if err != nil {
		t.Fatal(err)
	}
	values := []string{all.String(), all.String(), all.String(), all.String(), all.String(), "x"}
	var want bytes.Buffer
	if err := Default.Render(&want, Send, frFill("ja")(values)); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Append(nil, values); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("every byte: the frame wrote\n%q\nthe template\n%q", got, want.String())
	}
}

// A Digits value is a number the page prints (the seconds to wait on the
// code page, in an attribute and a sentence): spliced as the template
// prints it, and anything but digits refused.
func TestFrameSplicesDigits(t *testing.T) {
	fill := func(v []string) Data {
		d := SampleData("en")
		d.Nonce, d.CSRF = v[0], v[1]
		d.RetryIn, _ = strconv.Atoi(v[2])
		return d
	}
	kinds := []Splice{Escaped, Escaped, Digits}
	f, err := Default.NewFrame(Code, kinds, fill)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"1", "30", "12345"} {
		var want bytes.Buffer
		if err := Default.Render(&want, Code, fill([]string{"n", "c", n})); err != nil {
			t.Fatal(err)
		}
		if got, ok := f.Append(nil, []string{"n", "c", n}); !ok || !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%s seconds: the frame wrote\n%s\nthe template\n%s", n, got, want.String())
		}
	}
	for _, n := range []string{"", "3a", "-1", "<"} {
		if _, ok := f.Append(nil, []string{"n", "c", n}); ok {
			t.Errorf("%q spliced as digits", n)
		}
	}
}
