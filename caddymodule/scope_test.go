package caddymodule

import (
	"strings"
	"testing"
)

func TestScopeIsOneStringPerSetOfSites(t *testing.T) {
	t.Parallel()
	at := func(prefix string, sites ...string) string {
		h := &Handler{ScopeOptions: ScopeOptions{PathPrefix: prefix, Sites: sites}}
		return h.scopeOf(nil)
	}
	if a, b := at("/_stepup", "B.example.com", "a.example.com"), at("/_stepup", "a.example.com", "b.example.com", "a.example.com"); a != b {
		t.Errorf("the same sites in another order, case or with a repeat give %q and %q", a, b)
	}
	for _, pair := range [][2]string{
		{at("/_stepup", "a.example.com,b.example.com"), at("/_stepup", "a.example.com", "b.example.com")},
		{at("/_stepup", "a.example.com:/x"), at("/x", "a.example.com")},
		{at("/_stepup", "a.example.com"), (&Handler{ScopeOptions: ScopeOptions{PathPrefix: "/_stepup", Realm: "a.example.com"}}).scopeOf(nil)},
		{at("/_stepup"), (&Handler{ScopeOptions: ScopeOptions{PathPrefix: "/_stepup"}}).scopeOf([]string{":443"})},
	} {
		if pair[0] == pair[1] {
			t.Errorf("two different handlers share the scope %q", pair[0])
		}
	}
}

func TestScopeValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, want string
		configure  func(*Handler)
	}{
		{"a realm name with a space", `realm "corp apps"`, func(h *Handler) { h.Realm = "corp apps" }},
		{"a realm name with a colon", `realm "corp:x"`, func(h *Handler) { h.Realm = "corp:x" }},
		{"a realm name of 65 characters", "up to 64", func(h *Handler) { h.Realm = strings.Repeat("r", 65) }},
		{"an empty site", `sites ""`, func(h *Handler) { h.Sites = []string{""} }},
		{"a site with a comma", `sites "a.example.com,b.example.com"`, func(h *Handler) { h.Sites = []string{"a.example.com,b.example.com"} }},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			t.Parallel()
			if err := secProvision(t, tc.configure); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %s", err, tc.want)
			}
		})
	}
	t.Run("a realm of letters, digits, dots, dashes and underscores and sites with ports are taken", func(t *testing.T) {
		t.Parallel()
		if err := secProvision(t, scRealm("Corp_apps-2.0", "app.example.com:8443")); err != nil {
			t.Fatal(err)
		}
	})
}
