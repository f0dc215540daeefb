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
			[]string{"Example code: 123456", "5 min", "Never share"}, "It expires in 5 min. Never share it with anyone."},
		{"a Japanese message names the service, code and minutes", "ja", 5 * time.Minute, "",
			[]string{"Example 確認コード: 123456", "5分有効", "誰にも教えないで"}, "誰にも教えないでください。"},
		{"an unknown locale falls back to English", "fr", 5 * time.Minute, "",
			[]string{"Example code: 123456"}, "It expires in 5 min. Never share it with anyone."},
		{"a part minute rounds up", "en", 90 * time.Second, "",
			[]string{"2 min"}, "It expires in 2 min. Never share it with anyone."},
		{"an English message ends with the WebOTP line", "en", 10 * time.Minute, "example.com",
			[]string{"Example code: 123456", "10 min"}, "@example.com #123456"},
		{"a Japanese message ends with the WebOTP line", "ja", 10 * time.Minute, "example.com",
			[]string{"123456", "10分"}, "@example.com #123456"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := otp.NewMessages(otp.MessagesConfig{WebOTPHost: tc.host})
			if err != nil {
				t.Fatal(err)
			}
			body, err := m.Compose(tc.locale, "Example", "123456", tc.ttl, "")
			if err != nil {
				t.Fatal(err)
			}
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

func TestMessageTemplates(t *testing.T) {
	t.Parallel()
	t.Run("an operator's template replaces the default for its locale", func(t *testing.T) {
		m, err := otp.NewMessages(otp.MessagesConfig{Templates: map[string]string{"en": "{{.Code}} is your {{.Service}} code"}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := m.Compose("en", "Acme", "654321", 5*time.Minute, "")
		if body != "654321 is your Acme code" {
			t.Errorf("got %q", body)
		}
		if body, _ := m.Compose("ja", "Acme", "654321", 5*time.Minute, ""); !strings.Contains(body, "確認コード") {
			t.Errorf("the Japanese default was lost: %q", body)
		}
	})
	for _, tc := range []struct{ name, tmpl, err string }{
		{"a template without the code is refused", "Hello from {{.Service}}", "must show the code"},
		{"a template that does not parse is refused with its locale", "{{.Code", "message template en"},
		{"a template naming an unknown field is refused", "{{.Code}} {{.Phone}}", "message template en"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := otp.NewMessages(otp.MessagesConfig{Templates: map[string]string{"en": tc.tmpl}})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
	t.Run("a template for an unknown locale is refused", func(t *testing.T) {
		if _, err := otp.NewMessages(otp.MessagesConfig{Templates: map[string]string{"fr": "{{.Code}}"}}); err == nil {
			t.Fatal("accepted a French template")
		}
	})
	t.Run("a WebOTP host with a scheme or path is refused", func(t *testing.T) {
		for _, h := range []string{"https://example.com", "example.com/x", "a b"} {
			if _, err := otp.NewMessages(otp.MessagesConfig{WebOTPHost: h}); err == nil {
				t.Errorf("accepted %q", h)
			}
		}
	})
}

func TestSegments(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		text     string
		enc      string
		units    int
		segments int
	}{
		{"160 plain characters are one GSM-7 segment", strings.Repeat("a", 160), "GSM-7", 160, 1},
		{"161 plain characters are two segments of 153", strings.Repeat("a", 161), "GSM-7", 161, 2},
		{"306 plain characters still fit two segments", strings.Repeat("a", 306), "GSM-7", 306, 2},
		{"extension characters take two septets each", strings.Repeat("€", 80), "GSM-7", 160, 1},
		{"one extension character too many makes two segments", "a" + strings.Repeat("€", 80), "GSM-7", 161, 2},
		{"any Japanese makes the message UCS-2: 70 fit one segment", strings.Repeat("あ", 70), "UCS-2", 70, 1},
		{"71 UCS-2 characters are two segments of 67", strings.Repeat("あ", 71), "UCS-2", 71, 2},
		{"a character outside the BMP counts as two units", strings.Repeat("あ", 69) + "😀", "UCS-2", 71, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			enc, units, n := otp.Segments(tc.text)
			if enc != tc.enc || units != tc.units || n != tc.segments {
				t.Errorf("got %s %d units %d segments, want %s %d %d", enc, units, n, tc.enc, tc.units, tc.segments)
			}
		})
	}
}

func TestCheckSegments(t *testing.T) {
	t.Parallel()
	t.Run("the default messages fit one segment with a ten-digit code and a usual service name", func(t *testing.T) {
		m, _ := otp.NewMessages(otp.MessagesConfig{})
		if err := m.CheckSegments("Example Corp", 10, 10*time.Minute, 1); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a Japanese message that can reach 71 characters is refused with its numbers", func(t *testing.T) {
		m, _ := otp.NewMessages(otp.MessagesConfig{Templates: map[string]string{"ja": strings.Repeat("あ", 61) + "{{.Code}}"}})
		err := m.CheckSegments("S", 10, 5*time.Minute, 1)
		if err == nil || !strings.Contains(err.Error(), "message ja is 71 UCS-2 characters, 2 SMS segments") {
			t.Fatalf("error %v", err)
		}
		if err := m.CheckSegments("S", 9, 5*time.Minute, 1); err != nil {
			t.Fatalf("a nine-digit code fits 70: %v", err)
		}
		if err := m.CheckSegments("S", 10, 5*time.Minute, 2); err != nil {
			t.Fatalf("two segments were allowed: %v", err)
		}
	})
	t.Run("the WebOTP line counts", func(t *testing.T) {
		m, _ := otp.NewMessages(otp.MessagesConfig{WebOTPHost: "app.example.com"})
		if err := m.CheckSegments("Example Corp", 10, 10*time.Minute, 1); err == nil {
			t.Fatal("the Japanese default with a WebOTP line should not fit one UCS-2 segment")
		}
	})
}

func TestMessageAction(t *testing.T) {
	t.Parallel()
	m, err := otp.NewMessages(otp.MessagesConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the English default names the action after the code", func(t *testing.T) {
		body, _ := m.Compose("en", "Example Corp", "429018", 5*time.Minute, "change your payout account")
		if want := "Example Corp: 429018 is your code to change your payout account\nIt expires in 5 min. Never share it with anyone."; body != want {
			t.Errorf("got %q, want %q", body, want)
		}
	})
	t.Run("the Japanese default names the action before the code", func(t *testing.T) {
		body, _ := m.Compose("ja", "Example Corp", "429018", 5*time.Minute, "振込先の変更")
		if want := "Example Corp 振込先の変更の確認コード: 429018（5分有効）\n誰にも教えないでください。"; body != want {
			t.Errorf("got %q, want %q", body, want)
		}
	})
	t.Run("a usual action fits one segment in both languages with a ten-digit code", func(t *testing.T) {
		a := otp.Action{"en": "change your payout account", "ja": "振込先の変更"}
		if err := m.CheckSegments("Example Corp", 10, 10*time.Minute, 1, a); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a Japanese action that pushes the SMS past 70 characters is refused, named", func(t *testing.T) {
		a := otp.Action{"en": "change your payout account", "ja": strings.Repeat("振込先", 7)}
		err := m.CheckSegments("Example Corp", 10, 10*time.Minute, 1, a)
		if err == nil || !strings.Contains(err.Error(), "message ja with action \"振込先振込先") || !strings.Contains(err.Error(), "shorten the action") {
			t.Fatalf("error %v", err)
		}
	})
}
