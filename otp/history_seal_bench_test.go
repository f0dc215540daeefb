package otp_test

import (
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// BenchmarkSealSendEntry is the CPU of sealing one send's history entry:
// what a send's entry sealed ahead costs a send that is then refused, to
// weigh against the round trip it saves on one Redis server (history_ahead.go).
func BenchmarkSealSendEntry(b *testing.B) {
	keys := mustKeys(b, rootKey)
	e := otp.HistoryEntry{At: time.Unix(1_800_000_000, 0), Event: otp.HistorySend, Outcome: otp.HistorySent, Identity: "alice@example.com",
		Phone: alicePhone.Masked, PrefixKey: keys.HistoryPrefixKey("+81901234"), Gateway: "console", Challenge: "0123abcd"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := keys.SealHistory(e); err != nil {
			b.Fatal(err)
		}
	}
}
