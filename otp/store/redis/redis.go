// Package redis is an otp.Store on Redis, Redis Sentinel or Redis Cluster
// (through go-redis's UniversalClient), for several Caddy instances that
// must share challenges, attempt counters and lock-outs.
//
// Every read-modify-write is one Lua script. The keys of one identity share
// a hash tag, so its scripts run on a Cluster; on one server (or Sentinel's
// master) a send's script also counts the send limits, whose counters have
// tags of their own, and on a Cluster a send takes a step per slot
// (Store.Issue). Every key has a TTL, except phone bindings, which persist
// until unbound, and revocations (not-before times), which persist. Nothing
// in Redis names a code or a full phone number in clear: codes are HMACs,
// numbers are hashed, masked or sealed (encrypted with the service's key).
// Identities are hashed into key names (an unkeyed hash: it hides an
// identity, but one can be guessed and checked against it), and an
// identity's record holds its subject only sealed by the service
// (otp.Keys.SealSubject), from a lock-out until an unlock, the record's next
// write after the lock-out ends, or the record's expiry, for the operator's
// list of lock-outs (Store.Locked). Records that a version before the
// sealing locked out keep the subject in clear until their next write, an
// unlock or their expiry.
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
	// oneStep is true where one script may span every key of a send: a
	// plain client (one server, or Sentinel's master) does not care which
	// slots keys hash to; a Cluster (or Ring) client runs a script on one
	// slot only.
	oneStep bool
	// See WaitForReplicas.
	waitReplicas int
	waitTimeout  time.Duration
	// brkBase is breakerBase(), built once: every send and verification
	// names it; brkBaseArg is it as a script argument, boxed once.
	brkBase    string
	brkBaseArg any
}

// New returns a Store using client, with keys under prefix (DefaultPrefix
// when empty). The caller owns the client.
func New(client goredis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	_, plain := client.(*goredis.Client)
	brkBase := prefix + "brk:{brk}:"
	return &Store{client: client, prefix: prefix, oneStep: plain, brkBase: brkBase, brkBaseArg: brkBase}
}

// hardLockMS is otp.HardLock as verifyScript takes it, boxed once.
var hardLockMS any = otp.HardLock.Milliseconds()

// identityTag is the hash tag of all keys of one identity. The identity is
// hashed: it may hold any character, and it has no business in a key dump.
func (s *Store) identityTag(subject string) string {
	return "{" + tagHash(subject) + "}"
}

// tagHash is the first 12 bytes, in hex, of the SHA-256 of parts, each
// followed by a zero byte. It hashes from a buffer on the stack (for parts
// of usual sizes) and allocates only its answer: it runs for every key of
// every store call.
func tagHash(parts ...string) string {
	var stack [256]byte
	in := stack[:0]
	for _, p := range parts {
		in = append(append(in, p...), 0)
	}
	sum := sha256.Sum256(in)
	var out [2 * tagBytes]byte
	hex.Encode(out[:], sum[:tagBytes])
	return string(out[:])
}

// tagBytes is how much of the SHA-256 a tag keeps.
const tagBytes = 12

// limitKey is one send-limit counter: a tag of its own, so counters spread
// over a cluster, with the limit's name in clear for operators.
func (s *Store) limitKey(name, key string) string {
	return s.prefix + "lim:" + name + ":{" + tagHash(name, key) + "}"
}

func (s *Store) bindKey(subject string) string {
	return s.prefix + s.identityTag(subject) + ":bind"
}

// numberKey is the index of the identities bound to one number.
func (s *Store) numberKey(phoneHash string) string {
	return s.prefix + "num:{" + tagHash(phoneHash) + "}"
}

// keys are the keys of subject's identity scripts: the identity, the
// challenge and the not-before, under one tag.
//
// The three are cut from one string: one allocation instead of four, on
// every verification, challenge read and send.
func (s *Store) keys(subject, challengeID string) []string {
	tag := tagHash(subject)
	id := s.prefix + "{" + tag + "}" + identitySuffix
	all := id + s.prefix + "{" + tag + "}:ch:" + challengeID + s.prefix + "{" + tag + "}:nb"
	ch := len(id) + len(s.prefix) + len(tag) + len("{}:ch:") + len(challengeID)
	return []string{all[:len(id)], all[len(id):ch], all[ch:]}
}

func (s *Store) identityKey(subject string) string {
	return s.prefix + s.identityTag(subject) + identitySuffix
}

func (s *Store) notBeforeKey(subject string) string {
	return s.prefix + s.identityTag(subject) + ":nb"
}

// identitySuffix ends every identity key; tagLen is the length of an
// identity tag's hash (tagHash: 12 bytes in hex).
const (
	identitySuffix = ":id"
	tagLen         = 2 * tagBytes
)

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// Challenge implements otp.Store.
func (s *Store) Challenge(ctx context.Context, subject, id string, now time.Time) (*otp.Challenge, error) {
	fields, err := challengeScript.Run(ctx, s.client, s.keys(subject, id)[1:]).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis challenge: %w", err)
	}
	if len(fields) == 0 {
		return nil, otp.ErrChallengeNotFound
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

// Verify implements otp.Store. With req.BreakerConvert, a verified code is
// counted as a conversion inside verifyScript on one server or Sentinel
// (one round trip), and by BreakerConvert just after it on a Cluster,
// whose breaker keys live in another slot.
func (s *Store) Verify(ctx context.Context, req otp.VerifyRequest) (otp.VerifyResult, error) {
	f := req.Failures
	keys := s.keys(req.Subject, req.ChallengeID)
	convertHere := req.BreakerConvert && s.oneStep
	if convertHere {
		keys = append(keys, s.breakerBase()+"r:"+req.ChallengeID)
	}
	args := []any{
		// The MAC and the sealed subject go as bytes (go-redis writes a
		// []byte as it is), not copied into strings first.
		ms(req.Now), req.SessionHash, req.CodeMAC,
		f.Budget, f.DelayBase.Milliseconds(), f.DelayMax.Milliseconds(), f.HardLimit, f.Window.Milliseconds(),
		req.SealedSubject, hardLockMS, flag(convertHere), s.brkBaseArg,
	}
	keys, args = s.verifyHistoryArgs(req.History, keys, args)
	res, err := s.runVerify(ctx, keys, args...)
	if err != nil {
		return otp.VerifyResult{}, fmt.Errorf("redis verify: %w", err)
	}
	if len(res) != 9 {
		return otp.VerifyResult{}, fmt.Errorf("redis verify: unexpected reply %v", res)
	}
	out := otp.VerifyResult{
		Remaining:   int(toInt(res[1])),
		Failures:    int(toInt(res[2])),
		LockedUntil: fromMS(toInt(res[3])),
		HistoryKept: toInt(res[8]) == 1,
	}
	out.PhoneMasked, _ = res[4].(string)
	out.HistoryKey, _ = res[5].(string)
	out.PhoneHash, _ = res[6].(string)
	out.Gateway, _ = res[7].(string)
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
	if out.Status == otp.VerifyOK && req.BreakerConvert && !convertHere {
		// The code did verify: a lost conversion only makes the breaker
		// stricter, so it fails nothing.
		_ = s.BreakerConvert(ctx, req.ChallengeID, req.Now)
	}
	return out, nil
}

// Identity implements otp.Store.
func (s *Store) Identity(ctx context.Context, subject string, now time.Time) (otp.IdentityState, error) {
	v, err := s.client.HMGet(ctx, s.identityKey(subject), "failures", "fail_exp", "locked", "sends", "send_exp", "next_send").Result()
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
	if err := deliveryScript.Run(ctx, s.client, s.keys(subject, id)[1:2], string(status), status.Rank()).Err(); err != nil {
		return fmt.Errorf("redis delivery: %w", err)
	}
	return nil
}

// LimitCount implements otp.Store: it reads the count of the window that
// holds now, and changes nothing.
func (s *Store) LimitCount(ctx context.Context, check otp.LimitCheck, now time.Time) (int, error) {
	if err := check.Validate(); err != nil {
		return 0, err
	}
	start, end := check.Bounds(now)
	n, err := s.client.HGet(ctx, s.limitKey(check.Name, check.Key), windowField(start, end)).Int()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis limit count %s: %w", check.Name, err)
	}
	return n, nil
}

// ResetLimit implements otp.Store.
func (s *Store) ResetLimit(ctx context.Context, name, key string) error {
	if err := s.client.Del(ctx, s.limitKey(name, key)).Err(); err != nil {
		return fmt.Errorf("redis reset limit %s: %w", name, err)
	}
	return nil
}

// Revoke implements otp.Store. The not-before is kept in milliseconds,
// rounded up, so that a challenge created earlier in the same millisecond
// is gone too: what NotBefore reads back may be up to a millisecond later
// than notBefore, which errs towards revoking.
func (s *Store) Revoke(ctx context.Context, subject string, notBefore time.Time) error {
	if err := revokeScript.Run(ctx, s.client, []string{s.notBeforeKey(subject)}, msCeil(notBefore)).Err(); err != nil {
		return fmt.Errorf("redis revoke: %w", err)
	}
	return nil
}

// msCeil is t in Unix milliseconds, rounded up.
func msCeil(t time.Time) int64 {
	m := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		m++
	}
	return m
}

// NotBefore implements otp.Store.
func (s *Store) NotBefore(ctx context.Context, subject string) (time.Time, error) {
	v, err := s.client.Get(ctx, s.notBeforeKey(subject)).Int64()
	if errors.Is(err, goredis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("redis not before: %w", err)
	}
	return fromMS(v), nil
}

// Unlock implements otp.Store.
func (s *Store) Unlock(ctx context.Context, subject string) error {
	if err := unlockScript.Run(ctx, s.client, []string{s.identityKey(subject)}).Err(); err != nil {
		return fmt.Errorf("redis unlock: %w", err)
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
		case "hk":
			c.HistoryKey = v
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
