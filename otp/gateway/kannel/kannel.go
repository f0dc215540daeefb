// Package kannel sends SMS through Kannel (https://www.kannel.org), the
// open-source SMS gateway: one GET to smsbox's sendsms interface per message,
// and, when asked, delivery reports that Kannel calls back at dlr-url.
//
// Kannel answers 202 once bearerbox has queued the message; what the SMSC
// did with it comes later as a delivery report of type 1 (delivered), 2
// (failed), 4 (buffered), 8 (accepted by the SMSC) or 16 (rejected by the
// SMSC).
package kannel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/httpsend"
)

// DefaultName is the gateway's name in receipts, errors and receipt URLs.
const DefaultName = "kannel"

// dlrMask asks for every report Kannel has: delivered (1), failed (2),
// buffered (4), SMSC accepted (8) and SMSC rejected (16).
const dlrMask = "31"

// Config is a Kannel sendsms account.
type Config struct {
	// URL is smsbox's sendsms address, such as
	// http://127.0.0.1:13013/cgi-bin/sendsms.
	URL string
	// Username and Password are a sendsms-user group's.
	Username string
	Password string
	// From is the sender shown on the phone; empty leaves it to Kannel
	// (the sendsms-user's default-sender, or global-sender).
	From string
	// DLR asks Kannel for delivery reports when a message carries a receipt
	// URL.
	DLR bool
	// Timeout bounds one exchange with Kannel; 0 means 10 s.
	Timeout time.Duration
	// Name names the gateway in receipts and receipt URLs; default "kannel".
	Name string
}

// Gateway sends SMS through one Kannel sendsms account.
type Gateway struct {
	name     string
	endpoint *url.URL
	username string
	password string
	from     string
	dlr      bool
	client   *http.Client
}

// New checks cfg and returns a gateway; it does not contact Kannel.
func New(cfg Config) (*Gateway, error) {
	name := cfg.Name
	if name == "" {
		name = DefaultName
	}
	if !isToken(name) {
		return nil, fmt.Errorf("kannel: name %q: use letters, digits, '-' and '_' only (it is part of the receipt URL)", name)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("kannel: url %q: expected smsbox's sendsms address, such as http://127.0.0.1:13013/cgi-bin/sendsms", cfg.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, errors.New("kannel: url: give username, password and from as options, not in the URL")
	}
	if cfg.Username == "" {
		return nil, errors.New("kannel: username is required (the sendsms-user group's username)")
	}
	if cfg.Password == "" {
		return nil, errors.New("kannel: password is required (the sendsms-user group's password)")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("kannel: timeout %s: expected a positive duration", cfg.Timeout)
	}
	return &Gateway{
		name:     name,
		endpoint: u,
		username: cfg.Username,
		password: cfg.Password,
		from:     cfg.From,
		dlr:      cfg.DLR,
		client:   httpsend.NewClient(cfg.Timeout),
	}, nil
}

// Name is the gateway's name in receipts and receipt URLs.
func (g *Gateway) Name() string { return g.name }

// Send asks Kannel to send m once. A body outside the GSM 7-bit alphabet
// (any Japanese, for one) goes as UCS-2. The error is always a
// *otp.GatewayError and never contains the password or the text.
func (g *Gateway) Send(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	if !isE164(m.To) {
		return otp.Receipt{}, g.fail(otp.Rejected, "invalid_number", errors.New("destination is not an E.164 number"))
	}
	q := url.Values{}
	q.Set("username", g.username)
	q.Set("password", g.password)
	if g.from != "" {
		q.Set("from", g.from)
	}
	q.Set("to", m.To)
	q.Set("text", m.Body)
	if !isGSM7(m.Body) {
		q.Set("coding", "2")
		q.Set("charset", "UTF-8")
	}
	if receipts := m.ReceiptURL(g.name); receipts != "" && g.dlr {
		q.Set("dlr-mask", dlrMask)
		q.Set("dlr-url", dlrURL(receipts))
	}
	u := *g.endpoint
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		// The error would quote the URL, secrets included.
		return otp.Receipt{}, g.fail(otp.NotSent, "unreachable", errors.New("could not build the sendsms request"))
	}
	// httpsend's errors name the host only, never the query.
	resp, err := httpsend.Do(g.client, req, g.name)
	if err != nil {
		return otp.Receipt{}, err
	}
	status := resp.StatusCode
	body, err := httpsend.ReadBody(resp)
	if err != nil {
		// Kannel answered but the answer broke off: it may have queued.
		return otp.Receipt{}, g.fail(otp.Unknown, "no_answer", fmt.Errorf("answer %d cut short: %w", status, err))
	}
	return g.classify(status, body, m.Body)
}

// classify reads Kannel's answer. Kannel's own answers (smsbox 1.4):
// 202 "0: Accepted for delivery" or "3: Queued for later delivery" (or
// "Sent." with immediate-sendsms-reply), 403 "Authorization failed for
// sendsms" or "Not routable. Do not try again.", 400 for a request it
// refused (receiver missing or denied, a field misformed), 500 "Sending
// failed." and 503 "Temporal failure, try again later.": none of the refusals
// queued the message.
func (g *Gateway) classify(status int, body []byte, text string) (otp.Receipt, error) {
	answer := strings.TrimSpace(string(body))
	detail := fmt.Errorf("answer %d %s", status, g.snippet(answer, text))
	switch {
	case status == http.StatusOK || status == http.StatusAccepted:
		if strings.HasPrefix(answer, "0: Accepted") || strings.HasPrefix(answer, "3: Queued") || strings.HasPrefix(answer, "Sent.") {
			return otp.Receipt{Gateway: g.name, Status: otp.DeliveryQueued}, nil
		}
		// Something answered success in words Kannel does not use (a
		// proxy, a wrong URL): the message may or may not be queued.
		return otp.Receipt{}, g.fail(otp.Unknown, "server_error", detail)
	case status == http.StatusForbidden:
		if strings.Contains(answer, "Not routable") {
			return otp.Receipt{}, g.fail(otp.NotSent, "rejected", detail)
		}
		return otp.Receipt{}, g.fail(otp.NotSent, "auth", detail)
	case status == http.StatusBadRequest:
		if numberRefused(answer) {
			return otp.Receipt{}, g.fail(otp.Rejected, "invalid_number", detail)
		}
		// A misformed field is this gateway's problem, not the number's:
		// another gateway may well send it.
		return otp.Receipt{}, g.fail(otp.NotSent, "rejected", detail)
	case status == http.StatusTooManyRequests:
		return otp.Receipt{}, g.fail(otp.NotSent, "rate_limited", detail)
	case status == http.StatusBadGateway || status == http.StatusGatewayTimeout:
		// Kannel never says these; a proxy in front of it does when Kannel
		// did not answer in time, and Kannel may have queued the message.
		return otp.Receipt{}, g.fail(otp.Unknown, "no_answer", detail)
	case status >= 500:
		return otp.Receipt{}, g.fail(otp.NotSent, "server_error", detail)
	case status >= 300 && status < 400:
		return otp.Receipt{}, g.fail(otp.NotSent, "rejected", fmt.Errorf("%w: redirects are not followed; set url to smsbox's sendsms address", detail))
	}
	return otp.Receipt{}, g.fail(otp.NotSent, "rejected", detail)
}

// numberRefused tells Kannel's answers about the destination from those
// about the rest of the request.
func numberRefused(answer string) bool {
	a := strings.ToLower(answer)
	return strings.Contains(a, "invalid") || strings.Contains(a, "receiver") ||
		strings.Contains(a, "denied by white- and/or black-lists")
}

// Capabilities implements otp.CapabilityReporter: delivery reports when
// the gateway asks Kannel for them (DLR), and a health check.
func (g *Gateway) Capabilities() otp.Capabilities {
	c := otp.Capabilities{Health: g}
	if g.dlr {
		c.Receipts = map[string]otp.ReceiptParser{g.name: g}
	}
	return c
}

// ParseReceipt reads a delivery report. Kannel calls dlr-url with GET and
// the report type in the query (type=%d); the token in the path is checked
// by the caller.
func (g *Gateway) ParseReceipt(r *http.Request, _ string) (otp.Receipt, error) {
	if r.Method != http.MethodGet {
		return otp.Receipt{}, fmt.Errorf("kannel receipt: method %s: Kannel reports with GET", r.Method)
	}
	types := r.URL.Query()["type"]
	if len(types) != 1 {
		return otp.Receipt{}, fmt.Errorf("kannel receipt: expected one type parameter, got %d", len(types))
	}
	var status otp.DeliveryStatus
	switch types[0] {
	case "1":
		status = otp.DeliveryDelivered
	case "2", "16":
		status = otp.DeliveryFailed
	case "4":
		status = otp.DeliveryQueued
	case "8":
		status = otp.DeliverySent
	default:
		return otp.Receipt{}, fmt.Errorf("kannel receipt: unknown type %q: expected 1, 2, 4, 8 or 16", types[0])
	}
	return otp.Receipt{Gateway: g.name, Status: status}, nil
}

// dlrURL is the receipt URL as Kannel wants it: Kannel expands %-escapes in
// dlr-url (%d becomes the report type), so a literal % is written %%.
func dlrURL(receipts string) string {
	sep := "?"
	if strings.Contains(receipts, "?") {
		sep = "&"
	}
	return strings.ReplaceAll(receipts, "%", "%%") + sep + "type=%d"
}

func (g *Gateway) fail(kind otp.ErrorKind, reason string, err error) *otp.GatewayError {
	return &otp.GatewayError{Gateway: g.name, Kind: kind, Reason: reason, Err: err}
}

// snippet quotes the first line of an answer for an error message, unless
// it echoes the password or the message: a server that repeats the request
// must not put the code into logs.
func (g *Gateway) snippet(answer, text string) string {
	if answer == "" {
		return "(empty)"
	}
	line, _, _ := strings.Cut(answer, "\n")
	line = strings.TrimSpace(line)
	const limit = 120
	if len(line) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut] + "..."
	}
	if echoes(answer, g.password) || echoes(answer, text) {
		return "(answer withheld: it repeats the request)"
	}
	for _, digits := range digitRuns(text, 4) {
		if strings.Contains(answer, digits) {
			return "(answer withheld: it repeats the request)"
		}
	}
	return strconv.Quote(line)
}

// echoes reports whether answer contains s as sent or URL-encoded.
func echoes(answer, s string) bool {
	if s == "" {
		return false
	}
	for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
		if strings.Contains(answer, form) {
			return true
		}
	}
	return false
}

// digitRuns returns the runs of at least minLen ASCII digits in s: the code
// in an SMS body.
func digitRuns(s string, minLen int) []string {
	var runs []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && i-start >= minLen {
			runs = append(runs, s[start:i])
		}
		start = -1
	}
	return runs
}

// isE164 reports whether s is "+" and 2 to 15 digits, the first not 0.
func isE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isToken(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return s != ""
}

// gsm7 is the GSM 03.38 default alphabet and its extension table (the
// extension characters cost two septets each, but need no UCS-2).
var gsm7 = func() map[rune]bool {
	const basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	const extension = "\f^{}\\[~]|€"
	set := make(map[rune]bool, len(basic)+len(extension))
	for _, r := range basic + extension {
		set[r] = true
	}
	return set
}()

// isGSM7 reports whether s can go as a GSM 7-bit SMS; otherwise it needs
// UCS-2.
func isGSM7(s string) bool {
	for _, r := range s {
		if !gsm7[r] {
			return false
		}
	}
	return true
}

var (
	_ otp.Gateway            = (*Gateway)(nil)
	_ otp.ReceiptParser      = (*Gateway)(nil)
	_ otp.CapabilityReporter = (*Gateway)(nil)
)
