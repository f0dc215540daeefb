package otp

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Phone is a number that passed the policy, normalised to E.164.
type Phone struct {
	E164   string
	Region string
	Type   string
	// Masked is safe to show and to log: "+81 90-****-5678".
	Masked string
	// Formatted is the whole number for reading back to the person who
	// typed it ("+81 90-1234-5678"); never logged.
	Formatted string
	// AllowListed is set when the number passed only because the policy's
	// AllowNumbers lists it: its country or type alone would have been
	// refused. Callers log such a send with the reason "allow_list".
	AllowListed bool
}

// PhoneType names the libphonenumber number types in configuration.
var phoneTypes = map[phonenumbers.PhoneNumberType]string{
	phonenumbers.FIXED_LINE:           "fixed_line",
	phonenumbers.MOBILE:               "mobile",
	phonenumbers.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
	phonenumbers.TOLL_FREE:            "toll_free",
	phonenumbers.PREMIUM_RATE:         "premium_rate",
	phonenumbers.SHARED_COST:          "shared_cost",
	phonenumbers.VOIP:                 "voip",
	phonenumbers.PERSONAL_NUMBER:      "personal",
	phonenumbers.PAGER:                "pager",
	phonenumbers.UAN:                  "uan",
	phonenumbers.VOICEMAIL:            "voicemail",
	phonenumbers.UNKNOWN:              "unknown",
}

// PhoneTypeNames lists the type names accepted by PhonePolicy.AllowTypes.
func PhoneTypeNames() []string {
	return []string{"mobile", "fixed_line_or_mobile", "fixed_line", "toll_free", "premium_rate",
		"shared_cost", "voip", "personal", "pager", "uan", "voicemail"}
}

// PhonePolicy decides which numbers may receive codes. The zero value is not
// usable; build one with NewPhonePolicy.
type PhonePolicy struct {
	defaultRegion  string
	countryCodes   map[int]bool
	types          map[string]bool
	mobilePrefixes []string
	deny, allow    numberSet
}

// PhonePolicyConfig is the operator's choice of numbers.
type PhonePolicyConfig struct {
	// DefaultRegion parses national numbers ("090-1234-5678"). ISO 3166
	// alpha-2, e.g. "JP".
	DefaultRegion string
	// AllowCountries are regions whose country calling codes may receive
	// codes. Empty means the default region's only. Calling codes, not
	// regions, are compared: +44 7911 is region GG but still the UK's +44.
	AllowCountries []string
	// AllowTypes are number types accepted. Empty means mobile and
	// fixed_line_or_mobile (North America does not tell them apart).
	AllowTypes []string
	// MobilePrefixes are E.164 prefixes accepted as mobile even where the
	// library's metadata does not know them yet. "+8160" (Japan's 060, live
	// since 2026) is always included.
	MobilePrefixes []string
	// DenyNumbers are E.164 numbers ("+819012345678") or prefixes of them
	// ("+8150", "+81901234") that never receive codes, whatever else the
	// policy says. Deny wins over everything, AllowNumbers included.
	DenyNumbers []string
	// AllowNumbers are E.164 numbers or prefixes that receive codes even
	// where their country or type is refused (a test phone abroad, a
	// company's 050 line). They never make an invalid number valid.
	AllowNumbers []string
}

// Japan's 060 mobile range opened in 2026, after the metadata was made.
const jp060Prefix = "+8160"

// NewPhonePolicy checks the configuration and builds a policy.
func NewPhonePolicy(cfg PhonePolicyConfig) (*PhonePolicy, error) {
	region := strings.ToUpper(strings.TrimSpace(cfg.DefaultRegion))
	if region == "" {
		region = "JP"
	}
	if phonenumbers.GetCountryCodeForRegion(region) == 0 {
		return nil, fmt.Errorf("unknown region %q: use an ISO 3166 code such as JP or US", cfg.DefaultRegion)
	}
	p := &PhonePolicy{defaultRegion: region, countryCodes: map[int]bool{}, types: map[string]bool{}}
	countries := cfg.AllowCountries
	if len(countries) == 0 {
		countries = []string{region}
	}
	for _, c := range countries {
		cc := phonenumbers.GetCountryCodeForRegion(strings.ToUpper(c))
		if cc == 0 {
			return nil, fmt.Errorf("unknown country %q: use an ISO 3166 code such as JP or US", c)
		}
		p.countryCodes[cc] = true
	}
	types := cfg.AllowTypes
	if len(types) == 0 {
		types = []string{"mobile", "fixed_line_or_mobile"}
	}
	for _, t := range types {
		t = strings.ToLower(t)
		if !knownType(t) {
			return nil, fmt.Errorf("unknown number type %q: expected one of %s", t, strings.Join(PhoneTypeNames(), ", "))
		}
		p.types[t] = true
	}
	p.mobilePrefixes = append([]string{jp060Prefix}, cfg.MobilePrefixes...)
	for _, mp := range p.mobilePrefixes {
		if len(mp) < 3 || mp[0] != '+' || !allDigits(mp[1:]) {
			return nil, fmt.Errorf("mobile prefix %q: expected + and digits, e.g. +8160", mp)
		}
	}
	var err error
	if p.deny, err = newNumberSet("deny number", cfg.DenyNumbers); err != nil {
		return nil, err
	}
	if p.allow, err = newNumberSet("allow number", cfg.AllowNumbers); err != nil {
		return nil, err
	}
	return p, nil
}

// numberSet holds E.164 numbers and prefixes. A lookup tries each prefix
// of a number, so a list of thousands of entries costs at most 15 map
// lookups per check.
type numberSet map[string]bool

func newNumberSet(what string, entries []string) (numberSet, error) {
	set := make(numberSet, len(entries))
	for _, e := range entries {
		if err := checkNumberEntry(e); err != nil {
			return nil, fmt.Errorf("%s %s", what, err)
		}
		set[e] = true
	}
	return set, nil
}

// E.164 numbers have at most 15 digits; a prefix of one digit would be a
// whole world zone, which allow_countries is for.
const (
	minEntryDigits = 2
	maxEntryDigits = 15
)

func checkNumberEntry(e string) error {
	if len(e) < 1+minEntryDigits || len(e) > 1+maxEntryDigits || e[0] != '+' || !allDigits(e[1:]) {
		return fmt.Errorf("%q: expected + and %d to %d digits without spaces, a number such as +819012345678 or a prefix such as +8150",
			e, minEntryDigits, maxEntryDigits)
	}
	return nil
}

// match reports whether e164 or any prefix of it is in the set.
func (s numberSet) match(e164 string) bool {
	if len(s) == 0 {
		return false
	}
	for n := 1 + minEntryDigits; n <= len(e164); n++ {
		if s[e164[:n]] {
			return true
		}
	}
	return false
}

// LoadNumberList reads a deny_numbers or allow_numbers file: one E.164
// number or prefix a line; blank lines and everything after a # are
// ignored. Errors name the file and line.
func LoadNumberList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("number list: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if err := checkNumberEntry(text); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, text)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

func knownType(t string) bool {
	for _, n := range PhoneTypeNames() {
		if n == t {
			return true
		}
	}
	return false
}

// PhoneRefusal says why a number may not receive codes. Its Reason is a
// stable, low-cardinality word for logs and metrics.
type PhoneRefusal struct {
	Reason string // invalid, country, type, deny_list, carrier (carrier.go)
	Type   string
	Masked string
}

func (e *PhoneRefusal) Error() string {
	switch e.Reason {
	case "country":
		return "numbers of this country are not accepted"
	case "type":
		return "numbers of type " + e.Type + " are not accepted"
	case "deny_list":
		return "this number is not accepted"
	case "carrier":
		return "its carrier says this number is " + e.Type + ", which is not accepted"
	}
	return "not a valid phone number"
}

// IsPhoneRefusal reports whether err is a policy refusal (as opposed to a
// failure of the system).
func IsPhoneRefusal(err error) bool {
	var r *PhoneRefusal
	return errors.As(err, &r)
}

// Check parses raw, normalises it to E.164 and applies the policy, in this
// order: a number on the deny list is refused (deny_list); a number that is
// not valid is refused (invalid), wherever it is listed; a number on the
// allow list passes; otherwise its country and type must be allowed.
func (p *PhonePolicy) Check(raw string) (Phone, error) {
	num, err := phonenumbers.Parse(raw, p.defaultRegion)
	if err != nil || num.GetExtension() != "" {
		// An extension can't receive an SMS, and would show in the mask.
		return Phone{}, &PhoneRefusal{Reason: "invalid"}
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	cc := int(num.GetCountryCode())
	if p.deny.match(e164) {
		return Phone{}, &PhoneRefusal{Reason: "deny_list", Masked: maskNumber(num, cc, phonenumbers.Format(num, phonenumbers.INTERNATIONAL))}
	}
	typ := ""
	if p.hasMobilePrefix(e164) && phonenumbers.IsPossibleNumber(num) && hasMobileLength(num) {
		typ = "mobile"
	} else if phonenumbers.IsValidNumber(num) {
		typ = phoneTypes[phonenumbers.GetNumberType(num)]
	} else {
		return Phone{}, &PhoneRefusal{Reason: "invalid"}
	}
	// Formatted once: the mask is made from it (issue 17: formatting is
	// most of a new number's check).
	formatted := phonenumbers.Format(num, phonenumbers.INTERNATIONAL)
	ph := Phone{E164: e164, Region: phonenumbers.GetRegionCodeForNumber(num), Type: typ, Masked: maskNumber(num, cc, formatted),
		Formatted: formatted}
	var refusal *PhoneRefusal
	switch {
	case !p.countryCodes[cc]:
		refusal = &PhoneRefusal{Reason: "country", Type: typ, Masked: ph.Masked}
	case !p.types[typ]:
		refusal = &PhoneRefusal{Reason: "type", Type: typ, Masked: ph.Masked}
	}
	if refusal == nil {
		return ph, nil
	}
	if p.allow.match(e164) {
		ph.AllowListed = true
		return ph, nil
	}
	return Phone{}, refusal
}

func (p *PhonePolicy) hasMobilePrefix(e164 string) bool {
	for _, mp := range p.mobilePrefixes {
		if strings.HasPrefix(e164, mp) {
			return true
		}
	}
	return false
}

// hasMobileLength reports whether num has as many national digits as its
// country's mobile numbers. A mobile prefix vouches for a range the metadata
// does not know yet, not for numbers of any length the country allows
// ("+8160" followed by 9 or 12 digits is no phone).
func hasMobileLength(num *phonenumbers.PhoneNumber) bool {
	region := phonenumbers.GetRegionCodeForCountryCode(int(num.GetCountryCode()))
	ex := phonenumbers.GetExampleNumberForType(region, phonenumbers.MOBILE)
	return ex != nil && len(phonenumbers.GetNationalSignificantNumber(ex)) == len(phonenumbers.GetNationalSignificantNumber(num))
}

// maskNumber keeps the country code, the first two national digits and the
// last four: enough for a person to recognise their phone, too little to
// call it. It always hides at least three digits (every digit of a number
// of three or fewer), keeping fewer leading digits first and then fewer
// trailing ones: the national numbers of some countries have four to
// eight digits (Tokelau +690 7290), and two plus four would show them
// whole in the logs.
//
// formatted is num in the INTERNATIONAL format.
func maskNumber(num *phonenumbers.PhoneNumber, cc int, formatted string) string {
	nsn := phonenumbers.GetNationalSignificantNumber(num)
	prefix := "+" + strconv.Itoa(cc) + " "
	rest, ok := strings.CutPrefix(formatted, prefix)
	if !ok {
		rest = nsn
	}
	if cc == 81 && strings.HasPrefix(nsn, "60") && len(nsn) == 10 {
		rest = nsn[:2] + "-" + nsn[2:6] + "-" + nsn[6:]
	}
	digits := 0
	for _, r := range rest {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	lead, tail := maskKeeps(digits, 2)
	var b strings.Builder
	b.WriteString(prefix)
	seen := 0
	for _, r := range rest {
		if r >= '0' && r <= '9' {
			seen++
			if seen > lead && seen <= digits-tail {
				r = '*'
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

// maskMinHidden is the fewest digits a mask hides.
const maskMinHidden = 3

// maskKeeps returns how many leading and trailing digits of a number of n
// digits a mask shows: at most maxLead and 4, hiding at least
// maskMinHidden (or all n when n is smaller).
func maskKeeps(n, maxLead int) (lead, tail int) {
	show := n - maskMinHidden
	if show <= 0 {
		return 0, 0
	}
	tail = min(4, show)
	lead = min(maxLead, show-tail)
	return lead, tail
}

// MaskE164 masks a number already in E.164 form for logs, without parsing
// it against any region: "+8190****5678". Like the masks of PhonePolicy it
// hides at least three digits; a number of fewer than nine digits shows
// none.
func MaskE164(e164 string) string {
	if len(e164) < 10 {
		return "+****"
	}
	digits := len(e164) - 1
	lead, tail := maskKeeps(digits, 4)
	return e164[:1+lead] + strings.Repeat("*", digits-lead-tail) + e164[len(e164)-tail:]
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
