// Package ldaptest starts a real OpenLDAP server for tests (Debian's slapd
// and ldap-utils): a directory under dc=example,dc=com loaded with slapadd
// before start, served over ldap:// (with StartTLS) and ldaps:// on free
// loopback ports, with a certificate from a CA made for the test, stopped
// and removed when the test ends.
//
// People sit under ou=people as inetOrgPerson entries with the
// Active-Directory-like attributes a phone lookup reads: mobile (as AD
// keeps the mobile number) and sAMAccountName (AD's login name). Anonymous
// clients may not search: a lookup must bind as the reader account.
//
// Without slapd installed the test is skipped, except under CI=true, where
// a missing component is a failure.
package ldaptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

// The directory's fixed names.
const (
	BaseDN       = "dc=example,dc=com"
	PeopleDN     = "ou=people," + BaseDN
	BindDN       = "cn=reader," + BaseDN
	BindPassword = "reader-secret"
)

// Where Debian installs the programs: /usr/sbin, not on a normal user's
// PATH.
var fallbacks = map[string]string{
	"slapd":   "/usr/sbin/slapd",
	"slapadd": "/usr/sbin/slapadd",
}

// Person is one entry under ou=people. Attrs adds attributes (mobile,
// sAMAccountName, telephoneNumber, ...), each with its values.
type Person struct {
	UID   string
	Attrs map[string][]string
}

// Server is one slapd process and its directory.
type Server struct {
	// URL is plain LDAP (StartTLS works on it), LDAPSURL LDAP over TLS.
	URL      string
	LDAPSURL string
	// CAFile is the PEM certificate of the CA that signed the server's.
	CAFile string

	dir   string
	slapd string

	mu   sync.Mutex
	proc *testproc.Process
}

func find(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(fallbacks[name]); err == nil {
		return fallbacks[name]
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (on PATH or at %s): CI must install slapd and ldap-utils (scripts/deps)", name, fallbacks[name])
	}
	t.Skipf("%s not found (on PATH or at %s); run `make deps` to install slapd and ldap-utils", name, fallbacks[name])
	return ""
}

// Start loads people into a new directory and serves it until the test
// ends.
func Start(t testing.TB, people ...Person) *Server {
	t.Helper()
	s := &Server{dir: t.TempDir(), slapd: find(t, "slapd")}
	slapadd := find(t, "slapadd")
	if err := os.Mkdir(filepath.Join(s.dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	s.CAFile = writeCertificates(t, s.dir)
	conf := filepath.Join(s.dir, "slapd.conf")
	if err := os.WriteFile(filepath.Join(s.dir, "ad.schema"), []byte(schema), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(config(s.dir, rand.Text())), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(s.dir, "data.ldif")
	if err := os.WriteFile(data, []byte(LDIF(people...)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(slapadd, "-f", conf, "-l", data).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	t.Cleanup(s.Stop)
	// A port found free can be taken before slapd binds it, by a test
	// running at the same time: then try others.
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 2)
		s.URL = "ldap://127.0.0.1:" + strconv.Itoa(ports[0])
		s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(ports[1])
		err := s.Start()
		if err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "already in use") || attempt == 3 {
			t.Fatal(err)
		}
	}
}

// freePorts returns n distinct loopback ports nobody listens on right now:
// held open together, so that no two are the same.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// Start (re)starts slapd on the same ports and directory, and returns once
// both ports take connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	// -d keeps slapd in the foreground; level 32768 prints only what it
	// always prints, among it "slapd starting" once its sockets are bound.
	cmd := exec.Command(s.slapd, "-h", s.URL+"/ "+s.LDAPSURL+"/", "-f", filepath.Join(s.dir, "slapd.conf"), "-d", "32768")
	proc, err := testproc.Start(cmd, "slapd starting", 20*time.Second)
	if err != nil {
		return fmt.Errorf("slapd on %s: %w", s.URL, err)
	}
	s.proc = proc
	// slapd prints that line before it calls listen(), and says nothing
	// once it has: ask each port until it answers.
	for _, u := range []string{s.URL, s.LDAPSURL} {
		if err := waitForPort(strings.TrimPrefix(strings.TrimPrefix(u, "ldaps://"), "ldap://"), 10*time.Second); err != nil {
			proc.Stop()
			s.proc = nil
			return fmt.Errorf("slapd: %w\n%s", err, proc.Output())
		}
	}
	return nil
}

// waitForPort dials addr until it connects, within timeout.
func waitForPort(addr string, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-deadline:
			return fmt.Errorf("%s does not take connections within %s: %w", addr, timeout, err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Stop shuts slapd down (SIGTERM) and waits for it; a lookup then finds
// the ports closed, as when the directory is down.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.Terminate(syscall.SIGTERM, 10*time.Second)
	s.proc = nil
}

// schema adds AD's login name. The attribute keeps the OID Active
// Directory gives it; the auxiliary class that carries it has one under
// 2.25 (a UUID arc, which needs no registration).
const schema = `
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
	EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256} SINGLE-VALUE )
objectclass ( 2.25.184924567186638672021459507482751320163.1 NAME 'stepupADAccount'
	SUP top AUXILIARY MAY sAMAccountName )
`

// config is slapd.conf for a directory in dir. Only the reader account
// (and the unused rootdn) can bind, and only bound clients may read.
func config(dir, rootPassword string) string {
	return fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include %[1]s/ad.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile %[1]s/ca.pem
TLSCertificateFile %[1]s/server.pem
TLSCertificateKeyFile %[1]s/server.key
database mdb
maxsize 16777216
suffix "%[2]s"
rootdn "cn=admin,%[2]s"
rootpw %[3]s
directory %[1]s/db
index uid,sAMAccountName eq
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
`, dir, BaseDN, rootPassword)
}

// LDIF returns the directory's entries: the base, ou=people, the reader
// account and each person. Every value is base64, so a name holding any
// character survives.
func LDIF(people ...Person) string {
	var b strings.Builder
	entry := func(dn string, attrs [][2]string) {
		fmt.Fprintf(&b, "dn:: %s\n", b64(dn))
		for _, a := range attrs {
			fmt.Fprintf(&b, "%s:: %s\n", a[0], b64(a[1]))
		}
		b.WriteString("\n")
	}
	entry(BaseDN, [][2]string{{"objectClass", "dcObject"}, {"objectClass", "organization"}, {"o", "Example"}, {"dc", "example"}})
	entry(PeopleDN, [][2]string{{"objectClass", "organizationalUnit"}, {"ou", "people"}})
	entry(BindDN, [][2]string{{"objectClass", "organizationalRole"}, {"objectClass", "simpleSecurityObject"},
		{"cn", "reader"}, {"userPassword", BindPassword}})
	for _, p := range people {
		attrs := [][2]string{{"objectClass", "inetOrgPerson"}, {"objectClass", "stepupADAccount"},
			{"uid", p.UID}, {"cn", p.UID}, {"sn", p.UID}}
		names := make([]string, 0, len(p.Attrs))
		for name := range p.Attrs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			for _, v := range p.Attrs[name] {
				attrs = append(attrs, [2]string{name, v})
			}
		}
		entry("uid="+EscapeDNValue(p.UID)+","+PeopleDN, attrs)
	}
	return b.String()
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// EscapeDNValue escapes an attribute value for a DN (RFC 4514 section
// 2.4).
func EscapeDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(`,+"\<>;=`, c) >= 0,
			i == 0 && (c == ' ' || c == '#'),
			i == len(v)-1 && c == ' ':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == 0:
			b.WriteString(`\00`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// writeCertificates makes a CA and a server certificate for 127.0.0.1 and
// localhost, writes them for slapd, and returns the CA's file.
func writeCertificates(t testing.TB, dir string) string {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ldaptest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("server.pem", "CERTIFICATE", der)
	write("server.key", "PRIVATE KEY", keyDER)
	return write("ca.pem", "CERTIFICATE", caDER)
}
