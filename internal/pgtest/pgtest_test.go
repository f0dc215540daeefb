package pgtest_test

import (
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/pgtest"
)

// TestStartServesAndStops: the server answers a query, refuses once
// stopped, and answers again when restarted on the same data.
func TestStartServesAndStops(t *testing.T) {
	srv := pgtest.Start(t)
	db, err := sql.Open("pgx", srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('x')"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := db.PingContext(t.Context()); err == nil {
		t.Error("a stopped server answered")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := db.QueryRowContext(t.Context(), "SELECT v FROM kept").Scan(&v); err != nil || v != "x" {
		t.Errorf("after a restart: %q, %v", v, err)
	}
}
