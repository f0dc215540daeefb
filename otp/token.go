package otp

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenType is the JWT "typ" header of step-up tokens. Explicit typing stops
// any other JWT signed with the same key from being taken for a step-up
// (RFC 8725 section 3.11).
const TokenType = "stepup+jwt"

// Errors from Tokens.Check. Callers treat them all as "step up again"; they
// differ only for logs and tests.
var (
	ErrTokenInvalid      = errors.New("step-up token invalid")
	ErrTokenWrongSubject = errors.New("step-up token belongs to another identity")
	ErrTokenWrongSession = errors.New("step-up token belongs to another session")
	ErrTokenTooOld       = errors.New("step-up is older than this route allows")
	ErrTokenExpired      = errors.New("step-up token expired")
)

// TokenClaims are the claims of a step-up token.
type TokenClaims struct {
	jwt.RegisteredClaims
	// SessionHash binds the token to the application session (keyed hash,
	// empty when no session is configured).
	SessionHash string `json:"sid,omitempty"`
	// AuthTime is when the code was verified (OIDC's auth_time), in
	// whole seconds, for upstreams that read it.
	AuthTime int64 `json:"auth_time"`
	// AuthTimeMS is the same in Unix milliseconds: a revocation's
	// not-before has milliseconds, and an auth time of whole seconds
	// would put a step-up made just after a revocation before it.
	AuthTimeMS int64 `json:"auth_time_ms,omitempty"`
	// AMR says how: a one-time code by SMS (RFC 8176 "sms", "otp").
	AMR []string `json:"amr,omitempty"`
}

// Verified is what a valid token says about the request.
type Verified struct {
	Subject     string
	SessionHash string
	// AuthTime is when the code was verified, to the millisecond (to the
	// second for a token without auth_time_ms).
	AuthTime time.Time
	Expires  time.Time
	// AuthTimeRFC3339 (UTC) and AuthTimeUnix (seconds) are AuthTime as
	// text for the upstream. They are formatted once, when the token is
	// first verified, and cached with it, so the hot path formats nothing.
	AuthTimeRFC3339 string
	AuthTimeUnix    string
}

// EdKey is an Ed25519 key for EdDSA tokens. Private is nil for a key that
// only verifies (a retired key whose tokens have not expired yet).
type EdKey struct {
	ID      string
	Private ed25519.PrivateKey
	Public  ed25519.PublicKey
}

// NewEdKey wraps an Ed25519 key; its kid is derived from the public key.
func NewEdKey(public ed25519.PublicKey, private ed25519.PrivateKey) EdKey {
	sum := sha256.Sum256(public)
	return EdKey{ID: "ed-" + hex.EncodeToString(sum[:8]), Private: private, Public: public}
}

// TokenConfig configures Tokens.
type TokenConfig struct {
	Issuer   string
	Audience string
	TTL      time.Duration
	// Keys verify HS256 tokens by kid; the first one also signs. Keys
	// after the first are retired keys: their tokens stay valid until they
	// expire, so rotating the key logs nobody out.
	Keys []*Keys
	// EdKeys, when set, switch tokens to EdDSA: the first signs, all verify
	// by kid, and HS256 tokens are no longer accepted. Their public halves
	// are published as a JWKS so the upstream can verify tokens itself.
	EdKeys []EdKey
	// CacheSize bounds the cache of tokens already verified. Zero means
	// 10,000.
	CacheSize int
	Clock     Clock
}

// Tokens issues and checks step-up tokens: HS256 JWTs with a pinned
// algorithm, explicit type, issuer, audience, subject, expiry and kid.
//
// A token whose signature and standard claims were verified once is
// remembered, keyed by the whole token string, until it expires, so the hot
// path need not parse and MAC it again. Only verified tokens are cached, the
// cache is bounded, and the per-request checks (subject, session, max age,
// expiry) run on every request whether the token came from the cache or not.
type Tokens struct {
	cfg    TokenConfig
	byKID  map[string]any
	parser *jwt.Parser
	// hsHeader is the encoded header of the HS256 tokens Issue signs
	// (token_sign.go).
	hsHeader string
	// fast and claims are what the fast path for unseen HS256 tokens
	// takes (token_fast.go): the keys with their headers, and the fixed
	// parts of the claims.
	fast   []fastKey
	claims claimShape

	mu    sync.RWMutex
	cache map[string]Verified
}

// NewTokens checks cfg and builds Tokens.
func NewTokens(cfg TokenConfig) (*Tokens, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("no signing key")
	}
	if cfg.TTL <= 0 {
		return nil, errors.New("token lifetime must be positive")
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("token issuer and audience are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 10000
	}
	t := &Tokens{cfg: cfg, byKID: make(map[string]any), cache: make(map[string]Verified),
		fast: fastKeys(cfg), claims: newClaimShape(cfg.Issuer, cfg.Audience)}
	method := jwt.SigningMethodHS256.Alg()
	if len(cfg.EdKeys) > 0 {
		// The algorithm is pinned to one: an EdDSA deployment never takes
		// an HMAC token, whatever key it names.
		method = jwt.SigningMethodEdDSA.Alg()
		if cfg.EdKeys[0].Private == nil {
			return nil, errors.New("the first EdDSA key must have its private half: it signs")
		}
		for _, k := range cfg.EdKeys {
			t.byKID[k.ID] = k.Public
		}
	} else {
		for _, k := range cfg.Keys {
			t.byKID[k.ID] = k.token
		}
		t.hsHeader = hs256Header(cfg.Keys[0].ID)
	}
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{method}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(cfg.Clock.Now),
		// One spelling per token: padding bits or stray characters in the
		// base64 must not make another string that verifies.
		jwt.WithStrictDecoding(),
	)
	return t, nil
}

// TTL is the lifetime of issued tokens.
func (t *Tokens) TTL() time.Duration { return t.cfg.TTL }

// Issue signs a token for subject, bound to sessionHash, verified at
// authTime.
func (t *Tokens) Issue(subject, sessionHash string, authTime time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	now := t.cfg.Clock.Now()
	claims := TokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.cfg.Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{t.cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.cfg.TTL)),
			ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		SessionHash: sessionHash,
		AuthTime:    authTime.Unix(),
		AuthTimeMS:  authTime.UnixMilli(),
		AMR:         []string{"sms", "otp"},
	}
	if len(t.cfg.EdKeys) == 0 {
		return t.signHS256(&claims)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = t.cfg.EdKeys[0].ID
	tok.Header["typ"] = TokenType
	s, err := tok.SignedString(t.cfg.EdKeys[0].Private)
	if err != nil {
		return "", fmt.Errorf("sign step-up token: %w", err)
	}
	return s, nil
}

// Check verifies token for a request by subject in the session sessionHash,
// on a route that wants a step-up no older than maxAge (zero: any age within
// the token's lifetime).
func (t *Tokens) Check(token, subject, sessionHash string, maxAge time.Duration) (Verified, error) {
	v, err := t.verified(token, subject, sessionHash)
	if err != nil {
		return Verified{}, err
	}
	if err := t.checkRequest(&v, subject, sessionHash, maxAge); err != nil {
		return Verified{}, err
	}
	return v, nil
}

// checkRequest is what every request checks of a verified token, cached or
// not: expiry, subject, session and age. (v by pointer: Verified is 112
// bytes, and the hot path should not copy it to and fro.)
func (t *Tokens) checkRequest(v *Verified, subject, sessionHash string, maxAge time.Duration) error {
	now := t.cfg.Clock.Now()
	switch {
	case !now.Before(v.Expires):
		return ErrTokenExpired
	case v.Subject != subject:
		return ErrTokenWrongSubject
	case v.SessionHash != sessionHash:
		return ErrTokenWrongSession
	case maxAge > 0 && now.Sub(v.AuthTime) > maxAge:
		return ErrTokenTooOld
	}
	return nil
}

// verified returns the token's verified claims, from the cache, by the
// fast path for the HS256 tokens Issue writes (token_fast.go), or by
// golang-jwt's full parse. subject and sessionHash are the request's; the
// fast path shares their strings.
func (t *Tokens) verified(token, subject, sessionHash string) (Verified, error) {
	t.mu.RLock()
	v, ok := t.cache[token]
	t.mu.RUnlock()
	if ok {
		return v, nil
	}
	if !tokenChars(token) {
		return Verified{}, ErrTokenInvalid
	}
	v, decided, err := t.verifiedFast(token, subject, sessionHash)
	if !decided {
		v, err = t.verifiedJWT(token)
	}
	if err != nil {
		return Verified{}, err
	}
	t.remember(token, v)
	return v, nil
}

// tokenChars reports whether token holds only base64url characters and
// dots: base64 decoding would skip CR and LF, and a token is one string.
func tokenChars(token string) bool {
	for i := 0; i < len(token); i++ {
		if c := token[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// verifiedJWT is golang-jwt's verdict on token, algorithm pinned.
func (t *Tokens) verifiedJWT(token string) (Verified, error) {
	var claims TokenClaims
	_, err := t.parser.ParseWithClaims(token, &claims, t.key)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Verified{}, ErrTokenExpired
		}
		return Verified{}, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	// The parser checks exp and iat only when they are there; a step-up
	// token must carry both (SECURITY.md rule 14).
	if claims.Subject == "" || claims.ExpiresAt == nil || claims.IssuedAt == nil {
		return Verified{}, ErrTokenInvalid
	}
	authTime, ok := claimedAuthTime(claims)
	if !ok {
		return Verified{}, ErrTokenInvalid
	}
	return newVerified(claims.Subject, claims.SessionHash, authTime, claims.AuthTime, claims.ExpiresAt.Time), nil
}

// newVerified is a verified token's claims, with its auth time (authSec:
// the auth_time claim) formatted for the upstream.
func newVerified(subject, sessionHash string, authTime time.Time, authSec int64, expires time.Time) Verified {
	return Verified{
		Subject:         subject,
		SessionHash:     sessionHash,
		AuthTime:        authTime,
		Expires:         expires,
		AuthTimeRFC3339: time.Unix(authSec, 0).UTC().Format(time.RFC3339),
		AuthTimeUnix:    strconv.FormatInt(authSec, 10),
	}
}

// claimedAuthTime is a token's auth time: auth_time_ms when the token has
// it, which must fall in the second auth_time names (the upstream reads
// auth_time), else auth_time.
func claimedAuthTime(c TokenClaims) (time.Time, bool) {
	if c.AuthTimeMS == 0 {
		return time.Unix(c.AuthTime, 0), true
	}
	at := time.UnixMilli(c.AuthTimeMS)
	return at, at.Unix() == c.AuthTime
}

func (t *Tokens) key(tok *jwt.Token) (any, error) {
	if typ, _ := tok.Header["typ"].(string); typ != TokenType {
		return nil, fmt.Errorf("token type %q is not %q", typ, TokenType)
	}
	kid, _ := tok.Header["kid"].(string)
	key, ok := t.byKID[kid]
	if !ok {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	return key, nil
}

// JWKS is the JSON Web Key Set of the EdDSA verification keys (RFC 8037),
// for an upstream that verifies forwarded tokens itself. HMAC keys are
// secret and never published: with them the set is empty.
func (t *Tokens) JWKS() []byte {
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range t.cfg.EdKeys {
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Public),
			Kid: k.ID, Alg: "EdDSA", Use: "sig"})
	}
	b, _ := json.Marshal(set)
	return b
}
