package otp

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// refMAC is HMAC-SHA256 made the plain way, as before the pools.
func refMAC(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// TestPooledMACsMatchFreshOnes: the pooled HMACs give what hmac.New gives,
// for every use in a row and from many goroutines at once (run with
// -race), so a state handed back is never one still in use or one that
// kept what it hashed before.
func TestPooledMACsMatchFreshOnes(t *testing.T) {
	k, err := DeriveKeys([]byte("pooled-mac-test-key-0123456789abcdefghij"))
	if err != nil {
		t.Fatal(err)
	}
	short := func(key []byte, s string) string {
		return base64.RawURLEncoding.EncodeToString(refMAC(key, s)[:18])
	}
	check := func(i int) error {
		id, code, s := fmt.Sprint("challenge-", i), fmt.Sprintf("%06d", i), fmt.Sprint("value-", i)
		if got, want := k.CodeMAC(id, code), refMAC(k.codeMAC, id, "\x00", code); !bytes.Equal(got, want) {
			return fmt.Errorf("CodeMAC(%q) = %x, want %x", id, got, want)
		}
		if got, want := k.LimitKey("phone", s), base64.RawURLEncoding.EncodeToString(refMAC(k.limit, "phone", "\x00", s)[:18]); got != want {
			return fmt.Errorf("LimitKey(%q) = %s, want %s", s, got, want)
		}
		if got, want := k.SessionHash(s), short(k.session, s); got != want {
			return fmt.Errorf("SessionHash(%q) = %s, want %s", s, got, want)
		}
		if got, want := k.PhoneHash(s), short(k.phone, s); got != want {
			return fmt.Errorf("PhoneHash(%q) = %s, want %s", s, got, want)
		}
		if got, want := k.DeviceCookie(s), s+"."+short(k.device, "cookie\x00"+s); got != want {
			return fmt.Errorf("DeviceCookie(%q) = %s, want %s", s, got, want)
		}
		if got, want := k.DeviceHash(s), short(k.device, "hash\x00"+s)[:12]; got != want {
			return fmt.Errorf("DeviceHash(%q) = %s, want %s", s, got, want)
		}
		if id, ok := k.OpenDeviceCookie(k.DeviceCookie(s)); !ok || id != s {
			return fmt.Errorf("OpenDeviceCookie(DeviceCookie(%q)) = %q, %v", s, id, ok)
		}
		at := time.Unix(int64(1700000000+i), 0)
		b := CSRFBinding{Nonce: s, Identity: "alice", SessionHash: "sh", Scope: "scope"}
		unix := fmt.Sprint(at.Unix())
		want := unix + "." + base64.RawURLEncoding.EncodeToString(refMAC(k.csrf, unix, "\x00", s, "\x00", "alice", "\x00", "sh", "\x00", "scope", "\x00"))
		if got := k.CSRFToken(b, at); got != want {
			return fmt.Errorf("CSRFToken = %s, want %s", got, want)
		}
		return nil
	}
	for i := range 50 {
		if err := check(i); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if err := check(g*1000 + i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestKeysWithoutPoolsStillMAC: Keys not made by DeriveKeys (no pools)
// fall back to a fresh HMAC each time.
func TestKeysWithoutPoolsStillMAC(t *testing.T) {
	k := &Keys{limit: []byte("0123456789abcdef0123456789abcdef")}
	want := base64.RawURLEncoding.EncodeToString(refMAC(k.limit, "ip", "\x00", "192.0.2.1")[:18])
	if got := k.LimitKey("ip", "192.0.2.1"); got != want {
		t.Fatalf("LimitKey = %s, want %s", got, want)
	}
}

// A long input grows a state's buffer past what the pool keeps: the state
// is dropped, and the hashes before and after it are still right.
func TestPooledMACsAfterALongInput(t *testing.T) {
	k, err := DeriveKeys([]byte("pooled-mac-test-key-0123456789abcdefghij"))
	if err != nil {
		t.Fatal(err)
	}
	short := func(s string) string { return base64.RawURLEncoding.EncodeToString(refMAC(k.session, s)[:18]) }
	for _, s := range []string{"a", strings.Repeat("long", 1000), "b", "", strings.Repeat("x", 300), "c"} {
		if s == "" {
			continue // SessionHash("") is ""
		}
		if got, want := k.SessionHash(s), short(s); got != want {
			t.Fatalf("SessionHash of %d bytes = %s, want %s", len(s), got, want)
		}
	}
}

// TestMACDoneWipesEveryBuffer: a state given back leaves nothing of what
// it hashed in its buffer, whether it is kept for the next use or, having
// grown past maxMACBuffer, dropped (its memory then lives on until the
// collector reuses it).
func TestMACDoneWipesEveryBuffer(t *testing.T) {
	k, err := DeriveKeys([]byte("pooled-mac-test-key-0123456789abcdefghij"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{10, maxMACBuffer + 1} {
		m := k.mac(k.session)
		m.sum(strings.Repeat("s", n))
		buf := m.buf[:cap(m.buf)]
		k.macDone(k.session, m)
		if i := bytes.IndexFunc(buf, func(r rune) bool { return r != 0 }); i >= 0 {
			t.Errorf("input of %d bytes: the buffer given back holds %q at %d", n, buf[i:min(i+16, len(buf))], i)
		}
	}
}
