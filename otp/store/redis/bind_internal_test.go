package redis

import (
	"errors"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// These tests stop a bind between its steps, as a crash or a lost reply
// would, and check what scripts.go promises of what is left: a number may
// look fuller than it is, never emptier, and the identity's next bind or
// unbind clears what was left.

var t0 = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

func bindReq(subject, phoneHash string) otp.BindRequest {
	return otp.BindRequest{Subject: subject, PhoneHash: phoneHash, PhoneSealed: []byte("sealed " + phoneHash),
		PhoneMasked: "masked", MaxIdentitiesPerNumber: 1, Now: t0}
}

// half runs a bind of subject to phoneHash up to and including its claim.
func half(t *testing.T, s *Store, subject, phoneHash string) int64 {
	t.Helper()
	req := bindReq(subject, phoneHash)
	seq, err := s.reserve(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.claim(t.Context(), req, seq); err != nil {
		t.Fatal(err)
	}
	return seq
}

func wantBind(t *testing.T, s *Store, subject, phoneHash string, want error) {
	t.Helper()
	if err := s.BindPhone(t.Context(), bindReq(subject, phoneHash)); !errors.Is(err, want) {
		t.Fatalf("bind %s to %s: got %v, want %v", subject, phoneHash, err, want)
	}
}

func wantBoundTo(t *testing.T, s *Store, subject, phoneHash string) {
	t.Helper()
	b, err := s.BoundPhone(t.Context(), subject)
	if err != nil || b.PhoneHash != phoneHash {
		t.Fatalf("%s is bound to %+v (%v), want %s", subject, b, err, phoneHash)
	}
}

func TestInterruptedBinds(t *testing.T) {
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	stores := 0
	newStore := func() *Store {
		stores++
		return New(client, fmt.Sprintf("interrupted%d:", stores))
	}

	t.Run("a bind stopped after its claim holds the number until the identity binds another", func(t *testing.T) {
		s := newStore()
		half(t, s, "alice", "A")
		if _, err := s.BoundPhone(t.Context(), "alice"); !errors.Is(err, otp.ErrNoBoundPhone) {
			t.Fatalf("alice's half bind took effect: %v", err)
		}
		wantBind(t, s, "bob", "A", otp.ErrNumberTaken)
		wantBind(t, s, "alice", "B", nil)
		wantBind(t, s, "bob", "A", nil)
	})

	t.Run("a bind stopped after its claim holds the number until the identity unbinds", func(t *testing.T) {
		s := newStore()
		wantBind(t, s, "alice", "B", nil)
		half(t, s, "alice", "A")
		wantBind(t, s, "bob", "A", otp.ErrNumberTaken)
		if err := s.UnbindPhone(t.Context(), "alice"); err != nil {
			t.Fatal(err)
		}
		wantBind(t, s, "bob", "A", nil)
		wantBind(t, s, "carol", "B", nil)
	})

	t.Run("a bind stopped before its release holds the old number until the next bind", func(t *testing.T) {
		s := newStore()
		wantBind(t, s, "alice", "A", nil)
		req := bindReq("alice", "B")
		seq := half(t, s, "alice", "B")
		if err := bindScript.Run(t.Context(), s.client, []string{s.bindKey("alice")},
			seq, req.PhoneHash, string(req.PhoneSealed), req.PhoneMasked, ms(req.Now)).Err(); err != nil {
			t.Fatal(err)
		}
		wantBoundTo(t, s, "alice", "B")
		wantBind(t, s, "bob", "A", otp.ErrNumberTaken)
		wantBind(t, s, "alice", "C", nil)
		wantBind(t, s, "bob", "A", nil)
		wantBind(t, s, "carol", "B", nil)
	})

	t.Run("a bind overtaken by a later one of the same identity fails and holds nothing", func(t *testing.T) {
		s := newStore()
		req := bindReq("alice", "A")
		seq := half(t, s, "alice", "A")
		wantBind(t, s, "alice", "B", nil)
		if err := s.apply(t.Context(), req, seq); !errors.Is(err, otp.ErrBindConflict) {
			t.Fatalf("the overtaken bind: got %v, want ErrBindConflict", err)
		}
		wantBoundTo(t, s, "alice", "B")
		wantBind(t, s, "bob", "A", nil)
		wantBind(t, s, "carol", "B", otp.ErrNumberTaken)
	})

	t.Run("a bind overtaken by an unbind fails and holds nothing", func(t *testing.T) {
		s := newStore()
		req := bindReq("alice", "A")
		seq := half(t, s, "alice", "A")
		if err := s.UnbindPhone(t.Context(), "alice"); err != nil {
			t.Fatal(err)
		}
		if err := s.apply(t.Context(), req, seq); !errors.Is(err, otp.ErrBindConflict) {
			t.Fatalf("the overtaken bind: got %v, want ErrBindConflict", err)
		}
		if _, err := s.BoundPhone(t.Context(), "alice"); !errors.Is(err, otp.ErrNoBoundPhone) {
			t.Fatalf("alice after the unbind: %v, want ErrNoBoundPhone", err)
		}
		wantBind(t, s, "bob", "A", nil)
	})

	t.Run("a claim that lands after the winner released is released by its own bind", func(t *testing.T) {
		s := newStore()
		req := bindReq("alice", "A")
		seq, err := s.reserve(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		wantBind(t, s, "alice", "B", nil)
		if err := s.claim(t.Context(), req, seq); err != nil {
			t.Fatal(err)
		}
		if err := s.apply(t.Context(), req, seq); !errors.Is(err, otp.ErrBindConflict) {
			t.Fatalf("the late bind: got %v, want ErrBindConflict", err)
		}
		wantBind(t, s, "bob", "A", nil)
	})
}
