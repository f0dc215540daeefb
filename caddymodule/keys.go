package caddymodule

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// generatedKeyName is where a generated signing key is kept in Caddy's
// storage, so it survives restarts and reloads.
const generatedKeyName = "sms_stepup/signing_key"

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
	if err := storage.Lock(ctx, generatedKeyName); err != nil {
		return nil, fmt.Errorf("lock signing key in storage: %w", err)
	}
	defer func() { _ = storage.Unlock(ctx, generatedKeyName) }()
	stored, err := storage.Load(ctx, generatedKeyName)
	switch {
	case err == nil:
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(stored)))
		if err != nil || len(key) < otp.MinKeyLength {
			return nil, fmt.Errorf("signing key in Caddy storage (%s) is damaged: remove it to generate a new one, or set signing_key", generatedKeyName)
		}
		h.logger.Warn("no signing_key configured: using the key kept in Caddy's storage; several Caddy instances need one shared signing_key",
			zap.String("storage_key", generatedKeyName))
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("load signing key from storage: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := storage.Store(ctx, generatedKeyName, []byte(base64.StdEncoding.EncodeToString(key))); err != nil {
		return nil, fmt.Errorf("store generated signing key: %w", err)
	}
	h.logger.Warn("no signing_key configured: generated one and kept it in Caddy's storage; several Caddy instances need one shared signing_key",
		zap.String("storage_key", generatedKeyName))
	return key, nil
}
