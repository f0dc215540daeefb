package caddymodule

import (
	"crypto/rand"
	"encoding/base64"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// shortID names a challenge in logs without handing out the whole id.
func shortID(c *otp.Challenge) string {
	if c == nil {
		return ""
	}
	return shortString(c.ID)
}

func shortString(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
