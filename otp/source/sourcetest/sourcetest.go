// Package sourcetest holds what the tests of every phone source share: the
// people each test directory, database or API is filled with, the hostile
// identities the issue lists (and a few more of the same kinds), and
// servers that misbehave (one that accepts and never answers, one that
// answers garbage).
package sourcetest

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
)

// Person is one identity a test fills its source with.
type Person struct {
	Identity string
	Phone    string
}

// People is what every source test stores. Alice and admin are ordinary;
// the third has in her name the characters that quoting and escaping are
// about, and is found only when asked for by exactly that name.
var People = []Person{
	{Identity: "alice", Phone: "+81 90-1234-5678"},
	{Identity: "admin", Phone: "+81 90-0000-0001"},
	{Identity: `o'brien*(x)\y`, Phone: "+81 80-2222-3333"},
}

// Hostile is an identity that tries to escape its place in a query.
type Hostile struct {
	// Name reads as a sentence in a subtest name.
	Name     string
	Identity string
	// Refused is set when source.CheckIdentity turns it away before any
	// source is asked.
	Refused bool
}

// HostileIdentities returns the identities that try to escape (a
// quote, an LDAP filter, a path, a NUL byte, 4 KB) and others of the same
// kinds. None of them is the identity of anyone in People, so a lookup
// that matches someone has been tricked.
func HostileIdentities() []Hostile {
	return []Hostile{
		{Name: "a quote that makes the SQL condition always true", Identity: `' OR '1'='1`},
		{Name: "a quote and a comment that drop the rest of the SQL", Identity: `admin'--`},
		{Name: "a second SQL statement", Identity: `alice'; DROP TABLE people; --`},
		{Name: "an SQL LIKE wildcard", Identity: `adm%`},
		{Name: "an LDAP filter that matches everyone", Identity: `*)(uid=*`},
		{Name: "an LDAP filter that adds an alternative", Identity: `nobody)(|(uid=admin`},
		{Name: "an LDAP wildcard", Identity: `adm*`},
		{Name: "a path that climbs to admin", Identity: `../admin`},
		{Name: "a path that climbs back down to admin", Identity: `alice/../admin`},
		{Name: "an encoded path that climbs to admin", Identity: `%2e%2e%2fadmin`},
		{Name: "a query string that names admin", Identity: `alice?id=admin`},
		{Name: "a second query parameter that names admin", Identity: `x&login=admin`},
		{Name: "a path parameter after the name", Identity: `admin;jsessionid=x`},
		{Name: "a fragment", Identity: `admin#alice`},
		{Name: "a backslash path", Identity: `..\admin`},
		{Name: "a header injected through CR LF", Identity: "alice\r\nX-Identity: admin"},
		{Name: "1000 bytes of LDAP filter", Identity: strings.Repeat("*)(uid=*", 125)},
		{Name: "a NUL byte that cuts the name short", Identity: "admin\x00evil", Refused: true},
		{Name: "a 4 KB string", Identity: strings.Repeat("A", 4096), Refused: true},
		{Name: "bytes that are not UTF-8", Identity: "adm\xffin", Refused: true},
		{Name: "an empty identity", Identity: "", Refused: true},
	}
}

// CheckPeople looks up each of people (People, or those of them a source
// can be asked about) and expects each number back exactly as stored.
func CheckPeople(t *testing.T, s source.PhoneSource, people []Person) {
	t.Helper()
	for _, p := range people {
		raw, found, err := s.Lookup(t.Context(), p.Identity)
		if err != nil || !found || raw != p.Phone {
			t.Errorf("Lookup(%q) = %q, %v, %v; want %q", p.Identity, raw, found, err, p.Phone)
		}
	}
}

// CheckHostile looks up every hostile identity, one subtest each: none may
// find anyone's number, and those CheckIdentity refuses fail with
// ErrInvalidIdentity. A source that errs on the others (a server that
// cannot take the string, say) has failed closed and passes too, as long as
// its error holds no number.
func CheckHostile(t *testing.T, s source.PhoneSource) {
	t.Helper()
	for _, h := range HostileIdentities() {
		t.Run(h.Name+" finds no one", func(t *testing.T) {
			raw, found, err := s.Lookup(t.Context(), h.Identity)
			if found || raw != "" {
				t.Fatalf("found %q", raw)
			}
			if h.Refused && !errors.Is(err, source.ErrInvalidIdentity) {
				t.Errorf("error %v, want ErrInvalidIdentity", err)
			}
			if err != nil {
				NoNumberIn(t, err)
				if !h.Refused {
					t.Logf("failed closed: %v", err)
				}
			}
		})
	}
}

// NoNumberIn fails the test if err's text holds any number of People (or
// extra) in any of its written forms: as stored, as digits only, or the
// national significant digits.
func NoNumberIn(t *testing.T, err error, extra ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	var phones []string
	for _, p := range People {
		phones = append(phones, p.Phone)
	}
	for _, phone := range append(phones, extra...) {
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, phone)
		for _, form := range []string{phone, digits, strings.TrimPrefix(digits, "81")} {
			if form != "" && strings.Contains(msg, form) {
				t.Errorf("the error holds a number (%q): %v", form, err)
			}
		}
	}
}

// Silent listens on a loopback port, accepts every connection and never
// reads nor writes: a server that is up but does not answer. It returns
// the address; the connections are closed when the test ends.
func Silent(t testing.TB) string {
	t.Helper()
	return serve(t, func(net.Conn) {})
}

// Garbage listens on a loopback port and answers every connection with
// reply, whatever it is sent, then closes it.
func Garbage(t testing.TB, reply []byte) string {
	t.Helper()
	return serve(t, func(c net.Conn) {
		_, _ = c.Write(reply)
		_ = c.Close()
	})
}

func serve(t testing.TB, handle func(net.Conn)) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			handle(c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// FailsWithin runs lookup and checks that it fails with ErrUnavailable
// (not "not found", not a number) and returns within limit. Time-outs are
// real here: the point is how long a user would wait.
func FailsWithin(t *testing.T, limit time.Duration, lookup func(ctx context.Context) (string, bool, error)) error {
	t.Helper()
	start := time.Now()
	raw, found, err := lookup(t.Context())
	elapsed := time.Since(start)
	if found || raw != "" || err == nil {
		t.Fatalf("lookup = %q, %v, %v; want a failure", raw, found, err)
	}
	if !errors.Is(err, source.ErrUnavailable) && !errors.Is(err, source.ErrBadAnswer) {
		t.Errorf("error %v, want ErrUnavailable or ErrBadAnswer", err)
	}
	var se *source.Error
	if !errors.As(err, &se) || se.Source == "" {
		t.Errorf("error %v does not name its source", err)
	}
	if elapsed > limit {
		t.Errorf("failed after %s, want within %s", elapsed, limit)
	}
	NoNumberIn(t, err)
	t.Logf("failed closed after %s: %v", elapsed.Round(time.Millisecond), err)
	return err
}
