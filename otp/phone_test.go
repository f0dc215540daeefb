package otp_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func mustPolicy(t *testing.T, cfg otp.PhonePolicyConfig) *otp.PhonePolicy {
	t.Helper()
	p, err := otp.NewPhonePolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPhonePolicyAccepts(t *testing.T) {
	t.Parallel()
	jp := otp.PhonePolicyConfig{DefaultRegion: "JP"}
	cases := []struct {
		name   string
		cfg    otp.PhonePolicyConfig
		raw    string
		e164   string
		region string
		typ    string
		masked string
	}{
		{"a Japanese 090 mobile in national format is normalised to E.164", jp,
			"090-1234-5678", "+819012345678", "JP", "mobile", "+81 90-****-5678"},
		{"a Japanese 080 mobile in international format is accepted", jp,
			"+81 80 1234 5678", "+818012345678", "JP", "mobile", "+81 80-****-5678"},
		{"a Japanese 070 mobile is accepted", jp,
			"070-1234-5678", "+817012345678", "JP", "mobile", "+81 70-****-5678"},
		{"a Japanese 060 mobile is accepted although the metadata calls it invalid", jp,
			"060-1234-5678", "+816012345678", "JP", "mobile", "+81 60-****-5678"},
		{"a Japanese 060 mobile in E.164 is accepted", jp,
			"+816012345678", "+816012345678", "JP", "mobile", "+81 60-****-5678"},
		{"a number without separators is accepted", jp,
			"09012345678", "+819012345678", "JP", "mobile", "+81 90-****-5678"},
		{"a number with brackets and a trunk zero is accepted", jp,
			"+81 (090) 1234-5678", "+819012345678", "JP", "mobile", "+81 90-****-5678"},
		{"full-width digits are accepted", jp,
			"０９０−１２３４−５６７８", "+819012345678", "JP", "mobile", "+81 90-****-5678"},
		{"a North American number is accepted as fixed line or mobile", otp.PhonePolicyConfig{DefaultRegion: "JP", AllowCountries: []string{"US"}},
			"+1 415 555 2671", "+14155552671", "US", "fixed_line_or_mobile", "+1 41*-***-2671"},
		{"a US number in national format is accepted with US as default region", otp.PhonePolicyConfig{DefaultRegion: "us"},
			"(415) 555-2671", "+14155552671", "US", "fixed_line_or_mobile", "+1 41*-***-2671"},
		{"a +44 mobile of Guernsey is accepted when GB is allowed", otp.PhonePolicyConfig{AllowCountries: []string{"GB"}},
			"+44 7911 123456", "+447911123456", "GG", "mobile", "+44 79** **3456"},
		{"a fixed line is accepted when the operator allows it", otp.PhonePolicyConfig{AllowTypes: []string{"MOBILE", "fixed_line"}},
			"03-1234-5678", "+81312345678", "JP", "fixed_line", "+81 3-1***-5678"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ph, err := mustPolicy(t, tc.cfg).Check(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			// Formatted reads the whole number back: every digit, in order.
			var digits strings.Builder
			for _, r := range ph.Formatted {
				if r >= '0' && r <= '9' {
					digits.WriteRune(r)
				}
			}
			if "+"+digits.String() != tc.e164 {
				t.Errorf("Formatted %q does not read back %s", ph.Formatted, tc.e164)
			}
			ph.Formatted = ""
			want := otp.Phone{E164: tc.e164, Region: tc.region, Type: tc.typ, Masked: tc.masked}
			if ph != want {
				t.Fatalf("got %+v, want %+v", ph, want)
			}
		})
	}
}

func TestPhonePolicyRefuses(t *testing.T) {
	t.Parallel()
	jp := otp.PhonePolicyConfig{DefaultRegion: "JP"}
	everything := otp.PhonePolicyConfig{DefaultRegion: "JP", AllowCountries: []string{"JP", "US", "GB"}, AllowTypes: otp.PhoneTypeNames()}
	cases := []struct {
		name   string
		cfg    otp.PhonePolicyConfig
		raw    string
		reason string
		typ    string
	}{
		{"Japan's 050 VoIP range is refused", jp, "050-1234-5678", "type", "voip"},
		{"a Japanese fixed line is refused", jp, "03-1234-5678", "type", "fixed_line"},
		{"a 0120 toll-free number is refused", jp, "0120-123-456", "type", "toll_free"},
		{"a 0800 toll-free number is refused", jp, "0800-123-4567", "type", "toll_free"},
		{"a 0570 universal access number is refused", jp, "0570-123-456", "type", "uan"},
		{"a 020 pager number is refused", jp, "020-1234-5678", "type", "pager"},
		{"a 0990 premium-rate number is refused", jp, "0990-123-456", "type", "premium_rate"},
		{"a 060 number one digit short is no mobile", jp, "+81 60 1234 567", "type", "personal"},
		{"a 060 number one digit long is invalid", jp, "+81 60 1234 56789", "invalid", ""},
		{"a 060 number four digits long is invalid", jp, "+8160123456789012", "invalid", ""},
		{"a +882 international network number is refused", everything, "+882 16 1234 5678", "country", "voip"},
		{"a +883 international network number is refused", everything, "+883 5100 1234 5678", "country", "voip"},
		{"a +882 number the metadata does not know is invalid", everything, "+882 1234 5678", "invalid", ""},
		{"a possible but invalid 090 number is invalid", everything, "090-1234-567", "invalid", ""},
		{"a possible but invalid 13-digit number is invalid", everything, "+8190123456789", "invalid", ""},
		{"an unassigned 0180 number is invalid", everything, "0180-123-456", "invalid", ""},
		{"a number too short to be possible is invalid", everything, "0901234", "invalid", ""},
		{"letters are invalid", everything, "abc", "invalid", ""},
		{"an empty number is invalid", everything, "", "invalid", ""},
		{"a US number is refused when only Japan is allowed", jp, "+1 415 555 2671", "country", "fixed_line_or_mobile"},
		{"a UK mobile is refused when only Japan is allowed", jp, "+44 7911 123456", "country", "mobile"},
		{"a Japanese mobile is refused when only the US is allowed", otp.PhonePolicyConfig{DefaultRegion: "US"}, "+81 90 1234 5678", "country", "mobile"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ph, err := mustPolicy(t, tc.cfg).Check(tc.raw)
			var r *otp.PhoneRefusal
			if !errors.As(err, &r) {
				t.Fatalf("got %+v, %v; want a *otp.PhoneRefusal", ph, err)
			}
			if r.Reason != tc.reason || r.Type != tc.typ {
				t.Fatalf("refusal %+v, want reason %q type %q", *r, tc.reason, tc.typ)
			}
			if ph != (otp.Phone{}) {
				t.Fatalf("a refused number came back as %+v", ph)
			}
			if !otp.IsPhoneRefusal(err) {
				t.Fatal("IsPhoneRefusal is false for a refusal")
			}
			if r.Masked != "" && strings.Contains(r.Masked, "1234") {
				t.Fatalf("refusal shows the middle digits: %q", r.Masked)
			}
		})
	}
}

func TestPhoneRefusalMessages(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  *otp.PhoneRefusal
		want string
	}{
		{"a country refusal says the country is not accepted", &otp.PhoneRefusal{Reason: "country"}, "numbers of this country are not accepted"},
		{"a type refusal names the type", &otp.PhoneRefusal{Reason: "type", Type: "voip"}, "numbers of type voip are not accepted"},
		{"an invalid number says it is not valid", &otp.PhoneRefusal{Reason: "invalid"}, "not a valid phone number"},
		{"a deny-list refusal says the number is not accepted", &otp.PhoneRefusal{Reason: "deny_list"}, "this number is not accepted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.Error(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if otp.IsPhoneRefusal(errors.New("store unavailable")) {
		t.Fatal("IsPhoneRefusal is true for a system failure")
	}
}

func TestNewPhonePolicyErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  otp.PhonePolicyConfig
		want string
	}{
		{"an unknown default region is refused", otp.PhonePolicyConfig{DefaultRegion: "XX"}, `unknown region "XX"`},
		{"the non-geographic region 001 is refused", otp.PhonePolicyConfig{DefaultRegion: "001"}, `unknown region "001"`},
		{"an unknown allowed country is refused", otp.PhonePolicyConfig{AllowCountries: []string{"JP", "ZZ"}}, `unknown country "ZZ"`},
		{"an unknown number type is refused", otp.PhonePolicyConfig{AllowTypes: []string{"landline"}}, `unknown number type "landline"`},
		{"the internal unknown type is not a choice", otp.PhonePolicyConfig{AllowTypes: []string{"unknown"}}, `unknown number type "unknown"`},
		{"a mobile prefix without a plus is refused", otp.PhonePolicyConfig{MobilePrefixes: []string{"8160"}}, `mobile prefix "8160"`},
		{"a mobile prefix with a letter is refused", otp.PhonePolicyConfig{MobilePrefixes: []string{"+81a"}}, `mobile prefix "+81a"`},
		{"a mobile prefix of one digit is refused", otp.PhonePolicyConfig{MobilePrefixes: []string{"+8"}}, `mobile prefix "+8"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := otp.NewPhonePolicy(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, %v; want an error containing %s", p, err, tc.want)
			}
		})
	}
	t.Run("an empty configuration defaults to Japanese mobiles", func(t *testing.T) {
		t.Parallel()
		p := mustPolicy(t, otp.PhonePolicyConfig{})
		if _, err := p.Check("090-1234-5678"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Check("+1 415 555 2671"); !otp.IsPhoneRefusal(err) {
			t.Fatalf("got %v, want a refusal", err)
		}
	})
}

func TestMaskE164(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		want string
	}{
		{"a Japanese mobile keeps its country code, two digits and the last four", "+819012345678", "+8190****5678"},
		{"a US number keeps its first four digits and the last four", "+14155552671", "+1415***2671"},
		{"a number too short to mask shows nothing", "+12345", "+****"},
		{"an empty number shows nothing", "", "+****"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := otp.MaskE164(tc.in); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPhoneClassification is issue 5's list: each kind of number, what the
// library calls it, and whether the default policy (Japanese mobiles)
// accepts it.
func TestPhoneClassification(t *testing.T) {
	t.Parallel()
	defaults := mustPolicy(t, otp.PhonePolicyConfig{DefaultRegion: "JP"})
	everything := mustPolicy(t, otp.PhonePolicyConfig{DefaultRegion: "JP",
		AllowCountries: []string{"JP", "US", "GB"}, AllowTypes: otp.PhoneTypeNames()})
	cases := []struct {
		name     string
		raw      string
		typ      string // as classified when every type is allowed; "" if invalid
		region   string
		accepted bool   // by the default policy
		reason   string // the default policy's refusal
	}{
		{"a JP 090 mobile is accepted", "090-1234-5678", "mobile", "JP", true, ""},
		{"a JP 080 mobile is accepted", "080-1234-5678", "mobile", "JP", true, ""},
		{"a JP 070 mobile is accepted", "070-1234-5678", "mobile", "JP", true, ""},
		{"a JP 060 mobile is accepted as mobile", "060-1234-5678", "mobile", "JP", true, ""},
		{"a JP 050 IP phone is refused as voip", "050-1234-5678", "voip", "JP", false, "type"},
		{"a JP 03 fixed line is refused", "03-1234-5678", "fixed_line", "JP", false, "type"},
		{"a JP 0120 toll-free number is refused", "0120-123-456", "toll_free", "JP", false, "type"},
		{"a JP 0570 universal access number is refused", "0570-123-456", "uan", "JP", false, "type"},
		{"a JP 020 pager number is refused", "020-1234-5678", "pager", "JP", false, "type"},
		{"a JP 0990 premium-rate number is refused", "0990-123-456", "premium_rate", "JP", false, "type"},
		{"a JP personal number is refused", "+81 60 1234 567", "personal", "JP", false, "type"},
		{"a GB 070 personal number is refused", "+44 70 1234 5678", "personal", "GB", false, "country"},
		{"a North American number is fixed line or mobile and refused outside its country", "+1 415 555 2671", "fixed_line_or_mobile", "US", false, "country"},
		{"a +44 7911 mobile is of region GG and refused outside its country", "+44 7911 123456", "mobile", "GG", false, "country"},
		{"a +882 number is non-geographic voip and refused", "+882 16 1234 5678", "voip", "001", false, "country"},
		{"a +883 number is non-geographic voip and refused", "+883 5100 1234 5678", "voip", "001", false, "country"},
		{"a possible but invalid 090 number is invalid", "090-1234-567", "", "", false, "invalid"},
		{"a possible but invalid 13-digit 080 number is invalid", "+81 80 1234 56789", "", "", false, "invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ph, err := everything.Check(tc.raw)
			switch {
			case tc.typ == "" && !otp.IsPhoneRefusal(err):
				t.Fatalf("with every type allowed: got %+v, %v; want invalid", ph, err)
			case tc.typ != "" && tc.region != "001" && (err != nil || ph.Type != tc.typ || ph.Region != tc.region):
				t.Fatalf("with every type allowed: got %+v, %v; want type %s in %s", ph, err, tc.typ, tc.region)
			}
			ph, err = defaults.Check(tc.raw)
			if tc.accepted {
				if err != nil || ph.Type != tc.typ || ph.AllowListed {
					t.Fatalf("default policy: got %+v, %v; want accepted as %s", ph, err, tc.typ)
				}
				return
			}
			var r *otp.PhoneRefusal
			if !errors.As(err, &r) || r.Reason != tc.reason || (tc.typ != "" && r.Type != tc.typ) {
				t.Fatalf("default policy: got %+v, %v; want refused for %s", ph, err, tc.reason)
			}
		})
	}
}

func TestPhonePolicyNumberLists(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		cfg         otp.PhonePolicyConfig
		raw         string
		reason      string // "" when accepted
		allowListed bool
	}{
		{"a denied number is refused although its type is allowed",
			otp.PhonePolicyConfig{DenyNumbers: []string{"+819012345678"}}, "090-1234-5678", "deny_list", false},
		{"a denied prefix refuses every number under it",
			otp.PhonePolicyConfig{DenyNumbers: []string{"+81901234"}}, "090-1234-9999", "deny_list", false},
		{"a denied prefix leaves numbers outside it alone",
			otp.PhonePolicyConfig{DenyNumbers: []string{"+81901234"}}, "090-1235-0000", "", false},
		{"a denied 060 number is refused although 060 is always mobile",
			otp.PhonePolicyConfig{DenyNumbers: []string{"+8160"}}, "060-1234-5678", "deny_list", false},
		{"deny wins over allow for the same number",
			otp.PhonePolicyConfig{DenyNumbers: []string{"+819012345678"}, AllowNumbers: []string{"+819012345678"}}, "090-1234-5678", "deny_list", false},
		{"deny wins over a broader allow prefix",
			otp.PhonePolicyConfig{DenyNumbers: []string{"+815012345678"}, AllowNumbers: []string{"+8150"}}, "050-1234-5678", "deny_list", false},
		{"an allowed 050 number passes although voip is refused",
			otp.PhonePolicyConfig{AllowNumbers: []string{"+815012345678"}}, "050-1234-5678", "", true},
		{"an allowed prefix lets a whole 050 range through",
			otp.PhonePolicyConfig{AllowNumbers: []string{"+8150"}}, "050-9876-5432", "", true},
		{"an allowed prefix does not reach other ranges",
			otp.PhonePolicyConfig{AllowNumbers: []string{"+8150"}}, "0120-123-456", "type", false},
		{"an allowed US number passes although its country is refused",
			otp.PhonePolicyConfig{AllowNumbers: []string{"+14155552671"}}, "+1 415 555 2671", "", true},
		{"an allowed +882 number passes although non-geographic numbers are refused",
			otp.PhonePolicyConfig{AllowNumbers: []string{"+88216"}}, "+882 16 1234 5678", "", true},
		{"an allow list never lets an invalid number through",
			otp.PhonePolicyConfig{AllowNumbers: []string{"+8190"}}, "090-1234-567", "invalid", false},
		{"a mobile on the allow list is accepted without being marked as listed",
			otp.PhonePolicyConfig{AllowNumbers: []string{"+8190"}}, "090-1234-5678", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ph, err := mustPolicy(t, tc.cfg).Check(tc.raw)
			if tc.reason == "" {
				if err != nil || ph.AllowListed != tc.allowListed {
					t.Fatalf("got %+v, %v; want accepted with AllowListed %t", ph, err, tc.allowListed)
				}
				return
			}
			var r *otp.PhoneRefusal
			if !errors.As(err, &r) || r.Reason != tc.reason {
				t.Fatalf("got %+v, %v; want refused for %s", ph, err, tc.reason)
			}
			if tc.reason == "deny_list" && (r.Masked == "" || strings.Contains(r.Masked, "1234")) {
				t.Fatalf("deny-list refusal masked as %q, want the masked number", r.Masked)
			}
		})
	}
}

func TestPhonePolicyRefusesMalformedListEntries(t *testing.T) {
	t.Parallel()
	for _, entry := range []string{"819012345678", "+81 90 1234 5678", "+81-90", "+8", "+", "", "+81a", "+1234567890123456", "090-1234-5678"} {
		for _, list := range []string{"deny", "allow"} {
			t.Run("the "+list+" entry "+strconv.Quote(entry)+" is refused", func(t *testing.T) {
				t.Parallel()
				cfg := otp.PhonePolicyConfig{DenyNumbers: []string{entry}}
				if list == "allow" {
					cfg = otp.PhonePolicyConfig{AllowNumbers: []string{entry}}
				}
				p, err := otp.NewPhonePolicy(cfg)
				if err == nil || !strings.Contains(err.Error(), list+" number "+strconv.Quote(entry)) {
					t.Fatalf("got %v, %v; want an error naming the %s entry", p, err, list)
				}
			})
		}
	}
}

func TestLoadNumberList(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, text string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "numbers.txt")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("numbers and prefixes are read with comments, blank lines and CRLF ignored", func(t *testing.T) {
		t.Parallel()
		path := write(t, "# SMS pumping ranges\r\n+8150\r\n\r\n  +819012345678   # a known fraudster\n\t+88216\n#+819999\n")
		got, err := otp.LoadNumberList(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"+8150", "+819012345678", "+88216"}; !slices.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("an empty file gives an empty list", func(t *testing.T) {
		t.Parallel()
		got, err := otp.LoadNumberList(write(t, "# nothing yet\n"))
		if err != nil || len(got) != 0 {
			t.Fatalf("got %q, %v; want nothing", got, err)
		}
	})
	t.Run("a malformed entry is reported with its file and line", func(t *testing.T) {
		t.Parallel()
		path := write(t, "+8150\n# comment\n090-1234-5678\n")
		_, err := otp.LoadNumberList(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+":3: ") || !strings.Contains(err.Error(), `"090-1234-5678"`) {
			t.Fatalf("got %v, want an error starting %s:3", err, path)
		}
	})
	t.Run("a missing file is an error", func(t *testing.T) {
		t.Parallel()
		if _, err := otp.LoadNumberList(filepath.Join(t.TempDir(), "missing.txt")); err == nil {
			t.Fatal("got no error")
		}
	})
	t.Run("a loaded list works as a policy's deny list", func(t *testing.T) {
		t.Parallel()
		list, err := otp.LoadNumberList(write(t, "+819012345678\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = mustPolicy(t, otp.PhonePolicyConfig{DenyNumbers: list}).Check("090-1234-5678")
		var r *otp.PhoneRefusal
		if !errors.As(err, &r) || r.Reason != "deny_list" {
			t.Fatalf("got %v, want a deny_list refusal", err)
		}
	})
}
