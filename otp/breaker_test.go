package otp_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// breakerConfig is the service's defaults with the conversion breaker on at
// its defaults, home in Japan, and the fixed send caps off (so that what a
// test sees is the breaker's decision alone) unless caps is set.
func breakerConfig(caps bool, blocks *[]otp.BreakerBlock) otp.Config {
	cfg := otp.DefaultConfig()
	if !caps {
		cfg.Limits = otp.SendLimits{Window: time.Hour}
	}
	cfg.Breaker = otp.DefaultBreakerPolicy()
	cfg.Breaker.Home = "JP"
	if blocks != nil {
		cfg.Breaker.OnBlock = func(b otp.BreakerBlock) { *blocks = append(*blocks, b) }
	}
	return cfg
}

// stepUp sends a code to e164 for a new identity and, when verifies is
// true, types it after lag. It returns the send's error.
func (f *fixture) stepUp(t *testing.T, subject, e164, region, ip string, verifies bool, lag time.Duration) error {
	t.Helper()
	res, err := f.svc.Send(t.Context(), otp.SendRequest{
		Subject: subject, SessionHash: "s-" + subject, ClientIP: ip,
		Phone: otp.Phone{E164: e164, Region: region, Type: "mobile", Masked: otp.MaskE164(e164)},
	})
	if err != nil || !verifies {
		return err
	}
	code := f.gateway.lastCode(t)
	f.clock.Advance(lag)
	v, err := f.svc.Verify(t.Context(), otp.VerifyInput{Subject: subject, SessionHash: "s-" + subject, ChallengeID: res.Challenge.ID, Code: code})
	if err != nil || v.Status != otp.VerifyOK {
		t.Fatalf("%s typed the code it received: %v, %v", subject, v.Status, err)
	}
	return nil
}

// verifiesAt spreads a conversion rate evenly: user i of a population that
// verifies percent% of its codes verifies.
func verifiesAt(i, percent int) bool { return (i+1)*percent/100 > i*percent/100 }

// TestBreakerDecisionsForPopulations runs populations of one Japanese
// prefix through the service at the breaker's defaults for three hours: a
// new user every gap, each verifying (a minute later) or not at the
// population's rate. Real people verify most of their codes and must never
// be blocked; a prefix that never or hardly verifies must be, once there
// are enough sends to judge; a small prefix is never judged.
func TestBreakerDecisionsForPopulations(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		conversion  int // percent
		gap         time.Duration
		wantBlocked bool
	}{
		{"a large prefix that verifies 90% of its codes is never blocked", 90, time.Minute, false},
		{"a large prefix that verifies 70% of its codes is never blocked", 70, time.Minute, false},
		{"a large prefix that verifies 50% of its codes is never blocked", 50, time.Minute, false},
		{"a large prefix that verifies 10% of its codes is blocked", 10, time.Minute, true},
		{"a large prefix that verifies none of its codes is blocked", 0, time.Minute, true},
		{"a small prefix that verifies 90% of its codes is never blocked", 90, 12 * time.Minute, false},
		{"a small prefix that verifies 70% of its codes is never blocked", 70, 12 * time.Minute, false},
		{"a small prefix that verifies 50% of its codes is never blocked", 50, 12 * time.Minute, false},
		{"a small prefix is never judged even when it verifies nothing", 0, 12 * time.Minute, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var blocks []otp.BreakerBlock
			f := newFixture(t, breakerConfig(false, &blocks), nil)
			refused := 0
			for i, start := 0, f.clock.Now(); f.clock.Now().Before(start.Add(3 * time.Hour)); i++ {
				at := f.clock.Now()
				err := f.stepUp(t, fmt.Sprint("user-", i), fmt.Sprintf("+81901234%04d", i), "JP", "", verifiesAt(i, tc.conversion), time.Minute)
				var be *otp.BlockedError
				switch {
				case errors.As(err, &be):
					refused++
				case err != nil:
					t.Fatalf("user %d: %v", i, err)
				}
				f.clock.Advance(at.Add(tc.gap).Sub(f.clock.Now()))
			}
			if got := len(blocks) > 0; got != tc.wantBlocked {
				t.Fatalf("blocked: %v (%d refused, blocks %+v); want %v", got, refused, blocks, tc.wantBlocked)
			}
			if tc.wantBlocked && refused == 0 {
				t.Fatal("a block was reported but no send was refused")
			}
		})
	}
}

// TestBreakerStopsThePumpingSimulation is issue 15's simulation in the
// service: 300 accounts enrol numbers over 30 prefixes of one British
// mobile range, from 60 addresses, and never verify, while 50 real Japanese
// users step up in between. Each pumped send stays under every fixed cap
// (the defaults), so without the breaker all 300 go out; with it at most
// 30 may, and every real user completes.
func TestBreakerStopsThePumpingSimulation(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("fraud guard on %v", on), func(t *testing.T) {
			t.Parallel()
			cfg := breakerConfig(true, nil)
			if !on {
				cfg.Breaker = otp.BreakerPolicy{}
			}
			f := newFixture(t, cfg, nil)
			pumped, real := 0, 0
			for i := range 300 {
				e164 := fmt.Sprintf("+447700%02d%04d", i%30, i)
				err := f.stepUp(t, fmt.Sprint("pump-", i), e164, "GB", fmt.Sprint("198.51.100.", i%60), false, 0)
				var be *otp.BlockedError
				switch {
				case err == nil:
					pumped++
				case !errors.As(err, &be):
					t.Fatalf("pumped send %d refused by something else than the breaker: %v", i, err)
				}
				if i%6 == 0 {
					u := i / 6
					if err := f.stepUp(t, fmt.Sprint("real-", u), fmt.Sprintf("+8190%04d%04d", u*37, u), "JP", fmt.Sprint("192.0.2.", u), true, 30*time.Second); err != nil {
						t.Fatalf("real user %d: %v", u, err)
					}
					real++
				}
				f.clock.Advance(5 * time.Second)
			}
			if real != 50 {
				t.Fatalf("%d real users completed, want 50", real)
			}
			if on && pumped > 30 {
				t.Fatalf("%d SMS went to the pumped range; want at most 30", pumped)
			}
			if !on && pumped != 300 {
				t.Fatalf("without the breaker %d of 300 pumped SMS went out; the simulation must stay under every fixed cap", pumped)
			}
			t.Logf("fraud guard on %v: %d SMS to the pumped range, %d real users completed", on, pumped, real)
		})
	}
}

// TestBreakerRefusesBeforeTheGatewayAndTheStore checks the send path: a
// blocked send never reaches the gateway and spends no cooldown or send of
// its identity, an unblock lets the next one through, and the operator's
// list shows the block.
func TestBreakerRefusesBeforeTheGatewayAndTheStore(t *testing.T) {
	t.Parallel()
	var blocks []otp.BreakerBlock
	f := newFixture(t, breakerConfig(false, &blocks), nil)
	for i := range 10 {
		if err := f.stepUp(t, fmt.Sprint("pump-", i), fmt.Sprintf("+447700900%03d", i), "GB", "", false, 0); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if len(blocks) == 0 {
		t.Fatal("10 unverified sends to one prefix set no block")
	}
	err := f.stepUp(t, "victim", "+447700900999", "GB", "", false, 0)
	var be *otp.BlockedError
	if !errors.As(err, &be) || errors.Is(err, otp.ErrStoreUnavailable) {
		t.Fatalf("send to a blocked prefix: %v; want *otp.BlockedError", err)
	}
	if n := len(f.gateway.messages()); n != 10 {
		t.Fatalf("the gateway was called %d times; want 10", n)
	}
	if st, err := f.svc.Identity(t.Context(), "victim"); err != nil || st.Sends != 0 {
		t.Fatalf("the refused send's identity: %+v, %v; want no send counted", st, err)
	}
	listed, err := f.svc.BreakerBlocks(t.Context())
	if err != nil || len(listed) == 0 {
		t.Fatalf("blocks: %+v, %v; want the block listed", listed, err)
	}
	for _, target := range []string{"+44770090", "+447700", "GB"} {
		if _, err := f.svc.Unblock(t.Context(), target); err != nil {
			t.Fatalf("unblock %s: %v", target, err)
		}
	}
	if err := f.stepUp(t, "victim", "+447700900999", "GB", "", false, 0); err != nil {
		t.Fatalf("send after the unblocks: %v", err)
	}
	if _, err := f.svc.Unblock(t.Context(), "GB"); !errors.Is(err, otp.ErrNotBlocked) {
		t.Errorf("unblock of what is not blocked: %v; want ErrNotBlocked", err)
	}
}
