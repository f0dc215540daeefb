// Package httpsrc finds phone numbers through the application's own HTTP
// API: one GET per lookup to a URL such as
// https://app.internal/users/{identity}, and a field of the JSON answer,
// such as "phone" or "data.contact.mobile". (It is not called http so as
// not to stand in for net/http.)
//
// The identity is escaped for where it stands (SECURITY.md rule 31): in the
// path every byte but letters, digits and -._~ is percent-encoded, so it
// stays one path segment, and an identity that could still leave its
// segment on a server that decodes before routing ('/', '\', or only dots)
// is refused; in the query it is query-escaped. Put {identity} in the query
// (?login={identity}) where identities may hold '/' or '\'.
//
// 200 with the field holding a string is a number; 404, or a field that is
// missing or null, is no number. Anything else fails closed: another
// status, a redirect (never followed), a body that is not JSON or larger
// than 64 KiB, a field that is a number, an object or a list.
package httpsrc

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
)

// DefaultName names the source when the configuration does not.
const DefaultName = "http"

// MaxBody is the largest answer read: a user record, not a database dump.
const MaxBody = 64 << 10

// Config is one API endpoint and where the number is in its answer.
type Config struct {
	// Name names the source in errors, logs and metrics; default "http".
	Name string
	// URL has {identity} in its path or query:
	// https://app.internal/users/{identity} or
	// https://app.internal/lookup?login={identity}.
	URL string
	// Field is the path of the number in the JSON answer: keys, and list
	// indexes, joined by dots ("phone", "user.mobile", "phones.0.number").
	Field string
	// Header is sent with each request, such as an Authorization the API
	// requires.
	Header http.Header
	// CAFile is a PEM file of the CAs that may sign the server's
	// certificate; empty means the system's.
	CAFile string
	// AllowPlaintext lets a plain http:// URL reach a host other than this
	// machine, sending the header and receiving the numbers unencrypted.
	// Only for a network you trust.
	AllowPlaintext bool
	// Timeout bounds one lookup, from connecting to the end of the body;
	// 0 means source.DefaultTimeout.
	Timeout time.Duration
}

// Source looks numbers up through one API endpoint.
type Source struct {
	name        string
	path, query string // the URL template split at '?'
	field       []string
	header      http.Header
	timeout     time.Duration
	client      *http.Client
	fingerprint string
}

// New checks cfg and returns a source. It does not contact the API: each
// lookup does.
func New(cfg Config) (*Source, error) {
	s := &Source{name: cfg.Name, header: cfg.Header.Clone()}
	if s.name == "" {
		s.name = DefaultName
	}
	if err := source.CheckName(s.name); err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	u, err := s.setURL(cfg.URL, cfg.AllowPlaintext)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	if s.field, err = parseField(cfg.Field); err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	if err := checkHeader(s.header); err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	if s.timeout, err = source.Timeout(cfg.Timeout); err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	if s.client, err = newClient(u, cfg.CAFile); err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	s.fingerprint = fingerprint(cfg.URL, cfg.Field, s.header)
	return s, nil
}

// setURL checks the template and keeps it split at '?'. It returns the
// URL with a stand-in for the identity.
func (s *Source) setURL(template string, allowPlaintext bool) (*url.URL, error) {
	if !strings.Contains(template, "{identity}") {
		return nil, fmt.Errorf("url %q: expected {identity} in its path or query, such as https://app.internal/users/{identity}", template)
	}
	u, err := url.Parse(strings.ReplaceAll(template, "{identity}", "x"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q: expected an http:// or https:// URL", template)
	}
	scheme, rest, _ := strings.Cut(template, "://")
	host, _, _ := strings.Cut(rest, "/")
	host, _, _ = strings.Cut(host, "?")
	switch {
	case strings.Contains(scheme+host, "{identity}"):
		return nil, fmt.Errorf("url %q: {identity} may stand in the path or the query, not in the scheme or host", template)
	case u.User != nil:
		return nil, fmt.Errorf("url %q: give credentials as a header, not in the URL", template)
	case u.Fragment != "" || strings.Contains(template, "#"):
		return nil, fmt.Errorf("url %q: a fragment is never sent to the server; remove it", template)
	case u.Scheme == "http" && !allowPlaintext && !source.IsLoopback(u.Hostname()):
		return nil, fmt.Errorf("url %q: plain http:// would send the headers and the numbers unencrypted; use https://, or allow_plaintext on a network you trust", template)
	}
	s.path, s.query, _ = strings.Cut(template, "?")
	return u, nil
}

func parseField(field string) ([]string, error) {
	if field == "" {
		return nil, errors.New(`field is required: where the number is in the JSON answer, such as "phone" or "user.mobile"`)
	}
	parts := strings.Split(field, ".")
	if slices.Contains(parts, "") {
		return nil, fmt.Errorf("field %q: expected keys joined by single dots, such as user.mobile", field)
	}
	return parts, nil
}

func checkHeader(h http.Header) error {
	for name, values := range h {
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			return fmt.Errorf("header %q: not a header name", name)
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				return fmt.Errorf("header %s: a value may not hold a line break", name)
			}
		}
	}
	return nil
}

func newClient(u *url.URL, caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		if u.Scheme != "https" {
			return nil, fmt.Errorf("ca_file %q: only used with https://", caFile)
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %q: expected PEM certificates, found none", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{
		Transport: tr,
		// A redirect would take the identity, and the header, somewhere
		// the operator did not name.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

func fingerprint(template, field string, h http.Header) string {
	f := sha256.New()
	fmt.Fprintf(f, "%q %q", template, field)
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(f, " %q=%q", name, h[name])
	}
	return hex.EncodeToString(f.Sum(nil))
}

// Name is the source's name in errors, logs and metrics.
func (s *Source) Name() string { return s.name }

// Fingerprint identifies the endpoint, field and header
// (source.Fingerprinter).
func (s *Source) Fingerprint() string { return s.fingerprint }

// Close closes idle connections.
func (s *Source) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// Lookup asks the API for identity and reads the number from its answer.
func (s *Source) Lookup(ctx context.Context, identity string) (string, bool, error) {
	if err := source.CheckIdentity(identity); err != nil {
		return "", false, source.Fail(s.name, err, nil)
	}
	target, err := s.urlFor(identity)
	if err != nil {
		return "", false, source.Fail(s.name, err, nil)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", false, source.Fail(s.name, source.ErrUnavailable, errors.New("the URL does not parse with this identity"))
	}
	req.Header.Set("Accept", "application/json")
	for name, values := range s.header {
		req.Header[name] = values
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", false, source.Fail(s.name, source.ErrUnavailable, withoutURL(err, req.URL))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	switch {
	case err != nil:
		return "", false, source.Fail(s.name, source.ErrUnavailable, fmt.Errorf("reading the answer: %w", withoutURL(err, req.URL)))
	case resp.StatusCode == http.StatusNotFound:
		return "", false, nil
	case resp.StatusCode != http.StatusOK:
		return "", false, source.Fail(s.name, source.ErrUnavailable, fmt.Errorf("status %d from %s, expected 200 or 404", resp.StatusCode, req.URL.Host))
	case len(body) > MaxBody:
		return "", false, source.Fail(s.name, source.ErrBadAnswer, fmt.Errorf("the answer is larger than %d bytes", MaxBody))
	}
	raw, found, err := readField(body, s.field)
	if err != nil {
		return "", false, source.Fail(s.name, source.ErrBadAnswer, err)
	}
	return raw, found, nil
}

// urlFor puts the escaped identity into the URL template.
func (s *Source) urlFor(identity string) (string, error) {
	target := s.path
	if strings.Contains(s.path, "{identity}") {
		if strings.ContainsAny(identity, `/\`) || strings.Trim(identity, ".") == "" {
			return "", fmt.Errorf("%w: it holds '/' or '\\' or only dots, and stands in the URL's path (put {identity} in the query instead)", source.ErrInvalidIdentity)
		}
		target = strings.ReplaceAll(s.path, "{identity}", escapeSegment(identity))
	}
	if s.query != "" {
		target += "?" + strings.ReplaceAll(s.query, "{identity}", url.QueryEscape(identity))
	}
	return target, nil
}

// escapeSegment percent-encodes every byte but RFC 3986's unreserved
// characters, so that no character of the identity means anything to a
// server's router (';' parameters, '%' decoding, '+' as a space).
func escapeSegment(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// withoutURL drops the URL, which holds the identity, from net/http's
// error and keeps the host.
func withoutURL(err error, u *url.URL) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s://%s: %w", ue.Op, u.Scheme, u.Host, ue.Err)
	}
	return err
}
