package otp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func TestComposeSMS(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		locale   string
		ttl      time.Duration
		host     string
		contains []string
		lastLine string
	}{
		{"an English message names the service, code and minutes", "en", 5 * time.Minute, "",
			[]string{"Example code: 123456", "5 min", "Never share"}, "It expires in 5 min. Never share this code with anyone."},
		{"a Japanese message names the service, code and minutes", "ja", 5 * time.Minute, "",
			[]string{"Exampleの確認コード: 123456", "5分以内", "誰にも教えないで"}, "5分以内に入力してください。このコードは誰にも教えないでください。"},
		{"an unknown locale falls back to English", "fr", 5 * time.Minute, "",
			[]string{"Example code: 123456"}, "It expires in 5 min. Never share this code with anyone."},
		{"a part minute rounds up", "en", 90 * time.Second, "",
			[]string{"2 min"}, "It expires in 2 min. Never share this code with anyone."},
		{"an English message ends with the WebOTP line", "en", 10 * time.Minute, "example.com",
			[]string{"Example code: 123456", "10 min"}, "@example.com #123456"},
		{"a Japanese message ends with the WebOTP line", "ja", 10 * time.Minute, "example.com",
			[]string{"123456", "10分"}, "@example.com #123456"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := otp.ComposeSMS(tc.locale, "Example", "123456", tc.ttl, tc.host)
			for _, s := range tc.contains {
				if !strings.Contains(body, s) {
					t.Errorf("message lacks %q:\n%s", s, body)
				}
			}
			lines := strings.Split(body, "\n")
			if last := lines[len(lines)-1]; last != tc.lastLine {
				t.Errorf("last line %q, want %q", last, tc.lastLine)
			}
			if tc.host != "" && lines[len(lines)-2] != "" {
				t.Errorf("the WebOTP line does not follow a blank line:\n%s", body)
			}
			if tc.host == "" && strings.Contains(body, "@") {
				t.Errorf("a WebOTP line without a host:\n%s", body)
			}
		})
	}
}
