package memory_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

// benchIdentities is how many identities the benchmarks spread their calls
// over: enough that the maps are of a live server's size, not a toy's.
const benchIdentities = 100_000

// benchFixture is a store holding one live challenge for each of
// benchIdentities identities, with the field sizes the plugin writes.
type benchFixture struct {
	store    *memory.Store
	keys     *otp.Keys
	now      time.Time
	subjects []string
	ids      []string
	sessions []string
	phones   []string
	rightMAC [][]byte
	wrongMAC [][]byte
}

func newBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	keys, err := otp.DeriveKeys([]byte("memory store benchmark root key, 32+ bytes"))
	if err != nil {
		b.Fatal(err)
	}
	f := &benchFixture{
		store: memory.New(otp.SystemClock{}, time.Hour),
		keys:  keys,
		now:   time.Now(),
	}
	b.Cleanup(func() { f.store.Close() })
	for i := range benchIdentities {
		id := fmt.Sprintf("chal-%017d", i) // 22 characters, as the plugin's
		f.subjects = append(f.subjects, fmt.Sprintf("user-%07d@example.com", i))
		f.ids = append(f.ids, id)
		f.sessions = append(f.sessions, keys.SessionHash(fmt.Sprint("session-", i)))
		f.phones = append(f.phones, keys.PhoneHash(fmt.Sprintf("+8190%08d", i)))
		f.rightMAC = append(f.rightMAC, keys.CodeMAC(id, "123456"))
		f.wrongMAC = append(f.wrongMAC, keys.CodeMAC(id, "000000"))
		if _, err := f.store.Issue(context.Background(), f.issueRequest(i)); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// issueRequest makes identity i's challenge. The cooldown is zero so the
// same identity can be sent a code on every call.
func (f *benchFixture) issueRequest(i int) otp.IssueRequest {
	return otp.IssueRequest{
		Challenge: otp.Challenge{
			ID:          f.ids[i],
			Subject:     f.subjects[i],
			SessionHash: f.sessions[i],
			PhoneHash:   f.phones[i],
			PhoneMasked: "+81 90-****-1234",
			CodeMAC:     f.rightMAC[i],
			CreatedAt:   f.now,
			SentAt:      f.now,
			ExpiresAt:   f.now.Add(time.Hour),
			MaxAttempts: 1 << 30,
		},
		Now:        f.now,
		MaxSends:   1 << 30,
		SendWindow: time.Hour,
	}
}

// benchFailures keeps every wrong guess free of lock-outs, so each call
// takes the same path.
var benchFailures = otp.FailurePolicy{Budget: 1 << 30, HardLimit: 1 << 30, DelayBase: time.Second, DelayMax: time.Second, Window: time.Hour}

func (f *benchFixture) verifyRequest(i int, mac []byte) otp.VerifyRequest {
	return otp.VerifyRequest{
		Subject: f.subjects[i], ChallengeID: f.ids[i], SessionHash: f.sessions[i],
		CodeMAC: mac, Now: f.now, Failures: benchFailures,
	}
}

// BenchmarkIssue sends a new code to one of 100,000 identities per call,
// replacing its challenge: the store's half of a send.
//
//	go test -run XXX -bench . -benchmem ./otp/store/memory/
func BenchmarkIssue(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := f.store.Issue(ctx, f.issueRequest(i%benchIdentities)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify submits a wrong code for one of 100,000 live challenges
// per call: count, compare, write the failure, the longest path.
func BenchmarkVerify(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		n := i % benchIdentities
		res, err := f.store.Verify(ctx, f.verifyRequest(n, f.wrongMAC[n]))
		if err != nil || res.Status != otp.VerifyWrong {
			b.Fatalf("verify: %+v, %v", res, err)
		}
	}
}

// BenchmarkSendVerifyParallel runs the store's part of whole step-ups (a
// send, then the right code) from parallel goroutines, each on its own
// identities, so what it measures beyond BenchmarkIssue plus
// BenchmarkVerify is contention between goroutines.
//
//	go test -run XXX -bench SendVerifyParallel -cpu 1,2,8 ./otp/store/memory/
func BenchmarkSendVerifyParallel(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Goroutine g takes the identities n with n%stride == g, so no two
		// share a challenge (up to stride goroutines).
		const stride = 64
		g := int(next.Add(1)) % stride
		for i := g; pb.Next(); i += stride {
			n := i % (benchIdentities / stride * stride)
			if _, err := f.store.Issue(ctx, f.issueRequest(n)); err != nil {
				b.Error(err)
				return
			}
			res, err := f.store.Verify(ctx, f.verifyRequest(n, f.rightMAC[n]))
			if err != nil || res.Status != otp.VerifyOK {
				b.Errorf("verify: %+v, %v", res, err)
				return
			}
		}
	})
}

// BenchmarkSweep runs the sweeper's pass over 100,000 live identities with
// nothing yet expired, as it runs every minute on a busy server. Each shard
// is locked for its share of this time only.
func BenchmarkSweep(b *testing.B) {
	f := newBenchFixture(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		f.store.Sweep(f.now)
	}
}
