// Package sql finds phone numbers in the application's own database, with
// one SELECT that takes the identity as its only parameter: $1 for
// PostgreSQL (github.com/jackc/pgx/v5), ? for MySQL and MariaDB
// (github.com/go-sql-driver/mysql) and SQLite (modernc.org/sqlite, no cgo).
// The identity is always sent as a bound parameter, never spliced into the
// query's text (SECURITY.md rule 31), and the constructor refuses a query
// that does not take exactly one.
//
// The query selects one column, the number as the application stores it.
// No row, a NULL or an empty string means "no number"; several rows, or a
// value that is not text, is an error: the lookup fails closed rather than
// guess which row was meant.
//
// MySQL and MariaDB compare strings under their default collations ignoring
// case and trailing spaces, so "Alice " finds alice's row. Where the
// identities that reach the step-up may differ only so, compare exactly:
// WHERE login = ? COLLATE utf8mb4_nopad_bin.
package sql

import (
	"context"
	"crypto/sha256"
	dbsql "database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
)

// The drivers a Config may name.
const (
	Postgres = "postgres"
	MySQL    = "mysql"
	SQLite   = "sqlite"
)

// DefaultName names the source when the configuration does not.
const DefaultName = "sql"

// DefaultMaxConns caps the connections one source keeps open: lookups are
// few (answers are cached) and short.
const DefaultMaxConns = 4

// Config is one database and the query that finds a number in it.
type Config struct {
	// Name names the source in errors, logs and metrics; default "sql".
	Name string
	// Driver is postgres, mysql (for MariaDB too) or sqlite.
	Driver string
	// DSN is the driver's connection string: a postgres:// URL or
	// key=value list, a MySQL DSN (user:pass@tcp(host:3306)/db), or an
	// SQLite file name (file:/path/app.db?mode=ro for read-only). Give the
	// source a database user that may only read what the query reads.
	DSN string
	// Query is one SELECT of the phone number, with the identity as its
	// only parameter: "SELECT mobile FROM users WHERE login = $1" for
	// postgres, "... WHERE login = ?" for mysql and sqlite.
	Query string
	// Timeout bounds one lookup, connecting included; 0 means
	// source.DefaultTimeout.
	Timeout time.Duration
	// MaxConns caps the open connections; 0 means DefaultMaxConns.
	MaxConns int
}

// Source looks numbers up in one database.
type Source struct {
	name        string
	query       string
	timeout     time.Duration
	fingerprint string
	db          *dbsql.DB
}

// New checks cfg and returns a source. It does not connect: the first
// lookup does.
func New(cfg Config) (*Source, error) {
	name := cfg.Name
	if name == "" {
		name = DefaultName
	}
	if err := source.CheckName(name); err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	if _, ok := placeholder[cfg.Driver]; !ok {
		return nil, fmt.Errorf("sql: driver %q: expected postgres, mysql or sqlite", cfg.Driver)
	}
	if strings.TrimSpace(cfg.DSN) == "" {
		return nil, fmt.Errorf("sql: dsn is required: how to reach the %s database", cfg.Driver)
	}
	if err := checkQuery(cfg.Driver, cfg.Query); err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	timeout, err := source.Timeout(cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	maxConns := cfg.MaxConns
	switch {
	case maxConns == 0:
		maxConns = DefaultMaxConns
	case maxConns < 0:
		return nil, fmt.Errorf("sql: max_conns %d: expected a positive number", maxConns)
	}
	db, err := open(cfg.Driver, cfg.DSN, timeout)
	if err != nil {
		return nil, fmt.Errorf("sql: dsn: %w", err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	fp := sha256.Sum256([]byte(cfg.Driver + "\x00" + cfg.DSN + "\x00" + cfg.Query))
	return &Source{
		name:        name,
		query:       cfg.Query,
		timeout:     timeout,
		fingerprint: hex.EncodeToString(fp[:]),
		db:          db,
	}, nil
}

// open prepares the driver's connection pool without connecting.
func open(driver, dsn string, timeout time.Duration) (*dbsql.DB, error) {
	switch driver {
	case Postgres:
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, err
		}
		if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > timeout {
			cfg.ConnectTimeout = timeout
		}
		return stdlib.OpenDB(*cfg), nil
	case MySQL:
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, err
		}
		// interpolateParams would have the driver write the identity into
		// the query text itself (quoted, but spliced all the same), and
		// multiStatements would let a ';' run a second statement.
		if cfg.InterpolateParams || cfg.MultiStatements {
			return nil, errors.New("interpolateParams and multiStatements are refused: the identity must travel as a parameter of one statement")
		}
		if cfg.Timeout == 0 || cfg.Timeout > timeout {
			cfg.Timeout = timeout
		}
		// The driver logs to stderr by default; its errors come back to
		// the caller, who logs them.
		cfg.Logger = mysql.Logger(discard{})
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, err
		}
		return dbsql.OpenDB(connector), nil
	default:
		return dbsql.Open("sqlite", dsn)
	}
}

type discard struct{}

func (discard) Print(...any) {}

// Name is the source's name in errors, logs and metrics.
func (s *Source) Name() string { return s.name }

// Fingerprint identifies the database and query (source.Fingerprinter).
func (s *Source) Fingerprint() string { return s.fingerprint }

// Close closes the connections.
func (s *Source) Close() error { return s.db.Close() }

// Lookup runs the query with identity as its parameter.
func (s *Source) Lookup(ctx context.Context, identity string) (string, bool, error) {
	if err := source.CheckIdentity(identity); err != nil {
		return "", false, source.Fail(s.name, err, nil)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, s.query, identity)
	if err != nil {
		return "", false, source.Fail(s.name, source.ErrUnavailable, err)
	}
	defer rows.Close()
	if cols, err := rows.Columns(); err != nil || len(cols) != 1 {
		return "", false, source.Fail(s.name, source.ErrBadAnswer, fmt.Errorf("the query selects %d columns, expected one: the phone number", len(cols)))
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", false, source.Fail(s.name, source.ErrUnavailable, err)
		}
		return "", false, nil
	}
	// Scanned into any, so that no conversion error of database/sql (which
	// quotes the value) can carry the number.
	var v any
	if err := rows.Scan(&v); err != nil {
		return "", false, source.Fail(s.name, source.ErrUnavailable, err)
	}
	if rows.Next() {
		return "", false, source.Fail(s.name, source.ErrBadAnswer, errors.New("more than one row matches the identity"))
	}
	if err := rows.Err(); err != nil {
		return "", false, source.Fail(s.name, source.ErrUnavailable, err)
	}
	var raw string
	switch v := v.(type) {
	case nil:
		return "", false, nil
	case string:
		raw = v
	case []byte:
		raw = string(v)
	default:
		// A number kept as an integer has lost its leading 0 or +: refuse
		// it rather than guess.
		return "", false, source.Fail(s.name, source.ErrBadAnswer, fmt.Errorf("the phone number is a %T, expected text", v))
	}
	raw = strings.TrimSpace(raw)
	return raw, raw != "", nil
}
