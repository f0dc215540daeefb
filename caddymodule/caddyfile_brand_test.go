package caddymodule

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// brandParse parses a directive whose brand block holds line, on line 5
// of "Testfile".
func brandParse(line string) (*Handler, error) {
	h := new(Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("sms_stepup {\n\tidentity {http.auth.user.id}\n\tenroll\n\tbrand {\n\t\t" + line + "\n\t}\n}"))
	if err == nil {
		err = h.validateCaddyfile()
	}
	return h, err
}

// TestBrandColor: a # outside quotes starts a Caddyfile comment, so the
// colour is taken without it or quoted, and a colour the comment ate is
// explained on its line.
func TestBrandColor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, line, want string }{
		{"hex digits without # are taken as the colour", "color 1a56db", "#1a56db"},
		{"a quoted #rrggbb is taken as written", `color "#1a56db"`, "#1a56db"},
		{"three hex digits are a colour too", "color ABC", "#ABC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := brandParse(tc.line)
			if err != nil || h.Brand == nil || h.Brand.Color != tc.want {
				t.Fatalf("%s: brand %+v, %v; want color %s", tc.line, h.Brand, err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, line, want string }{
		{"an unquoted #rrggbb, which the comment eats, says to quote it or drop the #", "color #1a56db", `quote it (color "#1a56db")`},
		{"a colour that is not hex is refused", "color 1a56dg", `brand color "#1a56dg": expected 3 or 6 hex digits`},
		{"a quoted colour of five digits is refused", `color "#12345"`, `brand color "#12345": expected 3 or 6 hex digits`},
		{"a CSS injection is refused", "color red;background:url(//evil)", "expected 3 or 6 hex digits"},
		{"two values are refused", "color 1a56db 000000", "expected one value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := brandParse(tc.line)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Testfile:5") {
				t.Fatalf("%s: error %v; want %q at Testfile:5", tc.line, err, tc.want)
			}
		})
	}
}

// TestReadmeBrandExampleAdapts adapts the README's brand block inside a
// site, so the README can't show a colour that fails to load.
func TestReadmeBrandExampleAdapts(t *testing.T) {
	t.Parallel()
	block := readmeCaddyfileBlock(t, func(b string) bool { return strings.HasPrefix(strings.TrimSpace(b), "brand {") })
	if block == "" || !strings.Contains(block, "color") {
		t.Fatal("the README has no caddyfile block starting with `brand {` that sets a color")
	}
	indented := regexp.MustCompile("(?m)^").ReplaceAllString(strings.TrimSuffix(block, "\n"), "\t\t")
	site := "example.com {\n\tsms_stepup /settings* {\n\t\tidentity {http.auth.user.id}\n\t\tenroll\n" + indented + "\n\t}\n}\n"
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site), map[string]any{"filename": "README.md"})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("the README's brand block does not adapt: %v %v\n%s", err, warnings, site)
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	brand := findKey(cfg, "brand")
	if brand == nil || brand.(map[string]any)["color"] != "#1a56db" {
		t.Fatalf("the adapted brand is %v, want color #1a56db\n%s", brand, out)
	}
}

// findKey returns the first value under key anywhere in v.
func findKey(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		if found, ok := x[key]; ok {
			return found
		}
		for _, c := range x {
			if found := findKey(c, key); found != nil {
				return found
			}
		}
	case []any:
		for _, c := range x {
			if found := findKey(c, key); found != nil {
				return found
			}
		}
	}
	return nil
}
