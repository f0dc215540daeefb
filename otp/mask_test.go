package otp_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// TestMasksNeverShowAWholeNumber: a mask is what the logs hold of a number
// (SECURITY.md rule 23), so however short a country's numbers are, it hides
// at least three digits; long numbers keep the usual two and four.
func TestMasksNeverShowAWholeNumber(t *testing.T) {
	t.Parallel()
	policy, err := otp.NewPhonePolicy(otp.PhonePolicyConfig{DefaultRegion: "JP",
		AllowCountries: []string{"JP", "TK", "SH", "CK", "GL", "NU", "US"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, e164, masked, maskedE164 string
	}{
		{"four national digits (Tokelau) show only the last", "+6907290", "+690 ***0", "+****"},
		{"five national digits (St Helena) show the last two", "+29051234", "+290 ***34", "+****"},
		{"five national digits in groups (Cook Islands)", "+68271234", "+682 ** *34", "+****"},
		{"six national digits (Greenland) show the last three", "+299221234", "+299 ** *2 34", "+29***1234"},
		{"seven national digits (Niue) show the last four", "+6838884012", "+683 *** 4012", "+683***4012"},
		{"a Japanese mobile keeps two and four", "+819012345678", "+81 90-****-5678", "+8190****5678"},
		{"a North American number keeps two and four", "+14155552671", "+1 41*-***-2671", "+1415***2671"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := policy.Check(tc.e164)
			if err != nil {
				t.Fatal(err)
			}
			if p.Masked != tc.masked {
				t.Errorf("Masked %q, want %q", p.Masked, tc.masked)
			}
			if got := otp.MaskE164(tc.e164); got != tc.maskedE164 {
				t.Errorf("MaskE164 %q, want %q", got, tc.maskedE164)
			}
			for _, m := range []string{p.Masked, otp.MaskE164(tc.e164)} {
				if strings.Count(m, "*") < 3 && m != "+****" {
					t.Errorf("mask %q hides fewer than three digits", m)
				}
			}
		})
	}
	t.Run("a refusal for the country carries the same mask", func(t *testing.T) {
		t.Parallel()
		jp, _ := otp.NewPhonePolicy(otp.PhonePolicyConfig{DefaultRegion: "JP"})
		_, err := jp.Check("+690 7290")
		var r *otp.PhoneRefusal
		if !errors.As(err, &r) || r.Reason != "country" || r.Masked != "+690 ***0" {
			t.Fatalf("refusal %+v (%v), want country with mask +690 ***0", r, err)
		}
	})
}
