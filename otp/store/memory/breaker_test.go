package memory_test

import (
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/storetest"
)

func TestBreakerConformance(t *testing.T) {
	storetest.RunBreaker(t, func(t *testing.T) otp.BreakerStore {
		s := memory.New(&clock{now: t0}, time.Hour)
		t.Cleanup(func() { s.Close() })
		return s
	})
}
