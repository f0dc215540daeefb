package caddymodule

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/httpgw"
)

func init() {
	caddy.RegisterModule(HTTPGateway{})
}

// HTTPGateway sends codes through any SMS provider with an HTTP API, such
// as a national provider or an in-house SMS service, by filling in a
// request: the URL, the header values and the body are Go text/template
// strings that see the message as
//
//	.To          the number in E.164, "+819012345678"
//	.Text        the SMS text, code included
//	.Locale      the text's language, "ja" or "en"
//	.Ref         the challenge's id, for the provider's logs
//	.ReceiptURL  where the provider reports delivery (with receipt), or ""
//
// with two functions to escape them: {{json .Text}} writes a JSON string,
// quotes included, and {{urlquery .To}} escapes for a URL's query. A JSON
// body (the default content_type) must render to valid JSON, and every
// template is tried on a sample message when the config loads, so a
// mistake stops Caddy from starting and names the template and line.
//
// Each code is one request, never retried. The statuses in success_status
// (default 200, 201, 202) mean the provider took the message; 429 and 401
// mean it surely did not, so a failover may try its next gateway; another
// 4xx means the provider refused the message; any other answer, a 5xx
// included, and a request that left without an answer, may mean the
// message was taken, so nothing more is tried rather than risk a second
// SMS.
//
// With hmac_header, the request carries the hex HMAC-SHA256 of its body
// under the given secret, for in-house gateways that check who is calling.
//
// With receipt, and the handler's receipts_url set, the gateway reads the
// provider's delivery reports, and the code page says whether the SMS was
// delivered. Pass {{.ReceiptURL}} where the provider takes the URL for its
// reports (a template that passes it without receipt, or receipt without a
// template passing it, stops Caddy from starting). The URL is the
// message's own, with an unguessable token in it. receipt names how the
// provider reports (form: the fields of a form body, or of the query string
// of a GET; json: a JSON body), where the message's status is (status: a
// form field, or a JSON path such as data.status, with a number picking an
// array element, as in results.0.status), and which status values mean
// delivered, failed (both required) and sent (still on its way), compared
// without regard to case. A report with any other status is refused and
// logged, so list every value the provider sends. reference and error name
// where the provider's message ID and error code are, for the log; a value
// that is not a plain ID or code (letters, digits and . _ : - only) is left
// out, since free text could hold the number.
//
// Placeholders such as {env.SMS_API_KEY} in the URL, header values, body
// and HMAC secret are expanded when the config loads, before the templates
// are parsed; one that is empty is an error, so a missing secret stops
// Caddy from starting. An unknown placeholder in the URL, headers or body
// is left as it is, since template actions are written in braces too.
//
// Caddyfile:
//
//	gateway http [<url>] {
//		url            <url template>
//		method         GET|POST|PUT|PATCH
//		header         <name> <value template>
//		body           <body template>
//		content_type   <media type>
//		success_status <status>...
//		timeout        <duration>
//		hmac_header    <name> <secret>
//		receipt form|json {
//			status    <field or JSON path>
//			delivered <value>...
//			failed    <value>...
//			sent      <value>...
//			reference <field or JSON path>
//			error     <field or JSON path>
//		}
//	}
//
// header may be repeated. A template with a space in it, as most have, is
// one value only when quoted: in "double quotes", in `backticks` (handy for
// JSON) or as a heredoc:
//
//	gateway http https://sms.example.jp/v1/messages {
//		header Authorization "Bearer {env.SMS_API_KEY}"
//		body <<JSON
//			{"to": {{json .To}}, "text": {{json .Text}}, "ref": {{json .Ref}}}
//			JSON
//	}
//
// A provider that takes everything in the query string, and reports
// delivery with a GET to the callback URL it was given
// (?id=...&stat=DELIVRD):
//
//	gateway http {
//		url    `https://sms.example.jp/send?key={env.SMS_API_KEY}&to={{urlquery .To}}&text={{urlquery .Text}}&callback={{urlquery .ReceiptURL}}`
//		method GET
//		receipt form {
//			status    stat
//			delivered DELIVRD
//			failed    UNDELIV EXPIRED REJECTD
//			sent      ACCEPTD ENROUTE
//			reference id
//		}
//	}
type HTTPGateway struct {
	// The provider's send endpoint, a template.
	URL string `json:"url,omitempty"`
	// GET, POST, PUT or PATCH. Default: POST.
	Method string `json:"method,omitempty"`
	// Headers by name; each value is a template. A Content-Type here
	// overrides content_type.
	Headers map[string]string `json:"headers,omitempty"`
	// The request body, a template. Empty sends none.
	Body string `json:"body,omitempty"`
	// The body's media type. Default: application/json.
	ContentType string `json:"content_type,omitempty"`
	// HTTP statuses that mean the provider took the message. Default: 200,
	// 201 and 202.
	SuccessStatus []int `json:"success_status,omitempty"`
	// Time-out of one request. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// A header to carry the hex HMAC-SHA256 of the body, and its secret.
	HMACHeader string `json:"hmac_header,omitempty"`
	HMACSecret string `json:"hmac_secret,omitempty"`
	// How to read the provider's delivery reports, which come to
	// {{.ReceiptURL}}. Default: none, and then no template may pass
	// .ReceiptURL.
	Receipt *HTTPReceipt `json:"receipt,omitempty"`

	otp.Gateway `json:"-"`
	hg          *httpgw.Gateway
}

// HTTPReceipt says how the http gateway reads a provider's delivery
// reports.
type HTTPReceipt struct {
	// "form" (the fields of a form body, or of the query string of a GET)
	// or "json" (a JSON body).
	Format string `json:"format,omitempty"`
	// Where the message's status is: a form field, or a JSON path such as
	// data.status (results.0.status picks an array element).
	Status string `json:"status,omitempty"`
	// The status values that mean delivered, failed, and still on its way.
	Delivered []string `json:"delivered,omitempty"`
	Failed    []string `json:"failed,omitempty"`
	Sent      []string `json:"sent,omitempty"`
	// Where the provider's message ID and error code are, for the log.
	Reference string `json:"reference,omitempty"`
	Error     string `json:"error,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (HTTPGateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sms_stepup.gateways.http",
		New: func() caddy.Module { return new(HTTPGateway) },
	}
}

// Provision expands placeholders and parses the templates.
func (g *HTTPGateway) Provision(ctx caddy.Context) error {
	cfg, err := g.config()
	if err != nil {
		return err
	}
	gw, err := httpgw.New(cfg)
	if err != nil {
		return err
	}
	if u, err := url.Parse(cfg.URL); err == nil && u.Scheme == "http" && !isLoopbackHost(u.Host) {
		ctx.Logger().Warn("http gateway sends codes over plain http; use https unless the provider is on a private network",
			zap.String("host", u.Host))
	}
	g.hg, g.Gateway = gw, gw
	return nil
}

// Capabilities implements otp.CapabilityReporter: delivery reports with
// receipt; no health check, since whether an arbitrary provider is up can't
// be told without sending, and no calls.
func (g *HTTPGateway) Capabilities() otp.Capabilities {
	if g.hg == nil {
		return otp.Capabilities{}
	}
	return g.hg.Capabilities()
}

// config is the gateway's configuration with placeholders expanded.
func (g *HTTPGateway) config() (httpgw.Config, error) {
	repl := caddy.NewReplacer()
	// Unknown placeholders stay: "{{.To}}" is a template action, not one.
	template := func(opt, s string) (string, error) {
		v, err := repl.ReplaceOrErr(s, true, false)
		if err != nil {
			return "", fmt.Errorf("http gateway %s: %w", opt, err)
		}
		return v, nil
	}
	cfg := httpgw.Config{
		Method:        g.Method,
		ContentType:   g.ContentType,
		SuccessStatus: g.SuccessStatus,
		Timeout:       time.Duration(g.Timeout),
		HMACHeader:    g.HMACHeader,
	}
	if r := g.Receipt; r != nil {
		cfg.Receipt = &httpgw.ReceiptConfig{Format: r.Format, Status: r.Status, Reference: r.Reference, Error: r.Error,
			Delivered: r.Delivered, Failed: r.Failed, Sent: r.Sent}
	}
	var err error
	if cfg.URL, err = template("url", g.URL); err != nil {
		return cfg, err
	}
	if cfg.Body, err = template("body", g.Body); err != nil {
		return cfg, err
	}
	if len(g.Headers) > 0 {
		cfg.Headers = make(map[string]string, len(g.Headers))
		for name, value := range g.Headers {
			if cfg.Headers[name], err = template("header "+name, value); err != nil {
				return cfg, err
			}
		}
	}
	if g.HMACSecret != "" {
		if cfg.HMACSecret, err = repl.ReplaceOrErr(g.HMACSecret, true, true); err != nil {
			return cfg, fmt.Errorf("http gateway hmac_header secret: %w", err)
		}
	}
	return cfg, nil
}

// UnmarshalCaddyfile parses `http [<url>] [{ ... }]`.
func (g *HTTPGateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		g.URL = d.Val()
	}
	if d.NextArg() {
		return d.Errf("gateway http takes at most one argument, its url; got another: %q", d.Val())
	}
	for d.NextBlock(0) {
		var err error
		switch opt := d.Val(); opt {
		case "url":
			g.URL, err = oneArg(d)
		case "method":
			var m string
			if m, err = oneArg(d); err == nil {
				switch m = strings.ToUpper(m); m {
				case "GET", "POST", "PUT", "PATCH":
					g.Method = m
				default:
					return d.Errf("method %q: expected GET, POST, PUT or PATCH", d.Val())
				}
			}
		case "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("header: expected a name and one value (quote a value with spaces), got %d arguments", len(args))
			}
			if _, dup := g.Headers[args[0]]; dup {
				return d.Errf("header %q is given twice", args[0])
			}
			if g.Headers == nil {
				g.Headers = map[string]string{}
			}
			g.Headers[args[0]] = args[1]
		case "body":
			g.Body, err = oneArg(d)
		case "content_type":
			g.ContentType, err = oneArg(d)
		case "success_status":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("success_status: expected one or more HTTP statuses such as 200 202")
			}
			g.SuccessStatus = nil
			for _, a := range args {
				s, aerr := strconv.Atoi(a)
				if aerr != nil || s < 100 || s > 599 {
					return d.Errf("success_status %q: expected an HTTP status from 100 to 599 such as 200", a)
				}
				g.SuccessStatus = append(g.SuccessStatus, s)
			}
		case "timeout":
			g.Timeout, err = boundedDurationArg(d, time.Minute)
		case "hmac_header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("hmac_header: expected a header name and a secret, such as hmac_header X-Signature {env.SMS_HMAC_SECRET}")
			}
			g.HMACHeader, g.HMACSecret = args[0], args[1]
		case "receipt":
			g.Receipt, err = parseHTTPReceipt(d)
		default:
			return d.Errf("unknown http gateway option %q: expected url, method, header, body, content_type, success_status, timeout, hmac_header or receipt", opt)
		}
		if err != nil {
			return err
		}
	}
	if g.URL == "" {
		return d.Errf("gateway http: expected a url, as its argument or in its block")
	}
	if g.Method == "GET" && g.Body != "" {
		return d.Errf("gateway http: a GET request has no body: put the fields in the url or use method POST")
	}
	return nil
}

// parseHTTPReceipt parses `receipt form|json { ... }`.
func parseHTTPReceipt(d *caddyfile.Dispenser) (*HTTPReceipt, error) {
	r := &HTTPReceipt{}
	if !d.NextArg() {
		return nil, d.Errf("receipt: expected how the provider reports, form or json, then a block")
	}
	switch r.Format = strings.ToLower(d.Val()); r.Format {
	case httpgw.ReceiptForm, httpgw.ReceiptJSON:
	default:
		return nil, d.Errf("receipt %q: expected form (a form body, or the query of a GET) or json (a JSON body)", d.Val())
	}
	if d.NextArg() {
		return nil, d.Errf("receipt takes one argument, form or json; got another: %q", d.Val())
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch opt := d.Val(); opt {
		case "status":
			r.Status, err = oneArg(d)
		case "reference":
			r.Reference, err = oneArg(d)
		case "error":
			r.Error, err = oneArg(d)
		case "delivered", "failed", "sent":
			values := d.RemainingArgs()
			if len(values) == 0 {
				return nil, d.Errf("receipt %s: expected one or more status values, such as %s", opt, map[string]string{
					"delivered": "DELIVRD", "failed": "UNDELIV EXPIRED", "sent": "ACCEPTD ENROUTE"}[opt])
			}
			list := map[string]*[]string{"delivered": &r.Delivered, "failed": &r.Failed, "sent": &r.Sent}[opt]
			*list = append(*list, values...)
		default:
			return nil, d.Errf("unknown receipt option %q: expected status, delivered, failed, sent, reference or error", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	if r.Status == "" || len(r.Delivered) == 0 || len(r.Failed) == 0 {
		return nil, d.Errf("receipt: expected status (where the report says it), delivered and failed (which values mean what) in its block")
	}
	return r, nil
}

var (
	_ caddy.Provisioner      = (*HTTPGateway)(nil)
	_ caddyfile.Unmarshaler  = (*HTTPGateway)(nil)
	_ otp.Gateway            = (*HTTPGateway)(nil)
	_ otp.CapabilityReporter = (*HTTPGateway)(nil)
)
