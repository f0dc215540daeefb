package caddymodule

import (
	"context"
	"errors"
	"math"
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

	table, err := readPhoneFile(path, cfPolicyJP(t))
	if err != nil {
		t.Fatalf("readPhoneFile: %v", err)
	}
	if len(table.skipped) != 0 {
		t.Errorf("skipped %+v, want none", table.skipped)
	}
	phones := cfPhones(table)
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
	table, err := readPhoneFile(cfPhoneFile(t, "alice,090-1234-5678"), cfPolicyJP(t))
	if err != nil {
		t.Fatal(err)
	}
	phones := cfPhones(table)
	if phones["alice"].E164 != "+819012345678" {
		t.Errorf("alice = %+v, want +819012345678", phones["alice"])
	}
}

// A bad row is skipped, with its line, and the rest is served. The
// identity it names (if any) is held refused, never dropped: dropped, it
// could enrol a number of its choosing.
func TestReadPhoneFileSkipsBadRowsWithTheirLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		content  string
		line     int
		words    string
		held     string // the identity held refused, if the row names one
		reason   string // PhoneRefusal.Reason, when the policy refused
		masked   string
		identity string // the identity as the log shows it
	}{
		{
			name:    "a line without a comma",
			content: "# users\nalice,090-1234-5678\n\nbob 080-8765-4321\n",
			line:    4,
			words:   "expected `identity,phone`",
		},
		{
			name:    "an empty identity",
			content: "alice,090-1234-5678\n , 080-8765-4321\n",
			line:    2,
			words:   "expected `identity,phone`",
		},
		{
			name:     "an empty phone",
			content:  "alice,090-1234-5678\nbob,\n",
			line:     2,
			words:    "expected `identity,phone`",
			held:     "bob",
			identity: "bob",
		},
		{
			name:     "an identity listed twice",
			content:  "bob,080-8765-4321\nalice,090-1234-5678\nbob,080-1111-2222\n",
			line:     3,
			words:    "listed twice",
			held:     "bob",
			identity: "bob",
		},
		{
			name:     "an invalid number",
			content:  "alice,090-1234-5678\nbob,12345\n",
			line:     2,
			words:    "not a valid phone number",
			held:     "bob",
			reason:   "invalid",
			identity: "bob",
		},
		{
			name:     "a 050 VoIP number",
			content:  "alice,090-1234-5678\nbob,050-1234-5678\n",
			line:     2,
			words:    "numbers of type voip are not accepted",
			held:     "bob",
			reason:   "type",
			masked:   "+81 50-****-5678",
			identity: "bob",
		},
		{
			name:     "a number of a country not allowed",
			content:  "alice,090-1234-5678\n# the UK is not allowed by default\nbob,+44 7911 123456\n",
			line:     3,
			words:    "country are not accepted",
			held:     "bob",
			reason:   "country",
			masked:   "+44 79** **3456",
			identity: "bob",
		},
		{
			name:     "the columns swapped: the identity is a number, and is logged masked",
			content:  "alice,090-1234-5678\n080-8765-4321,bob\n",
			line:     2,
			words:    "not a valid phone number",
			held:     "080-8765-4321",
			reason:   "invalid",
			identity: "+81 80-****-4321",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			table, err := readPhoneFile(cfPhoneFile(t, tt.content), cfPolicyJP(t))
			if err != nil {
				t.Fatalf("readPhoneFile: %v", err)
			}
			if got := table.rows["alice"].phone.E164; got != "+819012345678" || table.served != 1 {
				t.Errorf("alice = %q, served %d: the good row should be served alone", got, table.served)
			}
			if len(table.skipped) != 1 {
				t.Fatalf("skipped %+v, want the one bad row", table.skipped)
			}
			row := table.skipped[0]
			if row.line != tt.line || !strings.Contains(row.err.Error(), tt.words) || row.masked != tt.masked || row.identity != tt.identity {
				t.Errorf("skipped row %+v (%v), want line %d saying %q, masked %q, identity %q", row, row.err, tt.line, tt.words, tt.masked, tt.identity)
			}
			var refusal *otp.PhoneRefusal
			if got := errors.As(row.err, &refusal); got != (tt.reason != "") || (got && refusal.Reason != tt.reason) {
				t.Errorf("reason %v, want a policy refusal %q", row.err, tt.reason)
			}
			if tt.held != "" {
				held, ok := table.rows[tt.held]
				if !ok || !otp.IsPhoneRefusal(held.err) || held.phone.E164 != "" {
					t.Errorf("%s = %+v, %v: want held refused, not dropped and not given a number", tt.held, held, ok)
				}
			}
			// Numbers are logged masked (SECURITY.md 23).
			logged := row.err.Error() + " " + row.identity + " " + row.masked
			for _, digits := range []string{"12345678", "1234-5678", "7911 123456", "8765-4321", "87654321", "1111-2222"} {
				if strings.Contains(logged, digits) {
					t.Errorf("the log of the row %q shows the number %q", logged, digits)
				}
			}
		})
	}
}

func TestLoadPhoneFileMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nope.csv")
	_, err := readPhoneFile(path, cfPolicyJP(t))
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
				phoneFile:       cfPhoneTable(map[string]otp.Phone{"alice": fromFile}),
				clock:           otp.SystemClock{},
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

// cfPhones is the numbers of a reading of phone_file, by identity.
func cfPhones(t *phoneTable) map[string]otp.Phone {
	out := map[string]otp.Phone{}
	for id, row := range t.rows {
		if row.err == nil {
			out[id] = row.phone
		}
	}
	return out
}

// cfPhoneTable is a phone_file table that is never looked at again.
func cfPhoneTable(phones map[string]otp.Phone) *phoneFile {
	f := &phoneFile{}
	t := &phoneTable{rows: map[string]phoneRow{}}
	for id, p := range phones {
		t.rows[id] = phoneRow{phone: p}
	}
	f.table.Store(t)
	f.nextCheck.Store(math.MaxInt64)
	return f
}
