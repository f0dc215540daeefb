// Package redis is an otp.Store on Redis, Redis Sentinel or Redis Cluster
// (through go-redis's UniversalClient), for several Caddy instances that
// must share challenges, attempt counters and lock-outs.
//
// Every read-modify-write is one Lua script; the two keys a script touches
// share the identity's hash tag. Every key has a TTL. Nothing in Redis names
// a code or a full phone number: codes are HMACs, numbers are hashed and
// masked, identities are hashed into key names.
package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// DefaultPrefix starts every key.
const DefaultPrefix = "stepup:"

// Store is an otp.Store on Redis.
type Store struct {
	client goredis.UniversalClient
	prefix string
}

// New returns a Store using client, with keys under prefix (DefaultPrefix
// when empty). The caller owns the client.
func New(client goredis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{client: client, prefix: prefix}
}

// identityTag is the hash tag of all keys of one identity. The identity is
// hashed: it may hold any character, and it has no business in a key dump.
func (s *Store) identityTag(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return "{" + hex.EncodeToString(sum[:12]) + "}"
}

func (s *Store) keys(subject, challengeID string) []string {
	tag := s.identityTag(subject)
	return []string{s.prefix + tag + ":id", s.prefix + tag + ":ch:" + challengeID}
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// Issue implements otp.Store.
func (s *Store) Issue(ctx context.Context, req otp.IssueRequest) (*otp.Challenge, error) {
	c := req.Challenge
	resend, voice := "0", "0"
	if req.Resend {
		resend = "1"
	}
	if req.Voice {
		voice = "1"
	}
	res, err := issueScript.Run(ctx, s.client, s.keys(c.Subject, c.ID),
		ms(req.Now), resend, req.MaxSends,
		req.CooldownBase.Milliseconds(), req.CooldownMax.Milliseconds(), req.SendWindow.Milliseconds(),
		c.SessionHash, c.PhoneHash, c.PhoneMasked, string(c.CodeMAC),
		ms(c.CreatedAt), ms(c.SentAt), ms(c.ExpiresAt), c.MaxAttempts, voice, req.MaxCalls,
	).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis issue: %w", err)
	}
	switch status, _ := res[0].(string); status {
	case "ok":
		fields, _ := res[1].([]any)
		return parseChallenge(c.Subject, c.ID, fields)
	case "locked":
		return nil, &otp.LockedError{Until: fromMS(toInt(res[1]))}
	case "cooldown":
		return nil, &otp.CooldownError{RetryAt: fromMS(toInt(res[1]))}
	case "notfound":
		return nil, otp.ErrChallengeNotFound
	case "sendlimit":
		return nil, otp.ErrSendLimit
	case "calllimit":
		return nil, otp.ErrCallLimit
	default:
		return nil, fmt.Errorf("redis issue: unexpected reply %v", res)
	}
}

// Challenge implements otp.Store.
func (s *Store) Challenge(ctx context.Context, subject, id string, now time.Time) (*otp.Challenge, error) {
	m, err := s.client.HGetAll(ctx, s.keys(subject, id)[1]).Result()
	if err != nil {
		return nil, fmt.Errorf("redis challenge: %w", err)
	}
	if len(m) == 0 {
		return nil, otp.ErrChallengeNotFound
	}
	fields := make([]any, 0, 2*len(m))
	for k, v := range m {
		fields = append(fields, k, v)
	}
	c, err := parseChallenge(subject, id, fields)
	if err != nil {
		return nil, err
	}
	if !now.Before(c.ExpiresAt) {
		return nil, otp.ErrChallengeNotFound
	}
	return c, nil
}

// Verify implements otp.Store.
func (s *Store) Verify(ctx context.Context, req otp.VerifyRequest) (otp.VerifyResult, error) {
	f := req.Failures
	res, err := verifyScript.Run(ctx, s.client, s.keys(req.Subject, req.ChallengeID),
		ms(req.Now), req.SessionHash, string(req.CodeMAC),
		f.Budget, f.DelayBase.Milliseconds(), f.DelayMax.Milliseconds(), f.HardLimit, f.Window.Milliseconds(),
	).Slice()
	if err != nil {
		return otp.VerifyResult{}, fmt.Errorf("redis verify: %w", err)
	}
	if len(res) != 4 {
		return otp.VerifyResult{}, fmt.Errorf("redis verify: unexpected reply %v", res)
	}
	out := otp.VerifyResult{
		Remaining:   int(toInt(res[1])),
		Failures:    int(toInt(res[2])),
		LockedUntil: fromMS(toInt(res[3])),
	}
	switch status, _ := res[0].(string); status {
	case "ok":
		out.Status = otp.VerifyOK
	case "wrong":
		out.Status = otp.VerifyWrong
	case "exhausted":
		out.Status = otp.VerifyExhausted
	case "notfound":
		out.Status = otp.VerifyNotFound
	case "locked":
		out.Status = otp.VerifyLocked
	default:
		return otp.VerifyResult{}, fmt.Errorf("redis verify: unexpected reply %v", res)
	}
	return out, nil
}

// Identity implements otp.Store.
func (s *Store) Identity(ctx context.Context, subject string, now time.Time) (otp.IdentityState, error) {
	v, err := s.client.HMGet(ctx, s.keys(subject, "")[0], "failures", "fail_exp", "locked", "sends", "send_exp", "next_send").Result()
	if err != nil {
		return otp.IdentityState{}, fmt.Errorf("redis identity: %w", err)
	}
	n := make([]int64, len(v))
	for i := range v {
		n[i] = toInt(v[i])
	}
	var st otp.IdentityState
	nowMS := ms(now)
	if nowMS < n[1] {
		st.Failures, st.LockedUntil = int(n[0]), fromMS(n[2])
	}
	if nowMS < n[4] {
		st.Sends, st.NextSendAt = int(n[3]), fromMS(n[5])
	}
	return st, nil
}

// SetDelivery implements otp.Store.
func (s *Store) SetDelivery(ctx context.Context, subject, id string, status otp.DeliveryStatus, now time.Time) error {
	if err := deliveryScript.Run(ctx, s.client, s.keys(subject, id)[1:], string(status), status.Rank()).Err(); err != nil {
		return fmt.Errorf("redis delivery: %w", err)
	}
	return nil
}

// Ping checks the connection.
func (s *Store) Ping(ctx context.Context) error {
	return s.client.Ping(ctx).Err()
}

func parseChallenge(subject, id string, fields []any) (*otp.Challenge, error) {
	c := &otp.Challenge{ID: id, Subject: subject}
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := fields[i].(string)
		v, _ := fields[i+1].(string)
		switch k {
		case "sid":
			c.SessionHash = v
		case "ph":
			c.PhoneHash = v
		case "pm":
			c.PhoneMasked = v
		case "mac":
			c.CodeMAC = []byte(v)
		case "created":
			c.CreatedAt = fromMS(atoi(v))
		case "sent":
			c.SentAt = fromMS(atoi(v))
		case "exp":
			c.ExpiresAt = fromMS(atoi(v))
		case "sends":
			c.Sends = int(atoi(v))
		case "attempts":
			c.Attempts = int(atoi(v))
		case "max":
			c.MaxAttempts = int(atoi(v))
		case "calls":
			c.Calls = int(atoi(v))
		case "delivery":
			c.Delivery = otp.DeliveryStatus(v)
		}
	}
	if len(c.CodeMAC) == 0 || c.ExpiresAt.IsZero() {
		return nil, errors.New("redis: challenge record is incomplete")
	}
	return c, nil
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		return atoi(x)
	}
	return 0
}

var _ otp.Store = (*Store)(nil)
