package otp_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

var (
	rootKey  = []byte("0123456789abcdef0123456789abcdef")
	otherKey = []byte("fedcba9876543210fedcba9876543210")
)

func mustKeys(t testing.TB, root []byte) *otp.Keys {
	t.Helper()
	k, err := otp.DeriveKeys(root)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDeriveKeys(t *testing.T) {
	t.Parallel()
	t.Run("a 31-byte root key is refused", func(t *testing.T) {
		t.Parallel()
		if _, err := otp.DeriveKeys(rootKey[:31]); err == nil {
			t.Fatal("got no error")
		}
	})
	t.Run("an empty root key is refused", func(t *testing.T) {
		t.Parallel()
		if _, err := otp.DeriveKeys(nil); err == nil {
			t.Fatal("got no error")
		}
	})
	t.Run("the same root key derives the same key id", func(t *testing.T) {
		t.Parallel()
		if a, b := mustKeys(t, rootKey), mustKeys(t, rootKey); a.ID != b.ID || a.ID == "" {
			t.Fatalf("key ids %q and %q", a.ID, b.ID)
		}
	})
	t.Run("different root keys derive different key ids", func(t *testing.T) {
		t.Parallel()
		if a, b := mustKeys(t, rootKey), mustKeys(t, otherKey); a.ID == b.ID {
			t.Fatalf("both key ids are %q", a.ID)
		}
	})
}

func TestCodeMAC(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, rootKey)
	base := k.CodeMAC("challenge-1", "123456")
	if len(base) != 32 {
		t.Fatalf("MAC is %d bytes, want the 32 of HMAC-SHA256", len(base))
	}
	if !bytes.Equal(base, k.CodeMAC("challenge-1", "123456")) {
		t.Fatal("the same challenge and code give different MACs")
	}
	cases := []struct {
		name string
		mac  []byte
	}{
		{"another challenge id changes the MAC", k.CodeMAC("challenge-2", "123456")},
		{"another code changes the MAC", k.CodeMAC("challenge-1", "123457")},
		{"another root key changes the MAC", mustKeys(t, otherKey).CodeMAC("challenge-1", "123456")},
		{"moving digits from code to id changes the MAC", k.CodeMAC("challenge-11", "23456")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if bytes.Equal(tc.mac, base) {
				t.Fatalf("MAC %x did not change", tc.mac)
			}
		})
	}
}

func TestSessionAndPhoneHashes(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, rootKey)
	t.Run("no session hashes to nothing", func(t *testing.T) {
		t.Parallel()
		if h := k.SessionHash(""); h != "" {
			t.Fatalf("got %q", h)
		}
	})
	t.Run("different sessions hash differently", func(t *testing.T) {
		t.Parallel()
		if a, b := k.SessionHash("session-a"), k.SessionHash("session-b"); a == b || a == "" {
			t.Fatalf("hashes %q and %q", a, b)
		}
	})
	t.Run("a phone hash holds no digits of the number in a row", func(t *testing.T) {
		t.Parallel()
		h := k.PhoneHash("+819012345678")
		if h == "" || strings.Contains(h, "12345678") || strings.Contains(h, "5678") {
			t.Fatalf("phone hash %q", h)
		}
		if h == k.PhoneHash("+819012345679") {
			t.Fatal("two numbers share a hash")
		}
	})
	t.Run("a phone hash and a session hash of the same text differ", func(t *testing.T) {
		t.Parallel()
		if k.PhoneHash("x") == k.SessionHash("x") {
			t.Fatal("the purposes share a key")
		}
	})
}

func TestCSRFToken(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, rootKey)
	bound := otp.CSRFBinding{Nonce: "nonce", Identity: "alice", SessionHash: "session", Scope: "urn:caddy-sms-stepup:site:a.example:%2F_stepup"}
	with := func(change func(*otp.CSRFBinding)) otp.CSRFBinding {
		b := bound
		change(&b)
		return b
	}
	token := k.CSRFToken(bound, t0)
	for _, at := range []time.Duration{0, otp.CSRFLifetime - time.Second, -time.Minute} {
		if !k.CheckCSRFToken(token, bound, t0.Add(at)) {
			t.Fatalf("a token does not check against what it was made for, %s after it was made", at)
		}
	}
	unix, mac, _ := strings.Cut(token, ".")
	cases := []struct {
		name  string
		token string
		b     otp.CSRFBinding
		now   time.Time
	}{
		{"a token with another nonce fails", token, with(func(b *otp.CSRFBinding) { b.Nonce = "nonce2" }), t0},
		{"a token for another identity fails", token, with(func(b *otp.CSRFBinding) { b.Identity = "bob" }), t0},
		{"a token for another session fails", token, with(func(b *otp.CSRFBinding) { b.SessionHash = "session2" }), t0},
		{"a token for no session fails", token, with(func(b *otp.CSRFBinding) { b.SessionHash = "" }), t0},
		{"a token of another handler's scope fails", token, with(func(b *otp.CSRFBinding) { b.Scope = "urn:caddy-sms-stepup:site:b.example:%2F_stepup" }), t0},
		{"a token an hour old fails", token, bound, t0.Add(otp.CSRFLifetime)},
		{"a token made more than a minute in the future fails", k.CSRFToken(bound, t0.Add(2*time.Minute)), bound, t0},
		{"a token whose time was moved forward fails", strconv.FormatInt(t0.Unix()+3600, 10) + "." + mac, bound, t0.Add(otp.CSRFLifetime)},
		{"a token whose time is written with a plus sign fails", "+" + unix + "." + mac, bound, t0},
		{"a token without its time fails", mac, bound, t0},
		{"an empty token fails", "", bound, t0},
		{"an empty nonce fails even with its own token", k.CSRFToken(with(func(b *otp.CSRFBinding) { b.Nonce = "" }), t0), with(func(b *otp.CSRFBinding) { b.Nonce = "" }), t0},
		{"a token from another key fails", mustKeys(t, otherKey).CSRFToken(bound, t0), bound, t0},
		{"a truncated token fails", token[:len(token)-1], bound, t0},
		{"fields shifted across the separator fail", k.CSRFToken(with(func(b *otp.CSRFBinding) { b.Nonce, b.Identity = "nonc", "ealice" }), t0), bound, t0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if k.CheckCSRFToken(tc.token, tc.b, tc.now) {
				t.Fatal("the token was accepted")
			}
		})
	}
}

// A timing difference cannot be measured reliably in a unit test, so rule 9
// is checked in the source: the CSRF token is compared with hmac.Equal.
func TestCSRFTokenIsComparedInConstantTime(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "keys.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]bool{}
	stringCompare := false
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "CheckCSRFToken" {
			continue
		}
		ast.Inspect(fn, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if pkg, ok := n.X.(*ast.Ident); ok {
					calls[pkg.Name+"."+n.Sel.Name] = true
				}
			case *ast.BinaryExpr:
				// token == "" is fine; token == want is not.
				if lit, ok := n.Y.(*ast.BasicLit); (n.Op == token.EQL || n.Op == token.NEQ) && (!ok || lit.Value != `""`) {
					stringCompare = true
				}
			}
			return true
		})
	}
	if !calls["hmac.Equal"] && !calls["subtle.ConstantTimeCompare"] {
		t.Error("CheckCSRFToken compares without hmac.Equal or subtle.ConstantTimeCompare")
	}
	if calls["bytes.Equal"] || stringCompare {
		t.Error("CheckCSRFToken compares the token with an operator that stops at the first difference")
	}
}

func TestLimitKey(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, rootKey)
	base := k.LimitKey("phone", "+819012345678")
	if base != k.LimitKey("phone", "+819012345678") {
		t.Fatal("the same kind and value give different keys")
	}
	if strings.Contains(base, "12345678") || strings.Contains(base, "5678") {
		t.Fatalf("limit key %q shows digits of the number", base)
	}
	cases := []struct {
		name string
		key  string
	}{
		{"another value changes the key", k.LimitKey("phone", "+819012345679")},
		{"another kind changes the key", k.LimitKey("prefix", "+819012345678")},
		{"another root key changes the key", mustKeys(t, otherKey).LimitKey("phone", "+819012345678")},
		{"moving characters from value to kind changes the key", k.LimitKey("phone+", "819012345678")},
		{"the phone hash of the same number is another key", k.PhoneHash("+819012345678")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.key == base {
				t.Fatalf("key %q did not change", tc.key)
			}
		})
	}
}

func TestSealPhone(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, rootKey)
	const e164 = "+819012345678"
	sealed, err := k.SealPhone("alice", e164)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a sealed number opens for its identity", func(t *testing.T) {
		t.Parallel()
		if got, err := k.OpenPhone("alice", sealed); err != nil || got != e164 {
			t.Fatalf("got %q, %v; want %s", got, err, e164)
		}
	})
	t.Run("a sealed number holds no digits of the number in clear", func(t *testing.T) {
		t.Parallel()
		if bytes.Contains(sealed, []byte("12345678")) || bytes.Contains(sealed, []byte("5678")) {
			t.Fatalf("sealed %x shows the number", sealed)
		}
	})
	t.Run("sealing twice gives different ciphertexts", func(t *testing.T) {
		t.Parallel()
		again, err := k.SealPhone("alice", e164)
		if err != nil || bytes.Equal(again, sealed) {
			t.Fatalf("got %x, %v; want a fresh nonce", again, err)
		}
	})
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	cases := []struct {
		name    string
		keys    *otp.Keys
		subject string
		sealed  []byte
	}{
		{"a sealed number does not open for another identity", k, "bob", sealed},
		{"a sealed number does not open under another root key", mustKeys(t, otherKey), "alice", sealed},
		{"a tampered sealed number does not open", k, "alice", tampered},
		{"a truncated sealed number does not open", k, "alice", sealed[:8]},
		{"nothing does not open", k, "alice", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got, err := tc.keys.OpenPhone(tc.subject, tc.sealed); err == nil {
				t.Fatalf("opened to %q", got)
			}
		})
	}
}

func TestSealSubject(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, rootKey)
	const subject = "alice@example.com"
	sealed, err := k.SealSubject(subject)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a sealed identity opens to itself", func(t *testing.T) {
		t.Parallel()
		if got, err := k.OpenSubject(sealed); err != nil || got != subject {
			t.Fatalf("got %q, %v; want %s", got, err, subject)
		}
	})
	t.Run("a sealed identity holds no part of it in clear", func(t *testing.T) {
		t.Parallel()
		if bytes.Contains(sealed, []byte("alice")) || bytes.Contains(sealed, []byte("example")) {
			t.Fatalf("sealed %x shows the identity", sealed)
		}
	})
	phone, err := k.SealPhone(subject, "+819012345678")
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	cases := []struct {
		name   string
		keys   *otp.Keys
		sealed []byte
	}{
		{"a sealed identity does not open under another root key", mustKeys(t, otherKey), sealed},
		{"a tampered sealed identity does not open", k, tampered},
		{"a sealed phone number does not open as an identity", k, phone},
		{"a truncated sealed identity does not open", k, sealed[:8]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got, err := tc.keys.OpenSubject(tc.sealed); err == nil {
				t.Fatalf("opened to %q", got)
			}
		})
	}
}
