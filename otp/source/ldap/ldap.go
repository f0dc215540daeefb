// Package ldap finds phone numbers in a directory over LDAP: OpenLDAP, or
// Active Directory, whose users keep their mobile number in the mobile
// attribute. One search per lookup, with a filter such as
// "(sAMAccountName={identity})" in which the identity is escaped as RFC 4515
// says (SECURITY.md rule 31), so "*)(uid=*" is looked for as a name and
// matches no one.
//
// A lookup dials, secures the connection (ldaps://, or StartTLS on
// ldap://), binds as the configured reader and searches, all within one
// time-out that covers every step, the TLS handshake included. Exactly one
// entry with exactly one value of the attribute is a number; no entry, or
// an entry without the attribute, is no number; several entries or
// several values fail closed rather than guess which was meant. Referrals
// are not followed.
package ldap

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
)

// Defaults for what the configuration leaves out.
const (
	DefaultName      = "ldap"
	DefaultAttribute = "mobile"
)

// Config is one directory and how to find a number in it.
type Config struct {
	// Name names the source in errors, logs and metrics; default "ldap".
	Name string
	// URL is ldap://host[:389] or ldaps://host[:636].
	URL string
	// StartTLS upgrades an ldap:// connection to TLS before binding.
	StartTLS bool
	// CAFile is a PEM file of the CAs that may sign the server's
	// certificate; empty means the system's.
	CAFile string
	// AllowPlaintext lets a plain ldap:// connection (no StartTLS) reach a
	// host other than this machine, sending the bind password and the
	// numbers unencrypted. Only for a network you trust.
	AllowPlaintext bool
	// BindDN and BindPassword are the account the source searches as.
	// Both or neither (an anonymous search).
	BindDN       string
	BindPassword string
	// BaseDN is where the search starts, such as
	// "ou=people,dc=example,dc=com"; the whole subtree is searched.
	BaseDN string
	// Filter finds the identity's entry, with {identity} where the escaped
	// identity goes: "(uid={identity})", or "(sAMAccountName={identity})"
	// for Active Directory.
	Filter string
	// Attribute holds the number; default "mobile".
	Attribute string
	// Timeout bounds one lookup, from dialling to the search's answer; 0
	// means source.DefaultTimeout.
	Timeout time.Duration
}

// Source looks numbers up in one directory.
type Source struct {
	name        string
	addr        string
	ldaps       bool
	startTLS    bool
	tls         *tls.Config
	bindDN      string
	password    string
	baseDN      string
	filter      string
	attribute   string
	timeout     time.Duration
	fingerprint string
}

// New checks cfg and returns a source. It does not contact the directory:
// each lookup does.
func New(cfg Config) (*Source, error) {
	s := &Source{
		name: cfg.Name, startTLS: cfg.StartTLS, bindDN: cfg.BindDN, password: cfg.BindPassword,
		baseDN: cfg.BaseDN, filter: cfg.Filter, attribute: cfg.Attribute,
	}
	if s.name == "" {
		s.name = DefaultName
	}
	if s.attribute == "" {
		s.attribute = DefaultAttribute
	}
	if err := source.CheckName(s.name); err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	if err := s.setAddress(cfg); err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	if err := s.setTLS(cfg.CAFile); err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	if err := s.checkBind(); err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	if err := s.checkSearch(); err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	var err error
	if s.timeout, err = source.Timeout(cfg.Timeout); err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	fp := sha256.Sum256([]byte(strings.Join([]string{cfg.URL, s.bindDN, s.baseDN, s.filter, s.attribute}, "\x00")))
	s.fingerprint = hex.EncodeToString(fp[:])
	return s, nil
}

func (s *Source) setAddress(cfg Config) error {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Hostname() == "" {
		return fmt.Errorf("url %q: expected ldap://host[:port] or ldaps://host[:port]", cfg.URL)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("url %q: give the base DN, filter and credentials as options, not in the URL", cfg.URL)
	}
	s.ldaps = u.Scheme == "ldaps"
	port := u.Port()
	if port == "" {
		port = map[bool]string{false: "389", true: "636"}[s.ldaps]
	}
	s.addr = net.JoinHostPort(u.Hostname(), port)
	switch {
	case s.ldaps && s.startTLS:
		return fmt.Errorf("url %q: start_tls is for ldap://; ldaps:// is TLS from the start", cfg.URL)
	case !s.ldaps && !s.startTLS && !cfg.AllowPlaintext && !source.IsLoopback(u.Hostname()):
		return fmt.Errorf("url %q: plain ldap:// would send the bind password and the numbers unencrypted; use ldaps://, start_tls, or allow_plaintext on a network you trust", cfg.URL)
	}
	return nil
}

func (s *Source) setTLS(caFile string) error {
	host, _, _ := net.SplitHostPort(s.addr)
	s.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return nil
	}
	if !s.ldaps && !s.startTLS {
		return fmt.Errorf("ca_file %q: only used with ldaps:// or start_tls", caFile)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("ca_file %q: expected PEM certificates, found none", caFile)
	}
	s.tls.RootCAs = pool
	return nil
}

func (s *Source) checkBind() error {
	switch {
	case s.bindDN == "" && s.password == "":
		return nil
	case s.bindDN == "":
		return errors.New("bind_password without bind_dn: name the account it belongs to")
	case s.password == "":
		// A simple bind with a DN and no password is an anonymous bind
		// that many servers report as a success.
		return fmt.Errorf("bind_dn %q without bind_password: an empty password binds anonymously", s.bindDN)
	}
	if _, err := goldap.ParseDN(s.bindDN); err != nil {
		return fmt.Errorf("bind_dn %q: %w", s.bindDN, err)
	}
	return nil
}

// attributeRE is an attribute description: a name or OID, with options.
var attributeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)(;[A-Za-z0-9-]+)*$`)

func (s *Source) checkSearch() error {
	if s.baseDN == "" {
		return errors.New("base_dn is required: where the search starts, such as ou=people,dc=example,dc=com")
	}
	if _, err := goldap.ParseDN(s.baseDN); err != nil {
		return fmt.Errorf("base_dn %q: %w", s.baseDN, err)
	}
	if !strings.Contains(s.filter, "{identity}") {
		return fmt.Errorf("filter %q: expected {identity} where the identity goes, such as (uid={identity})", s.filter)
	}
	if _, err := goldap.CompileFilter(s.filterFor("x")); err != nil {
		return fmt.Errorf("filter %q: %w", s.filter, err)
	}
	if !attributeRE.MatchString(s.attribute) {
		return fmt.Errorf("attribute %q: expected an attribute name such as mobile", s.attribute)
	}
	return nil
}

// filterFor puts the identity into the filter, escaped (RFC 4515): every
// '(', ')', '*', '\\', NUL and non-ASCII byte becomes \xx, so the identity
// is always one value, never filter syntax.
func (s *Source) filterFor(identity string) string {
	return strings.ReplaceAll(s.filter, "{identity}", goldap.EscapeFilter(identity))
}

// Name is the source's name in errors, logs and metrics.
func (s *Source) Name() string { return s.name }

// Fingerprint identifies the directory and search (source.Fingerprinter).
func (s *Source) Fingerprint() string { return s.fingerprint }

// Close releases nothing: each lookup has its own connection, since with
// answers cached lookups are rare and a long-lived connection would only
// go stale.
func (s *Source) Close() error { return nil }

// Lookup searches for identity's entry and reads its number.
func (s *Source) Lookup(ctx context.Context, identity string) (string, bool, error) {
	if err := source.CheckIdentity(identity); err != nil {
		return "", false, source.Fail(s.name, err, nil)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	conn, err := s.connect(ctx)
	if err != nil {
		return "", false, source.Fail(s.name, source.ErrUnavailable, err)
	}
	defer conn.Close()
	values, err := s.search(ctx, conn, identity)
	if err != nil {
		return "", false, err
	}
	switch len(values) {
	case 0:
		return "", false, nil
	case 1:
		raw := strings.TrimSpace(values[0])
		return raw, raw != "", nil
	}
	return "", false, source.Fail(s.name, source.ErrBadAnswer,
		fmt.Errorf("the entry has %d values of %s, expected one", len(values), s.attribute))
}

// connect dials, secures and binds, every step bounded by ctx: the
// connection's deadline is ctx's, so a server that accepts and then says
// nothing (not even a TLS handshake) cannot hold the lookup longer.
func (s *Source) connect(ctx context.Context) (*goldap.Conn, error) {
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	nc := raw
	if s.ldaps {
		tc := tls.Client(raw, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	conn := goldap.NewConn(nc, s.ldaps)
	conn.Start()
	conn.SetTimeout(time.Until(deadline))
	if s.startTLS {
		if err := conn.StartTLS(s.tls); err != nil {
			conn.Close()
			return nil, fmt.Errorf("StartTLS: %w", err)
		}
	}
	if s.bindDN != "" {
		if err := conn.Bind(s.bindDN, s.password); err != nil {
			conn.Close()
			return nil, fmt.Errorf("bind as %s: %w", s.bindDN, err)
		}
	}
	return conn, nil
}

// search returns the values of the attribute in the one entry the filter
// finds, or none when it finds no entry.
func (s *Source) search(ctx context.Context, conn *goldap.Conn, identity string) ([]string, error) {
	deadline, _ := ctx.Deadline()
	// Two entries are enough to know that the filter is ambiguous.
	req := goldap.NewSearchRequest(s.baseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
		2, int(math.Ceil(time.Until(deadline).Seconds())), false, s.filterFor(identity), []string{s.attribute}, nil)
	res, err := conn.Search(req)
	switch {
	case goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) || (err == nil && len(res.Entries) > 1):
		return nil, source.Fail(s.name, source.ErrBadAnswer, errors.New("more than one entry matches the identity"))
	case goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject):
		// The base DN itself is missing (or hidden from the account): a
		// configuration error, not "no number", or a typo would pass for
		// everyone having none.
		return nil, source.Fail(s.name, source.ErrUnavailable, fmt.Errorf("base_dn %s not found (missing, or hidden from this account): %w", s.baseDN, err))
	case err != nil:
		return nil, source.Fail(s.name, source.ErrUnavailable, err)
	case len(res.Entries) == 0:
		return nil, nil
	}
	// Only the one attribute was asked for, so whatever came back is it,
	// under whichever of its names the server prefers (mobile or
	// mobileTelephoneNumber), with any options.
	var values []string
	for _, a := range res.Entries[0].Attributes {
		values = append(values, a.Values...)
	}
	return values, nil
}
