package caddymodule

import (
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/httpsrc"
)

func init() {
	caddy.RegisterModule(HTTPPhoneSource{})
}

// HTTPPhoneSource finds each identity's phone number through the
// application's own HTTP API: one GET per lookup to a URL with {identity}
// in its path or query, and one field of the JSON answer. The identity is
// escaped for where it stands: in the path every byte but letters, digits
// and -._~ is percent-encoded (and an identity holding '/' or '\', or only
// dots, is refused there: put {identity} in the query where identities
// may hold them); in the query it is query-escaped.
//
// Caddyfile:
//
//	phone_source http {
//		name            <name, default http>
//		url             "https://app.internal/users/{identity}"
//		field           <path in the JSON answer, such as phone or user.mobile>
//		header          <name> <value or placeholder>
//		ca_file         <PEM file>
//		allow_plaintext
//		timeout         <duration, default 3s, at most 30s>
//	}
//
// url and field are required; header may be given once per header, and
// placeholders such as {env.APP_API_TOKEN} are expanded in its values when
// the config loads. 200 with the field holding a string is a number; 404,
// or a field that is missing or null, is "no number"; anything else (another
// status, a redirect, which is never followed, a body that is not JSON or
// is over 64 KiB, a field that is a number or an object) fails the lookup
// closed. A plain http:// URL is refused for a host other than this
// machine unless allow_plaintext says the network is trusted.
type HTTPPhoneSource struct {
	// Names the source in logs, metrics and the status. Default: http.
	Name string `json:"name,omitempty"`
	// The URL, with {identity} in its path or query.
	URL string `json:"url,omitempty"`
	// Where the number is in the JSON answer: keys and list indexes
	// joined by dots.
	Field string `json:"field,omitempty"`
	// Headers sent with each request, such as the Authorization the API
	// requires. Placeholders in the values are expanded.
	Header http.Header `json:"header,omitempty"`
	// A PEM file of the CAs that may sign the server's certificate.
	// Default: the system's.
	CAFile string `json:"ca_file,omitempty"`
	// Let a plain http:// URL reach another host unencrypted.
	AllowPlaintext bool `json:"allow_plaintext,omitempty"`
	// Bounds one lookup, from connecting to the end of the body.
	// Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	sourceModule
}

// CaddyModule returns the Caddy module information.
func (HTTPPhoneSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sms_stepup.phone_sources.http",
		New: func() caddy.Module { return new(HTTPPhoneSource) },
	}
}

// Provision expands the header values' placeholders and sets the source
// up; it does not contact the API (each lookup does).
func (s *HTTPPhoneSource) Provision(caddy.Context) error {
	header := make(http.Header, len(s.Header))
	for name, values := range s.Header {
		for _, v := range values {
			expanded, err := expandSecret("http", "header "+name, v)
			if err != nil {
				return err
			}
			header[name] = append(header[name], expanded)
		}
	}
	src, err := httpsrc.New(httpsrc.Config{Name: s.Name, URL: s.URL, Field: s.Field, Header: header,
		CAFile: s.CAFile, AllowPlaintext: s.AllowPlaintext, Timeout: time.Duration(s.Timeout)})
	if err != nil {
		return fmt.Errorf("phone_source %w", err)
	}
	s.src = src
	return nil
}

// UnmarshalCaddyfile parses the http phone source's block.
func (s *HTTPPhoneSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.Errf("phone_source http takes no argument, got %q: put url and field in a block", d.Val())
	}
	for d.NextBlock(0) {
		var err error
		switch opt := d.Val(); opt {
		case "name":
			s.Name, err = oneArg(d)
		case "url":
			s.URL, err = oneArg(d)
		case "field":
			s.Field, err = oneArg(d)
		case "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("header: expected a name and a value, such as header Authorization \"Bearer {env.APP_API_TOKEN}\"")
			}
			if s.Header == nil {
				s.Header = http.Header{}
			}
			s.Header.Add(args[0], args[1])
		case "ca_file":
			s.CAFile, err = oneArg(d)
		case "allow_plaintext":
			if d.NextArg() {
				return d.Errf("allow_plaintext takes no value, got %q", d.Val())
			}
			s.AllowPlaintext = true
		case "timeout":
			s.Timeout, err = boundedDurationArg(d, source.MaxTimeout)
		default:
			return d.Errf("unknown http phone source option %q: expected name, url, field, header, ca_file, allow_plaintext or timeout", opt)
		}
		if err != nil {
			return err
		}
	}
	if s.URL == "" || s.Field == "" {
		return d.Errf(`phone_source http: expected url and field in its block, such as url "https://app.internal/users/{identity}"`)
	}
	return nil
}

var (
	_ caddy.Provisioner     = (*HTTPPhoneSource)(nil)
	_ caddy.CleanerUpper    = (*HTTPPhoneSource)(nil)
	_ caddyfile.Unmarshaler = (*HTTPPhoneSource)(nil)
	_ phoneSourceModule     = (*HTTPPhoneSource)(nil)
)
