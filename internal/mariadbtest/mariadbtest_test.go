package mariadbtest_test

import (
	"database/sql"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/mariadbtest"
)

// TestStartServesAndStops: the server answers a query, refuses once
// stopped, and answers again when restarted on the same data.
func TestStartServesAndStops(t *testing.T) {
	srv := mariadbtest.Start(t)
	db, err := sql.Open("mysql", srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"CREATE TABLE kept (v VARCHAR(10))", "INSERT INTO kept VALUES ('x')"} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
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
