// Package redis is an otp.Store on Redis, Redis Sentinel or Redis Cluster
// (through go-redis's UniversalClient), for several Caddy instances that
// must share challenges, attempt counters and lock-outs.
//
// Every read-modify-write is one Lua script; the keys a script touches share
// one hash tag. Every key has a TTL, except phone bindings, which persist
// until unbound. Nothing in Redis names a code or a full phone number in
// clear: codes are HMACs, numbers are hashed, masked or sealed (encrypted
// with the service's key), identities are hashed into key names.
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
	return "{" + tagHash(subject) + "}"
}

func tagHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

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

// refundTimeout bounds the undoing of a refused send's counts. The undoing
// outlives the request's own cancellation, so a client that goes away
// does not leave counts behind for a send that never happened.
const refundTimeout = time.Second

// Limit implements otp.Store: one script per check, in order, each raising
// its counter only while below max; if one refuses, the counters already
// raised are lowered by a second script each. A failed lowering is not
// reported: the refused send then counts, which only ever refuses more.
func (s *Store) Limit(ctx context.Context, req otp.LimitRequest) (otp.LimitResult, error) {
	if err := req.Validate(); err != nil {
		return otp.LimitResult{}, err
	}
	type raised struct{ key, field string }
	done := make([]raised, 0, len(req.Checks))
	refund := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
		defer cancel()
		for _, r := range done {
			refundScript.Run(rctx, s.client, []string{r.key}, r.field)
		}
	}
	for _, c := range req.Checks {
		start, end := c.Bounds(req.Now)
		key := s.limitKey(c.Name, c.Key)
		field := strconv.FormatInt(ms(start), 10) + ":" + strconv.FormatInt(ms(end), 10)
		ok, err := limitScript.Run(ctx, s.client, []string{key}, field, c.Max, ms(req.Now)).Int()
		if err != nil {
			refund()
			return otp.LimitResult{}, fmt.Errorf("redis limit %s: %w", c.Name, err)
		}
		if ok == 0 {
			refund()
			return otp.LimitResult{Refused: c.Name, RetryAt: end}, nil
		}
		done = append(done, raised{key, field})
	}
	return otp.LimitResult{Allowed: true}, nil
}

// ResetLimit implements otp.Store.
func (s *Store) ResetLimit(ctx context.Context, name, key string) error {
	if err := s.client.Del(ctx, s.limitKey(name, key)).Err(); err != nil {
		return fmt.Errorf("redis reset limit %s: %w", name, err)
	}
	return nil
}

// BindPhone implements otp.Store in the ordered steps described in
// scripts.go: reserve, claim the number, bind, release older claims. A
// failure after the claim leaves the number claimed by this identity
// without a binding; a failure while releasing leaves the old number
// claimed. Both only make numbers look fuller than they are, and both are
// cleared by the identity's next bind or unbind. The binding is in effect
// once bindScript applied, so a failure to release is not reported.
func (s *Store) BindPhone(ctx context.Context, req otp.BindRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	seq, err := s.reserve(ctx, req)
	if err != nil {
		return err
	}
	if err := s.claim(ctx, req, seq); err != nil {
		return err
	}
	return s.apply(ctx, req, seq)
}

// reserve draws the attempt's seq and records the claim it will make.
func (s *Store) reserve(ctx context.Context, req otp.BindRequest) (int64, error) {
	seq, err := reserveScript.Run(ctx, s.client, []string{s.bindKey(req.Subject)}, req.PhoneHash).Int64()
	if err != nil {
		return 0, fmt.Errorf("redis bind phone: %w", err)
	}
	return seq, nil
}

// claim puts the identity in the number's index, or fails with
// otp.ErrNumberTaken. A refused claim stays recorded, so that a claim of a
// concurrent attempt on the same number is still released by a later bind.
func (s *Store) claim(ctx context.Context, req otp.BindRequest, seq int64) error {
	claimed, err := claimScript.Run(ctx, s.client, []string{s.numberKey(req.PhoneHash)},
		tagHash(req.Subject), seq, req.MaxIdentitiesPerNumber).Int()
	if err != nil {
		return fmt.Errorf("redis bind phone: %w", err)
	}
	if claimed == 0 {
		return otp.ErrNumberTaken
	}
	return nil
}

// apply writes the binding unless a later bind or unbind applied first,
// then releases the claims the binding in effect does not need.
func (s *Store) apply(ctx context.Context, req otp.BindRequest, seq int64) error {
	res, err := bindScript.Run(ctx, s.client, []string{s.bindKey(req.Subject)},
		seq, req.PhoneHash, string(req.PhoneSealed), req.PhoneMasked, ms(req.Now)).Slice()
	if err != nil {
		return fmt.Errorf("redis bind phone: %w", err)
	}
	if len(res) != 2 {
		return fmt.Errorf("redis bind phone: unexpected reply %v", res)
	}
	pending, _ := res[1].([]any)
	status, _ := res[0].(string)
	if status != "ok" {
		// A later bind or unbind won. Its release may have run before this
		// claim landed, so this attempt releases its own claim too.
		pending = append(pending, req.PhoneHash, strconv.FormatInt(seq, 10))
	}
	s.release(ctx, req.Subject, pending)
	if status != "ok" {
		return otp.ErrBindConflict
	}
	return nil
}

// release drops the identity's claims listed as phone hash, seq pairs, and
// then their records. What fails stays recorded for the next bind or
// unbind.
func (s *Store) release(ctx context.Context, subject string, pending []any) {
	member, bind := tagHash(subject), s.bindKey(subject)
	for i := 0; i+1 < len(pending); i += 2 {
		ph, _ := pending[i].(string)
		seq, _ := pending[i+1].(string)
		if err := releaseScript.Run(ctx, s.client, []string{s.numberKey(ph)}, member, seq).Err(); err != nil {
			continue
		}
		forgetScript.Run(ctx, s.client, []string{bind}, ph, seq)
	}
}

// BoundPhone implements otp.Store.
func (s *Store) BoundPhone(ctx context.Context, subject string) (otp.BoundPhone, error) {
	v, err := s.client.HMGet(ctx, s.bindKey(subject), "ph", "sealed", "pm", "at").Result()
	if err != nil {
		return otp.BoundPhone{}, fmt.Errorf("redis bound phone: %w", err)
	}
	ph, _ := v[0].(string)
	if ph == "" {
		return otp.BoundPhone{}, otp.ErrNoBoundPhone
	}
	sealed, _ := v[1].(string)
	masked, _ := v[2].(string)
	return otp.BoundPhone{PhoneHash: ph, PhoneSealed: []byte(sealed), PhoneMasked: masked, BoundAt: fromMS(toInt(v[3]))}, nil
}

// UnbindPhone implements otp.Store: the binding goes in one step, then the
// identity's claims on number indexes are released as after a bind.
func (s *Store) UnbindPhone(ctx context.Context, subject string) error {
	pending, err := unbindScript.Run(ctx, s.client, []string{s.bindKey(subject)}).Slice()
	if err != nil {
		return fmt.Errorf("redis unbind phone: %w", err)
	}
	s.release(ctx, subject, pending)
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
