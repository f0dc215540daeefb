package kanneltest

import (
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// The SMS fakesmsc received, and waiting for them.

// SMS is one message as fakesmsc received it.
type SMS struct {
	From, To string
	// Coding is fakesmsc's word for it: "text" (7-bit, printed as is),
	// "ucs-2" or "data" (8-bit; both URL-encoded), or "udh" for one part of
	// a concatenated message.
	Coding string
	// Text is the message, decoded: UCS-2 is turned back into UTF-8. For a
	// "udh" part it is the part's bytes, whose coding fakesmsc does not say.
	Text string
	// UDH is a part's user data header (for a concatenated message: 05 00
	// 03, reference, total parts, part number).
	UDH []byte
	// Raw is what fakesmsc printed between < and >.
	Raw string
}

var codings = map[string]bool{"text": true, "data": true, "ucs-2": true, "udh": true}

// Messages are the SMS fakesmsc received so far, in order.
//
// fakesmsc reads its connection line by line, so a 7-bit text with a line
// break arrives as several "Got message" lines; a line that does not start
// with "<from> <to> <coding>" is taken as the rest of the previous text.
func (k *Kannel) Messages() []SMS {
	var out []SMS
	for _, line := range k.fakesmsc.lines() {
		_, rest, ok := strings.Cut(line, "Got message ")
		if !ok {
			continue
		}
		_, raw, ok := strings.Cut(rest, ": <")
		if !ok {
			continue
		}
		raw = strings.TrimSuffix(raw, ">")
		fields := strings.SplitN(raw, " ", 4)
		if len(fields) < 3 || !codings[fields[2]] {
			if n := len(out); n > 0 && out[n-1].Coding == "text" {
				out[n-1].Text += "\n" + raw
				out[n-1].Raw += "\n" + raw
			}
			continue
		}
		m := SMS{From: fields[0], To: fields[1], Coding: fields[2], Raw: raw}
		var data string
		if len(fields) == 4 {
			data = fields[3]
		}
		if m.Coding == "udh" {
			// "<udh> data <part>", both URL-encoded.
			udh, part, _ := strings.Cut(data, " data ")
			if b, err := url.QueryUnescape(udh); err == nil {
				m.UDH = []byte(b)
			}
			m.Text = decode("data", part)
		} else {
			m.Text = decode(m.Coding, data)
		}
		out = append(out, m)
	}
	return out
}

// decode turns fakesmsc's printed form back into text. UCS-2 comes URL-encoded
// byte by byte ("x%BA%8A%8D0%B3..." for "確認コ"), big-endian, '+' for the
// 0x20 byte.
func decode(coding, data string) string {
	switch coding {
	case "ucs-2":
		b, err := url.QueryUnescape(data)
		if err != nil || len(b)%2 != 0 {
			return data
		}
		units := make([]uint16, len(b)/2)
		for i := range units {
			units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		}
		return string(utf16.Decode(units))
	case "data":
		if b, err := url.QueryUnescape(data); err == nil {
			return b
		}
	}
	return data
}

// WaitMessage waits until fakesmsc has received an SMS that match accepts
// and returns it; it fails the test after timeout.
func (k *Kannel) WaitMessage(t testing.TB, timeout time.Duration, match func(SMS) bool) SMS {
	t.Helper()
	var found SMS
	k.wait(t, timeout, func(msgs []SMS) bool {
		for _, m := range msgs {
			if match(m) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// WaitMessages waits until fakesmsc has received at least n SMS and returns
// the first n; it fails the test after timeout.
func (k *Kannel) WaitMessages(t testing.TB, n int, timeout time.Duration) []SMS {
	t.Helper()
	var got []SMS
	k.wait(t, timeout, func(msgs []SMS) bool {
		got = msgs
		return len(msgs) >= n
	})
	return got[:n]
}

// wait re-reads the messages at each line fakesmsc prints until done
// accepts them.
func (k *Kannel) wait(t testing.TB, timeout time.Duration, done func([]SMS) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := k.fakesmsc.changed()
		if done(k.Messages()) {
			return
		}
		select {
		case <-changed:
		case <-k.fakesmsc.done:
			t.Fatalf("fakesmsc exited:\n%s", k.fakesmsc.output())
		case <-deadline.C:
			t.Fatalf("fakesmsc did not get the SMS within %s; it printed:\n%s", timeout, k.fakesmsc.output())
		}
	}
}
