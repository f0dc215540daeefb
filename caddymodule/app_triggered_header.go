package caddymodule

import (
	"strconv"
	"strings"
	"time"
)

// appAsk is what an upstream's 401 asked for: a step-up (RFC 9470's
// insufficient_user_authentication in a Bearer challenge) and, when it
// gave a usable one, how fresh it must be.
type appAsk struct {
	stepUp    bool
	maxAge    time.Duration
	hasMaxAge bool
}

// maxAppMaxAge bounds a max_age an application may ask for; a larger one
// is ignored, as a negative or non-numeric one is, and the handler's
// max_age applies.
const maxAppMaxAge = 366 * 24 * time.Hour

// parseAppAsk reads WWW-Authenticate header values (RFC 9110 section
// 11.6.1: each holds challenges separated by commas, each a scheme,
// case-insensitive, then a token68 or name=value parameters whose values
// are tokens or quoted strings) for a Bearer challenge with
// error="insufficient_user_authentication".
func parseAppAsk(values []string) appAsk {
	for _, v := range values {
		for _, c := range parseChallenges(v) {
			if !strings.EqualFold(c.scheme, "bearer") || c.params["error"] != "insufficient_user_authentication" {
				continue
			}
			ask := appAsk{stepUp: true}
			if s, ok := c.params["max_age"]; ok {
				ask.maxAge, ask.hasMaxAge = appMaxAge(s)
			}
			return ask
		}
	}
	return appAsk{}
}

// appMaxAge reads a max_age in whole seconds; false for anything else.
func appMaxAge(s string) (time.Duration, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false // empty, negative, fractional or not a number
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || time.Duration(n) > maxAppMaxAge/time.Second {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

type authChallenge struct {
	scheme string
	params map[string]string // names in lower case
}

// parseChallenges splits one WWW-Authenticate value into its challenges.
// What it cannot read ends the value: the challenges read so far stand.
func parseChallenges(s string) []authChallenge {
	var out []authChallenge
	p := &authParser{s: s}
	for {
		p.skip(" \t,")
		scheme := p.token()
		if scheme == "" {
			return out
		}
		c := authChallenge{scheme: scheme, params: map[string]string{}}
		for {
			p.skip(" \t")
			save := p.i
			name := p.token()
			p.skip(" \t")
			if name == "" || !p.eat('=') {
				p.i = save // a token68, the next challenge, or the end
				if name != "" && !p.atComma() {
					p.token68()
				}
				break
			}
			if c := p.peek(); c == '=' || c == ',' || c == 0 {
				p.skip("=") // a token68 such as abc==
				break
			}
			p.skip(" \t")
			val, ok := p.value()
			if !ok {
				return append(out, c)
			}
			c.params[strings.ToLower(name)] = val
			p.skip(" \t")
			if !p.eat(',') {
				break
			}
			// After a comma: another parameter, or the next challenge
			// (a token followed by a space or the end, not by "=").
			p.skip(" \t,")
			save = p.i
			next := p.token()
			p.skip(" \t")
			isParam := next != "" && p.peek() == '=' && !strings.HasPrefix(p.s[p.i:], "==")
			p.i = save
			if !isParam {
				break
			}
		}
		out = append(out, c)
	}
}

type authParser struct {
	s string
	i int
}

func (p *authParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *authParser) eat(c byte) bool {
	if p.peek() == c && p.i < len(p.s) {
		p.i++
		return true
	}
	return false
}

func (p *authParser) atComma() bool { return p.peek() == ',' || p.i >= len(p.s) }

func (p *authParser) skip(chars string) {
	for p.i < len(p.s) && strings.IndexByte(chars, p.s[p.i]) >= 0 {
		p.i++
	}
}

// token reads an RFC 9110 token.
func (p *authParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *authParser) token68() {
	for p.i < len(p.s) && (isTChar(p.s[p.i]) || p.s[p.i] == '/' || p.s[p.i] == '=') {
		p.i++
	}
}

// value reads a token or a quoted string (with backslash escapes).
func (p *authParser) value() (string, bool) {
	if !p.eat('"') {
		v := p.token()
		return v, v != ""
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			return b.String(), true
		case c == '\\' && p.i < len(p.s):
			b.WriteByte(p.s[p.i])
			p.i++
		default:
			b.WriteByte(c)
		}
	}
	return "", false // unterminated
}

func isTChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
