// Package pages holds the step-up pages people see: html/template files and
// their style, embedded, in Japanese and English. It knows nothing of Caddy;
// the handler fills a Data and calls Render.
package pages

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

//go:embed templates/*.html
var files embed.FS

// Names of the pages.
const (
	Send        = "send"
	Code        = "code"
	Locked      = "locked"
	Error       = "error"
	Unavailable = "unavailable"
	Enroll      = "enroll"
	// Resume sends a form kept during the step-up.
	Resume = "resume"
)

// Names lists every page, for checks and tests.
var Names = []string{Send, Code, Locked, Error, Unavailable, Enroll, Resume}

// Brand is how an operator makes the pages look like their service.
type Brand struct {
	// Name replaces the host in the header and title.
	Name string
	// LogoURL is a same-site path or a data: image (the CSP allows no
	// other origin).
	LogoURL string
	// Color is the accent, as #rgb or #rrggbb.
	Color string
}

// Data is everything a page may show. Strings are escaped by html/template.
type Data struct {
	// Page is the page being rendered (Send, Code ...); Render sets it.
	Page string
	Lang string
	// T is the message catalog of Lang, so templates say {{.T.send_title}}.
	T map[string]string
	// Nonce allows the page's own <style> and <script> under the CSP.
	Nonce string
	// Service is the name shown in the title and header.
	Service string
	Brand   Brand
	// Prefix is the plugin's path prefix (/_stepup); form actions hang off it.
	Prefix string
	// Return is the validated same-site path to go back to.
	Return string
	CSRF   string
	// Masked is the destination number, masked.
	Masked string
	// Message is a sentence in Lang saying what happened (an error or a
	// notice); Status says which kind; Key is its catalog key, a stable
	// word for API clients and tests.
	Message string
	Status  string
	Key     string
	// Title overrides the page's heading (error pages say which error).
	Title string
	// Action is what the step-up confirms, in Lang ("change your payout
	// account"), from the configuration of the route the user goes back
	// to; "" when it names none.
	Action string
	// Remaining attempts; RetryIn seconds until a resend is allowed.
	Remaining  int
	RetryIn    int
	CodeLength int
	// Delivery is a sentence on the provider's delivery report, if any;
	// DeliveryStatus is "notice" or "error".
	Delivery       string
	DeliveryStatus string
	// CanCall offers "call me instead".
	CanCall bool
	// Enrolling is the send page confirming a number being enrolled,
	// Formatted in full; Changing is the enroll page replacing a bound
	// number; CanChange offers that from the send page.
	Enrolling bool
	Formatted string
	Changing  bool
	CanChange bool
	// Captcha is the CAPTCHA a send from the page needs, if any.
	Captcha *Captcha
	// ResumeURL is where the resume page posts the kept form's id
	// (ResumeField=ResumeID): the same-site path and query it was posted to.
	ResumeURL   string
	ResumeField string
	ResumeID    string
	// Other is the switch to the other language.
	OtherLang  string
	OtherLabel string
	OtherURL   string
}

// Heading is the page's name in Lang, as its <h1> says it; the code page,
// whose <h1> is the send page's, is named for what it asks ("Enter your
// code") so the two differ in a tab or the history.
func (d Data) Heading() string {
	switch d.Page {
	case Code:
		return d.T["code_page_title"]
	case Locked:
		return d.T["locked_title"]
	case Error:
		if d.Title != "" {
			return d.Title
		}
		return d.T["error_title"]
	case Unavailable:
		return d.T["unavailable_title"]
	case Resume:
		return d.T["resume_title"]
	case Enroll:
		if d.Changing {
			return d.T["change_number"]
		}
		return d.T["enroll_title"]
	}
	return d.ConfirmTitle()
}

// ConfirmTitle is the heading of the send and code pages: "Confirm it's
// you", or with an action "Confirm it's you to change your payout account".
func (d Data) ConfirmTitle() string {
	if d.Action == "" {
		return d.T["title"]
	}
	return strings.ReplaceAll(d.T["title_action"], "{action}", d.Action)
}

// PageTitle is the page's <title>: its heading and the service, in the
// order and with the separator Lang's catalog says.
func (d Data) PageTitle() string {
	// fillFields fills as strings.NewReplacer would, without building one
	// on every page (issue 17).
	return fillFields(d.T["page_title"], []string{"{page}", d.Heading(), "{service}", d.Service})
}

// InvolvesCode says whether the page is about a code (sending one or
// entering it), the only pages where "never share this code" means
// anything.
func (d Data) InvolvesCode() bool { return d.Page == Send || d.Page == Code }

var funcs = template.FuncMap{"fill": fill}

// fill puts value in place of field in s: {{fill .T.resend_wait "{s}" 30}}.
func fill(s, field string, value any) string {
	return strings.ReplaceAll(s, field, fmt.Sprint(value))
}

// Set is the pages in use: the embedded ones, with an operator's overrides.
type Set struct {
	tmpl *template.Template
}

// Default is the embedded pages.
var Default = &Set{tmpl: template.Must(embedded())}

// embedded parses the built-in templates afresh: html/template can't clone
// a set that has been executed, so overrides start from a new parse.
func embedded() (*template.Template, error) {
	return template.New("").Funcs(funcs).ParseFS(files, "templates/*.html")
}

// NewSet returns the embedded pages with any of them replaced by the
// files of the same name in dir (send.html, code.html, layout.html ...).
// A file that does not parse, or fails to render with sample data, is an
// error naming the file and line, so a broken override fails at start and
// never on a user's screen.
func NewSet(dir string) (*Set, error) {
	if dir == "" {
		return Default, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	t, err := embedded()
	if err != nil {
		return nil, err
	}
	known := map[string]bool{"layout.html": true}
	for _, n := range Names {
		known[n+".html"] = true
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".html") {
			continue
		}
		if !known[name] {
			return nil, fmt.Errorf("templates: %s: no such page; expected layout.html or one of %s.html",
				filepath.Join(dir, name), strings.Join(Names, ".html, "))
		}
		src, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		// Parsing under the file's own name makes errors read
		// "template: code.html:12: ...".
		if _, err := t.New(name).Parse(string(src)); err != nil {
			return nil, fmt.Errorf("templates: %s: %w", filepath.Join(dir, name), err)
		}
	}
	set := &Set{tmpl: t}
	for _, lang := range []string{"en", "ja"} {
		for _, n := range Names {
			if err := set.Render(io.Discard, n, SampleData(lang)); err != nil {
				return nil, fmt.Errorf("templates in %s: %w", dir, err)
			}
		}
	}
	return set, nil
}

// SampleData fills every field, for checking templates and for tests.
func SampleData(lang string) Data {
	return Data{
		Lang: lang, T: Catalog(lang, "{phone}", "+81 90-****-5678", "{n}", "6"), Nonce: "nonce", Service: "Example",
		Prefix: "/_stepup", Return: "/settings", CSRF: "csrf", Masked: "+81 90-****-5678",
		Message: Msg(lang, "wrong_code", "{n}", "4"), Key: "wrong_code", Status: "error", Remaining: 4, RetryIn: 30,
		CodeLength: 6, Delivery: Msg(lang, "delivery_delivered"), DeliveryStatus: "notice", CanCall: true,
		OtherLang: "ja", OtherLabel: "日本語", OtherURL: "/_stepup/?lang=ja", Formatted: "+81 90-1234-5678", CanChange: true,
		ResumeURL: "/settings/password", ResumeField: "_stepup_replay", ResumeID: "id",
	}
}

// Render writes page name with data. It renders to a buffer first so a
// template error never leaves half a page.
func (s *Set) Render(w io.Writer, name string, data Data) error {
	data.Page = name
	buf := renderBuffers.Get().(*bytes.Buffer)
	defer putRenderBuffer(buf)
	if err := s.tmpl.ExecuteTemplate(buf, name+".html", data); err != nil {
		return fmt.Errorf("render %s page: %w", name, err)
	}
	_, err := buf.WriteTo(w)
	return err
}

// renderBuffers keeps the buffers pages are rendered into, so a page does
// not grow a new one from nothing (issue 17: eight allocations and 8 KB a
// page). What a buffer held is never read again: it is emptied before it
// goes back.
var renderBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledPage is the largest buffer kept: a page an operator's template
// made huge is let go rather than held.
const maxPooledPage = 64 << 10

func putRenderBuffer(buf *bytes.Buffer) {
	if buf.Cap() > maxPooledPage {
		return
	}
	buf.Reset()
	renderBuffers.Put(buf)
}

// Render writes one of the embedded pages.
func Render(w io.Writer, name string, data Data) error { return Default.Render(w, name, data) }

// CheckBrand validates an operator's brand.
func CheckBrand(b Brand) error {
	if b.LogoURL != "" && !(strings.HasPrefix(b.LogoURL, "/") && !strings.HasPrefix(b.LogoURL, "//")) &&
		!strings.HasPrefix(b.LogoURL, "data:image/") {
		return fmt.Errorf("brand logo_url %q: expected a path on this site (/logo.svg) or a data:image URL; pages load nothing from other origins", b.LogoURL)
	}
	if b.Color != "" && !hexColor.MatchString(b.Color) {
		return fmt.Errorf("brand color %q: expected #rgb or #rrggbb", b.Color)
	}
	return nil
}

var hexColor = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// Lang picks a supported language: explicit (a ?lang= choice) when
// supported, else the first supported language in an Accept-Language
// header, else English. Only the header's first maxLangRanges ranges are
// read: a browser sends a handful, and each costs a float parse, so the
// 16 KiB header Caddy takes by default cost 0.7 ms of CPU per page (more
// than the page's whole render), and one of a megabyte
// (max_header_size raised) 50 to 150 ms.
func Lang(explicit, acceptLanguage string) string {
	if _, ok := catalogs[explicit]; ok {
		return explicit
	}
	best, bestQ := "en", -1.0
	ranges := strings.SplitN(acceptLanguage, ",", maxLangRanges+1)
	if len(ranges) > maxLangRanges {
		ranges = ranges[:maxLangRanges] // the last holds the rest, unread
	}
	for _, part := range ranges {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		if _, ok := catalogs[base]; !ok {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if _, err := fmt.Sscanf(v, "%g", &q); err != nil {
				q = 0
			}
		}
		if q > bestQ {
			best, bestQ = base, q
		}
	}
	return best
}

// maxLangRanges bounds the Accept-Language ranges Lang reads.
const maxLangRanges = 32

// LangName is the name of lang in itself, for the language switch.
func LangName(lang string) string { return catalogs[lang]["lang_name"] }

// Msg returns one message of lang with {name} fields filled from args
// (name, value, name, value ...).
func Msg(lang, key string, args ...string) string {
	s, ok := catalogs[lang][key]
	if !ok {
		s = catalogs["en"][key]
	}
	if len(args) > 0 {
		s = fillFields(s, args)
	}
	return s
}

// Captcha is a CAPTCHA challenge as a page (and the JSON API) shows it.
type Captcha struct {
	// Kind is pow: the page's script solves a proof of work of
	// Difficulty leading zero bits over Challenge, and a page without
	// JavaScript shows the image at ImageURL instead.
	Kind       string
	Challenge  string
	Difficulty int
	ImageURL   string
	// SiteKey, Script and Class load a provider's widget (Kind
	// turnstile, hcaptcha or recaptcha) instead.
	SiteKey string
	Script  string
	Class   string
}
