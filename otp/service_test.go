package otp_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	mrand "math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

var t0 = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

// fakeClock is a settable otp.Clock, safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recordingGateway keeps every message it is asked to send and fails with
// err when set.
type recordingGateway struct {
	mu   sync.Mutex
	sent []otp.Message
	err  error
}

func (g *recordingGateway) Send(_ context.Context, m otp.Message) (otp.Receipt, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sent = append(g.sent, m)
	if g.err != nil {
		return otp.Receipt{}, g.err
	}
	return otp.Receipt{Gateway: "recording", ID: m.Ref}, nil
}

func (g *recordingGateway) messages() []otp.Message {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]otp.Message(nil), g.sent...)
}

// lastCode reads the code from the last message sent.
func (g *recordingGateway) lastCode(t *testing.T) string {
	t.Helper()
	sent := g.messages()
	if len(sent) == 0 {
		t.Fatal("no message was sent")
	}
	code := codePattern.FindString(sent[len(sent)-1].Body)
	if code == "" {
		t.Fatalf("no code in %q", sent[len(sent)-1].Body)
	}
	return code
}

var codePattern = regexp.MustCompile(`\b[0-9]{6}\b`)

var alicePhone = otp.Phone{E164: "+819012345678", Region: "JP", Type: "mobile", Masked: "+81 90-****-5678"}

type fixture struct {
	svc     *otp.Service
	store   *memory.Store
	gateway *recordingGateway
	clock   *fakeClock
	keys    *otp.Keys
}

// newFixture builds a Service over a memory store, a recording gateway and
// a fake clock, with random drawn from random (a seeded stream if nil).
func newFixture(t *testing.T, cfg otp.Config, random io.Reader) *fixture {
	t.Helper()
	if random == nil {
		random = mrand.NewChaCha8([32]byte{42})
	}
	f := &fixture{gateway: &recordingGateway{}, clock: newFakeClock(), keys: mustKeys(t, rootKey)}
	f.store = memory.New(f.clock, time.Hour)
	t.Cleanup(func() { f.store.Close() })
	svc, err := otp.NewService(cfg, f.store, f.gateway, f.keys, f.clock, random)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func (f *fixture) send(t *testing.T, resendID string) otp.SendResult {
	t.Helper()
	res, err := f.svc.Send(t.Context(), otp.SendRequest{
		Subject: "alice", SessionHash: "session-a", Phone: alicePhone, ResendID: resendID, Locale: "en",
	})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return res
}

func (f *fixture) verifyIn(t *testing.T, session, id, code string) (otp.VerifyResult, error) {
	return f.svc.Verify(t.Context(), otp.VerifyInput{Subject: "alice", SessionHash: session, ChallengeID: id, Code: code})
}

func (f *fixture) verify(t *testing.T, id, code string) otp.VerifyStatus {
	t.Helper()
	res, err := f.verifyIn(t, "session-a", id, code)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return res.Status
}

func wantVerify(t *testing.T, got, want otp.VerifyStatus) {
	t.Helper()
	if got != want {
		t.Fatalf("verify: got %s, want %s", got, want)
	}
}

func TestServiceSendThenVerify(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	res := f.send(t, "")
	sent := f.gateway.messages()
	if len(sent) != 1 {
		t.Fatalf("%d messages sent, want 1", len(sent))
	}
	m := sent[0]
	if m.To != alicePhone.E164 || m.Ref != res.Challenge.ID || m.Locale != "en" || res.Resent {
		t.Fatalf("message %+v for %+v", m, res)
	}
	if res.Receipt.Gateway != "recording" {
		t.Fatalf("receipt %+v", res.Receipt)
	}
	wantVerify(t, f.verify(t, res.Challenge.ID, f.gateway.lastCode(t)), otp.VerifyOK)
}

func TestServiceCodeTypedWithASpaceVerifies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	res := f.send(t, "")
	code := f.gateway.lastCode(t)
	wantVerify(t, f.verify(t, res.Challenge.ID, code[:3]+" "+code[3:]), otp.VerifyOK)
}

func TestServiceResendReplacesTheCode(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	first := f.send(t, "")
	oldCode := f.gateway.lastCode(t)

	f.clock.Advance(30 * time.Second)
	second := f.send(t, first.Challenge.ID)
	newCode := f.gateway.lastCode(t)
	if !second.Resent || second.Challenge.ID != first.Challenge.ID {
		t.Fatalf("resend made %+v, want the same challenge resent", second)
	}
	if oldCode == newCode {
		t.Fatalf("the resend sent the same code %s", newCode)
	}
	wantVerify(t, f.verify(t, first.Challenge.ID, oldCode), otp.VerifyWrong)
	wantVerify(t, f.verify(t, first.Challenge.ID, newCode), otp.VerifyOK)
}

func TestServiceResendOfUnknownChallengeStartsAnother(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	res := f.send(t, "not-a-challenge")
	if res.Resent || res.Challenge.ID == "not-a-challenge" {
		t.Fatalf("got %+v, want a new challenge", res)
	}
	wantVerify(t, f.verify(t, res.Challenge.ID, f.gateway.lastCode(t)), otp.VerifyOK)
}

func TestServiceSecondSendWithinCooldownIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	first := f.send(t, "")
	f.clock.Advance(29 * time.Second)
	_, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: "alice", SessionHash: "session-a", Phone: alicePhone, ResendID: first.Challenge.ID})
	var cd *otp.CooldownError
	if !errors.As(err, &cd) || errors.Is(err, otp.ErrStoreUnavailable) {
		t.Fatalf("got %v, want a *otp.CooldownError that is not a store failure", err)
	}
	if !cd.RetryAt.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("retry at %s, want 30s after the first send", cd.RetryAt.Sub(t0))
	}
	if n := len(f.gateway.messages()); n != 1 {
		t.Fatalf("%d messages sent, want 1", n)
	}
}

func TestServiceMalformedCodeIsNotCounted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	res := f.send(t, "")
	for _, code := range []string{"", "12345", "1234567", "12345a", "１２３４５６", "123456; DROP"} {
		if _, err := f.verifyIn(t, "session-a", res.Challenge.ID, code); !errors.Is(err, otp.ErrMalformedCode) {
			t.Fatalf("verify %q: got %v, want ErrMalformedCode", code, err)
		}
	}
	c, err := f.svc.Challenge(t.Context(), "alice", "session-a", res.Challenge.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Attempts != 0 {
		t.Fatalf("attempts: got %d, want 0", c.Attempts)
	}
	st, err := f.svc.Identity(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if st.Failures != 0 {
		t.Fatalf("failures: got %d, want 0", st.Failures)
	}
}

func TestServiceCodeLifetime(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		after time.Duration
		want  otp.VerifyStatus
	}{
		{"a code works a second before it expires", 5*time.Minute - time.Second, otp.VerifyOK},
		{"a code fails once its lifetime has passed", 5 * time.Minute, otp.VerifyNotFound},
		{"a code fails long after its lifetime", time.Hour, otp.VerifyNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, otp.DefaultConfig(), nil)
			res := f.send(t, "")
			f.clock.Advance(tc.after)
			wantVerify(t, f.verify(t, res.Challenge.ID, f.gateway.lastCode(t)), tc.want)
		})
	}
}

func TestServiceCodeWorksOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	res := f.send(t, "")
	code := f.gateway.lastCode(t)
	wantVerify(t, f.verify(t, res.Challenge.ID, code), otp.VerifyOK)
	wantVerify(t, f.verify(t, res.Challenge.ID, code), otp.VerifyNotFound)
}

func TestServiceCodeIsBoundToItsSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	res := f.send(t, "")
	code := f.gateway.lastCode(t)

	got, err := f.verifyIn(t, "session-b", res.Challenge.ID, code)
	if err != nil || got.Status != otp.VerifyNotFound {
		t.Fatalf("verify in another session: got %+v, %v; want no_challenge", got, err)
	}
	if _, err := f.svc.Challenge(t.Context(), "alice", "session-b", res.Challenge.ID); !errors.Is(err, otp.ErrChallengeNotFound) {
		t.Fatalf("challenge from another session: got %v, want ErrChallengeNotFound", err)
	}
	wantVerify(t, f.verify(t, res.Challenge.ID, code), otp.VerifyOK)
}

func TestServiceAnswersAlikeForUnknownIdentitiesAndChallenges(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	f.send(t, "")
	known, errKnown := f.svc.Verify(t.Context(), otp.VerifyInput{Subject: "alice", SessionHash: "session-a", ChallengeID: "no-such-challenge", Code: "123456"})
	unknown, errUnknown := f.svc.Verify(t.Context(), otp.VerifyInput{Subject: "nobody", SessionHash: "session-a", ChallengeID: "no-such-challenge", Code: "123456"})
	if errKnown != nil || errUnknown != nil {
		t.Fatal(errKnown, errUnknown)
	}
	if known != unknown || known.Status != otp.VerifyNotFound {
		t.Fatalf("known identity got %+v, unknown identity got %+v; want the same no_challenge", known, unknown)
	}
}

func TestServiceGatewayFailureIsASendFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t, otp.DefaultConfig(), nil)
	gatewayErr := errors.New("kannel: 503 service unavailable")
	f.gateway.err = gatewayErr
	_, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: "alice", Phone: alicePhone})
	if !errors.Is(err, otp.ErrSendFailed) || !errors.Is(err, gatewayErr) {
		t.Fatalf("got %v, want ErrSendFailed wrapping the gateway's error", err)
	}
	if errors.Is(err, otp.ErrStoreUnavailable) {
		t.Fatalf("a gateway failure reads as a store failure: %v", err)
	}
	if n := len(f.gateway.messages()); n != 1 {
		t.Fatalf("the gateway was called %d times for one send, want 1", n)
	}
}

// brokenStore fails every call with err, as a store that cannot be reached.
type brokenStore struct{ err error }

func (s brokenStore) Issue(context.Context, otp.IssueRequest) (*otp.Challenge, error) {
	return nil, s.err
}

func (s brokenStore) Challenge(context.Context, string, string, time.Time) (*otp.Challenge, error) {
	return nil, s.err
}

func (s brokenStore) Verify(context.Context, otp.VerifyRequest) (otp.VerifyResult, error) {
	return otp.VerifyResult{Status: otp.VerifyOK}, s.err
}

func (s brokenStore) Identity(context.Context, string, time.Time) (otp.IdentityState, error) {
	return otp.IdentityState{}, s.err
}

func (s brokenStore) SetDelivery(context.Context, string, string, otp.DeliveryStatus, time.Time) error {
	return s.err
}

func (s brokenStore) Limit(context.Context, otp.LimitRequest) (otp.LimitResult, error) {
	return otp.LimitResult{Allowed: true}, s.err
}

func (s brokenStore) ResetLimit(context.Context, string, string) error { return s.err }

func (s brokenStore) Revoke(context.Context, string, time.Time) error { return s.err }

func (s brokenStore) NotBefore(context.Context, string) (time.Time, error) {
	return time.Time{}, s.err
}

func (s brokenStore) Unlock(context.Context, string) error { return s.err }

func (s brokenStore) Locked(context.Context, time.Time, int) ([]otp.LockedIdentity, int, error) {
	return nil, 0, s.err
}

func (s brokenStore) LimitCount(context.Context, otp.LimitCheck, time.Time) (int, error) {
	return 0, s.err
}

func (s brokenStore) BindPhone(context.Context, otp.BindRequest) error { return s.err }

func (s brokenStore) BoundPhone(context.Context, string) (otp.BoundPhone, error) {
	return otp.BoundPhone{}, s.err
}

func (s brokenStore) UnbindPhone(context.Context, string) error { return s.err }

func TestServiceFailsClosedWhenTheStoreFails(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
	}{
		{"a refused connection", errors.New("dial tcp 10.0.0.7:6379: connect: connection refused")},
		{"a time-out", context.DeadlineExceeded},
	}
	for _, tc := range cases {
		t.Run("the store failing with "+tc.name+" is reported as unavailable", func(t *testing.T) {
			t.Parallel()
			gw := &recordingGateway{}
			svc, err := otp.NewService(otp.DefaultConfig(), brokenStore{tc.err}, gw, mustKeys(t, rootKey), newFakeClock(), nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, otp.ErrStoreUnavailable) || !errors.Is(err, tc.err) {
					t.Errorf("%s: got %v, want ErrStoreUnavailable wrapping the store's error", op, err)
				}
			}
			_, err = svc.Send(ctx, otp.SendRequest{Subject: "alice", Phone: alicePhone})
			check("send", err)
			_, err = svc.Send(ctx, otp.SendRequest{Subject: "alice", Phone: alicePhone, ResendID: "c1"})
			check("resend", err)
			res, err := svc.Verify(ctx, otp.VerifyInput{Subject: "alice", ChallengeID: "c1", Code: "123456"})
			check("verify", err)
			if res.Status == otp.VerifyOK {
				t.Error("verify passed while the store failed")
			}
			_, err = svc.Challenge(ctx, "alice", "", "c1")
			check("challenge", err)
			_, err = svc.Identity(ctx, "alice")
			check("identity", err)
			if n := len(gw.messages()); n != 0 {
				t.Errorf("%d messages sent with the store down, want none", n)
			}
		})
	}
}

func TestServiceLockOutIsNotAStoreFailure(t *testing.T) {
	t.Parallel()
	cfg := otp.DefaultConfig()
	cfg.Failures.Budget = 2
	f := newFixture(t, cfg, nil)
	res := f.send(t, "")
	wrong := "000000"
	if wrong == f.gateway.lastCode(t) {
		wrong = "111111"
	}
	wantVerify(t, f.verify(t, res.Challenge.ID, wrong), otp.VerifyWrong)
	wantVerify(t, f.verify(t, res.Challenge.ID, wrong), otp.VerifyWrong)

	f.clock.Advance(10 * time.Second)
	_, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: "alice", Phone: alicePhone})
	var locked *otp.LockedError
	if !errors.As(err, &locked) || errors.Is(err, otp.ErrStoreUnavailable) {
		t.Fatalf("got %v, want a *otp.LockedError that is not a store failure", err)
	}
	if !locked.Until.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("locked until %s, want 30s after the second failure", locked.Until.Sub(t0))
	}
	wantVerify(t, f.verify(t, res.Challenge.ID, f.gateway.lastCode(t)), otp.VerifyLocked)
}

// fixedCodeReader makes the first code 739214, then continues with a seeded
// stream for challenge ids and anything else.
func fixedCodeReader() io.Reader {
	first := make([]byte, 16)
	copy(first, []byte{7, 3, 9, 2, 1, 4})
	return io.MultiReader(bytes.NewReader(first), mrand.NewChaCha8([32]byte{7}))
}

func TestServiceStoresNoCode(t *testing.T) {
	t.Parallel()
	const code = "739214"
	f := newFixture(t, otp.DefaultConfig(), fixedCodeReader())
	res := f.send(t, "")
	if got := f.gateway.lastCode(t); got != code {
		t.Fatalf("sent code %s, want %s from the fixed reader", got, code)
	}
	stored, err := f.store.Challenge(t.Context(), "alice", res.Challenge.ID, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if want := f.keys.CodeMAC(res.Challenge.ID, code); !bytes.Equal(stored.CodeMAC, want) {
		t.Fatalf("stored MAC %x, want HMAC(id, code) %x", stored.CodeMAC, want)
	}
	encodings := map[string][]byte{
		"text":   []byte(code),
		"digits": {7, 3, 9, 2, 1, 4},
		"hex":    []byte(hex.EncodeToString([]byte(code))),
		"base64": []byte(base64.StdEncoding.EncodeToString([]byte(code))),
	}
	for name, enc := range encodings {
		if bytes.Contains(stored.CodeMAC, enc) {
			t.Errorf("the stored MAC contains the code as %s", name)
		}
	}
	js, err := json.Marshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	for name, enc := range encodings {
		if bytes.Contains(js, enc) {
			t.Errorf("the stored challenge contains the code as %s: %s", name, js)
		}
	}
	if bytes.Contains(js, []byte(alicePhone.E164)) || bytes.Contains(js, []byte("12345678")) {
		t.Errorf("the stored challenge contains the phone number: %s", js)
	}
	// The masked form is kept sealed under the identity (rule 3): its last
	// digits complete the prefix the fraud guard keeps in clear.
	if stored.PhoneHash != f.keys.PhoneHash(alicePhone.E164) || strings.Contains(stored.PhoneMasked, alicePhone.Masked[len(alicePhone.Masked)-4:]) ||
		f.keys.OpenMasked(stored.Subject, stored.PhoneMasked) != alicePhone.Masked {
		t.Errorf("stored phone %q %q, want the keyed hash and the masked form sealed", stored.PhoneHash, stored.PhoneMasked)
	}
	if other := f.keys.OpenMasked("mallory", stored.PhoneMasked); other != "" {
		t.Errorf("alice's sealed masked number opened for another identity: %q", other)
	}
}

func TestServiceMessageLocaleAndWebOTP(t *testing.T) {
	t.Parallel()
	cfg := otp.DefaultConfig()
	cfg.ServiceName = "Example"
	msgs, err := otp.NewMessages(otp.MessagesConfig{WebOTPHost: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Messages = msgs
	f := newFixture(t, cfg, nil)
	res, err := f.svc.Send(t.Context(), otp.SendRequest{Subject: "alice", Phone: alicePhone, Locale: "ja"})
	if err != nil {
		t.Fatal(err)
	}
	m := f.gateway.messages()[0]
	code := f.gateway.lastCode(t)
	if m.Locale != "ja" || !strings.HasPrefix(m.Body, "Example 確認コード: "+code) || !strings.HasSuffix(m.Body, "\n@example.com #"+code) {
		t.Fatalf("message %+v", m)
	}
	got, err := f.verifyIn(t, "", res.Challenge.ID, code)
	if err != nil || got.Status != otp.VerifyOK {
		t.Fatalf("verify: %+v, %v", got, err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(*otp.Config)
		want   string
	}{
		{"the defaults are valid", func(*otp.Config) {}, ""},
		{"six-digit codes are valid", func(c *otp.Config) { c.CodeLength = 6 }, ""},
		{"ten-digit codes are valid", func(c *otp.Config) { c.CodeLength = 10 }, ""},
		{"five-digit codes are refused", func(c *otp.Config) { c.CodeLength = 5 }, "code_length 5"},
		{"eleven-digit codes are refused", func(c *otp.Config) { c.CodeLength = 11 }, "code_length 11"},
		{"a ten-minute code lifetime is valid", func(c *otp.Config) { c.CodeTTL = 10 * time.Minute }, ""},
		{"an eleven-minute code lifetime is refused", func(c *otp.Config) { c.CodeTTL = 11 * time.Minute }, "code_ttl 11m0s"},
		{"a code lifetime just over ten minutes is refused", func(c *otp.Config) { c.CodeTTL = 10*time.Minute + time.Second }, "code_ttl"},
		{"a zero code lifetime is refused", func(c *otp.Config) { c.CodeTTL = 0 }, "code_ttl"},
		{"a negative code lifetime is refused", func(c *otp.Config) { c.CodeTTL = -time.Minute }, "code_ttl"},
		{"zero attempts are refused", func(c *otp.Config) { c.MaxAttempts = 0 }, "max_attempts 0"},
		{"eleven attempts are refused", func(c *otp.Config) { c.MaxAttempts = 11 }, "max_attempts 11"},
		{"zero sends are refused", func(c *otp.Config) { c.MaxSends = 0 }, "max_sends 0"},
		{"a hard limit over 100 failures is refused", func(c *otp.Config) { c.Failures.HardLimit = 101 }, "hard limit 101"},
		{"a hard limit of zero is refused", func(c *otp.Config) { c.Failures.HardLimit = 0 }, "hard limit 0"},
		{"a failure budget of zero is refused", func(c *otp.Config) { c.Failures.Budget = 0 }, "failure budget 0"},
		{"a failure budget over the hard limit is refused", func(c *otp.Config) { c.Failures.Budget = 101 }, "failure budget 101"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := otp.DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDefaultConfigFollowsTheRules(t *testing.T) {
	t.Parallel()
	cfg := otp.DefaultConfig()
	if cfg.CodeLength != 6 || cfg.CodeTTL != 5*time.Minute || cfg.MaxAttempts != 5 ||
		cfg.Failures.HardLimit != 100 || cfg.Failures.DelayBase != 30*time.Second || cfg.Failures.DelayMax != time.Hour {
		t.Fatalf("defaults %+v differ from SECURITY.md rules 1, 2 and 7", cfg)
	}
}

func TestNewServiceRefusesWhatItCannotRun(t *testing.T) {
	t.Parallel()
	keys := mustKeys(t, rootKey)
	store := memory.New(nil, time.Hour)
	t.Cleanup(func() { store.Close() })
	gw := &recordingGateway{}
	bad := otp.DefaultConfig()
	bad.CodeLength = 4
	cases := []struct {
		name    string
		cfg     otp.Config
		store   otp.Store
		gateway otp.Gateway
		keys    *otp.Keys
	}{
		{"an invalid configuration is refused", bad, store, gw, keys},
		{"a missing store is refused", otp.DefaultConfig(), nil, gw, keys},
		{"a missing gateway is refused", otp.DefaultConfig(), store, nil, keys},
		{"missing keys are refused", otp.DefaultConfig(), store, gw, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if svc, err := otp.NewService(tc.cfg, tc.store, tc.gateway, tc.keys, nil, nil); err == nil {
				t.Fatalf("got %v, want an error", svc)
			}
		})
	}
}
