package otp

import (
	"encoding/json"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A step-up token's claims, marshalled as json.Marshal marshals
// TokenClaims, without golang-jwt's marshallers (issue 17): each of its
// three dates and its audience is a json.Marshaler, whose output
// encoding/json then reads again to check and compact it, and the
// audience's marshals a second time inside. With golang-jwt's settings as
// they are by default (whole seconds; an audience always an array) the
// bytes are the same (TestClaimsPayloadIsJSONMarshals); with others, or a
// date missing, the claims go to json.Marshal as before.

// tokenPayload is TokenClaims with golang-jwt's types made plain, in the
// same order and under the same names.
type tokenPayload struct {
	Issuer      string   `json:"iss,omitempty"`
	Subject     string   `json:"sub,omitempty"`
	Audience    []string `json:"aud,omitempty"`
	ExpiresAt   int64    `json:"exp"`
	NotBefore   int64    `json:"nbf"`
	IssuedAt    int64    `json:"iat"`
	ID          string   `json:"jti,omitempty"`
	SessionHash string   `json:"sid,omitempty"`
	AuthTime    int64    `json:"auth_time"`
	AuthTimeMS  int64    `json:"auth_time_ms,omitempty"`
	AMR         []string `json:"amr,omitempty"`
}

// marshalClaims is json.Marshal(c).
func marshalClaims(c *TokenClaims) ([]byte, error) {
	if c.ExpiresAt == nil || c.NotBefore == nil || c.IssuedAt == nil || jwt.TimePrecision != time.Second || !jwt.MarshalSingleStringAsArray {
		return json.Marshal(c)
	}
	return json.Marshal(tokenPayload{
		Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience,
		ExpiresAt: c.ExpiresAt.Unix(), NotBefore: c.NotBefore.Unix(), IssuedAt: c.IssuedAt.Unix(),
		ID: c.ID, SessionHash: c.SessionHash, AuthTime: c.AuthTime, AuthTimeMS: c.AuthTimeMS, AMR: c.AMR,
	})
}
