package caddymodule

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
)

// The phone sources (sms_stepup.phone_sources.sql, .ldap and .http) are
// thin guest modules around otp/source: each turns its JSON or Caddyfile
// block into the library's Config, expanding placeholders, and hands the
// handler the source it built. The handler chains and caches them
// (phone_sources.go).

// phoneSourceModule is a guest module of the sms_stepup.phone_sources
// namespace, once provisioned.
type phoneSourceModule interface {
	phoneSource() source.PhoneSource
}

// closingSource is what each library source is: a PhoneSource with a
// fingerprint (so that chains configured apart never share cached answers)
// and connections to close.
type closingSource interface {
	source.PhoneSource
	source.Fingerprinter
	Close() error
}

// sourceModule is what the three modules share: the source Provision built,
// closed by Cleanup. The modules embed it, so its methods are theirs.
type sourceModule struct {
	src closingSource
}

func (m *sourceModule) phoneSource() source.PhoneSource { return m.src }

// Cleanup closes the source's connections, if Provision got as far as
// making it.
func (m *sourceModule) Cleanup() error {
	if m.src == nil {
		return nil
	}
	return m.src.Close()
}

// expandSecret expands the placeholders ({env.X}, {file.path}) of option's
// value; an unknown or empty one is an error, so that a missing secret
// stops Caddy from starting instead of failing every lookup.
func expandSecret(module, option, value string) (string, error) {
	if value == "" {
		return "", nil
	}
	v, err := caddy.NewReplacer().ReplaceOrErr(value, true, true)
	if err != nil {
		return "", fmt.Errorf("phone_source %s %s: %w", module, option, err)
	}
	return v, nil
}
