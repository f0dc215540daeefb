package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// RunBreaker is the conformance suite of otp.BreakerStore, the part of a
// store that keeps the conversion breaker (issue 15). newStore follows
// Run's rules: a fresh, unshared store per call.
func RunBreaker(t *testing.T, newStore func(t *testing.T) otp.BreakerStore) {
	for _, tc := range breakerCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, &breakerEnv{t: t, store: newStore(t)})
		})
	}
}

var breakerCases = []struct {
	name string
	run  func(*testing.T, *breakerEnv)
}{
	{"a scope is blocked by the send that makes min_sends without conversions", breakerBlocksAtMinSends},
	{"a blocked scope refuses a send and counts nothing", breakerRefusesWhileBlocked},
	{"verified sends keep a scope open", breakerConversionsKeepOpen},
	{"a conversion counts every send of its ref once", breakerConversionCountsOnce},
	{"a conversion past its ref's lifetime counts nothing", breakerConversionExpires},
	{"sends slide out of the window", breakerWindowSlides},
	{"a repeated block doubles up to the longest", breakerBlockDoubles},
	{"an unblock lifts the block and forgets the counts", breakerUnblockForgets},
	{"the block list holds the blocks in force, latest end first", breakerListsBlocks},
	{"100 concurrent sends to one scope pass exactly min_sends", breakerConcurrentSends},
	{"stats read each scope's sends and conversions in the window", breakerStatsReadTheWindow},
	{"stats count nothing and lift no block", breakerStatsOnlyRead},
	{"a guarded send is refused by a block before anything is counted, and counted when it passes", breakerGuardedIssue},
	{"a verification with BreakerConvert converts its sends in the same step", breakerVerifyConverts},
}

// policy: judged after 10 sends in an hour of six buckets, blocked below 20%
// for an hour, doubling up to four hours.
var breakerPolicy = otp.BreakerPolicy{
	Window: time.Hour, Buckets: 6, MinSends: 10, MinConversion: 0.2,
	Block: time.Hour, MaxBlock: 4 * time.Hour,
}

const (
	scopeP = "prefix:+4477009001"
	scopeR = "range:+44770090"
)

type breakerEnv struct {
	t     *testing.T
	store otp.BreakerStore
	n     int
	mu    sync.Mutex
}

// send counts a send to scopes under a fresh ref and returns the ref.
func (e *breakerEnv) send(now time.Time, scopes ...string) (string, otp.BreakerCountResult) {
	e.t.Helper()
	e.mu.Lock()
	e.n++
	ref := fmt.Sprintf("ref-%d", e.n)
	e.mu.Unlock()
	return ref, e.sendRef(ref, now, scopes...)
}

func (e *breakerEnv) sendRef(ref string, now time.Time, scopes ...string) otp.BreakerCountResult {
	res, err := e.store.BreakerCount(e.t.Context(), otp.BreakerCountRequest{
		Ref: ref, Scopes: scopes, Now: now, RefTTL: codeTTL, Policy: breakerPolicy,
	})
	if err != nil {
		e.t.Fatalf("BreakerCount at %s: %v", now.Sub(t0), err)
	}
	return res
}

func (e *breakerEnv) convert(ref string, now time.Time) {
	e.t.Helper()
	if err := e.store.BreakerConvert(e.t.Context(), ref, now); err != nil {
		e.t.Fatal(err)
	}
}

func (e *breakerEnv) blocked(scope string, now time.Time) (otp.BreakerBlock, bool) {
	e.t.Helper()
	b, ok, err := e.store.BreakerBlocked(e.t.Context(), []string{scope}, now)
	if err != nil {
		e.t.Fatal(err)
	}
	return b, ok
}

// sendsUntilBlocked sends to scopes every second from now, converting none,
// until a send sets a block; it returns how many sends were counted.
func (e *breakerEnv) sendsUntilBlocked(now time.Time, scopes ...string) int {
	e.t.Helper()
	for i := 1; i <= 100; i++ {
		_, res := e.send(now.Add(time.Duration(i)*time.Second), scopes...)
		if res.Blocked != nil {
			e.t.Fatalf("send %d refused as blocked before any block was reported", i)
		}
		if len(res.NewBlocks) > 0 {
			return i
		}
	}
	e.t.Fatal("100 unconverted sends set no block")
	return 0
}

func breakerBlocksAtMinSends(t *testing.T, e *breakerEnv) {
	for i := 1; i < 10; i++ {
		if _, res := e.send(t0.Add(time.Duration(i)*time.Second), scopeP, scopeR); res.Blocked != nil || len(res.NewBlocks) > 0 {
			t.Fatalf("send %d of 10: %+v; want counted without a block", i, res)
		}
	}
	_, res := e.send(t0.Add(10*time.Second), scopeP, scopeR)
	if len(res.NewBlocks) != 2 || res.Blocked != nil {
		t.Fatalf("the 10th unconverted send: %+v; want both scopes newly blocked", res)
	}
	for _, b := range res.NewBlocks {
		if want := t0.Add(10*time.Second + time.Hour); !b.Until.Equal(want) || b.Sends != 10 || b.Conversions != 0 || b.Level != 0 {
			t.Errorf("block %+v; want until %s with 10 sends, 0 conversions, level 0", b, want.Sub(t0))
		}
	}
}

func breakerRefusesWhileBlocked(t *testing.T, e *breakerEnv) {
	e.sendsUntilBlocked(t0, scopeR)
	at := t0.Add(time.Minute)
	_, res := e.send(at, scopeP, scopeR)
	if res.Blocked == nil || res.Blocked.Scope != scopeR {
		t.Fatalf("a send to a blocked range: %+v; want refused naming the range", res)
	}
	// The refused send counted nothing, in the prefix either: it takes 10
	// more unconverted sends to block the prefix on its own.
	if _, ok := e.blocked(scopeP, at); ok {
		t.Fatal("the prefix is blocked by a refused send")
	}
	if n := e.sendsUntilBlocked(at.Add(2*time.Hour), scopeP); n != 10 {
		t.Errorf("the prefix was blocked after %d sends of its own; want 10 (the refused send counted)", n)
	}
}

func breakerConversionsKeepOpen(t *testing.T, e *breakerEnv) {
	for i := 1; i <= 50; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		ref, res := e.send(now, scopeP, scopeR)
		if res.Blocked != nil || len(res.NewBlocks) > 0 {
			t.Fatalf("send %d with every earlier one verified: %+v", i, res)
		}
		if i%4 != 0 { // 75% verify
			e.convert(ref, now.Add(500*time.Millisecond))
		}
	}
}

func breakerConversionCountsOnce(t *testing.T, e *breakerEnv) {
	// One ref sent to three times, then verified, counts three
	// conversions: a resend does not lower a real user's share.
	for i := 0; i < 3; i++ {
		e.sendRef("resent", t0.Add(time.Duration(i)*time.Second), scopeR)
	}
	e.convert("resent", t0.Add(5*time.Second))
	e.convert("resent", t0.Add(6*time.Second))
	// 3 sends, 3 conversions. 12 unconverted sends more make 15 sends
	// with 3 conversions (20%, not below): still open. Had the conversion
	// counted twice it would be 6/15; had it counted once, 1/15 (blocked).
	for i := 0; i < 12; i++ {
		if _, res := e.send(t0.Add(time.Minute+time.Duration(i)*time.Second), scopeR); len(res.NewBlocks) > 0 {
			t.Fatalf("blocked at 3 verified of %d sends: the resent ref's 3 sends did not all convert", 4+i)
		}
	}
	// One more unconverted send is 3 of 16: below 20%, blocked. Had the
	// second conversion counted, 6 of 16 would stay open.
	if _, res := e.send(t0.Add(2*time.Minute), scopeR); len(res.NewBlocks) != 1 {
		t.Fatalf("3 verified of 16 sends: %+v; want blocked (a conversion counted twice?)", res)
	}
}

func breakerConversionExpires(t *testing.T, e *breakerEnv) {
	var refs []string
	for i := 0; i < 9; i++ {
		ref, _ := e.send(t0.Add(time.Duration(i)*time.Second), scopeR)
		refs = append(refs, ref)
	}
	for _, ref := range refs {
		e.convert(ref, t0.Add(codeTTL+10*time.Second))
	}
	if _, res := e.send(t0.Add(codeTTL+20*time.Second), scopeR); len(res.NewBlocks) != 1 {
		t.Fatalf("conversions after the code's lifetime counted: %+v; want the 10th send to block", res)
	}
}

func breakerWindowSlides(t *testing.T, e *breakerEnv) {
	for i := 0; i < 9; i++ {
		e.send(t0.Add(time.Duration(i)*time.Second), scopeR)
	}
	// An hour and a bucket later the nine sends have slid out.
	later := t0.Add(time.Hour + 10*time.Minute)
	if n := e.sendsUntilBlocked(later, scopeR); n != 10 {
		t.Errorf("blocked after %d sends in a new window; want 10 (old sends still counted?)", n)
	}
}

func breakerBlockDoubles(t *testing.T, e *breakerEnv) {
	now := t0
	for i, want := range []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 4 * time.Hour} {
		e.sendsUntilBlocked(now, scopeR)
		b, ok := e.blocked(scopeR, now.Add(11*time.Second))
		if !ok {
			t.Fatalf("block %d not in force", i+1)
		}
		start := now.Add(10 * time.Second)
		if got := b.Until.Sub(start); got != want {
			t.Fatalf("block %d lasts %s; want %s", i+1, got, want)
		}
		// Next round: after the block and a full window, within a day.
		now = b.Until.Add(time.Hour + 10*time.Minute)
	}
}

func breakerUnblockForgets(t *testing.T, e *breakerEnv) {
	e.sendsUntilBlocked(t0, scopeR)
	at := t0.Add(time.Minute)
	ok, err := e.store.BreakerUnblock(t.Context(), scopeR, at)
	if err != nil || !ok {
		t.Fatalf("unblock: %v, %v; want lifted", ok, err)
	}
	if _, blocked := e.blocked(scopeR, at); blocked {
		t.Fatal("still blocked after the unblock")
	}
	if n := e.sendsUntilBlocked(at, scopeR); n != 10 {
		t.Errorf("blocked again after %d sends; want 10 (the counts were kept?)", n)
	}
	if b, _ := e.blocked(scopeR, at.Add(time.Minute)); b.Level != 0 {
		t.Errorf("the block after an unblock is level %d; want 0 (a first block again)", b.Level)
	}
	if ok, err := e.store.BreakerUnblock(t.Context(), "range:+1555", at); err != nil || ok {
		t.Errorf("unblock of a scope never blocked: %v, %v; want false", ok, err)
	}
}

func breakerListsBlocks(t *testing.T, e *breakerEnv) {
	e.sendsUntilBlocked(t0, "country:GB")
	e.sendsUntilBlocked(t0.Add(time.Minute), scopeR)
	e.send(t0.Add(2*time.Minute), scopeP) // judged later: not blocked
	bs, err := e.store.BreakerBlocks(t.Context(), t0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Scope != scopeR || bs[1].Scope != "country:GB" {
		t.Fatalf("blocks %+v; want the range then the country", bs)
	}
	if bs, _ := e.store.BreakerBlocks(t.Context(), t0.Add(3*time.Hour)); len(bs) != 0 {
		t.Errorf("blocks after they ended: %+v", bs)
	}
}

func breakerConcurrentSends(t *testing.T, e *breakerEnv) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	counted := 0
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.store.BreakerCount(t.Context(), otp.BreakerCountRequest{
				Ref: fmt.Sprintf("c%d", i), Scopes: []string{scopeP, scopeR}, Now: t0, RefTTL: codeTTL, Policy: breakerPolicy,
			})
			if err != nil {
				t.Error(err)
				return
			}
			if res.Blocked == nil {
				mu.Lock()
				counted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if counted != 10 {
		t.Errorf("%d of 100 concurrent sends were counted; want exactly 10", counted)
	}
}
