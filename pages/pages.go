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
	"strings"
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
)

// Data is everything a page may show. Strings are escaped by html/template.
type Data struct {
	Lang string
	// T is the message catalog of Lang, so templates say {{.T.send_title}}.
	T map[string]string
	// Nonce allows the page's own <style> and <script> under the CSP.
	Nonce string
	// Service is the name shown in the title and header.
	Service string
	// Prefix is the plugin's path prefix (/_stepup); form actions hang off it.
	Prefix string
	// Return is the validated same-site path to go back to.
	Return string
	CSRF   string
	// Masked is the destination number, masked.
	Masked string
	// Message is a sentence in Lang saying what happened (an error or a
	// notice); Status says which kind.
	Message string
	Status  string
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
	// Other is the switch to the other language.
	OtherLang  string
	OtherLabel string
	OtherURL   string
}

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{"fill": fill}).ParseFS(files, "templates/*.html"))

// fill puts value in place of field in s: {{fill .T.resend_wait "{s}" 30}}.
func fill(s, field string, value any) string {
	return strings.ReplaceAll(s, field, fmt.Sprint(value))
}

// Render writes page name with data. It renders to a buffer first so a
// template error never leaves half a page.
func Render(w io.Writer, name string, data Data) error {
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, name+".html", data); err != nil {
		return fmt.Errorf("render %s page: %w", name, err)
	}
	_, err := buf.WriteTo(w)
	return err
}

// Catalog returns the messages of lang (English when lang has none), with
// {name} fields filled from args (name, value, name, value ...). It returns
// a fresh map the caller may keep.
func Catalog(lang string, args ...string) map[string]string {
	c, ok := catalogs[lang]
	if !ok {
		c = catalogs["en"]
	}
	var r *strings.Replacer
	if len(args) > 0 {
		r = strings.NewReplacer(args...)
	}
	out := make(map[string]string, len(c))
	for k, v := range c {
		if r != nil {
			v = r.Replace(v)
		}
		out[k] = v
	}
	return out
}

// Lang picks a supported language: explicit (a ?lang= choice) when
// supported, else the first supported language in an Accept-Language
// header, else English.
func Lang(explicit, acceptLanguage string) string {
	if _, ok := catalogs[explicit]; ok {
		return explicit
	}
	best, bestQ := "en", -1.0
	for _, part := range strings.Split(acceptLanguage, ",") {
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
		s = strings.NewReplacer(args...).Replace(s)
	}
	return s
}
