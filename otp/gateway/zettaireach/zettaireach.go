// Package zettaireach sends codes through 絶対リーチ!SMS (Zettai Reach SMS,
// sms-api.aossms.com), a Japanese provider with direct links to the four
// carriers, and reads its delivery results (DLR push).
//
// It follows the provider's published OpenAPI specification, "絶対リーチ!®
// SMS Communication Platform" version 1.4.7 (doc.aossms.com/zettai-reach/
// openapi.html):
//
//   - CommonMT 送信: POST /p5/api/mt.json, application/x-www-form-urlencoded,
//     with the fields token (32 characters, the account's access key),
//     clientId (the contract client ID, digits), smsCode (the sender SMS
//     code, 5 or 6 characters), phoneNumber, message (1 to 660 characters,
//     full- and half-width alike), and clientTag (1 to 200 characters,
//     unique per request). carrierId, scheduleTime and groupTag are not
//     used: the provider picks the carrier, and a code is sent now.
//   - phoneNumber: a Japanese mobile number, domestic (090...) or
//     international (+8190...), matching ^(\+81|0)(([26789]0[1-9][0-9]{7}$)|
//     (20[1-9][0-9]{10}$)). Numbers outside Japan cannot be sent.
//   - The answer is HTTP 200 with JSON {responseCode, responseMessage, ...};
//     the specification says that unless responseCode is 0 the request was
//     not accepted. Codes: 100 Required {field}, 110 Invalid {field}, 120
//     {field} too long, 300 Exceed sending count, 400 Duplicate client tag,
//     500 System error.
//   - CommonMT requests are accepted at 600 per second in all; above that
//     the provider "may throttle for a while" without documenting how, so
//     an HTTP 429 is read as a refusal and any other non-200 as an answer
//     that cannot prove the message was not taken.
//
// It never logs, and never puts into an error, the token or a message's
// text.
package zettaireach

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/httpsend"
)

// DefaultBaseURL is the provider's production API server.
const DefaultBaseURL = "https://sms-api.aossms.com"

// SendPath is the CommonMT send API.
const SendPath = "/p5/api/mt.json"

// maxMessage is the longest message field the provider takes, counted in
// characters whatever their width. The handler's max_segments keeps a code
// far shorter (70 characters in Japanese for one segment).
const maxMessage = 660

// maxClientTag is the longest clientTag the send API takes.
const maxClientTag = 200

// Config configures a Gateway.
type Config struct {
	// Token is the account's 32-character access key (管理画面のアカウント情報).
	Token string
	// ClientID is the contract client ID, digits (クライアント情報).
	ClientID string
	// SMSCode is the sender SMS code, 5 or 6 characters.
	SMSCode string
	// BaseURL replaces https://sms-api.aossms.com, for tests. Plain http is
	// allowed only to a loopback host.
	BaseURL string
	// Timeout bounds one request. Default: 10s.
	Timeout time.Duration
	// DLR says the account has the provider's DLR push set up to this
	// gateway's receipt address: each message then carries its receipt
	// token as clientTag, which the push echoes back.
	DLR bool
	// Name names the gateway in receipts, errors and its receipt URL.
	// Default: "zettai_reach".
	Name string
	// RatePerSecond caps this gateway's sends a second, 1 to MaxRate.
	// The provider takes MaxRate a second for the whole account, so
	// several instances sharing one contract should split it. Default:
	// MaxRate.
	RatePerSecond int
}

// MaxRate is CommonMT's documented limit: 600 requests a second in all.
const MaxRate = 600

// Gateway is one 絶対リーチ!SMS contract.
type Gateway struct {
	cfg    Config
	base   string
	client *http.Client
	// limit keeps sends within RatePerSecond, so the provider never has to
	// throttle: its throttling is undocumented, while a send held back
	// here is known not to have gone.
	limit *rate.Limiter
}

var (
	tokenPattern    = regexp.MustCompile(`^[0-9A-Za-z]{32}$`)
	clientIDPattern = regexp.MustCompile(`^[0-9]+$`)
	smsCodePattern  = regexp.MustCompile(`^[0-9A-Za-z]{5,6}$`)
	// mobileJP is the provider's phoneNumber pattern in its international
	// form, which is what an E.164 number is.
	mobileJP = regexp.MustCompile(`^\+81(([26789]0[1-9][0-9]{7})|(20[1-9][0-9]{10}))$`)
)

// New checks cfg and returns its gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.Name == "" {
		cfg.Name = "zettai_reach"
	}
	if !tokenPattern.MatchString(cfg.Token) {
		return nil, errors.New("zettai_reach: the token must be the 32 letters and digits of the account's access key (管理画面のアカウント情報)")
	}
	if !clientIDPattern.MatchString(cfg.ClientID) {
		return nil, errors.New("zettai_reach: the client_id must be the contract client ID, digits only (管理画面のクライアント情報)")
	}
	if !smsCodePattern.MatchString(cfg.SMSCode) {
		return nil, fmt.Errorf("zettai_reach: sms_code %q: expected the 5- or 6-character sender SMS code of the contract", cfg.SMSCode)
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("zettai_reach: base URL %q: expected a server such as %s, without a path", base, DefaultBaseURL)
	}
	// The token travels in every request body: never in clear over a
	// network, only to a local test server.
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("zettai_reach: base URL %q: expected https (plain http only to a loopback host, for tests)", base)
	}
	if cfg.RatePerSecond == 0 {
		cfg.RatePerSecond = MaxRate
	}
	if cfg.RatePerSecond < 1 || cfg.RatePerSecond > MaxRate {
		return nil, fmt.Errorf("zettai_reach: rate %d a second: expected 1 to %d, the provider's limit for the whole account", cfg.RatePerSecond, MaxRate)
	}
	return &Gateway{cfg: cfg, base: strings.TrimRight(base, "/"), client: httpsend.NewClient(cfg.Timeout),
		limit: rate.NewLimiter(rate.Limit(cfg.RatePerSecond), cfg.RatePerSecond)}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Capabilities implements otp.CapabilityReporter: a health check always,
// delivery results when the DLR push is set up. The provider places no
// calls.
func (g *Gateway) Capabilities() otp.Capabilities {
	c := otp.Capabilities{Health: g}
	if g.cfg.DLR {
		c.Receipts = map[string]otp.ReceiptParser{g.cfg.Name: g}
	}
	return c
}

// answer is the CommonMT answer (p5MtResponse). phoneNumber and smsMessage
// echo the request and are not read.
type answer struct {
	ResponseCode    *int   `json:"responseCode"`
	ResponseMessage string `json:"responseMessage"`
}

// Send implements otp.Gateway: one POST to /p5/api/mt.json.
func (g *Gateway) Send(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	if !mobileJP.MatchString(m.To) {
		// Not sent, so a failover goes on to an international provider.
		return otp.Receipt{}, &otp.GatewayError{Gateway: g.cfg.Name, Kind: otp.NotSent, Reason: "unsupported",
			Err: fmt.Errorf("%s is not a Japanese mobile number, the only kind 絶対リーチ!SMS sends to", otp.MaskE164(m.To))}
	}
	if n := utf8.RuneCountInString(m.Body); n == 0 || n > maxMessage {
		return otp.Receipt{}, &otp.GatewayError{Gateway: g.cfg.Name, Kind: otp.NotSent, Reason: "rejected",
			Err: fmt.Errorf("message of %d characters: the provider takes 1 to %d", n, maxMessage)}
	}
	if err := g.limit.Wait(ctx); err != nil {
		// Held back within the request's time: not sent, so a failover
		// may try the next gateway.
		return otp.Receipt{}, &otp.GatewayError{Gateway: g.cfg.Name, Kind: otp.NotSent, Reason: "rate_limited",
			Err: fmt.Errorf("over %d sends a second: %w", g.cfg.RatePerSecond, err)}
	}
	form := url.Values{
		"token":       {g.cfg.Token},
		"clientId":    {g.cfg.ClientID},
		"smsCode":     {g.cfg.SMSCode},
		"phoneNumber": {m.To},
		"message":     {m.Body},
	}
	// The receipt token is unguessable and unique per message, which is
	// what clientTag must be; a token longer than the field (a very long
	// identity) only costs this message its delivery result.
	if tag := m.ReceiptToken; g.cfg.DLR && m.ReceiptURL(g.cfg.Name) != "" && len(tag) <= maxClientTag {
		form.Set("clientTag", tag)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.base+SendPath, strings.NewReader(form.Encode()))
	if err != nil {
		return otp.Receipt{}, &otp.GatewayError{Gateway: g.cfg.Name, Kind: otp.NotSent, Reason: "config", Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := httpsend.Do(g.client, req, g.cfg.Name)
	if err != nil {
		return otp.Receipt{}, err
	}
	body, readErr := httpsend.ReadBody(resp)
	if resp.StatusCode != http.StatusOK {
		return otp.Receipt{}, g.classifyHTTP(resp.StatusCode)
	}
	var a answer
	if readErr != nil || json.Unmarshal(body, &a) != nil || a.ResponseCode == nil {
		// A 200 whose answer cannot be read may be an acceptance.
		return otp.Receipt{}, &otp.GatewayError{Gateway: g.cfg.Name, Kind: otp.Unknown, Reason: "no_answer",
			Err: errors.New("HTTP 200 without a readable responseCode")}
	}
	if *a.ResponseCode != 0 {
		return otp.Receipt{}, g.classify(*a.ResponseCode, a.ResponseMessage)
	}
	// The provider gives no message ID; clientTag is ours.
	return otp.Receipt{Gateway: g.cfg.Name, Status: otp.DeliveryQueued}, nil
}

// classifyHTTP maps an answer other than 200, which the specification never
// describes: 429 is the throttling it warns of, and a refusal; 401 and 403
// (the API's IP restriction) refuse before sending; anything else, 5xx
// included, may follow an accepted message (SECURITY.md rule 25).
func (g *Gateway) classifyHTTP(status int) *otp.GatewayError {
	ge := &otp.GatewayError{Gateway: g.cfg.Name, Err: fmt.Errorf("HTTP %d", status)}
	switch status {
	case http.StatusTooManyRequests:
		ge.Kind, ge.Reason = otp.NotSent, "rate_limited"
	case http.StatusUnauthorized, http.StatusForbidden:
		ge.Kind, ge.Reason = otp.NotSent, "auth"
	default:
		ge.Kind, ge.Reason = otp.Unknown, "server_error"
	}
	return ge
}

// classify maps a non-zero responseCode. The specification says every one
// of them means the request was not accepted, so none is Unknown; only a
// phone number the provider calls invalid is refused for good.
func (g *Gateway) classify(code int, message string) *otp.GatewayError {
	ge := &otp.GatewayError{Gateway: g.cfg.Name, Kind: otp.NotSent, Code: strconv.Itoa(code)}
	field := strings.ToLower(message)
	switch {
	case (code == 100 || code == 110 || code == 120) && strings.Contains(field, "phonenumber"):
		ge.Kind, ge.Reason = otp.Rejected, "invalid_number"
	case (code == 100 || code == 110) && (strings.Contains(field, "token") || strings.Contains(field, "clientid") || strings.Contains(field, "smscode")):
		ge.Reason = "auth"
	case code == 300:
		// The contract's sending cap: another provider may still send.
		ge.Reason = "rate_limited"
	case code == 500:
		ge.Reason = "server_error"
	default:
		ge.Reason = "rejected"
	}
	ge.Err = fmt.Errorf("responseCode %d: %s", code, printable(message))
	return ge
}

// printable keeps the provider's responseMessage ("Invalid phoneNumber.")
// fit for a log: short, and without anything that looks like a number or
// a code.
func printable(s string) string {
	if len(s) > 100 {
		s = strings.ToValidUTF8(s[:100], "") + "..."
	}
	return regexp.MustCompile(`\+?\d{4,}`).ReplaceAllString(s, "****")
}

var (
	_ otp.Gateway            = (*Gateway)(nil)
	_ otp.CapabilityReporter = (*Gateway)(nil)
)
