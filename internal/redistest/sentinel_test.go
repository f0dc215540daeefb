package redistest

import (
	"context"
	"testing"
	"time"
)

// TestSentinelFailsOver checks the harness itself: a forced failover
// promotes the replica and the old master comes back as its replica.
func TestSentinelFailsOver(t *testing.T) {
	s := StartSentinel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	old, err := s.Failover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now, err := s.AwaitFailover(30*time.Second, old)
	if err != nil {
		t.Fatal(err)
	}
	if now != s.Servers[1].Addr || old != s.Servers[0].Addr {
		t.Fatalf("failover from %s to %s, want from %s to %s", old, now, s.Servers[0].Addr, s.Servers[1].Addr)
	}
}

// TestSentinelPromotesAfterAKill: a killed master is replaced, and once
// restarted it follows the new one.
func TestSentinelPromotesAfterAKill(t *testing.T) {
	s := StartSentinel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	old, err := s.KillMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AwaitNewMaster(30*time.Second, old); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AwaitFailover(30*time.Second, old); err != nil {
		t.Fatal(err)
	}
}
