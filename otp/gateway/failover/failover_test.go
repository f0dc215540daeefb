package failover_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/gateway/failover"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fake answers with err (nil: accepted) and counts the messages it was
// handed, which is what "two SMS" would mean.
type fake struct {
	mu    sync.Mutex
	err   error
	sends int
	calls int
}

func (f *fake) Send(context.Context, otp.Message) (otp.Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sends++
	if f.err != nil {
		return otp.Receipt{}, f.err
	}
	return otp.Receipt{Status: otp.DeliveryQueued}, nil
}

func (f *fake) set(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }

func (f *fake) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.sends }

type voiceFake struct {
	fake
	noFrom bool
}

// Capabilities reports voice only with a calling number, as Twilio does.
func (v *voiceFake) Capabilities() otp.Capabilities {
	if v.noFrom {
		return otp.Capabilities{}
	}
	return otp.Capabilities{Voice: v}
}

func canCall(g *failover.Gateway) bool { return g.Capabilities().Voice != nil }

func (v *voiceFake) Call(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	v.mu.Lock()
	v.calls++
	v.mu.Unlock()
	return v.Send(ctx, m)
}

var (
	down     = &otp.GatewayError{Gateway: "x", Kind: otp.NotSent, Reason: "unreachable"}
	noAnswer = &otp.GatewayError{Gateway: "x", Kind: otp.Unknown, Reason: "no_answer"}
	badNum   = &otp.GatewayError{Gateway: "x", Kind: otp.Rejected, Reason: "invalid_number"}
)

func chain(t *testing.T, clock otp.Clock, gws ...otp.Gateway) *failover.Gateway {
	t.Helper()
	names := []string{"first", "second", "third"}
	var ms []failover.Member
	for i, g := range gws {
		ms = append(ms, failover.Member{Name: names[i], Gateway: g})
	}
	g, err := failover.New(failover.Config{FailureThreshold: 3, OpenFor: 30 * time.Second, Clock: clock}, ms...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	msg := otp.Message{To: "+819012345678", Body: "code"}

	t.Run("a gateway that is down passes the message to the next", func(t *testing.T) {
		t.Parallel()
		a, b := &fake{err: down}, &fake{}
		r, err := chain(t, &fakeClock{}, a, b).Send(ctx, msg)
		if err != nil || r.Gateway != "second" {
			t.Fatalf("receipt %+v, %v", r, err)
		}
		if a.count() != 1 || b.count() != 1 {
			t.Fatalf("sends %d %d", a.count(), b.count())
		}
	})
	t.Run("a gateway that may have accepted (no answer) stops the chain: never two SMS", func(t *testing.T) {
		t.Parallel()
		a, b := &fake{err: noAnswer}, &fake{}
		_, err := chain(t, &fakeClock{}, a, b).Send(ctx, msg)
		if otp.ErrorKindOf(err) != otp.Unknown || b.count() != 0 {
			t.Fatalf("error %v, second gateway sends %d", err, b.count())
		}
	})
	t.Run("an error that is not classified counts as maybe accepted", func(t *testing.T) {
		t.Parallel()
		a, b := &fake{err: errors.New("something")}, &fake{}
		if _, err := chain(t, &fakeClock{}, a, b).Send(ctx, msg); err == nil || b.count() != 0 {
			t.Fatalf("error %v, second gateway sends %d", err, b.count())
		}
	})
	t.Run("a number refused for good is not tried elsewhere", func(t *testing.T) {
		t.Parallel()
		a, b := &fake{err: badNum}, &fake{}
		_, err := chain(t, &fakeClock{}, a, b).Send(ctx, msg)
		var ge *otp.GatewayError
		if !errors.As(err, &ge) || ge.Reason != "invalid_number" || b.count() != 0 {
			t.Fatalf("error %v, second gateway sends %d", err, b.count())
		}
	})
	t.Run("when every gateway is down the error says not sent", func(t *testing.T) {
		t.Parallel()
		_, err := chain(t, &fakeClock{}, &fake{err: down}, &fake{err: down}).Send(ctx, msg)
		if otp.ErrorKindOf(err) != otp.NotSent {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("voice calls skip gateways that cannot call", func(t *testing.T) {
		t.Parallel()
		sms, voice := &fake{}, &voiceFake{}
		g := chain(t, &fakeClock{}, sms, voice)
		r, err := g.Call(ctx, msg)
		if err != nil || r.Gateway != "second" || voice.calls != 1 || sms.count() != 0 {
			t.Fatalf("receipt %+v, %v, calls %d, sms %d", r, err, voice.calls, sms.count())
		}
		if !canCall(g) || canCall(chain(t, &fakeClock{}, sms)) {
			t.Fatal("the chain's voice capability is wrong")
		}
	})
	t.Run("a voice gateway set up without a calling number is not asked to call, and keeps sending SMS", func(t *testing.T) {
		t.Parallel()
		noFrom, voice := &voiceFake{noFrom: true}, &voiceFake{}
		clock := &fakeClock{}
		g := chain(t, clock, noFrom, voice)
		for i := 0; i < 5; i++ {
			if r, err := g.Call(ctx, msg); err != nil || r.Gateway != "second" {
				t.Fatalf("call %d: %+v %v", i, r, err)
			}
		}
		if noFrom.calls != 0 || g.State(clock.Now())["first"] {
			t.Fatalf("the gateway that can't call was asked %d times, circuit open %v", noFrom.calls, g.State(clock.Now()))
		}
		if r, err := g.Send(ctx, msg); err != nil || r.Gateway != "first" {
			t.Fatalf("SMS should still go through the first gateway: %+v %v", r, err)
		}
		if canCall(chain(t, clock, noFrom)) {
			t.Fatal("a chain whose only voice gateway can't call says it can")
		}
	})
}

func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	msg := otp.Message{To: "+819012345678"}
	clock := &fakeClock{now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	a, b := &fake{err: down}, &fake{}
	g := chain(t, clock, a, b)

	for i := 0; i < 3; i++ {
		if _, err := g.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	if !g.State(clock.Now())["first"] {
		t.Fatal("three failures in a row should open the first gateway's circuit")
	}
	for i := 0; i < 5; i++ {
		if _, err := g.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	if a.count() != 3 {
		t.Fatalf("an open circuit was tried: %d sends", a.count())
	}

	clock.Add(30 * time.Second)
	if _, err := g.Send(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if a.count() != 4 || !g.State(clock.Now())["first"] {
		t.Fatalf("after the open period one trial should go through and, failing, reopen: sends %d, open %v", a.count(), g.State(clock.Now()))
	}

	clock.Add(30 * time.Second)
	a.set(nil)
	r, err := g.Send(ctx, msg)
	if err != nil || r.Gateway != "first" || g.State(clock.Now())["first"] {
		t.Fatalf("a successful trial should close the circuit: %+v %v %v", r, err, g.State(clock.Now()))
	}
	if _, err := g.Send(ctx, msg); err != nil || a.count() != 6 {
		t.Fatalf("the closed circuit should take every message again: %d", a.count())
	}
}

// reportFake takes delivery reports under its own name.
type reportFake struct {
	fake
	name string
}

func (r *reportFake) ParseReceipt(*http.Request, string) (otp.Receipt, error) {
	return otp.Receipt{Gateway: r.name, Status: otp.DeliveryDelivered}, nil
}

func (r *reportFake) Capabilities() otp.Capabilities {
	return otp.Capabilities{Receipts: map[string]otp.ReceiptParser{r.name: r}}
}

func TestFailoverCapabilities(t *testing.T) {
	t.Parallel()
	t.Run("the chain takes the delivery reports of each member that takes them, under the member's name", func(t *testing.T) {
		t.Parallel()
		a, b, c := &reportFake{name: "kannel"}, &fake{}, &reportFake{name: "twilio"}
		caps := chain(t, &fakeClock{}, a, b, c).Capabilities()
		if len(caps.Receipts) != 2 || caps.Receipts["kannel"] != a || caps.Receipts["twilio"] != c {
			t.Fatalf("receipts %v", caps.Receipts)
		}
		if caps.Voice != nil {
			t.Fatal("a chain with no member that calls offers calls")
		}
		if caps.Health == nil {
			t.Fatal("the chain reports its members' health")
		}
	})
	t.Run("two members taking reports under one name are refused, since reports could not be routed", func(t *testing.T) {
		t.Parallel()
		_, err := failover.New(failover.Config{}, failover.Member{Name: "first", Gateway: &reportFake{name: "http"}},
			failover.Member{Name: "second", Gateway: &reportFake{name: "http"}})
		if err == nil || !strings.Contains(err.Error(), `two gateways take delivery reports as "http"`) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("a member that takes reports without saying so takes them under its member name", func(t *testing.T) {
		t.Parallel()
		type plain struct {
			*fake
			otp.ReceiptParser
		}
		p := plain{&fake{}, &reportFake{name: "ignored"}}
		caps := chain(t, &fakeClock{}, &fake{}, p).Capabilities()
		if caps.Receipts["second"] == nil || len(caps.Receipts) != 1 {
			t.Fatalf("receipts %v", caps.Receipts)
		}
	})
}
