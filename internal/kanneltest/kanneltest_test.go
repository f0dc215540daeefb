package kanneltest

import (
	"reflect"
	"testing"
)

// fakesmsc's output for five messages, as Kannel 1.4.5 prints it: a
// Japanese one in UCS-2, an English one with a blank line (fakesmsc reads
// line by line, so it prints three), and the two parts of a long one.
var printed = []string{
	"2026-11-21 02:52:10 [8648] [0] INFO: fakesmsc starting",
	"2026-11-21 02:52:13 [8648] [0] DEBUG: Got message 1: <12345 +819012345678 ucs-2 x%BA%8A%8D0%B30%FC0%C9%00%3A%00+%001%002%003%004%005%006>",
	"2026-11-21 02:52:13 [8648] [0] DEBUG: Got message 2: <12345 +819012345678 text Example code: 123456>",
	"2026-11-21 02:52:13 [8648] [0] DEBUG: Got message 3: <>",
	"2026-11-21 02:52:13 [8648] [0] DEBUG: Got message 4: <@example.com #123456>",
	"2026-11-21 02:52:14 [8648] [0] DEBUG: Got message 5: <12345 +819012345678 udh %05%00%03%00%02%01 data abc+def>",
	"2026-11-21 02:52:14 [8648] [0] DEBUG: Got message 6: <12345 +819012345678 udh %05%00%03%00%02%02 data ghi>",
}

func TestMessagesDecodesWhatFakesmscPrints(t *testing.T) {
	k := &Kannel{fakesmsc: &process{out: printed}}
	got := k.Messages()
	want := []SMS{
		{From: "12345", To: "+819012345678", Coding: "ucs-2", Text: "確認コード: 123456",
			Raw: "12345 +819012345678 ucs-2 x%BA%8A%8D0%B30%FC0%C9%00%3A%00+%001%002%003%004%005%006"},
		{From: "12345", To: "+819012345678", Coding: "text", Text: "Example code: 123456\n\n@example.com #123456",
			Raw: "12345 +819012345678 text Example code: 123456\n\n@example.com #123456"},
		{From: "12345", To: "+819012345678", Coding: "udh", Text: "abc def", UDH: []byte{5, 0, 3, 0, 2, 1},
			Raw: "12345 +819012345678 udh %05%00%03%00%02%01 data abc+def"},
		{From: "12345", To: "+819012345678", Coding: "udh", Text: "ghi", UDH: []byte{5, 0, 3, 0, 2, 2},
			Raw: "12345 +819012345678 udh %05%00%03%00%02%02 data ghi"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Messages:\n got %+v\nwant %+v", got, want)
	}
}
