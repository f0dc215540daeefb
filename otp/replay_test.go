package otp_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// TestSealedFormOpensOnlyUnderItsBinding: a kept form opens for its own id,
// identity, session and scope, under its own key, and not when any of them
// differs or a byte of it is changed.
func TestSealedFormOpensOnlyUnderItsBinding(t *testing.T) {
	k, err := otp.DeriveKeys(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	b := otp.ReplayBinding{ID: "id", Identity: "alice", SessionHash: "s", Scope: "site"}
	form := otp.KeptForm{URL: "/settings/password?x=1", Body: []byte("new=secret&csrf=app")}
	sealed, err := k.SealReplay(b, form)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Error("the sealed form holds a field in clear")
	}
	got, err := k.OpenReplay(b, sealed)
	if err != nil || got.URL != form.URL || !bytes.Equal(got.Body, form.Body) {
		t.Fatalf("OpenReplay: %+v, %v; want the form", got, err)
	}
	other, _ := otp.DeriveKeys(bytes.Repeat([]byte("o"), 32))
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	for name, try := range map[string]func() (otp.KeptForm, error){
		"another id":       func() (otp.KeptForm, error) { c := b; c.ID = "id2"; return k.OpenReplay(c, sealed) },
		"another identity": func() (otp.KeptForm, error) { c := b; c.Identity = "bob"; return k.OpenReplay(c, sealed) },
		"another session":  func() (otp.KeptForm, error) { c := b; c.SessionHash = "t"; return k.OpenReplay(c, sealed) },
		"another scope":    func() (otp.KeptForm, error) { c := b; c.Scope = "other"; return k.OpenReplay(c, sealed) },
		"parts run together": func() (otp.KeptForm, error) {
			c := b
			c.Identity, c.SessionHash = "alices", ""
			return k.OpenReplay(c, sealed)
		},
		"another key": func() (otp.KeptForm, error) { return other.OpenReplay(b, sealed) },
		"tampered":    func() (otp.KeptForm, error) { return k.OpenReplay(b, tampered) },
		"too short":   func() (otp.KeptForm, error) { return k.OpenReplay(b, sealed[:5]) },
	} {
		if _, err := try(); !errors.Is(err, otp.ErrReplayRefused) {
			t.Errorf("%s: %v; want ErrReplayRefused", name, err)
		}
	}
	if k.ReplayKey("id") == k.ReplayKey("id2") || k.ReplayKey("id") == other.ReplayKey("id") || k.ReplayKey("id") == "id" {
		t.Error("ReplayKey does not name ids apart under a key")
	}
}
