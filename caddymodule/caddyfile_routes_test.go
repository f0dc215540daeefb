package caddymodule

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

func TestUnmarshalCaddyfileRoute(t *testing.T) {
	t.Parallel()
	h, err := cfParse(cfWith(
		"route /account/payout* /account/bank {",
		"\tmax_age 2m",
		`	action "change your payout account" "振込先の変更"`,
		"}",
		"route /settings* {",
		"\tmax_age 15m",
		"}",
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Routes) != 2 {
		t.Fatalf("got %d routes, want 2", len(h.Routes))
	}
	payout, settings := h.Routes[0], h.Routes[1]
	match, _ := json.Marshal(payout.MatchRaw)
	if string(match) != `[{"path":["/account/payout*","/account/bank"]}]` {
		t.Errorf("payout match %s", match)
	}
	if time.Duration(payout.MaxAge) != 2*time.Minute || payout.Action["en"] != "change your payout account" || payout.Action["ja"] != "振込先の変更" {
		t.Errorf("payout route %+v", payout)
	}
	if time.Duration(settings.MaxAge) != 15*time.Minute || settings.Action != nil {
		t.Errorf("settings route %+v", settings)
	}
}

func TestUnmarshalCaddyfileRouteRefusesWithLine(t *testing.T) {
	t.Parallel()
	tooLongJA := strings.Repeat("振込先", 10) // 30 characters: 72 with a 6-digit code and the neutral service name "Step-up"
	for _, tt := range []struct {
		name  string
		lines []string
		at    string
		words []string
	}{
		{"a route without paths", []string{"route {", "\tmax_age 2m", "}"}, "Testfile:4",
			[]string{"route: expected one or more path patterns starting with /"}},
		{"a route with a named matcher rather than paths", []string{"route @payout {", "}"}, "Testfile:4",
			[]string{`route "@payout": expected path patterns starting with /`}},
		{"an unknown route option", []string{"route /a* {", "\tcolour blue", "}"}, "Testfile:5",
			[]string{`unknown route option "colour": expected max_age or action`}},
		{"an action in English only", []string{"route /a* {", `	action "pay"`, "}"}, "Testfile:5",
			[]string{"action: expected the text in English and in Japanese"}},
		{"a route max_age of 0", []string{"route /a* {", "\tmax_age 0", "}"}, "Testfile:5",
			[]string{"max_age 0s: expected a duration"}},
		{"a route max_age longer than token_ttl", []string{"token_ttl 10m", "route /a* {", "\tmax_age 11m", "}"}, "Testfile:6",
			[]string{"route max_age 11m: expected a duration such as 2m, more than 0 and at most token_ttl (10m)"}},
		{"a Japanese action that makes the SMS longer than one segment", []string{"route /a* {", "\tmax_age 2m", `	action "pay" "` + tooLongJA + `"`, "}"}, "Testfile:6",
			[]string{"message ja with action", "UCS-2 characters, 2 SMS segments, more than max_segments 1", "shorten the action"}},
		{"an English action that makes the SMS longer than one segment with a long service_name", []string{"service_name Example Corporation International Holdings", "route /a* {", `	action "` + strings.Repeat("pay ", 15) + `" "支払い"`, "}"}, "Testfile:6",
			[]string{"message en with action", "GSM-7 characters, 2 SMS segments"}},
		{"an action over 60 characters", []string{"max_segments 3", "route /a* {", `	action "` + strings.Repeat("pay ", 16) + `" "支払い"`, "}"}, "Testfile:6",
			[]string{"expected one line of at most 60 characters"}},
	} {
		t.Run(tt.name+" is refused at its line", func(t *testing.T) {
			t.Parallel()
			_, err := cfParse(cfWith(tt.lines...))
			if err == nil {
				t.Fatal("accepted, want an error")
			}
			msg := err.Error()
			if !strings.HasSuffix(msg, ", at "+tt.at) {
				t.Errorf("error %q does not end with the position %q", msg, tt.at)
			}
			for _, w := range tt.words {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
	t.Run("a long action fits when max_segments allows two", func(t *testing.T) {
		t.Parallel()
		if _, err := cfParse(cfWith("max_segments 2", "route /a* {", `	action "pay" "`+tooLongJA+`"`, "}")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a JSON route without a matcher is refused naming the route", func(t *testing.T) {
		t.Parallel()
		h := cfBase()
		h.Routes = []StepUpRoute{{MaxAge: caddy.Duration(time.Minute)}}
		err := h.Validate()
		if err == nil || optionOf(err) != "routes.0" || !strings.Contains(err.Error(), "route 0: expected a matcher (match)") {
			t.Fatalf("error %v (option %q)", err, optionOf(err))
		}
	})
	t.Run("a JSON action with a line break is refused", func(t *testing.T) {
		t.Parallel()
		h := cfBase()
		h.Routes = []StepUpRoute{{MatchRaw: cfPaths("/a*"), Action: map[string]string{"en": "pay\nnow", "ja": "支払い"}}}
		err := h.Validate()
		if err == nil || optionOf(err) != "routes.0.action" || !strings.Contains(err.Error(), "expected one line") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("a JSON action in an unknown locale is refused", func(t *testing.T) {
		t.Parallel()
		h := cfBase()
		h.Routes = []StepUpRoute{{MatchRaw: cfPaths("/a*"), Action: map[string]string{"en": "pay", "ja": "支払い", "fr": "payer"}}}
		err := h.Validate()
		if err == nil || optionOf(err) != "routes.0.action" || !strings.Contains(err.Error(), `route action "fr": no such locale`) {
			t.Fatalf("error %v", err)
		}
	})
}

// TestReadmeRoutesExampleAdapts adapts the README's route blocks inside a
// site, so the README can't show routes that fail to load.
func TestReadmeRoutesExampleAdapts(t *testing.T) {
	t.Parallel()
	block := readmeCaddyfileBlock(t, func(b string) bool { return strings.HasPrefix(strings.TrimSpace(b), "route /") })
	if block == "" {
		t.Fatal("the README has no caddyfile block starting with `route /`")
	}
	indented := regexp.MustCompile("(?m)^").ReplaceAllString(strings.TrimSuffix(block, "\n"), "\t\t")
	site := "example.com {\n\tsms_stepup /settings* {\n\t\tidentity {http.auth.user.id}\n\t\tphone {http.request.header.X-Phone}\n\t\tservice_name \"Example Corp\"\n" + indented + "\n\t}\n}\n"
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site), map[string]any{"filename": "README.md"})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("the README's routes do not adapt: %v %v\n%s", err, warnings, site)
	}
	if !strings.Contains(string(out), `"action":{"en":"change your payout account","ja":"振込先の変更"}`) {
		t.Fatalf("the adapted config lacks the payout action:\n%s", out)
	}
}
