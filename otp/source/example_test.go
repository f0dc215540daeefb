package source_test

import (
	"context"
	dbsql "database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source"
	stepsql "github.com/caddy-sms-stepup/caddy-sms-stepup/otp/source/sql"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

// A chain of one SQLite source, cached in the memory store. What it finds
// is only the number as the application stores it: it goes through the
// phone policy like a number from anywhere else, so a VoIP number in the
// database is refused as it would be if typed in.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	dsn := filepath.Join(dir, "app.db")
	db, _ := dbsql.Open("sqlite", dsn)
	db.Exec("CREATE TABLE users (login TEXT, mobile TEXT)")
	db.Exec("INSERT INTO users VALUES ('alice', '090-1234-5678'), ('bob', '050-1234-5678')")
	db.Close()

	appDB, err := stepsql.New(stepsql.Config{Name: "app-db", Driver: stepsql.SQLite, DSN: dsn,
		Query: "SELECT mobile FROM users WHERE login = ?"})
	if err != nil {
		panic(err)
	}
	defer appDB.Close()
	chain, _ := source.NewChain(appDB)
	store := memory.New(nil, time.Minute)
	defer store.Close()
	keys, _ := otp.DeriveKeys([]byte(strings.Repeat("k", 32)))
	cache, _ := source.NewCache(chain, source.CacheConfig{Store: store, Keys: keys})
	policy, _ := otp.NewPhonePolicy(otp.PhonePolicyConfig{DefaultRegion: "JP"})

	for _, identity := range []string{"alice", "bob", "carol", "alice"} {
		answer, err := cache.Find(context.Background(), identity)
		switch {
		case err != nil:
			fmt.Println(identity, "lookup failed:", err)
		case !answer.Found:
			fmt.Println(identity, "has no number")
		default:
			phone, err := policy.Check(answer.Raw)
			if err != nil {
				fmt.Printf("%s: the number from %s is refused: %v\n", identity, answer.Source, err)
				continue
			}
			fmt.Printf("%s: %s from %s (cached: %v)\n", identity, phone.Masked, answer.Source, answer.Cached)
		}
	}
	// Output:
	// alice: +81 90-****-5678 from app-db (cached: false)
	// bob: the number from app-db is refused: numbers of type voip are not accepted
	// carol has no number
	// alice: +81 90-****-5678 from app-db (cached: true)
}
