package pages

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden pages")

// TestPagesMatchGoldenFiles renders every page in both languages with
// SampleData and compares with testdata/golden (go test -update rewrites).
func TestPagesMatchGoldenFiles(t *testing.T) {
	for _, lang := range []string{"en", "ja"} {
		for _, name := range Names {
			t.Run(lang+" "+name+" page renders as its golden file", func(t *testing.T) {
				var b bytes.Buffer
				if err := Render(&b, name, SampleData(lang)); err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", "golden", lang+"-"+name+".html")
				if *update {
					if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b.Bytes(), want) {
					t.Fatalf("%s differs from %s; run go test ./pages -update and review the diff", name, golden)
				}
				page := b.String()
				if !strings.Contains(page, `<html lang="`+lang+`">`) {
					t.Error("the page does not declare its language")
				}
				if strings.Contains(page, "<script>") || strings.Contains(page, "<style>") {
					t.Error("inline script or style without the CSP nonce")
				}
				if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
					t.Error("the page refers to another origin; pages load nothing from outside")
				}
			})
		}
	}
}

func TestCodePageIsUsableOnPhones(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, Code, SampleData("en")); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		`<label for="code">`, `autocomplete="one-time-code"`, `inputmode="numeric"`, `pattern=`, `autofocus`,
		`role="alert"`, `name="viewport"`, `OTPCredential`, `action="/_stepup/call"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the code page lacks %s", want)
		}
	}
}

func TestTemplateOverrides(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	t.Run("an override replaces its page and leaves the others", func(t *testing.T) {
		set, err := NewSet(write(t, map[string]string{"send.html": `{{template "top" .}}<p id="custom">Hello {{.Service}}</p>{{template "bottom" .}}`}))
		if err != nil {
			t.Fatal(err)
		}
		var send, code bytes.Buffer
		if err := set.Render(&send, Send, SampleData("en")); err != nil {
			t.Fatal(err)
		}
		if err := set.Render(&code, Code, SampleData("en")); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(send.String(), `<p id="custom">Hello Example</p>`) || !strings.Contains(code.String(), `autocomplete="one-time-code"`) {
			t.Fatal("the override was not used, or it replaced another page")
		}
	})
	for _, tc := range []struct{ name, file, body, want string }{
		{"a template that does not parse is refused with file and line", "code.html", "<p>\n{{if .Masked}}\n", "code.html:"},
		{"a template that fails to render is refused with file and line", "locked.html", "<p>\n{{.NoSuchField}}</p>", "locked.html:2"},
		{"a file that is no page is refused", "profile.html", "<p></p>", "no such page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSet(write(t, map[string]string{tc.file: tc.body}))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
	t.Run("a directory that does not exist is refused", func(t *testing.T) {
		if _, err := NewSet(filepath.Join(t.TempDir(), "missing")); err == nil {
			t.Fatal("accepted a missing directory")
		}
	})
}

func TestBrand(t *testing.T) {
	for _, tc := range []struct {
		name  string
		brand Brand
		ok    bool
	}{
		{"a logo on this site and a hex colour are accepted", Brand{LogoURL: "/static/logo.svg", Color: "#0a7"}, true},
		{"a data: image logo is accepted", Brand{LogoURL: "data:image/png;base64,AAAA"}, true},
		{"a logo on another origin is refused", Brand{LogoURL: "https://cdn.example.com/logo.svg"}, false},
		{"a protocol-relative logo is refused", Brand{LogoURL: "//cdn.example.com/logo.svg"}, false},
		{"a colour that is not hex is refused", Brand{Color: "red;background:url(x)"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckBrand(tc.brand); (err == nil) != tc.ok {
				t.Fatalf("CheckBrand: %v", err)
			}
		})
	}
	t.Run("the brand shows in the page", func(t *testing.T) {
		d := SampleData("en")
		d.Brand = Brand{LogoURL: "/logo.svg", Color: "#aa0000"}
		var b bytes.Buffer
		if err := Render(&b, Send, d); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), `--brand:#aa0000`) || !strings.Contains(b.String(), `<img src="/logo.svg" alt="">`) {
			t.Fatal("brand colour or logo missing")
		}
	})
}

func TestLang(t *testing.T) {
	for _, tc := range []struct{ explicit, header, want string }{
		{"", "ja,en;q=0.8", "ja"},
		{"", "en-US,en;q=0.9,ja;q=0.8", "en"},
		{"", "fr-FR,ja;q=0.5", "ja"},
		{"", "", "en"},
		{"en", "ja", "en"},
		{"xx", "ja", "ja"},
	} {
		if got := Lang(tc.explicit, tc.header); got != tc.want {
			t.Errorf("Lang(%q, %q) = %q, want %q", tc.explicit, tc.header, got, tc.want)
		}
	}
}

func TestCatalogsHaveTheSameKeys(t *testing.T) {
	for key := range catalogs["en"] {
		if catalogs["ja"][key] == "" {
			t.Errorf("ja lacks %q", key)
		}
	}
	for key := range catalogs["ja"] {
		if catalogs["en"][key] == "" {
			t.Errorf("en lacks %q", key)
		}
	}
}

// TestEveryMessageTheHandlerUsesExists guards against a key the handler
// asks for but no catalog has: pages.Msg would show an empty sentence.
func TestEveryMessageTheHandlerUsesExists(t *testing.T) {
	src, err := filepathGlobRead("../caddymodule/*.go")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, m := range msgCall.FindAllStringSubmatch(src, -1) {
		used[m[1]] = true
	}
	if len(used) < 10 {
		t.Fatalf("found only %d message keys in the handler; the pattern is stale", len(used))
	}
	for key := range used {
		if catalogs["en"][key] == "" || catalogs["ja"][key] == "" {
			t.Errorf("the handler uses message %q, which a catalog lacks", key)
		}
	}
}

var msgCall = regexp.MustCompile(`(?:v\.msg|pages\.Msg\(v\.lang,)\s*\(?"([a-z_]+)"`)

func filepathGlobRead(pattern string) (string, error) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return "", err
	}
	var all strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		all.Write(b)
	}
	return all.String(), nil
}

// render renders page name in lang with SampleData changed by edit.
func render(t *testing.T, lang, name string, edit func(*Data)) string {
	t.Helper()
	d := SampleData(lang)
	if edit != nil {
		edit(&d)
	}
	var b bytes.Buffer
	if err := Render(&b, name, d); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var titleTag = regexp.MustCompile(`<title>([^<]*)</title>`)

// TestEachPageHasItsOwnTitle: a tab, the history and a screen reader's
// first words name the page, in its language, and the service.
func TestEachPageHasItsOwnTitle(t *testing.T) {
	for _, tc := range []struct{ lang, sep string }{{"en", " – "}, {"ja", "｜"}} {
		seen := map[string]string{}
		for _, name := range Names {
			m := titleTag.FindStringSubmatch(render(t, tc.lang, name, nil))
			if m == nil {
				t.Fatalf("%s %s page has no <title>", tc.lang, name)
			}
			title := m[1]
			if !strings.HasSuffix(title, tc.sep+"Example") {
				t.Errorf("%s %s page title %q does not end with %q and the service", tc.lang, name, title, tc.sep)
			}
			if other, ok := seen[title]; ok {
				t.Errorf("%s: the %s and %s pages share the title %q", tc.lang, other, name, title)
			}
			seen[title] = name
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*Data)
		want string
	}{
		{Send, nil, "<title>Confirm it&#39;s you – Example</title>"},
		{Code, nil, "<title>Enter your code – Example</title>"},
		{Error, func(d *Data) { d.Title = "No such page" }, "<title>No such page – Example</title>"},
		{Enroll, func(d *Data) { d.Changing = true }, "<title>Change phone number – Example</title>"},
		{Locked, func(d *Data) { d.Service = "A & B" }, "<title>Too many wrong codes – A &amp; B</title>"},
	} {
		if page := render(t, "en", tc.name, tc.edit); !strings.Contains(page, tc.want) {
			t.Errorf("%s page: want %s, got %s", tc.name, tc.want, titleTag.FindString(page))
		}
	}
	if page := render(t, "ja", Code, nil); !strings.Contains(page, "<title>確認コードの入力｜Example</title>") {
		t.Errorf("ja code page title: %s", titleTag.FindString(page))
	}
}

// TestNeverShareShowsOnlyWhereThereIsACode: the warning about sharing the
// code means nothing on a page with no code and dilutes it where it counts.
func TestNeverShareShowsOnlyWhereThereIsACode(t *testing.T) {
	for _, lang := range []string{"en", "ja"} {
		footer := Msg(lang, "footer")
		for _, name := range Names {
			want := name == Send || name == Code
			if got := strings.Contains(render(t, lang, name, nil), footer); got != want {
				t.Errorf("%s %s page shows the never-share line: %v, want %v", lang, name, got, want)
			}
		}
		if !strings.Contains(render(t, lang, Send, func(d *Data) { d.Enrolling = true }), footer) {
			t.Errorf("%s send page confirming a new number (a code is about to be sent) lacks the never-share line", lang)
		}
	}
}

// TestCancelDoesNotLoopBackToTheStepUp: the return path is the protected
// page, which sends the browser straight back to the step-up; the way out
// of the send, enroll and locked pages is the site's home page.
func TestCancelDoesNotLoopBackToTheStepUp(t *testing.T) {
	for _, lang := range []string{"en", "ja"} {
		for _, name := range []string{Send, Enroll, Locked} {
			page := render(t, lang, name, nil)
			want := `<a href="/" id="cancel">` + Msg(lang, "cancel_home") + `</a>`
			if !strings.Contains(page, want) {
				t.Errorf("%s %s page lacks %s", lang, name, want)
			}
			if strings.Contains(page, `href="/settings"`) {
				t.Errorf("%s %s page links straight to the return path, which leads back here", lang, name)
			}
		}
	}
}

// TestEveryMessageTheTemplatesUseExists: {{.T.key}} of a key no catalog
// has renders as nothing, silently.
func TestEveryMessageTheTemplatesUseExists(t *testing.T) {
	src, err := filepathGlobRead("templates/*.html")
	if err != nil {
		t.Fatal(err)
	}
	keys := regexp.MustCompile(`\.T\.([a-z_]+)`).FindAllStringSubmatch(src, -1)
	if len(keys) < 10 {
		t.Fatalf("found only %d message keys in the templates; the pattern is stale", len(keys))
	}
	for _, m := range keys {
		if catalogs["en"][m[1]] == "" || catalogs["ja"][m[1]] == "" {
			t.Errorf("a template uses message %q, which a catalog lacks", m[1])
		}
	}
	for _, key := range []string{"page_title", "code_page_title"} {
		if catalogs["en"][key] == "" || catalogs["ja"][key] == "" {
			t.Errorf("Data.PageTitle uses message %q, which a catalog lacks", key)
		}
	}
}

func TestSendPageNamesTheAction(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ lang, action, want string }{
		{"en", "change your payout account", "<h1>Confirm it&#39;s you to change your payout account</h1>"},
		{"ja", "振込先の変更", "<h1>振込先の変更のためのご本人確認</h1>"},
		{"en", "<b>pay</b>", "<h1>Confirm it&#39;s you to &lt;b&gt;pay&lt;/b&gt;</h1>"},
	} {
		t.Run(tc.lang+" heading says "+tc.want, func(t *testing.T) {
			for _, page := range []string{Send, Code} {
				data := SampleData(tc.lang)
				data.Action = tc.action
				var b bytes.Buffer
				if err := Default.Render(&b, page, data); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(b.String(), tc.want) {
					t.Errorf("%s page lacks %s", page, tc.want)
				}
			}
		})
	}
}

// BenchmarkRender is the send and code pages as the handler renders them,
// in each language (issue 17: the page is most of a step-up page GET).
//
//	go test -run XXX -bench Render -benchmem ./pages/
func BenchmarkRender(b *testing.B) {
	for _, page := range []string{Send, Code} {
		for _, lang := range []string{"en", "ja"} {
			b.Run(page+"/"+lang, func(b *testing.B) {
				data := SampleData(lang)
				b.ReportAllocs()
				for b.Loop() {
					if err := Render(io.Discard, page, data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestLangReadsTheFirstRangesOnly: a language past the first
// maxLangRanges ranges of Accept-Language is not read, so a long header
// costs what 32 ranges cost (BenchmarkLangHugeHeader), and one within them
// still is.
func TestLangReadsTheFirstRangesOnly(t *testing.T) {
	filler := strings.Repeat("fr;q=0.9,", maxLangRanges-1)
	if got := Lang("", filler+"ja"); got != "ja" {
		t.Errorf("ja as range %d: Lang = %q, want ja", maxLangRanges, got)
	}
	if got := Lang("", filler+"fr,ja"); got != "en" {
		t.Errorf("ja as range %d: Lang = %q, want en (not read)", maxLangRanges+1, got)
	}
	if got := Lang("", strings.Repeat("ja;q=0.5,", 1<<20/9)); got != "ja" {
		t.Errorf("a megabyte of ja: Lang = %q, want ja", got)
	}
}

// BenchmarkLangHugeHeader: Lang on an Accept-Language of 16 KiB, the most
// Caddy reads by default (0.7 ms before it read only the first ranges).
func BenchmarkLangHugeHeader(b *testing.B) {
	h := strings.Repeat("ja;q=0.5,", 16<<10/9)
	for b.Loop() {
		Lang("", h)
	}
}
