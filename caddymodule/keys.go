package caddymodule

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// GeneratedKeyName is where a generated signing key is kept in Caddy's
// storage, so it survives restarts and reloads. The operator commands
// (package caddymodule/operator) read it there, and never make one.
const GeneratedKeyName = "sms_stepup/signing_key"

// signingKey returns the configured key (placeholders expanded) or the one
// kept in Caddy's storage, generating it on first use.
func (h *Handler) signingKey(ctx caddy.Context) ([]byte, error) {
	if h.SigningKey != "" {
		// An unknown or empty placeholder is an error, never the key: a
		// mistyped {env.X} must not leave the readable placeholder text as
		// the secret.
		key, err := caddy.NewReplacer().ReplaceOrErr(h.SigningKey, true, true)
		if err != nil {
			return nil, fmt.Errorf("signing_key %q: %w: is the variable set?", h.SigningKey, err)
		}
		if len(key) < otp.MinKeyLength {
			return nil, fmt.Errorf("signing_key is %d bytes: expected at least %d (e.g. the output of `openssl rand -base64 32`)", len(key), otp.MinKeyLength)
		}
		return []byte(key), nil
	}
	storage := ctx.Storage()
	if err := storage.Lock(ctx, GeneratedKeyName); err != nil {
		return nil, fmt.Errorf("lock signing key in storage: %w", err)
	}
	defer func() { _ = storage.Unlock(ctx, GeneratedKeyName) }()
	stored, err := storage.Load(ctx, GeneratedKeyName)
	switch {
	case err == nil:
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(stored)))
		if err != nil || len(key) < otp.MinKeyLength {
			return nil, fmt.Errorf("signing key in Caddy storage (%s) is damaged: remove it to generate a new one, or set signing_key", GeneratedKeyName)
		}
		h.logger.Warn("no signing_key configured: using the key kept in Caddy's storage; several Caddy instances need one shared signing_key",
			zap.String("storage_key", GeneratedKeyName))
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("load signing key from storage: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := storage.Store(ctx, GeneratedKeyName, []byte(base64.StdEncoding.EncodeToString(key))); err != nil {
		return nil, fmt.Errorf("store generated signing key: %w", err)
	}
	h.logger.Warn("no signing_key configured: generated one and kept it in Caddy's storage; several Caddy instances need one shared signing_key",
		zap.String("storage_key", GeneratedKeyName))
	return key, nil
}

// loadEdKeys reads the EdDSA signing key and the retired ones.
func loadEdKeys(signing string, previous []string) ([]otp.EdKey, error) {
	if signing == "" {
		if len(previous) > 0 {
			return nil, fmt.Errorf("previous_key_files need signing_key_file: retired EdDSA keys verify only")
		}
		return nil, nil
	}
	var keys []otp.EdKey
	for i, path := range append([]string{signing}, previous...) {
		k, err := readEdKey(path, i == 0)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// readEdKey reads an Ed25519 key from a PEM file: a PKCS#8 private key, or
// (for a retired key) a PKIX public key.
func readEdKey(path string, needPrivate bool) (otp.EdKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return otp.EdKey{}, fmt.Errorf("key file: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return otp.EdKey{}, fmt.Errorf("key file %s: no PEM block (expected an Ed25519 key from `openssl genpkey -algorithm ed25519`)", path)
	}
	switch block.Type {
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return otp.EdKey{}, fmt.Errorf("key file %s: %w", path, err)
		}
		priv, ok := key.(ed25519.PrivateKey)
		if !ok {
			return otp.EdKey{}, fmt.Errorf("key file %s: a %T, expected an Ed25519 key", path, key)
		}
		return otp.NewEdKey(priv.Public().(ed25519.PublicKey), priv), nil
	case "PUBLIC KEY":
		if needPrivate {
			return otp.EdKey{}, fmt.Errorf("key file %s: signing_key_file needs the private key", path)
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return otp.EdKey{}, fmt.Errorf("key file %s: %w", path, err)
		}
		pub, ok := key.(ed25519.PublicKey)
		if !ok {
			return otp.EdKey{}, fmt.Errorf("key file %s: a %T, expected an Ed25519 key", path, key)
		}
		return otp.NewEdKey(pub, nil), nil
	}
	return otp.EdKey{}, fmt.Errorf("key file %s: PEM block %q, expected PRIVATE KEY or PUBLIC KEY", path, block.Type)
}
