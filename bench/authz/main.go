// Command authz is the external auth service of the forward_auth benchmark
// in bench/run (Authelia's pattern: Caddy asks it about every request). For
// a fair comparison it checks the same step-up cookie the plugin checks: an
// HS256 JWT (golang-jwt v5, algorithm pinned) with typ stepup+jwt, the key
// id, issuer, audience, expiry and issued-at, whose subject must be the
// identity in the request's identity header and whose session hash must be
// empty (the benchmark configures no session). It signs nothing and keeps
// no cache: every request is a full parse and HMAC check, as a stateless
// auth endpoint does.
//
//	authz -addr 127.0.0.1:0 -key <the plugin's signing_key>
//
// 200 with X-Stepup-Identity when the token is good, 401 otherwise. It
// prints "listening on <addr>" once it accepts connections.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/golang-jwt/jwt/v5"
)

// Token settings of the plugin (caddymodule/handler.go, otp/token.go,
// otp/keys.go); the audience is the scope of bench/Caddyfile's realm
// (caddymodule/scope.go).
const (
	tokenType = "stepup+jwt"
	issuer    = "caddy-sms-stepup"
	audience  = "urn:caddy-sms-stepup:realm:bench"
)

type claims struct {
	jwt.RegisteredClaims
	SessionHash string `json:"sid,omitempty"`
	AuthTime    int64  `json:"auth_time"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	root := flag.String("key", "", "the plugin's signing_key (at least 32 bytes)")
	cookieName := flag.String("cookie", "stepup", "the step-up cookie's name (stepup on plain-http loopback, __Host-stepup over HTTPS)")
	userHeader := flag.String("user-header", "X-User", "request header naming the signed-in user")
	flag.Parse()
	if len(*root) < 32 {
		log.Fatal("-key: expected the plugin's signing key, at least 32 bytes")
	}
	// The plugin derives a key per purpose from the root key; tokens use
	// HMAC-SHA256(root, "caddy-sms-stepup/v1/token") and carry the kid
	// hex(HMAC-SHA256(root, "caddy-sms-stepup/v1/kid")[:8]).
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, []byte(*root))
		m.Write([]byte("caddy-sms-stepup/v1/" + label))
		return m.Sum(nil)
	}
	tokenKey, kid := derive("token"), hex.EncodeToString(derive("kid")[:8])
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	keyFunc := func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != tokenType {
			return nil, fmt.Errorf("typ %q", typ)
		}
		if k, _ := t.Header["kid"].(string); k != kid {
			return nil, fmt.Errorf("kid %q", k)
		}
		return tokenKey, nil
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.Header.Get(*userHeader)
		c, err := r.Cookie(*cookieName)
		if user == "" || err != nil {
			http.Error(w, "step-up required", http.StatusUnauthorized)
			return
		}
		var cl claims
		if _, err := parser.ParseWithClaims(c.Value, &cl, keyFunc); err != nil || cl.Subject != user || cl.SessionHash != "" {
			http.Error(w, "step-up required", http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Stepup-Identity", cl.Subject)
		w.WriteHeader(http.StatusOK)
	})
	ln, err := listenLoopback(*addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(ln, h))
}

// listenLoopback refuses any address that is not a loopback one.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("address %q: expected a loopback IP such as 127.0.0.1:0", addr)
	}
	return net.Listen("tcp", addr)
}
