package ldap_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/ldaptest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/ldap"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/sourcetest"
)

const (
	testTimeout = 500 * time.Millisecond
	slack       = 3 * time.Second
)

// directory starts slapd with everyone in sourcetest.People (their
// sAMAccountName the same as their uid, as AD would have it), someone with
// two mobile numbers, someone with none, and two entries that share one
// sAMAccountName.
func directory(t *testing.T) *ldaptest.Server {
	var people []ldaptest.Person
	for _, p := range sourcetest.People {
		people = append(people, ldaptest.Person{UID: p.Identity, Attrs: map[string][]string{
			"mobile": {p.Phone}, "sAMAccountName": {p.Identity},
		}})
	}
	people = append(people,
		ldaptest.Person{UID: "twophones", Attrs: map[string][]string{"mobile": {"+81 90-1111-1111", "+81 90-1111-2222"}}},
		ldaptest.Person{UID: "nomobile", Attrs: map[string][]string{"telephoneNumber": {"+81 3-1234-5678"}}},
		ldaptest.Person{UID: "twin1", Attrs: map[string][]string{"sAMAccountName": {"twin"}, "mobile": {"+81 90-3333-1111"}}},
		ldaptest.Person{UID: "twin2", Attrs: map[string][]string{"sAMAccountName": {"twin"}, "mobile": {"+81 90-3333-2222"}}},
	)
	return ldaptest.Start(t, people...)
}

func config(srv *ldaptest.Server) ldap.Config {
	return ldap.Config{
		Name: "directory", URL: srv.LDAPSURL, CAFile: srv.CAFile,
		BindDN: ldaptest.BindDN, BindPassword: ldaptest.BindPassword,
		BaseDN: ldaptest.BaseDN, Filter: "(uid={identity})", Timeout: testTimeout,
	}
}

func newSource(t *testing.T, cfg ldap.Config) *ldap.Source {
	t.Helper()
	s, err := ldap.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLDAPSource(t *testing.T) {
	srv := directory(t)
	for name, change := range map[string]func(*ldap.Config){
		"over ldaps://":                    func(*ldap.Config) {},
		"over ldap:// with StartTLS":       func(c *ldap.Config) { c.URL, c.StartTLS = srv.URL, true },
		"over plain ldap:// on loopback":   func(c *ldap.Config) { c.URL, c.CAFile = srv.URL, "" },
		"by Active Directory's login name": func(c *ldap.Config) { c.Filter = "(&(objectClass=inetOrgPerson)(sAMAccountName={identity}))" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := config(srv)
			change(&cfg)
			src := newSource(t, cfg)
			sourcetest.CheckPeople(t, src, sourcetest.People)
			sourcetest.CheckHostile(t, src)
		})
	}

	for _, tc := range []struct {
		name     string
		change   func(*ldap.Config)
		identity string
		wantErr  error
	}{
		{"an identity with no entry has no number", nil, "carol", nil},
		{"an entry without the attribute has no number", nil, "nomobile", nil},
		{"another attribute is read when configured", func(c *ldap.Config) { c.Attribute = "telephoneNumber" }, "alice", nil},
		{"an entry with two numbers fails closed", nil, "twophones", source.ErrBadAnswer},
		{"two entries for one login fail closed", func(c *ldap.Config) { c.Filter = "(sAMAccountName={identity})" }, "twin", source.ErrBadAnswer},
		{"a wrong bind password fails closed", func(c *ldap.Config) { c.BindPassword = "wrong" }, "alice", source.ErrUnavailable},
		{"an anonymous search, from which this directory hides everything, fails closed", func(c *ldap.Config) {
			c.BindDN, c.BindPassword = "", ""
		}, "alice", source.ErrUnavailable},
		{"a base DN that does not exist fails closed", func(c *ldap.Config) { c.BaseDN = "ou=gone,dc=example,dc=com" }, "alice", source.ErrUnavailable},
		{"a server certificate from another CA fails closed", func(c *ldap.Config) { c.CAFile = otherCA(t) }, "alice", source.ErrUnavailable},
		{"a server certificate the system does not trust fails closed", func(c *ldap.Config) { c.CAFile = "" }, "alice", source.ErrUnavailable},
		{"StartTLS to a certificate from another CA fails closed", func(c *ldap.Config) {
			c.URL, c.StartTLS, c.CAFile = srv.URL, true, otherCA(t)
		}, "alice", source.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(srv)
			if tc.change != nil {
				tc.change(&cfg)
			}
			raw, found, err := newSource(t, cfg).Lookup(t.Context(), tc.identity)
			if found || raw != "" || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Lookup = %q, %v, %v; want no number and %v", raw, found, err, tc.wantErr)
			}
			var se *source.Error
			if err != nil && (!errors.As(err, &se) || se.Source != "directory") {
				t.Errorf("error %v does not name the source", err)
			}
			sourcetest.NoNumberIn(t, err, "+81 90-1111-1111", "+81 90-1111-2222", "+81 90-3333-1111", "+81 90-3333-2222", "+81 3-1234-5678")
			if err != nil {
				t.Logf("failed closed: %v", err)
			}
		})
	}

	t.Run("a directory that is down fails closed at once", func(t *testing.T) {
		src := newSource(t, config(srv))
		srv.Stop()
		sourcetest.FailsWithin(t, testTimeout+slack, func(ctx context.Context) (string, bool, error) { return src.Lookup(ctx, "alice") })
	})
}

func TestLDAPSourceFailsWithinItsTimeout(t *testing.T) {
	silent := sourcetest.Silent(t)
	garbage := sourcetest.Garbage(t, []byte("HTTP/1.1 200 OK\r\n\r\nmobile: +81 90-1234-5678\n"))
	caFile := otherCA(t)
	for name, cfg := range map[string]ldap.Config{
		"a server that never answers the bind":               {URL: "ldap://" + silent},
		"a server that never answers the TLS handshake":      {URL: "ldaps://" + silent, CAFile: caFile},
		"a server that never answers StartTLS":               {URL: "ldap://" + silent, StartTLS: true, CAFile: caFile},
		"a server that answers garbage":                      {URL: "ldap://" + garbage},
		"a server that answers garbage to the TLS handshake": {URL: "ldaps://" + garbage, CAFile: caFile},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.BindDN, cfg.BindPassword, cfg.BaseDN, cfg.Filter, cfg.Timeout = "cn=reader,dc=example,dc=com", "pw", "dc=example,dc=com", "(uid={identity})", testTimeout
			src := newSource(t, cfg)
			sourcetest.FailsWithin(t, testTimeout+slack, func(ctx context.Context) (string, bool, error) { return src.Lookup(ctx, "alice") })
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := ldap.Config{
		URL: "ldaps://dc1.corp.example", BindDN: "cn=reader,dc=corp,dc=example", BindPassword: "pw",
		BaseDN: "dc=corp,dc=example", Filter: "(sAMAccountName={identity})",
	}
	cases := []struct {
		name   string
		change func(*ldap.Config)
		want   string
	}{
		{"no url", func(c *ldap.Config) { c.URL = "" }, "expected ldap://host[:port] or ldaps://host[:port]"},
		{"an http url", func(c *ldap.Config) { c.URL = "https://dc1.corp.example" }, "expected ldap://host[:port]"},
		{"a search in the url", func(c *ldap.Config) { c.URL = "ldap://dc1/dc=corp?mobile" }, "not in the URL"},
		{"plain ldap:// to another host", func(c *ldap.Config) { c.URL = "ldap://dc1.corp.example" }, "use ldaps://, start_tls, or allow_plaintext"},
		{"StartTLS on ldaps://", func(c *ldap.Config) { c.StartTLS = true }, "start_tls is for ldap://"},
		{"a CA file that is missing", func(c *ldap.Config) { c.CAFile = "/nonexistent/ca.pem" }, "ca_file"},
		{"a CA file without certificates", func(c *ldap.Config) { c.CAFile = notPEM(t) }, "expected PEM certificates, found none"},
		{"a CA file with plain ldap://", func(c *ldap.Config) {
			c.URL, c.AllowPlaintext, c.CAFile = "ldap://dc1", true, notPEM(t)
		}, "only used with ldaps:// or start_tls"},
		{"a bind DN without a password", func(c *ldap.Config) { c.BindPassword = "" }, "an empty password binds anonymously"},
		{"a password without a bind DN", func(c *ldap.Config) { c.BindDN = "" }, "bind_password without bind_dn"},
		{"a bind DN that is no DN", func(c *ldap.Config) { c.BindDN = "reader" }, `bind_dn "reader"`},
		{"no base DN", func(c *ldap.Config) { c.BaseDN = "" }, "base_dn is required"},
		{"a filter without the identity", func(c *ldap.Config) { c.Filter = "(sAMAccountName=alice)" }, "expected {identity} where the identity goes"},
		{"a filter that does not parse", func(c *ldap.Config) { c.Filter = "sAMAccountName={identity}" }, `filter "sAMAccountName={identity}"`},
		{"an attribute that is no name", func(c *ldap.Config) { c.Attribute = "mobile)(x" }, "expected an attribute name"},
		{"a time-out of a minute", func(c *ldap.Config) { c.Timeout = time.Minute }, "expected a duration from 1ms to 30s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			if _, err := ldap.New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
	for name, change := range map[string]func(*ldap.Config){
		"plain ldap:// on a network the operator trusts": func(c *ldap.Config) { c.URL, c.AllowPlaintext = "ldap://dc1.corp.example", true },
		"StartTLS on ldap://":                            func(c *ldap.Config) { c.URL, c.StartTLS = "ldap://dc1.corp.example:389", true },
		"an anonymous search":                            func(c *ldap.Config) { c.BindDN, c.BindPassword = "", "" },
		"an attribute with an option":                    func(c *ldap.Config) { c.Attribute = "mobile;lang-ja" },
	} {
		cfg := good
		change(&cfg)
		if _, err := ldap.New(cfg); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}

// otherCA writes the certificate of a CA that signed nothing the test
// servers present.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func notPEM(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
