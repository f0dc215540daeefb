package caddymodule

import (
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
	stepsql "github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/sql"
)

func init() {
	caddy.RegisterModule(SQLPhoneSource{})
}

// SQLPhoneSource finds each identity's phone number in the application's
// own database (PostgreSQL, MySQL or MariaDB, or an SQLite file) with one
// SELECT that takes the identity as its only parameter: $1 for postgres,
// ? for mysql and sqlite. The identity always travels as a bound
// parameter, never spliced into the query's text, and a query that does
// not take exactly one parameter is refused when the config loads.
//
// Caddyfile:
//
//	phone_source sql {
//		name      <name, default sql>
//		driver    postgres | mysql | sqlite
//		dsn       <connection string or placeholder>
//		query     "SELECT mobile FROM users WHERE login = $1"
//		timeout   <duration, default 3s, at most 30s>
//		max_conns <n, default 4>
//	}
//
// driver, dsn and query are required. The query selects one column, the
// number as the application keeps it: no row, NULL or an empty string is
// "no number"; several rows, or a value that is not text, fail the lookup
// closed. Placeholders such as {env.APP_DB_DSN} are expanded in dsn when
// the config loads. Give the source a database user that may only read
// what the query reads.
//
// MySQL and MariaDB compare strings ignoring case and trailing spaces under
// their default collations, so "Alice " finds alice's row; where identities
// may differ only so, compare exactly: WHERE login = ? COLLATE
// utf8mb4_nopad_bin.
type SQLPhoneSource struct {
	// Names the source in logs, metrics and the status. Default: sql.
	Name string `json:"name,omitempty"`
	// postgres, mysql (MariaDB too) or sqlite.
	Driver string `json:"driver,omitempty"`
	// The driver's connection string: a postgres:// URL, a MySQL DSN
	// (user:pass@tcp(host:3306)/db) or an SQLite file
	// (file:/path/app.db?mode=ro). Placeholders are expanded.
	DSN string `json:"dsn,omitempty"`
	// One SELECT of the number, the identity its only parameter.
	Query string `json:"query,omitempty"`
	// Bounds one lookup, connecting included. Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// The most connections kept open. Default: 4.
	MaxConns int `json:"max_conns,omitempty"`

	sourceModule
}

// CaddyModule returns the Caddy module information.
func (SQLPhoneSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sms_stepup.phone_sources.sql",
		New: func() caddy.Module { return new(SQLPhoneSource) },
	}
}

// Provision expands the DSN's placeholders and sets the source up; it
// does not connect (the first lookup does).
func (s *SQLPhoneSource) Provision(caddy.Context) error {
	dsn, err := expandSecret("sql", "dsn", s.DSN)
	if err != nil {
		return err
	}
	src, err := stepsql.New(stepsql.Config{Name: s.Name, Driver: s.Driver, DSN: dsn, Query: s.Query,
		Timeout: time.Duration(s.Timeout), MaxConns: s.MaxConns})
	if err != nil {
		return fmt.Errorf("phone_source %w", err)
	}
	s.src = src
	return nil
}

// UnmarshalCaddyfile parses the sql phone source's block.
func (s *SQLPhoneSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.Errf("phone_source sql takes no argument, got %q: put driver, dsn and query in a block", d.Val())
	}
	for d.NextBlock(0) {
		var err error
		switch opt := d.Val(); opt {
		case "name":
			s.Name, err = oneArg(d)
		case "driver":
			s.Driver, err = oneArg(d)
		case "dsn":
			s.DSN, err = oneArg(d)
		case "query":
			s.Query, err = oneArg(d)
		case "timeout":
			s.Timeout, err = boundedDurationArg(d, source.MaxTimeout)
		case "max_conns":
			s.MaxConns, err = boundedIntArg(d, 1, 100)
		default:
			return d.Errf("unknown sql phone source option %q: expected name, driver, dsn, query, timeout or max_conns", opt)
		}
		if err != nil {
			return err
		}
	}
	if s.Driver == "" || s.DSN == "" || strings.TrimSpace(s.Query) == "" {
		return d.Errf(`phone_source sql: expected driver, dsn and query in its block, such as query "SELECT mobile FROM users WHERE login = $1"`)
	}
	return nil
}

var (
	_ caddy.Provisioner     = (*SQLPhoneSource)(nil)
	_ caddy.CleanerUpper    = (*SQLPhoneSource)(nil)
	_ caddyfile.Unmarshaler = (*SQLPhoneSource)(nil)
	_ phoneSourceModule     = (*SQLPhoneSource)(nil)
)
