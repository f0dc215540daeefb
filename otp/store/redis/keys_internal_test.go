package redis

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// referenceTagHash is tagHash as first written (a streaming hash, Sum(nil),
// EncodeToString): key names in a running Redis were made with it, so the
// allocation-saving rewrite must name every key the same.
func referenceTagHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func TestKeyNamesUnchanged(t *testing.T) {
	long := strings.Repeat("x", 300) // past tagHash's stack buffer
	for _, parts := range [][]string{{""}, {"alice"}, {"phone", "+819012345678"}, {long}, {long, long}, {"a\x00b", ""}} {
		if got, want := tagHash(parts...), referenceTagHash(parts...); got != want {
			t.Errorf("tagHash(%q) = %s, want %s", parts, got, want)
		}
	}
	s := New(nil, "p:")
	for _, subject := range []string{"alice", long} {
		base := "p:{" + referenceTagHash(subject) + "}"
		want := []string{base + ":id", base + ":ch:chal-1", base + ":nb"}
		got := s.keys(subject, "chal-1")
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("keys(%q) = %q, want %q", subject, got, want)
		}
		if s.identityKey(subject) != want[0] || s.notBeforeKey(subject) != want[2] {
			t.Errorf("identityKey/notBeforeKey(%q) disagree with keys: %s %s", subject, s.identityKey(subject), s.notBeforeKey(subject))
		}
	}
	if got := s.breakerBase(); got != "p:brk:{brk}:" {
		t.Errorf("breakerBase() = %q", got)
	}
}
