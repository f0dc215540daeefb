package pages

import (
	"maps"
	"strings"
	"testing"
)

// catalogByReplacer is Catalog as it was: every message through a
// strings.Replacer built for the call.
func catalogByReplacer(lang string, args ...string) map[string]string {
	c, ok := catalogs[lang]
	if !ok {
		c = catalogs["en"]
	}
	out := make(map[string]string, len(c))
	for k, v := range c {
		if len(args) > 0 {
			v = strings.NewReplacer(args...).Replace(v)
		}
		out[k] = v
	}
	return out
}

// Filling only the messages with a field gives every language the same
// messages as replacing in all of them, for the pages' arguments and for
// awkward ones (a value holding another field, names that are prefixes of
// each other, names without braces).
func TestCatalogFillsAsTheReplacerDid(t *testing.T) {
	t.Parallel()
	argSets := [][]string{
		nil,
		{"{phone}", "+81\u00a090\u2011****\u20115678", "{n}", "6"},
		{"{phone}", "{n}", "{n}", "8"},
		{"{n}", "4", "{n}x", "never", "{", "<"},
		{"code", "CODE", "{n}", "6"},
		{"{service}", "Example & Co", "{page}", "Title", "{m}", "15", "{s}", "30", "{action}", "pay"},
	}
	for _, lang := range []string{"en", "ja", "fr", ""} {
		for _, args := range argSets {
			got, want := Catalog(lang, args...), catalogByReplacer(lang, args...)
			if !maps.Equal(got, want) {
				for k := range want {
					if got[k] != want[k] {
						t.Errorf("%q %q, %s: %q, want %q", lang, args, k, got[k], want[k])
					}
				}
			}
		}
	}
}

// The map is the caller's: changing it changes no later page.
func TestCatalogIsAFreshMap(t *testing.T) {
	t.Parallel()
	a := Catalog("en", "{n}", "6")
	a["title"], a["code_label"] = "changed", "changed"
	b := Catalog("en", "{n}", "6")
	if b["title"] == "changed" || b["code_label"] == "changed" || catalogs["en"]["title"] == "changed" {
		t.Fatal("a caller's change to its catalog reached another")
	}
}

func TestFillFieldsIsTheReplacer(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		s    string
		args []string
	}{
		{"", []string{"{a}", "x"}},
		{"{a}", []string{"{a}", ""}},
		{"{a}{a}{b}", []string{"{a}", "1", "{b}", "2"}},
		{"x{a}y{b", []string{"{a}", "{b}", "{b", "!"}},
		{"aaa", []string{"a", "b", "aa", "c"}},
		{"aaa", []string{"aa", "c", "a", "b"}},
		{"no field", []string{"{a}", "1"}},
		{"empty name", []string{"", "-"}},
	} {
		if got, want := fillFields(c.s, c.args), strings.NewReplacer(c.args...).Replace(c.s); got != want {
			t.Errorf("fillFields(%q, %q) = %q, want %q", c.s, c.args, got, want)
		}
	}
}

func BenchmarkCatalog(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Catalog("ja", "{phone}", "+81\u00a090\u2011****\u20115678", "{n}", "6")
	}
}

func BenchmarkCatalogByReplacer(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		catalogByReplacer("ja", "{phone}", "+81\u00a090\u2011****\u20115678", "{n}", "6")
	}
}

// Messages gives what Catalog gives, shares it for the same arguments, and
// keeps no more than its bound.
func TestMessagesAreCatalogSharedAndBounded(t *testing.T) {
	args := []string{"{phone}", "+81 90-****-5678", "{n}", "6"}
	a := Messages("ja", args...)
	if !maps.Equal(a, Catalog("ja", args...)) {
		t.Fatal("Messages differs from Catalog")
	}
	if b := Messages("ja", args...); !sameMap(a, b) {
		t.Error("the same arguments built another map")
	}
	if c := Messages("ja", "{phone}", "+81 80-****-1111", "{n}", "6"); sameMap(a, c) || c["code_lead"] == a["code_lead"] {
		t.Error("another number got the first number's messages")
	}
	if !maps.Equal(Messages("xx"), Catalog("en")) {
		t.Error("an unknown language is not English")
	}
	for i := range 3 * messagesMemoSize {
		Messages("en", "{n}", strings.Repeat("1", i%40), "{phone}", string(rune('a'+i%26))+strings.Repeat("x", i))
	}
	messagesMemo.mu.RLock()
	n := len(messagesMemo.maps)
	messagesMemo.mu.RUnlock()
	if n > messagesMemoSize {
		t.Errorf("%d catalogs kept, want at most %d", n, messagesMemoSize)
	}
}

// sameMap reports whether a and b are one map: a change through one shows
// in the other (the test changes and restores one key).
func sameMap(a, b map[string]string) bool {
	old := a["title"]
	a["title"] = "probe"
	same := b["title"] == "probe"
	a["title"] = old
	return same
}
