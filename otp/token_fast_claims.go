package otp

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Reading a step-up token's claims in the one shape Issue writes them
// (token_payload.go): the fields of TokenClaims in their order, no space,
// issuer and audience this instance's, each string without escapes, each
// number a positive integer. Whatever else a valid JSON object might be
// (other fields, another order, a repeated key, escapes, a fraction,
// another audience) is not read here, and golang-jwt decides it.

// maxFastDigits bounds the numbers read: 15 digits are below 2^53, where
// golang-jwt's dates, decoded as float64, are still exact.
const maxFastDigits = 15

// fastClaims are the claims the fast path reads; sub and sid point into
// the decoded payload.
type fastClaims struct {
	sub, sid                            []byte
	exp, nbf, iat, authTime, authTimeMS int64
}

// claimShape holds the fixed parts of the claims Issue writes for one
// issuer and audience, as json.Marshal spells them.
type claimShape struct {
	head string // {"iss":<issuer>,"sub":
	aud  string // ,"aud":[<audience>],"exp":
}

func newClaimShape(issuer, audience string) claimShape {
	iss, err := json.Marshal(issuer)
	if err != nil {
		panic(err) // a string
	}
	aud, err := json.Marshal([]string{audience})
	if err != nil {
		panic(err)
	}
	return claimShape{head: `{"iss":` + string(iss) + `,"sub":`, aud: `,"aud":` + string(aud) + `,"exp":`}
}

// read reads the claims in b: false unless b is exactly the shape Issue
// writes.
// The subject must not be empty (Issue leaves an empty one out, and
// verified refuses a token without one); a session, auth_time_ms, may be
// left out, as Issue leaves out empty ones.
func (s claimShape) read(b []byte) (c fastClaims, ok bool) {
	r := claimReader{b: b, ok: true}
	r.lit(s.head)
	c.sub = r.str()
	r.lit(s.aud)
	c.exp = r.num()
	r.lit(`,"nbf":`)
	c.nbf = r.num()
	r.lit(`,"iat":`)
	c.iat = r.num()
	r.lit(`,"jti":`)
	r.str()
	if r.opt(`,"sid":`) {
		c.sid = r.str()
	}
	r.lit(`,"auth_time":`)
	c.authTime = r.num()
	if r.opt(`,"auth_time_ms":`) {
		c.authTimeMS = r.num()
	}
	r.lit(`,"amr":["sms","otp"]}`)
	return c, r.ok && len(r.b) == 0 && len(c.sub) > 0
}

// claimReader reads b from the front; ok turns false at the first thing
// out of shape and stays false.
type claimReader struct {
	b  []byte
	ok bool
}

// lit reads the literal s.
func (r *claimReader) lit(s string) {
	if !r.ok || !bytes.HasPrefix(r.b, []byte(s)) {
		r.ok = false
		return
	}
	r.b = r.b[len(s):]
}

// opt reads the literal s if b starts with it, and says whether it did.
func (r *claimReader) opt(s string) bool {
	if !r.ok || !bytes.HasPrefix(r.b, []byte(s)) {
		return false
	}
	r.b = r.b[len(s):]
	return true
}

// str reads a JSON string with no escape and no control character, in
// valid UTF-8 (which encoding/json would otherwise replace), and returns
// its content.
func (r *claimReader) str() []byte {
	if !r.ok || len(r.b) == 0 || r.b[0] != '"' {
		r.ok = false
		return nil
	}
	for i := 1; i < len(r.b); i++ {
		switch c := r.b[i]; {
		case c == '"':
			s := r.b[1:i]
			r.b = r.b[i+1:]
			r.ok = utf8.Valid(s)
			return s
		case c == '\\' || c < 0x20:
			r.ok = false
			return nil
		}
	}
	r.ok = false
	return nil
}

// num reads a positive integer of at most maxFastDigits digits, without a
// leading zero.
func (r *claimReader) num() int64 {
	if !r.ok || len(r.b) == 0 || r.b[0] < '1' || r.b[0] > '9' {
		r.ok = false
		return 0
	}
	var n int64
	i := 0
	for ; i < len(r.b) && r.b[i] >= '0' && r.b[i] <= '9'; i++ {
		if i == maxFastDigits {
			r.ok = false
			return 0
		}
		n = n*10 + int64(r.b[i]-'0')
	}
	r.b = r.b[i:]
	return n
}
