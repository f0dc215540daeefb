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
//	.ReceiptURL  where delivery reports would go, or ""
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
// A provider that takes everything in the query string:
//
//	gateway http {
//		url    `https://sms.example.jp/send?key={env.SMS_API_KEY}&to={{urlquery .To}}&text={{urlquery .Text}}`
//		method GET
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

	otp.Gateway `json:"-"`
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
	g.Gateway = gw
	return nil
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
			g.Timeout, err = durationArg(d, time.Minute)
		case "hmac_header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("hmac_header: expected a header name and a secret, such as hmac_header X-Signature {env.SMS_HMAC_SECRET}")
			}
			g.HMACHeader, g.HMACSecret = args[0], args[1]
		default:
			return d.Errf("unknown http gateway option %q: expected url, method, header, body, content_type, success_status, timeout or hmac_header", opt)
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

var (
	_ caddy.Provisioner     = (*HTTPGateway)(nil)
	_ caddyfile.Unmarshaler = (*HTTPGateway)(nil)
	_ otp.Gateway           = (*HTTPGateway)(nil)
)
