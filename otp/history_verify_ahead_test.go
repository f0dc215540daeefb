package otp

import (
	"fmt"
	"testing"
	"time"
)

// TestSentNotesEndWithTheirChallengeAndStayBounded: a note is read only
// until its challenge expires, and a full set drops the ended notes first,
// then others, never growing past its bound.
func TestSentNotesEndWithTheirChallengeAndStayBounded(t *testing.T) {
	now := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	var n sentNotes
	n.put("c1", sentNote{masked: "+81 90-****-5678", gateway: "a", until: now.Add(time.Minute)}, now)
	if note, ok := n.get("c1", now.Add(time.Minute-time.Nanosecond)); !ok || note.gateway != "a" {
		t.Fatalf("a live challenge's note: %+v %v", note, ok)
	}
	if _, ok := n.get("c1", now.Add(time.Minute)); ok {
		t.Fatal("a note outlived its challenge")
	}
	for i := range maxSentNotes {
		until := now.Add(time.Hour)
		if i%2 == 0 {
			until = now.Add(time.Second) // ended by the time the set is full
		}
		n.put(fmt.Sprint("c", i), sentNote{until: until}, now)
	}
	later := now.Add(time.Minute)
	n.put("new", sentNote{gateway: "b", until: later.Add(time.Hour)}, later)
	if len(n.by) > maxSentNotes/2+1 {
		t.Errorf("%d notes after the ended ones should have gone, want at most %d", len(n.by), maxSentNotes/2+1)
	}
	if _, ok := n.get("c1", later); !ok {
		t.Error("a live note was dropped while ended ones could go")
	}
	if note, ok := n.get("new", later); !ok || note.gateway != "b" {
		t.Errorf("the new note: %+v %v", note, ok)
	}
	for i := range maxSentNotes {
		n.put(fmt.Sprint("d", i), sentNote{until: later.Add(time.Hour)}, later)
		if len(n.by) > maxSentNotes {
			t.Fatalf("%d notes, bound %d", len(n.by), maxSentNotes)
		}
	}
}
