package otp

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// marshalClaims writes the bytes json.Marshal writes for the same claims:
// strings that need escaping, dates with and without fractions of a
// second, one audience and several, fields left empty, dates missing.
func TestClaimsPayloadIsJSONMarshals(t *testing.T) {
	at := time.Unix(1764000000, 987654321)
	date := func(d time.Duration) *jwt.NumericDate { return &jwt.NumericDate{Time: at.Add(d)} }
	cases := []TokenClaims{
		{RegisteredClaims: jwt.RegisteredClaims{Issuer: "https://issuer.example", Subject: "alice", Audience: jwt.ClaimStrings{"https://aud.example"},
			ExpiresAt: jwt.NewNumericDate(at.Add(time.Hour)), NotBefore: jwt.NewNumericDate(at), IssuedAt: jwt.NewNumericDate(at), ID: "jti-1"},
			SessionHash: "sh", AuthTime: at.Unix(), AuthTimeMS: at.UnixMilli(), AMR: []string{"sms", "otp"}},
		{RegisteredClaims: jwt.RegisteredClaims{Subject: "<b>&\"\\ \u2028\u2029 山田 \x01", Audience: jwt.ClaimStrings{"a", "b<"},
			ExpiresAt: date(time.Hour), NotBefore: date(0), IssuedAt: date(-time.Second)}},
		{RegisteredClaims: jwt.RegisteredClaims{Subject: "invalid \xff utf-8", ExpiresAt: date(0), NotBefore: date(0), IssuedAt: date(0)}},
		{RegisteredClaims: jwt.RegisteredClaims{Subject: "no dates"}, AuthTime: 1},
		{RegisteredClaims: jwt.RegisteredClaims{Subject: "one date", ExpiresAt: date(0)}, AMR: []string{}},
		{RegisteredClaims: jwt.RegisteredClaims{Audience: jwt.ClaimStrings{}, ExpiresAt: &jwt.NumericDate{Time: time.Unix(-5, 500)},
			NotBefore: &jwt.NumericDate{}, IssuedAt: date(0)}},
	}
	for i, c := range cases {
		want, err := json.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalClaims(&c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
