package caddymodule

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// cfPolicyJP is the default policy: region JP, Japanese mobile numbers only.
func cfPolicyJP(t *testing.T) *otp.PhonePolicy {
	t.Helper()
	p, err := otp.NewPhonePolicy(otp.PhonePolicyConfig{DefaultRegion: "JP"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func cfPhoneFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "phones.csv")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadPhoneFileNormalisesToE164(t *testing.T) {
	t.Parallel()
	path := cfPhoneFile(t, strings.Join([]string{
		"# identity,phone  (national numbers are read in JP)",
		"alice,+81 90-1234-5678",
		"",
		"   ",
		"  bob , 080-8765-4321  ",
		"\t# an indented comment,090-0000-0000",
		"carol,070 1111 2222",
		"dave,060-1234-5678",
		"erin@example.com,09033334444",
	}, "\n")+"\n")

	phones, err := loadPhoneFile(path, cfPolicyJP(t))
	if err != nil {
		t.Fatalf("loadPhoneFile: %v", err)
	}
	want := map[string]string{
		"alice":            "+819012345678",
		"bob":              "+818087654321",
		"carol":            "+817011112222",
		"dave":             "+816012345678", // 060: mobile since 2026
		"erin@example.com": "+819033334444",
	}
	if len(phones) != len(want) {
		t.Errorf("loaded %d identities %v, want %d", len(phones), phones, len(want))
	}
	for id, e164 := range want {
		p, ok := phones[id]
		if !ok {
			t.Errorf("identity %q missing", id)
			continue
		}
		if p.E164 != e164 || p.Type != "mobile" || p.Region != "JP" {
			t.Errorf("%s = %+v, want %s, mobile, JP", id, p, e164)
		}
	}
	if got := phones["alice"].Masked; got != "+81 90-****-5678" {
		t.Errorf("alice masked = %q, want +81 90-****-5678", got)
	}
}

func TestLoadPhoneFileWithoutFinalNewline(t *testing.T) {
	t.Parallel()
	phones, err := loadPhoneFile(cfPhoneFile(t, "alice,090-1234-5678"), cfPolicyJP(t))
	if err != nil {
		t.Fatal(err)
	}
	if phones["alice"].E164 != "+819012345678" {
		t.Errorf("alice = %+v, want +819012345678", phones["alice"])
	}
}

func TestLoadPhoneFileRefusesWithFileAndLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		line    string
		words   []string
		reason  string // PhoneRefusal.Reason, when the policy refused
	}{
		{
			name:    "a line without a comma",
			content: "# users\nalice,090-1234-5678\n\nbob 080-8765-4321\n",
			line:    ":4: ",
			words:   []string{"expected `identity,phone`"},
		},
		{
			name:    "an empty identity",
			content: "alice,090-1234-5678\n , 080-8765-4321\n",
			line:    ":2: ",
			words:   []string{"expected `identity,phone`"},
		},
		{
			name:    "an empty phone",
			content: "alice,\n",
			line:    ":1: ",
			words:   []string{"expected `identity,phone`"},
		},
		{
			name:    "an identity listed twice",
			content: "alice,090-1234-5678\nbob,080-8765-4321\nalice,080-1111-2222\n",
			line:    ":3: ",
			words:   []string{`identity "alice" is listed twice`},
		},
		{
			name:    "an invalid number",
			content: "alice,090-1234-5678\nbob,12345\n",
			line:    ":2: ",
			words:   []string{`phone of "bob"`, "not a valid phone number"},
			reason:  "invalid",
		},
		{
			name:    "a 050 VoIP number",
			content: "alice,050-1234-5678\n",
			line:    ":1: ",
			words:   []string{`phone of "alice"`, "numbers of type voip are not accepted"},
			reason:  "type",
		},
		{
			name:    "a number of a country not allowed",
			content: "alice,090-1234-5678\n# the UK is not allowed by default\nbob,+44 7911 123456\n",
			line:    ":3: ",
			words:   []string{`phone of "bob"`, "country are not accepted"},
			reason:  "country",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := cfPhoneFile(t, tt.content)
			phones, err := loadPhoneFile(path, cfPolicyJP(t))
			if err == nil {
				t.Fatalf("loadPhoneFile accepted %q: %v", tt.content, phones)
			}
			if phones != nil {
				t.Errorf("loadPhoneFile returned %v with its error, want nothing", phones)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path+tt.line) {
				t.Errorf("error %q does not start with %q", msg, path+tt.line)
			}
			for _, w := range tt.words {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			var refusal *otp.PhoneRefusal
			if got := errors.As(err, &refusal); got != (tt.reason != "") {
				t.Fatalf("error %q is a policy refusal: %v, want %v", msg, got, tt.reason != "")
			}
			if refusal != nil && refusal.Reason != tt.reason {
				t.Errorf("refusal reason = %q, want %q", refusal.Reason, tt.reason)
			}
			// Numbers are logged masked (SECURITY.md 23); the error is logged.
			// The temporary path holds random digits, so it is left out.
			rest := strings.TrimPrefix(msg, path)
			for _, digits := range []string{"12345678", "1234-5678", "7911 123456", "8765-4321"} {
				if strings.Contains(rest, digits) {
					t.Errorf("error %q shows the number %q", msg, digits)
				}
			}
		})
	}
}

func TestLoadPhoneFileMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nope.csv")
	_, err := loadPhoneFile(path, cfPolicyJP(t))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v, want one wrapping os.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "phone_file") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name phone_file and the path", err)
	}
}

func TestPhoneForPrecedence(t *testing.T) {
	t.Parallel()
	policy := cfPolicyJP(t)
	fromFile, err := policy.Check("090-1234-5678")
	if err != nil {
		t.Fatal(err)
	}
	const placeholder = "{http.request.header.X-Phone}"
	tests := []struct {
		name     string
		phone    string // the phone option
		header   *string
		identity string
		want     string // E.164
		wantErr  error
		reason   string
	}{
		{
			name:     "the placeholder's number beats the file's",
			phone:    placeholder,
			header:   cfPtr("080-8765-4321"),
			identity: "alice",
			want:     "+818087654321",
		},
		{
			name:     "the placeholder serves identities the file does not list",
			phone:    placeholder,
			header:   cfPtr("+81 70-1111-2222"),
			identity: "zed",
			want:     "+817011112222",
		},
		{
			name:     "an empty placeholder falls back to the file",
			phone:    placeholder,
			header:   cfPtr(""),
			identity: "alice",
			want:     "+819012345678",
		},
		{
			name:     "without a phone option the file decides",
			identity: "alice",
			want:     "+819012345678",
		},
		{
			name:     "an identity in neither has no phone",
			phone:    placeholder,
			header:   cfPtr(""),
			identity: "zed",
			wantErr:  errNoPhone,
		},
		{
			name:     "an identity the file does not list has no phone",
			identity: "zed",
			wantErr:  errNoPhone,
		},
		{
			name:     "a placeholder number the policy refuses is refused, not replaced by the file's",
			phone:    placeholder,
			header:   cfPtr("050-1234-5678"),
			identity: "alice",
			reason:   "type",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &Handler{
				IdentityOptions: IdentityOptions{Phone: tt.phone},
				policy:          policy,
				phones:          map[string]otp.Phone{"alice": fromFile},
			}
			repl := caddy.NewReplacer()
			if tt.header != nil {
				repl.Set("http.request.header.X-Phone", *tt.header)
			}
			got, err := h.phoneFor(context.Background(), tt.identity, repl)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("phoneFor(%q) = %+v, %v, want error %v", tt.identity, got, err, tt.wantErr)
				}
			case tt.reason != "":
				var refusal *otp.PhoneRefusal
				if !errors.As(err, &refusal) || refusal.Reason != tt.reason {
					t.Fatalf("phoneFor(%q) = %+v, %v, want a %q refusal", tt.identity, got, err, tt.reason)
				}
			default:
				if err != nil {
					t.Fatalf("phoneFor(%q): %v", tt.identity, err)
				}
				if got.E164 != tt.want {
					t.Errorf("phoneFor(%q) = %s, want %s", tt.identity, got.E164, tt.want)
				}
			}
		})
	}
}

func cfPtr(s string) *string { return &s }
