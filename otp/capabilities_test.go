package otp_test

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

// everything has every capability's method.
type everything struct{ recordingGateway }

func (*everything) Call(context.Context, otp.Message) (otp.Receipt, error) { return otp.Receipt{}, nil }
func (*everything) ParseReceipt(*http.Request, string) (otp.Receipt, error) {
	return otp.Receipt{}, nil
}
func (*everything) Health(context.Context) error { return nil }

// wrapper has a Call method, as a wrapper that measures its gateway does,
// and reports the capabilities of the gateway inside: caps.
type wrapper struct {
	recordingGateway
	caps  otp.Capabilities
	calls int
}

func (w *wrapper) Call(context.Context, otp.Message) (otp.Receipt, error) {
	w.calls++
	return otp.Receipt{}, errors.New("the gateway inside cannot call")
}

func (w *wrapper) Capabilities() otp.Capabilities { return w.caps }

// caller counts the calls it places.
type caller struct{ calls []otp.Message }

func (c *caller) Call(_ context.Context, m otp.Message) (otp.Receipt, error) {
	c.calls = append(c.calls, m)
	return otp.Receipt{Gateway: "caller"}, nil
}

func TestCapabilitiesOf(t *testing.T) {
	t.Parallel()
	t.Run("a gateway that only sends has no capability", func(t *testing.T) {
		t.Parallel()
		if c := otp.CapabilitiesOf("sms", &recordingGateway{}); c.Voice != nil || c.Receipts != nil || c.Health != nil {
			t.Fatalf("capabilities %+v", c)
		}
	})
	t.Run("a gateway's capability interfaces are found, its reports routed to the name it was given", func(t *testing.T) {
		t.Parallel()
		gw := &everything{}
		c := otp.CapabilitiesOf("acme", gw)
		if c.Voice != gw || c.Health != gw || len(c.Receipts) != 1 || c.Receipts["acme"] != gw {
			t.Fatalf("capabilities %+v", c)
		}
	})
	t.Run("a gateway that reports its capabilities is taken at its word, whatever methods it has", func(t *testing.T) {
		t.Parallel()
		c := otp.CapabilitiesOf("acme", &wrapper{})
		if c.Voice != nil || c.Receipts != nil || c.Health != nil {
			t.Fatalf("capabilities %+v: the wrapper's own Call was taken for the voice capability", c)
		}
	})
	t.Run("a health check behind a wrapper is found", func(t *testing.T) {
		t.Parallel()
		w := &wrapper{caps: otp.Capabilities{Health: healthGateway{errors.New("auth refused")}}}
		if h := otp.CheckHealth(t.Context(), "gw", w); h.Status != otp.HealthDown || h.Error != "auth refused" {
			t.Fatalf("health %+v", h)
		}
		if h := otp.CheckHealth(t.Context(), "gw", &wrapper{}); h.Status != otp.HealthUnknown {
			t.Fatalf("health %+v of a wrapper around a gateway without a check", h)
		}
	})
}

func TestServiceCallsOnlyThroughTheVoiceCapability(t *testing.T) {
	t.Parallel()
	newService := func(t *testing.T, gw otp.Gateway) (*otp.Service, *fakeClock) {
		t.Helper()
		clock := newFakeClock()
		store := memory.New(clock, time.Hour)
		t.Cleanup(func() { store.Close() })
		svc, err := otp.NewService(otp.DefaultConfig(), store, gw, mustKeys(t, rootKey), clock, mrand.NewChaCha8([32]byte{7}))
		if err != nil {
			t.Fatal(err)
		}
		return svc, clock
	}
	req := otp.SendRequest{Subject: "alice", SessionHash: "session-a", Phone: alicePhone, Locale: "en"}

	t.Run("a call where the gateway cannot call is refused before the code, the limits or the cooldown are touched", func(t *testing.T) {
		t.Parallel()
		gw := &wrapper{}
		svc, clock := newService(t, gw)
		if svc.CanCall() {
			t.Fatal("CanCall with no voice capability")
		}
		first, err := svc.Send(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		code := gw.lastCode(t)
		clock.Advance(time.Minute)
		before, err := svc.Identity(t.Context(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		call := req
		call.ResendID, call.Voice = first.Challenge.ID, true
		if _, err := svc.Send(t.Context(), call); !errors.Is(err, otp.ErrNoVoice) {
			t.Fatalf("call: %v, want ErrNoVoice", err)
		}
		if gw.calls != 0 || len(gw.messages()) != 1 {
			t.Fatalf("the gateway was asked for %d calls and %d messages", gw.calls, len(gw.messages()))
		}
		after, err := svc.Identity(t.Context(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		if !after.NextSendAt.Equal(before.NextSendAt) {
			t.Fatalf("the cooldown moved from %s to %s", before.NextSendAt, after.NextSendAt)
		}
		c, err := svc.Challenge(t.Context(), "alice", "session-a", first.Challenge.ID)
		if err != nil || c.Sends != 1 || c.Calls != 0 {
			t.Fatalf("challenge %+v %v: a send or a call was counted", c, err)
		}
		res, err := svc.Verify(t.Context(), otp.VerifyInput{Subject: "alice", SessionHash: "session-a", ChallengeID: first.Challenge.ID, Code: code})
		if err != nil || res.Status != otp.VerifyOK {
			t.Fatalf("the code sent before the refused call: %+v %v", res, err)
		}
	})
	t.Run("a call goes through the voice capability the gateway reports", func(t *testing.T) {
		t.Parallel()
		voice := &caller{}
		gw := &wrapper{caps: otp.Capabilities{Voice: voice}}
		svc, clock := newService(t, gw)
		if !svc.CanCall() {
			t.Fatal("CanCall is false with a voice capability")
		}
		first, err := svc.Send(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		call := req
		call.ResendID, call.Voice = first.Challenge.ID, true
		res, err := svc.Send(t.Context(), call)
		if err != nil || res.Receipt.Gateway != "caller" || len(voice.calls) != 1 || gw.calls != 0 {
			t.Fatalf("call: %+v %v; calls placed %d, wrapper's own Call used %d times", res, err, len(voice.calls), gw.calls)
		}
	})
}
