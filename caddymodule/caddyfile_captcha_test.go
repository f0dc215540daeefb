package caddymodule

import (
	"reflect"
	"strings"
	"testing"
)

// TestCaddyfileCaptchaOptions: captcha, captcha_when and limits device
// are read as written, and a mistake names its line and what was expected.
func TestCaddyfileCaptchaOptions(t *testing.T) {
	t.Parallel()
	seven := 7
	for _, tc := range []struct {
		name  string
		lines []string
		want  CaptchaOptions
		limit *int
	}{
		{"captcha alone is the proof of work", []string{"captcha"}, CaptchaOptions{Captcha: &CaptchaConfig{Type: "pow"}}, nil},
		{"captcha pow with a difficulty and captcha_when always", []string{"captcha pow {", "difficulty 18", "}", "captcha_when always"},
			CaptchaOptions{Captcha: &CaptchaConfig{Type: "pow", Difficulty: 18}, CaptchaWhen: "always"}, nil},
		{"captcha_when never without a captcha", []string{"captcha_when never"}, CaptchaOptions{CaptchaWhen: "never"}, nil},
		{"limits device", []string{"limits {", "device 7", "}"}, CaptchaOptions{}, &seven},
		{"captcha recaptcha with its keys, an endpoint and a score", []string{"captcha recaptcha {", "site_key sk", "secret {env.RECAPTCHA_SECRET}", "verify_url https://captcha.internal/siteverify", "min_score 0.5", "}"},
			CaptchaOptions{Captcha: &CaptchaConfig{Type: "recaptcha", SiteKey: "sk", Secret: "{env.RECAPTCHA_SECRET}", VerifyURL: "https://captcha.internal/siteverify", MinScore: 0.5}}, nil},
		{"captcha turnstile for two sites", []string{"captcha turnstile {", "site_key sk", "secret s", "hostnames example.com www.example.com", "}"},
			CaptchaOptions{Captcha: &CaptchaConfig{Type: "turnstile", SiteKey: "sk", Secret: "s", Hostnames: []string{"example.com", "www.example.com"}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := cfParse(cfWith(tc.lines...))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h.CaptchaOptions, tc.want) {
				t.Errorf("CaptchaOptions %+v (captcha %+v), want %+v", h.CaptchaOptions, h.Captcha, tc.want)
			}
			if tc.limit != nil && (h.Limits == nil || h.Limits.Device == nil || *h.Limits.Device != *tc.limit) {
				t.Errorf("limits device: %+v, want %d", h.Limits, *tc.limit)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		lines []string
		at    string
		words []string
	}{
		{"a captcha kind it doesn't know", []string{"captcha_when risky", "captcha friendly"}, "Testfile:5", []string{`captcha "friendly"`, "expected pow, turnstile, hcaptcha or recaptcha"}},
		{"a difficulty too hard for a phone", []string{"captcha pow {", "difficulty 30", "}"}, "Testfile:5", []string{"captcha difficulty 30", "expected a whole number of bits from 1 to 20"}},
		{"a difficulty that is not a number", []string{"captcha pow {", "difficulty hard", "}"}, "Testfile:5", []string{`captcha difficulty "hard"`}},
		{"captcha_when with a word it doesn't know", []string{"captcha", "captcha_when sometimes"}, "Testfile:5", []string{`captcha_when "sometimes"`, "expected always, risky or never"}},
		{"captcha_when risky without a captcha", []string{"captcha_when risky"}, "Testfile:4", []string{"expected a captcha too"}},
		{"a provider without its secret", []string{"captcha hcaptcha {", "site_key sk", "}"}, "Testfile:4", []string{"captcha hcaptcha: expected site_key and secret"}},
		{"min_score on turnstile", []string{"captcha turnstile {", "site_key sk", "secret s", "min_score 0.5", "}"}, "Testfile:7", []string{"captcha min_score 0.5", "recaptcha (v3) only"}},
		{"hostnames with a scheme", []string{"captcha turnstile {", "site_key sk", "secret s", "hostnames https://example.com", "}"}, "Testfile:7", []string{`captcha hostnames "https://example.com"`, "without scheme, port or path"}},
		{"hostnames * with a name", []string{"captcha turnstile {", "site_key sk", "secret s", "hostnames * example.com", "}"}, "Testfile:7", []string{"expected * alone"}},
		{"hostnames with nothing", []string{"captcha turnstile {", "site_key sk", "secret s", "hostnames", "}"}, "Testfile:7", []string{"captcha hostnames: expected one or more host names"}},
		{"a verify_url that is not a URL", []string{"captcha turnstile {", "site_key sk", "secret s", "verify_url ftp.example", "}"}, "Testfile:7", []string{`captcha verify_url "ftp.example"`, "expected an https:// URL"}},
		{"a negative device limit", []string{"limits {", "device -1", "}"}, "Testfile:5", []string{"limits.device -1", "expected a whole number from 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := cfParse(cfWith(tc.lines...))
			if err == nil {
				t.Fatal("accepted, want an error")
			}
			msg := err.Error()
			if !strings.HasSuffix(msg, ", at "+tc.at) {
				t.Errorf("error %q does not end with %q", msg, tc.at)
			}
			for _, w := range tc.words {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
}
