// Package twilio sends codes through Twilio's Programmable Messaging API and
// reads them out through its Voice API. It takes Twilio's signed status
// callbacks as delivery receipts.
//
// It never logs, and never puts into an error, the auth token or a
// message's text.
package twilio

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/httpsend"
)

// DefaultBaseURL is Twilio's REST API.
const DefaultBaseURL = "https://api.twilio.com"

// SignatureHeader carries Twilio's signature of a status callback.
const SignatureHeader = "X-Twilio-Signature"

// Config configures a Gateway.
type Config struct {
	// AccountSID ("AC...") and AuthToken authenticate every request; the
	// token also signs status callbacks.
	AccountSID string
	AuthToken  string
	// Exactly one of From (a Twilio number or sender id) and
	// MessagingServiceSID ("MG...") names the sender. Calls need From.
	From                string
	MessagingServiceSID string
	// BaseURL replaces https://api.twilio.com, for tests or a regional edge.
	// Plain http is allowed only to a loopback host.
	BaseURL string
	// Timeout bounds one request. Default: 10s.
	Timeout time.Duration
	// StatusCallback asks Twilio for delivery reports when the message has a
	// receipt URL.
	StatusCallback bool
	// Name names the gateway in receipts, errors and its receipt URL.
	// Default: "twilio".
	Name string
}

// Gateway is a Twilio account: it sends SMS, and by its Capabilities places
// calls (with a From number) and takes status callbacks (when it asks for
// them).
type Gateway struct {
	cfg    Config
	base   string
	client *http.Client
}

// New checks cfg and returns its gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.Name == "" {
		cfg.Name = "twilio"
	}
	if !strings.HasPrefix(cfg.AccountSID, "AC") || strings.ContainsAny(cfg.AccountSID, "/?#% ") {
		return nil, errors.New("twilio: the account SID must start with AC (find it on the Twilio console's dashboard)")
	}
	if cfg.AuthToken == "" {
		return nil, errors.New("twilio: no auth token (find it next to the account SID on the Twilio console)")
	}
	if (cfg.From == "") == (cfg.MessagingServiceSID == "") {
		return nil, errors.New("twilio: set exactly one of from (a Twilio number) and messaging_service_sid")
	}
	if cfg.MessagingServiceSID != "" && !strings.HasPrefix(cfg.MessagingServiceSID, "MG") {
		return nil, errors.New("twilio: the messaging service SID must start with MG")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("twilio: base URL %q: expected an absolute URL such as %s", base, DefaultBaseURL)
	}
	// The auth token travels in every request: never in clear over a
	// network, only to a local test server.
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("twilio: base URL %q: expected https (plain http only to a loopback host, for tests)", base)
	}
	return &Gateway{cfg: cfg, base: strings.TrimRight(base, "/"), client: httpsend.NewClient(cfg.Timeout)}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send implements otp.Gateway: one POST to Messages.json.
func (g *Gateway) Send(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	form := url.Values{"To": {m.To}, "Body": {m.Body}}
	if g.cfg.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", g.cfg.MessagingServiceSID)
	} else {
		form.Set("From", g.cfg.From)
	}
	if cb := m.ReceiptURL(g.cfg.Name); g.cfg.StatusCallback && cb != "" {
		form.Set("StatusCallback", cb)
	}
	return g.post(ctx, "Messages.json", form)
}

// Capabilities implements otp.CapabilityReporter. Calls need a From number
// (a messaging service cannot place them), and status callbacks come only
// when the gateway asks for them.
func (g *Gateway) Capabilities() otp.Capabilities {
	c := otp.Capabilities{Health: g}
	if g.cfg.From != "" {
		c.Voice = g
	}
	if g.cfg.StatusCallback {
		c.Receipts = map[string]otp.ReceiptParser{g.cfg.Name: g}
	}
	return c
}

// Call implements otp.Caller: one POST to Calls.json whose TwiML reads
// m.Body out twice, the code digit by digit. Calls need a From number: a
// messaging service cannot place them.
func (g *Gateway) Call(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	if g.cfg.From == "" {
		return otp.Receipt{}, &otp.GatewayError{Gateway: g.cfg.Name, Kind: otp.NotSent, Reason: "unsupported",
			Err: errors.New("no From number for calls: a messaging service cannot place calls; configure from")}
	}
	form := url.Values{"To": {m.To}, "From": {g.cfg.From}, "Twiml": {TwiML(m.Body, m.Locale)}}
	return g.post(ctx, "Calls.json", form)
}

// webOTPLine is the "@host #code" line of an SMS, for browsers; it means
// nothing when spoken.
var webOTPLine = regexp.MustCompile(`(?m)^@\S+ #\d+$`)

// digitRun is a code: runs of 4 or more digits are read one by one, shorter
// ones ("5 min") as numbers.
var digitRun = regexp.MustCompile(`\d{4,}`)

// TwiML is the voice document that says text twice in locale's voice, with
// every code's digits apart ("1, 2, 3, 4, 5, 6") so they are read one by
// one, and without the WebOTP line.
func TwiML(text, locale string) string {
	language, sep := "en-US", ", "
	if locale == "ja" {
		language, sep = "ja-JP", "、"
	}
	text = strings.TrimSpace(webOTPLine.ReplaceAllString(text, ""))
	text = digitRun.ReplaceAllStringFunc(text, func(d string) string {
		return strings.Join(strings.Split(d, ""), sep)
	})
	text = strings.Join(strings.Fields(text), " ")
	var b strings.Builder
	b.WriteString(`<Response><Say language="` + language + `" loop="2">`)
	// EscapeText only fails when its writer does; a strings.Builder doesn't.
	_ = xml.EscapeText(&b, []byte(text))
	b.WriteString(`</Say></Response>`)
	return b.String()
}

// created is Twilio's answer to a successful POST.
type created struct {
	SID    string `json:"sid"`
	Status string `json:"status"`
}

// apiError is Twilio's error answer.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (g *Gateway) post(ctx context.Context, resource string, form url.Values) (otp.Receipt, error) {
	endpoint := g.base + "/2010-04-01/Accounts/" + url.PathEscape(g.cfg.AccountSID) + "/" + resource
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return otp.Receipt{}, &otp.GatewayError{Gateway: g.cfg.Name, Kind: otp.NotSent, Reason: "config", Err: err}
	}
	req.SetBasicAuth(g.cfg.AccountSID, g.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := httpsend.Do(g.client, req, g.cfg.Name)
	if err != nil {
		return otp.Receipt{}, err
	}
	answer, readErr := httpsend.ReadBody(resp)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Twilio took the message; an unreadable answer only costs its id.
		var c created
		if readErr == nil {
			_ = json.Unmarshal(answer, &c)
		}
		return otp.Receipt{Gateway: g.cfg.Name, ID: c.SID, Status: messageStatus(c.Status)}, nil
	}
	var e apiError
	if readErr == nil {
		_ = json.Unmarshal(answer, &e)
	}
	return otp.Receipt{}, g.classify(resp.StatusCode, e)
}

// classify maps Twilio's error answer to what it means for the message.
//
// Every 5xx is Unknown. Twilio's page for error 20500 says a non-idempotent
// POST such as sending an SMS, retried after a 500, can reach the customer
// twice, so a 500 may come after acceptance. Twilio documents no status,
// 503 included, as a promise that the message was not taken, and a 502 or
// 504 from its edge can follow a request the API did process. So a 5xx
// stops the failover rather than risk a second SMS (SECURITY.md rule 25).
func (g *Gateway) classify(status int, e apiError) *otp.GatewayError {
	ge := &otp.GatewayError{Gateway: g.cfg.Name}
	if e.Code != 0 {
		ge.Code = strconv.Itoa(e.Code)
	}
	switch {
	case e.Code == 21211 || e.Code == 21614:
		ge.Kind, ge.Reason = otp.Rejected, "invalid_number"
	case e.Code == 21610:
		ge.Kind, ge.Reason = otp.Rejected, "unsubscribed"
	case status == http.StatusTooManyRequests || e.Code == 20429:
		ge.Kind, ge.Reason = otp.NotSent, "rate_limited"
	case status == http.StatusUnauthorized || e.Code == 20003:
		ge.Kind, ge.Reason = otp.NotSent, "auth"
	case status >= 400 && status < 500:
		ge.Kind, ge.Reason = otp.Rejected, "rejected"
	default:
		// 5xx, and the 1xx or 3xx Twilio never documents: the message may
		// have been taken.
		ge.Kind, ge.Reason = otp.Unknown, "server_error"
	}
	msg := fmt.Sprintf("HTTP %d", status)
	if e.Message != "" {
		msg += ": " + redact(e.Message)
	}
	ge.Err = errors.New(msg)
	return ge
}

// numberLike is a phone number or a code inside Twilio's error message
// ("The 'To' number +8190... is not a valid phone number.").
var numberLike = regexp.MustCompile(`\+?\d{4,}`)

// redact masks numbers and codes in text from Twilio, which goes to logs.
func redact(s string) string {
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "..."
	}
	return numberLike.ReplaceAllStringFunc(s, func(n string) string {
		if strings.HasPrefix(n, "+") {
			return otp.MaskE164(n)
		}
		return "****"
	})
}

// messageStatus maps the status in Twilio's answer to a send.
func messageStatus(s string) otp.DeliveryStatus {
	switch s {
	case "sent":
		return otp.DeliverySent
	case "delivered":
		return otp.DeliveryDelivered
	}
	// queued, accepted, scheduled, sending, and a call's queued or
	// initiated: Twilio has it and has not handed it on.
	return otp.DeliveryQueued
}

// Signature is Twilio's signature of a request to rawURL with form
// parameters form: base64(HMAC-SHA1(authToken, rawURL followed by each
// parameter's name and value, sorted by name)).
func Signature(authToken, rawURL string, form url.Values) string {
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(rawURL))
	names := make([]string, 0, len(form))
	for name := range form {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		values := slices.Clone(form[name])
		slices.Sort(values)
		for _, v := range values {
			mac.Write([]byte(name))
			mac.Write([]byte(v))
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseReceipt implements otp.ReceiptParser for Twilio's status callbacks:
// it checks X-Twilio-Signature against receiptURL, the exact URL this
// gateway gave Twilio, then reads MessageStatus, and MessageSid and
// ErrorCode where Twilio gives them.
func (g *Gateway) ParseReceipt(r *http.Request, receiptURL string) (otp.Receipt, error) {
	if r.Method != http.MethodPost {
		return otp.Receipt{}, fmt.Errorf("twilio receipt: method %s, expected POST", r.Method)
	}
	got := r.Header.Get(SignatureHeader)
	if got == "" {
		return otp.Receipt{}, errors.New("twilio receipt: no " + SignatureHeader + " header")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return otp.Receipt{}, fmt.Errorf("twilio receipt: %w", err)
	}
	want := Signature(g.cfg.AuthToken, receiptURL, r.PostForm)
	if !hmac.Equal([]byte(got), []byte(want)) {
		return otp.Receipt{}, errors.New("twilio receipt: bad " + SignatureHeader + " (is the auth token the account's current one?)")
	}
	rep := otp.Receipt{Gateway: g.cfg.Name, ID: r.PostForm.Get("MessageSid"), Error: r.PostForm.Get("ErrorCode")}
	switch s := r.PostForm.Get("MessageStatus"); s {
	case "queued", "accepted", "scheduled", "sending":
		rep.Status = otp.DeliveryQueued
	case "sent":
		rep.Status = otp.DeliverySent
	case "delivered", "read":
		rep.Status = otp.DeliveryDelivered
	case "undelivered", "failed", "canceled":
		rep.Status = otp.DeliveryFailed
	default:
		return otp.Receipt{}, fmt.Errorf("twilio receipt: unknown MessageStatus %q", s)
	}
	return rep, nil
}

var (
	_ otp.Caller             = (*Gateway)(nil)
	_ otp.ReceiptParser      = (*Gateway)(nil)
	_ otp.CapabilityReporter = (*Gateway)(nil)
)
