package caddymodule

import (
	"encoding/json"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
)

// BenchmarkCooldownSendRedis is BenchmarkCooldownSend on a Redis store of
// its own (a real redis-server on a free port): the refused send's store
// step is a round trip, and so was each read the page needed, so this is
// where the send's step returning the challenge and keeping the refusal's
// history entry shows (issue 17).
func BenchmarkCooldownSendRedis(b *testing.B) {
	redistest.Require(b, "redis-server")
	srv := redistest.Start(b)
	e := htNew(b, nil, func(h *Handler) {
		h.StoreRaw, _ = json.Marshal(map[string]string{"type": "redis", "url": "redis://" + srv.Addr})
	})
	benchCooldownSends(b, e)
}

// BenchmarkPrefixRefusedSendRedis is BenchmarkPrefixRefusedSend on a Redis
// store of its own (a real redis-server on a free port): a refused send
// the service does not repeat costs the send script's round trip.
func BenchmarkPrefixRefusedSendRedis(b *testing.B) {
	redistest.Require(b, "redis-server")
	srv := redistest.Start(b)
	raw, _ := json.Marshal(map[string]string{"type": "redis", "url": "redis://" + srv.Addr})
	benchPrefixRefusedSends(b, raw)
}
