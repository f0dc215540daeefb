// Package source finds an identity's phone number in the application's own
// data: an SQL database (otp/source/sql), a directory over LDAP
// (otp/source/ldap) or an HTTP API (otp/source/httpsrc). Each is a
// PhoneSource; a Chain asks several in turn, and a Cache keeps their
// answers in the store for a while.
//
// What a source returns is the number as the application stores it,
// unparsed: the caller puts it through the PhonePolicy like any number
// from anywhere else. The rules every source keeps (SECURITY.md rule 31):
// the identity is never spliced into query text (an SQL parameter, RFC 4515
// escaping, URL escaping); each lookup has a time-out; a failure is an
// error, never "no number" and never a fall-through to the next source; and
// errors name the source, never the number.
package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// PhoneSource looks up the phone number of an identity.
type PhoneSource interface {
	// Name names the source in errors, logs and metrics.
	Name() string
	// Lookup returns the number stored for identity, as stored (raw), or
	// found false when the source knows no number for it. A source that
	// cannot answer, or answers something that is not one number, returns
	// an error: an *Error wrapping ErrUnavailable or ErrBadAnswer (or
	// ErrInvalidIdentity), which never contains the number.
	Lookup(ctx context.Context, identity string) (raw string, found bool, err error)
}

// Errors that an *Error wraps, for callers to tell failures apart.
var (
	// ErrUnavailable: the source could not be reached, refused the
	// credentials, failed the query, or did not answer within its
	// time-out.
	ErrUnavailable = errors.New("unavailable")
	// ErrBadAnswer: the source answered, but not with one phone number
	// (several rows or entries, several values, a value that is not
	// text, a body that is not the JSON expected).
	ErrBadAnswer = errors.New("answer is not one phone number")
	// ErrInvalidIdentity: the identity was refused before any source was
	// asked (empty, too long, not UTF-8, a NUL byte).
	ErrInvalidIdentity = errors.New("identity cannot be looked up")
)

// Error is a failed lookup. It names the source and never holds the
// number; the identity is left out too, since it came from the client.
type Error struct {
	Source string
	Err    error
}

func (e *Error) Error() string {
	return "phone source " + strconv.Quote(e.Source) + ": " + e.Err.Error()
}

// Unwrap lets errors.Is find ErrUnavailable, ErrBadAnswer or
// ErrInvalidIdentity, and the cause (context.DeadlineExceeded, say).
func (e *Error) Unwrap() error { return e.Err }

// Fail returns the *Error of source for a failure of kind (ErrUnavailable,
// ErrBadAnswer, ErrInvalidIdentity) with its cause, which must not hold the
// number.
func Fail(source string, kind, cause error) error {
	if cause == nil {
		return &Error{Source: source, Err: kind}
	}
	return &Error{Source: source, Err: fmt.Errorf("%w: %w", kind, cause)}
}

// MaxIdentityLength is the longest identity looked up, in bytes: longer
// than any user name, e-mail address or directory DN in practice, short
// enough that no source is handed a 4 KB string.
const MaxIdentityLength = 1024

// CheckIdentity refuses an identity no source should be asked about. The
// error does not repeat the identity.
func CheckIdentity(identity string) error {
	switch {
	case identity == "":
		return fmt.Errorf("%w: empty", ErrInvalidIdentity)
	case len(identity) > MaxIdentityLength:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidIdentity, MaxIdentityLength)
	case !utf8.ValidString(identity):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidIdentity)
	case strings.IndexByte(identity, 0) >= 0:
		// No database, directory or API keeps a NUL in a name, and some
		// would cut the string there.
		return fmt.Errorf("%w: contains a NUL byte", ErrInvalidIdentity)
	}
	return nil
}

// CheckName refuses a source name that would not do as a metrics label.
func CheckName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("name %q: expected 1 to 64 letters, digits, '-' or '_'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("name %q: expected 1 to 64 letters, digits, '-' or '_'", name)
		}
	}
	return nil
}

// DefaultTimeout bounds one lookup when the configuration names none.
// MaxTimeout is the longest a configuration may ask for: a user waits on
// the lookup, and a source that slow is better treated as down.
const (
	DefaultTimeout = 3 * time.Second
	MaxTimeout     = 30 * time.Second
)

// Timeout returns the time-out a configuration asks for: d, or
// DefaultTimeout when d is 0.
func Timeout(d time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return DefaultTimeout, nil
	case d < time.Millisecond || d > MaxTimeout:
		return 0, fmt.Errorf("timeout %s: expected a duration from 1ms to %s", d, MaxTimeout)
	}
	return d, nil
}

// IsLoopback reports whether host (a name or an address, without port)
// stays on this machine, where a plaintext connection crosses no network.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
