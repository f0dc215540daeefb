package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Answer is what a lookup found.
type Answer struct {
	// Raw is the number as the source stores it; empty when not Found.
	Raw   string
	Found bool
	// Source names the source that found the number (empty when none
	// did), for logs and metrics.
	Source string
	// Cached is set when the answer came from the Cache, not a source.
	Cached bool
}

// Fingerprinter is a source whose answers depend on more than its name: a
// database, a query, a URL. Two sources with one name but different
// fingerprints never share cached answers.
type Fingerprinter interface {
	// Fingerprint is a hash of everything that decides the source's
	// answers. It is no secret's hiding place: callers only hash it
	// further.
	Fingerprint() string
}

// Chain asks its sources in order until one knows the identity.
type Chain struct {
	sources []PhoneSource
	scope   string
}

// NewChain returns a chain of at least one source, each with its own name.
func NewChain(sources ...PhoneSource) (*Chain, error) {
	if len(sources) == 0 {
		return nil, errors.New("phone sources: expected at least one")
	}
	seen := map[string]bool{}
	scope := sha256.New()
	for _, s := range sources {
		name := s.Name()
		if seen[name] {
			return nil, fmt.Errorf("phone sources: two are named %q; give each its own name", name)
		}
		seen[name] = true
		fmt.Fprintf(scope, "%q", name)
		if f, ok := s.(Fingerprinter); ok {
			fmt.Fprintf(scope, "%q", f.Fingerprint())
		}
	}
	return &Chain{sources: sources, scope: hex.EncodeToString(scope.Sum(nil))}, nil
}

// Scope identifies what the chain asks (its sources, in order, with their
// fingerprints): chains with the same scope give the same answers, so they
// may share a Cache's entries; any other may not.
func (c *Chain) Scope() string { return c.scope }

// Find asks each source in turn. A source that does not know the identity
// passes it on to the next. A source that fails ends the lookup with its
// error, and later sources are not asked: they are the fallbacks, not the
// authority. Were a failure to fall through, anyone who can make the first
// source slow or unreachable (or an outage) would have codes sent to
// whatever number a later, perhaps staler, source still holds, such as the
// old number the application's own database has since replaced.
func (c *Chain) Find(ctx context.Context, identity string) (Answer, error) {
	if err := CheckIdentity(identity); err != nil {
		return Answer{}, err
	}
	for _, s := range c.sources {
		if err := ctx.Err(); err != nil {
			return Answer{}, Fail(s.Name(), ErrUnavailable, err)
		}
		raw, found, err := s.Lookup(ctx, identity)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				err = Fail(s.Name(), ErrUnavailable, err)
			}
			return Answer{}, err
		}
		if found && raw != "" {
			return Answer{Raw: raw, Found: true, Source: s.Name()}, nil
		}
	}
	return Answer{}, nil
}
