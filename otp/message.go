package otp

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode/utf16"
)

// Locales with message and page translations. The first is the fallback.
var Locales = []string{"en", "ja"}

// DefaultMessages are the SMS texts: the service, the code, what it
// confirms when the route names an action (a code that says what it
// authorises is harder to phish), how long it lives, and the warning not to
// share it. Without an action each fits one SMS segment with a ten-digit
// code and a short service name (GSM-7 160, UCS-2 70); with one, the
// action's length is checked at config load (CheckSegments).
var DefaultMessages = map[string]string{
	"en": "{{if .Action}}{{.Service}}: {{.Code}} is your code to {{.Action}}{{else}}{{.Service}} code: {{.Code}}{{end}}\nIt expires in {{.Minutes}} min. Never share it with anyone.",
	"ja": "{{.Service}} {{if .Action}}{{.Action}}の{{end}}確認コード: {{.Code}}（{{.Minutes}}分有効）\n誰にも教えないでください。",
}

// voiceText is what a call says; the gateway reads the digits one by one.
var voiceText = map[string]string{
	"en": "This is %s. Your verification code is %s. Again, your code is %s.",
	"ja": "%sです。確認コードは %s です。もう一度繰り返します。%s です。",
}

// ComposeVoice returns what a voice call says in locale.
func (m *Messages) ComposeVoice(locale, service, code string) string {
	f, ok := voiceText[locale]
	if !ok {
		f = voiceText[Locales[0]]
	}
	return fmt.Sprintf(f, service, code, code)
}

// MessageData fills a message template.
type MessageData struct {
	Service string
	Code    string
	Minutes int
	// Action is what the code confirms, in the message's language ("change
	// your payout account"), or "" when the route names none.
	Action string
}

// Messages renders the SMS text per locale.
type Messages struct {
	tmpl       map[string]*template.Template
	webOTPHost string
}

// MessagesConfig configures Messages.
type MessagesConfig struct {
	// Templates by locale (text/template with .Service, .Code, .Minutes,
	// .Action);
	// missing locales take DefaultMessages.
	Templates map[string]string
	// WebOTPHost, when set, adds a last line "@host #code" so browsers that
	// support WebOTP fill the code in. It comes from configuration, never
	// from a request's Host header.
	WebOTPHost string
}

// sentinelCode proves a template shows the code.
const sentinelCode = "9081726354"

// NewMessages parses the templates and checks each one shows the code.
func NewMessages(cfg MessagesConfig) (*Messages, error) {
	m := &Messages{tmpl: make(map[string]*template.Template), webOTPHost: cfg.WebOTPHost}
	if h := cfg.WebOTPHost; h != "" && (strings.ContainsAny(h, " /#@\n") || strings.Contains(h, "://")) {
		return nil, fmt.Errorf("webotp_host %q: expected a bare host name such as app.example.com", h)
	}
	for _, locale := range Locales {
		src, ok := cfg.Templates[locale]
		if !ok {
			src = DefaultMessages[locale]
		}
		t, err := template.New("message " + locale).Option("missingkey=error").Parse(src)
		if err != nil {
			return nil, fmt.Errorf("message template %s: %w", locale, err)
		}
		m.tmpl[locale] = t
		body, err := m.render(locale, MessageData{Service: "S", Code: sentinelCode, Minutes: 5})
		if err != nil {
			return nil, err
		}
		if !strings.Contains(body, sentinelCode) {
			return nil, fmt.Errorf("message template %s: it must show the code ({{.Code}})", locale)
		}
	}
	for locale := range cfg.Templates {
		if m.tmpl[locale] == nil {
			return nil, fmt.Errorf("message template %q: no such locale, expected one of %s", locale, strings.Join(Locales, ", "))
		}
	}
	return m, nil
}

// Compose returns the message for locale (English when unknown); action is
// what the code confirms, in that locale, or "".
func (m *Messages) Compose(locale, service, code string, ttl time.Duration, action string) (string, error) {
	if m.tmpl[locale] == nil {
		locale = Locales[0]
	}
	return m.render(locale, MessageData{Service: service, Code: code, Minutes: int((ttl + time.Minute - 1) / time.Minute), Action: action})
}

func (m *Messages) render(locale string, d MessageData) (string, error) {
	var b bytes.Buffer
	if err := m.tmpl[locale].Execute(&b, d); err != nil {
		return "", fmt.Errorf("message template %s: %w", locale, err)
	}
	if m.webOTPHost != "" {
		b.WriteString("\n\n@" + m.webOTPHost + " #" + d.Code)
	}
	return b.String(), nil
}

// Action is what a code confirms, one text per locale ("en", "ja").
type Action map[string]string

// CheckSegments renders every locale with the longest values it can get
// (a code of codeLength digits, the longest lifetime), with no action and
// with each of actions, and refuses a message that would take more than
// maxSegments SMS.
func (m *Messages) CheckSegments(service string, codeLength int, ttl time.Duration, maxSegments int, actions ...Action) error {
	for _, locale := range Locales {
		if err := m.checkSegments(locale, service, codeLength, ttl, maxSegments, ""); err != nil {
			return err
		}
		for _, a := range actions {
			if err := m.checkSegments(locale, service, codeLength, ttl, maxSegments, a[locale]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *Messages) checkSegments(locale, service string, codeLength int, ttl time.Duration, maxSegments int, action string) error {
	body, err := m.Compose(locale, service, strings.Repeat("0", codeLength), ttl, action)
	if err != nil {
		return err
	}
	enc, units, n := Segments(body)
	if n <= maxSegments {
		return nil
	}
	if action != "" {
		return fmt.Errorf("message %s with action %q is %d %s characters, %d SMS segments, more than max_segments %d: shorten the action (or the template, service_name or webotp_host), or raise max_segments",
			locale, action, units, enc, n, maxSegments)
	}
	return fmt.Errorf("message %s is %d %s characters, %d SMS segments, more than max_segments %d: shorten the template, service_name or webotp_host, or raise max_segments",
		locale, units, enc, n, maxSegments)
}

// gsm7Basic and gsm7Extension are the GSM 03.38 default alphabet and its
// extension table (whose characters take two septets).
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Extension = "\f^{}\\[~]|€"
)

// IsGSM7 reports whether s can be sent in the GSM 7-bit alphabet.
func IsGSM7(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune(gsm7Basic, r) && !strings.ContainsRune(gsm7Extension, r) {
			return false
		}
	}
	return true
}

// Segments returns the encoding a message needs ("GSM-7" or "UCS-2"), its
// length in that encoding's units (septets or UTF-16 code units) and how many
// SMS segments it takes: one up to 160 septets or 70 units, else parts of 153
// or 67.
func Segments(s string) (encoding string, units, segments int) {
	if IsGSM7(s) {
		for _, r := range s {
			units++
			if strings.ContainsRune(gsm7Extension, r) {
				units++
			}
		}
		return "GSM-7", units, parts(units, 160, 153)
	}
	units = len(utf16.Encode([]rune(s)))
	return "UCS-2", units, parts(units, 70, 67)
}

func parts(units, single, multi int) int {
	if units <= single {
		return 1
	}
	return (units + multi - 1) / multi
}
