package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/ldap"
)

func init() {
	caddy.RegisterModule(LDAPPhoneSource{})
}

// LDAPPhoneSource finds each identity's phone number in a directory over
// LDAP: OpenLDAP, or Active Directory, whose users keep their mobile number
// in the mobile attribute. Each lookup dials, secures the connection
// (ldaps://, or StartTLS on ldap://), binds as the configured reader and
// runs one search, all within one time-out. The identity is escaped as RFC
// 4515 says before it goes into the filter, so "*)(uid=*" is looked for as
// a name and matches no one.
//
// Caddyfile:
//
//	phone_source ldap {
//		name            <name, default ldap>
//		url             ldap://host[:389] | ldaps://host[:636]
//		start_tls
//		ca_file         <PEM file>
//		allow_plaintext
//		bind_dn         <reader DN>
//		bind_password   <password or placeholder>
//		base_dn         <where the search starts>
//		filter          "(uid={identity})"
//		attribute       <attribute, default mobile>
//		timeout         <duration, default 3s, at most 30s>
//	}
//
// url, base_dn and filter are required; bind_dn and bind_password go
// together (neither: an anonymous search). Placeholders such as
// {env.LDAP_PASSWORD} are expanded in bind_password when the config loads.
// One entry with one value of the attribute is a number; no entry, or an
// entry without it, is "no number"; several entries or values fail the
// lookup closed. A plain ldap:// URL without start_tls is refused for a
// host other than this machine unless allow_plaintext says the network is
// trusted.
type LDAPPhoneSource struct {
	// Names the source in logs, metrics and the status. Default: ldap.
	Name string `json:"name,omitempty"`
	// ldap://host[:389] or ldaps://host[:636].
	URL string `json:"url,omitempty"`
	// Upgrade an ldap:// connection to TLS before binding.
	StartTLS bool `json:"start_tls,omitempty"`
	// A PEM file of the CAs that may sign the server's certificate.
	// Default: the system's.
	CAFile string `json:"ca_file,omitempty"`
	// Let a plain ldap:// connection reach another host unencrypted.
	AllowPlaintext bool `json:"allow_plaintext,omitempty"`
	// The account the source searches as.
	BindDN string `json:"bind_dn,omitempty"`
	// Its password. Placeholders are expanded.
	BindPassword string `json:"bind_password,omitempty"`
	// Where the search starts; the whole subtree is searched.
	BaseDN string `json:"base_dn,omitempty"`
	// The filter, with {identity} where the escaped identity goes.
	Filter string `json:"filter,omitempty"`
	// The attribute that holds the number. Default: mobile.
	Attribute string `json:"attribute,omitempty"`
	// Bounds one lookup, from dialling to the answer. Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	sourceModule
}

// CaddyModule returns the Caddy module information.
func (LDAPPhoneSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sms_stepup.phone_sources.ldap",
		New: func() caddy.Module { return new(LDAPPhoneSource) },
	}
}

// Provision expands the password's placeholders and sets the source up;
// it does not contact the directory (each lookup does).
func (s *LDAPPhoneSource) Provision(caddy.Context) error {
	password, err := expandSecret("ldap", "bind_password", s.BindPassword)
	if err != nil {
		return err
	}
	src, err := ldap.New(ldap.Config{Name: s.Name, URL: s.URL, StartTLS: s.StartTLS, CAFile: s.CAFile,
		AllowPlaintext: s.AllowPlaintext, BindDN: s.BindDN, BindPassword: password, BaseDN: s.BaseDN,
		Filter: s.Filter, Attribute: s.Attribute, Timeout: time.Duration(s.Timeout)})
	if err != nil {
		return fmt.Errorf("phone_source %w", err)
	}
	s.src = src
	return nil
}

// UnmarshalCaddyfile parses the ldap phone source's block.
func (s *LDAPPhoneSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.Errf("phone_source ldap takes no argument, got %q: put url, base_dn and filter in a block", d.Val())
	}
	for d.NextBlock(0) {
		var err error
		switch opt := d.Val(); opt {
		case "name":
			s.Name, err = oneArg(d)
		case "url":
			s.URL, err = oneArg(d)
		case "start_tls", "allow_plaintext":
			if d.NextArg() {
				return d.Errf("%s takes no value, got %q", opt, d.Val())
			}
			if opt == "start_tls" {
				s.StartTLS = true
			} else {
				s.AllowPlaintext = true
			}
		case "ca_file":
			s.CAFile, err = oneArg(d)
		case "bind_dn":
			s.BindDN, err = oneArg(d)
		case "bind_password":
			s.BindPassword, err = oneArg(d)
		case "base_dn":
			s.BaseDN, err = oneArg(d)
		case "filter":
			s.Filter, err = oneArg(d)
		case "attribute":
			s.Attribute, err = oneArg(d)
		case "timeout":
			s.Timeout, err = boundedDurationArg(d, source.MaxTimeout)
		default:
			return d.Errf("unknown ldap phone source option %q: expected name, url, start_tls, ca_file, allow_plaintext, bind_dn, bind_password, base_dn, filter, attribute or timeout", opt)
		}
		if err != nil {
			return err
		}
	}
	if s.URL == "" || s.BaseDN == "" || s.Filter == "" {
		return d.Errf(`phone_source ldap: expected url, base_dn and filter in its block, such as filter "(uid={identity})"`)
	}
	return nil
}

var (
	_ caddy.Provisioner     = (*LDAPPhoneSource)(nil)
	_ caddy.CleanerUpper    = (*LDAPPhoneSource)(nil)
	_ caddyfile.Unmarshaler = (*LDAPPhoneSource)(nil)
	_ phoneSourceModule     = (*LDAPPhoneSource)(nil)
)
