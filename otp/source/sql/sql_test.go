package sql_test

import (
	"context"
	dbsql "database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/mariadbtest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/pgtest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/sourcetest"
	stepsql "github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/sql"
)

// testTimeout is each test source's time-out: short, so a test of a server
// that never answers is quick; slack is what a loaded CI machine may add.
const (
	testTimeout = 500 * time.Millisecond
	slack       = 3 * time.Second
)

// placeholders and the database/sql driver names, by Config.Driver.
var (
	placeholders = map[string]string{stepsql.Postgres: "$1", stepsql.MySQL: "?", stepsql.SQLite: "?"}
	driverNames  = map[string]string{stepsql.Postgres: "pgx", stepsql.MySQL: "mysql", stepsql.SQLite: "sqlite"}
)

// fill creates the people table in the database at dsn: everyone in
// sourcetest.People, someone with no number, one with a blank one, and two
// rows for one login.
func fill(t *testing.T, driver, dsn string) {
	t.Helper()
	db, err := dbsql.Open(driverNames[driver], dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, "CREATE TABLE people (login VARCHAR(1100) NOT NULL, phone VARCHAR(40))"); err != nil {
		t.Fatal(err)
	}
	rows := [][2]any{{"nophone", nil}, {"blank", "   "}, {"twin", "+81 90-1111-1111"}, {"twin", "+81 90-1111-2222"}}
	for _, p := range sourcetest.People {
		rows = append(rows, [2]any{p.Identity, p.Phone})
	}
	insert := "INSERT INTO people (login, phone) VALUES (?, ?)"
	if driver == stepsql.Postgres {
		insert = "INSERT INTO people (login, phone) VALUES ($1, $2)"
	}
	for _, r := range rows {
		if _, err := db.ExecContext(ctx, insert, r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
}

func newSource(t *testing.T, driver, dsn, query string) *stepsql.Source {
	t.Helper()
	s, err := stepsql.New(stepsql.Config{Name: "app-db", Driver: driver, DSN: dsn, Query: query, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkDatabase runs what every driver must get right against a filled
// database: everyone found, no hostile identity finding anyone (nor
// dropping the table: everyone is found again afterwards), and the
// answers that are not one number refused or taken as "no number".
func checkDatabase(t *testing.T, driver, dsn string) {
	ph := placeholders[driver]
	src := newSource(t, driver, dsn, "SELECT phone FROM people WHERE login = "+ph)
	t.Run("everyone is found by exactly their login", func(t *testing.T) { sourcetest.CheckPeople(t, src, sourcetest.People) })
	t.Run("hostile identities", func(t *testing.T) { sourcetest.CheckHostile(t, src) })
	t.Run("everyone is still found after the hostile identities", func(t *testing.T) { sourcetest.CheckPeople(t, src, sourcetest.People) })

	for _, tc := range []struct {
		name, query, identity string
		wantErr               error
	}{
		{"a login with no row has no number", "SELECT phone FROM people WHERE login = " + ph, "carol", nil},
		{"a NULL number is no number", "SELECT phone FROM people WHERE login = " + ph, "nophone", nil},
		{"a blank number is no number", "SELECT phone FROM people WHERE login = " + ph, "blank", nil},
		{"two rows for one login fail closed", "SELECT phone FROM people WHERE login = " + ph, "twin", source.ErrBadAnswer},
		{"a number kept as an integer fails closed", "SELECT 819012345678 FROM people WHERE login = " + ph, "alice", source.ErrBadAnswer},
		{"two columns fail closed", "SELECT phone, login FROM people WHERE login = " + ph, "alice", source.ErrBadAnswer},
		{"a query the database refuses fails closed", "SELECT phone FROM no_such_table WHERE login = " + ph, "alice", source.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, found, err := newSource(t, driver, dsn, tc.query).Lookup(t.Context(), tc.identity)
			if found || raw != "" || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Lookup = %q, %v, %v; want no number and %v", raw, found, err, tc.wantErr)
			}
			var se *source.Error
			if err != nil && (!errors.As(err, &se) || se.Source != "app-db") {
				t.Errorf("error %v does not name the source", err)
			}
			sourcetest.NoNumberIn(t, err, "+81 90-1111-1111", "+81 90-1111-2222", "819012345678")
		})
	}
}

// checkMisbehaving points sources of driver at a server that accepts and
// never answers and at one that answers garbage, with dsnFor making the
// driver's DSN for an address.
func checkMisbehaving(t *testing.T, driver string, dsnFor func(addr string) string) {
	query := "SELECT phone FROM people WHERE login = " + placeholders[driver]
	t.Run("a server that never answers fails within the time-out", func(t *testing.T) {
		src := newSource(t, driver, dsnFor(sourcetest.Silent(t)), query)
		sourcetest.FailsWithin(t, testTimeout+slack, func(ctx context.Context) (string, bool, error) { return src.Lookup(ctx, "alice") })
	})
	t.Run("a server that answers garbage fails closed", func(t *testing.T) {
		src := newSource(t, driver, dsnFor(sourcetest.Garbage(t, []byte("HTTP/1.1 200 OK\r\n\r\n+81 90-1234-5678"))), query)
		sourcetest.FailsWithin(t, testTimeout+slack, func(ctx context.Context) (string, bool, error) { return src.Lookup(ctx, "alice") })
	})
}

func TestSQLiteSource(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "app.db")
	fill(t, stepsql.SQLite, dsn)
	checkDatabase(t, stepsql.SQLite, dsn)
	t.Run("a database file that is missing fails closed", func(t *testing.T) {
		src := newSource(t, stepsql.SQLite, "file:"+filepath.Join(t.TempDir(), "gone.db")+"?mode=ro", "SELECT phone FROM people WHERE login = ?")
		sourcetest.FailsWithin(t, testTimeout+slack, func(ctx context.Context) (string, bool, error) { return src.Lookup(ctx, "alice") })
	})
}

func TestPostgresSource(t *testing.T) {
	srv := pgtest.Start(t)
	fill(t, stepsql.Postgres, srv.DSN)
	checkDatabase(t, stepsql.Postgres, srv.DSN)
	checkMisbehaving(t, stepsql.Postgres, func(addr string) string {
		return "postgres://postgres@" + addr + "/postgres?sslmode=disable"
	})
	t.Run("a database that is down fails closed at once", func(t *testing.T) {
		src := newSource(t, stepsql.Postgres, srv.DSN, "SELECT phone FROM people WHERE login = $1")
		srv.Stop()
		sourcetest.FailsWithin(t, testTimeout+slack, func(ctx context.Context) (string, bool, error) { return src.Lookup(ctx, "alice") })
	})
}

func TestMariaDBSource(t *testing.T) {
	srv := mariadbtest.Start(t)
	fill(t, stepsql.MySQL, srv.DSN)
	checkDatabase(t, stepsql.MySQL, srv.DSN)
	// The package comment's advice, checked: MariaDB's default collation
	// ignores case and trailing spaces; a binary no-pad one does not.
	t.Run("a no-pad binary collation tells ADMIN with a space from admin", func(t *testing.T) {
		loose := newSource(t, stepsql.MySQL, srv.DSN, "SELECT phone FROM people WHERE login = ?")
		if _, found, err := loose.Lookup(t.Context(), "ADMIN "); err != nil || !found {
			t.Errorf("the default collation: found %v, %v; the package comment says it matches", found, err)
		}
		exact := newSource(t, stepsql.MySQL, srv.DSN, "SELECT phone FROM people WHERE login = ? COLLATE utf8mb4_nopad_bin")
		if raw, found, err := exact.Lookup(t.Context(), "ADMIN "); err != nil || found {
			t.Errorf("COLLATE utf8mb4_nopad_bin: %q, %v, %v; want no number", raw, found, err)
		}
		sourcetest.CheckPeople(t, exact, sourcetest.People)
	})
	checkMisbehaving(t, stepsql.MySQL, func(addr string) string { return "root@tcp(" + addr + ")/test" })
	t.Run("a database that is down fails closed at once", func(t *testing.T) {
		src := newSource(t, stepsql.MySQL, srv.DSN, "SELECT phone FROM people WHERE login = ?")
		srv.Stop()
		sourcetest.FailsWithin(t, testTimeout+slack, func(ctx context.Context) (string, bool, error) { return src.Lookup(ctx, "alice") })
	})
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := stepsql.Config{Driver: stepsql.Postgres, DSN: "postgres://u@127.0.0.1/app", Query: "SELECT mobile FROM users WHERE login = $1"}
	cases := []struct {
		name   string
		change func(*stepsql.Config)
		want   string
	}{
		{"an unknown driver", func(c *stepsql.Config) { c.Driver = "oracle" }, `driver "oracle": expected postgres, mysql or sqlite`},
		{"no dsn", func(c *stepsql.Config) { c.DSN = " " }, "dsn is required"},
		{"no query", func(c *stepsql.Config) { c.Query = "" }, "query is required"},
		{"the identity spliced into the query", func(c *stepsql.Config) { c.Query = "SELECT mobile FROM users WHERE login = '{identity}'" }, "write $1 where the identity goes"},
		{"no parameter", func(c *stepsql.Config) { c.Query = "SELECT mobile FROM users WHERE login = 'alice'" }, "expected exactly one parameter, written $1, for the identity; found none"},
		{"a parameter only inside a string", func(c *stepsql.Config) { c.Query = "SELECT mobile FROM users WHERE login = '$1'" }, "found none"},
		{"a parameter only inside a comment", func(c *stepsql.Config) { c.Query = "SELECT mobile FROM users -- WHERE login = $1" }, "found none"},
		{"a parameter only inside a dollar quote", func(c *stepsql.Config) { c.Query = "SELECT mobile FROM users WHERE login = $q$ $1 $q$" }, "found none"},
		{"two parameters", func(c *stepsql.Config) { c.Query = "SELECT mobile FROM users WHERE login = $1 AND tenant = $2" }, "found $1, $2"},
		{"the second parameter alone", func(c *stepsql.Config) { c.Query = "SELECT mobile FROM users WHERE login = $2" }, "found $2"},
		{"mysql's placeholder for postgres", func(c *stepsql.Config) { c.Query = "SELECT mobile FROM users WHERE login = ?" }, "found none"},
		{"postgres's placeholder for mysql", func(c *stepsql.Config) {
			c.Driver, c.DSN = stepsql.MySQL, "u@tcp(127.0.0.1:3306)/app"
		}, "written ?, for the identity; found none"},
		{"two placeholders for mysql", func(c *stepsql.Config) {
			c.Driver, c.DSN, c.Query = stepsql.MySQL, "u@tcp(127.0.0.1:3306)/app", "SELECT mobile FROM users WHERE login = ? OR email = ?"
		}, "found ?, ?"},
		{"a named parameter for sqlite", func(c *stepsql.Config) {
			c.Driver, c.DSN, c.Query = stepsql.SQLite, "app.db", "SELECT mobile FROM users WHERE login = :login"
		}, "found :login"},
		{"a numbered parameter for sqlite", func(c *stepsql.Config) {
			c.Driver, c.DSN, c.Query = stepsql.SQLite, "app.db", "SELECT mobile FROM users WHERE login = ?1"
		}, "found ?1"},
		{"an UPDATE", func(c *stepsql.Config) { c.Query = "UPDATE users SET mobile = NULL WHERE login = $1" }, "expected a SELECT statement"},
		{"a second statement", func(c *stepsql.Config) { c.Query = "SELECT mobile FROM users WHERE login = $1; DELETE FROM users" }, "expected one statement"},
		{"a quote left open", func(c *stepsql.Config) { c.Query = "SELECT mobile FROM users WHERE login = $1 AND x = 'y" }, "quote is not closed"},
		{"a comment left open", func(c *stepsql.Config) { c.Query = "SELECT mobile FROM users WHERE login = $1 /* x" }, "comment is not closed"},
		{"mysql interpolating parameters itself", func(c *stepsql.Config) {
			c.Driver, c.DSN, c.Query = stepsql.MySQL, "u@tcp(127.0.0.1:3306)/app?interpolateParams=true", "SELECT mobile FROM users WHERE login = ?"
		}, "interpolateParams and multiStatements are refused"},
		{"mysql running several statements", func(c *stepsql.Config) {
			c.Driver, c.DSN, c.Query = stepsql.MySQL, "u@tcp(127.0.0.1:3306)/app?multiStatements=true", "SELECT mobile FROM users WHERE login = ?"
		}, "interpolateParams and multiStatements are refused"},
		{"a postgres dsn that does not parse", func(c *stepsql.Config) { c.DSN = "postgres://u@127.0.0.1:notaport/app" }, "sql: dsn:"},
		{"a negative time-out", func(c *stepsql.Config) { c.Timeout = -time.Second }, "expected a duration from 1ms to 30s"},
		{"a time-out of a minute", func(c *stepsql.Config) { c.Timeout = time.Minute }, "expected a duration from 1ms to 30s"},
		{"a name that is no label", func(c *stepsql.Config) { c.Name = "app db" }, `name "app db"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			s, err := stepsql.New(cfg)
			if err == nil {
				s.Close()
				t.Fatalf("accepted %+v", cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestNewAcceptsQueriesThatTakeTheIdentityOnce(t *testing.T) {
	for driver, queries := range map[string][]string{
		stepsql.Postgres: {
			"SELECT mobile FROM users WHERE login = $1",
			"select mobile from users where login = $1 or email = $1",
			"WITH u AS (SELECT * FROM users WHERE active) SELECT mobile FROM u WHERE login = $1;",
			"SELECT mobile FROM users WHERE login = $1 AND note <> 'what? $2' AND tags ? 'sms' -- $3\n",
			"SELECT mobile FROM users WHERE login = $1 AND note <> E'it\\'s $2' AND body <> $tag$ $2 $tag$",
			"SELECT \"mobile?\" FROM users /* $2 */ WHERE login = $1",
		},
		stepsql.MySQL: {
			"SELECT mobile FROM users WHERE login = ?",
			"SELECT mobile FROM users WHERE login = ? AND note <> 'what?' AND `odd?` = 1 # ?\n",
			"SELECT mobile FROM users WHERE login = ? AND note <> 'it\\'s ?'",
		},
		stepsql.SQLite: {
			"SELECT mobile FROM users WHERE login = ?",
			"SELECT mobile FROM users WHERE login = ? AND note <> 'a '' ? quote'",
		},
	} {
		for _, q := range queries {
			s, err := stepsql.New(stepsql.Config{Driver: driver, DSN: map[string]string{
				stepsql.Postgres: "postgres://u@127.0.0.1/app", stepsql.MySQL: "u@tcp(127.0.0.1:3306)/app", stepsql.SQLite: "app.db",
			}[driver], Query: q})
			if err != nil {
				t.Errorf("%s: %q refused: %v", driver, q, err)
				continue
			}
			s.Close()
		}
	}
}
