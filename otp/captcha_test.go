package otp_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp/store/memory"
)

func captchaKeys(t *testing.T, root string) *otp.Keys {
	t.Helper()
	k, err := otp.DeriveKeys([]byte(strings.Repeat(root, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCaptchaToken(t *testing.T) {
	k := captchaKeys(t, "k")
	now := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	b := otp.CaptchaBinding{Identity: "alice", SessionHash: "s1", Scope: "site"}
	token, c, err := k.IssueCaptcha(14, b, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("it opens for its binding", func(t *testing.T) {
		got, err := k.OpenCaptcha(token, b, now.Add(time.Minute))
		if err != nil || got.ID != c.ID || got.Difficulty != 14 || !got.Expires.Equal(c.Expires) {
			t.Fatalf("OpenCaptcha: %+v, %v; want %+v", got, err, c)
		}
	})
	t.Run("another identity, session or scope is refused", func(t *testing.T) {
		for _, other := range []otp.CaptchaBinding{
			{Identity: "bob", SessionHash: "s1", Scope: "site"},
			{Identity: "alice", SessionHash: "s2", Scope: "site"},
			{Identity: "alice", SessionHash: "s1", Scope: "other"},
		} {
			if _, err := k.OpenCaptcha(token, other, now); !errors.Is(err, otp.ErrCaptchaInvalid) {
				t.Errorf("binding %+v: %v; want ErrCaptchaInvalid", other, err)
			}
		}
	})
	t.Run("a lowered difficulty is refused", func(t *testing.T) {
		easier := strings.Replace(token, ".14.", ".1.", 1)
		if _, err := k.OpenCaptcha(easier, b, now); !errors.Is(err, otp.ErrCaptchaInvalid) {
			t.Errorf("token with its difficulty changed: %v; want ErrCaptchaInvalid", err)
		}
	})
	t.Run("another key's token is refused", func(t *testing.T) {
		if _, err := captchaKeys(t, "x").OpenCaptcha(token, b, now); !errors.Is(err, otp.ErrCaptchaInvalid) {
			t.Errorf("%v; want ErrCaptchaInvalid", err)
		}
	})
	t.Run("it expires", func(t *testing.T) {
		if _, err := k.OpenCaptcha(token, b, now.Add(otp.CaptchaLifetime)); !errors.Is(err, otp.ErrCaptchaExpired) {
			t.Errorf("at its expiry: %v; want ErrCaptchaExpired", err)
		}
	})
}

func TestCaptchaText(t *testing.T) {
	k := captchaKeys(t, "k")
	text := k.CaptchaText("id1")
	if len(text) != otp.CaptchaTextLength || text != k.CaptchaText("id1") {
		t.Fatalf("CaptchaText: %q, then %q; want the same %d characters", text, k.CaptchaText("id1"), otp.CaptchaTextLength)
	}
	if text == k.CaptchaText("id2") && text == k.CaptchaText("id3") {
		t.Error("three challenges drew the same text")
	}
	if !otp.CaptchaTextMatches(text, " "+strings.ToLower(text[:2])+" "+text[2:]) {
		t.Error("the text typed in lower case with spaces was refused")
	}
	if otp.CaptchaTextMatches(text, text[:4]) || otp.CaptchaTextMatches(text, "") {
		t.Error("a part of the text, or nothing, passed")
	}
}

func TestDeviceCookie(t *testing.T) {
	k := captchaKeys(t, "k")
	v := k.DeviceCookie("dev1")
	if id, ok := k.OpenDeviceCookie(v); !ok || id != "dev1" {
		t.Fatalf("OpenDeviceCookie(%q): %q, %v", v, id, ok)
	}
	for _, bad := range []string{"", "dev1", "dev2" + v[4:], v + "x", captchaKeys(t, "x").DeviceCookie("dev1")} {
		if id, ok := k.OpenDeviceCookie(bad); ok {
			t.Errorf("OpenDeviceCookie(%q) = %q, true; want refused", bad, id)
		}
	}
	if h := k.DeviceHash("dev1"); len(h) != 12 || h == k.DeviceHash("dev2") || strings.Contains(v, h) {
		t.Errorf("DeviceHash: %q", h)
	}
}

func TestFamiliarity(t *testing.T) {
	now := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	store := memory.New(otp.SystemClock{}, time.Hour)
	t.Cleanup(func() { store.Close() })
	k := captchaKeys(t, "k")
	fy := otp.Familiarity{Cache: store, Keys: k, Max: 2}
	ctx := t.Context()
	f, err := fy.Read(ctx, "alice", now)
	if err != nil || f.KnowsDevice(k, "d1") || f.KnowsIP(k, "192.0.2.1") || f.SendsSince(now.Add(-time.Hour)) != 0 {
		t.Fatalf("a new identity's record: %+v, %v; want empty", f, err)
	}
	for _, d := range []string{"d1", "d2", "d3"} {
		if err := fy.Verified(ctx, "alice", d, "2001:db8::1", now); err != nil {
			t.Fatal(err)
		}
	}
	if err := fy.Sent(ctx, "alice", now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := fy.Sent(ctx, "alice", now); err != nil {
		t.Fatal(err)
	}
	f, _ = fy.Read(ctx, "alice", now)
	if f.KnowsDevice(k, "d1") || !f.KnowsDevice(k, "d2") || !f.KnowsDevice(k, "d3") {
		t.Errorf("with Max 2, want d2 and d3 known and d1 forgotten: %+v", f)
	}
	if !f.KnowsIP(k, "2001:db8::2") || f.KnowsIP(k, "2001:db9::1") {
		t.Error("an address of the same /64 should be known, another /64 not")
	}
	if n := f.SendsSince(now.Add(-time.Hour)); n != 1 {
		t.Errorf("sends in the last hour: %d; want 1", n)
	}
	if other, _ := fy.Read(ctx, "bob", now); other.KnowsDevice(k, "d3") {
		t.Error("bob's record knows alice's device")
	}
}
