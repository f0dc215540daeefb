// Package httpgw is a generic REST gateway for SMS providers that have no
// gateway of their own, such as national providers or an in-house SMS
// service: the URL, headers and body of the one request per message are
// text/template strings. With a ReceiptConfig it also reads the provider's
// delivery reports, wherever in a form or a JSON body they carry the
// status.
//
// It never logs, and never puts into an error, a message's text, the
// request's URL beyond its host, or the provider's answer.
package httpgw

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/httpsend"
)

// Config configures a Gateway.
type Config struct {
	// URL of the provider's send endpoint, a template: the number can go in
	// it ("https://sms.example/send?to={{urlquery .To}}").
	URL string
	// Method: GET, POST, PUT or PATCH. Default: POST.
	Method string
	// Headers to send, by name; the values are templates. A Content-Type
	// here overrides ContentType.
	Headers map[string]string
	// Body is the request body, a template; empty sends none.
	Body string
	// ContentType of the body. Default: application/json. A JSON body must
	// render to valid JSON, so {{json .Text}} is needed, not "{{.Text}}".
	ContentType string
	// SuccessStatus lists the HTTP statuses that mean the provider took the
	// message. Default: 200, 201, 202.
	SuccessStatus []int
	// Timeout bounds one request. Default: 10s.
	Timeout time.Duration
	// HMACHeader, when set, carries the hex HMAC-SHA256 of the request body
	// under HMACSecret, for in-house gateways that check who sent it.
	HMACHeader string
	HMACSecret string
	// Name names the gateway in receipts, errors and its receipt URL.
	// Default: "http".
	Name string
	// Receipt, when set, reads the delivery reports the provider sends to
	// the URL a message gave it as {{.ReceiptURL}}. The templates must then
	// pass .ReceiptURL, and without it they must not: a URL whose reports
	// nothing reads would only collect refusals.
	Receipt *ReceiptConfig
}

// Fields are what the templates see of a message.
type Fields struct {
	// To is the number in E.164 ("+819012345678").
	To string
	// Text is the SMS text, code included.
	Text string
	// Locale is the text's language ("ja", "en").
	Locale string
	// Ref names the challenge, for the provider's logs.
	Ref string
	// ReceiptURL is where the provider reports delivery, or "" when the
	// handler takes no reports (it has no receipts_url).
	ReceiptURL string
}

// funcs are the template functions on top of text/template's own (which
// include urlquery).
var funcs = template.FuncMap{
	// json writes v as a JSON value, quotes included: {"text": {{json .Text}}}.
	"json": func(v any) (string, error) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSuffix(b.String(), "\n"), nil
	},
}

// sample fills the templates once at New, so a template that cannot render
// a message, or that would break JSON or a header with one, fails at start.
var sample = Fields{
	To:         "+819012345678",
	Text:       "Example code: 123456\n\"quoted\" <tag> & 日本語 \\ end",
	Locale:     "en",
	Ref:        "sample-ref",
	ReceiptURL: "https://example.com/receipts/http/sample-token",
}

type header struct {
	name  string
	value *template.Template
}

// Gateway is an otp.Gateway over one templated HTTP request.
type Gateway struct {
	name        string
	method      string
	contentType string
	url         *template.Template
	headers     []header
	body        *template.Template
	jsonBody    bool
	success     []int
	hmacHeader  string
	hmacSecret  []byte
	client      *http.Client
	receipts    *receiptParser
}

// New parses and tries the templates and checks cfg.
func New(cfg Config) (*Gateway, error) {
	g := &Gateway{
		name:        cfg.Name,
		method:      strings.ToUpper(cfg.Method),
		contentType: cfg.ContentType,
		success:     cfg.SuccessStatus,
		hmacHeader:  cfg.HMACHeader,
		hmacSecret:  []byte(cfg.HMACSecret),
		client:      httpsend.NewClient(cfg.Timeout),
	}
	if g.name == "" {
		g.name = "http"
	}
	if g.method == "" {
		g.method = http.MethodPost
	}
	if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch}, g.method) {
		return nil, fmt.Errorf("http gateway: method %q: expected GET, POST, PUT or PATCH", cfg.Method)
	}
	if g.contentType == "" {
		g.contentType = "application/json"
	}
	if len(g.success) == 0 {
		g.success = []int{http.StatusOK, http.StatusCreated, http.StatusAccepted}
	}
	for _, s := range g.success {
		if s < 100 || s > 599 {
			return nil, fmt.Errorf("http gateway: success status %d: expected an HTTP status such as 200", s)
		}
	}
	if (cfg.HMACHeader == "") != (cfg.HMACSecret == "") {
		return nil, errors.New("http gateway: the HMAC needs both a header name and a secret")
	}
	if cfg.HMACHeader != "" && !validHeaderName(cfg.HMACHeader) {
		return nil, fmt.Errorf("http gateway: HMAC header %q: expected a header name such as X-Signature", cfg.HMACHeader)
	}
	if cfg.URL == "" {
		return nil, errors.New("http gateway: no URL: expected the provider's send endpoint")
	}
	var err error
	if g.url, err = parse("url", cfg.URL); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(cfg.Headers))
	for name := range cfg.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !validHeaderName(name) {
			return nil, fmt.Errorf("http gateway: header %q: expected a header name such as Authorization", name)
		}
		t, err := parse("header "+name, cfg.Headers[name])
		if err != nil {
			return nil, err
		}
		g.headers = append(g.headers, header{name: name, value: t})
	}
	if cfg.Body != "" {
		if g.method == http.MethodGet {
			return nil, errors.New("http gateway: a GET request has no body: put the fields in the URL or use POST")
		}
		if g.body, err = parse("body", cfg.Body); err != nil {
			return nil, err
		}
		mediaType, _, _ := strings.Cut(g.contentType, ";")
		mediaType = strings.ToLower(strings.TrimSpace(mediaType))
		g.jsonBody = mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
	}
	if cfg.Receipt != nil {
		if g.receipts, err = newReceiptParser(g.name, *cfg.Receipt); err != nil {
			return nil, err
		}
	}
	if err := g.checkTemplates(); err != nil {
		return nil, err
	}
	return g, nil
}

// checkTemplates renders a sample message: the templates must work, and
// pass {{.ReceiptURL}} to the provider exactly when delivery reports are
// read, since a URL that nothing reads answers 404 and reports nobody reads
// are lost.
func (g *Gateway) checkTemplates() error {
	withURL, err := g.render(sample)
	if err != nil {
		return fmt.Errorf("http gateway: the templates fail on a sample message: %w", err)
	}
	noURL := sample
	noURL.ReceiptURL = ""
	withoutURL, err := g.render(noURL)
	passesURL := err != nil || !withURL.same(withoutURL)
	switch {
	case g.receipts != nil && !passesURL:
		return errors.New("http gateway: receipt is set, but no template passes {{.ReceiptURL}} to the provider: put it where the provider takes the URL for its delivery reports")
	case g.receipts == nil && passesURL:
		return errors.New("http gateway: the templates pass {{.ReceiptURL}}, but no receipt setting says how to read the reports that come to it: add one, or leave .ReceiptURL out")
	}
	return nil
}

// Capabilities implements otp.CapabilityReporter: delivery reports when the
// gateway reads them. It has no health check (whether an arbitrary provider
// is up can't be told without sending) and no calls.
func (g *Gateway) Capabilities() otp.Capabilities {
	if g.receipts == nil {
		return otp.Capabilities{}
	}
	return otp.Capabilities{Receipts: map[string]otp.ReceiptParser{g.name: g.receipts}}
}

func parse(name, text string) (*template.Template, error) {
	t, err := template.New(name).Funcs(funcs).Parse(text)
	if err != nil {
		// text/template names the template and line: "template: body:3: ...".
		return nil, fmt.Errorf("http gateway: %s template: %w", name, err)
	}
	return t, nil
}

// validHeaderName accepts an HTTP token (RFC 9110 section 5.6.2).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// request is a rendered message.
type request struct {
	url     *url.URL
	headers http.Header
	body    string
}

func (r *request) same(o *request) bool {
	return r.url.String() == o.url.String() && r.body == o.body && maps.EqualFunc(r.headers, o.headers, slices.Equal)
}

func (g *Gateway) render(f Fields) (*request, error) {
	var b strings.Builder
	if err := g.url.Execute(&b, f); err != nil {
		return nil, err
	}
	u, err := url.Parse(strings.TrimSpace(b.String()))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		// The URL may hold the number or a key: it is not repeated here.
		return nil, errors.New("the url template does not render an absolute http or https URL")
	}
	r := &request{url: u, headers: http.Header{}}
	if g.body != nil {
		b.Reset()
		if err := g.body.Execute(&b, f); err != nil {
			return nil, err
		}
		r.body = b.String()
		if g.jsonBody && !json.Valid([]byte(r.body)) {
			return nil, errors.New("the body template does not render valid JSON: write {{json .Text}}, not \"{{.Text}}\"")
		}
		r.headers.Set("Content-Type", g.contentType)
	}
	for _, h := range g.headers {
		b.Reset()
		if err := h.value.Execute(&b, f); err != nil {
			return nil, err
		}
		if strings.ContainsAny(b.String(), "\r\n\x00") {
			return nil, fmt.Errorf("header %s renders a line break: use {{urlquery ...}} or leave .Text out of headers", h.name)
		}
		r.headers.Set(h.name, b.String())
	}
	if g.hmacHeader != "" {
		mac := hmac.New(sha256.New, g.hmacSecret)
		mac.Write([]byte(r.body))
		r.headers.Set(g.hmacHeader, hex.EncodeToString(mac.Sum(nil)))
	}
	return r, nil
}

// Send implements otp.Gateway: one request, never retried.
func (g *Gateway) Send(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	r, err := g.render(Fields{To: m.To, Text: m.Body, Locale: m.Locale, Ref: m.Ref, ReceiptURL: m.ReceiptURL(g.name)})
	if err != nil {
		return otp.Receipt{}, &otp.GatewayError{Gateway: g.name, Kind: otp.NotSent, Reason: "config", Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, g.method, r.url.String(), strings.NewReader(r.body))
	if err != nil {
		return otp.Receipt{}, &otp.GatewayError{Gateway: g.name, Kind: otp.NotSent, Reason: "config", Err: errors.New("cannot make the request")}
	}
	req.Header = r.headers
	resp, err := httpsend.Do(g.client, req, g.name)
	if err != nil {
		// Go's error repeats the whole URL, which may hold the number or a
		// key; the host is enough to tell what failed.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = r.url.Scheme + "://" + r.url.Host
		}
		return otp.Receipt{}, err
	}
	// The answer is read so the exchange completes, and never kept: a
	// provider may echo the text.
	_, _ = httpsend.ReadBody(resp)
	return g.classify(resp.StatusCode)
}

// classify maps the provider's status to what it means for the message.
//
// A 5xx is Unknown: with a provider we know nothing about, a 5xx may come
// from a proxy whose backend took the message, or from the provider after
// it queued it, so it cannot be trusted to mean "not accepted", and trying
// another gateway could send a second SMS (SECURITY.md rule 25). For the
// same reason a 2xx that is not a success status, and a 1xx or 3xx, are
// Unknown too. A 401 is an authentication failure, which no provider
// processes, so the next gateway may be tried.
func (g *Gateway) classify(status int) (otp.Receipt, error) {
	if slices.Contains(g.success, status) {
		return otp.Receipt{Gateway: g.name, Status: otp.DeliveryQueued}, nil
	}
	ge := &otp.GatewayError{Gateway: g.name, Err: fmt.Errorf("HTTP %d", status)}
	switch {
	case status == http.StatusTooManyRequests:
		ge.Kind, ge.Reason = otp.NotSent, "rate_limited"
	case status == http.StatusUnauthorized:
		ge.Kind, ge.Reason = otp.NotSent, "auth"
	case status >= 400 && status < 500:
		ge.Kind, ge.Reason = otp.Rejected, "rejected"
	default:
		ge.Kind, ge.Reason = otp.Unknown, "server_error"
	}
	return otp.Receipt{}, ge
}

var (
	_ otp.Gateway            = (*Gateway)(nil)
	_ otp.CapabilityReporter = (*Gateway)(nil)
)
